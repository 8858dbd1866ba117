//! `--metrics-port`: `www` under QEMU exports Prometheus metrics that count what it
//! served, `promtool check metrics` accepts them, and a real Prometheus server
//! scrapes them. Needs QEMU and Prometheus (`promtool`, `prometheus`): skipped when
//! missing, failed when `OASIS_REQUIRE_QEMU=1`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oasis_e2e::wwwtests::{get, www_image};
use oasis_e2e::{BOOT_TIMEOUT, Guest, Net, PortForward, Vm, find_program, missing, qemu};

/// `GET path` on `addr` with `Connection: close`; the whole response as text.
fn fetch(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of the sample line `name` (exact, labels included).
fn value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
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
    let (http, metrics) = (oasis_testkit::free_port(), oasis_testkit::free_port());
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

    // promtool's linter reads the exposition from stdin.
    let mut check = Command::new(&promtool)
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
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

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

/// A fresh directory under the system temp dir.
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("oasis-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
