//! The `Transport` trait: how a driver reaches a virtio device's registers, whatever
//! the bus (virtio-mmio or virtio-pci), plus the feature-negotiation sequence.
//!
//! Device initialisation (virtio 1.2 §3.1.1) is split so that drivers can read the
//! device configuration while they choose features: [`start_init`] (reset,
//! ACKNOWLEDGE, DRIVER, read features, insist on VIRTIO_F_VERSION_1),
//! [`accept_features`] (write them, FEATURES_OK, verify), then queue setup, then
//! [`Transport::set_status`] with DRIVER_OK. On any error after the reset drivers set
//! FAILED ([`fail`]).

pub mod mmio;
pub mod pci;

use crate::queue::QueueAddrs;

/// Device status bits (virtio 1.2 §2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Device-independent feature bits (virtio 1.2 §6).
pub mod features {
    /// Indirect descriptors (not used by our drivers).
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// `used_event` / `avail_event` notification suppression.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// Virtio 1.x ("modern") device: required by every driver here.
    pub const VERSION_1: u64 = 1 << 32;
    /// The device uses the platform's DMA translation; with our identity map and no
    /// IOMMU, bus addresses are physical addresses, so accepting it is correct.
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
    /// The driver must use real memory barriers (we always do).
    pub const ORDER_PLATFORM: u64 = 1 << 36;
}

/// Virtio device types (virtio 1.2 §5).
pub mod device_id {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Entropy source.
    pub const RNG: u32 = 4;
}

/// Why a transport operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The device has no such queue (its maximum size reads 0).
    #[error("the device has no queue {0}")]
    NoSuchQueue(u16),
    /// The queue was already enabled (a driver bug or a device that was not reset).
    #[error("queue {0} is already in use")]
    QueueInUse(u16),
    /// The requested size exceeds the device's maximum.
    #[error("queue {queue}: size {size} exceeds the device maximum {max}")]
    QueueTooLarge {
        /// Queue index.
        queue: u16,
        /// Requested size.
        size: u16,
        /// Device maximum.
        max: u16,
    },
    /// The device refused the MSI-X vector for a queue or for configuration changes.
    #[error(
        "the device refused MSI-X table entry {entry} for queue {queue:?} (None: configuration)"
    )]
    VectorRefused {
        /// Queue, or `None` for the configuration vector.
        queue: Option<u16>,
        /// MSI-X table entry.
        entry: u16,
    },
    /// The device's notify offset for a queue points outside its notify region.
    #[error(
        "queue {queue}: notify offset {offset:#x} lies outside the {len:#x}-byte notify region"
    )]
    NotifyOutOfRange {
        /// Queue index.
        queue: u16,
        /// Byte offset the device asked for.
        offset: usize,
        /// Region length.
        len: usize,
    },
    /// A configuration-space read reaches past the device's configuration.
    #[error("config read of {width} bytes at {offset:#x} is outside the {len}-byte config space")]
    ConfigOutOfRange {
        /// Offset asked for.
        offset: usize,
        /// Access width.
        width: usize,
        /// Configuration size.
        len: usize,
    },
    /// The configuration kept changing under us.
    #[error("device configuration changed during {0} consecutive reads")]
    ConfigUnstable(u32),
    /// The device did not read back status 0 after a reset.
    #[error("device did not complete its reset (status still {0:#04x})")]
    ResetTimeout(u8),
}

/// Why device initialisation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    /// The device is not of the expected type.
    #[error("device type {found} is not the expected type {expected}")]
    WrongDevice {
        /// Expected virtio device id.
        expected: u32,
        /// Id the transport reports.
        found: u32,
    },
    /// Legacy-only device: we drive virtio 1.x devices only.
    #[error(
        "device offers features {offered:#x} without VIRTIO_F_VERSION_1 (bit 32): legacy devices are not supported"
    )]
    NoVersion1 {
        /// Features the device offered.
        offered: u64,
    },
    /// The device did not keep FEATURES_OK set after we wrote our subset.
    #[error("device rejected feature set {features:#x} (FEATURES_OK did not stick)")]
    FeaturesRejected {
        /// What we asked for.
        features: u64,
    },
    /// A transport operation failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A queue could not be allocated or used.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// The device configuration holds a value we cannot use.
    #[error("device configuration field {field} has unusable value {value}")]
    BadConfig {
        /// Field name as in the spec.
        field: &'static str,
        /// Value read.
        value: u64,
    },
}

/// Interrupt causes read from the ISR (virtio 1.2 §4.1.4.5, §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Isr(u32);

impl Isr {
    /// From the raw register value.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }
    /// Raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// A used ring was updated.
    pub const fn queue(self) -> bool {
        self.0 & 1 != 0
    }
    /// The device configuration changed.
    pub const fn config_changed(self) -> bool {
        self.0 & 2 != 0
    }
}

/// Access to one virtio device, independent of the bus.
///
/// Methods take `&mut self` where they change device state. Offsets into the device
/// configuration are relative to its start; reads use the width of the field, as
/// virtio 1.2 §4.1.3.1 and §4.2.2.2 require.
pub trait Transport {
    /// The virtio device type (1 net, 2 block, 4 entropy, 0 none).
    fn device_id(&self) -> u32;
    /// All 64 feature bits the device offers.
    fn device_features(&mut self) -> u64;
    /// Writes the 64 feature bits the driver accepts.
    fn set_driver_features(&mut self, features: u64);
    /// The device status byte.
    fn status(&self) -> u8;
    /// Writes the device status byte (0 resets the device).
    fn set_status(&mut self, status: u8);
    /// The largest size the device allows for `queue`; 0 if the queue does not exist.
    fn max_queue_size(&mut self, queue: u16) -> u16;
    /// Programs `queue` with `size` and the ring addresses and enables it.
    fn setup_queue(
        &mut self,
        queue: u16,
        size: u16,
        addrs: QueueAddrs,
    ) -> Result<(), TransportError>;
    /// Tells the device that `queue` has new available buffers.
    fn notify(&mut self, queue: u16);
    /// Reads (and on virtio-mmio acknowledges) the interrupt status. On virtio-pci
    /// the read itself clears the ISR and de-asserts INTx.
    fn ack_interrupt(&mut self) -> Isr;
    /// The configuration generation counter (virtio 1.2 §2.5.1).
    fn config_generation(&self) -> u32;
    /// Size of the device-specific configuration in bytes (an upper bound where the
    /// transport does not know it).
    fn config_len(&self) -> usize;
    /// Reads the configuration byte at `offset`.
    fn read_config8(&self, offset: usize) -> Result<u8, TransportError>;
    /// Reads the little-endian `u16` at `offset` (2-aligned).
    fn read_config16(&self, offset: usize) -> Result<u16, TransportError> {
        Ok(u16::from_le_bytes([
            self.read_config8(offset)?,
            self.read_config8(offset + 1)?,
        ]))
    }
    /// Reads the little-endian `u32` at `offset` (4-aligned).
    fn read_config32(&self, offset: usize) -> Result<u32, TransportError> {
        let lo = self.read_config16(offset)?;
        let hi = self.read_config16(offset + 2)?;
        Ok(u32::from(lo) | (u32::from(hi) << 16))
    }

    /// Resets the device and waits (bounded) until it reads back status 0.
    fn reset(&mut self) -> Result<(), TransportError> {
        self.set_status(0);
        for _ in 0..RESET_POLLS {
            if self.status() == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(TransportError::ResetTimeout(self.status()))
    }

    /// Runs `read` until the configuration generation is stable around it
    /// (virtio 1.2 §2.5.1), at most 16 times.
    fn read_config_consistent<R>(
        &self,
        read: impl Fn(&Self) -> Result<R, TransportError>,
    ) -> Result<R, TransportError>
    where
        Self: Sized,
    {
        for _ in 0..CONFIG_RETRIES {
            let before = self.config_generation();
            let value = read(self)?;
            if self.config_generation() == before {
                return Ok(value);
            }
        }
        Err(TransportError::ConfigUnstable(CONFIG_RETRIES))
    }

    /// Reads a 64-bit field as two 32-bit reads, consistently.
    fn read_config64(&self, offset: usize) -> Result<u64, TransportError>
    where
        Self: Sized,
    {
        self.read_config_consistent(|t| {
            Ok(u64::from(t.read_config32(offset)?)
                | (u64::from(t.read_config32(offset + 4)?) << 32))
        })
    }
}

const RESET_POLLS: u32 = 1_000_000;
const CONFIG_RETRIES: u32 = 16;

/// Resets the device, acknowledges it, and returns the features it offers.
/// Fails with [`InitError::NoVersion1`] (after setting FAILED) for legacy devices.
pub fn start_init<T: Transport>(t: &mut T, expected_device: u32) -> Result<u64, InitError> {
    let found = t.device_id();
    if found != expected_device {
        return Err(InitError::WrongDevice {
            expected: expected_device,
            found,
        });
    }
    t.reset()?;
    t.set_status(status::ACKNOWLEDGE);
    t.set_status(status::ACKNOWLEDGE | status::DRIVER);
    let offered = t.device_features();
    if offered & features::VERSION_1 == 0 {
        fail(t);
        return Err(InitError::NoVersion1 { offered });
    }
    Ok(offered)
}

/// Writes `features`, sets FEATURES_OK and checks that the device kept it
/// (virtio 1.2 §3.1.1 steps 5–6). Sets FAILED on rejection.
pub fn accept_features<T: Transport>(t: &mut T, features: u64) -> Result<(), InitError> {
    t.set_driver_features(features);
    t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
    if t.status() & status::FEATURES_OK == 0 {
        fail(t);
        return Err(InitError::FeaturesRejected { features });
    }
    Ok(())
}

/// Sets DRIVER_OK: the device is live (virtio 1.2 §3.1.1 step 8).
pub fn finish_init<T: Transport>(t: &mut T) {
    t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK);
}

/// Where a transport keeps its feature words: two 32-bit windows onto the 64 device
/// and the 64 driver feature bits, each with a select register choosing the half
/// (virtio 1.2 §4.1.4.3 common configuration, §4.2.2 MMIO registers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureRegs {
    /// `device_feature_select` / `DeviceFeaturesSel`.
    pub device_select: usize,
    /// `device_feature` / `DeviceFeatures`.
    pub device: usize,
    /// `driver_feature_select` / `DriverFeaturesSel`.
    pub driver_select: usize,
    /// `driver_feature` / `DriverFeatures`.
    pub driver: usize,
}

impl FeatureRegs {
    /// All 64 feature bits the device offers: selects half 0, then half 1.
    pub fn read_device(&self, regs: &crate::mem::MmioRegion) -> u64 {
        regs.write32(self.device_select, 0);
        let lo = regs.read32(self.device);
        regs.write32(self.device_select, 1);
        let hi = regs.read32(self.device);
        u64::from(lo) | (u64::from(hi) << 32)
    }

    /// Writes the 64 feature bits the driver accepts, low half first.
    pub fn write_driver(&self, regs: &crate::mem::MmioRegion, features: u64) {
        regs.write32(self.driver_select, 0);
        regs.write32(self.driver, features as u32);
        regs.write32(self.driver_select, 1);
        regs.write32(self.driver, (features >> 32) as u32);
    }
}

/// Tells the device the driver gave up on it (sets FAILED).
pub fn fail<T: Transport>(t: &mut T) {
    let s = t.status();
    t.set_status(s | status::FAILED);
}

/// Features every driver here accepts when offered, on top of its own.
pub const COMMON_FEATURES: u64 = features::VERSION_1
    | features::RING_EVENT_IDX
    | features::ACCESS_PLATFORM
    | features::ORDER_PLATFORM;

/// Picks a queue size: the largest power of two `<= min(wanted, device max)`.
pub fn choose_queue_size(device_max: u16, wanted: u16) -> Option<u16> {
    let n = device_max.min(wanted);
    (n > 0).then(|| 1u16 << (15 - n.leading_zeros().min(15)))
}

/// Either transport, so the platform can hold drivers without generics over the bus.
#[derive(Debug)]
pub enum AnyTransport {
    /// virtio-mmio.
    Mmio(mmio::MmioTransport),
    /// virtio-pci modern.
    Pci(pci::PciTransport),
}

macro_rules! each {
    ($s:expr, $t:ident => $e:expr) => {
        match $s {
            AnyTransport::Mmio($t) => $e,
            AnyTransport::Pci($t) => $e,
        }
    };
}

impl AnyTransport {
    /// A handle the interrupt handler may use to acknowledge the device.
    pub fn interrupt_ack(&self) -> InterruptAck {
        each!(self, t => t.interrupt_ack())
    }
}

impl Transport for AnyTransport {
    fn device_id(&self) -> u32 {
        each!(self, t => t.device_id())
    }
    fn device_features(&mut self) -> u64 {
        each!(self, t => t.device_features())
    }
    fn set_driver_features(&mut self, f: u64) {
        each!(self, t => t.set_driver_features(f))
    }
    fn status(&self) -> u8 {
        each!(self, t => t.status())
    }
    fn set_status(&mut self, s: u8) {
        each!(self, t => t.set_status(s))
    }
    fn max_queue_size(&mut self, q: u16) -> u16 {
        each!(self, t => t.max_queue_size(q))
    }
    fn setup_queue(&mut self, q: u16, size: u16, addrs: QueueAddrs) -> Result<(), TransportError> {
        each!(self, t => t.setup_queue(q, size, addrs))
    }
    fn notify(&mut self, q: u16) {
        each!(self, t => t.notify(q))
    }
    fn ack_interrupt(&mut self) -> Isr {
        each!(self, t => t.ack_interrupt())
    }
    fn config_generation(&self) -> u32 {
        each!(self, t => t.config_generation())
    }
    fn config_len(&self) -> usize {
        each!(self, t => t.config_len())
    }
    fn read_config8(&self, o: usize) -> Result<u8, TransportError> {
        each!(self, t => t.read_config8(o))
    }
    fn read_config16(&self, o: usize) -> Result<u16, TransportError> {
        each!(self, t => t.read_config16(o))
    }
    fn read_config32(&self, o: usize) -> Result<u32, TransportError> {
        each!(self, t => t.read_config32(o))
    }
}

/// A copyable handle that acknowledges a device's interrupt from interrupt context.
///
/// For level-triggered INTx (virtio-pci without MSI-X, virtio-mmio on an IOAPIC pin
/// programmed level) the interrupt handler must call [`ack`](Self::ack) before the
/// EOI, or the line stays asserted. It only touches the ISR registers, never a queue,
/// so it is safe to call while a task is inside the driver. MSI-X needs no ack.
#[derive(Debug, Clone, Copy)]
pub struct InterruptAck {
    kind: AckKind,
}

#[derive(Debug, Clone, Copy)]
enum AckKind {
    /// virtio-pci ISR byte: reading clears it.
    PciIsr(crate::mem::MmioRegion),
    /// virtio-mmio InterruptStatus (0x60) / InterruptACK (0x64).
    Mmio(crate::mem::MmioRegion),
}

impl InterruptAck {
    pub(crate) fn pci(isr: crate::mem::MmioRegion) -> Self {
        Self {
            kind: AckKind::PciIsr(isr),
        }
    }

    pub(crate) fn mmio(regs: crate::mem::MmioRegion) -> Self {
        Self {
            kind: AckKind::Mmio(regs),
        }
    }

    /// Reads and clears the interrupt status; returns the causes (empty: the
    /// interrupt was not ours, relevant on shared lines).
    pub fn ack(&self) -> Isr {
        match self.kind {
            AckKind::PciIsr(r) => Isr::from_bits(u32::from(r.read8(0))),
            AckKind::Mmio(r) => {
                // Ack until the status reads 0, so the line really drops: with an
                // edge-triggered pin, bits raised between our read and our ack would
                // otherwise hold it high and no later completion would make an edge.
                let mut all = 0;
                for _ in 0..16 {
                    let bits = r.read32(mmio::reg::INTERRUPT_STATUS);
                    if bits == 0 {
                        break;
                    }
                    r.write32(mmio::reg::INTERRUPT_ACK, bits);
                    all |= bits;
                }
                Isr::from_bits(all)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTransport;

    #[test]
    fn queue_size_choice() {
        assert_eq!(choose_queue_size(1024, 256), Some(256));
        assert_eq!(choose_queue_size(100, 256), Some(64));
        assert_eq!(choose_queue_size(1, 256), Some(1));
        assert_eq!(choose_queue_size(0, 256), None);
        assert_eq!(choose_queue_size(u16::MAX, u16::MAX), Some(32768));
    }

    #[test]
    fn negotiation_requires_version_1() {
        let mut t = FakeTransport::new(1, 1 << 5, vec![0; 8]);
        let err = start_init(&mut t, 1).unwrap_err();
        assert_eq!(err, InitError::NoVersion1 { offered: 1 << 5 });
        assert!(err.to_string().contains("VIRTIO_F_VERSION_1"));
        assert_ne!(t.status() & status::FAILED, 0);
    }

    #[test]
    fn negotiation_happy_path_and_rejection() {
        let mut t = FakeTransport::new(2, features::VERSION_1 | 1, vec![]);
        assert_eq!(
            start_init(&mut t, 1).unwrap_err(),
            InitError::WrongDevice {
                expected: 1,
                found: 2
            }
        );
        let offered = start_init(&mut t, 2).unwrap();
        accept_features(&mut t, offered & COMMON_FEATURES).unwrap();
        finish_init(&mut t);
        assert_eq!(t.status(), 15);
        assert_eq!(t.0.borrow().driver_features, features::VERSION_1);

        t.0.borrow_mut().refuse_features = true;
        start_init(&mut t, 2).unwrap();
        let err = accept_features(&mut t, features::VERSION_1).unwrap_err();
        assert_eq!(
            err,
            InitError::FeaturesRejected {
                features: features::VERSION_1
            }
        );
        assert_ne!(t.status() & status::FAILED, 0);
    }

    #[test]
    fn config_reads_are_bounded_and_little_endian() {
        let t = FakeTransport::new(1, 0, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(t.read_config16(0).unwrap(), 0x0201);
        assert_eq!(t.read_config32(4).unwrap(), 0x0807_0605);
        assert_eq!(t.read_config64(0).unwrap(), 0x0807_0605_0403_0201);
        assert!(matches!(
            t.read_config32(6),
            Err(TransportError::ConfigOutOfRange { .. })
        ));
    }
}
