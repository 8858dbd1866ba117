//! `kv` end to end under QEMU: state survives a reboot (microvm, then q35 over
//! virtio-pci), acknowledged writes survive SIGKILL of QEMU at random moments under
//! write load, requests complete promptly and an idle guest with a disk halts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oasis_e2e::kvapp::{KvClient, boot_kv, cpu_time, empty_image, value_for};
use oasis_e2e::nettests::Rng;
use oasis_e2e::{BOOT_TIMEOUT, GuestExit, Machine};

const T: Duration = Duration::from_secs(30);

fn shutdown(addr: SocketAddr) {
    let mut c = KvClient::connect(addr, T).expect("connect");
    let r = c.request("POST", "/shutdown", b"").expect("shutdown");
    assert_eq!(r.status, 200);
}

#[test]
fn state_survives_a_reboot_and_a_change_of_machine() {
    let disk = empty_image("reboot", 16);
    let Some(mut kv) = boot_kv(&disk, Machine::Microvm) else {
        return;
    };
    assert!(
        kv.guest.text().contains("kv: ready: 0 keys"),
        "{}",
        kv.guest.text()
    );
    let big = oasis_e2e::kvapp::pseudo_random(300_000, 7);
    let mut c = KvClient::connect(kv.addr, T).unwrap();
    assert_eq!(c.put("greeting", b"hello").unwrap(), 201);
    assert_eq!(c.put("greeting", b"hello again").unwrap(), 204);
    assert_eq!(c.put("big", &big).unwrap(), 201);
    assert_eq!(c.put("user%2F1", b"slash").unwrap(), 201);
    assert_eq!(c.put("gone", b"x").unwrap(), 201);
    assert_eq!(c.delete("gone").unwrap(), 204);
    assert_eq!(c.delete("gone").unwrap(), 404);
    assert_eq!(
        c.get("greeting").unwrap().as_deref(),
        Some(&b"hello again"[..])
    );
    let too_big = vec![0u8; (1 << 20) + 1];
    assert_eq!(c.put("huge", &too_big).unwrap_or(413), 413);
    drop(c);
    shutdown(kv.addr);
    assert_eq!(
        kv.guest.wait_exit(BOOT_TIMEOUT),
        GuestExit::Status(0),
        "{}",
        kv.guest.text()
    );

    // Boot the same disk on q35: virtio-blk over PCI this time.
    let Some(kv) = boot_kv(&disk, Machine::Q35) else {
        return;
    };
    assert!(
        kv.guest.text().contains("kv: ready: 3 keys"),
        "{}",
        kv.guest.text()
    );
    let mut c = KvClient::connect(kv.addr, T).unwrap();
    assert_eq!(
        c.get("greeting").unwrap().as_deref(),
        Some(&b"hello again"[..])
    );
    assert_eq!(c.get("big").unwrap().as_deref(), Some(&big[..]));
    assert_eq!(c.get("user%2F1").unwrap().as_deref(), Some(&b"slash"[..]));
    assert_eq!(c.get("gone").unwrap(), None);
    assert_eq!(c.get("huge").unwrap(), None);
    assert_eq!(c.list("").unwrap(), ["big", "greeting", "user/1"]);
    assert_eq!(c.list("gr").unwrap(), ["greeting"]);
    let _ = std::fs::remove_file(&disk);
}

#[test]
fn requests_complete_promptly_and_an_idle_guest_with_a_disk_halts() {
    let disk = empty_image("idle", 16);
    let Some(kv) = boot_kv(&disk, Machine::Microvm) else {
        return;
    };
    let mut c = KvClient::connect(kv.addr, T).unwrap();
    let mut times = Vec::new();
    for i in 0..40 {
        let t = Instant::now();
        assert_eq!(c.put(&format!("k{i}"), b"0123456789").unwrap(), 201);
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!(
        "PUT latency under TCG: median {median:?}, max {:?}",
        times.last().unwrap()
    );
    // A completion that waited for the 10 ms lost-interrupt check every time would
    // still pass a loose bound; the guest's own counter says whether it happened.
    assert!(median < Duration::from_millis(250), "median PUT {median:?}");
    drop(c);
    // Idle: the guest sits in `hlt`, QEMU uses almost no CPU.
    std::thread::sleep(Duration::from_millis(300));
    let pid = kv.guest.pid();
    let before = cpu_time(pid);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time(pid) - before;
    let share = used.as_secs_f64() / t.elapsed().as_secs_f64();
    eprintln!(
        "idle QEMU CPU: {used:?} over {:?} ({:.1}%)",
        t.elapsed(),
        share * 100.0
    );
    assert!(
        share < 0.15,
        "idle guest with a disk uses {:.0}% CPU",
        share * 100.0
    );
    let _ = std::fs::remove_file(&disk);
}

/// What a crash run learned: keys whose PUT got a 2xx, and keys whose PUT was sent
/// but not answered (they may or may not be stored, but never with another value).
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<String, ()>,
    unsure: BTreeMap<String, ()>,
}

/// Boots, writes from 3 connections until QEMU is SIGKILLed at a random moment
/// (20..600 ms after readiness), reboots and checks every acknowledged PUT.
fn crash_run(
    disk: &std::path::Path,
    run: usize,
    rng: &mut Rng,
    all_acked: &mut Vec<String>,
) -> Option<usize> {
    let kv = boot_kv(disk, Machine::Microvm)?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (ledger, stop, addr) = (ledger.clone(), stop.clone(), kv.addr);
            std::thread::spawn(move || {
                let Ok(mut c) = KvClient::connect(addr, Duration::from_secs(10)) else {
                    return;
                };
                for seq in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let key = format!("r{run}-w{w}-{seq}");
                    ledger.lock().unwrap().unsure.insert(key.clone(), ());
                    match c.put(&key, &value_for(&key)) {
                        Ok(201) => {
                            let mut l = ledger.lock().unwrap();
                            l.unsure.remove(&key);
                            l.acked.insert(key, ());
                        }
                        Ok(s) => panic!("PUT {key}: status {s}"),
                        Err(_) => return, // the VM died
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20 + rng.below(580)));
    drop(kv); // SIGKILL, then wait
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer thread");
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());

    let kv = boot_kv(disk, Machine::Microvm)?;
    let mut c = KvClient::connect(kv.addr, T).unwrap();
    for key in ledger.acked.keys() {
        let got = c
            .get(key)
            .unwrap_or_else(|e| panic!("run {run}: GET {key}: {e}"));
        assert_eq!(
            got.as_deref(),
            Some(&value_for(key)[..]),
            "run {run}: acknowledged {key} lost or wrong"
        );
    }
    for key in ledger.unsure.keys() {
        if let Some(v) = c.get(key).unwrap() {
            assert_eq!(
                v,
                value_for(key),
                "run {run}: unacknowledged {key} has a wrong value"
            );
        }
    }
    all_acked.extend(ledger.acked.keys().cloned());
    let listed = c.list("").unwrap();
    let listed: std::collections::BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    for key in all_acked.iter() {
        assert!(
            listed.contains(key.as_str()),
            "run {run}: acknowledged {key} of an earlier run is gone"
        );
    }
    drop(c);
    shutdown(kv.addr);
    let mut kv = kv;
    assert_eq!(kv.guest.wait_exit(BOOT_TIMEOUT), GuestExit::Status(0));
    Some(ledger.acked.len())
}

#[test]
fn acknowledged_puts_survive_sigkill_at_random_moments_50_runs() {
    if oasis_e2e::qemu().is_none() {
        return;
    }
    let runs: usize = std::env::var("OASIS_KV_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let started = Instant::now();
    // Two disks, two threads: 25 runs each, every run on the disk the previous left.
    let handles: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                // Room for every run's keys: nothing is deleted across the 25 runs per disk
                // (~9,000 PUTs of up to 2 KiB each; the log store uses half the disk).
                let disk = empty_image(&format!("crash{t}"), 128);
                let mut rng = Rng::new(0x5eed + t as u64);
                let mut acked = Vec::new();
                let mut per_run = Vec::new();
                for run in (t..runs).step_by(2) {
                    per_run.push(crash_run(&disk, run, &mut rng, &mut acked).expect("QEMU"));
                }
                let _ = std::fs::remove_file(&disk);
                (per_run, acked.len())
            })
        })
        .collect();
    let mut total = 0;
    let mut zero = 0;
    for h in handles {
        let (per_run, acked) = h.join().expect("crash thread");
        zero += per_run.iter().filter(|&&n| n == 0).count();
        total += acked;
    }
    eprintln!(
        "{runs} SIGKILL runs in {:?}: {total} acknowledged PUTs checked after reboots ({zero} runs were killed before any PUT was acknowledged)",
        started.elapsed()
    );
    assert!(
        total > runs,
        "too little write load: {total} acknowledged PUTs in {runs} runs"
    );
}
