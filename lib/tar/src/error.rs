//! `TarError`: everything that can be wrong with an archive, with the offending value.

use alloc::string::String;

/// What is wrong with an archive. Offsets are byte offsets into the archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    /// The archive ends inside a header or inside an entry's data.
    #[error("archive truncated at byte {offset}: {needed} more bytes needed")]
    Truncated {
        /// Where the missing bytes start.
        offset: u64,
        /// How many bytes were expected there.
        needed: u64,
    },
    /// The header checksum does not match its content.
    #[error("header at byte {offset} has checksum {stored:#o}, computed {computed:#o}")]
    BadChecksum {
        /// Header offset.
        offset: u64,
        /// Checksum stored in the header.
        stored: u64,
        /// Checksum of the header's bytes.
        computed: u64,
    },
    /// The magic field is neither ustar, GNU, nor the empty v7 magic.
    #[error("header at byte {offset} has unknown magic {magic:02x?}")]
    BadMagic {
        /// Header offset.
        offset: u64,
        /// The 8 bytes of magic and version.
        magic: [u8; 8],
    },
    /// A numeric field holds something other than octal digits (or base-256).
    #[error("header at byte {offset}: field `{field}` is not a number: {value:02x?}")]
    BadNumber {
        /// Header offset.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// The raw field (up to 12 bytes).
        value: [u8; 12],
    },
    /// A number does not fit in 64 bits, or offset arithmetic overflows.
    #[error("header at byte {offset}: field `{field}` overflows 64 bits")]
    NumberTooLarge {
        /// Header offset.
        offset: u64,
        /// Field name.
        field: &'static str,
    },
    /// A path is absolute, climbs with `..`, or holds a NUL byte.
    #[error("entry at byte {offset} has an unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// Header offset.
        offset: u64,
        /// The path (lossily decoded).
        path: String,
        /// What is unsafe about it.
        reason: &'static str,
    },
    /// A path is not UTF-8.
    #[error("entry at byte {offset} has a path that is not UTF-8")]
    NonUtf8Path {
        /// Header offset.
        offset: u64,
    },
    /// A path (or a GNU long-name / PAX record) exceeds the limit.
    #[error("entry at byte {offset} has metadata of {len} bytes (limit {max})")]
    TooLong {
        /// Header offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A PAX extended header is malformed.
    #[error("PAX header at byte {offset} is malformed: {reason}")]
    BadPax {
        /// Header offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The scanner was fed something it did not ask for (a driver bug).
    #[error("scanner fed {got} bytes while expecting {expected}")]
    Protocol {
        /// What the scanner asked for, in bytes.
        expected: u64,
        /// What it got.
        got: u64,
    },
}
