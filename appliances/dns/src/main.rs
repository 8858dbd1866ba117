//! `dns`: an authoritative DNS server unikernel. Serves the zone files embedded at
//! build time (`appliances/dns/zones/NAME.zone`, origin `NAME.`) over UDP and TCP on
//! port 53 (`--port=N`), with the answering engine of [`oasis_dns`].
//!
//! - UDP: one task, one receive buffer and one response buffer reused for every
//!   query: nothing is allocated per query. Responses are capped at
//!   `--udp-payload` bytes (and at what the client's EDNS allows, 512 without EDNS);
//!   what does not fit is truncated (TC=1) so the client retries over TCP.
//! - TCP (RFC 7766): a task per connection; several queries per connection,
//!   pipelined or not, answered in order; each batch of complete queries is
//!   answered with one write. A connection idle for `--tcp-idle-timeout` seconds is
//!   closed; beyond `--max-tcp` open connections new ones are reset.
//!
//! The zones were validated by the build script; they are parsed again into a
//! [`Catalog`] at boot (milliseconds for small zones), then a line containing
//! `ready` is printed.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use core::net::SocketAddr;

use oasis::log::{debug, info, warn};
use oasis::net::{NetError, TcpStream, UdpSocket};
use oasis::prelude::*;
use oasis_dns::catalog::{CatalogError, DEFAULT_UDP_PAYLOAD};
use oasis_dns::name::NameError;
use oasis_dns::tcp::TcpFramer;
use oasis_dns::{Catalog, Name, Transport, ZoneError};

// `static ZONES: [(&str, &str, &[u8]); N]`: (origin, file name, text), each text
// embedded in the image's content section.
include!(concat!(env!("OUT_DIR"), "/zones.rs"));

/// Largest UDP query we read (bigger datagrams are cut here and answered FORMERR).
const UDP_QUERY_MAX: usize = 4096;
/// Bytes read from a TCP connection at once.
const TCP_READ_CHUNK: usize = 1024;
/// Unconsumed bytes one TCP connection may hold: two full 64 KiB messages.
const TCP_BUFFER_LIMIT: usize = 2 * (oasis_dns::tcp::MAX_MESSAGE + 2);
/// Response bytes reserved up front; a DNS message never exceeds this (RFC 1035 §4.2.2).
const RESPONSE_CAPACITY: usize = oasis_dns::tcp::MAX_MESSAGE;

/// Why `dns` stopped.
#[derive(Debug)]
enum DnsError {
    /// An embedded zone's origin is not a domain name (the build checks this).
    Origin(&'static str, NameError),
    /// An embedded zone is not UTF-8 (the build checks this).
    NotUtf8(&'static str),
    /// An embedded zone does not parse (the build checks this).
    Zone(ZoneError),
    /// Two embedded zones share an apex (the build checks this).
    Catalog(CatalogError),
    /// The network could not be brought up.
    Net(NetError),
}

impl core::fmt::Display for DnsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DnsError::Origin(o, e) => {
                write!(f, "embedded zone origin {o:?} is not a domain name: {e}")
            }
            DnsError::NotUtf8(file) => write!(f, "embedded zone {file} is not UTF-8"),
            DnsError::Zone(e) => write!(f, "embedded zone: {e}"),
            DnsError::Catalog(e) => write!(f, "loading zones: {e}"),
            DnsError::Net(e) => write!(f, "network: {e}"),
        }
    }
}

impl From<NetError> for DnsError {
    fn from(e: NetError) -> Self {
        DnsError::Net(e)
    }
}

/// Per-connection TCP settings.
#[derive(Clone, Copy)]
struct TcpSettings {
    idle_timeout: Duration,
}

#[oasis::main]
async fn main(os: Os) -> Result<(), DnsError> {
    let mut args = os.args();
    let port: u16 = args.value_or("port", 53, "PORT", "UDP and TCP port to answer on");
    let udp_payload: u16 = args.value_or(
        "udp-payload",
        DEFAULT_UDP_PAYLOAD,
        "BYTES",
        "largest UDP response (512..=4096; EDNS clients may ask for less)",
    );
    let max_tcp: usize = args
        .value(
            "max-tcp",
            "N",
            "TCP connections served at once; more are reset (default: as many as the network stack admits)",
        )
        .unwrap_or(usize::MAX);
    let idle_secs: u64 = args.value_or(
        "tcp-idle-timeout",
        10,
        "SECS",
        "TCP connections idle this long are closed (RFC 7766 §6.2.3)",
    );
    args.finish();

    let catalog: &'static Catalog = Box::leak(Box::new(load_zones()?));
    let transport = Transport::Udp {
        max_payload: udp_payload.clamp(512, 4096),
    };
    let settings = TcpSettings {
        idle_timeout: Duration::from_secs(idle_secs.max(1)),
    };

    oasis::metrics::register(&QUERIES);
    oasis::metrics::register(&RCODES);
    let net = os.net().await?;
    let udp = net.udp_bind(port)?;
    let tcp = net.tcp_listen(port)?;
    os.spawn(serve_udp(udp, catalog, transport));

    let names: Vec<String> = catalog.zones().map(|z| z.to_string()).collect();
    println!(
        "dns: ready: {} zones ({}) on {}:{port} (udp+tcp)",
        names.len(),
        names.join(" "),
        net.address()
    );

    oasis::net::serve(tcp, max_tcp, oasis::net::Refusal::Reset, |stream, peer| {
        serve_tcp(stream, peer, catalog, settings)
    })
    .await;
    Ok(())
}

/// Queries answered, by question type (`--metrics-port`).
static QUERIES: oasis::metrics::CounterFamily<10> = oasis::metrics::CounterFamily::new(
    "dns_queries_total",
    "DNS queries answered, by question type.",
    "type",
    [
        "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "other",
    ],
);
/// Responses sent, by response code.
static RCODES: oasis::metrics::CounterFamily<7> = oasis::metrics::CounterFamily::new(
    "dns_responses_total",
    "DNS responses sent, by response code.",
    "rcode",
    [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
    ],
);

/// Counts one response (a DNS message without TCP framing) by its question type
/// and response code; a response too short to say is not counted.
fn count(response: &[u8]) {
    let Some(&flags) = response.get(3) else {
        return;
    };
    RCODES.inc(usize::from(flags & 0x0f));
    // The question's name (labels, no compression in a question), then QTYPE.
    let mut at = 12;
    while let Some(&len) = response.get(at) {
        if len == 0 || len >= 0xc0 {
            break;
        }
        at += 1 + usize::from(len);
    }
    let qtype = response
        .get(at + 1..at + 3)
        .map(|b| u16::from_be_bytes([b[0], b[1]]));
    let i = match qtype {
        Some(1) => 0,
        Some(2) => 1,
        Some(5) => 2,
        Some(6) => 3,
        Some(12) => 4,
        Some(15) => 5,
        Some(16) => 6,
        Some(28) => 7,
        Some(33) => 8,
        _ => 9,
    };
    QUERIES.inc(i);
}

/// Parses every embedded zone into one catalog.
fn load_zones() -> Result<Catalog, DnsError> {
    let mut catalog = Catalog::new();
    for &(origin, file, text) in &ZONES {
        let name = Name::parse_text(origin, None).map_err(|e| DnsError::Origin(origin, e))?;
        let text = core::str::from_utf8(text).map_err(|_| DnsError::NotUtf8(file))?;
        let zone = oasis_dns::Zone::parse(file, text, &name).map_err(DnsError::Zone)?;
        info!("zone {origin}: {} records from {file}", zone.records.len());
        catalog.add_zone(zone).map_err(DnsError::Catalog)?;
    }
    Ok(catalog)
}

/// Answers UDP queries until the socket fails for good. Both buffers are allocated
/// once, here.
async fn serve_udp(sock: UdpSocket, catalog: &'static Catalog, transport: Transport) {
    let mut query = vec![0u8; UDP_QUERY_MAX];
    let mut response: Vec<u8> = Vec::with_capacity(RESPONSE_CAPACITY);
    loop {
        let (n, peer) = match sock.recv_from(&mut query).await {
            Ok(r) => r,
            Err(e) => {
                warn!("udp recv: {e}");
                continue;
            }
        };
        let Some(q) = query.get(..n) else { continue };
        if !catalog.answer(q, transport, &mut response) {
            debug!("udp: dropped {n} bytes from {peer} (not a query)");
            continue;
        }
        count(&response);
        if let Err(e) = sock.send_to(&response, peer).await {
            debug!("udp send to {peer}: {e}");
        }
    }
}

/// One TCP connection: reads queries as they arrive, answers every complete one
/// with a single write per batch, and closes on EOF, error, idle timeout or a
/// peer that sends more than [`TCP_BUFFER_LIMIT`] unanswered bytes.
async fn serve_tcp(
    mut stream: TcpStream,
    peer: SocketAddr,
    catalog: &'static Catalog,
    s: TcpSettings,
) {
    let mut framer = TcpFramer::with_limit(TCP_BUFFER_LIMIT);
    let mut chunk = vec![0u8; TCP_READ_CHUNK];
    let mut out: Vec<u8> = Vec::new();
    let mut answered = 0usize;
    loop {
        let n = match timeout(s.idle_timeout, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!("tcp {peer}: read: {e}");
                break;
            }
            Err(_) => {
                debug!("tcp {peer}: idle for {:?}, closing", s.idle_timeout);
                break;
            }
        };
        let Some(data) = chunk.get(..n) else { break };
        if let Err(e) = framer.push(data) {
            warn!("tcp {peer}: {e}; closing");
            break;
        }
        out.clear();
        while let Some(q) = framer.peek() {
            let start = out.len();
            if catalog.answer_tcp_framed(q, &mut out) {
                answered += 1;
                count(out.get(start + 2..).unwrap_or_default());
            }
            framer.consume();
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break;
        }
    }
    debug!("tcp {peer}: closed after {answered} answers");
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}
