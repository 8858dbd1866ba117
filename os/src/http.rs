//! Serving HTTP/1.1 over a [`TcpStream`](crate::net::TcpStream) with `oasis-http`'s
//! sans-IO [`Connection`](oasis_http::Connection) (feature `http`).
//!
//! [`drive`] is the one loop every HTTP appliance runs per connection: read with the
//! header or idle timeout, let the connection parse and call the handler, write the
//! response head and its (zero-copy) body, and run the handler's deferred work (a
//! disk read, a store write) when it asks for it.

use core::time::Duration;

pub use oasis_http::*;

use crate::net::TcpStream;
use crate::time::timeout;

/// How long a client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To send a request head once it started one (then 408).
    pub header: Duration,
    /// Between requests on a keep-alive connection (then the connection closes).
    pub idle: Duration,
}

/// Why [`drive`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driven {
    /// The handler asked to defer ([`ResponseWriter::defer`]): do the asynchronous
    /// part of the request, then call [`drive`] again, which hands the same request
    /// to the handler once more.
    Deferred,
    /// The connection is over (the stream has been flushed and shut down).
    Closed,
}

/// Serves one connection until it closes or the handler defers a request.
///
/// Handlers that answer every request at once just `drive(..).await` once:
///
/// ```ignore
/// let mut conn = Connection::new(Limits::default());
/// while drive(&os, &mut stream, &mut conn, &mut handler, t).await == Driven::Deferred {
///     handler.do_the_slow_part().await;
/// }
/// ```
pub async fn drive<H: Handler>(
    os: &crate::Os,
    stream: &mut TcpStream,
    conn: &mut Connection,
    handler: &mut H,
    t: Timeouts,
) -> Driven {
    // Responses go out as head + body writes; Nagle would hold the body back until
    // the client ACKs the head (a delayed ACK: ~40 ms per response).
    stream.set_nodelay(true);
    loop {
        let now = os.wall_clock().map(|d| d.as_secs());
        match conn.poll(handler, now) {
            Action::Write => {
                let out = conn.output();
                // Head and body are separate slices (the body is often the image's own
                // bytes); both land in the socket buffer before the stack sends.
                let chunk = if out.head.is_empty() {
                    out.body
                } else {
                    out.head
                };
                match stream.write(chunk).await {
                    Ok(n) => conn.advance(n),
                    Err(_) => break,
                }
            }
            Action::Read => {
                let limit = if conn.is_idle() { t.idle } else { t.header };
                match timeout(limit, stream.read(conn.read_buf())).await {
                    Ok(Ok(0)) => conn.eof(),
                    Ok(Ok(n)) => conn.commit(n),
                    Ok(Err(_)) => break,
                    Err(_) => conn.timeout(),
                }
            }
            Action::Defer => return Driven::Deferred,
            Action::Close => break,
        }
    }
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
    Driven::Closed
}

/// The options every HTTP appliance takes, read from its boot arguments:
/// `--port` (default 80), `--max-connections` (default: what the stack admits), `--header-timeout` (seconds, default
/// 10), `--idle-timeout` (seconds, default 60).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// TCP port to listen on.
    pub port: u16,
    /// Connections served at once; more are refused (`usize::MAX`: no limit of its
    /// own, the network stack's admission control decides).
    pub max_connections: usize,
    /// Header and keep-alive timeouts.
    pub timeouts: Timeouts,
}

impl ServerOptions {
    /// Reads the options.
    pub fn from_args(args: &mut crate::Args) -> Self {
        let port = args.value_or("port", 80, "PORT", "TCP port to serve on");
        let max_connections = args
            .value(
                "max-connections",
                "N",
                "connections served at once; more get 503 (default: as many as the network stack admits, see --tcp-max-connections)",
            )
            .unwrap_or(usize::MAX);
        let header: u64 = args.value_or(
            "header-timeout",
            10,
            "SECS",
            "time a client has to send a request head (408 after)",
        );
        let idle: u64 = args.value_or(
            "idle-timeout",
            60,
            "SECS",
            "keep-alive connections idle this long are closed",
        );
        ServerOptions {
            port,
            max_connections,
            timeouts: Timeouts {
                header: Duration::from_secs(header.max(1)),
                idle: Duration::from_secs(idle.max(1)),
            },
        }
    }
}
