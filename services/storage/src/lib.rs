//! `oasis-storage`: key-value stores on a [`BlockDevice`](oasis_devices::BlockDevice).
//!
//! Two interfaces, [`KvRead`] and [`KvWrite`], and two stores:
//! - [`TarStore`]: read-only, over a tar image (e.g. a website built with
//!   `tar -cf site.tar -C site .` or [`oasis_tar::builder::from_dir`]). Mount indexes
//!   the headers; values are read on demand; digests are CRC-32, computed lazily.
//! - [`LogStore`]: read-write and crash-safe: checksummed log records, atomic
//!   batches, durable acknowledgement (write, then flush), recovery at mount,
//!   crash-safe compaction between two regions. See [`log`] for the design.
//!
//! Keys are UTF-8 strings of 1..=[`MAX_KEY_LEN`] bytes for writes (tar paths may be
//! longer); values are at most [`MAX_VALUE_LEN`] bytes. Metadata (`meta`, `exists`,
//! `size`, `last_modified`, `list`) comes from an in-memory index; reading values is
//! async. Futures need not be `Send`: the stores are for a single-core executor.
//! To share a store between tasks, keep it in a `RefCell` (reads) or behind an async
//! lock (writes: a commit awaits the device).
//!
//! # Usage
//!
//! ```ignore
//! use oasis_storage::{KvRead, KvWrite, LogStore, TarStore, Batch};
//!
//! // Read-only website content from a tar image on a virtio-blk disk:
//! let site = TarStore::mount(blk).await?;
//! if let Some(body) = site.get("index.html").await? { /* serve */ }
//! let etag = site.digest("index.html").await?;       // Option<u32>
//! let part = site.get_range("video.mp4", 0..65536).await?;
//!
//! // A persistent key-value store (formats a blank disk, refuses a damaged one):
//! let mut kv = LogStore::mount_or_format(blk2).await?;
//! kv.set_clock(|| wall_clock_secs());                 // optional, for mtimes
//! kv.set("greeting", b"hello").await?;                // durable when it returns
//! kv.rename("greeting", "hello").await?;
//! let mut batch = Batch::new();
//! batch.set("a", b"1").set("b", b"2").remove("c");
//! kv.commit(&batch).await?;                           // all or nothing
//! assert!(kv.list("").contains(&"a".into()));
//! ```
//!
//! # Why not an existing crate
//!
//! sequential-storage and ekv are built for raw NOR flash (erase pages, word-level
//! programming, `embedded-storage` traits, compile-time page geometry), not for a
//! sector device with a volatile write cache and explicit flush; adapting them would
//! mean emulating erase semantics and still not get flush-ordered durability.
//! littlefs2 needs a C toolchain and libclang (it does not build here) and is a file
//! system, not a KV store. tar-no-std reads from an in-memory slice only, while we
//! index an image on an async block device reading headers alone, so `oasis-tar`
//! provides a sans-IO scanner instead.
#![no_std]
#![forbid(unsafe_code)]
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

mod io;
pub mod kv;
pub mod log;
pub mod tar_store;

pub use kv::{
    Batch, KvError, KvRead, KvWrite, MAX_BATCH_BYTES, MAX_KEY_LEN, MAX_VALUE_LEN, Meta, Op,
};
pub use log::{LogStats, LogStore};
pub use tar_store::TarStore;

#[cfg(test)]
pub(crate) mod test_util {
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    /// Polls a future that completes without waiting (RamDisk futures do).
    pub fn block_on<F: Future>(f: F) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        let mut f = pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
