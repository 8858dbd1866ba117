//! DNS helpers for differential tests (our engine or appliance against NSD): query
//! bytes, raw UDP and TCP clients, and a printable summary of a response that two
//! correct servers agree on.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oasis_dns::name::Name;
use oasis_dns::wire::{Class, Edns, Flags, Message, Question, Rtype};

/// The bytes of one query (RD set, like most stubs), with optional EDNS
/// `(udp size, DO)`.
pub fn query(name: &str, qtype: Rtype, edns: Option<(u16, bool)>, id: u16) -> Vec<u8> {
    let m = Message {
        id,
        flags: Flags(Flags::RD),
        questions: vec![Question {
            name: Name::parse_text(name, None)
                .unwrap_or_else(|e| panic!("query name {name:?}: {e}")),
            qtype,
            qclass: Class::IN,
        }],
        edns: edns.map(|(size, dnssec_ok)| Edns {
            udp_payload_size: size,
            ext_rcode: 0,
            version: 0,
            dnssec_ok,
            options: Vec::new(),
        }),
        ..Message::default()
    };
    let mut out = Vec::new();
    m.emit(&mut out);
    out
}

/// Sends `q` once from a fresh localhost socket and waits up to `wait` for the
/// first datagram back; `None` if none came.
pub fn udp_ask(addr: SocketAddr, q: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    sock.send_to(q, addr).ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Sends `queries` pipelined on one TCP connection (RFC 7766 §6.2.1.1) and reads
/// one length-prefixed response per query (`None` where the stream ended first).
pub fn tcp_ask_many(addr: SocketAddr, queries: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("tcp connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting a read timeout");
    s.write_all(&crate::corpus::length_prefixed(queries))
        .unwrap_or_else(|e| panic!("tcp write to {addr}: {e}"));
    queries.iter().map(|_| read_framed(&mut s)).collect()
}

/// Reads one length-prefixed message.
pub fn read_framed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Everything a differential test compares, printable: rcode, opcode, every
/// header flag, the question (with its case: it is copied verbatim), each
/// section's records sorted (owner names and RDATA lowercased: servers pick the
/// case from different places), and the EDNS fields.
pub fn summary(resp: &[u8]) -> String {
    let Ok(m) = Message::parse(resp) else {
        return format!("unparseable {resp:02x?}\n");
    };
    let f = m.flags;
    let mut s = format!(
        "rcode={} opcode={} qr={} aa={} tc={} rd={} ra={} ad={} cd={}\n",
        m.rcode(),
        f.opcode(),
        f.has(Flags::QR),
        f.has(Flags::AA),
        f.has(Flags::TC),
        f.has(Flags::RD),
        f.has(Flags::RA),
        f.has(Flags::AD),
        f.has(Flags::CD)
    );
    for q in &m.questions {
        s.push_str(&format!("question {} {} {}\n", q.name, q.qtype, q.qclass));
    }
    for (tag, records) in [
        ("an", &m.answers),
        ("ns", &m.authority),
        ("ar", &m.additional),
    ] {
        let mut lines: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{tag} {} {} {} {} {}",
                    r.name.to_string().to_ascii_lowercase(),
                    r.ttl,
                    r.class,
                    r.rtype(),
                    r.rdata.to_string().to_ascii_lowercase()
                )
            })
            .collect();
        lines.sort();
        for l in lines {
            s.push_str(&l);
            s.push('\n');
        }
    }
    if let Some(e) = &m.edns {
        s.push_str(&format!(
            "edns version={} do={} ext_rcode={} size={} options={:02x?}\n",
            e.version, e.dnssec_ok, e.ext_rcode, e.udp_payload_size, e.options
        ));
    }
    s
}

/// A foreground `nsd` on 127.0.0.1 serving some zones, configured like our engine
/// (`minimal-responses`, hidden version and identity, and no response rate
/// limiting: Debian's NSD enables RRL by default, which would answer a fast test
/// client with TC=1 or not at all). Killed, and its temp directory removed, on
/// drop (also when a test panics).
pub struct Nsd {
    child: Child,
    dir: PathBuf,
    /// Where it answers, over UDP and TCP.
    pub addr: SocketAddr,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nsd {
    /// Starts `nsd` on `port` (0: a free one) with the zone files `zones`
    /// (`(origin, file)`); see [`Nsd::start_with`].
    pub fn start(nsd: &Path, zones: &[(String, PathBuf)], port: u16, server_count: u32) -> Nsd {
        let texts: Vec<(String, String)> = zones
            .iter()
            .map(|(origin, file)| {
                let text = std::fs::read_to_string(file)
                    .unwrap_or_else(|e| panic!("zone file {}: {e}", file.display()));
                (origin.clone(), text)
            })
            .collect();
        Nsd::start_with(nsd, &texts, port, server_count)
    }

    /// Starts `nsd` on `port` (0: a free one) serving `zones` (`(origin, zone
    /// file text)`), and waits until it answers every zone's SOA. `server_count`
    /// NSD processes serve (1 for tests; more for benchmarks).
    pub fn start_with(nsd: &Path, zones: &[(String, String)], port: u16, server_count: u32) -> Nsd {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("oasis-nsd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let port = if port == 0 { crate::free_port() } else { port };
        let d = dir.display();
        let mut conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  do-ip6: no\n  username: \"\"\n  \
             chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  \
             xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n  \
             logfile: \"{d}/nsd.log\"\n  server-count: {server_count}\n  minimal-responses: yes\n  \
             hide-version: yes\n  hide-identity: yes\n  verbosity: 1\n  \
             rrl-ratelimit: 0\n\
             remote-control:\n  control-enable: no\n"
        );
        let origins: Vec<String> = zones
            .iter()
            .map(|(o, _)| format!("{}.", o.trim_end_matches('.')))
            .collect();
        for (i, ((_, text), origin)) in zones.iter().zip(&origins).enumerate() {
            let file = dir.join(format!("zone{i}.zone"));
            std::fs::write(&file, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
            conf.push_str(&format!(
                "zone:\n  name: {origin}\n  zonefile: \"{}\"\n",
                file.display()
            ));
        }
        let conf_path = dir.join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("write nsd.conf");
        let child = Command::new(nsd)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", nsd.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut nsd = Nsd { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = origins.iter().all(|origin| {
                udp_ask(
                    addr,
                    &query(origin, Rtype::SOA, None, 7),
                    Duration::from_millis(200),
                )
                .and_then(|r| Message::parse(&r).ok())
                .is_some_and(|m| m.answers.len() == 1)
            });
            if ready {
                return nsd;
            }
            if let Ok(Some(status)) = nsd.child.try_wait() {
                panic!("nsd exited early with {status}; log:\n{}", nsd.log());
            }
            assert!(
                Instant::now() < deadline,
                "nsd did not become ready on {addr}; log:\n{}",
                nsd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// NSD's process id (its main process; `server_count` children serve).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nsd.log")).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_through_summary() {
        let q = query("Example.org.", Rtype::A, Some((1232, true)), 9);
        let s = summary(&q);
        assert!(s.contains("qr=false") && s.contains("rd=true"), "{s}");
        assert!(s.contains("question Example.org. A IN"), "{s}");
        assert!(s.contains("edns version=0 do=true"), "{s}");
        assert!(summary(b"\x01").starts_with("unparseable"));
    }
}
