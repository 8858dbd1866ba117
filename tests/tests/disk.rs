//! Disks end to end: `www` serving a tar image from a virtio-blk disk byte-exact
//! (without rebuilding the image), and the hosted platform's file-backed disks
//! (`--disk=FILE`) under `www` and `kv`.

use std::net::SocketAddr;
use std::time::Duration;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use oasis_e2e::kvapp::{KvClient, empty_image, free_port, get, pseudo_random, work_dir};
use oasis_e2e::{BOOT_TIMEOUT, Guest, GuestExit, Net, PortForward, Target, Vm, image, qemu};

/// The fixture site: URL path → bytes, written under the work directory once.
struct Site {
    dir: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
}

impl Site {
    fn file(&self, path: &str) -> &[u8] {
        &self.files[path]
    }
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = work_dir().join(format!("site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        files.insert(
            "/index.html".into(),
            b"<h1>served from a disk</h1>\n".to_vec(),
        );
        files.insert("/docs/guide.html".into(), b"<p>guide</p>\n".to_vec());
        files.insert("/css/site.css".into(), b"body{margin:0}\n".repeat(200));
        files.insert("/big.bin".into(), pseudo_random((1 << 20) + 123, 42));
        files.insert("/empty.txt".into(), Vec::new());
        files.insert("/deep/a/b/c/d.json".into(), b"{\"ok\":true}".to_vec());
        for (path, bytes) in &files {
            let p = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
        }
        Site { dir, files }
    })
}

fn www_image() -> PathBuf {
    image("www", Target::Kvm)
}

/// A tar image of the `www` test fixture, made with `cargo oasis image tar`.
fn site_tar(name: &str) -> std::path::PathBuf {
    let out = work_dir().join(format!("site-{name}-{}.img", std::process::id()));
    oasis_cli::image::tar(&site().dir, &out, None, true).unwrap_or_else(|e| panic!("{e:#}"));
    out
}

fn check_every_file(addr: SocketAddr) {
    let s = site();
    assert!(s.files.len() > 3);
    for (path, bytes) in &s.files {
        let r = get(addr, path, "");
        assert_eq!(r.status, 200, "GET {path}");
        assert!(
            r.body == *bytes,
            "GET {path}: {} bytes differ from the file's {}",
            r.body.len(),
            bytes.len()
        );
        assert!(
            r.header("etag")
                .is_some_and(|e| e.starts_with("\"00000000")),
            "{path}: {:?}",
            r.header("etag")
        );
    }
    let r = get(addr, "/no-such-file", "");
    assert_eq!(r.status, 404);
}

#[test]
fn www_serves_a_tar_image_from_a_virtio_disk_byte_exact() {
    let Some(q) = qemu() else {
        return;
    };
    let tar = site_tar("virtio");
    let port = free_port();
    let mut vm = Vm::new(q, www_image());
    vm.mem_mib = 64;
    vm.net = Net::User;
    vm.ports = vec![PortForward {
        host: port,
        guest: 80,
    }];
    vm.disks = vec![format!("{}:ro", tar.display()).parse().unwrap()];
    vm.append = "--site=disk".into();
    let mut g = Guest::boot(&vm);
    let ready = g.wait_for("www: ready", BOOT_TIMEOUT);
    assert!(ready.contains("from virtio-blk0"), "{ready}");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    check_every_file(addr);
    // Conditional and range requests work on disk files too.
    let r = get(addr, "/big.bin", "Range: bytes=1000-1999\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, site().file("/big.bin")[1000..2000]);
    let etag = get(addr, "/big.bin", "")
        .header("etag")
        .unwrap()
        .to_string();
    let r = get(addr, "/big.bin", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    let _ = std::fs::remove_file(&tar);
}

#[test]
fn www_without_a_disk_serves_the_embedded_site() {
    let Some(q) = qemu() else {
        return;
    };
    let disk = empty_image("blank", 1);
    let port = free_port();
    let mut vm = Vm::new(q, www_image());
    vm.mem_mib = 64;
    vm.net = Net::User;
    vm.ports = vec![PortForward {
        host: port,
        guest: 80,
    }];
    // A blank disk is not a site: `--site=auto` falls back to the embedded pack.
    vm.disks = vec![format!("{}", disk.display()).parse().unwrap()];
    let mut g = Guest::boot(&vm);
    let ready = g.wait_for("www: ready", BOOT_TIMEOUT);
    assert!(!ready.contains("virtio-blk"), "{ready}");
    let r = get(SocketAddr::from(([127, 0, 0, 1], port)), "/", "");
    assert_eq!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains("served from a disk"));
    let _ = std::fs::remove_file(&disk);
}

#[test]
fn hosted_www_serves_a_disk_file() {
    let tar = site_tar("hosted");
    let port = free_port();
    let port_arg = format!("--port={port}");
    let disk_arg = format!("--disk={}:ro", tar.display());
    let mut g = Guest::hosted("www", &[&port_arg, &disk_arg]);
    let ready = g.wait_for("www: ready", BOOT_TIMEOUT);
    assert!(ready.contains(&tar.display().to_string()), "{ready}");
    check_every_file(SocketAddr::from(([127, 0, 0, 1], port)));
    drop(g);
    let _ = std::fs::remove_file(&tar);
}

#[test]
fn hosted_kv_keeps_its_data_in_the_file() {
    let disk = empty_image("hosted", 4);
    let start = |disk: &std::path::Path| {
        let port = free_port();
        let args = [
            format!("--port={port}"),
            format!("--disk={}", disk.display()),
            "--allow-shutdown".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut g = Guest::hosted("kv", &args);
        g.wait_for("kv: ready", BOOT_TIMEOUT);
        (g, SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let (mut g, addr) = start(&disk);
    let mut c = KvClient::connect(addr, Duration::from_secs(10)).unwrap();
    assert_eq!(c.put("a", b"1").unwrap(), 201);
    assert_eq!(c.put("b", b"2").unwrap(), 201);
    assert_eq!(c.delete("a").unwrap(), 204);
    assert_eq!(c.request("POST", "/shutdown", b"").unwrap().status, 200);
    assert_eq!(g.wait_exit(BOOT_TIMEOUT), GuestExit::Status(0));
    let (_g, addr) = start(&disk);
    let mut c = KvClient::connect(addr, Duration::from_secs(10)).unwrap();
    assert_eq!(c.get("a").unwrap(), None);
    assert_eq!(c.get("b").unwrap().as_deref(), Some(&b"2"[..]));
    let _ = std::fs::remove_file(&disk);
}

#[test]
fn hosted_apps_report_bad_disk_arguments() {
    let missing = work_dir().join("no-such-disk.img");
    let arg = format!("--disk={}", missing.display());
    let mut g = Guest::hosted("kv", &[&arg]);
    assert_eq!(g.wait_exit(BOOT_TIMEOUT), GuestExit::Status(1));
    assert!(g.text().contains("no-such-disk.img"), "{}", g.text());
    let mut g = Guest::hosted("kv", &[]);
    assert_eq!(g.wait_exit(BOOT_TIMEOUT), GuestExit::Status(1));
    assert!(g.text().contains("no block device"), "{}", g.text());
}
