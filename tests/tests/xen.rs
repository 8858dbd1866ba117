//! `hello` under the real Xen hypervisor: Xen 4.17 (Debian's package) runs in QEMU
//! (TCG, q35 with an IOMMU) and boots the image as its PVH dom0. The guest's console
//! reaches us through `HYPERVISOR_console_io` on the serial line Xen shares with its
//! own log, and its exit status through `isa-debug-exit` (dom0 owns the port).
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
