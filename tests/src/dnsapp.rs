//! Helpers for the `dns` appliance's end-to-end tests: a `dig` runner with a parser
//! for its output, raw DNS clients over UDP and TCP (several queries pipelined on
//! one connection), a throwaway local NSD serving the appliance's zone files, and a
//! query corpus derived from those zones for differential testing.
//!
//! External tools (`dig` from bind9-dnsutils, `nsd`) are skipped with a notice when
//! missing, and required (panic with the install command) when
//! `OASIS_REQUIRE_QEMU=1`, as CI sets it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oasis_dns::name::Name;
use oasis_dns::wire::{Class, Rtype};
use oasis_dns::zone::Zone;
use oasis_testkit::Rng;

/// The Debian packages that provide the tools these tests use.
pub const INSTALL_HINT: &str = "sudo apt-get install -y bind9-dnsutils nsd";

/// `tool` from PATH (or /usr/sbin), `None` (skip) when missing and not required.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = crate::find_program(name);
    if found.is_none() {
        crate::missing(
            "OASIS_REQUIRE_QEMU",
            &format!("{name} is not installed ({INSTALL_HINT})"),
        );
    }
    found
}

/// Query bytes, pipelined TCP queries and the printable response summary the
/// differential tests compare (shared with `lib/dns/tests/nsd_diff.rs`).
pub use oasis_testkit::dns::{query, read_framed, summary, tcp_ask_many};
/// A localhost port free for both TCP and UDP (the network tests' picker).
pub use oasis_testkit::free_port;

/// The appliance's zone files: `(origin, path)`, origin from the file name `NAME.zone`.
pub fn zone_files() -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../appliances/dns/zones");
    let mut zones: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zone"))
        .map(|p| {
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (format!("{stem}."), p)
        })
        .collect();
    zones.sort();
    zones
}

/// The appliance's zones, parsed.
pub fn parsed_zones() -> Vec<Zone> {
    zone_files()
        .iter()
        .map(|(origin, path)| {
            let text = std::fs::read_to_string(path).expect("read zone");
            let o = Name::parse_text(origin, None).expect("origin");
            Zone::parse(&path.display().to_string(), &text, &o).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// dig

/// One `dig` response: status, header flags and the three sections, each record
/// as `name ttl class type rdata` with whitespace collapsed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// dig's whole output, for assertion messages.
    pub raw: String,
}

impl Dig {
    /// Whether header flag `f` (`qr`, `aa`, `tc`, `rd`, `ra`…) is set.
    pub fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// Parses dig's default output (with `+nocmd +nostats`).
    pub fn parse(out: &str) -> Dig {
        let mut d = Dig {
            raw: out.to_string(),
            ..Dig::default()
        };
        let mut section: Option<&str> = None;
        for line in out.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix(";; ->>HEADER<<-") {
                if let Some(s) = rest.split("status: ").nth(1) {
                    d.status = s.split(',').next().unwrap_or("").trim().to_string();
                }
            } else if let Some(rest) = line.strip_prefix(";; flags:") {
                let flags = rest.split(';').next().unwrap_or("");
                d.flags = flags.split_whitespace().map(str::to_string).collect();
            } else if let Some(s) = line
                .strip_prefix(";; ")
                .and_then(|l| l.strip_suffix(" SECTION:"))
            {
                section = Some(match s {
                    "ANSWER" => "an",
                    "AUTHORITY" => "ns",
                    "ADDITIONAL" => "ar",
                    _ => "other",
                });
            } else if line.is_empty() || line.starts_with(';') {
                continue;
            } else {
                let rec = line.split_whitespace().collect::<Vec<_>>().join(" ");
                match section {
                    Some("an") => d.answer.push(rec),
                    Some("ns") => d.authority.push(rec),
                    Some("ar") => d.additional.push(rec),
                    _ => {}
                }
            }
        }
        d
    }
}

/// Runs `dig @127.0.0.1 -p PORT NAME TYPE +norec` plus `extra` options and parses it.
pub fn dig(port: u16, name: &str, rtype: &str, extra: &[&str]) -> Dig {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), name, rtype])
        .args(["+norec", "+nocmd", "+nostats", "+time=5", "+tries=2"])
        .args(extra)
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dig {name} {rtype} {extra:?} failed ({}):\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Dig::parse(&text)
}

// ---------------------------------------------------------------------------
// Raw clients

/// A UDP client bound to localhost that matches responses to queries by ID.
pub struct UdpClient {
    sock: UdpSocket,
    server: SocketAddr,
}

impl UdpClient {
    pub fn new(server: SocketAddr) -> UdpClient {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp");
        UdpClient { sock, server }
    }

    /// Sends `q` and waits up to `wait` for a response with its ID (and up to
    /// `tries` sends in all); `None` if none came.
    pub fn ask(&self, q: &[u8], wait: Duration, tries: u32) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65535];
        for _ in 0..tries.max(1) {
            self.sock.send_to(q, self.server).expect("udp send");
            let deadline = Instant::now() + wait;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.sock.set_read_timeout(Some(left)).expect("timeout");
                let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                    break;
                };
                // A late answer to an earlier query has another ID: skip it.
                if n >= 2 && q.len() >= 2 && buf[..2] == q[..2] {
                    return Some(buf[..n].to_vec());
                }
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// NSD

/// A throwaway local NSD (the differential tests' reference server).
pub use oasis_testkit::dns::Nsd;

// ---------------------------------------------------------------------------
// Differential corpus

/// One corpus query.
#[derive(Debug, Clone)]
pub struct Case {
    pub label: String,
    pub bytes: Vec<u8>,
    /// Both servers must drop it (no response).
    pub dropped: bool,
    /// Also compared over TCP (false where NSD's TCP transport differs on purpose).
    pub tcp: bool,
}

/// Query types asked for every name.
pub const CORPUS_TYPES: [Rtype; 14] = [
    Rtype::A,
    Rtype::AAAA,
    Rtype::NS,
    Rtype::CNAME,
    Rtype::SOA,
    Rtype::MX,
    Rtype::TXT,
    Rtype::SRV,
    Rtype::PTR,
    Rtype::CAA,
    Rtype::ANY,
    Rtype::DS,
    Rtype(65400),
    Rtype(99),
];

/// Names to ask about, derived from `zones`: every owner (literal `*` labels too),
/// a name below each wildcard, below each delegation and below a few leaves,
/// missing names at each apex, mixed-case spellings, and names outside the zones
/// (parents of the apexes, the root, an unrelated TLD).
pub fn corpus_names(zones: &[Zone]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |n: String| {
        if !names.iter().any(|x| x.eq_ignore_ascii_case(&n)) {
            names.push(n);
        }
    };
    for z in zones {
        let apex = z.origin.to_string();
        for r in &z.records {
            push(r.name.to_string());
            let owner = r.name.to_string();
            if let Some(parent) = owner.strip_prefix("*.") {
                push(format!("anything.{parent}"));
                push(format!("a.b.{parent}"));
            }
            if r.rtype() == Rtype::NS && r.name != z.origin {
                push(format!("www.{owner}"));
            }
        }
        push(format!("nothere.{apex}"));
        push(format!("deep.nothere.{apex}"));
        push(format!("x.ns1.{apex}"));
        push(mixed_case(&format!("www.{apex}")));
        if let Some(parent) = z.origin.parent() {
            push(parent.to_string());
        }
    }
    for n in ["example.com.", "com.", ".", "arpa.", "in-addr.arpa."] {
        push(n.to_string());
    }
    names
}

/// `www.example.org.` → `WwW.ExAmPlE.OrG.`
fn mixed_case(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// The corpus: every name × [`CORPUS_TYPES`]; EDNS sizes, the DO bit and
/// truncation for the big RRsets; zone transfers; malformed and unusual headers;
/// other classes; and messages that must be dropped.
pub fn corpus(zones: &[Zone]) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut id = 1u16;
    let mut next_id = || {
        id = id.wrapping_add(1);
        id
    };
    for name in corpus_names(zones) {
        for t in CORPUS_TYPES {
            cases.push(Case {
                label: format!("{name} {t}"),
                bytes: query(&name, t, None, next_id()),
                dropped: false,
                tcp: true,
            });
        }
    }
    // The largest RRsets in the zones, at every size limit.
    let mut big: Vec<(String, Rtype, usize)> = Vec::new();
    for z in zones {
        for r in &z.records {
            let key = (r.name.to_string(), r.rtype());
            match big.iter_mut().find(|(n, t, _)| (n, *t) == (&key.0, key.1)) {
                Some(e) => e.2 += 1,
                None => big.push((key.0, key.1, 1)),
            }
        }
    }
    big.sort_by_key(|b| std::cmp::Reverse(b.2));
    for (name, t, _) in big.iter().take(3) {
        for edns in [
            None,
            Some((512, false)),
            Some((1232, false)),
            Some((4096, true)),
            Some((65535, false)),
        ] {
            cases.push(Case {
                label: format!("{name} {t} {edns:?}"),
                bytes: query(name, *t, edns, next_id()),
                dropped: false,
                tcp: true,
            });
        }
    }
    for name in [
        "WwW.ExAmPlE.OrG.",
        "nothere.example.org.",
        "example.com.",
        "host.lab.example.org.",
    ] {
        for edns in [Some((1232, false)), Some((4096, true))] {
            cases.push(Case {
                label: format!("{name} A {edns:?}"),
                bytes: query(name, Rtype::A, edns, next_id()),
                dropped: false,
                tcp: true,
            });
        }
    }
    let apex = zones
        .first()
        .map_or(".".to_string(), |z| z.origin.to_string());
    for t in [Rtype::AXFR, Rtype::IXFR] {
        cases.push(Case {
            label: format!("{apex} {t}"),
            bytes: query(&apex, t, None, next_id()),
            dropped: false,
            tcp: true,
        });
    }
    // Malformed and unusual.
    let good = query(&apex, Rtype::A, None, 0x4242);
    let good_edns = query(&apex, Rtype::A, Some((1232, true)), 0x4343);
    let mut add = |label: &str, bytes: Vec<u8>| {
        cases.push(Case {
            // NSD resets a TCP connection whose message is no longer than a header
            // ("packet too small"); we answer FORMERR as over UDP and keep it open.
            tcp: label != "header only",
            label: label.into(),
            bytes,
            dropped: false,
        })
    };
    let mut m = good.clone();
    m[5] = 2;
    add("qdcount 2", m);
    let mut m = good.clone();
    m[5] = 0;
    add("qdcount 0 with question", m);
    add("header only", good[..12].to_vec());
    add("truncated question", good[..good.len() - 2].to_vec());
    let mut m = good.clone();
    m[7] = 1;
    add("ancount 1", m);
    let mut m = good.clone();
    m[11] = 1;
    add("arcount 1 without record", m);
    let mut m = good.clone();
    m[2] |= 2 << 3;
    add("opcode STATUS", m);
    let mut m = good.clone();
    m[2] |= 0x04 | 0x02;
    m[3] |= 0x80 | 0x20 | 0x10;
    add("odd flags AA TC RA AD CD", m);
    let mut m = good_edns.clone();
    let n = m.len();
    m[n - 5] = 1;
    add("EDNS version 1", m);
    let mut m = good_edns.clone();
    let n = m.len();
    m[n - 1] = 4;
    add("EDNS rdlength overrun", m);
    let mut m = good_edns.clone();
    let n = m.len();
    m[n - 2..].copy_from_slice(&[0, 6]);
    m.extend_from_slice(&[0, 10, 0, 2, 0xab, 0xcd]);
    add("EDNS with unknown option", m);
    let mut m = good[..12].to_vec();
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    add("pointer in qname", m);
    for (class, tag) in [
        (Class::CH, "CH"),
        (Class::HS, "HS"),
        (Class::ANY, "ANY"),
        (Class(42), "CLASS42"),
    ] {
        for name in [apex.as_str(), "version.bind."] {
            let mut m = query(name, Rtype::TXT, Some((1232, false)), 0x5151);
            let at = 12 + Name::parse_text(name, None).expect("name").as_wire().len() + 2;
            m[at..at + 2].copy_from_slice(&class.0.to_be_bytes());
            add(&format!("{name} TXT class {tag}"), m);
        }
    }
    let mut m = good.clone();
    m[2] |= 0x80;
    cases.push(Case {
        label: "QR=1 dropped".into(),
        bytes: m,
        dropped: true,
        tcp: false,
    });
    cases.push(Case {
        label: "11 bytes dropped".into(),
        bytes: good[..11].to_vec(),
        dropped: true,
        tcp: false,
    });
    cases
}

/// `count` corrupted copies of the well-formed queries in `base`: 1 to 3 bytes
/// past the ID overwritten with values from a deterministic PRNG (`seed`). Over
/// UDP only; those with QR set are expected to be dropped.
pub fn mutations(base: &[Case], count: usize, seed: u64) -> Vec<Case> {
    let pool: Vec<&Case> = base
        .iter()
        .filter(|c| c.tcp && c.bytes.len() > 12)
        .collect();
    let mut rng = Rng::new(seed);
    let mut next = move || rng.next_u64();
    (0..count)
        .map(|i| {
            let base = pool[next() as usize % pool.len()];
            let mut bytes = base.bytes.clone();
            let edits = 1 + next() as usize % 3;
            let mut what = Vec::new();
            for _ in 0..edits {
                let at = 2 + next() as usize % (bytes.len() - 2);
                let v = next() as u8;
                bytes[at] = v;
                what.push(format!("[{at}]={v:#04x}"));
            }
            Case {
                label: format!("mutation {i} of {}: {}", base.label, what.join(" ")),
                dropped: bytes[2] & 0x80 != 0,
                tcp: false,
                bytes,
            }
        })
        .collect()
}

/// Compares two servers' responses to `cases` over UDP and, for the cases marked
/// `tcp`, over TCP (pipelined, `batch` queries per connection). Returns the
/// number of exchanges compared and the differences, each printable.
/// `normalize(ours)` applies documented intentional differences to our summaries.
pub fn diff(
    ours: SocketAddr,
    theirs: SocketAddr,
    cases: &[Case],
    batch: usize,
    normalize: &dyn Fn(String) -> String,
) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut compared = 0;
    let (a, b) = (UdpClient::new(ours), UdpClient::new(theirs));
    let mut compare = |label: &str, x: Option<Vec<u8>>, y: Option<Vec<u8>>| {
        let x = x.as_deref().map(summary).map(normalize);
        let y = y.as_deref().map(summary);
        if x != y {
            failures.push(format!(
                "=== {label}\n--- oasis dns\n{}--- nsd\n{}",
                x.unwrap_or_else(|| "no response\n".into()),
                y.unwrap_or_else(|| "no response\n".into())
            ));
        }
    };
    for c in cases {
        let (wait, tries) = if c.dropped {
            (Duration::from_millis(300), 1)
        } else {
            (Duration::from_secs(3), 2)
        };
        compare(
            &c.label,
            a.ask(&c.bytes, wait, tries),
            b.ask(&c.bytes, wait, tries),
        );
        compared += 1;
    }
    let tcp: Vec<&Case> = cases.iter().filter(|c| c.tcp).collect();
    for chunk in tcp.chunks(batch.max(1)) {
        let qs: Vec<&[u8]> = chunk.iter().map(|c| c.bytes.as_slice()).collect();
        let (xs, ys) = (tcp_ask_many(ours, &qs), tcp_ask_many(theirs, &qs));
        for ((c, x), y) in chunk.iter().zip(xs).zip(ys) {
            compare(&format!("{} (tcp)", c.label), x, y);
            compared += 1;
        }
    }
    (compared, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dig_output() {
        let out = ";; Got answer:\n;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 1\n\
                   ;; flags: qr aa; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1\n\n\
                   ;; QUESTION SECTION:\n;nope.example.org.\t\tIN\tA\n\n\
                   ;; AUTHORITY SECTION:\nexample.org.\t300\tIN\tSOA\tns1.example.org. h.example.org. 1 2 3 4 300\n";
        let d = Dig::parse(out);
        assert_eq!(d.status, "NXDOMAIN");
        assert!(d.flag("aa") && d.flag("qr") && !d.flag("tc"));
        assert!(d.answer.is_empty());
        assert_eq!(
            d.authority,
            ["example.org. 300 IN SOA ns1.example.org. h.example.org. 1 2 3 4 300"]
        );
    }

    #[test]
    fn corpus_covers_the_appliance_zones() {
        let zones = parsed_zones();
        let names = corpus_names(&zones);
        for n in [
            "www.example.org.",
            "anything.sites.example.org.",
            "www.lab.example.org.",
            "pool.example.net.",
            "10.2.0.192.in-addr.arpa.",
            "example.com.",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        let cases = corpus(&zones);
        assert!(cases.len() > 300, "{}", cases.len());
        assert_eq!(cases.iter().filter(|c| c.dropped).count(), 2);
    }
}
