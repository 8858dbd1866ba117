//! Replays the `mount` fuzz target's seed corpus and thousands of deterministic
//! mutations of it on stable: mounting arbitrary bytes must never panic, and a
//! mounted store must stay readable and writable without panicking.

mod common;

use std::path::PathBuf;

use common::harness::run;
use common::{Rng, block_on};
use oasis_devices::ramdisk::RamDisk;
use oasis_storage::{Batch, KvRead, KvWrite, LogStore};

fn corpus_dir() -> PathBuf {
    oasis_testkit::corpus::dir(env!("CARGO_MANIFEST_DIR"), "mount")
}

/// A small LogStore image with a few commits, one compaction and a tail.
fn log_image() -> Vec<u8> {
    let mut s = block_on(LogStore::format(RamDisk::new(24, 512))).unwrap();
    block_on(s.set("alpha", b"first value")).unwrap();
    block_on(s.set("beta", &[0xab; 700])).unwrap();
    block_on(s.compact()).unwrap();
    let mut b = Batch::new();
    b.set("gamma", b"g").remove("alpha");
    block_on(s.commit(&b)).unwrap();
    s.into_device().durable_image()
}

fn tar_image() -> Vec<u8> {
    let mut b = oasis_tar::Builder::new();
    b.append_file("index.html", b"<p>hi</p>", 1, 0o644).unwrap();
    b.append_file(&"long/".repeat(30), b"x", 2, 0o644).unwrap();
    b.finish()
}

/// Regenerates the committed seeds: `cargo test -p oasis-storage --test fuzz_replay -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    std::fs::write(corpus_dir().join("log-store.img"), log_image()).unwrap();
    std::fs::write(corpus_dir().join("site.tar"), tar_image()).unwrap();
}

#[test]
fn seeds_and_mutations_never_panic() {
    let mut seeds: Vec<Vec<u8>> = oasis_testkit::corpus::seeds(env!("CARGO_MANIFEST_DIR"), "mount")
        .into_iter()
        .map(|s| s.data)
        .collect();
    assert!(seeds.len() >= 2, "seed corpus missing");
    seeds.push(log_image());
    seeds.push(tar_image());
    for s in &seeds {
        run(s);
    }
    let mut rng = Rng::new(0xfeed_f00d_1234_5678);
    for i in 0..2500 {
        let mut data = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(data.len() as u64) as usize;
            match rng.below(4) {
                0 => data[at] = rng.next_u64() as u8,
                1 => data[at] ^= 1 << rng.below(8),
                2 => data.truncate(at.max(1)),
                _ => {
                    // Copy a sector over another: plausible-looking misplaced records.
                    let from = rng.below((data.len() / 512) as u64) as usize * 512;
                    let to = rng.below((data.len() / 512) as u64) as usize * 512;
                    if from + 512 <= data.len() && to + 512 <= data.len() {
                        let s = data[from..from + 512].to_vec();
                        data[to..to + 512].copy_from_slice(&s);
                    }
                }
            }
        }
        run(&data);
    }
}

#[test]
fn mutated_log_images_mount_right_or_report() {
    // A flipped bit anywhere in a LogStore image either mounts to a state the image
    // held at some commit, or is reported; it never yields a value no commit wrote.
    let image = log_image();
    let full = block_on(LogStore::mount(RamDisk::from_image(&image, 512))).unwrap();
    let keys = full.list("");
    let mut rng = Rng::new(77);
    for _ in 0..1500 {
        let mut data = image.clone();
        let at = rng.below(data.len() as u64) as usize;
        data[at] ^= 1 << rng.below(8);
        if let Ok(s) = block_on(LogStore::mount(RamDisk::from_image(&data, 512))) {
            for k in s.list("") {
                let v = block_on(s.get(&k));
                if let Ok(Some(v)) = v {
                    let ok = matches!(
                        (k.as_str(), v.as_slice()),
                        ("alpha", b"first value") | ("gamma", b"g")
                    ) || (k == "beta" && v == [0xab; 700]);
                    assert!(ok, "invented value for {k}");
                }
            }
            assert!(
                s.list("")
                    .iter()
                    .all(|k| ["alpha", "beta", "gamma"].contains(&k.as_str()))
            );
        }
    }
    assert_eq!(keys, ["beta", "gamma"]);
}
