//! The Oasis runtime: a single-core, cooperative async executor with timers.
//!
//! One [`Executor`] runs per program (per thread in hosted tests). Tasks are futures;
//! wakers put them on a ready queue; timers live in an ordered map keyed by deadline;
//! *pollers* are services (the network stack, block drivers) that the loop calls once
//! per turn to make progress and report their next deadline. When nothing is ready
//! the executor asks the platform to sleep until the earliest deadline or the next
//! interrupt ([`Platform::wait_for_event`]), so an idle program costs ~0% CPU.
//!
//! What it does not do: preemption, multiple cores, work stealing. Interrupt handlers
//! never touch executor state; they only make `wait_for_event` return.
//!
//! Tasks are `Send` so the same code could later move to a multi-core executor; on
//! one core the locks inside are never contended.
#![no_std]
#![forbid(unsafe_code)]
// Input from outside must never panic the kernel through an unchecked unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod executor;
mod time;

pub use executor::{
    Executor, JoinHandle, Poller, block_on, heap_usage, register_poller, spawn, yield_now,
};
pub use oasis_devices::HeapUsage;
pub use time::{Elapsed, Instant, Sleep, now, sleep, sleep_until, timeout};
