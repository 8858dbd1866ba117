//! QEMU microvm with ACPI on (QEMU's default): no `virtio_mmio.device=` on the kernel
//! command line, the virtio-mmio devices are described only in the DSDT (`LNRO0005`,
//! Memory32Fixed + Extended Interrupt), on GSIs 24..48 of a second I/O APIC. The
//! `www` fixture image must find its NIC there, route its level-triggered interrupt,
//! and serve `GET /` over a loopback-only port forward.
//!
//! `-global virtio-mmio.force-legacy=false` stays (as in every microvm test): QEMU's
//! default is the legacy (version 1) virtio-mmio layout, which `drivers/virtio` does
//! not speak; that is independent of how the device is discovered.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oasis_e2e::nettests::free_port;
use oasis_e2e::wwwtests::{get, site, work_dir, www_image};
use oasis_e2e::{BOOT_TIMEOUT, Guest, Net, PortForward, Vm, qemu};

/// QEMU's arguments for `vm` with ACPI left on: `-M microvm` instead of
/// `-M microvm,acpi=off`, and nothing else changed.
fn acpi_on_args(vm: &Vm) -> Vec<String> {
    let args: Vec<String> = vm
        .args()
        .into_iter()
        .map(|a| {
            if a == "microvm,acpi=off" {
                "microvm".to_string()
            } else {
                a
            }
        })
        .collect();
    let m = args
        .iter()
        .position(|a| a == "-M")
        .expect("-M in QEMU args");
    assert_eq!(args[m + 1], "microvm", "{args:?}");
    assert!(
        args.iter()
            .all(|a| !a.contains("acpi=off") && !a.contains("virtio_mmio.device")),
        "{args:?}"
    );
    args
}

/// One HMP command through QMP (`human-monitor-command`); returns its text.
fn hmp(qmp: &Path, command: &str) -> String {
    let stream = UnixStream::connect(qmp).unwrap_or_else(|e| panic!("QMP {}: {e}", qmp.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("QMP timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("QMP clone"));
    let mut w = stream;
    let mut line = String::new();
    reader.read_line(&mut line).expect("QMP greeting");
    let mut send = |cmd: String| -> String {
        w.write_all(cmd.as_bytes()).expect("QMP write");
        loop {
            let mut l = String::new();
            let n = reader.read_line(&mut l).expect("QMP read");
            assert!(n > 0, "QMP closed");
            // Skip asynchronous events.
            if l.contains("\"return\"") || l.contains("\"error\"") {
                return l;
            }
        }
    };
    send("{\"execute\":\"qmp_capabilities\"}\n".into());
    let reply = send(format!(
        "{{\"execute\":\"human-monitor-command\",\"arguments\":{{\"command-line\":\"{command}\"}}}}\n"
    ));
    reply.replace("\\r", "").replace("\\n", "\n")
}

/// I/O APIC pins routed level-triggered, active high, unmasked (`info pic` lines
/// `pin 23 0x... dest=0 vec=33  active-hi level  fixed  physical`).
fn level_high_pins(pic: &str) -> Vec<u32> {
    pic.lines()
        .filter(|l| l.contains("active-hi") && l.contains(" level") && !l.contains("masked"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Per-pin interrupt counts of the I/O APICs in `info irq`.
fn ioapic_counts(irq: &str) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut in_ioapic = false;
    for l in irq.lines() {
        // The first line still carries the QMP reply's `{"return": "`.
        if l.contains("IRQ statistics for") {
            in_ioapic = l.contains("ioapic");
            continue;
        }
        if let (true, Some((pin, n))) = (in_ioapic, l.split_once(':'))
            && let (Ok(pin), Ok(n)) = (pin.trim().parse(), n.trim().parse())
        {
            out.push((pin, n));
        }
    }
    out
}

#[test]
fn www_serves_on_microvm_with_acpi() {
    let Some(qemu_bin) = qemu() else { return };
    let port = free_port();
    let mut vm = Vm::new(qemu_bin.clone(), www_image());
    vm.mem_mib = 64;
    vm.net = Net::User;
    vm.ports = vec![PortForward {
        host: port,
        guest: 80,
    }];
    let qmp: PathBuf = work_dir().join(format!("microvm-acpi-{}.qmp", std::process::id()));
    let _ = std::fs::remove_file(&qmp);
    let mut cmd = Command::new(&qemu_bin);
    cmd.args(acpi_on_args(&vm)).args([
        "-qmp".to_string(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ]);
    let mut guest = Guest::hosted_command(&mut cmd);
    guest.wait_for("www: ready", BOOT_TIMEOUT);

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..3 {
        let r = get(addr, "/", "");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, site().file("/index.html"), "GET / body");
    }
    let text = guest.text();
    assert!(!text.contains("no virtio device"), "{text}");
    assert!(!text.contains("ACPI"), "ACPI complaints: {text}");

    // The NIC's interrupt really arrives: its pin is routed as the DSDT says (level,
    // active high; the command-line path would route edge) and has fired.
    let pins = level_high_pins(&hmp(&qmp, "info pic"));
    assert!(!pins.is_empty(), "no level/active-high I/O APIC pin routed");
    let counts = ioapic_counts(&hmp(&qmp, "info irq"));
    assert!(
        counts.iter().any(|(p, n)| pins.contains(p) && *n > 0),
        "no interrupt on pins {pins:?}: {counts:?}"
    );
    drop(guest);
    let _ = std::fs::remove_file(&qmp);
}
