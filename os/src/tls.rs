//! TLS servers (feature `tls`): TLS 1.3 and 1.2 over the facade's [`TcpStream`],
//! with the same `embedded-io-async` traits, so a handler cannot tell HTTPS from
//! HTTP. The protocol work is `oasis-tls` (rustls + ring; its docs say why those);
//! this module adds what needs the OS: the wall clock, the CSPRNG, the handshake
//! timeout, memory admission, and the certificate built into the image.
//!
//! ```ignore
//! let identity = oasis::tls::embedded_identity()?.ok_or("no certificate")?;
//! let config = oasis::tls::config(vec![identity])?;
//! let listener = net.tcp_listen(443)?;
//! oasis::net::serve(listener, usize::MAX, Refusal::Reset, |tcp, _peer| {
//!     let config = config.clone();
//!     async move {
//!         if let Ok(mut tls) = oasis::tls::accept(tcp, &config).await {
//!             // read and write `tls` like a TcpStream
//!         }
//!     }
//! })
//! .await;
//! ```

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

pub use oasis_tls::{
    Identity, IdentityError, MAX_INCOMING, TlsConfig, TlsError, TlsStream, Validity, validity,
};

use crate::net::TcpStream;

/// A TLS connection over TCP.
pub type TlsTcpStream = TlsStream<TcpStream>;

/// How long a client has to complete its handshake (then the connection closes).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Heap a handshake may need: rustls' connection state and key schedule, the
/// largest input record and one output flight. A connection is refused (reset)
/// when the heap cannot spare this much for every handshake in flight, itself
/// included, before rustls allocates anything.
pub const HANDSHAKE_MEMORY: usize = 2 * MAX_INCOMING + 16 * 1024;

/// Handshakes in progress.
static HANDSHAKES: AtomicUsize = AtomicUsize::new(0);

/// One handshake counted in [`HANDSHAKES`] while it lives.
struct InFlight {
    count: usize,
}

impl InFlight {
    fn enter() -> Self {
        InFlight {
            count: HANDSHAKES.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        HANDSHAKES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Heap a handshake holds while it waits for its client: rustls' state, the key
/// schedule, and a partly filled input buffer.
pub const WAITING_MEMORY: usize = 8 * 1024;

static CERT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tls_cert"));
static KEY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tls_key"));

/// The wall clock in Unix seconds, as TLS wants it.
fn wall_secs() -> Option<u64> {
    crate::platform::get()
        .wall_clock_nanos()
        .map(|n| n / 1_000_000_000)
}

/// The certificate and key built into the image (`OASIS_TLS_CERT` and
/// `OASIS_TLS_KEY` at build time, see `os/build.rs`), checked against the wall
/// clock: `Ok(None)` when none was built in.
pub fn embedded_identity() -> Result<Option<Identity>, IdentityError> {
    if CERT.is_empty() && KEY.is_empty() {
        return Ok(None);
    }
    identity(CERT, KEY).map(Some)
}

/// Loads a certificate chain and key (PEM or DER), refusing a key that does not
/// match, a malformed file, or a certificate outside its validity period now.
pub fn identity(cert: &[u8], key: &[u8]) -> Result<Identity, IdentityError> {
    Identity::load(cert, key, wall_secs())
}

/// A server configuration for `identities` (the first is the default for clients
/// without SNI). Fails without a wall clock: TLS needs the time.
pub fn config(identities: Vec<Identity>) -> Result<TlsConfig, TlsError> {
    crate::platform::install_random_source(|buf| crate::Rng::get().fill(buf));
    TlsConfig::new(identities, wall_secs)
}

/// Performs the server handshake on `stream` within [`HANDSHAKE_TIMEOUT`]. Refuses
/// (resets) the connection at once when the heap cannot hold a handshake: TLS
/// memory is charged to the same budget as the TCP connection (docs/overload.md).
pub async fn accept(stream: TcpStream, config: &TlsConfig) -> Result<TlsTcpStream, TlsError> {
    // This handshake at its largest, plus what each other handshake in flight
    // holds while it waits for its client (rustls' allocations cannot fail
    // gracefully). Handshakes run one at a time on the one core, so only one is at
    // its peak at once; charging every waiting one at the peak would let a client
    // that stalls a thousand handshakes lock everyone else out.
    let in_flight = InFlight::enter();
    let others = in_flight.count.saturating_sub(1);
    if !crate::heap_has_room(HANDSHAKE_MEMORY.saturating_add(others.saturating_mul(WAITING_MEMORY)))
    {
        stream.abort();
        crate::metrics::TLS_REFUSED.inc();
        return Err(TlsError::OutOfMemory);
    }
    // Records go out whole; Nagle would hold a record's tail back for an ACK.
    stream.set_nodelay(true);
    match crate::time::timeout(HANDSHAKE_TIMEOUT, oasis_tls::accept(stream, config)).await {
        Ok(r) => r,
        Err(_) => Err(TlsError::Timeout),
    }
}
