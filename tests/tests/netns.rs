//! `echo` on a TAP device inside a network namespace each test creates: QEMU, the
//! TAP, the namespace's address (10.77.0.1/24), dnsmasq and every client live in the
//! namespace, so no test traffic touches the host's interfaces. Covers ICMP echo,
//! DHCP from a real dnsmasq, TCP and UDP echo on a static address (microvm and pc),
//! and 100 000 hostile frames injected while a client keeps echoing.
//!
//! Needs root, `/dev/net/tun`, `ip`, `python3` and (for DHCP) `dnsmasq`: skipped
//! with a notice when missing, failed when `OASIS_REQUIRE_NETNS=1`.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use oasis_e2e::nettests::{
    GUEST_MAC, Hostile, NS_GUEST_IP, NS_PREFIX, NetNs, frame_stream, netns_available,
    process_alive, udp_frame,
};
use oasis_e2e::{BOOT_TIMEOUT, Guest, Machine, qemu};

/// Hostile frames injected by the robustness test.
const HOSTILE_FRAMES: usize = 100_000;
/// Injection rate ceiling (frames/s); the injector slows down when the TAP drops.
const HOSTILE_RATE: u32 = 4000;
/// The injection must finish within this (keeps the test under two minutes).
const HOSTILE_LIMIT_S: u32 = 90;
/// Seed of the frame generator (`OASIS_NETNS_SEED` overrides, to replay a failure).
const HOSTILE_SEED: u64 = 0x0A51_5EED;

/// QEMU and the namespace tooling, or `None` (skip).
fn setup(tag: &str, programs: &[&str]) -> Option<(NetNs, PathBuf)> {
    let q = qemu()?;
    if !netns_available(programs) {
        return None;
    }
    Some((NetNs::create(tag), q))
}

/// Boots `echo` in `ns` on `machine` with `args` and waits until it is ready.
fn boot(ns: &NetNs, q: PathBuf, machine: Machine, args: &str) -> (Guest, String) {
    let mut v = ns.vm("echo", q);
    v.machine = machine;
    v.append = args.into();
    let mut g = Guest::boot(&v);
    let ready = g.wait_for("ready", BOOT_TIMEOUT);
    (g, ready)
}

fn static_args(extra: &str) -> String {
    format!("--ipv4={NS_GUEST_IP}/{NS_PREFIX} {extra}")
}

#[test]
fn answers_ping_on_a_static_address() {
    let Some((ns, q)) = setup("ping", &["python3"]) else {
        return;
    };
    let (g, ready) = boot(&ns, q, Machine::Microvm, &static_args(""));
    assert!(ready.contains(&format!("{NS_GUEST_IP}:7")), "{ready}");
    let out = ns.helper_ok(&[
        "ping",
        &NS_GUEST_IP.to_string(),
        "6",
        "0",
        "56",
        "1000",
        "1472",
    ]);
    assert_eq!(out.matches("reply from").count(), 6, "{out}");
    assert!(process_alive(g.pid()), "{}", g.text());
}

#[test]
fn leases_an_address_from_dnsmasq() {
    let Some((mut ns, q)) = setup("dhcp", &["python3", "dnsmasq"]) else {
        return;
    };
    let (first, last) = (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 149));
    let leases = ns.start_dnsmasq(first, last);
    // dnsmasq logs its range once it listens; a guest booted earlier would wait
    // for its DHCP retry.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ns.dnsmasq_log().contains("DHCP, IP range") {
        assert!(ns.children_alive(), "dnsmasq exited:\n{}", ns.dnsmasq_log());
        assert!(
            Instant::now() < deadline,
            "dnsmasq not ready:\n{}",
            ns.dnsmasq_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (g, ready) = boot(&ns, q, Machine::Microvm, "");
    // "echo: ready on 10.77.0.1XX:7 (tcp+udp), ..."
    let addr: Ipv4Addr = ready
        .split("ready on ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {ready:?}"));
    assert!(
        (first..=last).contains(&addr),
        "leased {addr}, outside dnsmasq's {first}..={last}:\n{}",
        g.text()
    );
    let mac = GUEST_MAC.map(|b| format!("{b:02x}")).join(":");
    let lease_file = std::fs::read_to_string(&leases).unwrap_or_default();
    assert!(
        lease_file.contains(&format!("{mac} {addr}")),
        "dnsmasq has no lease of {addr} for {mac}: {lease_file:?}\n{}",
        ns.dnsmasq_log()
    );
    let out = ns.helper_ok(&["echo", &addr.to_string(), "7", "4", "65536"]);
    assert!(out.starts_with("ok"), "{out}");
}

fn tcp_echo_static(machine: Machine) {
    let Some((ns, q)) = setup("tcp", &["python3"]) else {
        return;
    };
    let (g, _) = boot(&ns, q, machine, &static_args(""));
    let ip = NS_GUEST_IP.to_string();
    let out = ns.helper_ok(&["echo", &ip, "7", "20", "65536"]);
    assert!(out.starts_with("ok conns=20"), "{out}");
    let out = ns.helper_ok(&["udp", &ip, "7", "0", "1", "512", "1472"]);
    assert!(out.starts_with("ok"), "{out}");
    assert!(process_alive(g.pid()), "{}", g.text());
}

#[test]
fn echoes_tcp_on_a_static_address_on_microvm() {
    tcp_echo_static(Machine::Microvm);
}

#[test]
fn echoes_tcp_on_a_static_address_on_pc() {
    tcp_echo_static(Machine::Pc);
}

/// Parses `KEY N` pairs from the helper's summary line.
fn field(line: &str, key: &str) -> u64 {
    let mut w = line.split_whitespace();
    while let Some(k) = w.next() {
        if k == key
            && let Some(v) = w.next().and_then(|v| v.parse().ok())
        {
            return v;
        }
    }
    panic!("no `{key} N` in {line:?}")
}

#[test]
fn survives_hostile_frames_while_echoing() {
    let Some((ns, q)) = setup("hostile", &["python3"]) else {
        return;
    };
    let t0 = Instant::now();
    // echo:debug logs each accepted connection: the last line we wait for.
    let (mut g, _) = boot(&ns, q, Machine::Microvm, &static_args("-l echo:debug"));
    let ip = NS_GUEST_IP.to_string();

    // A client that echoes random-sized chunks on one connection throughout.
    let mut looper = ns
        .helper(&["echoloop", &ip, "7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the echo loop");
    let mut loop_out = BufReader::new(looper.stdout.take().expect("piped"));
    let mut first = String::new();
    loop_out.read_line(&mut first).expect("echo loop output");
    assert!(first.starts_with("connected"), "echo loop: {first:?}");

    let seed = std::env::var("OASIS_NETNS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(HOSTILE_SEED);
    let frames = Hostile::new(seed, &ns, &[7, 9]).stream(HOSTILE_FRAMES);
    let mut inject = ns
        .helper(&[
            "inject",
            &ns.tap,
            &HOSTILE_RATE.to_string(),
            &HOSTILE_LIMIT_S.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the injector");
    {
        let mut stdin = inject.stdin.take().expect("piped");
        stdin.write_all(&frames).expect("feeding the injector");
    }
    let out = inject.wait_with_output().expect("injector");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "injector (seed {seed}): {summary}\nconsole:\n{}",
        g.text()
    );
    let (sent, dropped) = (field(&summary, "sent"), field(&summary, "dropped"));
    eprintln!("hostile frames (seed {seed}): {}", summary.trim());
    assert!(
        sent >= HOSTILE_FRAMES as u64 * 99 / 100,
        "too few frames sent: {summary}"
    );
    assert!(
        dropped <= sent / 20,
        "the TAP dropped too many frames for the test to mean much: {summary}"
    );

    // The loop must have kept going the whole time, intact.
    drop(looper.stdin.take());
    let status = looper.wait().expect("echo loop");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut loop_out, &mut rest);
    assert!(
        status.success(),
        "echo loop failed during the storm (seed {seed}): {rest}\nconsole:\n{}",
        g.text()
    );
    let rounds = field(&rest, "rounds");
    assert!(rounds >= 10, "echo loop barely ran: {rest}");
    eprintln!("echo loop during the storm: {}", rest.trim());

    // New connections, ICMP and UDP still work afterwards.
    let out = ns.helper_ok(&["echo", &ip, "7", "4", "16384"]);
    let port = out
        .split("ports=")
        .nth(1)
        .and_then(|p| p.trim().split(',').next_back().map(str::to_string))
        .unwrap_or_else(|| panic!("no ports in {out:?}"));
    ns.helper_ok(&["ping", &ip, "2"]);
    // UDP is not checked here: the storm holds datagrams from on-link hosts that
    // never answer ARP, which silences the UDP socket for good (see
    // `udp_echo_survives_a_datagram_from_an_unreachable_peer`).
    // Reading up to the last accept's log line drains the console so far.
    g.wait_for(
        &format!("connection from {}:{port}", ns.host_ip),
        BOOT_TIMEOUT,
    );
    let text = g.text();
    assert!(!text.contains("panicked"), "guest panicked:\n{text}");
    assert!(process_alive(g.pid()), "guest died:\n{text}");
    eprintln!("hostile-frame test took {:.1?}", t0.elapsed());
}

/// One datagram from an on-link address that never answers ARP must not silence
/// UDP for everyone else. (Linux drops packets waiting for a neighbour after ~3 s
/// of unanswered ARP; the helper retries for 10 s.)
#[test]
fn udp_echo_survives_a_datagram_from_an_unreachable_peer() {
    let Some((ns, q)) = setup("udpnbr", &["python3"]) else {
        return;
    };
    let (g, _) = boot(&ns, q, Machine::Microvm, &static_args(""));
    let ip = NS_GUEST_IP.to_string();
    ns.helper_ok(&["udp", &ip, "7", "10"]);
    let ghost = Ipv4Addr::new(10, 77, 0, 50);
    let frame = udp_frame(
        ([0x02, 0, 0, 0, 0, 0x50], ghost, 5555),
        (GUEST_MAC, NS_GUEST_IP, 7),
        b"from a host that is gone",
    );
    let mut inject = ns
        .helper(&["inject", &ns.tap, "100", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the injector");
    inject
        .stdin
        .take()
        .expect("piped")
        .write_all(&frame_stream(&[frame]))
        .expect("feeding the injector");
    let out = inject.wait_with_output().expect("injector");
    assert!(out.status.success(), "{out:?}");
    let after = ns
        .helper(&["udp", &ip, "7", "10", "20"])
        .output()
        .expect("helper");
    assert!(
        after.status.success(),
        "UDP echo is dead after one datagram from {ghost} (no ARP reply): {}\nconsole:\n{}",
        String::from_utf8_lossy(&after.stdout),
        g.text()
    );
    assert!(process_alive(g.pid()), "{}", g.text());
}

/// Hosted `echo` with our own TCP/IP stack over the namespace's TAP device
/// (`--net=tap:NAME`) instead of host sockets: the same source, the same stack as
/// in the VM, no QEMU.
#[test]
fn hosted_echo_runs_our_stack_over_a_tap() {
    if !netns_available(&["python3"]) {
        return;
    }
    let ns = NetNs::create("htap");
    let image = oasis_e2e::image("echo", oasis_e2e::Target::Hosted);
    let mut cmd = ns.command(image.to_str().expect("utf-8 path"));
    cmd.args([
        format!("--net=tap:{}", ns.tap),
        format!("--ipv4={NS_GUEST_IP}/{NS_PREFIX}"),
    ]);
    let mut g = Guest::hosted_command(&mut cmd);
    let ready = g.wait_for("ready", BOOT_TIMEOUT);
    assert!(ready.contains(&format!("{NS_GUEST_IP}:7")), "{ready}");
    let ip = NS_GUEST_IP.to_string();
    let out = ns.helper_ok(&["ping", &ip, "3"]);
    assert_eq!(out.matches("reply from").count(), 3, "{out}");
    let out = ns.helper_ok(&["echo", &ip, "7", "10", "65536"]);
    assert!(out.starts_with("ok conns=10"), "{out}");
    let out = ns.helper_ok(&["udp", &ip, "7", "1", "512"]);
    assert!(out.starts_with("ok"), "{out}");
    assert!(process_alive(g.pid()), "{}", g.text());
}
