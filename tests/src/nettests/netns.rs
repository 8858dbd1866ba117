//! Network namespaces for one test each: a TAP device with an address, QEMU run
//! inside (so no test traffic reaches the host's interfaces), dnsmasq, and the
//! Python helper that talks to the guest from inside the namespace.
//!
//! Namespace tests skip with a notice when the machine cannot run them (not root, no
//! `/dev/net/tun`, a tool missing), and fail instead when `OASIS_REQUIRE_NETNS=1`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Net, Vm, find_program};

/// The namespace tests' requirement switch, set by CI.
pub const REQUIRE_NETNS: &str = "OASIS_REQUIRE_NETNS";

/// Debian packages providing the tools the namespace tests use.
pub const NETNS_PACKAGES: &str = "iproute2 python3 dnsmasq-base";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether namespace tests can run here with the extra `programs` (besides `ip`).
/// When not: prints `SKIPPED: why` and returns false, or panics with the reason when
/// `OASIS_REQUIRE_NETNS=1`.
pub fn netns_available(programs: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (network namespaces and TAP devices need CAP_NET_ADMIN)".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun".to_string());
    }
    for p in std::iter::once(&"ip").chain(programs) {
        if find_program(p).is_none() {
            missing.push(format!("`{p}` on PATH"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "network-namespace test needs {} (Debian: apt-get install {NETNS_PACKAGES})",
        missing.join(", ")
    );
    crate::missing(REQUIRE_NETNS, &why)
}

fn run_checked(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace holding a TAP device with an address, for one test.
/// QEMU runs inside it (see [`NetNs::vm`]), so the TAP, its peer address, dnsmasq
/// and every client live in the namespace and no test traffic reaches the host's
/// own interfaces. Dropping it stops the processes it started and deletes the TAP,
/// the namespace and its scratch directory, also when the test panics.
pub struct NetNs {
    /// `oasis-TAG-PID-N`.
    pub name: String,
    /// The TAP device inside the namespace.
    pub tap: String,
    /// The namespace's address on the TAP (the guest's peer).
    pub host_ip: Ipv4Addr,
    /// The TAP's MAC address.
    pub host_mac: [u8; 6],
    dir: PathBuf,
    children: Vec<Child>,
}

/// The MAC QEMU gives the first NIC when none is named.
pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// The subnet the namespace tests use (never routed anywhere).
pub const NS_PREFIX: u8 = 24;
/// The namespace's address on the TAP.
pub const NS_HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The static address tests give the guest.
pub const NS_GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

impl NetNs {
    /// Creates `oasis-TAG-PID-N` with loopback up and TAP `oasistap0` at
    /// 10.77.0.1/24. Call [`netns_available`] first.
    pub fn create(tag: &str) -> NetNs {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("oasis-{tag}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        run_checked(Command::new("ip").args(["netns", "add", &name]));
        // From here on Drop cleans up whatever the rest manages to create.
        let ns = NetNs {
            name,
            tap: "oasistap0".into(),
            host_ip: NS_HOST_IP,
            host_mac: [0x02, 0x00, 0x0a, 0x4d, 0x00, 0x01],
            dir,
            children: Vec::new(),
        };
        let mac = ns
            .host_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let cidr = format!("{}/{NS_PREFIX}", ns.host_ip);
        let tap = ns.tap.clone();
        for args in [
            &["link", "set", "lo", "up"][..],
            &["tuntap", "add", "dev", &tap, "mode", "tap"],
            &["link", "set", "dev", &tap, "address", &mac],
            &["addr", "add", &cidr, "dev", &tap],
            &["link", "set", "dev", &tap, "up"],
        ] {
            run_checked(Command::new("ip").args(["-n", &ns.name]).args(args));
        }
        ns
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// A test VM for `app` whose QEMU runs inside the namespace on its TAP (a small
    /// wrapper script `ip netns exec`s QEMU, which keeps QEMU's process id).
    pub fn vm(&self, app: &str, qemu: PathBuf) -> Vm {
        let wrapper = self.dir.join("qemu");
        let script = format!(
            "#!/bin/sh\nexec ip netns exec '{}' '{}' \"$@\"\n",
            self.name,
            qemu.display()
        );
        std::fs::write(&wrapper, script).unwrap_or_else(|e| panic!("writing {wrapper:?}: {e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {wrapper:?}: {e}"));
        let mut v = crate::vm(app, wrapper);
        v.net = Net::Tap(self.tap.clone());
        v
    }

    /// Starts dnsmasq (DHCP only, no DNS) on the TAP, leasing `first..=last`.
    /// Returns the path of its lease file. It is stopped on drop.
    pub fn start_dnsmasq(&mut self, first: Ipv4Addr, last: Ipv4Addr) -> PathBuf {
        let leases = self.dir.join("leases");
        let dnsmasq = find_program("dnsmasq").expect("dnsmasq (checked by netns_available)");
        let child = self
            .command(&dnsmasq.to_string_lossy())
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--interface={}", self.tap),
                "--except-interface=lo",
                &format!("--dhcp-range={first},{last},255.255.255.0,10m"),
                "--dhcp-authoritative",
                &format!("--dhcp-leasefile={}", leases.display()),
                &format!("--pid-file={}", self.dir.join("dnsmasq.pid").display()),
                "--user=root",
                "--log-facility=-",
                "--log-dhcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("dnsmasq.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("starting dnsmasq: {e}"));
        self.children.push(child);
        leases
    }

    /// dnsmasq's log so far (empty when it was not started).
    pub fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Whether every process started by [`NetNs::start_dnsmasq`] still runs.
    pub fn children_alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The helper script ([`HELPER_PY`], `nethelper.py`) with `args`, to run inside the namespace.
    pub fn helper(&self, args: &[&str]) -> Command {
        let script = self.dir.join("nethelper.py");
        if !script.exists() {
            std::fs::write(&script, HELPER_PY)
                .unwrap_or_else(|e| panic!("writing {script:?}: {e}"));
        }
        let mut c = self.command("python3");
        c.arg(&script).args(args);
        c
    }

    /// Runs the helper to completion; panics with its output unless it succeeds.
    /// Returns its stdout.
    pub fn helper_ok(&self, args: &[&str]) -> String {
        let out = run_checked(&mut self.helper(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let quiet = |c: &mut Command| {
            let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        quiet(Command::new("ip").args(["-n", &self.name, "link", "del", &self.tap]));
        quiet(Command::new("ip").args(["netns", "del", &self.name]));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs inside a namespace with `python3 nethelper.py COMMAND ARGS`:
///
/// - `ping DST COUNT SIZE...`: ICMP echo requests over a raw socket; checks every
///   reply's id, sequence, checksum and payload; prints one line per reply.
/// - `echo HOST PORT CONNS BYTES`: concurrent TCP echo exchanges, byte for byte;
///   prints `ok ... ports=P,...` (the clients' local ports).
/// - `udp HOST PORT SIZE...`: UDP echo of one datagram per size.
/// - `echoloop HOST PORT`: one connection echoing random-sized chunks until stdin
///   closes; prints `connected PORT` first and `rounds N bytes B` at the end.
/// - `inject IFACE RATE SECONDS`: reads frames (u16 big-endian length + bytes) from
///   stdin and sends them on IFACE through an AF_PACKET socket at up to RATE
///   frames/s, slowing down when the TAP drops frames; fails past SECONDS.
///
/// Exits non-zero with a message on any failure.
pub const HELPER_PY: &str = include_str!("nethelper.py");
