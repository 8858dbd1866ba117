//! `NetDevice`: Ethernet frames in and out, with buffers owned by the device.
//!
//! Ownership: the device owns every buffer. [`NetDevice::receive`] lends the next
//! received frame to a closure and takes the buffer back (to re-post it to the
//! device) when the closure returns; [`NetDevice::transmit`] lends a free transmit
//! buffer of the requested length and queues it when the closure returns. Neither
//! call allocates or blocks; both return `None` when nothing is available. Interrupt
//! acknowledgement and buffer recycling happen in [`NetDevice::poll`].

/// Static facts about a network device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo {
    /// The device's Ethernet address.
    pub mac: [u8; 6],
    /// The largest IP packet the device carries (Ethernet payload), e.g. 1500.
    pub mtu: usize,
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

    /// How full the device's queues are now; `None` (the default) for devices
    /// without descriptor queues (TAP, in-memory wires). Cheap: a few loads.
    fn occupancy(&self) -> Option<QueueOccupancy> {
        None
    }
}
