//! `cargo oasis package`: one description of a VM ([`VmSpec`]), built from the options
//! `run` takes, rendered as the artefacts other engines read: a libvirt domain, a
//! Firecracker config file, a Cloud Hypervisor command line, a KubeVirt
//! `VirtualMachine` and a Xen `xl` domain configuration, plus an OCI image layout for unikernel runtimes and registries. Each engine's module holds serde types for its format (no text
//! templates) and says what the engine cannot express.

pub mod cloud_hypervisor;
pub mod firecracker;
pub mod kubevirt;
pub mod libvirt;
pub mod oci;
pub mod xen;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::qemu::{Accel, Disk, Machine, PortForward};

/// An engine `package` writes artefacts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// libvirt domain XML (`virsh define`).
    Libvirt,
    /// Firecracker `--config-file` JSON.
    Firecracker,
    /// Cloud Hypervisor command line (a shell script).
    CloudHypervisor,
    /// KubeVirt `VirtualMachine` manifest (JSON, which `kubectl apply -f` reads).
    Kubevirt,
    /// OCI image layout (`NAME.oci/`, built with `umoci`): the image plus urunc's
    /// annotations; also KubeVirt's kernel-boot container.
    Oci,
    /// Xen `xl` domain configuration (`xl create`), a PVH guest.
    Xen,
}

impl Engine {
    /// Every engine, in the order `package --for all` writes them.
    pub const ALL: [Engine; 6] = [
        Engine::Libvirt,
        Engine::Firecracker,
        Engine::CloudHypervisor,
        Engine::Kubevirt,
        Engine::Oci,
        Engine::Xen,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Libvirt => "libvirt",
            Engine::Firecracker => "firecracker",
            Engine::CloudHypervisor => "cloud-hypervisor",
            Engine::Kubevirt => "kubevirt",
            Engine::Oci => "oci",
            Engine::Xen => "xen",
        }
    }

    /// The artefact's file name for VM `name` (written next to the image).
    pub fn file_name(self, name: &str) -> String {
        match self {
            Engine::Libvirt => format!("{name}.libvirt.xml"),
            Engine::Firecracker => format!("{name}.firecracker.json"),
            Engine::CloudHypervisor => format!("{name}.cloud-hypervisor.sh"),
            Engine::Kubevirt => format!("{name}.kubevirt.json"),
            Engine::Oci => format!("{name}.oci"),
            Engine::Xen => format!("{name}.xl.cfg"),
        }
    }
}

/// Where a VM's network interface is plugged in. `package`'s `--net` takes what
/// `run`'s does (`user`, `tap:NAME`, `none`) plus the libvirt-only `bridge:NAME` and
/// `network:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSpec {
    None,
    /// User-mode networking with the spec's port forwards (libvirt: passt).
    User,
    /// An existing host TAP device.
    Tap(String),
    /// A host bridge; the engine creates and attaches a TAP.
    Bridge(String),
    /// A libvirt virtual network (e.g. `default`).
    Network(String),
}

impl FromStr for NetSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => return Ok(NetSpec::None),
            "user" => return Ok(NetSpec::User),
            _ => {}
        }
        let Some((kind, name)) = s.split_once(':') else {
            return Err(format!(
                "`{s}`: expected user, tap:NAME, bridge:NAME, network:NAME or none"
            ));
        };
        let ifname_ok = (1..=15).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        match kind {
            "tap" | "bridge" if !ifname_ok => Err(format!(
                "`{name}` is not a valid interface name (1-15 of [A-Za-z0-9_.-])"
            )),
            "tap" => Ok(NetSpec::Tap(name.into())),
            "bridge" => Ok(NetSpec::Bridge(name.into())),
            "network" if !name.is_empty() && !name.contains(['/', '\'', '"', '<', '&']) => {
                Ok(NetSpec::Network(name.into()))
            }
            "network" => Err(format!("`{name}` is not a libvirt network name")),
            _ => Err(format!(
                "`{kind}:`: expected user, tap:NAME, bridge:NAME, network:NAME or none"
            )),
        }
    }
}

impl fmt::Display for NetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetSpec::None => f.write_str("none"),
            NetSpec::User => f.write_str("user"),
            NetSpec::Tap(n) => write!(f, "tap:{n}"),
            NetSpec::Bridge(n) => write!(f, "bridge:{n}"),
            NetSpec::Network(n) => write!(f, "network:{n}"),
        }
    }
}

/// A MAC address (`52:54:00:12:34:56`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A stable address for VM `name`: QEMU's OUI 52:54:00 and three bytes of the
    /// name's FNV-1a hash, so a redeployed VM keeps its DHCP lease.
    pub fn for_name(name: &str) -> Mac {
        let mut h: u32 = 0x811C_9DC5;
        for b in name.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        let [_, a, b, c] = h.to_be_bytes();
        Mac([0x52, 0x54, 0x00, a, b, c])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a MAC address (six hex bytes separated by `:`)");
        let mut m = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut m {
            let p = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if m[0] & 1 == 1 {
            return Err(format!("`{s}` is a multicast address"));
        }
        Ok(Mac(m))
    }
}

/// One VM, described once; every engine's artefact is rendered from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The VM's name (libvirt domain, Kubernetes object): `[a-z0-9-]`, ≤ 63.
    pub name: String,
    /// The kernel image (an ELF with a PVH entry note).
    pub kernel: PathBuf,
    /// `None`: the engine's default (libvirt: pc; KubeVirt: q35).
    pub machine: Option<Machine>,
    pub mem_mib: u32,
    /// The application's arguments (the kernel command line).
    pub cmdline: String,
    pub net: NetSpec,
    pub mac: Mac,
    /// Host port forwards (only with [`NetSpec::User`]; KubeVirt exposes the
    /// guest ports on the pod).
    pub ports: Vec<PortForward>,
    pub disks: Vec<Disk>,
    /// Where the serial console is written (engines that can write it to a file).
    pub console_log: PathBuf,
    /// The accelerator: libvirt's domain type and CPU model follow it.
    pub accel: Accel,
    /// Firmware for pc/q35 (`qboot.rom`, as `run` uses), when found.
    pub bios: Option<PathBuf>,
    /// KubeVirt: the container image holding the kernel at `/boot/NAME`.
    pub container_image: String,
}

/// An HTTP health check: `GET PATH` on the guest's `port` answers 200 while the app
/// serves (www and kv: `/healthz`). Engines with probes use it (KubeVirt's
/// `readinessProbe`/`livenessProbe`); libvirt, Firecracker and Cloud Hypervisor have
/// none (a load balancer in front checks instead, see docs/deploy.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub port: u16,
}

/// Why a spec cannot be rendered for an engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error(
        "`{0}` is not a valid VM name (1-63 of [a-z0-9-], starting with a letter, not ending with `-`)"
    )]
    BadName(String),
    #[error("{engine} cannot use machine `{machine}`: {why}")]
    Machine {
        engine: &'static str,
        machine: &'static str,
        why: &'static str,
    },
    #[error("{engine} cannot use network `{net}`: {why}")]
    Net {
        engine: &'static str,
        net: String,
        why: &'static str,
    },
    #[error("--port needs --net user (ports are forwarded only by user networking), not `{0}`")]
    PortsWithoutUser(String),
    #[error("path {0} is not valid UTF-8 (engines' formats are text)")]
    NonUtf8(PathBuf),
    #[error("{engine}: {path} contains `{bad}`, which its format cannot carry")]
    BadPath {
        engine: &'static str,
        path: String,
        bad: char,
    },
    #[error("serialising the {engine} artefact: {why}")]
    Serialise { engine: &'static str, why: String },
}

impl VmSpec {
    /// Checks what every engine needs: a name Kubernetes and libvirt accept, ports
    /// only with user networking.
    pub fn validate(&self) -> Result<(), PackageError> {
        let n = &self.name;
        let ok = (1..=63).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && !n.ends_with('-')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(PackageError::BadName(n.clone()));
        }
        if !self.ports.is_empty() && self.net != NetSpec::User {
            return Err(PackageError::PortsWithoutUser(self.net.to_string()));
        }
        Ok(())
    }

    /// Renders the artefact for `engine` (OCI: its `/urunc.json`; the layout itself
    /// is built by [`write`](Self::write)).
    pub fn render(&self, engine: Engine) -> Result<String, PackageError> {
        self.render_with_health(engine, None)
    }

    /// [`render`](Self::render), with the app's health check where the engine
    /// probes (KubeVirt).
    pub fn render_with_health(
        &self,
        engine: Engine,
        health: Option<&HealthCheck>,
    ) -> Result<String, PackageError> {
        self.validate()?;
        match engine {
            Engine::Libvirt => libvirt::domain_xml(self),
            Engine::Firecracker => firecracker::config_json(self),
            Engine::CloudHypervisor => cloud_hypervisor::script(self),
            Engine::Kubevirt => kubevirt::manifest_json(self, health),
            Engine::Oci => oci::urunc_json(self),
            Engine::Xen => xen::xl_config(self),
        }
    }

    /// Writes the artefact for `engine` into `dir`; returns its path.
    pub fn write(&self, engine: Engine, dir: &Path) -> anyhow::Result<PathBuf> {
        self.write_with_health(engine, dir, None)
    }

    /// [`write`](Self::write), with the app's health check where the engine probes.
    pub fn write_with_health(
        &self,
        engine: Engine,
        dir: &Path,
        health: Option<&HealthCheck>,
    ) -> anyhow::Result<PathBuf> {
        if engine == Engine::Oci {
            self.validate()?;
            return oci::write_layout(self, dir);
        }
        let text = self.render_with_health(engine, health)?;
        let path = dir.join(engine.file_name(&self.name));
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        if engine == Engine::CloudHypervisor {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| anyhow::anyhow!("chmod {}: {e}", path.display()))?;
        }
        Ok(path)
    }
}

/// `path` as UTF-8 text.
pub(crate) fn utf8(path: &Path) -> Result<String, PackageError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| PackageError::NonUtf8(path.to_path_buf()))
}

/// `ADDR/LEN` with the address moved up by `by`, which must stay a host address of
/// the same subnet.
fn offset_cidr(cidr: &str, by: u32) -> anyhow::Result<String> {
    let bad = || anyhow::anyhow!("--ipv4 {cidr}: expected ADDRESS/PREFIX, e.g. 10.0.0.10/24");
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if !(1..=30).contains(&len) {
        return Err(bad());
    }
    let host_mask = u32::MAX >> len;
    let a = u32::from(addr);
    let moved = a
        .checked_add(by)
        .filter(|m| m & !host_mask == a & !host_mask && m & host_mask != host_mask);
    match moved {
        Some(m) => Ok(format!("{}/{len}", std::net::Ipv4Addr::from(m))),
        None => anyhow::bail!(
            "--ipv4 {cidr}: instance {by}'s address would leave the /{len} subnet; start lower or use a wider prefix"
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn replicas_get_their_own_name_ports_and_address() {
        let o = VmOptions {
            ports: vec!["8080:80".parse().unwrap()],
            args: vec!["--ipv4=10.78.0.10/16".into(), "-l".into(), "warn".into()],
            ..VmOptions::default()
        };
        let r = o.replica("www", 3, 8).unwrap();
        assert_eq!(r.name.as_deref(), Some("www-3"));
        assert_eq!(r.ports[0].host, 8083);
        assert_eq!(r.ports[0].guest, 80);
        assert_eq!(r.args, ["--ipv4=10.78.0.13/16", "-l", "warn"]);
        // One instance: unchanged.
        assert_eq!(o.replica("www", 0, 1).unwrap().name, None);
        // The separate-value form, and the subnet's edge.
        let o = VmOptions {
            args: vec!["--ipv4".into(), "192.168.1.250/24".into()],
            ..VmOptions::default()
        };
        assert_eq!(o.replica("www", 4, 8).unwrap().args[1], "192.168.1.254/24");
        let err = o.replica("www", 5, 8).unwrap_err().to_string();
        assert!(err.contains("subnet"), "{err}");
        assert!(offset_cidr("10.0.0.1", 1).is_err());
        assert!(offset_cidr("10.0.0.1/33", 1).is_err());
        assert!(offset_cidr("255.255.255.250/8", 10).is_err());
        // What instances cannot share.
        let o = VmOptions {
            mac: Some(Mac::for_name("x")),
            ..VmOptions::default()
        };
        assert!(o.replica("www", 1, 2).is_err());
        let o = VmOptions {
            disks: vec!["kv.img".parse().unwrap()],
            ..VmOptions::default()
        };
        assert!(
            o.replica("kv", 1, 2)
                .unwrap_err()
                .to_string()
                .contains(":ro")
        );
    }

    /// The spec the engine tests render: www with a disk on a TAP.
    pub fn spec() -> VmSpec {
        VmSpec {
            name: "www".into(),
            kernel: "/img/www".into(),
            machine: None,
            mem_mib: 64,
            cmdline: "--ipv4=10.0.0.2/24 -l debug".into(),
            net: NetSpec::Tap("tap0".into()),
            mac: Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            ports: vec![],
            disks: vec![
                "/img/site.tar:ro".parse().unwrap(),
                "/img/kv.img".parse().unwrap(),
            ],
            console_log: "/img/www.console.log".into(),
            accel: Accel::Tcg {
                reason: String::new(),
            },
            bios: None,
            container_image: "registry.example/oasis/www:1".into(),
        }
    }

    #[test]
    fn parses_networks_and_macs() {
        assert_eq!("none".parse::<NetSpec>(), Ok(NetSpec::None));
        assert_eq!(
            "bridge:br0".parse::<NetSpec>(),
            Ok(NetSpec::Bridge("br0".into()))
        );
        assert_eq!(
            "network:default".parse::<NetSpec>(),
            Ok(NetSpec::Network("default".into()))
        );
        assert!("tap:".parse::<NetSpec>().is_err());
        assert!("bridge:a'b".parse::<NetSpec>().is_err());
        assert!("network:a<b".parse::<NetSpec>().is_err());
        assert!("vde:x".parse::<NetSpec>().is_err());
        assert_eq!(
            "52:54:00:ab:cd:ef".parse::<Mac>().unwrap().to_string(),
            "52:54:00:ab:cd:ef"
        );
        assert!("53:54:00:ab:cd:ef".parse::<Mac>().is_err(), "multicast");
        assert!("52:54:00:ab:cd".parse::<Mac>().is_err());
        assert_eq!(Mac::for_name("www"), Mac::for_name("www"));
        assert_ne!(Mac::for_name("www"), Mac::for_name("kv"));
        assert_eq!(Mac::for_name("www").0[..3], [0x52, 0x54, 0x00]);
    }

    #[test]
    fn health_checks_take_the_apps_first_port() {
        let s = spec();
        let mut o = VmOptions {
            health: Some("/healthz".into()),
            ..VmOptions::default()
        };
        // No --port: www's declared 8080:80.
        assert_eq!(
            o.health("www", &s).unwrap(),
            Some(HealthCheck {
                path: "/healthz".into(),
                port: 80
            })
        );
        o.health = Some("none".into());
        assert_eq!(o.health("www", &s).unwrap(), None);
        o.health = Some("healthz".into());
        assert!(o.health("www", &s).is_err());
    }

    #[test]
    fn rejects_bad_names_and_stray_ports() {
        let mut s = spec();
        for bad in ["", "Www", "1www", "www-", "w_w", &"w".repeat(64)] {
            s.name = bad.into();
            assert_eq!(s.validate(), Err(PackageError::BadName(bad.into())));
        }
        s.name = "www-2".into();
        s.ports = vec!["8080:80".parse().unwrap()];
        assert!(matches!(
            s.render(Engine::Libvirt),
            Err(PackageError::PortsWithoutUser(_))
        ));
    }
}

/// The options `package` and `deploy` take: `run`'s, plus a name, a MAC and the
/// container image KubeVirt pulls.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VmOptions {
    /// Machine type (default: the engine's: libvirt pc, KubeVirt q35).
    #[arg(long, value_enum)]
    pub machine: Option<Machine>,
    /// Guest memory in MiB (default: the app's `package.metadata.oasis.mem`, else 64).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=65536))]
    pub mem: Option<u32>,
    /// Network: user, tap:NAME, bridge:NAME, network:NAME or none (libvirt's default:
    /// network:default; Firecracker/Cloud Hypervisor: none unless tap:NAME).
    #[arg(long)]
    pub net: Option<NetSpec>,
    /// Forward 127.0.0.1:HOST to the guest's GUEST port (user networking: libvirt
    /// via passt; KubeVirt exposes GUEST on the pod); repeatable.
    #[arg(long = "port", value_name = "HOST:GUEST")]
    pub ports: Vec<PortForward>,
    /// Attach a raw disk image as virtio-blk (`FILE` or `FILE:ro`); repeatable.
    #[arg(long = "disk", value_name = "FILE[:ro]")]
    pub disks: Vec<Disk>,
    /// The VM's name (default: the app's).
    #[arg(long)]
    pub name: Option<String>,
    /// The NIC's MAC address (default: derived from the name).
    #[arg(long)]
    pub mac: Option<Mac>,
    /// KubeVirt: the container image with the kernel at /boot/NAME (OCI: its tag).
    #[arg(long, value_name = "REF")]
    pub container_image: Option<String>,
    /// HTTP health check path on the app's first port, for engines that probe
    /// (KubeVirt); default: the app's `package.metadata.oasis.health`; `none`: off.
    #[arg(long, value_name = "PATH")]
    pub health: Option<String>,
    /// Arguments for the application (its kernel command line).
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl VmOptions {
    /// The options of instance `i` of `n` (`deploy --replicas N`): named `NAME-i`
    /// (so each gets its own MAC and console file), with host ports moved up by `i`
    /// and a static `--ipv4=ADDR/LEN` moved up by `i` within its subnet. What cannot
    /// be shared between instances is refused: a fixed `--mac`, a writable disk.
    pub fn replica(&self, app: &str, i: u32, n: u32) -> anyhow::Result<VmOptions> {
        if n <= 1 {
            return Ok(self.clone());
        }
        if self.mac.is_some() {
            anyhow::bail!(
                "--mac with --replicas {n}: the instances would share a MAC; leave it out (each instance's is derived from its name)"
            );
        }
        if let Some(d) = self.disks.iter().find(|d| !d.read_only) {
            anyhow::bail!(
                "--disk {} with --replicas {n}: instances cannot share a writable disk (attach it read-only: `{}:ro`)",
                d.path.display(),
                d.path.display()
            );
        }
        let base = self.name.clone().unwrap_or_else(|| app.to_string());
        let mut out = self.clone();
        out.name = Some(format!("{base}-{i}"));
        for p in &mut out.ports {
            p.host = u16::try_from(u32::from(p.host) + i).map_err(|_| {
                anyhow::anyhow!(
                    "--port {}: instance {i}'s host port would pass 65535",
                    p.host
                )
            })?;
        }
        let mut iter = out.args.iter_mut().peekable();
        while let Some(a) = iter.next() {
            if let Some(v) = a.strip_prefix("--ipv4=") {
                *a = format!("--ipv4={}", offset_cidr(v, i)?);
            } else if a == "--ipv4"
                && let Some(v) = iter.peek_mut()
            {
                **v = offset_cidr(v, i)?;
            }
        }
        Ok(out)
    }

    /// The health check for `spec` of `app`: `--health`, else the app's declared
    /// one, on the first guest port of the spec or of the app's declared ports.
    pub fn health(&self, app: &str, spec: &VmSpec) -> anyhow::Result<Option<HealthCheck>> {
        let defaults = crate::build::run_defaults(app)?;
        let path = match self.health.as_deref().or(defaults.health.as_deref()) {
            None | Some("none") => return Ok(None),
            Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => p.to_string(),
            Some(p) => anyhow::bail!("--health {p}: expected an absolute path like /healthz"),
        };
        let declared = defaults.ports.first().map(|p| {
            p.parse::<PortForward>()
                .map_err(|e| anyhow::anyhow!("appliances/{app}/Cargo.toml: port {p}: {e}"))
        });
        let port = match (spec.ports.first(), declared) {
            (Some(p), _) => p.guest,
            (None, Some(p)) => p?.guest,
            (None, None) => anyhow::bail!("--health needs a port: {app} declares none"),
        };
        Ok(Some(HealthCheck { path, port }))
    }

    /// The spec for `app` built as `kernel`, for `engine`, with the app's declared
    /// defaults; the console log goes next to the kernel.
    pub fn spec(&self, app: &str, kernel: &Path, engine: Engine) -> anyhow::Result<VmSpec> {
        let defaults = crate::build::run_defaults(app)?;
        let name = self.name.clone().unwrap_or_else(|| app.to_string());
        let mut ports = self.ports.clone();
        let net = match (&self.net, ports.is_empty()) {
            // KubeVirt's NIC is always the pod network; --net names host devices.
            _ if engine == Engine::Kubevirt => NetSpec::User,
            (Some(n), _) => n.clone(),
            (None, false) => NetSpec::User,
            (None, true) => match engine {
                Engine::Libvirt => NetSpec::Network("default".into()),
                Engine::Kubevirt
                | Engine::Firecracker
                | Engine::CloudHypervisor
                | Engine::Oci
                | Engine::Xen => NetSpec::None,
            },
        };
        // KubeVirt exposes the app's declared ports on the pod network.
        if engine == Engine::Kubevirt && ports.is_empty() {
            for p in &defaults.ports {
                ports.push(
                    p.parse().map_err(|e| {
                        anyhow::anyhow!("appliances/{app}/Cargo.toml: port {p}: {e}")
                    })?,
                );
            }
        }
        for d in &self.disks {
            if !d.path.is_file() {
                anyhow::bail!("disk image {} does not exist", d.path.display());
            }
        }
        let dir = kernel.parent().unwrap_or(Path::new("."));
        let machine = self.machine;
        Ok(VmSpec {
            mac: self.mac.unwrap_or_else(|| Mac::for_name(&name)),
            console_log: dir.join(format!("{name}.console.log")),
            container_image: self
                .container_image
                .clone()
                .unwrap_or_else(|| format!("oasis/{name}:latest")),
            name,
            kernel: kernel.to_path_buf(),
            machine,
            mem_mib: self.mem.or(defaults.mem).unwrap_or(64),
            cmdline: self.args.join(" "),
            net,
            ports,
            disks: self
                .disks
                .iter()
                .map(|d| Disk {
                    path: std::path::absolute(&d.path).unwrap_or_else(|_| d.path.clone()),
                    read_only: d.read_only,
                })
                .collect(),
            accel: crate::qemu::detect_accel(),
            bios: match machine {
                _ if engine == Engine::Xen => None,
                Some(Machine::Microvm) => None,
                _ => crate::qemu::find_firmware("qboot.rom"),
            },
        })
    }
}
