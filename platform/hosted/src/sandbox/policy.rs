//! The seccomp filter that seals the sandbox: the system calls a sealed process may
//! make, each restricted to the descriptors it opened where seccomp can check it;
//! anything else kills the process (`SECCOMP_RET_KILL_PROCESS`, seen as `SIGSYS`).
//!
//! Compiled to classic BPF by Firecracker's `seccompiler` (pure Rust, no C library;
//! see docs/sandbox.md for why not libseccomp) and installed with
//! `PR_SET_NO_NEW_PRIVS` and `SECCOMP_FILTER_FLAG_TSYNC`.

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// One system call the sealed process may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// Its name, as strace prints it.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// What the sandbox needs it for, and what seccomp checks of its arguments.
    pub why: &'static str,
}

/// Every system call a sealed process may make, at most. [`Policy::rules`] leaves
/// out those it has no use for (no TAP: no `read`; no writable disk: no `pwrite64`).
pub const ALLOWED: [Allowed; 9] = [
    Allowed {
        name: "read",
        nr: libc::SYS_read,
        why: "frames from the TAP (fd = the TAP)",
    },
    Allowed {
        name: "write",
        nr: libc::SYS_write,
        why: "frames to the TAP, the console (fd = the TAP, 1 or 2)",
    },
    Allowed {
        name: "pread64",
        nr: libc::SYS_pread64,
        why: "disk reads (fd = a disk)",
    },
    Allowed {
        name: "pwrite64",
        nr: libc::SYS_pwrite64,
        why: "disk writes (fd = a writable disk)",
    },
    Allowed {
        name: "fdatasync",
        nr: libc::SYS_fdatasync,
        why: "disk flushes (fd = a writable disk)",
    },
    Allowed {
        name: "ppoll",
        nr: libc::SYS_ppoll,
        why: "the idle wait: the TAP or a timeout (at most 1 fd, no signal mask)",
    },
    Allowed {
        name: "clock_gettime",
        nr: libc::SYS_clock_gettime,
        why: "time when the vDSO cannot answer (CLOCK_REALTIME, CLOCK_MONOTONIC)",
    },
    Allowed {
        name: "getrandom",
        nr: libc::SYS_getrandom,
        why: "entropy (flags 0, GRND_NONBLOCK or GRND_INSECURE)",
    },
    Allowed {
        name: "exit_group",
        nr: libc::SYS_exit_group,
        why: "exit",
    },
];

/// `GRND_INSECURE` (Linux 5.6), which std's hash-map seeding asks for first.
const GRND_INSECURE: u32 = 0x0004;

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// seccompiler refused the rules (a bug in [`Policy::rules`]).
    #[error("building the seccomp filter failed: {0}")]
    Build(seccompiler::BackendError),
    /// The architecture has no seccomp support in seccompiler.
    #[error("seccomp filters are not supported on {0}")]
    Arch(&'static str),
    /// The kernel refused `PR_SET_NO_NEW_PRIVS` or the filter.
    #[error("installing the seccomp filter failed: {0}")]
    Install(seccompiler::Error),
}

/// The descriptors the sandbox opened before sealing: all its system calls may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The TAP device.
    pub tap: Option<RawFd>,
    /// Disk files, with whether each is writable.
    pub disks: Vec<(RawFd, bool)>,
}

/// `arg == value` for an `int` argument (descriptors, clock ids, flags): the low 32
/// bits only, since the ABI leaves a 32-bit argument's upper half undefined.
fn eq32(arg: u8, value: u32) -> SeccompCondition {
    cond(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        u64::from(value),
    )
}

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    // Only an argument index above 5 is refused; ours are constants below it.
    SeccompCondition::new(arg, len, op, value)
        .unwrap_or_else(|e| unreachable!("seccomp condition on argument {arg}: {e}"))
}

/// A rule matching when every condition holds.
fn all(conditions: Vec<SeccompCondition>) -> SeccompRule {
    // Only an empty condition list is refused; ours never are.
    SeccompRule::new(conditions).unwrap_or_else(|e| unreachable!("seccomp rule: {e}"))
}

/// One rule per descriptor: `arg0 == fd`.
fn on_fds(fds: impl IntoIterator<Item = RawFd>) -> Vec<SeccompRule> {
    fds.into_iter()
        .map(|fd| all(vec![eq32(0, fd as u32)]))
        .collect()
}

impl Policy {
    /// The rules by system call number. A call with an empty list is allowed with
    /// any arguments; a call missing from the map kills the process.
    pub fn rules(&self) -> BTreeMap<i64, Vec<SeccompRule>> {
        let mut rules = BTreeMap::new();
        let writable = self.disks.iter().filter(|(_, w)| *w).map(|(fd, _)| *fd);
        if let Some(tap) = self.tap {
            rules.insert(libc::SYS_read, on_fds([tap]));
        }
        rules.insert(libc::SYS_write, on_fds([1, 2].into_iter().chain(self.tap)));
        if !self.disks.is_empty() {
            rules.insert(
                libc::SYS_pread64,
                on_fds(self.disks.iter().map(|(fd, _)| *fd)),
            );
        }
        let w = on_fds(writable);
        if !w.is_empty() {
            rules.insert(libc::SYS_pwrite64, w.clone());
            rules.insert(libc::SYS_fdatasync, w);
        }
        rules.insert(
            libc::SYS_ppoll,
            vec![all(vec![
                cond(1, SeccompCmpArgLen::Qword, SeccompCmpOp::Le, 1),
                cond(3, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0),
            ])],
        );
        rules.insert(
            libc::SYS_clock_gettime,
            [libc::CLOCK_REALTIME, libc::CLOCK_MONOTONIC]
                .into_iter()
                .map(|c| all(vec![eq32(0, c as u32)]))
                .collect(),
        );
        rules.insert(
            libc::SYS_getrandom,
            [0, libc::GRND_NONBLOCK, GRND_INSECURE]
                .into_iter()
                .map(|f| all(vec![eq32(2, f)]))
                .collect(),
        );
        rules.insert(libc::SYS_exit_group, Vec::new());
        rules
    }

    /// The names of the system calls [`rules`](Self::rules) allows, in [`ALLOWED`] order.
    pub fn allowed(&self) -> Vec<&'static str> {
        let rules = self.rules();
        ALLOWED
            .iter()
            .filter(|a| rules.contains_key(&a.nr))
            .map(|a| a.name)
            .collect()
    }

    /// The BPF program: [`rules`](Self::rules), everything else kills the process.
    pub fn compile(&self) -> Result<BpfProgram, SealError> {
        let arch = TargetArch::try_from(std::env::consts::ARCH)
            .map_err(|_| SealError::Arch(std::env::consts::ARCH))?;
        let filter = SeccompFilter::new(
            self.rules(),
            SeccompAction::KillProcess,
            SeccompAction::Allow,
            arch,
        )
        .map_err(SealError::Build)?;
        BpfProgram::try_from(filter).map_err(SealError::Build)
    }

    /// Compiles and installs the filter for every thread of the process (there is
    /// one). From here on a call outside [`rules`](Self::rules) kills the process.
    pub fn seal(&self) -> Result<(), SealError> {
        let program = self.compile()?;
        seccompiler::apply_filter_all_threads(&program).map_err(SealError::Install)
    }

    /// Like [`seal`](Self::seal), for the calling thread only. For unit tests, which
    /// run inside libtest: its main thread, still unsealed, keeps waiting on a futex
    /// for the test's result. Sealing every thread there raced with that wait (the
    /// main thread was killed when it reached its futex after the seal: seen in CI
    /// under load). The real process is single-threaded and uses `seal`, which the
    /// e2e tests (tests/tests/sandbox.rs) exercise.
    #[cfg(test)]
    pub fn seal_this_thread(&self) -> Result<(), SealError> {
        let program = self.compile()?;
        seccompiler::apply_filter(&program).map_err(SealError::Install)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_ten_calls_and_only_those_a_device_needs() {
        assert!(ALLOWED.len() <= 10);
        let bare = Policy::default();
        assert_eq!(
            bare.allowed(),
            ["write", "ppoll", "clock_gettime", "getrandom", "exit_group"]
        );
        let full = Policy {
            tap: Some(5),
            disks: vec![(6, false), (7, true)],
        };
        assert_eq!(full.allowed().len(), ALLOWED.len());
        let ro = Policy {
            tap: Some(5),
            disks: vec![(6, false)],
        };
        assert!(!ro.allowed().contains(&"pwrite64"));
        assert!(!ro.allowed().contains(&"fdatasync"));
        assert!(ro.allowed().contains(&"pread64"));
        for p in [bare, full, ro] {
            let prog = p.compile().unwrap();
            assert!(
                !prog.is_empty() && prog.len() < 200,
                "{} BPF instructions",
                prog.len()
            );
        }
    }

    #[test]
    fn file_calls_are_restricted_to_the_sandboxes_descriptors() {
        let p = Policy {
            tap: Some(5),
            disks: vec![(7, true)],
        };
        let rules = p.rules();
        // Every call touching a descriptor has one rule per descriptor it may touch.
        assert_eq!(rules[&libc::SYS_read].len(), 1);
        assert_eq!(rules[&libc::SYS_write].len(), 3);
        assert_eq!(rules[&libc::SYS_pread64].len(), 1);
        assert_eq!(rules[&libc::SYS_pwrite64].len(), 1);
        assert_eq!(rules[&libc::SYS_fdatasync].len(), 1);
        assert!(rules[&libc::SYS_exit_group].is_empty());
    }
}
