//! virtio-blk (virtio 1.2 §5.2): feature bits, configuration layout, request header.
//!
//! Negotiated: VERSION_1, BLK_SIZE, RO, FLUSH, SIZE_MAX, EVENT_IDX. Each request is
//! one chain of three descriptors (header, data, status) pointing into a
//! pre-allocated slot; data is copied between the caller's buffer and the slot (a
//! bounce buffer), because a dropped or leaked request future must never leave the
//! device writing into memory the caller got back.

pub mod device;

pub use device::{BlkConfig, VirtioBlk};

/// Feature bits (virtio 1.2 §5.2.3).
pub mod features {
    /// `size_max` is valid: the largest single segment.
    pub const SIZE_MAX: u64 = 1 << 1;
    /// `seg_max` is valid.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The device is read-only.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` is valid.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// Cache flush command.
    pub const FLUSH: u64 = 1 << 9;
}

/// Configuration offsets (virtio 1.2 §5.2.4).
pub mod config {
    /// `capacity: le64`, in 512-byte sectors whatever `blk_size` says.
    pub const CAPACITY: usize = 0;
    /// `size_max: le32`.
    pub const SIZE_MAX: usize = 8;
    /// `seg_max: le32`.
    pub const SEG_MAX: usize = 12;
    /// `blk_size: le32`.
    pub const BLK_SIZE: usize = 20;
}

/// Request types (virtio 1.2 §5.2.6).
pub mod req {
    /// Read.
    pub const IN: u32 = 0;
    /// Write.
    pub const OUT: u32 = 1;
    /// Flush the write cache.
    pub const FLUSH: u32 = 4;
}

/// Status byte values (virtio 1.2 §5.2.6).
pub mod status {
    /// Success.
    pub const OK: u8 = 0;
    /// I/O error.
    pub const IOERR: u8 = 1;
    /// Unsupported request.
    pub const UNSUPP: u8 = 2;
}

/// The unit of `capacity` and of the request `sector` field.
pub const VIRTIO_SECTOR: u64 = 512;

/// Length of the request header.
pub const REQ_HDR_LEN: usize = 16;

/// Byte ranges of the request header.
mod field {
    use core::ops::Range;
    pub const TYPE: Range<usize> = 0..4;
    pub const RESERVED: Range<usize> = 4..8;
    pub const SECTOR: Range<usize> = 8..16;
}

/// The request header `struct virtio_blk_req` (first 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqHeader {
    /// [`req::IN`], [`req::OUT`] or [`req::FLUSH`].
    pub kind: u32,
    /// First 512-byte sector.
    pub sector: u64,
}

impl ReqHeader {
    /// Parses a header; `None` if `buf` is shorter than [`REQ_HDR_LEN`].
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let b = buf.get(..REQ_HDR_LEN)?;
        Some(Self {
            kind: u32::from_le_bytes(b[field::TYPE].try_into().ok()?),
            sector: u64::from_le_bytes(b[field::SECTOR].try_into().ok()?),
        })
    }

    /// Writes the header; `None` if `buf` is shorter than [`REQ_HDR_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Option<()> {
        let b = buf.get_mut(..REQ_HDR_LEN)?;
        b[field::TYPE].copy_from_slice(&self.kind.to_le_bytes());
        b[field::RESERVED].fill(0);
        b[field::SECTOR].copy_from_slice(&self.sector.to_le_bytes());
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = ReqHeader {
            kind: req::OUT,
            sector: 0x1122_3344_5566,
        };
        let mut b = [0xffu8; 16];
        h.emit(&mut b).unwrap();
        assert_eq!(&b[4..8], &[0; 4]);
        assert_eq!(ReqHeader::parse(&b), Some(h));
        assert_eq!(ReqHeader::parse(&b[..15]), None);
    }
}
