//! The xenstore wire format (`io/xs_wire.h`): a 16-byte `xsd_sockmsg` header
//! (type, request id, transaction id, payload length) and a payload of
//! NUL-terminated strings. Everything parsed here comes from xenstored, through
//! memory it can rewrite: lengths, terminators and numbers are all checked.

use alloc::string::String;
use alloc::vec::Vec;

/// Header bytes.
pub const HEADER_LEN: usize = 16;
/// Largest payload (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// Longest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;

/// Declares a fieldless enum of wire values with `from_wire`, the variant for
/// a value, so that each value is written once.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $repr:ident {
            $($(#[$vmeta:meta])* $variant:ident = $value:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[repr($repr)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $value,)+
        }

        impl $name {
            /// The variant for wire value `v`, `None` for a value not listed.
            pub fn from_wire(v: u64) -> Option<Self> {
                match v {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
/// Message types we send or accept (`enum xsd_sockmsg_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType: u32 {
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_WATCH_EVENT`.
    WatchEvent = 15,
    /// `XS_ERROR`.
    Error = 16,
}
}

impl MsgType {
    /// The type for a wire value we understand.
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::from_wire(u64::from(v))
    }
}

/// What is wrong with bytes xenstored sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than 16 header bytes.
    #[error("xenstore message of {0} bytes is shorter than its 16-byte header")]
    Short(usize),
    /// Payload length over `XENSTORE_PAYLOAD_MAX`.
    #[error("xenstore payload length {0} exceeds 4096")]
    TooLong(u32),
    /// A message type we never asked for.
    #[error("unknown xenstore message type {0}")]
    UnknownType(u32),
    /// A string field lacks its NUL terminator.
    #[error("xenstore {what} is not NUL-terminated")]
    Unterminated {
        /// Which field.
        what: &'static str,
    },
    /// A field is not UTF-8 or not a number where one is required.
    #[error("xenstore {what} is malformed")]
    Malformed {
        /// Which field.
        what: &'static str,
    },
}

/// An `xsd_sockmsg` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw message type.
    pub kind: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

impl Header {
    /// Parses and checks a header (the length bound, not the type).
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let f = |i: usize| -> Result<u32, WireError> {
            b.get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or(WireError::Short(b.len()))
        };
        let h = Self {
            kind: f(0)?,
            req_id: f(4)?,
            tx_id: f(8)?,
            len: f(12)?,
        };
        if h.len as usize > PAYLOAD_MAX {
            return Err(WireError::TooLong(h.len));
        }
        Ok(h)
    }

    /// The header's 16 bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (i, v) in [self.kind, self.req_id, self.tx_id, self.len]
            .into_iter()
            .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// The errno names xenstored sends in `XS_ERROR` replies (`xsd_errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsErrno {
    /// `EINVAL`.
    Inval,
    /// `EACCES`.
    Acces,
    /// `EEXIST`.
    Exist,
    /// `EISDIR`.
    IsDir,
    /// `ENOENT`: no such node.
    NoEnt,
    /// `ENOMEM`.
    NoMem,
    /// `ENOSPC`.
    NoSpc,
    /// `EIO`.
    Io,
    /// `ENOTEMPTY`.
    NotEmpty,
    /// `ENOSYS`.
    NoSys,
    /// `EROFS`.
    RoFs,
    /// `EBUSY`.
    Busy,
    /// `EAGAIN`: a transaction conflicted; retry it.
    Again,
    /// `EISCONN`.
    IsConn,
    /// `E2BIG`.
    TooBig,
    /// `EPERM`.
    Perm,
    /// `EQUOTA`.
    Quota,
    /// A name not in the list.
    Other,
}

impl XsErrno {
    const NAMES: [(&'static str, Self); 17] = [
        ("EINVAL", Self::Inval),
        ("EACCES", Self::Acces),
        ("EEXIST", Self::Exist),
        ("EISDIR", Self::IsDir),
        ("ENOENT", Self::NoEnt),
        ("ENOMEM", Self::NoMem),
        ("ENOSPC", Self::NoSpc),
        ("EIO", Self::Io),
        ("ENOTEMPTY", Self::NotEmpty),
        ("ENOSYS", Self::NoSys),
        ("EROFS", Self::RoFs),
        ("EBUSY", Self::Busy),
        ("EAGAIN", Self::Again),
        ("EISCONN", Self::IsConn),
        ("E2BIG", Self::TooBig),
        ("EPERM", Self::Perm),
        ("EQUOTA", Self::Quota),
    ];

    /// Parses an `XS_ERROR` payload: an errno name and its NUL.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let name = one_string(payload, "error name")?;
        Ok(Self::NAMES
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map_or(Self::Other, |(_, e)| *e))
    }

    /// The errno's name.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("unknown", |(n, _)| n)
    }

    /// The name as xenstored sends it (for the models).
    pub fn wire(self) -> &'static str {
        self.name()
    }
}

impl core::fmt::Display for XsErrno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// `payload` as exactly one NUL-terminated string; returns it without the NUL.
pub fn one_string<'a>(payload: &'a [u8], what: &'static str) -> Result<&'a [u8], WireError> {
    match payload.split_last() {
        Some((0, s)) if !s.contains(&0) => Ok(s),
        Some((0, _)) => Err(WireError::Malformed { what }),
        _ => Err(WireError::Unterminated { what }),
    }
}

/// A watch event: the path that changed and the token given to `XS_WATCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed (or the watched node itself on registration).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

impl WatchEvent {
    /// Parses an `XS_WATCH_EVENT` payload: path NUL token NUL (xenstored may add
    /// further NUL-terminated fields, which are ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let mut it = payload.split_inclusive(|b| *b == 0);
        let mut field = |what| -> Result<String, WireError> {
            let s = it.next().ok_or(WireError::Unterminated { what })?;
            let s = s
                .strip_suffix(&[0])
                .ok_or(WireError::Unterminated { what })?;
            let s = core::str::from_utf8(s).map_err(|_| WireError::Malformed { what })?;
            Ok(String::from(s))
        };
        let path = field("watch path")?;
        let token = field("watch token")?;
        if path.is_empty() || path.len() > ABS_PATH_MAX {
            return Err(WireError::Malformed { what: "watch path" });
        }
        Ok(Self { path, token })
    }
}

/// Parses an `XS_DIRECTORY` payload: NUL-terminated names, one after another.
pub fn parse_directory(payload: &[u8]) -> Result<Vec<String>, WireError> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let body = payload.strip_suffix(&[0]).ok_or(WireError::Unterminated {
        what: "directory entry",
    })?;
    body.split(|b| *b == 0)
        .map(|s| {
            let s = core::str::from_utf8(s).map_err(|_| WireError::Malformed {
                what: "directory entry",
            })?;
            if s.is_empty() || s.contains('/') {
                return Err(WireError::Malformed {
                    what: "directory entry",
                });
            }
            Ok(String::from(s))
        })
        .collect()
}

/// Parses an `XS_TRANSACTION_START` reply: a decimal id and its NUL; 0 is not an id.
pub fn parse_tx_id(payload: &[u8]) -> Result<u32, WireError> {
    let s = one_string(payload, "transaction id")?;
    let n = parse_decimal(s).ok_or(WireError::Malformed {
        what: "transaction id",
    })?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n != 0)
        .ok_or(WireError::Malformed {
            what: "transaction id",
        })
}

/// Checks an acknowledgement (`"OK"` and its NUL) for write/watch/rm/mkdir.
pub fn parse_ok(payload: &[u8]) -> Result<(), WireError> {
    if one_string(payload, "acknowledgement")? == b"OK" {
        Ok(())
    } else {
        Err(WireError::Malformed {
            what: "acknowledgement",
        })
    }
}

/// A decimal number without sign or spaces (xenstore values like `sectors`).
pub fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_enums_map_exactly_their_values() {
        let types: Vec<u32> = (0..64)
            .filter(|v| MsgType::from_u32(*v).is_some_and(|t| t as u32 == *v))
            .collect();
        assert_eq!(types, [1, 2, 4, 5, 6, 7, 10, 11, 12, 13, 15, 16]);
        assert_eq!(MsgType::from_u32(3), None);
        use crate::xenstore::xenbus::XenbusState;
        for v in 0..=8u64 {
            let s = XenbusState::from_wire(v).unwrap();
            assert_eq!(s as u64, v);
            assert_eq!(XenbusState::parse(s.value()), Ok(s));
        }
        assert_eq!(XenbusState::from_wire(9), None);
        assert!(XenbusState::parse(b"9").is_err());
    }

    #[test]
    fn header_round_trip_and_limits() {
        let h = Header {
            kind: 2,
            req_id: 9,
            tx_id: 3,
            len: 4096,
        };
        assert_eq!(Header::parse(&h.emit()), Ok(h));
        let mut b = h.emit();
        b[12..16].copy_from_slice(&4097u32.to_le_bytes());
        assert_eq!(Header::parse(&b), Err(WireError::TooLong(4097)));
        assert_eq!(Header::parse(&b[..15]), Err(WireError::Short(15)));
    }

    #[test]
    fn errors_and_strings() {
        assert_eq!(XsErrno::parse(b"EAGAIN\0"), Ok(XsErrno::Again));
        assert_eq!(XsErrno::parse(b"ENOENT\0"), Ok(XsErrno::NoEnt));
        assert_eq!(XsErrno::parse(b"EWHAT\0"), Ok(XsErrno::Other));
        assert_eq!(
            XsErrno::parse(b"EAGAIN"),
            Err(WireError::Unterminated { what: "error name" })
        );
        assert!(XsErrno::parse(b"EA\0GAIN\0").is_err());
        assert!(XsErrno::parse(b"").is_err());
        assert_eq!(parse_ok(b"OK\0"), Ok(()));
        assert!(parse_ok(b"NO\0").is_err());
        assert_eq!(parse_tx_id(b"17\0"), Ok(17));
        for bad in [&b"0\0"[..], b"-1\0", b"99999999999\0", b"\0", b"12"] {
            assert!(parse_tx_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn directories_and_watch_events() {
        assert_eq!(parse_directory(b""), Ok(Vec::new()));
        assert_eq!(parse_directory(b"0\x0051712\0").unwrap(), ["0", "51712"]);
        assert!(parse_directory(b"a\0b").is_err(), "unterminated");
        assert!(parse_directory(b"a\0\0").is_err(), "empty name");
        assert!(parse_directory(b"a/b\0").is_err(), "slash in a name");
        assert!(parse_directory(b"\xff\0").is_err());
        let e = WatchEvent::parse(b"backend/vif/1/0/state\0tok\0").unwrap();
        assert_eq!(e.path, "backend/vif/1/0/state");
        assert_eq!(e.token, "tok");
        assert!(WatchEvent::parse(b"path\0tok").is_err());
        assert!(WatchEvent::parse(b"path\0").is_err());
        assert!(WatchEvent::parse(b"\0tok\0").is_err());
        assert!(WatchEvent::parse(b"a\0b\0extra\0").is_ok());
    }
}
