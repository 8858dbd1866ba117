//! `pico`: a small HTTP appliance built on [picoserve], a third-party `no_std` async
//! web framework, used unmodified from crates.io: the proof that crates written for
//! the embedded async ecosystem run on Oasis, on `kvm` and `hosted` alike.
//!
//! Routes (port 80, `--port=N` to change):
//!
//! - `GET /`: a text page naming the platform (`Os::platform_report`);
//! - `GET /hello/NAME`: `hello, NAME` (percent-decoded by picoserve);
//! - `GET /status.json`: `{"app":"pico","platform":…,"uptime_ms":…}` (picoserve's
//!   `json` feature, serde-json-core, `no_std`).
//!
//! Prints `pico: ready on http://ADDR:PORT/` once it listens.
//!
//! # Why picoserve
//!
//! It is axum-shaped (a router, extractors, handlers as plain async fns), never
//! touches the heap itself, and is written against `embedded-io-async` 0.7 (the
//! version Oasis implements) with a pluggable runtime: a `Socket` and a `Timer`
//! trait, nothing else. edge-http (edge-net) also builds `no_std`, but is a
//! lower-level request/response codec whose server accepts through edge-nal's own
//! socket traits and has no router: another adapter layer and hand-written routing,
//! less of a demonstration that an application framework drops in.
//!
//! # Glue
//!
//! Everything Oasis-specific is in [`glue`] (about 100 lines): `oasis::net::TcpStream`
//! already implements `embedded_io_async::{Read, Write}` and splits into halves that
//! do too, so picoserve's `Socket` is implemented for it directly (legal: the
//! runtime marker type parameter is ours); a writer newtype adds picoserve's
//! buffer-lending `Write::write_with`; a `Timer` wraps `oasis::time::sleep`. And an
//! accept loop: `oasis::net::serve` spawns a task per connection, tasks must be
//! `Send`, and picoserve's connection futures are not, so `glue::serve_local` polls
//! the connections from the main task instead.
//!
//! [picoserve]: https://docs.rs/picoserve/0.20
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

mod glue;

use oasis::net::NetError;
use oasis::prelude::*;
use picoserve::routing::{get, parse_path_segment};

/// Bytes picoserve may use per connection for the request head and body.
const HTTP_BUFFER: usize = 2048;

/// Keep-alive, with the client timeouts of the other HTTP appliances (`www`):
/// 10 s for a request head, 60 s idle between requests.
static CONFIG: picoserve::Config = picoserve::Config::new(picoserve::Timeouts {
    start_read_request: picoserve::time::Duration::from_secs(10),
    persistent_start_read_request: picoserve::time::Duration::from_secs(60),
    read_request: picoserve::time::Duration::from_secs(10),
    write: picoserve::time::Duration::from_secs(10),
})
.keep_connection_alive();

/// The JSON route's body.
#[derive(serde::Serialize)]
struct Status<'a> {
    app: &'static str,
    platform: &'a str,
    uptime_ms: u64,
}

#[oasis::main]
async fn main(os: Os) -> Result<(), NetError> {
    let mut args = os.args();
    let port: u16 = args.value_or("port", 80, "PORT", "TCP port to serve on");
    let max_connections: usize = args.value_or(
        "max-connections",
        64,
        "N",
        "connections served at once; more are reset",
    );
    args.finish();

    // Computed once; the router and every connection borrow it.
    let platform = os.platform_report();
    let platform = platform.as_str();
    let app = picoserve::Router::new()
        .route(
            "/",
            get(move || async move { format!("pico on oasis\nplatform: {platform}\n") }),
        )
        .route(
            ("/hello", parse_path_segment::<String>()),
            get(|name: String| async move { format!("hello, {name}\n") }),
        )
        .route(
            "/status.json",
            get(move || async move {
                picoserve::response::Json(Status {
                    app: "pico",
                    platform,
                    uptime_ms: oasis::time::now().as_nanos() / 1_000_000,
                })
            }),
        );

    let net = os.net().await?;
    let listener = net.tcp_listen(port)?;
    println!("pico: ready on http://{}:{port}/", net.address());
    let app = &app;
    glue::serve_local(&listener, max_connections, |stream| async move {
        let mut buffer = [0u8; HTTP_BUFFER];
        let server = picoserve::Server::custom(app, glue::Timer, &CONFIG, &mut buffer);
        if let Err(e) = server.serve(stream).await {
            oasis::log::debug!("pico: connection ended: {e:?}");
        }
    })
    .await
}
