//! Domain names: uncompressed wire-form storage, decompression with loop checks,
//! master-file text form, case-insensitive comparison and canonical order (RFC 4034 §6.1).
//!
//! Every algorithm here works on the *uncompressed wire form* (`3www7example3org0`),
//! so an ancestor of a name is just a sub-slice of it: the answering engine looks up
//! a query name and all its ancestors without copying or allocating.

use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

/// Longest name on the wire, root label included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Compression pointers followed in one name before giving up. A name has at most
/// 127 labels, so a legitimate chain never needs more.
pub const MAX_POINTER_HOPS: usize = 127;
/// Names never start inside the 12-byte header, so no pointer may target it.
const HEADER_LEN: usize = 12;

/// Why a name could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The message ended in the middle of a name.
    #[error("name at offset {offset} runs past the end of the message")]
    Truncated {
        /// Where the cut-off label started.
        offset: usize,
    },
    /// A label is longer than 63 bytes.
    #[error("label of {len} bytes exceeds the {MAX_LABEL_LEN}-byte limit")]
    LabelTooLong {
        /// The label's length.
        len: usize,
    },
    /// The name is longer than 255 bytes in wire form.
    #[error("name of {len} bytes exceeds the {MAX_NAME_LEN}-byte limit")]
    NameTooLong {
        /// Its length so far.
        len: usize,
    },
    /// A compression pointer does not point strictly backwards, or into the header.
    #[error(
        "compression pointer at offset {at} targets offset {target}, which is not an earlier name"
    )]
    BadPointer {
        /// Offset of the pointer.
        at: usize,
        /// Offset it points to.
        target: usize,
    },
    /// Too many pointers were chained.
    #[error("more than {MAX_POINTER_HOPS} compression pointers in one name")]
    TooManyPointers,
    /// Label types 0b01 and 0b10 (RFC 6891 §5) are not supported.
    #[error("label type byte 0x{0:02x} is not supported")]
    BadLabelType(u8),
    /// A compression pointer appeared where names must not be compressed.
    #[error("compression pointer at offset {at} where an uncompressed name is required")]
    PointerNotAllowed {
        /// Offset of the pointer.
        at: usize,
    },
    /// Text form: an empty label such as `a..b`.
    #[error("empty label in {0:?}")]
    EmptyLabel(String),
    /// Text form: a bad `\` escape.
    #[error("bad escape sequence in {0:?}")]
    BadEscape(String),
    /// Text form: a relative name with no origin to complete it.
    #[error("relative name {0:?} with no origin")]
    NoOrigin(String),
}

/// An owned domain name, stored in uncompressed wire form with its original case.
///
/// Equality and ordering ignore ASCII case; ordering is the DNSSEC canonical order.
#[derive(Clone)]
pub struct Name {
    wire: Vec<u8>,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Name {
            wire: alloc::vec![0],
        }
    }

    /// Takes an uncompressed wire-form name that must fill `wire` exactly.
    pub fn from_wire(wire: &[u8]) -> Result<Self, NameError> {
        let len = uncompressed_len(wire, 0)?;
        if len != wire.len() {
            return Err(NameError::Truncated { offset: len });
        }
        Ok(Name {
            wire: wire.to_vec(),
        })
    }

    /// Reads a possibly compressed name starting at `offset` in `msg`.
    /// Returns the name and the offset just after it (after the first pointer, if any).
    pub fn read(msg: &[u8], offset: usize) -> Result<(Self, usize), NameError> {
        let mut wire = Vec::with_capacity(32);
        let end = decompress(msg, offset, |label| wire.extend_from_slice(label))?;
        Ok((Name { wire }, end))
    }

    /// Parses master-file text (`www`, `www.example.org.`, `@`, `\.`, `\DDD`).
    /// Relative names are completed with `origin`.
    pub fn parse_text(text: &str, origin: Option<&Name>) -> Result<Self, NameError> {
        if text == "@" {
            return origin
                .cloned()
                .ok_or_else(|| NameError::NoOrigin(text.into()));
        }
        if text == "." {
            return Ok(Name::root());
        }
        let bytes = text.as_bytes();
        let mut wire = Vec::with_capacity(bytes.len() + 2);
        let mut label: Vec<u8> = Vec::with_capacity(MAX_LABEL_LEN);
        let mut absolute = false;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'.' => {
                    if label.is_empty() {
                        return Err(NameError::EmptyLabel(text.into()));
                    }
                    push_label(&mut wire, &label)?;
                    label.clear();
                    if i + 1 == bytes.len() {
                        absolute = true;
                    }
                    i += 1;
                }
                b'\\' => {
                    let (value, used) = unescape(&bytes[i + 1..])
                        .ok_or_else(|| NameError::BadEscape(text.into()))?;
                    label.push(value);
                    i += 1 + used;
                }
                _ => {
                    label.push(b);
                    i += 1;
                }
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong { len: label.len() });
            }
        }
        if !label.is_empty() {
            push_label(&mut wire, &label)?;
        }
        if absolute {
            wire.push(0);
        } else {
            let origin = origin.ok_or_else(|| NameError::NoOrigin(text.into()))?;
            wire.extend_from_slice(&origin.wire);
        }
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong { len: wire.len() });
        }
        Ok(Name { wire })
    }

    /// The uncompressed wire form, root label included.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        label_count(&self.wire)
    }

    /// True for `*.something` (RFC 4592 wildcard owner).
    pub fn is_wildcard(&self) -> bool {
        is_wildcard(&self.wire)
    }

    /// True when `self` equals `ancestor` or lies below it.
    pub fn is_subdomain_of(&self, ancestor: &Name) -> bool {
        is_subdomain(&self.wire, &ancestor.wire)
    }

    /// The name with its first label removed; `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        parent(&self.wire).map(|w| Name { wire: w.to_vec() })
    }

    /// Prepends one raw label (used for `*` and tests).
    pub fn prepend(&self, label: &[u8]) -> Result<Name, NameError> {
        let mut wire = Vec::with_capacity(self.wire.len() + label.len() + 1);
        push_label(&mut wire, label)?;
        wire.extend_from_slice(&self.wire);
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong { len: wire.len() });
        }
        Ok(Name { wire })
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        eq_ignore_case(&self.wire, &other.wire)
    }
}
impl Eq for Name {}
impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_canonical(&self.wire, &other.wire)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_text(&self.wire, f)
    }
}
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

fn push_label(wire: &mut Vec<u8>, label: &[u8]) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel(String::new()));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong { len: label.len() });
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    if wire.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong { len: wire.len() });
    }
    Ok(())
}

/// Decodes one master-file escape after the backslash: `\DDD` or `\X`.
/// Returns the byte and how many input bytes it used.
pub(crate) fn unescape(rest: &[u8]) -> Option<(u8, usize)> {
    let first = *rest.first()?;
    if first.is_ascii_digit() {
        let digits = rest.get(..3)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = digits
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        u8::try_from(value).ok().map(|v| (v, 3))
    } else {
        Some((first, 1))
    }
}

/// Writes wire-form `wire` as master-file text with escapes.
pub(crate) fn write_text(wire: &[u8], f: &mut dyn fmt::Write) -> fmt::Result {
    if wire.first().copied().unwrap_or(0) == 0 {
        return f.write_char('.');
    }
    for label in Labels::new(wire) {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(char::from(b))?;
                }
                0x21..=0x7e => f.write_char(char::from(b))?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        f.write_char('.')?;
    }
    Ok(())
}

/// Validates an uncompressed name at `offset`; returns its length in bytes.
pub(crate) fn uncompressed_len(buf: &[u8], offset: usize) -> Result<usize, NameError> {
    let mut pos = offset;
    loop {
        let len = *buf.get(pos).ok_or(NameError::Truncated { offset: pos })?;
        match len & 0xc0 {
            0x00 => {}
            0xc0 => return Err(NameError::PointerNotAllowed { at: pos }),
            _ => return Err(NameError::BadLabelType(len)),
        }
        let len = usize::from(len);
        if pos - offset + len + 1 > MAX_NAME_LEN {
            return Err(NameError::NameTooLong {
                len: pos - offset + len + 1,
            });
        }
        if len == 0 {
            return Ok(pos - offset + 1);
        }
        if buf.len() < pos + 1 + len {
            return Err(NameError::Truncated { offset: pos });
        }
        pos += 1 + len;
    }
}

/// Walks a possibly compressed name, handing each label (length byte included, and
/// finally the root byte) to `sink`. Returns the offset after the name in `msg`.
///
/// Loop and bound checks: every pointer must target an earlier offset than the
/// label sequence it interrupts and lie after the header; at most
/// [`MAX_POINTER_HOPS`] pointers; the expanded name stays within 255 bytes.
pub(crate) fn decompress(
    msg: &[u8],
    offset: usize,
    mut sink: impl FnMut(&[u8]),
) -> Result<usize, NameError> {
    let mut pos = offset;
    // Lowest offset seen in this name: pointers must go strictly below it,
    // which rules out loops.
    let mut floor = offset;
    let mut end = None;
    let mut hops = 0;
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(NameError::Truncated { offset: pos })?;
        match len & 0xc0 {
            0x00 => {
                let len = usize::from(len);
                total += len + 1;
                if total > MAX_NAME_LEN {
                    return Err(NameError::NameTooLong { len: total });
                }
                let label = msg
                    .get(pos..pos + 1 + len)
                    .ok_or(NameError::Truncated { offset: pos })?;
                sink(label);
                if len == 0 {
                    return Ok(end.unwrap_or(pos + 1));
                }
                pos += 1 + len;
            }
            0xc0 => {
                let low = *msg
                    .get(pos + 1)
                    .ok_or(NameError::Truncated { offset: pos })?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= floor || target < HEADER_LEN {
                    return Err(NameError::BadPointer { at: pos, target });
                }
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(NameError::TooManyPointers);
                }
                if end.is_none() {
                    end = Some(pos + 2);
                }
                floor = target;
                pos = target;
            }
            _ => return Err(NameError::BadLabelType(len)),
        }
    }
}

/// Iterator over the labels of an uncompressed wire name (root excluded).
pub(crate) struct Labels<'a> {
    wire: &'a [u8],
}

impl<'a> Labels<'a> {
    pub(crate) fn new(wire: &'a [u8]) -> Self {
        Labels { wire }
    }
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(*self.wire.first()?);
        if len == 0 {
            return None;
        }
        let label = self.wire.get(1..1 + len)?;
        self.wire = self.wire.get(1 + len..)?;
        Some(label)
    }
}

/// Labels in an uncompressed wire name, root excluded.
pub(crate) fn label_count(wire: &[u8]) -> usize {
    Labels::new(wire).count()
}

/// The wire name with its first label removed (a sub-slice); `None` for the root.
pub(crate) fn parent(wire: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*wire.first()?);
    if len == 0 {
        return None;
    }
    wire.get(1 + len..)
}

/// True for a name whose first label is `*`.
pub(crate) fn is_wildcard(wire: &[u8]) -> bool {
    wire.get(..2) == Some(&[1, b'*'])
}

/// Case-insensitive equality of two uncompressed wire names.
pub(crate) fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    // Length bytes are below 64, so lowercasing them is harmless.
    a.eq_ignore_ascii_case(b)
}

/// True when `child` equals `ancestor` or is below it.
pub(crate) fn is_subdomain(child: &[u8], ancestor: &[u8]) -> bool {
    let mut cur = child;
    loop {
        if cur.len() == ancestor.len() {
            return eq_ignore_case(cur, ancestor);
        }
        if cur.len() < ancestor.len() {
            return false;
        }
        match parent(cur) {
            Some(p) => cur = p,
            None => return false,
        }
    }
}

/// Canonical DNS order (RFC 4034 §6.1): compare labels right to left, each label
/// as lowercase bytes, a missing label sorting first.
pub(crate) fn cmp_canonical(a: &[u8], b: &[u8]) -> Ordering {
    let mut a_starts = [0u8; 128];
    let mut b_starts = [0u8; 128];
    let na = label_starts(a, &mut a_starts);
    let nb = label_starts(b, &mut b_starts);
    let mut i = na;
    let mut j = nb;
    while i > 0 && j > 0 {
        i -= 1;
        j -= 1;
        let la = label_at(a, a_starts[i]);
        let lb = label_at(b, b_starts[j]);
        let ord = la
            .iter()
            .map(u8::to_ascii_lowercase)
            .cmp(lb.iter().map(u8::to_ascii_lowercase));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    na.cmp(&nb)
}

fn label_starts(wire: &[u8], starts: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut pos = 0usize;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || n == starts.len() {
            break;
        }
        // Names are at most 255 bytes, so `pos` fits a u8.
        starts[n] = u8::try_from(pos).unwrap_or(u8::MAX);
        n += 1;
        pos += 1 + usize::from(len);
    }
    n
}

fn label_at(wire: &[u8], start: u8) -> &[u8] {
    let start = usize::from(start);
    let len = usize::from(wire.get(start).copied().unwrap_or(0));
    wire.get(start + 1..start + 1 + len).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn n(s: &str) -> Name {
        Name::parse_text(s, None).unwrap()
    }

    #[test]
    fn text_round_trip_and_escapes() {
        assert_eq!(n("www.Example.org.").to_string(), "www.Example.org.");
        assert_eq!(n("a\\.b.c.").label_count(), 2);
        assert_eq!(n("a\\.b.c.").to_string(), "a\\.b.c.");
        assert_eq!(n("\\065\\000.").as_wire(), &[2, b'A', 0, 0]);
        assert_eq!(n(".").as_wire(), &[0]);
        let origin = n("example.org.");
        assert_eq!(
            Name::parse_text("www", Some(&origin)).unwrap(),
            n("www.example.org.")
        );
        assert_eq!(Name::parse_text("@", Some(&origin)).unwrap(), origin);
        assert!(matches!(
            Name::parse_text("www", None),
            Err(NameError::NoOrigin(_))
        ));
        assert!(matches!(
            Name::parse_text("a..b.", None),
            Err(NameError::EmptyLabel(_))
        ));
        assert!(matches!(
            Name::parse_text("a\\2", None),
            Err(NameError::BadEscape(_))
        ));
        assert!(matches!(
            Name::parse_text("\\256.", None),
            Err(NameError::BadEscape(_))
        ));
    }

    #[test]
    fn limits_in_text() {
        let long_label = "a".repeat(64);
        assert!(matches!(
            Name::parse_text(&(long_label + "."), None),
            Err(NameError::LabelTooLong { len: 64 })
        ));
        let label = "a".repeat(63);
        let name = [label.as_str(); 4].join(".") + ".";
        assert!(matches!(
            Name::parse_text(&name, None),
            Err(NameError::NameTooLong { .. })
        ));
        let ok = [label.as_str(), &label, &label, &"b".repeat(61)].join(".") + ".";
        assert_eq!(Name::parse_text(&ok, None).unwrap().as_wire().len(), 255);
    }

    #[test]
    fn case_insensitive_eq_and_canonical_order() {
        assert_eq!(n("WWW.example.ORG."), n("www.EXAMPLE.org."));
        let mut names = alloc::vec![
            n("z.example."),
            n("example."),
            n("*.z.example."),
            n("a.example."),
            n("yljkjljk.a.example."),
            n("Z.a.example."),
            n("zABC.a.EXAMPLE."),
            n("\\001.z.example."),
            n("\\200.z.example."),
        ];
        names.sort();
        let text: Vec<_> = names
            .iter()
            .map(|x| x.to_string().to_ascii_lowercase())
            .collect();
        assert_eq!(
            text,
            [
                "example.",
                "a.example.",
                "yljkjljk.a.example.",
                "z.a.example.",
                "zabc.a.example.",
                "z.example.",
                "\\001.z.example.",
                "*.z.example.",
                "\\200.z.example."
            ]
        );
    }

    #[test]
    fn subdomain_and_parent() {
        assert!(n("a.b.example.").is_subdomain_of(&n("EXAMPLE.")));
        assert!(n("example.").is_subdomain_of(&n("example.")));
        assert!(!n("badexample.").is_subdomain_of(&n("example.")));
        assert!(n("x.").is_subdomain_of(&Name::root()));
        assert_eq!(n("a.b.").parent().unwrap(), n("b."));
        assert!(Name::root().parent().is_none());
        assert!(n("*.a.").is_wildcard());
    }

    fn msg_with(body: &[u8]) -> Vec<u8> {
        let mut m = alloc::vec![0u8; HEADER_LEN];
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn decompression() {
        // 12: 3foo 0 ; 17: 3bar ptr->12
        let m = msg_with(&[3, b'f', b'o', b'o', 0, 3, b'b', b'a', b'r', 0xc0, 12]);
        let (name, end) = Name::read(&m, 17).unwrap();
        assert_eq!(name, n("bar.foo."));
        assert_eq!(end, 23);
        // Pointer to itself, forward, and into the header.
        let m = msg_with(&[0xc0, 12]);
        assert!(matches!(
            Name::read(&m, 12),
            Err(NameError::BadPointer { .. })
        ));
        let m = msg_with(&[0xc0, 14, 0]);
        assert!(matches!(
            Name::read(&m, 12),
            Err(NameError::BadPointer { .. })
        ));
        let m = msg_with(&[0xc0, 2]);
        assert!(matches!(
            Name::read(&m, 12),
            Err(NameError::BadPointer { .. })
        ));
        // Truncated label, bad label type.
        let m = msg_with(&[5, b'a']);
        assert!(matches!(
            Name::read(&m, 12),
            Err(NameError::Truncated { .. })
        ));
        let m = msg_with(&[0x41, 0]);
        assert!(matches!(
            Name::read(&m, 12),
            Err(NameError::BadLabelType(0x41))
        ));
    }

    #[test]
    fn decompression_length_bound() {
        // A chain of backwards pointers that expands beyond 255 bytes.
        let mut body = Vec::new();
        body.extend_from_slice(&[63]);
        body.extend_from_slice(&[b'a'; 63]);
        body.push(0);
        let mut prev = HEADER_LEN;
        for _ in 0..5 {
            let here = HEADER_LEN + body.len();
            body.push(63);
            body.extend_from_slice(&[b'b'; 63]);
            body.extend_from_slice(&[0xc0 | (prev >> 8) as u8, prev as u8]);
            prev = here;
        }
        let m = msg_with(&body);
        assert!(matches!(
            Name::read(&m, prev),
            Err(NameError::NameTooLong { .. })
        ));
    }

    #[test]
    fn from_wire_checks() {
        assert!(Name::from_wire(&[1, b'a', 0]).is_ok());
        assert!(Name::from_wire(&[1, b'a', 0, 0]).is_err());
        assert!(Name::from_wire(&[0xc0, 0]).is_err());
        assert!(Name::from_wire(&[3, b'a']).is_err());
    }
}
