//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the stable-Rust test
//! that replays their seed corpora and mutations: each takes arbitrary bytes and
//! must never panic.

// Fuzz-target bodies: a failed expectation is the finding, as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloc::vec::Vec;

use crate::net::{NetHdr, complete_checksum};
use crate::transport::mmio::{parse_device_arg, windows_from_cmdline};
use oasis_pci::FakePciConfig;

use crate::transport::pci::{Bdf, PciLayout, scan};

/// `virtio_mmio.device=` parsing over an arbitrary command line.
pub fn mmio_cmdline(data: &[u8]) {
    let text = alloc::string::String::from_utf8_lossy(data);
    for w in windows_from_cmdline(&text).flatten() {
        assert!(w.size >= 0x100 && w.base.checked_add(w.size).is_some());
    }
    let _ = parse_device_arg(&text);
}

/// Capability walk and BAR decoding over an arbitrary configuration space: bytes
/// 0..256 are the function's configuration space, the next 48 bytes six BAR sizes.
pub fn pci_config(data: &[u8]) {
    let mut space = [0u8; 256];
    let n = data.len().min(256);
    space[..n].copy_from_slice(&data[..n]);
    let mut sizes = [0u64; 6];
    for (i, s) in sizes.iter_mut().enumerate() {
        let at = 256 + 8 * i;
        if let Some(b) = data.get(at..at + 8) {
            *s = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        }
    }
    let bdf = Bdf {
        bus: 0,
        device: 1,
        function: 0,
    };
    let cfg = FakePciConfig::new(alloc::vec![(bdf, space, sizes)]);
    if let Ok(l) = PciLayout::read(&cfg, bdf) {
        for c in [Some(l.common), Some(l.notify), Some(l.isr), l.device]
            .into_iter()
            .flatten()
        {
            let bar = l.bars[usize::from(c.bar)].expect("structures reference decoded BARs");
            assert!(u64::from(c.offset) + u64::from(c.length) <= bar.size);
        }
    }
    let _: Vec<_> = scan(&cfg).take(8).collect();
}

/// A received buffer: the 12-byte header, then the frame; NEEDS_CSUM completion.
pub fn net_rx(data: &[u8]) {
    let Some(hdr) = NetHdr::parse(data) else {
        return;
    };
    let mut frame = data[crate::net::HDR_LEN..].to_vec();
    let _ = complete_checksum(&mut frame, hdr.csum_start, hdr.csum_offset);
    let mut out = [0u8; 12];
    hdr.emit(&mut out).expect("12 bytes fit");
    assert_eq!(NetHdr::parse(&out), Some(hdr));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert!(!v.is_empty(), "empty corpus {target}");
        v.sort();
        v
    }

    /// Replays the seeds, then a few thousand deterministic mutations of them.
    fn exercise(target: &str, f: fn(&[u8])) {
        let seeds = corpus(target);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for s in &seeds {
            f(s);
        }
        for i in 0..4000 {
            let mut input = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rnd() % 8 {
                let r = rnd();
                match r % 4 {
                    0 if !input.is_empty() => {
                        let at = (r >> 8) as usize % input.len();
                        input[at] = (r >> 32) as u8;
                    }
                    1 => input.push((r >> 8) as u8),
                    2 if !input.is_empty() => {
                        input.truncate((r >> 8) as usize % input.len());
                    }
                    _ => {
                        let at = if input.is_empty() {
                            0
                        } else {
                            (r >> 8) as usize % input.len()
                        };
                        input.insert(at, b"@:0xKM9 "[(r >> 40) as usize % 8]);
                    }
                }
            }
            f(&input);
        }
    }

    #[test]
    fn mmio_cmdline_corpus_and_mutations() {
        exercise("mmio_cmdline", mmio_cmdline);
    }

    #[test]
    fn pci_config_corpus_and_mutations() {
        exercise("pci_config", pci_config);
    }

    #[test]
    fn net_rx_corpus_and_mutations() {
        exercise("net_rx", net_rx);
    }
}
