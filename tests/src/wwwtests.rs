//! Helpers for the `www` tests (`tests/tests/www.rs`): the fixture site, a `www` image
//! built with it, a small raw HTTP/1.1 client (std only) and an nginx peer.
//!
//! The fixture is `tests/data/www-site/` plus files generated here (a 1 MiB binary, a
//! 256 KiB text file), synced into `$CARGO_TARGET_DIR/wwwtests/site/` (rewritten only
//! when a byte changes, so cargo's change detection stays quiet between runs). `www` is
//! built with `OASIS_SITE_DIR` pointing there. Building with a different
//! `OASIS_SITE_DIR` rebuilds the one `www` artifact in place, so [`www_image`] builds
//! under a file lock, copies the artifact to a private path and checks that the copy
//! really holds this fixture (another build may have replaced the artifact meanwhile).
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use crate::{BOOT_TIMEOUT, Guest, Net, PortForward, Target, Vm};

/// A string in the fixture's `index.html`: proves an image holds this fixture.
pub const FIXTURE_MARKER: &str = "marker: oasis-wwwtests-fixture";
/// Size of the generated binary file `/big.bin` (1 MiB and a bit: not a round number).
pub const BIG_LEN: usize = (1 << 20) + 123;
/// Size of the generated compressible file `/large.txt`.
pub const LARGE_TEXT_LEN: usize = 256 * 1024;

/// The fixture site as served: its directory and every file's URL path and bytes.
#[derive(Debug)]
pub struct Site {
    /// `$CARGO_TARGET_DIR/wwwtests/site`.
    pub dir: PathBuf,
    /// URL path (`/docs/guide.html`, unencoded) → contents.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Site {
    /// Contents of the file at URL path `path`.
    pub fn file(&self, path: &str) -> &[u8] {
        self.files
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the fixture"))
    }

    /// Modification time of the file at URL path `path` (unix seconds).
    pub fn mtime(&self, path: &str) -> u64 {
        let meta = fs::metadata(self.dir.join(path.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("stat {path}: {e}"));
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }
}

/// Where this module keeps its files.
pub fn work_dir() -> PathBuf {
    let d = oasis_cli::build::target_dir().join("wwwtests");
    fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

/// Deterministic bytes, incompressible enough for a binary file.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    oasis_testkit::pattern(seed, len)
}

fn generated_files() -> Vec<(String, Vec<u8>)> {
    let mut text = String::with_capacity(LARGE_TEXT_LEN + 100);
    let mut i = 0u64;
    while text.len() < LARGE_TEXT_LEN {
        text.push_str(&format!(
            "line {i:06}: the quick brown fox jumps over the lazy dog {}\n",
            i * 7919 % 1000
        ));
        i += 1;
    }
    text.truncate(LARGE_TEXT_LEN);
    vec![
        ("/big.bin".into(), pseudo_random(BIG_LEN, 0x0a51_5000)),
        ("/large.txt".into(), text.into_bytes()),
    ]
}

fn collect(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    let rd = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for e in rd {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}/{name}");
        if e.file_type().expect("file type").is_dir() {
            collect(&e.path(), &path, out);
        } else {
            out.insert(path, fs::read(e.path()).expect("read fixture file"));
        }
    }
}

/// Writes `bytes` to `path` unless it already holds exactly them (keeps the mtime).
fn sync_file(path: &Path, bytes: &[u8]) {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Removes files under `dir` whose URL path is not in `keep`.
fn prune(dir: &Path, prefix: &str, keep: &BTreeMap<String, Vec<u8>>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let path = format!("{prefix}/{}", e.file_name().to_string_lossy());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            prune(&e.path(), &path, keep);
            let _ = fs::remove_dir(e.path()); // only if now empty
        } else if !keep.contains_key(&path) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The fixture site, synced once per process.
pub fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let src = oasis_cli::workspace_root().join("tests/data/www-site");
        let mut files = BTreeMap::new();
        collect(&src, "", &mut files);
        files.extend(generated_files());
        let dir = work_dir().join("site");
        prune(&dir, "", &files);
        for (p, bytes) in &files {
            sync_file(&dir.join(p.trim_start_matches('/')), bytes);
        }
        // Keep the directory without index (its files are there, so it exists).
        Site { dir, files }
    })
}

/// `www` built for kvm with the fixture site, copied to a private path. Built once
/// per process, under a lock shared with other processes running these tests.
pub fn www_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let site = site();
            let work = work_dir();
            let lock = fs::File::create(work.join("build.lock")).expect("create build lock");
            lock.lock().expect("lock build.lock");
            remove_stale_copies(&work, "www-fixture-");
            let copy = work.join(format!("www-fixture-{}.elf", std::process::id()));
            let req = oasis_cli::build::BuildRequest {
                app: "www".into(),
                target: Target::Kvm,
                release: true,
                env: vec![(
                    "OASIS_SITE_DIR".into(),
                    site.dir.to_string_lossy().into_owned(),
                )],
                quiet: true,
            };
            let big = &site.file("/big.bin")[..64];
            for attempt in 1..=3 {
                let built = oasis_cli::build::build(&req)
                    .unwrap_or_else(|e| panic!("building www with the fixture site: {e:#}"));
                fs::copy(&built, &copy).unwrap_or_else(|e| {
                    panic!("copying {} to {}: {e}", built.display(), copy.display())
                });
                let image = fs::read(&copy).expect("read the copied image");
                let holds = |needle: &[u8]| image.windows(needle.len()).any(|w| w == needle);
                if holds(FIXTURE_MARKER.as_bytes()) && holds(big) {
                    return copy;
                }
                eprintln!(
                    "www image at {} does not hold the fixture (a concurrent build?); rebuilding ({attempt}/3)",
                    built.display()
                );
            }
            panic!("could not build a www image holding the fixture site");
        })
        .clone()
}

/// Removes image copies `PREFIX<pid>.elf` in `work` left by test processes that
/// are gone.
pub(crate) fn remove_stale_copies(work: &Path, prefix: &str) {
    let Ok(rd) = fs::read_dir(work) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".elf"));
        if let Some(pid) = pid
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// A booted `www` guest and the host address forwarded to its port 80.
pub struct Www {
    /// The QEMU guest (killed on drop).
    pub guest: Guest,
    /// 127.0.0.1:PORT forwarded to the guest's port 80.
    pub addr: SocketAddr,
}

/// Boots the fixture `www` on microvm with `mem_mib` of RAM and boot args `append`,
/// user networking, and waits for its readiness line. `None`: QEMU missing (skipped).
pub fn boot_www(mem_mib: u32, append: &str) -> Option<Www> {
    let qemu = crate::qemu()?;
    let port = oasis_testkit::free_port();
    let mut vm = Vm::new(qemu, www_image());
    vm.mem_mib = mem_mib;
    vm.net = Net::User;
    vm.ports = vec![PortForward {
        host: port,
        guest: 80,
    }];
    vm.append = append.into();
    let mut guest = Guest::boot(&vm);
    guest.wait_for("www: ready", BOOT_TIMEOUT);
    Some(Www {
        guest,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    })
}

/// One parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes as framed (not decoded).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body, gunzipped when `Content-Encoding: gzip`.
    pub fn decoded_body(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            gunzip(&self.body)
        } else {
            self.body.clone()
        }
    }
}

/// Decompresses gzip with the host's `gzip -dc`.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run gzip -dc (Debian package gzip)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("gzip -dc");
    let _ = writer.join();
    assert!(out.status.success(), "gzip -dc failed: not valid gzip");
    out.stdout
}

/// Reads responses from one connection, in order (pipelining).
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Whether the peer closed the connection (read returned 0 or a reset).
pub fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

impl Client {
    /// Connects with a read/write timeout of `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends raw bytes.
    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.stream.write_all(raw)
    }

    /// The underlying stream (for shutdowns and timeouts).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn need(&mut self, n: usize) -> io::Result<()> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed after {} of {n} bytes", self.buf.len()),
                ));
            }
        }
        Ok(())
    }

    /// Reads until the peer closes; returns what was buffered and read.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match self.fill() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_closed(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads the next final response, skipping interim 1xx ones (`100 Continue`) as
    /// clients do. `head_request`: the request was HEAD (no body follows).
    pub fn response(&mut self, head_request: bool) -> io::Result<Response> {
        loop {
            let r = self.any_response(head_request)?;
            if !(100..200).contains(&r.status) || r.status == 101 {
                return Ok(r);
            }
        }
    }

    /// Reads the next response, interim or final.
    pub fn any_response(&mut self, head_request: bool) -> io::Result<Response> {
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "closed before a complete response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {head:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut headers = Vec::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let (n, v) = l.split_once(':').ok_or_else(|| bad("bad header line"))?;
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        self.buf.drain(..end);
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        if let Some(cl) = resp.header("content-length") {
            let n: usize = cl.parse().map_err(|_| bad("bad Content-Length"))?;
            self.need(n)?;
            resp.body = self.buf.drain(..n).collect();
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    if self.fill()? == 0 {
                        return Err(bad("closed inside a chunked body"));
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| bad("bad chunk size"))?;
                self.buf.drain(..line_end + 2);
                self.need(size + 2)?;
                resp.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else {
            resp.body = self.read_to_end()?;
        }
        Ok(resp)
    }
}

/// Sends `raw` on a new connection and reads one response (`head_request`: no body).
pub fn exchange(addr: SocketAddr, raw: &[u8], head_request: bool) -> io::Result<Response> {
    let mut c = Client::connect(addr, Duration::from_secs(30))?;
    c.send(raw)?;
    c.response(head_request)
}

/// `GET path` with extra header lines (each ending in `\r\n`), `Connection: close`.
pub fn get(addr: SocketAddr, path: &str, extra: &str) -> Response {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n");
    exchange(addr, raw.as_bytes(), false).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Percent-encodes a URL path for a request line (spaces and non-ASCII).
pub fn encode_path(path: &str) -> String {
    let mut s = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The nginx binary, or `None` (skipped) when missing and `OASIS_REQUIRE_NGINX` is not 1.
pub fn nginx_binary() -> Option<PathBuf> {
    let found = crate::find_program("nginx");
    if found.is_none() {
        crate::missing(
            "OASIS_REQUIRE_NGINX",
            "nginx is not installed (sudo apt-get install -y nginx-light)",
        );
    }
    found
}

/// The nginx configuration the differential test compares against. Where nginx has a
/// knob for a choice `www` made deliberately, it is set to `www`'s choice; the
/// remaining differences are listed in `tests/tests/www.rs`.
pub fn nginx_config(dir: &Path, root: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server_tokens off;
    gzip off;
    gzip_static on;
    gzip_vary on;
    # www: relative Location, RFC 'not modified since' (<=), multiple ranges -> 200.
    absolute_redirect off;
    if_modified_since before;
    max_ranges 1;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index index.html;
    }}
}}
",
        root = root.display()
    )
}

/// A running nginx serving a copy of the fixture with precompressed `.gz` files.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx on a free port serving `site` (copied, with `.gz` variants for the
    /// files `www` would compress). `None` when nginx is missing (skipped).
    pub fn start(site: &Site) -> Option<Nginx> {
        let bin = nginx_binary()?;
        let dir = work_dir().join(format!("nginx-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        fs::create_dir_all(dir.join("tmp")).expect("create nginx temp dir");
        for (p, bytes) in &site.files {
            let rel = p.trim_start_matches('/');
            let dst = root.join(rel);
            sync_file(&dst, bytes);
            let mtime = fs::metadata(site.dir.join(rel))
                .and_then(|m| m.modified())
                .expect("fixture mtime");
            let set = |path: &Path| {
                fs::File::options()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_modified(mtime))
                    .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()))
            };
            set(&dst);
            // gzip_static: the same files www's builder compresses (compressible type,
            // variant smaller than the original).
            let ct = oasis_http_content_type(p);
            if is_compressible(ct) {
                let out = Command::new("gzip")
                    .args(["-9", "-n", "-c"])
                    .arg(&dst)
                    .output()
                    .expect("run gzip (Debian package gzip)");
                assert!(out.status.success(), "gzip {}", dst.display());
                if out.stdout.len() < bytes.len() {
                    let gz = dst.with_file_name(format!(
                        "{}.gz",
                        dst.file_name().unwrap_or_default().to_string_lossy()
                    ));
                    fs::write(&gz, &out.stdout).expect("write .gz");
                    set(&gz);
                }
            }
        }
        let port = oasis_testkit::free_port();
        let conf = dir.join("nginx.conf");
        fs::write(&conf, nginx_config(&dir, &root, port)).expect("write nginx.conf");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut n = Nginx {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&n.addr, Duration::from_millis(200)).is_ok() {
                return Some(n);
            }
            if let Ok(Some(st)) = n.child.try_wait() {
                let log = fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({st}) before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {} within 20 s",
                n.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM first: nginx then stops any process it started itself; SIGKILL
        // only if it is still there after a few seconds.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `www`'s content type for a path (mirrors `oasis_http::builder::content_type_for`
/// for the extensions the fixture uses; checked against the served headers).
fn oasis_http_content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html",
        "css" => "text/css",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "js" => "application/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" => "image/jpeg",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn is_compressible(ct: &str) -> bool {
    ct.starts_with("text/") || ct == "application/javascript" || ct == "application/json"
}

/// Load client run inside a network namespace (`python3 - HOST PORT CLIENTS EACH`,
/// expected files on stdin as `PATH SHA256` lines): CLIENTS threads connect at once,
/// each sends EACH keep-alive requests for files in turn (the last with `Connection:
/// close`) and checks every status and body digest. Prints `ok ...` or the failures
/// (exit status 1).
pub const LOAD_PY: &str = r##"
import hashlib, socket, sys, threading, time
host, port, clients, each = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
files = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
barrier = threading.Barrier(clients)
errors = []
def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise Exception("closed before a response head")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdr = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    n = int(hdr.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            raise Exception("closed inside a body")
        rest += d
    return status, hdr, rest[:n], rest[n:]
def client(i):
    try:
        barrier.wait()
        s = socket.create_connection((host, port), timeout=60)
        buf = b""
        for k in range(each):
            path, digest = files[(i + k) % len(files)]
            last = k + 1 == each
            close = "Connection: close\r\n" if last else ""
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n".encode())
            status, hdr, body, buf = read_response(s, buf)
            if status != 200 or hashlib.sha256(body).hexdigest() != digest:
                raise Exception(f"request {k} {path}: status {status}, body of {len(body)} bytes differs")
            if not last and hdr.get("connection") != "keep-alive":
                raise Exception(f"request {k}: not kept alive")
        s.close()
    except Exception as e:
        errors.append(f"client {i}: {e!r}")
t = time.time()
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for th in threads: th.start()
for th in threads: th.join()
if errors:
    print(f"{len(errors)} of {clients} clients failed:")
    print("\n".join(errors[:20]))
    sys.exit(1)
print(f"ok clients={clients} requests={clients * each} seconds={time.time() - t:.2f}")
"##;
