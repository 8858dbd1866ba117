//! `RamDisk`: an in-memory [`BlockDevice`] with a volatile write cache, power cuts and torn writes.
//!
//! The disk keeps two layers: a *durable image* and a *volatile cache* of sectors
//! written since the last [`flush`](BlockDevice::flush). Reads see the cache over the
//! image; `flush` moves the cache into the image. [`RamDisk::power_cut`] loses the
//! cache, exactly like a disk whose write cache has no battery.
//!
//! For crash testing, [`RamDisk::fail_after_writes`] arms a fuse: after `n` more
//! device writes, the next write cuts the power instead of completing
//! ([`RamDisk::fail_after_writes_or_flush`]: the next write *or flush*, to cut between
//! a write and the flush that would make it durable). From then on
//! every request fails with [`BlockError::Io`] until the test calls
//! [`RamDisk::power_cut`] (which here means "power back on after the cut"). With
//! [`RamDisk::set_torn_writes`] the cut is adversarial: the interrupted write lands
//! partially (some of its sectors new, the rest old) and each cached, unflushed sector
//! independently survives or not, chosen by a deterministic PRNG from the seed.
//! Sector writes themselves are atomic (a sector is either old or new), as on real
//! disks with 512-byte or 4 KiB atomic write units.
//!
//! Every future completes on its first poll, so tests can drive it with any trivial
//! executor. The disk uses `RefCell` interior mutability: it is meant for single-
//! threaded tests, not for sharing across threads.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::block::{BlockDevice, BlockError, Geometry};

/// An in-memory block device for tests; see the module docs for its crash model.
#[derive(Debug)]
pub struct RamDisk {
    sector_size: u32,
    sectors: u64,
    inner: RefCell<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Sectors written since the last flush, by sector number.
    cache: BTreeMap<u64, Vec<u8>>,
    read_only: bool,
    /// `Some(seed)`: power cuts tear writes and keep a random subset of the cache.
    torn: Option<u64>,
    /// Writes still allowed before the power goes out.
    fuse: Option<u64>,
    /// The blown fuse also cuts at a flush.
    fuse_on_flush: bool,
    /// The power is out: every request fails until `power_cut` restores it.
    dead: bool,
    writes: u64,
    flushes: u64,
    reads: u64,
}

impl RamDisk {
    /// A zero-filled disk of `sectors` sectors of `sector_size` bytes.
    ///
    /// # Panics
    /// If `sector_size` is zero or the size does not fit in memory (test helper).
    pub fn new(sectors: u64, sector_size: u32) -> Self {
        assert!(sector_size > 0, "sector size must be non-zero");
        let bytes = sectors
            .checked_mul(u64::from(sector_size))
            .and_then(|b| usize::try_from(b).ok());
        let Some(bytes) = bytes else {
            panic!("a RamDisk of {sectors} sectors of {sector_size} bytes does not fit in memory");
        };
        Self::with_image(vec![0; bytes], sectors, sector_size)
    }

    /// A disk whose durable content is `image`, zero-padded to whole sectors.
    ///
    /// # Panics
    /// If `sector_size` is zero.
    pub fn from_image(image: &[u8], sector_size: u32) -> Self {
        assert!(sector_size > 0, "sector size must be non-zero");
        let ss = sector_size as usize;
        let sectors = image.len().div_ceil(ss);
        let mut durable = image.to_vec();
        durable.resize(sectors * ss, 0);
        Self::with_image(durable, sectors as u64, sector_size)
    }

    fn with_image(durable: Vec<u8>, sectors: u64, sector_size: u32) -> Self {
        Self {
            sector_size,
            sectors,
            inner: RefCell::new(Inner {
                durable,
                cache: BTreeMap::new(),
                read_only: false,
                torn: None,
                fuse: None,
                fuse_on_flush: false,
                dead: false,
                writes: 0,
                flushes: 0,
                reads: 0,
            }),
        }
    }

    /// Makes the disk read-only (writes fail with [`BlockError::ReadOnly`]) or writable.
    pub fn set_read_only(&self, read_only: bool) {
        self.inner.borrow_mut().read_only = read_only;
    }

    /// `Some(seed)`: power cuts tear the interrupted write and keep a pseudo-random
    /// subset of unflushed sectors. `None` (the default): a cut drops every unflushed
    /// write and the interrupted write lands not at all.
    pub fn set_torn_writes(&self, seed: Option<u64>) {
        self.inner.borrow_mut().torn = seed;
    }

    /// Arms the fuse: `Some(n)` lets `n` more device writes complete; the one after
    /// that cuts the power. `None` disarms it.
    pub fn fail_after_writes(&self, n: Option<u64>) {
        let mut inner = self.inner.borrow_mut();
        inner.fuse = n;
        inner.fuse_on_flush = false;
    }

    /// Like [`RamDisk::fail_after_writes`], but once `n` writes have completed, a
    /// flush cuts the power too (before making anything durable).
    pub fn fail_after_writes_or_flush(&self, n: Option<u64>) {
        let mut inner = self.inner.borrow_mut();
        inner.fuse = n;
        inner.fuse_on_flush = true;
    }

    /// Cuts the power and turns it back on: unflushed writes are lost (or, in torn
    /// mode, a pseudo-random subset of them survives), the fuse is disarmed and the
    /// disk accepts requests again.
    pub fn power_cut(&self) {
        let mut inner = self.inner.borrow_mut();
        if !inner.dead {
            inner.lose_cache();
        }
        inner.dead = false;
        inner.fuse = None;
    }

    /// Whether the fuse blew and the disk is waiting for [`RamDisk::power_cut`].
    pub fn is_dead(&self) -> bool {
        self.inner.borrow().dead
    }

    /// Device writes completed so far (one per `write` call, whatever its length).
    pub fn write_count(&self) -> u64 {
        self.inner.borrow().writes
    }

    /// Flushes completed so far.
    pub fn flush_count(&self) -> u64 {
        self.inner.borrow().flushes
    }

    /// Reads completed so far.
    pub fn read_count(&self) -> u64 {
        self.inner.borrow().reads
    }

    /// A copy of the durable image (what a power cut now would leave).
    pub fn durable_image(&self) -> Vec<u8> {
        self.inner.borrow().durable.clone()
    }

    /// Overwrites durable bytes at `offset` directly, bypassing the cache: for tests
    /// that corrupt an image. Bytes past the end are ignored.
    pub fn poke(&self, offset: usize, bytes: &[u8]) {
        let mut inner = self.inner.borrow_mut();
        let len = inner.durable.len();
        let start = offset.min(len);
        let end = offset.saturating_add(bytes.len()).min(len);
        inner.durable[start..end].copy_from_slice(&bytes[..end - start]);
    }
}

impl Inner {
    /// Resolves the volatile cache at a power cut.
    fn lose_cache(&mut self) {
        let cache = core::mem::take(&mut self.cache);
        if let Some(seed) = self.torn.as_mut() {
            for (sector, data) in cache {
                if next_random(seed) & 1 == 1 {
                    let at = sector as usize * data.len();
                    self.durable[at..at + data.len()].copy_from_slice(&data);
                }
            }
        }
    }
}

/// xorshift64*: deterministic, good enough to pick sectors.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

impl BlockDevice for RamDisk {
    fn geometry(&self) -> Geometry {
        Geometry {
            sectors: self.sectors,
            sector_size: self.sector_size,
            read_only: self.inner.borrow().read_only,
        }
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), false)?;
        let mut inner = self.inner.borrow_mut();
        if inner.dead {
            return Err(BlockError::Io);
        }
        let ss = self.sector_size as usize;
        for (i, chunk) in buf.chunks_mut(ss).enumerate() {
            let s = sector + i as u64;
            match inner.cache.get(&s) {
                Some(data) => chunk.copy_from_slice(data),
                None => {
                    let at = s as usize * ss;
                    chunk.copy_from_slice(&inner.durable[at..at + ss]);
                }
            }
        }
        inner.reads += 1;
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), true)?;
        let mut inner = self.inner.borrow_mut();
        if inner.dead {
            return Err(BlockError::Io);
        }
        let ss = self.sector_size as usize;
        if inner.fuse == Some(0) {
            // The power goes out while this write is in flight.
            if let Some(mut seed) = inner.torn {
                let count = (buf.len() / ss) as u64;
                let landed = next_random(&mut seed) % (count + 1);
                inner.torn = Some(seed);
                for (i, chunk) in buf.chunks(ss).take(landed as usize).enumerate() {
                    // Reaches the platter directly: it was the write in progress.
                    let s = sector + i as u64;
                    inner.cache.remove(&s);
                    let at = s as usize * ss;
                    inner.durable[at..at + ss].copy_from_slice(chunk);
                }
            }
            inner.lose_cache();
            inner.dead = true;
            inner.fuse = None;
            return Err(BlockError::Io);
        }
        for (i, chunk) in buf.chunks(ss).enumerate() {
            inner.cache.insert(sector + i as u64, chunk.to_vec());
        }
        if let Some(n) = inner.fuse.as_mut() {
            *n -= 1;
        }
        inner.writes += 1;
        Ok(())
    }

    async fn flush(&self) -> Result<(), BlockError> {
        let mut inner = self.inner.borrow_mut();
        if inner.dead {
            return Err(BlockError::Io);
        }
        if inner.fuse_on_flush && inner.fuse == Some(0) {
            inner.lose_cache();
            inner.dead = true;
            inner.fuse = None;
            return Err(BlockError::Io);
        }
        let ss = self.sector_size as usize;
        let cache = core::mem::take(&mut inner.cache);
        for (sector, data) in cache {
            let at = sector as usize * ss;
            inner.durable[at..at + ss].copy_from_slice(&data);
        }
        inner.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    /// The disk's futures complete on the first poll.
    fn now<F: Future>(f: F) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(f).poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("RamDisk future was pending"),
        }
    }

    #[test]
    fn reads_see_cache_and_flush_makes_durable() {
        let d = RamDisk::new(8, 512);
        now(d.write(2, &[7; 1024])).unwrap();
        let mut buf = [0; 512];
        now(d.read(3, &mut buf)).unwrap();
        assert_eq!(buf, [7; 512]);
        assert_eq!(d.durable_image()[1024], 0);
        now(d.flush()).unwrap();
        assert_eq!(d.durable_image()[1024..2048], [7; 1024]);
        assert_eq!(
            (d.write_count(), d.flush_count(), d.read_count()),
            (1, 1, 1)
        );
    }

    #[test]
    fn power_cut_drops_unflushed_writes() {
        let d = RamDisk::new(4, 512);
        now(d.write(0, &[1; 512])).unwrap();
        now(d.flush()).unwrap();
        now(d.write(0, &[2; 512])).unwrap();
        d.power_cut();
        let mut buf = [0; 512];
        now(d.read(0, &mut buf)).unwrap();
        assert_eq!(buf, [1; 512]);
    }

    #[test]
    fn fuse_cuts_power_at_the_right_write() {
        let d = RamDisk::new(4, 512);
        d.fail_after_writes(Some(1));
        now(d.write(0, &[1; 512])).unwrap();
        assert_eq!(now(d.write(1, &[2; 512])), Err(BlockError::Io));
        assert!(d.is_dead());
        assert_eq!(now(d.flush()), Err(BlockError::Io));
        d.power_cut();
        assert!(!d.is_dead());
        let mut buf = [9; 1024];
        now(d.read(0, &mut buf)).unwrap();
        assert_eq!(buf, [0; 1024], "nothing was flushed");
    }

    #[test]
    fn fuse_can_cut_before_the_flush() {
        let d = RamDisk::new(4, 512);
        d.fail_after_writes_or_flush(Some(1));
        now(d.write(0, &[1; 512])).unwrap();
        assert_eq!(now(d.flush()), Err(BlockError::Io));
        d.power_cut();
        assert_eq!(d.durable_image(), [0; 2048]);
    }

    #[test]
    fn torn_write_lands_a_prefix() {
        let mut saw_partial = false;
        for seed in 1..40 {
            let d = RamDisk::new(8, 512);
            d.set_torn_writes(Some(seed));
            d.fail_after_writes(Some(0));
            assert_eq!(now(d.write(0, &[5; 8 * 512])), Err(BlockError::Io));
            d.power_cut();
            let img = d.durable_image();
            let new = img.chunks(512).take_while(|s| s[0] == 5).count();
            assert!(img.chunks(512).skip(new).all(|s| s.iter().all(|&b| b == 0)));
            saw_partial |= new > 0 && new < 8;
        }
        assert!(saw_partial);
    }

    #[test]
    fn read_only_and_bad_requests_fail() {
        let d = RamDisk::from_image(&[3; 700], 512);
        assert_eq!(d.geometry().sectors, 2);
        d.set_read_only(true);
        assert_eq!(now(d.write(0, &[0; 512])), Err(BlockError::ReadOnly));
        let mut buf = [0; 100];
        assert!(matches!(
            now(d.read(0, &mut buf)),
            Err(BlockError::Misaligned { .. })
        ));
        let mut buf = [0; 1024];
        assert!(matches!(
            now(d.read(1, &mut buf)),
            Err(BlockError::OutOfRange { .. })
        ));
        now(d.read(0, &mut buf)).unwrap();
        assert_eq!(&buf[..700], &[3; 700][..]);
        assert_eq!(&buf[700..], &[0; 324][..]);
    }

    #[test]
    fn poke_corrupts_durable_image() {
        let d = RamDisk::new(1, 512);
        d.poke(510, &[1, 2, 3, 4]);
        assert_eq!(&d.durable_image()[510..], &[1, 2]);
    }
}
