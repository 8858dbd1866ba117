//! Master-file (zone file) parser, RFC 1035 §5 with RFC 2308 `$TTL` and RFC 3597
//! `\#` generic RDATA, working on a `&str` (no filesystem, so no `$INCLUDE`).
//!
//! Supported: `$ORIGIN`, `$TTL`, `@`, relative names, omitted owner / TTL / class
//! (TTL and class in either order), parentheses across lines, `;` comments, quoted
//! strings with `\"` and `\DDD` escapes, BIND-style TTL units (`1h30m`), `TYPEnnn`.
//! Every error names the file and line.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::name::{self, Name, NameError};
use crate::rdata::{RData, Soa};
use crate::wire::{Class, Record, Rtype};

/// Largest TTL (RFC 2181 §8).
pub const MAX_TTL: u32 = 0x7fff_ffff;

/// A zone file error, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ZoneError {
    /// The file name given to the parser.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What went wrong.
    pub kind: ZoneErrorKind,
}

/// What went wrong in a zone file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneErrorKind {
    /// A `(` was never closed.
    #[error("'(' opened here is never closed")]
    UnclosedParen,
    /// A `)` without a matching `(`.
    #[error("')' without a matching '('")]
    UnexpectedCloseParen,
    /// A quoted string ran to the end of the line.
    #[error("quoted string is not closed on this line")]
    UnterminatedQuote,
    /// A `$` directive we do not know.
    #[error("unknown directive {0:?}")]
    UnknownDirective(String),
    /// `$INCLUDE` / `$GENERATE`: there is no filesystem to read from.
    #[error("directive {0} is not supported")]
    UnsupportedDirective(String),
    /// A directive with the wrong number of arguments.
    #[error("{0} needs exactly one argument")]
    DirectiveArgs(&'static str),
    /// The first record has no owner.
    #[error("record has no owner name and there is no previous owner")]
    MissingOwner,
    /// A domain name was malformed.
    #[error("bad domain name {text:?}: {source}")]
    BadName {
        /// The text as written.
        text: String,
        /// Why it is bad.
        source: NameError,
    },
    /// A TTL or timer was malformed.
    #[error("bad TTL {0:?} (expected 0..={MAX_TTL}, optionally with s/m/h/d/w units)")]
    BadTtl(String),
    /// No TTL given and no `$TTL` or earlier TTL to default to.
    #[error("record has no TTL and no $TTL is set")]
    NoTtl,
    /// A class other than IN.
    #[error("class {0} is not supported; zones are class IN")]
    UnsupportedClass(String),
    /// A type mnemonic we cannot parse in text form.
    #[error("unknown record type {0:?} (write TYPEnnn with \\# generic RDATA)")]
    UnknownType(String),
    /// An owner (and maybe TTL/class) with no type.
    #[error("record has no type")]
    MissingType,
    /// RDATA that does not fit its type.
    #[error("bad {rtype} RDATA: {reason}")]
    BadRdata {
        /// The record type.
        rtype: Rtype,
        /// What was wrong.
        reason: String,
    },
    /// An owner outside the zone.
    #[error("owner {owner} is outside the zone {origin}")]
    OutOfZone {
        /// The record's owner.
        owner: Name,
        /// The zone apex.
        origin: Name,
    },
    /// No SOA record at the apex.
    #[error("zone {0} has no SOA record")]
    MissingSoa(Name),
    /// An SOA below the apex.
    #[error("SOA record at {0}, which is not the zone apex")]
    SoaNotAtApex(Name),
    /// Two different SOA records.
    #[error("second SOA record for {0}")]
    MultipleSoa(Name),
    /// A CNAME sharing its owner with other data (RFC 1034 §3.6.2).
    #[error("{0} has a CNAME and other data")]
    CnameAndOtherData(Name),
    /// Two CNAME records at one owner.
    #[error("{0} has more than one CNAME record")]
    MultipleCnames(Name),
}

/// A parsed zone: its apex and records (class IN, duplicates removed), in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The zone apex.
    pub origin: Name,
    /// All records, in the order they appear.
    pub records: Vec<Record>,
}

impl Zone {
    /// Parses zone file `text` (named `file` in errors) for the zone at `origin`.
    /// `origin` is also the initial `$ORIGIN`.
    pub fn parse(file: &str, text: &str, origin: &Name) -> Result<Zone, ZoneError> {
        let err = |line, kind| ZoneError {
            file: file.into(),
            line,
            kind,
        };
        let entries = tokenize(text).map_err(|(line, kind)| err(line, kind))?;
        let mut p = Parser {
            origin: origin.clone(),
            default_ttl: None,
            last_ttl: None,
            last_owner: None,
        };
        let mut records: Vec<(Record, usize)> = Vec::new();
        for entry in &entries {
            if let Some(rec) = p.entry(entry).map_err(|(line, kind)| err(line, kind))? {
                if !rec.0.name.is_subdomain_of(origin) {
                    return Err(err(
                        rec.1,
                        ZoneErrorKind::OutOfZone {
                            owner: rec.0.name,
                            origin: origin.clone(),
                        },
                    ));
                }
                records.push(rec);
            }
        }
        let records = dedup(records);
        check(&records, origin).map_err(|(line, kind)| err(line, kind))?;
        Ok(Zone {
            origin: origin.clone(),
            records: records.into_iter().map(|(r, _)| r).collect(),
        })
    }

    /// The zone's SOA record data.
    pub fn soa(&self) -> Option<&Soa> {
        self.records.iter().find_map(|r| match &r.rdata {
            RData::Soa(s) if r.name == self.origin => Some(s),
            _ => None,
        })
    }
}

type Failure = (usize, ZoneErrorKind);

/// Indices of `records` grouped by owner name (file order inside a group).
fn by_owner(records: &[(Record, usize)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..records.len()).collect();
    idx.sort_by(|&a, &b| records[a].0.name.cmp(&records[b].0.name).then(a.cmp(&b)));
    idx
}

/// RFC 2181 §5: identical records collapse into one (the first is kept).
fn dedup(records: Vec<(Record, usize)>) -> Vec<(Record, usize)> {
    let idx = by_owner(&records);
    let mut keep = alloc::vec![true; records.len()];
    let mut group_start = 0;
    for k in 0..idx.len() {
        if records[idx[k]].0.name != records[idx[group_start]].0.name {
            group_start = k;
        }
        let (r, _) = &records[idx[k]];
        if idx[group_start..k]
            .iter()
            .any(|&j| keep[j] && records[j].0.rdata == r.rdata)
        {
            keep[idx[k]] = false;
        }
    }
    records
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

fn check(records: &[(Record, usize)], origin: &Name) -> Result<(), Failure> {
    let mut soa_seen = false;
    for (rec, line) in records {
        if rec.rtype() == Rtype::SOA {
            if rec.name != *origin {
                return Err((*line, ZoneErrorKind::SoaNotAtApex(rec.name.clone())));
            }
            if soa_seen {
                return Err((*line, ZoneErrorKind::MultipleSoa(rec.name.clone())));
            }
            soa_seen = true;
        }
    }
    // RFC 1034 §3.6.2: a CNAME owner has no other data. Report the later line.
    let idx = by_owner(records);
    let mut worst: Option<Failure> = None;
    let mut group_start = 0;
    for k in 0..idx.len() {
        if records[idx[k]].0.name != records[idx[group_start]].0.name {
            group_start = k;
        }
        let (rec, line) = &records[idx[k]];
        for &j in &idx[group_start..k] {
            let other = &records[j].0;
            let kind = match (other.rtype() == Rtype::CNAME, rec.rtype() == Rtype::CNAME) {
                (true, true) => ZoneErrorKind::MultipleCnames(rec.name.clone()),
                (true, false) | (false, true) => ZoneErrorKind::CnameAndOtherData(rec.name.clone()),
                (false, false) => continue,
            };
            // Report the conflict that appears first in the file.
            if worst.as_ref().is_none_or(|(l, _)| line < l) {
                worst = Some((*line, kind));
            }
            break;
        }
    }
    if let Some(f) = worst {
        return Err(f);
    }
    if !soa_seen {
        let line = records.last().map_or(1, |(_, l)| *l);
        return Err((line, ZoneErrorKind::MissingSoa(origin.clone())));
    }
    Ok(())
}

/// One token: raw text (escapes kept), whether it was quoted, and its line.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

/// One logical entry (a line, or several joined by parentheses).
#[derive(Debug)]
struct Entry {
    line: usize,
    /// The entry began with whitespace: the owner is omitted.
    blank_owner: bool,
    tokens: Vec<Token>,
}

fn tokenize(text: &str) -> Result<Vec<Entry>, Failure> {
    let mut entries = Vec::new();
    let mut line = 1usize;
    let mut depth = 0usize;
    let mut paren_line = 0usize;
    let mut cur = Entry {
        line: 1,
        blank_owner: false,
        tokens: Vec::new(),
    };
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if at_line_start && depth == 0 {
            cur.line = line;
            cur.blank_owner = c == ' ' || c == '\t';
        }
        at_line_start = false;
        match c {
            '\n' => {
                line += 1;
                at_line_start = true;
                if depth == 0 && !cur.tokens.is_empty() {
                    entries.push(core::mem::replace(
                        &mut cur,
                        Entry {
                            line,
                            blank_owner: false,
                            tokens: Vec::new(),
                        },
                    ));
                }
            }
            ' ' | '\t' | '\r' => {}
            ';' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '(' => {
                if depth == 0 {
                    paren_line = line;
                }
                depth += 1;
            }
            ')' => {
                if depth == 0 {
                    return Err((line, ZoneErrorKind::UnexpectedCloseParen));
                }
                depth -= 1;
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => return Err((line, ZoneErrorKind::UnterminatedQuote)),
                        Some('"') => break,
                        Some('\\') => {
                            s.push('\\');
                            match chars.next() {
                                None | Some('\n') => {
                                    return Err((line, ZoneErrorKind::UnterminatedQuote));
                                }
                                Some(e) => s.push(e),
                            }
                        }
                        Some(o) => s.push(o),
                    }
                }
                cur.tokens.push(Token {
                    text: s,
                    quoted: true,
                    line,
                });
            }
            _ => {
                let mut s = String::new();
                let mut c = c;
                loop {
                    s.push(c);
                    if c == '\\'
                        && let Some(&e) = chars.peek()
                        && e != '\n'
                    {
                        s.push(e);
                        chars.next();
                    }
                    match chars.peek() {
                        Some(&n)
                            if !matches!(n, ' ' | '\t' | '\r' | '\n' | ';' | '(' | ')' | '"') =>
                        {
                            c = n;
                            chars.next();
                        }
                        _ => break,
                    }
                }
                cur.tokens.push(Token {
                    text: s,
                    quoted: false,
                    line,
                });
            }
        }
    }
    if depth > 0 {
        return Err((paren_line, ZoneErrorKind::UnclosedParen));
    }
    if !cur.tokens.is_empty() {
        entries.push(cur);
    }
    Ok(entries)
}

struct Parser {
    origin: Name,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

impl Parser {
    fn name(&self, tok: &Token) -> Result<Name, Failure> {
        Name::parse_text(&tok.text, Some(&self.origin)).map_err(|source| {
            (
                tok.line,
                ZoneErrorKind::BadName {
                    text: tok.text.clone(),
                    source,
                },
            )
        })
    }

    fn entry(&mut self, e: &Entry) -> Result<Option<(Record, usize)>, Failure> {
        let mut toks = e.tokens.iter().peekable();
        let Some(first) = toks.peek() else {
            return Ok(None);
        };
        if !e.blank_owner && !first.quoted && first.text.starts_with('$') {
            let directive = first.text.to_ascii_uppercase();
            let args: Vec<&Token> = e.tokens.iter().skip(1).collect();
            match directive.as_str() {
                "$ORIGIN" => {
                    let [arg] = args[..] else {
                        return Err((e.line, ZoneErrorKind::DirectiveArgs("$ORIGIN")));
                    };
                    self.origin = self.name(arg)?;
                }
                "$TTL" => {
                    let [arg] = args[..] else {
                        return Err((e.line, ZoneErrorKind::DirectiveArgs("$TTL")));
                    };
                    self.default_ttl = Some(
                        parse_ttl(&arg.text)
                            .ok_or_else(|| (arg.line, ZoneErrorKind::BadTtl(arg.text.clone())))?,
                    );
                }
                "$INCLUDE" | "$GENERATE" => {
                    return Err((e.line, ZoneErrorKind::UnsupportedDirective(directive)));
                }
                _ => return Err((e.line, ZoneErrorKind::UnknownDirective(first.text.clone()))),
            }
            return Ok(None);
        }
        let owner = if e.blank_owner {
            self.last_owner
                .clone()
                .ok_or((e.line, ZoneErrorKind::MissingOwner))?
        } else {
            let tok = toks.next().ok_or((e.line, ZoneErrorKind::MissingOwner))?;
            self.name(tok)?
        };
        self.last_owner = Some(owner.clone());
        let mut ttl = None;
        let mut class_seen = false;
        let rtype = loop {
            let tok = toks.next().ok_or((e.line, ZoneErrorKind::MissingType))?;
            let upper = tok.text.to_ascii_uppercase();
            if ttl.is_none() && upper.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(
                    parse_ttl(&tok.text)
                        .ok_or_else(|| (tok.line, ZoneErrorKind::BadTtl(tok.text.clone())))?,
                );
                continue;
            }
            if !class_seen && let Some(class) = parse_class(&upper) {
                if class != Class::IN {
                    return Err((tok.line, ZoneErrorKind::UnsupportedClass(tok.text.clone())));
                }
                class_seen = true;
                continue;
            }
            break parse_type(&upper)
                .ok_or_else(|| (tok.line, ZoneErrorKind::UnknownType(tok.text.clone())))?;
        };
        let ttl = match ttl {
            Some(t) => {
                self.last_ttl = Some(t);
                t
            }
            None => self
                .default_ttl
                .or(self.last_ttl)
                .ok_or((e.line, ZoneErrorKind::NoTtl))?,
        };
        let rest: Vec<&Token> = toks.collect();
        let rdata = self.rdata(rtype, &rest, e.line)?;
        Ok(Some((
            Record {
                name: owner,
                class: Class::IN,
                ttl,
                rdata,
            },
            e.line,
        )))
    }

    fn rdata(&self, rtype: Rtype, toks: &[&Token], line: usize) -> Result<RData, Failure> {
        let bad = |line, reason: &str| {
            (
                line,
                ZoneErrorKind::BadRdata {
                    rtype,
                    reason: reason.into(),
                },
            )
        };
        if let Some(first) = toks.first()
            && !first.quoted
            && first.text == "\\#"
        {
            return generic(rtype, &toks[1..], line).map_err(|r| bad(line, &r));
        }
        let want = |n: usize| -> Result<(), Failure> {
            if toks.len() == n {
                Ok(())
            } else {
                Err(bad(
                    toks.get(n).map_or(line, |t| t.line),
                    &alloc::format!("expected {n} fields, found {}", toks.len()),
                ))
            }
        };
        let num = |t: &Token| -> Result<u16, Failure> {
            t.text.parse::<u16>().map_err(|_| {
                bad(
                    t.line,
                    &alloc::format!("{:?} is not a number 0..=65535", t.text),
                )
            })
        };
        Ok(match rtype {
            Rtype::A => {
                want(1)?;
                RData::A(toks[0].text.parse::<Ipv4Addr>().map_err(|_| {
                    bad(
                        toks[0].line,
                        &alloc::format!("{:?} is not an IPv4 address", toks[0].text),
                    )
                })?)
            }
            Rtype::AAAA => {
                want(1)?;
                RData::Aaaa(toks[0].text.parse::<Ipv6Addr>().map_err(|_| {
                    bad(
                        toks[0].line,
                        &alloc::format!("{:?} is not an IPv6 address", toks[0].text),
                    )
                })?)
            }
            Rtype::NS => {
                want(1)?;
                RData::Ns(self.name(toks[0])?)
            }
            Rtype::CNAME => {
                want(1)?;
                RData::Cname(self.name(toks[0])?)
            }
            Rtype::PTR => {
                want(1)?;
                RData::Ptr(self.name(toks[0])?)
            }
            Rtype::MX => {
                want(2)?;
                RData::Mx {
                    preference: num(toks[0])?,
                    exchange: self.name(toks[1])?,
                }
            }
            Rtype::SRV => {
                want(4)?;
                RData::Srv {
                    priority: num(toks[0])?,
                    weight: num(toks[1])?,
                    port: num(toks[2])?,
                    target: self.name(toks[3])?,
                }
            }
            Rtype::SOA => {
                want(7)?;
                let serial = toks[2].text.parse::<u32>().map_err(|_| {
                    bad(
                        toks[2].line,
                        &alloc::format!("serial {:?} is not a 32-bit number", toks[2].text),
                    )
                })?;
                let mut timers = [0u32; 4];
                for (slot, t) in timers.iter_mut().zip(&toks[3..]) {
                    *slot = parse_ttl(&t.text)
                        .ok_or_else(|| (t.line, ZoneErrorKind::BadTtl(t.text.clone())))?;
                }
                RData::Soa(Soa {
                    mname: self.name(toks[0])?,
                    rname: self.name(toks[1])?,
                    serial,
                    refresh: timers[0],
                    retry: timers[1],
                    expire: timers[2],
                    minimum: timers[3],
                })
            }
            Rtype::TXT => {
                if toks.is_empty() {
                    return Err(bad(line, "TXT needs at least one string"));
                }
                let mut data = Vec::new();
                for t in toks {
                    let s = unescape_string(&t.text).ok_or_else(|| bad(t.line, "bad escape"))?;
                    let len = u8::try_from(s.len()).map_err(|_| {
                        bad(
                            t.line,
                            &alloc::format!("string of {} bytes exceeds 255", s.len()),
                        )
                    })?;
                    data.push(len);
                    data.extend_from_slice(&s);
                }
                if data.len() > usize::from(u16::MAX) {
                    return Err(bad(line, "TXT RDATA exceeds 65535 bytes"));
                }
                RData::Txt(data)
            }
            Rtype::CAA => {
                want(3)?;
                let flags = toks[0].text.parse::<u8>().map_err(|_| {
                    bad(
                        toks[0].line,
                        &alloc::format!("flags {:?} are not a number 0..=255", toks[0].text),
                    )
                })?;
                let tag = toks[1].text.as_bytes();
                if tag.is_empty() || tag.len() > 15 || !tag.iter().all(u8::is_ascii_alphanumeric) {
                    return Err(bad(
                        toks[1].line,
                        &alloc::format!("tag {:?} must be 1-15 letters or digits", toks[1].text),
                    ));
                }
                let value = unescape_string(&toks[2].text)
                    .ok_or_else(|| bad(toks[2].line, "bad escape"))?;
                RData::Caa {
                    flags,
                    tag: tag.to_vec(),
                    value,
                }
            }
            _ => {
                return Err(bad(
                    line,
                    "this type can only be written in the generic \\# form",
                ));
            }
        })
    }
}

/// RFC 3597 §5: `\# LENGTH HEX...`; known types are converted to their typed form.
fn generic(rtype: Rtype, toks: &[&Token], _line: usize) -> Result<RData, String> {
    let (len_tok, hex) = toks.split_first().ok_or("\\# needs a length")?;
    let len: usize = len_tok
        .text
        .parse()
        .map_err(|_| alloc::format!("\\# length {:?} is not a number", len_tok.text))?;
    if len > usize::from(u16::MAX) {
        return Err(alloc::format!("\\# length {len} exceeds 65535"));
    }
    let mut data = Vec::with_capacity(len);
    for t in hex {
        let b = t.text.as_bytes();
        if b.len() % 2 != 0 {
            return Err(alloc::format!(
                "hex field {:?} has an odd number of digits",
                t.text
            ));
        }
        for pair in b.chunks(2) {
            let hi = hex_val(pair[0]).ok_or_else(|| alloc::format!("{:?} is not hex", t.text))?;
            let lo = hex_val(pair[1]).ok_or_else(|| alloc::format!("{:?} is not hex", t.text))?;
            data.push(hi << 4 | lo);
        }
    }
    if data.len() != len {
        return Err(alloc::format!(
            "\\# length {len} does not match {} bytes of data",
            data.len()
        ));
    }
    if rtype == Rtype::OPT {
        return Err("OPT cannot appear in a zone".to_string());
    }
    // Reuse the wire parser; a 12-byte dummy header keeps offsets honest and makes
    // any compression pointer in the data invalid.
    let mut msg = alloc::vec![0u8; crate::wire::HEADER_LEN];
    msg.extend_from_slice(&data);
    RData::parse(rtype, &msg, crate::wire::HEADER_LEN, len).map_err(|e| e.to_string())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `\X` and `\DDD` escapes in a character-string.
fn unescape_string(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let (v, used) = name::unescape(&b[i + 1..])?;
            out.push(v);
            i += 1 + used;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Parses `3600`, `1h`, `1h30m`, `2W` (BIND units), up to [`MAX_TTL`].
pub fn parse_ttl(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v: u64 = text.parse().ok()?;
        return u32::try_from(v).ok().filter(|&v| v <= MAX_TTL);
    }
    let mut total: u64 = 0;
    let mut cur: Option<u64> = None;
    for c in text.bytes() {
        if c.is_ascii_digit() {
            let v = cur
                .unwrap_or(0)
                .checked_mul(10)?
                .checked_add(u64::from(c - b'0'))?;
            if v > u64::from(MAX_TTL) {
                return None;
            }
            cur = Some(v);
        } else {
            let unit = match c.to_ascii_lowercase() {
                b's' => 1,
                b'm' => 60,
                b'h' => 3600,
                b'd' => 86400,
                b'w' => 604_800,
                _ => return None,
            };
            total += cur.take()? * unit;
            if total > u64::from(MAX_TTL) {
                return None;
            }
        }
    }
    if cur.is_some() {
        return None;
    }
    u32::try_from(total).ok()
}

fn parse_class(upper: &str) -> Option<Class> {
    match upper {
        "IN" => Some(Class::IN),
        "CH" => Some(Class::CH),
        "HS" => Some(Class::HS),
        _ => upper
            .strip_prefix("CLASS")
            .and_then(|n| n.parse::<u16>().ok())
            .map(Class),
    }
}

fn parse_type(upper: &str) -> Option<Rtype> {
    Some(match upper {
        "A" => Rtype::A,
        "AAAA" => Rtype::AAAA,
        "NS" => Rtype::NS,
        "CNAME" => Rtype::CNAME,
        "SOA" => Rtype::SOA,
        "MX" => Rtype::MX,
        "TXT" => Rtype::TXT,
        "SRV" => Rtype::SRV,
        "PTR" => Rtype::PTR,
        "CAA" => Rtype::CAA,
        _ => {
            let n = upper.strip_prefix("TYPE")?.parse::<u16>().ok()?;
            Rtype(n)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn origin() -> Name {
        Name::parse_text("example.org.", None).unwrap()
    }

    fn parse(text: &str) -> Result<Zone, ZoneError> {
        Zone::parse("test.zone", text, &origin())
    }

    const SOA: &str = "@ 3600 IN SOA ns1 hostmaster ( 1 7200 3600 1209600 300 )\n";

    #[test]
    fn full_example() {
        let text = alloc::format!(
            "$TTL 1h ; default\n{SOA}\
             \tIN NS ns1\n\
             \t   NS ns2.example.net.\n\
             ns1 IN 60 A 192.0.2.1\n\
             www CNAME @\n\
             txt TXT \"hello \\\"world\\\"\" plain \"\\065\\066\"\n\
             mx MX 10 mail\n\
             _sip._tcp SRV 1 2 5060 sip\n\
             v6 AAAA 2001:db8::1\n\
             caa CAA 0 issue \"ca.example\"\n\
             ptr PTR host.example.net.\n\
             $ORIGIN sub.example.org.\n\
             x A 192.0.2.9\n\
             unk TYPE65280 \\# 3 ab CD01\n\
             generic-a A \\# 4 c0000201\n"
        );
        let z = parse(&text).unwrap();
        assert_eq!(z.records.len(), 14);
        assert_eq!(z.soa().unwrap().minimum, 300);
        let find = |name: &str, t: Rtype| {
            let n = Name::parse_text(name, None).unwrap();
            z.records
                .iter()
                .find(|r| r.name == n && r.rtype() == t)
                .unwrap_or_else(|| panic!("{name} {t}"))
                .clone()
        };
        assert_eq!(find("ns1.example.org.", Rtype::A).ttl, 60);
        assert_eq!(find("example.org.", Rtype::NS).ttl, 3600);
        assert_eq!(
            find("txt.example.org.", Rtype::TXT).rdata.to_string(),
            "\"hello \\\"world\\\"\" \"plain\" \"AB\""
        );
        assert_eq!(
            find("x.sub.example.org.", Rtype::A).rdata.to_string(),
            "192.0.2.9"
        );
        assert_eq!(
            find("unk.sub.example.org.", Rtype(65280)).rdata.to_string(),
            "\\# 3 abcd01"
        );
        assert_eq!(
            find("generic-a.sub.example.org.", Rtype::A).rdata,
            RData::A(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(
            find("www.example.org.", Rtype::CNAME).rdata,
            RData::Cname(origin())
        );
    }

    fn kind(text: &str) -> (usize, ZoneErrorKind) {
        let e = parse(text).unwrap_err();
        (e.line, e.kind)
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse(&alloc::format!("$TTL 60\n{SOA}www A 300.1.1.1\n")).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("test.zone:3: bad A RDATA"), "{e}");
        assert!(matches!(
            kind("$TTL 60\n@ SOA a b (1 2 3 4 5\n"),
            (2, ZoneErrorKind::UnclosedParen)
        ));
        assert!(matches!(
            kind("$TTL 60\n)\n"),
            (2, ZoneErrorKind::UnexpectedCloseParen)
        ));
        assert!(matches!(
            kind("$TTL 60\nx TXT \"abc\n"),
            (2, ZoneErrorKind::UnterminatedQuote)
        ));
        assert!(matches!(
            kind("$INCLUDE other\n"),
            (1, ZoneErrorKind::UnsupportedDirective(_))
        ));
        assert!(matches!(
            kind("$FOO x\n"),
            (1, ZoneErrorKind::UnknownDirective(_))
        ));
        assert!(matches!(kind("$TTL 1x\n"), (1, ZoneErrorKind::BadTtl(_))));
        assert!(matches!(
            kind(" A 192.0.2.1\n"),
            (1, ZoneErrorKind::MissingOwner)
        ));
        assert!(matches!(kind("x A 192.0.2.1\n"), (1, ZoneErrorKind::NoTtl)));
        assert!(matches!(
            kind("$TTL 5\nx CH A 192.0.2.1\n"),
            (2, ZoneErrorKind::UnsupportedClass(_))
        ));
        assert!(matches!(
            kind("$TTL 5\nx HINFO a b\n"),
            (2, ZoneErrorKind::UnknownType(_))
        ));
        assert!(matches!(
            kind("$TTL 5\nx IN\n"),
            (2, ZoneErrorKind::MissingType)
        ));
        assert!(matches!(
            kind("$TTL 5\nx.example.com. A 192.0.2.1\n"),
            (2, ZoneErrorKind::OutOfZone { .. })
        ));
        assert!(matches!(
            kind("$TTL 5\nx A 192.0.2.1\n"),
            (2, ZoneErrorKind::MissingSoa(_))
        ));
        assert!(matches!(
            kind(&alloc::format!("$TTL 5\n{SOA}x CNAME a\nx A 192.0.2.1\n")),
            (4, ZoneErrorKind::CnameAndOtherData(_))
        ));
        assert!(matches!(
            kind(&alloc::format!("$TTL 5\n{SOA}x CNAME a\nx CNAME b\n")),
            (4, ZoneErrorKind::MultipleCnames(_))
        ));
        assert!(matches!(
            kind(&alloc::format!("$TTL 5\n{SOA}x SOA a b 1 2 3 4 5\n")),
            (3, ZoneErrorKind::SoaNotAtApex(_))
        ));
        assert!(matches!(
            kind(&alloc::format!("$TTL 5\n{SOA}x TYPE1 \\# 3 000000\n")),
            (3, ZoneErrorKind::BadRdata { .. })
        ));
        assert!(matches!(
            kind(&alloc::format!("$TTL 5\n{SOA}x MX 10\n")),
            (3, ZoneErrorKind::BadRdata { .. })
        ));
        let long = "a".repeat(64);
        assert!(matches!(
            kind(&alloc::format!("$TTL 5\n{SOA}{long} A 192.0.2.1\n")),
            (3, ZoneErrorKind::BadName { .. })
        ));
    }

    #[test]
    fn duplicates_collapse_and_ttl_defaults() {
        let z = parse(&alloc::format!(
            "{SOA}a A 192.0.2.1\na A 192.0.2.1\nb 7 A 192.0.2.2\n  A 192.0.2.3\n"
        ))
        .unwrap();
        // SOA + a + two b records; no $TTL so the last explicit TTL carries over.
        assert_eq!(z.records.len(), 4);
        assert_eq!(z.records[1].ttl, 3600);
        assert_eq!(z.records[3].ttl, 7);
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("3600"), Some(3600));
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1W2d"), Some(777_600));
        assert_eq!(parse_ttl("2147483647"), Some(MAX_TTL));
        assert_eq!(parse_ttl("2147483648"), None);
        assert_eq!(parse_ttl("1h5"), None);
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl(""), None);
    }
}
