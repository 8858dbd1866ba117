//! Serving the site from a tar image on a disk instead of the embedded pack, so the
//! content changes without rebuilding the image (`cargo oasis image tar DIR site.img`,
//! then `cargo oasis run www --disk site.img`; hosted: `www --disk=site.img`).
//!
//! - Every regular file of the tar is served at `/` + its path; directory index,
//!   redirects, 403/404/405 and path rules are those of the embedded site
//!   ([`oasis::http::resolve`]).
//! - Content type by extension ([`oasis::http::mime`]); ETag from the store's digest
//!   (CRC-32 of the content, computed on first request and cached); Last-Modified
//!   from the tar mtime; conditional and range requests as for the embedded site.
//! - No compression on the fly: `X.gz` in the tar, when present, is served as the
//!   gzip variant of `X` to clients that accept gzip (and `Vary: Accept-Encoding` is
//!   sent for such files only).
//! - Bodies are read per request into a buffer reused by the connection; files
//!   larger than `--disk-max-file` MiB (default 8) are answered 500 (the embedded
//!   path has no such limit, its bodies are never copied).
//!
//! The [`TarStore`] lives in the main task (its device futures are not `Send`);
//! connection tasks resolve paths against a shared index, then ask the store task
//! for the file over a channel and answer with a deferred response.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;

use oasis::block::Disk;
use oasis::http::{
    Connection, Entry, Handler, RESOLVE_BUF_LEN, Request, ResponseWriter, SiteIndex, StatusCode,
    mime, resolve, serve_entry_copied,
};
use oasis::log::info;
use oasis::prelude::*;
use oasis::storage::{KvError, KvRead, TarStore};
use oasis::sync::{Channel, Signal};

use crate::Settings;

/// The paths of the tar's files, as the site serves them (`/dir/file`).
#[derive(Debug, Default)]
pub struct Index {
    paths: BTreeSet<String>,
}

impl SiteIndex for Index {
    fn contains(&self, path: &[u8]) -> bool {
        core::str::from_utf8(path).is_ok_and(|p| self.paths.contains(p))
    }

    fn has_prefix(&self, prefix: &[u8]) -> bool {
        let Ok(prefix) = core::str::from_utf8(prefix) else {
            return false;
        };
        self.paths
            .range::<str, _>((
                core::ops::Bound::Included(prefix),
                core::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }
}

/// A file as the store task hands it over.
#[derive(Debug)]
pub struct FileData {
    body: Vec<u8>,
    gzip: Option<Vec<u8>>,
    digest: u32,
    mtime: u64,
}

type Answer = Result<FileData, (StatusCode, &'static str)>;

/// Requests waiting for the disk task at most; more connection tasks wait for room.
const QUEUE_DEPTH: usize = 32;

struct Call {
    key: String,
    with_gzip: bool,
    reply: Arc<Signal<Answer>>,
}

type Queue = Channel<Call, QUEUE_DEPTH>;

/// Connection tasks' handle on the store task.
#[derive(Clone)]
pub struct Client {
    queue: Arc<Queue>,
    index: Arc<Index>,
}

impl Client {
    async fn fetch(&self, key: String, with_gzip: bool) -> Answer {
        let reply = Arc::new(Signal::new());
        self.queue
            .send(Call {
                key,
                with_gzip,
                reply: reply.clone(),
            })
            .await;
        reply.wait().await
    }
}

/// The mounted site: the store (for the main task) and the client (for connections).
pub struct DiskSite {
    store: TarStore<Disk>,
    queue: Arc<Queue>,
    /// The connection tasks' handle.
    pub client: Client,
    /// Name of the disk, for the ready line.
    pub disk: String,
}

/// Mounts the tar image on `disk`; `Ok(None)` when it holds no file (a blank disk).
pub async fn mount(disk: Disk) -> Result<Option<DiskSite>, KvError> {
    let name = disk.name().into();
    let store = TarStore::mount(disk).await?;
    if store.is_empty() {
        return Ok(None);
    }
    let index = Index {
        paths: store
            .list("")
            .into_iter()
            .map(|k| alloc::format!("/{k}"))
            .collect(),
    };
    let queue = Arc::new(Queue::new());
    Ok(Some(DiskSite {
        store,
        queue: queue.clone(),
        client: Client {
            queue,
            index: Arc::new(index),
        },
        disk: name,
    }))
}

impl DiskSite {
    /// Number of files.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Answers file requests forever (runs in the main task).
    pub async fn run(self, max_file: u64) {
        loop {
            let call = self.queue.receive().await;
            let answer = self.read(&call.key, call.with_gzip, max_file).await;
            call.reply.signal(answer);
        }
    }

    async fn read(&self, key: &str, with_gzip: bool, max_file: u64) -> Answer {
        let failed = |e: KvError| {
            oasis::log::error!("reading {key} from the disk: {e}");
            (
                StatusCode::InternalServerError,
                "the disk could not be read\n",
            )
        };
        let Some(meta) = self.store.meta(key) else {
            return Err((StatusCode::NotFound, "not found\n"));
        };
        if meta.size > max_file {
            oasis::log::warn!("{key}: {} bytes is over --disk-max-file", meta.size);
            return Err((
                StatusCode::InternalServerError,
                "file too large to serve from disk\n",
            ));
        }
        let digest = self.store.digest(key).await.map_err(failed)?.unwrap_or(0);
        let body = self
            .store
            .get(key)
            .await
            .map_err(failed)?
            .unwrap_or_default();
        let gz_key = alloc::format!("{key}.gz");
        let gzip = match self.store.meta(&gz_key) {
            Some(m) if with_gzip && m.size <= max_file => {
                self.store.get(&gz_key).await.map_err(failed)?
            }
            _ => None,
        };
        Ok(FileData {
            body,
            gzip,
            digest,
            mtime: meta.mtime,
        })
    }
}

/// The per-connection handler: resolves paths at once, defers file reads.
struct DiskHandler<'a> {
    index: &'a Index,
    peer: &'a SocketAddr,
    want: Option<(String, bool)>,
    ready: Option<(String, Answer)>,
}

impl Handler for DiskHandler<'_> {
    fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
        if crate::health(req, resp) {
            return;
        }
        match self.ready.take() {
            Some((path, Ok(file))) => {
                let gz = file.gzip.as_deref();
                let entry = Entry {
                    path: &path,
                    content_type: mime::content_type_for(&path),
                    body: &file.body,
                    gzip: gz,
                    digest: u64::from(file.digest),
                    last_modified: file.mtime,
                    compressible: gz.is_some(),
                };
                serve_entry_copied(&entry, req, resp);
            }
            Some((_, Err((status, why)))) => {
                resp.set_status(status);
                resp.header("Content-Type", b"text/plain");
                resp.body_bytes(why.as_bytes());
            }
            None => {
                let mut buf = [0u8; RESOLVE_BUF_LEN];
                let Some(path) = resolve(self.index, req, resp, &mut buf) else {
                    return self.log(req, resp);
                };
                let Ok(path) = core::str::from_utf8(path) else {
                    resp.set_status(StatusCode::NotFound);
                    return self.log(req, resp);
                };
                let gz_path = alloc::format!("{path}.gz");
                let with_gzip = req.header("accept-encoding").is_some()
                    && self.index.contains(gz_path.as_bytes());
                self.want = Some((path.into(), with_gzip));
                resp.defer();
                return;
            }
        }
        self.log(req, resp);
    }

    fn wants_body(&self) -> bool {
        false
    }
}

impl DiskHandler<'_> {
    fn log(&self, req: &Request<'_>, resp: &ResponseWriter) {
        info!(target: "www::access", "{} \"{} {}\" {} {}", self.peer, req.method().as_str(), req.target(), resp.status().code(), resp.body_len());
    }
}

/// One connection, answered from the disk.
pub async fn serve(
    os: &Os,
    mut stream: oasis::http::HttpStream,
    peer: SocketAddr,
    client: Client,
    s: Settings,
) {
    let mut conn = Connection::new(s.limits);
    let tls = stream.is_tls();
    let inner = DiskHandler {
        index: &client.index,
        peer: &peer,
        want: None,
        ready: None,
    };
    let mut handler = oasis::http::Secured::new(inner, s.policy, tls, crate::HEALTH_PATH);
    let t = s.timeouts;
    while oasis::http::drive(os, &mut stream, &mut conn, &mut handler, t).await
        == oasis::http::Driven::Deferred
    {
        let (path, with_gzip) = handler.inner.want.take().unwrap_or_default();
        let key = path.strip_prefix('/').unwrap_or(&path).into();
        let answer = client.fetch(key, with_gzip).await;
        handler.inner.ready = Some((path, answer));
    }
}
