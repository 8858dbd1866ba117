//! The 512-byte tar header: a zero-copy `Header` view and a `HeaderRepr` to parse and emit.
//!
//! Layout from POSIX.1-2017 `pax` (ustar interchange format) and the GNU tar manual
//! (§ "Basic Tar Format"); numeric fields are octal ASCII or, for large values, GNU
//! base-256 (first byte has its high bit set).

use crate::TarError;

/// The size of a header and the unit in which entry data is padded.
pub const BLOCK_SIZE: usize = 512;

mod field {
    use core::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    /// Magic (6 bytes) and version (2 bytes), compared together.
    pub const MAGIC: Range<usize> = 257..265;
    pub const UNAME: Range<usize> = 265..297;
    pub const GNAME: Range<usize> = 297..329;
    pub const PREFIX: Range<usize> = 345..500;
}

/// POSIX ustar: `"ustar\0"` + version `"00"`.
pub const MAGIC_USTAR: [u8; 8] = *b"ustar\x0000";
/// GNU tar: `"ustar "` + `" \0"`.
pub const MAGIC_GNU: [u8; 8] = *b"ustar  \x00";
/// Name of the pseudo-entry that carries a GNU long name.
pub const GNU_LONGLINK_NAME: &[u8] = b"././@LongLink";

/// Which header dialect a block uses; decides whether the prefix field is a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// POSIX ustar: `prefix` + `/` + `name` is the path.
    Ustar,
    /// GNU: the prefix area holds other fields; long names use `L` entries.
    Gnu,
    /// Pre-POSIX v7: no magic, no prefix.
    V7,
}

/// The type flag of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `'0'`, `'\0'` or `'7'` (contiguous file).
    Regular,
    /// `'1'`.
    HardLink,
    /// `'2'`.
    Symlink,
    /// `'3'`.
    CharDevice,
    /// `'4'`.
    BlockDevice,
    /// `'5'`.
    Directory,
    /// `'6'`.
    Fifo,
    /// `'L'`: the data is the next entry's path.
    GnuLongName,
    /// `'K'`: the data is the next entry's link name.
    GnuLongLink,
    /// `'x'`: PAX records for the next entry.
    PaxExtended,
    /// `'g'`: PAX records for all later entries (skipped by the scanner).
    PaxGlobal,
    /// Any other flag; its data is skipped.
    Other(u8),
}

impl EntryKind {
    /// Decodes a type flag.
    pub fn from_flag(flag: u8) -> Self {
        match flag {
            b'0' | 0 | b'7' => Self::Regular,
            b'1' => Self::HardLink,
            b'2' => Self::Symlink,
            b'3' => Self::CharDevice,
            b'4' => Self::BlockDevice,
            b'5' => Self::Directory,
            b'6' => Self::Fifo,
            b'L' => Self::GnuLongName,
            b'K' => Self::GnuLongLink,
            b'x' => Self::PaxExtended,
            b'g' => Self::PaxGlobal,
            other => Self::Other(other),
        }
    }

    /// Encodes a type flag.
    pub fn flag(self) -> u8 {
        match self {
            Self::Regular => b'0',
            Self::HardLink => b'1',
            Self::Symlink => b'2',
            Self::CharDevice => b'3',
            Self::BlockDevice => b'4',
            Self::Directory => b'5',
            Self::Fifo => b'6',
            Self::GnuLongName => b'L',
            Self::GnuLongLink => b'K',
            Self::PaxExtended => b'x',
            Self::PaxGlobal => b'g',
            Self::Other(f) => f,
        }
    }
}

/// A zero-copy view of one header block.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer of at least [`BLOCK_SIZE`] bytes; afterwards no accessor panics.
    pub fn new_checked(buffer: T, offset: u64) -> Result<Self, TarError> {
        let len = buffer.as_ref().len();
        if len < BLOCK_SIZE {
            return Err(TarError::Truncated {
                offset,
                needed: (BLOCK_SIZE - len) as u64,
            });
        }
        Ok(Self { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Whether the whole block is zero (an end-of-archive marker).
    pub fn is_zero(&self) -> bool {
        self.bytes()[..BLOCK_SIZE].iter().all(|&b| b == 0)
    }

    /// The `name` field up to its first NUL.
    pub fn name(&self) -> &[u8] {
        cstr(&self.bytes()[field::NAME])
    }

    /// The `prefix` field up to its first NUL (meaningful for [`Format::Ustar`] only).
    pub fn prefix(&self) -> &[u8] {
        cstr(&self.bytes()[field::PREFIX])
    }

    /// The `linkname` field up to its first NUL.
    pub fn link_name(&self) -> &[u8] {
        cstr(&self.bytes()[field::LINKNAME])
    }

    /// The raw type flag.
    pub fn type_flag(&self) -> u8 {
        self.bytes()[field::TYPEFLAG]
    }

    /// The raw magic and version bytes.
    pub fn magic(&self) -> [u8; 8] {
        let mut m = [0; 8];
        m.copy_from_slice(&self.bytes()[field::MAGIC]);
        m
    }

    /// The header dialect, from the magic.
    pub fn format(&self, offset: u64) -> Result<Format, TarError> {
        match self.magic() {
            MAGIC_USTAR => Ok(Format::Ustar),
            MAGIC_GNU => Ok(Format::Gnu),
            [0, 0, 0, 0, 0, 0, 0, 0] => Ok(Format::V7),
            magic => Err(TarError::BadMagic { offset, magic }),
        }
    }

    /// The stored checksum.
    pub fn checksum(&self, offset: u64) -> Result<u64, TarError> {
        parse_number(&self.bytes()[field::CHKSUM], "chksum", offset)
    }

    /// The sum of the header's bytes with the checksum field counted as spaces.
    pub fn compute_checksum(&self) -> u64 {
        let b = &self.bytes()[..BLOCK_SIZE];
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        let chk: u64 = b[field::CHKSUM].iter().map(|&x| u64::from(x)).sum();
        sum - chk + 8 * u64::from(b' ')
    }

    /// Historic writers summed signed bytes; accepted as well.
    fn compute_signed_checksum(&self) -> u64 {
        let b = &self.bytes()[..BLOCK_SIZE];
        let sum: i64 = b.iter().map(|&x| i64::from(x as i8)).sum();
        let chk: i64 = b[field::CHKSUM].iter().map(|&x| i64::from(x as i8)).sum();
        (sum - chk + 8 * i64::from(b' ')) as u64
    }

    /// Verifies the checksum.
    pub fn verify_checksum(&self, offset: u64) -> Result<(), TarError> {
        let stored = self.checksum(offset)?;
        let computed = self.compute_checksum();
        if stored == computed || stored == self.compute_signed_checksum() {
            Ok(())
        } else {
            Err(TarError::BadChecksum {
                offset,
                stored,
                computed,
            })
        }
    }

    /// The `mode` field.
    pub fn mode(&self, offset: u64) -> Result<u64, TarError> {
        parse_number(&self.bytes()[field::MODE], "mode", offset)
    }

    /// The `size` field.
    pub fn size(&self, offset: u64) -> Result<u64, TarError> {
        parse_number(&self.bytes()[field::SIZE], "size", offset)
    }

    /// The `mtime` field (seconds since the Unix epoch).
    pub fn mtime(&self, offset: u64) -> Result<u64, TarError> {
        parse_number(&self.bytes()[field::MTIME], "mtime", offset)
    }

    /// The `uid` field.
    pub fn uid(&self, offset: u64) -> Result<u64, TarError> {
        parse_number(&self.bytes()[field::UID], "uid", offset)
    }

    /// The `gid` field.
    pub fn gid(&self, offset: u64) -> Result<u64, TarError> {
        parse_number(&self.bytes()[field::GID], "gid", offset)
    }
}

/// The fields of a header, parsed and checked (checksum, magic, numbers).
///
/// Paths here are raw header bytes; the scanner combines them with GNU long names and
/// PAX records and validates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRepr<'a> {
    /// The `name` field.
    pub name: &'a [u8],
    /// The `prefix` field (empty unless [`Format::Ustar`]).
    pub prefix: &'a [u8],
    /// The `linkname` field.
    pub link_name: &'a [u8],
    /// Entry type.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner ids.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Data size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// Dialect.
    pub format: Format,
}

impl<'a> HeaderRepr<'a> {
    /// Parses and checks a header found at byte `offset` of the archive.
    pub fn parse(header: &'a Header<&'a [u8]>, offset: u64) -> Result<Self, TarError> {
        let format = header.format(offset)?;
        header.verify_checksum(offset)?;
        Ok(Self {
            name: header.name(),
            prefix: if format == Format::Ustar {
                header.prefix()
            } else {
                &[]
            },
            link_name: header.link_name(),
            kind: EntryKind::from_flag(header.type_flag()),
            mode: (header.mode(offset)? & 0o7777) as u32,
            uid: header.uid(offset)?,
            gid: header.gid(offset)?,
            size: header.size(offset)?,
            mtime: header.mtime(offset)?,
            format,
        })
    }

    /// Bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        BLOCK_SIZE
    }

    /// Writes the header, including its checksum, into the first [`BLOCK_SIZE`] bytes
    /// of `header`. Names longer than their fields are cut: callers split long paths
    /// first (the builder uses GNU `L` entries).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        let b = &mut header.buffer.as_mut()[..BLOCK_SIZE];
        b.fill(0);
        put_str(&mut b[field::NAME], self.name);
        put_number(&mut b[field::MODE], u64::from(self.mode));
        put_number(&mut b[field::UID], self.uid);
        put_number(&mut b[field::GID], self.gid);
        put_number(&mut b[field::SIZE], self.size);
        put_number(&mut b[field::MTIME], self.mtime);
        b[field::TYPEFLAG] = self.kind.flag();
        put_str(&mut b[field::LINKNAME], self.link_name);
        b[field::MAGIC].copy_from_slice(match self.format {
            Format::Ustar => &MAGIC_USTAR,
            Format::Gnu => &MAGIC_GNU,
            Format::V7 => &[0; 8],
        });
        if self.format != Format::V7 {
            put_str(&mut b[field::UNAME], b"root");
            put_str(&mut b[field::GNAME], b"root");
        }
        if self.format == Format::Ustar {
            put_str(&mut b[field::PREFIX], self.prefix);
        }
        let sum = Header::new_unchecked(&*b).compute_checksum();
        // Six octal digits, NUL, space: the layout every tar writes.
        let chk = &mut b[field::CHKSUM];
        put_octal(&mut chk[..7], sum);
        chk[7] = b' ';
    }
}

/// The bytes of a field up to its first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

/// Octal digits, zero-padded, in all but the last byte, which is NUL.
fn put_octal(field: &mut [u8], mut v: u64) {
    let digits = field.len() - 1;
    for i in (0..digits).rev() {
        field[i] = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

/// Octal if it fits, else GNU base-256.
fn put_number(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || v < (1u64 << (3 * digits)) {
        put_octal(field, v);
    } else {
        field.fill(0);
        field[0] = 0x80;
        let n = field.len();
        field[n - 8..].copy_from_slice(&v.to_be_bytes());
    }
}

/// Parses an octal field (leading spaces, digits, then NUL/space padding) or a GNU
/// base-256 field. An empty field is 0.
pub(crate) fn parse_number(raw: &[u8], name: &'static str, offset: u64) -> Result<u64, TarError> {
    let bad = || {
        let mut value = [0; 12];
        let n = raw.len().min(12);
        value[..n].copy_from_slice(&raw[..n]);
        TarError::BadNumber {
            offset,
            field: name,
            value,
        }
    };
    let overflow = || TarError::NumberTooLarge {
        offset,
        field: name,
    };
    match raw.first() {
        Some(&0x80) => {
            let mut v: u64 = 0;
            for &b in &raw[1..] {
                if v >> 56 != 0 {
                    return Err(overflow());
                }
                v = (v << 8) | u64::from(b);
            }
            return Ok(v);
        }
        Some(&b) if b & 0x80 != 0 => return Err(bad()), // negative base-256
        _ => {}
    }
    let mut i = 0;
    while i < raw.len() && raw[i] == b' ' {
        i += 1;
    }
    let mut v: u64 = 0;
    while i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
        if v >> 61 != 0 {
            return Err(overflow());
        }
        v = (v << 3) | u64::from(raw[i] - b'0');
        i += 1;
    }
    if raw[i..].iter().all(|&b| b == 0 || b == b' ') {
        Ok(v)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; BLOCK_SIZE] {
        let mut b = [0; BLOCK_SIZE];
        let repr = HeaderRepr {
            name: b"hello.txt",
            prefix: b"dir",
            link_name: b"",
            kind: EntryKind::Regular,
            mode: 0o644,
            uid: 1000,
            gid: 100,
            size: 12345,
            mtime: 1_700_000_000,
            format: Format::Ustar,
        };
        repr.emit(&mut Header::new_unchecked(&mut b[..]));
        b
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let b = sample();
        let h = Header::new_checked(&b[..], 0).unwrap();
        let r = HeaderRepr::parse(&h, 0).unwrap();
        assert_eq!(r.name, b"hello.txt");
        assert_eq!(r.prefix, b"dir");
        assert_eq!(r.size, 12345);
        assert_eq!(r.mtime, 1_700_000_000);
        assert_eq!(r.mode, 0o644);
        assert_eq!(r.kind, EntryKind::Regular);
        assert_eq!(r.format, Format::Ustar);
    }

    #[test]
    fn short_buffer_is_truncated() {
        assert_eq!(
            Header::new_checked(&[0u8; 100][..], 7).unwrap_err(),
            TarError::Truncated {
                offset: 7,
                needed: 412
            }
        );
    }

    #[test]
    fn bad_checksum_is_reported() {
        let mut b = sample();
        b[0] ^= 1;
        let h = Header::new_checked(&b[..], 512).unwrap();
        assert!(matches!(
            HeaderRepr::parse(&h, 512),
            Err(TarError::BadChecksum { offset: 512, .. })
        ));
    }

    #[test]
    fn bad_magic_is_reported() {
        let mut b = sample();
        b[257] = b'X';
        let h = Header::new_checked(&b[..], 0).unwrap();
        assert!(matches!(
            HeaderRepr::parse(&h, 0),
            Err(TarError::BadMagic { .. })
        ));
    }

    #[test]
    fn numbers_parse_octal_base256_and_reject_junk() {
        assert_eq!(parse_number(b"0000644\0", "m", 0), Ok(0o644));
        assert_eq!(parse_number(b"  644 \0\0", "m", 0), Ok(0o644));
        assert_eq!(parse_number(b"\0\0\0\0", "m", 0), Ok(0));
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "s", 0),
            Ok(1 << 32)
        );
        assert!(matches!(
            parse_number(b"0009\0", "m", 3),
            Err(TarError::BadNumber { offset: 3, .. })
        ));
        assert!(matches!(
            parse_number(b"12 3", "m", 0),
            Err(TarError::BadNumber { .. })
        ));
        assert!(matches!(
            parse_number(&[0xff; 12], "s", 0),
            Err(TarError::BadNumber { .. })
        ));
        assert!(matches!(
            parse_number(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "s", 0),
            Err(TarError::NumberTooLarge { .. })
        ));
        assert!(matches!(
            parse_number(b"7777777777777777777777777", "s", 0),
            Err(TarError::NumberTooLarge { .. })
        ));
    }

    #[test]
    fn large_sizes_use_base256() {
        let mut f = [0u8; 12];
        put_number(&mut f, 1 << 40);
        assert_eq!(f[0], 0x80);
        assert_eq!(parse_number(&f, "size", 0), Ok(1 << 40));
        put_number(&mut f, 0o777);
        assert_eq!(&f, b"00000000777\0");
    }
}
