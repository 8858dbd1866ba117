//! Shared test scaffolding: a fake-clock platform and two stacks over a `MemNet` pair.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use oasis_devices::mem_net::{MemLink, MemNet};
use oasis_devices::{EntropyError, HeapUsage, NetDevice, Platform};
use oasis_net::{NetConfig, NetHandle, Stack};

/// A platform whose clock only moves when the executor sleeps. Frames in flight on a
/// registered link count as a pending interrupt: `wait_for_event` returns at once.
/// Sleeping with no deadline and nothing in flight is a deadlock and panics.
pub struct TestPlatform {
    now: Mutex<u64>,
    links: Mutex<Vec<MemLink>>,
    /// Times the executor really slept (advanced the clock).
    pub sleeps: AtomicU64,
    /// A simulated heap for admission control (`None`: not measured, like hosted).
    heap: Mutex<Option<HeapUsage>>,
}

impl TestPlatform {
    pub fn new() -> &'static TestPlatform {
        Box::leak(Box::new(TestPlatform {
            now: Mutex::new(1_000_000),
            links: Mutex::new(Vec::new()),
            sleeps: AtomicU64::new(0),
            heap: Mutex::new(None),
        }))
    }

    /// Pretends the heap has `free` bytes free (of 1 GiB).
    pub fn set_heap_free(&self, free: usize) {
        let size = 1 << 30;
        *self.heap.lock().unwrap() = Some(HeapUsage {
            size,
            used: size - free,
            peak: size - free,
        });
    }

    pub fn watch(&self, link: MemLink) {
        self.links.lock().unwrap().push(link);
    }

    pub fn sleeps(&self) -> u64 {
        self.sleeps.load(Ordering::Relaxed)
    }
}

impl Platform for TestPlatform {
    fn console_write(&self, _: &[u8]) {}
    fn monotonic_nanos(&self) -> u64 {
        *self.now.lock().unwrap()
    }
    fn wall_clock_nanos(&self) -> Option<u64> {
        None
    }
    fn entropy(&self, _: &mut [u8]) -> Result<(), EntropyError> {
        Err(EntropyError::NoSource)
    }
    fn wait_for_event(&self, deadline: Option<u64>) {
        if self
            .links
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.frames_in_flight() > 0)
        {
            return;
        }
        let d = deadline.expect("executor slept with no deadline and no frame in flight: deadlock");
        let mut now = self.now.lock().unwrap();
        assert!(d > *now, "slept until a past deadline");
        *now = d;
        self.sleeps.fetch_add(1, Ordering::Relaxed);
    }
    fn args(&self) -> Vec<String> {
        Vec::new()
    }
    fn boot_nanos(&self) -> Option<u64> {
        None
    }
    fn heap_usage(&self) -> Option<HeapUsage> {
        *self.heap.lock().unwrap()
    }
    fn exit(&self, status: u8) -> ! {
        panic!("exit {status}")
    }
}

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn static_config(addr: Ipv4Addr) -> NetConfig {
    NetConfig::static_ipv4(format!("{addr}/24").parse().unwrap(), None)
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// Installs a stack over `dev` on the running executor.
pub fn install<D: NetDevice + Send + 'static>(dev: D, config: NetConfig, seed: u64) -> NetHandle {
    Stack::install(dev, config, seed, oasis_runtime::now()).expect("valid config")
}

/// Two stacks (10.0.0.1 and 10.0.0.2) over one wire. Call inside `block_on`.
pub fn two_stacks(p: &TestPlatform, a: NetConfig, b: NetConfig) -> (NetHandle, NetHandle) {
    let (da, db) = MemNet::pair();
    p.watch(da.link());
    (install(da, a, 1), install(db, b, 2))
}

/// A deterministic byte pattern that does not repeat with any short period.
pub fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 20) as u8
}

/// Virtual seconds since the platform started.
pub fn secs(p: &TestPlatform) -> f64 {
    (p.monotonic_nanos() - 1_000_000) as f64 / 1e9
}
