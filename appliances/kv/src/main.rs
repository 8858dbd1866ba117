//! `kv`: the HTTP key-value unikernel (see the library docs for the API). Mounts the
//! store on the first disk (formatting a blank one), listens on port 80, prints
//! `kv: ready` and serves until stopped (`POST /shutdown` with `--allow-shutdown`).
//!
//! `cargo oasis image empty kv.img --size 64 && cargo oasis run kv --disk kv.img`
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use kv::{Client, KvHandler, MAX_VALUE_LEN, Reply, Store, channel};
use oasis::block::DiskError;
use oasis::net::{NetError, TcpListener, TcpStream};
use oasis::prelude::*;
use oasis_http::{Connection, Limits, StatusCode};
use oasis_storage::{KvError, KvRead, LogStore};

/// Why `kv` stopped.
#[derive(Debug)]
enum KvAppError {
    Disk(DiskError),
    Store(KvError),
    Net(NetError),
}

impl core::fmt::Display for KvAppError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KvAppError::Disk(e) => write!(f, "{e}"),
            KvAppError::Store(e) => write!(f, "store: {e}"),
            KvAppError::Net(e) => write!(f, "network: {e}"),
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
    max_conns: usize,
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
        max_conns,
    };
    let net = os.net().await?;
    let listener = net.tcp_listen(port)?;
    let (client, rx) = channel();
    os.spawn(accept_loop(os.clone(), listener, client, settings));
    println!(
        "kv: ready: {keys} keys on {name} (mounted in {mount_ms} ms), http://{}:{port}/kv/",
        net.address()
    );
    let mut store = Store::new(store);
    store.run(&rx).await;
    Ok(())
}

async fn accept_loop(os: Os, listener: TcpListener, client: Client, s: Settings) {
    let refusal = oasis::net::Refusal::Reply(oasis::http::OVERLOADED_RESPONSE);
    oasis::net::serve(listener, s.max_conns, refusal, |stream, _peer| {
        let (os2, client) = (os.clone(), client.clone());
        async move { serve(&os2, stream, &client, s).await }
    })
    .await;
}

async fn serve(os: &Os, mut stream: TcpStream, client: &Client, s: Settings) {
    let mut conn = Connection::new(s.limits);
    let mut handler = KvHandler::new(s.allow_shutdown);
    let t = s.timeouts;
    while oasis::http::drive(os, &mut stream, &mut conn, &mut handler, t).await
        == oasis::http::Driven::Deferred
    {
        let reply = match handler.take_op() {
            Some(op) => client.call(op).await,
            None => Reply::Refused(StatusCode::InternalServerError, "lost request\n"),
        };
        handler.set_reply(reply);
    }
    if handler.stopping() {
        println!("kv: stopping");
        os.exit(0);
    }
}
