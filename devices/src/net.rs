//! `NetDevice`: Ethernet frames in and out, with buffers owned by the device.
//!
//! Ownership: the device owns every buffer. [`NetDevice::receive`] lends the next
//! received frame to a closure and takes the buffer back (to re-post it to the
//! device) when the closure returns; [`NetDevice::transmit`] lends a free transmit
//! buffer of the requested length and queues it when the closure returns. Neither
//! call allocates or blocks; both return `None` when nothing is available. Interrupt
//! acknowledgement and buffer recycling happen in [`NetDevice::poll`].
//!
//! Checksums: a device that can take TCP/UDP checksum work off the stack says so with
//! [`NetDevice::checksum_offload`]; it then reports per received frame what it knows
//! of the frame's checksum ([`RxChecksum`], through
//! [`receive_with_checksum`](NetDevice::receive_with_checksum)) and accepts frames
//! whose checksum it must finish ([`TxChecksum::Partial`], through
//! [`transmit_with_checksum`](NetDevice::transmit_with_checksum)). Devices without
//! offload need implement neither: the defaults report every frame
//! [`RxChecksum::Unverified`] and send every frame as written.

/// Static facts about a network device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo {
    /// The device's Ethernet address.
    pub mac: [u8; 6],
    /// The largest IP packet the device carries (Ethernet payload), e.g. 1500.
    pub mtu: usize,
}

/// What a device knows of a received frame's TCP/UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxChecksum {
    /// Nothing: the receiver must verify the checksum itself. Every frame that may
    /// come from outside the host without having been checked on the way is this.
    Unverified,
    /// The host verified it (virtio `DATA_VALID`: e.g. a NIC checked a frame it
    /// forwards).
    Valid,
    /// Not computed yet: a sender on the host itself left the pseudo-header sum in
    /// the field for the last hop to finish (virtio `NEEDS_CSUM`). The frame never
    /// crossed a wire; a receiver trusts it as it trusts the host's memory. (A
    /// forwarder would have to complete it.)
    Partial,
}

/// What a transmitted frame asks of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxChecksum {
    /// The frame is complete as written.
    Complete,
    /// The device (or the host behind it) finishes the frame: the Internet checksum
    /// of `frame[start..]` goes at `start + offset`, whose field holds the
    /// pseudo-header sum (folded, not complemented) — virtio `NEEDS_CSUM` with
    /// `csum_start` and `csum_offset` (virtio 1.2 §5.1.6.2). Only for a device whose
    /// [`checksum_offload`](NetDevice::checksum_offload) is `true`.
    Partial {
        /// Where checksumming starts (the TCP or UDP header), from the frame's start.
        start: u16,
        /// Where the checksum field is, from `start` (16 for TCP, 6 for UDP).
        offset: u16,
    },
}

/// How full a device's queues are: a snapshot for metrics ([`NetDevice::occupancy`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueOccupancy {
    /// Receive buffers posted to the device and not yet taken back (empty ones
    /// waiting for a frame, plus filled ones the driver has not yet read).
    pub rx_posted: u16,
    /// Receive queue size (buffers the device can hold at most).
    pub rx_size: u16,
    /// Transmit buffers handed to the device and not yet reclaimed.
    pub tx_in_flight: u16,
    /// Transmit queue size.
    pub tx_size: u16,
}

/// A device that sends and receives Ethernet frames (without FCS).
pub trait NetDevice {
    /// MAC address and MTU.
    fn info(&self) -> NetInfo;

    /// Lends the next received frame to `f`; `None` when no frame is waiting. The
    /// slice is the Ethernet frame (destination MAC first). The closure may modify it
    /// in place.
    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R>;

    /// Whether [`transmit`](Self::transmit) would find a free buffer now.
    fn can_transmit(&self) -> bool;

    /// Lends a zeroed-or-stale transmit buffer of exactly `len` bytes to `f`, which
    /// writes the frame; the frame is queued when `f` returns. `None` when every
    /// transmit buffer is in flight, or when `len` exceeds `mtu + 14`.
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R>;

    /// Housekeeping after an interrupt or before sleeping: acknowledge the device,
    /// reclaim completed transmit buffers, re-post receive buffers, notify the device
    /// of queued frames. Returns whether a frame is waiting to be received.
    fn poll(&mut self) -> bool;

    /// Whether the device takes TCP/UDP checksum work: it accepts
    /// [`TxChecksum::Partial`] frames and reports [`RxChecksum`] truthfully. Fixed
    /// once the device is open. Default: `false`.
    fn checksum_offload(&self) -> bool {
        false
    }

    /// [`receive`](Self::receive), also telling `f` what the device knows of the
    /// frame's checksum. Default: every frame is [`RxChecksum::Unverified`].
    fn receive_with_checksum<R>(
        &mut self,
        f: impl FnOnce(&mut [u8], RxChecksum) -> R,
    ) -> Option<R> {
        self.receive(|frame| f(frame, RxChecksum::Unverified))
    }

    /// [`transmit`](Self::transmit), where `f` also says whether the device must
    /// finish the frame's checksum. Default: the frame is sent as written, so a
    /// device without [`checksum_offload`](Self::checksum_offload) must only be
    /// given [`TxChecksum::Complete`] frames (a `Partial` one would leave with the
    /// pseudo-header sum in its checksum field, and its receiver would drop it).
    fn transmit_with_checksum<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxChecksum),
    ) -> Option<R> {
        self.transmit(len, |frame| f(frame).0)
    }

    /// How full the device's queues are now; `None` (the default) for devices
    /// without descriptor queues (TAP, in-memory wires). Cheap: a few loads.
    fn occupancy(&self) -> Option<QueueOccupancy> {
        None
    }
}
