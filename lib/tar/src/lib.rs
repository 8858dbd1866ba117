//! `oasis-tar`: a `no_std` reader for tar archives, and a small writer.
//!
//! Reads POSIX ustar, GNU (including `L`/`K` long names) and v7 headers, and PAX
//! extended headers (`path`, `linkpath`, `size`, `mtime`). Everything read from an
//! archive is untrusted: malformed headers, bad checksums, non-octal numbers,
//! truncated archives, and unsafe paths (absolute, `..`, NUL, non-UTF-8) are
//! [`TarError`]s, never panics.
//!
//! Two ways in:
//! - [`entries`] iterates over an archive held in a byte slice;
//! - [`Scanner`] is the sans-IO state machine underneath, for archives on a block
//!   device: it says which bytes it wants (a header, or a long-name/PAX payload) and
//!   never touches file data, so a reader can index a large image by reading only
//!   its headers.
//!
//! [`Builder`] writes archives (and, with the `std` feature, [`builder::from_dir`]
//! archives a directory tree).
//!
//! Not supported: sparse files, PAX global headers (skipped), hard-link resolution
//! (links are reported as entries with their `link_name`), archive compression.
#![no_std]
#![forbid(unsafe_code)]
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod builder;
mod error;
pub mod header;
pub mod path;
pub mod pax;
pub mod scanner;

pub use builder::Builder;
pub use error::TarError;
pub use header::{BLOCK_SIZE, EntryKind, Format, Header, HeaderRepr};
pub use scanner::{Entries, Entry, MAX_META_LEN, Scanner, Want, entries};

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;
    use alloc::{format, vec};

    /// A raw header with a correct checksum.
    fn header(name: &[u8], kind: EntryKind, size: u64) -> Vec<u8> {
        let mut b = vec![0; BLOCK_SIZE];
        HeaderRepr {
            name,
            prefix: &[],
            link_name: &[],
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: 42,
            format: Format::Gnu,
        }
        .emit(&mut Header::new_unchecked(&mut b[..]));
        b
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().next_multiple_of(BLOCK_SIZE), 0);
        v
    }

    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}")
    }

    #[test]
    fn gnu_long_name_applies_to_next_entry() {
        let name = "n/".repeat(100) + "file";
        let mut tar = header(
            b"././@LongLink",
            EntryKind::GnuLongName,
            name.len() as u64 + 1,
        );
        tar.extend(padded(format!("{name}\0").as_bytes()));
        tar.extend(header(b"truncated-name", EntryKind::Regular, 3));
        tar.extend(padded(b"abc"));
        let all: Vec<_> = entries(&tar).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].path, name);
        assert_eq!(all[0].data(&tar), Some(&b"abc"[..]));
        assert_eq!(all[0].header_offset, 1024);
    }

    #[test]
    fn pax_overrides_path_size_and_mtime() {
        let recs = pax_record("path", "very/long/pax/path.bin")
            + &pax_record("size", "700")
            + &pax_record("mtime", "1234.5");
        let mut tar = header(b"PaxHeaders/x", EntryKind::PaxExtended, recs.len() as u64);
        tar.extend(padded(recs.as_bytes()));
        tar.extend(header(b"short", EntryKind::Regular, 0));
        tar.extend(padded(&[1; 700]));
        tar.extend(header(b"next", EntryKind::Regular, 1));
        tar.extend(padded(b"z"));
        let all: Vec<_> = entries(&tar).collect::<Result<_, _>>().unwrap();
        assert_eq!(all[0].path, "very/long/pax/path.bin");
        assert_eq!((all[0].size, all[0].mtime), (700, 1234));
        assert_eq!(all[0].data(&tar), Some(&[1; 700][..]));
        assert_eq!(
            (all[1].path.as_str(), all[1].size, all[1].mtime),
            ("next", 1, 42)
        );
    }

    #[test]
    fn traversal_in_long_name_or_pax_is_rejected() {
        let mut tar = header(b"././@LongLink", EntryKind::GnuLongName, 9);
        tar.extend(padded(b"../evil\0\0"));
        tar.extend(header(b"ok", EntryKind::Regular, 0));
        assert!(matches!(
            entries(&tar).next(),
            Some(Err(TarError::UnsafePath { .. }))
        ));

        let rec = pax_record("path", "a/\0/b");
        let mut tar = header(b"p", EntryKind::PaxExtended, rec.len() as u64);
        tar.extend(padded(rec.as_bytes()));
        tar.extend(header(b"ok", EntryKind::Regular, 0));
        let mut it = entries(&tar);
        assert!(matches!(
            it.next(),
            Some(Err(TarError::UnsafePath {
                reason: "contains a NUL byte",
                ..
            }))
        ));
        assert!(it.next().is_none(), "iteration stops after an error");

        let tar = header(b"/etc/shadow", EntryKind::Regular, 0);
        assert!(matches!(
            entries(&tar).next(),
            Some(Err(TarError::UnsafePath { .. }))
        ));
    }

    #[test]
    fn truncation_is_reported() {
        let mut tar = header(b"f", EntryKind::Regular, 1000);
        tar.extend([0; 100]);
        assert_eq!(
            entries(&tar).next(),
            Some(Err(TarError::Truncated {
                offset: 612,
                needed: 900
            }))
        );
        let tar = &header(b"f", EntryKind::Regular, 0)[..300];
        assert!(matches!(
            entries(tar).next(),
            Some(Err(TarError::Truncated { offset: 0, .. }))
        ));
        // A long name with no entry after it.
        let mut tar = header(b"././@LongLink", EntryKind::GnuLongName, 2);
        tar.extend(padded(b"a\0"));
        assert!(matches!(
            entries(&tar).next(),
            Some(Err(TarError::Truncated { .. }))
        ));
        // Missing end-of-archive blocks at a header boundary is fine.
        let mut tar = header(b"f", EntryKind::Regular, 1);
        tar.extend(padded(b"x"));
        assert_eq!(entries(&tar).count(), 1);
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let tar = header(b"././@LongLink", EntryKind::GnuLongName, MAX_META_LEN + 1);
        assert!(matches!(
            entries(&tar).next(),
            Some(Err(TarError::TooLong { .. }))
        ));
    }

    #[test]
    fn huge_size_does_not_overflow() {
        let mut tar = header(b"f", EntryKind::Regular, 0);
        // base-256 size of u64::MAX
        tar[124] = 0x80;
        tar[128..136].fill(0xff);
        let sum = Header::new_unchecked(&tar[..]).compute_checksum();
        tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(matches!(
            entries(&tar).next(),
            Some(Err(TarError::NumberTooLarge { .. }))
        ));
    }

    #[test]
    fn scanner_rejects_feeding_out_of_order() {
        let mut s = Scanner::new();
        assert!(matches!(s.feed_meta(b"x"), Err(TarError::Protocol { .. })));
        let h = header(b"././@LongLink", EntryKind::GnuLongName, 2);
        assert_eq!(s.feed_header(&h), Ok(None));
        assert_eq!(
            s.want(),
            Want::Meta {
                offset: 512,
                len: 2
            }
        );
        assert!(matches!(s.feed_header(&h), Err(TarError::Protocol { .. })));
        assert!(matches!(
            s.feed_meta(b"abc"),
            Err(TarError::Protocol { .. })
        ));
        s.feed_meta(b"a\0").unwrap();
        assert_eq!(s.want(), Want::Header { offset: 1024 });
        assert_eq!(
            s.feed_header(&[0; BLOCK_SIZE]),
            Err(TarError::Truncated {
                offset: 1024,
                needed: 512
            })
        );
    }

    #[test]
    fn zero_block_ends_the_archive() {
        let mut tar = header(b"a", EntryKind::Regular, 0);
        tar.extend([0; BLOCK_SIZE]);
        tar.extend(header(b"b", EntryKind::Regular, 0));
        let all: Vec<_> = entries(&tar).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 1);
    }
}
