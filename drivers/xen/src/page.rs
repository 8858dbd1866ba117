//! Shared pages: a page of memory another domain may read or write at any time,
//! seen only through atomic 32-bit words, with the ring protocol's barriers as
//! explicit fences.
//!
//! Every access is an atomic load or store of an aligned 32-bit word, so a page
//! written concurrently by a backend never gives undefined behaviour here, only
//! values that the protocol code validates. Narrower fields are extracted from
//! (or merged into) their word; 64-bit fields are two word accesses and are only
//! read after the barrier that publishes them.

use core::sync::atomic::{AtomicU32, Ordering, fence};

/// Bytes in a Xen page.
pub const PAGE_SIZE: usize = 4096;
/// 32-bit words in a page.
pub const PAGE_WORDS: usize = PAGE_SIZE / 4;

/// The words of one page.
pub type PageWords = [AtomicU32; PAGE_WORDS];

/// A page shared with the hypervisor or another domain: its guest frame number and
/// a view of its words. The platform hands these out and never returns their memory
/// to the general heap (a freed page goes back to the platform's page pool), so the
/// `'static` view stays valid memory for as long as anyone holds a copy.
#[derive(Clone, Copy)]
pub struct SharedPage {
    pfn: u64,
    words: &'static PageWords,
}

impl core::fmt::Debug for SharedPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SharedPage(pfn {:#x})", self.pfn)
    }
}

fn tail_len(len: usize) -> usize {
    len % 4
}

/// Write barrier (`wmb()`): stores before it are visible before stores after it.
#[inline]
pub fn wmb() {
    fence(Ordering::Release);
}

/// Read barrier (`rmb()`): loads after it see at least what loads before it saw.
#[inline]
pub fn rmb() {
    fence(Ordering::Acquire);
}

/// Full barrier (`mb()`): orders stores before it against loads after it.
#[inline]
pub fn mb() {
    fence(Ordering::SeqCst);
}

impl SharedPage {
    /// A view of the page with guest frame number `pfn`.
    pub fn new(pfn: u64, words: &'static PageWords) -> Self {
        Self { pfn, words }
    }

    /// The page's guest frame number (the frame granted to, or named for, a peer).
    pub fn pfn(&self) -> u64 {
        self.pfn
    }

    /// The page's words.
    pub fn words(&self) -> &'static PageWords {
        self.words
    }

    /// The word holding byte `off` (offsets past the page read as a dead word).
    fn word(&self, off: usize) -> Option<&'static AtomicU32> {
        self.words.get(off / 4)
    }

    /// Loads the 32-bit little-endian field at `off` (rounded down to 4).
    pub fn load_u32(&self, off: usize) -> u32 {
        self.word(off).map_or(0, |w| w.load(Ordering::Relaxed))
    }

    /// Stores the 32-bit field at `off` (rounded down to 4).
    pub fn store_u32(&self, off: usize, v: u32) {
        if let Some(w) = self.word(off) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Loads the 16-bit field at `off` (rounded down to 2).
    pub fn load_u16(&self, off: usize) -> u16 {
        (self.load_u32(off) >> ((off & 2) * 8)) as u16
    }

    /// Loads the byte at `off`.
    pub fn load_u8(&self, off: usize) -> u8 {
        (self.load_u32(off) >> ((off & 3) * 8)) as u8
    }

    /// Loads the 64-bit field at `off` (rounded down to 4) as two word loads.
    pub fn load_u64(&self, off: usize) -> u64 {
        u64::from(self.load_u32(off)) | (u64::from(self.load_u32(off + 4)) << 32)
    }

    /// Stores the 64-bit field at `off` as two word stores.
    pub fn store_u64(&self, off: usize, v: u64) {
        self.store_u32(off, v as u32);
        self.store_u32(off + 4, (v >> 32) as u32);
    }

    /// Replaces the bits `mask << shift` of the word at `off`, leaving the others
    /// (which a peer may be writing) untouched.
    fn merge(&self, off: usize, mask: u32, v: u32) {
        let shift = (off & 3) * 8;
        if let Some(w) = self.word(off) {
            w.fetch_and(!(mask << shift), Ordering::Relaxed);
            w.fetch_or((v & mask) << shift, Ordering::Relaxed);
        }
    }

    /// Stores the 16-bit field at `off` (rounded down to 2).
    pub fn store_u16(&self, off: usize, v: u16) {
        self.merge(off & !1, 0xffff, u32::from(v));
    }

    /// Stores the byte at `off`.
    pub fn store_u8(&self, off: usize, v: u8) {
        self.merge(off, 0xff, u32::from(v));
    }

    /// Atomically sets bits of the 32-bit word at `off`; returns the old value.
    pub fn fetch_or_u32(&self, off: usize, bits: u32) -> u32 {
        self.word(off)
            .map_or(0, |w| w.fetch_or(bits, Ordering::SeqCst))
    }

    /// Atomically clears bits of the 32-bit word at `off`; returns the old value.
    pub fn fetch_and_u32(&self, off: usize, bits: u32) -> u32 {
        self.word(off)
            .map_or(0, |w| w.fetch_and(bits, Ordering::SeqCst))
    }

    /// Atomically swaps the 32-bit word at `off`; returns the old value.
    pub fn swap_u32(&self, off: usize, v: u32) -> u32 {
        self.word(off).map_or(0, |w| w.swap(v, Ordering::SeqCst))
    }

    /// Compare-and-exchange of the 32-bit word at `off`.
    pub fn cmpxchg_u32(&self, off: usize, old: u32, new: u32) -> Result<u32, u32> {
        match self.word(off) {
            Some(w) => w.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst),
            None => Err(0),
        }
    }

    /// Copies bytes `off..off + dst.len()` of the page into `dst`; bytes past the
    /// page end read as zero (callers check ranges first).
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        if off.is_multiple_of(4) {
            let mut chunks = dst.chunks_exact_mut(4);
            let words = self.words.get(off / 4..).unwrap_or(&[]);
            let mut used = 0;
            for (c, w) in (&mut chunks).zip(words) {
                c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
                used += 1;
            }
            let at = off + used * 4;
            let tail = chunks.into_remainder();
            let w = self.load_u32(at).to_le_bytes();
            tail.copy_from_slice(&w[..tail.len()]);
            // Chunks past the page end (callers check ranges first) read as zero.
            if let Some(rest) = dst.get_mut(at - off..(dst.len() - tail_len(dst.len()))) {
                rest.fill(0);
            }
        } else {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = self.load_u8(off + i);
            }
        }
    }

    /// Copies `src` into bytes `off..off + src.len()` of the page; bytes past the
    /// page end are dropped (callers check ranges first).
    pub fn write_bytes(&self, off: usize, src: &[u8]) {
        if off.is_multiple_of(4) {
            let mut chunks = src.chunks_exact(4);
            let words = self.words.get(off / 4..).unwrap_or(&[]);
            for (c, w) in (&mut chunks).zip(words) {
                w.store(
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    Ordering::Relaxed,
                );
            }
            let at = off + (src.len() - chunks.remainder().len());
            for (i, b) in chunks.remainder().iter().enumerate() {
                self.store_u8(at + i, *b);
            }
        } else {
            for (i, b) in src.iter().enumerate() {
                self.store_u8(off + i, *b);
            }
        }
    }

    /// Zeroes the page.
    pub fn clear(&self) {
        for w in self.words {
            w.store(0, Ordering::Relaxed);
        }
    }
}

/// Leaked pages for unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use alloc::boxed::Box;

    /// A fresh zeroed page (leaked: tests only).
    pub(crate) fn page() -> SharedPage {
        let words: &'static PageWords =
            Box::leak(Box::new([const { AtomicU32::new(0) }; PAGE_WORDS]));
        SharedPage::new(7, words)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::page;

    #[test]
    fn narrow_fields_merge_without_touching_neighbours() {
        let p = page();
        p.store_u32(8, 0xaabb_ccdd);
        p.store_u16(10, 0x1234);
        assert_eq!(p.load_u32(8), 0x1234_ccdd);
        p.store_u8(9, 0x55);
        assert_eq!(p.load_u32(8), 0x1234_55dd);
        assert_eq!(p.load_u16(8), 0x55dd);
        assert_eq!(p.load_u8(11), 0x12);
        p.store_u64(16, 0x0102_0304_0506_0708);
        assert_eq!(p.load_u64(16), 0x0102_0304_0506_0708);
    }

    #[test]
    fn byte_copies_round_trip_aligned_and_not() {
        let p = page();
        let src: alloc::vec::Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        for off in [0usize, 1, 2, 3, 4, 4095 - 1001] {
            p.clear();
            p.write_bytes(off, &src);
            let mut back = alloc::vec![0u8; src.len()];
            p.read_bytes(off, &mut back);
            assert_eq!(back, src, "offset {off}");
            assert_eq!(p.load_u8(off + src.len()), 0, "wrote past the end at {off}");
        }
        // Out of range never panics; bytes past the end read as zero.
        p.store_u32(4092, 0x4433_2211);
        let mut big = [0xffu8; 12];
        p.read_bytes(4092, &mut big);
        assert_eq!(big, [0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.read_bytes(4094, &mut big);
        p.write_bytes(4094, &big);
        p.write_bytes(4092, &[1; 9]);
        assert_eq!(p.load_u32(4092), 0x0101_0101);
    }
}
