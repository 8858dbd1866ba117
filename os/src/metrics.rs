//! Prometheus metrics: `--metrics-port=PORT` (feature `metrics`, which the network
//! appliances turn on; off at run time by default) serves the text
//! exposition format (version 0.0.4) at `GET /metrics`, and `GET /healthz`, on a
//! port of its own, for every appliance.
//!
//! What is exported: uptime; heap size, in use and high-water mark; TCP connections
//! live, refused (SYN answered with RST), evicted and refused at accept; TCP segments
//! sent, retransmitted, and resets both ways (`oasis_net::tcpstats`); frames in and
//! out and dropped; the NIC's virtqueue occupancy; block requests, bytes, errors and
//! requests in flight; HTTP requests by method and status class, response bytes and
//! a latency histogram (appliances serving through [`crate::http`]); and whatever
//! the appliance registers ([`register`]: [`CounterFamily`], [`Gauge`],
//! [`GaugeFamily`], e.g. DNS queries by type, kv store usage).
//!
//! Recording costs one relaxed atomic add: no lock, no allocation. Rendering (per
//! scrape) allocates the response.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use core::time::Duration;

/// A count that only goes up. `static`, lock-free, allocation-free.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Values under one metric name, one per value of a label (`N` fixed values): what
/// [`CounterFamily`] and [`GaugeFamily`] share.
#[derive(Debug)]
struct Labelled<const N: usize> {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: [&'static str; N],
    cells: [AtomicU64; N],
}

impl<const N: usize> Labelled<N> {
    const fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: [&'static str; N],
    ) -> Self {
        Labelled {
            name,
            help,
            label,
            values,
            cells: [const { AtomicU64::new(0) }; N],
        }
    }

    fn render(&self, out: &mut String, kind: &str) {
        header(out, self.name, kind, self.help);
        for (v, c) in self.values.iter().zip(&self.cells) {
            let _ = writeln!(
                out,
                "{}{{{}=\"{v}\"}} {}",
                self.name,
                self.label,
                c.load(Relaxed)
            );
        }
    }
}

/// Counters under one metric name, one per value of a label (`N` fixed values, the
/// last usually `"other"`), e.g. DNS queries by type. Declare it `static` and
/// [`register`] it once.
#[derive(Debug)]
pub struct CounterFamily<const N: usize>(Labelled<N>);

impl<const N: usize> CounterFamily<N> {
    /// A family `name{label="values[i]"}`, all at zero.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: [&'static str; N],
    ) -> Self {
        CounterFamily(Labelled::new(name, help, label, values))
    }

    /// Adds one to the counter of label value `i` (the last one when out of range).
    pub fn inc(&self, i: usize) {
        if let Some(c) = self.0.cells.get(i).or(self.0.cells.last()) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Adds one to the counter whose label value is `value` (the last when none).
    pub fn inc_value(&self, value: &str) {
        let i = self.0.values.iter().position(|v| *v == value).unwrap_or(N);
        self.inc(i);
    }
}

/// Something that writes its metrics in the exposition format.
pub trait Render: Sync {
    /// Appends this metric's `# HELP`, `# TYPE` and sample lines.
    fn render(&self, out: &mut String);
}

impl<const N: usize> Render for CounterFamily<N> {
    fn render(&self, out: &mut String) {
        self.0.render(out, "counter");
    }
}

/// A value that goes up and down (a level, a size), named and `static`; set it with
/// one relaxed store. Declare it `static` and [`register`] it once.
#[derive(Debug)]
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Gauge {
    /// A gauge `name` at zero.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Gauge {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.value.store(v, Relaxed);
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }
}

impl Render for Gauge {
    fn render(&self, out: &mut String) {
        sample(out, self.name, "gauge", self.help, self.get());
    }
}

/// Gauges under one metric name, one per value of a label (`N` fixed values), e.g.
/// a store's bytes used and capacity. Declare it `static` and [`register`] it once.
#[derive(Debug)]
pub struct GaugeFamily<const N: usize>(Labelled<N>);

impl<const N: usize> GaugeFamily<N> {
    /// A family `name{label="values[i]"}`, all at zero.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: [&'static str; N],
    ) -> Self {
        GaugeFamily(Labelled::new(name, help, label, values))
    }

    /// Sets the gauge of label value `i` (ignored when out of range).
    pub fn set(&self, i: usize, v: u64) {
        if let Some(g) = self.0.cells.get(i) {
            g.store(v, Relaxed);
        }
    }
}

impl<const N: usize> Render for GaugeFamily<N> {
    fn render(&self, out: &mut String) {
        self.0.render(out, "gauge");
    }
}

static REGISTERED: spin::Mutex<Vec<&'static dyn Render>> = spin::Mutex::new(Vec::new());

/// Adds an appliance's metrics to the exposition (once, at start).
pub fn register(metric: &'static dyn Render) {
    REGISTERED.lock().push(metric);
}

/// Latency buckets (upper bounds, microseconds), as Prometheus `le` labels.
const BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// A latency histogram with fixed buckets: relaxed atomics only.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS_US.len()],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(b) = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .and_then(|i| self.buckets.get(i))
        {
            b.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        for (b, n) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}.{:06}\"}} {cumulative}",
                b / 1_000_000,
                b % 1_000_000
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed);
        let _ = writeln!(out, "{name}_sum {}.{:06}", sum / 1_000_000, sum % 1_000_000);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// HTTP methods counted by name; the rest as `other`.
const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "other"];
/// Status classes.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// What the HTTP driver records.
pub(crate) struct HttpMetrics {
    requests: [[Counter; CLASSES.len()]; METHODS.len()],
    response_bytes: Counter,
    latency: Histogram,
}

pub(crate) static HTTP: HttpMetrics = HttpMetrics {
    requests: [const { [const { Counter::new() }; CLASSES.len()] }; METHODS.len()],
    response_bytes: Counter::new(),
    latency: Histogram::new(),
};

// Recorded by `oasis::http` (feature `http`); exported either way.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
impl HttpMetrics {
    /// One response: its request's method, its status code and body length.
    pub(crate) fn response(&self, method: &str, status: u16, body: usize) {
        let m = METHODS
            .iter()
            .position(|x| *x == method)
            .unwrap_or(METHODS.len() - 1);
        let c = usize::from((status / 100).clamp(1, 5) - 1);
        if let Some(counter) = self.requests.get(m).and_then(|row| row.get(c)) {
            counter.inc();
        }
        self.response_bytes.add(body as u64);
    }

    /// Time from a request's arrival to its response handed to the socket.
    pub(crate) fn latency(&self, d: Duration) {
        self.latency.observe(d);
    }
}

/// Connections [`crate::net::serve`] refused at accept, by reason.
pub(crate) static ACCEPT_REFUSED: CounterFamily<2> = CounterFamily::new(
    "oasis_accept_refused_total",
    "Connections refused at accept (after the TCP handshake), by reason.",
    "reason",
    ["limit", "memory"],
);

/// Block requests by kind (read, write, flush): counts, bytes, errors.
pub(crate) struct BlockMetrics {
    requests: [Counter; 3],
    bytes: [Counter; 2],
    errors: [Counter; 3],
    /// Requests issued and not yet finished (each holds a virtqueue chain, or waits
    /// for one).
    in_flight: AtomicU64,
}

pub(crate) static BLOCK: BlockMetrics = BlockMetrics {
    requests: [const { Counter::new() }; 3],
    bytes: [const { Counter::new() }; 2],
    errors: [const { Counter::new() }; 3],
    in_flight: AtomicU64::new(0),
};

/// One block request in flight, from [`BlockMetrics::start`] until dropped (finished
/// or abandoned).
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl BlockMetrics {
    /// A request starts; it counts as in flight until the guard is dropped.
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    /// One finished request of kind `k` (0 read, 1 write, 2 flush).
    pub(crate) fn done(&self, k: usize, bytes: usize, ok: bool) {
        if let Some(c) = self.requests.get(k) {
            c.inc();
        }
        if let Some(c) = self.bytes.get(k) {
            c.add(bytes as u64);
        }
        if !ok && let Some(c) = self.errors.get(k) {
            c.inc();
        }
    }

    fn render(&self, out: &mut String) {
        for (name, help, counters) in [
            (
                "oasis_block_requests_total",
                "Block requests finished, by kind.",
                &self.requests[..],
            ),
            (
                "oasis_block_errors_total",
                "Block requests that failed, by kind.",
                &self.errors[..],
            ),
            (
                "oasis_block_bytes_total",
                "Bytes read and written on block devices.",
                &self.bytes[..],
            ),
        ] {
            header(out, name, "counter", help);
            for (kind, c) in ["read", "write", "flush"].iter().zip(counters) {
                let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {}", c.get());
            }
        }
        sample(
            out,
            "oasis_block_requests_in_flight",
            "gauge",
            "Block requests issued and not yet finished, all disks together.",
            self.in_flight.load(Relaxed),
        );
    }
}

/// Whether `--metrics-port` was given: the network stack then counts TCP
/// retransmissions and resets (`oasis_net::NetConfig::tcp_stats`), which it skips
/// otherwise (a header glance per frame).
pub(crate) static SERVED: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// TLS connections reset before their handshake because the heap could not hold it.
pub(crate) static TLS_REFUSED: Counter = Counter::new();

/// Writes a metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one gauge or counter with its help and type lines.
fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: impl core::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// TCP segment, retransmission and reset counters (`oasis_net::tcpstats`).
fn tcp_counts(out: &mut String, t: &oasis_net::tcpstats::TcpCounts) {
    sample(
        out,
        "oasis_tcp_segments_sent_total",
        "counter",
        "TCP segments sent, read from the frames handed to the NIC.",
        t.segments_sent,
    );
    sample(
        out,
        "oasis_tcp_retransmitted_segments_total",
        "counter",
        "TCP segments sent again: measured from the frames handed to the NIC, a data, SYN or FIN segment whose sequence end is not beyond the highest already sent on its connection (keep-alive probes excluded; connections beyond a 512-entry table may be missed, so it errs low).",
        t.retransmits,
    );
    header(
        out,
        "oasis_tcp_resets_total",
        "counter",
        "TCP segments with RST, read from the frames sent to and received from the NIC.",
    );
    for (dir, v) in [("sent", t.resets_sent), ("received", t.resets_received)] {
        let _ = writeln!(out, "oasis_tcp_resets_total{{dir=\"{dir}\"}} {v}");
    }
}

/// Virtqueue occupancy of the NIC (devices with descriptor queues only).
fn queue_gauges(out: &mut String, q: &oasis_devices::QueueOccupancy) {
    for (name, help, v) in [
        (
            "oasis_net_rx_buffers_posted",
            "Receive buffers posted to the NIC's receive queue and not yet taken back, after the last network poll.",
            q.rx_posted,
        ),
        (
            "oasis_net_tx_descriptors_in_flight",
            "Transmit descriptors handed to the NIC and not yet reclaimed, after the last network poll.",
            q.tx_in_flight,
        ),
    ] {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name}{{nic=\"0\"}} {v}");
    }
    header(
        out,
        "oasis_net_queue_size",
        "gauge",
        "Size of the NIC's virtqueues, in descriptors.",
    );
    for (queue, v) in [("rx", q.rx_size), ("tx", q.tx_size)] {
        let _ = writeln!(
            out,
            "oasis_net_queue_size{{nic=\"0\",queue=\"{queue}\"}} {v}"
        );
    }
}

/// The whole exposition, as of now.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub fn render() -> String {
    let mut out = String::new();
    let up = oasis_runtime::now().as_nanos();
    sample(
        &mut out,
        "oasis_uptime_seconds",
        "gauge",
        "Seconds since boot.",
        format_args!(
            "{}.{:03}",
            up / 1_000_000_000,
            up % 1_000_000_000 / 1_000_000
        ),
    );
    if let Some(h) = crate::heap_usage() {
        header(
            &mut out,
            "oasis_heap_bytes",
            "gauge",
            "The heap: its size, bytes in use, and the high-water mark.",
        );
        for (kind, v) in [("size", h.size), ("used", h.used), ("peak", h.peak)] {
            let _ = writeln!(out, "oasis_heap_bytes{{kind=\"{kind}\"}} {v}");
        }
    }
    if let Some(s) = crate::net::stats() {
        sample(
            &mut out,
            "oasis_tcp_connections",
            "gauge",
            "Live TCP connections (handshaking, queued, open, closing).",
            s.tcp_connections,
        );
        sample(
            &mut out,
            "oasis_tcp_refused_total",
            "counter",
            "Connection requests answered with RST: no LISTEN slot (limit, backlog or memory).",
            s.tcp_refused,
        );
        sample(
            &mut out,
            "oasis_tcp_evicted_total",
            "counter",
            "Idle accepted connections reset to admit new clients (memory or limit).",
            s.tcp_evicted,
        );
        sample(
            &mut out,
            "oasis_udp_dropped_total",
            "counter",
            "UDP datagrams dropped because their next hop never answered ARP.",
            s.udp_dropped,
        );
        header(
            &mut out,
            "oasis_net_frames_total",
            "counter",
            "Ethernet frames through the network device (rx_bad_checksum: received frames the stack dropped for a bad TCP/UDP checksum it checked itself, on devices with checksum offload).",
        );
        let f = s.frames;
        for (dir, v) in [
            ("rx", f.rx_frames),
            ("tx", f.tx_frames),
            ("tx_dropped", f.tx_dropped),
            ("rx_bad_checksum", f.rx_bad_checksum),
        ] {
            let _ = writeln!(out, "oasis_net_frames_total{{dir=\"{dir}\"}} {v}");
        }
        tcp_counts(&mut out, &f.tcp);
        if let Some(q) = s.queues {
            queue_gauges(&mut out, &q);
        }
    }
    ACCEPT_REFUSED.render(&mut out);
    sample(
        &mut out,
        "oasis_tls_refused_total",
        "counter",
        "TLS connections reset before the handshake: no heap for it.",
        TLS_REFUSED.get(),
    );
    BLOCK.render(&mut out);
    let d = crate::block::Disk::stats();
    sample(
        &mut out,
        "oasis_block_interrupt_wakeups_total",
        "counter",
        "Executor turns in which a disk interrupt woke waiting requests.",
        d.interrupt_wakeups,
    );
    header(
        &mut out,
        "oasis_http_requests_total",
        "counter",
        "HTTP responses by request method and status class.",
    );
    for (m, row) in METHODS.iter().zip(&HTTP.requests) {
        for (c, n) in CLASSES.iter().zip(row) {
            let _ = writeln!(
                out,
                "oasis_http_requests_total{{method=\"{m}\",code=\"{c}\"}} {}",
                n.get()
            );
        }
    }
    sample(
        &mut out,
        "oasis_http_response_body_bytes_total",
        "counter",
        "HTTP response body bytes.",
        HTTP.response_bytes.get(),
    );
    HTTP.latency.render(
        "oasis_http_request_duration_seconds",
        "Time from a request's arrival to its response handed to the socket.",
        &mut out,
    );
    for m in REGISTERED.lock().iter() {
        m.render(&mut out);
    }
    out
}

/// Serves `/metrics` and `/healthz` on `port` until the program ends.
#[cfg(feature = "metrics")]
pub(crate) async fn serve(os: crate::Os, port: u16) {
    let net = match os.net().await {
        Ok(n) => n,
        Err(e) => return log::warn!("metrics: no network: {e}"),
    };
    let listener = match net.tcp_listen(port) {
        Ok(l) => l,
        Err(e) => return log::warn!("metrics: cannot listen on port {port}: {e}"),
    };
    log::info!("metrics: http://{}:{port}/metrics", net.address());
    crate::net::serve(listener, 16, crate::net::Refusal::Reset, |stream, _| {
        answer(stream)
    })
    .await;
}

/// Reads one request head (≤ 2 KiB, 5 s) and answers it; `Connection: close`.
#[cfg(feature = "metrics")]
async fn answer(mut stream: crate::net::TcpStream) {
    let mut head = [0u8; 2048];
    let mut len = 0;
    let got = crate::time::timeout(Duration::from_secs(5), async {
        while len < head.len() {
            match stream.read(head.get_mut(len..).unwrap_or_default()).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => len += n,
            }
            if head
                .get(..len)
                .is_some_and(|h| h.windows(4).any(|w| w == b"\r\n\r\n"))
            {
                return true;
            }
        }
        false
    })
    .await;
    let request = head.get(..len).unwrap_or_default();
    let (status, ctype, body) = match got {
        Ok(true)
            if request.starts_with(b"GET /metrics ") || request.starts_with(b"GET /metrics?") =>
        {
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render(),
            )
        }
        Ok(true) if request.starts_with(b"GET /healthz ") => {
            ("200 OK", "text/plain", String::from("ok\n"))
        }
        Ok(true) => ("404 Not Found", "text/plain", String::from("not found\n")),
        _ => (
            "400 Bad Request",
            "text/plain",
            String::from("bad request\n"),
        ),
    };
    let mut resp = String::new();
    let _ = write!(
        resp,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_sum_in_seconds() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(3_000));
        h.observe(Duration::from_secs(5));
        let mut out = String::new();
        h.render("x", "help", &mut out);
        assert!(out.contains("x_bucket{le=\"0.000100\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005000\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"1.000000\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_sum 5.003050\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
    }

    #[test]
    fn families_count_by_label_and_overflow_to_the_last() {
        static F: CounterFamily<3> =
            CounterFamily::new("q_total", "Queries.", "type", ["A", "AAAA", "other"]);
        F.inc_value("A");
        F.inc_value("AAAA");
        F.inc_value("MX");
        F.inc(7);
        let mut out = String::new();
        F.render(&mut out);
        assert!(out.contains("q_total{type=\"A\"} 1\n"));
        assert!(out.contains("q_total{type=\"AAAA\"} 1\n"));
        assert!(out.contains("q_total{type=\"other\"} 2\n"));
        assert!(out.starts_with("# HELP q_total Queries.\n# TYPE q_total counter\n"));
    }

    #[test]
    fn tcp_and_queue_figures_render_with_their_labels() {
        let mut out = String::new();
        tcp_counts(
            &mut out,
            &oasis_net::tcpstats::TcpCounts {
                segments_sent: 9,
                retransmits: 2,
                resets_sent: 3,
                resets_received: 4,
            },
        );
        queue_gauges(
            &mut out,
            &oasis_devices::QueueOccupancy {
                rx_posted: 256,
                rx_size: 256,
                tx_in_flight: 5,
                tx_size: 256,
            },
        );
        for line in [
            "oasis_tcp_segments_sent_total 9\n",
            "oasis_tcp_retransmitted_segments_total 2\n",
            "oasis_tcp_resets_total{dir=\"sent\"} 3\n",
            "oasis_tcp_resets_total{dir=\"received\"} 4\n",
            "oasis_net_rx_buffers_posted{nic=\"0\"} 256\n",
            "oasis_net_tx_descriptors_in_flight{nic=\"0\"} 5\n",
            "oasis_net_queue_size{nic=\"0\",queue=\"tx\"} 256\n",
            "# TYPE oasis_net_tx_descriptors_in_flight gauge\n",
        ] {
            assert!(out.contains(line), "{line} missing from {out}");
        }
    }

    #[test]
    fn block_requests_are_in_flight_until_their_guard_drops() {
        let before = BLOCK.in_flight.load(Relaxed);
        let g = BLOCK.start();
        assert_eq!(BLOCK.in_flight.load(Relaxed), before + 1);
        drop(g);
        assert_eq!(BLOCK.in_flight.load(Relaxed), before);
    }

    #[test]
    fn gauges_hold_the_last_value_set() {
        static G: Gauge = Gauge::new("keys", "Keys.");
        static F: GaugeFamily<2> =
            GaugeFamily::new("bytes", "Bytes.", "kind", ["used", "capacity"]);
        G.set(5);
        G.set(3);
        F.set(0, 10);
        F.set(1, 20);
        F.set(2, 30);
        let mut out = String::new();
        G.render(&mut out);
        F.render(&mut out);
        assert_eq!(
            out,
            "# HELP keys Keys.\n# TYPE keys gauge\nkeys 3\n\
             # HELP bytes Bytes.\n# TYPE bytes gauge\n\
             bytes{kind=\"used\"} 10\nbytes{kind=\"capacity\"} 20\n"
        );
    }

    #[test]
    fn http_responses_land_in_their_method_and_class() {
        let m = HttpMetrics {
            requests: [const { [const { Counter::new() }; CLASSES.len()] }; METHODS.len()],
            response_bytes: Counter::new(),
            latency: Histogram::new(),
        };
        m.response("GET", 200, 10);
        m.response("BREW", 418, 5);
        m.response("HEAD", 999, 0);
        assert_eq!(m.requests[0][1].get(), 1);
        assert_eq!(m.requests[5][3].get(), 1);
        assert_eq!(m.requests[1][4].get(), 1);
        assert_eq!(m.response_bytes.get(), 15);
    }
}
