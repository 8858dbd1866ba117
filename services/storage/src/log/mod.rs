//! `LogStore`: a crash-safe read-write key-value store on a block device.
//!
//! Design (the format is in [`format`]):
//! - **Log.** Each commit (a [`Batch`]) is one record appended to the active
//!   region: written, then flushed; only then is it acknowledged and applied to the
//!   in-memory index (`BTreeMap` key → value location). Records are checksummed
//!   (header CRC, payload CRC, and a CRC per value).
//! - **Recovery.** Mount picks the newest valid superblock, then walks the active
//!   region from its start, accepting records whose generation matches and whose
//!   sequence numbers follow without gaps, and stops at the first record that does
//!   not check out: the *tail*. Because a commit is only written after the previous
//!   one is durable, nothing valid can follow a torn tail. Mount therefore scans the
//!   rest of the region for record headers of the active generation with a higher
//!   sequence number: if one exists, the break is damage in the middle of the log
//!   and mount fails with [`KvError::Corrupt`] instead of silently dropping
//!   acknowledged commits. Continuation tags at the start of every record sector
//!   guarantee that user data is never mistaken for a header.
//! - **Compaction.** When a commit does not fit in the rest of the active region,
//!   the live data is copied into the other region under a fresh generation, then
//!   the superblock switches regions. The generation is first *reserved* with a
//!   superblock write, so an interrupted compaction can never leave records that a
//!   later one would mistake for its own. The old region stays intact until the
//!   switch is durable, so a crash at any point leaves one complete state.
//! - **Errors.** [`KvError::Full`] when the live data plus the commit do not fit in
//!   a region; [`KvError::Corrupt`] for damage; after any device error during a write
//!   the store refuses further writes ([`KvError::Poisoned`]) until remounted,
//!   because the device's state is unknown until recovery reads it back.
//!
//! Costs: every commit takes at least one sector and one flush; mount reads the
//! whole active region (half the device); compaction rewrites the live data.

pub mod format;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use oasis_devices::{BlockDevice, BlockError};

use crate::KvError;
use crate::io::{MAX_SECTORS_PER_REQUEST, read_bytes};
use crate::kv::{Batch, KvRead, KvWrite, MAX_BATCH_BYTES, MAX_VALUE_LEN, Meta, Op, check_key};
use format::{
    DecodedOp, FLAG_SNAPSHOT, REMOVE_OVERHEAD, RecordHeader, SET_OVERHEAD, SbSlot, Superblock,
    decode_ops, decode_record, encode_record, encode_remove, encode_set, payload_position,
    record_sectors,
};

/// Sectors before the regions (the two superblock slots).
const SB_SECTORS: u64 = 2;
/// The smallest region that makes sense.
const MIN_REGION_SECTORS: u64 = 4;
/// Compaction packs live values into records of about this many payload bytes.
const SNAPSHOT_RECORD_BYTES: usize = 2 * 1024;

/// Where a value lives: in the record starting at `record` (absolute sector), at
/// payload offset `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    record: u64,
    at: u32,
    len: u32,
    crc: u32,
    mtime: u64,
}

/// Space and history figures, for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Sectors in one region.
    pub region_sectors: u64,
    /// Sectors of the active region in use.
    pub used_sectors: u64,
    /// Bytes of live values.
    pub live_bytes: u64,
    /// Number of keys.
    pub keys: usize,
    /// Generation of the active region.
    pub generation: u64,
    /// Compactions done since mount.
    pub compactions: u64,
}

/// A crash-safe store; see the module docs.
pub struct LogStore<D> {
    dev: D,
    sector_size: u32,
    region_sectors: u64,
    sb: Superblock,
    index: BTreeMap<String, Loc>,
    /// Next free sector (absolute) in the active region.
    tail: u64,
    /// Sequence number of the next commit.
    next_seq: u64,
    poisoned: bool,
    compactions: u64,
    clock: Option<Box<dyn Fn() -> u64>>,
}

impl<D> core::fmt::Debug for LogStore<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LogStore")
            .field("sb", &self.sb)
            .field("keys", &self.index.len())
            .field("tail", &self.tail)
            .field("next_seq", &self.next_seq)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn region_sectors_for(dev_sectors: u64, sector_size: u32) -> Result<u64, KvError> {
    let bad = |reason| KvError::BadGeometry {
        sectors: dev_sectors,
        sector_size,
        reason,
    };
    if !(512..=65536).contains(&sector_size) || !sector_size.is_power_of_two() {
        return Err(bad("sector size must be a power of two in 512..=65536"));
    }
    let region = dev_sectors.saturating_sub(SB_SECTORS) / 2;
    if region < MIN_REGION_SECTORS {
        return Err(bad("too small: needs at least 10 sectors"));
    }
    if region > u64::from(u32::MAX) {
        return Err(bad("too large: a region must have fewer than 2^32 sectors"));
    }
    Ok(region)
}

impl<D: BlockDevice> LogStore<D> {
    /// Creates an empty store on `dev`, replacing whatever store was there.
    pub async fn format(dev: D) -> Result<Self, KvError> {
        let g = dev.geometry();
        let region_sectors = region_sectors_for(g.sectors, g.sector_size)?;
        // Continue the old store's sequence and generation numbers, if any, so that
        // nothing of it can pass for part of the new one.
        let (a, b) = read_superblocks(&dev).await?;
        let (mut seq, mut generation) = (0, 0);
        for slot in [a, b] {
            if let SbSlot::Valid(sb) = slot {
                seq = seq.max(sb.seq);
                generation = generation.max(sb.max_gen);
            }
        }
        let sb = Superblock {
            sector_size: g.sector_size,
            sectors: g.sectors,
            seq: seq + 1,
            active_gen: generation + 1,
            max_gen: generation + 1,
            active: 0,
        };
        let mut store = Self::empty(dev, region_sectors, sb);
        store.write_superblock(sb).await?;
        Ok(store)
    }

    /// Mounts the store on `dev`, recovering from any crash.
    pub async fn mount(dev: D) -> Result<Self, KvError> {
        let g = dev.geometry();
        let region_sectors = region_sectors_for(g.sectors, g.sector_size)?;
        let sb = match read_superblocks(&dev).await? {
            (SbSlot::Blank, SbSlot::Blank) => return Err(KvError::NotFormatted),
            (SbSlot::Valid(a), SbSlot::Valid(b)) => {
                if a.seq >= b.seq {
                    a
                } else {
                    b
                }
            }
            (SbSlot::Valid(a), SbSlot::Blank) => a,
            // A damaged slot beside a valid one is the trace of an interrupted
            // superblock write, which was never acknowledged: the valid one holds.
            (SbSlot::Valid(a), SbSlot::Invalid) => a,
            (SbSlot::Blank | SbSlot::Invalid, SbSlot::Valid(b)) => b,
            _ => {
                return Err(KvError::Corrupt {
                    offset: 0,
                    reason: "no valid superblock",
                });
            }
        };
        if sb.sector_size != g.sector_size || sb.sectors != g.sectors {
            return Err(KvError::Corrupt {
                offset: 0,
                reason: "superblock geometry differs from the device",
            });
        }
        if sb.active_gen == 0 || sb.active_gen > sb.max_gen {
            return Err(KvError::Corrupt {
                offset: 0,
                reason: "superblock generations are inconsistent",
            });
        }
        let mut store = Self::empty(dev, region_sectors, sb);
        store.recover().await?;
        Ok(store)
    }

    /// Mounts the store, or formats the device if it holds none (blank superblocks).
    /// A damaged store is reported, never reformatted.
    pub async fn mount_or_format(dev: D) -> Result<Self, KvError> {
        let g = dev.geometry();
        region_sectors_for(g.sectors, g.sector_size)?;
        match read_superblocks(&dev).await? {
            (SbSlot::Blank, SbSlot::Blank) => Self::format(dev).await,
            _ => Self::mount(dev).await,
        }
    }

    fn empty(dev: D, region_sectors: u64, sb: Superblock) -> Self {
        let sector_size = sb.sector_size;
        let mut s = Self {
            dev,
            sector_size,
            region_sectors,
            sb,
            index: BTreeMap::new(),
            tail: 0,
            next_seq: 1,
            poisoned: false,
            compactions: 0,
            clock: None,
        };
        s.tail = s.region_start(sb.active);
        s
    }

    /// Sets the clock used to stamp modification times (seconds since the Unix
    /// epoch). Without one, new values get mtime 0.
    pub fn set_clock(&mut self, clock: impl Fn() -> u64 + 'static) {
        self.clock = Some(Box::new(clock));
    }

    /// The underlying device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Gives the device back.
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Space and history figures.
    pub fn stats(&self) -> LogStats {
        LogStats {
            region_sectors: self.region_sectors,
            used_sectors: self.tail - self.region_start(self.sb.active),
            live_bytes: self.index.values().map(|l| u64::from(l.len)).sum(),
            keys: self.index.len(),
            generation: self.sb.active_gen,
            compactions: self.compactions,
        }
    }

    /// Bytes of the active region the log fills, and the region's size (the log
    /// grows until a compaction rewrites the live keys into the other region). O(1),
    /// unlike [`stats`](Self::stats), which sums every value.
    pub fn log_usage(&self) -> (u64, u64) {
        (
            self.byte(self.tail - self.region_start(self.sb.active)),
            self.byte(self.region_sectors),
        )
    }

    fn region_start(&self, region: u8) -> u64 {
        SB_SECTORS + u64::from(region) * self.region_sectors
    }

    fn byte(&self, sector: u64) -> u64 {
        sector * u64::from(self.sector_size)
    }

    /// Walks the active region; see the module docs.
    async fn recover(&mut self) -> Result<(), KvError> {
        let start = self.region_start(self.sb.active);
        let end = start + self.region_sectors;
        let ss = self.sector_size as usize;
        let mut pos = start;
        let mut seq = 1;
        let mut sector = vec![0u8; ss];
        while pos < end {
            self.dev.read(pos, &mut sector).await?;
            let Some(h) = RecordHeader::parse(&sector) else {
                break;
            };
            if h.generation != self.sb.active_gen
                || h.seq != seq
                || u64::from(h.sectors)
                    != record_sectors(u64::from(h.payload_len), self.sector_size)
                || u64::from(h.sectors) > end - pos
            {
                break;
            }
            let mut rec = vec![0u8; h.sectors as usize * ss];
            read_sectors(&self.dev, pos, &mut rec).await?;
            let Some(payload) = decode_record(&h, &rec, self.sector_size) else {
                break;
            };
            let ops = decode_ops(&payload, h.op_count).map_err(|reason| KvError::Corrupt {
                offset: self.byte(pos),
                reason,
            })?;
            apply(&mut self.index, pos, ops);
            pos += u64::from(h.sectors);
            seq += 1;
        }
        self.tail = pos;
        self.next_seq = seq;
        // Nothing of this generation may follow the tail with a later sequence number.
        let mut chunk = vec![0u8; MAX_SECTORS_PER_REQUEST as usize * ss];
        let mut at = pos;
        while at < end {
            let n = (end - at).min(MAX_SECTORS_PER_REQUEST);
            let buf = &mut chunk[..n as usize * ss];
            self.dev.read(at, buf).await?;
            let later = buf
                .chunks(ss)
                .filter_map(RecordHeader::parse)
                .any(|h| h.generation == self.sb.active_gen && h.seq > seq);
            if later {
                return Err(KvError::Corrupt {
                    offset: self.byte(pos),
                    reason: "damaged record followed by later commits",
                });
            }
            at += n;
        }
        Ok(())
    }

    fn now(&self) -> u64 {
        self.clock.as_ref().map_or(0, |c| c())
    }

    fn check_writable(&self) -> Result<(), KvError> {
        if self.poisoned {
            return Err(KvError::Poisoned);
        }
        if self.dev.geometry().read_only {
            return Err(KvError::Block(BlockError::ReadOnly));
        }
        Ok(())
    }

    /// Runs a device write sequence; any failure poisons the store.
    fn poison_on<T>(&mut self, r: Result<T, KvError>) -> Result<T, KvError> {
        if matches!(r, Err(KvError::Block(_))) {
            self.poisoned = true;
        }
        r
    }

    async fn write_superblock(&mut self, sb: Superblock) -> Result<(), KvError> {
        let mut sector = vec![0u8; self.sector_size as usize];
        sb.emit(&mut sector);
        let r = async {
            self.dev.write(sb.seq % 2, &sector).await?;
            self.dev.flush().await?;
            Ok(())
        }
        .await;
        self.poison_on(r)?;
        self.sb = sb;
        Ok(())
    }

    /// Copies the live data into the other region; see the module docs.
    /// `reserve` sectors must remain free after it, or nothing is done and
    /// [`KvError::Full`] is returned.
    async fn compact_reserving(&mut self, reserve: u64) -> Result<(), KvError> {
        self.check_writable()?;
        // Plan the snapshot records from the index alone, to check the fit first.
        let mut groups: Vec<(Vec<String>, usize)> = Vec::new();
        for (key, loc) in &self.index {
            let op = SET_OVERHEAD + key.len() + loc.len as usize;
            match groups.last_mut() {
                Some((keys, bytes)) if *bytes + op <= SNAPSHOT_RECORD_BYTES => {
                    keys.push(key.clone());
                    *bytes += op;
                }
                _ => groups.push((vec![key.clone()], op)),
            }
        }
        let needed: u64 = groups
            .iter()
            .map(|(_, bytes)| record_sectors(*bytes as u64, self.sector_size))
            .sum();
        if needed + reserve > self.region_sectors {
            return Err(KvError::Full {
                needed: needed + reserve,
                available: self.region_sectors,
            });
        }
        let target = 1 - self.sb.active;
        let generation = self.sb.max_gen + 1;
        // 1. Reserve the generation.
        let reserved = Superblock {
            seq: self.sb.seq + 1,
            max_gen: generation,
            ..self.sb
        };
        self.write_superblock(reserved).await?;
        // 2. Write the snapshot.
        let mut pos = self.region_start(target);
        let mut new_index = BTreeMap::new();
        for (i, (keys, _)) in groups.iter().enumerate() {
            let mut payload = Vec::new();
            let mut placed = Vec::new();
            for key in keys {
                let Some(&loc) = self.index.get(key) else {
                    continue;
                };
                let value = self.read_value(loc).await?;
                encode_set(&mut payload, key, &value, loc.mtime);
                let at = (payload.len() - value.len()) as u32;
                placed.push((
                    key.clone(),
                    Loc {
                        record: pos,
                        at,
                        ..loc
                    },
                ));
            }
            let header = RecordHeader {
                generation,
                seq: i as u64 + 1,
                payload_len: 0,
                payload_crc: 0,
                sectors: 0,
                op_count: keys.len() as u32,
                flags: FLAG_SNAPSHOT,
            };
            let rec = encode_record(header, &payload, self.sector_size);
            let r = write_sectors(&self.dev, pos, &rec).await;
            self.poison_on(r)?;
            pos += (rec.len() / self.sector_size as usize) as u64;
            new_index.extend(placed);
        }
        let r = self.dev.flush().await.map_err(KvError::from);
        self.poison_on(r)?;
        // 3. Switch regions.
        let switched = Superblock {
            seq: self.sb.seq + 1,
            active: target,
            active_gen: generation,
            max_gen: generation,
            ..self.sb
        };
        self.write_superblock(switched).await?;
        self.index = new_index;
        self.tail = pos;
        self.next_seq = groups.len() as u64 + 1;
        self.compactions += 1;
        Ok(())
    }

    /// Compacts now, whether or not space is short.
    pub async fn compact(&mut self) -> Result<(), KvError> {
        self.compact_reserving(0).await
    }

    /// Reads a whole value and checks its CRC.
    async fn read_value(&self, loc: Loc) -> Result<Vec<u8>, KvError> {
        let mut value = vec![0; loc.len as usize];
        self.read_loc(loc, 0, &mut value).await?;
        if crc32fast::hash(&value) != loc.crc {
            return Err(KvError::Corrupt {
                offset: self.byte(loc.record),
                reason: "value CRC mismatch",
            });
        }
        Ok(value)
    }

    /// Reads value bytes `offset..offset + buf.len()` of the value at `loc`.
    async fn read_loc(&self, loc: Loc, offset: u64, buf: &mut [u8]) -> Result<(), KvError> {
        let ss = u64::from(self.sector_size);
        let mut done = 0;
        while done < buf.len() {
            let (sector, byte) =
                payload_position(u64::from(loc.at) + offset + done as u64, self.sector_size);
            let n = (ss as usize - byte).min(buf.len() - done);
            let at = (loc.record + sector) * ss + byte as u64;
            read_bytes(&self.dev, at, &mut buf[done..done + n]).await?;
            done += n;
        }
        Ok(())
    }
}

/// Applies decoded ops of the record at `record` to the index.
fn apply(index: &mut BTreeMap<String, Loc>, record: u64, ops: Vec<DecodedOp>) {
    for op in ops {
        match op {
            DecodedOp::Set {
                key,
                value_at,
                len,
                crc,
                mtime,
            } => {
                index.insert(
                    key,
                    Loc {
                        record,
                        at: value_at,
                        len,
                        crc,
                        mtime,
                    },
                );
            }
            DecodedOp::Remove { key } => {
                index.remove(&key);
            }
        }
    }
}

async fn read_superblocks<D: BlockDevice>(dev: &D) -> Result<(SbSlot, SbSlot), KvError> {
    let mut s = vec![0u8; dev.geometry().sector_size as usize];
    dev.read(0, &mut s).await?;
    let a = Superblock::parse(&s);
    dev.read(1, &mut s).await?;
    Ok((a, Superblock::parse(&s)))
}

async fn read_sectors<D: BlockDevice>(dev: &D, sector: u64, buf: &mut [u8]) -> Result<(), KvError> {
    let ss = dev.geometry().sector_size as usize;
    for (i, chunk) in buf
        .chunks_mut(MAX_SECTORS_PER_REQUEST as usize * ss)
        .enumerate()
    {
        dev.read(sector + i as u64 * MAX_SECTORS_PER_REQUEST, chunk)
            .await?;
    }
    Ok(())
}

async fn write_sectors<D: BlockDevice>(dev: &D, sector: u64, buf: &[u8]) -> Result<(), KvError> {
    let ss = dev.geometry().sector_size as usize;
    for (i, chunk) in buf
        .chunks(MAX_SECTORS_PER_REQUEST as usize * ss)
        .enumerate()
    {
        dev.write(sector + i as u64 * MAX_SECTORS_PER_REQUEST, chunk)
            .await?;
    }
    Ok(())
}

impl<D: BlockDevice> KvRead for LogStore<D> {
    fn meta(&self, key: &str) -> Option<Meta> {
        self.index.get(key).map(|l| Meta {
            size: u64::from(l.len),
            mtime: l.mtime,
        })
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        self.index
            .range::<str, _>((
                core::ops::Bound::Included(prefix),
                core::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    async fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<usize, KvError> {
        let loc = *self
            .index
            .get(key)
            .ok_or_else(|| KvError::NotFound { key: key.into() })?;
        let n = u64::from(loc.len)
            .saturating_sub(offset)
            .min(buf.len() as u64) as usize;
        if n > 0 {
            self.read_loc(loc, offset, &mut buf[..n]).await?;
        }
        Ok(n)
    }

    /// Reads the whole value and checks it against its stored CRC.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.index.get(key) {
            Some(&loc) => Ok(Some(self.read_value(loc).await?)),
            None => Ok(None),
        }
    }

    async fn digest(&self, key: &str) -> Result<Option<u32>, KvError> {
        Ok(self.index.get(key).map(|l| l.crc))
    }
}

impl<D: BlockDevice> KvWrite for LogStore<D> {
    async fn commit(&mut self, batch: &Batch) -> Result<(), KvError> {
        self.check_writable()?;
        if batch.is_empty() {
            return Ok(());
        }
        let mtime = self.now();
        let mut payload = Vec::new();
        for op in batch.ops() {
            match op {
                Op::Set { key, value } => {
                    check_key(key)?;
                    if value.len() > MAX_VALUE_LEN {
                        return Err(KvError::ValueTooLarge {
                            len: value.len(),
                            max: MAX_VALUE_LEN,
                        });
                    }
                    if payload.len() + SET_OVERHEAD + key.len() + value.len() > MAX_BATCH_BYTES {
                        return Err(KvError::BatchTooLarge {
                            len: payload.len() + SET_OVERHEAD + key.len() + value.len(),
                            max: MAX_BATCH_BYTES,
                        });
                    }
                    encode_set(&mut payload, key, value, mtime);
                }
                Op::Remove { key } => {
                    check_key(key)?;
                    if payload.len() + REMOVE_OVERHEAD + key.len() > MAX_BATCH_BYTES {
                        return Err(KvError::BatchTooLarge {
                            len: payload.len() + REMOVE_OVERHEAD + key.len(),
                            max: MAX_BATCH_BYTES,
                        });
                    }
                    encode_remove(&mut payload, key);
                }
            }
        }
        let sectors = record_sectors(payload.len() as u64, self.sector_size);
        if sectors > self.region_sectors {
            return Err(KvError::Full {
                needed: sectors,
                available: self.region_sectors,
            });
        }
        let region_end = self.region_start(self.sb.active) + self.region_sectors;
        if self.tail + sectors > region_end {
            self.compact_reserving(sectors).await?;
        }
        let header = RecordHeader {
            generation: self.sb.active_gen,
            seq: self.next_seq,
            payload_len: 0,
            payload_crc: 0,
            sectors: 0,
            op_count: batch.ops().len() as u32,
            flags: 0,
        };
        let rec = encode_record(header, &payload, self.sector_size);
        let r = async {
            write_sectors(&self.dev, self.tail, &rec).await?;
            self.dev.flush().await?;
            Ok(())
        }
        .await;
        self.poison_on(r)?;
        // Durable: acknowledge by applying it.
        let ops = decode_ops(&payload, header.op_count).map_err(|reason| KvError::Corrupt {
            offset: self.byte(self.tail),
            reason,
        })?;
        apply(&mut self.index, self.tail, ops);
        self.tail += sectors;
        self.next_seq += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_KEY_LEN;
    use crate::test_util::block_on;
    use oasis_devices::ramdisk::RamDisk;

    fn store(sectors: u64) -> LogStore<RamDisk> {
        block_on(LogStore::format(RamDisk::new(sectors, 512))).unwrap()
    }

    fn remount(s: LogStore<RamDisk>) -> Result<LogStore<RamDisk>, KvError> {
        block_on(LogStore::mount(s.into_device()))
    }

    #[test]
    fn set_get_remove_rename_batch_survive_remount() {
        let mut s = store(200);
        s.set_clock(|| 1234);
        block_on(s.set("a", b"1")).unwrap();
        block_on(s.set("b", &[7; 2000])).unwrap();
        block_on(s.rename("a", "c")).unwrap();
        assert!(block_on(s.remove("b")).unwrap());
        assert!(!block_on(s.remove("b")).unwrap());
        let mut b = Batch::new();
        b.set("x/1", b"one")
            .set("x/2", b"two")
            .remove("c")
            .set("big", &[9; 5000]);
        block_on(s.commit(&b)).unwrap();
        let mut s = remount(s).unwrap();
        assert_eq!(s.list(""), ["big", "x/1", "x/2"]);
        assert_eq!(s.list("x/"), ["x/1", "x/2"]);
        assert_eq!(block_on(s.get("x/2")).unwrap().unwrap(), b"two");
        assert_eq!(block_on(s.get("big")).unwrap().unwrap(), [9; 5000]);
        assert_eq!(
            block_on(s.get_range("big", 4000..4010)).unwrap().unwrap(),
            [9; 10]
        );
        assert_eq!(s.last_modified("x/1"), Some(1234));
        assert_eq!(
            block_on(s.digest("x/1")).unwrap(),
            Some(crc32fast::hash(b"one"))
        );
        assert!(matches!(
            block_on(s.rename("nope", "z")),
            Err(KvError::NotFound { .. })
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let mut s = store(100);
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            block_on(s.set(&long, b"")),
            Err(KvError::KeyTooLong { len: 256, max: 255 })
        );
        assert_eq!(block_on(s.set("", b"")), Err(KvError::EmptyKey));
        let big = vec![0; MAX_VALUE_LEN + 1];
        assert!(matches!(
            block_on(s.set("k", &big)),
            Err(KvError::ValueTooLarge { .. })
        ));
        block_on(s.set(&"k".repeat(MAX_KEY_LEN), b"max key")).unwrap();
    }

    #[test]
    fn log_usage_grows_with_writes_within_the_region() {
        let mut s = store(42); // regions of 20 sectors
        let (used0, capacity) = s.log_usage();
        assert_eq!(capacity, 20 * 512);
        block_on(s.set("first", b"v")).unwrap();
        let (used1, _) = s.log_usage();
        assert!(used1 > used0, "a write grows the log: {used0} -> {used1}");
        assert_eq!(used1, s.stats().used_sectors * 512);
    }

    #[test]
    fn full_is_reported_and_store_stays_usable() {
        let mut s = store(42); // regions of 20 sectors
        let mut i = 0;
        let err = loop {
            match block_on(s.set(&alloc::format!("k{i}"), &[1; 1000])) {
                Ok(()) => i += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, KvError::Full { available: 20, .. }), "{err}");
        block_on(s.remove("k0")).unwrap();
        block_on(s.set("small", b"fits after compaction")).unwrap();
        let s = remount(s).unwrap();
        assert_eq!(s.len(), i);
    }

    #[test]
    fn blank_bad_geometry_and_read_only() {
        assert_eq!(
            block_on(LogStore::mount(RamDisk::new(100, 512))).unwrap_err(),
            KvError::NotFormatted
        );
        assert!(matches!(
            block_on(LogStore::format(RamDisk::new(9, 512))),
            Err(KvError::BadGeometry { .. })
        ));
        let s = block_on(LogStore::mount_or_format(RamDisk::new(100, 512))).unwrap();
        let disk = s.into_device();
        disk.set_read_only(true);
        let mut s = block_on(LogStore::mount(disk)).unwrap();
        assert_eq!(
            block_on(s.set("a", b"b")),
            Err(KvError::Block(BlockError::ReadOnly))
        );
    }

    #[test]
    fn damage_in_the_middle_is_corrupt_but_a_torn_tail_is_not() {
        let mut s = store(100);
        for i in 0..5 {
            block_on(s.set(&alloc::format!("k{i}"), &[i as u8; 100])).unwrap();
        }
        let disk = s.into_device();
        let image = disk.durable_image();
        // Record 2 (third commit) sits in sector 4: damage its payload.
        disk.poke(4 * 512 + 100, &[0xee]);
        let err = block_on(LogStore::mount(disk)).unwrap_err();
        assert!(
            matches!(err, KvError::Corrupt { offset: 2048, .. }),
            "{err}"
        );
        // The same damage to the last record reads as a torn tail: it is dropped.
        let disk = RamDisk::from_image(&image, 512);
        disk.poke(6 * 512 + 100, &[0xee]);
        let s = block_on(LogStore::mount(disk)).unwrap();
        assert_eq!(s.list(""), ["k0", "k1", "k2", "k3"]);
        // The only superblock (format writes slot 1) damaged.
        let disk = RamDisk::from_image(&image, 512);
        disk.poke(512 + 30, &[1]);
        let err = block_on(LogStore::mount(disk)).unwrap_err();
        assert!(matches!(err, KvError::Corrupt { offset: 0, .. }), "{err}");
        // Value damage in a valid-looking record is caught by the value CRC on read.
        let s = block_on(LogStore::mount(RamDisk::from_image(&image, 512))).unwrap();
        assert_eq!(block_on(s.get("k4")).unwrap().unwrap(), [4; 100]);
    }

    #[test]
    fn interrupted_compaction_never_leaks_into_a_later_one() {
        let mut s = store(82);
        for i in 0..8 {
            block_on(s.set(&alloc::format!("key{i}"), &[i as u8; 600])).unwrap();
        }
        // reserve (1) + snapshot records + switch: cut at the switch.
        let before = s.device().write_count();
        block_on(s.compact()).unwrap();
        let compaction_writes = s.device().write_count() - before;
        let mut s = remount(s).unwrap();
        s.device().fail_after_writes(Some(compaction_writes - 1));
        assert!(matches!(block_on(s.compact()), Err(KvError::Block(_))));
        s.device().power_cut();
        let mut s = remount(s).unwrap();
        assert_eq!(s.len(), 8);
        for i in 0..7 {
            block_on(s.remove(&alloc::format!("key{i}"))).unwrap();
        }
        block_on(s.compact()).unwrap();
        // The stale snapshot's later records must not read as part of this one.
        let mut s = remount(s).unwrap();
        assert_eq!(s.list(""), ["key7"]);
        block_on(s.set("after", b"x")).unwrap();
        let s = remount(s).unwrap();
        assert_eq!(s.list(""), ["after", "key7"]);
    }
}
