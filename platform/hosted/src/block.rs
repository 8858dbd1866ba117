//! `FileDisk`: a host file as an [`oasis_devices::BlockDevice`] (pread, pwrite, fdatasync).
//!
//! The file is the disk: sector `n` is bytes `n * 512 .. (n + 1) * 512`, the same
//! layout as QEMU's `format=raw`, so one image works hosted and under QEMU. A file
//! whose length is not a multiple of the sector size exposes only its whole sectors
//! (the tail is never read or written; [`FileDisk::open`] logs it).
//!
//! Requests run synchronously in the calling task: `read`/`write`/`flush` are plain
//! positioned system calls, so their futures complete on the first poll and never
//! reach the executor's reactor. That is simple and correct (several tasks may have
//! requests "in flight", they just run one after another) but a slow disk stalls the
//! executor for the duration of the call; hosted mode is for development.
//!
//! Durability: a completed `write` sits in the host page cache, which survives the
//! process being killed but not a host power cut; `flush` is `fdatasync(2)`, after
//! which the data survives both, matching the [`BlockDevice`] contract.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use oasis_devices::{BlockDevice, BlockError, Geometry};

/// Bytes per sector of a file-backed disk.
pub const FILE_SECTOR_SIZE: u32 = 512;

/// Why a disk file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileDiskError {
    /// The disk argument is malformed.
    #[error("disk `{spec}`: {reason}")]
    BadSpec {
        /// The argument as given.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file could not be opened or inspected.
    #[error("disk {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The host's error.
        source: std::io::Error,
    },
    /// The file holds less than one sector.
    #[error("disk {}: {len} bytes is less than one {FILE_SECTOR_SIZE}-byte sector", path.display())]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The path is not a regular file or block device.
    #[error("disk {}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
}

/// What `--disk=FILE[:ro]` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// The file.
    pub path: PathBuf,
    /// Open read-only (writes fail with [`BlockError::ReadOnly`]).
    pub read_only: bool,
}

impl core::str::FromStr for DiskSpec {
    type Err = FileDiskError;

    /// Parses `FILE` or `FILE:ro` (as `cargo oasis run --disk` does).
    fn from_str(spec: &str) -> Result<Self, FileDiskError> {
        let (path, read_only) = match spec.strip_suffix(":ro") {
            Some(p) => (p, true),
            None => (spec, false),
        };
        if path.is_empty() {
            return Err(FileDiskError::BadSpec {
                spec: spec.into(),
                reason: "empty file name",
            });
        }
        Ok(DiskSpec {
            path: path.into(),
            read_only,
        })
    }
}

/// The disk's descriptor: owned (closed on drop), or kept open for the life of the
/// process (the [sandbox](crate::sandbox), which may not `close(2)`).
#[derive(Debug)]
enum DiskFile {
    Owned(File),
    Kept(&'static File),
}

impl DiskFile {
    fn get(&self) -> &File {
        match self {
            DiskFile::Owned(f) => f,
            DiskFile::Kept(f) => f,
        }
    }
}

/// A host file used as a block device; see the module docs.
#[derive(Debug)]
pub struct FileDisk {
    file: DiskFile,
    path: PathBuf,
    geometry: Geometry,
}

impl FileDisk {
    /// Opens `path` read-write (or read-only) as a disk of its current size.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, FileDiskError> {
        let (file, geometry) = Self::open_file(path, read_only)?;
        Ok(FileDisk {
            file: DiskFile::Owned(file),
            path: path.into(),
            geometry,
        })
    }

    /// Opens what `spec` names for the sandbox: the descriptor stays open until the
    /// process exits, whatever happens to the disk (its seccomp filter has no
    /// `close(2)`). Returns the raw descriptor too, for that filter.
    pub(crate) fn open_kept(spec: &DiskSpec) -> Result<(Self, std::os::fd::RawFd), FileDiskError> {
        use std::os::fd::AsRawFd;
        let (file, geometry) = Self::open_file(&spec.path, spec.read_only)?;
        let file: &'static File = Box::leak(Box::new(file));
        let disk = FileDisk {
            file: DiskFile::Kept(file),
            path: spec.path.clone(),
            geometry,
        };
        Ok((disk, file.as_raw_fd()))
    }

    fn open_file(path: &Path, read_only: bool) -> Result<(File, Geometry), FileDiskError> {
        let open_err = |source| FileDiskError::Open {
            path: path.into(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        let len = if meta.is_file() {
            meta.len()
        } else {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_block_device() {
                return Err(FileDiskError::NotAFile { path: path.into() });
            }
            // A block device's size comes from seeking to its end.
            use std::io::Seek;
            (&file).seek(std::io::SeekFrom::End(0)).map_err(open_err)?
        };
        let ss = u64::from(FILE_SECTOR_SIZE);
        let sectors = len / ss;
        if sectors == 0 {
            return Err(FileDiskError::TooSmall {
                path: path.into(),
                len,
            });
        }
        if len % ss != 0 {
            log::warn!(
                "disk {}: {len} bytes is not a multiple of {ss}; the last {} bytes are not used",
                path.display(),
                len % ss
            );
        }
        let geometry = Geometry {
            sectors,
            sector_size: FILE_SECTOR_SIZE,
            read_only,
        };
        Ok((file, geometry))
    }

    /// Opens what a [`DiskSpec`] names.
    pub fn open_spec(spec: &DiskSpec) -> Result<Self, FileDiskError> {
        Self::open(&spec.path, spec.read_only)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str, sector: u64, e: &std::io::Error) -> BlockError {
        log::error!(
            "disk {}: {what} at sector {sector}: {e}",
            self.path.display()
        );
        BlockError::Io
    }
}

impl BlockDevice for FileDisk {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), false)?;
        let offset = sector * u64::from(FILE_SECTOR_SIZE);
        self.file
            .get()
            .read_exact_at(buf, offset)
            .map_err(|e| self.io_error("read", sector, &e))
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len(), true)?;
        let offset = sector * u64::from(FILE_SECTOR_SIZE);
        self.file
            .get()
            .write_all_at(buf, offset)
            .map_err(|e| self.io_error("write", sector, &e))
    }

    async fn flush(&self) -> Result<(), BlockError> {
        if self.geometry.read_only {
            return Ok(());
        }
        self.file
            .get()
            .sync_data()
            .map_err(|e| self.io_error("fdatasync", 0, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    /// FileDisk futures complete on their first poll.
    fn now<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("FileDisk future did not complete at once"),
        }
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> Self {
            let p = std::env::temp_dir().join(format!(
                "oasis-filedisk-{}-{name}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::write(&p, bytes).unwrap();
            TempFile(p)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn geometry_is_whole_sectors_of_the_file() {
        let f = TempFile::new("geom", &vec![0u8; 4096 + 100]);
        let d = FileDisk::open(&f.0, false).unwrap();
        assert_eq!(
            d.geometry(),
            Geometry {
                sectors: 8,
                sector_size: 512,
                read_only: false
            }
        );
        assert_eq!(d.path(), f.0.as_path());
    }

    #[test]
    fn reads_what_the_file_holds_and_writes_reach_it() {
        let image: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = TempFile::new("rw", &image);
        let d = FileDisk::open(&f.0, false).unwrap();
        let mut buf = vec![0u8; 1024];
        now(d.read(3, &mut buf)).unwrap();
        assert_eq!(buf, image[1536..2560]);
        let new = vec![0xabu8; 512];
        now(d.write(15, &new)).unwrap();
        now(d.flush()).unwrap();
        let mut back = vec![0u8; 512];
        now(d.read(15, &mut back)).unwrap();
        assert_eq!(back, new);
        let on_disk = std::fs::read(&f.0).unwrap();
        assert_eq!(on_disk[7680..], new[..]);
        assert_eq!(on_disk[..7680], image[..7680]);
        // Reopening sees the write.
        drop(d);
        let d = FileDisk::open(&f.0, true).unwrap();
        now(d.read(15, &mut back)).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn bad_requests_get_the_right_errors() {
        let f = TempFile::new("bad", &[0u8; 2048]);
        let d = FileDisk::open(&f.0, false).unwrap();
        let mut buf = vec![0u8; 512];
        assert_eq!(
            now(d.read(4, &mut buf)),
            Err(BlockError::OutOfRange {
                start: 4,
                end: 5,
                sectors: 4
            })
        );
        assert_eq!(
            now(d.read(u64::MAX, &mut buf)),
            Err(BlockError::OutOfRange {
                start: u64::MAX,
                end: u64::MAX,
                sectors: 4
            })
        );
        let mut odd = vec![0u8; 100];
        assert_eq!(
            now(d.read(0, &mut odd)),
            Err(BlockError::Misaligned {
                len: 100,
                sector_size: 512
            })
        );
        assert!(matches!(
            now(d.write(0, &[])),
            Err(BlockError::Misaligned { len: 0, .. })
        ));
    }

    #[test]
    fn read_only_disks_refuse_writes_and_keep_the_file() {
        let f = TempFile::new("ro", &[7u8; 1024]);
        let d = FileDisk::open_spec(&format!("{}:ro", f.0.display()).parse().unwrap()).unwrap();
        assert!(d.geometry().read_only);
        assert_eq!(now(d.write(0, &[0u8; 512])), Err(BlockError::ReadOnly));
        now(d.flush()).unwrap();
        assert_eq!(std::fs::read(&f.0).unwrap(), vec![7u8; 1024]);
    }

    #[test]
    fn open_errors_name_the_file() {
        let missing = std::env::temp_dir().join("oasis-filedisk-does-not-exist.img");
        let e = FileDisk::open(&missing, false).unwrap_err();
        assert!(matches!(e, FileDiskError::Open { .. }));
        assert!(
            e.to_string().contains("oasis-filedisk-does-not-exist.img"),
            "{e}"
        );
        let f = TempFile::new("tiny", &[1u8; 100]);
        let e = FileDisk::open(&f.0, false).unwrap_err();
        assert!(matches!(e, FileDiskError::TooSmall { len: 100, .. }), "{e}");
        let e = FileDisk::open(&std::env::temp_dir(), true).unwrap_err();
        assert!(
            matches!(
                e,
                FileDiskError::NotAFile { .. } | FileDiskError::Open { .. }
            ),
            "{e}"
        );
        assert!("".parse::<DiskSpec>().is_err());
        assert!(":ro".parse::<DiskSpec>().is_err());
        assert_eq!(
            "a.img:ro".parse::<DiskSpec>().unwrap(),
            DiskSpec {
                path: "a.img".into(),
                read_only: true
            }
        );
    }

    #[test]
    fn a_store_survives_reopening_the_file() {
        // The same bytes under QEMU and hosted: a write, a flush, a fresh open.
        let f = TempFile::new("persist", &vec![0u8; 64 * 1024]);
        {
            let d = FileDisk::open(&f.0, false).unwrap();
            for s in 0..128u64 {
                now(d.write(s, &[s as u8; 512])).unwrap();
            }
            now(d.flush()).unwrap();
        }
        let d = FileDisk::open(&f.0, false).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        now(d.read(0, &mut buf)).unwrap();
        for (s, chunk) in buf.chunks(512).enumerate() {
            assert!(chunk.iter().all(|&b| b == s as u8), "sector {s}");
        }
    }
}
