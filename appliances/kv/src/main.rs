//! `kv`: the HTTP key-value unikernel (see the library docs for the API). Mounts the
//! store on the first disk (formatting a blank one), listens on port 80, prints
//! `kv: ready` and serves until stopped (`POST /shutdown` with `--allow-shutdown`).
//!
//! `cargo oasis image empty kv.img --size 64 && cargo oasis run kv --disk kv.img`
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kv::{Client, HEALTH_PATH, KvHandler, MAX_VALUE_LEN, Reply, Store, channel};
use oasis::block::DiskError;
use oasis::http::{Connection, Limits, StatusCode};
use oasis::http::{HttpStream, Policy, Secured};
use oasis::net::NetError;
use oasis::prelude::*;
use oasis::storage::{KvError, KvRead, LogStore};

/// Why `kv` stopped.
#[derive(Debug)]
enum KvAppError {
    Disk(DiskError),
    Store(KvError),
    Net(NetError),
    Tls(alloc::string::String),
}

impl core::fmt::Display for KvAppError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KvAppError::Disk(e) => write!(f, "{e}"),
            KvAppError::Store(e) => write!(f, "store: {e}"),
            KvAppError::Net(e) => write!(f, "network: {e}"),
            KvAppError::Tls(e) => write!(f, "https: {e}"),
        }
    }
}

impl From<DiskError> for KvAppError {
    fn from(e: DiskError) -> Self {
        KvAppError::Disk(e)
    }
}

impl From<KvError> for KvAppError {
    fn from(e: KvError) -> Self {
        KvAppError::Store(e)
    }
}

impl From<NetError> for KvAppError {
    fn from(e: NetError) -> Self {
        KvAppError::Net(e)
    }
}

#[derive(Clone, Copy)]
struct Settings {
    timeouts: oasis::http::Timeouts,
    limits: Limits,
    allow_shutdown: bool,
    /// Redirect and HSTS (`--tls-redirect`, `--hsts`).
    policy: Policy,
}

#[oasis::main]
async fn main(os: Os) -> Result<(), KvAppError> {
    let mut args = os.args();
    let opts = oasis::http::ServerOptions::from_args(&mut args);
    let (port, max_conns) = (opts.port, opts.max_connections);
    let allow_shutdown = args.flag(
        "allow-shutdown",
        "POST /shutdown stops the service (exit 0)",
    );
    let https = oasis::http::Https::from_args(&mut args).map_err(KvAppError::Tls)?;
    args.finish();

    let disk = os.disk()?;
    let name = disk.name().to_owned();
    let started = os.now();
    let mut store = LogStore::mount_or_format(disk).await?;
    let clock_os = os.clone();
    store.set_clock(move || clock_os.wall_clock().map_or(0, |d| d.as_secs()));
    let mount_ms = started.elapsed().as_millis();
    let keys = store.len();

    let settings = Settings {
        timeouts: opts.timeouts,
        limits: Limits {
            body: MAX_VALUE_LEN,
            ..Limits::default()
        },
        allow_shutdown,
        policy: https.as_ref().map(|h| h.policy()).unwrap_or_default(),
    };
    let net = os.net().await?;
    oasis::metrics::register(&OPS);
    oasis::metrics::register(&FAILED);
    oasis::metrics::register(&KEYS);
    oasis::metrics::register(&LOG_BYTES);
    let (client, rx) = channel();
    let os2 = os.clone();
    let urls = oasis::http::spawn_listeners(&net, port, https.as_ref(), max_conns, {
        let client = client.clone();
        move |stream, _peer| {
            let (os3, client) = (os2.clone(), client.clone());
            async move { serve(&os3, stream, &client, settings).await }
        }
    })?;
    println!(
        "kv: ready: {keys} keys on {name} (mounted in {mount_ms} ms), {}",
        urls.iter()
            .map(|u| alloc::format!("{u}/kv/"))
            .collect::<alloc::vec::Vec<_>>()
            .join(" and ")
    );
    show_usage(&store);
    let mut store = Store::new(store);
    store.run_observed(&rx, show_usage).await;
    Ok(())
}

/// Store operations requested (`--metrics-port`).
static OPS: oasis::metrics::CounterFamily<5> = oasis::metrics::CounterFamily::new(
    "kv_operations_total",
    "Store operations requested, by kind.",
    "op",
    ["get", "put", "delete", "list", "other"],
);
/// Sets the store usage gauges.
fn show_usage<D: oasis::block::BlockDevice>(kv: &LogStore<D>) {
    KEYS.set(kv.len() as u64);
    let (used, capacity) = kv.log_usage();
    LOG_BYTES.set(0, used);
    LOG_BYTES.set(1, capacity);
}

/// Keys in the store (after the last group of operations).
static KEYS: oasis::metrics::Gauge =
    oasis::metrics::Gauge::new("kv_keys", "Keys in the store, after the last operations.");
/// The store's log: bytes used of its region, and the region's size.
static LOG_BYTES: oasis::metrics::GaugeFamily<2> = oasis::metrics::GaugeFamily::new(
    "kv_log_bytes",
    "The store's log: bytes of the active region in use (grows with every write until a compaction) and the region's size.",
    "kind",
    ["used", "capacity"],
);
/// Operations the store failed.
static FAILED: oasis::metrics::CounterFamily<1> = oasis::metrics::CounterFamily::new(
    "kv_failures_total",
    "Store operations that failed (disk or store errors).",
    "op",
    ["any"],
);

async fn serve(os: &Os, mut stream: HttpStream, client: &Client, s: Settings) {
    let mut conn = Connection::new(s.limits);
    let tls = stream.is_tls();
    let mut handler = Secured::new(KvHandler::new(s.allow_shutdown), s.policy, tls, HEALTH_PATH);
    let t = s.timeouts;
    while oasis::http::drive(os, &mut stream, &mut conn, &mut handler, t).await
        == oasis::http::Driven::Deferred
    {
        let reply = match handler.inner.take_op() {
            Some(op) => {
                OPS.inc(match &op {
                    kv::Op::Get { .. } => 0,
                    kv::Op::Put { .. } => 1,
                    kv::Op::Delete { .. } => 2,
                    kv::Op::List { .. } => 3,
                    _ => 4,
                });
                let reply = client.call(op).await;
                if matches!(reply, Reply::Failed(_)) {
                    FAILED.inc(0);
                }
                reply
            }
            None => Reply::Refused(StatusCode::InternalServerError, "lost request\n"),
        };
        handler.inner.set_reply(reply);
    }
    if handler.inner.stopping() {
        println!("kv: stopping");
        os.exit(0);
    }
}
