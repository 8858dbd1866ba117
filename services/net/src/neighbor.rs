//! Gateway pre-resolution: learn the default gateway's MAC before the stack reports
//! itself configured, so the first replies to the gateway never wait for ARP.
//!
//! Why: behind QEMU's user networking (and any NAT router) every connection arrives
//! from the gateway, and the gateway never ARPs for us: it learned our MAC from DHCP.
//! smoltcp only learns a neighbour from ARP (not from the IP frames it receives), so
//! the SYN-ACKs of a burst that arrives right after `ready` all wait for one ARP round
//! trip: smoltcp silences each waiting socket (up to 1 s, `DISCOVERY_SILENT_TIME`) and
//! rate-limits ARP requests to one a second, so a lost ARP reply costs the whole burst
//! a second and makes the peers retransmit their SYNs.
//!
//! How: smoltcp lets us neither insert a neighbour nor ask whether one is known. So we
//! queue one ICMP echo request to the gateway on a socket of our own: smoltcp sends the
//! ARP request for it, retries it on its own schedule, and sends the echo request only
//! once the gateway's MAC is in the cache. The socket's send queue draining is
//! therefore the proof that the entry exists. (Writing an ARP frame ourselves would
//! leave that question unanswerable.) An echo request is the most harmless datagram a
//! host can send its router; whether the gateway answers it does not matter.

use core::net::Ipv4Addr;
use core::time::Duration;

use alloc::vec;
use oasis_runtime::Instant;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

use crate::error::NetError;

/// How long [`NetHandle::wait_configured`](crate::NetHandle::wait_configured) waits
/// for the gateway's MAC after the address is set: one ARP round trip is well under a
/// millisecond on a LAN; a gateway that does not answer delays readiness by this much.
pub const GATEWAY_WAIT: Duration = Duration::from_secs(1);

/// How long the probe socket keeps trying (smoltcp repeats the ARP request every
/// second) before it is given up and freed.
const PROBE_LIFETIME: Duration = Duration::from_secs(5);

/// ICMP identifier of the probe (a constant: at most one probe exists).
const PROBE_IDENT: u16 = 0x0A5A;

/// Payload of the echo request.
const PROBE_DATA: &[u8] = b"oasis arp";

/// The state of the gateway probe.
#[derive(Debug, Default)]
pub(crate) struct GatewayProbe {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    handle: SocketHandle,
    gateway: Ipv4Addr,
    /// The first poll after `start` (when the ARP request goes out).
    since: Option<Instant>,
}

impl GatewayProbe {
    /// An ICMP socket holding one echo request to `gateway`.
    pub(crate) fn socket(gateway: Ipv4Addr) -> Result<icmp::Socket<'static>, NetError> {
        let repr = Icmpv4Repr::EchoRequest {
            ident: PROBE_IDENT,
            seq_no: 0,
            data: PROBE_DATA,
        };
        let len = repr.buffer_len();
        // Receive nothing (the reply, if any, is dropped); send one datagram.
        let rx = icmp::PacketBuffer::new(vec![], vec![]);
        let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY], vec![0; len]);
        let mut s = icmp::Socket::new(rx, tx);
        s.bind(icmp::Endpoint::Ident(PROBE_IDENT))
            .map_err(|_| NetError::InvalidState)?;
        let buf = s
            .send(len, IpAddress::Ipv4(gateway))
            .map_err(|_| NetError::InvalidState)?;
        repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &Default::default());
        Ok(s)
    }

    /// Starts waiting on `handle` (a [`socket`](Self::socket) added to the set);
    /// [`stop`](Self::stop) the previous probe first.
    pub(crate) fn start(&mut self, handle: SocketHandle, gateway: Ipv4Addr) {
        debug_assert!(self.pending.is_none(), "a gateway probe is already running");
        self.pending = Some(Pending {
            handle,
            gateway,
            since: None,
        });
    }

    /// Ends the probe (address or gateway gone); returns its socket to free.
    pub(crate) fn stop(&mut self) -> Option<SocketHandle> {
        self.pending.take().map(|p| p.handle)
    }

    /// After each poll: returns the probe's socket once it is done (the echo request
    /// left, so the gateway's MAC is known; or the probe ran out of time).
    pub(crate) fn poll(&mut self, sockets: &SocketSet<'_>, now: Instant) -> Option<SocketHandle> {
        let p = self.pending.as_mut()?;
        let sent = sockets.get::<icmp::Socket>(p.handle).send_queue() == 0;
        let age = now.saturating_duration_since(*p.since.get_or_insert(now));
        if sent {
            log::debug!("net: gateway {} resolved in {age:?}", p.gateway);
        } else if age >= PROBE_LIFETIME {
            log::warn!("net: gateway {} does not answer ARP", p.gateway);
        } else {
            return None;
        }
        self.stop()
    }

    /// Whether readiness may be reported: no probe pending, or it waited long enough.
    pub(crate) fn settled(&self, now: Instant) -> bool {
        self.pending.as_ref().is_none_or(|p| {
            p.since
                .is_some_and(|t| now.saturating_duration_since(t) >= GATEWAY_WAIT)
        })
    }

    /// When the poller must run again for the probe's deadlines.
    pub(crate) fn poll_at(&self, now: Instant) -> Option<Instant> {
        let since = self.pending.as_ref()?.since.unwrap_or(now);
        let wait = since + GATEWAY_WAIT;
        Some(if now < wait {
            wait
        } else {
            since + PROBE_LIFETIME
        })
    }
}
