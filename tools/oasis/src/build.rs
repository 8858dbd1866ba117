//! Building an application for a target with cargo.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// Where an application runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A PVH unikernel image for QEMU/KVM, Firecracker, Cloud Hypervisor.
    Kvm,
    /// A Linux process.
    Hosted,
    /// A Linux process sealed by seccomp, its network a TAP (docs/sandbox.md).
    Sandbox,
}

impl Target {
    /// The rustc target triple, `None` for the host.
    pub fn triple(self) -> Option<&'static str> {
        match self {
            Target::Kvm => Some("x86_64-unknown-none"),
            Target::Hosted => None,
            // The host's own triple, named so that cargo keeps the sandboxed build
            // (another feature set) in its own directory beside the hosted one.
            Target::Sandbox => Some("x86_64-unknown-linux-gnu"),
        }
    }

    /// Cargo features the build turns on (`--features`).
    pub fn features(self) -> Option<&'static str> {
        match self {
            Target::Sandbox => Some("oasis/sandbox"),
            Target::Kvm | Target::Hosted => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Kvm => "kvm",
            Target::Hosted => "hosted",
            Target::Sandbox => "sandbox",
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub app: String,
    pub target: Target,
    pub release: bool,
    /// Extra environment for cargo (e.g. `OASIS_SITE_DIR` for www).
    pub env: Vec<(String, String)>,
    /// Print nothing but errors.
    pub quiet: bool,
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

/// Path of the artifact a build produces.
pub fn artifact(req: &BuildRequest) -> PathBuf {
    let mut p = target_dir();
    if let Some(t) = req.target.triple() {
        p.push(t);
    }
    p.push(if req.release { "release" } else { "debug" });
    p.push(&req.app);
    p
}

/// Checks that `app` is a workspace application (a directory in `appliances/`).
pub fn check_app(app: &str) -> anyhow::Result<()> {
    let dir = crate::workspace_root().join("appliances").join(app);
    if !dir.join("Cargo.toml").is_file() {
        let known: Vec<String> = std::fs::read_dir(crate::workspace_root().join("appliances"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("Cargo.toml").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        bail!(
            "no application `{app}` in appliances/ (known: {}); create one with `cargo oasis new {app}`",
            known.join(", ")
        );
    }
    Ok(())
}

/// Runs cargo; cargo's own progress goes to stderr. Returns the artifact path.
pub fn build(req: &BuildRequest) -> anyhow::Result<PathBuf> {
    check_app(&req.app)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(crate::workspace_root())
        .args(["build", "-p", &req.app, "--bin", &req.app]);
    if let Some(t) = req.target.triple() {
        cmd.args(["--target", t]);
    }
    if let Some(f) = req.target.features() {
        cmd.args(["--features", f]);
    }
    if req.release {
        cmd.arg("--release");
    }
    if req.quiet {
        cmd.arg("--quiet");
    }
    for (k, v) in &req.env {
        cmd.env(k, v);
    }
    let status = cmd.status().context("could not start cargo")?;
    if !status.success() {
        bail!(
            "building `{}` for {} failed (see cargo's messages above)",
            req.app,
            req.target.name()
        );
    }
    let path = artifact(req);
    if !path.is_file() {
        bail!("cargo succeeded but {} is missing", path.display());
    }
    Ok(path)
}

/// Defaults an application declares for `cargo oasis run` in its Cargo.toml:
///
/// ```toml
/// [package.metadata.oasis]
/// ports = ["8080:80"]   # forwarded when `run` is given no --port/--net
/// mem = 32              # MiB, when `run` is given no --mem
/// health = "/healthz"   # HTTP health check on the first port (`package`: KubeVirt probes)
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunDefaults {
    pub ports: Vec<String>,
    pub mem: Option<u32>,
    /// The path of the app's HTTP health check (`health = "/healthz"`), answered
    /// on its first declared port.
    pub health: Option<String>,
}

/// Reads an application's [`RunDefaults`].
pub fn run_defaults(app: &str) -> anyhow::Result<RunDefaults> {
    #[derive(serde::Deserialize, Default)]
    struct Manifest {
        #[serde(default)]
        package: Package,
    }
    #[derive(serde::Deserialize, Default)]
    struct Package {
        #[serde(default)]
        metadata: Metadata,
    }
    #[derive(serde::Deserialize, Default)]
    struct Metadata {
        #[serde(default)]
        oasis: Oasis,
    }
    #[derive(serde::Deserialize, Default)]
    struct Oasis {
        #[serde(default)]
        ports: Vec<String>,
        mem: Option<u32>,
        health: Option<String>,
    }
    let path = crate::workspace_root()
        .join("appliances")
        .join(app)
        .join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let m: Manifest =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(RunDefaults {
        ports: m.package.metadata.oasis.ports,
        mem: m.package.metadata.oasis.mem,
        health: m.package.metadata.oasis.health,
    })
}
