//! virtio-net (virtio 1.2 §5.1): feature bits, configuration layout, the per-frame
//! header, and receive-checksum completion.
//!
//! Negotiated: VERSION_1, MAC, STATUS, MTU (when the device's MTU fits our buffers),
//! EVENT_IDX. Not negotiated: checksum and segmentation offloads (CSUM, GUEST_CSUM,
//! TSO/UFO) and MRG_RXBUF: every frame fits one pre-allocated buffer and carries a
//! complete checksum. A device that sets NEEDS_CSUM anyway (Firecracker has been
//! seen to) gets the checksum completed in software, so the stack never sees a
//! partial one.

pub mod device;

pub use device::{NetConfig, NetStats, VirtioNet};

/// Feature bits (virtio 1.2 §5.1.3).
pub mod features {
    /// Device handles packets with partial checksum (TX offload).
    pub const CSUM: u64 = 1 << 0;
    /// Driver handles packets with partial checksum (RX).
    pub const GUEST_CSUM: u64 = 1 << 1;
    /// The `mtu` configuration field is valid.
    pub const MTU: u64 = 1 << 3;
    /// The `mac` configuration field is valid.
    pub const MAC: u64 = 1 << 5;
    /// Receive buffers may be merged.
    pub const MRG_RXBUF: u64 = 1 << 15;
    /// The `status` configuration field is valid.
    pub const STATUS: u64 = 1 << 16;
}

/// Configuration offsets (virtio 1.2 §5.1.4).
pub mod config {
    /// `mac[6]`.
    pub const MAC: usize = 0;
    /// `status: le16`; bit 0 LINK_UP.
    pub const STATUS: usize = 6;
    /// `mtu: le16`.
    pub const MTU: usize = 10;
    /// `status` bit: link is up.
    pub const LINK_UP: u16 = 1;
}

/// Length of `struct virtio_net_hdr` with VERSION_1 (`num_buffers` always present).
pub const HDR_LEN: usize = 12;
/// Header flag: the checksum at `csum_start + csum_offset` must be completed.
pub const HDR_F_NEEDS_CSUM: u8 = 1;
/// Header flag: the checksum was validated by the device.
pub const HDR_F_DATA_VALID: u8 = 2;

/// Byte ranges of the header (Packet/Repr style, STYLE.md rule 2).
mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Range<usize> = 2..4;
    pub const GSO_SIZE: Range<usize> = 4..6;
    pub const CSUM_START: Range<usize> = 6..8;
    pub const CSUM_OFFSET: Range<usize> = 8..10;
    pub const NUM_BUFFERS: Range<usize> = 10..12;
}

/// A parsed `virtio_net_hdr` (virtio 1.2 §5.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetHdr {
    /// NEEDS_CSUM / DATA_VALID.
    pub flags: u8,
    /// GSO type (0: none).
    pub gso_type: u8,
    /// Header length hint.
    pub hdr_len: u16,
    /// GSO segment size.
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where the checksum goes, relative to `csum_start`.
    pub csum_offset: u16,
    /// Buffers merged (1 without MRG_RXBUF).
    pub num_buffers: u16,
}

fn le16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    b.get(r)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

impl NetHdr {
    /// Parses the first [`HDR_LEN`] bytes; `None` if `buf` is shorter.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        if buf.len() < HDR_LEN {
            return None;
        }
        Some(Self {
            flags: buf[field::FLAGS],
            gso_type: buf[field::GSO_TYPE],
            hdr_len: le16(buf, field::HDR_LEN),
            gso_size: le16(buf, field::GSO_SIZE),
            csum_start: le16(buf, field::CSUM_START),
            csum_offset: le16(buf, field::CSUM_OFFSET),
            num_buffers: le16(buf, field::NUM_BUFFERS),
        })
    }

    /// Writes the header into the first [`HDR_LEN`] bytes; `None` if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) -> Option<()> {
        let b = buf.get_mut(..HDR_LEN)?;
        b[field::FLAGS] = self.flags;
        b[field::GSO_TYPE] = self.gso_type;
        b[field::HDR_LEN].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[field::GSO_SIZE].copy_from_slice(&self.gso_size.to_le_bytes());
        b[field::CSUM_START].copy_from_slice(&self.csum_start.to_le_bytes());
        b[field::CSUM_OFFSET].copy_from_slice(&self.csum_offset.to_le_bytes());
        b[field::NUM_BUFFERS].copy_from_slice(&self.num_buffers.to_le_bytes());
        Some(())
    }
}

/// Why a received frame's partial checksum could not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "NEEDS_CSUM with csum_start {csum_start} + csum_offset {csum_offset} outside a {frame_len}-byte frame"
)]
pub struct CsumError {
    /// `csum_start`.
    pub csum_start: u16,
    /// `csum_offset`.
    pub csum_offset: u16,
    /// Frame length.
    pub frame_len: usize,
}

/// Completes a NEEDS_CSUM frame (virtio 1.2 §5.1.6.4.1): the Internet checksum of
/// `frame[csum_start..]`, whose checksum field already holds the pseudo-header sum,
/// is stored at `csum_start + csum_offset` (a result of 0 is sent as 0xffff, as
/// Linux does, which is valid for TCP and required for UDP).
pub fn complete_checksum(
    frame: &mut [u8],
    csum_start: u16,
    csum_offset: u16,
) -> Result<(), CsumError> {
    let err = CsumError {
        csum_start,
        csum_offset,
        frame_len: frame.len(),
    };
    let start = usize::from(csum_start);
    let at = start + usize::from(csum_offset);
    if at + 2 > frame.len() {
        return Err(err);
    }
    let mut sum: u32 = 0;
    let mut chunks = frame[start..].chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = match !(sum as u16) {
        0 => 0xffff,
        c => c,
    };
    frame[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = NetHdr {
            flags: 1,
            gso_type: 0,
            hdr_len: 54,
            gso_size: 0,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 1,
        };
        let mut b = [0u8; 12];
        h.emit(&mut b).unwrap();
        assert_eq!(NetHdr::parse(&b), Some(h));
        assert_eq!(NetHdr::parse(&b[..11]), None);
        assert_eq!(h.emit(&mut [0u8; 4]), None);
    }

    /// An IPv4/UDP frame whose checksum field holds the pseudo-header sum, as a
    /// device with checksum offload hands it over.
    fn partial_udp() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 5];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&33u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let udp = &mut f[34..];
        udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        udp[2..4].copy_from_slice(&53u16.to_be_bytes());
        udp[4..6].copy_from_slice(&13u16.to_be_bytes());
        udp[8..].copy_from_slice(b"hello");
        // Pseudo header: src, dst, proto, length — summed, not complemented.
        let words = [0x0a00u32, 0x0001, 0x0a00, 0x0002, 17, 13];
        let mut s: u32 = words.iter().sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        udp[6..8].copy_from_slice(&(s as u16).to_be_bytes());
        f
    }

    fn verify_udp(f: &[u8]) -> bool {
        // Sum of pseudo header + UDP segment incl. checksum must be 0xffff.
        let mut s: u32 = [0x0a00u32, 0x0001, 0x0a00, 0x0002, 17, 13].iter().sum();
        let seg = &f[34..];
        for c in seg.chunks(2) {
            s += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s == 0xffff
    }

    #[test]
    fn completes_partial_udp_checksum() {
        let mut f = partial_udp();
        assert!(!verify_udp(&f));
        complete_checksum(&mut f, 34, 6).unwrap();
        assert!(verify_udp(&f));
    }

    #[test]
    fn rejects_checksum_positions_outside_the_frame() {
        let mut f = vec![0u8; 40];
        assert_eq!(
            complete_checksum(&mut f, 34, 5).unwrap_err(),
            CsumError {
                csum_start: 34,
                csum_offset: 5,
                frame_len: 40
            }
        );
        assert!(complete_checksum(&mut f, u16::MAX, u16::MAX).is_err());
        assert!(complete_checksum(&mut f, 38, 0).is_ok());
    }
}
