//! `blkbench`: measures the first disk through [`BlockDevice`] (virtio-blk on kvm, a
//! file on hosted) and prints one line per test, then exits 0:
//!
//! ```text
//! blkbench: seq-write bs=1024KiB qd=1: 41.2 MiB/s (64 MiB in 1553 ms)
//! blkbench: rand-read bs=4KiB qd=8: 5120 IOPS (20.0 MiB/s, 4096 ops in 800 ms)
//! ```
//!
//! Tests, over the first `--size-mib` MiB of the disk (default 64, capped by the
//! disk): sequential write (then flush) and read with `--seq-kib` requests at queue
//! depth 1; random 4 KiB reads and writes at queue depth 1 and `--qd` (default 8),
//! `--ops` operations each (writes flushed once at the end); and random 4 KiB writes
//! each followed by a flush (the cost of a durable small commit). Queue depth N is N
//! concurrent request loops in the one task. **Destroys the disk's content.**
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use core::cell::Cell;

use futures_util::future::join_all;
use oasis::block::{BlockDevice, BlockError, Disk, DiskError};
use oasis::prelude::*;
use oasis::time::now;

/// Why the benchmark stopped.
#[derive(Debug)]
enum BenchError {
    Disk(DiskError),
    Io(BlockError),
    TooSmall(u64),
}

impl core::fmt::Display for BenchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BenchError::Disk(e) => write!(f, "{e}"),
            BenchError::Io(e) => write!(f, "I/O: {e}"),
            BenchError::TooSmall(b) => {
                write!(f, "the disk has {b} bytes; blkbench needs at least 1 MiB")
            }
        }
    }
}

impl From<DiskError> for BenchError {
    fn from(e: DiskError) -> Self {
        BenchError::Disk(e)
    }
}

impl From<BlockError> for BenchError {
    fn from(e: BlockError) -> Self {
        BenchError::Io(e)
    }
}

const RAND_BS: usize = 4096;

/// A per-stream xorshift: each queue slot draws its own offsets.
fn next(x: &Cell<u64>) -> u64 {
    let mut v = x.get();
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    x.set(v);
    v
}

/// `x.y` with one decimal from a rate numerator/denominator, integers only.
fn tenths(num: u128, den: u128) -> (u128, u128) {
    let t = num * 10 / den.max(1);
    (t / 10, t % 10)
}

fn report_mib(name: &str, bytes: u64, elapsed: Duration) {
    let us = elapsed.as_micros().max(1);
    let (a, b) = tenths(u128::from(bytes) * 1_000_000, us * 1024 * 1024);
    println!(
        "blkbench: {name}: {a}.{b} MiB/s ({} MiB in {} ms)",
        bytes >> 20,
        elapsed.as_millis()
    );
}

fn report_iops(name: &str, ops: u64, elapsed: Duration) {
    let us = elapsed.as_micros().max(1);
    let iops = u128::from(ops) * 1_000_000 / us;
    let (a, b) = tenths(
        u128::from(ops) * RAND_BS as u128 * 1_000_000,
        us * 1024 * 1024,
    );
    println!(
        "blkbench: {name}: {iops} IOPS ({a}.{b} MiB/s, {ops} ops in {} ms)",
        elapsed.as_millis()
    );
}

async fn sequential(
    disk: &Disk,
    write: bool,
    span: u64,
    bs: usize,
) -> Result<Duration, BlockError> {
    let ss = u64::from(disk.geometry().sector_size);
    let mut buf = vec![0u8; bs];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
    }
    let start = now();
    let mut off = 0;
    while off + bs as u64 <= span {
        if write {
            disk.write(off / ss, &buf).await?;
        } else {
            disk.read(off / ss, &mut buf).await?;
        }
        off += bs as u64;
    }
    if write {
        disk.flush().await?;
    }
    Ok(now().saturating_duration_since(start))
}

/// `ops` random 4 KiB requests in `qd` concurrent loops; `flush_each`: a flush after
/// every write (queue depth 1 only makes sense then).
async fn random(
    disk: &Disk,
    write: bool,
    span: u64,
    ops: u64,
    qd: u64,
    flush_each: bool,
) -> Result<Duration, BlockError> {
    let ss = u64::from(disk.geometry().sector_size);
    let blocks = span / RAND_BS as u64;
    let start = now();
    let loops = (0..qd).map(|q| async move {
        let seed = Cell::new(0x9E37_79B9_7F4A_7C15 ^ (q + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut buf = vec![q as u8; RAND_BS];
        for _ in 0..ops / qd {
            let block = next(&seed) % blocks;
            let sector = block * RAND_BS as u64 / ss;
            if write {
                disk.write(sector, &buf).await?;
                if flush_each {
                    disk.flush().await?;
                }
            } else {
                disk.read(sector, &mut buf).await?;
            }
        }
        Ok::<(), BlockError>(())
    });
    for r in join_all(loops).await {
        r?;
    }
    if write && !flush_each {
        disk.flush().await?;
    }
    Ok(now().saturating_duration_since(start))
}

#[oasis::main]
async fn main(os: Os) -> Result<(), BenchError> {
    let mut args = os.args();
    let size_mib: u64 = args.value_or("size-mib", 64, "MiB", "span of the disk to use");
    let seq_kib: usize = args.value_or(
        "seq-kib",
        1024,
        "KiB",
        "request size of the sequential tests",
    );
    let ops: u64 = args.value_or("ops", 4096, "N", "operations per random test");
    let qd: u64 = args.value_or("qd", 8, "N", "queue depth of the deep random tests");
    let sync_ops: u64 = args.value_or("sync-ops", 512, "N", "writes in the write+flush test");
    args.finish();

    let disk = os.disk()?;
    let g = disk.geometry();
    let span = (size_mib << 20).min(g.bytes()) / (1 << 20) * (1 << 20);
    if span < 1 << 20 {
        return Err(BenchError::TooSmall(g.bytes()));
    }
    let seq_bs = (seq_kib.max(4) * 1024).min(span as usize);
    let qd = qd.max(1);
    println!(
        "blkbench: {} ({} MiB used of {} MiB, {}-byte sectors)",
        disk.name(),
        span >> 20,
        g.bytes() >> 20,
        g.sector_size
    );

    let t = sequential(&disk, true, span, seq_bs).await?;
    report_mib(&format!("seq-write bs={seq_kib}KiB qd=1"), span, t);
    let t = sequential(&disk, false, span, seq_bs).await?;
    report_mib(&format!("seq-read bs={seq_kib}KiB qd=1"), span, t);
    for (depth, write) in [(1, false), (qd, false), (1, true), (qd, true)] {
        let n = ops / depth * depth;
        let t = random(&disk, write, span, n, depth, false).await?;
        let name = if write { "rand-write" } else { "rand-read" };
        report_iops(&format!("{name} bs=4KiB qd={depth}"), n, t);
    }
    let t = random(&disk, true, span, sync_ops, 1, true).await?;
    report_iops("rand-write+flush bs=4KiB qd=1", sync_ops, t);
    let s = Disk::stats();
    println!(
        "blkbench: interrupt wakeups {}, lost-interrupt rescues {}",
        s.interrupt_wakeups, s.rescued
    );
    println!("blkbench: done");
    Ok(())
}
