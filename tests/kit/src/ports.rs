//! Localhost ports for test servers.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Mutex;

use crate::Rng;

/// A port free for both TCP and UDP on 127.0.0.1, checked by binding both. Picked
/// below Linux's ephemeral range (32768..) so outgoing connections cannot take it
/// before QEMU, NSD or the hosted app binds it; never the same port twice per
/// process.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::from_clock();
    for _ in 0..2000 {
        let p = 20_000 + rng.below(12_000) as u16;
        if taken.contains(&p) {
            continue;
        }
        let Ok(t) = TcpListener::bind((Ipv4Addr::LOCALHOST, p)) else {
            continue;
        };
        let Ok(u) = UdpSocket::bind((Ipv4Addr::LOCALHOST, p)) else {
            continue;
        };
        drop((t, u));
        taken.insert(p);
        return p;
    }
    panic!("no free TCP+UDP port found in 20000..32000 on 127.0.0.1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        TcpListener::bind((Ipv4Addr::LOCALHOST, a)).unwrap();
        UdpSocket::bind((Ipv4Addr::LOCALHOST, b)).unwrap();
    }
}
