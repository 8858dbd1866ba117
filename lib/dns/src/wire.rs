//! DNS message wire format (RFC 1035 §4): the header view, numeric registries,
//! questions, records, EDNS(0) (RFC 6891), whole-message parse/emit, and the
//! name-compression map used when emitting.

use alloc::vec::Vec;
use core::fmt;

use crate::name::{self, Name, NameError};
use crate::rdata::RData;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Largest offset a compression pointer can hold.
pub const MAX_POINTER_OFFSET: usize = 0x3fff;
/// Response size limit for UDP without EDNS (RFC 1035 §4.2.1).
pub const UDP_LEGACY_LIMIT: usize = 512;

/// Byte ranges of the header (RFC 1035 §4.1.1).
mod field {
    use core::ops::Range;
    pub const ID: Range<usize> = 0..2;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const NSCOUNT: Range<usize> = 8..10;
    pub const ARCOUNT: Range<usize> = 10..12;
}

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than 12 bytes.
    #[error("message of {0} bytes is shorter than the 12-byte header")]
    ShortHeader(usize),
    /// A section ended early.
    #[error("message truncated at offset {0}")]
    Truncated(usize),
    /// A name was malformed.
    #[error("bad name: {0}")]
    Name(#[from] NameError),
    /// RDATA did not match its type's format.
    #[error("bad RDATA for type {rtype}: {reason}")]
    BadRdata {
        /// The record type.
        rtype: Rtype,
        /// What was wrong.
        reason: &'static str,
    },
    /// More than one OPT record, or an OPT record outside the additional section.
    #[error("misplaced or repeated OPT record at offset {0}")]
    BadOpt(usize),
}

/// Header flags word: QR, opcode, AA, TC, RD, RA, Z, AD, CD and RCODE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Recursion available.
    pub const RA: u16 = 0x0080;
    /// Authentic data (RFC 4035).
    pub const AD: u16 = 0x0020;
    /// Checking disabled (RFC 4035).
    pub const CD: u16 = 0x0010;

    /// True when every bit of `mask` is set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }
    /// The 4-bit opcode.
    pub fn opcode(self) -> Opcode {
        Opcode(((self.0 >> 11) & 0xf) as u8)
    }
    /// The low 4 bits of the response code.
    pub fn rcode(self) -> u8 {
        (self.0 & 0xf) as u8
    }
    /// Sets or clears the bits of `mask`.
    pub fn set(&mut self, mask: u16, on: bool) {
        if on {
            self.0 |= mask;
        } else {
            self.0 &= !mask;
        }
    }
    /// Replaces the low 4 bits of the response code.
    pub fn set_rcode(&mut self, rcode: Rcode) {
        self.0 = (self.0 & !0xf) | (rcode.0 & 0xf);
    }
}

/// Zero-copy view of a message's fixed header.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buffer`, checking it holds at least a header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::ShortHeader(len));
        }
        Ok(Header { buffer })
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = self.buffer.as_ref();
        // `new_checked` guaranteed 12 bytes.
        u16::from_be_bytes([b[range.start], b[range.start + 1]])
    }

    /// Message ID.
    pub fn id(&self) -> u16 {
        self.u16_at(field::ID)
    }
    /// Flags word.
    pub fn flags(&self) -> Flags {
        Flags(self.u16_at(field::FLAGS))
    }
    /// Question count.
    pub fn qdcount(&self) -> u16 {
        self.u16_at(field::QDCOUNT)
    }
    /// Answer count.
    pub fn ancount(&self) -> u16 {
        self.u16_at(field::ANCOUNT)
    }
    /// Authority count.
    pub fn nscount(&self) -> u16 {
        self.u16_at(field::NSCOUNT)
    }
    /// Additional count.
    pub fn arcount(&self) -> u16 {
        self.u16_at(field::ARCOUNT)
    }
    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn set_u16(&mut self, range: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the ID.
    pub fn set_id(&mut self, v: u16) {
        self.set_u16(field::ID, v)
    }
    /// Sets the flags word.
    pub fn set_flags(&mut self, v: Flags) {
        self.set_u16(field::FLAGS, v.0)
    }
    /// Sets the question count.
    pub fn set_qdcount(&mut self, v: u16) {
        self.set_u16(field::QDCOUNT, v)
    }
    /// Sets the answer count.
    pub fn set_ancount(&mut self, v: u16) {
        self.set_u16(field::ANCOUNT, v)
    }
    /// Sets the authority count.
    pub fn set_nscount(&mut self, v: u16) {
        self.set_u16(field::NSCOUNT, v)
    }
    /// Sets the additional count.
    pub fn set_arcount(&mut self, v: u16) {
        self.set_u16(field::ARCOUNT, v)
    }
}

macro_rules! registry {
    ($(#[$m:meta])* $name:ident($t:ty) { $($(#[$cm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $t);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
            /// The registry mnemonic, if this value has one here.
            pub fn mnemonic(self) -> Option<&'static str> {
                match self { $($name::$c => Some(stringify!($c)),)* _ => None }
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { fmt::Display::fmt(self, f) }
        }
    };
}

registry!(
    /// Resource record type (IANA "Resource Record (RR) TYPEs").
    Rtype(u16) {
        /// IPv4 address.
        A = 1,
        /// Name server.
        NS = 2,
        /// Canonical name.
        CNAME = 5,
        /// Start of authority.
        SOA = 6,
        /// Domain name pointer.
        PTR = 12,
        /// Host information (RFC 8482 uses it for ANY).
        HINFO = 13,
        /// Mail exchange.
        MX = 15,
        /// Text strings.
        TXT = 16,
        /// IPv6 address.
        AAAA = 28,
        /// Service locator.
        SRV = 33,
        /// EDNS(0) pseudo-record.
        OPT = 41,
        /// Delegation signer.
        DS = 43,
        /// Incremental zone transfer.
        IXFR = 251,
        /// Full zone transfer.
        AXFR = 252,
        /// Any type (QTYPE only).
        ANY = 255,
        /// Certification authority authorization.
        CAA = 257,
    }
);

impl fmt::Display for Rtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

registry!(
    /// Record class.
    Class(u16) {
        /// Internet.
        IN = 1,
        /// Chaos.
        CH = 3,
        /// Hesiod.
        HS = 4,
        /// Any class (QCLASS only).
        ANY = 255,
    }
);

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "CLASS{}", self.0),
        }
    }
}

registry!(
    /// Response code, extended to 12 bits by EDNS (RFC 6891 §6.1.3).
    Rcode(u16) {
        /// No error.
        NOERROR = 0,
        /// Format error.
        FORMERR = 1,
        /// Server failure.
        SERVFAIL = 2,
        /// Name does not exist.
        NXDOMAIN = 3,
        /// Not implemented.
        NOTIMP = 4,
        /// Refused.
        REFUSED = 5,
        /// Not authoritative (RFC 8945).
        NOTAUTH = 9,
        /// Unsupported EDNS version.
        BADVERS = 16,
    }
);

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

registry!(
    /// Header opcode.
    Opcode(u8) {
        /// Standard query.
        QUERY = 0,
        /// Zone change notification (RFC 1996).
        NOTIFY = 4,
        /// Dynamic update (RFC 2136).
        UPDATE = 5,
    }
);

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "OPCODE{}", self.0),
        }
    }
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Query name.
    pub name: Name,
    /// Query type.
    pub qtype: Rtype,
    /// Query class.
    pub qclass: Class,
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: Name,
    /// Class.
    pub class: Class,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Typed data; its type is the record's type.
    pub rdata: RData,
}

impl Record {
    /// The record's type.
    pub fn rtype(&self) -> Rtype {
        self.rdata.rtype()
    }
}

/// The EDNS(0) OPT pseudo-record (RFC 6891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edns {
    /// Advertised UDP payload size (the OPT record's CLASS).
    pub udp_payload_size: u16,
    /// Upper 8 bits of the 12-bit RCODE.
    pub ext_rcode: u8,
    /// EDNS version; only 0 is defined.
    pub version: u8,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// Raw options (code, length, data)*.
    pub options: Vec<u8>,
}

impl Edns {
    /// Fixed part of an OPT record without options: root owner, type, class, TTL, RDLENGTH.
    pub const BASE_LEN: usize = 11;
    const DO_BIT: u16 = 0x8000;

    /// Appends the OPT record.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(0);
        out.extend_from_slice(&Rtype::OPT.0.to_be_bytes());
        out.extend_from_slice(&self.udp_payload_size.to_be_bytes());
        out.push(self.ext_rcode);
        out.push(self.version);
        let z = if self.dnssec_ok { Self::DO_BIT } else { 0 };
        out.extend_from_slice(&z.to_be_bytes());
        out.extend_from_slice(&(self.options.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.options);
    }

    /// Checks that `rdata` is a well-formed option list (RFC 6891 §6.1.2).
    pub fn options_valid(rdata: &[u8]) -> bool {
        let mut rest = rdata;
        while !rest.is_empty() {
            let Some(hdr) = rest.get(..4) else {
                return false;
            };
            let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
            match rest.get(4 + len..) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        true
    }
}

/// A whole message (the Repr side of the Packet/Repr pair).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Message ID.
    pub id: u16,
    /// Flags; the RCODE's upper bits live in `edns`.
    pub flags: Flags,
    /// Question section.
    pub questions: Vec<Question>,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section, without the OPT record.
    pub additional: Vec<Record>,
    /// The OPT record, if present.
    pub edns: Option<Edns>,
}

/// Cursor over a message being parsed.
pub(crate) struct Reader<'a> {
    pub(crate) msg: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        let b = self
            .msg
            .get(self.pos..self.pos + 2)
            .ok_or(WireError::Truncated(self.pos))?;
        self.pos += 2;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        let b = self
            .msg
            .get(self.pos..self.pos + 4)
            .ok_or(WireError::Truncated(self.pos))?;
        self.pos += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn name(&mut self) -> Result<Name, WireError> {
        let (name, end) = Name::read(self.msg, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

impl Message {
    /// Parses a complete message. Trailing bytes after the counted records are ignored.
    pub fn parse(msg: &[u8]) -> Result<Message, WireError> {
        let header = Header::new_checked(msg)?;
        let mut r = Reader {
            msg,
            pos: HEADER_LEN,
        };
        let mut m = Message {
            id: header.id(),
            flags: header.flags(),
            ..Message::default()
        };
        for _ in 0..header.qdcount() {
            let name = r.name()?;
            let qtype = Rtype(r.u16()?);
            let qclass = Class(r.u16()?);
            m.questions.push(Question {
                name,
                qtype,
                qclass,
            });
        }
        let counts = [header.ancount(), header.nscount(), header.arcount()];
        for (section, &count) in counts.iter().enumerate() {
            for _ in 0..count {
                let start = r.pos;
                let name = r.name()?;
                let rtype = Rtype(r.u16()?);
                let class = r.u16()?;
                let ttl = r.u32()?;
                let rdlen = usize::from(r.u16()?);
                let rd_start = r.pos;
                let rd_end = rd_start + rdlen;
                if msg.len() < rd_end {
                    return Err(WireError::Truncated(rd_start));
                }
                if rtype == Rtype::OPT {
                    if section != 2 || m.edns.is_some() || name.as_wire() != [0] {
                        return Err(WireError::BadOpt(start));
                    }
                    let options = &msg[rd_start..rd_end];
                    if !Edns::options_valid(options) {
                        return Err(WireError::BadRdata {
                            rtype,
                            reason: "option list overruns RDATA",
                        });
                    }
                    let [ext_rcode, version, z_hi, _] = ttl.to_be_bytes();
                    m.edns = Some(Edns {
                        udp_payload_size: class,
                        ext_rcode,
                        version,
                        dnssec_ok: z_hi & 0x80 != 0,
                        options: options.to_vec(),
                    });
                } else {
                    let rdata = RData::parse(rtype, msg, rd_start, rdlen)?;
                    let rec = Record {
                        name,
                        class: Class(class),
                        ttl,
                        rdata,
                    };
                    match section {
                        0 => m.answers.push(rec),
                        1 => m.authority.push(rec),
                        _ => m.additional.push(rec),
                    }
                }
                r.pos = rd_end;
            }
        }
        Ok(m)
    }

    /// The full response code, combining the header bits and the EDNS extension.
    pub fn rcode(&self) -> Rcode {
        let ext = self.edns.as_ref().map_or(0, |e| u16::from(e.ext_rcode));
        Rcode((ext << 4) | u16::from(self.flags.rcode()))
    }

    /// Appends the message to `out`, compressing names. Counts above 65535 are clamped.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let base = out.len();
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.flags.0.to_be_bytes());
        let ar = self.additional.len() + usize::from(self.edns.is_some());
        for count in [
            self.questions.len(),
            self.answers.len(),
            self.authority.len(),
            ar,
        ] {
            out.extend_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_be_bytes());
        }
        let mut comp = Compressor::new(base);
        for q in &self.questions {
            comp.write_name(out, q.name.as_wire(), true);
            out.extend_from_slice(&q.qtype.0.to_be_bytes());
            out.extend_from_slice(&q.qclass.0.to_be_bytes());
        }
        for rec in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            emit_record(
                out,
                &mut comp,
                rec.name.as_wire(),
                rec.class,
                rec.ttl,
                &rec.rdata,
            );
        }
        if let Some(edns) = &self.edns {
            edns.emit(out);
        }
    }

    /// Upper bound of the emitted size (names uncompressed).
    pub fn buffer_len(&self) -> usize {
        let rec_len = |r: &Record| r.name.as_wire().len() + 10 + r.rdata.max_wire_len();
        HEADER_LEN
            + self
                .questions
                .iter()
                .map(|q| q.name.as_wire().len() + 4)
                .sum::<usize>()
            + self
                .answers
                .iter()
                .chain(&self.authority)
                .chain(&self.additional)
                .map(rec_len)
                .sum::<usize>()
            + self
                .edns
                .as_ref()
                .map_or(0, |e| Edns::BASE_LEN + e.options.len())
    }
}

/// Appends one record with compression; returns nothing, the caller checks sizes.
pub(crate) fn emit_record(
    out: &mut Vec<u8>,
    comp: &mut Compressor,
    owner: &[u8],
    class: Class,
    ttl: u32,
    rdata: &RData,
) {
    comp.write_name(out, owner, true);
    out.extend_from_slice(&rdata.rtype().0.to_be_bytes());
    out.extend_from_slice(&class.0.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    rdata.emit(out, comp);
    let rdlen = u16::try_from(out.len() - len_at - 2).unwrap_or(u16::MAX);
    out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

/// Name-compression map for one message being emitted (RFC 1035 §4.1.4).
///
/// Remembers where names were written (up to [`Compressor::CAPACITY`] label
/// positions, fixed storage, no allocation) and replaces the longest known
/// suffix of each new name with a pointer.
pub struct Compressor {
    base: usize,
    offsets: [u16; Self::CAPACITY],
    len: usize,
}

impl Compressor {
    /// Label positions remembered per message.
    pub const CAPACITY: usize = 128;

    /// A map for a message that starts at byte `base` of the output buffer.
    pub fn new(base: usize) -> Self {
        Compressor {
            base,
            offsets: [0; Self::CAPACITY],
            len: 0,
        }
    }

    /// Forgets positions at or after `mark` (an absolute buffer length), for rollback.
    pub fn truncate(&mut self, mark: usize) {
        let rel = mark.saturating_sub(self.base);
        while self.len > 0 && usize::from(self.offsets[self.len - 1]) >= rel {
            self.len -= 1;
        }
    }

    /// Records that an uncompressed name `wire` was already written at `at`
    /// (an absolute buffer position), e.g. a question copied from the query.
    pub fn remember(&mut self, at: usize, wire: &[u8]) {
        let mut pos = at;
        let mut rest = wire;
        while let Some(p) = name::parent(rest) {
            self.push(pos);
            pos += rest.len() - p.len();
            rest = p;
        }
    }

    fn push(&mut self, abs: usize) {
        let rel = abs - self.base;
        if rel <= MAX_POINTER_OFFSET && self.len < Self::CAPACITY {
            self.offsets[self.len] = rel as u16;
            self.len += 1;
        }
    }

    /// Writes `wire` (uncompressed form), using and extending the map when `compress`.
    pub fn write_name(&mut self, out: &mut Vec<u8>, wire: &[u8], compress: bool) {
        if !compress {
            out.extend_from_slice(wire);
            return;
        }
        let mut rest = wire;
        loop {
            if rest.len() <= 1 {
                out.push(0);
                return;
            }
            if let Some(target) = self.find(out, rest) {
                out.extend_from_slice(&(0xc000 | target).to_be_bytes());
                return;
            }
            let here = out.len();
            let label_len = usize::from(rest[0]);
            out.extend_from_slice(&rest[..=label_len]);
            self.push(here);
            rest = &rest[1 + label_len..];
        }
    }

    fn find(&self, out: &[u8], suffix: &[u8]) -> Option<u16> {
        let msg = out.get(self.base..)?;
        self.offsets[..self.len]
            .iter()
            .copied()
            .find(|&off| matches_at(msg, usize::from(off), suffix))
    }
}

/// True when the (possibly compressed) name at `off` in `msg` equals `suffix`.
fn matches_at(msg: &[u8], mut off: usize, mut suffix: &[u8]) -> bool {
    let mut hops = 0;
    loop {
        let Some(&len) = msg.get(off) else {
            return false;
        };
        if len & 0xc0 == 0xc0 {
            let Some(&low) = msg.get(off + 1) else {
                return false;
            };
            hops += 1;
            if hops > name::MAX_POINTER_HOPS {
                return false;
            }
            off = (usize::from(len & 0x3f) << 8) | usize::from(low);
            continue;
        }
        let l = usize::from(len);
        let Some(label) = msg.get(off..off + 1 + l) else {
            return false;
        };
        let Some(want) = suffix.get(..1 + l) else {
            return false;
        };
        if !label.eq_ignore_ascii_case(want) {
            return false;
        }
        if l == 0 {
            return true;
        }
        off += 1 + l;
        suffix = &suffix[1 + l..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdata::Soa;
    use core::net::Ipv4Addr;

    fn n(s: &str) -> Name {
        Name::parse_text(s, None).unwrap()
    }

    fn sample() -> Message {
        Message {
            id: 0xbeef,
            flags: Flags(Flags::QR | Flags::AA | Flags::RD),
            questions: alloc::vec![Question {
                name: n("www.Example.org."),
                qtype: Rtype::A,
                qclass: Class::IN,
            }],
            answers: alloc::vec![
                Record {
                    name: n("www.example.org."),
                    class: Class::IN,
                    ttl: 300,
                    rdata: RData::Cname(n("web.example.org.")),
                },
                Record {
                    name: n("web.example.org."),
                    class: Class::IN,
                    ttl: 60,
                    rdata: RData::A(Ipv4Addr::new(192, 0, 2, 1)),
                },
            ],
            authority: alloc::vec![Record {
                name: n("example.org."),
                class: Class::IN,
                ttl: 3600,
                rdata: RData::Soa(Soa {
                    mname: n("ns1.example.org."),
                    rname: n("hostmaster.example.org."),
                    serial: 1,
                    refresh: 2,
                    retry: 3,
                    expire: 4,
                    minimum: 5,
                }),
            }],
            additional: alloc::vec![],
            edns: Some(Edns {
                udp_payload_size: 1232,
                ext_rcode: 0,
                version: 0,
                dnssec_ok: true,
                options: alloc::vec![0, 10, 0, 2, 1, 2],
            }),
        }
    }

    #[test]
    fn round_trip_with_compression() {
        let m = sample();
        let mut out = Vec::new();
        m.emit(&mut out);
        assert!(out.len() < m.buffer_len(), "compression saved nothing");
        let back = Message::parse(&out).unwrap();
        assert_eq!(back, m);
        // The answer owner is a pointer to the question name.
        let q_end = HEADER_LEN + n("www.example.org.").as_wire().len() + 4;
        assert_eq!(&out[q_end..q_end + 2], &[0xc0, 12]);
    }

    #[test]
    fn header_view() {
        let mut buf = [0u8; 12];
        let mut h = Header::new_checked(&mut buf[..]).unwrap();
        h.set_id(7);
        h.set_flags(Flags(Flags::QR | Flags::TC | 3));
        h.set_qdcount(1);
        assert_eq!(h.id(), 7);
        assert!(h.flags().has(Flags::TC));
        assert_eq!(h.flags().rcode(), 3);
        assert_eq!(h.qdcount(), 1);
        assert!(matches!(
            Header::new_checked(&buf[..11]),
            Err(WireError::ShortHeader(11))
        ));
    }

    #[test]
    fn rejects_bad_opt_and_truncation() {
        let mut out = Vec::new();
        let mut m = sample();
        m.emit(&mut out);
        for cut in 0..out.len() {
            assert!(Message::parse(&out[..cut]).is_err(), "cut at {cut}");
        }
        // OPT in the answer section.
        m.answers.clear();
        m.authority.clear();
        let mut out = Vec::new();
        m.emit(&mut out);
        out[6..8].copy_from_slice(&[0, 1]);
        out[10..12].copy_from_slice(&[0, 0]);
        assert!(matches!(Message::parse(&out), Err(WireError::BadOpt(_))));
    }

    #[test]
    fn extended_rcode() {
        let mut m = sample();
        m.flags.set_rcode(Rcode(0));
        m.edns.as_mut().unwrap().ext_rcode = 1;
        assert_eq!(m.rcode(), Rcode::BADVERS);
    }

    #[test]
    fn compressor_rollback() {
        let mut out = alloc::vec![0u8; HEADER_LEN];
        let mut c = Compressor::new(0);
        c.write_name(&mut out, n("a.example.").as_wire(), true);
        let mark = out.len();
        c.write_name(&mut out, n("b.test.").as_wire(), true);
        out.truncate(mark);
        c.truncate(mark);
        c.write_name(&mut out, n("c.test.").as_wire(), true);
        // "test." was forgotten, so it is written in full again.
        assert_eq!(&out[mark..], n("c.test.").as_wire());
        let before = out.len();
        c.write_name(&mut out, n("EXAMPLE.").as_wire(), true);
        assert_eq!(out.len() - before, 2);
    }
}
