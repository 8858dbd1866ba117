//! A KubeVirt `VirtualMachine` (`kubevirt.io/v1`) that boots the image by KubeVirt's
//! kernel boot from a container image holding it at `/boot/NAME`.
//!
//! Field names are KubeVirt's API (`staging/src/kubevirt.io/api/core/v1/schema.go`,
//! `types.go`); the tests parse our output with a transcription of the types we use.
//! The NIC is the pod network with masquerade binding (the guest takes KubeVirt's
//! DHCP lease, our default), exposing the guest ports of `--port`; disks become
//! PersistentVolumeClaims named `NAME-diskN` that the operator fills (e.g. with CDI).
//! With the app's health check (`www`, `kv`: `GET /healthz`), the VMI gets a
//! `readinessProbe` (a Service sends it traffic only once it answers) and a
//! `livenessProbe` (KubeVirt restarts a VMI that stops answering), both `httpGet`
//! on the guest port, which KubeVirt runs against the VMI's address.
//! JSON is YAML: `kubectl apply -f NAME.kubevirt.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{HealthCheck, PackageError, VmSpec};
use crate::qemu::Machine;

const ENGINE: &str = "KubeVirt";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachine {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: VirtualMachineSpec,
}

#[derive(Debug, Serialize)]
pub struct ObjectMeta {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineSpec {
    /// `Always`: KubeVirt restarts the VMI whenever it ends.
    pub run_strategy: &'static str,
    pub template: Template,
}

#[derive(Debug, Serialize)]
pub struct Template {
    pub metadata: TemplateMeta,
    pub spec: VmiSpec,
}

#[derive(Debug, Serialize)]
pub struct TemplateMeta {
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmiSpec {
    pub domain: DomainSpec,
    pub networks: Vec<Network>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    pub termination_grace_period_seconds: u32,
}

/// KubeVirt's `Probe` (`kubevirt.io/v1`): Kubernetes' handler fields inline.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub http_get: HttpGet,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

/// Kubernetes' `HTTPGetAction` (`port` is an IntOrString; we give the number).
#[derive(Debug, Serialize)]
pub struct HttpGet {
    pub path: String,
    pub port: u16,
}

/// The probes for `health`: ready after one answer (an Oasis app answers within a
/// second of starting), restarted after 30 s without one.
fn probes(health: Option<&HealthCheck>) -> (Option<Probe>, Option<Probe>) {
    let probe = |h: &HealthCheck, period, failures| Probe {
        http_get: HttpGet {
            path: h.path.clone(),
            port: h.port,
        },
        initial_delay_seconds: 1,
        period_seconds: period,
        timeout_seconds: 2,
        failure_threshold: failures,
    };
    match health {
        Some(h) => (Some(probe(h, 2, 3)), Some(probe(h, 10, 3))),
        None => (None, None),
    }
}

#[derive(Debug, Serialize)]
pub struct DomainSpec {
    pub machine: MachineSpec,
    pub resources: Resources,
    pub firmware: Firmware,
    pub devices: Devices,
}

#[derive(Debug, Serialize)]
pub struct MachineSpec {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Resources {
    pub requests: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Firmware {
    pub kernel_boot: KernelBoot,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelBoot {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kernel_args: String,
    pub container: KernelBootContainer,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelBootContainer {
    pub image: String,
    pub kernel_path: String,
    pub image_pull_policy: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Devices {
    /// Modern virtio (our drivers), not the transitional models.
    pub use_virtio_transitional: bool,
    pub autoattach_graphics_device: bool,
    pub autoattach_mem_balloon: bool,
    pub autoattach_serial_console: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Serialize)]
pub struct Disk {
    pub name: String,
    pub disk: DiskTarget,
}

#[derive(Debug, Serialize)]
pub struct DiskTarget {
    pub bus: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: &'static str,
    pub masquerade: Empty,
    pub mac_address: String,
    pub model: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

#[derive(Debug, Serialize)]
pub struct Port {
    pub name: String,
    pub protocol: &'static str,
    pub port: u16,
}

#[derive(Debug, Serialize)]
pub struct Network {
    pub name: &'static str,
    pub pod: Empty,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub persistent_volume_claim: Claim,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub claim_name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// The manifest for `spec`, probing `health` when given.
pub fn virtual_machine(
    spec: &VmSpec,
    health: Option<&HealthCheck>,
) -> Result<VirtualMachine, PackageError> {
    let (readiness_probe, liveness_probe) = probes(health);
    let machine = match spec.machine {
        None | Some(Machine::Q35) => "q35",
        Some(m) => {
            return Err(PackageError::Machine {
                engine: ENGINE,
                machine: m.name(),
                why: "KubeVirt runs x86 guests on q35 only",
            });
        }
    };
    let labels: BTreeMap<String, String> = [
        ("app.kubernetes.io/name".to_string(), spec.name.clone()),
        ("kubevirt.io/vm".to_string(), spec.name.clone()),
    ]
    .into();
    let mut guest_ports: Vec<u16> = spec.ports.iter().map(|p| p.guest).collect();
    guest_ports.sort_unstable();
    guest_ports.dedup();
    let ports = guest_ports
        .iter()
        .flat_map(|&p| {
            [("TCP", "t"), ("UDP", "u")].map(|(protocol, tag)| Port {
                // IANA_SVC_NAME: ≤ 15 characters.
                name: format!("{tag}{p}"),
                protocol,
                port: p,
            })
        })
        .collect();
    let disk_name = |i: usize| format!("{}-disk{i}", spec.name);
    Ok(VirtualMachine {
        api_version: "kubevirt.io/v1",
        kind: "VirtualMachine",
        metadata: ObjectMeta {
            name: spec.name.clone(),
            labels: labels.clone(),
        },
        spec: VirtualMachineSpec {
            run_strategy: "Always",
            template: Template {
                metadata: TemplateMeta { labels },
                spec: VmiSpec {
                    domain: DomainSpec {
                        machine: MachineSpec { kind: machine },
                        resources: Resources {
                            requests: [("memory".to_string(), format!("{}Mi", spec.mem_mib))]
                                .into(),
                        },
                        firmware: Firmware {
                            kernel_boot: KernelBoot {
                                kernel_args: spec.cmdline.clone(),
                                container: KernelBootContainer {
                                    image: spec.container_image.clone(),
                                    kernel_path: format!("/boot/{}", spec.name),
                                    image_pull_policy: "IfNotPresent",
                                },
                            },
                        },
                        devices: Devices {
                            use_virtio_transitional: false,
                            autoattach_graphics_device: false,
                            autoattach_mem_balloon: false,
                            autoattach_serial_console: true,
                            disks: (0..spec.disks.len())
                                .map(|i| Disk {
                                    name: disk_name(i),
                                    disk: DiskTarget {
                                        bus: "virtio",
                                        readonly: spec.disks[i].read_only,
                                    },
                                })
                                .collect(),
                            interfaces: vec![Interface {
                                name: "default",
                                masquerade: Empty {},
                                mac_address: spec.mac.to_string(),
                                model: "virtio",
                                ports,
                            }],
                        },
                    },
                    networks: vec![Network {
                        name: "default",
                        pod: Empty {},
                    }],
                    volumes: spec
                        .disks
                        .iter()
                        .enumerate()
                        .map(|(i, d)| Volume {
                            name: disk_name(i),
                            persistent_volume_claim: Claim {
                                claim_name: disk_name(i),
                                read_only: d.read_only,
                            },
                        })
                        .collect(),
                    readiness_probe,
                    liveness_probe,
                    termination_grace_period_seconds: 0,
                },
            },
        },
    })
}

/// The manifest's text.
pub fn manifest_json(spec: &VmSpec, health: Option<&HealthCheck>) -> Result<String, PackageError> {
    let mut s = serde_json::to_string_pretty(&virtual_machine(spec, health)?).map_err(|e| {
        PackageError::Serialise {
            engine: ENGINE,
            why: e.to_string(),
        }
    })?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    //! `kv` transcribes the parts of KubeVirt's `kubevirt.io/v1` API we emit
    //! (VirtualMachine, VirtualMachineInstanceSpec, DomainSpec, Firmware, KernelBoot,
    //! KernelBootContainer, Devices, Disk, Interface, Port, Network, Volume), each
    //! denying unknown fields: a misspelt field fails to parse.
    use super::*;
    use crate::package::Engine;
    use crate::package::tests::spec;

    // Transcribed whole: a field is there to be accepted, not read.
    #[allow(dead_code)]
    mod kv {
        use std::collections::BTreeMap;

        use serde::Deserialize;

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct VirtualMachine {
            pub api_version: String,
            pub kind: String,
            pub metadata: Meta,
            pub spec: VirtualMachineSpec,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Meta {
            pub name: Option<String>,
            pub labels: BTreeMap<String, String>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct VirtualMachineSpec {
            pub running: Option<bool>,
            pub run_strategy: Option<String>,
            pub template: Template,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Template {
            pub metadata: Meta,
            pub spec: VmiSpec,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct VmiSpec {
            pub domain: DomainSpec,
            #[serde(default)]
            pub networks: Vec<Network>,
            #[serde(default)]
            pub volumes: Vec<Volume>,
            pub readiness_probe: Option<Probe>,
            pub liveness_probe: Option<Probe>,
            pub termination_grace_period_seconds: Option<i64>,
        }
        /// `kubevirt.io/v1` `Probe`: `Handler` (exec, httpGet, tcpSocket, guestAgentPing)
        /// inline, then the timings.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Probe {
            pub exec: Option<serde_json::Value>,
            pub http_get: Option<HttpGetAction>,
            pub tcp_socket: Option<serde_json::Value>,
            pub guest_agent_ping: Option<serde_json::Value>,
            pub initial_delay_seconds: Option<i32>,
            pub timeout_seconds: Option<i32>,
            pub period_seconds: Option<i32>,
            pub success_threshold: Option<i32>,
            pub failure_threshold: Option<i32>,
        }
        /// Kubernetes `core/v1` `HTTPGetAction`.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct HttpGetAction {
            pub path: Option<String>,
            /// IntOrString.
            pub port: serde_json::Value,
            pub host: Option<String>,
            pub scheme: Option<String>,
            pub http_headers: Option<Vec<serde_json::Value>>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct DomainSpec {
            pub machine: Option<Machine>,
            pub resources: Option<Resources>,
            pub firmware: Option<Firmware>,
            pub devices: Devices,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Machine {
            #[serde(rename = "type")]
            pub kind: String,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Resources {
            pub requests: BTreeMap<String, String>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Firmware {
            pub kernel_boot: Option<KernelBoot>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct KernelBoot {
            pub kernel_args: Option<String>,
            pub container: Option<KernelBootContainer>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct KernelBootContainer {
            pub image: String,
            pub image_pull_secret: Option<String>,
            pub image_pull_policy: Option<String>,
            pub kernel_path: Option<String>,
            pub initrd_path: Option<String>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Devices {
            pub use_virtio_transitional: Option<bool>,
            pub autoattach_graphics_device: Option<bool>,
            pub autoattach_mem_balloon: Option<bool>,
            pub autoattach_serial_console: Option<bool>,
            #[serde(default)]
            pub disks: Vec<Disk>,
            #[serde(default)]
            pub interfaces: Vec<Interface>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Disk {
            pub name: String,
            pub disk: Option<DiskTarget>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct DiskTarget {
            pub bus: Option<String>,
            pub readonly: Option<bool>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Interface {
            pub name: String,
            pub masquerade: Option<serde_json::Value>,
            pub bridge: Option<serde_json::Value>,
            pub mac_address: Option<String>,
            pub model: Option<String>,
            #[serde(default)]
            pub ports: Vec<Port>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Port {
            pub name: Option<String>,
            pub protocol: Option<String>,
            pub port: i32,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Network {
            pub name: String,
            pub pod: Option<serde_json::Value>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Volume {
            pub name: String,
            pub persistent_volume_claim: Option<Claim>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Claim {
            pub claim_name: String,
            pub read_only: Option<bool>,
        }
    }

    #[test]
    fn parses_as_kubevirts_virtual_machine() {
        let mut s = spec();
        s.net = crate::package::NetSpec::User;
        s.ports = vec!["8080:80".parse().unwrap()];
        let text = s.render(Engine::Kubevirt).unwrap();
        let vm: kv::VirtualMachine =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(vm.api_version, "kubevirt.io/v1");
        assert_eq!(vm.kind, "VirtualMachine");
        assert_eq!(vm.spec.run_strategy.as_deref(), Some("Always"));
        let t = vm.spec.template.spec;
        assert_eq!(t.domain.machine.unwrap().kind, "q35");
        assert_eq!(t.domain.resources.unwrap().requests["memory"], "64Mi");
        let kb = t.domain.firmware.unwrap().kernel_boot.unwrap();
        assert_eq!(
            kb.kernel_args.as_deref(),
            Some("--ipv4=10.0.0.2/24 -l debug")
        );
        let c = kb.container.unwrap();
        assert_eq!(c.image, "registry.example/oasis/www:1");
        assert_eq!(c.kernel_path.as_deref(), Some("/boot/www"));
        assert_eq!(t.domain.devices.use_virtio_transitional, Some(false));
        let i = &t.domain.devices.interfaces[0];
        assert!(i.masquerade.is_some());
        assert_eq!(
            i.ports
                .iter()
                .map(|p| (p.port, p.protocol.as_deref()))
                .collect::<Vec<_>>(),
            [(80, Some("TCP")), (80, Some("UDP"))]
        );
        assert_eq!(t.networks[0].name, i.name);
        assert!(t.networks[0].pod.is_some());
        // Every disk has a volume of the same name.
        let disks: Vec<_> = t.domain.devices.disks.iter().map(|d| &d.name).collect();
        let vols: Vec<_> = t.volumes.iter().map(|v| &v.name).collect();
        assert_eq!(disks, vols);
        assert_eq!(
            t.volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "www-disk0"
        );
        assert_eq!(
            t.domain.devices.disks[0].disk.as_ref().unwrap().readonly,
            Some(true)
        );
    }

    #[test]
    fn health_check_becomes_readiness_and_liveness_probes() {
        let mut s = spec();
        s.net = crate::package::NetSpec::User;
        s.ports = vec!["8080:80".parse().unwrap()];
        let plain: kv::VirtualMachine =
            serde_json::from_str(&s.render(Engine::Kubevirt).unwrap()).unwrap();
        assert!(plain.spec.template.spec.readiness_probe.is_none());
        let h = HealthCheck {
            path: "/healthz".into(),
            port: 80,
        };
        let text = s.render_with_health(Engine::Kubevirt, Some(&h)).unwrap();
        let vm: kv::VirtualMachine =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let t = vm.spec.template.spec;
        for p in [t.readiness_probe.unwrap(), t.liveness_probe.unwrap()] {
            let g = p.http_get.unwrap();
            assert_eq!(g.path.as_deref(), Some("/healthz"));
            assert_eq!(g.port, 80);
            assert!(p.period_seconds.unwrap() > 0);
        }
    }

    #[test]
    fn only_q35() {
        let mut s = spec();
        s.machine = Some(Machine::Pc);
        assert!(matches!(
            s.render(Engine::Kubevirt),
            Err(PackageError::Machine { .. })
        ));
    }
}
