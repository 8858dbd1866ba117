//! Shared bodies of the fuzz targets, also run on stable by `tests/fuzz_replay.rs`.
//! Each asserts properties that must hold for any input, besides "no panic".

use crate::{MAX_VIRTIO_DEVICES, PhysMem, Rsdp, Sdt, aml, discover, resource, table};

/// Physical memory backed by a byte slice that starts at address `base`.
#[derive(Debug, Clone, Copy)]
pub struct SliceMem<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
}

impl PhysMem for SliceMem<'_> {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        self.bytes.get(off..off.checked_add(len)?)
    }
}

/// AML target: scan arbitrary bytes as a DSDT body.
pub fn aml(data: &[u8]) {
    let mut last = None;
    for d in aml::devices(data) {
        assert!(d.offset < data.len(), "device offset past the input");
        assert!(last < Some(d.offset), "devices out of order");
        last = Some(d.offset);
        if let Some(crs) = d.crs {
            assert!(crs.len() <= data.len());
            for _ in resource::resources(crs) {}
        }
    }
    for v in crate::virtio_mmio_devices(data) {
        assert!(v.size > 0, "a virtio-mmio window without a length");
    }
}

/// Tables target: arbitrary bytes as physical memory from address 0, whose first four
/// bytes (little-endian) are the RSDP address the loader passed (0: search for it).
pub fn tables(data: &[u8]) {
    let mem = SliceMem {
        base: 0,
        bytes: data,
    };
    let hint = data
        .get(..4)
        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
    if let Ok(t) = discover(&mem, hint) {
        assert!(t.virtio_mmio.len() <= MAX_VIRTIO_DEVICES);
        for v in &t.virtio_mmio {
            assert!(
                v.interrupt.is_none_or(|i| !i.isa),
                "ISA IRQ not mapped to a GSI"
            );
        }
    }
    let _ = Rsdp::parse(data);
    let _ = table::find_rsdp(data).count();
    if let Ok(s) = Sdt::new_checked(data) {
        assert!(s.bytes().len() <= data.len());
        let _ = s.entries(true).count() + s.entries(false).count();
        let _ = s.fadt_dsdt();
        let _ = s.madt_entries().count();
        aml(s.body());
    }
}
