//! Observability end to end (docs/observability.md): `run --pcap` records an HTTP
//! exchange that tcpdump can read, `run --gdb` lets gdb break in a guest and let it
//! finish, and `run` symbolises a guest's backtrace.
//!
//! Each boots one small guest under QEMU. Skipped with a notice when QEMU, gdb or
//! tcpdump is missing; failed instead when `OASIS_REQUIRE_QEMU=1` (CI installs all
//! three).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use oasis_cli::crash;
use oasis_cli::qemu::{Pcap, gdb_args};
use oasis_e2e::wwwtests::{work_dir, www_image};
use oasis_e2e::{
    BOOT_TIMEOUT, Guest, GuestExit, Net, PortForward, Target, Vm, find_program, image, missing,
    qemu, vm,
};

/// `name` (gdb, tcpdump), or `None` when it is missing (the test then skips, or
/// fails under `OASIS_REQUIRE_QEMU=1`).
fn tool(name: &str) -> Option<PathBuf> {
    let p = find_program(name);
    if p.is_none() {
        missing(
            "OASIS_REQUIRE_QEMU",
            &format!("{name} is not installed (apt-get install -y {name})"),
        );
    }
    p
}

/// Runs `cmd` under coreutils' `timeout`, so a hung tool fails the test instead of
/// hanging it.
fn run_for(limit: Duration, program: &Path, args: &[String]) -> Output {
    Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

#[test]
fn pcap_records_an_http_exchange() {
    let (Some(q), Some(tcpdump)) = (qemu(), tool("tcpdump")) else {
        return;
    };
    let pcap = work_dir().join(format!("observe-{}.pcap", std::process::id()));
    let _ = std::fs::remove_file(&pcap);
    let port = oasis_testkit::free_port();
    let mut v = Vm::new(q, www_image());
    v.mem_mib = 64;
    v.net = Net::User;
    v.ports = vec![PortForward {
        host: port,
        guest: 80,
    }];
    v.pcap = Some(Pcap(pcap.clone()));
    let mut g = Guest::boot(&v);
    g.wait_for("www: ready", BOOT_TIMEOUT);

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, BOOT_TIMEOUT).expect("connect to www");
    s.set_read_timeout(Some(BOOT_TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: observe\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(g); // stops QEMU; filter-dump writes each frame as it passes

    let out = run_for(
        Duration::from_secs(60),
        &tcpdump,
        &[
            "-n".into(),
            "-A".into(),
            "-r".into(),
            pcap.display().to_string(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tcpdump failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("GET / HTTP/1.1"),
        "no request in the capture:\n{text}"
    );
    assert!(
        text.contains("HTTP/1.1 200"),
        "no answer in the capture:\n{text}"
    );
    let _ = std::fs::remove_file(&pcap);
}

/// Waits until something listens on 127.0.0.1:`port` (from /proc/net/tcp, so that
/// no probe connection is made: QEMU's gdb stub would take it for gdb).
fn wait_listening(port: u16, timeout: Duration) {
    let want = format!("0100007F:{port:04X}");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let listening = table.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
        });
        if listening {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
}

#[test]
fn gdb_breaks_in_the_guest_and_lets_it_finish() {
    let (Some(q), Some(gdb)) = (qemu(), tool("gdb")) else {
        return;
    };
    let port = oasis_testkit::free_port();
    let mut v = vm("hello", q);
    v.gdb = Some(port);
    let mut g = Guest::boot(&v);
    wait_listening(port, BOOT_TIMEOUT);

    // What `run --gdb` prints, then: continue to the breakpoint, a backtrace, and on
    // to the end.
    let mut args = gdb_args(port, &v.kernel, "__oasis_start");
    args.remove(0);
    for a in ["-nx", "-batch"] {
        args.insert(0, a.into());
    }
    for cmd in ["continue", "bt", "delete", "continue"] {
        args.extend(["-ex".into(), cmd.into()]);
    }
    let out = run_for(BOOT_TIMEOUT, &gdb, &args);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Breakpoint 1, "), "{said}");
    let bt: Vec<&str> = said.lines().filter(|l| l.starts_with('#')).collect();
    assert!(
        bt.first().is_some_and(|l| l.contains("__oasis_start")),
        "{said}"
    );
    assert!(bt.iter().any(|l| l.contains("kvm_start")), "{said}");
    assert_eq!(
        g.wait_exit(BOOT_TIMEOUT),
        GuestExit::Status(0),
        "{}",
        g.text()
    );
    assert!(g.text().contains("hello from oasis"), "{}", g.text());
}

/// Boots hello with `args` through `run`'s console loop; returns its status and
/// the console as `run` shows it.
fn run_symbolised(q: PathBuf, args: &str) -> (GuestExit, String) {
    let mut v = vm("hello", q);
    v.append = args.into();
    let symbols = crash::Symbols::open(&v.kernel).expect("read the image's symbols");
    let mut cmd = Command::new("timeout");
    cmd.arg(BOOT_TIMEOUT.as_secs().to_string())
        .arg(&v.qemu)
        .args(v.args())
        .stdin(Stdio::null());
    let mut out = Vec::new();
    let exit = crash::run_guest(&mut cmd, Some(&symbols), &mut out).expect("run QEMU");
    (exit, String::from_utf8_lossy(&out).replace('\r', ""))
}

/// The annotation lines (indented, not frames) that follow `backtrace` frames.
fn annotations(console: &str) -> Vec<&str> {
    let start = console.find("backtrace").expect("a backtrace");
    console[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("   "))
        .filter(|l| !l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(str::trim)
        .collect()
}

#[test]
fn crash_reports_name_the_functions() {
    let Some(q) = qemu() else {
        return;
    };
    assert!(image("hello", Target::Kvm).is_file());

    let (exit, text) = run_symbolised(q.clone(), "--panic");
    assert_eq!(exit, GuestExit::Status(101), "{text}");
    let names = annotations(&text);
    assert!(
        names
            .iter()
            .any(|l| l.starts_with("oasis::__private::start")),
        "the executor's frame is named:\n{text}"
    );
    assert!(
        names.iter().any(|l| l.starts_with("__oasis_start")),
        "the app's entry is named:\n{text}"
    );
    // The raw addresses stay.
    assert!(text.contains("    0: 0x"), "{text}");

    // A fault: frame 0 is the faulting RIP, in the app's own function.
    let (exit, text) = run_symbolised(q, "--overflow");
    assert_eq!(exit, GuestExit::Status(102), "{text}");
    let names = annotations(&text);
    assert!(
        names
            .first()
            .is_some_and(|l| l.starts_with("hello::recurse")),
        "{text}"
    );
}
