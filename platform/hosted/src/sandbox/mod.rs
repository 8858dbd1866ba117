//! The `sandbox` platform: an Oasis application as a sealed Linux process whose
//! interface to the host is as narrow as the unikernel's.
//!
//! At start ([`enter`], called by the process entry with the `sandbox` feature),
//! before the application's `main`:
//! 1. a 64 KiB static arena serves the allocator while the arguments are parsed;
//! 2. the heap is reserved: one `mmap(2)` of `--mem=MIB` (default 64), given to talc,
//!    the global allocator ([`heap`]); nothing is mapped after this;
//! 3. the devices are opened: the TAP of `--net=tap:NAME` (frames through our own
//!    TCP/IP stack, as on `kvm`), the disk files of `--disk=FILE[:ro]`;
//! 4. the process seals itself with a seccomp filter ([`Policy`]) that allows the
//!    calls in [`ALLOWED`] (at most 9: `read`/`write` on the TAP and the console,
//!    `pread64`/`pwrite64`/`fdatasync` on the disks, `ppoll`, `clock_gettime`,
//!    `getrandom`, `exit_group`), each restricted to the descriptors it opened
//!    where seccomp can check it; any other call kills the process (`SIGSYS`).
//!
//! Then the [`Platform`] here serves the facade: console = raw writes to stdout,
//! clocks = the vDSO, entropy = `getrandom(2)`, idle wait = `ppoll(2)` on the TAP
//! until the executor's deadline. The facade takes the devices with [`take_tap`] and
//! [`take_disks`]; they are never closed (`close(2)` is not allowed). Panics and
//! allocation failures print and `exit_group` ([`fatal`]).
//!
//! What it does not do: host sockets, threads, signals, files opened after start,
//! growing the heap. `--sandbox-probe=CALL` (tests) makes one forbidden call after
//! sealing ([`Probe`]). See docs/sandbox.md.

mod fatal;
mod heap;
mod policy;
mod probe;

use std::os::fd::RawFd;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use oasis_bootargs::{ArgError, ArgParser, EXIT_USAGE};
use oasis_devices::{EntropyError, HeapUsage, Platform};

use crate::{DiskSpec, FileDisk, FileDiskError, HostNetError, TapDevice};

pub use fatal::EXIT_PANIC;
pub use heap::{BOOT_ARENA, DEFAULT_HEAP_MIB, HeapError, MAX_HEAP_MIB, SandboxHeap};
pub use policy::{ALLOWED, Allowed, Policy, SealError};
pub use probe::{PROBES, Probe};

/// Exit status when the sandbox cannot start (heap, filter), as `kvm`'s boot failures.
pub const EXIT_START: u8 = 70;

/// The sealed process's state, set once by [`enter`].
struct Sandbox {
    origin: Instant,
    boot_ns: u64,
    tap: Option<RawFd>,
    calls: usize,
}

static SANDBOX: OnceLock<Sandbox> = OnceLock::new();

/// Devices opened before sealing, until the facade takes them.
struct Devices {
    tap: Option<Result<TapDevice, HostNetError>>,
    disks: Vec<(String, Result<FileDisk, FileDiskError>)>,
}

static DEVICES: Mutex<Devices> = Mutex::new(Devices {
    tap: None,
    disks: Vec::new(),
});

fn devices() -> std::sync::MutexGuard<'static, Devices> {
    DEVICES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the sandbox takes from the boot arguments before sealing. The facade parses
/// the same arguments again later (and documents them in `--help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartArgs {
    /// `--mem=MIB`: the heap.
    pub mem_mib: u64,
    /// `--net=tap:NAME`: the TAP interface.
    pub tap: Option<String>,
    /// `--disk=FILE[:ro]`, in order.
    pub disks: Vec<DiskSpec>,
    /// `--sandbox-probe=CALL`.
    pub probe: Option<Probe>,
}

impl StartArgs {
    /// Takes the sandbox's arguments from `args` (`argv[1..]`); ignores the rest.
    pub fn parse(args: &[String]) -> Result<StartArgs, ArgError> {
        let mut p = ArgParser::new("oasis", args)?;
        let net: Option<String> = p.value("net", "tap:NAME", "")?;
        let tap = match net {
            None => None,
            Some(v) => match v.strip_prefix("tap:") {
                Some(name) => Some(name.to_string()),
                None => {
                    return Err(ArgError::InvalidValue {
                        name: "--net".into(),
                        reason: "expected tap:NAME (the sandbox has no host sockets)".into(),
                        value: v,
                    });
                }
            },
        };
        Ok(StartArgs {
            mem_mib: p.value("mem", "MIB", "")?.unwrap_or(DEFAULT_HEAP_MIB),
            tap,
            disks: p.values("disk", None, "FILE[:ro]", "")?,
            probe: p.value("sandbox-probe", "CALL", "")?,
        })
    }
}

/// Sets the sandbox up and seals the process (see the module docs); runs the probe
/// if one was asked for. Called by the process entry, first thing, before anything
/// allocates. Exits on failure: 64 for bad arguments, [`EXIT_START`] when the heap
/// or the filter cannot be had. Device errors are kept for the application, which
/// meets them where it asks for the device, as on the other platforms.
///
/// Public so that the whole path is compiled (and linted) in every build; only the
/// `sandbox` feature's entry calls it. Whatever calls it is sealed for good.
pub fn enter(start: Instant) {
    heap::claim_boot_arena();
    fatal::install_panic_hook();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = StartArgs::parse(&argv).unwrap_or_else(|e| fatal::die(EXIT_USAGE, &e));
    heap::reserve(args.mem_mib).unwrap_or_else(|e| fatal::die(EXIT_START, &e));

    let mut policy = Policy::default();
    let tap = args.tap.as_deref().map(|name| {
        TapDevice::open_kept(name).map(|(dev, fd)| {
            policy.tap = Some(fd);
            dev
        })
    });
    let disks = args
        .disks
        .iter()
        .map(|spec| {
            let opened = FileDisk::open_kept(spec).map(|(disk, fd)| {
                policy.disks.push((fd, !spec.read_only));
                disk
            });
            (spec.path.display().to_string(), opened)
        })
        .collect();
    *devices() = Devices { tap, disks };

    let calls = policy.allowed().len();
    fatal::prepare();
    policy.seal().unwrap_or_else(|e| fatal::die(EXIT_START, &e));
    let boot_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let _ = SANDBOX.set(Sandbox {
        origin: start,
        boot_ns,
        tap: policy.tap,
        calls,
    });
    if let Some(probe) = args.probe {
        probe.run();
    }
}

/// The platform instance. Exits with a message if the process was not sealed (the
/// program was built without `oasis-hosted`'s `sandbox` feature but asks for it).
pub fn platform() -> &'static dyn Platform {
    match SANDBOX.get() {
        Some(s) => s,
        None => fatal::die(
            EXIT_START,
            &"the sandbox platform was selected, but this program never sealed itself (build it with the `oasis/sandbox` feature)",
        ),
    }
}

/// One line about the platform, for logs.
pub fn boot_report() -> String {
    let calls = SANDBOX.get().map_or(0, |s| s.calls);
    format!(
        "sandbox, pid {}, seccomp: {calls} system calls, heap {} MiB",
        std::process::id(),
        heap::HEAP.usage().size >> 20
    )
}

/// The TAP device opened at start, once. `name` is what the facade was asked for
/// (`--net=tap:NAME`, the same argument the sandbox read).
pub fn take_tap(name: Option<&str>) -> Result<TapDevice, HostNetError> {
    match (devices().tap.take(), name) {
        (Some(opened), _) => opened,
        (None, _) => Err(HostNetError::SandboxNoNet),
    }
}

/// The disks opened at start (`--disk`, in order), each with its path; once.
pub fn take_disks() -> Vec<(String, Result<FileDisk, FileDiskError>)> {
    std::mem::take(&mut devices().disks)
}

impl Platform for Sandbox {
    fn console_write(&self, bytes: &[u8]) {
        fatal::write_all(libc::STDOUT_FILENO, bytes);
    }

    fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn wall_clock_nanos(&self) -> Option<u64> {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(d.as_nanos()).ok()
    }

    fn entropy(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        let mut filled = 0;
        while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
            // SAFETY: `rest` is valid for writes of `rest.len()` bytes during the call.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            match usize::try_from(n) {
                Ok(n) => filled += n,
                Err(_)
                    if std::io::Error::last_os_error().kind()
                        == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(EntropyError::NoSource),
            }
        }
        Ok(())
    }

    fn wait_for_event(&self, deadline: Option<u64>) {
        let ts = deadline.map(|d| {
            let ns = d.saturating_sub(self.monotonic_nanos());
            libc::timespec {
                tv_sec: libc::time_t::try_from(ns / 1_000_000_000).unwrap_or(libc::time_t::MAX),
                // Below 10^9: fits every c_long.
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            }
        });
        let mut fds = [libc::pollfd {
            fd: self.tap.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        }];
        let nfds = libc::nfds_t::from(self.tap.is_some());
        let timeout = ts.as_ref().map_or(core::ptr::null(), |t| t as *const _);
        // SAFETY: `fds` holds `nfds` (0 or 1) entries and `timeout` is null or points
        // to a live timespec, both for the whole call; no signal mask is passed.
        // An error (EINTR) is a spurious return, which the contract allows.
        unsafe { libc::ppoll(fds.as_mut_ptr(), nfds, timeout, core::ptr::null()) };
    }

    fn args(&self) -> Vec<String> {
        std::env::args().skip(1).collect()
    }

    fn boot_nanos(&self) -> Option<u64> {
        Some(self.boot_ns)
    }

    fn heap_bytes(&self) -> Option<usize> {
        Some(heap::HEAP.usage().size)
    }

    fn heap_usage(&self) -> Option<HeapUsage> {
        Some(heap::HEAP.usage())
    }

    fn exit(&self, status: u8) -> ! {
        fatal::exit(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn start_args_take_the_sandboxes_own_and_ignore_the_rest() {
        let a = StartArgs::parse(&strings(&[
            "--ipv4=10.0.0.2/24",
            "--net=tap:tap0",
            "--disk=a.img",
            "-l",
            "debug",
            "--disk=b.img:ro",
            "--mem=16",
            "--sandbox-probe=mmap",
            "--port=80",
        ]))
        .unwrap();
        assert_eq!(a.mem_mib, 16);
        assert_eq!(a.tap.as_deref(), Some("tap0"));
        assert_eq!(a.disks.len(), 2);
        assert!(a.disks[1].read_only);
        assert_eq!(a.probe, Some(Probe::Mmap));
        let d = StartArgs::parse(&[]).unwrap();
        assert_eq!((d.mem_mib, d.tap, d.probe), (DEFAULT_HEAP_MIB, None, None));
        for (bad, says) in [
            ("--net=user", "tap:NAME"),
            ("--mem=lots", "--mem"),
            ("--sandbox-probe=open", "openat|"),
        ] {
            let e = StartArgs::parse(&strings(&[bad])).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// The environment variable that makes [`sealed_child`] seal and probe.
    const CHILD: &str = "OASIS_SANDBOX_TEST_CHILD";

    /// Runs this test binary's [`sealed_child`] in a new process with `what`; returns
    /// its status and stdout.
    fn in_child(what: &str) -> (std::process::ExitStatus, String) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "--exact",
                "sandbox::tests::sealed_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, what)
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Not a test on its own: in a child started by [`in_child`], seals the process
    /// with the bare policy, then does what `CHILD` says.
    #[test]
    fn sealed_child() {
        let Ok(what) = std::env::var(CHILD) else {
            return;
        };
        let sandbox = Sandbox {
            origin: Instant::now(),
            boot_ns: 0,
            tap: None,
            calls: 0,
        };
        let mut random = [0u8; 32];
        Policy::default().seal_this_thread().unwrap();
        match what.as_str() {
            "allowed" => {
                // Everything the platform does, sealed: clocks, entropy, a short idle
                // wait, the console, exit.
                let t0 = sandbox.monotonic_nanos();
                sandbox.wait_for_event(Some(t0 + 2_000_000));
                assert!(sandbox.monotonic_nanos() >= t0 + 2_000_000);
                assert!(sandbox.wall_clock_nanos().is_some());
                sandbox.entropy(&mut random).unwrap();
                sandbox.console_write(b"sealed and alive\n");
                sandbox.exit(7)
            }
            probe => probe.parse::<Probe>().unwrap().run(),
        }
    }

    #[test]
    fn sealed_process_keeps_its_platform_calls() {
        let (status, out) = in_child("allowed");
        assert_eq!(status.code(), Some(7), "{status:?}: {out}");
        assert!(out.contains("sealed and alive"), "{out}");
    }

    #[test]
    fn sealed_process_is_killed_by_sigsys_on_forbidden_calls() {
        for probe in ["openat", "socket", "execve", "mmap", "write-fd"] {
            let (status, out) = in_child(probe);
            assert_eq!(
                status.signal(),
                Some(libc::SIGSYS),
                "probe {probe}: {status:?}: {out}"
            );
        }
    }
}
