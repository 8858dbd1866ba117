//! virtio-pci modern (virtio 1.2 §4.1): the virtio capabilities (COMMON, NOTIFY,
//! ISR, DEVICE) on top of the generic PCI in `oasis-pci` (bus scan, BAR sizing,
//! MSI-X), INTx and MSI-X routing.
//!
//! The platform supplies configuration-space access through [`PciConfig`] (ports
//! 0xCF8/0xCFC on x86, or ECAM). Transitional devices (ids 0x1000..=0x103f) are
//! driven through their modern capabilities when they have them, as QEMU's do;
//! legacy-only devices are refused with [`PciError::LegacyOnly`].

use alloc::vec::Vec;

use oasis_pci::header::{CAP_ID_VENDOR, CMD_BUS_MASTER, CMD_MEMORY, COMMAND};
use oasis_pci::{BarError, Function, capabilities, program_msix_entry};
// The generic PCI types this transport's API is expressed in.
pub use oasis_pci::{Bar, BarRegion as CapRef, Bdf, MsixCap, PciConfig};

use super::{FeatureRegs, InterruptAck, Isr, Transport, TransportError};
use crate::mem::MmioRegion;
use crate::queue::QueueAddrs;

/// The virtio PCI vendor id (Red Hat, Inc.).
pub const VIRTIO_VENDOR: u16 = 0x1af4;

// virtio 1.2 §4.1.4: `cfg_type` values.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;

/// Offsets in the common configuration structure (virtio 1.2 §4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    pub const DEVICE_FEATURE: usize = 0x04;
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    pub const DRIVER_FEATURE: usize = 0x0c;
    pub const CONFIG_MSIX_VECTOR: usize = 0x10;
    pub const NUM_QUEUES: usize = 0x12;
    pub const DEVICE_STATUS: usize = 0x14;
    pub const CONFIG_GENERATION: usize = 0x15;
    pub const QUEUE_SELECT: usize = 0x16;
    pub const QUEUE_SIZE: usize = 0x18;
    pub const QUEUE_MSIX_VECTOR: usize = 0x1a;
    pub const QUEUE_ENABLE: usize = 0x1c;
    pub const QUEUE_NOTIFY_OFF: usize = 0x1e;
    pub const QUEUE_DESC: usize = 0x20;
    pub const QUEUE_DRIVER: usize = 0x28;
    pub const QUEUE_DEVICE: usize = 0x30;
    /// Size of the structure up to `queue_device`.
    pub const LEN: u32 = 0x38;
}

/// "No vector" for MSI-X routing registers.
const NO_VECTOR: u16 = 0xffff;

/// A virtio PCI function found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciFunction {
    /// Where it is.
    pub bdf: Bdf,
    /// PCI device id (0x1040 + type for modern, 0x1000..=0x103f transitional).
    pub pci_device_id: u16,
    /// Subsystem device id (the virtio type on transitional devices).
    pub subsystem_id: u16,
    /// Interrupt line as the firmware programmed it (an IOAPIC GSI / PIC IRQ; 0xff
    /// means none).
    pub interrupt_line: u8,
    /// Interrupt pin: 0 none, 1..=4 INTA#..INTD#.
    pub interrupt_pin: u8,
}

impl PciFunction {
    /// The virtio device type (1 net, 2 block, 4 entropy), if this is one.
    pub fn virtio_device_type(&self) -> Option<u32> {
        match self.pci_device_id {
            0x1040..=0x107f => Some(u32::from(self.pci_device_id - 0x1040)),
            0x1000..=0x103f if self.subsystem_id != 0 => Some(u32::from(self.subsystem_id)),
            _ => None,
        }
    }

    /// Whether the id is a transitional one (legacy interface plus, usually, modern).
    pub fn is_transitional(&self) -> bool {
        (0x1000..=0x103f).contains(&self.pci_device_id)
    }

    /// The virtio view of a function `oasis_pci::scan` found, if it is a virtio
    /// device.
    pub fn from_function(f: Function) -> Option<Self> {
        if f.vendor_id != VIRTIO_VENDOR {
            return None;
        }
        let f = PciFunction {
            bdf: f.bdf,
            pci_device_id: f.device_id,
            subsystem_id: f.subsystem_id,
            interrupt_line: f.interrupt_line,
            interrupt_pin: f.interrupt_pin,
        };
        f.virtio_device_type().map(|_| f)
    }

    /// Reads the function's identity, if it is a virtio device.
    pub fn probe<C: PciConfig + ?Sized>(cfg: &C, bdf: Bdf) -> Option<Self> {
        Function::read(cfg, bdf).and_then(Self::from_function)
    }
}

/// Every virtio function on buses 0..=255 (see [`oasis_pci::scan`]), lazily.
pub fn scan<C: PciConfig + ?Sized>(cfg: &C) -> impl Iterator<Item = PciFunction> + '_ {
    oasis_pci::scan(cfg).filter_map(PciFunction::from_function)
}

/// What went wrong setting up a virtio-pci function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PciError {
    /// No modern common-configuration capability: a legacy-only device.
    #[error("{0}: no virtio common-configuration capability (legacy-only device, not supported)")]
    LegacyOnly(Bdf),
    /// A required capability is missing.
    #[error("{bdf}: missing virtio {cap} capability")]
    MissingCapability {
        /// Function.
        bdf: Bdf,
        /// "notify", "isr".
        cap: &'static str,
    },
    /// A capability is shorter than its structure.
    #[error("{bdf}: virtio {cap} capability is {length} bytes, needs at least {need}")]
    CapabilityTooShort {
        /// Function.
        bdf: Bdf,
        /// Which structure.
        cap: &'static str,
        /// Length the capability gives.
        length: u32,
        /// Minimum.
        need: u32,
    },
    /// A capability points at an I/O-space BAR (we use memory BARs only).
    #[error("{bdf}: BAR {bar} is an I/O-space BAR; only memory BARs are supported")]
    IoBar {
        /// Function.
        bdf: Bdf,
        /// BAR index.
        bar: u8,
    },
    /// A BAR holds no address (firmware did not assign one) or is malformed.
    #[error("{bdf}: BAR {bar} is unassigned or invalid (raw {raw:#x})")]
    BadBar {
        /// Function.
        bdf: Bdf,
        /// BAR index.
        bar: u8,
        /// Raw (combined) BAR value.
        raw: u64,
    },
    /// A structure reaches past the end of its BAR.
    #[error(
        "{bdf}: virtio {cap} structure at {offset:#x}+{length:#x} exceeds BAR {bar} of {bar_size:#x} bytes"
    )]
    OutsideBar {
        /// Function.
        bdf: Bdf,
        /// Which structure.
        cap: &'static str,
        /// BAR index.
        bar: u8,
        /// Offset in the BAR.
        offset: u32,
        /// Length.
        length: u32,
        /// BAR size.
        bar_size: u64,
    },
    /// The BAR's address range does not fit this machine's address space.
    #[error("{bdf}: BAR {bar} at {addr:#x} is not addressable")]
    Unaddressable {
        /// Function.
        bdf: Bdf,
        /// BAR index.
        bar: u8,
        /// Address.
        addr: u64,
    },
    /// The function has no MSI-X capability.
    #[error("{0}: no MSI-X capability")]
    NoMsix(Bdf),
    /// The MSI-X table entry does not exist.
    #[error("{bdf}: MSI-X table entry {entry} out of range (table has {size})")]
    MsixEntryOutOfRange {
        /// Function.
        bdf: Bdf,
        /// Entry asked for.
        entry: u16,
        /// Table size.
        size: u16,
    },
    /// The device refused the MSI-X vector for configuration changes.
    #[error("{bdf}: device refused MSI-X entry {entry} for configuration interrupts")]
    VectorRefused {
        /// Function.
        bdf: Bdf,
        /// Entry.
        entry: u16,
    },
}

impl From<BarError> for PciError {
    fn from(e: BarError) -> Self {
        match e {
            BarError::Io { bdf, bar } => PciError::IoBar { bdf, bar },
            BarError::Invalid { bdf, bar, raw } => PciError::BadBar { bdf, bar, raw },
        }
    }
}

/// Everything read from configuration space that the transport needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciLayout {
    /// The common-configuration structure.
    pub common: CapRef,
    /// The notification structure.
    pub notify: CapRef,
    /// `notify_off_multiplier`.
    pub notify_multiplier: u32,
    /// The ISR byte.
    pub isr: CapRef,
    /// The device-specific configuration, if any.
    pub device: Option<CapRef>,
    /// MSI-X, if present.
    pub msix: Option<MsixCap>,
    /// Decoded memory BARs (only those the structures use).
    pub bars: [Option<Bar>; 6],
}

impl PciLayout {
    /// Walks the capability list and decodes the BARs it references. Sizing a BAR
    /// writes it (with memory decoding off, then restores it), as PCI requires.
    pub fn read<C: PciConfig + ?Sized>(cfg: &C, bdf: Bdf) -> Result<Self, PciError> {
        let mut caps: [Option<CapRef>; 5] = [None; 5];
        let mut notify_multiplier = 0;
        let mut msix = None;
        for cap in capabilities(cfg, bdf) {
            let (ptr, d0) = (cap.offset, cap.header);
            let len = (d0 >> 16) as u8;
            if cap.id == CAP_ID_VENDOR && len >= 16 && ptr + u16::from(len) <= 256 {
                let ty = (d0 >> 24) as u8;
                let bar = cfg.read32(bdf, ptr + 4) as u8;
                let cap = CapRef {
                    bar,
                    offset: cfg.read32(bdf, ptr + 8),
                    length: cfg.read32(bdf, ptr + 12),
                };
                let usable = bar <= 5 && (ty != CAP_NOTIFY || len >= 20);
                if let Some(slot) = caps
                    .get_mut(usize::from(ty))
                    .filter(|s| s.is_none() && usable && ty != 0)
                {
                    *slot = Some(cap);
                    if ty == CAP_NOTIFY {
                        notify_multiplier = cfg.read32(bdf, ptr + 16);
                    }
                }
            } else if msix.is_none() {
                msix = MsixCap::parse(cfg, bdf, cap);
            }
        }
        let common = caps[usize::from(CAP_COMMON)].ok_or(PciError::LegacyOnly(bdf))?;
        let notify = caps[usize::from(CAP_NOTIFY)]
            .ok_or(PciError::MissingCapability { bdf, cap: "notify" })?;
        let isr =
            caps[usize::from(CAP_ISR)].ok_or(PciError::MissingCapability { bdf, cap: "isr" })?;
        let device = caps[usize::from(CAP_DEVICE)];
        for (name, cap, need) in [
            ("common", common, common::LEN),
            ("notify", notify, 2),
            ("isr", isr, 1),
        ] {
            if cap.length < need {
                return Err(PciError::CapabilityTooShort {
                    bdf,
                    cap: name,
                    length: cap.length,
                    need,
                });
            }
        }

        let mut bars = [None; 6];
        let wanted = [
            Some(common),
            Some(notify),
            Some(isr),
            device,
            msix.map(|m| m.table),
        ];
        for r in wanted.into_iter().flatten() {
            let i = usize::from(r.bar);
            if bars[i].is_none() {
                bars[i] = Some(oasis_pci::size_bar(cfg, bdf, r.bar)?);
            }
        }
        let layout = PciLayout {
            common,
            notify,
            notify_multiplier,
            isr,
            device,
            msix,
            bars,
        };
        let named = [
            ("common", Some(common)),
            ("notify", Some(notify)),
            ("isr", Some(isr)),
            ("device", device),
        ];
        for (name, cap) in named
            .into_iter()
            .chain([("msix table", msix.map(|m| m.table))])
        {
            if let Some(c) = cap {
                layout.check(bdf, name, c)?;
            }
        }
        Ok(layout)
    }

    fn check(&self, bdf: Bdf, cap: &'static str, c: CapRef) -> Result<Bar, PciError> {
        let bar = self.bars[usize::from(c.bar)].ok_or(PciError::BadBar {
            bdf,
            bar: c.bar,
            raw: 0,
        })?;
        if u64::from(c.offset) + u64::from(c.length) > bar.size {
            return Err(PciError::OutsideBar {
                bdf,
                cap,
                bar: c.bar,
                offset: c.offset,
                length: c.length,
                bar_size: bar.size,
            });
        }
        Ok(bar)
    }
}
#[derive(Debug, Clone, Copy)]
struct Msix {
    cap_offset: u16,
    table: MmioRegion,
    size: u16,
}

/// A virtio-pci modern device.
#[derive(Debug)]
pub struct PciTransport {
    function: PciFunction,
    device_type: u32,
    common: MmioRegion,
    notify: MmioRegion,
    notify_multiplier: u32,
    isr: MmioRegion,
    device: Option<MmioRegion>,
    msix: Option<Msix>,
    vector: Option<u16>,
    notify_offsets: Vec<Option<usize>>,
}

impl PciTransport {
    /// Reads the function's layout, enables memory decoding and bus mastering, and
    /// wraps its structures.
    ///
    /// # Safety
    ///
    /// The memory BARs the capabilities reference must be identity-mapped as uncached
    /// device memory for the rest of the program, and `cfg` must be this machine's
    /// configuration space, so that BAR addresses are real device windows and no
    /// other code uses them.
    #[allow(unsafe_code)] // the caller vouches for the BARs; wraps them as MMIO
    pub unsafe fn new<C: PciConfig + ?Sized>(
        cfg: &C,
        function: PciFunction,
    ) -> Result<Self, PciError> {
        let bdf = function.bdf;
        let layout = PciLayout::read(cfg, bdf)?;
        let region = |c: CapRef| -> Result<MmioRegion, PciError> {
            let bar = layout.check(bdf, "structure", c)?;
            let addr = bar.addr + u64::from(c.offset);
            let base = usize::try_from(addr).map_err(|_| PciError::Unaddressable {
                bdf,
                bar: c.bar,
                addr,
            })?;
            let len = c.length as usize;
            base.checked_add(len).ok_or(PciError::Unaddressable {
                bdf,
                bar: c.bar,
                addr,
            })?;
            // SAFETY: `check` keeps `base..base+len` inside the BAR, which the caller
            // guarantees is mapped device memory owned by this transport.
            Ok(unsafe { MmioRegion::new(base, len) })
        };
        let common = region(layout.common)?;
        let notify = region(layout.notify)?;
        let isr = region(layout.isr)?;
        let device = layout.device.map(region).transpose()?;
        let msix = match layout.msix {
            Some(m) => Some(Msix {
                cap_offset: m.cap_offset,
                table: region(m.table)?,
                size: m.table_size,
            }),
            None => None,
        };
        let cmd = cfg.read32(bdf, COMMAND) & 0xffff;
        cfg.write32(bdf, COMMAND, cmd | CMD_MEMORY | CMD_BUS_MASTER);
        Ok(Self {
            function,
            device_type: function.virtio_device_type().unwrap_or(0),
            common,
            notify,
            notify_multiplier: layout.notify_multiplier,
            isr,
            device,
            msix,
            vector: None,
            notify_offsets: Vec::new(),
        })
    }

    /// The PCI function (address, INTx line and pin).
    pub fn function(&self) -> PciFunction {
        self.function
    }

    /// Number of MSI-X table entries, if the function has MSI-X.
    pub fn msix_table_size(&self) -> Option<u16> {
        self.msix.map(|m| m.size)
    }

    /// A handle for the interrupt handler (INTx; with MSI-X no ack is needed).
    pub fn interrupt_ack(&self) -> InterruptAck {
        InterruptAck::pci(self.isr)
    }

    /// Routes every interrupt of this device to one MSI-X message: programs table
    /// entry `table_entry` with `msg_addr`/`msg_data` (on x86: `0xFEE0_0000 |
    /// (apic_id << 12)` and the IDT vector), unmasks it, enables MSI-X, and makes the
    /// configuration vector and every queue set up afterwards use that entry.
    ///
    /// Call before the driver's constructor (which sets up the queues). Without this
    /// call the device interrupts through INTx ([`PciFunction::interrupt_line`]).
    pub fn enable_msix<C: PciConfig + ?Sized>(
        &mut self,
        cfg: &C,
        table_entry: u16,
        msg_addr: u64,
        msg_data: u32,
    ) -> Result<(), PciError> {
        let bdf = self.function.bdf;
        let m = self.msix.ok_or(PciError::NoMsix(bdf))?;
        if table_entry >= m.size {
            return Err(PciError::MsixEntryOutOfRange {
                bdf,
                entry: table_entry,
                size: m.size,
            });
        }
        program_msix_entry(&m.table, table_entry, msg_addr, msg_data);
        oasis_pci::enable_msix(cfg, bdf, m.cap_offset);
        self.common.write16(common::CONFIG_MSIX_VECTOR, table_entry);
        if self.common.read16(common::CONFIG_MSIX_VECTOR) != table_entry {
            return Err(PciError::VectorRefused {
                bdf,
                entry: table_entry,
            });
        }
        self.vector = Some(table_entry);
        Ok(())
    }

    fn device_cfg(&self, offset: usize, width: usize) -> Result<MmioRegion, TransportError> {
        let len = self.config_len();
        match self.device {
            Some(r)
                if offset.is_multiple_of(width)
                    && offset.checked_add(width).is_some_and(|e| e <= len) =>
            {
                Ok(r)
            }
            _ => Err(TransportError::ConfigOutOfRange { offset, width, len }),
        }
    }
}

/// The feature registers in the common configuration (virtio 1.2 §4.1.4.3).
const FEATURES: FeatureRegs = FeatureRegs {
    device_select: common::DEVICE_FEATURE_SELECT,
    device: common::DEVICE_FEATURE,
    driver_select: common::DRIVER_FEATURE_SELECT,
    driver: common::DRIVER_FEATURE,
};

impl Transport for PciTransport {
    fn device_id(&self) -> u32 {
        self.device_type
    }

    fn device_features(&mut self) -> u64 {
        FEATURES.read_device(&self.common)
    }

    fn set_driver_features(&mut self, features: u64) {
        FEATURES.write_driver(&self.common, features)
    }

    fn status(&self) -> u8 {
        self.common.read8(common::DEVICE_STATUS)
    }

    fn set_status(&mut self, status: u8) {
        // A reset clears the device's vector routing (virtio 1.2 §4.1.5.1.2):
        // restore the configuration vector before the device goes live.
        if status & super::status::DRIVER_OK != 0
            && let Some(v) = self.vector
        {
            self.common.write16(common::CONFIG_MSIX_VECTOR, v);
            if self.common.read16(common::CONFIG_MSIX_VECTOR) != v {
                log::warn!(
                    "virtio-pci {}: configuration MSI-X vector {v} refused",
                    self.function.bdf
                );
            }
        }
        if status == 0 {
            self.notify_offsets.clear();
        }
        self.common.write8(common::DEVICE_STATUS, status);
    }

    fn max_queue_size(&mut self, queue: u16) -> u16 {
        if queue >= self.common.read16(common::NUM_QUEUES) {
            return 0;
        }
        self.common.write16(common::QUEUE_SELECT, queue);
        self.common.read16(common::QUEUE_SIZE)
    }

    fn setup_queue(
        &mut self,
        queue: u16,
        size: u16,
        addrs: QueueAddrs,
    ) -> Result<(), TransportError> {
        // virtio 1.2 §4.1.5.1.3.
        let max = self.max_queue_size(queue);
        if max == 0 {
            return Err(TransportError::NoSuchQueue(queue));
        }
        if self.common.read16(common::QUEUE_ENABLE) != 0 {
            return Err(TransportError::QueueInUse(queue));
        }
        if size > max {
            return Err(TransportError::QueueTooLarge { queue, size, max });
        }
        self.common.write16(common::QUEUE_SIZE, size);
        if let Some(v) = self.vector {
            self.common.write16(common::QUEUE_MSIX_VECTOR, v);
            if self.common.read16(common::QUEUE_MSIX_VECTOR) != v {
                return Err(TransportError::VectorRefused {
                    queue: Some(queue),
                    entry: v,
                });
            }
        } else if self.msix.is_some() {
            self.common.write16(common::QUEUE_MSIX_VECTOR, NO_VECTOR);
        }
        self.common.write64_split(common::QUEUE_DESC, addrs.desc);
        self.common
            .write64_split(common::QUEUE_DRIVER, addrs.driver);
        self.common
            .write64_split(common::QUEUE_DEVICE, addrs.device);
        let off = usize::from(self.common.read16(common::QUEUE_NOTIFY_OFF))
            * self.notify_multiplier as usize;
        if off.checked_add(2).is_none_or(|e| e > self.notify.len()) {
            return Err(TransportError::NotifyOutOfRange {
                queue,
                offset: off,
                len: self.notify.len(),
            });
        }
        let i = usize::from(queue);
        if self.notify_offsets.len() <= i {
            self.notify_offsets.resize(i + 1, None);
        }
        self.notify_offsets[i] = Some(off);
        self.common.write16(common::QUEUE_ENABLE, 1);
        Ok(())
    }

    fn notify(&mut self, queue: u16) {
        if let Some(Some(off)) = self.notify_offsets.get(usize::from(queue)) {
            self.notify.write16(*off, queue);
        }
    }

    fn ack_interrupt(&mut self) -> Isr {
        self.interrupt_ack().ack()
    }

    fn config_generation(&self) -> u32 {
        u32::from(self.common.read8(common::CONFIG_GENERATION))
    }

    fn config_len(&self) -> usize {
        self.device.map_or(0, |r| r.len())
    }

    fn read_config8(&self, offset: usize) -> Result<u8, TransportError> {
        Ok(self.device_cfg(offset, 1)?.read8(offset))
    }

    fn read_config16(&self, offset: usize) -> Result<u16, TransportError> {
        Ok(self.device_cfg(offset, 2)?.read16(offset))
    }

    fn read_config32(&self, offset: usize) -> Result<u32, TransportError> {
        Ok(self.device_cfg(offset, 4)?.read32(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oasis_pci::FakePciConfig;
    use oasis_pci::header::CAP_ID_MSIX;

    /// A QEMU-like modern virtio-net function: 64-bit BAR 4 of 16 KiB holding common
    /// (0x0), ISR (0x1000), device (0x2000), notify (0x3000, multiplier 4), MSI-X in BAR 1.
    pub(crate) fn qemu_like(bar4: u64) -> [u8; 256] {
        let mut s = [0u8; 256];
        s[0..2].copy_from_slice(&VIRTIO_VENDOR.to_le_bytes());
        s[2..4].copy_from_slice(&0x1041u16.to_le_bytes());
        s[6] = 0x10; // status: capability list
        s[0x14..0x18].copy_from_slice(&0xfebd_1000u32.to_le_bytes()); // BAR1, 32-bit
        s[0x20..0x24].copy_from_slice(&((bar4 as u32) | 0b1100).to_le_bytes()); // BAR4 64-bit prefetchable
        s[0x24..0x28].copy_from_slice(&((bar4 >> 32) as u32).to_le_bytes());
        s[0x2e] = 1;
        s[0x34] = 0x40;
        s[0x3c] = 11;
        s[0x3d] = 1;
        let mut put = |at: usize, ty: u8, next: u8, off: u32, len: u32, extra: Option<u32>| {
            s[at] = CAP_ID_VENDOR;
            s[at + 1] = next;
            s[at + 2] = if extra.is_some() { 20 } else { 16 };
            s[at + 3] = ty;
            s[at + 4] = 4;
            s[at + 8..at + 12].copy_from_slice(&off.to_le_bytes());
            s[at + 12..at + 16].copy_from_slice(&len.to_le_bytes());
            if let Some(x) = extra {
                s[at + 16..at + 20].copy_from_slice(&x.to_le_bytes());
            }
        };
        put(0x40, CAP_COMMON, 0x50, 0x0, 0x1000, None);
        put(0x50, CAP_ISR, 0x60, 0x1000, 0x1000, None);
        put(0x60, CAP_DEVICE, 0x70, 0x2000, 0x1000, None);
        put(0x70, CAP_NOTIFY, 0x84, 0x3000, 0x1000, Some(4));
        s[0x84] = CAP_ID_MSIX;
        s[0x85] = 0;
        s[0x86..0x88].copy_from_slice(&2u16.to_le_bytes()); // 3 entries
        s[0x88..0x8c].copy_from_slice(&1u32.to_le_bytes()); // BAR 1, offset 0
        s
    }

    fn bdf(device: u8) -> Bdf {
        Bdf {
            bus: 0,
            device,
            function: 0,
        }
    }

    #[test]
    fn scan_finds_virtio_functions_and_reads_intx() {
        let mut blk = qemu_like(0x8_0000_0000);
        blk[2..4].copy_from_slice(&0x1001u16.to_le_bytes()); // transitional block
        blk[0x2e] = 2;
        let mut other = [0xffu8; 256];
        other[0..4].copy_from_slice(&0x1234_8086u32.to_le_bytes());
        other[0x0e] = 0;
        let cfg = FakePciConfig::new(vec![
            (bdf(2), other, [0; 6]),
            (bdf(3), qemu_like(0x8_0000_0000), [0; 6]),
            (bdf(5), blk, [0; 6]),
        ]);
        let found: Vec<_> = scan(&cfg).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].bdf, bdf(3));
        assert_eq!(found[0].virtio_device_type(), Some(1));
        assert_eq!((found[0].interrupt_line, found[0].interrupt_pin), (11, 1));
        assert_eq!(found[1].virtio_device_type(), Some(2));
        assert!(found[1].is_transitional());
        assert_eq!(bdf(3).to_string(), "00:03.0");
    }

    #[test]
    fn layout_walks_caps_and_decodes_64_bit_bars() {
        let cfg = FakePciConfig::new(vec![(
            bdf(3),
            qemu_like(0x8_0000_0000),
            [0, 0x1000, 0, 0, 0x4000, 0],
        )]);
        let l = PciLayout::read(&cfg, bdf(3)).unwrap();
        assert_eq!(
            l.common,
            CapRef {
                bar: 4,
                offset: 0,
                length: 0x1000
            }
        );
        assert_eq!(l.notify.offset, 0x3000);
        assert_eq!(l.notify_multiplier, 4);
        assert_eq!(l.device.unwrap().offset, 0x2000);
        assert_eq!(
            l.bars[4],
            Some(Bar {
                addr: 0x8_0000_0000,
                size: 0x4000
            })
        );
        let m = l.msix.unwrap();
        assert_eq!((m.table_size, m.table.bar), (3, 1));
        assert_eq!(
            l.bars[1],
            Some(Bar {
                addr: 0xfebd_1000,
                size: 0x1000
            })
        );
    }

    #[test]
    fn layout_errors_name_the_problem() {
        let b = bdf(3);
        let mut s = qemu_like(0x8_0000_0000);
        s[0x43] = 9; // common cap becomes an unknown type
        let cfg = FakePciConfig::new(vec![(b, s, [0, 0x1000, 0, 0, 0x4000, 0])]);
        assert_eq!(
            PciLayout::read(&cfg, b).unwrap_err(),
            PciError::LegacyOnly(b)
        );

        let cfg = FakePciConfig::new(vec![(
            b,
            qemu_like(0x8_0000_0000),
            [0, 0x1000, 0, 0, 0x2000, 0],
        )]);
        let err = PciLayout::read(&cfg, b).unwrap_err();
        assert!(
            matches!(
                err,
                PciError::OutsideBar {
                    cap: "notify",
                    bar: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("0x3000+0x1000"), "{err}");

        let cfg = FakePciConfig::new(vec![(b, qemu_like(0), [0, 0x1000, 0, 0, 0x4000, 0])]);
        assert!(matches!(
            PciLayout::read(&cfg, b),
            Err(PciError::BadBar { bar: 4, .. })
        ));

        let mut s = qemu_like(0x8_0000_0000);
        s[0x20] |= 1; // I/O BAR
        let cfg = FakePciConfig::new(vec![(b, s, [0, 0x1000, 0, 0, 0x4000, 0])]);
        assert_eq!(
            PciLayout::read(&cfg, b).unwrap_err(),
            PciError::IoBar { bdf: b, bar: 4 }
        );

        let mut s = qemu_like(0x8_0000_0000);
        s[0x71] = 0x70; // the notify cap points at itself: a loop, bounded
        let cfg = FakePciConfig::new(vec![(b, s, [0, 0x1000, 0, 0, 0x4000, 0])]);
        assert!(PciLayout::read(&cfg, b).is_ok());
    }

    #[test]
    fn random_config_spaces_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            let mut s = qemu_like(0x8_0000_0000);
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s[(x % 256) as usize] = (x >> 8) as u8;
            }
            let sizes = [x & 0xffff, 0x1000, 0, 0, (x >> 16) & 0xf_ffff, 0];
            let cfg = FakePciConfig::new(vec![(bdf(1), s, sizes)]);
            let _ = PciLayout::read(&cfg, bdf(1));
            let _ = scan(&cfg).count();
        }
    }
}
