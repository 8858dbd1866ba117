//! The server stream against rustls' own (std) client over a socket pair: both
//! protocol versions, ALPN, resumption, SNI, bulk data both ways, and the refusals
//! (bad identities, garbage, truncated handshakes).
#![allow(clippy::unwrap_in_result)]

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use oasis_tls::{Identity, IdentityError, TlsConfig, TlsError, TlsStream};
use rustls as rc;

/// Runs a future that never waits on anything but blocking I/O.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A blocking std socket with the async traits (the futures complete at once).
struct Blocking(UnixStream);

impl embedded_io::ErrorType for Blocking {
    type Error = std::io::Error;
}
impl embedded_io_async::Read for Blocking {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        self.0.read(buf)
    }
}
impl embedded_io_async::Write for Blocking {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        self.0.write(buf)
    }
    async fn flush(&mut self) -> Result<(), std::io::Error> {
        Ok(())
    }
}

fn now() -> Option<u64> {
    Some(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

struct Pki {
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Oasis test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca,
            ca_key,
        }
    }

    /// A leaf for `names`, valid from `from` to `to` (years), as (cert PEM, key PEM).
    fn leaf_years(&self, names: &[&str], from: i32, to: i32) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.not_before = rcgen::date_time_ymd(from, 1, 1);
        p.not_after = rcgen::date_time_ymd(to, 1, 1);
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn leaf(&self, names: &[&str]) -> (String, String) {
        self.leaf_years(names, 2020, 2099)
    }

    fn identity(&self, names: &[&str]) -> Identity {
        let (c, k) = self.leaf(names);
        Identity::load(c.as_bytes(), k.as_bytes(), now()).unwrap()
    }

    fn client(&self, versions: &[&'static rc::SupportedProtocolVersion]) -> Arc<rc::ClientConfig> {
        let mut roots = rc::RootCertStore::empty();
        let ca = rustls_pki_types_from_pem(&self.ca_pem);
        roots.add(ca).unwrap();
        let mut cfg =
            rc::ClientConfig::builder_with_provider(Arc::new(rc::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

fn rustls_pki_types_from_pem(pem: &str) -> rc::pki_types::CertificateDer<'static> {
    use rc::pki_types::pem::PemObject;
    rc::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// What the server side saw.
struct Served {
    version: Option<u16>,
    alpn: Option<Vec<u8>>,
    received: Vec<u8>,
}

/// Serves one connection: reads until the client's close_notify, echoing
/// everything back reversed in blocks, then sends close_notify.
fn serve(sock: UnixStream, config: TlsConfig, read_chunk: usize) -> Result<Served, TlsError> {
    block_on(async move {
        use embedded_io_async::{Read, Write};
        let mut tls: TlsStream<Blocking> = oasis_tls::accept(Blocking(sock), &config).await?;
        let version = tls.protocol_version();
        let alpn = tls.alpn_protocol().map(<[u8]>::to_vec);
        let mut received = Vec::new();
        let mut buf = vec![0u8; read_chunk];
        loop {
            let n = tls.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            if received.ends_with(b"\n") {
                let mut reply = received.clone();
                reply.reverse();
                tls.write_all(&reply).await?;
                tls.flush().await?;
            }
        }
        tls.close_notify().await?;
        Ok(Served {
            version,
            alpn,
            received,
        })
    })
}

/// Connects a rustls client for `name`, sends `data` (ending in `\n`), reads the
/// reversed echo, closes. Returns the client connection's facts.
/// The client's outcome: the echo it read and how it shook hands.
type ClientResult = Result<(Vec<u8>, rc::HandshakeKind), rc::Error>;

fn client(cfg: Arc<rc::ClientConfig>, name: &str, sock: UnixStream, data: &[u8]) -> ClientResult {
    let server_name = rc::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rc::ClientConnection::new(cfg, server_name)?;
    let mut s = rc::StreamOwned::new(conn, sock);
    s.write_all(data)
        .map_err(|e| rc::Error::General(e.to_string()))?;
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).map_err(|e| match e.into_inner() {
        Some(inner) => match inner.downcast::<rc::Error>() {
            Ok(e) => *e,
            Err(e) => rc::Error::General(e.to_string()),
        },
        None => rc::Error::General("read".into()),
    })?;
    let kind = s.conn.handshake_kind().unwrap();
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    Ok((back, kind))
}

fn pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

fn run(
    server_cfg: &TlsConfig,
    client_cfg: Arc<rc::ClientConfig>,
    name: &str,
    data: &[u8],
    read_chunk: usize,
) -> (Result<Served, TlsError>, ClientResult) {
    let (a, b) = pair();
    let cfg = server_cfg.clone();
    let server = std::thread::spawn(move || serve(a, cfg, read_chunk));
    let c = client(client_cfg, name, b, data);
    (server.join().unwrap(), c)
}

fn message(len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    m.push(b'\n');
    m
}

#[test]
fn tls13_and_tls12_carry_data_both_ways_with_alpn() {
    let pki = Pki::new();
    let cfg = TlsConfig::new(vec![pki.identity(&["localhost"])], now).unwrap();
    for (version, code) in [(&rc::version::TLS13, 0x0304), (&rc::version::TLS12, 0x0303)] {
        // 100 KB: several records each way; reads of 1000 bytes exercise the stash.
        let data = message(100_000);
        let (served, client) = run(&cfg, pki.client(&[version]), "localhost", &data, 1000);
        let served = served.unwrap();
        let (back, kind) = client.unwrap();
        assert_eq!(served.version, Some(code));
        assert_eq!(served.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(served.received, data);
        let mut expect = data.clone();
        expect.reverse();
        assert!(back == expect, "echo differs");
        assert_eq!(kind, rc::HandshakeKind::Full);
    }
}

#[test]
fn tickets_resume_sessions_on_both_versions() {
    let pki = Pki::new();
    let cfg = TlsConfig::new(vec![pki.identity(&["localhost"])], now).unwrap();
    for version in [&rc::version::TLS13, &rc::version::TLS12] {
        let client_cfg = pki.client(&[version]);
        let (_, first) = run(&cfg, client_cfg.clone(), "localhost", b"one\n", 4096);
        assert_eq!(first.unwrap().1, rc::HandshakeKind::Full);
        let (served, second) = run(&cfg, client_cfg, "localhost", b"two\n", 4096);
        served.unwrap();
        assert_eq!(second.unwrap().1, rc::HandshakeKind::Resumed, "{version:?}");
    }
    // Another configuration (another boot) has another ticket key: full handshake.
    let client_cfg = pki.client(&[&rc::version::TLS13]);
    let (_, _) = run(&cfg, client_cfg.clone(), "localhost", b"one\n", 4096);
    let rebooted = TlsConfig::new(vec![pki.identity(&["localhost"])], now).unwrap();
    let (_, again) = run(&rebooted, client_cfg, "localhost", b"two\n", 4096);
    assert_eq!(again.unwrap().1, rc::HandshakeKind::Full);
}

#[test]
fn sni_picks_the_certificate_for_the_name() {
    let pki = Pki::new();
    let cfg = TlsConfig::new(
        vec![
            pki.identity(&["a.test"]),
            pki.identity(&["b.test", "*.c.test"]),
        ],
        now,
    )
    .unwrap();
    assert_eq!(cfg.names(), ["a.test", "b.test", "*.c.test"]);
    let client_cfg = pki.client(&[&rc::version::TLS13]);
    for name in ["a.test", "b.test", "x.c.test", "B.TEST"] {
        let (served, c) = run(&cfg, client_cfg.clone(), name, b"hi\n", 64);
        served.unwrap();
        assert_eq!(c.unwrap().0, b"\nih", "{name}");
    }
    // An unknown name gets the default (a.test), which the client rejects.
    let (_, c) = run(&cfg, client_cfg, "d.test", b"hi\n", 64);
    let e = c.unwrap_err().to_string();
    assert!(
        e.contains("certificate not valid for name \"d.test\""),
        "{e}"
    );
}

#[test]
fn identities_are_checked_before_serving() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["localhost"]);
    let (_, other_key) = pki.leaf(&["localhost"]);
    assert_eq!(
        Identity::load(cert.as_bytes(), other_key.as_bytes(), now()).unwrap_err(),
        IdentityError::Mismatch
    );
    let (old, old_key) = pki.leaf_years(&["localhost"], 2000, 2010);
    assert!(matches!(
        Identity::load(old.as_bytes(), old_key.as_bytes(), now()),
        Err(IdentityError::Expired(_))
    ));
    // Without a clock the period cannot be checked (the caller decides).
    Identity::load(old.as_bytes(), old_key.as_bytes(), None).unwrap();
    let (new, new_key) = pki.leaf_years(&["localhost"], 2090, 2099);
    assert!(matches!(
        Identity::load(new.as_bytes(), new_key.as_bytes(), now()),
        Err(IdentityError::NotYetValid(_))
    ));
    assert!(matches!(
        Identity::load(b"garbage", key.as_bytes(), now()),
        Err(IdentityError::Certificate(_))
    ));
    assert!(matches!(
        Identity::load(cert.as_bytes(), b"-----BEGIN NOTHING-----\n", now()),
        Err(IdentityError::Key(_))
    ));
    assert!(matches!(
        Identity::load(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            key.as_bytes(),
            now()
        ),
        Err(IdentityError::Certificate(_))
    ));
    // DER works as well as PEM.
    let der_cert = rustls_pki_types_from_pem(&cert);
    let der_key = {
        use rc::pki_types::pem::PemObject;
        rc::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()
    };
    let id = Identity::load(&der_cert, der_key.secret_der(), now()).unwrap();
    assert_eq!(id.names(), ["localhost"]);
    assert!(id.validity().contains(now().unwrap() as i64));
    // TLS needs a clock and a certificate.
    assert!(matches!(
        TlsConfig::new(vec![id.clone()], || None),
        Err(TlsError::Config(_))
    ));
    assert!(matches!(
        TlsConfig::new(vec![], now),
        Err(TlsError::Config(_))
    ));
}

/// Sends `bytes` raw, half-closes, and returns the server's result.
fn raw(cfg: &TlsConfig, bytes: &[u8]) -> Result<Served, TlsError> {
    let (a, mut b) = pair();
    let cfg = cfg.clone();
    let server = std::thread::spawn(move || serve(a, cfg, 4096));
    let _ = b.write_all(bytes);
    let _ = b.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = b.read_to_end(&mut answer);
    server.join().unwrap()
}

#[test]
fn garbage_truncation_and_oversized_hellos_are_refused() {
    let pki = Pki::new();
    let cfg = TlsConfig::new(vec![pki.identity(&["localhost"])], now).unwrap();
    assert!(matches!(
        raw(&cfg, b"GET / HTTP/1.1\r\n\r\n"),
        Err(TlsError::Protocol(_))
    ));
    assert!(matches!(raw(&cfg, &[]), Err(TlsError::Eof)));
    // A ClientHello record header promising 512 bytes, then silence.
    assert!(matches!(
        raw(&cfg, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]),
        Err(TlsError::Eof)
    ));
    // A handshake message of 64 KiB split over records: more than a connection holds.
    let mut big = Vec::new();
    let body_len = 65_536usize;
    let mut msg = vec![0x01, 0x01, 0x00, 0x00];
    msg.resize(4 + body_len - 4, 0x41);
    for chunk in msg.chunks(16_000) {
        big.extend_from_slice(&[0x16, 0x03, 0x01]);
        big.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        big.extend_from_slice(chunk);
    }
    let r = raw(&cfg, &big);
    assert!(
        matches!(r, Err(TlsError::TooLarge | TlsError::Protocol(_))),
        "{:?}",
        r.err()
    );
    // Random bytes never panic the server.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in [1usize, 5, 6, 100, 5000] {
        let mut junk = vec![0x16, 0x03, 0x03];
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(x as u8);
        }
        assert!(raw(&cfg, &junk).is_err());
    }
}
