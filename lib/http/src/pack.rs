//! The static-site pack: a compact, read-only binary format holding a site's files,
//! viewed zero-copy ([`Pack`], [`EntryRecord`]) and described by [`EntryRepr`].
//!
//! Layout (all integers little-endian; offsets count from the start of the pack):
//!
//! ```text
//! header   16 bytes  magic "OASWWW\0\x01" | entry count u32 | pack length u32
//! records  48 bytes each, sorted by path (bytewise, strictly increasing):
//!            path off u32 | path len u16 | content-type len u8 | flags u8
//!            content-type off u32 | body off u32 | body len u32
//!            gzip off u32 | gzip len u32 | etag u64 | last-modified u64 | reserved u32 (0)
//! data     paths, content types and bodies, anywhere after the records
//! ```
//!
//! [`Pack::new_checked`] validates every record once (bounds, path form and order,
//! content-type characters, flags), so lookups afterwards never fail or panic.

use core::cmp::Ordering;

/// Pack magic: format name and version 1.
pub const MAGIC: [u8; 8] = *b"OASWWW\x00\x01";
/// Longest entry path in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Flag: the entry has a gzip variant (`gzip len` > 0).
pub const FLAG_GZIP: u8 = 1 << 0;
/// Flag: the content type is compressible, so responses carry `Vary: Accept-Encoding`.
pub const FLAG_COMPRESSIBLE: u8 = 1 << 1;
const KNOWN_FLAGS: u8 = FLAG_GZIP | FLAG_COMPRESSIBLE;

mod field {
    use core::ops::Range;

    pub const MAGIC: Range<usize> = 0..8;
    pub const COUNT: Range<usize> = 8..12;
    pub const LENGTH: Range<usize> = 12..16;
    pub const HEADER_LEN: usize = 16;

    pub const PATH_OFF: Range<usize> = 0..4;
    pub const PATH_LEN: Range<usize> = 4..6;
    pub const CTYPE_LEN: usize = 6;
    pub const FLAGS: usize = 7;
    pub const CTYPE_OFF: Range<usize> = 8..12;
    pub const BODY_OFF: Range<usize> = 12..16;
    pub const BODY_LEN: Range<usize> = 16..20;
    pub const GZIP_OFF: Range<usize> = 20..24;
    pub const GZIP_LEN: Range<usize> = 24..28;
    pub const ETAG: Range<usize> = 28..36;
    pub const MTIME: Range<usize> = 36..44;
    pub const RESERVED: Range<usize> = 44..48;
    pub const RECORD_LEN: usize = 48;
}

/// Size of the pack header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Size of one entry record.
pub const RECORD_LEN: usize = field::RECORD_LEN;

/// Why bytes are not a valid pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// Shorter than its header or its records.
    #[error("pack of {len} bytes is truncated: at least {need} bytes needed")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the header and records require.
        need: usize,
    },
    /// Wrong magic or version.
    #[error("pack magic/version is not OASWWW v1")]
    BadMagic,
    /// The length in the header disagrees with the bytes given.
    #[error("pack header says {header} bytes but {actual} were given")]
    LengthMismatch {
        /// Length in the header.
        header: u32,
        /// Length of the buffer.
        actual: usize,
    },
    /// A path, content type or body range lies outside the pack.
    #[error("entry {index}: {what} range {off}+{len} lies outside the {pack_len}-byte pack")]
    OutOfBounds {
        /// Entry index.
        index: usize,
        /// Which range.
        what: &'static str,
        /// Range start.
        off: u32,
        /// Range length.
        len: u32,
        /// Pack length.
        pack_len: usize,
    },
    /// A path that is not `/`-prefixed UTF-8 of at most [`MAX_PATH_LEN`] bytes, or that
    /// contains NUL, a `.`/`..` segment or an empty segment.
    #[error(
        "entry {index}: path is not a normalized absolute path of at most {MAX_PATH_LEN} bytes"
    )]
    BadPath {
        /// Entry index.
        index: usize,
    },
    /// Paths not in strictly increasing byte order (lookups binary-search).
    #[error("entry {index}: path does not sort strictly after the previous entry's")]
    NotSorted {
        /// Entry index.
        index: usize,
    },
    /// A content type that is empty or has bytes outside visible ASCII and space.
    #[error("entry {index}: content type is empty or has bytes outside printable ASCII")]
    BadContentType {
        /// Entry index.
        index: usize,
    },
    /// Unknown flag bits, a gzip flag that disagrees with the gzip length, or non-zero
    /// reserved bytes.
    #[error("entry {index}: flags 0x{flags:02x} are invalid for this record")]
    BadFlags {
        /// Entry index.
        index: usize,
        /// The flags byte.
        flags: u8,
    },
}

fn u16_at(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    b.get(r)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}
fn u32_at(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    b.get(r)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}
fn u64_at(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    b.get(r)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
fn put(b: &mut [u8], r: core::ops::Range<usize>, v: &[u8]) {
    if let Some(dst) = b.get_mut(r) {
        dst.copy_from_slice(v);
    }
}

/// A read-only view of a whole pack.
#[derive(Clone, Copy, Debug)]
pub struct Pack<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Pack<T> {
    /// Wraps bytes without checking them: accessors return zeros/empties on bad data.
    pub const fn new_unchecked(buffer: T) -> Self {
        Pack { buffer }
    }

    /// Wraps bytes after [`check`](Pack::check) accepts them.
    pub fn new_checked(buffer: T) -> Result<Self, PackError> {
        let pack = Self::new_unchecked(buffer);
        pack.check()?;
        Ok(pack)
    }

    /// Validates header, every record, and the path order.
    pub fn check(&self) -> Result<(), PackError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(PackError::Truncated {
                len: b.len(),
                need: HEADER_LEN,
            });
        }
        if b.get(field::MAGIC) != Some(&MAGIC[..]) {
            return Err(PackError::BadMagic);
        }
        let header_len = u32_at(b, field::LENGTH);
        if header_len as usize != b.len() {
            return Err(PackError::LengthMismatch {
                header: header_len,
                actual: b.len(),
            });
        }
        let count = self.entry_count();
        let need = count
            .checked_mul(RECORD_LEN)
            .and_then(|n| n.checked_add(HEADER_LEN));
        match need {
            Some(need) if need <= b.len() => {}
            _ => {
                return Err(PackError::Truncated {
                    len: b.len(),
                    need: need.unwrap_or(usize::MAX),
                });
            }
        }
        let mut prev: Option<&[u8]> = None;
        for index in 0..count {
            let record = self.record(index).ok_or(PackError::Truncated {
                len: b.len(),
                need: 0,
            })?;
            let repr = EntryRepr::parse(&record, index)?;
            let bound = |what, off: u32, len: u32| {
                let end = u64::from(off) + u64::from(len);
                if end > b.len() as u64 {
                    Err(PackError::OutOfBounds {
                        index,
                        what,
                        off,
                        len,
                        pack_len: b.len(),
                    })
                } else {
                    Ok(b.get(off as usize..end as usize).unwrap_or_default())
                }
            };
            let path = bound("path", repr.path_off, u32::from(repr.path_len))?;
            let ctype = bound(
                "content type",
                repr.content_type_off,
                u32::from(repr.content_type_len),
            )?;
            bound("body", repr.body_off, repr.body_len)?;
            bound("gzip", repr.gzip_off, repr.gzip_len)?;
            if !is_valid_path(path) {
                return Err(PackError::BadPath { index });
            }
            if ctype.is_empty() || !ctype.iter().all(|&c| (0x20..0x7f).contains(&c)) {
                return Err(PackError::BadContentType { index });
            }
            if prev.is_some_and(|p| p >= path) {
                return Err(PackError::NotSorted { index });
            }
            prev = Some(path);
        }
        Ok(())
    }

    /// Number of entries.
    pub fn entry_count(&self) -> usize {
        u32_at(self.buffer.as_ref(), field::COUNT) as usize
    }

    /// The record of entry `index`, if the buffer holds it.
    pub fn record(&self, index: usize) -> Option<EntryRecord<&[u8]>> {
        let start = index.checked_mul(RECORD_LEN)?.checked_add(HEADER_LEN)?;
        let bytes = self
            .buffer
            .as_ref()
            .get(start..start.checked_add(RECORD_LEN)?)?;
        Some(EntryRecord::new_unchecked(bytes))
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Pack<T> {
    /// Writes the header for `count` entries and a total length of the buffer's length.
    pub fn emit_header(&mut self, count: u32) {
        let b = self.buffer.as_mut();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        put(b, field::MAGIC, &MAGIC);
        put(b, field::COUNT, &count.to_le_bytes());
        put(b, field::LENGTH, &len.to_le_bytes());
    }

    /// The mutable record of entry `index`.
    pub fn record_mut(&mut self, index: usize) -> Option<EntryRecord<&mut [u8]>> {
        let start = index.checked_mul(RECORD_LEN)?.checked_add(HEADER_LEN)?;
        let bytes = self
            .buffer
            .as_mut()
            .get_mut(start..start.checked_add(RECORD_LEN)?)?;
        Some(EntryRecord::new_unchecked(bytes))
    }
}

/// Whether `path` is a normalized absolute path: `/`-prefixed UTF-8, at most
/// [`MAX_PATH_LEN`] bytes, no NUL, no empty, `.` or `..` segments (a trailing `/` is
/// not allowed either: directories are served through their `index.html`).
pub fn is_valid_path(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    path.len() <= MAX_PATH_LEN
        && core::str::from_utf8(path).is_ok()
        && !path.contains(&0)
        && rest
            .split(|&b| b == b'/')
            .all(|seg| !seg.is_empty() && seg != b"." && seg != b"..")
}

/// A zero-copy view of one 48-byte entry record.
#[derive(Debug)]
pub struct EntryRecord<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EntryRecord<T> {
    /// Wraps a record's bytes (accessors return zero when shorter than [`RECORD_LEN`]).
    pub const fn new_unchecked(buffer: T) -> Self {
        EntryRecord { buffer }
    }

    /// Wraps a record's bytes if they are long enough.
    pub fn new_checked(buffer: T) -> Result<Self, PackError> {
        let len = buffer.as_ref().len();
        if len < RECORD_LEN {
            return Err(PackError::Truncated {
                len,
                need: RECORD_LEN,
            });
        }
        Ok(Self::new_unchecked(buffer))
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Path offset.
    pub fn path_off(&self) -> u32 {
        u32_at(self.b(), field::PATH_OFF)
    }
    /// Path length.
    pub fn path_len(&self) -> u16 {
        u16_at(self.b(), field::PATH_LEN)
    }
    /// Content-type length.
    pub fn content_type_len(&self) -> u8 {
        self.b().get(field::CTYPE_LEN).copied().unwrap_or(0)
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.b().get(field::FLAGS).copied().unwrap_or(0)
    }
    /// Content-type offset.
    pub fn content_type_off(&self) -> u32 {
        u32_at(self.b(), field::CTYPE_OFF)
    }
    /// Body offset.
    pub fn body_off(&self) -> u32 {
        u32_at(self.b(), field::BODY_OFF)
    }
    /// Body length.
    pub fn body_len(&self) -> u32 {
        u32_at(self.b(), field::BODY_LEN)
    }
    /// Gzip variant offset.
    pub fn gzip_off(&self) -> u32 {
        u32_at(self.b(), field::GZIP_OFF)
    }
    /// Gzip variant length (0: none).
    pub fn gzip_len(&self) -> u32 {
        u32_at(self.b(), field::GZIP_LEN)
    }
    /// Content hash used as the strong ETag.
    pub fn etag(&self) -> u64 {
        u64_at(self.b(), field::ETAG)
    }
    /// Last modification, unix seconds.
    pub fn last_modified(&self) -> u64 {
        u64_at(self.b(), field::MTIME)
    }
    /// Reserved word (must be zero).
    pub fn reserved(&self) -> u32 {
        u32_at(self.b(), field::RESERVED)
    }
}

/// The parsed form of an [`EntryRecord`]: offsets and metadata of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EntryRepr {
    /// Path offset.
    pub path_off: u32,
    /// Path length.
    pub path_len: u16,
    /// Content-type offset.
    pub content_type_off: u32,
    /// Content-type length.
    pub content_type_len: u8,
    /// [`FLAG_GZIP`] | [`FLAG_COMPRESSIBLE`].
    pub flags: u8,
    /// Body offset.
    pub body_off: u32,
    /// Body length.
    pub body_len: u32,
    /// Gzip variant offset.
    pub gzip_off: u32,
    /// Gzip variant length (0 when there is none).
    pub gzip_len: u32,
    /// Content hash (strong ETag).
    pub etag: u64,
    /// Last modification, unix seconds.
    pub last_modified: u64,
}

impl EntryRepr {
    /// Reads a record; `index` only labels errors. Checks flags and reserved bytes
    /// (ranges are checked against the pack by [`Pack::check`]).
    pub fn parse<T: AsRef<[u8]>>(record: &EntryRecord<T>, index: usize) -> Result<Self, PackError> {
        if record.b().len() < RECORD_LEN {
            return Err(PackError::Truncated {
                len: record.b().len(),
                need: RECORD_LEN,
            });
        }
        let flags = record.flags();
        let gzip_flag = flags & FLAG_GZIP != 0;
        if flags & !KNOWN_FLAGS != 0
            || gzip_flag != (record.gzip_len() != 0)
            || record.reserved() != 0
        {
            return Err(PackError::BadFlags { index, flags });
        }
        Ok(EntryRepr {
            path_off: record.path_off(),
            path_len: record.path_len(),
            content_type_off: record.content_type_off(),
            content_type_len: record.content_type_len(),
            flags,
            body_off: record.body_off(),
            body_len: record.body_len(),
            gzip_off: record.gzip_off(),
            gzip_len: record.gzip_len(),
            etag: record.etag(),
            last_modified: record.last_modified(),
        })
    }

    /// Bytes [`emit`](EntryRepr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        RECORD_LEN
    }

    /// Writes this record.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, record: &mut EntryRecord<T>) {
        let b = record.buffer.as_mut();
        put(b, field::PATH_OFF, &self.path_off.to_le_bytes());
        put(b, field::PATH_LEN, &self.path_len.to_le_bytes());
        put(
            b,
            field::CTYPE_LEN..field::CTYPE_LEN + 1,
            &[self.content_type_len],
        );
        put(b, field::FLAGS..field::FLAGS + 1, &[self.flags]);
        put(b, field::CTYPE_OFF, &self.content_type_off.to_le_bytes());
        put(b, field::BODY_OFF, &self.body_off.to_le_bytes());
        put(b, field::BODY_LEN, &self.body_len.to_le_bytes());
        put(b, field::GZIP_OFF, &self.gzip_off.to_le_bytes());
        put(b, field::GZIP_LEN, &self.gzip_len.to_le_bytes());
        put(b, field::ETAG, &self.etag.to_le_bytes());
        put(b, field::MTIME, &self.last_modified.to_le_bytes());
        put(b, field::RESERVED, &0u32.to_le_bytes());
    }
}

/// FNV-1a, 64 bits: the content hash the builder stores as each entry's strong ETag.
/// Not cryptographic: it only has to change when content changes.
pub fn content_hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One entry of a validated pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Normalized absolute path, e.g. `/css/site.css`.
    pub path: &'a str,
    /// Media type, e.g. `text/html`.
    pub content_type: &'a str,
    /// Identity body.
    pub body: &'a [u8],
    /// Gzip variant, when the builder found it smaller.
    pub gzip: Option<&'a [u8]>,
    /// Content hash; see [`Entry::etag`].
    pub digest: u64,
    /// Last modification, unix seconds.
    pub last_modified: u64,
    /// Whether responses for this entry vary on `Accept-Encoding`.
    pub compressible: bool,
}

impl Entry<'_> {
    /// Identity body size in bytes.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// The strong ETag of the identity (`gzip == false`) or gzip representation.
    pub fn etag(&self, gzip: bool) -> ETag {
        ETag {
            digest: self.digest,
            gzip,
        }
    }
}

/// A strong entity tag, `"<16 hex digits>"`, with `-gz` appended for the gzip variant
/// (a different representation needs a different strong tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ETag {
    /// Content hash.
    pub digest: u64,
    /// Whether this is the gzip representation.
    pub gzip: bool,
}

impl ETag {
    /// The opaque tag without quotes, in a fixed buffer: (bytes, length).
    pub fn opaque(&self) -> ([u8; 19], usize) {
        let mut out = [0u8; 19];
        for (i, slot) in out.iter_mut().take(16).enumerate() {
            let nibble = (self.digest >> (60 - 4 * i)) & 0xf;
            *slot = b"0123456789abcdef"
                .get(nibble as usize)
                .copied()
                .unwrap_or(b'0');
        }
        if self.gzip {
            put(&mut out, 16..19, b"-gz");
            (out, 19)
        } else {
            (out, 16)
        }
    }
}

impl core::fmt::Display for ETag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (bytes, len) = self.opaque();
        let s = bytes
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("");
        write!(f, "\"{s}\"")
    }
}

/// A read-only key-value store of static files over a validated pack: the runtime half
/// of the site pack. `'a` is usually `'static` (a pack embedded with `include_bytes!`).
#[derive(Clone, Copy, Debug)]
pub struct StaticSite<'a> {
    pack: Pack<&'a [u8]>,
}

impl<'a> StaticSite<'a> {
    /// Validates `bytes` as a pack.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PackError> {
        Ok(StaticSite {
            pack: Pack::new_checked(bytes)?,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.pack.entry_count()
    }

    /// Whether the site has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry at `path` (exact, already normalized), if any. Binary search, no allocation.
    pub fn get(&self, path: &str) -> Option<Entry<'a>> {
        self.get_bytes(path.as_bytes())
    }

    /// [`get`](StaticSite::get) for a byte path.
    pub fn get_bytes(&self, path: &[u8]) -> Option<Entry<'a>> {
        let index = self.search(path).ok()?;
        self.entry(index)
    }

    /// Whether some entry's path starts with `prefix` (e.g. `/docs/`: the directory exists).
    pub fn has_prefix(&self, prefix: &[u8]) -> bool {
        let index = match self.search(prefix) {
            Ok(i) | Err(i) => i,
        };
        self.path_at(index).is_some_and(|p| p.starts_with(prefix))
    }

    /// All entries in path order.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.entry(i))
    }

    fn search(&self, path: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.path_at(mid).unwrap_or_default().cmp(path) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn slice(&self, off: u32, len: u32) -> &'a [u8] {
        let bytes: &'a [u8] = self.pack.buffer;
        let start = off as usize;
        bytes
            .get(start..start.saturating_add(len as usize))
            .unwrap_or_default()
    }

    fn path_at(&self, index: usize) -> Option<&'a [u8]> {
        let r = self.pack.record(index)?;
        Some(self.slice(r.path_off(), u32::from(r.path_len())))
    }

    fn entry(&self, index: usize) -> Option<Entry<'a>> {
        let r = self.pack.record(index)?;
        let repr = EntryRepr::parse(&r, index).ok()?;
        let text = |off, len| core::str::from_utf8(self.slice(off, len)).ok();
        Some(Entry {
            path: text(repr.path_off, u32::from(repr.path_len))?,
            content_type: text(repr.content_type_off, u32::from(repr.content_type_len))?,
            body: self.slice(repr.body_off, repr.body_len),
            gzip: (repr.gzip_len != 0).then(|| self.slice(repr.gzip_off, repr.gzip_len)),
            digest: repr.etag,
            last_modified: repr.last_modified,
            compressible: repr.flags & FLAG_COMPRESSIBLE != 0,
        })
    }
}

/// Why [`PackBuilder`] refused an entry or could not lay out the pack.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackBuildError {
    /// See [`is_valid_path`].
    #[error("path {path:?} is not a normalized absolute path of at most {MAX_PATH_LEN} bytes")]
    InvalidPath {
        /// The path.
        path: alloc::string::String,
    },
    /// Two entries with one path.
    #[error("path {path:?} added twice")]
    DuplicatePath {
        /// The path.
        path: alloc::string::String,
    },
    /// Empty, longer than 255 bytes, or not printable ASCII.
    #[error("content type {content_type:?} is empty, longer than 255 bytes or not printable ASCII")]
    InvalidContentType {
        /// The content type.
        content_type: alloc::string::String,
    },
    /// The pack would exceed the 4 GiB that 32-bit offsets address.
    #[error("pack would be {len} bytes, more than 32-bit offsets address")]
    TooLarge {
        /// The size it would have.
        len: u64,
    },
}

/// One entry to add to a [`PackBuilder`].
#[derive(Clone, Copy, Debug)]
pub struct NewEntry<'b> {
    /// Normalized absolute path (see [`is_valid_path`]).
    pub path: &'b str,
    /// Media type.
    pub content_type: &'b str,
    /// Identity body.
    pub body: &'b [u8],
    /// Gzip variant, if any (stored as given; the std builder only passes smaller ones).
    pub gzip: Option<&'b [u8]>,
    /// Last modification, unix seconds.
    pub last_modified: u64,
    /// Whether responses vary on `Accept-Encoding`.
    pub compressible: bool,
}

#[derive(Clone, Debug)]
struct OwnedEntry {
    path: alloc::string::String,
    content_type: alloc::string::String,
    body: alloc::vec::Vec<u8>,
    gzip: Option<alloc::vec::Vec<u8>>,
    last_modified: u64,
    compressible: bool,
}

/// Assembles a pack in memory (no_std + alloc; the std builder in
/// `builder` adds directory walking and gzip on top).
#[derive(Clone, Debug, Default)]
pub struct PackBuilder {
    entries: alloc::vec::Vec<OwnedEntry>,
}

impl PackBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry; its ETag is [`content_hash`] of the body.
    pub fn add(&mut self, e: NewEntry<'_>) -> Result<(), PackBuildError> {
        use alloc::borrow::ToOwned;
        if !is_valid_path(e.path.as_bytes()) {
            return Err(PackBuildError::InvalidPath {
                path: e.path.to_owned(),
            });
        }
        let ct = e.content_type.as_bytes();
        if ct.is_empty() || ct.len() > 255 || !ct.iter().all(|&c| (0x20..0x7f).contains(&c)) {
            return Err(PackBuildError::InvalidContentType {
                content_type: e.content_type.to_owned(),
            });
        }
        if self.entries.iter().any(|x| x.path == e.path) {
            return Err(PackBuildError::DuplicatePath {
                path: e.path.to_owned(),
            });
        }
        self.entries.push(OwnedEntry {
            path: e.path.to_owned(),
            content_type: e.content_type.to_owned(),
            body: e.body.to_owned(),
            gzip: e.gzip.filter(|g| !g.is_empty()).map(|g| g.to_owned()),
            last_modified: e.last_modified,
            compressible: e.compressible,
        });
        Ok(())
    }

    /// Lays out and emits the pack.
    pub fn finish(mut self) -> Result<alloc::vec::Vec<u8>, PackBuildError> {
        self.entries
            .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let records = HEADER_LEN as u64 + RECORD_LEN as u64 * self.entries.len() as u64;
        let data: u64 = self
            .entries
            .iter()
            .map(|e| {
                (e.path.len()
                    + e.content_type.len()
                    + e.body.len()
                    + e.gzip.as_ref().map_or(0, |g| g.len())) as u64
            })
            .sum();
        let total = records + data;
        let too_large = PackBuildError::TooLarge { len: total };
        if total > u64::from(u32::MAX) {
            return Err(too_large);
        }
        let mut out = alloc::vec![0u8; records as usize];
        let mut reprs = alloc::vec::Vec::with_capacity(self.entries.len());
        let append =
            |out: &mut alloc::vec::Vec<u8>, bytes: &[u8]| -> Result<(u32, u32), PackBuildError> {
                let off = u32::try_from(out.len()).map_err(|_| too_large.clone())?;
                let len = u32::try_from(bytes.len()).map_err(|_| too_large.clone())?;
                out.extend_from_slice(bytes);
                Ok((off, len))
            };
        for e in &self.entries {
            let (path_off, path_len) = append(&mut out, e.path.as_bytes())?;
            let (content_type_off, ct_len) = append(&mut out, e.content_type.as_bytes())?;
            let (body_off, body_len) = append(&mut out, &e.body)?;
            let (gzip_off, gzip_len) = match &e.gzip {
                Some(g) => append(&mut out, g)?,
                None => (0, 0),
            };
            let mut flags = 0;
            if gzip_len != 0 {
                flags |= FLAG_GZIP;
            }
            if e.compressible {
                flags |= FLAG_COMPRESSIBLE;
            }
            reprs.push(EntryRepr {
                path_off,
                path_len: path_len as u16,
                content_type_off,
                content_type_len: ct_len as u8,
                flags,
                body_off,
                body_len,
                gzip_off,
                gzip_len,
                etag: content_hash(&e.body),
                last_modified: e.last_modified,
            });
        }
        let mut pack = Pack::new_unchecked(&mut out[..]);
        pack.emit_header(reprs.len() as u32);
        for (i, repr) in reprs.iter().enumerate() {
            if let Some(mut record) = pack.record_mut(i) {
                repr.emit(&mut record);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn sample() -> Vec<u8> {
        let mut b = PackBuilder::new();
        for (path, body) in [
            ("/index.html", &b"<h1>hi</h1>"[..]),
            ("/a.css", b"a{}"),
            ("/docs/index.html", b"docs"),
        ] {
            b.add(NewEntry {
                path,
                content_type: "text/html",
                body,
                gzip: (path == "/index.html").then_some(&b"GZ"[..]),
                last_modified: 1_000,
                compressible: true,
            })
            .unwrap();
        }
        b.finish().unwrap()
    }

    #[test]
    fn builds_and_looks_up() {
        let bytes = sample();
        let site = StaticSite::parse(&bytes).unwrap();
        assert_eq!(site.len(), 3);
        let e = site.get("/index.html").unwrap();
        assert_eq!(e.body, b"<h1>hi</h1>");
        assert_eq!(e.gzip, Some(&b"GZ"[..]));
        assert_eq!(e.content_type, "text/html");
        assert_eq!(e.size(), 11);
        assert_eq!(e.last_modified, 1_000);
        assert_eq!(e.digest, content_hash(b"<h1>hi</h1>"));
        assert!(site.get("/a.css").unwrap().gzip.is_none());
        assert!(site.get("/nope").is_none());
        assert!(site.get("/docs").is_none());
        assert!(site.has_prefix(b"/docs/"));
        assert!(!site.has_prefix(b"/doc/"));
        let paths: Vec<&str> = site.iter().map(|e| e.path).collect();
        assert_eq!(paths, ["/a.css", "/docs/index.html", "/index.html"]);
    }

    #[test]
    fn etag_rendering() {
        let t = ETag {
            digest: 0x0123_4567_89ab_cdef,
            gzip: false,
        };
        assert_eq!(alloc::format!("{t}"), "\"0123456789abcdef\"");
        let t = ETag {
            digest: 1,
            gzip: true,
        };
        assert_eq!(alloc::format!("{t}"), "\"0000000000000001-gz\"");
    }

    #[test]
    fn builder_rejects_bad_input() {
        let mut b = PackBuilder::new();
        let e = NewEntry {
            path: "/x",
            content_type: "text/plain",
            body: b"",
            gzip: None,
            last_modified: 0,
            compressible: false,
        };
        for bad in ["x", "/a/../b", "/a//b", "/dir/", "/a\0"] {
            assert!(
                matches!(
                    b.add(NewEntry { path: bad, ..e }),
                    Err(PackBuildError::InvalidPath { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            b.add(NewEntry {
                content_type: "a\r\nb",
                ..e
            }),
            Err(PackBuildError::InvalidContentType { .. })
        ));
        b.add(e).unwrap();
        assert!(matches!(
            b.add(e),
            Err(PackBuildError::DuplicatePath { .. })
        ));
    }

    #[test]
    fn rejects_corrupt_packs() {
        let good = sample();
        assert!(matches!(
            StaticSite::parse(&good[..10]),
            Err(PackError::Truncated { .. })
        ));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(StaticSite::parse(&bad).err(), Some(PackError::BadMagic));
        let mut bad = good.clone();
        bad.push(0);
        assert!(matches!(
            StaticSite::parse(&bad),
            Err(PackError::LengthMismatch { .. })
        ));
        // Entry count too large for the buffer.
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            StaticSite::parse(&bad),
            Err(PackError::Truncated { .. })
        ));
        // Body range out of bounds.
        let mut bad = good.clone();
        bad[HEADER_LEN + 16..HEADER_LEN + 20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            StaticSite::parse(&bad),
            Err(PackError::OutOfBounds { what: "body", .. })
        ));
        // Unknown flag.
        let mut bad = good.clone();
        bad[HEADER_LEN + 7] |= 0x80;
        assert!(matches!(
            StaticSite::parse(&bad),
            Err(PackError::BadFlags { .. })
        ));
        // Swap first two records: order broken.
        let mut bad = good.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + RECORD_LEN);
        let first: Vec<u8> = bad[a..b].to_vec();
        bad.copy_within(b..b + RECORD_LEN, a);
        bad[b..b + RECORD_LEN].copy_from_slice(&first);
        assert!(matches!(
            StaticSite::parse(&bad),
            Err(PackError::NotSorted { index: 1 })
        ));
    }

    #[test]
    fn content_type_with_crlf_is_rejected_in_packs() {
        let mut good = sample();
        let site = StaticSite::parse(&good).unwrap();
        let off = site
            .get("/a.css")
            .map(|e| e.content_type.as_ptr() as usize - good.as_ptr() as usize)
            .unwrap();
        good[off] = b'\n';
        assert!(matches!(
            StaticSite::parse(&good),
            Err(PackError::BadContentType { .. })
        ));
    }

    #[test]
    fn empty_pack_is_valid() {
        let bytes = PackBuilder::new().finish().unwrap();
        let site = StaticSite::parse(&bytes).unwrap();
        assert!(site.is_empty());
        assert!(site.get("/").is_none());
        assert!(!site.has_prefix(b"/"));
    }
}
