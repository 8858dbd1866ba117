//! `TarStore`: a read-only key-value store over a tar image on a block device.
//!
//! Mounting walks the archive's headers once (with [`oasis_tar::Scanner`], reading
//! only header blocks and long-name/PAX payloads) and builds an in-memory index from
//! path to data offset. Values are read on demand. Only regular files become keys;
//! directories, links and special files are skipped, and a path that appears twice
//! takes the later entry (tar's own rule). Digests are CRC-32 of the content,
//! computed on first request and cached.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use oasis_devices::BlockDevice;
use oasis_tar::{BLOCK_SIZE, EntryKind, Scanner, TarError, Want};

use crate::io::read_bytes;
use crate::{KvError, KvRead, Meta};

#[derive(Debug)]
struct File {
    offset: u64,
    size: u64,
    mtime: u64,
    digest: Cell<Option<u32>>,
}

/// A read-only store over a tar image; see the module docs.
#[derive(Debug)]
pub struct TarStore<D> {
    dev: D,
    files: BTreeMap<String, File>,
}

impl<D: BlockDevice> TarStore<D> {
    /// Indexes the tar image on `dev`. The image may be followed by anything (the
    /// scan stops at the first zero block) and may end at the device's end.
    pub async fn mount(dev: D) -> Result<Self, KvError> {
        let end = dev.geometry().bytes();
        let mut scanner = Scanner::new();
        let mut files = BTreeMap::new();
        let mut block = [0u8; BLOCK_SIZE];
        loop {
            match scanner.want() {
                Want::Done => break,
                Want::Header { offset } => {
                    if offset >= end {
                        if offset > end {
                            return Err(TarError::Truncated {
                                offset: end,
                                needed: offset - end,
                            }
                            .into());
                        }
                        scanner.feed_eof()?;
                        continue;
                    }
                    if end - offset < BLOCK_SIZE as u64 {
                        return Err(TarError::Truncated {
                            offset,
                            needed: BLOCK_SIZE as u64,
                        }
                        .into());
                    }
                    read_bytes(&dev, offset, &mut block).await?;
                    let Some(entry) = scanner.feed_header(&block)? else {
                        continue;
                    };
                    if entry.size > end.saturating_sub(entry.data_offset) {
                        return Err(TarError::Truncated {
                            offset: end,
                            needed: entry.size - end.saturating_sub(entry.data_offset),
                        }
                        .into());
                    }
                    if entry.kind == EntryKind::Regular && !entry.path.is_empty() {
                        let file = File {
                            offset: entry.data_offset,
                            size: entry.size,
                            mtime: entry.mtime,
                            digest: Cell::new(None),
                        };
                        files.insert(entry.path, file);
                    }
                }
                Want::Meta { offset, len } => {
                    if offset.saturating_add(len) > end {
                        scanner.feed_eof()?;
                        continue;
                    }
                    let mut data = vec![0; len as usize]; // len <= MAX_META_LEN
                    read_bytes(&dev, offset, &mut data).await?;
                    scanner.feed_meta(&data)?;
                }
            }
        }
        Ok(Self { dev, files })
    }

    /// The underlying device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Gives the device back.
    pub fn into_device(self) -> D {
        self.dev
    }
}

impl<D: BlockDevice> KvRead for TarStore<D> {
    fn meta(&self, key: &str) -> Option<Meta> {
        self.files.get(key).map(|f| Meta {
            size: f.size,
            mtime: f.mtime,
        })
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        self.files
            .range::<str, _>((
                core::ops::Bound::Included(prefix),
                core::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn len(&self) -> usize {
        self.files.len()
    }

    async fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<usize, KvError> {
        let f = self
            .files
            .get(key)
            .ok_or_else(|| KvError::NotFound { key: key.into() })?;
        let n = f.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        if n > 0 {
            read_bytes(&self.dev, f.offset + offset, &mut buf[..n]).await?;
        }
        Ok(n)
    }

    async fn digest(&self, key: &str) -> Result<Option<u32>, KvError> {
        let Some(f) = self.files.get(key) else {
            return Ok(None);
        };
        if let Some(d) = f.digest.get() {
            return Ok(Some(d));
        }
        let mut hasher = crc32fast::Hasher::new();
        let mut chunk = vec![0; 16 * 1024];
        let mut pos = 0;
        while pos < f.size {
            let n = (f.size - pos).min(chunk.len() as u64) as usize;
            read_bytes(&self.dev, f.offset + pos, &mut chunk[..n]).await?;
            hasher.update(&chunk[..n]);
            pos += n as u64;
        }
        let d = hasher.finalize();
        f.digest.set(Some(d));
        Ok(Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;
    use oasis_devices::ramdisk::RamDisk;
    use oasis_tar::Builder;

    fn site() -> Vec<u8> {
        let mut b = Builder::new();
        b.append_dir("css", 1).unwrap();
        b.append_file("index.html", b"<h1>home</h1>", 100, 0o644)
            .unwrap();
        b.append_file("css/site.css", &[b'c'; 3000], 200, 0o644)
            .unwrap();
        b.append_file("css/empty.css", b"", 300, 0o644).unwrap();
        b.append_file(&"deep/".repeat(40), b"long path", 400, 0o644)
            .unwrap();
        b.append_file("index.html", b"<h1>newer</h1>", 500, 0o644)
            .unwrap();
        b.finish()
    }

    #[test]
    fn mounts_and_reads_on_both_sector_sizes() {
        for ss in [512, 4096] {
            let store = block_on(TarStore::mount(RamDisk::from_image(&site(), ss))).unwrap();
            assert_eq!(store.len(), 4);
            assert_eq!(
                block_on(store.get("index.html")).unwrap().unwrap(),
                b"<h1>newer</h1>"
            );
            assert_eq!(store.last_modified("index.html"), Some(500));
            assert_eq!(store.size("css/site.css"), Some(3000));
            assert_eq!(block_on(store.get("css/empty.css")).unwrap().unwrap(), b"");
            assert_eq!(store.list("css/"), ["css/empty.css", "css/site.css"]);
            assert!(!store.exists("css"), "directories are not keys");
            let long = "deep/".repeat(40);
            assert_eq!(
                block_on(store.get(long.trim_end_matches('/')))
                    .unwrap()
                    .unwrap(),
                b"long path"
            );
            assert_eq!(
                block_on(store.get_range("css/site.css", 2990..3000))
                    .unwrap()
                    .unwrap(),
                [b'c'; 10]
            );
            assert!(matches!(
                block_on(store.get_range("css/site.css", 2990..3001)),
                Err(KvError::BadRange { .. })
            ));
            let mut buf = [0; 64];
            assert_eq!(
                block_on(store.read_at("index.html", 4, &mut buf)).unwrap(),
                10
            );
            assert_eq!(&buf[..10], b"newer</h1>");
            assert_eq!(block_on(store.get("missing")).unwrap(), None);
            assert!(matches!(
                block_on(store.read_at("missing", 0, &mut buf)),
                Err(KvError::NotFound { .. })
            ));
        }
    }

    #[test]
    fn digest_is_crc32_and_cached() {
        let store = block_on(TarStore::mount(RamDisk::from_image(&site(), 512))).unwrap();
        let want = crc32fast::hash(&[b'c'; 3000]);
        let reads = store.device().read_count();
        assert_eq!(block_on(store.digest("css/site.css")).unwrap(), Some(want));
        let after_first = store.device().read_count();
        assert!(after_first > reads);
        assert_eq!(block_on(store.digest("css/site.css")).unwrap(), Some(want));
        assert_eq!(store.device().read_count(), after_first);
        assert_eq!(block_on(store.digest("nope")).unwrap(), None);
    }

    #[test]
    fn mount_reports_bad_images() {
        let mut img = site();
        img[600] ^= 0xff; // inside the second header
        let err = block_on(TarStore::mount(RamDisk::from_image(&img, 512))).unwrap_err();
        assert!(
            matches!(err, KvError::Tar(TarError::BadChecksum { offset: 512, .. })),
            "{err}"
        );

        let img = site();
        let cut = &img[..4 * 512 + 100]; // inside the data of css/site.css
        let err = block_on(TarStore::mount(RamDisk::from_image(cut, 512))).unwrap_err();
        assert!(
            matches!(err, KvError::Tar(TarError::Truncated { .. })),
            "{err}"
        );

        let empty = block_on(TarStore::mount(RamDisk::new(4, 512))).unwrap();
        assert!(empty.is_empty());
    }
}
