//! TCP between two stacks over an in-memory wire: bulk transfer, errors, limits, many
//! connections, close semantics.

mod common;

use std::time::Duration;

use common::*;
use oasis_devices::mem_net::{Faults, MemNet};
use oasis_net::{NetConfig, NetError, TcpStream};
use oasis_runtime::{block_on, sleep, spawn, timeout};

const MIB: usize = 1024 * 1024;

/// Sends `len` pattern bytes from B to A's port 8080; A verifies every byte and
/// answers with the count. Returns virtual seconds taken.
async fn transfer(a: &oasis_net::NetHandle, b: &oasis_net::NetHandle, len: usize) {
    let listener = a.tcp_listen(8080).unwrap();
    let server = spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(B));
        let mut buf = vec![0u8; 32 * 1024];
        let mut got = 0usize;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            for (k, &byte) in buf[..n].iter().enumerate() {
                assert_eq!(byte, pattern(got + k), "byte {} differs", got + k);
            }
            got += n;
        }
        s.write_all(&(got as u64).to_le_bytes()).await.unwrap();
        s.flush().await.unwrap();
        got
    });
    let mut c = b.tcp_connect(sa(A, 8080)).await.unwrap();
    assert_eq!(c.peer_addr(), sa(A, 8080));
    assert_eq!(c.local_addr().ip(), std::net::IpAddr::V4(B));
    assert!(c.local_addr().port() >= 49152);
    let chunk: Vec<u8> = (0..len).map(pattern).collect();
    let mut sent = 0;
    while sent < len {
        let end = (sent + 50_000).min(len);
        c.write_all(&chunk[sent..end]).await.unwrap();
        sent = end;
    }
    c.shutdown().await.unwrap();
    let mut ack = [0u8; 8];
    let mut n = 0;
    while n < 8 {
        let k = c.read(&mut ack[n..]).await.unwrap();
        assert!(k > 0, "server closed early");
        n += k;
    }
    assert_eq!(u64::from_le_bytes(ack) as usize, len);
    assert_eq!(
        c.read(&mut ack).await.unwrap(),
        0,
        "EOF after the server's drop"
    );
    assert_eq!(server.await, len);
}

#[test]
fn ten_mib_transfer_is_exact_and_fast() {
    let p = TestPlatform::new();
    let t = block_on(p, async {
        let (a, b) = two_stacks(p, static_config(A), static_config(B));
        transfer(&a, &b, 10 * MIB).await;
        // ~7200 data segments; the receiver's ACKs are coalesced per poll.
        assert!(a.stats().frames.rx_frames >= 7180);
        assert!(a.stats().frames.tx_frames < 2000, "{:?}", a.stats().frames);
        // A lossless wire: nothing is sent twice (tcpstats counts from the frames).
        let tcp = b.stats().frames.tcp;
        assert!(tcp.segments_sent >= 7180, "{tcp:?}");
        assert_eq!(tcp.retransmits, 0, "{tcp:?}");
        assert_eq!(a.stats().frames.tcp.retransmits, 0);
        secs(p)
    });
    // On a lossless wire the only waits are timers: no delayed-ACK stalls.
    assert!(t < 1.0, "10 MiB took {t} virtual seconds");
}

/// `rounds` request/response exchanges of 100 bytes each way from B to A's port
/// 8081 (A echoes); returns the frames A sent.
async fn ping_pong(a: &oasis_net::NetHandle, b: &oasis_net::NetHandle, rounds: usize) -> u64 {
    let listener = a.tcp_listen(8081).unwrap();
    let server = spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 100];
        for _ in 0..rounds {
            let mut n = 0;
            while n < buf.len() {
                let k = s.read(&mut buf[n..]).await.unwrap();
                assert!(k > 0, "client closed early");
                n += k;
            }
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
        }
    });
    let mut c = b.tcp_connect(sa(A, 8081)).await.unwrap();
    // Let the handshake's last ACK settle before counting.
    sleep(Duration::from_millis(20)).await;
    let before = a.stats().frames.tx_frames;
    for r in 0..rounds {
        let req = [r as u8; 100];
        c.write_all(&req).await.unwrap();
        c.flush().await.unwrap();
        let mut got = [0u8; 100];
        let mut n = 0;
        while n < got.len() {
            let k = c.read(&mut got[n..]).await.unwrap();
            assert!(k > 0, "server closed early");
            n += k;
        }
        assert_eq!(got, req, "round {r}");
    }
    let sent = a.stats().frames.tx_frames - before;
    drop(c);
    server.await;
    sent
}

/// With a delayed ACK (`ack_delay`, `--tcp-ack-delay-ms`, on by default) the
/// server's ACK of a request rides on its reply: about one frame per exchange instead
/// of two (a pure ACK, then the reply), and a bulk transfer still runs without stalls.
#[test]
fn delayed_acks_ride_on_replies_and_do_not_stall_transfers() {
    let frames = |delay: Option<Duration>| {
        let p = TestPlatform::new();
        block_on(p, async move {
            let mut ca = static_config(A);
            let mut cb = static_config(B);
            ca.ack_delay = delay;
            cb.ack_delay = delay;
            let (a, b) = two_stacks(p, ca, cb);
            ping_pong(&a, &b, 50).await
        })
    };
    let immediate = frames(None);
    let default = NetConfig::default().ack_delay;
    assert_eq!(default, Some(oasis_net::DEFAULT_ACK_DELAY));
    let delayed = frames(default);
    eprintln!("frames: immediate {immediate}, delayed {delayed}");
    assert!(
        immediate >= 95,
        "50 exchanges, ACK then reply: {immediate} frames"
    );
    assert!(
        delayed <= 60,
        "50 exchanges, ACK on the reply: {delayed} frames"
    );
    let p = TestPlatform::new();
    let t = block_on(p, async {
        let mut ca = static_config(A);
        let mut cb = static_config(B);
        ca.ack_delay = Some(Duration::from_millis(1));
        cb.ack_delay = Some(Duration::from_millis(1));
        let (a, b) = two_stacks(p, ca, cb);
        transfer(&a, &b, 4 * MIB).await;
        secs(p)
    });
    assert!(
        t < 1.0,
        "4 MiB with 1 ms delayed ACKs took {t} virtual seconds"
    );
}

#[test]
fn transfer_survives_loss_and_corruption() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (mut da, mut db) = MemNet::pair();
        let faults = |seed| Faults {
            drop_per_million: 20_000,
            corrupt_per_million: 10_000,
            seed,
        };
        da.set_faults(faults(7));
        db.set_faults(faults(8));
        p.watch(da.link());
        let (a, b) = (
            install(da, static_config(A), 1),
            install(db, static_config(B), 2),
        );
        transfer(&a, &b, MIB).await;
        // 2% of B's ~720 data segments were dropped and 1% corrupted (then dropped by
        // A's checksum): B must have sent some again, and each loss costs at most a
        // few retransmissions (go-back-N resends what followed the loss too).
        let tcp = b.stats().frames.tcp;
        assert!(tcp.retransmits >= 5, "{tcp:?}");
        assert!(tcp.retransmits < tcp.segments_sent / 2, "{tcp:?}");
        assert_eq!((tcp.resets_sent, tcp.resets_received), (0, 0), "{tcp:?}");
    });
}

#[test]
fn embedded_io_traits_echo() {
    use embedded_io_async::{Read, Write};
    async fn echo_once<S: Read + Write>(s: &mut S) -> Result<usize, S::Error> {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await?;
        s.write_all(&buf[..n]).await?;
        s.flush().await?;
        Ok(n)
    }
    let p = TestPlatform::new();
    block_on(p, async {
        // A counts no TCP statistics (the facade's default without metrics).
        let quiet = NetConfig {
            tcp_stats: false,
            ..static_config(A)
        };
        let (a, b) = two_stacks(p, quiet, static_config(B));
        let l = a.tcp_listen(7).unwrap();
        assert_eq!(l.local_addr(), sa(A, 7));
        let server = spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            echo_once(&mut s).await.unwrap()
        });
        let mut c = b.tcp_connect(sa(A, 7)).await.unwrap();
        c.set_nodelay(true);
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        Read::read_exact(&mut c, &mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(server.await, 5);
        assert_eq!(a.stats().frames.tcp, Default::default());
        assert!(b.stats().frames.tcp.segments_sent >= 3, "{:?}", b.stats());
    });
}

#[test]
fn closed_port_refuses_and_silent_host_times_out() {
    let p = TestPlatform::new();
    block_on(p, async {
        let cfg = NetConfig {
            connect_timeout: Duration::from_secs(3),
            ..static_config(B)
        };
        let (_a, b) = two_stacks(p, static_config(A), cfg);
        let t0 = secs(p);
        assert_eq!(
            b.tcp_connect(sa(A, 9)).await.unwrap_err(),
            NetError::ConnectionRefused
        );
        assert!(secs(p) - t0 < 0.5, "refusal took {}s", secs(p) - t0);
        assert_eq!(b.stats().frames.tcp.resets_received, 1, "{:?}", b.stats());
        // Nobody owns 10.0.0.99: ARP goes unanswered until the connect timeout.
        let t0 = secs(p);
        assert_eq!(
            b.tcp_connect(sa("10.0.0.99".parse().unwrap(), 80))
                .await
                .unwrap_err(),
            NetError::TimedOut
        );
        assert!(
            (3.0..4.0).contains(&(secs(p) - t0)),
            "timeout after {}s",
            secs(p) - t0
        );
        sleep(Duration::from_millis(1)).await; // the poller frees retired sockets
        assert_eq!(b.stats().tcp_connections, 0, "failed connects are freed");
        assert!(matches!(
            b.tcp_connect(sa(A, 0)).await,
            Err(NetError::Unaddressable(_))
        ));
    });
}

#[test]
fn ports_in_use_are_refused() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, _b) = two_stacks(p, static_config(A), static_config(B));
        let l = a.tcp_listen(80).unwrap();
        assert_eq!(a.tcp_listen(80).unwrap_err(), NetError::AddressInUse(80));
        drop(l);
        let _l = a.tcp_listen(80).unwrap();
        let eph = a.tcp_listen(0).unwrap();
        assert!(eph.local_addr().port() >= 49152);
        let u = a.udp_bind(53).unwrap();
        assert_eq!(a.udp_bind(53).unwrap_err(), NetError::AddressInUse(53));
        drop(u);
        sleep(Duration::from_millis(1)).await; // the poller frees the port
        a.udp_bind(53).unwrap();
    });
}

#[test]
fn drop_delivers_data_then_eof_and_abort_resets() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b) = two_stacks(p, static_config(A), static_config(B));
        let l = a.tcp_listen(80).unwrap();
        let server = spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(&[42; 100_000]).await.unwrap();
            drop(s); // graceful: the data and a FIN still go out
            let (s2, _) = l.accept().await.unwrap();
            s2.abort();
        });
        let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
        let mut total = 0;
        let mut buf = [0u8; 4096];
        loop {
            let n = c.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&x| x == 42));
            total += n;
        }
        assert_eq!(total, 100_000);
        let mut c2 = b.tcp_connect(sa(A, 80)).await.unwrap();
        server.await;
        assert_eq!(
            c2.read(&mut buf).await.unwrap_err(),
            NetError::ConnectionReset
        );
        assert_eq!(c2.write(b"x").await.unwrap_err(), NetError::ConnectionReset);
        // The abort's RST, counted on both sides.
        assert_eq!(a.stats().frames.tcp.resets_sent, 1, "{:?}", a.stats());
        assert_eq!(b.stats().frames.tcp.resets_received, 1, "{:?}", b.stats());
        drop((c, c2));
        sleep(Duration::from_secs(1)).await;
        assert_eq!(
            a.stats().tcp_connections,
            0,
            "server sockets freed: {:?}",
            a.stats()
        );
        assert_eq!(
            b.stats().tcp_connections,
            0,
            "client sockets freed: {:?}",
            b.stats()
        );
    });
}

#[test]
fn shutdown_half_closes_and_write_after_it_fails() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b) = two_stacks(p, static_config(A), static_config(B));
        let l = a.tcp_listen(80).unwrap();
        let server = spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0, "client's FIN");
            s.write_all(b"bye").await.unwrap();
        });
        let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(c.write(b"late").await.unwrap_err(), NetError::InvalidState);
        let mut buf = [0u8; 3];
        embedded_io_async::Read::read_exact(&mut c, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"bye");
        server.await;
    });
}

/// Echoes every connection of `l` until the listener's task is dropped.
fn echo_server(l: oasis_net::TcpListener) -> oasis_runtime::JoinHandle<()> {
    spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            spawn(async move {
                let mut buf = [0u8; 512];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    })
}

async fn echo(c: &mut TcpStream, msg: &[u8]) -> Result<(), NetError> {
    c.write_all(msg).await?;
    let mut got = vec![0u8; msg.len()];
    let mut n = 0;
    while n < msg.len() {
        let k = c.read(&mut got[n..]).await?;
        if k == 0 {
            return Err(NetError::ConnectionReset);
        }
        n += k;
    }
    assert_eq!(got, msg);
    Ok(())
}

/// `n` connections from `b` to A's echo port, each checked with one `len`-byte echo.
async fn echo_clients(b: &oasis_net::NetHandle, n: u8, len: usize) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for i in 0..n {
        let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
        echo(&mut c, &vec![i; len]).await.unwrap();
        conns.push(c);
    }
    conns
}

/// The heap reserve of [`reserved_echo_server`]'s server.
const RESERVE: usize = 10 * MIB;

/// A's echo server on port 80 with a 10 MiB heap reserve, 100 MiB of simulated heap
/// free, and B; returns both stacks and the echo task (keep it alive).
fn reserved_echo_server(
    p: &TestPlatform,
) -> (
    oasis_net::NetHandle,
    oasis_net::NetHandle,
    oasis_runtime::JoinHandle<()>,
) {
    p.set_heap_free(100 * MIB);
    let server_cfg = NetConfig {
        heap_reserve: RESERVE,
        ..static_config(A)
    };
    let (a, b) = two_stacks(p, server_cfg, static_config(B));
    let server = echo_server(a.tcp_listen(80).unwrap());
    (a, b, server)
}

#[test]
fn memory_admission_refuses_at_the_reserve_and_recovers() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b, _server) = reserved_echo_server(p);
        let mut conns = echo_clients(&b, 3, 100).await;
        assert_eq!(a.stats().tcp_evicted, 0, "no pressure, no eviction");
        // The heap fills up to the server's reserve: the LISTEN sockets already built
        // (with their buffers) still take connections, then SYNs get RST.
        p.set_heap_free(RESERVE + 1000);
        let mut refused = 0;
        for i in 0..6u8 {
            match b.tcp_connect(sa(A, 80)).await {
                Ok(mut c) => {
                    echo(&mut c, &[i; 100]).await.unwrap();
                    conns.push(c);
                }
                Err(e) => {
                    assert_eq!(e, NetError::ConnectionRefused);
                    refused += 1;
                }
            }
        }
        assert_eq!(
            refused,
            6 - oasis_net::stack::LISTEN_SPARE,
            "spares, then RST: {:?}",
            a.stats()
        );
        assert_eq!(a.stats().tcp_refused, refused as u64);
        assert_eq!(a.stats().tcp_listening, 0);
        // Memory comes back: connections are admitted again.
        p.set_heap_free(100 * MIB);
        sleep(Duration::from_millis(10)).await;
        let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
        echo(&mut c, b"again").await.unwrap();
    });
}

#[test]
fn idle_connections_make_room_under_pressure_oldest_first() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b, _server) = reserved_echo_server(p);
        let cost = static_config(A).min_connection_cost();
        let mut idle = echo_clients(&b, 20, 10).await;
        // Memory gets short, though not exhausted: the oldest idle ones are reset.
        let t0 = secs(p);
        p.set_heap_free(RESERVE + 20 * cost);
        sleep(Duration::from_millis(100)).await;
        assert!(secs(p) - t0 < 0.2);
        assert_eq!(
            a.stats().tcp_evicted,
            0,
            "connections younger than 250 ms are spared (time to send a request)"
        );
        sleep(Duration::from_millis(300)).await;
        let evicted = a.stats().tcp_evicted;
        assert!((8..=20).contains(&evicted), "evicted {evicted}");
        let mut buf = [0u8; 4];
        let first = timeout(Duration::from_secs(1), idle[0].read(&mut buf)).await;
        assert!(
            matches!(first, Ok(Err(NetError::ConnectionReset)) | Ok(Ok(0))),
            "the oldest was reset: {first:?}"
        );
        // A new client is admitted while the pressure lasts.
        let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
        echo(&mut c, b"served").await.unwrap();
    });
}

#[test]
fn silent_half_open_connections_are_dropped_after_the_handshake_timeout() {
    let p = TestPlatform::new();
    block_on(p, async {
        let server_cfg = NetConfig {
            handshake_timeout: Duration::from_secs(2),
            ..static_config(A)
        };
        let (a, b) = two_stacks(p, server_cfg, static_config(B));
        // Accepted by the stack, never by the application, and the client says nothing.
        let _l = a.tcp_listen(80).unwrap();
        let c = b.tcp_connect(sa(A, 80)).await.unwrap();
        assert_eq!(a.stats().tcp_connections, 1);
        sleep(Duration::from_secs(5)).await;
        assert_eq!(a.stats().tcp_connections, 0, "freed after the timeout");
        drop(c);
    });
}

#[test]
fn listener_refuses_beyond_max_connections_and_others_keep_working() {
    let p = TestPlatform::new();
    block_on(p, async {
        let server_cfg = NetConfig {
            max_connections: 4,
            ..static_config(A)
        };
        let (a, b) = two_stacks(p, server_cfg, static_config(B));
        let _server = echo_server(a.tcp_listen(80).unwrap());
        let mut conns = echo_clients(&b, 4, 10).await;
        assert_eq!(a.stats().tcp_connections, 4);
        assert_eq!(a.stats().tcp_listening, 0, "no LISTEN socket at the limit");
        for _ in 0..3 {
            assert_eq!(
                b.tcp_connect(sa(A, 80)).await.unwrap_err(),
                NetError::ConnectionRefused
            );
        }
        assert_eq!(
            a.tcp_listen(81).map(|l| l.local_addr().port()),
            Ok(81),
            "listening itself still works"
        );
        for (i, c) in conns.iter_mut().enumerate() {
            echo(c, &[i as u8 + 100; 1000]).await.unwrap();
        }
        // Closing one frees a slot once the close completes.
        drop(conns.pop());
        sleep(Duration::from_millis(100)).await;
        let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
        echo(&mut c, b"again").await.unwrap();
        for c in conns.iter_mut() {
            echo(c, b"still here").await.unwrap();
        }
    });
}

#[test]
fn thousand_concurrent_connections() {
    const N: usize = 1000;
    let p = TestPlatform::new();
    block_on(p, async {
        // 2 KiB buffers: 1000 connections cost ~4 MiB per stack.
        let small = |addr| NetConfig {
            tcp_rx_buffer: 2048,
            tcp_tx_buffer: 2048,
            max_connections: N + 10,
            backlog: N,
            ..static_config(addr)
        };
        let (a, b) = two_stacks(p, small(A), small(B));
        let _server = echo_server(a.tcp_listen(80).unwrap());
        let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..N)
            .map(|i| {
                let b = b.clone();
                let open = open.clone();
                let release = release.clone();
                spawn(async move {
                    let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
                    let msg = (i as u32).to_le_bytes();
                    echo(&mut c, &msg).await.unwrap();
                    open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    while !release.load(std::sync::atomic::Ordering::SeqCst) {
                        sleep(Duration::from_millis(50)).await;
                    }
                    echo(&mut c, &msg).await.unwrap();
                })
            })
            .collect();
        timeout(Duration::from_secs(120), async {
            while open.load(std::sync::atomic::Ordering::SeqCst) < N {
                sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("all connections open");
        assert_eq!(a.stats().tcp_connections, N);
        assert_eq!(b.stats().tcp_connections, N);
        release.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in clients {
            c.await;
        }
        sleep(Duration::from_secs(1)).await;
        assert_eq!(b.stats().tcp_connections, 0);
        assert_eq!(a.stats().tcp_connections, 0);
    });
}

#[test]
fn idle_stacks_do_not_spin() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b) = two_stacks(p, static_config(A), static_config(B));
        let _l = a.tcp_listen(80).unwrap();
        let mut c = b.tcp_connect(sa(A, 80)).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let before = p.sleeps();
        let t0 = secs(p);
        sleep(Duration::from_secs(60)).await;
        assert!(secs(p) - t0 >= 60.0);
        let wakeups = p.sleeps() - before;
        assert!(wakeups < 20, "{wakeups} wake-ups in an idle minute");
    });
}
