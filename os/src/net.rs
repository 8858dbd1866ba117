//! Networking for applications: one API over two backends.
//!
//! - **Stack**: our smoltcp-based stack ([`oasis_net`]) over a device: virtio-net on
//!   `kvm`, a TAP device on `hosted` with `--net=tap:NAME`.
//! - **Host**: the host kernel's sockets (`hosted` default: `cargo run` serves on
//!   127.0.0.1 with no privileges; `--bind=IP` to change). `hosted` only.
//!
//! [`Net`], [`TcpListener`], [`TcpStream`] and [`UdpSocket`] are opaque: each wraps
//! the platform's backend type and calls one crate-private backend trait (see
//! `net/backend.rs`), so every method here is written once for both backends.
//!
//! Boot arguments: `--ipv4=ADDR/PREFIX` and `--ipv4-gateway=ADDR` configure the
//! stack statically; without them it asks DHCP. [`Os::net`](crate::Os::net) sets the
//! network up on first use and waits until it has an address.

use core::fmt;
use core::future::Future;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

pub(crate) mod backend;

use crate::platform::{self, NetBackend};
use backend::{Backend, ListenerOps, StreamOps, UdpOps};

/// Why a network operation failed.
#[derive(Debug)]
pub enum NetError {
    /// From our TCP/IP stack.
    Stack(oasis_net::NetError),
    /// From the host's sockets. This variant exists on `hosted` only: on `kvm` there
    /// is no host kernel, so a match needs no arm for it there.
    #[cfg(not(target_os = "none"))]
    Host(oasis_hosted::HostNetError),
    /// The machine has no network device (run with `--net user`, `--port` or a TAP).
    NoDevice,
    /// The network device could not be initialised.
    Device(alloc::string::String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Stack(e) => e.fmt(f),
            #[cfg(not(target_os = "none"))]
            NetError::Host(e) => e.fmt(f),
            NetError::NoDevice => f.write_str("no network device: boot the VM with a virtio-net device (cargo oasis run --net user or --port HOST:GUEST)"),
            NetError::Device(e) => write!(f, "network device: {e}"),
        }
    }
}

impl core::error::Error for NetError {}

impl From<oasis_net::NetError> for NetError {
    fn from(e: oasis_net::NetError) -> Self {
        NetError::Stack(e)
    }
}

impl embedded_io::Error for NetError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            NetError::Stack(e) => embedded_io::Error::kind(e),
            #[cfg(not(target_os = "none"))]
            NetError::Host(e) => embedded_io::Error::kind(e),
            NetError::NoDevice | NetError::Device(_) => embedded_io::ErrorKind::NotConnected,
        }
    }
}

/// The application's network: create listeners and sockets. Cheap to clone.
#[derive(Clone)]
pub struct Net(NetBackend);

impl Net {
    /// Listens for TCP connections on `port` on every local address.
    pub fn tcp_listen(&self, port: u16) -> Result<TcpListener, NetError> {
        Backend::tcp_listen(&self.0, port).map(TcpListener)
    }

    /// Binds a UDP socket to `port`.
    pub fn udp_bind(&self, port: u16) -> Result<UdpSocket, NetError> {
        Backend::udp_bind(&self.0, port).map(UdpSocket)
    }

    /// Opens a TCP connection. Cancel-safe: dropping the future abandons the attempt.
    pub async fn tcp_connect(&self, addr: SocketAddr) -> Result<TcpStream, NetError> {
        Backend::tcp_connect(&self.0, addr).await.map(TcpStream)
    }

    /// This host's address (the configured IPv4, or the host bind address).
    pub fn address(&self) -> IpAddr {
        Backend::address(&self.0)
    }
}

/// A listening TCP socket with a backlog. Dropping it stops listening.
pub struct TcpListener(<NetBackend as Backend>::Listener);

impl TcpListener {
    /// Waits for the next connection. Cancel-safe: a connection is taken off the
    /// queue only when the future completes.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), NetError> {
        let (stream, peer) = ListenerOps::accept(&self.0).await?;
        Ok((TcpStream(stream), peer))
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        ListenerOps::local_addr(&self.0)
    }
}

/// What [`serve`] does with a connection beyond its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Reset it (RST).
    Reset,
    /// Send these bytes (e.g. an HTTP 503), then close it.
    Reply(&'static [u8]),
}

/// Bytes beyond a connection task's future that running it costs (its executor slot,
/// waker, join state, timers and the first buffers it allocates).
const TASK_SLACK: usize = 2 * 1024;

/// Answers a connection [`serve`] will not take, then drops it.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    match refusal {
        Refusal::Reset => stream.abort(),
        Refusal::Reply(bytes) => {
            // A fresh connection's send buffer takes a short reply at once; never
            // wait for a client that does not read.
            let _ = crate::time::timeout(Duration::from_millis(10), stream.write_all(bytes)).await;
        }
    }
}

/// Accepts connections on `listener` for good and runs `handler(stream, peer)` for
/// each as its own task, at most `max_connections` at once (`usize::MAX`: as many as
/// the stack admits: its own limit and memory admission refuse SYNs first). A
/// connection beyond the limit, or whose task would not fit the heap (it may use half
/// of the stack's reserve, no more), gets `refusal` and is dropped without a task. Accept
/// errors are logged (rate-limited: a flood must not turn into a flood of console
/// lines) and accepting goes on; returns only when the listener is closed.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    refusal: Refusal,
    mut handler: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicUsize, Ordering};

    // A backend without admission of its own (host sockets) keeps the stack's default.
    let max_connections =
        if !ListenerOps::admits_connections(&listener.0) && max_connections == usize::MAX {
            DEFAULT_MAX_CONNECTIONS
        } else {
            max_connections
        };
    let active = Arc::new(AtomicUsize::new(0));
    let mut refused: u64 = 0;
    let mut failed: u64 = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(NetError::Stack(oasis_net::NetError::InvalidState)) => return,
            Err(e) => {
                failed += 1;
                if failed.is_power_of_two() {
                    log::warn!("accept on {}: {e} ({failed} so far)", listener.local_addr());
                }
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= max_connections {
            crate::metrics::ACCEPT_REFUSED.inc(0);
            refused += 1;
            if refused.is_power_of_two() {
                log::warn!(
                    "refusing {peer}: {max_connections} connections open ({refused} refused so far)"
                );
            }
            refuse(stream, refusal).await;
            continue;
        }
        // Admission at accept: the stack charged the connection's buffers and an
        // estimate of its task; the task itself (its future, `Fut`) must fit too.
        // Beyond this point the application may dip into half of the reserve.
        if !crate::heap_has_room_in_reserve(core::mem::size_of::<Fut>() + TASK_SLACK) {
            crate::metrics::ACCEPT_REFUSED.inc(1);
            refused += 1;
            if refused.is_power_of_two() {
                log::warn!("refusing {peer}: out of memory ({refused} refused so far)");
            }
            refuse(stream, refusal).await;
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let done = active.clone();
        // `map` rather than an async block around the handler's future: see
        // `oasis_runtime::spawn` (an async wrapper would double the task's size).
        let conn = futures_util::FutureExt::map(handler(stream, peer), move |()| {
            done.fetch_sub(1, Ordering::Relaxed);
        });
        oasis_runtime::spawn(conn);
    }
}

/// A TCP connection. Dropping it closes gracefully; [`abort`](Self::abort) resets.
///
/// Implements `embedded-io-async`'s `Read` and `Write`, so no_std crates written
/// against those traits run on it, on every target. [`split`](Self::split) gives a
/// read half and a write half that can be driven at once (one task `join`ing both).
///
/// Cancellation: `read`, `write` and `flush` are cancel-safe (dropping the future
/// loses no data and queues nothing); `write_all` may have queued part of the buffer
/// when dropped.
pub struct TcpStream(<NetBackend as Backend>::Stream);

impl TcpStream {
    /// Reads into `buf`; `Ok(0)` means the peer closed its side.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.read_shared(buf).await
    }

    async fn read_shared(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        StreamOps::read(&self.0, buf).await
    }

    /// Writes some of `buf`; returns how much was taken.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.write_shared(buf).await
    }

    async fn write_shared(&self, buf: &[u8]) -> Result<usize, NetError> {
        StreamOps::write(&self.0, buf).await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write_shared(buf).await?;
            buf = buf.get(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Waits until everything written has been sent.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.flush_shared().await
    }

    async fn flush_shared(&self) -> Result<(), NetError> {
        StreamOps::flush(&self.0).await
    }

    /// Closes the sending side (FIN); reading still works.
    pub async fn shutdown(&mut self) -> Result<(), NetError> {
        StreamOps::shutdown(&mut self.0).await
    }

    /// Resets the connection (RST) and drops it.
    pub fn abort(self) {
        StreamOps::abort(self.0);
    }

    /// Splits the stream into a read half and a write half that borrow it, to read
    /// and write at once (e.g. `join` a copy in each direction).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        StreamOps::peer_addr(&self.0)
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        StreamOps::local_addr(&self.0)
    }

    /// TCP keepalive probes every `interval` (`None`: off).
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        StreamOps::set_keepalive(&self.0, interval);
    }

    /// An idle timeout: when the connection makes no progress for `timeout`, it
    /// fails with a timeout error (our stack resets the connection; host sockets fail
    /// the pending read or write). `None` (the default) waits forever. For a deadline
    /// on one operation, wrap it in [`oasis::time::timeout`](crate::time::timeout).
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        StreamOps::set_timeout(&self.0, timeout);
    }

    /// Disables Nagle's algorithm when `true`.
    pub fn set_nodelay(&self, nodelay: bool) {
        StreamOps::set_nodelay(&self.0, nodelay);
    }
}

/// The reading half of a [`TcpStream`] (see [`TcpStream::split`]).
pub struct ReadHalf<'a>(&'a TcpStream);

/// The writing half of a [`TcpStream`] (see [`TcpStream::split`]).
pub struct WriteHalf<'a>(&'a TcpStream);

impl ReadHalf<'_> {
    /// Reads into `buf`; `Ok(0)` means the peer closed its side. Cancel-safe.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.0.read_shared(buf).await
    }
}

impl WriteHalf<'_> {
    /// Writes some of `buf`; returns how much was taken. Cancel-safe.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.0.write_shared(buf).await
    }

    /// Waits until everything written has been sent.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        self.0.flush_shared().await
    }
}

impl embedded_io::ErrorType for TcpStream {
    type Error = NetError;
}

impl embedded_io_async::Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.read_shared(buf).await
    }
}

impl embedded_io_async::Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.write_shared(buf).await
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.flush_shared().await
    }
}

impl embedded_io::ErrorType for ReadHalf<'_> {
    type Error = NetError;
}

impl embedded_io_async::Read for ReadHalf<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.0.read_shared(buf).await
    }
}

impl embedded_io::ErrorType for WriteHalf<'_> {
    type Error = NetError;
}

impl embedded_io_async::Write for WriteHalf<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.0.write_shared(buf).await
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.0.flush_shared().await
    }
}

/// A UDP socket.
pub struct UdpSocket(<NetBackend as Backend>::Udp);

impl UdpSocket {
    /// Receives one datagram. Cancel-safe.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetError> {
        UdpOps::recv_from(&self.0, buf).await
    }

    /// Sends one datagram.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<(), NetError> {
        UdpOps::send_to(&self.0, buf, addr).await
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        UdpOps::local_addr(&self.0)
    }
}

/// Network options from the boot arguments, read before `main`.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetArgs {
    pub ipv4: Option<oasis_net::Ipv4Cidr>,
    pub gateway: Option<oasis_net::Ipv4Gateway>,
    /// Hosted: `tap:NAME` to run our stack over a TAP device.
    pub tap: Option<alloc::string::String>,
    /// Hosted socket backend: the address to bind.
    pub bind: Option<IpAddr>,
    /// Per-connection TCP buffer sizes and the connection limit of our stack.
    pub tcp_buffer: Option<usize>,
    pub max_connections: Option<usize>,
    pub backlog: Option<usize>,
    /// TCP delayed-ACK time in milliseconds (0: ACK at once; default
    /// [`oasis_net::DEFAULT_ACK_DELAY`]).
    pub ack_delay_ms: Option<u16>,
}

/// The longest delayed ACK `--tcp-ack-delay-ms` accepts (RFC 9293 §3.8.6.3: under
/// 0.5 s).
const MAX_ACK_DELAY_MS: u16 = 500;

pub use oasis_net::{Budget, DEFAULT_BACKLOG, DEFAULT_MAX_CONNECTIONS};

impl NetArgs {
    /// Takes the network options from the boot arguments (exits 64 on bad values).
    pub(crate) fn parse(p: &mut oasis_bootargs::ArgParser) -> Self {
        use crate::__private::usage_error;
        let tap = p
            .value::<alloc::string::String>(
                "net",
                "tap:NAME",
                "hosted: our TCP/IP stack over a TAP device instead of host sockets",
            )
            .unwrap_or_else(|e| usage_error(&e))
            .map(|v| match v.strip_prefix("tap:") {
                Some(name) => name.into(),
                None => usage_error(&alloc::format!("--net={v}: expected tap:NAME")),
            });
        NetArgs {
            ipv4: p
                .value("ipv4", "ADDR/PREFIX", "static IPv4 address (default: DHCP)")
                .unwrap_or_else(|e| usage_error(&e)),
            gateway: p
                .value("ipv4-gateway", "ADDR", "default IPv4 gateway (with --ipv4)")
                .unwrap_or_else(|e| usage_error(&e)),
            tap,
            bind: p
                .value(
                    "bind",
                    "IP",
                    "hosted: address host sockets listen on (default 127.0.0.1)",
                )
                .unwrap_or_else(|e| usage_error(&e)),
            tcp_buffer: p
                .value(
                    "tcp-buffer",
                    "BYTES",
                    "largest TCP receive and send buffer per connection; under memory pressure new connections get less, down to 1 KiB (default: heap / 2048, 16-256 KiB)",
                )
                .unwrap_or_else(|e| usage_error(&e)),
            backlog: p
                .value(
                    "tcp-backlog",
                    "N",
                    "half-open + unaccepted connections per listening port; more get RST (default 1024, at most the connection limit)",
                )
                .unwrap_or_else(|e| usage_error(&e)),
            max_connections: p
                .value(
                    "tcp-max-connections",
                    "N",
                    "live TCP connections at most; more get RST (default: as many as fit the heap at 5.6 KiB each after a 1/16 reserve, e.g. 10,700 in 64 MiB; hosted 2048)",
                )
                .unwrap_or_else(|e| usage_error(&e)),
            ack_delay_ms: p
                .value::<u16>(
                    "tcp-ack-delay-ms",
                    "MS",
                    "delay a TCP ACK up to MS ms so it rides on the reply (default 1; 0: ACK as soon as the data arrives; at most 500)",
                )
                .unwrap_or_else(|e| usage_error(&e))
                .inspect(|&ms| {
                    if ms > MAX_ACK_DELAY_MS {
                        usage_error(&alloc::format!(
                            "--tcp-ack-delay-ms={ms}: at most {MAX_ACK_DELAY_MS}"
                        ))
                    }
                }),
        }
    }
}

pub(crate) static ARGS: spin::Once<NetArgs> = spin::Once::new();
static NET: spin::Once<Net> = spin::Once::new();

/// Our stack's counters, once the network is up on it.
pub(crate) fn stats() -> Option<oasis_net::NetStats> {
    Backend::stats(&NET.get()?.0)
}

/// Sets the network up on first call (device, stack, DHCP) and waits for an address.
/// Held while the network is being set up, so a second caller (the metrics
/// server, an app task) waits for the first instead of finding no device.
static SETTING_UP: embassy_sync::mutex::Mutex<
    embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex,
    (),
> = embassy_sync::mutex::Mutex::new(());

pub(crate) async fn get(rng: crate::Rng) -> Result<Net, NetError> {
    if let Some(n) = NET.get() {
        return Ok(n.clone());
    }
    let _setting_up = SETTING_UP.lock().await;
    if let Some(n) = NET.get() {
        return Ok(n.clone());
    }
    let args = ARGS.get().cloned().unwrap_or_default();
    let mut config = match args.ipv4 {
        Some(cidr) => oasis_net::NetConfig::static_ipv4(cidr, args.gateway.map(|g| g.0)),
        None => oasis_net::NetConfig::default(),
    };
    match platform::get().heap_bytes() {
        Some(heap) => {
            let b = Budget::derive(heap, args.tcp_buffer, args.max_connections, args.backlog)
                .unwrap_or_else(|e| crate::__private::usage_error(&e));
            config.max_connections = b.max_connections;
            config.tcp_rx_buffer = b.tcp_buffer;
            config.backlog = b.backlog;
            config.heap_reserve = b.reserve;
        }
        None => {
            config.max_connections = args.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
            config.tcp_rx_buffer = args.tcp_buffer.unwrap_or(config.tcp_rx_buffer);
            config.backlog = args
                .backlog
                .unwrap_or(DEFAULT_BACKLOG)
                .min(config.max_connections);
        }
    }
    config.tcp_tx_buffer = config.tcp_rx_buffer;
    if let Some(ms) = args.ack_delay_ms {
        config.ack_delay =
            Some(core::time::Duration::from_millis(u64::from(ms))).filter(|d| !d.is_zero());
    }
    // Frame-level TCP counts cost a glance per frame: only when someone reads them.
    config.tcp_stats = crate::metrics::SERVED.load(core::sync::atomic::Ordering::Relaxed);
    config.tcp_buffer_min = config.tcp_buffer_min.min(config.tcp_rx_buffer);
    let net = match platform::open_net_device(args.tap.as_deref()) {
        Some(Ok(dev)) => {
            let handle = dev.install(config.clone(), rng.next_u64(), oasis_runtime::now())?;
            if args.ipv4.is_none() {
                log::info!("net: waiting for DHCP");
            }
            let addr = handle.wait_configured().await;
            log::info!("net: configured {addr}");
            log::debug!(target: "boot", "network configured ({addr})");
            crate::console::_print(format_args!(
                "net: up to {} connections in {} MiB (TCP buffers {} B to {} KiB each way, backlog {})\n",
                config.max_connections,
                platform::get()
                    .heap_bytes()
                    .map_or(0, |h| h.div_ceil(1 << 20)),
                config.tcp_buffer_min,
                config.tcp_rx_buffer / 1024,
                config.backlog
            ));
            Net(platform::stack_backend(handle))
        }
        Some(Err(e)) => return Err(e),
        None => match platform::host_net(args.bind) {
            Some(h) => Net(h),
            None => return Err(NetError::NoDevice),
        },
    };
    Ok(NET.call_once(|| net).clone())
}
