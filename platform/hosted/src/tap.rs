//! A Linux TAP interface as an Oasis [`NetDevice`], for running our own stack on the host.
//!
//! [`TapDevice::open`] attaches to (or creates) the TAP interface `NAME` through
//! `/dev/net/tun` with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`: every `read` is one
//! Ethernet frame without FCS behind a 12-byte virtio-net header, every `write` sends
//! one the same way. The descriptor is non-blocking and registered
//! with the calling thread's [reactor](crate::reactor), so a frame arriving while the
//! executor sleeps wakes it (the stack's poller then runs and calls
//! [`receive`](NetDevice::receive)).
//!
//! Buffers are allocated once: a ring of up to [`RX_SLOTS`] receive buffers (fewer,
//! down to [`MIN_RX_SLOTS`], when a large MTU would take the ring past
//! [`RX_RING_BYTES`]: a TAP at 65521 bytes would otherwise zero 2 MiB at start) filled by
//! non-blocking reads, and one transmit buffer written straight to the descriptor
//! (the host copies it; a TAP write never waits). Frames shorter than an Ethernet
//! header or longer than `mtu + 14` are dropped and counted in [`TapStats`].
//!
//! Wake-up contract: epoll reports each newly arrived frame (edge-triggered). Frames
//! already read into the ring do not wake anyone again, so before the executor
//! sleeps the stack must have called `receive` until `None`, or [`poll`] must have
//! returned `false` (otherwise it must ask to be polled again at once).
//!
//! The interface itself (addresses, up/down, MTU, namespace) is configured from
//! outside with `ip`; [`NetInfo::mtu`] is the MTU it had when opened.
//!
//! Checksum offload (the virtio-net header, virtio 1.2 §5.1.6, through
//! [`oasis_virtio::net::NetHdr`]): the device reports
//! [`checksum_offload`](NetDevice::checksum_offload). Frames out may leave their
//! TCP/UDP checksum to the host kernel (`NEEDS_CSUM` with `csum_start`/`csum_offset`;
//! a frame delivered on the host is then never summed at all, as on loopback).
//! `TUNSETOFFLOAD` with `TUN_F_CSUM` lets the host's own frames come the same way;
//! received frames say `NEEDS_CSUM` (from the host's stack, not summed yet:
//! [`RxChecksum::Partial`]), `DATA_VALID` (checked by the host, e.g. a NIC's
//! verdict on a forwarded frame: [`RxChecksum::Valid`]) or neither
//! ([`RxChecksum::Unverified`]: the stack checks it). GSO is not asked for, so every
//! frame fits the MTU; a frame with a GSO type is dropped.
//!
//! In the [sandbox](crate::sandbox) the TAP is opened before sealing, registered with
//! no reactor (the sandbox's idle wait `ppoll`s its descriptor, level-triggered, so
//! the contract above holds a fortiori) and never closed: `close(2)` is not among the
//! sandbox's system calls, so dropping the device leaves the descriptor open.
//!
//! [`poll`]: NetDevice::poll

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use oasis_devices::{NetDevice, NetInfo, RxChecksum, TxChecksum};
use oasis_virtio::net::{HDR_F_DATA_VALID, HDR_F_NEEDS_CSUM, HDR_LEN, NetHdr};
use polling::PollMode;

use crate::net::HostNetError;
use crate::reactor::{Registered, retry_interrupted};

/// Receive buffers in the ring.
pub const RX_SLOTS: usize = 32;

/// Receive slots at least, whatever the MTU.
pub const MIN_RX_SLOTS: usize = 2;

/// Bytes the receive ring takes at most, beyond [`MIN_RX_SLOTS`] slots: 32 slots at
/// Ethernet's MTU. Frames wait in the kernel's queue either way; the ring only saves
/// reads.
pub const RX_RING_BYTES: usize = RX_SLOTS * (VNET_HDR_LEN + DEFAULT_MTU + ETHERNET_HEADER_LEN + 1);

/// Length of an Ethernet header (destination, source, EtherType).
pub const ETHERNET_HEADER_LEN: usize = 14;

/// MTU assumed when the host does not report one.
pub const DEFAULT_MTU: usize = 1500;

/// Largest MTU accepted from the host (the largest IP packet).
pub const MAX_MTU: usize = 65535;

/// The clone device of the Linux tun/tap driver.
const TUN_PATH: &str = "/dev/net/tun";

/// Bytes of virtio-net header before every frame: virtio 1.x's 12
/// (`num_buffers` included, unused here), set with `TUNSETVNETHDRSZ`.
pub const VNET_HDR_LEN: usize = HDR_LEN;

/// `VIRTIO_NET_HDR_GSO_NONE`.
const GSO_NONE: u8 = 0;

/// Frame counters since the device was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames received and put in the ring.
    pub rx_frames: u64,
    /// Frames read and dropped as too short or too long, or with a header we did not
    /// ask for (GSO) or that points outside the frame.
    pub rx_dropped: u64,
    /// Received frames by what their header said of their checksum: `NEEDS_CSUM`
    /// (summed by nobody yet: the host's own), `DATA_VALID` (checked by the host).
    pub rx_csum_partial: u64,
    /// See [`rx_csum_partial`](Self::rx_csum_partial).
    pub rx_csum_valid: u64,
    /// Frames sent with their TCP/UDP checksum left to the host (`NEEDS_CSUM`).
    pub tx_csum_partial: u64,
    /// Frames handed to the host.
    pub tx_frames: u64,
    /// Frames the host refused (e.g. the interface is down).
    pub tx_dropped: u64,
}

/// The TAP descriptor: registered with the thread's reactor (closed on drop), or kept
/// open for the life of the process (the sandbox).
enum TapFile {
    Registered(Registered<File>),
    Kept(&'static File),
}

impl TapFile {
    fn io(&self) -> &File {
        match self {
            TapFile::Registered(r) => r.io(),
            TapFile::Kept(f) => f,
        }
    }
}

/// A TAP interface (see the module docs). Closing it (drop) removes a non-persistent
/// interface.
pub struct TapDevice {
    file: TapFile,
    name: String,
    info: NetInfo,
    /// `slots` slots of `slot_len` bytes each: header, then frame.
    rx: Box<[u8]>,
    /// Frame length (header excluded) per slot.
    rx_len: [usize; RX_SLOTS],
    /// What the header said of the frame's checksum, per slot.
    rx_csum: [RxChecksum; RX_SLOTS],
    rx_head: usize,
    rx_count: usize,
    /// `12 + mtu + 14 + 1`: one spare byte tells an oversized frame from a full one.
    slot_len: usize,
    /// Slots in use: [`RX_SLOTS`], fewer at a large MTU.
    slots: usize,
    /// Header, then frame.
    tx: Box<[u8]>,
    /// Whether the host takes our partial checksums and may send us its own
    /// (`TUN_F_CSUM` was accepted); without it the header is still there, all zero.
    offload: bool,
    stats: TapStats,
    /// The last read error logged, so a broken interface does not flood the log.
    last_error: Option<io::ErrorKind>,
}

impl core::fmt::Debug for TapDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TapDevice")
            .field("name", &self.name)
            .field("info", &self.info)
            .field("queued", &self.rx_count)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Checks `name` as a Linux interface name and returns it as `ifr_name` bytes.
fn ifname(name: &str) -> Result<[libc::c_char; libc::IFNAMSIZ], HostNetError> {
    let bad = |why| HostNetError::TapName {
        name: name.to_string(),
        why,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(bad("it is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad("`.` and `..` are reserved"));
    }
    if name
        .bytes()
        .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace())
    {
        return Err(bad("it contains NUL, `/`, `:` or whitespace"));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (o, b) in out.iter_mut().zip(name.bytes()) {
        *o = b as libc::c_char;
    }
    Ok(out)
}

/// The name the kernel wrote back into an `ifr_name`.
fn ifname_str(raw: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The interface's MTU (`SIOCGIFMTU`), if the host reports one in range.
fn query_mtu(name: &[libc::c_char; libc::IFNAMSIZ]) -> Option<usize> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok()?;
    // SAFETY: `ifreq` is plain old data for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    ifr.ifr_name = *name;
    // SAFETY: SIOCGIFMTU reads `ifr_name` and writes `ifr_ifru.ifru_mtu` of the
    // `ifreq` we pass, which lives for the whole call; the socket is open.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the ioctl succeeded, so the kernel wrote the `ifru_mtu` member.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    usize::try_from(mtu)
        .ok()
        .filter(|m| (68..=MAX_MTU).contains(m))
}

/// Bytes of one receive slot at `mtu`: header, frame, one spare byte.
fn slot_len(mtu: usize) -> usize {
    VNET_HDR_LEN + mtu + ETHERNET_HEADER_LEN + 1
}

/// Receive slots for `mtu`: [`RX_SLOTS`] as long as they fit [`RX_RING_BYTES`].
fn rx_slots(mtu: usize) -> usize {
    (RX_RING_BYTES / slot_len(mtu)).clamp(MIN_RX_SLOTS, RX_SLOTS)
}

/// A random locally administered unicast MAC address.
fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    if getrandom::fill(&mut mac).is_err() {
        // No entropy: derive something per process rather than fail.
        let pid = std::process::id().to_be_bytes();
        mac = [0, 0x0a, pid[0], pid[1], pid[2], pid[3]];
    }
    mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
    mac
}

/// What [`attach`] opened.
struct Attached {
    file: File,
    /// The name the kernel reports.
    name: String,
    mtu: usize,
    /// `TUN_F_CSUM` accepted.
    offload: bool,
}

/// Attaches to (or creates) TAP interface `name` with a virtio-net header and asks
/// for checksum offload.
fn attach(name: &str) -> Result<Attached, HostNetError> {
    let raw_name = ifname(name)?;
    let open_err = |source| HostNetError::TapOpen {
        name: name.to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(open_err)?;
    // SAFETY: `ifreq` is plain old data for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    ifr.ifr_name = raw_name;
    // IFF_TAP | IFF_NO_PI | IFF_VNET_HDR = 0x5002 fits a c_short.
    ifr.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the `ifreq` we pass, which lives for the
    // whole call; `file` is an open /dev/net/tun descriptor.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    if rc != 0 {
        return Err(open_err(io::Error::last_os_error()));
    }
    let hdr_len = VNET_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one c_int through the pointer, which points to a
    // live local for the whole call; `file` is the TAP descriptor.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len) };
    if rc != 0 {
        return Err(open_err(io::Error::last_os_error()));
    }
    // TUN_F_CSUM alone: no TSO/UFO, so every frame fits the MTU. The argument is the
    // flag word itself, not a pointer.
    // SAFETY: TUNSETOFFLOAD takes its argument by value and touches no memory of ours.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(libc::TUN_F_CSUM),
        )
    };
    let offload = rc == 0;
    if !offload {
        log::info!(
            "TAP {name}: no checksum offload ({}): checksums in software",
            io::Error::last_os_error()
        );
    }
    Ok(Attached {
        file,
        name: ifname_str(&ifr.ifr_name),
        mtu: query_mtu(&ifr.ifr_name).unwrap_or(DEFAULT_MTU),
        offload,
    })
}

/// What a received frame's virtio-net header says of its checksum; `None` when the
/// frame must be dropped: a GSO frame (never asked for) or a `NEEDS_CSUM` position
/// outside the frame. `frame_len` excludes the header.
fn rx_checksum(hdr: &NetHdr, frame_len: usize) -> Option<RxChecksum> {
    if hdr.gso_type != GSO_NONE {
        return None;
    }
    if hdr.flags & HDR_F_NEEDS_CSUM != 0 {
        let end = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset) + 2;
        return (end <= frame_len).then_some(RxChecksum::Partial);
    }
    if hdr.flags & HDR_F_DATA_VALID != 0 {
        return Some(RxChecksum::Valid);
    }
    Some(RxChecksum::Unverified)
}

/// The header a transmitted frame goes out with.
fn tx_header(csum: TxChecksum) -> NetHdr {
    match csum {
        TxChecksum::Complete => NetHdr::default(),
        TxChecksum::Partial { start, offset } => NetHdr {
            flags: HDR_F_NEEDS_CSUM,
            csum_start: start,
            csum_offset: offset,
            ..NetHdr::default()
        },
    }
}

impl TapDevice {
    /// Opens TAP interface `name` (created if missing; `tapN%d`-style patterns let the
    /// kernel pick, see [`name`](Self::name)) with a random locally administered MAC.
    pub fn open(name: &str) -> Result<TapDevice, HostNetError> {
        Self::open_with_mac(name, random_mac())
    }

    /// Like [`open`](Self::open), with our side's MAC address given.
    pub fn open_with_mac(name: &str, mac: [u8; 6]) -> Result<TapDevice, HostNetError> {
        let a = attach(name)?;
        let file = Registered::new(a.file, PollMode::Edge).map_err(HostNetError::Reactor)?;
        Ok(Self::with_file(
            TapFile::Registered(file),
            a.name,
            mac,
            a.mtu,
            a.offload,
        ))
    }

    /// Opens TAP `name` for the sandbox: no reactor, and the descriptor stays open
    /// until the process exits (see the module docs). Returns the raw descriptor too,
    /// for the sandbox's idle wait and its seccomp filter.
    pub(crate) fn open_kept(name: &str) -> Result<(TapDevice, RawFd), HostNetError> {
        let a = attach(name)?;
        let file: &'static File = Box::leak(Box::new(a.file));
        let fd = file.as_raw_fd();
        Ok((
            Self::with_file(TapFile::Kept(file), a.name, random_mac(), a.mtu, a.offload),
            fd,
        ))
    }

    fn with_file(
        file: TapFile,
        name: String,
        mac: [u8; 6],
        mtu: usize,
        offload: bool,
    ) -> TapDevice {
        let slot_len = slot_len(mtu);
        let slots = rx_slots(mtu);
        TapDevice {
            file,
            name,
            info: NetInfo { mac, mtu },
            rx: vec![0; slot_len * slots].into_boxed_slice(),
            rx_len: [0; RX_SLOTS],
            rx_csum: [RxChecksum::Unverified; RX_SLOTS],
            rx_head: 0,
            rx_count: 0,
            slot_len,
            slots,
            tx: vec![0; VNET_HDR_LEN + mtu + ETHERNET_HEADER_LEN].into_boxed_slice(),
            offload,
            stats: TapStats::default(),
            last_error: None,
        }
    }

    /// The interface's name as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Frame counters.
    pub fn stats(&self) -> TapStats {
        self.stats
    }

    /// The largest frame carried: MTU plus the Ethernet header.
    fn max_frame(&self) -> usize {
        self.info.mtu + ETHERNET_HEADER_LEN
    }

    /// Reads waiting frames into free ring slots until the host has none left or the
    /// ring is full.
    fn fill(&mut self) {
        while self.rx_count < self.slots {
            let slot = (self.rx_head + self.rx_count) % self.slots;
            let start = slot * self.slot_len;
            let Some(buf) = self.rx.get_mut(start..start + self.slot_len) else {
                return;
            };
            let mut file = self.file.io();
            let max_frame = self.info.mtu + ETHERNET_HEADER_LEN;
            match retry_interrupted(|| file.read(buf)) {
                Ok(n) => {
                    let frame_len = n.saturating_sub(VNET_HDR_LEN);
                    let csum = NetHdr::parse(buf)
                        .filter(|_| (ETHERNET_HEADER_LEN..=max_frame).contains(&frame_len))
                        .and_then(|hdr| rx_checksum(&hdr, frame_len));
                    let Some(csum) = csum else {
                        self.stats.rx_dropped += 1;
                        continue;
                    };
                    match csum {
                        RxChecksum::Partial => self.stats.rx_csum_partial += 1,
                        RxChecksum::Valid => self.stats.rx_csum_valid += 1,
                        RxChecksum::Unverified => {}
                    }
                    self.rx_len[slot] = frame_len;
                    self.rx_csum[slot] = csum;
                    self.rx_count += 1;
                    self.stats.rx_frames += 1;
                    self.last_error = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    if self.last_error != Some(e.kind()) {
                        log::warn!("TAP {}: read failed: {e}", self.name);
                        self.last_error = Some(e.kind());
                    }
                    return;
                }
            }
        }
    }
}

impl NetDevice for TapDevice {
    fn info(&self) -> NetInfo {
        self.info
    }

    fn receive<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.receive_with_checksum(|frame, _| f(frame))
    }

    fn checksum_offload(&self) -> bool {
        // Our partial checksums are taken with or without TUN_F_CSUM (which governs
        // what the host sends us), but a host that refused it is an old or odd one:
        // keep to what was asked and granted.
        self.offload
    }

    fn receive_with_checksum<R>(
        &mut self,
        f: impl FnOnce(&mut [u8], RxChecksum) -> R,
    ) -> Option<R> {
        if self.rx_count == 0 {
            self.fill();
        }
        if self.rx_count == 0 {
            return None;
        }
        let slot = self.rx_head;
        let start = slot * self.slot_len + VNET_HDR_LEN;
        let len = self.rx_len[slot];
        let frame = self.rx.get_mut(start..start + len)?;
        let r = f(frame, self.rx_csum[slot]);
        self.rx_head = (self.rx_head + 1) % self.slots;
        self.rx_count -= 1;
        Some(r)
    }

    fn can_transmit(&self) -> bool {
        true
    }

    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.transmit_with_checksum(len, |frame| (f(frame), TxChecksum::Complete))
    }

    fn transmit_with_checksum<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxChecksum),
    ) -> Option<R> {
        if len > self.max_frame() {
            return None;
        }
        let buf = self.tx.get_mut(..VNET_HDR_LEN + len)?;
        let (hdr, frame) = buf.split_at_mut(VNET_HDR_LEN);
        // A partial checksum is finished by the host even where it refused TUN_F_CSUM
        // (that flag governs what it sends us), so `csum` is obeyed either way.
        let (r, csum) = f(frame);
        if csum != TxChecksum::Complete {
            self.stats.tx_csum_partial += 1;
        }
        tx_header(csum).emit(hdr)?;
        let mut file = self.file.io();
        match retry_interrupted(|| file.write(buf)) {
            Ok(n) if n == VNET_HDR_LEN + len => self.stats.tx_frames += 1,
            Ok(n) => {
                log::debug!("TAP {}: host took {n} of {len} bytes", self.name);
                self.stats.tx_dropped += 1;
            }
            Err(e) => {
                // Like a NIC whose link is down: the frame is lost, TCP resends.
                log::debug!("TAP {}: write of {len} bytes failed: {e}", self.name);
                self.stats.tx_dropped += 1;
            }
        }
        Some(r)
    }

    fn poll(&mut self) -> bool {
        self.fill();
        self.rx_count > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn bad_interface_names_are_refused_with_the_reason() {
        for (name, why) in [
            ("", "empty"),
            ("a-name-that-is-too-long", "longer than 15"),
            ("..", "reserved"),
            ("tap/0", "NUL"),
            ("tap 0", "whitespace"),
            ("tap:0", "`:`"),
            ("tap\0", "NUL"),
        ] {
            match TapDevice::open(name) {
                Err(e @ HostNetError::TapName { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&format!("{name:?}")) && msg.contains(why),
                        "{msg}"
                    );
                }
                Err(e) => panic!("{name:?}: expected TapName, got {e}"),
                Ok(_) => panic!("{name:?}: accepted"),
            }
        }
        assert!(ifname("tap0").is_ok());
        assert!(ifname("fifteen-bytes-x").is_ok());
    }

    #[test]
    fn the_receive_ring_shrinks_at_a_large_mtu() {
        assert_eq!(rx_slots(DEFAULT_MTU), RX_SLOTS);
        assert_eq!(rx_slots(9000), 5);
        assert_eq!(rx_slots(65521), MIN_RX_SLOTS);
        for mtu in [68, 1500, 9000] {
            assert!(rx_slots(mtu) * slot_len(mtu) <= RX_RING_BYTES);
        }
    }

    #[test]
    fn the_virtio_header_says_what_to_trust() {
        let hdr = |flags, gso_type, csum_start, csum_offset| NetHdr {
            flags,
            gso_type,
            csum_start,
            csum_offset,
            ..NetHdr::default()
        };
        assert_eq!(
            rx_checksum(&hdr(0, 0, 0, 0), 60),
            Some(RxChecksum::Unverified)
        );
        assert_eq!(
            rx_checksum(&hdr(HDR_F_DATA_VALID, 0, 0, 0), 60),
            Some(RxChecksum::Valid)
        );
        assert_eq!(
            rx_checksum(&hdr(HDR_F_NEEDS_CSUM, 0, 34, 16), 60),
            Some(RxChecksum::Partial)
        );
        // The field must lie inside the frame.
        assert_eq!(rx_checksum(&hdr(HDR_F_NEEDS_CSUM, 0, 34, 16), 51), None);
        assert_eq!(
            rx_checksum(&hdr(HDR_F_NEEDS_CSUM, 0, u16::MAX, u16::MAX), 60),
            None
        );
        // GSO was never asked for.
        assert_eq!(rx_checksum(&hdr(0, 1, 0, 0), 60), None);

        assert_eq!(tx_header(TxChecksum::Complete), NetHdr::default());
        let h = tx_header(TxChecksum::Partial {
            start: 54,
            offset: 6,
        });
        assert_eq!(
            (h.flags, h.gso_type, h.csum_start, h.csum_offset),
            (HDR_F_NEEDS_CSUM, 0, 54, 6)
        );
    }

    #[test]
    fn random_macs_are_local_unicast() {
        for _ in 0..16 {
            let mac = random_mac();
            assert_eq!(mac[0] & 0x03, 0x02, "{mac:02x?}");
        }
    }

    /// Runs `ip ARGS`; the error says which command failed and why.
    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// A network namespace that exists as long as this guard does.
    struct Netns(String);

    impl Netns {
        fn create(name: String) -> Result<Netns, String> {
            ip(&["netns", "add", &name])?;
            Ok(Netns(name))
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            if let Err(e) = ip(&["netns", "del", &self.0]) {
                eprintln!("cleanup: {e}");
            }
        }
    }

    /// Skips (or fails under `OASIS_REQUIRE_NETNS=1`) when the host cannot give us
    /// a namespace and a TAP.
    fn unavailable(why: &str) {
        if std::env::var("OASIS_REQUIRE_NETNS").as_deref() == Ok("1") {
            panic!(
                "TAP test needs root, /dev/net/tun and `ip netns` (OASIS_REQUIRE_NETNS=1): {why}"
            );
        }
        eprintln!("skipping TAP test: {why} (needs root, /dev/net/tun and `ip netns`)");
    }

    /// Waits (in the platform's idle wait, as the executor would) for a frame that
    /// `pick` accepts; other frames (IPv6 router solicitations …) are skipped.
    fn wait_for_frame<T>(
        tap: &mut TapDevice,
        what: &str,
        mut pick: impl FnMut(&[u8]) -> Option<T>,
    ) -> T {
        let p = platform();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            while let Some(found) = tap.receive(|f| pick(f)) {
                if let Some(v) = found {
                    return v;
                }
            }
            assert!(
                !tap.poll(),
                "poll() says a frame waits right after receive() ran dry"
            );
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {what} within 5 s; stats {:?}",
                tap.stats()
            );
            let left = u64::try_from((deadline - now).as_nanos()).unwrap_or(u64::MAX);
            p.wait_for_event(Some(p.monotonic_nanos().saturating_add(left)));
        }
    }

    const HOST_IP: [u8; 4] = [10, 77, 0, 1];
    const OUR_IP: [u8; 4] = [10, 77, 0, 2];
    const OUR_MAC: [u8; 6] = [0x02, 0x0a, 0x5e, 0x00, 0x00, 0x02];

    #[test]
    fn tap_in_a_namespace_carries_arp_and_udp_both_ways() {
        let pid = std::process::id();
        // Declared before the TAP so it is dropped after it, even on panic.
        let ns = match Netns::create(format!("oasis-t-{pid}")) {
            Ok(ns) => ns,
            Err(e) => return unavailable(&e),
        };
        let mut tap = match TapDevice::open_with_mac(&format!("oasist{pid}"), OUR_MAC) {
            Ok(t) => t,
            Err(e) => return unavailable(&e.to_string()),
        };
        let name = tap.name().to_string();
        assert_eq!(name, format!("oasist{pid}"));
        assert!(format!("{tap:?}").contains(&name));
        assert_eq!(
            tap.info(),
            NetInfo {
                mac: OUR_MAC,
                mtu: 1500
            }
        );
        assert!(tap.can_transmit());
        // Move the interface into the namespace: all traffic stays inside it.
        let n = ns.0.as_str();
        ip(&["link", "set", &name, "netns", n]).unwrap();
        ip(&["-n", n, "addr", "add", "10.77.0.1/24", "dev", &name]).unwrap();
        ip(&["-n", n, "link", "set", &name, "up"]).unwrap();
        // One UDP datagram to 10.77.0.2:9 from inside the namespace: the kernel asks
        // for our MAC first (ARP) and holds the datagram until we answer.
        let sent = Command::new("ip")
            .args([
                "netns",
                "exec",
                n,
                "bash",
                "-c",
                "echo oasis > /dev/udp/10.77.0.2/9",
            ])
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "sending from the namespace failed: {sent:?}"
        );

        let host_mac = wait_for_frame(&mut tap, "ARP request for 10.77.0.2", |f| {
            let arp_request = f.len() >= 42
                && f[12..14] == [0x08, 0x06]
                && f[20..22] == [0, 1]
                && f[28..32] == HOST_IP
                && f[38..42] == OUR_IP;
            arp_request.then(|| <[u8; 6]>::try_from(&f[6..12]).unwrap())
        });

        let mut reply = Vec::with_capacity(42);
        reply.extend_from_slice(&host_mac);
        reply.extend_from_slice(&OUR_MAC);
        reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        reply.extend_from_slice(&OUR_MAC);
        reply.extend_from_slice(&OUR_IP);
        reply.extend_from_slice(&host_mac);
        reply.extend_from_slice(&HOST_IP);
        assert_eq!(
            tap.transmit(reply.len(), |b| b.copy_from_slice(&reply)),
            Some(())
        );
        assert_eq!(
            tap.transmit(1515, |_| ()),
            None,
            "a frame above MTU + 14 must be refused"
        );

        let payload = wait_for_frame(&mut tap, "the UDP datagram", |f| {
            let udp_to_us = f.len() >= 42
                && f[0..6] == OUR_MAC
                && f[12..14] == [0x08, 0x00]
                && f[23] == 17
                && f[26..30] == HOST_IP
                && f[30..34] == OUR_IP
                && f[36..38] == [0, 9];
            udp_to_us.then(|| f[42..].to_vec())
        });
        assert_eq!(payload, b"oasis\n");
        // The host's own datagram came with its checksum left to us (TUN_F_CSUM).
        assert!(tap.checksum_offload());
        let stats = tap.stats();
        assert!(stats.rx_csum_partial >= 1, "{stats:?}");
        assert_eq!(stats.tx_frames, 1);
        assert_eq!(stats.tx_dropped, 0);
        assert!(stats.rx_frames >= 2);
        drop(tap);
        drop(ns);
    }
}
