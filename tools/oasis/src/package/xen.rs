//! The Xen `xl` domain configuration (`xl create NAME.xl.cfg`), per xl.cfg(5) of
//! Xen 4.17: a PVH guest (`type = "pvh"`) whose `kernel` is our ELF (Xen's
//! toolstack reads its PVH entry note), one vCPU, a `vif` on a host bridge and `disk`s
//! as raw files.
//!
//! Typed: a [`Config`] of named [`Value`]s, rendered by one function that quotes
//! every string; paths or arguments that xl's quoting cannot carry are refused, never
//! passed through.
//!
//! What works today: Oasis boots as a PVH dom0 (`cargo oasis run --hypervisor xen`).
//! As a domU it needs the Xen console ring, netfront and blkfront, which are not done
//! yet: this file is what `xl create` will take once they are (docs/xen.md).

use super::{NetSpec, PackageError, VmSpec, utf8};

const ENGINE: &str = "Xen";

/// An xl.cfg value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `"text"`.
    Str(String),
    /// A number.
    Int(u64),
    /// `[ "a", "b" ]`.
    List(Vec<String>),
}

/// One domain's settings, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub entries: Vec<(&'static str, Value)>,
}

/// A string xl's parser reads back unchanged inside double quotes: no `"`, `\`,
/// or control characters. `what` names it in the error.
fn xl_str(what: &str, s: &str) -> Result<String, PackageError> {
    if let Some(bad) = s
        .chars()
        .find(|c| matches!(c, '"' | '\\') || c.is_control())
    {
        return Err(PackageError::BadPath {
            engine: ENGINE,
            path: format!("{what} {s}"),
            bad,
        });
    }
    Ok(s.to_string())
}

/// A value inside a `vif`/`disk` spec, whose parser splits on `,` (and `=` before
/// the value).
fn spec_part(what: &str, s: &str) -> Result<String, PackageError> {
    let s = xl_str(what, s)?;
    if let Some(bad) = s.chars().find(|c| matches!(c, ',' | '=')) {
        return Err(PackageError::BadPath {
            engine: ENGINE,
            path: format!("{what} {s}"),
            bad,
        });
    }
    Ok(s)
}

/// Xen's virtual disk names: xvda, xvdb, …
fn vdev(i: usize) -> Result<String, PackageError> {
    let letter = u8::try_from(i)
        .ok()
        .filter(|&i| i < 26)
        .map(|i| char::from(b'a' + i))
        .ok_or_else(|| PackageError::Serialise {
            engine: ENGINE,
            why: format!("{} disks: xvda..xvdz is the most this writes", i + 1),
        })?;
    Ok(format!("xvd{letter}"))
}

/// The configuration for `spec`.
pub fn config(spec: &VmSpec) -> Result<Config, PackageError> {
    if let Some(m) = spec.machine {
        return Err(PackageError::Machine {
            engine: ENGINE,
            machine: m.name(),
            why: "a Xen PVH guest has no machine model: drop --machine",
        });
    }
    let mut e: Vec<(&'static str, Value)> = vec![
        ("name", Value::Str(xl_str("name", &spec.name)?)),
        ("type", Value::Str("pvh".into())),
        (
            "kernel",
            Value::Str(xl_str("kernel", &utf8(&spec.kernel)?)?),
        ),
    ];
    if !spec.cmdline.is_empty() {
        e.push(("cmdline", Value::Str(xl_str("cmdline", &spec.cmdline)?)));
    }
    e.push(("memory", Value::Int(u64::from(spec.mem_mib))));
    e.push(("vcpus", Value::Int(1)));
    // An Oasis exit is final: status 0 powers off, any other crashes (the status
    // is on the console); keep a crashed domain for `xl console`/`xl dmesg`.
    e.push(("on_poweroff", Value::Str("destroy".into())));
    e.push(("on_reboot", Value::Str("destroy".into())));
    e.push(("on_crash", Value::Str("preserve".into())));
    match &spec.net {
        NetSpec::None => {}
        NetSpec::Bridge(br) => e.push((
            "vif",
            Value::List(vec![format!(
                "mac={},bridge={}",
                spec.mac,
                spec_part("bridge", br)?
            )]),
        )),
        other => {
            return Err(PackageError::Net {
                engine: ENGINE,
                net: other.to_string(),
                why: "Xen plugs the guest's vif into a host bridge: use --net bridge:NAME",
            });
        }
    }
    if !spec.disks.is_empty() {
        let mut disks = Vec::new();
        for (i, d) in spec.disks.iter().enumerate() {
            let access = if d.read_only { "ro" } else { "rw" };
            // `target=` last: xl.cfg(5) takes the rest of the spec as the path.
            disks.push(format!(
                "format=raw,vdev={},access={access},target={}",
                vdev(i)?,
                spec_part("disk", &utf8(&d.path)?)?
            ));
        }
        e.push(("disk", Value::List(disks)));
    }
    Ok(Config { entries: e })
}

/// The text of `c`.
pub fn render(c: &Config) -> String {
    let mut s = String::new();
    for (k, v) in &c.entries {
        let v = match v {
            Value::Str(t) => format!("\"{t}\""),
            Value::Int(n) => n.to_string(),
            Value::List(xs) => {
                let items: Vec<String> = xs.iter().map(|x| format!("\"{x}\"")).collect();
                format!("[ {} ]", items.join(", "))
            }
        };
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

/// The `xl` configuration file for `spec`.
pub fn xl_config(spec: &VmSpec) -> Result<String, PackageError> {
    let c = config(spec)?;
    Ok(format!(
        "# xl domain configuration for the Oasis unikernel {} (cargo oasis package).\n# Start it with: xl create {}.xl.cfg\n{}",
        spec.name,
        spec.name,
        render(&c)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Engine;
    use crate::package::tests::spec;

    #[test]
    fn writes_a_pvh_domain_with_vif_and_disks() {
        let mut s = spec();
        s.net = NetSpec::Bridge("xenbr0".into());
        let text = s.render(Engine::Xen).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                r#"name = "www""#,
                r#"type = "pvh""#,
                r#"kernel = "/img/www""#,
                r#"cmdline = "--ipv4=10.0.0.2/24 -l debug""#,
                "memory = 64",
                "vcpus = 1",
                r#"on_poweroff = "destroy""#,
                r#"on_reboot = "destroy""#,
                r#"on_crash = "preserve""#,
                r#"vif = [ "mac=52:54:00:12:34:56,bridge=xenbr0" ]"#,
                r#"disk = [ "format=raw,vdev=xvda,access=ro,target=/img/site.tar", "format=raw,vdev=xvdb,access=rw,target=/img/kv.img" ]"#,
            ]
        );
        assert_eq!(Engine::Xen.file_name("www"), "www.xl.cfg");
    }

    #[test]
    fn refuses_what_xl_cannot_carry() {
        // The engine tests' spec is on a TAP: Xen makes its own backend interface.
        assert!(matches!(config(&spec()), Err(PackageError::Net { .. })));
        let mut s = spec();
        s.net = NetSpec::None;
        s.cmdline = r#"--say="hi""#.into();
        assert!(matches!(
            config(&s),
            Err(PackageError::BadPath { bad: '"', .. })
        ));
        let mut s = spec();
        s.net = NetSpec::None;
        s.disks[0].path = "/img/a,b".into();
        assert!(matches!(
            config(&s),
            Err(PackageError::BadPath { bad: ',', .. })
        ));
        let mut s = spec();
        s.net = NetSpec::None;
        s.machine = Some(crate::qemu::Machine::Q35);
        assert!(matches!(config(&s), Err(PackageError::Machine { .. })));
        let mut s = spec();
        s.net = NetSpec::None;
        s.disks.clear();
        s.cmdline.clear();
        let text = xl_config(&s).unwrap();
        assert!(!text.contains("disk") && !text.contains("vif") && !text.contains("cmdline"));
        assert!(vdev(26).is_err());
        assert_eq!(vdev(1).unwrap(), "xvdb");
    }
}
