//! Oasis: what an application imports.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use oasis::prelude::*;
//!
//! #[oasis::main]
//! async fn main(os: Os) -> Result<(), AppError> {
//!     let mut args = os.args();
//!     let name: String = args.value_or("name", "world".into(), "NAME", "who to greet");
//!     args.finish();
//!     println!("hello, {name}");
//!     sleep(Duration::from_millis(100)).await;
//!     Ok(())
//! }
//! ```
//!
//! The same source builds for the `kvm` target (`x86_64-unknown-none`, a PVH
//! unikernel) and for the host (a Linux process). The platform is picked in
//! `platform.rs`, the only place that names a target. Applications are `#![no_std]`
//! `#![no_main]`: `alloc` types come from [`prelude`], the entry point from
//! [`main`](macro@main).
//!
//! Exit statuses: `Ok` → 0; `Err(e)` → prints `error: {e}`, 1; a panic → message,
//! location and backtrace, 101; bad arguments → 64; `--help` → usage, 0.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod args;
pub mod block;
mod console;
#[cfg(feature = "http")]
pub mod http;
mod logger;
pub mod metrics;
pub mod net;
mod platform;
mod rng;
#[cfg(feature = "tls")]
pub mod tls;

/// Storage (feature `storage`): the log-structured key-value store on a disk and
/// the read-only store over a tar image, both over [`block::Disk`].
#[cfg(feature = "storage")]
pub mod storage {
    pub use oasis_storage::*;
}

pub use args::Args;
pub use console::{_print, Console};
pub use oasis_macros::main;
pub use rng::Rng;

use alloc::string::String;
use core::future::Future;
use core::time::Duration;

/// Time: monotonic instants, sleeping, timeouts.
pub mod time {
    pub use core::time::Duration;
    pub use oasis_runtime::{Elapsed, Instant, Sleep, now, sleep, sleep_until, timeout};
}

/// Tasks.
pub mod task {
    pub use oasis_runtime::{JoinHandle, spawn, yield_now};
}

/// The usual imports for an application.
pub mod prelude {
    pub use crate::time::{Duration, Instant, sleep, timeout};
    pub use crate::{Os, print, println};
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// Re-exported for applications (`oasis::log::info!`).
pub use log;

/// Exit status for a usage error.
pub const EXIT_USAGE: u8 = oasis_bootargs::EXIT_USAGE;
/// Exit status when `main` returns `Err`.
pub const EXIT_FAILURE: u8 = 1;

/// The application's handle to the machine.
#[derive(Clone)]
pub struct Os {
    args: alloc::sync::Arc<spin::Mutex<Option<oasis_bootargs::ArgParser>>>,
}

impl Os {
    /// The application's arguments. Call once, before the first `.await`, then
    /// [`Args::finish`]; an application that never asks gets its arguments checked
    /// (and rejected if any were given) after its first step.
    pub fn args(&self) -> Args {
        let parser = self.args.lock().take();
        Args::new(parser)
    }

    /// Monotonic time since boot.
    pub fn now(&self) -> time::Instant {
        time::now()
    }

    /// Wall-clock time as a duration since the Unix epoch, when the machine knows it.
    pub fn wall_clock(&self) -> Option<Duration> {
        platform::get().wall_clock_nanos().map(Duration::from_nanos)
    }

    /// Time from the first instruction (PVH entry or process start) to `main`.
    pub fn boot_time(&self) -> Option<Duration> {
        platform::get().boot_nanos().map(Duration::from_nanos)
    }

    /// Runs `future` as a separate task.
    pub fn spawn<F>(&self, future: F) -> task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        task::spawn(future)
    }

    /// A cryptographically secure random generator (ChaCha12 seeded from the
    /// hardware). Exits with a clear message if the machine has no entropy source.
    pub fn rng(&self) -> Rng {
        Rng::get()
    }

    /// Ends the program now with `status`.
    pub fn exit(&self, status: u8) -> ! {
        platform::get().exit(status)
    }

    /// The network, set up on first use: virtio-net and our TCP/IP stack on `kvm`
    /// (static `--ipv4=`/`--ipv4-gateway=` or DHCP), host sockets on `hosted` (or
    /// our stack over a TAP device with `--net=tap:NAME`). Waits until configured.
    pub async fn net(&self) -> Result<net::Net, net::NetError> {
        net::get(self.rng()).await
    }

    /// The machine's block devices, handed out once (a second call returns
    /// [`block::DiskError::Taken`]): virtio-blk on `kvm`, the `--disk=FILE[:ro]`
    /// files on `hosted`. See [`block`].
    pub fn disks(&self) -> Result<alloc::vec::Vec<block::Disk>, block::DiskError> {
        block::take_all()
    }

    /// The first block device (the others are dropped); see [`Os::disks`].
    pub fn disk(&self) -> Result<block::Disk, block::DiskError> {
        block::take_all()?
            .into_iter()
            .next()
            .ok_or(block::DiskError::NoDisk)
    }

    /// A short description of the platform (for logs).
    pub fn platform_report(&self) -> String {
        platform::report()
    }
}

/// The heap's size, use and high-water mark, where the platform measures them
/// (`kvm`); `None` on hosted.
pub fn heap_usage() -> Option<oasis_devices::HeapUsage> {
    oasis_runtime::heap_usage()
}

/// Whether the heap has `bytes` free beyond the network stack's reserve, so work
/// that needs that much at once may start (always `true` where the heap is not
/// measured). For admission control in applications: refuse (e.g. with a 503)
/// rather than let an allocation fail.
pub fn heap_has_room(bytes: usize) -> bool {
    heap_usage().is_none_or(|u| u.free() >= bytes.saturating_add(net::Budget::reserve_for(u.size)))
}

/// Like [`heap_has_room`], but the application may use half of the reserve: for
/// work the stack has already admitted (a connection's task at accept).
pub(crate) fn heap_has_room_in_reserve(bytes: usize) -> bool {
    heap_usage()
        .is_none_or(|u| u.free() >= bytes.saturating_add(net::Budget::reserve_for(u.size) / 2))
}

/// Synchronisation between tasks, from `embassy-sync` (no_std, the embedded
/// ecosystem's): bounded [`Channel`]s (senders wait while it is full: backpressure,
/// not unbounded queues), [`Signal`]s (the latest value, e.g. a reply) and an async
/// [`Mutex`]. `RawMutex` is [`CriticalSectionRawMutex`], which the platform
/// implements, so values are `Send` and `Sync` and can sit in an `Arc` or a `static`.
pub mod sync {
    pub use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;

    /// A bounded multi-producer, multi-consumer channel of `N` values.
    pub type Channel<T, const N: usize> =
        embassy_sync::channel::Channel<CriticalSectionRawMutex, T, N>;
    /// The latest value signalled; `wait` takes it.
    pub type Signal<T> = embassy_sync::signal::Signal<CriticalSectionRawMutex, T>;
    /// An async mutex.
    pub type Mutex<T> = embassy_sync::mutex::Mutex<CriticalSectionRawMutex, T>;
}

/// Called by `#[oasis::main]`; not for applications.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use core::fmt::Display;
    use core::pin::pin;

    /// Sets up logging and arguments, runs `main` on the executor, exits with its status.
    pub fn start<F, Fut, E>(main: F) -> !
    where
        F: FnOnce(Os) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let p = platform::get();
        let argv = p.args();
        let mut parser = match oasis_bootargs::ArgParser::new(platform::PROGRAM, &argv) {
            Ok(parser) => parser,
            Err(e) => usage_error(&e),
        };
        let filters = parser
            .values::<logger::Filter>(
                "log",
                Some('l'),
                "LEVEL",
                "log filter: LEVEL or TARGET:LEVEL, repeatable (error warn info debug trace off)",
            )
            .unwrap_or_else(|e| usage_error(&e));
        let log_format = parser
            .value(
                "log-format",
                "FORMAT",
                "log line format: text (default), logfmt or json (for log collectors)",
            )
            .unwrap_or_else(|e| usage_error(&e))
            .unwrap_or_default();
        logger::init(filters, log_format);
        // `-l boot:debug`: when each boot phase ended, then when `main` starts.
        let phases = p.boot_phases().iter().copied();
        for (phase, ns) in phases.chain(p.boot_nanos().map(|ns| ("main", ns))) {
            let (ms, us) = (ns / 1_000_000, ns / 1000 % 1000);
            log::debug!(target: "boot", "{ms:4}.{us:03} ms  {phase}");
        }
        platform::take_platform_args(&mut parser);
        let net_args = net::NetArgs::parse(&mut parser);
        net::ARGS.call_once(|| net_args);
        let mem_report: Option<u64> = parser
            .value(
                "mem-report",
                "SECS",
                "print the heap's use and high-water mark and the TCP counters every SECS seconds",
            )
            .unwrap_or_else(|e| usage_error(&e));
        #[cfg(feature = "metrics")]
        let metrics_port: Option<u16> = parser
            .value(
                "metrics-port",
                "PORT",
                "serve Prometheus metrics at /metrics (and /healthz) on this TCP port",
            )
            .unwrap_or_else(|e| usage_error(&e));
        let shared = alloc::sync::Arc::new(spin::Mutex::new(Some(parser)));
        let os = Os {
            args: shared.clone(),
        };
        #[cfg(feature = "metrics")]
        let metrics_os = os.clone();
        let result = oasis_runtime::block_on(p, async move {
            if let Some(secs) = mem_report {
                oasis_runtime::spawn(report_memory(Duration::from_secs(secs.max(1))));
            }
            #[cfg(feature = "metrics")]
            if let Some(port) = metrics_port {
                metrics::SERVED.store(true, core::sync::atomic::Ordering::Relaxed);
                oasis_runtime::spawn(metrics::serve(metrics_os, port));
            }
            let mut fut = pin!(main(os));
            let mut first = true;
            core::future::poll_fn(|cx| {
                let r = fut.as_mut().poll(cx);
                if core::mem::take(&mut first) {
                    // The app never asked for its arguments: none may be given.
                    if let Some(parser) = shared.lock().take() {
                        Args::new(Some(parser)).finish();
                    }
                }
                r
            })
            .await
        });
        match result {
            Ok(()) => p.exit(0),
            Err(e) => {
                console::_print(format_args!("error: {e}\n"));
                p.exit(EXIT_FAILURE)
            }
        }
    }

    /// `--mem-report`: one line per period, parsed by the robustness tests:
    /// `mem: used U KiB, peak P KiB, heap H KiB, tcp C live, R refused`.
    async fn report_memory(period: Duration) {
        loop {
            oasis_runtime::sleep(period).await;
            let Some(heap) = oasis_runtime::heap_usage() else {
                return; // hosted: the host's memory is not ours to report
            };
            let tcp = net::stats().unwrap_or_default();
            console::_print(format_args!(
                "mem: used {} KiB, peak {} KiB, heap {} KiB, tcp {} live, {} refused\n",
                heap.used / 1024,
                heap.peak / 1024,
                heap.size / 1024,
                tcp.tcp_connections,
                tcp.tcp_refused
            ));
        }
    }

    pub(crate) fn usage_error(e: &dyn Display) -> ! {
        console::_print(format_args!("{}: {e}\n", platform::PROGRAM));
        platform::get().exit(EXIT_USAGE)
    }
}

/// Embeds a file in the image's `.oasis_content` section (so `cargo oasis size`
/// reports content apart from code) as `static NAME: [u8; N]`.
///
/// ```ignore
/// oasis::embed!(SITE, concat!(env!("OUT_DIR"), "/site.pack"));
/// let site: &'static [u8] = &SITE;
/// ```
#[macro_export]
macro_rules! embed {
    ($name:ident, $path:expr) => {
        #[cfg_attr(target_os = "none", unsafe(link_section = ".oasis_content"))]
        static $name: [u8; include_bytes!($path).len()] = *include_bytes!($path);
    };
}
