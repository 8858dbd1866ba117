//! Helpers for end-to-end tests: build an appliance once, boot it under QEMU (or run
//! it hosted), read its console line by line, wait for readiness lines with a
//! deadline (never a fixed sleep), and collect its exit status.
//!
//! QEMU tests skip with a notice when QEMU is missing, and fail instead when
//! `OASIS_REQUIRE_QEMU=1` (CI sets it).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod dnsapp;
pub mod flood;
pub mod kvapp;
pub mod nettests;
pub mod tlstests;
pub mod wwwtests;

pub use oasis_cli::build::Target;
pub use oasis_cli::qemu::{GuestExit, Machine, Net, PortForward, Vm};

/// `name` on PATH or in the sbin directories (tests run as root, PATH may lack
/// them), or `None`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What a test does when something it needs is missing: panics with `why` when the
/// environment variable `require` is `1` (CI), else prints `SKIPPED: why` and lets
/// the test return early. Always returns `false` ("not available").
pub fn missing(require: &str, why: &str) -> bool {
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{require}=1 but {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// The QEMU binary, or `None` (test skipped) when it is missing and not required.
pub fn qemu() -> Option<PathBuf> {
    let q = oasis_cli::qemu::find_qemu();
    if q.is_none() {
        missing(
            "OASIS_REQUIRE_QEMU",
            &format!(
                "qemu-system-x86_64 is not on PATH; install it: {}",
                oasis_cli::qemu::INSTALL_HINT
            ),
        );
    }
    q
}

/// The Xen hypervisor (Debian's xen-hypervisor-4.17-amd64, gunzipped), or `None`
/// (test skipped) when it is missing and `OASIS_REQUIRE_XEN` is not `1`.
pub fn xen() -> Option<PathBuf> {
    match oasis_cli::xen::find_xen() {
        Ok(p) => Some(p),
        Err(e) => {
            missing("OASIS_REQUIRE_XEN", &e.to_string());
            None
        }
    }
}

/// Builds `app` for `target` (release) once per test process.
pub fn image(app: &str, target: Target) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    let key = (app.to_string(), format!("{target:?}"));
    if let Some(p) = m.get(&key) {
        return p.clone();
    }
    let req = oasis_cli::build::BuildRequest {
        app: app.into(),
        target,
        release: true,
        env: vec![],
        quiet: true,
    };
    let p = oasis_cli::build::build(&req).unwrap_or_else(|e| panic!("building {app}: {e:#}"));
    m.insert(key, p.clone());
    p
}

/// A VM for `app` with test defaults (microvm, 32 MiB, TCG unless KVM is real).
pub fn vm(app: &str, qemu: PathBuf) -> Vm {
    let mut v = Vm::new(qemu, image(app, Target::Kvm));
    v.mem_mib = 32;
    v
}

/// A running guest (QEMU or a hosted process) whose console we read.
pub struct Guest {
    child: Child,
    lines: Receiver<String>,
    /// Every line seen so far.
    pub output: Vec<String>,
    hosted: bool,
}

impl Guest {
    /// Boots `vm`.
    pub fn boot(vm: &Vm) -> Guest {
        let mut cmd = vm.command();
        Self::spawn(&mut cmd, false)
    }

    /// Boots a VM through a prepared QEMU command (e.g. Xen in QEMU,
    /// `oasis_cli::xen::command`); the exit status is decoded as QEMU's.
    pub fn boot_command(cmd: &mut Command) -> Guest {
        Self::spawn(cmd, false)
    }

    /// Runs the hosted build of `app` with `args`.
    pub fn hosted(app: &str, args: &[&str]) -> Guest {
        let mut cmd = Command::new(image(app, Target::Hosted));
        cmd.args(args);
        Self::spawn(&mut cmd, true)
    }

    /// Runs a hosted build through `cmd` (e.g. `ip netns exec NS IMAGE ARGS`).
    pub fn hosted_command(cmd: &mut Command) -> Guest {
        Self::spawn(cmd, true)
    }

    fn spawn(cmd: &mut Command, hosted: bool) -> Guest {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // A wrapper script written by this process may still be open for writing in a
        // child another test thread is forking right now: exec then fails with
        // ETXTBSY until that child has exec'd too. Retry briefly.
        const ETXTBSY: i32 = 26;
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("spawning {cmd:?}: {e}"),
            }
        };
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let s = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                if tx.send(s).is_err() {
                    break;
                }
            }
        });
        Guest {
            child,
            lines: rx,
            output: Vec::new(),
            hosted,
        }
    }

    /// Waits for a line containing `needle`; panics with the output so far on timeout.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.output.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.output.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line containing {needle:?} within {timeout:?}; output:\n{}",
                    self.output.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "guest ended before printing {needle:?}; output:\n{}",
                    self.output.join("\n")
                ),
            }
        }
    }

    /// Waits for the guest to end; returns its status (decoded from QEMU's).
    pub fn wait_exit(&mut self, timeout: Duration) -> GuestExit {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // Drain the console.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.output.push(l);
                }
                return if self.hosted {
                    match st.code() {
                        Some(c) => GuestExit::Status(c as u8),
                        None => GuestExit::Signal(
                            std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0),
                        ),
                    }
                } else {
                    GuestExit::from_status(st)
                };
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "guest still running after {timeout:?}; output:\n{}",
                    self.output.join("\n")
                );
            }
            while let Ok(l) = self.lines.try_recv() {
                self.output.push(l);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole console output so far, one string.
    pub fn text(&self) -> String {
        self.output.join("\n")
    }

    /// Process id (QEMU's, for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generous limits: TCG on a loaded 2-core machine is slow.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
