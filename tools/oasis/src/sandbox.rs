//! `cargo oasis run APP --target sandbox`: the sealed process's arguments, and
//! running it (docs/sandbox.md). The platform opens what these arguments name before
//! it seals itself, so everything it will ever use is on its command line.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use crate::qemu::{Disk, Net, PortForward};

/// `SIGSYS` on Linux: what the seccomp filter kills with.
pub const SIGSYS: i32 = 31;

/// Why `run --target sandbox` cannot go ahead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxRunError {
    /// `--port` asks for QEMU's port forwarding.
    #[error(
        "--port forwards QEMU user networking; the sandbox's only network is a TAP: --net tap:NAME (`bench/sandbox setup` makes one in a namespace)"
    )]
    Ports,
    /// `--net user` asks for QEMU's user networking.
    #[error("the sandbox's only network is a TAP: --net tap:NAME, not user")]
    UserNet,
    /// `--tls` without a TAP.
    #[error("--tls needs the sandbox's network: --net tap:NAME")]
    TlsWithoutTap,
    /// The user passed what the command line already says.
    #[error("{0} is set by `run` itself (from --net, --disk, --mem); drop it after `--`")]
    Duplicate(&'static str),
}

/// The process's arguments: the platform's own (`--net=tap:NAME`, `--disk=FILE[:ro]`,
/// `--mem=MIB`) before the user's, which may end with `--` positionals.
pub fn process_args(
    net: Option<&Net>,
    ports: &[PortForward],
    disks: &[Disk],
    mem_mib: u32,
    tls: bool,
    user: &[String],
) -> Result<Vec<String>, SandboxRunError> {
    if !ports.is_empty() {
        return Err(SandboxRunError::Ports);
    }
    let tap = match net {
        Some(Net::User) => return Err(SandboxRunError::UserNet),
        Some(Net::Tap(name)) => Some(name),
        Some(Net::None) | None => None,
    };
    if tls && tap.is_none() {
        return Err(SandboxRunError::TlsWithoutTap);
    }
    for a in user.iter().take_while(|a| *a != "--") {
        let ours = ["--net", "--disk", "--mem"]
            .into_iter()
            .find(|f| a == f || a.starts_with(&format!("{f}=")));
        if let Some(flag) = ours {
            return Err(SandboxRunError::Duplicate(flag));
        }
    }
    let mut args: Vec<String> = tap.map(|t| format!("--net=tap:{t}")).into_iter().collect();
    args.extend(disks.iter().map(|d| {
        let ro = if d.read_only { ":ro" } else { "" };
        format!("--disk={}{ro}", d.path.display())
    }));
    args.push(format!("--mem={mem_mib}"));
    args.extend(user.iter().cloned());
    Ok(args)
}

/// Runs the sandboxed `image` with `args` in the foreground; returns its exit status
/// (128 + the signal when killed, and says why for `SIGSYS`).
pub fn run(image: &Path, args: &[String]) -> anyhow::Result<u8> {
    use anyhow::Context;
    let status = Command::new(image)
        .args(args)
        .status()
        .with_context(|| format!("starting {}", image.display()))?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(SIGSYS)) => {
            eprintln!(
                "oasis: killed by SIGSYS: the program made a system call outside the sandbox's filter (`strace -f` names it; docs/sandbox.md lists the allowed ones)"
            );
            128 + SIGSYS as u8
        }
        (None, sig) => {
            let sig = sig.unwrap_or(0);
            eprintln!("oasis: killed by signal {sig}");
            128u8.saturating_add(u8::try_from(sig).unwrap_or(0))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn platform_arguments_come_first_then_the_users() {
        let disks = [
            "kv.img".parse::<Disk>().unwrap(),
            "site.tar:ro".parse().unwrap(),
        ];
        let args = process_args(
            Some(&Net::Tap("tap0".into())),
            &[],
            &disks,
            32,
            false,
            &s(&["--ipv4=10.0.0.2/24", "--", "x"]),
        )
        .unwrap();
        assert_eq!(
            args,
            s(&[
                "--net=tap:tap0",
                "--disk=kv.img",
                "--disk=site.tar:ro",
                "--mem=32",
                "--ipv4=10.0.0.2/24",
                "--",
                "x"
            ])
        );
        // No network at all is fine (hello).
        assert_eq!(
            process_args(None, &[], &[], 64, false, &[]).unwrap(),
            s(&["--mem=64"])
        );
        // After `--`, anything goes.
        assert!(process_args(None, &[], &[], 64, false, &s(&["--", "--mem=1"])).is_ok());
    }

    #[test]
    fn what_the_sandbox_cannot_have_is_refused_with_the_way_out() {
        let port = "8080:80".parse::<PortForward>().unwrap();
        let tap = Net::Tap("tap0".into());
        for (r, want) in [
            (
                process_args(None, &[port], &[], 64, false, &[]),
                SandboxRunError::Ports,
            ),
            (
                process_args(Some(&Net::User), &[], &[], 64, false, &[]),
                SandboxRunError::UserNet,
            ),
            (
                process_args(None, &[], &[], 64, true, &[]),
                SandboxRunError::TlsWithoutTap,
            ),
            (
                process_args(Some(&tap), &[], &[], 64, false, &s(&["--mem=8"])),
                SandboxRunError::Duplicate("--mem"),
            ),
        ] {
            assert_eq!(r.unwrap_err(), want);
        }
        assert!(
            SandboxRunError::Ports
                .to_string()
                .contains("--net tap:NAME")
        );
    }
}
