//! `pico` end to end: picoserve, a third-party `no_std` HTTP framework, serving the
//! same routes from the unikernel (QEMU microvm, user networking, a host port
//! forwarded from 127.0.0.1 to the guest's port 80) and from the hosted build (host
//! sockets on 127.0.0.1). Each checks the text, path-parameter, JSON and 404 routes,
//! keep-alive, and that a client stalled mid-request does not hold up another.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use oasis_e2e::nettests::free_port;
use oasis_e2e::wwwtests::{Client, Response, get};
use oasis_e2e::{BOOT_TIMEOUT, Guest, Net, PortForward, qemu, vm};

/// Per-operation limit for clients (TCG on a loaded 2-core machine is slow).
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Everything `pico` promises; `platform` is a word its platform report contains.
fn exercise(g: &Guest, addr: SocketAddr, platform: &str) {
    let console = || g.text();

    let r = get(addr, "/", "");
    assert_eq!(r.status, 200, "GET /: {r:?}\nconsole:\n{}", console());
    let text = body(&r);
    assert!(
        text.starts_with("pico on oasis\nplatform: ") && text.contains(platform),
        "GET / should name the platform ({platform}): {text:?}"
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = get(addr, "/hello/oasis", "");
    assert_eq!((r.status, body(&r).as_str()), (200, "hello, oasis\n"));
    // picoserve percent-decodes path segments.
    let r = get(addr, "/hello/w%C3%B6rld%21", "");
    assert_eq!((r.status, body(&r).as_str()), (200, "hello, wörld!\n"));

    let r = get(addr, "/status.json", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json = body(&r);
    assert!(
        json.starts_with("{\"app\":\"pico\",\"platform\":\"")
            && json.contains(platform)
            && json.contains("\"uptime_ms\":")
            && json.ends_with('}'),
        "GET /status.json: {json:?}"
    );

    let r = get(addr, "/no/such/page", "");
    assert_eq!(r.status, 404, "{r:?}");

    // A client stalled in the middle of its request head holds its connection open;
    // another client's keep-alive requests are answered meanwhile.
    let mut stalled = Client::connect(addr, IO_TIMEOUT).expect("connect (stalled)");
    stalled
        .send(b"GET /hello/slow HTTP/1.1\r\nHost: x\r\n")
        .expect("send half a head");
    let mut c = Client::connect(addr, IO_TIMEOUT).expect("connect (keep-alive)");
    for name in ["one", "two", "three"] {
        c.send(format!("GET /hello/{name} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.response(false).unwrap_or_else(|e| {
            panic!("keep-alive GET /hello/{name}: {e}\nconsole:\n{}", console())
        });
        assert_eq!(body(&r), format!("hello, {name}\n"));
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // The stalled client finishes and is answered too.
    stalled.send(b"\r\n").expect("finish the head");
    let r = stalled.response(false).expect("stalled client's response");
    assert_eq!(body(&r), "hello, slow\n");

    assert!(
        !console().contains("panicked"),
        "pico panicked:\n{}",
        console()
    );
}

#[test]
fn pico_serves_on_microvm() {
    let Some(q) = qemu() else { return };
    let port = free_port();
    let mut v = vm("pico", q);
    v.net = Net::User;
    v.ports = vec![PortForward {
        host: port,
        guest: 80,
    }];
    let mut g = Guest::boot(&v);
    let ready = g.wait_for("pico: ready", BOOT_TIMEOUT);
    assert!(
        ready.contains("10.0.2.15:80"),
        "slirp's DHCP address: {ready}"
    );
    // The kvm platform report names the TSC and the timer, never "hosted".
    exercise(&g, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), "tsc ");
    assert!(!g.text().contains("platform: hosted"), "{}", g.text());
}

#[test]
fn pico_serves_hosted() {
    let port = free_port();
    let mut g = Guest::hosted("pico", &[&format!("--port={port}")]);
    let ready = g.wait_for("pico: ready", BOOT_TIMEOUT);
    assert!(
        ready.contains(&format!("127.0.0.1:{port}")),
        "hosted binds loopback: {ready}"
    );
    exercise(&g, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), "hosted");
}
