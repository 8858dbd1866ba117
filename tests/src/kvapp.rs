//! Helpers for the storage tests (`tests/tests/kv.rs`, `tests/tests/disk.rs`): disk
//! images in a private work directory, booting `kv` on a disk, a small key-value
//! client, and QEMU's CPU time for idle checks.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{BOOT_TIMEOUT, Guest, Machine, Net, PortForward, Target, Vm};

// The HTTP client, responses and test data are the www tests' (one implementation).
pub use crate::wwwtests::{Client, Response, get, pseudo_random};
pub use oasis_testkit::free_port;

/// Where this module keeps its images.
pub fn work_dir() -> PathBuf {
    let d = oasis_cli::build::target_dir().join("kvapp");
    fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

/// A fresh zeroed image of `mib` MiB named `name` (unique per process).
pub fn empty_image(name: &str, mib: u64) -> PathBuf {
    let p = work_dir().join(format!("{name}-{}.img", std::process::id()));
    oasis_cli::image::empty(&p, mib, true).unwrap_or_else(|e| panic!("{e:#}"));
    p
}

/// A booted `kv` guest and the host address forwarded to its port 80.
pub struct Kv {
    /// The QEMU guest (killed on drop).
    pub guest: Guest,
    /// 127.0.0.1:PORT forwarded to the guest's port 80.
    pub addr: SocketAddr,
}

/// Boots `kv` with `disk` on `machine` (`--allow-shutdown`) and waits for `kv: ready`.
/// `None`: QEMU missing (test skipped).
pub fn boot_kv(disk: &std::path::Path, machine: Machine) -> Option<Kv> {
    let qemu = crate::qemu()?;
    let port = free_port();
    let mut vm = Vm::new(qemu, crate::image("kv", Target::Kvm));
    vm.machine = machine;
    vm.mem_mib = 64;
    vm.net = Net::User;
    vm.ports = vec![PortForward {
        host: port,
        guest: 80,
    }];
    vm.disks = vec![format!("{}", disk.display()).parse().expect("disk path")];
    vm.append = "--allow-shutdown".into();
    let mut guest = Guest::boot(&vm);
    guest.wait_for("kv: ready", BOOT_TIMEOUT);
    Some(Kv {
        guest,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    })
}

/// A keep-alive connection to `kv`.
pub struct KvClient {
    client: Client,
}

impl KvClient {
    /// Connects with `timeout` for every read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<KvClient> {
        Ok(KvClient {
            client: Client::connect(addr, timeout)?,
        })
    }

    /// One request, one response.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: kv\r\n").into_bytes();
        if method == "PUT" || method == "POST" {
            raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(body);
        self.client.send(&raw)?;
        self.client.response(method == "HEAD")
    }

    /// `PUT /kv/KEY`: the status.
    pub fn put(&mut self, key: &str, value: &[u8]) -> io::Result<u16> {
        Ok(self.request("PUT", &format!("/kv/{key}"), value)?.status)
    }

    /// `GET /kv/KEY`: the value, `None` on 404 (other statuses are errors).
    pub fn get(&mut self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let r = self.request("GET", &format!("/kv/{key}"), &[])?;
        match r.status {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            s => Err(io::Error::other(format!("GET {key}: status {s}"))),
        }
    }

    /// `DELETE /kv/KEY`: the status.
    pub fn delete(&mut self, key: &str) -> io::Result<u16> {
        Ok(self.request("DELETE", &format!("/kv/{key}"), &[])?.status)
    }

    /// `GET /kv/?prefix=P`: the keys.
    pub fn list(&mut self, prefix: &str) -> io::Result<Vec<String>> {
        let r = self.request("GET", &format!("/kv/?prefix={prefix}"), &[])?;
        if r.status != 200 {
            return Err(io::Error::other(format!("list: status {}", r.status)));
        }
        Ok(String::from_utf8_lossy(&r.body)
            .lines()
            .map(String::from)
            .collect())
    }
}

/// CPU time (user + system) of process `pid` so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on every Linux we run on.
    Duration::from_millis(ticks * 10)
}

/// The value the crash test writes under `key`: derived from the key alone, so a
/// value found after a crash can be checked even if its PUT was never answered.
pub fn value_for(key: &str) -> Vec<u8> {
    let mut seed = 0xcbf2_9ce4_8422_2325u64;
    for b in key.bytes() {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let len = 1 + (seed % 2048) as usize;
    pseudo_random(len, seed)
}
