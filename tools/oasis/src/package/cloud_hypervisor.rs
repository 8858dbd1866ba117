//! The Cloud Hypervisor command line, as a shell script that `exec`s it.
//!
//! Options follow `cloud-hypervisor --help` (v30+): `--kernel` loads our ELF by its
//! PVH note, devices are virtio-pci (modern, which our drivers use), networking is
//! an existing TAP, the serial console goes to a file. No port forwarding.

use super::{NetSpec, PackageError, VmSpec, utf8};
use crate::qemu::Machine;

const ENGINE: &str = "Cloud Hypervisor";

/// One `--option value` pair; values are `key=value,…` lists where the option takes
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub option: &'static str,
    pub value: String,
}

/// `key=value,key=value`. Cloud Hypervisor splits on `,` and `=`, so values must
/// not contain them.
fn kv(option: &'static str, pairs: &[(&str, String)]) -> Result<Arg, PackageError> {
    for (_, v) in pairs {
        if let Some(bad) = v.chars().find(|c| matches!(c, ',' | '=')) {
            return Err(PackageError::BadPath {
                engine: ENGINE,
                path: v.clone(),
                bad,
            });
        }
    }
    let value = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok(Arg { option, value })
}

/// The arguments (after the program name) for `spec`.
pub fn args(spec: &VmSpec) -> Result<Vec<Arg>, PackageError> {
    if let Some(m @ Machine::Microvm) = spec.machine {
        return Err(PackageError::Machine {
            engine: ENGINE,
            machine: m.name(),
            why: "Cloud Hypervisor's devices are virtio-pci: use pc or q35 (or no --machine)",
        });
    }
    let mut a = vec![
        Arg {
            option: "--kernel",
            value: utf8(&spec.kernel)?,
        },
        kv("--cpus", &[("boot", "1".into())])?,
        kv("--memory", &[("size", format!("{}M", spec.mem_mib))])?,
    ];
    if !spec.cmdline.is_empty() {
        a.push(Arg {
            option: "--cmdline",
            value: spec.cmdline.clone(),
        });
    }
    for d in &spec.disks {
        let mut pairs = vec![("path", utf8(&d.path)?)];
        if d.read_only {
            pairs.push(("readonly", "on".into()));
        }
        a.push(kv("--disk", &pairs)?);
    }
    match &spec.net {
        NetSpec::None => {}
        NetSpec::Tap(dev) => a.push(kv(
            "--net",
            &[("tap", dev.clone()), ("mac", spec.mac.to_string())],
        )?),
        other => {
            return Err(PackageError::Net {
                engine: ENGINE,
                net: other.to_string(),
                why: "Cloud Hypervisor attaches a TAP device: use --net tap:NAME",
            });
        }
    }
    a.push(Arg {
        option: "--serial",
        value: format!("file={}", utf8(&spec.console_log)?),
    });
    a.push(Arg {
        option: "--console",
        value: "off".into(),
    });
    Ok(a)
}

/// POSIX shell single-quoting.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=,:+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A script that runs Cloud Hypervisor for `spec` (extra arguments are passed on).
pub fn script(spec: &VmSpec) -> Result<String, PackageError> {
    let mut s = format!(
        "#!/bin/sh\n# Cloud Hypervisor command line for the Oasis unikernel {} (cargo oasis package).\nexec \"${{CLOUD_HYPERVISOR:-cloud-hypervisor}}\"",
        spec.name
    );
    for a in args(spec)? {
        s.push_str(&format!(" \\\n    {} {}", a.option, quote(&a.value)));
    }
    s.push_str(" \\\n    \"$@\"\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Engine;
    use crate::package::tests::spec;

    #[test]
    fn command_line_uses_cloud_hypervisors_options() {
        let a = args(&spec()).unwrap();
        let find = |o: &str| {
            a.iter()
                .filter(|x| x.option == o)
                .map(|x| x.value.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(find("--kernel"), ["/img/www"]);
        assert_eq!(find("--cpus"), ["boot=1"]);
        assert_eq!(find("--memory"), ["size=64M"]);
        assert_eq!(find("--cmdline"), ["--ipv4=10.0.0.2/24 -l debug"]);
        assert_eq!(
            find("--disk"),
            ["path=/img/site.tar,readonly=on", "path=/img/kv.img"]
        );
        assert_eq!(find("--net"), ["tap=tap0,mac=52:54:00:12:34:56"]);
        assert_eq!(find("--serial"), ["file=/img/www.console.log"]);
        assert_eq!(find("--console"), ["off"]);
        let s = spec().render(Engine::CloudHypervisor).unwrap();
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(s.contains("--cmdline '--ipv4=10.0.0.2/24 -l debug'"), "{s}");
    }

    #[test]
    fn quotes_and_refuses() {
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        let mut s = spec();
        s.disks = vec!["/a,b".into()]
            .into_iter()
            .map(|p: String| crate::qemu::Disk {
                path: p.into(),
                read_only: false,
            })
            .collect();
        assert!(matches!(args(&s), Err(PackageError::BadPath { .. })));
        let mut s = spec();
        s.net = NetSpec::User;
        assert!(matches!(args(&s), Err(PackageError::Net { .. })));
        s.net = NetSpec::None;
        s.machine = Some(Machine::Microvm);
        assert!(matches!(args(&s), Err(PackageError::Machine { .. })));
    }
}
