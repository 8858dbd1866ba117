//! Booting an image under the Xen hypervisor, itself running in QEMU: the image is
//! Xen's PVH dom0 (`cargo oasis run APP --hypervisor xen`, `tests/tests/xen.rs`).
//!
//! QEMU loads Xen (Debian's `xen-hypervisor-4.17-amd64`, a multiboot ELF once
//! gunzipped) with `-kernel`, and the Oasis image plus its command line as the first
//! multiboot module with `-initrd`; Xen builds a PVH dom0 from it. Xen needs what a
//! real host gives it: hardware-assisted paging (QEMU's `-cpu max` emulates AMD SVM
//! with nested paging under TCG; Debian's Xen has no shadow paging) and, for a PVH
//! dom0, an IOMMU (`intel-iommu` with interrupt remapping, which needs
//! `kernel-irqchip=split` on q35). The guest's console goes through
//! `HYPERVISOR_console_io`, so it shares COM1 with Xen's own log, whose lines start
//! with [`XEN_LINE_PREFIX`]. `isa-debug-exit` still ends QEMU with the guest's
//! status: dom0 owns the I/O ports.
//!
//! Not here yet: devices. A dom0 would drive QEMU's virtio-pci devices through Xen's
//! vPCI, untried; a domU needs netfront/blkfront and a dom0 with the Xen tools.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::{DEBUG_EXIT, Vm};

/// The Debian package holding the hypervisor.
pub const PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// Where the installed package puts the (gzipped) hypervisor.
pub const INSTALLED: &str = "/boot/xen-4.17-amd64.gz";
/// The gunzipped hypervisor's file name in the cache.
const CACHED_NAME: &str = "xen-4.17-amd64";
/// The exact command that installs Xen where [`find_xen`] looks (on a machine
/// without `/boot/grub` the package's scripts change nothing else; with GRUB they
/// add a boot entry, so on a workstation prefer `cargo oasis run --hypervisor xen`,
/// which fetches it into `target/` instead).
pub const INSTALL_HINT: &str =
    "sudo apt-get install -y --no-install-recommends xen-hypervisor-4.17-amd64";

/// Every line Xen itself prints on the console starts with this.
pub const XEN_LINE_PREFIX: &str = "(XEN) ";

/// QEMU's RAM beyond the guest's: Xen's own heap, page tables and IOMMU tables.
const XEN_OVERHEAD_MIB: u32 = 256;
/// QEMU's RAM at least: Xen 4.17 boots comfortably from here.
const MIN_HOST_MIB: u32 = 512;

/// Why the hypervisor binary cannot be found or made.
#[derive(Debug)]
pub enum XenError {
    /// None of the places holds it.
    Missing { looked: Vec<PathBuf> },
    /// A file that should be Xen is not an ELF.
    NotElf(PathBuf),
    /// A helper program failed.
    Tool { what: String, why: String },
    /// The command line cannot be passed through QEMU's `-initrd`.
    BadArgs(String),
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenError::Missing { looked } => {
                let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "the Xen hypervisor is not installed (looked at $OASIS_XEN, {}); install it: {INSTALL_HINT}",
                    looked.join(", ")
                )
            }
            XenError::NotElf(p) => write!(
                f,
                "{} is not an ELF file (expected Xen's multiboot image, gunzipped)",
                p.display()
            ),
            XenError::Tool { what, why } => write!(f, "{what}: {why}"),
            XenError::BadArgs(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for XenError {}

/// Where fetched or gunzipped hypervisors are kept: `target/oasis/xen`.
pub fn cache_dir() -> PathBuf {
    crate::workspace_root().join("target/oasis/xen")
}

fn check_elf(p: &Path) -> Result<PathBuf, XenError> {
    let mut magic = [0u8; 4];
    let ok = std::fs::File::open(p)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
        .is_ok();
    if ok && magic == *b"\x7fELF" {
        Ok(p.to_path_buf())
    } else {
        Err(XenError::NotElf(p.to_path_buf()))
    }
}

/// `gzip -dc GZ > OUT`, through a temporary file so a half-written OUT never exists.
fn gunzip(gz: &Path, out: &Path) -> Result<(), XenError> {
    let tool = |why: String| XenError::Tool {
        what: format!("gunzipping {}", gz.display()),
        why,
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| tool(format!("creating {}: {e}", dir.display())))?;
    }
    // Unique per call, not only per process: tests in one process (threads) may
    // unpack the same hypervisor at once, and each must rename its own file.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("tmp{}-{n}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| tool(e.to_string()))?;
    let st = Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .stdout(file)
        .status()
        .map_err(|e| tool(format!("running gzip: {e}")))?;
    if !st.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(tool(format!("gzip exited with {st}")));
    }
    std::fs::rename(&tmp, out).map_err(|e| tool(e.to_string()))
}

/// The hypervisor, ready for QEMU's `-kernel`: `$OASIS_XEN` (an ELF or a `.gz`),
/// else the one cached in [`cache_dir`], else the installed package's
/// ([`INSTALLED`], gunzipped into the cache once). Never downloads (see [`fetch`]).
pub fn find_xen() -> Result<PathBuf, XenError> {
    let cached = cache_dir().join(CACHED_NAME);
    if let Some(p) = std::env::var_os("OASIS_XEN").map(PathBuf::from) {
        if p.extension().is_some_and(|e| e == "gz") {
            let out = cache_dir().join("oasis-xen-env");
            gunzip(&p, &out)?;
            return check_elf(&out);
        }
        return check_elf(&p);
    }
    if cached.is_file() {
        return check_elf(&cached);
    }
    let installed = Path::new(INSTALLED);
    if installed.is_file() {
        gunzip(installed, &cached)?;
        return check_elf(&cached);
    }
    Err(XenError::Missing {
        looked: vec![cached, installed.to_path_buf()],
    })
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<(), XenError> {
    let out = cmd.output().map_err(|e| XenError::Tool {
        what: what.into(),
        why: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(XenError::Tool {
        what: what.into(),
        why: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// Downloads [`PACKAGE`] with `apt-get download` (Debian/Ubuntu, no root needed, the
/// system is not changed) and unpacks the hypervisor into [`cache_dir`]; `say`
/// hears each step.
pub fn fetch(mut say: impl FnMut(&str)) -> Result<PathBuf, XenError> {
    let dir = cache_dir().join("deb");
    std::fs::create_dir_all(&dir).map_err(|e| XenError::Tool {
        what: format!("creating {}", dir.display()),
        why: e.to_string(),
    })?;
    say(&format!(
        "downloading {PACKAGE} with apt-get download into {}",
        dir.display()
    ));
    run_tool(
        Command::new("apt-get")
            .args(["download", PACKAGE])
            .current_dir(&dir),
        "apt-get download",
    )?;
    let deb = std::fs::read_dir(&dir)
        .map_err(|e| XenError::Tool {
            what: format!("reading {}", dir.display()),
            why: e.to_string(),
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PACKAGE) && n.ends_with(".deb"))
        })
        .max()
        .ok_or_else(|| XenError::Tool {
            what: "apt-get download".into(),
            why: format!("no {PACKAGE}*.deb in {}", dir.display()),
        })?;
    let root = dir.join("root");
    say(&format!("unpacking {} with dpkg-deb -x", deb.display()));
    run_tool(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb -x",
    )?;
    let cached = cache_dir().join(CACHED_NAME);
    gunzip(&root.join("boot/xen-4.17-amd64.gz"), &cached)?;
    say(&format!("Xen is {}", cached.display()));
    check_elf(&cached)
}

/// Xen's own command line: its log on COM1 (QEMU's `-serial`), a PVH dom0 of the
/// guest's memory, the IOMMU on (a PVH dom0 needs it), and no reboot when dom0 ends
/// (QEMU then exits through `isa-debug-exit` or stays for the caller's timeout).
pub fn xen_cmdline(dom0_mib: u32) -> String {
    format!(
        "console=com1 com1=115200,8n1 dom0=pvh dom0_mem={dom0_mib}M loglvl=all guest_loglvl=all noreboot iommu=1"
    )
}

/// QEMU's `-initrd` value: the image, then its command line, as Xen's first multiboot
/// module. QEMU splits modules at `,` and reads `,,` as a literal comma.
pub fn module_arg(kernel: &Path, cmdline: &str) -> Result<String, XenError> {
    let k = kernel
        .to_str()
        .ok_or_else(|| XenError::BadArgs(format!("{} is not UTF-8", kernel.display())))?;
    if k.contains([',', ' ']) {
        return Err(XenError::BadArgs(format!(
            "{k}: QEMU's multiboot loader cannot take a module path with commas or spaces"
        )));
    }
    if cmdline.contains('\n') {
        return Err(XenError::BadArgs(
            "the command line contains a newline".into(),
        ));
    }
    let line = if cmdline.is_empty() {
        k.to_string()
    } else {
        format!("{k} {cmdline}")
    };
    Ok(line.replace(',', ",,"))
}

/// QEMU's arguments to boot `vm.kernel` with `vm.append` as Xen's PVH dom0 of
/// `vm.mem_mib` MiB. Devices, `--pcap` and `--gdb` are refused: dom0 drives none of
/// QEMU's devices yet, and QEMU's gdb stub would stop in Xen.
pub fn qemu_args(vm: &Vm, xen: &Path) -> Result<Vec<String>, XenError> {
    if vm.net != crate::qemu::Net::None || !vm.disks.is_empty() {
        return Err(XenError::BadArgs(
            "--hypervisor xen boots the image as dom0 without devices for now: drop --net/--port/--disk (netfront and blkfront for a domU are not done yet)".into(),
        ));
    }
    if vm.pcap.is_some() || vm.gdb.is_some() {
        return Err(XenError::BadArgs(
            "--pcap and --gdb are not available with --hypervisor xen".into(),
        ));
    }
    let host_mib = (vm.mem_mib + XEN_OVERHEAD_MIB).max(MIN_HOST_MIB);
    let s = |x: &str| x.to_string();
    Ok(vec![
        s("-M"),
        s("q35,kernel-irqchip=split"),
        // Xen needs SVM with nested paging, which QEMU emulates under TCG; under KVM
        // it would need nested virtualisation, so TCG unless OASIS_ACCEL=kvm.
        s("-accel"),
        s(if std::env::var("OASIS_ACCEL").as_deref() == Ok("kvm") {
            "kvm"
        } else {
            "tcg"
        }),
        s("-cpu"),
        s("max"),
        s("-m"),
        format!("{host_mib}M"),
        s("-nodefaults"),
        s("-no-user-config"),
        s("-display"),
        s("none"),
        s("-serial"),
        s("stdio"),
        s("-no-reboot"),
        s("-device"),
        s("intel-iommu,intremap=on"),
        s("-device"),
        s(DEBUG_EXIT),
        s("-kernel"),
        xen.to_string_lossy().into_owned(),
        s("-append"),
        xen_cmdline(vm.mem_mib),
        s("-initrd"),
        module_arg(&vm.kernel, &vm.append)?,
    ])
}

/// The QEMU command for [`qemu_args`].
pub fn command(vm: &Vm, xen: &Path) -> Result<Command, XenError> {
    let mut c = Command::new(&vm.qemu);
    c.args(qemu_args(vm, xen)?);
    Ok(c)
}

/// A console sink that sends Xen's own lines ([`XEN_LINE_PREFIX`]) to `log` and the
/// guest's to `out`. A line goes one way as soon as its first bytes decide it, so a
/// guest's partial line (a prompt) is not held back; `flush` never splits a line.
pub struct SplitXenLog<O: Write, L: Write> {
    out: O,
    log: L,
    /// The start of the current line while it still could be Xen's.
    head: Vec<u8>,
    /// Where the rest of the current line goes, once decided.
    to: Option<Side>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Guest,
    Xen,
}

impl<O: Write, L: Write> SplitXenLog<O, L> {
    pub fn new(out: O, log: L) -> Self {
        SplitXenLog {
            out,
            log,
            head: Vec::with_capacity(XEN_LINE_PREFIX.len()),
            to: None,
        }
    }

    fn sink(&mut self, side: Side) -> &mut dyn Write {
        match side {
            Side::Guest => &mut self.out,
            Side::Xen => &mut self.log,
        }
    }
}

impl<O: Write, L: Write> Write for SplitXenLog<O, L> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let prefix = XEN_LINE_PREFIX.as_bytes();
        let mut rest = buf;
        while !rest.is_empty() {
            let side = match self.to {
                Some(side) => side,
                None => {
                    self.head.push(rest[0]);
                    rest = &rest[1..];
                    let side = if self.head.as_slice() == prefix {
                        Side::Xen
                    } else if prefix.starts_with(&self.head) && self.head.last() != Some(&b'\n') {
                        continue;
                    } else {
                        Side::Guest
                    };
                    let head = std::mem::take(&mut self.head);
                    self.sink(side).write_all(&head)?;
                    if head.last() != Some(&b'\n') {
                        self.to = Some(side);
                    }
                    continue;
                }
            };
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            self.sink(side).write_all(&rest[..end])?;
            if rest[end - 1] == b'\n' {
                self.to = None;
            }
            rest = &rest[end..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.log.flush()
    }
}

impl<O: Write, L: Write> Drop for SplitXenLog<O, L> {
    fn drop(&mut self) {
        // A last line that stopped inside "(XEN) "'s length is the guest's.
        let head = std::mem::take(&mut self.head);
        let _ = self.out.write_all(&head);
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Accel;

    fn vm() -> Vm {
        let mut v = Vm::new("qemu".into(), "/img/hello".into());
        v.accel = Accel::Tcg {
            reason: String::new(),
        };
        v.mem_mib = 64;
        v.append = "one two -l boot:debug".into();
        v
    }

    #[test]
    fn concurrent_unpacks_of_the_same_file_all_succeed() {
        // Tests in one process unpack the installed hypervisor at once (CI saw a
        // rename fail when they shared one temporary name).
        let dir = std::env::temp_dir().join(format!("oasis-gunzip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("x");
        std::fs::write(&plain, b"\x7fELF and then some bytes").unwrap();
        assert!(
            Command::new("gzip")
                .arg("-kf")
                .arg(&plain)
                .status()
                .unwrap()
                .success()
        );
        let gz = dir.join("x.gz");
        let out = dir.join("out");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| gunzip(&gz, &out).unwrap());
            }
        });
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn boots_the_image_as_dom0_behind_an_iommu() {
        let a = qemu_args(&vm(), Path::new("/cache/xen")).unwrap();
        let after = |flag: &str| {
            a.iter()
                .position(|x| x == flag)
                .map(|i| a[i + 1].as_str())
                .unwrap_or_else(|| panic!("no {flag} in {a:?}"))
        };
        assert_eq!(after("-M"), "q35,kernel-irqchip=split");
        assert_eq!(after("-kernel"), "/cache/xen");
        assert_eq!(after("-initrd"), "/img/hello one two -l boot:debug");
        assert_eq!(after("-m"), "512M");
        let append = after("-append");
        assert!(append.contains("dom0=pvh dom0_mem=64M"), "{append}");
        assert!(
            append.contains("iommu=1") && append.contains("noreboot"),
            "{append}"
        );
        assert!(a.iter().any(|x| x == "intel-iommu,intremap=on"), "{a:?}");
        assert!(a.iter().any(|x| x == DEBUG_EXIT), "{a:?}");
        let mut big = vm();
        big.mem_mib = 1024;
        let a = qemu_args(&big, Path::new("/x")).unwrap();
        assert!(a.iter().any(|x| x == "1280M"), "{a:?}");
    }

    #[test]
    fn module_commas_are_escaped_and_devices_refused() {
        assert_eq!(
            module_arg(Path::new("/k"), "--a=1,2").unwrap(),
            "/k --a=1,,2"
        );
        assert_eq!(module_arg(Path::new("/k"), "").unwrap(), "/k");
        assert!(module_arg(Path::new("/a,b"), "").is_err());
        assert!(module_arg(Path::new("/k"), "a\nb").is_err());
        let mut v = vm();
        v.net = crate::qemu::Net::User;
        assert!(matches!(
            qemu_args(&v, Path::new("/x")),
            Err(XenError::BadArgs(_))
        ));
        let mut v = vm();
        v.gdb = Some(1234);
        assert!(qemu_args(&v, Path::new("/x")).is_err());
    }

    #[test]
    fn xen_lines_go_to_the_log() {
        let (mut out, mut log) = (Vec::new(), Vec::new());
        {
            let mut s = SplitXenLog::new(&mut out, &mut log);
            // Split anywhere, flushed after every piece (as `crash::pass_through`
            // does after every read).
            let input = b"(XEN) Xen version 4.17\r\nhello from oasis\n(XEN) Freed 656kB\n(X\n(XEN)\ntick 0\n(XE";
            for piece in input.chunks(3) {
                s.write_all(piece).unwrap();
                s.flush().unwrap();
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            "hello from oasis\n(X\n(XEN)\ntick 0\n(XE"
        );
        assert_eq!(
            String::from_utf8_lossy(&log),
            "(XEN) Xen version 4.17\r\n(XEN) Freed 656kB\n"
        );
    }

    #[test]
    fn checks_elf_and_gunzips() {
        let dir = std::env::temp_dir().join(format!("oasis-xen-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let elf = dir.join("xen");
        std::fs::write(&elf, b"\x7fELF\x01\x01").unwrap();
        let not = dir.join("not");
        std::fs::write(&not, b"MZ").unwrap();
        assert_eq!(check_elf(&elf).unwrap(), elf);
        assert!(matches!(check_elf(&not), Err(XenError::NotElf(_))));
        let gz = dir.join("xen.gz");
        let st = Command::new("gzip")
            .arg("-kf")
            .arg(&elf)
            .status()
            .expect("gzip runs");
        assert!(st.success());
        let out = dir.join("gunzipped");
        gunzip(&gz, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"\x7fELF\x01\x01");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
