//! virtio-mmio version 2 (virtio 1.2 §4.2): register layout, the
//! `virtio_mmio.device=SIZE@ADDR:IRQ` command-line parser, and probing.

use alloc::string::{String, ToString};

use super::{FeatureRegs, InterruptAck, Isr, Transport, TransportError};
use crate::mem::MmioRegion;
use crate::queue::QueueAddrs;

/// Register offsets (virtio 1.2 §4.2.2, table "MMIO Device Register Layout").
pub mod reg {
    /// "virt" in little endian.
    pub const MAGIC_VALUE: usize = 0x000;
    /// 2 for virtio 1.x, 1 for legacy.
    pub const VERSION: usize = 0x004;
    /// Virtio device type; 0 means an empty slot.
    pub const DEVICE_ID: usize = 0x008;
    /// Vendor.
    pub const VENDOR_ID: usize = 0x00c;
    /// 32 feature bits selected by `DEVICE_FEATURES_SEL`.
    pub const DEVICE_FEATURES: usize = 0x010;
    /// Which 32 feature bits `DEVICE_FEATURES` shows.
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    /// 32 accepted feature bits selected by `DRIVER_FEATURES_SEL`.
    pub const DRIVER_FEATURES: usize = 0x020;
    /// Which 32 feature bits `DRIVER_FEATURES` writes.
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    /// Queue the queue registers refer to.
    pub const QUEUE_SEL: usize = 0x030;
    /// Largest size of the selected queue (0: absent).
    pub const QUEUE_NUM_MAX: usize = 0x034;
    /// Size of the selected queue.
    pub const QUEUE_NUM: usize = 0x038;
    /// Selected queue enabled.
    pub const QUEUE_READY: usize = 0x044;
    /// Write a queue index to notify.
    pub const QUEUE_NOTIFY: usize = 0x050;
    /// Bit 0: used ring update; bit 1: configuration change.
    pub const INTERRUPT_STATUS: usize = 0x060;
    /// Write the handled bits back.
    pub const INTERRUPT_ACK: usize = 0x064;
    /// Device status.
    pub const STATUS: usize = 0x070;
    /// Descriptor table address, low / high.
    pub const QUEUE_DESC_LOW: usize = 0x080;
    /// Available ring address, low / high.
    pub const QUEUE_DRIVER_LOW: usize = 0x090;
    /// Used ring address, low / high.
    pub const QUEUE_DEVICE_LOW: usize = 0x0a0;
    /// Configuration generation.
    pub const CONFIG_GENERATION: usize = 0x0fc;
    /// Device-specific configuration starts here.
    pub const CONFIG: usize = 0x100;
}

/// `MagicValue`: "virt".
pub const MAGIC: u32 = 0x7472_6976;

/// One virtio-mmio device window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioWindow {
    /// Physical (= virtual) address of the registers.
    pub base: u64,
    /// Window size in bytes.
    pub size: u64,
    /// Interrupt line (a GSI / IOAPIC pin), when known.
    pub irq: Option<u32>,
}

/// Windows QEMU `microvm` creates: 8 slots of 512 bytes from 0xfeb0_0000 (probe
/// these when the command line names none, e.g. with ACPI on).
pub fn qemu_microvm_windows() -> impl Iterator<Item = MmioWindow> {
    (0..8u64).map(|i| MmioWindow {
        base: 0xfeb0_0000 + i * 0x200,
        size: 0x200,
        irq: None,
    })
}

/// Windows Firecracker uses on x86_64: 4 KiB slots from 0xd000_0000 (it always
/// passes them on the command line too).
pub fn firecracker_windows(count: u64) -> impl Iterator<Item = MmioWindow> {
    (0..count).map(|i| MmioWindow {
        base: 0xd000_0000 + i * 0x1000,
        size: 0x1000,
        irq: None,
    })
}

/// Why a `virtio_mmio.device=` value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// Not of the form `SIZE@ADDR:IRQ[:ID]`.
    #[error("virtio_mmio.device={0:?} is not SIZE@ADDR:IRQ")]
    Syntax(String),
    /// A number did not parse.
    #[error("virtio_mmio.device: {field} {text:?} is not a number")]
    BadNumber {
        /// Which part: "size", "address", "irq" or "id".
        field: &'static str,
        /// The text.
        text: String,
    },
    /// The window is too small for the registers, or wraps around.
    #[error(
        "virtio_mmio.device: window of {size:#x} bytes at {base:#x} is invalid (needs 0x100..=4 GiB without wrapping)"
    )]
    BadWindow {
        /// Base address.
        base: u64,
        /// Size.
        size: u64,
    },
}

/// Parses the value of one `virtio_mmio.device=` parameter, as Linux does:
/// `SIZE@BASE:IRQ[:ID]`, where SIZE takes a K/M/G suffix and numbers are
/// decimal, `0x` hex or `0` octal. The platform-device id is accepted and ignored.
pub fn parse_device_arg(value: &str) -> Result<MmioWindow, CmdlineError> {
    let syntax = || CmdlineError::Syntax(value.to_string());
    let (size_text, rest) = value.split_once('@').ok_or_else(syntax)?;
    let (base_text, rest) = rest.split_once(':').ok_or_else(syntax)?;
    let (irq_text, id_text) = match rest.split_once(':') {
        Some((irq, id)) => (irq, Some(id)),
        None => (rest, None),
    };
    let size = parse_size(size_text)?;
    let base = parse_int(base_text).ok_or_else(|| bad("address", base_text))?;
    let irq = irq_text.parse::<u32>().map_err(|_| bad("irq", irq_text))?;
    if let Some(id) = id_text {
        id.parse::<u32>().map_err(|_| bad("id", id))?;
    }
    if !(0x100..=1 << 32).contains(&size) || base.checked_add(size).is_none() {
        return Err(CmdlineError::BadWindow { base, size });
    }
    Ok(MmioWindow {
        base,
        size,
        irq: Some(irq),
    })
}

/// Every `virtio_mmio.device=` entry of a kernel command line, in order.
pub fn windows_from_cmdline(
    cmdline: &str,
) -> impl Iterator<Item = Result<MmioWindow, CmdlineError>> + '_ {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("virtio_mmio.device="))
        .map(parse_device_arg)
}

fn bad(field: &'static str, text: &str) -> CmdlineError {
    CmdlineError::BadNumber {
        field,
        text: text.to_string(),
    }
}

/// `strtoull(text, 0)`: `0x` hex, leading `0` octal, else decimal; whole string.
fn parse_int(text: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (h, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Linux `memparse`: a number with an optional K/M/G/T/P/E suffix.
fn parse_size(text: &str) -> Result<u64, CmdlineError> {
    let (num, shift) = match text.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&text[..text.len() - 1], 10),
        Some(b'M') => (&text[..text.len() - 1], 20),
        Some(b'G') => (&text[..text.len() - 1], 30),
        Some(b'T') => (&text[..text.len() - 1], 40),
        Some(b'P') => (&text[..text.len() - 1], 50),
        Some(b'E') if !(text.starts_with("0x") || text.starts_with("0X")) => {
            (&text[..text.len() - 1], 60)
        }
        _ => (text, 0),
    };
    let n = parse_int(num).ok_or_else(|| bad("size", text))?;
    n.checked_mul(1u64 << shift)
        .filter(|_| n.leading_zeros() >= shift)
        .ok_or_else(|| bad("size", text))
}

/// Why a window holds no usable device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No virtio-mmio device answers here.
    #[error("no virtio-mmio device at {base:#x}: magic {found:#010x}, expected 0x74726976")]
    BadMagic {
        /// Window base.
        base: u64,
        /// Value read.
        found: u32,
    },
    /// A legacy (version 1) or unknown register layout.
    #[error(
        "virtio-mmio device at {base:#x} has version {version}; only version 2 (virtio 1.x) is supported"
    )]
    UnsupportedVersion {
        /// Window base.
        base: u64,
        /// Version register.
        version: u32,
    },
    /// The slot exists but holds no device (device id 0).
    #[error("virtio-mmio slot at {base:#x} is empty")]
    Empty {
        /// Window base.
        base: u64,
    },
    /// The window is smaller than the register block or not addressable.
    #[error("virtio-mmio window of {size:#x} bytes at {base:#x} is too small or not addressable")]
    BadWindow {
        /// Window base.
        base: u64,
        /// Window size.
        size: u64,
    },
}

/// A virtio-mmio v2 device.
#[derive(Debug)]
pub struct MmioTransport {
    regs: MmioRegion,
    window: MmioWindow,
    device_id: u32,
}

impl MmioTransport {
    /// Checks the window for a version-2 virtio-mmio device and wraps it.
    ///
    /// # Safety
    ///
    /// `window.base..window.base + window.size` must be identity-mapped device memory
    /// (uncached) that nothing else accesses, for the rest of the program; probing
    /// reads it, so it must be a window where a virtio-mmio device may live (a VMM's
    /// MMIO hole), not RAM.
    #[allow(unsafe_code)] // the caller vouches for the window; wraps it as MMIO
    pub unsafe fn new(window: MmioWindow) -> Result<Self, ProbeError> {
        let (Ok(base), Ok(size)) = (usize::try_from(window.base), usize::try_from(window.size))
        else {
            return Err(ProbeError::BadWindow {
                base: window.base,
                size: window.size,
            });
        };
        if size < reg::CONFIG || base.checked_add(size).is_none() {
            return Err(ProbeError::BadWindow {
                base: window.base,
                size: window.size,
            });
        }
        // SAFETY: the caller vouches for the window (this function's contract), and
        // the size check above keeps every register offset inside it.
        let regs = unsafe { MmioRegion::new(base, size) };
        Self::from_region(regs, window)
    }

    fn from_region(regs: MmioRegion, window: MmioWindow) -> Result<Self, ProbeError> {
        let found = regs.read32(reg::MAGIC_VALUE);
        if found != MAGIC {
            return Err(ProbeError::BadMagic {
                base: window.base,
                found,
            });
        }
        let version = regs.read32(reg::VERSION);
        if version != 2 {
            return Err(ProbeError::UnsupportedVersion {
                base: window.base,
                version,
            });
        }
        let device_id = regs.read32(reg::DEVICE_ID);
        if device_id == 0 {
            return Err(ProbeError::Empty { base: window.base });
        }
        Ok(Self {
            regs,
            window,
            device_id,
        })
    }

    /// The window this device lives in (with its IRQ, when the command line named it).
    pub fn window(&self) -> MmioWindow {
        self.window
    }

    /// Vendor id register.
    pub fn vendor_id(&self) -> u32 {
        self.regs.read32(reg::VENDOR_ID)
    }

    /// A handle for the interrupt handler (see [`InterruptAck`]).
    pub fn interrupt_ack(&self) -> InterruptAck {
        InterruptAck::mmio(self.regs)
    }
}

/// Probes each window and yields the devices found (empty slots and windows without
/// the magic value are skipped; they are normal when probing known windows).
///
/// # Safety
///
/// Every window must satisfy [`MmioTransport::new`]'s contract.
#[allow(unsafe_code)] // forwards `MmioTransport::new`'s contract
pub unsafe fn probe(
    windows: impl IntoIterator<Item = MmioWindow>,
) -> impl Iterator<Item = MmioTransport> {
    windows.into_iter().filter_map(|w| {
        // SAFETY: forwarded from this function's contract.
        unsafe { MmioTransport::new(w) }.ok()
    })
}

/// The feature registers (virtio 1.2 §4.2.2).
const FEATURES: FeatureRegs = FeatureRegs {
    device_select: reg::DEVICE_FEATURES_SEL,
    device: reg::DEVICE_FEATURES,
    driver_select: reg::DRIVER_FEATURES_SEL,
    driver: reg::DRIVER_FEATURES,
};

impl Transport for MmioTransport {
    fn device_id(&self) -> u32 {
        self.device_id
    }

    fn device_features(&mut self) -> u64 {
        FEATURES.read_device(&self.regs)
    }

    fn set_driver_features(&mut self, features: u64) {
        FEATURES.write_driver(&self.regs, features)
    }

    fn status(&self) -> u8 {
        self.regs.read32(reg::STATUS) as u8
    }

    fn set_status(&mut self, status: u8) {
        self.regs.write32(reg::STATUS, u32::from(status));
    }

    fn max_queue_size(&mut self, queue: u16) -> u16 {
        self.regs.write32(reg::QUEUE_SEL, u32::from(queue));
        u16::try_from(self.regs.read32(reg::QUEUE_NUM_MAX)).unwrap_or(u16::MAX)
    }

    fn setup_queue(
        &mut self,
        queue: u16,
        size: u16,
        addrs: QueueAddrs,
    ) -> Result<(), TransportError> {
        // virtio 1.2 §4.2.3.2.
        self.regs.write32(reg::QUEUE_SEL, u32::from(queue));
        if self.regs.read32(reg::QUEUE_READY) != 0 {
            return Err(TransportError::QueueInUse(queue));
        }
        let max = u16::try_from(self.regs.read32(reg::QUEUE_NUM_MAX)).unwrap_or(u16::MAX);
        if max == 0 {
            return Err(TransportError::NoSuchQueue(queue));
        }
        if size > max {
            return Err(TransportError::QueueTooLarge { queue, size, max });
        }
        self.regs.write32(reg::QUEUE_NUM, u32::from(size));
        self.regs.write64_split(reg::QUEUE_DESC_LOW, addrs.desc);
        self.regs.write64_split(reg::QUEUE_DRIVER_LOW, addrs.driver);
        self.regs.write64_split(reg::QUEUE_DEVICE_LOW, addrs.device);
        self.regs.write32(reg::QUEUE_READY, 1);
        Ok(())
    }

    fn notify(&mut self, queue: u16) {
        self.regs.write32(reg::QUEUE_NOTIFY, u32::from(queue));
    }

    fn ack_interrupt(&mut self) -> Isr {
        self.interrupt_ack().ack()
    }

    fn config_generation(&self) -> u32 {
        self.regs.read32(reg::CONFIG_GENERATION)
    }

    fn config_len(&self) -> usize {
        self.regs.len() - reg::CONFIG
    }

    fn read_config8(&self, offset: usize) -> Result<u8, TransportError> {
        self.check(offset, 1)?;
        Ok(self.regs.read8(reg::CONFIG + offset))
    }

    fn read_config16(&self, offset: usize) -> Result<u16, TransportError> {
        self.check(offset, 2)?;
        Ok(self.regs.read16(reg::CONFIG + offset))
    }

    fn read_config32(&self, offset: usize) -> Result<u32, TransportError> {
        self.check(offset, 4)?;
        Ok(self.regs.read32(reg::CONFIG + offset))
    }
}

impl MmioTransport {
    fn check(&self, offset: usize, width: usize) -> Result<(), TransportError> {
        let len = self.config_len();
        if offset.is_multiple_of(width) && offset.checked_add(width).is_some_and(|e| e <= len) {
            Ok(())
        } else {
            Err(TransportError::ConfigOutOfRange { offset, width, len })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_firecracker_and_qemu_entries() {
        assert_eq!(
            parse_device_arg("4K@0xd0000000:5").unwrap(),
            MmioWindow {
                base: 0xd000_0000,
                size: 4096,
                irq: Some(5)
            }
        );
        assert_eq!(
            parse_device_arg("512@0xfeb00e00:12").unwrap(),
            MmioWindow {
                base: 0xfeb0_0e00,
                size: 512,
                irq: Some(12)
            }
        );
        assert_eq!(
            parse_device_arg("0x1000@3489660928:7:2").unwrap().base,
            0xd000_0000
        );
        assert_eq!(
            parse_device_arg("1m@010000:1").unwrap(),
            MmioWindow {
                base: 0o10000,
                size: 1 << 20,
                irq: Some(1)
            }
        );
    }

    #[test]
    fn rejects_malformed_entries_with_the_bad_part_named() {
        assert!(matches!(
            parse_device_arg("4K"),
            Err(CmdlineError::Syntax(_))
        ));
        assert!(matches!(
            parse_device_arg("4K@0xd0000000"),
            Err(CmdlineError::Syntax(_))
        ));
        assert_eq!(
            parse_device_arg("4Q@0x1000:5").unwrap_err(),
            CmdlineError::BadNumber {
                field: "size",
                text: "4Q".into()
            }
        );
        assert!(matches!(
            parse_device_arg("4K@0xzz:5"),
            Err(CmdlineError::BadNumber {
                field: "address",
                ..
            })
        ));
        assert!(matches!(
            parse_device_arg("4K@0x1000:-1"),
            Err(CmdlineError::BadNumber { field: "irq", .. })
        ));
        assert!(matches!(
            parse_device_arg("4K@0x1000:5:x"),
            Err(CmdlineError::BadNumber { field: "id", .. })
        ));
        assert!(matches!(
            parse_device_arg("16@0x1000:5"),
            Err(CmdlineError::BadWindow { .. })
        ));
        assert!(matches!(
            parse_device_arg("4K@0xfffffffffffff800:5"),
            Err(CmdlineError::BadWindow { .. })
        ));
        assert!(matches!(
            parse_device_arg("99999999999G@0:5"),
            Err(CmdlineError::BadNumber { .. })
        ));
        let msg = parse_device_arg("4K@0x1000:x").unwrap_err().to_string();
        assert!(msg.contains("irq") && msg.contains("\"x\""), "{msg}");
    }

    #[test]
    fn finds_every_entry_on_a_command_line() {
        let line = "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 --port=80 virtio_mmio.device=4K@0xd0001000:6 virtio_mmio.device=bad";
        let v: Vec<_> = windows_from_cmdline(line).collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].as_ref().unwrap().irq, Some(6));
        assert!(v[2].is_err());
    }

    #[test]
    fn known_windows() {
        assert_eq!(qemu_microvm_windows().nth(1).unwrap().base, 0xfeb0_0200);
        assert_eq!(firecracker_windows(3).last().unwrap().base, 0xd000_2000);
    }

    #[allow(unsafe_code)]
    fn fake_regs(words: &mut [u32]) -> MmioRegion {
        // SAFETY: test backing memory, alive for the test and accessed only via the region.
        unsafe { MmioRegion::new(words.as_mut_ptr() as usize, words.len() * 4) }
    }

    #[test]
    fn probing_checks_magic_version_and_device_id() {
        let w = MmioWindow {
            base: 0,
            size: 0x200,
            irq: None,
        };
        let mut mem = [0u32; 0x80];
        let err = MmioTransport::from_region(fake_regs(&mut mem), w).unwrap_err();
        assert_eq!(err, ProbeError::BadMagic { base: 0, found: 0 });
        mem[0] = MAGIC;
        mem[1] = 1;
        let err = MmioTransport::from_region(fake_regs(&mut mem), w).unwrap_err();
        assert_eq!(
            err,
            ProbeError::UnsupportedVersion {
                base: 0,
                version: 1
            }
        );
        mem[1] = 2;
        assert_eq!(
            MmioTransport::from_region(fake_regs(&mut mem), w).unwrap_err(),
            ProbeError::Empty { base: 0 }
        );
        mem[2] = 2;
        mem[0x40] = 0x0403_0201; // first config word
        let t = MmioTransport::from_region(fake_regs(&mut mem), w).unwrap();
        assert_eq!(t.device_id(), 2);
        assert_eq!(t.config_len(), 0x100);
        assert_eq!(t.read_config16(2).unwrap(), 0x0403);
        assert!(t.read_config32(0x100).is_err());
        assert!(t.read_config32(2).is_err(), "misaligned");
    }

    #[test]
    fn queue_setup_programs_registers() {
        let w = MmioWindow {
            base: 0,
            size: 0x200,
            irq: None,
        };
        let mut mem = [0u32; 0x80];
        mem[0] = MAGIC;
        mem[1] = 2;
        mem[2] = 1;
        mem[reg::QUEUE_NUM_MAX / 4] = 256;
        let regs = fake_regs(&mut mem);
        let mut t = MmioTransport::from_region(regs, w).unwrap();
        let addrs = QueueAddrs {
            desc: 0x1_0000_1000,
            driver: 0x2000,
            device: 0x3000,
        };
        assert_eq!(
            t.setup_queue(0, 512, addrs).unwrap_err(),
            TransportError::QueueTooLarge {
                queue: 0,
                size: 512,
                max: 256
            }
        );
        t.setup_queue(0, 128, addrs).unwrap();
        assert_eq!(regs.read32(reg::QUEUE_NUM), 128);
        assert_eq!(regs.read32(reg::QUEUE_DESC_LOW), 0x1000);
        assert_eq!(regs.read32(reg::QUEUE_DESC_LOW + 4), 1);
        assert_eq!(regs.read32(reg::QUEUE_READY), 1);
        assert_eq!(
            t.setup_queue(0, 128, addrs).unwrap_err(),
            TransportError::QueueInUse(0)
        );
        // Plain memory never clears the status, so the ack gives up after 16 rounds.
        regs.write32(reg::INTERRUPT_STATUS, 3);
        let isr = t.ack_interrupt();
        assert!(isr.queue() && isr.config_changed());
        assert_eq!(regs.read32(reg::INTERRUPT_ACK), 3);
        regs.write32(reg::INTERRUPT_STATUS, 0);
        assert_eq!(t.ack_interrupt(), Isr::from_bits(0));
    }
}
