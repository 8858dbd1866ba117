//! Static tables (ACPI 6.5 §5.2): the RSDP, the common SDT header, the RSDT/XSDT
//! entry lists, the FADT's DSDT pointer and the MADT's I/O APIC and override entries.

use crate::AcpiError;

/// Length of the common SDT header (§5.2.6).
pub const HEADER_LEN: usize = 36;
/// RSDP signature (§5.2.5.3).
pub const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Length of the ACPI 1.0 RSDP, covered by its first checksum.
pub const RSDP_V1_LEN: usize = 20;
/// Length of the ACPI 2.0+ RSDP, covered by its extended checksum.
pub const RSDP_V2_LEN: usize = 36;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn sums_to_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
}

/// The Root System Description Pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// 0 for ACPI 1.0 (RSDT only), 2 or more for ACPI 2.0+ (XSDT).
    pub revision: u8,
    /// Physical address of the RSDT (32-bit entries); 0 when absent.
    pub rsdt: u32,
    /// Physical address of the XSDT (64-bit entries, revision 2+); 0 when absent.
    pub xsdt: u64,
}

impl Rsdp {
    /// Bytes to read at an RSDP's address to parse it.
    pub const READ_LEN: usize = RSDP_V1_LEN;

    /// Parses an RSDP at the start of `b`, checking its signature and checksums.
    /// For revision 2+ the extended part must be present in `b` too.
    pub fn parse(b: &[u8]) -> Result<Rsdp, AcpiError> {
        let v1 = b.get(..RSDP_V1_LEN).ok_or(AcpiError::Truncated {
            what: "RSDP",
            len: b.len(),
            need: RSDP_V1_LEN,
        })?;
        if &v1[..8] != RSDP_SIGNATURE {
            return Err(AcpiError::NotRsdp);
        }
        if !sums_to_zero(v1) {
            return Err(AcpiError::Checksum { what: "RSDP" });
        }
        let revision = v1[15];
        let rsdt = u32_at(v1, 16).unwrap_or(0);
        if revision < 2 {
            return Ok(Rsdp {
                revision,
                rsdt,
                xsdt: 0,
            });
        }
        let v2 = b.get(..RSDP_V2_LEN).ok_or(AcpiError::Truncated {
            what: "RSDP 2.0",
            len: b.len(),
            need: RSDP_V2_LEN,
        })?;
        if !sums_to_zero(v2) {
            return Err(AcpiError::Checksum {
                what: "RSDP extended",
            });
        }
        Ok(Rsdp {
            revision,
            rsdt,
            xsdt: u64_at(v2, 24).unwrap_or(0),
        })
    }

    /// Bytes to read for this revision (20 or 36).
    pub fn len_for_revision(revision: u8) -> usize {
        if revision >= 2 {
            RSDP_V2_LEN
        } else {
            RSDP_V1_LEN
        }
    }
}

/// Offsets in `area` (16-byte aligned, as firmware places it) of RSDPs whose
/// signature and checksums are valid.
pub fn find_rsdp(area: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..area.len())
        .step_by(16)
        .filter(move |&i| Rsdp::parse(&area[i..]).is_ok())
}

/// A system description table: header plus body, cut to the header's length.
#[derive(Debug, Clone, Copy)]
pub struct Sdt<'a> {
    bytes: &'a [u8],
}

impl<'a> Sdt<'a> {
    /// The table's length from its header (the first [`HEADER_LEN`] bytes).
    pub fn length(header: &[u8]) -> Result<usize, AcpiError> {
        let len = u32_at(header, 4).ok_or(AcpiError::Truncated {
            what: "table header",
            len: header.len(),
            need: HEADER_LEN,
        })?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len < HEADER_LEN {
            return Err(AcpiError::Truncated {
                what: "table",
                len,
                need: HEADER_LEN,
            });
        }
        Ok(len)
    }

    /// Checks the header and the length against `bytes` (the checksum is not
    /// enforced, as Linux only warns about it; see [`Self::checksum_ok`]).
    pub fn new_checked(bytes: &'a [u8]) -> Result<Sdt<'a>, AcpiError> {
        let len = Self::length(bytes)?;
        let bytes = bytes.get(..len).ok_or(AcpiError::Truncated {
            what: "table",
            len: bytes.len(),
            need: len,
        })?;
        Ok(Sdt { bytes })
    }

    /// The four-byte signature (`b"APIC"`, `b"DSDT"`, …).
    pub fn signature(&self) -> [u8; 4] {
        let mut s = [0; 4];
        s.copy_from_slice(&self.bytes[..4]);
        s
    }

    /// The table's revision byte.
    pub fn revision(&self) -> u8 {
        self.bytes[8]
    }

    /// Whether the bytes sum to zero.
    pub fn checksum_ok(&self) -> bool {
        sums_to_zero(self.bytes)
    }

    /// The table without its header.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The whole table.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// RSDT (`wide == false`, 32-bit) or XSDT (64-bit) entries: table addresses.
    pub fn entries(&self, wide: bool) -> impl Iterator<Item = u64> + 'a {
        let size = if wide { 8 } else { 4 };
        self.body().chunks_exact(size).map(move |c| {
            if wide {
                u64_at(c, 0).unwrap_or(0)
            } else {
                u64::from(u32_at(c, 0).unwrap_or(0))
            }
        })
    }

    /// FADT: the DSDT address (`X_DSDT` when present and non-zero, else `DSDT`).
    pub fn fadt_dsdt(&self) -> Option<u64> {
        const DSDT: usize = 40;
        const X_DSDT: usize = 140;
        u64_at(self.bytes, X_DSDT)
            .filter(|a| *a != 0)
            .or_else(|| u32_at(self.bytes, DSDT).map(u64::from).filter(|a| *a != 0))
    }

    /// MADT: its interrupt controller structures.
    pub fn madt_entries(&self) -> MadtEntries<'a> {
        // Local APIC address and flags precede the entries (§5.2.12).
        MadtEntries {
            b: self.body().get(8..).unwrap_or(&[]),
        }
    }
}

/// An I/O APIC from the MADT (§5.2.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// The I/O APIC's ID.
    pub id: u8,
    /// Physical address of its MMIO registers.
    pub address: u32,
    /// The first GSI its pin 0 serves.
    pub gsi_base: u32,
}

/// An interrupt source override from the MADT (§5.2.12.5): ISA IRQ `source` is GSI
/// `gsi`, with MPS INTI `flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOverride {
    /// The ISA IRQ.
    pub source: u8,
    /// The GSI it is wired to.
    pub gsi: u32,
    /// MPS INTI flags (polarity bits 0-1, trigger mode bits 2-3).
    pub flags: u16,
}

/// A MADT entry the crate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadtEntry {
    /// An I/O APIC (type 1).
    IoApic(IoApic),
    /// An interrupt source override (type 2).
    Override(SourceOverride),
}

/// Iterator over MADT entries; stops at the first malformed one.
#[derive(Debug, Clone)]
pub struct MadtEntries<'a> {
    b: &'a [u8],
}

const MADT_IO_APIC: u8 = 1;
const MADT_SOURCE_OVERRIDE: u8 = 2;

impl Iterator for MadtEntries<'_> {
    type Item = MadtEntry;

    fn next(&mut self) -> Option<MadtEntry> {
        loop {
            let kind = *self.b.first()?;
            let len = usize::from(*self.b.get(1)?);
            let Some(e) = self.b.get(..len).filter(|_| len >= 2) else {
                self.b = &[];
                return None;
            };
            self.b = &self.b[len..];
            match kind {
                MADT_IO_APIC if len >= 12 => {
                    return Some(MadtEntry::IoApic(IoApic {
                        id: e[2],
                        address: u32_at(e, 4)?,
                        gsi_base: u32_at(e, 8)?,
                    }));
                }
                MADT_SOURCE_OVERRIDE if len >= 10 => {
                    return Some(MadtEntry::Override(SourceOverride {
                        source: e[3],
                        gsi: u32_at(e, 4)?,
                        flags: u16_at(e, 8)?,
                    }));
                }
                _ => {}
            }
        }
    }
}
