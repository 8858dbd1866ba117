//! The log store's on-disk format: superblock, record header, continuation tag, ops.
//!
//! ```text
//! sector 0, 1      superblock slots A/B (the valid one with the higher `seq` wins)
//! sectors 2..2+R   region 0 ┐ R = (sectors - 2) / 2; one region is active (holds
//! sectors 2+R..    region 1 ┘ the log), the other is the compaction target
//! ```
//! A record (one commit) starts on a sector boundary and fills whole sectors. Its
//! first sector starts with a [`RecordHeader`]; every further sector starts with an
//! 8-byte continuation tag, so user data never sits at the start of a sector and a
//! value can never be mistaken for a record header. The payload (the ops) is the
//! concatenation of what follows the header and the tags. All integers little-endian.

use alloc::string::String;
use alloc::vec::Vec;

/// Superblock magic.
pub const SB_MAGIC: [u8; 8] = *b"OASISKV1";
/// On-disk format version.
pub const VERSION: u32 = 1;
/// Bytes of the superblock that matter (the rest of the sector is zero).
pub const SB_LEN: usize = 56;
/// Record header magic.
pub const REC_MAGIC: [u8; 4] = *b"OKVR";
/// Continuation tag magic.
pub const CONT_MAGIC: [u8; 4] = *b"OKVC";
/// Record header length; the payload starts right after it.
pub const HDR_LEN: usize = 48;
/// Continuation tag length.
pub const CONT_LEN: usize = 8;
/// Record flag: written by compaction.
pub const FLAG_SNAPSHOT: u32 = 1;

const OP_SET: u8 = 1;
const OP_REMOVE: u8 = 2;
/// op, key length, value length, value CRC, mtime.
pub const SET_OVERHEAD: usize = 1 + 1 + 4 + 4 + 8;
/// op, key length.
pub const REMOVE_OVERHEAD: usize = 2;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// The superblock: which region holds the log, and its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Sector size the store was formatted with.
    pub sector_size: u32,
    /// Device sectors the store was formatted with.
    pub sectors: u64,
    /// Write sequence; the valid slot with the higher one is current.
    pub seq: u64,
    /// Generation of the active region's log; records of other generations are stale.
    pub active_gen: u64,
    /// Highest generation ever handed out (compaction reserves one before using it).
    pub max_gen: u64,
    /// Active region, 0 or 1.
    pub active: u8,
}

/// What a superblock slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbSlot {
    /// All zero: never written.
    Blank,
    /// Written but unreadable (torn write or damage).
    Invalid,
    /// A valid superblock.
    Valid(Superblock),
}

impl Superblock {
    /// Parses one slot (a whole sector).
    pub fn parse(sector: &[u8]) -> SbSlot {
        if sector.iter().all(|&b| b == 0) {
            return SbSlot::Blank;
        }
        if sector.len() < SB_LEN
            || sector[0..8] != SB_MAGIC
            || u32_at(sector, 52) != crc32fast::hash(&sector[..52])
            || u32_at(sector, 8) != VERSION
            || sector[48] > 1
        {
            return SbSlot::Invalid;
        }
        SbSlot::Valid(Self {
            sector_size: u32_at(sector, 12),
            sectors: u64_at(sector, 16),
            seq: u64_at(sector, 24),
            active_gen: u64_at(sector, 32),
            max_gen: u64_at(sector, 40),
            active: sector[48],
        })
    }

    /// Writes the superblock into `sector` (zeroing the rest).
    pub fn emit(&self, sector: &mut [u8]) {
        sector.fill(0);
        sector[0..8].copy_from_slice(&SB_MAGIC);
        sector[8..12].copy_from_slice(&VERSION.to_le_bytes());
        sector[12..16].copy_from_slice(&self.sector_size.to_le_bytes());
        sector[16..24].copy_from_slice(&self.sectors.to_le_bytes());
        sector[24..32].copy_from_slice(&self.seq.to_le_bytes());
        sector[32..40].copy_from_slice(&self.active_gen.to_le_bytes());
        sector[40..48].copy_from_slice(&self.max_gen.to_le_bytes());
        sector[48] = self.active;
        let crc = crc32fast::hash(&sector[..52]);
        sector[52..56].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The header at the start of a record's first sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Region generation the record belongs to.
    pub generation: u64,
    /// Commit sequence within the generation, from 1, without gaps.
    pub seq: u64,
    /// Payload bytes.
    pub payload_len: u32,
    /// CRC-32 of the payload.
    pub payload_crc: u32,
    /// Sectors the record fills, header included.
    pub sectors: u32,
    /// Number of ops in the payload.
    pub op_count: u32,
    /// [`FLAG_SNAPSHOT`] or 0.
    pub flags: u32,
}

impl RecordHeader {
    /// Parses a header sector; `None` unless magic and header CRC check out.
    pub fn parse(sector: &[u8]) -> Option<Self> {
        if sector.len() < HDR_LEN
            || sector[0..4] != REC_MAGIC
            || u32_at(sector, 4) != crc32fast::hash(&sector[8..HDR_LEN])
        {
            return None;
        }
        Some(Self {
            generation: u64_at(sector, 8),
            seq: u64_at(sector, 16),
            payload_len: u32_at(sector, 24),
            payload_crc: u32_at(sector, 28),
            sectors: u32_at(sector, 32),
            op_count: u32_at(sector, 36),
            flags: u32_at(sector, 40),
        })
    }

    /// Writes the header into the first [`HDR_LEN`] bytes of `sector`.
    pub fn emit(&self, sector: &mut [u8]) {
        sector[0..4].copy_from_slice(&REC_MAGIC);
        sector[8..16].copy_from_slice(&self.generation.to_le_bytes());
        sector[16..24].copy_from_slice(&self.seq.to_le_bytes());
        sector[24..28].copy_from_slice(&self.payload_len.to_le_bytes());
        sector[28..32].copy_from_slice(&self.payload_crc.to_le_bytes());
        sector[32..36].copy_from_slice(&self.sectors.to_le_bytes());
        sector[36..40].copy_from_slice(&self.op_count.to_le_bytes());
        sector[40..44].copy_from_slice(&self.flags.to_le_bytes());
        sector[44..48].fill(0);
        let crc = crc32fast::hash(&sector[8..HDR_LEN]);
        sector[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Sectors a record with `payload_len` payload bytes fills.
pub fn record_sectors(payload_len: u64, sector_size: u32) -> u64 {
    let first = (sector_size as usize - HDR_LEN) as u64;
    let more = (sector_size as usize - CONT_LEN) as u64;
    1 + payload_len.saturating_sub(first).div_ceil(more)
}

/// Where payload byte `at` of a record sits: (sector within the record, byte in it).
pub fn payload_position(at: u64, sector_size: u32) -> (u64, usize) {
    let first = (sector_size as usize - HDR_LEN) as u64;
    let more = (sector_size as usize - CONT_LEN) as u64;
    if at < first {
        (0, HDR_LEN + at as usize)
    } else {
        let q = at - first;
        (1 + q / more, CONT_LEN + (q % more) as usize)
    }
}

/// Lays a payload out into whole sectors behind `header` (whose `sectors`,
/// `payload_len` and `payload_crc` this fills in).
pub fn encode_record(mut header: RecordHeader, payload: &[u8], sector_size: u32) -> Vec<u8> {
    let ss = sector_size as usize;
    let sectors = record_sectors(payload.len() as u64, sector_size) as usize;
    header.sectors = sectors as u32;
    header.payload_len = payload.len() as u32;
    header.payload_crc = crc32fast::hash(payload);
    let mut out = alloc::vec![0u8; sectors * ss];
    header.emit(&mut out[..ss]);
    let mut rest = payload;
    for (i, sector) in out.chunks_mut(ss).enumerate() {
        let start = if i == 0 {
            HDR_LEN
        } else {
            sector[0..4].copy_from_slice(&CONT_MAGIC);
            sector[4..8].copy_from_slice(&(header.seq as u32).to_le_bytes());
            CONT_LEN
        };
        let n = rest.len().min(ss - start);
        sector[start..start + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// Extracts the payload of a record read whole (`buf` = `header.sectors` sectors);
/// `None` if a continuation tag or the payload CRC is wrong (a torn record).
pub fn decode_record(header: &RecordHeader, buf: &[u8], sector_size: u32) -> Option<Vec<u8>> {
    let ss = sector_size as usize;
    let mut payload = Vec::with_capacity(header.payload_len as usize);
    for (i, sector) in buf.chunks(ss).enumerate() {
        let start = if i == 0 {
            HDR_LEN
        } else {
            if sector[0..4] != CONT_MAGIC || u32_at(sector, 4) != header.seq as u32 {
                return None;
            }
            CONT_LEN
        };
        let n = (header.payload_len as usize - payload.len()).min(ss - start);
        payload.extend_from_slice(&sector[start..start + n]);
    }
    (payload.len() == header.payload_len as usize
        && crc32fast::hash(&payload) == header.payload_crc)
        .then_some(payload)
}

/// One decoded op; `value_at` is the value's offset within the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedOp {
    /// A set.
    Set {
        /// Key.
        key: String,
        /// Payload offset of the value.
        value_at: u32,
        /// Value length.
        len: u32,
        /// CRC-32 of the value.
        crc: u32,
        /// Modification time.
        mtime: u64,
    },
    /// A removal.
    Remove {
        /// Key.
        key: String,
    },
}

/// Appends a set op.
pub fn encode_set(out: &mut Vec<u8>, key: &str, value: &[u8], mtime: u64) {
    out.push(OP_SET);
    out.push(key.len() as u8);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(value).to_le_bytes());
    out.extend_from_slice(&mtime.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
}

/// Appends a remove op.
pub fn encode_remove(out: &mut Vec<u8>, key: &str) {
    out.push(OP_REMOVE);
    out.push(key.len() as u8);
    out.extend_from_slice(key.as_bytes());
}

/// Decodes a CRC-valid payload; `Err(reason)` if it is malformed anyway.
pub fn decode_ops(payload: &[u8], count: u32) -> Result<Vec<DecodedOp>, &'static str> {
    let mut ops = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<core::ops::Range<usize>, &'static str> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= payload.len())
            .ok_or("op runs past the payload")?;
        let r = *at..end;
        *at = end;
        Ok(r)
    };
    for _ in 0..count {
        let head = take(&mut at, 2)?;
        let (kind, key_len) = (payload[head.start], payload[head.start + 1] as usize);
        match kind {
            OP_SET => {
                let f = take(&mut at, SET_OVERHEAD - 2)?;
                let len = u32_at(payload, f.start);
                let crc = u32_at(payload, f.start + 4);
                let mtime = u64_at(payload, f.start + 8);
                let key = take(&mut at, key_len)?;
                let value = take(&mut at, len as usize)?;
                let key = core::str::from_utf8(&payload[key]).map_err(|_| "key is not UTF-8")?;
                if key.is_empty() {
                    return Err("empty key");
                }
                if crc32fast::hash(&payload[value.clone()]) != crc {
                    return Err("value CRC mismatch");
                }
                ops.push(DecodedOp::Set {
                    key: key.into(),
                    value_at: value.start as u32,
                    len,
                    crc,
                    mtime,
                });
            }
            OP_REMOVE => {
                let key = take(&mut at, key_len)?;
                let key = core::str::from_utf8(&payload[key]).map_err(|_| "key is not UTF-8")?;
                ops.push(DecodedOp::Remove { key: key.into() });
            }
            _ => return Err("unknown op"),
        }
    }
    if at != payload.len() {
        return Err("bytes after the last op");
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_detects_damage() {
        let sb = Superblock {
            sector_size: 512,
            sectors: 100,
            seq: 7,
            active_gen: 3,
            max_gen: 4,
            active: 1,
        };
        let mut s = [0u8; 512];
        assert_eq!(Superblock::parse(&s), SbSlot::Blank);
        sb.emit(&mut s);
        assert_eq!(Superblock::parse(&s), SbSlot::Valid(sb));
        s[30] ^= 1;
        assert_eq!(Superblock::parse(&s), SbSlot::Invalid);
    }

    #[test]
    fn record_layout_round_trips() {
        for ss in [512u32, 4096] {
            for len in [0usize, 1, 463, 464, 465, 2000, 9000] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let h = RecordHeader {
                    generation: 2,
                    seq: 9,
                    payload_len: 0,
                    payload_crc: 0,
                    sectors: 0,
                    op_count: 0,
                    flags: 0,
                };
                let rec = encode_record(h, &payload, ss);
                assert_eq!(
                    rec.len() as u64,
                    record_sectors(len as u64, ss) * u64::from(ss)
                );
                let hdr = RecordHeader::parse(&rec).unwrap();
                assert_eq!(decode_record(&hdr, &rec, ss).unwrap(), payload);
                for at in [0, len / 2, len.saturating_sub(1)] {
                    if at < len {
                        let (s, b) = payload_position(at as u64, ss);
                        assert_eq!(rec[s as usize * ss as usize + b], payload[at]);
                    }
                }
                let mut torn = rec.clone();
                if torn.len() > ss as usize {
                    torn[ss as usize] = 0;
                    assert_eq!(decode_record(&hdr, &torn, ss), None);
                }
            }
        }
    }

    #[test]
    fn ops_round_trip_and_reject_garbage() {
        let mut p = Vec::new();
        encode_set(&mut p, "k", b"value", 5);
        encode_remove(&mut p, "gone");
        let ops = decode_ops(&p, 2).unwrap();
        assert_eq!(ops[1], DecodedOp::Remove { key: "gone".into() });
        let DecodedOp::Set {
            value_at,
            len,
            mtime,
            ..
        } = &ops[0]
        else {
            panic!()
        };
        assert_eq!(&p[*value_at as usize..][..*len as usize], b"value");
        assert_eq!(*mtime, 5);
        assert!(decode_ops(&p, 3).is_err());
        assert!(decode_ops(&p, 1).is_err());
        assert!(decode_ops(&[9, 0], 1).is_err());
    }
}
