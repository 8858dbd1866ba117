//! `cargo oasis deploy --to libvirt` and its `stop`/`status`/`logs`: drives libvirt
//! through `virsh` (the client every libvirt host has), finds a deployed VM's serial
//! log from its live definition, and reads the guest's readiness line from it.
//! The libvirt end-to-end test drives VMs through this module too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The connection `deploy` uses unless `--connect` or `OASIS_LIBVIRT_URI` says
/// otherwise: the system instance, where bridges and networks live.
pub const DEFAULT_URI: &str = "qemu:///system";

/// The Debian packages that provide libvirt with QEMU.
pub const INSTALL_HINT: &str =
    "sudo apt-get install -y libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients";

/// What went wrong talking to libvirt.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("`virsh` is not installed ({INSTALL_HINT})")]
    NoVirsh,
    #[error("`virsh {args}` failed: {message}")]
    Virsh { args: String, message: String },
    #[error("domain `{0}` has no serial console written to a file (not deployed by cargo oasis?)")]
    NoConsoleLog(String),
    #[error("reading {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error(
        "domain `{name}` did not print a readiness line within {secs} s; its console so far:\n{console}"
    )]
    NotReady {
        name: String,
        secs: u64,
        console: String,
    },
    #[error("domain `{name}` stopped before it was ready; its console:\n{console}")]
    Stopped { name: String, console: String },
}

/// `virsh -c URI …`.
#[derive(Debug, Clone)]
pub struct Virsh {
    pub uri: String,
}

impl Virsh {
    /// A client for `uri` (`None`: `OASIS_LIBVIRT_URI`, else [`DEFAULT_URI`]).
    pub fn new(uri: Option<String>) -> Virsh {
        let uri = uri
            .or_else(|| std::env::var("OASIS_LIBVIRT_URI").ok())
            .unwrap_or_else(|| DEFAULT_URI.into());
        Virsh { uri }
    }

    /// `virsh` on PATH.
    pub fn find() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("virsh"))
            .find(|p| p.is_file())
    }

    /// Runs `virsh ARGS`; its stdout on success.
    pub fn run(&self, args: &[&str]) -> Result<String, DeployError> {
        let virsh = Self::find().ok_or(DeployError::NoVirsh)?;
        let out = Command::new(virsh)
            .args(["-q", "-c", &self.uri])
            .args(args)
            .output()
            .map_err(|e| DeployError::Virsh {
                args: args.join(" "),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(DeployError::Virsh {
                args: args.join(" "),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Defines (or redefines) the domain in `xml`.
    pub fn define(&self, xml: &Path) -> Result<(), DeployError> {
        self.run(&["define", &xml.to_string_lossy()]).map(drop)
    }

    /// Defines the domain `name` from `xml`, replacing one of that name (destroyed
    /// if it runs, undefined: a definition without the old UUID cannot be defined
    /// over it). A new name costs one call. Returns the replaced domain's state.
    pub fn define_replacing(&self, name: &str, xml: &Path) -> Result<Option<String>, DeployError> {
        let Err(first) = self.define(xml) else {
            return Ok(None);
        };
        let Some(state) = self.state(name) else {
            return Err(first);
        };
        if state != "shut off" {
            self.destroy(name)?;
        }
        self.undefine(name)?;
        self.define(xml)?;
        Ok(Some(state))
    }

    pub fn start(&self, name: &str) -> Result<(), DeployError> {
        self.run(&["start", name]).map(drop)
    }

    /// Powers the domain off at once (our guests keep no state in memory that a
    /// disk flush would save: `kv` acknowledges only durable writes).
    pub fn destroy(&self, name: &str) -> Result<(), DeployError> {
        self.run(&["destroy", name]).map(drop)
    }

    pub fn undefine(&self, name: &str) -> Result<(), DeployError> {
        self.run(&["undefine", name]).map(drop)
    }

    /// `running`, `shut off`, …; `None` when no such domain is defined.
    pub fn state(&self, name: &str) -> Option<String> {
        self.run(&["domstate", name])
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The file the domain's first serial port is written to.
    pub fn console_log(&self, name: &str) -> Result<PathBuf, DeployError> {
        #[derive(Deserialize)]
        struct Domain {
            devices: Devices,
        }
        #[derive(Deserialize)]
        struct Devices {
            #[serde(default)]
            serial: Vec<Serial>,
        }
        #[derive(Deserialize)]
        struct Serial {
            #[serde(rename = "@type")]
            kind: String,
            source: Option<Source>,
        }
        #[derive(Deserialize)]
        struct Source {
            #[serde(rename = "@path")]
            path: Option<String>,
        }
        let xml = self.run(&["dumpxml", name])?;
        let d: Domain = quick_xml::de::from_str(&xml).map_err(|e| DeployError::Virsh {
            args: format!("dumpxml {name}"),
            message: format!("unreadable domain XML: {e}"),
        })?;
        d.devices
            .serial
            .into_iter()
            .filter(|s| s.kind == "file")
            .find_map(|s| s.source.and_then(|s| s.path))
            .map(PathBuf::from)
            .ok_or_else(|| DeployError::NoConsoleLog(name.into()))
    }
}

/// The console so far (empty when the file does not exist yet).
pub fn read_console(path: &Path) -> Result<String, DeployError> {
    match std::fs::read(path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(DeployError::Read {
            path: path.into(),
            why: e.to_string(),
        }),
    }
}

/// Waits until the domain's console has a line containing `needle` (our appliances
/// print `APP: ready…` once serving) at or after byte `from`; returns that line.
pub fn wait_for_line(
    virsh: &Virsh,
    name: &str,
    console: &Path,
    needle: &str,
    from: usize,
    timeout: Duration,
) -> Result<String, DeployError> {
    let deadline = Instant::now() + timeout;
    // The first question after STATE_FIRST: a fleet starting on a small host
    // needs the CPU, and most guests are ready before.
    let mut ask_at = Instant::now() + STATE_FIRST;
    loop {
        let text = read_console(console)?;
        if let Some(l) = text
            .get(from.min(text.len())..)
            .unwrap_or("")
            .lines()
            .find(|l| l.contains(needle))
        {
            return Ok(l.to_string());
        }
        // Asking libvirt costs a process (~20 ms of CPU, which a fleet starting on
        // a small host needs for its QEMUs): once a second; the console file is
        // cheap to read, every 20 ms.
        if Instant::now() >= ask_at {
            ask_at = Instant::now() + STATE_EVERY;
            if virsh.state(name).as_deref() != Some("running") {
                return Err(DeployError::Stopped {
                    name: name.into(),
                    console: text,
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(DeployError::NotReady {
                name: name.into(),
                secs: timeout.as_secs(),
                console: text,
            });
        }
        std::thread::sleep(CONSOLE_EVERY);
    }
}

/// How often [`wait_for_line`] reads the console, and asks libvirt whether the
/// domain still runs.
const CONSOLE_EVERY: Duration = Duration::from_millis(20);
const STATE_EVERY: Duration = Duration::from_secs(1);
const STATE_FIRST: Duration = Duration::from_secs(2);

/// How many `virsh` calls `deploy` and [`start_all`] have in flight at most: libvirt
/// serves them concurrently, and a large fleet does not fork hundreds of clients.
pub const CONCURRENT_CALLS: usize = 16;

/// `f(0)`, …, `f(n - 1)` on up to `width` threads at once; the results in order.
pub fn for_each_at_once<T: Send>(n: usize, width: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<T>>> =
        std::sync::Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..width.clamp(1, n.max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = f(i);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    // Every index was taken by exactly one thread, which stored its result (a
    // panicking thread would have propagated out of the scope above).
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Starts every domain in `specs` ([`CONCURRENT_CALLS`] at a time; defined already) and waits up to
/// `timeout` for each one's console line containing `needle`; one result per spec,
/// in order: the whole console once ready. `deploy --replicas` and the libvirt
/// end-to-end test start fleets this way.
pub fn start_all(
    virsh: &Virsh,
    specs: &[crate::package::VmSpec],
    needle: &str,
    timeout: Duration,
) -> Vec<Result<String, DeployError>> {
    for_each_at_once(specs.len(), CONCURRENT_CALLS, |i| {
        let spec = &specs[i];
        // QEMU truncates the console file when it opens it; start from empty.
        let _ = std::fs::remove_file(&spec.console_log);
        virsh.start(&spec.name)?;
        eprintln!(
            "oasis: started {} on {} ({}); waiting for it to be ready",
            spec.name, virsh.uri, spec.net
        );
        let line = wait_for_line(virsh, &spec.name, &spec.console_log, needle, 0, timeout)?;
        eprintln!("oasis: {}: {line}", spec.name);
        read_console(&spec.console_log)
    })
}

/// The guest's address as its console reports it: an `http://…` URL if a line has
/// one, else the address `net: configured`/`leased` names.
pub fn address(console: &str) -> Option<String> {
    let word = |l: &str, pred: &dyn Fn(&str) -> bool| {
        l.split_whitespace()
            .map(|w| w.trim_end_matches([',', '.', ')']))
            .find(|w| pred(w))
            .map(str::to_owned)
    };
    console
        .lines()
        .find_map(|l| word(l, &|w| w.starts_with("http://")))
        .or_else(|| {
            console
                .lines()
                .filter(|l| l.contains("net:"))
                .find_map(|l| word(l, &|w| w.parse::<std::net::Ipv4Addr>().is_ok()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_at_once_keeps_order_and_bounds_the_threads() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let out = for_each_at_once(50, 4, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((1..=4).contains(&most), "{most} calls at once");
        assert!(for_each_at_once(0, 4, |i| i).is_empty());
        assert_eq!(for_each_at_once(3, 0, |i| i), [0, 1, 2]);
    }

    #[test]
    fn finds_the_address_on_the_console() {
        let c = "[0.09] INFO oasis::net: net: configured 10.77.0.2\nnet: up to 13221 connections\nwww: ready: serving 9 files on http://10.77.0.2:80/\n";
        assert_eq!(address(c).as_deref(), Some("http://10.77.0.2:80/"));
        let c = "[0.09] INFO oasis::net: net: configured 10.77.0.3\nkv: ready: 0 keys\n";
        assert_eq!(address(c).as_deref(), Some("10.77.0.3"));
        assert_eq!(address("hello\n"), None);
    }
}
