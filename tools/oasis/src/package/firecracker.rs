//! Firecracker `--config-file` JSON (`firecracker --no-api --config-file FILE`).
//!
//! Field names are Firecracker's `VmmConfig` (src/vmm/src/resources.rs, which denies
//! unknown fields) and its `vmm_config` types; the tests parse our output with a
//! transcription of those types. Firecracker has one machine (virtio-mmio, listed on
//! the kernel command line, which our kvm platform reads), only TAP networking, no
//! port forwarding, and writes the serial console to its own stdout.

use serde::Serialize;

use super::{NetSpec, PackageError, VmSpec, utf8};
use crate::qemu::Machine;

const ENGINE: &str = "Firecracker";

#[derive(Debug, Serialize)]
pub struct VmmConfig {
    #[serde(rename = "boot-source")]
    pub boot_source: BootSource,
    pub drives: Vec<Drive>,
    #[serde(rename = "machine-config")]
    pub machine_config: MachineConfig,
    #[serde(rename = "network-interfaces")]
    pub network_interfaces: Vec<NetworkInterface>,
}

#[derive(Debug, Serialize)]
pub struct BootSource {
    pub kernel_image_path: String,
    pub boot_args: String,
}

#[derive(Debug, Serialize)]
pub struct Drive {
    pub drive_id: String,
    pub path_on_host: String,
    pub is_root_device: bool,
    pub is_read_only: bool,
}

#[derive(Debug, Serialize)]
pub struct MachineConfig {
    pub vcpu_count: u8,
    pub mem_size_mib: u32,
    pub smt: bool,
}

#[derive(Debug, Serialize)]
pub struct NetworkInterface {
    pub iface_id: String,
    pub host_dev_name: String,
    pub guest_mac: String,
}

/// The config for `spec`.
pub fn config(spec: &VmSpec) -> Result<VmmConfig, PackageError> {
    if let Some(m @ (Machine::Pc | Machine::Q35)) = spec.machine {
        return Err(PackageError::Machine {
            engine: ENGINE,
            machine: m.name(),
            why: "Firecracker has one machine type (virtio-mmio, like microvm)",
        });
    }
    let network_interfaces = match &spec.net {
        NetSpec::None => vec![],
        NetSpec::Tap(dev) => vec![NetworkInterface {
            iface_id: "net0".into(),
            host_dev_name: dev.clone(),
            guest_mac: spec.mac.to_string(),
        }],
        other => {
            return Err(PackageError::Net {
                engine: ENGINE,
                net: other.to_string(),
                why: "Firecracker attaches only existing TAP devices: use --net tap:NAME",
            });
        }
    };
    let drives = spec
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Ok(Drive {
                drive_id: format!("disk{i}"),
                path_on_host: utf8(&d.path)?,
                is_root_device: false,
                is_read_only: d.read_only,
            })
        })
        .collect::<Result<Vec<_>, PackageError>>()?;
    Ok(VmmConfig {
        boot_source: BootSource {
            kernel_image_path: utf8(&spec.kernel)?,
            boot_args: spec.cmdline.clone(),
        },
        drives,
        machine_config: MachineConfig {
            vcpu_count: 1,
            mem_size_mib: spec.mem_mib,
            smt: false,
        },
        network_interfaces,
    })
}

/// The config file's text.
pub fn config_json(spec: &VmSpec) -> Result<String, PackageError> {
    let mut s =
        serde_json::to_string_pretty(&config(spec)?).map_err(|e| PackageError::Serialise {
            engine: ENGINE,
            why: e.to_string(),
        })?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    //! `fc` transcribes Firecracker's config types (v1.x `src/vmm/src/resources.rs`
    //! `VmmConfig` and `src/vmm/src/vmm_config/{boot_source,drive,machine_config,net}.rs`)
    //! with their `deny_unknown_fields` and required fields: our JSON must parse.
    use super::*;
    use crate::package::Engine;
    use crate::package::tests::spec;

    // Transcribed whole: a field is there to be accepted, not read.
    #[allow(dead_code)]
    mod fc {
        use serde::Deserialize;

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct VmmConfig {
            #[serde(default)]
            pub balloon: Option<serde_json::Value>,
            #[serde(default)]
            pub drives: Vec<BlockDeviceConfig>,
            #[serde(rename = "boot-source")]
            pub boot_source: BootSourceConfig,
            #[serde(rename = "cpu-config", default)]
            pub cpu_config: Option<String>,
            #[serde(default)]
            pub logger: Option<serde_json::Value>,
            #[serde(rename = "machine-config", default)]
            pub machine_config: Option<MachineConfig>,
            #[serde(default)]
            pub metrics: Option<serde_json::Value>,
            #[serde(rename = "mmds-config", default)]
            pub mmds_config: Option<serde_json::Value>,
            #[serde(rename = "network-interfaces", default)]
            pub network_interfaces: Vec<NetworkInterfaceConfig>,
            #[serde(default)]
            pub vsock: Option<serde_json::Value>,
            #[serde(default)]
            pub entropy: Option<serde_json::Value>,
        }

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct BootSourceConfig {
            pub kernel_image_path: String,
            pub initrd_path: Option<String>,
            pub boot_args: Option<String>,
        }

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct BlockDeviceConfig {
            pub drive_id: String,
            pub partuuid: Option<String>,
            pub is_root_device: bool,
            #[serde(default)]
            pub cache_type: Option<String>,
            pub is_read_only: Option<bool>,
            pub path_on_host: Option<String>,
            pub rate_limiter: Option<serde_json::Value>,
            #[serde(rename = "io_engine")]
            pub file_engine_type: Option<String>,
            pub socket: Option<String>,
        }

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct MachineConfig {
            pub vcpu_count: u8,
            pub mem_size_mib: usize,
            #[serde(default)]
            pub smt: bool,
            #[serde(default)]
            pub cpu_template: Option<String>,
            #[serde(default)]
            pub track_dirty_pages: bool,
            #[serde(default)]
            pub huge_pages: Option<String>,
        }

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct NetworkInterfaceConfig {
            pub iface_id: String,
            pub host_dev_name: String,
            pub guest_mac: Option<String>,
            pub rx_rate_limiter: Option<serde_json::Value>,
            pub tx_rate_limiter: Option<serde_json::Value>,
        }
    }

    #[test]
    fn parses_as_firecrackers_vmm_config() {
        let text = spec().render(Engine::Firecracker).unwrap();
        let c: fc::VmmConfig =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.boot_source.kernel_image_path, "/img/www");
        assert_eq!(
            c.boot_source.boot_args.as_deref(),
            Some("--ipv4=10.0.0.2/24 -l debug")
        );
        let m = c.machine_config.unwrap();
        assert_eq!((m.vcpu_count, m.mem_size_mib), (1, 64));
        assert_eq!(c.drives.len(), 2);
        assert_eq!(c.drives[0].path_on_host.as_deref(), Some("/img/site.tar"));
        assert_eq!(c.drives[0].is_read_only, Some(true));
        assert_eq!(c.drives[1].is_read_only, Some(false));
        assert!(c.drives.iter().all(|d| !d.is_root_device));
        assert_eq!(c.network_interfaces[0].host_dev_name, "tap0");
        assert_eq!(
            c.network_interfaces[0].guest_mac.as_deref(),
            Some("52:54:00:12:34:56")
        );
    }

    #[test]
    fn refuses_what_firecracker_cannot_do() {
        let mut s = spec();
        s.net = NetSpec::Bridge("br0".into());
        assert!(matches!(
            s.render(Engine::Firecracker),
            Err(PackageError::Net { .. })
        ));
        s.net = NetSpec::None;
        s.machine = Some(Machine::Q35);
        assert!(matches!(
            s.render(Engine::Firecracker),
            Err(PackageError::Machine { .. })
        ));
        s.machine = Some(Machine::Microvm);
        let c: fc::VmmConfig =
            serde_json::from_str(&s.render(Engine::Firecracker).unwrap()).unwrap();
        assert!(c.network_interfaces.is_empty());
    }
}
