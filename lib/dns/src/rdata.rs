//! Typed RDATA for the record types we serve (A, AAAA, NS, CNAME, SOA, MX, TXT, SRV,
//! PTR, CAA) and opaque RDATA for every other type (RFC 3597): wire parse, wire
//! emit with compression where RFC 3597 §4 allows it, and master-file text output.

use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::name::Name;
use crate::wire::{Compressor, Reader, Rtype, WireError};

/// SOA RDATA (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server.
    pub mname: Name,
    /// Responsible mailbox.
    pub rname: Name,
    /// Serial number.
    pub serial: u32,
    /// Refresh interval.
    pub refresh: u32,
    /// Retry interval.
    pub retry: u32,
    /// Expiry.
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    pub minimum: u32,
}

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Name server.
    Ns(Name),
    /// Alias target.
    Cname(Name),
    /// Reverse pointer.
    Ptr(Name),
    /// Start of authority.
    Soa(Soa),
    /// Mail exchange.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// Mail host.
        exchange: Name,
    },
    /// One or more character-strings, kept in wire form (length byte + bytes)*.
    Txt(Vec<u8>),
    /// Service locator (RFC 2782).
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host; never compressed.
        target: Name,
    },
    /// Certification authority authorization (RFC 8659).
    Caa {
        /// Flags (bit 0x80 = critical).
        flags: u8,
        /// Property tag, 1..=15 alphanumerics.
        tag: Vec<u8>,
        /// Property value.
        value: Vec<u8>,
    },
    /// Any other type, kept as opaque bytes (RFC 3597).
    Unknown {
        /// The record type.
        rtype: Rtype,
        /// Raw RDATA.
        data: Vec<u8>,
    },
}

impl RData {
    /// The record type this data belongs to.
    pub fn rtype(&self) -> Rtype {
        match self {
            RData::A(_) => Rtype::A,
            RData::Aaaa(_) => Rtype::AAAA,
            RData::Ns(_) => Rtype::NS,
            RData::Cname(_) => Rtype::CNAME,
            RData::Ptr(_) => Rtype::PTR,
            RData::Soa(_) => Rtype::SOA,
            RData::Mx { .. } => Rtype::MX,
            RData::Txt(_) => Rtype::TXT,
            RData::Srv { .. } => Rtype::SRV,
            RData::Caa { .. } => Rtype::CAA,
            RData::Unknown { rtype, .. } => *rtype,
        }
    }

    /// Parses `len` bytes of RDATA at `offset` in `msg` (names may point into `msg`).
    pub fn parse(rtype: Rtype, msg: &[u8], offset: usize, len: usize) -> Result<RData, WireError> {
        let end = offset + len;
        let data = msg.get(offset..end).ok_or(WireError::Truncated(offset))?;
        let bad = |reason| WireError::BadRdata { rtype, reason };
        let mut r = Reader { msg, pos: offset };
        let rdata = match rtype {
            Rtype::A => {
                let b: [u8; 4] = data.try_into().map_err(|_| bad("A needs 4 bytes"))?;
                r.pos = end;
                RData::A(Ipv4Addr::from(b))
            }
            Rtype::AAAA => {
                let b: [u8; 16] = data.try_into().map_err(|_| bad("AAAA needs 16 bytes"))?;
                r.pos = end;
                RData::Aaaa(Ipv6Addr::from(b))
            }
            Rtype::NS => RData::Ns(r.name()?),
            Rtype::CNAME => RData::Cname(r.name()?),
            Rtype::PTR => RData::Ptr(r.name()?),
            Rtype::SOA => RData::Soa(Soa {
                mname: r.name()?,
                rname: r.name()?,
                serial: r.u32()?,
                refresh: r.u32()?,
                retry: r.u32()?,
                expire: r.u32()?,
                minimum: r.u32()?,
            }),
            Rtype::MX => RData::Mx {
                preference: r.u16()?,
                exchange: r.name()?,
            },
            Rtype::TXT => {
                if !txt_valid(data) {
                    return Err(bad("character-string overruns RDATA"));
                }
                r.pos = end;
                RData::Txt(data.to_vec())
            }
            Rtype::SRV => RData::Srv {
                priority: r.u16()?,
                weight: r.u16()?,
                port: r.u16()?,
                target: r.name()?,
            },
            Rtype::CAA => {
                let (&flags, rest) = data.split_first().ok_or(bad("CAA needs flags"))?;
                let (&tag_len, rest) = rest.split_first().ok_or(bad("CAA needs a tag"))?;
                let tag_len = usize::from(tag_len);
                if tag_len == 0 || rest.len() < tag_len {
                    return Err(bad("CAA tag length out of range"));
                }
                r.pos = end;
                RData::Caa {
                    flags,
                    tag: rest[..tag_len].to_vec(),
                    value: rest[tag_len..].to_vec(),
                }
            }
            Rtype::OPT => return Err(bad("OPT is only valid in the additional section")),
            _ => {
                r.pos = end;
                RData::Unknown {
                    rtype,
                    data: data.to_vec(),
                }
            }
        };
        if r.pos != end {
            return Err(bad("RDATA length does not match its contents"));
        }
        Ok(rdata)
    }

    /// Appends the RDATA (without RDLENGTH). NS, CNAME, PTR, SOA and MX names are
    /// compressed (RFC 3597 §4); SRV targets and unknown types never are.
    pub fn emit(&self, out: &mut Vec<u8>, comp: &mut Compressor) {
        match self {
            RData::A(a) => out.extend_from_slice(&a.octets()),
            RData::Aaaa(a) => out.extend_from_slice(&a.octets()),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => {
                comp.write_name(out, n.as_wire(), true)
            }
            RData::Soa(s) => {
                comp.write_name(out, s.mname.as_wire(), true);
                comp.write_name(out, s.rname.as_wire(), true);
                for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            RData::Mx {
                preference,
                exchange,
            } => {
                out.extend_from_slice(&preference.to_be_bytes());
                comp.write_name(out, exchange.as_wire(), true);
            }
            RData::Txt(t) => out.extend_from_slice(t),
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                for v in [priority, weight, port] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                comp.write_name(out, target.as_wire(), false);
            }
            RData::Caa { flags, tag, value } => {
                out.push(*flags);
                out.push(tag.len() as u8);
                out.extend_from_slice(tag);
                out.extend_from_slice(value);
            }
            RData::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }

    /// Size of the RDATA with no compression.
    pub fn max_wire_len(&self) -> usize {
        match self {
            RData::A(_) => 4,
            RData::Aaaa(_) => 16,
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => n.as_wire().len(),
            RData::Soa(s) => s.mname.as_wire().len() + s.rname.as_wire().len() + 20,
            RData::Mx { exchange, .. } => 2 + exchange.as_wire().len(),
            RData::Txt(t) => t.len(),
            RData::Srv { target, .. } => 6 + target.as_wire().len(),
            RData::Caa { tag, value, .. } => 2 + tag.len() + value.len(),
            RData::Unknown { data, .. } => data.len(),
        }
    }

    /// The single domain name an NS, MX or SRV record points at, for additional data.
    pub(crate) fn target_name(&self) -> Option<&Name> {
        match self {
            RData::Ns(n) => Some(n),
            RData::Mx { exchange, .. } => Some(exchange),
            RData::Srv { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// True when `data` is a non-empty sequence of complete character-strings.
pub(crate) fn txt_valid(data: &[u8]) -> bool {
    let mut rest = data;
    if rest.is_empty() {
        return false;
    }
    while let Some((&len, tail)) = rest.split_first() {
        match tail.get(usize::from(len)..) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    true
}

fn write_char_string(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("\"")?;
    for &b in bytes {
        match b {
            b'"' | b'\\' => write!(f, "\\{}", char::from(b))?,
            0x20..=0x7e => write!(f, "{}", char::from(b))?,
            _ => write!(f, "\\{b:03}")?,
        }
    }
    f.write_str("\"")
}

/// Master-file presentation of the RDATA.
impl fmt::Display for RData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RData::A(a) => write!(f, "{a}"),
            RData::Aaaa(a) => write!(f, "{a}"),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => write!(f, "{n}"),
            RData::Soa(s) => write!(
                f,
                "{} {} {} {} {} {} {}",
                s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
            ),
            RData::Mx {
                preference,
                exchange,
            } => write!(f, "{preference} {exchange}"),
            RData::Txt(t) => {
                let mut rest: &[u8] = t;
                let mut first = true;
                while let Some((&len, tail)) = rest.split_first() {
                    let s = tail.get(..usize::from(len)).unwrap_or(tail);
                    if !first {
                        f.write_str(" ")?;
                    }
                    first = false;
                    write_char_string(s, f)?;
                    rest = tail.get(usize::from(len)..).unwrap_or(&[]);
                }
                Ok(())
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "{priority} {weight} {port} {target}"),
            RData::Caa { flags, tag, value } => {
                write!(f, "{flags} ")?;
                for &b in tag {
                    write!(f, "{}", char::from(b))?;
                }
                f.write_str(" ")?;
                write_char_string(value, f)
            }
            RData::Unknown { data, .. } => {
                write!(f, "\\# {}", data.len())?;
                if !data.is_empty() {
                    f.write_str(" ")?;
                }
                for b in data {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn n(s: &str) -> Name {
        Name::parse_text(s, None).unwrap()
    }

    fn round_trip(rd: RData) {
        let mut out = alloc::vec![0u8; 12];
        let mut comp = Compressor::new(0);
        rd.emit(&mut out, &mut comp);
        let len = out.len() - 12;
        assert_eq!(RData::parse(rd.rtype(), &out, 12, len).unwrap(), rd);
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(RData::A(Ipv4Addr::new(192, 0, 2, 1)));
        round_trip(RData::Aaaa("2001:db8::1".parse().unwrap()));
        round_trip(RData::Ns(n("ns1.example.")));
        round_trip(RData::Cname(n("x.example.")));
        round_trip(RData::Ptr(n("host.example.")));
        round_trip(RData::Soa(Soa {
            mname: n("ns.example."),
            rname: n("admin.example."),
            serial: 2024010101,
            refresh: 7200,
            retry: 3600,
            expire: 1209600,
            minimum: 300,
        }));
        round_trip(RData::Mx {
            preference: 10,
            exchange: n("mail.example."),
        });
        round_trip(RData::Txt(alloc::vec![2, b'h', b'i', 0]));
        round_trip(RData::Srv {
            priority: 1,
            weight: 2,
            port: 443,
            target: n("svc.example."),
        });
        round_trip(RData::Caa {
            flags: 128,
            tag: b"issue".to_vec(),
            value: b"ca.example".to_vec(),
        });
        round_trip(RData::Unknown {
            rtype: Rtype(65280),
            data: alloc::vec![1, 2, 3],
        });
    }

    #[test]
    fn rejects_bad_lengths() {
        let msg = [0u8; 40];
        assert!(RData::parse(Rtype::A, &msg, 12, 3).is_err());
        assert!(RData::parse(Rtype::AAAA, &msg, 12, 4).is_err());
        assert!(
            RData::parse(
                Rtype::TXT,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, b'a'],
                12,
                2
            )
            .is_err()
        );
        assert!(RData::parse(Rtype::TXT, &msg, 12, 0).is_err());
        // NS whose name is shorter than RDLENGTH.
        assert!(RData::parse(Rtype::NS, &msg, 12, 2).is_err());
        assert!(RData::parse(Rtype::CAA, &msg, 12, 2).is_err());
        assert!(RData::parse(Rtype::A, &msg, 38, 4).is_err());
    }

    #[test]
    fn presentation() {
        assert_eq!(
            RData::Txt(alloc::vec![3, b'a', b'"', 0xff, 1, b'b']).to_string(),
            "\"a\\\"\\255\" \"b\""
        );
        assert_eq!(
            RData::Unknown {
                rtype: Rtype(99),
                data: alloc::vec![0xab, 0x01]
            }
            .to_string(),
            "\\# 2 ab01"
        );
    }
}
