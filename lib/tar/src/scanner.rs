//! `Scanner`: a sans-IO state machine that walks an archive's headers, and `Entries`,
//! the iterator that drives it over a byte slice.
//!
//! The scanner never reads anything itself: [`Scanner::want`] says which bytes it
//! needs next (a header block, or the data of a GNU long-name / PAX entry) and the
//! caller feeds them. That lets the same code walk a slice in memory and an image on
//! an async block device, reading only headers and skipping file data.

use alloc::string::String;
use alloc::vec::Vec;

use crate::TarError;
use crate::header::{BLOCK_SIZE, EntryKind, Header, HeaderRepr};
use crate::path::{MAX_PATH_LEN, sanitize};
use crate::pax::PaxOverrides;

/// The largest PAX or GNU long-name entry the scanner reads, in bytes.
pub const MAX_META_LEN: u64 = 64 * 1024;

/// One entry of the archive, with its data located but not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized, validated path (see [`crate::path::sanitize`]); empty only for a
    /// root directory entry such as `./`.
    pub path: String,
    /// Entry type (never a GNU or PAX pseudo-entry).
    pub kind: EntryKind,
    /// Data size in bytes (after a PAX `size` override).
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// Permission bits.
    pub mode: u32,
    /// Link target for hard and symbolic links, as stored: untrusted, not validated.
    pub link_name: Vec<u8>,
    /// Offset of this entry's own header block.
    pub header_offset: u64,
    /// Offset of the first data byte.
    pub data_offset: u64,
}

impl Entry {
    /// This entry's data within `archive`, if the archive holds all of it.
    pub fn data<'a>(&self, archive: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.data_offset).ok()?;
        let end = start.checked_add(usize::try_from(self.size).ok()?)?;
        archive.get(start..end)
    }
}

/// What the scanner needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The [`BLOCK_SIZE`] bytes at `offset`, for [`Scanner::feed_header`].
    Header {
        /// Archive offset.
        offset: u64,
    },
    /// The `len` bytes at `offset`, for [`Scanner::feed_meta`].
    Meta {
        /// Archive offset.
        offset: u64,
        /// Byte count (at most [`MAX_META_LEN`]).
        len: u64,
    },
    /// The archive has ended; nothing more to read.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Meta {
        kind: EntryKind,
        header_offset: u64,
        data_offset: u64,
        len: u64,
    },
    Done,
}

/// The header-walking state machine; see the module docs.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Offset of the next header.
    next: u64,
    state: State,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: PaxOverrides,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner at the start of an archive.
    pub fn new() -> Self {
        Self {
            next: 0,
            state: State::Header,
            long_name: None,
            long_link: None,
            pax: PaxOverrides::default(),
        }
    }

    /// What to feed next.
    pub fn want(&self) -> Want {
        match self.state {
            State::Header => Want::Header { offset: self.next },
            State::Meta {
                data_offset, len, ..
            } => Want::Meta {
                offset: data_offset,
                len,
            },
            State::Done => Want::Done,
        }
    }

    /// Offset just past the last byte the archive's entries use so far.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Feeds the header block asked for by [`Want::Header`]. Returns the entry it
    /// completes, or `None` for pseudo-entries and the end-of-archive block.
    pub fn feed_header(&mut self, block: &[u8]) -> Result<Option<Entry>, TarError> {
        let offset = match self.state {
            State::Header => self.next,
            State::Meta { len, .. } => {
                return Err(TarError::Protocol {
                    expected: len,
                    got: block.len() as u64,
                });
            }
            State::Done => {
                return Err(TarError::Protocol {
                    expected: 0,
                    got: block.len() as u64,
                });
            }
        };
        let header = Header::new_checked(block, offset)?;
        if header.is_zero() {
            // One zero block ends the archive (two are written; GNU tar stops at one
            // too). Pending long names or PAX records have nothing to apply to.
            if self.long_name.is_some()
                || self.long_link.is_some()
                || self.pax != PaxOverrides::default()
            {
                return Err(TarError::Truncated {
                    offset,
                    needed: BLOCK_SIZE as u64,
                });
            }
            self.state = State::Done;
            return Ok(None);
        }
        let repr = HeaderRepr::parse(&header, offset)?;
        let data_offset = offset + BLOCK_SIZE as u64;
        let size = match (repr.kind, self.pax.size) {
            (EntryKind::Regular | EntryKind::Other(_), Some(s)) => s,
            _ => repr.size,
        };
        let overflow = TarError::NumberTooLarge {
            offset,
            field: "size",
        };
        let padded = size
            .checked_next_multiple_of(BLOCK_SIZE as u64)
            .ok_or(overflow.clone())?;
        let after = data_offset.checked_add(padded).ok_or(overflow)?;
        match repr.kind {
            EntryKind::GnuLongName | EntryKind::GnuLongLink | EntryKind::PaxExtended => {
                if size > MAX_META_LEN {
                    return Err(TarError::TooLong {
                        offset,
                        len: size,
                        max: MAX_META_LEN,
                    });
                }
                self.state = State::Meta {
                    kind: repr.kind,
                    header_offset: offset,
                    data_offset,
                    len: size,
                };
                self.next = after;
                Ok(None)
            }
            EntryKind::PaxGlobal => {
                // Global records are rare and do not set per-file paths; skip them.
                self.next = after;
                Ok(None)
            }
            kind => {
                let raw_path = match (self.pax.path.take(), self.long_name.take()) {
                    (Some(p), _) | (None, Some(p)) => p,
                    (None, None) if repr.prefix.is_empty() => repr.name.to_vec(),
                    (None, None) => {
                        let mut p = repr.prefix.to_vec();
                        p.push(b'/');
                        p.extend_from_slice(repr.name);
                        p
                    }
                };
                let path = sanitize(&raw_path, offset)?;
                let link_name = match (self.pax.link_path.take(), self.long_link.take()) {
                    (Some(l), _) | (None, Some(l)) => l,
                    (None, None) => repr.link_name.to_vec(),
                };
                if link_name.len() > MAX_PATH_LEN {
                    return Err(TarError::TooLong {
                        offset,
                        len: link_name.len() as u64,
                        max: MAX_PATH_LEN as u64,
                    });
                }
                let mtime = self.pax.mtime.take().unwrap_or(repr.mtime);
                self.pax = PaxOverrides::default();
                self.next = after;
                Ok(Some(Entry {
                    path,
                    kind,
                    size,
                    mtime,
                    mode: repr.mode,
                    link_name,
                    header_offset: offset,
                    data_offset,
                }))
            }
        }
    }

    /// Feeds the data asked for by [`Want::Meta`].
    pub fn feed_meta(&mut self, data: &[u8]) -> Result<(), TarError> {
        let State::Meta {
            kind,
            header_offset,
            len,
            ..
        } = self.state
        else {
            return Err(TarError::Protocol {
                expected: 0,
                got: data.len() as u64,
            });
        };
        if data.len() as u64 != len {
            return Err(TarError::Protocol {
                expected: len,
                got: data.len() as u64,
            });
        }
        match kind {
            EntryKind::PaxExtended => self.pax.parse(data, header_offset)?,
            EntryKind::GnuLongName | EntryKind::GnuLongLink => {
                // NUL-terminated (and often NUL-padded); a NUL inside is caught later.
                let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                let name = data[..end].to_vec();
                if kind == EntryKind::GnuLongName {
                    self.long_name = Some(name);
                } else {
                    self.long_link = Some(name);
                }
            }
            _ => {}
        }
        self.state = State::Header;
        Ok(())
    }

    /// Reports that the archive ends at the offset [`Scanner::want`] names. Ending at a
    /// header boundary without the zero blocks is accepted (as GNU tar does); ending
    /// with a long name or PAX record pending, or inside metadata, is not.
    pub fn feed_eof(&mut self) -> Result<(), TarError> {
        match self.state {
            State::Done => Ok(()),
            State::Meta {
                data_offset, len, ..
            } => Err(TarError::Truncated {
                offset: data_offset,
                needed: len,
            }),
            State::Header => {
                if self.long_name.is_some()
                    || self.long_link.is_some()
                    || self.pax != PaxOverrides::default()
                {
                    return Err(TarError::Truncated {
                        offset: self.next,
                        needed: BLOCK_SIZE as u64,
                    });
                }
                self.state = State::Done;
                Ok(())
            }
        }
    }
}

/// Iterates over the entries of an archive held in memory. Yields each error once,
/// then ends. Checks that every entry's data lies within the slice.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    archive: &'a [u8],
    scanner: Scanner,
    failed: bool,
}

/// The entries of `archive`.
pub fn entries(archive: &[u8]) -> Entries<'_> {
    Entries {
        archive,
        scanner: Scanner::new(),
        failed: false,
    }
}

impl Entries<'_> {
    fn step(&mut self) -> Result<Option<Entry>, TarError> {
        loop {
            match self.scanner.want() {
                Want::Done => return Ok(None),
                Want::Header { offset } => {
                    let start = usize::try_from(offset).unwrap_or(usize::MAX);
                    if start >= self.archive.len() {
                        if start > self.archive.len() {
                            return Err(TarError::Truncated {
                                offset: self.archive.len() as u64,
                                needed: offset - self.archive.len() as u64,
                            });
                        }
                        self.scanner.feed_eof()?;
                        return Ok(None);
                    }
                    let end = start.saturating_add(BLOCK_SIZE).min(self.archive.len());
                    if let Some(entry) = self.scanner.feed_header(&self.archive[start..end])? {
                        let have = (self.archive.len() as u64).saturating_sub(entry.data_offset);
                        if entry.size > have {
                            return Err(TarError::Truncated {
                                offset: self.archive.len() as u64,
                                needed: entry.size - have,
                            });
                        }
                        return Ok(Some(entry));
                    }
                }
                Want::Meta { offset, len } => {
                    let start = offset as usize; // both below MAX_META_LEN past a header we read
                    let data = start
                        .checked_add(len as usize)
                        .and_then(|end| self.archive.get(start..end));
                    match data {
                        Some(data) => self.scanner.feed_meta(data)?,
                        None => {
                            self.scanner.feed_eof()?;
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, TarError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
