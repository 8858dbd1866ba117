//! `cargo oasis image`: disk images for `--disk` — a tar image of a directory (for
//! `www --disk`) or a zeroed image (for `kv`, whose store formats itself on first
//! mount).
//!
//! Images are raw: byte `n` of the file is byte `n` of the disk, the layout QEMU's
//! `format=raw` and the hosted `--disk=FILE` use. Sizes are padded to [`ALIGN`]
//! bytes so that every sector size a device may report (512 or 4096) divides them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Images are padded to a multiple of this (the largest sector size we support).
pub const ALIGN: u64 = 4096;
/// Largest image `empty` creates, in MiB (1 TiB).
pub const MAX_SIZE_MIB: u64 = 1 << 20;

/// Writes `bytes`, zero-padded to `len`, to `out` through a temporary file renamed
/// into place, so a failed run never leaves a half-written image.
fn write_image(out: &Path, bytes: &[u8], len: u64, force: bool) -> anyhow::Result<()> {
    if out.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", out.display());
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = PathBuf::from(format!(
        "{}.tmp-{}-{seq}",
        out.display(),
        std::process::id()
    ));
    let result = (|| -> anyhow::Result<()> {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        // The zero padding is a hole: sparse where the file system allows.
        f.set_len(len)
            .with_context(|| format!("sizing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, out)
            .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A tar image of the tree under `dir` (regular files and directories, sorted, paths
/// relative to `dir`), padded to [`ALIGN`], or to `size_mib` MiB when given (an error
/// if the archive is larger). Returns the image size in bytes.
pub fn tar(dir: &Path, out: &Path, size_mib: Option<u64>, force: bool) -> anyhow::Result<u64> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let archive = oasis_tar::builder::from_dir(dir)
        .with_context(|| format!("archiving {}", dir.display()))?;
    let natural = (archive.len() as u64).next_multiple_of(ALIGN);
    let len = match size_mib {
        None => natural,
        Some(mib) => {
            let want = mib_to_bytes(mib)?;
            if want < natural {
                bail!(
                    "the archive of {} needs {natural} bytes; --size {mib} MiB is too small",
                    dir.display()
                );
            }
            want
        }
    };
    write_image(out, &archive, len, force)?;
    Ok(len)
}

/// A zeroed (sparse) image of `size_mib` MiB.
pub fn empty(out: &Path, size_mib: u64, force: bool) -> anyhow::Result<u64> {
    let len = mib_to_bytes(size_mib)?;
    write_image(out, &[], len, force)?;
    Ok(len)
}

fn mib_to_bytes(mib: u64) -> anyhow::Result<u64> {
    if mib == 0 || mib > MAX_SIZE_MIB {
        bail!("--size {mib} MiB is out of range 1..={MAX_SIZE_MIB}");
    }
    Ok(mib << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oasis-image-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn tar_images_hold_the_tree_and_are_aligned() {
        let d = tmpdir("tar");
        let site = d.join("site");
        std::fs::create_dir_all(site.join("css")).unwrap();
        std::fs::write(site.join("index.html"), b"<h1>hi</h1>").unwrap();
        std::fs::write(site.join("css/site.css"), vec![b'x'; 5000]).unwrap();
        let out = d.join("site.img");
        let len = tar(&site, &out, None, false).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert_eq!(len % ALIGN, 0);
        let files: Vec<(String, Vec<u8>)> = oasis_tar::entries(&bytes)
            .map(|e| e.unwrap())
            .filter(|e| e.kind == oasis_tar::EntryKind::Regular)
            .map(|e| (e.path.clone(), e.data(&bytes).unwrap().to_vec()))
            .collect();
        assert_eq!(
            files,
            [
                ("css/site.css".to_string(), vec![b'x'; 5000]),
                ("index.html".to_string(), b"<h1>hi</h1>".to_vec()),
            ]
        );
        // Refuses to overwrite without --force; pads to a requested size.
        assert!(tar(&site, &out, None, false).is_err());
        assert_eq!(tar(&site, &out, Some(2), true).unwrap(), 2 << 20);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 2 << 20);
        assert!(tar(&site, &d.join("x.img"), Some(0), false).is_err());
        assert!(tar(&d.join("missing"), &d.join("y.img"), None, false).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn empty_images_are_zero_and_sized() {
        let d = tmpdir("empty");
        let out = d.join("kv.img");
        assert_eq!(empty(&out, 3, false).unwrap(), 3 << 20);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), 3 << 20);
        assert!(bytes.iter().all(|&b| b == 0));
        assert!(empty(&out, 3, false).is_err());
        assert!(empty(&out, 0, true).is_err());
        assert!(empty(&out, MAX_SIZE_MIB + 1, true).is_err());
        assert!(
            !d.read_dir().unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-"))
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
