//! The machine services every platform provides: console, time, entropy, idling, exit.

use alloc::string::String;
use alloc::vec::Vec;

/// Why the platform could not produce random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntropyError {
    /// The CPU offers neither RDSEED nor RDRAND and no other source (virtio-rng,
    /// the host kernel) exists.
    #[error(
        "no hardware entropy source: the CPU offers neither RDSEED nor RDRAND (run QEMU with `-cpu max` or `-cpu host`)"
    )]
    NoSource,
    /// The hardware source kept failing (RDRAND/RDSEED returned CF=0 on every retry).
    #[error("the hardware entropy source failed {retries} times in a row")]
    SourceFailed {
        /// How many attempts were made.
        retries: u32,
    },
}

/// The heap's state, in bytes, as the allocator counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes the heap manages.
    pub size: usize,
    /// Bytes handed out and not yet freed (requested sizes; the allocator's own
    /// per-block overhead is not included).
    pub used: usize,
    /// The highest `used` seen since boot.
    pub peak: usize,
}

impl HeapUsage {
    /// Bytes not in use.
    pub fn free(&self) -> usize {
        self.size.saturating_sub(self.used)
    }
}

/// What the runtime and the `oasis` facade need from the machine.
///
/// Contract: one instance lives for the whole program (`&'static`); all methods may be
/// called from task context only (never from interrupt context). Times are nanoseconds.
pub trait Platform: Sync {
    /// Writes bytes to the console (serial port or stdout). Never fails: a console
    /// that cannot take output drops it.
    fn console_write(&self, bytes: &[u8]);

    /// Monotonic time since an arbitrary origin fixed at boot, in nanoseconds.
    fn monotonic_nanos(&self) -> u64;

    /// Wall-clock time as nanoseconds since the Unix epoch, if the platform knows it.
    fn wall_clock_nanos(&self) -> Option<u64>;

    /// Fills `buf` with bytes from the platform's entropy source, suitable for seeding
    /// a CSPRNG.
    fn entropy(&self, buf: &mut [u8]) -> Result<(), EntropyError>;

    /// Sleeps until an event arrives (a device interrupt, a signal, readiness of a
    /// host file descriptor) or until `deadline` (monotonic nanoseconds) passes,
    /// whichever comes first. Returns at once if an event arrived since the last call.
    /// Spurious returns are allowed.
    fn wait_for_event(&self, deadline: Option<u64>);

    /// The program's arguments (the kernel command line, split; or argv[1..]).
    fn args(&self) -> Vec<String>;

    /// Nanoseconds from the first instruction of the program (PVH entry, process
    /// start) to the call of the application's `main`, when the platform measured it.
    fn boot_nanos(&self) -> Option<u64>;

    /// The boot phases the platform timed, in order: each phase's name and the
    /// nanoseconds from the first instruction to its end (`-l boot:debug` prints
    /// them). Empty where the platform does not time its boot.
    fn boot_phases(&self) -> &[(&'static str, u64)] {
        &[]
    }

    /// Bytes of memory the heap manages, when the platform knows (sizing defaults
    /// such as network buffers to the machine). `None` on hosted: the host's memory
    /// is not ours to size by.
    fn heap_bytes(&self) -> Option<usize> {
        None
    }

    /// The heap's size, bytes in use and high-water mark, when the platform counts
    /// them. Admission control charges connections against this (see `oasis-net`);
    /// `None` on hosted.
    fn heap_usage(&self) -> Option<HeapUsage> {
        None
    }

    /// Ends the program with `status` (0 is success). On a VMM the status reaches the
    /// monitor's exit code when the VMM supports it (`isa-debug-exit`).
    fn exit(&self, status: u8) -> !;
}
