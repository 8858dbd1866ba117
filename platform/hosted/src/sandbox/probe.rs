//! Forbidden-call probes (`--sandbox-probe=CALL`, for tests): right after sealing,
//! make one system call the filter must refuse (the process dies of `SIGSYS`), or
//! take an exit path that must stay within the filter (a panic, a failed allocation:
//! the process exits 101).

use core::fmt::Write;

use super::fatal::{Console, exit};

/// What `--sandbox-probe` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `openat(AT_FDCWD, "/etc/hostname", O_RDONLY)`: no new files.
    Openat,
    /// `socket(AF_INET, SOCK_STREAM, 0)`: no host sockets.
    Socket,
    /// `execve("/bin/true", …)`: no other programs.
    Execve,
    /// `mmap` of one anonymous page: no new memory.
    Mmap,
    /// `write(0, …)`: an allowed call on a descriptor the sandbox did not open.
    WriteFd,
    /// A panic: must print and exit 101 without leaving the filter.
    Panic,
    /// An allocation larger than the heap: must print and exit 101 without leaving
    /// the filter.
    Oom,
}

/// The probes' names, for help and errors.
pub const PROBES: &str = "openat|socket|execve|mmap|write-fd|panic|oom";

impl core::str::FromStr for Probe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "openat" => Probe::Openat,
            "socket" => Probe::Socket,
            "execve" => Probe::Execve,
            "mmap" => Probe::Mmap,
            "write-fd" => Probe::WriteFd,
            "panic" => Probe::Panic,
            "oom" => Probe::Oom,
            _ => return Err(format!("expected one of {PROBES}")),
        })
    }
}

impl Probe {
    /// Makes the probe's call. Returns only if the filter let a forbidden call
    /// through: then it says so and exits 1.
    pub(crate) fn run(self) -> ! {
        let _ = writeln!(Console, "sandbox: probe {self:?}");
        let rc: libc::c_long = match self {
            // SAFETY: a NUL-terminated path and plain flags; the result is only printed.
            Probe::Openat => unsafe {
                libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    c"/etc/hostname".as_ptr(),
                    libc::O_RDONLY,
                )
            },
            // SAFETY: no pointers; a socket that would be leaked is harmless.
            Probe::Socket => unsafe {
                libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0)
            },
            Probe::Execve => {
                let argv = [c"/bin/true".as_ptr(), core::ptr::null()];
                let envp = [core::ptr::null::<libc::c_char>()];
                // SAFETY: NUL-terminated path and NULL-terminated argv/envp arrays
                // that live across the call.
                unsafe {
                    libc::syscall(
                        libc::SYS_execve,
                        c"/bin/true".as_ptr(),
                        argv.as_ptr(),
                        envp.as_ptr(),
                    )
                }
            }
            // SAFETY: a new anonymous mapping at an address of the kernel's choosing
            // touches no existing memory.
            Probe::Mmap => unsafe {
                libc::syscall(
                    libc::SYS_mmap,
                    0usize,
                    4096usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0usize,
                )
            },
            // SAFETY: one byte from a live buffer.
            Probe::WriteFd => unsafe { libc::syscall(libc::SYS_write, 0, b"x".as_ptr(), 1usize) },
            Probe::Panic => panic!("sandbox probe: a panic after sealing"),
            Probe::Oom => {
                let size = super::heap::HEAP.usage().size.saturating_mul(2);
                let v: Vec<u8> = Vec::with_capacity(core::hint::black_box(size));
                core::hint::black_box(&v);
                -1
            }
        };
        let _ = writeln!(
            Console,
            "sandbox: probe {self:?} returned {rc}: the filter did not stop it"
        );
        exit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_probe_parses_and_others_are_refused() {
        for name in PROBES.split('|') {
            assert!(name.parse::<Probe>().is_ok(), "{name}");
        }
        let e = "open".parse::<Probe>().unwrap_err();
        assert!(e.contains(PROBES), "{e}");
    }
}
