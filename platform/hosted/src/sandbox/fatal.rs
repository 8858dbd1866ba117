//! How a sealed process speaks and ends within its filter: raw writes to the console,
//! the panic hook (message, location, heap, return addresses) and the abort path
//! that an allocation failure takes, both ending in `exit_group`.
//!
//! std's own paths would leave the filter: its panic backtrace opens the executable
//! to symbolise, and `abort(3)` raises `SIGABRT` (`rt_sigprocmask`, `tgkill`).

use core::ffi::{c_int, c_void};
use core::fmt::{self, Write};

use super::heap::HEAP;

/// Exit status after a panic or an abort (as on `kvm`).
pub const EXIT_PANIC: u8 = crate::EXIT_PANIC;

/// Return addresses printed at most.
const MAX_FRAMES: usize = 32;

/// Writes all of `bytes` to descriptor `fd` with `write(2)`; drops what the host
/// will not take (a console that cannot take output loses it).
pub(crate) fn write_all(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of `bytes.len()` bytes during the call.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(0) => return,
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(_) if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
            }
            Err(_) => return,
        }
    }
}

/// The console (stdout) as a `fmt::Write` that allocates nothing.
pub(crate) struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_all(libc::STDOUT_FILENO, s.as_bytes());
        Ok(())
    }
}

/// Ends the process with `status` (`_exit(2)`, i.e. `exit_group`: no atexit
/// handlers, nothing buffered to flush: the console is unbuffered).
pub(crate) fn exit(status: u8) -> ! {
    // SAFETY: `_exit` ends the process; it has no preconditions.
    unsafe { libc::_exit(i32::from(status)) }
}

/// Prints `what` as `oasis: what` and exits with `status` (a failure before `main`).
pub(crate) fn die(status: u8, what: &dyn fmt::Display) -> ! {
    let _ = writeln!(Console, "oasis: {what}");
    exit(status)
}

/// Readies the failure paths before sealing: std's allocation-failure message must
/// not try to print its own backtrace (it symbolises by opening the executable), so
/// `RUST_BACKTRACE` is dropped from the environment before std first reads it; and
/// the unwinder is run once, because its first walk finishes a `pthread_once` with a
/// `futex` wake-up.
pub(crate) fn prepare() {
    // SAFETY: called from the entry before anything else runs: the process has one
    // thread, so nothing reads the environment concurrently.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let mut frames = Frames {
        ips: [0; MAX_FRAMES],
        n: 0,
    };
    walk(&mut frames);
}

/// Panics print message, location, the heap's state and a backtrace of return
/// addresses, then exit with [`EXIT_PANIC`].
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let mut out = Console;
        let _ = match info.location() {
            Some(l) => write!(
                out,
                "\npanicked at {}:{}:{}:\n",
                l.file(),
                l.line(),
                l.column()
            ),
            None => write!(out, "\npanicked:\n"),
        };
        let _ = writeln!(out, "{}", info.payload_as_str().unwrap_or("(no message)"));
        heap_line(&mut out);
        backtrace(&mut out);
        exit(EXIT_PANIC)
    }));
}

fn heap_line(out: &mut Console) {
    let heap = HEAP.usage();
    let _ = writeln!(
        out,
        "heap: {} KiB used, {} KiB peak, of {} KiB",
        heap.used / 1024,
        heap.peak / 1024,
        heap.size / 1024
    );
}

/// The unwinder's per-frame context (opaque).
#[repr(C)]
struct UnwindContext {
    _opaque: [u8; 0],
}

/// `_URC_NO_REASON`: go on to the next frame.
const URC_NO_REASON: c_int = 0;
/// `_URC_END_OF_STACK`: stop.
const URC_END_OF_STACK: c_int = 5;

unsafe extern "C" {
    /// libgcc's unwinder (linked by std): walks the stack from the call's frame with
    /// the image's `.eh_frame` tables, calling `trace` per frame. Makes no system
    /// calls (it looks the tables up with `dl_iterate_phdr`, which reads memory).
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    /// The instruction pointer (a return address) of a frame being walked.
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    /// The ELF header of the executable: its load address (the image is a PIE).
    static __ehdr_start: u8;
}

struct Frames {
    ips: [usize; MAX_FRAMES],
    n: usize,
}

extern "C" fn record(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&mut Frames` that `backtrace` passed to
    // `_Unwind_Backtrace`, alive and not otherwise borrowed during the walk.
    let frames = unsafe { &mut *arg.cast::<Frames>() };
    // SAFETY: `ctx` is the live context the unwinder passes to this callback.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    match frames.ips.get_mut(frames.n) {
        Some(slot) if ip != 0 => {
            *slot = ip;
            frames.n += 1;
            URC_NO_REASON
        }
        _ => URC_END_OF_STACK,
    }
}

/// Collects the caller's return addresses into `frames`.
#[inline(never)]
fn walk(frames: &mut Frames) {
    // SAFETY: `record` only writes into `frames` through `arg`, which outlives the
    // walk; the unwinder reads this thread's own stack.
    unsafe { _Unwind_Backtrace(record, core::ptr::from_mut(frames).cast()) };
}

/// Prints the caller's return addresses as offsets into the executable, ready for
/// `addr2line -e IMAGE`.
#[inline(never)]
fn backtrace(out: &mut Console) {
    let mut frames = Frames {
        ips: [0; MAX_FRAMES],
        n: 0,
    };
    walk(&mut frames);
    let base = (&raw const __ehdr_start) as usize;
    let _ = writeln!(
        out,
        "backtrace (image offsets; symbolise with addr2line -e IMAGE):"
    );
    for (i, ip) in frames.ips.iter().take(frames.n).enumerate() {
        let _ = writeln!(out, "   {i:2}: {:#010x}", ip.wrapping_sub(base));
    }
}

/// Replaces libc's `abort(3)` in the sandboxed program: std calls it after an
/// allocation failure (having printed `memory allocation of N bytes failed` to
/// stderr) and for a panic inside a panic. libc's would raise `SIGABRT`, which takes
/// system calls the filter refuses; this prints the heap's state and exits with
/// [`EXIT_PANIC`], as `kvm` does on an allocation failure.
#[cfg(all(feature = "sandbox", not(test)))]
#[unsafe(no_mangle)]
extern "C" fn abort() -> ! {
    let mut out = Console;
    let _ = writeln!(
        out,
        "\naborted (an allocation failed, or a panic while panicking)"
    );
    heap_line(&mut out);
    backtrace(&mut out);
    exit(EXIT_PANIC)
}
