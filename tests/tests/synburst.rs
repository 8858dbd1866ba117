//! A burst of 200 TCP connections to `echo` right after its `ready` line, over QEMU
//! user networking (host ports forwarded from 127.0.0.1) and over a TAP in a network
//! namespace the test creates. Each client sends a distinct payload and checks the
//! echo byte for byte; all must succeed.
//!
//! QEMU records the guest's side of the wire (`filter-dump`), and the test checks it
//! too: the guest resolved its gateway's MAC before any SYN arrived, answered every
//! SYN with a SYN-ACK, and sent no RST.
//!
//! Over user networking the host side is not ours: slirp listens on a forwarded port
//! with a backlog of 1, so a burst overflows the host kernel's accept queue (`nstat`:
//! `TcpExtListenOverflows`) and some clients see their SYN dropped or their cookie
//! connection stall. Those clients retry with a fresh connection after a short
//! timeout; the guest-side checks above still hold for every connection slirp made.
//! Over the TAP nothing sits in between: every client must succeed at its first try.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use oasis_e2e::nettests::{NS_GUEST_IP, NS_HOST_IP, NS_PREFIX, NetNs, free_port, netns_available};
use oasis_e2e::{BOOT_TIMEOUT, Guest, Net, PortForward, qemu, vm};

/// Clients in the burst.
const CLIENTS: usize = 200;
/// Per-attempt limit over user networking before a client tries again.
const USER_ATTEMPT_S: f64 = 3.0;
/// Attempts per client over user networking (see the module docs).
const USER_ATTEMPTS: u32 = 8;
/// Per-client limit over the TAP (one attempt): generous for TCG on a busy machine.
const TAP_ATTEMPT_S: f64 = 20.0;

/// `python3 - HOST PORT CLIENTS ATTEMPT_S ATTEMPTS`: starts every client at once;
/// each sends its own payload and reads it back, retrying a failed attempt (a reset
/// or a stall) up to ATTEMPTS times. A wrong echo is never retried. Prints one
/// `fail`/`wrong` line per bad client and a summary; exits non-zero unless all
/// succeeded.
const BURST_PY: &str = r#"
import socket, sys, threading, time
host, port, n, limit, attempts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
res = [None] * n
go = threading.Event()
def client(i):
    data = (b"client %04d says hello " % i) * (1 + i % 7)
    go.wait()
    t0 = time.time()
    err = None
    for a in range(1, attempts + 1):
        try:
            s = socket.create_connection((host, port), timeout=limit)
            s.settimeout(limit)
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                c = s.recv(65536)
                if not c:
                    raise OSError("closed after %d bytes" % len(got))
                got += c
            s.close()
            if got != data:
                res[i] = ("wrong", a, time.time() - t0, repr(got[:40]))
                return
            res[i] = ("ok", a, time.time() - t0, "")
            return
        except OSError as e:
            err = repr(e)
            time.sleep(0.05 * (i % 10))
    res[i] = ("fail", attempts, time.time() - t0, err)
ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
for t in ts: t.start()
go.set()
for t in ts: t.join()
lat = sorted(r[2] for r in res)
for i, r in enumerate(res):
    if r[0] != "ok": print(r[0], i, r)
ok = sum(r[0] == "ok" for r in res)
print("clients %d ok %d retried %d over100ms %d p50 %.0fms max %.0fms" % (n, ok,
      sum(r[1] > 1 for r in res), sum(x > 0.1 for x in lat), lat[n // 2] * 1000, lat[-1] * 1000))
sys.exit(0 if ok == n else 1)
"#;

/// Runs [`BURST_PY`] through `cmd` (`python3` here or in a namespace); returns its
/// summary line, or panics with its output.
fn run_burst(
    mut cmd: Command,
    host: Ipv4Addr,
    port: u16,
    limit: f64,
    attempts: u32,
    g: &Guest,
) -> String {
    cmd.args(["-c", BURST_PY, &host.to_string(), &port.to_string()])
        .args([CLIENTS.to_string(), limit.to_string(), attempts.to_string()]);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "burst failed:\n{text}\nconsole:\n{}",
        g.text()
    );
    text.lines().last().unwrap_or_default().to_string()
}

/// A QEMU wrapper that adds a `filter-dump` of `net0` to `pcap`.
fn dumping_qemu(qemu: &Path, dir: &Path, pcap: &Path) -> PathBuf {
    let wrapper = dir.join("qemu-dump");
    let script = format!(
        "#!/bin/sh\nexec '{}' \"$@\" -object filter-dump,id=dump0,netdev=net0,file='{}'\n",
        qemu.display(),
        pcap.display()
    );
    std::fs::write(&wrapper, script).unwrap_or_else(|e| panic!("writing {wrapper:?}: {e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {wrapper:?}: {e}"));
    wrapper
}

/// What the guest did on the wire, from a pcap of its NIC.
#[derive(Debug, Default)]
struct Wire {
    /// Connection requests the guest received (distinct SYNs by peer port).
    syns: usize,
    /// Of those, how many the guest answered with a SYN-ACK.
    answered: usize,
    /// RSTs the guest sent.
    rsts: usize,
    /// ARP requests the guest sent after the first SYN reached it.
    arp_after_first_syn: usize,
}

fn parse_pcap(bytes: &[u8], guest: Ipv4Addr) -> Wire {
    use std::collections::BTreeSet;
    let mut w = Wire::default();
    let (mut syns, mut answered) = (BTreeSet::new(), BTreeSet::new());
    let mut at = 24; // global header
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let f = &bytes[at + 16..(at + 16 + caplen).min(bytes.len())];
        at += 16 + caplen;
        // On a TAP netdev QEMU dumps frames behind their virtio-net header (10 bytes
        // one way, 12 the other): find the Ethernet header by its ethertype.
        let known = |o: usize| {
            f.get(o + 12..o + 14).is_some_and(|t| {
                matches!(u16::from_be_bytes([t[0], t[1]]), 0x0800 | 0x0806 | 0x86dd)
            })
        };
        let Some(f) = [0, 12, 10].into_iter().find(|&o| known(o)).map(|o| &f[o..]) else {
            continue;
        };
        if f.len() < 14 {
            continue;
        }
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        let ip = &f[14..];
        if ethertype == 0x0806 && ip.len() >= 28 {
            let op = u16::from_be_bytes([ip[6], ip[7]]);
            if op == 1 && ip[14..18] == guest.octets() && !syns.is_empty() {
                w.arp_after_first_syn += 1;
            }
            continue;
        }
        if ethertype != 0x0800 || ip.len() < 20 || ip[9] != 6 {
            continue;
        }
        let ihl = usize::from(ip[0] & 15) * 4;
        let Some(tcp) = ip.get(ihl..ihl + 14) else {
            continue;
        };
        let from_guest = ip[12..16] == guest.octets();
        let (sport, dport) = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        let flags = tcp[13];
        let (syn, ack, rst) = (flags & 2 != 0, flags & 16 != 0, flags & 4 != 0);
        if from_guest {
            if rst {
                w.rsts += 1;
            }
            if syn && ack {
                answered.insert(dport);
            }
        } else if syn && !ack {
            syns.insert(sport);
        }
    }
    w.syns = syns.len();
    w.answered = syns.intersection(&answered).count();
    w
}

fn check_wire(pcap: &Path, guest: Ipv4Addr, console: &str) -> Wire {
    let bytes = std::fs::read(pcap).unwrap_or_else(|e| panic!("reading {pcap:?}: {e}"));
    let w = parse_pcap(&bytes, guest);
    eprintln!("guest wire: {w:?}");
    assert!(w.syns > 0, "no SYN reached the guest\nconsole:\n{console}");
    assert_eq!(w.answered, w.syns, "unanswered SYNs\nconsole:\n{console}");
    assert_eq!(
        w.rsts, 0,
        "the guest reset connections\nconsole:\n{console}"
    );
    assert_eq!(
        w.arp_after_first_syn, 0,
        "the guest still had to ARP after the burst began\nconsole:\n{console}"
    );
    w
}

/// The two bursts run one at a time: each writes a QEMU wrapper script and executes
/// it, and a fork in the other test's thread while the script is still open for
/// writing makes the exec fail with ETXTBSY ("Text file busy"). One at a time also
/// keeps the bursts from competing for the two CPUs.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn synburst_over_user_networking() {
    let _one = one_at_a_time();
    let Some(q) = qemu() else { return };
    let dir = std::env::temp_dir().join(format!("oasis-synburst-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("user.pcap");
    let port = free_port();
    let mut v = vm("echo", dumping_qemu(&q, &dir, &pcap));
    v.net = Net::User;
    v.ports = vec![PortForward {
        host: port,
        guest: 7,
    }];
    let mut g = Guest::boot(&v);
    g.wait_for("ready", BOOT_TIMEOUT);
    let t = Instant::now();
    let summary = run_burst(
        Command::new("python3"),
        Ipv4Addr::LOCALHOST,
        port,
        USER_ATTEMPT_S,
        USER_ATTEMPTS,
        &g,
    );
    eprintln!("user networking: {summary} ({:.2?})", t.elapsed());
    let console = g.text();
    drop(g); // QEMU ends: the dump is complete
    check_wire(&pcap, Ipv4Addr::new(10, 0, 2, 15), &console);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn synburst_over_a_tap_in_a_namespace() {
    let _one = one_at_a_time();
    let Some(q) = qemu() else { return };
    if !netns_available(&["python3"]) {
        return;
    }
    let ns = NetNs::create("synburst");
    let dir = std::env::temp_dir().join(format!("oasis-synburst-tap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("tap.pcap");
    let mut v = ns.vm("echo", q);
    // ns.vm's wrapper runs QEMU in the namespace; ours adds the dump around it.
    v.qemu = dumping_qemu(&v.qemu, &dir, &pcap);
    v.append = format!("--ipv4={NS_GUEST_IP}/{NS_PREFIX} --ipv4-gateway={NS_HOST_IP}");
    let mut g = Guest::boot(&v);
    g.wait_for("ready", BOOT_TIMEOUT);
    let t = Instant::now();
    let summary = run_burst(ns.command("python3"), NS_GUEST_IP, 7, TAP_ATTEMPT_S, 1, &g);
    eprintln!("TAP: {summary} ({:.2?})", t.elapsed());
    let console = g.text();
    drop(g);
    check_wire(&pcap, NS_GUEST_IP, &console);
    let _ = std::fs::remove_dir_all(&dir);
}
