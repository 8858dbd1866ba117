//! QEMU command lines for Oasis images, accelerator detection and exit-status decoding.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::str::FromStr;

/// The exact command that installs QEMU on Debian/Ubuntu.
pub const INSTALL_HINT: &str = "sudo apt-get install -y qemu-system-x86";

/// I/O port of `isa-debug-exit`; the guest's status `s` becomes QEMU's `(s << 1) | 1`.
pub const DEBUG_EXIT: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// The id of the guest NIC's backend (`-netdev …,id=net0`), which `--pcap` taps.
pub const NETDEV: &str = "net0";

/// The port QEMU's gdb stub listens on when `--gdb` names none (gdb's habit).
pub const GDB_PORT: u16 = 1234;

/// QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Machine {
    /// Minimal machine, virtio-mmio devices, fastest boot.
    Microvm,
    /// i440FX PC, virtio-pci devices.
    Pc,
    /// Q35 PC (PCIe), virtio-pci devices.
    Q35,
}

impl Machine {
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
        }
    }
    fn virtio_suffix(self) -> &'static str {
        match self {
            Machine::Microvm => "device",
            Machine::Pc | Machine::Q35 => "pci",
        }
    }
}

/// The accelerator QEMU will use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg { reason: String },
}

impl Accel {
    pub fn name(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg { .. } => "tcg",
        }
    }
}

/// KVM only when `/dev/kvm` opens read-write *and* the CPU reports hardware
/// virtualization (`vmx`/`svm`): some hosts expose a software `/dev/kvm` that runs
/// ring-0 guest code far slower than TCG.
pub fn detect_accel() -> Accel {
    if let Ok(v) = std::env::var("OASIS_ACCEL") {
        match v.as_str() {
            "kvm" => return Accel::Kvm,
            "tcg" => {
                return Accel::Tcg {
                    reason: "OASIS_ACCEL=tcg".into(),
                };
            }
            _ => {}
        }
    }
    let kvm_ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !kvm_ok {
        return Accel::Tcg {
            reason: "/dev/kvm is missing or not accessible".into(),
        };
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if hw {
        Accel::Kvm
    } else {
        Accel::Tcg {
            reason:
                "/dev/kvm exists but the CPU reports no vmx/svm (software KVM is slower than TCG)"
                    .into(),
        }
    }
}

/// Guest networking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    None,
    /// QEMU user networking (slirp); ports forwarded from 127.0.0.1.
    User,
    /// A host TAP device.
    Tap(String),
}

impl FromStr for Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Net::None),
            "user" => Ok(Net::User),
            _ => match s.strip_prefix("tap:") {
                Some(name) if valid_ifname(name) => Ok(Net::Tap(name.into())),
                Some(name) => Err(format!(
                    "`{name}` is not a valid interface name (1-15 of [A-Za-z0-9_.-])"
                )),
                None => Err(format!("`{s}`: expected user, tap:NAME or none")),
            },
        }
    }
}

fn valid_ifname(n: &str) -> bool {
    (1..=15).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `HOST:GUEST` (or one port for both): forwards TCP and UDP from 127.0.0.1:HOST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    pub host: u16,
    pub guest: u16,
}

impl FromStr for PortForward {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| format!("`{p}` is not a port (1-65535)"))
        };
        match s.split_once(':') {
            Some((h, g)) => Ok(PortForward {
                host: port(h)?,
                guest: port(g)?,
            }),
            None => {
                let p = port(s)?;
                Ok(PortForward { host: p, guest: p })
            }
        }
    }
}

/// `FILE[:ro]`: a raw disk image attached as virtio-blk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    pub read_only: bool,
}

impl FromStr for Disk {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (path, read_only) = match s.strip_suffix(":ro") {
            Some(p) => (p, true),
            None => (s, false),
        };
        if path.is_empty() {
            return Err("empty disk path".into());
        }
        if path.contains(',') {
            return Err(format!(
                "`{path}`: QEMU does not accept commas in disk paths"
            ));
        }
        Ok(Disk {
            path: path.into(),
            read_only,
        })
    }
}

/// `--pcap FILE`: where QEMU's `filter-dump` writes the NIC's frames (pcap format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap(pub PathBuf);

impl FromStr for Pcap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty pcap path".into());
        }
        if s.contains(',') {
            return Err(format!("`{s}`: QEMU does not accept commas in file paths"));
        }
        Ok(Pcap(s.into()))
    }
}

/// The gdb command line that attaches to a guest booted with [`Vm::gdb`] = `port`,
/// loads `image`'s symbols, and sets a breakpoint on `break_at` (a symbol such as
/// `__oasis_start`, or `FILE:LINE` where the image has line tables). The program
/// name comes first; the caller adds `-ex continue` or runs it by hand.
pub fn gdb_args(port: u16, image: &Path, break_at: &str) -> Vec<String> {
    vec![
        "gdb".into(),
        "-ex".into(),
        format!("target remote 127.0.0.1:{port}"),
        "-ex".into(),
        format!("break {break_at}"),
        image.display().to_string(),
    ]
}

/// [`gdb_args`] as one line to paste into a shell.
pub fn gdb_command(port: u16, image: &Path, break_at: &str) -> String {
    gdb_args(port, image, break_at)
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` quoted for a POSIX shell when it needs to be.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+@%,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Everything needed to boot one image.
#[derive(Debug, Clone)]
pub struct Vm {
    pub qemu: PathBuf,
    pub machine: Machine,
    pub accel: Accel,
    pub mem_mib: u32,
    pub net: Net,
    pub ports: Vec<PortForward>,
    pub disks: Vec<Disk>,
    pub kernel: PathBuf,
    pub append: String,
    /// Firmware for pc/q35 (`qboot.rom` when found: much faster than SeaBIOS).
    pub bios: Option<PathBuf>,
    /// Start paused with QEMU's gdb stub on `127.0.0.1:PORT` (see [`gdb_args`]).
    pub gdb: Option<u16>,
    /// Record the NIC's traffic (both directions) to this pcap file.
    pub pcap: Option<Pcap>,
}

impl Vm {
    /// A VM with defaults: microvm, 64 MiB, no network.
    pub fn new(qemu: PathBuf, kernel: PathBuf) -> Self {
        Vm {
            qemu,
            machine: Machine::Microvm,
            accel: detect_accel(),
            mem_mib: 64,
            net: Net::None,
            ports: Vec::new(),
            disks: Vec::new(),
            kernel,
            append: String::new(),
            bios: find_firmware("qboot.rom"),
            gdb: None,
            pcap: None,
        }
    }

    /// QEMU's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        match self.machine {
            // acpi=off: QEMU then lists virtio-mmio devices on the kernel command line.
            Machine::Microvm => push(&[
                "-M",
                "microvm,acpi=off",
                "-global",
                "virtio-mmio.force-legacy=false",
            ]),
            Machine::Pc | Machine::Q35 => push(&["-M", self.machine.name()]),
        }
        match self.accel {
            Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg { .. } => push(&["-accel", "tcg", "-cpu", "max"]),
        }
        push(&["-m", &format!("{}M", self.mem_mib)]);
        if let (Machine::Pc | Machine::Q35, Some(b)) = (self.machine, &self.bios) {
            push(&["-bios", &b.to_string_lossy()]);
        }
        push(&[
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ]);
        push(&["-device", DEBUG_EXIT]);
        let sfx = self.machine.virtio_suffix();
        // No option ROM on the NIC: we boot by PVH, not PXE (and Debian's QEMU may
        // lack efi-virtio.rom).
        let rom_opts = if sfx == "pci" { ",romfile=" } else { "" };
        let pci_opts = if sfx == "pci" {
            ",disable-legacy=on"
        } else {
            ""
        };
        match &self.net {
            Net::None => {}
            Net::User => {
                let mut nd = format!("user,id={NETDEV}");
                for p in &self.ports {
                    nd.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", p.host, p.guest));
                    nd.push_str(&format!(",hostfwd=udp:127.0.0.1:{}-:{}", p.host, p.guest));
                }
                push(&[
                    "-netdev",
                    &nd,
                    "-device",
                    &format!("virtio-net-{sfx},netdev={NETDEV}{pci_opts}{rom_opts}"),
                ]);
            }
            Net::Tap(name) => {
                let nd = format!("tap,id={NETDEV},ifname={name},script=no,downscript=no");
                push(&[
                    "-netdev",
                    &nd,
                    "-device",
                    &format!("virtio-net-{sfx},netdev={NETDEV}{pci_opts}{rom_opts}"),
                ]);
            }
        }
        // filter-dump sees every frame on the netdev, in both directions.
        if let (Some(p), Net::User | Net::Tap(_)) = (&self.pcap, &self.net) {
            let f = format!("filter-dump,id=f0,netdev={NETDEV},file={}", p.0.display());
            push(&["-object", &f]);
        }
        for (i, d) in self.disks.iter().enumerate() {
            let ro = if d.read_only { ",readonly=on" } else { "" };
            let drive = format!(
                "file={},format=raw,if=none,id=disk{i}{ro}",
                d.path.display()
            );
            push(&[
                "-drive",
                &drive,
                "-device",
                &format!("virtio-blk-{sfx},drive=disk{i}{pci_opts}"),
            ]);
        }
        push(&["-kernel", &self.kernel.to_string_lossy()]);
        if !self.append.is_empty() {
            push(&["-append", &self.append]);
        }
        if let Some(port) = self.gdb {
            // -S: the CPU waits for gdb's `continue`; the stub listens on loopback only.
            push(&["-S", "-gdb", &format!("tcp:127.0.0.1:{port}")]);
        }
        a
    }

    /// The QEMU command, ready to spawn.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.qemu);
        c.args(self.args());
        c
    }
}

/// QEMU's `qemu-system-x86_64`, from `OASIS_QEMU` or `PATH`.
pub fn find_qemu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OASIS_QEMU") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
}

/// A firmware file from QEMU's data directory.
pub fn find_firmware(name: &str) -> Option<PathBuf> {
    [
        "/usr/share/qemu",
        "/usr/local/share/qemu",
        "/usr/share/seabios",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.is_file())
}

/// How the guest ended, decoded from QEMU's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExit {
    /// The guest wrote `status` to isa-debug-exit.
    Status(u8),
    /// QEMU exited 0: the guest powered off or reset without a status.
    PoweredOff,
    /// QEMU itself failed (bad arguments, missing device).
    QemuFailed(i32),
    /// QEMU was killed by a signal.
    Signal(i32),
}

impl GuestExit {
    /// Decodes QEMU's exit status.
    pub fn from_status(s: ExitStatus) -> GuestExit {
        use std::os::unix::process::ExitStatusExt;
        match s.code() {
            Some(0) => GuestExit::PoweredOff,
            Some(c) if c & 1 == 1 => GuestExit::Status(((c >> 1) & 0x7F) as u8),
            Some(c) => GuestExit::QemuFailed(c),
            None => GuestExit::Signal(s.signal().unwrap_or(0)),
        }
    }

    /// The status to exit `cargo oasis run` with.
    pub fn code(self) -> i32 {
        match self {
            GuestExit::Status(s) => i32::from(s),
            GuestExit::PoweredOff => 0,
            GuestExit::QemuFailed(c) => c,
            GuestExit::Signal(s) => 128 + s,
        }
    }
}

impl fmt::Display for GuestExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestExit::Status(s) => write!(f, "guest exited with status {s}"),
            GuestExit::PoweredOff => f.write_str("guest powered off"),
            GuestExit::QemuFailed(c) => {
                write!(f, "QEMU failed with status {c} (see its message above)")
            }
            GuestExit::Signal(s) => write!(f, "QEMU was killed by signal {s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> Vm {
        let mut v = Vm::new("qemu".into(), "/k".into());
        v.accel = Accel::Tcg {
            reason: String::new(),
        };
        v.bios = None;
        v
    }

    #[test]
    fn microvm_command_line() {
        let mut v = vm();
        v.net = Net::User;
        v.ports = vec!["8080:80".parse().unwrap()];
        v.append = "--port=80".into();
        let a = v.args().join(" ");
        assert!(a.contains("-M microvm,acpi=off"), "{a}");
        assert!(a.contains("-accel tcg -cpu max"), "{a}");
        assert!(
            a.contains("hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:8080-:80"),
            "{a}"
        );
        assert!(a.contains("virtio-net-device,netdev=net0"), "{a}");
        assert!(
            a.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"),
            "{a}"
        );
        assert!(a.ends_with("-kernel /k -append --port=80"), "{a}");
    }

    #[test]
    fn pc_uses_modern_virtio_pci_and_firmware() {
        let mut v = vm();
        v.machine = Machine::Q35;
        v.bios = Some("/fw/qboot.rom".into());
        v.disks = vec!["a.img:ro".parse().unwrap()];
        let a = v.args().join(" ");
        assert!(
            a.contains("-M q35") && a.contains("-bios /fw/qboot.rom"),
            "{a}"
        );
        assert!(
            a.contains("file=a.img,format=raw,if=none,id=disk0,readonly=on"),
            "{a}"
        );
        assert!(
            a.contains("virtio-blk-pci,drive=disk0,disable-legacy=on"),
            "{a}"
        );
    }

    #[test]
    fn pcap_taps_the_nic_and_gdb_pauses_the_guest() {
        let mut v = vm();
        v.net = Net::User;
        v.pcap = Some("/tmp/a.pcap".parse().unwrap());
        v.gdb = Some(GDB_PORT);
        let a = v.args().join(" ");
        assert!(a.contains("-netdev user,id=net0"), "{a}");
        assert!(
            a.contains("-object filter-dump,id=f0,netdev=net0,file=/tmp/a.pcap"),
            "{a}"
        );
        assert!(a.ends_with("-S -gdb tcp:127.0.0.1:1234"), "{a}");
        // No NIC, nothing to tap.
        v.net = Net::None;
        assert!(!v.args().join(" ").contains("filter-dump"));
        assert!("a,b.pcap".parse::<Pcap>().is_err());
        assert!("".parse::<Pcap>().is_err());
    }

    #[test]
    fn gdb_command_loads_symbols_and_breaks() {
        let elf = Path::new("target/x86_64-unknown-none/debug/hello");
        assert_eq!(
            gdb_command(1234, elf, "__oasis_start"),
            "gdb -ex 'target remote 127.0.0.1:1234' -ex 'break __oasis_start' \
             target/x86_64-unknown-none/debug/hello"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(gdb_args(9, elf, "x")[0], "gdb");
    }

    #[test]
    fn parses_cli_values_and_rejects_bad_ones() {
        assert_eq!(
            "8007:7".parse::<PortForward>(),
            Ok(PortForward {
                host: 8007,
                guest: 7
            })
        );
        assert_eq!(
            "53".parse::<PortForward>(),
            Ok(PortForward {
                host: 53,
                guest: 53
            })
        );
        assert!("0:7".parse::<PortForward>().is_err());
        assert!("80:x".parse::<PortForward>().is_err());
        assert_eq!("tap:tap0".parse::<Net>(), Ok(Net::Tap("tap0".into())));
        assert!("tap:".parse::<Net>().is_err());
        assert!("tap:a,b".parse::<Net>().is_err());
        assert!("wifi".parse::<Net>().is_err());
        assert!("x,y.img".parse::<Disk>().is_err());
    }

    #[test]
    fn decodes_exit_statuses() {
        use std::os::unix::process::ExitStatusExt;
        let st = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(GuestExit::from_status(st(1)), GuestExit::Status(0));
        assert_eq!(GuestExit::from_status(st(7)), GuestExit::Status(3));
        assert_eq!(GuestExit::from_status(st(129)), GuestExit::Status(64));
        assert_eq!(GuestExit::from_status(st(0)), GuestExit::PoweredOff);
        assert_eq!(GuestExit::from_status(st(2)).code(), 2);
        assert_eq!(
            GuestExit::from_status(ExitStatus::from_raw(9)),
            GuestExit::Signal(9)
        );
    }
}
