//! Host-side pack builder (feature `std`): walks a directory, picks content types by
//! extension, gzips compressible files with flate2 and keeps the variant only when smaller.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::string::String;
use std::vec::Vec;

use crate::pack::{NewEntry, PackBuildError, PackBuilder};

/// Why a directory could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading the tree failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file name that is not UTF-8.
    #[error("file name {path:?} is not UTF-8")]
    NonUtf8Name {
        /// The offending path.
        path: PathBuf,
    },
    /// The pack format refused an entry.
    #[error(transparent)]
    Pack(#[from] PackBuildError),
    /// gzip compression failed.
    #[error("compressing {path}: {source}")]
    Gzip {
        /// The site path.
        path: String,
        /// The I/O error from flate2.
        #[source]
        source: std::io::Error,
    },
}

pub use crate::mime::{content_type_for, is_compressible};

/// gzip (best compression, mtime 0 so builds are reproducible).
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    enc.finish()
}

/// Adds one file to `builder`: type by extension, gzip variant kept only when smaller.
pub fn add_file(
    builder: &mut PackBuilder,
    path: &str,
    body: &[u8],
    last_modified: u64,
) -> Result<(), BuildError> {
    let content_type = content_type_for(path);
    let compressible = is_compressible(content_type);
    let gz = if compressible {
        let gz = gzip(body).map_err(|source| BuildError::Gzip {
            path: path.into(),
            source,
        })?;
        (gz.len() < body.len()).then_some(gz)
    } else {
        None
    };
    builder.add(NewEntry {
        path,
        content_type,
        body,
        gzip: gz.as_deref(),
        last_modified,
        compressible,
    })?;
    Ok(())
}

/// Packs every regular file under `dir` (recursively, following symlinks) into a pack
/// for [`StaticSite::parse`](crate::StaticSite::parse). `dir/a/b.html` becomes `/a/b.html`.
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, BuildError> {
    let mut builder = PackBuilder::new();
    walk(dir, String::new(), &mut builder)?;
    Ok(builder.finish()?)
}

fn walk(dir: &Path, prefix: String, builder: &mut PackBuilder) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let full = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| BuildError::NonUtf8Name { path: full.clone() })?;
        let site_path = std::format!("{prefix}/{name}");
        let meta = fs::metadata(&full).map_err(io(&full))?;
        if meta.is_dir() {
            walk(&full, site_path, builder)?;
        } else if meta.is_file() {
            let body = fs::read(&full).map_err(io(&full))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            add_file(builder, &site_path, &body, mtime)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticSite;

    #[test]
    fn content_types() {
        assert_eq!(content_type_for("/index.HTML"), "text/html");
        assert_eq!(content_type_for("/a.js"), "application/javascript");
        assert_eq!(content_type_for("/noext"), "application/octet-stream");
        assert!(is_compressible("text/css"));
        assert!(!is_compressible("image/png"));
    }

    #[test]
    fn packs_a_directory() {
        let dir = std::env::temp_dir().join(std::format!("oasis-http-pack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("docs/deep")).unwrap();
        let html = "<p>hello</p>\n".repeat(100);
        fs::write(dir.join("index.html"), &html).unwrap();
        fs::write(dir.join("docs/deep/x.png"), [0x89, b'P', b'N', b'G']).unwrap();
        fs::write(dir.join("tiny.txt"), "a").unwrap();
        let bytes = pack_dir(&dir).unwrap();
        let _ = fs::remove_dir_all(&dir);
        let bytes: &'static [u8] = Vec::leak(bytes);
        let site = StaticSite::parse(bytes).unwrap();
        assert_eq!(site.len(), 3);
        let index = site.get("/index.html").unwrap();
        assert_eq!(index.body, html.as_bytes());
        assert!(index.compressible);
        let gz = index.gzip.expect("repetitive HTML compresses");
        assert!(gz.len() < html.len());
        let mut decoded = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut decoded).unwrap();
        assert_eq!(decoded, html);
        assert!(index.last_modified > 0);
        let png = site.get("/docs/deep/x.png").unwrap();
        assert_eq!(png.content_type, "image/png");
        assert!(png.gzip.is_none() && !png.compressible);
        // gzip of one byte is larger than the byte: not kept, but still Vary-worthy.
        let tiny = site.get("/tiny.txt").unwrap();
        assert!(tiny.gzip.is_none() && tiny.compressible);
    }

    #[test]
    fn missing_dir_is_an_io_error() {
        let err = pack_dir(Path::new("/nonexistent/oasis-http")).unwrap_err();
        assert!(matches!(err, BuildError::Io { .. }), "{err}");
        assert!(std::format!("{err}").contains("/nonexistent/oasis-http"));
    }
}
