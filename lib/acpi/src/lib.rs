//! `oasis-acpi`: the ACPI facts a PVH unikernel needs to find its devices, read from
//! the firmware's tables without an AML interpreter.
//!
//! [`discover`] follows the RSDP to the RSDT/XSDT, reads the MADT's I/O APICs and
//! interrupt source overrides, and scans the DSDT and SSDTs for virtio-mmio devices
//! (`_HID`/`_CID` `"LNRO0005"`, as QEMU microvm with ACPI and Firecracker describe
//! them), returning each window and its interrupt as a global system interrupt.
//! Physical memory is reached through the [`PhysMem`] trait, so the crate needs no
//! unsafe code and runs on the host in tests and fuzzers.
//!
//! Layers: [`table`] (RSDP, SDT header, RSDT/XSDT, FADT, MADT), [`aml`] (a scanner
//! for static `Device`/`Name` patterns in AML, with `PkgLength` decoding) and
//! [`resource`] (`_CRS` resource templates).
//!
//! What it does not do: evaluate AML (a `_HID` or `_CRS` computed by a method, `_STA`,
//! `_DSD`), power management, or any table beyond those above. Everything read is
//! untrusted: malformed tables are skipped or reported as [`AcpiError`]s, never panics,
//! and every scan is bounded linearly in the input's size.
#![no_std]
#![forbid(unsafe_code)]
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
#[macro_use]
extern crate std;

pub mod aml;
// Fuzz-target bodies: compiled only for tests and the fuzz targets (feature
// `fuzzing`, which the crate's own tests and `fuzz/Cargo.toml` turn on).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod resource;
pub mod table;

use alloc::vec::Vec;
use core::fmt;

pub use resource::{Interrupt, Polarity, Resource, Trigger};
pub use table::{IoApic, MadtEntry, Rsdp, Sdt, SourceOverride};

/// The `_HID` Linux and QEMU use for virtio-mmio devices (Linaro's ACPI vendor id).
pub const VIRTIO_MMIO_HID: &str = "LNRO0005";
/// Largest table read (bigger claims are treated as corrupt).
pub const MAX_TABLE_LEN: usize = 1 << 20;
/// Most RSDT/XSDT entries followed.
pub const MAX_ROOT_ENTRIES: usize = 64;
/// Most virtio-mmio devices reported.
pub const MAX_VIRTIO_DEVICES: usize = 64;
/// Most MADT entries read.
pub const MAX_MADT_ENTRIES: usize = 256;
/// Where firmware places the RSDP when the loader names none (ACPI 6.5 §5.2.5.1).
pub const BIOS_AREA: (u64, usize) = (0xE_0000, 0x2_0000);
/// BIOS data area word holding the EBDA's segment.
const EBDA_SEGMENT_PTR: u64 = 0x40E;
/// Bytes of the EBDA searched for the RSDP.
const EBDA_SEARCH_LEN: usize = 1024;

/// Read access to physical memory holding the firmware's tables.
pub trait PhysMem {
    /// The `len` bytes at physical address `addr`, or `None` when that range cannot
    /// be read.
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// A four-character table signature, printed as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 4]);

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

/// Why a table could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcpiError {
    /// No RSDP was named by the loader or found in the BIOS area.
    #[error("no ACPI RSDP: the loader passed none and none lies in the EBDA or 0xE0000..0x100000")]
    NoRsdp,
    /// The bytes do not start with `"RSD PTR "`.
    #[error("no \"RSD PTR \" signature")]
    NotRsdp,
    /// A checksum does not sum to zero.
    #[error("{what} checksum is wrong")]
    Checksum {
        /// Which structure (`"RSDP"`, a table's signature).
        what: &'static str,
    },
    /// A structure is shorter than its format requires.
    #[error("{what} is {len} bytes long, needs {need}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The length its format requires.
        need: usize,
    },
    /// Physical memory could not be read there.
    #[error("cannot read {len} bytes of ACPI tables at {addr:#x}")]
    Unreadable {
        /// Physical address of the read.
        addr: u64,
        /// Bytes asked for.
        len: usize,
    },
    /// A table claims to be larger than [`MAX_TABLE_LEN`].
    #[error("ACPI table at {addr:#x} claims {len} bytes, over the {MAX_TABLE_LEN}-byte limit")]
    TooLong {
        /// Physical address of the table.
        addr: u64,
        /// The length its header claims.
        len: usize,
    },
    /// A pointer led to a table with another signature.
    #[error("ACPI table at {addr:#x} is {found}, expected {expected}")]
    Signature {
        /// Physical address of the table.
        addr: u64,
        /// The signature the pointer promised.
        expected: Signature,
        /// The signature found there.
        found: Signature,
    },
    /// The RSDP names neither an RSDT nor an XSDT.
    #[error("the RSDP names neither an RSDT nor an XSDT")]
    NoRootTable,
}

/// A virtio-mmio device described in the DSDT or an SSDT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmio {
    /// The AML device's name (`VR23`), for messages.
    pub name: Option<[u8; 4]>,
    /// Physical address of the registers.
    pub base: u64,
    /// Window length in bytes.
    pub size: u64,
    /// Its interrupt; after [`discover`], always a GSI (`isa == false`).
    pub interrupt: Option<Interrupt>,
}

/// The virtio-mmio devices in one AML body (DSDT/SSDT without its header): devices
/// with `_HID` or `_CID` [`VIRTIO_MMIO_HID`] and a memory window in `_CRS`.
/// Interrupts from IRQ descriptors are ISA IRQs here ([`Interrupt::isa`]).
pub fn virtio_mmio_devices(aml: &[u8]) -> impl Iterator<Item = VirtioMmio> + '_ {
    aml::devices(aml)
        .filter(|d| d.is(VIRTIO_MMIO_HID))
        .filter_map(|d| {
            let crs = d.crs?;
            let mut window = None;
            let mut interrupt = None;
            for r in resource::resources(crs) {
                match r {
                    Resource::Memory { base, len } => {
                        window.get_or_insert((base, len));
                    }
                    Resource::Interrupt(i) => {
                        interrupt.get_or_insert(i);
                    }
                }
            }
            let (base, size) = window.filter(|(_, len)| *len > 0)?;
            Some(VirtioMmio {
                name: d.name,
                base,
                size,
                interrupt,
            })
        })
}

/// What [`discover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tables {
    /// Where the RSDP was.
    pub rsdp: u64,
    /// I/O APICs from the MADT (empty without one).
    pub io_apics: Vec<IoApic>,
    /// ISA interrupt source overrides from the MADT.
    pub overrides: Vec<SourceOverride>,
    /// virtio-mmio devices from the DSDT and SSDTs, in table order.
    pub virtio_mmio: Vec<VirtioMmio>,
    /// Tables that could not be read or parsed, skipped.
    pub skipped: Vec<AcpiError>,
}

impl Tables {
    /// The GSI and signalling of ISA IRQ `irq`, through the overrides (MPS INTI flags:
    /// polarity bits 0-1, trigger bits 2-3; 0 keeps the ISA default).
    pub fn isa_to_gsi(&self, i: Interrupt) -> Interrupt {
        if !i.isa {
            return i;
        }
        let mut out = Interrupt { isa: false, ..i };
        if let Some(o) = self
            .overrides
            .iter()
            .find(|o| u32::from(o.source) == i.number)
        {
            out.number = o.gsi;
            match o.flags & 0x3 {
                0x1 => out.polarity = Polarity::High,
                0x3 => out.polarity = Polarity::Low,
                _ => {}
            }
            match (o.flags >> 2) & 0x3 {
                0x1 => out.trigger = Trigger::Edge,
                0x3 => out.trigger = Trigger::Level,
                _ => {}
            }
        }
        out
    }
}

/// Reads the SDT at `addr`, checking its signature when `expected` is given.
fn read_sdt<'m>(
    mem: &'m impl PhysMem,
    addr: u64,
    expected: Option<&[u8; 4]>,
) -> Result<Sdt<'m>, AcpiError> {
    let unreadable = |len| AcpiError::Unreadable { addr, len };
    let header = mem
        .bytes(addr, table::HEADER_LEN)
        .ok_or(unreadable(table::HEADER_LEN))?;
    let found = Signature([header[0], header[1], header[2], header[3]]);
    if let Some(e) = expected
        && found.0 != *e
    {
        return Err(AcpiError::Signature {
            addr,
            expected: Signature(*e),
            found,
        });
    }
    let len = Sdt::length(header)?;
    if len > MAX_TABLE_LEN {
        return Err(AcpiError::TooLong { addr, len });
    }
    Sdt::new_checked(mem.bytes(addr, len).ok_or(unreadable(len))?)
}

fn rsdp_at(mem: &impl PhysMem, addr: u64) -> Result<Rsdp, AcpiError> {
    let unreadable = |len| AcpiError::Unreadable { addr, len };
    let v1 = mem
        .bytes(addr, Rsdp::READ_LEN)
        .ok_or(unreadable(Rsdp::READ_LEN))?;
    let rsdp = Rsdp::parse(v1);
    // Revision 2+ needs the extended part: parse again over all of it.
    match rsdp {
        Err(AcpiError::Truncated { .. }) | Ok(_) => {
            let len = Rsdp::len_for_revision(v1[15]);
            Rsdp::parse(mem.bytes(addr, len).ok_or(unreadable(len))?)
        }
        Err(e) => Err(e),
    }
}

/// Finds the RSDP the legacy way: the first KiB of the EBDA, then the BIOS area.
pub fn find_rsdp(mem: &impl PhysMem) -> Option<u64> {
    let ebda = mem
        .bytes(EBDA_SEGMENT_PTR, 2)
        .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])) << 4)
        .filter(|a| *a >= 0x400);
    let areas = [ebda.map(|a| (a, EBDA_SEARCH_LEN)), Some(BIOS_AREA)];
    areas.into_iter().flatten().find_map(|(base, len)| {
        let area = mem.bytes(base, len)?;
        table::find_rsdp(area)
            .map(|off| base + off as u64)
            .find(|a| rsdp_at(mem, *a).is_ok())
    })
}

/// Walks the tables from the RSDP at `rsdp` (as PVH's `start_info.rsdp_paddr` gives
/// it), or from one found by [`find_rsdp`] when `None`.
pub fn discover(mem: &impl PhysMem, rsdp: Option<u64>) -> Result<Tables, AcpiError> {
    let rsdp_addr = match rsdp.filter(|a| *a != 0) {
        Some(a) => a,
        None => find_rsdp(mem).ok_or(AcpiError::NoRsdp)?,
    };
    let r = rsdp_at(mem, rsdp_addr)?;
    let mut out = Tables {
        rsdp: rsdp_addr,
        ..Tables::default()
    };
    let root = match (r.xsdt, r.rsdt) {
        (0, 0) => return Err(AcpiError::NoRootTable),
        (x, rsdt) if x != 0 => match read_sdt(mem, x, Some(b"XSDT")) {
            Ok(t) => (t, true),
            Err(e) if rsdt != 0 => {
                out.skipped.push(e);
                (read_sdt(mem, u64::from(rsdt), Some(b"RSDT"))?, false)
            }
            Err(e) => return Err(e),
        },
        (_, rsdt) => (read_sdt(mem, u64::from(rsdt), Some(b"RSDT"))?, false),
    };
    let (root, wide) = root;
    let mut aml_tables: Vec<u64> = Vec::new();
    for addr in root.entries(wide).take(MAX_ROOT_ENTRIES) {
        let t = match read_sdt(mem, addr, None) {
            Ok(t) => t,
            Err(e) => {
                out.skipped.push(e);
                continue;
            }
        };
        match &t.signature() {
            b"FACP" => {
                if let Some(d) = t.fadt_dsdt() {
                    aml_tables.insert(0, d);
                }
            }
            b"SSDT" => aml_tables.push(addr),
            b"APIC" => {
                for e in t.madt_entries().take(MAX_MADT_ENTRIES) {
                    match e {
                        MadtEntry::IoApic(a) => out.io_apics.push(a),
                        MadtEntry::Override(o) => out.overrides.push(o),
                    }
                }
            }
            _ => {}
        }
    }
    // The DSDT first (when the FADT names one), then the SSDTs in root-table order.
    for addr in &aml_tables {
        let t = match read_sdt(mem, *addr, None) {
            Ok(t) if matches!(&t.signature(), b"DSDT" | b"SSDT") => t,
            Ok(t) => {
                out.skipped.push(AcpiError::Signature {
                    addr: *addr,
                    expected: Signature(*b"DSDT"),
                    found: Signature(t.signature()),
                });
                continue;
            }
            Err(e) => {
                out.skipped.push(e);
                continue;
            }
        };
        for d in virtio_mmio_devices(t.body()) {
            if out.virtio_mmio.len() >= MAX_VIRTIO_DEVICES {
                break;
            }
            let interrupt = d.interrupt.map(|i| out.isa_to_gsi(i));
            out.virtio_mmio.push(VirtioMmio { interrupt, ..d });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
