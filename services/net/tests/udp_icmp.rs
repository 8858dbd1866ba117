//! UDP round trips, ICMP echo (answered by smoltcp itself), and configuration errors.

mod common;

use std::time::Duration;

use common::*;
use oasis_net::{NetConfig, NetError};
use oasis_runtime::{block_on, spawn};

#[test]
fn udp_round_trip_and_limits() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b) = two_stacks(p, static_config(A), static_config(B));
        let server = a.udp_bind(5353).unwrap();
        assert_eq!(server.local_addr(), sa(A, 5353));
        let task = spawn(async move {
            let mut buf = [0u8; 1500];
            for _ in 0..3 {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let reply: Vec<u8> = buf[..n].iter().rev().copied().collect();
                server.send_to(&reply, from).await.unwrap();
            }
            // A datagram larger than the buffer is dropped with its size.
            let mut small = [0u8; 8];
            assert_eq!(
                server.recv_from(&mut small).await.unwrap_err(),
                NetError::BufferTooSmall {
                    needed: 100,
                    capacity: 8
                }
            );
        });
        let client = b.udp_bind(0).unwrap();
        let port = client.local_addr().port();
        assert!(port >= 49152);
        for msg in [&b"ping"[..], &[7u8; 1472][..], b"x"] {
            client.send_to(msg, sa(A, 5353)).await.unwrap();
            let mut buf = [0u8; 2000];
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, sa(A, 5353));
            let expect: Vec<u8> = msg.iter().rev().copied().collect();
            assert_eq!(&buf[..n], &expect[..]);
        }
        client.send_to(&[1; 100], sa(A, 5353)).await.unwrap();
        task.await;
        assert_eq!(
            client.send_to(&[0; 1473], sa(A, 5353)).await.unwrap_err(),
            NetError::BufferTooSmall {
                needed: 1473,
                capacity: 1472
            }
        );
        assert!(matches!(
            client.send_to(b"x", sa(A, 0)).await,
            Err(NetError::Unaddressable(_))
        ));
    });
}

#[test]
fn icmp_echo_is_answered_by_the_stack() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b) = two_stacks(p, static_config(A), static_config(B));
        let rtt = b.ping(A, 56, Duration::from_secs(1)).await.unwrap();
        assert!(rtt < Duration::from_millis(10), "rtt {rtt:?}");
        // A large payload comes back through the adapter's reply path too.
        a.ping(B, 1400, Duration::from_secs(1)).await.unwrap();
        let t0 = secs(p);
        assert_eq!(
            b.ping("10.0.0.77".parse().unwrap(), 8, Duration::from_secs(2))
                .await,
            Err(NetError::TimedOut)
        );
        assert!((secs(p) - t0 - 2.0).abs() < 0.01);
    });
}

#[test]
fn unconfigured_stack_reports_not_configured() {
    let p = TestPlatform::new();
    block_on(p, async {
        // DHCP on, but nobody answers.
        let (_a, b) = two_stacks(p, static_config(A), NetConfig::default());
        assert_eq!(b.ipv4(), None);
        assert_eq!(
            b.tcp_connect(sa(A, 80)).await.unwrap_err(),
            NetError::NotConfigured
        );
        let u = b.udp_bind(68_00).unwrap();
        assert_eq!(
            u.send_to(b"x", sa(A, 9)).await.unwrap_err(),
            NetError::NotConfigured
        );
        assert_eq!(
            b.ping(A, 8, Duration::from_secs(1)).await,
            Err(NetError::NotConfigured)
        );
        // Listening needs no address.
        assert!(b.tcp_listen(80).is_ok());
        assert!(
            oasis_runtime::timeout(Duration::from_secs(5), b.wait_configured())
                .await
                .is_err()
        );
    });
}

#[test]
fn invalid_config_is_rejected() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (da, _db) = oasis_devices::mem_net::MemNet::pair();
        let cfg = NetConfig::static_ipv4("10.0.0.0/24".parse().unwrap(), None);
        let e = oasis_net::Stack::install(da, cfg, 0, oasis_runtime::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid network configuration: 10.0.0.0/24 cannot be used as this host's IPv4 address"
        );
    });
}

/// A datagram to an on-link address nobody answers ARP for must not block the
/// socket for good: after `UDP_STUCK_AFTER` the queue is dropped (smoltcp has no
/// per-datagram removal, so datagrams queued behind it go too) and later datagrams
/// to a live peer go out.
#[test]
fn udp_to_a_silent_neighbour_does_not_block_the_socket() {
    let p = TestPlatform::new();
    block_on(p, async {
        let (a, b) = two_stacks(p, static_config(A), static_config(B));
        let server = a.udp_bind(7).unwrap();
        let client = b.udp_bind(0).unwrap();
        // 10.0.0.99 is on the subnet but absent: ARP is never answered.
        let ghost = std::net::SocketAddr::from(([10, 0, 0, 99], 7));
        assert!(!ghost.ip().is_unspecified() && ghost.ip() != std::net::IpAddr::V4(B));
        server.send_to(b"to nobody", ghost).await.unwrap();
        oasis_runtime::sleep(oasis_net::stack::UDP_STUCK_AFTER + Duration::from_secs(1)).await;
        server.send_to(b"to b", client.local_addr()).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = oasis_runtime::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
            .await
            .expect("the datagram behind the stuck one never arrived")
            .unwrap();
        assert_eq!(&buf[..n], b"to b");
        assert_eq!(from, sa(A, 7));
        assert!(a.stats().udp_dropped >= 1);
    });
}
