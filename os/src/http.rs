//! Serving HTTP/1.1 over a [`TcpStream`](crate::net::TcpStream) with `oasis-http`'s
//! sans-IO [`Connection`](oasis_http::Connection) (feature `http`).
//!
//! [`drive`] is the one loop every HTTP appliance runs per connection: read with the
//! header or idle timeout, let the connection parse and call the handler, write the
//! response head and its (zero-copy) body, and run the handler's deferred work (a
//! disk read, a store write) when it asks for it.

use core::future::Future;
use core::time::Duration;

use embedded_io_async::{Read, Write};
pub use oasis_http::*;

use crate::net::TcpStream;
use crate::time::timeout;

/// A connection HTTP can be served over: TCP, or TLS over TCP (feature `tls`).
/// [`drive`] works on either, so a handler cannot tell HTTPS from HTTP.
pub trait Transport: Read + Write {
    /// Turns Nagle's algorithm off (`true`) or on, on the TCP stream underneath.
    fn set_nodelay(&self, nodelay: bool);
    /// Ends the connection cleanly: everything written is sent (TLS: then
    /// close_notify), then the TCP stream is shut down.
    fn close(&mut self) -> impl Future<Output = ()>;
}

impl Transport for TcpStream {
    fn set_nodelay(&self, nodelay: bool) {
        TcpStream::set_nodelay(self, nodelay);
    }
    async fn close(&mut self) {
        let _ = Write::flush(self).await;
        let _ = self.shutdown().await;
    }
}

/// An HTTP connection's stream: plain TCP, or TLS over TCP. One type for both, so
/// an appliance writes its connection code once; the TLS state is boxed, so a
/// plain connection's task is no larger than before.
pub enum HttpStream {
    /// HTTP over TCP.
    Plain(TcpStream),
    /// HTTPS.
    #[cfg(feature = "tls")]
    Tls(alloc::boxed::Box<crate::tls::TlsTcpStream>),
}

impl core::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.is_tls() {
            "HttpStream::Tls"
        } else {
            "HttpStream::Plain"
        })
    }
}

impl HttpStream {
    /// A stream for an accepted connection: plain with `tls: None`, else after a
    /// TLS handshake ([`crate::tls::accept`]: timed out, memory-checked). `None` when
    /// the handshake failed (the connection is closed; logged at debug level).
    pub async fn accept(tcp: TcpStream, tls: Option<&TlsConfigRef>) -> Option<HttpStream> {
        match tls {
            None => Some(HttpStream::Plain(tcp)),
            #[cfg(feature = "tls")]
            Some(config) => match crate::tls::accept(tcp, config).await {
                Ok(s) => Some(HttpStream::Tls(alloc::boxed::Box::new(s))),
                Err(e) => {
                    log::debug!("https: {e}");
                    None
                }
            },
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
        }
    }

    /// Whether this is HTTPS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, HttpStream::Plain(_))
    }
}

/// The accept loop of an HTTP or HTTPS listener: [`crate::net::serve`]'s admission
/// control (beyond `max_conns` or the memory budget: a 503 on HTTP, a reset on
/// HTTPS, where a plaintext 503 would be garbage), the TLS handshake when `tls` is
/// set, then `serve(stream, peer)` as the connection's task. Every HTTP appliance's
/// listeners run this.
pub async fn listen<F, Fut>(
    listener: crate::net::TcpListener,
    max_conns: usize,
    tls: Option<TlsConfigRef>,
    serve: F,
) where
    F: Fn(HttpStream, core::net::SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let refusal = if tls.is_some() {
        crate::net::Refusal::Reset
    } else {
        crate::net::Refusal::Reply(OVERLOADED_RESPONSE)
    };
    crate::net::serve(listener, max_conns, refusal, move |tcp, peer| {
        let (tls, serve) = (tls.clone(), serve.clone());
        async move {
            if let Some(stream) = HttpStream::accept(tcp, tls.as_ref()).await {
                serve(stream, peer).await;
            }
        }
    })
    .await;
}

/// Opens an HTTP appliance's listeners and serves them: plain HTTP on `port`, and
/// HTTPS on `https.port` when HTTPS is on, each through [`listen`] as a spawned
/// task calling `serve` per connection. Returns the base URLs served
/// (`http://ADDR:PORT`, then `https://…`), for the appliance's ready line.
#[cfg(feature = "tls")]
pub fn spawn_listeners<F, Fut>(
    net: &crate::net::Net,
    port: u16,
    https: Option<&Https>,
    max_conns: usize,
    serve: F,
) -> Result<alloc::vec::Vec<alloc::string::String>, crate::net::NetError>
where
    F: Fn(HttpStream, core::net::SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = net.address();
    let mut listeners = alloc::vec![(
        net.tcp_listen(port)?,
        None,
        alloc::format!("http://{addr}:{port}")
    )];
    if let Some(h) = https {
        let url = alloc::format!("https://{addr}:{}", h.port);
        listeners.push((net.tcp_listen(h.port)?, Some(h.config.clone()), url));
    }
    let mut urls = alloc::vec::Vec::new();
    for (listener, tls, url) in listeners {
        crate::task::spawn(listen(listener, max_conns, tls, serve.clone()));
        urls.push(url);
    }
    Ok(urls)
}

/// The TLS configuration [`HttpStream::accept`] takes (uninhabited without the
/// `tls` feature).
#[cfg(feature = "tls")]
pub type TlsConfigRef = crate::tls::TlsConfig;
/// The TLS configuration [`HttpStream::accept`] takes (uninhabited without the
/// `tls` feature).
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub enum TlsConfigRef {}

/// Why an [`HttpStream`] operation failed.
#[derive(Debug)]
pub enum HttpStreamError {
    /// On TCP.
    Net(crate::net::NetError),
    /// In TLS.
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsError),
}

impl embedded_io::Error for HttpStreamError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            HttpStreamError::Net(e) => e.kind(),
            #[cfg(feature = "tls")]
            HttpStreamError::Tls(e) => e.kind(),
        }
    }
}

impl core::fmt::Display for HttpStreamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HttpStreamError::Net(e) => e.fmt(f),
            #[cfg(feature = "tls")]
            HttpStreamError::Tls(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for HttpStreamError {}

impl embedded_io::ErrorType for HttpStream {
    type Error = HttpStreamError;
}

impl Read for HttpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpStreamError> {
        match self {
            HttpStream::Plain(s) => Read::read(s, buf).await.map_err(HttpStreamError::Net),
            #[cfg(feature = "tls")]
            HttpStream::Tls(s) => s.read(buf).await.map_err(HttpStreamError::Tls),
        }
    }
}

impl Write for HttpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, HttpStreamError> {
        match self {
            HttpStream::Plain(s) => Write::write(s, buf).await.map_err(HttpStreamError::Net),
            #[cfg(feature = "tls")]
            HttpStream::Tls(s) => s.write(buf).await.map_err(HttpStreamError::Tls),
        }
    }

    async fn flush(&mut self) -> Result<(), HttpStreamError> {
        match self {
            HttpStream::Plain(s) => Write::flush(s).await.map_err(HttpStreamError::Net),
            #[cfg(feature = "tls")]
            HttpStream::Tls(s) => s.flush().await.map_err(HttpStreamError::Tls),
        }
    }
}

impl Transport for HttpStream {
    fn set_nodelay(&self, nodelay: bool) {
        match self {
            HttpStream::Plain(s) => s.set_nodelay(nodelay),
            #[cfg(feature = "tls")]
            HttpStream::Tls(s) => s.set_nodelay(nodelay),
        }
    }

    async fn close(&mut self) {
        match self {
            HttpStream::Plain(s) => s.close().await,
            #[cfg(feature = "tls")]
            HttpStream::Tls(s) => s.close().await,
        }
    }
}

#[cfg(feature = "tls")]
impl Transport for crate::tls::TlsTcpStream {
    fn set_nodelay(&self, nodelay: bool) {
        self.get_ref().set_nodelay(nodelay);
    }
    async fn close(&mut self) {
        let _ = self.close_notify().await;
        let _ = self.get_mut().shutdown().await;
    }
}

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
pub async fn drive<H: Handler, S: Transport>(
    os: &crate::Os,
    stream: &mut S,
    conn: &mut Connection,
    handler: &mut H,
    t: Timeouts,
) -> Driven {
    // Responses go out as head + body writes; Nagle would hold the body back until
    // the client ACKs the head (a delayed ACK: ~40 ms per response).
    stream.set_nodelay(true);
    // Latency metric: from the first bytes of a request to the end of its answer.
    let mut arrived: Option<crate::time::Instant> = None;
    let mut answered = false;
    let record = |arrived: &mut Option<crate::time::Instant>, answered: &mut bool| {
        if core::mem::take(answered)
            && let Some(t0) = arrived.take()
        {
            crate::metrics::HTTP.latency(t0.elapsed());
        }
    };
    loop {
        let now = os.wall_clock().map(|d| d.as_secs());
        match conn.poll(handler, now) {
            Action::Write => {
                answered = true;
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
                record(&mut arrived, &mut answered);
                let limit = if conn.is_idle() { t.idle } else { t.header };
                match timeout(limit, stream.read(conn.read_buf())).await {
                    Ok(Ok(0)) => conn.eof(),
                    Ok(Ok(n)) => {
                        arrived.get_or_insert_with(crate::time::now);
                        conn.commit(n)
                    }
                    Ok(Err(_)) => break,
                    Err(_) => conn.timeout(),
                }
            }
            Action::Defer => return Driven::Deferred,
            Action::Close => {
                record(&mut arrived, &mut answered);
                break;
            }
        }
    }
    stream.close().await;
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

/// HTTPS for an HTTP appliance (feature `tls`), from its boot arguments:
/// `--tls-port=PORT` serves HTTPS there (off without it) with the certificate built
/// into the image (`OASIS_TLS_CERT`/`OASIS_TLS_KEY`, see [`crate::tls`]);
/// `--tls-redirect` answers plain-HTTP requests with a 301 to the same URL over
/// HTTPS; `--hsts=SECS` sends `Strict-Transport-Security: max-age=SECS` on HTTPS
/// responses.
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
pub struct Https {
    /// The HTTPS port.
    pub port: u16,
    /// The configuration (certificates, protocol settings).
    pub config: crate::tls::TlsConfig,
    /// Whether plain HTTP answers with a redirect.
    pub redirect: bool,
    /// The HSTS max-age, if HSTS is on.
    pub hsts: Option<u64>,
}

#[cfg(feature = "tls")]
impl Https {
    /// Reads the options; `Ok(None)` when `--tls-port` is absent. Errors name what is
    /// wrong: no certificate built in, a certificate that does not load (expired, key
    /// mismatch, malformed), or no wall clock.
    pub fn from_args(args: &mut crate::Args) -> Result<Option<Https>, alloc::string::String> {
        let port: Option<u16> = args.value("tls-port", "PORT", "serve HTTPS on this port");
        let redirect = args.flag(
            "tls-redirect",
            "answer plain HTTP with a redirect to HTTPS (301)",
        );
        let hsts: Option<u64> = args.value(
            "hsts",
            "SECS",
            "send Strict-Transport-Security with this max-age on HTTPS",
        );
        let Some(port) = port else {
            if redirect || hsts.is_some() {
                return Err("--tls-redirect and --hsts need --tls-port".into());
            }
            return Ok(None);
        };
        let identity = crate::tls::embedded_identity()
            .map_err(|e| alloc::format!("the built-in TLS certificate: {e}"))?
            .ok_or(
                "--tls-port: no certificate is built into this image (build with OASIS_TLS_CERT and OASIS_TLS_KEY naming PEM files; `cargo oasis run --tls` uses the development certificate from `cargo oasis cert`)",
            )?;
        let config =
            crate::tls::config(alloc::vec![identity]).map_err(|e| alloc::format!("{e}"))?;
        Ok(Some(Https {
            port,
            config,
            redirect,
            hsts,
        }))
    }
}

/// What HTTPS asks of every connection's handler: redirect plain HTTP, send HSTS.
/// The default asks nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `Some(port)`: plain-HTTP requests get a 301 to HTTPS on `port`.
    pub redirect_to: Option<u16>,
    /// `Some(secs)`: HTTPS responses carry HSTS with this max-age.
    pub hsts: Option<u64>,
}

#[cfg(feature = "tls")]
impl Https {
    /// The handler policy these options ask for.
    pub fn policy(&self) -> Policy {
        Policy {
            redirect_to: self.redirect.then_some(self.port),
            hsts: self.hsts,
        }
    }
}

impl<H: Handler> Secured<H> {
    /// Wraps `inner` for a connection: the redirect applies to plain HTTP, HSTS to
    /// HTTPS; `exempt` (a health check path) is never redirected.
    pub fn new(inner: H, policy: Policy, tls: bool, exempt: &'static str) -> Self {
        Secured {
            inner,
            redirect_to: policy.redirect_to.filter(|_| !tls),
            hsts: policy.hsts.filter(|_| tls),
            exempt,
        }
    }
}

/// Wraps an appliance's handler with what HTTPS asks of it: on plain HTTP with
/// `--tls-redirect`, a 301 to `https://HOST[:PORT]/TARGET` (except for `exempt`,
/// e.g. a health check); on HTTPS with `--hsts`, the `Strict-Transport-Security`
/// header.
#[derive(Debug)]
pub struct Secured<H> {
    /// The appliance's handler.
    pub inner: H,
    /// `Some(port)`: redirect plain-HTTP requests to HTTPS on `port`.
    pub redirect_to: Option<u16>,
    /// `Some(secs)`: add HSTS with this max-age.
    pub hsts: Option<u64>,
    /// A path answered by `inner` even when redirecting.
    pub exempt: &'static str,
}

impl<H: Handler> Handler for Secured<H> {
    fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
        if let Some(port) = self.redirect_to.filter(|_| req.path() != self.exempt) {
            // The client's Host without its port; absent (HTTP/1.0): no redirect.
            if let Some(host) = req
                .header("host")
                .and_then(|h| core::str::from_utf8(h).ok())
                .map(host_without_port)
                .filter(|h| !h.is_empty())
            {
                resp.set_status(StatusCode::MovedPermanently);
                if port == 443 {
                    resp.header_fmt("Location", format_args!("https://{host}{}", req.target()));
                } else {
                    resp.header_fmt(
                        "Location",
                        format_args!("https://{host}:{port}{}", req.target()),
                    );
                }
                return;
            }
        }
        self.inner.handle(req, resp);
        if !resp.is_deferred() {
            crate::metrics::HTTP.response(
                req.method().as_str(),
                resp.status().code(),
                resp.body_len(),
            );
        }
        if let Some(secs) = self.hsts.filter(|_| !resp.is_deferred()) {
            resp.header_fmt("Strict-Transport-Security", format_args!("max-age={secs}"));
        }
    }

    fn wants_body(&self) -> bool {
        self.inner.wants_body()
    }
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`. Characters that
/// cannot be in a host name make it empty (no redirect to a header injection).
fn host_without_port(host: &str) -> &str {
    let host = host.trim();
    let name = if let Some(end) = host.find(']') {
        host.get(..=end).unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if ok { name } else { "" }
}

#[cfg(test)]
mod tests {
    use super::host_without_port;

    #[test]
    fn hosts_lose_their_port_and_bad_ones_are_refused() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_without_port("evil.com/\r\nSet-Cookie: x"), "");
        assert_eq!(host_without_port("a b"), "");
    }
}
