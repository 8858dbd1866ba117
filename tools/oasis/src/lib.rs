//! The library behind `cargo oasis`: building images, composing QEMU command lines,
//! booting them under Xen in QEMU, packaging images for other engines (libvirt,
//! Firecracker, Cloud Hypervisor, KubeVirt, Xen) and deploying them on libvirt, reading image sizes, scaffolding apps,
//! making the development TLS certificate, symbolising guests' crash reports. The
//! end-to-end tests and benchmarks use it too, so they boot images exactly the way
//! users do.
#![forbid(unsafe_code)]

pub mod build;
pub mod crash;
pub mod deploy;
pub mod image;
pub mod package;
pub mod qemu;
pub mod sandbox;
pub mod scaffold;
pub mod size;
pub mod tls;
pub mod xen;

use std::path::PathBuf;

/// The workspace root (this crate lives in `tools/oasis`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(here)
}
