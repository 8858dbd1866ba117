//! `--metrics-port`: `www`, `kv` and `dns` under QEMU export Prometheus metrics that
//! count what they served (HTTP requests, kv operations and store usage, DNS queries
//! by type and rcode, TCP resets, virtqueue occupancy), `promtool check metrics`
//! accepts them, and a real Prometheus server scrapes them. Needs QEMU and
//! Prometheus (`promtool`, `prometheus`): skipped when missing, failed when
//! `OASIS_REQUIRE_QEMU=1`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oasis_dns::wire::{Message, Rcode, Rtype};
use oasis_e2e::dnsapp::{query, tcp_ask_many};
use oasis_e2e::kvapp::{KvClient, empty_image};
use oasis_e2e::wwwtests::{get, www_image};
use oasis_e2e::{
    BOOT_TIMEOUT, Guest, Net, PortForward, Target, Vm, find_program, image, missing, qemu,
};

/// `GET path` on `addr` with `Connection: close`; the whole response as text.
fn fetch(addr: SocketAddr, path: &str) -> String {
    try_fetch(addr, path).unwrap_or_else(|| panic!("GET {path} from {addr} failed"))
}

/// [`fetch`], `None` when the connection fails or is reset.
fn try_fetch(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The value of the sample line `name` (exact, labels included).
fn value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The value of sample `name`, which must be there.
fn must(metrics: &str, name: &str) -> f64 {
    value(metrics, name).unwrap_or_else(|| panic!("no sample {name} in:\n{metrics}"))
}

/// `GET /metrics` on `mon`: the exposition (the body of a 200 in format 0.0.4).
fn scrape(mon: SocketAddr) -> String {
    let r = fetch(mon, "/metrics");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("text/plain; version=0.0.4"), "{r}");
    r.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `promtool` when installed; else skipped (or failed under `OASIS_REQUIRE_QEMU`).
fn promtool() -> Option<PathBuf> {
    let p = find_program("promtool");
    if p.is_none() {
        missing(
            "OASIS_REQUIRE_QEMU",
            "promtool not installed (apt-get install prometheus)",
        );
    }
    p
}

/// `promtool check metrics` must accept `body` (its linter reads stdin).
fn promtool_accepts(promtool: &std::path::Path, body: &str) {
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The NIC's virtqueue gauges are there and consistent: a queue size, receive
/// buffers posted (the driver keeps the ring supplied) and transmit descriptors in
/// flight within it.
fn check_queues(body: &str) {
    let rx_size = must(body, "oasis_net_queue_size{nic=\"0\",queue=\"rx\"}");
    let tx_size = must(body, "oasis_net_queue_size{nic=\"0\",queue=\"tx\"}");
    assert!(rx_size >= 16.0 && tx_size >= 16.0, "{body}");
    let posted = must(body, "oasis_net_rx_buffers_posted{nic=\"0\"}");
    assert!(posted > rx_size / 2.0 && posted <= rx_size, "{body}");
    let in_flight = must(body, "oasis_net_tx_descriptors_in_flight{nic=\"0\"}");
    assert!(in_flight <= tx_size, "{body}");
}

/// A guest booted with `--metrics-port=9100 ARGS`, host ports forwarded to `guest`
/// ports (in order) and the metrics port; waits for `ready`.
fn boot(
    app: &str,
    guest_ports: &[u16],
    args: &str,
    disk: Option<PathBuf>,
) -> (Guest, Vec<u16>, SocketAddr) {
    let q = qemu().expect("checked by the caller");
    let metrics = oasis_testkit::free_port();
    let hosts: Vec<u16> = guest_ports
        .iter()
        .map(|_| oasis_testkit::free_port())
        .collect();
    let mut vm = Vm::new(q, image(app, Target::Kvm));
    vm.mem_mib = 64;
    vm.net = Net::User;
    vm.ports = hosts
        .iter()
        .zip(guest_ports)
        .map(|(&host, &guest)| PortForward { host, guest })
        .chain([PortForward {
            host: metrics,
            guest: 9100,
        }])
        .collect();
    if let Some(d) = disk {
        vm.disks = vec![format!("{}", d.display()).parse().expect("disk path")];
    }
    vm.append = format!("--metrics-port=9100 {args}");
    let mut guest = Guest::boot(&vm);
    guest.wait_for(&format!("{app}: ready"), BOOT_TIMEOUT);
    let mon = SocketAddr::from(([127, 0, 0, 1], metrics));
    // The metrics server starts listening once the network is up, beside the
    // appliance: it may come a moment after `ready`. Poll /healthz until it answers.
    let deadline = Instant::now() + BOOT_TIMEOUT;
    while !try_fetch(mon, "/healthz").is_some_and(|r| r.ends_with("\r\n\r\nok\n")) {
        assert!(Instant::now() < deadline, "no /healthz on the metrics port");
        std::thread::sleep(Duration::from_millis(100));
    }
    (guest, hosts, mon)
}

#[test]
fn www_metrics_count_requests_and_pass_promtool_and_a_real_scrape() {
    let Some(q) = qemu() else { return };
    let (Some(promtool), Some(prometheus)) = (find_program("promtool"), find_program("prometheus"))
    else {
        missing(
            "OASIS_REQUIRE_QEMU",
            "promtool/prometheus not installed (apt-get install prometheus)",
        );
        return;
    };
    let (http, metrics, closed) = (
        oasis_testkit::free_port(),
        oasis_testkit::free_port(),
        oasis_testkit::free_port(),
    );
    let mut vm = Vm::new(q, www_image());
    vm.mem_mib = 64;
    vm.net = Net::User;
    vm.ports = vec![
        PortForward {
            host: http,
            guest: 80,
        },
        PortForward {
            host: metrics,
            guest: 9100,
        },
        // Nothing listens on the guest's port 81: its SYN is answered with RST.
        PortForward {
            host: closed,
            guest: 81,
        },
    ];
    vm.append = "--metrics-port=9100".into();
    let mut guest = Guest::boot(&vm);
    guest.wait_for("www: ready", BOOT_TIMEOUT);
    let (web, mon) = (
        SocketAddr::from(([127, 0, 0, 1], http)),
        SocketAddr::from(([127, 0, 0, 1], metrics)),
    );

    for _ in 0..3 {
        assert_eq!(get(web, "/", "").status, 200);
    }
    assert_eq!(get(web, "/no-such-file", "").status, 404);
    let before = fetch(mon, "/metrics");
    assert!(before.starts_with("HTTP/1.1 200 OK\r\n"), "{before}");
    assert!(before.contains("text/plain; version=0.0.4"), "{before}");
    let body = before.split_once("\r\n\r\n").unwrap().1.to_string();
    assert_eq!(
        value(
            &body,
            "oasis_http_requests_total{method=\"GET\",code=\"2xx\"}"
        ),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        value(
            &body,
            "oasis_http_requests_total{method=\"GET\",code=\"4xx\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(&body, "oasis_http_request_duration_seconds_count"),
        Some(4.0),
        "{body}"
    );
    assert!(value(&body, "oasis_http_response_body_bytes_total").unwrap() > 3.0 * 1000.0);
    assert!(value(&body, "oasis_heap_bytes{kind=\"used\"}").unwrap() > 0.0);
    assert!(value(&body, "oasis_net_frames_total{dir=\"rx\"}").unwrap() > 10.0);
    assert!(value(&body, "oasis_uptime_seconds").unwrap() > 0.0);
    assert!(fetch(mon, "/healthz").ends_with("\r\n\r\nok\n"));
    assert!(fetch(mon, "/other").starts_with("HTTP/1.1 404"));
    check_queues(&body);
    // Segments went out (the four responses at least, each one or more).
    assert!(
        must(&body, "oasis_tcp_segments_sent_total") >= 4.0,
        "{body}"
    );
    let retransmits = must(&body, "oasis_tcp_retransmitted_segments_total");
    assert!(
        retransmits < must(&body, "oasis_tcp_segments_sent_total"),
        "{body}"
    );

    // A connection to a guest port nobody listens on: QEMU's NAT forwards the SYN,
    // the guest answers RST, which the metrics count as sent.
    let resets = |b: &str| must(b, "oasis_tcp_resets_total{dir=\"sent\"}");
    let resets_before = resets(&body);
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", closed)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.read(&mut [0u8; 1]); // EOF or reset once QEMU saw the RST
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let b = scrape(mon);
        let n = resets(&b);
        if n > resets_before || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        after > resets_before,
        "no RST counted: {resets_before} -> {after}"
    );

    promtool_accepts(&promtool, &body);

    // A real Prometheus server scrapes it once a second; its API then has the value.
    let dir = tempfile_dir();
    let api = oasis_testkit::free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: oasis\n    static_configs:\n      - targets: ['127.0.0.1:{metrics}']\n"
        ),
    )
    .unwrap();
    let mut server = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{api}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let scraped = loop {
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", api)) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(
            s,
            "GET /api/v1/query?query=oasis_http_requests_total%7Bcode%3D%222xx%22%2Cmethod%3D%22GET%22%7D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        last.clear();
        let _ = s.read_to_string(&mut last);
        if last.contains("\"job\":\"oasis\"") && last.contains(",\"3\"]") {
            break true;
        }
    };
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        scraped,
        "Prometheus never reported the scraped value: {last}"
    );
    drop(guest);
}

#[test]
fn kv_metrics_count_operations_and_store_usage() {
    if qemu().is_none() {
        return;
    }
    let Some(promtool) = promtool() else { return };
    let disk = empty_image("metrics", 16);
    let (guest, ports, mon) = boot("kv", &[80], "", Some(disk.clone()));
    let web = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let idle = scrape(mon);
    assert_eq!(must(&idle, "kv_keys"), 0.0, "{idle}");
    let capacity = must(&idle, "kv_log_bytes{kind=\"capacity\"}");
    assert!(
        capacity > 1e6,
        "a 16 MiB disk has MiB-sized regions: {idle}"
    );
    let used_idle = must(&idle, "kv_log_bytes{kind=\"used\"}");

    let mut c = KvClient::connect(web, Duration::from_secs(30)).unwrap();
    assert_eq!(c.put("a", &[1; 10_000]).unwrap(), 201);
    assert_eq!(c.put("b", b"two").unwrap(), 201);
    assert_eq!(c.put("b", b"second").unwrap(), 204);
    assert_eq!(c.get("a").unwrap().map(|v| v.len()), Some(10_000));
    assert_eq!(c.get("missing").unwrap(), None);
    assert_eq!(c.delete("b").unwrap(), 204);
    assert_eq!(c.list("").unwrap(), ["a"]);
    drop(c);

    let body = scrape(mon);
    for (op, n) in [("get", 2.0), ("put", 3.0), ("delete", 1.0), ("list", 1.0)] {
        assert_eq!(
            value(&body, &format!("kv_operations_total{{op=\"{op}\"}}")),
            Some(n),
            "{op}: {body}"
        );
    }
    assert_eq!(must(&body, "kv_failures_total{op=\"any\"}"), 0.0, "{body}");
    assert_eq!(must(&body, "kv_keys"), 1.0, "{body}");
    let used = must(&body, "kv_log_bytes{kind=\"used\"}");
    // The log holds at least the 10 kB value, and stays within its region.
    assert!(used >= used_idle + 10_000.0 && used < capacity, "{body}");
    // Every write commit flushed the disk; nothing is left in flight when idle.
    assert!(
        must(&body, "oasis_block_requests_total{kind=\"flush\"}") >= 3.0,
        "{body}"
    );
    assert!(
        must(&body, "oasis_block_bytes_total{kind=\"write\"}") >= 10_000.0,
        "{body}"
    );
    assert_eq!(must(&body, "oasis_block_requests_in_flight"), 0.0, "{body}");
    assert_eq!(
        value(
            &body,
            "oasis_http_requests_total{method=\"PUT\",code=\"2xx\"}"
        ),
        Some(3.0),
        "{body}"
    );
    check_queues(&body);
    promtool_accepts(&promtool, &body);
    drop(guest);
    let _ = std::fs::remove_file(disk);
}

#[test]
fn dns_metrics_count_queries_by_type_and_rcode() {
    if qemu().is_none() {
        return;
    }
    let Some(promtool) = promtool() else { return };
    let (guest, ports, mon) = boot("dns", &[53], "", None);
    let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let idle = scrape(mon);
    assert_eq!(must(&idle, "dns_queries_total{type=\"A\"}"), 0.0, "{idle}");

    // Pipelined on one TCP connection: each query is answered exactly once.
    let queries = [
        query("example.org.", Rtype::A, None, 1),
        query("www.example.org.", Rtype::A, None, 2),
        query("example.org.", Rtype::MX, None, 3),
        query("chat.example.net.", Rtype::AAAA, None, 4),
        query("nope.example.org.", Rtype::A, None, 5),
        query("example.com.", Rtype::A, None, 6),
        query("example.org.", Rtype::SOA, None, 7),
    ];
    let refs: Vec<&[u8]> = queries.iter().map(Vec::as_slice).collect();
    let rcodes: Vec<Rcode> = tcp_ask_many(addr, &refs)
        .into_iter()
        .map(|r| {
            Message::parse(&r.expect("a response"))
                .expect("parses")
                .rcode()
        })
        .collect();
    assert_eq!(
        rcodes,
        [
            Rcode::NOERROR,
            Rcode::NOERROR,
            Rcode::NOERROR,
            Rcode::NOERROR,
            Rcode::NXDOMAIN,
            Rcode::REFUSED,
            Rcode::NOERROR
        ]
    );

    let body = scrape(mon);
    for (ty, n) in [
        ("A", 4.0),
        ("MX", 1.0),
        ("AAAA", 1.0),
        ("SOA", 1.0),
        ("TXT", 0.0),
    ] {
        assert_eq!(
            value(&body, &format!("dns_queries_total{{type=\"{ty}\"}}")),
            Some(n),
            "{ty}: {body}"
        );
    }
    for (rcode, n) in [
        ("NOERROR", 5.0),
        ("NXDOMAIN", 1.0),
        ("REFUSED", 1.0),
        ("SERVFAIL", 0.0),
    ] {
        assert_eq!(
            value(&body, &format!("dns_responses_total{{rcode=\"{rcode}\"}}")),
            Some(n),
            "{rcode}: {body}"
        );
    }
    check_queues(&body);
    promtool_accepts(&promtool, &body);
    drop(guest);
}

/// A fresh directory under the system temp dir.
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("oasis-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
