//! `Builder`: writes a ustar archive (GNU `L` entries for long paths) into a `Vec<u8>`.
//!
//! With the `std` feature, [`from_dir`] archives a directory tree, for tools that
//! turn a site folder into a disk image.

use alloc::vec::Vec;

use crate::TarError;
use crate::header::{BLOCK_SIZE, EntryKind, Format, GNU_LONGLINK_NAME, Header, HeaderRepr};
use crate::path::sanitize;

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;

/// Builds an archive in memory. Paths are validated like the reader validates them,
/// so whatever the builder writes, the scanner reads back.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    out: Vec<u8>,
}

impl Builder {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a regular file.
    pub fn append_file(
        &mut self,
        path: &str,
        data: &[u8],
        mtime: u64,
        mode: u32,
    ) -> Result<(), TarError> {
        self.append(path, EntryKind::Regular, data, mtime, mode)?;
        Ok(())
    }

    /// Appends a directory entry.
    pub fn append_dir(&mut self, path: &str, mtime: u64) -> Result<(), TarError> {
        self.append(path, EntryKind::Directory, &[], mtime, 0o755)
    }

    fn append(
        &mut self,
        path: &str,
        kind: EntryKind,
        data: &[u8],
        mtime: u64,
        mode: u32,
    ) -> Result<(), TarError> {
        let offset = self.out.len() as u64;
        let mut path = sanitize(path.as_bytes(), offset)?;
        if path.is_empty() {
            return Err(TarError::UnsafePath {
                offset,
                path,
                reason: "is empty",
            });
        }
        if kind == EntryKind::Directory {
            path.push('/');
        }
        let bytes = path.as_bytes();
        let (prefix, name): (&[u8], &[u8]) = match split_ustar(bytes) {
            Some(split) => split,
            None => {
                // GNU long name: a pseudo-entry whose data is the NUL-terminated path.
                let mut long = bytes.to_vec();
                long.push(0);
                self.header(
                    GNU_LONGLINK_NAME,
                    &[],
                    EntryKind::GnuLongName,
                    long.len() as u64,
                    0,
                    0,
                );
                self.data(&long);
                (&[], &bytes[..NAME_LEN.min(bytes.len())])
            }
        };
        self.header(name, prefix, kind, data.len() as u64, mtime, mode);
        self.data(data);
        Ok(())
    }

    fn header(
        &mut self,
        name: &[u8],
        prefix: &[u8],
        kind: EntryKind,
        size: u64,
        mtime: u64,
        mode: u32,
    ) {
        let repr = HeaderRepr {
            name,
            prefix,
            link_name: &[],
            kind,
            mode,
            uid: 0,
            gid: 0,
            size,
            mtime,
            format: Format::Ustar,
        };
        let start = self.out.len();
        self.out.resize(start + BLOCK_SIZE, 0);
        repr.emit(&mut Header::new_unchecked(&mut self.out[start..]));
    }

    fn data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let padded = self.out.len().next_multiple_of(BLOCK_SIZE);
        self.out.resize(padded, 0);
    }

    /// Ends the archive with two zero blocks and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0; 2 * BLOCK_SIZE]);
        self.out
    }
}

/// Splits a path into ustar `prefix` and `name` fields, if it fits them.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= NAME_LEN {
        return Some((&[], path));
    }
    // The last `/` such that the prefix fits and the rest fits the name field.
    (0..path.len())
        .rev()
        .filter(|&i| path[i] == b'/')
        .find_map(|i| {
            let (prefix, name) = (&path[..i], &path[i + 1..]);
            (prefix.len() <= PREFIX_LEN && name.len() <= NAME_LEN && !name.is_empty())
                .then_some((prefix, name))
        })
}

/// Archives the tree under `dir` (sorted, directories and regular files; symlinks and
/// special files are skipped), with paths relative to `dir`.
#[cfg(feature = "std")]
pub fn from_dir(dir: &std::path::Path) -> std::io::Result<Vec<u8>> {
    fn walk(b: &mut Builder, root: &std::path::Path, dir: &std::path::Path) -> std::io::Result<()> {
        let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let rel = path.strip_prefix(root).map_err(std::io::Error::other)?;
            let rel = rel.to_str().ok_or_else(|| {
                std::io::Error::other(std::format!("{} is not UTF-8", path.display()))
            })?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            if meta.is_dir() {
                b.append_dir(rel, mtime).map_err(std::io::Error::other)?;
                walk(b, root, &path)?;
            } else if meta.is_file() {
                let data = std::fs::read(&path)?;
                b.append_file(rel, &data, mtime, 0o644)
                    .map_err(std::io::Error::other)?;
            }
        }
        Ok(())
    }
    let mut b = Builder::new();
    walk(&mut b, dir, dir)?;
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries;

    #[test]
    fn round_trips_short_split_and_long_paths() {
        let mid = alloc::format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let long = alloc::format!("{}/x.txt", "y".repeat(300));
        let mut b = Builder::new();
        b.append_dir("site", 5).unwrap();
        b.append_file("site/index.html", b"<h1>hi</h1>", 7, 0o644)
            .unwrap();
        b.append_file(&mid, b"mid", 8, 0o600).unwrap();
        b.append_file(&long, &[9; 1000], 9, 0o644).unwrap();
        let tar = b.finish();
        let all: Vec<_> = entries(&tar).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(
            (all[0].path.as_str(), all[0].kind),
            ("site", EntryKind::Directory)
        );
        assert_eq!(all[1].path, "site/index.html");
        assert_eq!(all[1].data(&tar), Some(&b"<h1>hi</h1>"[..]));
        assert_eq!(all[1].mtime, 7);
        assert_eq!(all[2].path, mid);
        assert_eq!(all[2].mode, 0o600);
        assert_eq!(all[3].path, long);
        assert_eq!(all[3].data(&tar), Some(&[9; 1000][..]));
    }

    #[test]
    fn refuses_unsafe_paths() {
        let mut b = Builder::new();
        assert!(matches!(
            b.append_file("../x", b"", 0, 0o644),
            Err(TarError::UnsafePath { .. })
        ));
        assert!(matches!(
            b.append_file("/x", b"", 0, 0o644),
            Err(TarError::UnsafePath { .. })
        ));
    }

    #[cfg(feature = "std")]
    #[test]
    fn archives_a_directory() {
        let dir = std::env::temp_dir().join(std::format!("oasis-tar-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/c.txt"), b"deep").unwrap();
        std::fs::write(dir.join("top.txt"), b"top").unwrap();
        let tar = from_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let all: Vec<_> = entries(&tar).collect::<Result<_, _>>().unwrap();
        let paths: Vec<_> = all.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c.txt", "top.txt"]);
        assert_eq!(all[2].data(&tar), Some(&b"deep"[..]));
    }
}
