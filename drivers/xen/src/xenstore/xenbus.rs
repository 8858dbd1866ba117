//! Xenbus: the front/back handshake over xenstore (`io/xenbus.h`). A front end
//! lives at `device/CLASS/INDEX` (relative to our domain's home), names its back
//! end in `backend` and `backend-id`, and both ends publish a `state`.

use alloc::format;
use alloc::string::String;

use super::wire::{XsErrno, parse_decimal, wire_enum};
use super::{Tx, Xenstore, XsError};
use crate::hv::{DomId, XenHypervisor};

wire_enum! {
/// `enum xenbus_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum XenbusState: u8 {
    /// `XenbusStateUnknown`.
    Unknown = 0,
    /// `XenbusStateInitialising`.
    Initialising = 1,
    /// `XenbusStateInitWait`: back end ready for the front end's details.
    InitWait = 2,
    /// `XenbusStateInitialised`: front end published its details.
    Initialised = 3,
    /// `XenbusStateConnected`.
    Connected = 4,
    /// `XenbusStateClosing`: the other end is going away.
    Closing = 5,
    /// `XenbusStateClosed`.
    Closed = 6,
    /// `XenbusStateReconfiguring`.
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`.
    Reconfigured = 8,
}
}

impl XenbusState {
    /// Parses a `state` node's value.
    pub fn parse(v: &[u8]) -> Result<Self, XenbusError> {
        let bad = || XenbusError::Malformed {
            what: "state",
            value: String::from_utf8_lossy(v).into_owned(),
        };
        parse_decimal(v).and_then(Self::from_wire).ok_or_else(bad)
    }

    /// The node's value.
    pub fn value(self) -> &'static [u8] {
        const V: [&[u8]; 9] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8"];
        V[self as usize]
    }
}

/// What went wrong in a xenbus handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XenbusError {
    /// Talking to xenstore failed.
    #[error("xenbus: {0}")]
    Xenstore(#[from] XsError),
    /// A node's value is not what the protocol allows.
    #[error("xenbus: {what} has the invalid value {value:?}")]
    Malformed {
        /// Which node.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// A required node is missing.
    #[error("xenbus: {path} is missing")]
    Missing {
        /// The node.
        path: String,
    },
    /// The back end did not reach an expected state.
    #[error("xenbus: back end at {backend} stayed in {state:?}")]
    Stuck {
        /// The back end's path.
        backend: String,
        /// Its last state.
        state: XenbusState,
    },
}

/// The highest domid of a real domain (`DOMID_FIRST_RESERVED` − 1).
const DOMID_MAX: u64 = 0x7fef;

/// One front-end device on xenbus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenbusDevice {
    /// `device/CLASS/INDEX`.
    pub frontend: String,
    /// The back end's path, from our `backend` node.
    pub backend: String,
    /// The back end's domain.
    pub backend_id: DomId,
}

impl XenbusDevice {
    /// Reads `device/CLASS/INDEX/backend` and `backend-id`.
    pub fn probe<H: XenHypervisor>(
        xs: &mut Xenstore<'_, H>,
        class: &str,
        index: u32,
    ) -> Result<Self, XenbusError> {
        let frontend = format!("device/{class}/{index}");
        let backend = xs.read_string(Tx::NONE, &format!("{frontend}/backend"))?;
        if backend.is_empty() || backend.contains('\0') {
            return Err(XenbusError::Malformed {
                what: "backend",
                value: backend,
            });
        }
        let id = xs.read(Tx::NONE, &format!("{frontend}/backend-id"))?;
        let backend_id = parse_decimal(&id)
            .filter(|d| *d <= DOMID_MAX)
            .ok_or_else(|| XenbusError::Malformed {
                what: "backend-id",
                value: String::from_utf8_lossy(&id).into_owned(),
            })? as DomId;
        Ok(Self {
            frontend,
            backend,
            backend_id,
        })
    }

    /// Lists `device/CLASS` (the indices the toolstack created).
    pub fn list<H: XenHypervisor>(
        xs: &mut Xenstore<'_, H>,
        class: &str,
    ) -> Result<alloc::vec::Vec<u32>, XenbusError> {
        let names = match xs.directory(Tx::NONE, &format!("device/{class}")) {
            Ok(n) => n,
            Err(e) if e.is(XsErrno::NoEnt) => return Ok(alloc::vec::Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(names
            .iter()
            .filter_map(|n| parse_decimal(n.as_bytes()))
            .filter_map(|n| u32::try_from(n).ok())
            .collect())
    }

    /// The back end's state.
    pub fn backend_state<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
    ) -> Result<XenbusState, XenbusError> {
        match xs.read_opt(Tx::NONE, &format!("{}/state", self.backend))? {
            Some(v) => XenbusState::parse(&v),
            None => Ok(XenbusState::Unknown),
        }
    }

    /// Writes our state.
    pub fn switch_state<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
        state: XenbusState,
    ) -> Result<(), XenbusError> {
        xs.write(Tx::NONE, &format!("{}/state", self.frontend), state.value())?;
        Ok(())
    }

    /// A back-end node's value, `None` when absent.
    pub fn backend_value<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
        key: &str,
    ) -> Result<Option<alloc::vec::Vec<u8>>, XenbusError> {
        Ok(xs.read_opt(Tx::NONE, &format!("{}/{key}", self.backend))?)
    }

    /// A back end's `feature-*` flag: absent or `0` is false, another number true.
    pub fn backend_feature<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
        key: &'static str,
    ) -> Result<bool, XenbusError> {
        match self.backend_value(xs, key)? {
            None => Ok(false),
            Some(v) => parse_decimal(&v)
                .map(|n| n != 0)
                .ok_or_else(|| XenbusError::Malformed {
                    what: key,
                    value: String::from_utf8_lossy(&v).into_owned(),
                }),
        }
    }

    /// A required numeric back-end node.
    pub fn backend_u64<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
        key: &'static str,
    ) -> Result<u64, XenbusError> {
        let v = self
            .backend_value(xs, key)?
            .ok_or_else(|| XenbusError::Missing {
                path: format!("{}/{key}", self.backend),
            })?;
        parse_decimal(&v).ok_or_else(|| XenbusError::Malformed {
            what: key,
            value: String::from_utf8_lossy(&v).into_owned(),
        })
    }

    /// Writes `nodes` (`(key, value)` pairs) under our front-end path in one
    /// transaction: the details a back end reads at InitWait.
    pub fn publish<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
        nodes: &[(&str, &[u8])],
    ) -> Result<(), XenbusError> {
        let fe = self.frontend.as_str();
        xs.transaction(|xs, t| {
            for (key, value) in nodes {
                xs.write(t, &format!("{fe}/{key}"), value)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Waits (bounded) until the back end is in `want`, giving up with
    /// [`XenbusError::Stuck`] once it is Closing or beyond.
    pub fn wait_for_state<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
        want: XenbusState,
    ) -> Result<(), XenbusError> {
        self.wait_backend(xs, |s| s == want, |s| s >= XenbusState::Closing)?;
        Ok(())
    }

    /// Waits (bounded by the client's timeout) until the back end's state
    /// satisfies `done`, watching its `state` node. Returns that state; a state
    /// for which `give_up` holds ends the wait with [`XenbusError::Stuck`].
    pub fn wait_backend<H: XenHypervisor>(
        &self,
        xs: &mut Xenstore<'_, H>,
        done: impl Fn(XenbusState) -> bool,
        give_up: impl Fn(XenbusState) -> bool,
    ) -> Result<XenbusState, XenbusError> {
        let path = format!("{}/state", self.backend);
        let token = self.frontend.as_str();
        xs.watch(&path, token)?;
        let r = (|| loop {
            let s = self.backend_state(xs)?;
            if done(s) {
                return Ok(s);
            }
            if give_up(s) {
                return Err(XenbusError::Stuck {
                    backend: self.backend.clone(),
                    state: s,
                });
            }
            xs.wait_watch(token)?;
        })();
        let _ = xs.unwatch(&path, token);
        r
    }
}
