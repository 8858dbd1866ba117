//! `echo` end to end over QEMU user networking (microvm and pc, host ports forwarded
//! from 127.0.0.1) and hosted (host sockets on 127.0.0.1): 100 concurrent TCP clients
//! echo 64 KiB each byte for byte while others connect and leave at once, UDP
//! datagrams come back intact, and the discard port swallows a stream.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use oasis_e2e::nettests::{
    Connect, free_port, process_alive, tcp_discard, tcp_echo, tcp_echo_many, udp_echo,
};
use oasis_e2e::{BOOT_TIMEOUT, Guest, Machine, Net, PortForward, qemu, vm};

const CLIENTS: usize = 100;
const BYTES: usize = 64 * 1024;
/// Clients that connect and close at once while the 100 run.
const QUITTERS: usize = 30;
/// Per-operation limit for clients (TCG on a loaded 2-core machine is slow).
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Datagram sizes: empty, tiny, typical, and the largest one unfragmented Ethernet
/// frame carries (our stack does not reassemble IP fragments: see oasis-net's docs).
const UDP_SIZES: &[usize] = &[0, 1, 7, 512, 1472, 100];

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Everything the echo appliance promises, against its echo and discard ports.
fn exercise(g: &Guest, echo: SocketAddr, discard: SocketAddr, connect: Connect) {
    let t = Instant::now();
    tcp_echo_many(echo, CLIENTS, BYTES, QUITTERS, connect, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\nconsole:\n{}", g.text()));
    eprintln!(
        "{CLIENTS} clients x {} KiB echoed (+{QUITTERS} quitters) in {:.2?}",
        BYTES / 1024,
        t.elapsed()
    );
    // Quitters one after another, then a client: the server is still well.
    for i in 0..6 {
        oasis_e2e::nettests::connect_and_close(echo, i, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("quitter {i}: {e}"));
    }
    tcp_echo(echo, b"still there?", IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("after quitters: {e}\nconsole:\n{}", g.text()));
    udp_echo(echo, UDP_SIZES).unwrap_or_else(|e| panic!("UDP: {e}\nconsole:\n{}", g.text()));
    tcp_discard(discard, 1 << 20, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("discard: {e}\nconsole:\n{}", g.text()));
    assert!(process_alive(g.pid()), "guest died:\n{}", g.text());
}

fn user_net(machine: Machine) {
    let Some(q) = qemu() else { return };
    let (echo_port, discard_port) = (free_port(), free_port());
    let mut v = vm("echo", q);
    v.machine = machine;
    v.net = Net::User;
    v.ports = vec![
        PortForward {
            host: echo_port,
            guest: 7,
        },
        PortForward {
            host: discard_port,
            guest: 9,
        },
    ];
    let mut g = Guest::boot(&v);
    let ready = g.wait_for("ready", BOOT_TIMEOUT);
    assert!(
        ready.contains("10.0.2.15:7"),
        "slirp's DHCP address: {ready}"
    );
    // Slirp listens with a backlog of 1 (see `Connect::OneByOne`).
    exercise(&g, local(echo_port), local(discard_port), Connect::OneByOne);
    assert!(
        !g.text().contains("panicked"),
        "guest panicked:\n{}",
        g.text()
    );
}

#[test]
fn echoes_over_user_networking_on_microvm() {
    user_net(Machine::Microvm);
}

#[test]
fn echoes_over_user_networking_on_pc() {
    user_net(Machine::Pc);
}

#[test]
fn hosted_echo_answers_on_loopback() {
    let (echo_port, discard_port) = (free_port(), free_port());
    let mut g = Guest::hosted(
        "echo",
        &[
            &format!("--port={echo_port}"),
            &format!("--discard-port={discard_port}"),
        ],
    );
    let ready = g.wait_for("ready", BOOT_TIMEOUT);
    assert!(
        ready.contains(&format!("127.0.0.1:{echo_port}")),
        "hosted binds loopback: {ready}"
    );
    exercise(&g, local(echo_port), local(discard_port), Connect::Together);
}

/// Network limits that cannot fit the heap are refused at boot with exit 64 and a
/// message naming the argument, not discovered under load.
#[test]
fn limits_that_cannot_fit_the_heap_exit_64() {
    for (args, needle) in [
        (
            "--tcp-max-connections=100000",
            "--tcp-max-connections=100000",
        ),
        ("--tcp-buffer=16777216", "--tcp-buffer=16777216"),
        // Not a heap limit, but the same contract: a delayed ACK past RFC 9293's
        // half second is refused at boot.
        (
            "--tcp-ack-delay-ms=501",
            "--tcp-ack-delay-ms=501: at most 500",
        ),
    ] {
        let Some(q) = qemu() else { return };
        let mut v = vm("echo", q);
        v.mem_mib = 8;
        v.net = Net::User;
        v.append = args.into();
        let mut g = Guest::boot(&v);
        assert_eq!(
            g.wait_exit(BOOT_TIMEOUT),
            oasis_e2e::GuestExit::Status(64),
            "{args}:\n{}",
            g.text()
        );
        assert!(
            g.text().contains(needle),
            "{args}: no {needle:?} in\n{}",
            g.text()
        );
    }
}
