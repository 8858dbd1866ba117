//! A scanner for the static parts of AML (DSDT/SSDT bodies): `Device` scopes and their
//! `Name(_HID | _CID, …)` and `Name(_CRS, Buffer {…})` objects (ACPI 6.5 §20).
//!
//! This is not an interpreter: it recognises the byte patterns VMMs emit for simple
//! devices (QEMU microvm, Firecracker, Cloud Hypervisor) and ignores everything else.
//! A `_HID` computed by a method, or a `_CRS` built at run time, is not seen.
//! `Method(_CRS) { Return (ResourceTemplate () {…}) }` is recognised.
//!
//! Every input is untrusted: lengths are checked against the slice, every loop
//! advances, and the whole scan of one table is bounded by a work budget linear in
//! its size, so no input makes it panic, loop forever, or take quadratic time.

/// `ExtOpPrefix DeviceOp` (§20.2.5.2): `DefDevice := 0x5B 0x82 PkgLength NameString TermList`.
const DEVICE_OP: [u8; 2] = [0x5B, 0x82];
/// `NameOp` (§20.2.5.1): `DefName := 0x08 NameString DataRefObject`.
const NAME_OP: u8 = 0x08;
/// `MethodOp` (§20.2.5.2): `DefMethod := 0x14 PkgLength NameString MethodFlags TermList`.
const METHOD_OP: u8 = 0x14;
/// `ReturnOp` (§20.2.5.3).
const RETURN_OP: u8 = 0xA4;
/// `BufferOp` (§20.2.5.4): `DefBuffer := 0x11 PkgLength BufferSize ByteList`.
const BUFFER_OP: u8 = 0x11;
/// Data object prefixes (§20.2.3).
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ONES_OP: u8 = 0xFF;
const BYTE_PREFIX: u8 = 0x0A;
const WORD_PREFIX: u8 = 0x0B;
const DWORD_PREFIX: u8 = 0x0C;
const STRING_PREFIX: u8 = 0x0D;
const QWORD_PREFIX: u8 = 0x0E;
/// Name string prefixes (§20.2.2).
const ROOT_CHAR: u8 = b'\\';
const PARENT_PREFIX: u8 = b'^';
const DUAL_NAME_PREFIX: u8 = 0x2E;
const MULTI_NAME_PREFIX: u8 = 0x2F;
const NULL_NAME: u8 = 0x00;

/// Longest `_HID`/`_CID` string accepted (ACPI ids are 7 or 8 characters; `PRP0001`
/// style ids and vendor strings stay well below this).
const MAX_ID_LEN: usize = 64;
/// Work allowed per input byte (plus a constant) before a scan gives up.
const BUDGET_PER_BYTE: usize = 16;
const BUDGET_BASE: usize = 4096;

/// Decodes a `PkgLength` (§20.2.4) at the start of `b`: (the length it encodes,
/// bytes the encoding itself takes). The length counts from the encoding's first byte.
pub fn pkg_length(b: &[u8]) -> Option<(usize, usize)> {
    let lead = *b.first()?;
    let follow = usize::from(lead >> 6);
    if follow == 0 {
        return Some((usize::from(lead & 0x3F), 1));
    }
    let rest = b.get(1..=follow)?;
    let mut len = usize::from(lead & 0x0F);
    for (i, byte) in rest.iter().enumerate() {
        len |= usize::from(*byte) << (4 + 8 * i);
    }
    Some((len, 1 + follow))
}

/// Decodes a `NameString` at the start of `b`: (its last `NameSeg`, or `None` for the
/// null name; bytes it takes).
pub fn name_string(b: &[u8]) -> Option<(Option<[u8; 4]>, usize)> {
    let mut p = 0;
    match *b.first()? {
        ROOT_CHAR => p = 1,
        PARENT_PREFIX => {
            while b.get(p) == Some(&PARENT_PREFIX) {
                p += 1;
            }
        }
        _ => {}
    }
    let segs = match *b.get(p)? {
        NULL_NAME => return Some((None, p + 1)),
        DUAL_NAME_PREFIX => {
            p += 1;
            2
        }
        MULTI_NAME_PREFIX => {
            let n = usize::from(*b.get(p + 1)?);
            p += 2;
            n
        }
        _ => 1,
    };
    if segs == 0 {
        return Some((None, p));
    }
    let mut last = [0; 4];
    for _ in 0..segs {
        last = name_seg(b.get(p..)?)?;
        p += 4;
    }
    Some((Some(last), p))
}

/// A `NameSeg` (§20.2.2): a lead character `A-Z` or `_`, then three of `A-Z0-9_`.
fn name_seg(b: &[u8]) -> Option<[u8; 4]> {
    let seg: [u8; 4] = b.get(..4)?.try_into().ok()?;
    let lead_ok = seg[0].is_ascii_uppercase() || seg[0] == b'_';
    let rest_ok = seg[1..]
        .iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
    (lead_ok && rest_ok).then_some(seg)
}

/// A device identifier (`_HID` or `_CID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id<'a> {
    /// A string such as `"LNRO0005"` (without its NUL).
    String(&'a [u8]),
    /// A compressed EISA id such as `EisaId("PNP0B00")` (§19.6.35), as stored.
    EisaId(u32),
}

impl Id<'_> {
    /// Whether this is the identifier `id` (ASCII case-insensitive, as Linux compares).
    pub fn is(&self, id: &str) -> bool {
        match self {
            Id::String(s) => s.eq_ignore_ascii_case(id.as_bytes()),
            Id::EisaId(v) => decode_eisa_id(*v).eq_ignore_ascii_case(id.as_bytes()),
        }
    }
}

/// The seven characters of a compressed EISA id (`PNP0B00`). The integer is the
/// little-endian `DWordConst`; the id lies in its bytes in memory order.
pub fn decode_eisa_id(v: u32) -> [u8; 7] {
    let b = v.to_le_bytes();
    let letter = |x: u8| (x & 0x1F) + 0x40;
    let hex = |x: u8| b"0123456789ABCDEF"[usize::from(x & 0xF)];
    [
        letter(b[0] >> 2),
        letter(((b[0] & 0x3) << 3) | (b[1] >> 5)),
        letter(b[1]),
        hex(b[2] >> 4),
        hex(b[2]),
        hex(b[3] >> 4),
        hex(b[3]),
    ]
}

/// One `Device` scope and the objects of it that the scanner understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device<'a> {
    /// The last segment of the device's name (`VR23`).
    pub name: Option<[u8; 4]>,
    /// Offset of the `DeviceOp` in the scanned slice.
    pub offset: usize,
    /// `Name(_HID, …)`.
    pub hid: Option<Id<'a>>,
    /// `Name(_CID, …)` (a single id; packages of ids are not read).
    pub cid: Option<Id<'a>>,
    /// The resource template bytes of `_CRS`, for [`crate::resource::resources`].
    pub crs: Option<&'a [u8]>,
}

impl Device<'_> {
    /// Whether `_HID` or `_CID` is `id`.
    pub fn is(&self, id: &str) -> bool {
        self.hid.is_some_and(|h| h.is(id)) || self.cid.is_some_and(|c| c.is(id))
    }
}

/// Every `Device` in an AML byte stream (a DSDT or SSDT body, without the header),
/// nested ones included, in order of their offsets.
pub fn devices(aml: &[u8]) -> Devices<'_> {
    Devices {
        aml,
        pos: 0,
        budget: aml
            .len()
            .saturating_mul(BUDGET_PER_BYTE)
            .saturating_add(BUDGET_BASE),
    }
}

/// Iterator returned by [`devices`].
#[derive(Debug, Clone)]
pub struct Devices<'a> {
    aml: &'a [u8],
    pos: usize,
    budget: usize,
}

impl<'a> Iterator for Devices<'a> {
    type Item = Device<'a>;

    fn next(&mut self) -> Option<Device<'a>> {
        while self.pos < self.aml.len() && self.budget > 0 {
            let at = self.pos;
            self.pos += 1;
            self.budget -= 1;
            if self.aml[at..].starts_with(&DEVICE_OP)
                && let Some(dev) = device_at(self.aml, at, &mut self.budget)
            {
                return Some(dev);
            }
        }
        None
    }
}

/// `[start, end)` of the package whose `PkgLength` is at `at`, when it fits in `b`.
fn package(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let (len, used) = pkg_length(b.get(at..)?)?;
    let end = at.checked_add(len)?;
    (len >= used && end <= b.len()).then_some((at + used, end))
}

/// Parses the device whose `DeviceOp` is at `at`.
fn device_at<'a>(aml: &'a [u8], at: usize, budget: &mut usize) -> Option<Device<'a>> {
    let (body, end) = package(aml, at + 2)?;
    let (name, used) = name_string(aml.get(body..end)?)?;
    let mut dev = Device {
        name,
        offset: at,
        hid: None,
        cid: None,
        crs: None,
    };
    let mut p = body + used;
    while p < end && *budget > 0 {
        *budget -= 1;
        let rest = &aml[p..end];
        // A nested device's objects are its own, not ours.
        if rest.starts_with(&DEVICE_OP)
            && let Some((_, nested_end)) = package(aml, p + 2).filter(|(_, e)| *e <= end)
        {
            p = nested_end;
            continue;
        }
        if let Some(next) = object(rest, &mut dev) {
            p += next;
        } else {
            p += 1;
        }
    }
    Some(dev)
}

/// Recognises `Name(_HID|_CID|_CRS, …)` or `Method(_CRS) { Return (Buffer) }` at the
/// start of `b`, records it in `dev` (first one wins) and returns its length.
fn object<'a>(b: &'a [u8], dev: &mut Device<'a>) -> Option<usize> {
    match *b.first()? {
        NAME_OP => {
            let seg = name_seg(b.get(1..)?)?;
            let data = b.get(5..)?;
            let len = match &seg {
                b"_HID" | b"_CID" => {
                    let (id, len) = id_object(data)?;
                    let slot = if &seg == b"_HID" {
                        &mut dev.hid
                    } else {
                        &mut dev.cid
                    };
                    slot.get_or_insert(id);
                    len
                }
                b"_CRS" => {
                    let (bytes, len) = buffer(data)?;
                    dev.crs.get_or_insert(bytes);
                    len
                }
                _ => return None,
            };
            Some(5 + len)
        }
        METHOD_OP => {
            let (body, end) = package(b, 1)?;
            if b.get(body..body + 4)? != b"_CRS" {
                return None;
            }
            // NameSeg, MethodFlags, then the TermList: `Return (Buffer …)`.
            let term = body + 5;
            if *b.get(term)? == RETURN_OP {
                let (bytes, _) = buffer(b.get(term + 1..end)?)?;
                dev.crs.get_or_insert(bytes);
            }
            Some(end)
        }
        _ => None,
    }
}

/// A `_HID`/`_CID` value: a string or an EISA id.
fn id_object(b: &[u8]) -> Option<(Id<'_>, usize)> {
    match *b.first()? {
        STRING_PREFIX => {
            let s = b.get(1..)?;
            let nul = s.iter().take(MAX_ID_LEN + 1).position(|c| *c == 0)?;
            Some((Id::String(&s[..nul]), nul + 2))
        }
        DWORD_PREFIX => {
            let v = u32::from_le_bytes(b.get(1..5)?.try_into().ok()?);
            Some((Id::EisaId(v), 5))
        }
        _ => None,
    }
}

/// A `DefBuffer` at the start of `b`: (its bytes, the length of the whole object).
/// The `BufferSize` may exceed the initialiser (the rest reads as zeros, which a
/// resource template never relies on) or fall short of it (the initialiser is cut).
fn buffer(b: &[u8]) -> Option<(&[u8], usize)> {
    if *b.first()? != BUFFER_OP {
        return None;
    }
    let (start, end) = package(b, 1)?;
    let (size, used) = integer(b.get(start..end)?)?;
    let bytes = &b[start + used..end];
    let n = usize::try_from(size).map_or(bytes.len(), |s| s.min(bytes.len()));
    Some((&bytes[..n], end))
}

/// A constant integer (`ZeroOp`, `OneOp`, `OnesOp`, `Byte/Word/DWord/QWordConst`).
fn integer(b: &[u8]) -> Option<(u64, usize)> {
    let fixed = |n: usize| -> Option<(u64, usize)> {
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b.get(1..1 + n)?);
        Some((u64::from_le_bytes(v), 1 + n))
    };
    match *b.first()? {
        ZERO_OP => Some((0, 1)),
        ONE_OP => Some((1, 1)),
        ONES_OP => Some((u64::MAX, 1)),
        BYTE_PREFIX => fixed(1),
        WORD_PREFIX => fixed(2),
        DWORD_PREFIX => fixed(4),
        QWORD_PREFIX => fixed(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_length_encodings() {
        assert_eq!(pkg_length(&[0x3F]), Some((0x3F, 1)));
        // 0x4E 0x16: one follow byte, 0xE | 0x16 << 4.
        assert_eq!(pkg_length(&[0x4E, 0x16]), Some((0x16E, 2)));
        assert_eq!(
            pkg_length(&[0xC1, 0x02, 0x03, 0x04]),
            Some((0x0040_3021, 4))
        );
        assert_eq!(pkg_length(&[0x81, 0x02]), None);
        assert_eq!(pkg_length(&[]), None);
    }

    #[test]
    fn name_strings() {
        assert_eq!(name_string(b"VR23"), Some((Some(*b"VR23"), 4)));
        assert_eq!(name_string(b"\\_SB_"), Some((Some(*b"_SB_"), 5)));
        assert_eq!(name_string(b"\\\x2e_SB_PCI0"), Some((Some(*b"PCI0"), 10)));
        assert_eq!(name_string(b"^^\x2f\x01ABCD"), Some((Some(*b"ABCD"), 8)));
        assert_eq!(name_string(b"\0"), Some((None, 1)));
        assert_eq!(name_string(b"vr23"), None);
        assert_eq!(name_string(b"\x2f\xffABCD"), None);
    }

    #[test]
    fn eisa_ids_decode() {
        // EisaId("PNP0B00") as QEMU emits it: 0C 41 D0 0B 00.
        assert_eq!(&decode_eisa_id(0x000B_D041), b"PNP0B00");
        assert!(Id::EisaId(0x000B_D041).is("pnp0b00"));
        assert!(Id::String(b"LNRO0005").is("LNRO0005"));
        assert!(!Id::String(b"LNRO0005").is("LNRO0006"));
    }

    /// `Device(name) { Name(_HID, "LNRO0005"); Name(_CRS, Buffer{crs}) ; extra }`.
    fn device(name: &[u8; 4], crs: &[u8], extra: &[u8]) -> alloc::vec::Vec<u8> {
        let mut body = name.to_vec();
        body.extend_from_slice(b"\x08_HID\x0dLNRO0005\0");
        let mut buf = vec![0x0A, crs.len() as u8];
        buf.extend_from_slice(crs);
        body.extend_from_slice(b"\x08_CRS\x11");
        body.push((buf.len() + 1) as u8);
        body.extend_from_slice(&buf);
        body.extend_from_slice(extra);
        let mut out = vec![0x5B, 0x82];
        let len = body.len() + 2;
        out.push(0x40 | (len & 0xF) as u8);
        out.push((len >> 4) as u8);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn nested_devices_keep_their_own_objects() {
        let inner = device(b"CHLD", &[0x79, 0x00], &[]);
        let mut outer_body = b"\x08_HID\x0dPARENT00\0".to_vec();
        outer_body.extend_from_slice(&inner);
        let mut aml = vec![0x5B, 0x82];
        let len = 4 + outer_body.len() + 2;
        aml.push(0x40 | (len & 0xF) as u8);
        aml.push((len >> 4) as u8);
        aml.extend_from_slice(b"PRNT");
        aml.extend_from_slice(&outer_body);
        let devs: alloc::vec::Vec<_> = devices(&aml).collect();
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].name, Some(*b"PRNT"));
        assert!(devs[0].is("PARENT00"));
        assert_eq!(devs[0].crs, None);
        assert_eq!(devs[1].name, Some(*b"CHLD"));
        assert!(devs[1].is("LNRO0005"));
        assert_eq!(devs[1].crs, Some(&[0x79, 0x00][..]));
    }

    #[test]
    fn method_crs_is_read() {
        // Device(VR00) { Name(_HID, "LNRO0005") Method(_CRS, 0) { Return (Buffer(2){0x79, 0}) } }
        let mut body = b"VR00\x08_HID\x0dLNRO0005\0".to_vec();
        let ret = [RETURN_OP, BUFFER_OP, 0x05, 0x0A, 0x02, 0x79, 0x00];
        body.push(METHOD_OP);
        body.push((1 + 5 + ret.len()) as u8);
        body.extend_from_slice(b"_CRS\x00");
        body.extend_from_slice(&ret);
        let mut aml = vec![0x5B, 0x82, (body.len() + 1) as u8];
        aml.extend_from_slice(&body);
        let dev = devices(&aml).next().expect("device");
        assert_eq!(dev.crs, Some(&[0x79, 0x00][..]));
    }

    #[test]
    fn truncated_packages_are_not_devices() {
        let dev = device(b"VR00", &[0x79, 0x00], &[]);
        for cut in 0..dev.len() {
            assert!(devices(&dev[..cut]).all(|d| d.offset != 0 || cut == dev.len()));
        }
    }

    #[test]
    fn adversarial_input_is_bounded() {
        // 3000 devices, each package running to the end of the input, each with
        // filler that the scan of every enclosing device would otherwise walk.
        const N: usize = 3000;
        const STRIDE: usize = 16;
        let total = N * STRIDE;
        let mut aml = alloc::vec::Vec::with_capacity(total);
        for i in 0..N {
            let len = total - (i * STRIDE + 2);
            aml.extend_from_slice(&[0x5B, 0x82]);
            aml.extend_from_slice(&[
                0x80 | (len & 0xF) as u8,
                (len >> 4) as u8,
                (len >> 12) as u8,
            ]);
            aml.extend_from_slice(b"AAAA");
            aml.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0D, 0x5B]);
        }
        assert_eq!(aml.len(), total);
        assert_eq!(devices(&aml).count(), N);
        let zeros = vec![0x5B; 100_000];
        assert_eq!(devices(&zeros).count(), 0);
    }
}
