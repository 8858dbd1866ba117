//! Tests over tables captured from QEMU 7.2 `-M microvm` (ACPI on) with a
//! virtio-net and a virtio-blk device, at the addresses qboot placed them.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::*;

const DSDT: &[u8] = include_bytes!("../tests/data/microvm-dsdt.aml");
const MADT: &[u8] = include_bytes!("../tests/data/microvm-apic.aml");
const FADT: &[u8] = include_bytes!("../tests/data/microvm-facp.aml");
const XSDT: &[u8] = include_bytes!("../tests/data/microvm-xsdt.aml");
const RSDP: &[u8] = include_bytes!("../tests/data/microvm-rsdp.bin");
const RSDP_AT: u64 = 0xF3490;

/// Physical memory made of a few regions.
struct Regions(Vec<(u64, Vec<u8>)>);

impl PhysMem for Regions {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.0.iter().find_map(|(base, b)| {
            let off = usize::try_from(addr.checked_sub(*base)?).ok()?;
            b.get(off..off.checked_add(len)?)
        })
    }
}

fn microvm() -> Regions {
    Regions(vec![
        (RSDP_AT, RSDP.to_vec()),
        (0xEFCC0, DSDT.to_vec()),
        (0xEFE64, FADT.to_vec()),
        (0xEFF70, MADT.to_vec()),
        (0xEFFC2, XSDT.to_vec()),
    ])
}

fn expected() -> [VirtioMmio; 2] {
    let dev = |name: &[u8; 4], base, gsi| VirtioMmio {
        name: Some(*name),
        base,
        size: 0x200,
        interrupt: Some(Interrupt {
            number: gsi,
            isa: false,
            trigger: Trigger::Level,
            polarity: Polarity::High,
        }),
    };
    [dev(b"VR23", 0xFEB0_2E00, 47), dev(b"VR22", 0xFEB0_2C00, 46)]
}

#[test]
fn captured_dsdt_lists_the_virtio_devices() {
    let dsdt = Sdt::new_checked(DSDT).expect("DSDT");
    assert_eq!(&dsdt.signature(), b"DSDT");
    assert!(dsdt.checksum_ok());
    let found: Vec<_> = virtio_mmio_devices(dsdt.body()).collect();
    assert_eq!(found, expected());
    // The other devices are seen too, with their ids.
    let names: Vec<_> = aml::devices(dsdt.body()).filter_map(|d| d.name).collect();
    assert_eq!(
        names,
        [*b"FWCF", *b"RTC_", *b"GED_", *b"PWRB", *b"VR23", *b"VR22"]
    );
    let rtc = aml::devices(dsdt.body()).find(|d| d.name == Some(*b"RTC_"));
    assert!(rtc.is_some_and(|d| d.is("PNP0B00")));
}

#[test]
fn discover_walks_rsdp_xsdt_fadt_madt() {
    let t = discover(&microvm(), Some(RSDP_AT)).expect("tables");
    assert_eq!(t.rsdp, RSDP_AT);
    assert_eq!(t.skipped, []);
    assert_eq!(
        t.io_apics,
        [
            IoApic {
                id: 0,
                address: 0xFEC0_0000,
                gsi_base: 0
            },
            IoApic {
                id: 1,
                address: 0xFEC1_0000,
                gsi_base: 24
            }
        ]
    );
    assert_eq!(t.virtio_mmio, expected());
}

#[test]
fn rsdp_is_found_by_scanning_the_bios_area() {
    let mut area = vec![0u8; BIOS_AREA.1];
    // qboot's image holds a "RSD PTR " string that is not a valid RSDP: skip it.
    let decoy = 0xF31A0 - BIOS_AREA.0 as usize;
    area[decoy..decoy + 8].copy_from_slice(table::RSDP_SIGNATURE);
    let at = (RSDP_AT - BIOS_AREA.0) as usize;
    area[at..at + RSDP.len()].copy_from_slice(RSDP);
    let mut mem = microvm();
    mem.0.retain(|(a, _)| *a != RSDP_AT);
    mem.0.push((BIOS_AREA.0, area));
    assert_eq!(find_rsdp(&mem), Some(RSDP_AT));
    let t = discover(&mem, None).expect("tables");
    assert_eq!(t.virtio_mmio, expected());
    assert_eq!(discover(&Regions(vec![]), None), Err(AcpiError::NoRsdp));
}

#[test]
fn broken_tables_are_skipped_or_reported() {
    let mut bad = RSDP.to_vec();
    bad[9] ^= 1;
    assert_eq!(Rsdp::parse(&bad), Err(AcpiError::Checksum { what: "RSDP" }));
    // An XSDT entry pointing nowhere is skipped; the rest still works.
    let mut xsdt = XSDT.to_vec();
    xsdt[44..52].copy_from_slice(&0xDEAD_0000u64.to_le_bytes());
    let mut mem = microvm();
    mem.0.retain(|(a, _)| *a != 0xEFFC2);
    mem.0.push((0xEFFC2, xsdt));
    let t = discover(&mem, Some(RSDP_AT)).expect("tables");
    assert_eq!(t.io_apics, []);
    assert_eq!(t.virtio_mmio, expected());
    assert_eq!(
        t.skipped,
        [AcpiError::Unreadable {
            addr: 0xDEAD_0000,
            len: table::HEADER_LEN
        }]
    );
    let e = discover(&mem, Some(0x1000)).expect_err("no RSDP there");
    assert_eq!(
        e.to_string(),
        "cannot read 20 bytes of ACPI tables at 0x1000"
    );
}

#[test]
fn isa_irqs_go_through_overrides() {
    let t = Tables {
        overrides: vec![SourceOverride {
            source: 5,
            gsi: 21,
            flags: 0b1111,
        }],
        ..Tables::default()
    };
    let isa = |n| Interrupt {
        number: n,
        isa: true,
        trigger: Trigger::Edge,
        polarity: Polarity::High,
    };
    assert_eq!(
        t.isa_to_gsi(isa(5)),
        Interrupt {
            number: 21,
            isa: false,
            trigger: Trigger::Level,
            polarity: Polarity::Low
        }
    );
    assert_eq!(
        t.isa_to_gsi(isa(7)),
        Interrupt {
            isa: false,
            ..isa(7)
        }
    );
}
