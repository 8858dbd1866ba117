//! An OCI image layout (`NAME.oci/`) holding the image at `/boot/NAME`, annotated for
//! unikernel OCI runtimes the way urunc reads them, built by `umoci` (Debian's
//! `umoci` package) and readable by `skopeo`, `podman`, `crane`…
//!
//! urunc's annotations (its `docs/package/index.md`): `com.urunc.unikernel.`
//! `unikernelType`, `hypervisor` and `binary` (required), `cmdline`,
//! `unikernelVersion`, `mountRootfs` (optional; `block`/`initrd` are not used: the
//! image carries no disks). They are written three times, as urunc's packagers
//! (bunny) do, because not every container engine passes the same ones on: as
//! manifest annotations, as image-config labels, and in `/urunc.json` at the root
//! of the image with base64 values (what urunc reads when the engine, e.g. Docker,
//! drops annotations).
//!
//! `unikernelType` is `oasis`: urunc has no Oasis backend (it knows unikraft,
//! rumprun, mirage, linux…), so urunc itself refuses the image until one is added;
//! the values are what such a backend would read (a PVH ELF kernel that takes the
//! app's arguments as its whole command line, on `qemu`). The same image is
//! KubeVirt's kernel-boot container (kernel at `/boot/NAME`, as `NAME.kubevirt.json`
//! expects), so one `skopeo copy` serves both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::{PackageError, VmSpec};

const ENGINE: &str = "OCI";

/// urunc's annotations, under the names urunc reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UruncAnnotations {
    #[serde(rename = "com.urunc.unikernel.unikernelType")]
    pub unikernel_type: String,
    #[serde(rename = "com.urunc.unikernel.hypervisor")]
    pub hypervisor: String,
    /// The kernel's path inside the image.
    #[serde(rename = "com.urunc.unikernel.binary")]
    pub binary: String,
    /// The application's command line (our kernel command line).
    #[serde(rename = "com.urunc.unikernel.cmdline")]
    pub cmdline: String,
    #[serde(rename = "com.urunc.unikernel.unikernelVersion")]
    pub unikernel_version: String,
    /// `false`: the image's rootfs holds only the kernel; nothing to mount.
    #[serde(rename = "com.urunc.unikernel.mountRootfs")]
    pub mount_rootfs: String,
}

/// Every annotation of the image: urunc's plus the OCI pre-defined ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotations {
    #[serde(flatten)]
    pub urunc: UruncAnnotations,
    #[serde(rename = "org.opencontainers.image.title")]
    pub title: String,
    #[serde(rename = "org.opencontainers.image.version")]
    pub version: String,
    #[serde(rename = "org.opencontainers.image.description")]
    pub description: String,
}

/// Where the kernel lives inside the image (KubeVirt's `kernelPath` too).
pub fn kernel_path(name: &str) -> String {
    format!("/boot/{name}")
}

/// The annotations for `spec`.
pub fn annotations(spec: &VmSpec) -> Annotations {
    let version = env!("CARGO_PKG_VERSION").to_string();
    Annotations {
        urunc: UruncAnnotations {
            unikernel_type: "oasis".into(),
            hypervisor: "qemu".into(),
            binary: kernel_path(&spec.name),
            cmdline: spec.cmdline.clone(),
            unikernel_version: version.clone(),
            mount_rootfs: "false".into(),
        },
        title: spec.name.clone(),
        version,
        description: format!(
            "Oasis unikernel `{}` (PVH ELF at {}; {} MiB)",
            spec.name,
            kernel_path(&spec.name),
            spec.mem_mib
        ),
    }
}

/// The annotations as key/value pairs.
pub fn annotation_map(spec: &VmSpec) -> Result<BTreeMap<String, String>, PackageError> {
    let v = serde_json::to_value(annotations(spec)).map_err(|e| PackageError::Serialise {
        engine: ENGINE,
        why: e.to_string(),
    })?;
    serde_json::from_value(v).map_err(|e| PackageError::Serialise {
        engine: ENGINE,
        why: e.to_string(),
    })
}

/// `/urunc.json`: urunc's annotations with base64 values.
pub fn urunc_json(spec: &VmSpec) -> Result<String, PackageError> {
    let v = serde_json::to_value(annotations(spec).urunc).map_err(|e| PackageError::Serialise {
        engine: ENGINE,
        why: e.to_string(),
    })?;
    let plain: BTreeMap<String, String> =
        serde_json::from_value(v).map_err(|e| PackageError::Serialise {
            engine: ENGINE,
            why: e.to_string(),
        })?;
    let encoded: BTreeMap<String, String> = plain
        .into_iter()
        .map(|(k, v)| (k, base64(v.as_bytes())))
        .collect();
    let mut s = serde_json::to_string_pretty(&encoded).map_err(|e| PackageError::Serialise {
        engine: ENGINE,
        why: e.to_string(),
    })?;
    s.push('\n');
    Ok(s)
}

/// The layout's tag: the tag of `--container-image` (`oasis/www:1` → `1`), else
/// `latest`.
pub fn tag(spec: &VmSpec) -> String {
    let image = &spec.container_image;
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, t)) if !t.is_empty() => t.to_string(),
        _ => "latest".into(),
    }
}

/// Standard base64 (RFC 4648, padded), as Go's `base64.StdEncoding` that urunc uses.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `umoci` on PATH (or `OASIS_UMOCI`).
pub fn find_umoci() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OASIS_UMOCI") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("umoci"))
        .find(|p| p.is_file())
}

fn umoci(umoci: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(umoci)
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", umoci.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "umoci {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Builds the layout `dir/NAME.oci` (replacing one there) with `umoci`: the kernel at
/// `/boot/NAME`, `/urunc.json`, and the annotations on the manifest and as labels.
/// Returns the layout's path; `oci:PATH:TAG` names the image for skopeo.
pub fn write_layout(spec: &VmSpec, dir: &Path) -> anyhow::Result<PathBuf> {
    let umoci_bin = find_umoci().ok_or_else(|| {
        anyhow::anyhow!("`umoci` not found (apt-get install umoci), needed for the OCI image")
    })?;
    let layout = dir.join(super::Engine::Oci.file_name(&spec.name));
    let text = |p: &Path| super::utf8(p).map_err(anyhow::Error::from);
    if layout.exists() {
        std::fs::remove_dir_all(&layout)
            .map_err(|e| anyhow::anyhow!("removing {}: {e}", layout.display()))?;
    }
    let staging = dir.join(format!(".{}.oci-staging", spec.name));
    std::fs::create_dir_all(&staging)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", staging.display()))?;
    let result = (|| {
        let urunc = staging.join("urunc.json");
        std::fs::write(&urunc, urunc_json(spec)?)?;
        let l = text(&layout)?;
        let image = format!("{l}:{}", tag(spec));
        // Not root: umoci must not try to chown the inserted files.
        let rootless = !is_root();
        let insert = |src: &str, dst: &str| {
            let mut a = vec!["insert"];
            if rootless {
                a.push("--rootless");
            }
            a.extend(["--image", &image, src, dst]);
            umoci(&umoci_bin, &a)
        };
        umoci(&umoci_bin, &["init", "--layout", &l])?;
        umoci(&umoci_bin, &["new", "--image", &image])?;
        insert(&text(&spec.kernel)?, &kernel_path(&spec.name))?;
        insert(&text(&urunc)?, "/urunc.json")?;
        let map = annotation_map(spec)?;
        let mut args: Vec<String> = [
            "config",
            "--image",
            &image,
            "--os",
            "linux",
            "--architecture",
            "amd64",
            "--author",
            "oasis",
        ]
        .map(String::from)
        .into();
        // No process runs from the image's rootfs; the entrypoint names the kernel
        // for humans and for runtimes that insist on one.
        args.extend(["--config.cmd".into(), kernel_path(&spec.name)]);
        for (k, v) in &map {
            args.push("--config.label".into());
            args.push(format!("{k}={v}"));
            args.push("--manifest.annotation".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        umoci(&umoci_bin, &args)?;
        umoci(&umoci_bin, &["gc", "--layout", &l])?;
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&layout);
        return Err(e);
    }
    Ok(layout)
}

fn is_root() -> bool {
    // /proc/self/status: `Uid:\treal\teffective…`; no libc in this crate.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Engine;
    use crate::package::tests::spec;

    #[test]
    fn base64_matches_rfc4648() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn annotations_use_uruncs_names() {
        let s = spec();
        let m = annotation_map(&s).unwrap();
        assert_eq!(m["com.urunc.unikernel.unikernelType"], "oasis");
        assert_eq!(m["com.urunc.unikernel.hypervisor"], "qemu");
        assert_eq!(m["com.urunc.unikernel.binary"], "/boot/www");
        assert_eq!(
            m["com.urunc.unikernel.cmdline"],
            "--ipv4=10.0.0.2/24 -l debug"
        );
        assert_eq!(m["com.urunc.unikernel.mountRootfs"], "false");
        assert_eq!(m["org.opencontainers.image.title"], "www");
        assert_eq!(m.len(), 9);
        // urunc.json: the same keys, base64 values; parses back into the type.
        let j: BTreeMap<String, String> = serde_json::from_str(&urunc_json(&s).unwrap()).unwrap();
        assert_eq!(j.len(), 6);
        assert_eq!(j["com.urunc.unikernel.binary"], base64(b"/boot/www"));
        assert_eq!(s.render(Engine::Oci).unwrap(), urunc_json(&s).unwrap());
    }

    fn on_path(tool: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    }

    fn run(cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Builds a layout with umoci from a stand-in kernel, then reads it back with the
    /// tools operators use: `skopeo inspect` (config labels, manifest annotations)
    /// and `umoci unpack` (the kernel and `/urunc.json` in the rootfs).
    #[test]
    fn umoci_builds_a_layout_skopeo_and_umoci_read() {
        let missing: Vec<&str> = ["umoci", "skopeo"]
            .into_iter()
            .filter(|t| !on_path(t))
            .collect();
        if !missing.is_empty() {
            assert!(
                std::env::var_os("OASIS_REQUIRE_OCI").is_none_or(|v| v != "1"),
                "OASIS_REQUIRE_OCI=1 but {missing:?} not installed"
            );
            eprintln!("skipping: {missing:?} not installed (apt-get install umoci skopeo)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("oasis-oci-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kernel = dir.join("www");
        let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&kernel, &bytes).unwrap();
        let mut s = spec();
        s.kernel = kernel;
        let layout = s.write(Engine::Oci, &dir).unwrap();
        assert_eq!(layout, dir.join("www.oci"));
        // Written twice: the second replaces the first.
        let layout = s.write(Engine::Oci, &dir).unwrap();
        let image = format!("oci:{}:1", layout.display());
        let want = annotation_map(&s).unwrap();

        let info: serde_json::Value =
            serde_json::from_str(&run("skopeo", &["inspect", &image])).unwrap();
        assert_eq!(info["Os"], "linux");
        assert_eq!(info["Architecture"], "amd64");
        let labels: BTreeMap<String, String> =
            serde_json::from_value(info["Labels"].clone()).unwrap();
        assert_eq!(labels, want);
        let manifest: serde_json::Value =
            serde_json::from_str(&run("skopeo", &["inspect", "--raw", &image])).unwrap();
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let annots: BTreeMap<String, String> =
            serde_json::from_value(manifest["annotations"].clone()).unwrap();
        assert_eq!(annots, want);

        let bundle = dir.join("bundle");
        let l = layout.display().to_string();
        let mut unpack = vec!["unpack"];
        if !is_root() {
            unpack.push("--rootless");
        }
        let b = bundle.display().to_string();
        let img = format!("{l}:1");
        unpack.extend(["--image", &img, &b]);
        run("umoci", &unpack);
        let rootfs = bundle.join("rootfs");
        assert_eq!(std::fs::read(rootfs.join("boot/www")).unwrap(), bytes);
        let j: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(rootfs.join("urunc.json")).unwrap()).unwrap();
        assert_eq!(j["com.urunc.unikernel.unikernelType"], base64(b"oasis"));
        assert_eq!(j["com.urunc.unikernel.hypervisor"], base64(b"qemu"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tag_comes_from_the_container_image() {
        let mut s = spec();
        assert_eq!(tag(&s), "1");
        s.container_image = "localhost:5000/oasis/www".into();
        assert_eq!(tag(&s), "latest");
        s.container_image = "oasis/www:".into();
        assert_eq!(tag(&s), "latest");
    }
}
