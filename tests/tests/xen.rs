//! `hello` under the real Xen hypervisor: Xen 4.17 (Debian's package) runs in QEMU
//! (TCG, q35 with an IOMMU) and boots the image as its PVH dom0. The guest's console
//! reaches us through `HYPERVISOR_console_io` on the serial line Xen shares with its
//! own log, and its exit status through `isa-debug-exit` (dom0 owns the port).
//! The last test boots `hello` as a PVH domU under a Linux dom0 (bench/xen/run):
//! console ring, Xen wall clock, xenstore, timer and exit as a domU; and `www` and
//! `kv` serve as domUs over netfront and blkfront (a client in dom0, a disk that
//! survives `xl destroy`).
//!
//! Skips with a notice when QEMU or Xen is missing; fails instead under
//! `OASIS_REQUIRE_QEMU=1` / `OASIS_REQUIRE_XEN=1` (CI sets both; .ci/run installs
//! xen-hypervisor-4.17-amd64).

use std::time::Duration;

use oasis_e2e::{Guest, GuestExit, qemu, vm, xen};

/// Xen boots in seconds on an idle machine; TCG on a loaded 2-core one is slow.
const XEN_TIMEOUT: Duration = Duration::from_secs(180);

fn boot(append: &str) -> Option<Guest> {
    let q = qemu()?;
    let xen = xen()?;
    let mut v = vm("hello", q);
    v.mem_mib = 64;
    v.append = append.into();
    let mut cmd = oasis_cli::xen::command(&v, &xen).expect("QEMU command for Xen");
    Some(Guest::boot_command(&mut cmd))
}

/// The `tick N at T us` timestamps.
fn ticks(g: &Guest) -> Vec<u64> {
    g.output
        .iter()
        .filter_map(|l| l.strip_prefix("tick "))
        .filter_map(|l| l.split(" at ").nth(1))
        .filter_map(|l| l.strip_suffix(" us"))
        .map(|n| n.parse().expect("tick timestamp is a number"))
        .collect()
}

#[test]
fn hello_boots_as_xen_pvh_dom0() {
    let Some(mut g) = boot("one two -l debug") else {
        return;
    };
    // Xen itself ran and built a PVH dom0 from the image.
    g.wait_for("*** Building a PVH Dom0 ***", XEN_TIMEOUT);
    g.wait_for("hello from oasis", XEN_TIMEOUT);
    let args = g.wait_for("args:", XEN_TIMEOUT);
    assert!(args.contains("rest=[\"one\", \"two\"]"), "{args}");
    // The platform knew it was on Xen: hypercall page, console_io, Xen's TSC leaf.
    let report = g.wait_for("(CPUID base", XEN_TIMEOUT);
    assert!(report.contains("Xen 4.17"), "{report}");
    assert!(report.contains("console console_io"), "{report}");
    assert!(report.contains("(Xen cpuid leaf)"), "{report}");
    let boot = g.wait_for(" us from entry to main", XEN_TIMEOUT);
    let us: u64 = boot
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time in {boot:?}"));
    eprintln!("xen dom0: {us} us from PVH entry to main");
    assert_eq!(
        g.wait_exit(XEN_TIMEOUT),
        GuestExit::Status(0),
        "{}",
        g.text()
    );
    // Xen's broken dom0 XSDT (SeaBIOS has only an RSDT) is worked around quietly.
    assert!(!g.text().contains("oasis: ACPI"), "{}", g.text());
    let t = ticks(&g);
    assert_eq!(t.len(), 4, "expected 4 ticks:\n{}", g.text());
    for w in t.windows(2) {
        assert!(
            w[1] >= w[0] + 100_000,
            "ticks less than 100 ms apart: {t:?}"
        );
    }
    // The memory map came from XENMEM_memory_map: the heap is most of dom0's 64 MiB.
    let heap_kib: u64 = report
        .split("heap ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no heap size in {report:?}"));
    assert!(
        (32 * 1024..64 * 1024).contains(&heap_kib),
        "heap {heap_kib} KiB"
    );
}

#[test]
fn panics_and_failures_reach_the_host_under_xen() {
    for (args, status, needle) in [
        ("--panic", 101u8, "panicking as asked (--panic)"),
        ("--bogus", 64, "unknown argument `--bogus`"),
    ] {
        let Some(mut g) = boot(args) else {
            return;
        };
        assert_eq!(
            g.wait_exit(XEN_TIMEOUT),
            GuestExit::Status(status),
            "{args}:\n{}",
            g.text()
        );
        let t = g.text();
        assert!(t.contains(needle), "{args}: no {needle:?} in\n{t}");
        assert!(
            t.contains("Building a PVH Dom0"),
            "{args}: not on Xen?\n{t}"
        );
        if args == "--panic" {
            assert!(
                t.contains("panicked at appliances/hello/src/main.rs:"),
                "{t}"
            );
            assert!(t.contains("backtrace"), "{t}");
        }
    }
}

/// Without QEMU's exit device, the exit goes through `SCHEDOP_shutdown`: Xen hears
/// poweroff for status 0 and crash for any other, after the status is printed. (For
/// dom0 Xen then halts the machine, so QEMU stays up until the guest is dropped.)
#[test]
fn exit_without_the_debug_device_is_a_xen_shutdown() {
    for (args, status, xen_says) in [
        ("one", 0u8, "Hardware Dom0 halted"),
        ("--fail", 3, "Hardware Dom0 crashed"),
    ] {
        let Some(q) = qemu() else { return };
        let Some(xen) = xen() else { return };
        let mut v = vm("hello", q);
        v.mem_mib = 64;
        v.append = args.into();
        let mut a = oasis_cli::xen::qemu_args(&v, &xen).expect("QEMU arguments for Xen");
        let i = a
            .iter()
            .position(|x| x == oasis_cli::qemu::DEBUG_EXIT)
            .expect("the exit device is there by default");
        a.drain(i - 1..=i);
        let mut cmd = std::process::Command::new(&v.qemu);
        cmd.args(&a);
        let mut g = Guest::boot_command(&mut cmd);
        g.wait_for("hello from oasis", XEN_TIMEOUT);
        g.wait_for(&format!("oasis: exit status {status}"), XEN_TIMEOUT);
        g.wait_for(xen_says, XEN_TIMEOUT);
    }
}

/// The whole domU run (Xen, the Linux dom0 to `/init`, xenstored, `xl create`,
/// `hello`, `xl` teardown) under TCG; bench/xen/run kills QEMU after this.
const DOMU_RUN_TIMEOUT_S: u64 = 480;

/// `hello` as a PVH **domU**: bench/xen/run boots Xen and a Debian Linux dom0 with
/// the Xen tools (bench/xen/build) in QEMU, and the dom0 runs `xl create` on the
/// image. The guest's console goes through the shared console ring to xenconsoled,
/// whose log the dom0 prints; the exit is `SCHEDOP_shutdown` (poweroff: the domain
/// goes away). Slow (minutes: a Linux dom0 under TCG), so it runs only when
/// `OASIS_REQUIRE_XEN=1` (CI) or `OASIS_XEN_DOMU=1`, and then fails when the dom0
/// cannot be built (it needs apt-get, dpkg-deb and ldd) or booted.
/// Runs bench/xen/run with `args` (plus a time limit and a log) and returns the
/// console, after asserting that it passed. `None` (test skipped) unless
/// `OASIS_REQUIRE_XEN=1` or `OASIS_XEN_DOMU=1`, or when QEMU is missing.
fn bench_xen_run(args: &[std::ffi::OsString]) -> Option<String> {
    let wanted = |v: &str| std::env::var(v).as_deref() == Ok("1");
    if !wanted("OASIS_REQUIRE_XEN") && !wanted("OASIS_XEN_DOMU") {
        eprintln!(
            "SKIPPED: the domU tests boot a Linux dom0 under TCG (minutes); \
             set OASIS_XEN_DOMU=1 or OASIS_REQUIRE_XEN=1 to run them"
        );
        return None;
    }
    qemu()?;
    let root = oasis_cli::workspace_root();
    let log = std::env::temp_dir().join(format!(
        "oasis-xen-domu-{}-{:?}.log",
        std::process::id(),
        std::thread::current().id()
    ));
    let out = std::process::Command::new(root.join("bench/xen/run"))
        .current_dir(&root)
        .args(args)
        .args([
            "--timeout",
            &DOMU_RUN_TIMEOUT_S.to_string(),
            "--quiet",
            "--log",
        ])
        .arg(&log)
        .output()
        .expect("bench/xen/run starts (python3)");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/xen/run failed ({}):\n{stderr}\n--- console ---\n{text}",
        out.status
    );
    Some(text)
}

#[test]
fn hello_boots_as_xen_pvh_domu_under_a_linux_dom0() {
    let Some(text) = bench_xen_run(&[
        "--domu".into(),
        oasis_e2e::image("hello", oasis_e2e::Target::Kvm).into(),
        "--domu-cmdline".into(),
        "one two -l debug".into(),
        "--domu-wait".into(),
        "120".into(),
        // A vif on the dom0's bridge and a 4 MiB disk: xenstore lists them.
        "--vif".into(),
        "--disk-mib".into(),
        "4".into(),
    ]) else {
        return;
    };
    // What xenconsoled logged from the guest's console ring.
    let console = text
        .split("oasis-dom0: begin domu-console\n")
        .nth(1)
        .and_then(|t| t.split("oasis-dom0: end domu-console").next())
        .unwrap_or_else(|| panic!("no domu-console section in\n{text}"));
    eprintln!("--- domU console ---\n{console}");
    assert!(console.contains("hello from oasis"), "{text}");
    assert!(
        console.contains("args: fail=false panic=false rest=[\"one\", \"two\"]"),
        "{console}"
    );
    let report = console
        .lines()
        .find(|l| l.contains("(CPUID base"))
        .unwrap_or_else(|| panic!("no platform report in\n{console}"));
    assert!(report.contains("console ring"), "{report}");
    assert!(report.contains("wall clock shared_info"), "{report}");
    // The xenstore client (oasis-xen over the platform's XenHv) read this domain's
    // device/ directory at boot: the vif and the vbd the toolstack set up.
    let devices = report
        .split("xenstore device/ ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("no xenstore device/ listing in {report:?}"));
    assert!(
        devices.contains("\"vif\"") && devices.contains("\"vbd\""),
        "{report}"
    );
    // The platform's XenHypervisor against the real Xen: an event channel allocated
    // and closed, and the grant table's size.
    assert!(report.contains("allocated and closed"), "{report}");
    let max_frames: u32 = report
        .split("grant table ")
        .nth(1)
        .and_then(|r| r.split(" frames").next())
        .and_then(|r| r.split('/').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no grant table size in {report:?}"));
    assert!(max_frames > 0, "{report}");
    // Xen's wall clock is the host's (QEMU's RTC): after 2020-01-01.
    let wall: u64 = report
        .split("wall clock ")
        .last()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wall clock seconds in {report:?}"));
    assert!(wall > 1_577_836_800, "wall clock {wall} s: {report}");
    // The timer works as a domU: four ticks, 100 ms apart at least.
    let ticks: Vec<u64> = console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("tick "))
        .filter_map(|l| l.split(" at ").nth(1))
        .filter_map(|l| l.strip_suffix(" us"))
        .map(|n| n.parse().expect("tick timestamp is a number"))
        .collect();
    assert_eq!(ticks.len(), 4, "expected 4 ticks:\n{console}");
    for w in ticks.windows(2) {
        assert!(
            w[1] >= w[0] + 100_000,
            "ticks less than 100 ms apart: {ticks:?}"
        );
    }
    // Status printed, then SCHEDOP_shutdown(poweroff): xl sees the domain go away.
    assert!(console.contains("oasis: exit status 0"), "{console}");
    assert!(text.contains("oasis-dom0: domu gone after"), "{text}");
}

/// `www` and `kv` as PVH domUs on netfront and blkfront against Linux's netback
/// and blkback (bench/xen/run's serve scenario): the dom0 fetches every file of the
/// fixture site over the bridge and compares it byte for byte (MD5 of each); `kv`
/// acknowledges a PUT with 201, is `xl destroy`ed without a shutdown, `xl create`d
/// again on the same disk, and returns the value. Runs when the other domU test does.
#[test]
fn www_and_kv_serve_as_xen_domus_with_netfront_and_blkfront() {
    let site = oasis_e2e::wwwtests::site();
    let www = oasis_e2e::wwwtests::www_image();
    let kv = oasis_e2e::image("kv", oasis_e2e::Target::Kvm);
    let Some(text) = bench_xen_run(&[
        "--www".into(),
        www.into(),
        "--site".into(),
        site.dir.clone().into(),
        "--kv".into(),
        kv.into(),
    ]) else {
        return;
    };
    let checks: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("oasis-dom0: check "))
        .collect();
    eprintln!("{checks:#?}");
    for name in [
        "www_ready",
        "www_files",
        "www_vif_detach",
        "kv_ready",
        "kv_put",
        "kv_persisted",
    ] {
        let line = checks
            .iter()
            .find(|c| c.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no check {name} in\n{text}"));
        assert!(line.contains(" ok"), "{line}\n{text}");
    }
    // Every file of the fixture, byte-exact.
    let fetched = text
        .lines()
        .filter(|l| l.starts_with("oasis-dom0: fetch ") && l.ends_with(" ok"))
        .count();
    assert_eq!(fetched, site.files.len(), "{text}");
    // The second kv boot found the key on the disk blkfront wrote.
    let ready: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("kv: ready: "))
        .collect();
    assert!(
        ready
            .last()
            .is_some_and(|l| l.starts_with("kv: ready: 1 keys on xen-vbd0")),
        "{ready:?}"
    );
}

/// The developer's path (`cargo oasis run APP --hypervisor xen-domu` runs exactly
/// this runner): bench/xen/run `--follow` streams the domU's console, and
/// `--hostfwd` puts a NIC on QEMU's user network into the dom0's bridge, so a
/// client on this host reaches `www` in the domU through 127.0.0.1. Runs when the
/// other domU tests do.
#[test]
fn a_www_domu_is_reachable_from_the_host_through_the_dom0_bridge() {
    use std::io::{BufRead, BufReader};
    let wanted = |v: &str| std::env::var(v).as_deref() == Ok("1");
    if !wanted("OASIS_REQUIRE_XEN") && !wanted("OASIS_XEN_DOMU") {
        eprintln!("SKIPPED: set OASIS_XEN_DOMU=1 or OASIS_REQUIRE_XEN=1 to run it");
        return;
    }
    if qemu().is_none() {
        return;
    }
    let site = oasis_e2e::wwwtests::site();
    let www = oasis_e2e::wwwtests::www_image();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let root = oasis_cli::workspace_root();
    let mut child = std::process::Command::new(root.join("bench/xen/run"))
        .current_dir(&root)
        .arg("--domu")
        .arg(&www)
        .args(["--vif", "--domu-cmdline=--ipv4=10.0.2.15/24", "--hostfwd"])
        .arg(format!("{port}:80"))
        .args(["--follow", "--timeout", &DOMU_RUN_TIMEOUT_S.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("bench/xen/run starts (python3)");
    // The domU's console, line by line, on the runner's stdout.
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(DOMU_RUN_TIMEOUT_S);
    let mut console = Vec::new();
    let ready = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.starts_with("www: ready");
                console.push(l);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let result = ready.then(|| {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        (
            oasis_e2e::wwwtests::get(addr, "/", ""),
            oasis_e2e::wwwtests::get(addr, "/big.bin", ""),
        )
    });
    // SIGTERM: the runner kills its QEMU.
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert!(
        ready,
        "no `www: ready` from the domU:\n{}",
        console.join("\n")
    );
    let (index, big) = result.expect("fetched");
    assert_eq!(index.status, 200);
    assert_eq!(index.body, site.file("/index.html"));
    assert_eq!(big.status, 200);
    assert!(big.body == site.file("/big.bin"), "/big.bin differs");
}

/// bench/xen/run's console parsing (checks, sections, serve timings), its site
/// manifest and its cpio packing: the runner's own unit tests (Python, no QEMU).
#[test]
fn the_xen_runner_reads_consoles_and_packs_files_correctly() {
    let root = oasis_cli::workspace_root();
    let out = std::process::Command::new("python3")
        .arg(root.join("bench/xen/test_run.py"))
        .output()
        .expect("python3 runs bench/xen/test_run.py");
    assert!(
        out.status.success(),
        "bench/xen/test_run.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
