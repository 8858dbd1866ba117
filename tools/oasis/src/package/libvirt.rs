//! libvirt domain XML for an Oasis image: direct kernel boot on `pc` or `q35`
//! (libvirt cannot give a `microvm` the `virtio-mmio.force-legacy=false` our
//! drivers need), modern-only virtio-pci NIC and disks without option ROMs (as
//! `run` passes QEMU), ACPI on (the power-off path), serial console to a file.
//!
//! Elements and attributes follow libvirt's domain format
//! (<https://libvirt.org/formatdomain.html>); checked against libvirt 9.0.

use serde::Serialize;

use super::{NetSpec, PackageError, VmSpec, utf8};
use crate::qemu::{Accel, Machine};

const ENGINE: &str = "libvirt";

/// Device model: virtio 1.x only, like `run`'s `disable-legacy=on` (libvirt ≥ 5.2).
const VIRTIO_MODEL: &str = "virtio-non-transitional";

#[derive(Debug, Serialize)]
#[serde(rename = "domain")]
pub struct Domain {
    /// `kvm` or `qemu` (TCG).
    #[serde(rename = "@type")]
    pub kind: &'static str,
    pub name: String,
    pub description: String,
    pub memory: Memory,
    pub vcpu: u32,
    pub os: Os,
    pub features: Features,
    pub cpu: Cpu,
    /// The guest's exit (ACPI S5, see platform/kvm's `exit`) ends the domain.
    pub on_poweroff: &'static str,
    /// `run` passes QEMU `-no-reboot`: a reset (the i8042 fallback) ends it too.
    pub on_reboot: &'static str,
    pub on_crash: &'static str,
    pub devices: Devices,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    #[serde(rename = "@unit")]
    pub unit: &'static str,
    #[serde(rename = "$text")]
    pub value: u32,
}

#[derive(Debug, Serialize)]
pub struct Os {
    #[serde(rename = "type")]
    pub os_type: OsType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader: Option<Loader>,
    pub kernel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cmdline: String,
}

#[derive(Debug, Serialize)]
pub struct OsType {
    #[serde(rename = "@arch")]
    pub arch: &'static str,
    #[serde(rename = "@machine")]
    pub machine: &'static str,
    #[serde(rename = "$text")]
    pub value: &'static str,
}

/// `-bios FILE`: qboot reaches the kernel much faster than SeaBIOS.
#[derive(Debug, Serialize)]
pub struct Loader {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    #[serde(rename = "@readonly")]
    pub readonly: &'static str,
    #[serde(rename = "$text")]
    pub path: String,
}

/// An element with no content (`<acpi/>`).
#[derive(Debug, Serialize)]
pub struct Empty {}

#[derive(Debug, Serialize)]
pub struct Features {
    pub acpi: Empty,
    pub apic: Empty,
}

#[derive(Debug, Serialize)]
pub struct Cpu {
    /// `maximum` under TCG (`-cpu max`), `host-passthrough` under KVM (`-cpu host`).
    #[serde(rename = "@mode")]
    pub mode: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Devices {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disk: Vec<DiskXml>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interface: Vec<Interface>,
    /// No USB controller (libvirt adds one by default).
    pub controller: Controller,
    pub serial: Serial,
    pub memballoon: Model,
}

#[derive(Debug, Serialize)]
pub struct DiskXml {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    #[serde(rename = "@device")]
    pub device: &'static str,
    #[serde(rename = "@model")]
    pub model: &'static str,
    pub driver: Driver,
    pub source: FileSource,
    pub target: DiskTarget,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly: Option<Empty>,
    pub address: PciAddress,
}

/// A slot on the root bus. libvirt puts q35 devices behind PCIe root ports unless
/// told otherwise; `run` (and our PCI discovery) has them on bus 0.
#[derive(Debug, Serialize)]
pub struct PciAddress {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    #[serde(rename = "@domain")]
    pub domain: &'static str,
    #[serde(rename = "@bus")]
    pub bus: &'static str,
    #[serde(rename = "@slot")]
    pub slot: String,
    #[serde(rename = "@function")]
    pub function: &'static str,
}

impl PciAddress {
    fn root(slot: usize) -> PciAddress {
        PciAddress {
            kind: "pci",
            domain: "0x0000",
            bus: "0x00",
            slot: format!("{slot:#04x}"),
            function: "0x0",
        }
    }
}

/// First root-bus slot we use: pc has its host bridge and PIIX in 0 and 1, q35
/// its host bridge in 0; 2 is left for a video device.
const FIRST_SLOT: usize = 3;

#[derive(Debug, Serialize)]
pub struct Driver {
    #[serde(rename = "@name")]
    pub name: &'static str,
    #[serde(rename = "@type")]
    pub format: &'static str,
}

#[derive(Debug, Serialize)]
pub struct FileSource {
    #[serde(rename = "@file")]
    pub file: String,
}

#[derive(Debug, Serialize)]
pub struct DiskTarget {
    #[serde(rename = "@dev")]
    pub dev: String,
    #[serde(rename = "@bus")]
    pub bus: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Interface {
    /// `ethernet` (an existing TAP), `bridge`, `network` or `user`.
    #[serde(rename = "@type")]
    pub kind: &'static str,
    pub mac: MacXml,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<NetSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<NetTarget>,
    pub model: Model,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<Model>,
    #[serde(rename = "portForward", skip_serializing_if = "Vec::is_empty")]
    pub port_forward: Vec<PortForwardXml>,
    /// No option ROM: we boot by PVH, not PXE (Debian's QEMU may lack the ROM).
    pub rom: Rom,
    pub address: PciAddress,
}

#[derive(Debug, Serialize)]
pub struct MacXml {
    #[serde(rename = "@address")]
    pub address: String,
}

#[derive(Debug, Serialize)]
pub struct NetSource {
    #[serde(rename = "@bridge", skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(rename = "@network", skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NetTarget {
    #[serde(rename = "@dev")]
    pub dev: String,
    /// `no`: the TAP exists already and libvirt must not create or delete it.
    #[serde(rename = "@managed")]
    pub managed: &'static str,
}

/// Any `<x type='…'/>` or `<x model='…'/>` element.
#[derive(Debug, Serialize)]
pub struct Model {
    #[serde(rename = "@type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(rename = "@model", skip_serializing_if = "Option::is_none")]
    pub model: Option<&'static str>,
}

/// passt's forwards (libvirt ≥ 9.0): `address` keeps them on loopback like `run`.
#[derive(Debug, Serialize)]
pub struct PortForwardXml {
    #[serde(rename = "@proto")]
    pub proto: &'static str,
    #[serde(rename = "@address")]
    pub address: &'static str,
    pub range: Range,
}

#[derive(Debug, Serialize)]
pub struct Range {
    #[serde(rename = "@start")]
    pub start: u16,
    #[serde(rename = "@to")]
    pub to: u16,
}

#[derive(Debug, Serialize)]
pub struct Rom {
    #[serde(rename = "@enabled")]
    pub enabled: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Controller {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    #[serde(rename = "@model")]
    pub model: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Serial {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    pub source: PathSource,
    pub target: SerialTarget,
}

#[derive(Debug, Serialize)]
pub struct PathSource {
    #[serde(rename = "@path")]
    pub path: String,
}

#[derive(Debug, Serialize)]
pub struct SerialTarget {
    #[serde(rename = "@port")]
    pub port: u32,
}

/// The machine libvirt gets: pc unless q35 was asked for.
pub fn machine(spec: &VmSpec) -> Result<Machine, PackageError> {
    match spec.machine {
        None | Some(Machine::Pc) => Ok(Machine::Pc),
        Some(Machine::Q35) => Ok(Machine::Q35),
        Some(Machine::Microvm) => Err(PackageError::Machine {
            engine: ENGINE,
            machine: "microvm",
            why: "libvirt cannot set virtio-mmio.force-legacy=false, which our virtio-mmio \
                  drivers need; use --machine pc or q35 (virtio-pci)",
        }),
    }
}

/// The domain for `spec`.
pub fn domain(spec: &VmSpec) -> Result<Domain, PackageError> {
    let machine = machine(spec)?;
    let model = |m| Model {
        kind: Some(m),
        model: None,
    };
    let disks = spec
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Ok(DiskXml {
                kind: "file",
                device: "disk",
                model: VIRTIO_MODEL,
                driver: Driver {
                    name: "qemu",
                    format: "raw",
                },
                source: FileSource {
                    file: utf8(&absolute(&d.path))?,
                },
                target: DiskTarget {
                    dev: disk_dev(i),
                    bus: "virtio",
                },
                readonly: d.read_only.then_some(Empty {}),
                address: PciAddress::root(FIRST_SLOT + 1 + i),
            })
        })
        .collect::<Result<Vec<_>, PackageError>>()?;
    let nic = |kind, source, target| Interface {
        kind,
        mac: MacXml {
            address: spec.mac.to_string(),
        },
        source,
        target,
        model: model(VIRTIO_MODEL),
        backend: None,
        port_forward: vec![],
        rom: Rom { enabled: "no" },
        address: PciAddress::root(FIRST_SLOT),
    };
    let interface = match &spec.net {
        NetSpec::None => vec![],
        NetSpec::Tap(dev) => vec![nic(
            "ethernet",
            None,
            Some(NetTarget {
                dev: dev.clone(),
                managed: "no",
            }),
        )],
        NetSpec::Bridge(br) => vec![nic(
            "bridge",
            Some(NetSource {
                bridge: Some(br.clone()),
                network: None,
            }),
            None,
        )],
        NetSpec::Network(n) => vec![nic(
            "network",
            Some(NetSource {
                bridge: None,
                network: Some(n.clone()),
            }),
            None,
        )],
        NetSpec::User => {
            let mut i = nic("user", None, None);
            if !spec.ports.is_empty() {
                // libvirt forwards ports only through passt, not SLIRP.
                i.backend = Some(model("passt"));
                for p in &spec.ports {
                    for proto in ["tcp", "udp"] {
                        i.port_forward.push(PortForwardXml {
                            proto,
                            address: "127.0.0.1",
                            range: Range {
                                start: p.host,
                                to: p.guest,
                            },
                        });
                    }
                }
            }
            vec![i]
        }
    };
    let kvm = matches!(spec.accel, Accel::Kvm);
    Ok(Domain {
        kind: if kvm { "kvm" } else { "qemu" },
        name: spec.name.clone(),
        description: format!("Oasis unikernel {} (cargo oasis package)", spec.name),
        memory: Memory {
            unit: "MiB",
            value: spec.mem_mib,
        },
        vcpu: 1,
        os: Os {
            os_type: OsType {
                arch: "x86_64",
                machine: machine.name(),
                value: "hvm",
            },
            loader: match &spec.bios {
                Some(b) => Some(Loader {
                    kind: "rom",
                    readonly: "yes",
                    path: utf8(b)?,
                }),
                None => None,
            },
            kernel: utf8(&absolute(&spec.kernel))?,
            cmdline: spec.cmdline.clone(),
        },
        features: Features {
            acpi: Empty {},
            apic: Empty {},
        },
        cpu: Cpu {
            mode: if kvm { "host-passthrough" } else { "maximum" },
        },
        on_poweroff: "destroy",
        on_reboot: "destroy",
        on_crash: "destroy",
        devices: Devices {
            disk: disks,
            interface,
            controller: Controller {
                kind: "usb",
                model: "none",
            },
            serial: Serial {
                kind: "file",
                source: PathSource {
                    path: utf8(&absolute(&spec.console_log))?,
                },
                target: SerialTarget { port: 0 },
            },
            memballoon: Model {
                kind: None,
                model: Some("none"),
            },
        },
    })
}

/// The domain XML for `spec`.
pub fn domain_xml(spec: &VmSpec) -> Result<String, PackageError> {
    let d = domain(spec)?;
    let mut out = String::new();
    let mut ser = quick_xml::se::Serializer::new(&mut out);
    ser.indent(' ', 2);
    d.serialize(ser).map_err(|e| PackageError::Serialise {
        engine: ENGINE,
        why: e.to_string(),
    })?;
    out.push('\n');
    Ok(out)
}

/// `vda`, `vdb`, … `vdz`, `vdaa`, …
fn disk_dev(i: usize) -> String {
    let mut n = i;
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.reverse();
    format!("vd{}", String::from_utf8_lossy(&s))
}

/// libvirt needs absolute paths; relative ones are taken from the current directory.
fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::tests::spec;
    use crate::package::{Engine, Mac};

    #[test]
    fn direct_kernel_boot_on_pc_with_modern_virtio() {
        let x = spec().render(Engine::Libvirt).unwrap();
        for want in [
            "<domain type=\"qemu\">",
            "<name>www</name>",
            "<memory unit=\"MiB\">64</memory>",
            "<vcpu>1</vcpu>",
            "<type arch=\"x86_64\" machine=\"pc\">hvm</type>",
            "<kernel>/img/www</kernel>",
            "<cmdline>--ipv4=10.0.0.2/24 -l debug</cmdline>",
            "<acpi/>",
            "<cpu mode=\"maximum\"/>",
            "<on_poweroff>destroy</on_poweroff>",
            "<on_crash>destroy</on_crash>",
            "<disk type=\"file\" device=\"disk\" model=\"virtio-non-transitional\">",
            "<source file=\"/img/site.tar\"/>",
            "<target dev=\"vda\" bus=\"virtio\"/>",
            "<readonly/>",
            "<target dev=\"vdb\" bus=\"virtio\"/>",
            "<interface type=\"ethernet\">",
            "<mac address=\"52:54:00:12:34:56\"/>",
            "<target dev=\"tap0\" managed=\"no\"/>",
            "<model type=\"virtio-non-transitional\"/>",
            "<rom enabled=\"no\"/>",
            "<serial type=\"file\">",
            "<source path=\"/img/www.console.log\"/>",
            "<memballoon model=\"none\"/>",
            "<controller type=\"usb\" model=\"none\"/>",
            "<address type=\"pci\" domain=\"0x0000\" bus=\"0x00\" slot=\"0x03\" function=\"0x0\"/>",
            "<address type=\"pci\" domain=\"0x0000\" bus=\"0x00\" slot=\"0x05\" function=\"0x0\"/>",
        ] {
            assert!(x.contains(want), "missing {want} in\n{x}");
        }
        assert_eq!(x.matches("<readonly/>").count(), 1, "{x}");
        assert!(!x.contains("<loader"), "{x}");
    }

    #[test]
    fn networks_bridges_and_passt_forwards() {
        let mut s = spec();
        s.net = NetSpec::Bridge("br0".into());
        let x = s.render(Engine::Libvirt).unwrap();
        assert!(
            x.contains("<interface type=\"bridge\">") && x.contains("<source bridge=\"br0\"/>"),
            "{x}"
        );
        s.net = NetSpec::Network("default".into());
        let x = s.render(Engine::Libvirt).unwrap();
        assert!(x.contains("<source network=\"default\"/>"), "{x}");
        s.net = NetSpec::User;
        s.ports = vec!["8080:80".parse().unwrap()];
        let x = s.render(Engine::Libvirt).unwrap();
        assert!(x.contains("<backend type=\"passt\"/>"), "{x}");
        assert!(
            x.contains("<portForward proto=\"tcp\" address=\"127.0.0.1\">")
                && x.contains("<range start=\"8080\" to=\"80\"/>"),
            "{x}"
        );
        s.net = NetSpec::None;
        s.ports.clear();
        assert!(!s.render(Engine::Libvirt).unwrap().contains("<interface"));
    }

    #[test]
    fn machine_firmware_accel_and_escaping() {
        let mut s = spec();
        s.machine = Some(Machine::Microvm);
        assert!(matches!(
            s.render(Engine::Libvirt),
            Err(PackageError::Machine { .. })
        ));
        s.machine = Some(Machine::Q35);
        s.accel = Accel::Kvm;
        s.bios = Some("/usr/share/qemu/qboot.rom".into());
        s.cmdline = "--motd=<a&b>".into();
        s.mac = Mac::for_name("x");
        let x = s.render(Engine::Libvirt).unwrap();
        assert!(x.contains("<domain type=\"kvm\">"), "{x}");
        assert!(x.contains("machine=\"q35\""), "{x}");
        assert!(x.contains("<cpu mode=\"host-passthrough\"/>"), "{x}");
        assert!(
            x.contains("<loader type=\"rom\" readonly=\"yes\">/usr/share/qemu/qboot.rom</loader>"),
            "{x}"
        );
        assert!(
            x.contains("<cmdline>--motd=&lt;a&amp;b&gt;</cmdline>"),
            "{x}"
        );
    }

    #[test]
    fn disk_names() {
        assert_eq!(disk_dev(0), "vda");
        assert_eq!(disk_dev(25), "vdz");
        assert_eq!(disk_dev(26), "vdaa");
    }
}
