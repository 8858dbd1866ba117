//! `hello` end to end: on QEMU microvm, pc and q35, and hosted.

use std::time::Duration;

use oasis_e2e::{BOOT_TIMEOUT, Guest, GuestExit, Machine, qemu, vm};

/// Parses the `tick N at T us` lines and checks they are >= 100 ms apart.
fn check_ticks(g: &Guest) {
    let ticks: Vec<u64> = g
        .output
        .iter()
        .filter_map(|l| l.strip_prefix("tick "))
        .filter_map(|l| l.split(" at ").nth(1))
        .filter_map(|l| l.strip_suffix(" us"))
        .map(|n| n.parse().expect("tick timestamp is a number"))
        .collect();
    assert_eq!(ticks.len(), 4, "expected 4 ticks:\n{}", g.text());
    for w in ticks.windows(2) {
        assert!(
            w[1] >= w[0] + 100_000,
            "ticks less than 100 ms apart: {ticks:?}"
        );
        // Loose upper bound: catches a sleep that never ends early but runs 10x long.
        assert!(
            w[1] < w[0] + 2_000_000,
            "ticks far more than 100 ms apart: {ticks:?}"
        );
    }
}

fn check_hello(g: &mut Guest) {
    g.wait_for("hello from oasis", BOOT_TIMEOUT);
    let args = g.wait_for("args:", BOOT_TIMEOUT);
    assert!(args.contains("rest=[\"one\", \"two\"]"), "{args}");
    let boot = g.wait_for("boot:", BOOT_TIMEOUT);
    assert!(boot.contains(" us from entry to main"), "{boot}");
    assert_eq!(
        g.wait_exit(BOOT_TIMEOUT),
        GuestExit::Status(0),
        "{}",
        g.text()
    );
    check_ticks(g);
}

fn boot(machine: Machine, mem: u32, append: &str) -> Option<Guest> {
    let q = qemu()?;
    let mut v = vm("hello", q);
    v.machine = machine;
    v.mem_mib = mem;
    v.append = append.into();
    Some(Guest::boot(&v))
}

#[test]
fn boots_and_runs_on_microvm() {
    let Some(mut g) = boot(Machine::Microvm, 32, "one two") else {
        return;
    };
    check_hello(&mut g);
}

#[test]
fn boots_and_runs_on_pc() {
    let Some(mut g) = boot(Machine::Pc, 32, "one two") else {
        return;
    };
    check_hello(&mut g);
}

#[test]
fn boots_and_runs_on_q35() {
    let Some(mut g) = boot(Machine::Q35, 32, "one two") else {
        return;
    };
    check_hello(&mut g);
}

#[test]
fn boots_in_4_mib_of_ram() {
    let Some(mut g) = boot(Machine::Microvm, 4, "one two") else {
        return;
    };
    check_hello(&mut g);
}

#[test]
fn exit_statuses_reach_the_host() {
    for (args, status, needle) in [
        ("--fail", 3u8, "hello from oasis"),
        ("--panic", 101, "panicking as asked (--panic)"),
        ("--bogus", 64, "unknown argument `--bogus`"),
        ("--fail=maybe", 64, "flag `--fail=maybe` takes no value"),
        ("--help", 0, "usage:"),
    ] {
        let Some(mut g) = boot(Machine::Microvm, 16, args) else {
            return;
        };
        assert_eq!(
            g.wait_exit(BOOT_TIMEOUT),
            GuestExit::Status(status),
            "{args}:\n{}",
            g.text()
        );
        assert!(
            g.text().contains(needle),
            "{args}: no {needle:?} in\n{}",
            g.text()
        );
        if args == "--panic" {
            let t = g.text();
            assert!(
                t.contains("panicked at appliances/hello/src/main.rs:"),
                "{t}"
            );
            assert!(t.contains("backtrace"), "{t}");
        }
    }
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    let Some(mut g) = boot(Machine::Microvm, 16, "--overflow") else {
        return;
    };
    assert_eq!(
        g.wait_exit(BOOT_TIMEOUT),
        GuestExit::Status(102),
        "{}",
        g.text()
    );
    let t = g.text();
    assert!(t.contains("CPU exception 14 (page fault)"), "{t}");
    assert!(t.contains("stack overflow"), "{t}");
    assert!(
        t.contains("rip 0x") && t.contains("cr2 0x") && t.contains("error code"),
        "{t}"
    );
}

#[test]
fn hosted_runs_the_same_source() {
    let mut g = Guest::hosted("hello", &["one", "two"]);
    check_hello(&mut g);
    for (args, status) in [
        (&["--fail"][..], 3u8),
        (&["--panic"], 101),
        (&["--bogus"], 64),
        (&["--help"], 0),
    ] {
        let mut g = Guest::hosted("hello", args);
        assert_eq!(
            g.wait_exit(Duration::from_secs(30)),
            GuestExit::Status(status),
            "{args:?}:\n{}",
            g.text()
        );
    }
}

/// `-l boot:debug` prints when each boot phase ended, in order, in time order;
/// `--log-format=json` makes every log line one JSON object with ts, level,
/// target and msg.
#[test]
fn boot_trace_in_json_log_lines() {
    let Some(mut g) = boot(
        Machine::Microvm,
        32,
        "-l boot:debug --log-format=json -- one two",
    ) else {
        return;
    };
    check_hello(&mut g);
    let records: Vec<&String> = g.output.iter().filter(|l| l.starts_with('{')).collect();
    let phases = [
        "64-bit entry",
        "PVH start_info",
        "ACPI tables",
        "heap",
        "page tables",
        "LAPIC",
        "clock calibration",
        "command line",
        "main",
    ];
    assert_eq!(records.len(), phases.len(), "{}", g.text());
    let mut last_ms = -1.0f64;
    for (line, phase) in records.iter().zip(phases) {
        // {"ts":0.026200,"level":"debug","target":"boot","msg":"   0.792 ms  64-bit entry, …"}
        let body = line
            .strip_prefix("{\"ts\":")
            .and_then(|l| l.strip_suffix("\"}"))
            .unwrap_or_else(|| panic!("not a JSON record: {line}"));
        let (ts, rest) = body.split_once(',').unwrap();
        assert!(ts.parse::<f64>().is_ok(), "{line}");
        let msg = rest
            .strip_prefix("\"level\":\"debug\",\"target\":\"boot\",\"msg\":\"")
            .unwrap_or_else(|| panic!("fields: {line}"));
        let (ms, name) = msg.trim_start().split_once(" ms  ").unwrap();
        let ms: f64 = ms.parse().unwrap();
        assert!(name.starts_with(phase), "{line}");
        assert!(ms >= last_ms, "phases out of order: {line}");
        last_ms = ms;
    }
}
