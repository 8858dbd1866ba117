//! The `sandbox` target (docs/sandbox.md): appliances as sealed Linux processes whose
//! only network is a TAP, driven through our own TCP/IP stack.
//!
//! - Forbidden calls made after sealing (`--sandbox-probe`) kill the process with
//!   `SIGSYS`, every time; a panic and a failed allocation exit 101 without leaving
//!   the filter. These need nothing but Linux.
//! - `www`, `echo`, `kv` and `dns` answer over a TAP in a namespace each test creates
//!   (root, `/dev/net/tun`, `ip`, `python3`; skipped with a notice, or failed under
//!   `OASIS_REQUIRE_NETNS=1`); `kv` keeps acknowledged writes across `kill -9`.
//! - Under load, `strace -f -c` of sandboxed `www` lists only the allowed calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use oasis_e2e::flood::enter_netns;
use oasis_e2e::kvapp::{KvClient, empty_image};
use oasis_e2e::nettests::{NS_GUEST_IP, NS_PREFIX, NetNs, netns_available, process_alive};
use oasis_e2e::wwwtests::get;
use oasis_e2e::{BOOT_TIMEOUT, Guest, GuestExit, Target, find_program};

/// What the filter kills with.
const SIGSYS: i32 = 31;
/// Exit status after a panic or a failed allocation.
const EXIT_PANIC: i32 = 101;

/// The calls the filter may allow (platform/hosted/src/sandbox/policy.rs, `ALLOWED`).
const ALLOWED: [&str; 9] = [
    "read",
    "write",
    "pread64",
    "pwrite64",
    "fdatasync",
    "ppoll",
    "clock_gettime",
    "getrandom",
    "exit_group",
];

/// Builds `app` for the sandbox (release) once per test process.
fn sandboxed(app: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(app) {
        return p.clone();
    }
    let req = oasis_cli::build::BuildRequest {
        app: app.into(),
        target: Target::Sandbox,
        release: true,
        env: vec![],
        quiet: true,
    };
    let p = oasis_cli::build::build(&req).unwrap_or_else(|e| panic!("building {app}: {e:#}"));
    built.insert(app.into(), p.clone());
    p
}

/// Runs sandboxed `app` with `args` to the end; its status and stdout.
fn run_to_end(app: &str, args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(sandboxed(app))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running sandboxed {app}: {e}"));
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn forbidden_calls_after_sealing_are_killed_by_sigsys() {
    for probe in ["openat", "socket", "execve", "mmap", "write-fd"] {
        // Twice each: the filter never lets one through.
        for _ in 0..2 {
            let (status, out) = run_to_end("hello", &[&format!("--sandbox-probe={probe}")]);
            assert_eq!(
                status.signal(),
                Some(SIGSYS),
                "probe {probe}: expected death by SIGSYS, got {status:?}; output:\n{out}"
            );
            assert!(out.contains("sandbox: probe"), "probe {probe}: {out}");
        }
    }
}

#[test]
fn panics_and_allocation_failures_exit_within_the_filter() {
    for (probe, says) in [
        ("panic", "panicked at"),
        ("oom", "aborted (an allocation failed"),
    ] {
        let (status, out) = run_to_end("hello", &[&format!("--sandbox-probe={probe}")]);
        assert_eq!(
            status.code(),
            Some(EXIT_PANIC),
            "probe {probe}: expected exit {EXIT_PANIC}, got {status:?}; output:\n{out}"
        );
        for needle in [says, "heap: ", "backtrace (image offsets"] {
            assert!(
                out.contains(needle),
                "probe {probe}: no {needle:?} in:\n{out}"
            );
        }
    }
}

#[test]
fn hello_runs_sealed_without_a_network() {
    let (status, out) = run_to_end("hello", &[]);
    assert!(status.success(), "{status:?}\n{out}");
    assert!(out.contains("tick 3"), "{out}");
    // Boot arguments the sandbox does not know still end in a usage error, not SIGSYS.
    let (status, out) = run_to_end("hello", &["--no-such-flag"]);
    assert_eq!(status.code(), Some(64), "{status:?}\n{out}");
}

/// A sandboxed appliance on the namespace's TAP at `NS_GUEST_IP`.
struct Sealed {
    guest: Guest,
    /// Spawn to the `ready` line.
    ready_in: Duration,
}

/// Starts sandboxed `app` inside `ns` on its TAP with a static address and `extra`
/// arguments; waits for its `ready` line.
fn start(ns: &NetNs, app: &str, extra: &[String]) -> Sealed {
    let image = sandboxed(app);
    let mut cmd = ns.command(image.to_str().expect("utf-8 path"));
    cmd.arg(format!("--net=tap:{}", ns.tap))
        .arg(format!("--ipv4={NS_GUEST_IP}/{NS_PREFIX}"))
        .args(extra);
    let t0 = Instant::now();
    let mut guest = Guest::hosted_command(&mut cmd);
    guest.wait_for("ready", BOOT_TIMEOUT);
    let ready_in = t0.elapsed();
    // `ip netns exec` execs the program: the child is the sealed process itself.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", guest.pid())).unwrap_or_default();
    for line in ["Seccomp:\t2", "Threads:\t1"] {
        assert!(
            status.contains(line),
            "{app} is not sealed and single-threaded ({line:?} missing):\n{status}"
        );
    }
    Sealed { guest, ready_in }
}

/// Runs `f` on a thread inside `ns` (its sockets live there) and returns its result.
fn in_ns<T: Send + 'static>(ns: &NetNs, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn guest_addr(port: u16) -> SocketAddr {
    SocketAddr::from((NS_GUEST_IP, port))
}

#[test]
fn www_serves_over_a_tap() {
    if !netns_available(&["python3"]) {
        return;
    }
    let ns = NetNs::create("sbwww");
    let w = start(&ns, "www", &[]);
    eprintln!("sandboxed www: ready {:?} after spawn", w.ready_in);
    let (index, health, missing) = in_ns(&ns, || {
        let a = guest_addr(80);
        (get(a, "/", ""), get(a, "/healthz", ""), get(a, "/nope", ""))
    });
    assert_eq!(index.status, 200, "{}", w.guest.text());
    assert!(
        String::from_utf8_lossy(&index.body).contains("<html"),
        "not the site's index"
    );
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(missing.status, 404);
    assert!(process_alive(w.guest.pid()), "{}", w.guest.text());
}

#[test]
fn echo_echoes_tcp_and_udp_over_a_tap() {
    if !netns_available(&["python3"]) {
        return;
    }
    let ns = NetNs::create("sbecho");
    let w = start(&ns, "echo", &[]);
    let ip = NS_GUEST_IP.to_string();
    let out = ns.helper_ok(&["echo", &ip, "7", "10", "65536"]);
    assert!(out.starts_with("ok conns=10"), "{out}");
    let out = ns.helper_ok(&["udp", &ip, "7", "1", "512", "1472"]);
    assert!(out.starts_with("ok"), "{out}");
    let out = ns.helper_ok(&["ping", &ip, "2"]);
    assert_eq!(out.matches("reply from").count(), 2, "{out}");
    assert!(process_alive(w.guest.pid()), "{}", w.guest.text());
}

#[test]
fn dns_answers_over_a_tap() {
    if !netns_available(&["python3", "dig"]) {
        return;
    }
    let ns = NetNs::create("sbdns");
    let w = start(&ns, "dns", &[]);
    let dig = find_program("dig").expect("checked by netns_available");
    for proto in ["+notcp", "+tcp"] {
        let out = ns
            .command(&dig.to_string_lossy())
            .args([
                &format!("@{NS_GUEST_IP}"),
                "www.example.org",
                "A",
                proto,
                "+time=2",
                "+tries=3",
            ])
            .output()
            .expect("dig");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("status: NOERROR") && text.contains("ANSWER SECTION"),
            "dig {proto}:\n{text}\nconsole:\n{}",
            w.guest.text()
        );
    }
}

#[test]
fn kv_keeps_acknowledged_writes_across_kill_9() {
    if !netns_available(&["python3"]) {
        return;
    }
    let ns = NetNs::create("sbkv");
    let disk = empty_image("sandbox-kv", 16);
    let disk_arg = vec![format!("--disk={}", disk.display())];
    let mut w = start(&ns, "kv", &disk_arg);
    const KEYS: usize = 40;
    let acked = in_ns(&ns, || {
        let mut c = KvClient::connect(guest_addr(80), Duration::from_secs(10)).expect("connect");
        (0..KEYS)
            .map(|i| {
                let (k, v) = (format!("k{i}"), format!("value {i}").into_bytes());
                assert_eq!(c.put(&k, &v).expect("PUT"), 201, "PUT {k}");
                (k, v)
            })
            .collect::<Vec<_>>()
    });
    // No shutdown, no flush from outside: SIGKILL right after the last answer.
    let pid = rustix::process::Pid::from_raw(w.guest.pid() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill -9");
    let st = w.guest.wait_exit(BOOT_TIMEOUT);
    assert!(
        matches!(st, GuestExit::Signal(9)),
        "{st:?}\n{}",
        w.guest.text()
    );

    let w = start(&ns, "kv", &disk_arg);
    let found = in_ns(&ns, move || {
        let mut c = KvClient::connect(guest_addr(80), Duration::from_secs(10)).expect("connect");
        acked
            .into_iter()
            .filter(|(k, v)| c.get(k).expect("GET").as_deref() != Some(v.as_slice()))
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    });
    assert!(
        found.is_empty(),
        "acknowledged keys lost across kill -9: {found:?}\n{}",
        w.guest.text()
    );
    let _ = std::fs::remove_file(&disk);
}

/// The syscall names in an `strace -c` summary table.
fn strace_summary_calls(summary: &str) -> Vec<String> {
    summary
        .lines()
        .skip_while(|l| !l.starts_with("------"))
        .skip(1)
        .take_while(|l| !l.starts_with("------"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

/// Whether `pid` has a tracer attached.
fn traced(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
}

#[test]
fn strace_of_sandboxed_www_under_load_shows_only_allowed_calls() {
    if !netns_available(&["python3"]) {
        return;
    }
    let Some(strace) = find_program("strace") else {
        oasis_e2e::missing(
            "OASIS_REQUIRE_NETNS",
            "strace is not installed (apt-get install strace)",
        );
        return;
    };
    let ns = NetNs::create("sbstrace");
    let w = start(&ns, "www", &[]);
    let pid = w.guest.pid();
    let summary_file = std::env::temp_dir().join(format!("oasis-sandbox-strace-{pid}"));
    let tracer = Command::new(&strace)
        .args(["-f", "-c", "-o"])
        .arg(&summary_file)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting strace");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !traced(pid) {
        assert!(Instant::now() < deadline, "strace never attached");
        std::thread::sleep(Duration::from_millis(10));
    }
    let statuses = in_ns(&ns, || {
        let a = guest_addr(80);
        (0..50)
            .map(|i| get(a, if i % 5 == 4 { "/nope" } else { "/" }, "").status)
            .collect::<Vec<_>>()
    });
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 404),
        "{statuses:?}"
    );
    let tracer_pid = rustix::process::Pid::from_raw(tracer.id() as i32).expect("pid");
    rustix::process::kill_process(tracer_pid, rustix::process::Signal::INT).expect("SIGINT");
    let out = tracer.wait_with_output().expect("strace");
    let summary = std::fs::read_to_string(&summary_file).unwrap_or_default();
    let _ = std::fs::remove_file(&summary_file);
    let calls = strace_summary_calls(&summary);
    eprintln!("strace -f -c of sandboxed www, 50 requests:\n{summary}");
    assert!(
        calls.iter().any(|c| c == "write") && calls.iter().any(|c| c == "read"),
        "the summary has no reads and writes: {summary}\nstrace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outside: Vec<&String> = calls
        .iter()
        .filter(|c| !ALLOWED.contains(&c.as_str()))
        .collect();
    assert!(
        outside.is_empty(),
        "calls outside the filter's list: {outside:?}\n{summary}"
    );
    assert!(process_alive(pid), "{}", w.guest.text());
}
