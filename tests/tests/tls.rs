//! `www` over HTTPS end to end: the unikernel built with a test certificate (see
//! `oasis_e2e::tlstests`), booted under QEMU, against real clients: `openssl
//! s_client`, `curl` and headless Chromium.
//!
//! Three tests, each boots one guest:
//!
//! - [`https_in_qemu`] (`--tls-port=443 --hsts=600`, user networking) runs its checks
//!   in turn and reports every one that failed, not just the first:
//!   - TLS 1.3 and TLS 1.2 forced, each verified against the test CA (hostname
//!     too), answering `200`, with ALPN `http/1.1`, an AEAD suite with ECDHE, and
//!     resumption from a session ticket (`Reused`);
//!   - clients offering only old suites (RSA key exchange, CBC) or only TLS 1.1 are
//!     refused by the guest with an alert;
//!   - SNI: the certificate is the same for `localhost`, an unknown name and no name
//!     (one certificate is built in: it is the default);
//!   - curl fetches every file of the fixture, byte-exact against the file and
//!     against plain HTTP, and HSTS is sent on HTTPS only;
//!   - Chromium trusts the test CA from a throw-away NSS database, loads the page and
//!     runs its script (fetched over HTTPS too); without the CA it refuses the page;
//!
//!   and at the end the guest is alive and its console shows no fault.
//! - [`https_survives_hostile_handshakes`] (on a TAP in a network namespace: QEMU's
//!   user networking throttles connects and can hold connections open after the
//!   guest closed them): while a normal client fetches a page over HTTPS every
//!   200 ms, garbage, plain HTTP on the HTTPS port, truncated ClientHellos, a 64 KiB
//!   ClientHello, an oversized record, and many connections that send a partial
//!   ClientHello and stop (1,000 × `OASIS_ROBUST_SCALE`, default 0.25: 250). Every
//!   probe must be answered correctly within 10 s, none of the hostile handshakes
//!   answered with a ServerHello, every stalled one closed by the guest (its
//!   handshake timeout is 10 s), and the guest must stay up without a fault.
//! - [`https_redirect_in_qemu`] (`--tls-port=443 --tls-redirect`): plain HTTP answers
//!   301 to the same target over HTTPS, `/healthz` is exempt, HTTPS serves (no HSTS:
//!   not asked for).
//!
//! Needs QEMU, openssl, curl, chromium and certutil (`libnss3-tools`): skipped with a
//! notice when missing, failed when `OASIS_REQUIRE_QEMU=1` (CI, whose `.ci/run`
//! installs them). The hostile test also needs what network namespaces need (root,
//! `/dev/net/tun`, `ip`; `OASIS_REQUIRE_NETNS=1` fails instead of skipping).
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use oasis_e2e::flood::{self, FAULT_WORDS};
use oasis_e2e::tlstests::{
    CLIENT_TIMEOUT, CONTENT_ALERT, CONTENT_HANDSHAKE, Scratch, TRUNCATED_HELLO_LEN, TlsWww, boot,
    boot_in_netns, client_hello, curl, has_server_hello, hostile, https_get, huge_client_hello,
    pki, run, s_client,
};
use oasis_e2e::wwwtests::{FIXTURE_MARKER, encode_path, exchange, get, pseudo_random, site};
use oasis_e2e::{find_program, missing};

/// Memory the guests boot with: `www`'s documented size.
const MEM_MIB: u32 = flood::WWW_MEM_MIB;
/// The guest's TLS handshake timeout (`oasis::tls::HANDSHAKE_TIMEOUT`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a hostile connection may wait for the guest to close it: the handshake
/// timeout and a generous margin for TCG on a loaded machine.
const CLOSE_DEADLINE: Duration = Duration::from_secs(HANDSHAKE_TIMEOUT.as_secs() + 20);
/// Partial-ClientHello connections at full scale (`OASIS_ROBUST_SCALE=1`).
const STALLED_FULL: usize = 1_000;
/// The request the interop clients send.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[test]
fn https_in_qemu() {
    let Some(mut www) = boot(MEM_MIB, "--hsts=600") else {
        return;
    };
    type Check = fn(&mut TlsWww);
    let checks: [(&str, Check); 5] = [
        (
            "openssl: TLS 1.3 and 1.2, ALPN, resumption",
            openssl_interop,
        ),
        (
            "openssl: old suites and TLS 1.1 refused",
            old_clients_refused,
        ),
        ("SNI: the default certificate", sni_default_certificate),
        ("curl: every file byte-exact, HSTS", every_file_over_https),
        (
            "chromium: trusts the CA, renders the page",
            chromium_renders,
        ),
    ];
    let mut failed = Vec::new();
    for (name, check) in checks {
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| check(&mut www)));
        let verdict = if r.is_ok() { "ok" } else { "FAILED" };
        eprintln!(
            "tls e2e: {name}: {verdict} in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        if r.is_err() {
            failed.push(name);
        }
    }
    assert_guest_healthy(&mut www);
    assert!(failed.is_empty(), "checks failed (see above): {failed:?}");
}

/// `openssl s_client` with TLS 1.3 and with TLS 1.2 forced: verified, `200`, ALPN,
/// an AEAD suite with ECDHE, then resumed from the session it saved.
fn openssl_interop(w: &mut TlsWww) {
    let scratch = Scratch::new("openssl");
    let verify = [
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-verify_return_error",
    ];
    for (flag, proto) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let sess = scratch.0.join(format!("{proto}.session"));
        let sess = sess.to_str().expect("UTF-8 path");
        let first = s_client(
            w.https,
            &[&verify[..], &[flag, "-alpn", "http/1.1", "-sess_out", sess]].concat(),
            REQUEST,
        );
        let out = first.text();
        assert!(first.ok(), "{proto}: s_client failed: {out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{proto}: {out}");
        assert!(out.contains("HTTP/1.1 200 OK"), "{proto}: {out}");
        assert!(out.contains(FIXTURE_MARKER), "{proto}: not the page: {out}");
        assert!(out.contains("ALPN protocol: http/1.1"), "{proto}: {out}");
        let cipher = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("New, {proto}, Cipher is ")))
            .unwrap_or_else(|| panic!("{proto}: not a new {proto} session: {out}"));
        let aead = cipher.contains("GCM") || cipher.contains("CHACHA20");
        let ecdhe = proto == "TLSv1.3" || cipher.starts_with("ECDHE-");
        assert!(aead && ecdhe, "{proto}: not AEAD with ECDHE: {cipher}");
        eprintln!("tls e2e: {proto}: {cipher}");

        let again = s_client(
            w.https,
            &[&verify[..], &[flag, "-sess_in", sess]].concat(),
            REQUEST,
        );
        let out = again.text();
        assert!(again.ok(), "{proto} resumed: s_client failed: {out}");
        assert!(
            out.contains(&format!("Reused, {proto}, Cipher is ")),
            "{proto}: the session was not resumed: {out}"
        );
        assert!(out.contains("HTTP/1.1 200 OK"), "{proto} resumed: {out}");
    }
}

/// Clients that offer nothing the guest accepts get a handshake alert from it (not
/// just a failure on their side) and no page.
fn old_clients_refused(w: &mut TlsWww) {
    for args in [
        ["-tls1_2", "-cipher", "AES128-SHA"],
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        // SECLEVEL=0: else this OpenSSL would refuse TLS 1.1 itself.
        ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    ] {
        let r = s_client(
            w.https,
            &[&["-servername", "localhost"][..], &args].concat(),
            REQUEST,
        );
        let out = r.text();
        assert!(!r.ok(), "{args:?}: the handshake succeeded: {out}");
        assert!(!out.contains("HTTP/1.1"), "{args:?}: got an answer: {out}");
        assert!(out.contains("Cipher is (NONE)"), "{args:?}: {out}");
        assert!(
            out.contains("SSL alert number"),
            "{args:?}: the guest sent no alert: {out}"
        );
    }
}

/// The first PEM certificate in `text`, without line breaks.
fn first_pem(text: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find(BEGIN)? + BEGIN.len();
    let len = text[start..].find(END)?;
    Some(text[start..start + len].split_whitespace().collect())
}

/// One certificate is built in, so it answers `localhost`, names it does not hold,
/// and clients that send no name.
fn sni_default_certificate(w: &mut TlsWww) {
    let leaf = std::fs::read_to_string(&pki().cert).expect("read the leaf certificate");
    let leaf = first_pem(&leaf).expect("a PEM certificate");
    for name in ["localhost", "unknown.example", ""] {
        let sni: &[&str] = if name.is_empty() {
            &["-noservername"]
        } else {
            &["-servername", name]
        };
        let r = s_client(w.https, sni, REQUEST);
        let out = r.text();
        assert!(r.ok(), "SNI {name:?}: s_client failed: {out}");
        assert!(out.contains("HTTP/1.1 200 OK"), "SNI {name:?}: {out}");
        let served = first_pem(&out).unwrap_or_else(|| panic!("SNI {name:?}: no certificate"));
        assert_eq!(served, leaf, "SNI {name:?}: not the built-in certificate");
    }
}

/// Every fixture file over HTTPS with one curl (keep-alive), compared with the file
/// and with plain HTTP; HSTS on HTTPS, not on HTTP.
fn every_file_over_https(w: &mut TlsWww) {
    let site = site();
    let scratch = Scratch::new("curl");
    let mut args = vec![
        "--write-out".to_string(),
        "%{http_code} %{url_effective}\\n".to_string(),
    ];
    let files: Vec<_> = site.files.iter().enumerate().collect();
    for (i, (path, _)) in &files {
        args.push(format!("{}{}", w.origin(), encode_path(path)));
        args.push("-o".into());
        args.push(scratch.0.join(i.to_string()).to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = curl(w.https, &args, CLIENT_TIMEOUT);
    let out = r.text();
    assert!(r.ok(), "curl failed: {out}");
    let codes: Vec<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(codes, vec!["200"; files.len()], "statuses: {out}");
    for (i, (path, bytes)) in &files {
        let got = std::fs::read(scratch.0.join(i.to_string())).expect("curl's output");
        assert!(got == **bytes, "{path} over HTTPS differs from the file");
        let plain = get(w.http, &encode_path(path), "");
        assert_eq!(plain.status, 200, "{path} over HTTP: {plain:?}");
        assert!(plain.body == got, "{path} differs between HTTP and HTTPS");
    }
    eprintln!("tls e2e: {} files byte-exact over HTTPS", files.len());

    let r = curl(
        w.https,
        &["-D", "-", "-o", "/dev/null", &format!("{}/", w.origin())],
        CLIENT_TIMEOUT,
    );
    let head = r.text().to_ascii_lowercase();
    assert!(r.ok(), "curl -D: {head}");
    assert!(
        head.contains("strict-transport-security: max-age=600\r\n"),
        "no HSTS on HTTPS: {head}"
    );
    assert_eq!(
        get(w.http, "/", "").header("strict-transport-security"),
        None,
        "HSTS on plain HTTP"
    );
}

/// The first `<h1>` of an HTML page.
fn heading(html: &str) -> Option<&str> {
    let start = html.find("<h1>")? + 4;
    Some(&html[start..start + html[start..].find("</h1>")?])
}

/// Headless Chromium loads the page over HTTPS when the test CA is in its NSS
/// database, and refuses it when it is not.
fn chromium_renders(w: &mut TlsWww) {
    let (Some(chromium), Some(certutil)) = (find_program("chromium"), find_program("certutil"))
    else {
        missing(
            "OASIS_REQUIRE_QEMU",
            "chromium or certutil is not installed (sudo apt-get install -y chromium libnss3-tools)",
        );
        return;
    };
    let index = get(w.http, "/", "");
    let index = String::from_utf8_lossy(&index.body);
    let title = heading(&index).expect("the index page has an <h1>");
    let scratch = Scratch::new("chromium");
    let dump_dom = |home: &Path| {
        let mut cmd = Command::new(&chromium);
        cmd.env("HOME", home)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                home.join("profile").display()
            ))
            .args(["--dump-dom", &format!("{}/", w.origin())]);
        run(&mut cmd, b"", Duration::from_secs(120))
    };

    let trusting = scratch.0.join("trusting");
    let nssdb = trusting.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).expect("create the NSS database directory");
    let db = format!("sql:{}", nssdb.display());
    for args in [
        vec!["-N", "--empty-password"],
        vec!["-A", "-t", "C,,", "-n", "oasis-e2e-ca", "-i"],
    ] {
        let mut cmd = Command::new(&certutil);
        cmd.env("HOME", &trusting).args(["-d", &db]).args(&args);
        if args[0] == "-A" {
            cmd.arg(&pki().ca);
        }
        let r = run(&mut cmd, b"", CLIENT_TIMEOUT);
        assert!(r.ok(), "certutil {args:?}: {}", r.text());
    }
    let r = dump_dom(&trusting);
    let dom = String::from_utf8_lossy(&r.stdout);
    assert!(r.ok(), "chromium failed: {:?}\n{}", r.status, r.text());
    assert!(
        dom.contains(&format!("<h1>{title}</h1>")),
        "the page's heading {title:?} is not in the DOM:\n{dom}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // app.js numbers the links once the DOM is loaded: it came over HTTPS and ran.
    assert!(
        dom.contains("data-index=\"0\""),
        "app.js did not run:\n{dom}"
    );

    // The control: the same browser without the CA refuses the certificate.
    let distrusting = scratch.0.join("distrusting");
    std::fs::create_dir_all(&distrusting).expect("create a home");
    let r = dump_dom(&distrusting);
    let dom = String::from_utf8_lossy(&r.stdout);
    assert!(
        !dom.contains(title),
        "chromium rendered the page without trusting the CA:\n{dom}"
    );
    assert!(
        r.text().contains("ERR_CERT_AUTHORITY_INVALID"),
        "chromium without the CA: {}",
        r.text()
    );
}

#[test]
fn https_survives_hostile_handshakes() {
    let Some(mut www) = boot_in_netns(MEM_MIB, "") else {
        return;
    };
    flood::raise_nofile();
    let hello = client_hello(); // captured here, outside the namespace
    let ns = www.ns.as_ref().expect("booted in a namespace").name.clone();
    let https = www.https;
    let t = Instant::now();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            flood::enter_netns(&ns);
            hostile_input(https, &ns, &hello)
        })
        .join()
    });
    eprintln!(
        "tls e2e: hostile input while a client is served: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_guest_healthy(&mut www);
    if let Err(e) = r {
        eprintln!("console tail:\n{}", www.console.tail(20));
        std::panic::resume_unwind(e);
    }
}

/// The normal client: `GET /index.html` over HTTPS every [`flood::PROBE_EVERY`] on
/// its own thread (inside the namespace), each answered correctly within
/// [`flood::probe_deadline`].
struct Prober {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<flood::Probes>,
}

impl Prober {
    fn start(ns: &str, https: SocketAddr, t0: Instant) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ns = ns.to_string();
        let handle = std::thread::spawn(move || {
            flood::enter_netns(&ns);
            let want = site().file("/index.html");
            let deadline = flood::probe_deadline();
            let mut p = flood::Probes::default();
            while !flag.load(Ordering::Relaxed) {
                let start = Instant::now();
                let r = https_get(https, "/index.html", deadline);
                let took = start.elapsed();
                p.count += 1;
                p.worst = p.worst.max(took);
                let at = (start - t0).as_secs_f64();
                match r {
                    Ok(body) if body != want => {
                        p.failures.push((at, format!("a {}-byte body", body.len())))
                    }
                    Ok(_) if took > deadline => {
                        p.failures.push((at, format!("answered after {took:.2?}")))
                    }
                    Ok(_) => {}
                    Err(e) => p.failures.push((at, format!("{e} ({took:.2?})"))),
                }
                std::thread::sleep(flood::PROBE_EVERY.saturating_sub(took));
            }
            p
        });
        Prober { stop, handle }
    }

    fn stop(self) -> flood::Probes {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the prober panicked")
    }
}

/// Hostile handshakes to `https` while the normal client is served (see the module
/// docs). Runs on a thread inside namespace `ns`.
fn hostile_input(https: SocketAddr, ns: &str, hello: &[u8]) {
    let t0 = Instant::now();
    let prober = Prober::start(ns, https, t0);
    let mut notes = Vec::new();

    // Each of these is refused at once (an alert, then the close) or closed at the
    // handshake timeout; never answered with a ServerHello.
    let mut oversized = vec![CONTENT_HANDSHAKE, 3, 1, 0xFF, 0xFF];
    oversized.extend_from_slice(&hello[5..]);
    oversized.resize(5 + 0xFFFF, 0);
    for (what, bytes) in [
        ("4 KiB of garbage", pseudo_random(4096, 0x7e57)),
        (
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        ("a 64 KiB ClientHello", huge_client_hello(64 * 1024)),
        ("a 64 KiB record", oversized),
    ] {
        let h = hostile(https, &bytes, CLOSE_DEADLINE);
        assert!(h.closed, "{what}: still open after {CLOSE_DEADLINE:?}");
        assert!(
            !has_server_hello(&h.reply),
            "{what}: answered with a ServerHello"
        );
        assert!(
            h.reply.is_empty() || h.reply[0] == CONTENT_ALERT,
            "{what}: answered {:02x?}",
            &h.reply[..h.reply.len().min(16)]
        );
        notes.push(format!(
            "{what}: closed after {:.2} s{}",
            h.took.as_secs_f64(),
            if h.reply.is_empty() {
                ""
            } else {
                " with an alert"
            }
        ));
    }
    // Truncated ClientHellos whose clients give up.
    for _ in 0..10 {
        if let Ok(mut s) = TcpStream::connect_timeout(&https, CLOSE_DEADLINE) {
            let _ = s.write_all(&hello[..TRUNCATED_HELLO_LEN]);
        }
    }

    // Many truncated ClientHellos whose clients then wait: the guest must close each
    // one (handshake timeout) or refuse it, and go on serving the normal client.
    let n = flood::scaled(STALLED_FULL);
    let (tx, rx) = channel();
    let (refused, unanswered) = flood::connect_many(ns, https, n, tx);
    let (mut stalled, cut): (Vec<TcpStream>, Vec<TcpStream>) = rx
        .try_iter()
        .partition(|mut c| c.write_all(&hello[..TRUNCATED_HELLO_LEN]).is_ok());
    let refused = refused + cut.len() as u64; // reset before the guest read a byte
    let t_open = Instant::now();
    notes.push(format!(
        "{n} partial ClientHellos: {} open, {refused} refused, {unanswered} unanswered, in {:.2} s",
        stalled.len(),
        (t_open - t0).as_secs_f64()
    ));
    for c in &stalled {
        c.set_nonblocking(true).expect("nonblocking");
    }
    let mut last_close = Duration::ZERO;
    while !stalled.is_empty() && t_open.elapsed() < CLOSE_DEADLINE {
        std::thread::sleep(Duration::from_millis(250));
        stalled.retain_mut(|c| {
            let open = matches!(
                flood::held_state(c),
                flood::Held::Open | flood::Held::Answered
            );
            if !open {
                last_close = t_open.elapsed();
            }
            open
        });
    }
    notes.push(format!(
        "the last stalled handshake was closed {:.2} s after the last one opened",
        last_close.as_secs_f64()
    ));
    let still_open = stalled.len();
    drop(stalled);
    std::thread::sleep(flood::AFTER);
    let probes = prober.stop();
    for n in &notes {
        eprintln!("tls e2e: hostile: {n}");
    }
    eprintln!(
        "tls e2e: hostile: {} probes over HTTPS, worst {:.2?}",
        probes.count, probes.worst
    );
    assert_eq!(
        still_open, 0,
        "stalled handshakes still open {CLOSE_DEADLINE:?} after they were opened"
    );
    assert!(probes.count >= 5, "only {} probes ran", probes.count);
    assert!(
        probes.failures.is_empty(),
        "the normal client was not served: {:#?}",
        probes.failures
    );
}

#[test]
fn https_redirect_in_qemu() {
    let Some(mut www) = boot(MEM_MIB, "--tls-redirect") else {
        return;
    };
    let r = get(www.http, "/docs/guide.html?q=1", "");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("https://localhost/docs/guide.html?q=1")
    );
    // The client's host, without its port (HTTPS is on the default port).
    let raw = b"GET /x HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n";
    let r = exchange(www.http, raw, false).expect("GET /x");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("https://example.test/x"));
    // The health check is exempt: a load balancer probes plain HTTP.
    let r = get(www.http, "/healthz", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "{r:?}");

    let r = curl(
        www.https,
        &["-D", "-", &format!("{}/docs/guide.html", www.origin())],
        CLIENT_TIMEOUT,
    );
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.ok(), "curl: {}", r.text());
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body = &r.stdout[r
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4..];
    assert!(
        body == site().file("/docs/guide.html"),
        "/docs/guide.html differs"
    );
    assert!(
        !out.to_ascii_lowercase()
            .contains("strict-transport-security"),
        "HSTS without --hsts: {out}"
    );
    let faults = www.console.faults();
    assert!(faults.is_empty(), "faults: {faults:#?}");
    assert!(www.console.alive(), "the guest died");
}

/// The guest is still running and its console shows no fault, panic or
/// allocation failure.
fn assert_guest_healthy(www: &mut TlsWww) {
    assert!(
        www.console.alive(),
        "the guest died: {:?}; console:\n{}",
        www.console.exit_status(),
        www.console.tail(40)
    );
    let faults = www.console.faults();
    assert!(
        faults.is_empty(),
        "the console shows faults ({FAULT_WORDS:?}): {faults:#?}"
    );
}
