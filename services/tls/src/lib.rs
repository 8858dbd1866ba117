//! Server-side TLS for Oasis: TLS 1.3 and 1.2 on [rustls] 0.23 (its no_std line),
//! over any stream with the `embedded-io-async` traits (the facade's `TcpStream` on
//! both targets), giving back a stream with the same traits: an HTTP handler cannot
//! tell HTTP from HTTPS.
//!
//! # Choices
//!
//! - **rustls 0.23, unbuffered API.** 0.24 requires `std`; the unbuffered
//!   connection is the only one without it, and it lets us own every buffer: they
//!   grow fallibly (a connection that cannot get memory is closed, never an
//!   allocation-failure abort) and are released while a connection is idle.
//! - **RustCrypto as the crypto provider** (`rustls-rustcrypto`: RustCrypto's
//!   AES-GCM, ChaCha20-Poly1305, X25519, P-256/P-384 ECDSA and ECDH, SHA-2), on both
//!   targets, so the host tests exercise the kernel's crypto. `ring` was the first
//!   choice (assembly, constant-time, used on bare metal by rust-sel4) but it
//!   refuses to build without SSE2, and turning SSE on for the soft-float kernel
//!   target makes LLVM miscompile ordinary code on stable Rust (measured: a `Vec`'s
//!   pointer and capacity swapped at boot; see `.cargo/config.toml`). `aws-lc-rs`
//!   and `graviola` need a libc. The provider crate is young (0.0.2-alpha); the
//!   primitives under it are RustCrypto's audited, widely used crates. On the kernel
//!   they run their portable constant-time code (no AES-NI, no SIMD): slower
//!   than assembly, measured in `bench/tls`.
//! - **Modern suites only**: AEAD (AES-GCM, ChaCha20-Poly1305) with ECDHE (X25519,
//!   P-256, P-384); no RSA key exchange, no CBC, no SHA-1 MACs.
//! - **Resumption by tickets** ([`Ticketer`]): ChaCha20-Poly1305 under a key drawn at
//!   boot, so a reboot rotates it. No server-side session cache (no memory per past
//!   client).
//! - **SNI**: any number of certificates; each answers the DNS names in its
//!   certificate (`*.` wildcards one label deep); the first is the default.
//!
//! # Memory
//!
//! A connection holds rustls' state (a few KiB), an input buffer that grows to one
//! record (at most [`MAX_INCOMING`]) and an output buffer of one record; both are
//! released when empty, so an idle keep-alive connection costs rustls' state only.
//! ClientHellos larger than [`MAX_INCOMING`] are refused.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

extern crate alloc;

mod der;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod identity;
mod stream;
mod ticket;

pub use der::{Validity, validity};
pub use identity::{Identity, IdentityError};
pub use stream::{MAX_INCOMING, TlsStream, accept};
pub use ticket::Ticketer;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a TLS connection failed or a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The peer violated the protocol, offered nothing we accept, or a record failed
    /// to decrypt (rustls' reason).
    #[error("tls: {0}")]
    Protocol(rustls::Error),
    /// The underlying stream failed.
    #[error("tls: transport: {0:?}")]
    Io(embedded_io::ErrorKind),
    /// The peer closed the connection in the middle of the handshake.
    #[error("tls: the peer closed the connection during the handshake")]
    Eof,
    /// A handshake message or record does not fit the connection's input buffer.
    #[error("tls: a record of more than {MAX_INCOMING} bytes")]
    TooLarge,
    /// The client did not complete its handshake in time.
    #[error("tls: the handshake timed out")]
    Timeout,
    /// No memory for the connection's buffers (the heap is under pressure).
    #[error("tls: out of memory")]
    OutOfMemory,
    /// The configuration cannot be built (no certificate, bad time source).
    #[error("tls: configuration: {0}")]
    Config(&'static str),
}

impl embedded_io::Error for TlsError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            TlsError::Io(k) => *k,
            TlsError::Eof => embedded_io::ErrorKind::ConnectionAborted,
            TlsError::Timeout => embedded_io::ErrorKind::TimedOut,
            TlsError::OutOfMemory => embedded_io::ErrorKind::OutOfMemory,
            TlsError::Protocol(_) | TlsError::TooLarge => embedded_io::ErrorKind::InvalidData,
            TlsError::Config(_) => embedded_io::ErrorKind::InvalidInput,
        }
    }
}

/// The crypto provider: RustCrypto's, limited to modern suites (AEAD with ECDHE).
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    let mut p = rustls_rustcrypto::provider();
    p.cipher_suites.retain(|s| {
        let name = alloc::format!("{:?}", s.suite());
        name.contains("GCM") || name.contains("CHACHA20_POLY1305")
    });
    p
}

/// Seconds since the Unix epoch, or `None` without a wall clock.
pub type Clock = fn() -> Option<u64>;

#[derive(Debug)]
struct TimeSource(Clock);

impl rustls::time_provider::TimeProvider for TimeSource {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        (self.0)().map(|s| {
            rustls::pki_types::UnixTime::since_unix_epoch(core::time::Duration::from_secs(s))
        })
    }
}

/// A server's TLS configuration: its certificates and the protocol settings. Cheap
/// to clone (shared).
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<rustls::ServerConfig>,
    names: Arc<Vec<alloc::string::String>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("names", &self.names)
            .finish()
    }
}

impl TlsConfig {
    /// Builds a configuration serving `identities` (the first is the default for
    /// clients that send no SNI or an unknown name), with ALPN `http/1.1`, TLS 1.3 and
    /// 1.2, and session tickets. `clock` gives the time (ticket lifetimes); `None`
    /// from it at this point is an error: TLS needs a wall clock.
    pub fn new(identities: Vec<Identity>, clock: Clock) -> Result<TlsConfig, TlsError> {
        if identities.is_empty() {
            return Err(TlsError::Config("no certificate"));
        }
        if clock().is_none() {
            return Err(TlsError::Config(
                "no wall clock: TLS needs the time (ticket lifetimes, certificate validity)",
            ));
        }
        let names = identities
            .iter()
            .flat_map(|i| i.names().iter().cloned())
            .collect();
        let provider = Arc::new(provider());
        let mut cfg =
            rustls::ServerConfig::builder_with_details(provider, Arc::new(TimeSource(clock)))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(TlsError::Protocol)?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Sni(identities)));
        cfg.alpn_protocols = alloc::vec![b"http/1.1".to_vec()];
        cfg.ticketer =
            Arc::new(Ticketer::new().ok_or(TlsError::Config("no randomness for the ticket key"))?);
        // One ticket per full handshake: clients resume with it; more cost bytes.
        cfg.send_tls13_tickets = 1;
        Ok(TlsConfig {
            inner: Arc::new(cfg),
            names: Arc::new(names),
        })
    }

    /// The DNS names the certificates answer for.
    pub fn names(&self) -> &[alloc::string::String] {
        &self.names
    }

    pub(crate) fn rustls(&self) -> Arc<rustls::ServerConfig> {
        self.inner.clone()
    }
}

/// Picks the certificate for a ClientHello's server name.
#[derive(Debug)]
struct Sni(Vec<Identity>);

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|name| self.0.iter().find(|i| i.answers(name)))
            .or_else(|| self.0.first());
        chosen.map(Identity::certified_key)
    }
}
