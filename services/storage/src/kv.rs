//! The key-value interfaces (`KvRead`, `KvWrite`), their limits, batches and errors.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use oasis_devices::BlockError;
use oasis_tar::TarError;

/// Longest key accepted by [`KvWrite`], in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// Largest value accepted by [`KvWrite`], in bytes.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
/// Largest batch (keys + values + per-operation overhead), in bytes.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What a store knows about a key without reading its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Value size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch (0 if unknown).
    pub mtime: u64,
}

/// Everything that can go wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The block device failed.
    #[error("block device: {0}")]
    Block(#[from] BlockError),
    /// The tar image is malformed.
    #[error("tar image: {0}")]
    Tar(#[from] TarError),
    /// The key is empty.
    #[error("empty key")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("key of {len} bytes is longer than {max}")]
    KeyTooLong {
        /// Key length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is larger than [`MAX_VALUE_LEN`].
    #[error("value of {len} bytes is larger than {max}")]
    ValueTooLarge {
        /// Value length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The batch is larger than [`MAX_BATCH_BYTES`].
    #[error("batch of {len} bytes is larger than {max}")]
    BatchTooLarge {
        /// Encoded batch size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key does not exist.
    #[error("no such key {key:?}")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A byte range reaches outside the value.
    #[error("range {start}..{end} is outside a value of {size} bytes")]
    BadRange {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// Value size.
        size: u64,
    },
    /// Even after compaction, the live data plus this commit does not fit.
    #[error("store full: {needed} sectors needed, {available} available")]
    Full {
        /// Sectors the live data plus the commit need.
        needed: u64,
        /// Sectors in a region.
        available: u64,
    },
    /// The image is damaged in a way that loses or may misstate committed data.
    #[error("store corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset on the device.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The device holds no store (blank superblocks).
    #[error("the device holds no store (blank superblocks)")]
    NotFormatted,
    /// The device geometry cannot hold a store.
    #[error("device of {sectors} sectors of {sector_size} bytes is unusable: {reason}")]
    BadGeometry {
        /// Sectors.
        sectors: u64,
        /// Sector size.
        sector_size: u32,
        /// Why.
        reason: &'static str,
    },
    /// A previous write failed half-way; the on-disk state is only known after a
    /// remount, so the store refuses further writes.
    #[error("an earlier write failed; remount the store before writing again")]
    Poisoned,
}

/// Checks a key against the write limits.
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KvError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// One operation of a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Set {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key` (no effect if absent).
    Remove {
        /// Key.
        key: String,
    },
}

/// Operations committed atomically, in order: after a crash either all of them are
/// visible or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a set.
    pub fn set(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.ops.push(Op::Set {
            key: key.into(),
            value: value.to_vec(),
        });
        self
    }

    /// Adds a removal.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.ops.push(Op::Remove { key: key.into() });
        self
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Reading a store. Metadata comes from the in-memory index (synchronous); values
/// come from the device (async).
#[allow(async_fn_in_trait)] // single-threaded executor: futures need not be Send
pub trait KvRead {
    /// Size and modification time of `key`, if present.
    fn meta(&self, key: &str) -> Option<Meta>;

    /// The keys starting with `prefix`, in byte order.
    fn list(&self, prefix: &str) -> Vec<String>;

    /// Number of keys.
    fn len(&self) -> usize;

    /// Whether the store holds no key.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads value bytes starting at `offset` into `buf`; returns how many were read
    /// (fewer than `buf.len()` only at the end of the value, 0 at or past it).
    async fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<usize, KvError>;

    /// A checksum of the value (CRC-32/IEEE), for ETags and change detection; not
    /// cryptographic.
    async fn digest(&self, key: &str) -> Result<Option<u32>, KvError>;

    /// Whether `key` exists.
    fn exists(&self, key: &str) -> bool {
        self.meta(key).is_some()
    }

    /// Value size of `key`.
    fn size(&self, key: &str) -> Option<u64> {
        self.meta(key).map(|m| m.size)
    }

    /// Last modification of `key`, seconds since the Unix epoch (0 if unknown).
    fn last_modified(&self, key: &str) -> Option<u64> {
        self.meta(key).map(|m| m.mtime)
    }

    /// The whole value of `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let Some(meta) = self.meta(key) else {
            return Ok(None);
        };
        self.get_range(key, 0..meta.size).await
    }

    /// Bytes `range` of the value of `key`; [`KvError::BadRange`] if the range
    /// reaches past the value or is reversed.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Vec<u8>>, KvError> {
        let Some(meta) = self.meta(key) else {
            return Ok(None);
        };
        if range.start > range.end || range.end > meta.size {
            return Err(KvError::BadRange {
                start: range.start,
                end: range.end,
                size: meta.size,
            });
        }
        let len = usize::try_from(range.end - range.start).map_err(|_| KvError::BadRange {
            start: range.start,
            end: range.end,
            size: meta.size,
        })?;
        let mut out = vec![0; len];
        let n = self.read_at(key, range.start, &mut out).await?;
        out.truncate(n);
        Ok(Some(out))
    }
}

/// Writing a store. Every method returns only after the change is durable.
#[allow(async_fn_in_trait)] // single-threaded executor: futures need not be Send
pub trait KvWrite: KvRead {
    /// Applies `batch` atomically and durably.
    async fn commit(&mut self, batch: &Batch) -> Result<(), KvError>;

    /// Sets `key` to `value`.
    async fn set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let mut b = Batch::new();
        b.set(key, value);
        self.commit(&b).await
    }

    /// Removes `key`; returns whether it existed (nothing is written if not).
    async fn remove(&mut self, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        if !self.exists(key) {
            return Ok(false);
        }
        let mut b = Batch::new();
        b.remove(key);
        self.commit(&b).await?;
        Ok(true)
    }

    /// Moves the value of `from` to `to` (replacing `to`) atomically.
    async fn rename(&mut self, from: &str, to: &str) -> Result<(), KvError> {
        check_key(from)?;
        check_key(to)?;
        let value = self
            .get(from)
            .await?
            .ok_or_else(|| KvError::NotFound { key: from.into() })?;
        if from == to {
            return Ok(());
        }
        let mut b = Batch::new();
        b.set(to, &value).remove(from);
        self.commit(&b).await
    }
}
