//! The authoritative answering engine (RFC 1034 §4.3.2, RFC 2308, RFC 4592,
//! RFC 6891, RFC 8482), sans-IO: query bytes in, response bytes out.
//!
//! Zones are indexed once at startup: every owner name and every empty
//! non-terminal becomes a node in a canonically sorted vector, and each node knows
//! its wildcard child and the highest zone cut above it. Answering a query then
//! needs only binary searches over borrowed slices: no allocation besides the
//! caller's output buffer. The decision logic follows NSD 4 (see the crate docs
//! for where and why we differ).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::name::{self, Name};
use crate::rdata::RData;
use crate::wire::{self, Class, Compressor, Edns, Flags, HEADER_LEN, Opcode, Rcode, Rtype};
use crate::zone::Zone;

/// UDP payload size we advertise and cap responses at by default (NSD's
/// `ipv4-edns-size`, the DNS Flag Day 2020 value).
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;
/// CNAME hops followed for one query before answering with what we have.
pub const MAX_CNAME_CHAIN: usize = 16;
/// RRsets one response can carry; more are silently left out.
pub const MAX_RRSETS_PER_RESPONSE: usize = 64;
/// Extra records allowed in an IXFR query's authority section (as NSD).
const MAX_IXFR_AUTHORITY: u16 = 64;
/// Largest TCP message.
const TCP_LIMIT: usize = 65535;

/// How the query arrived, which decides the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP. `max_payload` is this server's own limit for the socket (advertised
    /// in our OPT record); the client's EDNS size can only lower it, and without
    /// EDNS the limit is 512 bytes.
    Udp {
        /// Largest response we send on this socket.
        max_payload: u16,
    },
    /// TCP: up to 65535 bytes, never truncated.
    Tcp,
}

impl Transport {
    /// UDP with [`DEFAULT_UDP_PAYLOAD`].
    pub const fn udp() -> Self {
        Transport::Udp {
            max_payload: DEFAULT_UDP_PAYLOAD,
        }
    }
}

/// Why a zone could not be added to a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Two zones with one apex.
    #[error("zone {0} is already loaded")]
    DuplicateZone(Name),
}

/// One RRset: all records of one type at one owner.
#[derive(Debug, Clone)]
struct RRset {
    rtype: Rtype,
    records: Vec<(u32, RData)>,
}

#[derive(Debug)]
struct Node {
    name: Name,
    /// In order of first appearance in the zone file; empty for an empty non-terminal.
    rrsets: Vec<RRset>,
    /// Index of `*.<name>` if it exists.
    wildcard: Option<usize>,
    /// Index of the highest delegation point at or above this node (apex excluded).
    cut: Option<usize>,
}

impl Node {
    fn rrset(&self, t: Rtype) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == t)
    }
}

#[derive(Debug)]
struct ZoneData {
    apex: Name,
    nodes: Vec<Node>,
    /// The SOA with TTL = min(SOA TTL, MINIMUM) for negative answers (RFC 2308 §3).
    soa_negative: RRset,
}

impl ZoneData {
    fn build(zone: Zone) -> ZoneData {
        let mut soa_negative = RRset {
            rtype: Rtype::SOA,
            records: Vec::new(),
        };
        // A BTreeMap keeps startup O(n log n) for large zones.
        let mut map: BTreeMap<Name, Vec<RRset>> = BTreeMap::new();
        for rec in zone.records {
            if let RData::Soa(s) = &rec.rdata {
                soa_negative.records = alloc::vec![(rec.ttl.min(s.minimum), rec.rdata.clone())];
            }
            // Empty non-terminals: every ancestor of an owner, down from the apex, exists.
            let mut cur = rec.name.parent();
            while let Some(p) = cur {
                if !p.is_subdomain_of(&zone.origin) || map.contains_key(&p) {
                    break;
                }
                cur = p.parent();
                map.insert(p, Vec::new());
            }
            let rrsets = map.entry(rec.name.clone()).or_default();
            let rtype = rec.rtype();
            match rrsets.iter_mut().find(|r| r.rtype == rtype) {
                Some(set) => set.records.push((rec.ttl, rec.rdata)),
                None => rrsets.push(RRset {
                    rtype,
                    records: alloc::vec![(rec.ttl, rec.rdata)],
                }),
            }
        }
        map.entry(zone.origin.clone()).or_default();
        let mut nodes: Vec<Node> = map
            .into_iter()
            .map(|(name, rrsets)| Node {
                name,
                rrsets,
                wildcard: None,
                cut: None,
            })
            .collect();
        // Parents sort before their descendants, so one pass fills `cut` top-down.
        for i in 0..nodes.len() {
            let is_cut = nodes[i].name != zone.origin && nodes[i].rrset(Rtype::NS).is_some();
            let parent_cut = nodes[i]
                .name
                .parent()
                .and_then(|p| nodes.binary_search_by(|n| n.name.cmp(&p)).ok())
                .and_then(|pi| nodes[pi].cut);
            nodes[i].cut = parent_cut.or(if is_cut { Some(i) } else { None });
            nodes[i].wildcard = nodes[i]
                .name
                .prepend(b"*")
                .ok()
                .and_then(|w| nodes.binary_search_by(|n| n.name.cmp(&w)).ok());
        }
        ZoneData {
            apex: zone.origin,
            nodes,
            soa_negative,
        }
    }

    fn find(&self, wire: &[u8]) -> Option<usize> {
        self.nodes
            .binary_search_by(|n| name::cmp_canonical(n.name.as_wire(), wire))
            .ok()
    }

    /// The closest existing node at or above `wire` (which must be in the zone),
    /// and whether it is `wire` itself.
    fn closest(&self, wire: &[u8]) -> (usize, bool) {
        let mut cur = wire;
        let mut exact = true;
        loop {
            if let Some(i) = self.find(cur) {
                return (i, exact);
            }
            exact = false;
            match name::parent(cur) {
                Some(p) if p.len() >= self.apex.as_wire().len() => cur = p,
                // Unreachable for in-zone names, since the apex node always exists.
                _ => return (0, false),
            }
        }
    }
}

/// All zones this server is authoritative for.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Sorted by apex in canonical order.
    zones: Vec<ZoneData>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Section {
    Answer,
    Authority,
    AdditionalA,
    AdditionalAaaa,
}

#[derive(Clone, Copy)]
struct Entry<'a> {
    section: Section,
    owner: &'a [u8],
    rrset: &'a RRset,
}

/// Per-query state while assembling an answer.
struct Answer<'a> {
    entries: [Option<Entry<'a>>; MAX_RRSETS_PER_RESPONSE],
    len: usize,
    rcode: Rcode,
    aa: bool,
    qtype: Rtype,
    class_any: bool,
    cname_count: usize,
}

impl<'a> Answer<'a> {
    /// Adds an RRset unless it is already there (then it moves to the earlier
    /// section). Returns false when it was already present, which is how CNAME
    /// loops are detected.
    fn add(&mut self, section: Section, owner: &'a [u8], rrset: &'a RRset) -> bool {
        for e in self.entries[..self.len].iter_mut().flatten() {
            if core::ptr::eq(e.rrset, rrset) && name::eq_ignore_case(e.owner, owner) {
                if section < e.section {
                    e.section = section;
                    return true;
                }
                return false;
            }
        }
        if self.len == MAX_RRSETS_PER_RESPONSE {
            return false;
        }
        self.entries[self.len] = Some(Entry {
            section,
            owner,
            rrset,
        });
        self.len += 1;
        true
    }
}

/// What the parsed query header and question told us.
struct Query<'q> {
    id: u16,
    qname: &'q [u8],
    qtype: Rtype,
    qclass: Class,
    /// End of the question section.
    question_end: usize,
    edns: Option<Edns0>,
}

#[derive(Clone, Copy)]
struct Edns0 {
    size: u16,
    dnssec_ok: bool,
    bad_version: bool,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Catalog::default()
    }

    /// Indexes `zone` and adds it. Zones may nest (a child zone is served from its
    /// own data, the parent's delegation still answers DS queries).
    pub fn add_zone(&mut self, zone: Zone) -> Result<(), CatalogError> {
        match self.zones.binary_search_by(|z| z.apex.cmp(&zone.origin)) {
            Ok(_) => Err(CatalogError::DuplicateZone(zone.origin)),
            Err(i) => {
                self.zones.insert(i, ZoneData::build(zone));
                Ok(())
            }
        }
    }

    /// Apexes of the loaded zones, in canonical order.
    pub fn zones(&self) -> impl Iterator<Item = &Name> {
        self.zones.iter().map(|z| &z.apex)
    }

    /// Answers one query. `out` is cleared and receives the response; returns false
    /// (and leaves `out` empty) when the query must be dropped: shorter than a
    /// header, or a response (QR=1). Allocates nothing beyond growing `out`.
    pub fn answer(&self, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        out.clear();
        self.answer_at(query, transport, out)
    }

    /// Like [`Catalog::answer`] for TCP, but appends the response to `out` behind its
    /// 2-byte length prefix (RFC 7766 §8), so several responses can be queued.
    pub fn answer_tcp_framed(&self, query: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        if !self.answer_at(query, Transport::Tcp, out) {
            out.truncate(start);
            return false;
        }
        let len = u16::try_from(out.len() - start - 2).unwrap_or(u16::MAX);
        out[start..start + 2].copy_from_slice(&len.to_be_bytes());
        true
    }

    fn answer_at(&self, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        let base = out.len();
        let Ok(header) = wire::Header::new_checked(query) else {
            return false;
        };
        let qflags = header.flags();
        if qflags.has(Flags::QR) {
            return false;
        }
        let id = header.id();
        if qflags.opcode() != Opcode::QUERY {
            // NOTIFY and UPDATE included: we are a primary without secondaries. The
            // query's flags are echoed except AD: nothing here is authenticated data
            // (RFC 6840 §5.8; NSD clears it too — found by the NSD differential test).
            let mut f = Flags((qflags.0 | Flags::QR) & !Flags::AD);
            f.set_rcode(Rcode::NOTIMP);
            write_header(out, id, f, [0; 4]);
            return true;
        }
        let formerr_keep_rd = |out: &mut Vec<u8>| {
            let mut f = Flags((qflags.0 & (Flags::RD | 0x7800)) | Flags::QR);
            f.set_rcode(Rcode::FORMERR);
            write_header(out, id, f, [0; 4]);
        };
        // Question: one uncompressed name (a pointer could only target the header).
        let question = name::uncompressed_len(query, HEADER_LEN)
            .ok()
            .filter(|n| query.len() >= HEADER_LEN + n + 4);
        let Some(qname_len) = question.filter(|_| qflags.rcode() == 0) else {
            formerr_keep_rd(out);
            return true;
        };
        if header.qdcount() != 1 {
            let mut f = Flags(Flags::QR);
            f.set_rcode(Rcode::FORMERR);
            write_header(out, id, f, [0; 4]);
            return true;
        }
        let qname = &query[HEADER_LEN..HEADER_LEN + qname_len];
        let mut pos = HEADER_LEN + qname_len;
        let qtype = Rtype(u16::from_be_bytes([query[pos], query[pos + 1]]));
        let qclass = Class(u16::from_be_bytes([query[pos + 2], query[pos + 3]]));
        pos += 4;
        let question_end = pos;
        if header.ancount() != 0 || (header.nscount() != 0 && qtype != Rtype::IXFR) {
            formerr_keep_rd(out);
            return true;
        }
        if qtype == Rtype::IXFR && header.nscount() > 0 {
            if header.nscount() > MAX_IXFR_AUTHORITY {
                formerr_keep_rd(out);
                return true;
            }
            for _ in 0..header.nscount() {
                match skip_rr(query, pos) {
                    Some(p) => pos = p,
                    None => {
                        formerr_keep_rd(out);
                        return true;
                    }
                }
            }
        }
        let mut arcount = header.arcount();
        let mut edns = None;
        if arcount > 0
            && let Some(e) = parse_opt(query, pos)
        {
            edns = Some(e);
            arcount -= 1;
        }
        if arcount > 0 {
            // TSIG and anything else in the additional section is not supported.
            formerr_keep_rd(out);
            return true;
        }
        let q = Query {
            id,
            qname,
            qtype,
            qclass,
            question_end,
            edns,
        };
        if let Some(e) = edns.filter(|e| e.bad_version) {
            // RFC 6891 §6.1.3: BADVERS, with the question, flags otherwise as received.
            let f = Flags((qflags.0 | Flags::QR) & !Flags::AD & !0xf);
            write_header(out, id, f, [1, 0, 0, 1]);
            out.extend_from_slice(&query[HEADER_LEN..question_end]);
            emit_opt(out, 1, e.dnssec_ok, None);
            return true;
        }
        let limit = match transport {
            Transport::Tcp => TCP_LIMIT,
            Transport::Udp { max_payload } => match edns {
                Some(e) if usize::from(e.size) > wire::UDP_LEGACY_LIMIT => {
                    usize::from(e.size.min(max_payload)).max(wire::UDP_LEGACY_LIMIT)
                }
                _ => wire::UDP_LEGACY_LIMIT,
            },
        };
        let flags = Flags((qflags.0 & Flags::RD) | Flags::QR);
        if qclass != Class::IN && qclass != Class::ANY {
            let mut f = flags;
            f.set_rcode(Rcode::REFUSED);
            let mut code = ede::NOT_SUPPORTED;
            if qclass == Class::CH {
                // NSD would answer id.server and version.bind here; we behave like
                // NSD with hide-identity and hide-version.
                if (qtype == Rtype::TXT || qtype == Rtype::ANY) && is_server_info_name(qname) {
                    code = ede::PROHIBITED;
                }
                write_header(out, id, f, [1, 0, 0, 0]);
                out.extend_from_slice(&query[HEADER_LEN..question_end]);
            } else {
                write_header(out, id, f, [0; 4]);
            }
            finish_opt(out, base, &q, Some(code));
            return true;
        }
        if qtype == Rtype::AXFR || qtype == Rtype::IXFR {
            // Zone transfers are not offered: NOTIMP over UDP, REFUSED over TCP (as NSD).
            let mut f = flags;
            f.set_rcode(if transport == Transport::Tcp || qtype == Rtype::IXFR {
                Rcode::REFUSED
            } else {
                Rcode::NOTIMP
            });
            write_header(out, id, f, [1, 0, 0, 0]);
            out.extend_from_slice(&query[HEADER_LEN..question_end]);
            finish_opt(out, base, &q, None);
            return true;
        }
        self.answer_query(&q, query, flags, limit, base, out);
        true
    }

    fn zone_for(&self, wire: &[u8]) -> Option<&ZoneData> {
        let mut cur = wire;
        loop {
            if let Ok(i) = self
                .zones
                .binary_search_by(|z| name::cmp_canonical(z.apex.as_wire(), cur))
            {
                return self.zones.get(i);
            }
            cur = name::parent(cur)?;
        }
    }

    fn parent_zone(&self, zone: &ZoneData) -> Option<&ZoneData> {
        self.zone_for(name::parent(zone.apex.as_wire())?)
    }

    fn answer_query<'a>(
        &'a self,
        q: &Query<'a>,
        query: &[u8],
        flags: Flags,
        limit: usize,
        base: usize,
        out: &mut Vec<u8>,
    ) {
        let mut ans = Answer {
            entries: [None; MAX_RRSETS_PER_RESPONSE],
            len: 0,
            rcode: Rcode::NOERROR,
            aa: false,
            qtype: q.qtype,
            class_any: q.qclass == Class::ANY,
            cname_count: 0,
        };
        self.lookup(&mut ans, q.qname);

        let mut flags = flags;
        flags.set(Flags::AA, ans.aa);
        flags.set_rcode(ans.rcode);
        write_header(out, q.id, flags, [1, 0, 0, 0]);
        out.extend_from_slice(&query[HEADER_LEN..q.question_end]);
        let mut comp = Compressor::new(base);
        comp.remember(base + HEADER_LEN, q.qname);
        let ede = (ans.rcode == Rcode::REFUSED).then_some(ede::NOT_AUTHORITATIVE);
        let reserved = match q.edns {
            Some(_) => Edns::BASE_LEN + if ede.is_some() { ede::LEN } else { 0 },
            None => 0,
        };
        let max = limit.saturating_sub(reserved);
        let mut counts = [0u16; 3];
        let mut truncated = false;
        'sections: for section in [
            Section::Answer,
            Section::Authority,
            Section::AdditionalA,
            Section::AdditionalAaaa,
        ] {
            for e in ans.entries[..ans.len].iter().flatten() {
                if e.section != section {
                    continue;
                }
                let set_mark = out.len();
                let mut added = 0u16;
                let mut all = true;
                for (ttl, rdata) in &e.rrset.records {
                    let mark = out.len();
                    wire::emit_record(out, &mut comp, e.owner, Class::IN, *ttl, rdata);
                    if out.len() - base > max {
                        out.truncate(mark);
                        comp.truncate(mark);
                        all = false;
                        break;
                    }
                    added += 1;
                }
                let slot = match section {
                    Section::Answer => 0,
                    Section::Authority => 1,
                    _ => 2,
                };
                if !all && slot < 2 {
                    // Never send part of an answer or authority RRset (RFC 2181 §9).
                    out.truncate(set_mark);
                    comp.truncate(set_mark);
                    truncated = true;
                    break 'sections;
                }
                counts[slot] += added;
            }
        }
        if truncated {
            flags.set(Flags::TC, true);
            set_u16_at(out, base + 2, flags.0);
        }
        set_u16_at(out, base + 6, counts[0]);
        set_u16_at(out, base + 8, counts[1]);
        set_u16_at(out, base + 10, counts[2]);
        finish_opt(out, base, q, ede);
    }

    /// NSD's `answer_lookup_zone`: find the zone, then delegate or answer.
    fn lookup<'a>(&'a self, ans: &mut Answer<'a>, qname: &'a [u8]) {
        let Some(mut zone) = self.zone_for(qname) else {
            if ans.cname_count == 0 {
                ans.rcode = Rcode::REFUSED;
            }
            return;
        };
        let (mut ce, mut exact) = zone.closest(qname);
        if exact && ans.qtype == Rtype::DS && ce == zone.find(zone.apex.as_wire()).unwrap_or(0) {
            // DS lives in the parent (RFC 4035 §3.1.4.1): answer from it if we serve it.
            match self.parent_zone(zone) {
                Some(parent) => {
                    zone = parent;
                    (ce, exact) = zone.closest(qname);
                }
                None => {
                    ans.aa = !ans.class_any;
                    self.nodata(ans, zone);
                    return;
                }
            }
        }
        let node = &zone.nodes[ce];
        match node.cut {
            Some(cut) if !(exact && ans.qtype == Rtype::DS && cut == ce) => {
                // Referral: AA only if we got here by following a CNAME.
                ans.aa = ans.cname_count > 0;
                let cut_node = &zone.nodes[cut];
                if let Some(ns) = cut_node.rrset(Rtype::NS) {
                    self.add(ans, zone, Section::Authority, cut_node.name.as_wire(), ns);
                }
            }
            _ => {
                ans.aa = !ans.class_any;
                self.authoritative(ans, zone, qname, ce, exact);
            }
        }
    }

    fn authoritative<'a>(
        &'a self,
        ans: &mut Answer<'a>,
        zone: &'a ZoneData,
        qname: &'a [u8],
        ce: usize,
        exact: bool,
    ) {
        let node = if exact {
            Some(&zone.nodes[ce])
        } else {
            zone.nodes[ce].wildcard.map(|w| &zone.nodes[w])
        };
        match node {
            Some(node) => self.domain(ans, zone, node, qname),
            None => {
                ans.rcode = Rcode::NXDOMAIN;
                self.soa(ans, zone);
            }
        }
    }

    /// NSD's `answer_domain`, with `owner` the (possibly wildcard-expanded) name.
    fn domain<'a>(
        &'a self,
        ans: &mut Answer<'a>,
        zone: &'a ZoneData,
        node: &'a Node,
        owner: &'a [u8],
    ) {
        if ans.qtype == Rtype::ANY {
            // RFC 8482 §4.1: one RRset. Like NSD: the first "popular" one, else the
            // last other one, else a DNSSEC one.
            let mut preferred = None;
            let mut normal = None;
            let mut dnssec = None;
            for set in &node.rrsets {
                match set.rtype {
                    Rtype::A | Rtype::AAAA | Rtype::SOA | Rtype::MX | Rtype::PTR => {
                        preferred = Some(set);
                        break;
                    }
                    Rtype(46..=48) => dnssec = Some(set),
                    _ => normal = Some(set),
                }
            }
            match preferred.or(normal).or(dnssec) {
                Some(set) => {
                    self.add(ans, zone, Section::Answer, owner, set);
                }
                None => self.nodata(ans, zone),
            }
        } else if let Some(set) = node.rrset(ans.qtype) {
            self.add(ans, zone, Section::Answer, owner, set);
        } else if let Some(set) = node.rrset(Rtype::CNAME) {
            if self.add(ans, zone, Section::Answer, owner, set)
                && ans.cname_count < MAX_CNAME_CHAIN
                && let Some((_, RData::Cname(target))) = set.records.first()
            {
                ans.cname_count += 1;
                self.lookup(ans, target.as_wire());
            }
        } else {
            self.nodata(ans, zone);
        }
    }

    fn nodata<'a>(&'a self, ans: &mut Answer<'a>, zone: &'a ZoneData) {
        self.soa(ans, zone);
    }

    fn soa<'a>(&'a self, ans: &mut Answer<'a>, zone: &'a ZoneData) {
        if !ans.class_any && !zone.soa_negative.records.is_empty() {
            ans.add(Section::Authority, zone.apex.as_wire(), &zone.soa_negative);
        }
    }

    /// Adds an RRset and, for NS (and MX/SRV where asked), the A/AAAA records of
    /// its targets. Minimal responses: additional data only for referrals and
    /// NS queries, as NSD with `minimal-responses: yes`.
    fn add<'a>(
        &'a self,
        ans: &mut Answer<'a>,
        zone: &'a ZoneData,
        section: Section,
        owner: &'a [u8],
        set: &'a RRset,
    ) -> bool {
        let added = ans.add(section, owner, set);
        if section != Section::Authority && ans.qtype != Rtype::NS {
            return added;
        }
        let allow_glue = match set.rtype {
            Rtype::NS => true,
            Rtype::MX | Rtype::SRV => false,
            _ => return added,
        };
        for (_, rdata) in &set.records {
            let Some(target) = rdata.target_name() else {
                continue;
            };
            let t = target.as_wire();
            if !name::is_subdomain(t, zone.apex.as_wire()) {
                continue;
            }
            let (ce, exact) = zone.closest(t);
            if !allow_glue && zone.nodes[ce].cut.is_some() {
                continue;
            }
            let node = if exact {
                &zone.nodes[ce]
            } else {
                match zone.nodes[ce].wildcard {
                    Some(w) => &zone.nodes[w],
                    None => continue,
                }
            };
            if let Some(a) = node.rrset(Rtype::A) {
                ans.add(Section::AdditionalA, t, a);
            }
            if let Some(aaaa) = node.rrset(Rtype::AAAA) {
                ans.add(Section::AdditionalAaaa, t, aaaa);
            }
        }
        added
    }
}

/// Overwrites a big-endian u16 already written at `at`.
fn set_u16_at(out: &mut [u8], at: usize, v: u16) {
    if let Some(b) = out.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

fn write_header(out: &mut Vec<u8>, id: u16, flags: Flags, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.0.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

/// Extended DNS Error info codes we send (RFC 8914 §4), as NSD does.
mod ede {
    /// 4.19: the server is configured not to answer (hidden version/identity).
    pub const PROHIBITED: u16 = 18;
    /// 4.21: the name is not in any zone we serve.
    pub const NOT_AUTHORITATIVE: u16 = 20;
    /// 4.22: the class is not supported.
    pub const NOT_SUPPORTED: u16 = 21;
    /// EDNS option code of Extended DNS Error.
    pub const OPTION_CODE: u16 = 15;
    /// Bytes the option adds: code, length, info code.
    pub const LEN: usize = 6;
}

fn emit_opt(out: &mut Vec<u8>, ext_rcode: u8, dnssec_ok: bool, ede: Option<u16>) {
    out.push(0);
    out.extend_from_slice(&Rtype::OPT.0.to_be_bytes());
    out.extend_from_slice(&DEFAULT_UDP_PAYLOAD.to_be_bytes());
    out.push(ext_rcode);
    out.push(0);
    out.extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    match ede {
        Some(code) => {
            out.extend_from_slice(&(ede::LEN as u16).to_be_bytes());
            out.extend_from_slice(&ede::OPTION_CODE.to_be_bytes());
            out.extend_from_slice(&2u16.to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
        }
        None => out.extend_from_slice(&[0, 0]),
    }
}

/// Appends our OPT record when the query had one, and counts it.
fn finish_opt(out: &mut Vec<u8>, base: usize, q: &Query<'_>, ede: Option<u16>) {
    if let Some(e) = q.edns {
        emit_opt(out, 0, e.dnssec_ok, ede);
        let at = base + 10;
        if let Some(b) = out.get_mut(at..at + 2) {
            let n = u16::from_be_bytes([b[0], b[1]]).saturating_add(1);
            b.copy_from_slice(&n.to_be_bytes());
        }
    }
}

/// `id.server.`, `hostname.bind.`, `version.server.`, `version.bind.` (RFC 4892).
fn is_server_info_name(qname: &[u8]) -> bool {
    const NAMES: [&[u8]; 4] = [
        b"\x02id\x06server\x00",
        b"\x08hostname\x04bind\x00",
        b"\x07version\x06server\x00",
        b"\x07version\x04bind\x00",
    ];
    NAMES.iter().any(|n| name::eq_ignore_case(n, qname))
}

/// Reads an OPT record at `pos`: `None` if there is none or it is malformed.
fn parse_opt(msg: &[u8], pos: usize) -> Option<Edns0> {
    let b = msg.get(pos..pos + Edns::BASE_LEN)?;
    if b[0] != 0 || u16::from_be_bytes([b[1], b[2]]) != Rtype::OPT.0 {
        return None;
    }
    let size = u16::from_be_bytes([b[3], b[4]]);
    let version = b[6];
    let dnssec_ok = b[7] & 0x80 != 0;
    let rdlen = usize::from(u16::from_be_bytes([b[9], b[10]]));
    if version == 0 {
        let opts = msg.get(pos + Edns::BASE_LEN..pos + Edns::BASE_LEN + rdlen)?;
        if !Edns::options_valid(opts) {
            return None;
        }
    }
    Some(Edns0 {
        size,
        dnssec_ok,
        bad_version: version != 0,
    })
}

/// Skips one resource record at `pos`; returns the offset after it.
fn skip_rr(msg: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    loop {
        let len = *msg.get(p)?;
        if len & 0xc0 == 0xc0 {
            p += 2;
            break;
        }
        p += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    let fixed = msg.get(p..p + 10)?;
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let end = p + 10 + rdlen;
    (end <= msg.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message, Question};
    use alloc::string::ToString;

    const ZONE: &str = "$TTL 3600
@       IN SOA ns1 hostmaster 1 7200 3600 1209600 300
        NS ns1
        NS ns2.other.test.
        MX 10 mail
ns1     A 192.0.2.1
        AAAA 2001:db8::1
mail    A 192.0.2.2
www     CNAME web
web     A 192.0.2.3
loop1   CNAME loop2
loop2   CNAME loop1
out     CNAME www.elsewhere.test.
a.b.c   TXT \"deep\"
*.wild  TXT \"wildcard\"
*.wild  MX 5 mail
x.wild  A 192.0.2.9
sub     NS ns.sub
        NS ns1
ns.sub  A 192.0.2.53
deep.sub A 192.0.2.54
big     TXT \"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
        TXT \"1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
        TXT \"2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
        TXT \"3123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
        TXT \"4123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
        TXT \"5123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
";

    fn catalog() -> Catalog {
        let origin = Name::parse_text("example.org.", None).unwrap();
        let zone = Zone::parse("example.org.zone", ZONE, &origin).unwrap();
        let mut c = Catalog::new();
        c.add_zone(zone.clone()).unwrap();
        assert!(matches!(
            c.add_zone(zone),
            Err(CatalogError::DuplicateZone(_))
        ));
        c
    }

    fn query(name: &str, t: Rtype, edns: Option<u16>) -> Vec<u8> {
        let m = Message {
            id: 0x1234,
            flags: Flags(Flags::RD),
            questions: alloc::vec![Question {
                name: Name::parse_text(name, None).unwrap(),
                qtype: t,
                qclass: Class::IN,
            }],
            edns: edns.map(|size| Edns {
                udp_payload_size: size,
                ext_rcode: 0,
                version: 0,
                dnssec_ok: false,
                options: Vec::new(),
            }),
            ..Message::default()
        };
        let mut out = Vec::new();
        m.emit(&mut out);
        out
    }

    fn ask(c: &Catalog, name: &str, t: Rtype) -> Message {
        ask_with(c, &query(name, t, None), Transport::udp())
    }

    fn ask_with(c: &Catalog, q: &[u8], t: Transport) -> Message {
        let mut out = Vec::new();
        assert!(c.answer(q, t, &mut out));
        Message::parse(&out).unwrap()
    }

    fn texts(records: &[wire::Record]) -> Vec<alloc::string::String> {
        records
            .iter()
            .map(|r| {
                alloc::format!(
                    "{} {} {} {}",
                    r.name.to_string().to_ascii_lowercase(),
                    r.ttl,
                    r.rtype(),
                    r.rdata
                )
            })
            .collect()
    }

    #[test]
    fn positive_answer_is_authoritative_and_copies_id_rd_question() {
        let c = catalog();
        let r = ask(&c, "WEB.Example.ORG.", Rtype::A);
        assert_eq!(r.id, 0x1234);
        assert!(r.flags.has(Flags::QR | Flags::AA | Flags::RD));
        assert!(!r.flags.has(Flags::RA));
        assert_eq!(r.rcode(), Rcode::NOERROR);
        assert_eq!(r.questions[0].name.to_string(), "WEB.Example.ORG.");
        assert_eq!(texts(&r.answers), ["web.example.org. 3600 A 192.0.2.3"]);
        assert!(r.authority.is_empty() && r.additional.is_empty());
    }

    #[test]
    fn nxdomain_and_nodata_carry_soa_with_negative_ttl() {
        let c = catalog();
        let r = ask(&c, "nope.example.org.", Rtype::A);
        assert_eq!(r.rcode(), Rcode::NXDOMAIN);
        assert!(r.flags.has(Flags::AA));
        assert_eq!(r.authority.len(), 1);
        assert_eq!(r.authority[0].ttl, 300);
        let r = ask(&c, "web.example.org.", Rtype::AAAA);
        assert_eq!(r.rcode(), Rcode::NOERROR);
        assert!(r.answers.is_empty());
        assert_eq!(r.authority[0].rtype(), Rtype::SOA);
        // Empty non-terminals exist: NODATA, not NXDOMAIN.
        let r = ask(&c, "b.c.example.org.", Rtype::A);
        assert_eq!(r.rcode(), Rcode::NOERROR);
        assert_eq!(r.authority[0].rtype(), Rtype::SOA);
    }

    #[test]
    fn cname_chains_and_loops() {
        let c = catalog();
        let r = ask(&c, "www.example.org.", Rtype::A);
        assert_eq!(
            texts(&r.answers),
            [
                "www.example.org. 3600 CNAME web.example.org.",
                "web.example.org. 3600 A 192.0.2.3"
            ]
        );
        let r = ask(&c, "loop1.example.org.", Rtype::A);
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.rcode(), Rcode::NOERROR);
        let r = ask(&c, "out.example.org.", Rtype::A);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.rcode(), Rcode::NOERROR);
        assert!(r.flags.has(Flags::AA));
        let r = ask(&c, "www.example.org.", Rtype::CNAME);
        assert_eq!(r.answers.len(), 1);
    }

    #[test]
    fn wildcards() {
        let c = catalog();
        let r = ask(&c, "Foo.wild.example.org.", Rtype::TXT);
        assert_eq!(
            texts(&r.answers),
            ["foo.wild.example.org. 3600 TXT \"wildcard\""]
        );
        // Existing names are not covered by the wildcard.
        let r = ask(&c, "x.wild.example.org.", Rtype::TXT);
        assert!(r.answers.is_empty());
        assert_eq!(r.rcode(), Rcode::NOERROR);
        // Below an existing name: no wildcard there → NXDOMAIN.
        let r = ask(&c, "y.x.wild.example.org.", Rtype::TXT);
        assert_eq!(r.rcode(), Rcode::NXDOMAIN);
        // Wildcard NODATA.
        let r = ask(&c, "foo.wild.example.org.", Rtype::A);
        assert!(r.answers.is_empty());
        assert_eq!(r.authority[0].rtype(), Rtype::SOA);
    }

    #[test]
    fn referral_with_glue() {
        let c = catalog();
        for qname in [
            "sub.example.org.",
            "www.sub.example.org.",
            "deep.sub.example.org.",
        ] {
            let r = ask(&c, qname, Rtype::A);
            assert!(!r.flags.has(Flags::AA), "{qname}");
            assert_eq!(r.rcode(), Rcode::NOERROR);
            assert!(r.answers.is_empty());
            assert_eq!(r.authority.len(), 2);
            let mut add = texts(&r.additional);
            add.sort();
            assert_eq!(
                add,
                [
                    "ns.sub.example.org. 3600 A 192.0.2.53",
                    "ns1.example.org. 3600 A 192.0.2.1",
                    "ns1.example.org. 3600 AAAA 2001:db8::1"
                ]
            );
        }
        // DS at the cut is answered by the parent, authoritatively.
        let r = ask(&c, "sub.example.org.", Rtype::DS);
        assert!(r.flags.has(Flags::AA));
        assert_eq!(r.authority[0].rtype(), Rtype::SOA);
    }

    #[test]
    fn refused_outside_and_any_minimal() {
        let c = catalog();
        let r = ask(&c, "example.com.", Rtype::A);
        assert_eq!(r.rcode(), Rcode::REFUSED);
        assert!(!r.flags.has(Flags::AA));
        let r = ask(&c, "example.org.", Rtype::ANY);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].rtype(), Rtype::SOA);
        let r = ask(&c, "example.org.", Rtype::NS);
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.additional.len(), 2, "NS queries get glue");
    }

    #[test]
    fn truncation_udp_and_edns() {
        let c = catalog();
        let r = ask(&c, "big.example.org.", Rtype::TXT);
        assert!(r.flags.has(Flags::TC));
        assert!(r.answers.is_empty());
        let r = ask_with(
            &c,
            &query("big.example.org.", Rtype::TXT, Some(4096)),
            Transport::udp(),
        );
        assert!(!r.flags.has(Flags::TC));
        assert_eq!(r.answers.len(), 6);
        assert!(r.edns.is_some());
        let r = ask_with(
            &c,
            &query("big.example.org.", Rtype::TXT, Some(512)),
            Transport::udp(),
        );
        assert!(r.flags.has(Flags::TC));
        let r = ask_with(
            &c,
            &query("big.example.org.", Rtype::TXT, None),
            Transport::Tcp,
        );
        assert!(!r.flags.has(Flags::TC));
        assert_eq!(r.answers.len(), 6);
    }

    #[test]
    fn malformed_queries() {
        let c = catalog();
        let mut out = Vec::new();
        assert!(!c.answer(&[0; 11], Transport::udp(), &mut out));
        let mut q = query("web.example.org.", Rtype::A, None);
        q[2] |= 0x80;
        assert!(!c.answer(&q, Transport::udp(), &mut out));
        assert!(out.is_empty());
        // Opcode UPDATE, with AD set: NOTIMP, AD cleared, CD echoed (as NSD).
        let mut q = query("web.example.org.", Rtype::A, None);
        q[2] |= 5 << 3;
        q[3] |= 0x30; // AD | CD
        let r = ask_with(&c, &q, Transport::udp());
        assert_eq!(r.rcode(), Rcode::NOTIMP);
        let mut out = Vec::new();
        assert!(c.answer(&q, Transport::udp(), &mut out));
        assert_eq!(out[3] & 0x30, 0x10, "AD cleared, CD kept");
        // Two questions.
        let mut q = query("web.example.org.", Rtype::A, None);
        q[5] = 2;
        assert_eq!(ask_with(&c, &q, Transport::udp()).rcode(), Rcode::FORMERR);
        // Truncated question.
        let q = query("web.example.org.", Rtype::A, None);
        let mut out = Vec::new();
        assert!(c.answer(&q[..q.len() - 1], Transport::udp(), &mut out));
        assert_eq!(out[3] & 0xf, 1);
        // Unknown EDNS version.
        let mut q = query("web.example.org.", Rtype::A, Some(1232));
        let n = q.len();
        q[n - 5] = 1;
        let r = ask_with(&c, &q, Transport::udp());
        assert_eq!(r.rcode(), Rcode::BADVERS);
        assert_eq!(r.questions.len(), 1);
        // AXFR.
        let q = query("example.org.", Rtype::AXFR, None);
        assert_eq!(ask_with(&c, &q, Transport::Tcp).rcode(), Rcode::REFUSED);
        assert_eq!(ask_with(&c, &q, Transport::udp()).rcode(), Rcode::NOTIMP);
    }

    #[test]
    fn large_zone_indexes_and_answers() {
        let mut text = alloc::string::String::from("$TTL 60\n@ SOA ns hm 1 2 3 4 5\n");
        for i in 0..20_000 {
            text.push_str(&alloc::format!("h{i}.r{} A 192.0.2.{}\n", i % 97, i % 250));
        }
        let origin = Name::parse_text("big.test.", None).unwrap();
        let mut c = Catalog::new();
        c.add_zone(Zone::parse("big", &text, &origin).unwrap())
            .unwrap();
        let r = ask(&c, "h12345.r26.big.test.", Rtype::A);
        assert_eq!(texts(&r.answers), ["h12345.r26.big.test. 60 A 192.0.2.95"]);
        // r26 is an empty non-terminal.
        let r = ask(&c, "r26.big.test.", Rtype::A);
        assert_eq!(r.rcode(), Rcode::NOERROR);
        assert_eq!(
            ask(&c, "h1.r26.big.test.", Rtype::A).rcode(),
            Rcode::NXDOMAIN
        );
    }

    #[test]
    fn tcp_framing_helper() {
        let c = catalog();
        let q = query("web.example.org.", Rtype::A, None);
        let mut out = alloc::vec![9u8];
        assert!(c.answer_tcp_framed(&q, &mut out));
        let len = usize::from(u16::from_be_bytes([out[1], out[2]]));
        assert_eq!(len, out.len() - 3);
        assert_eq!(Message::parse(&out[3..]).unwrap().answers.len(), 1);
    }
}
