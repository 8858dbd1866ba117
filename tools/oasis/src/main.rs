//! `cargo oasis`: build, run, size and scaffold Oasis applications.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use oasis_cli::build::{self, BuildRequest, Target};
use oasis_cli::crash;
use oasis_cli::deploy::{self as dep, Virsh};
use oasis_cli::package::{Engine, VmOptions};
use oasis_cli::qemu::{self, Disk, GuestExit, Machine, Net, PortForward, Vm};
use oasis_cli::tls::{self, Outcome, TlsRun};

/// Where `deploy` can put an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DeployTarget {
    Libvirt,
}

/// What `run` boots the image on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Hypervisor {
    /// Directly on QEMU.
    Qemu,
    /// Under the Xen hypervisor inside QEMU, as Xen's PVH dom0 (no devices).
    Xen,
    /// Under Xen inside QEMU as a PVH domU of a Linux dom0 (bench/xen/run), on
    /// netfront; `--port` forwards reach it through the dom0's bridge.
    XenDomu,
}

#[derive(Parser)]
#[command(
    name = "cargo oasis",
    about = "Build and run Oasis unikernels",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build an application; prints the artifact's path as the last line.
    Build {
        app: String,
        #[arg(long, value_enum, default_value = "kvm")]
        target: Target,
        #[arg(long)]
        release: bool,
    },
    /// Build and run an application (under QEMU for `kvm`); exits with its status.
    Run {
        app: String,
        #[arg(long, value_enum, default_value = "kvm")]
        target: Target,
        #[arg(long)]
        release: bool,
        #[arg(long, value_enum, default_value = "microvm")]
        machine: Machine,
        /// `xen`: boot under Xen 4.17 in QEMU as its PVH dom0 (kvm target; Xen's log
        /// goes to a file, the guest's console to stdout). `xen-domu`: as a PVH domU
        /// of a Linux dom0 with a vif (netfront), `--port` forwarded to it. See
        /// docs/xen.md.
        #[arg(long, value_enum, default_value = "qemu")]
        hypervisor: Hypervisor,
        /// Guest memory in MiB (default: the app's `package.metadata.oasis.mem`, else 64).
        #[arg(long, value_parser = clap::value_parser!(u32).range(2..=65536))]
        mem: Option<u32>,
        /// Guest network: user, tap:NAME or none (user when --port is given).
        #[arg(long)]
        net: Option<Net>,
        /// Forward 127.0.0.1:HOST to the guest's GUEST port (TCP and UDP); repeatable.
        #[arg(long = "port", value_name = "HOST:GUEST")]
        ports: Vec<PortForward>,
        /// Attach a raw disk image as virtio-blk (`FILE` or `FILE:ro`); repeatable.
        #[arg(long = "disk", value_name = "FILE[:ro]")]
        disks: Vec<Disk>,
        /// Serve HTTPS with the development certificate (`cargo oasis cert`): built
        /// into the image, `--tls-port=443` booted, 127.0.0.1:8443 forwarded to it.
        #[arg(long)]
        tls: bool,
        /// Record the guest NIC's traffic to FILE (pcap; read it with tcpdump -r or
        /// Wireshark). kvm only, needs a network.
        #[arg(long, value_name = "FILE")]
        pcap: Option<qemu::Pcap>,
        /// Start the guest paused with QEMU's gdb stub on 127.0.0.1:PORT (default
        /// 1234) and print the gdb command that attaches. kvm only.
        #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true,
              default_missing_value = "1234")]
        gdb: Option<u16>,
        /// Arguments for the application (its command line on kvm).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Write an app's artefacts for other engines next to its release image.
    Package {
        app: String,
        /// Engines to write for (repeatable; default: all).
        #[arg(long = "for", value_enum)]
        engines: Vec<Engine>,
        #[command(flatten)]
        vm: VmOptions,
    },
    /// Build, package, define and start an app on libvirt; prints its address.
    Deploy {
        app: String,
        /// The engine (only libvirt can be driven from here).
        #[arg(long, value_enum, default_value = "libvirt")]
        to: DeployTarget,
        /// libvirt connection URI (default: $OASIS_LIBVIRT_URI, else qemu:///system).
        #[arg(long)]
        connect: Option<String>,
        /// Start N instances, NAME-0 … NAME-(N-1), at once: each with its own MAC and
        /// console, host ports and a static `--ipv4` address moved up by its index.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        replicas: u32,
        /// Ship the release image already built (`cargo oasis build APP --release`)
        /// without asking cargo whether it is current: a deploy of an artefact made
        /// earlier (CI builds once, deploys many times), ~0.3 s of CPU less.
        #[arg(long)]
        no_build: bool,
        #[command(flatten)]
        vm: VmOptions,
    },
    /// Power off a deployed VM (`--remove` also undefines it).
    Stop {
        name: String,
        #[arg(long)]
        connect: Option<String>,
        #[arg(long)]
        remove: bool,
    },
    /// A deployed VM's state and address.
    Status {
        name: String,
        #[arg(long)]
        connect: Option<String>,
    },
    /// A deployed VM's console output.
    Logs {
        name: String,
        #[arg(long)]
        connect: Option<String>,
    },
    /// Make a raw disk image for `--disk`.
    Image {
        #[command(subcommand)]
        kind: ImageKind,
    },
    /// Make the development CA and `localhost` certificate `run --tls` uses.
    Cert {
        /// Where (default: target/oasis/tls).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Make a new CA and certificate even if usable ones exist.
        #[arg(long)]
        force: bool,
    },
    /// Report an application's release image size by section.
    Size { app: String },
    /// Create a new application under appliances/.
    New { name: String },
}

#[derive(Subcommand)]
enum ImageKind {
    /// A tar image of DIR (e.g. a website for `www --disk`), padded to 4 KiB.
    Tar {
        dir: std::path::PathBuf,
        out: std::path::PathBuf,
        /// Pad the image to this many MiB.
        #[arg(long)]
        size: Option<u64>,
        /// Overwrite OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// A zeroed image (e.g. for `kv`, whose store formats itself on first mount).
    Empty {
        out: std::path::PathBuf,
        /// Size in MiB.
        #[arg(long)]
        size: u64,
        /// Overwrite OUT if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.cmd {
        Cmd::Build {
            app,
            target,
            release,
        } => {
            eprintln!(
                "oasis: building {app} for {} ({})",
                target.name(),
                profile(release)
            );
            let path = build::build(&BuildRequest {
                app,
                target,
                release,
                env: vec![],
                quiet: false,
            })?;
            println!("{}", path.display());
            Ok(0)
        }
        Cmd::Package { app, engines, vm } => {
            let all = engines.is_empty();
            let engines = if all { Engine::ALL.to_vec() } else { engines };
            let image = build_release(&app)?;
            for engine in engines {
                // Asked for everything: the OCI layout only where umoci is installed.
                if all && engine == Engine::Oci && oasis_cli::package::oci::find_umoci().is_none() {
                    eprintln!(
                        "oasis: skipping the OCI image: `umoci` not installed (apt-get install umoci)"
                    );
                    continue;
                }
                let spec = vm.spec(&app, &image, engine)?;
                // Asked for everything: Xen only where its vif can be expressed
                // (a bridge; a TAP given for the others is no Xen network).
                if all
                    && engine == Engine::Xen
                    && let Err(e) = spec.render(engine)
                {
                    eprintln!("oasis: skipping the Xen config: {e}");
                    continue;
                }
                // Only KubeVirt probes; elsewhere a load balancer checks.
                let health = match engine {
                    Engine::Kubevirt => vm.health(&app, &spec)?,
                    _ => None,
                };
                let dir = image.parent().context("image has no directory")?;
                let path = spec
                    .write_with_health(engine, dir, health.as_ref())
                    .with_context(|| format!("packaging {app} for {}", engine.name()))?;
                eprintln!("oasis: wrote {} for {}", path.display(), engine.name());
                println!("{}", path.display());
            }
            Ok(0)
        }
        Cmd::Deploy {
            app,
            to: DeployTarget::Libvirt,
            connect,
            replicas,
            no_build,
            vm,
        } => {
            if Virsh::find().is_none() {
                anyhow::bail!("{}", dep::DeployError::NoVirsh);
            }
            let virsh = Virsh::new(connect);
            build::check_app(&app)?;
            let image = build::artifact(&release_request(&app));
            let dir = image.parent().context("image has no directory")?;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            if no_build && !image.is_file() {
                anyhow::bail!(
                    "--no-build: there is no image at {} (build it: cargo oasis build {app} --release)",
                    image.display()
                );
            }
            // Packaging and defining need only the image's path, not the image: they
            // run while cargo checks (or rebuilds) it, several instances at once, each
            // on its own connection (libvirt serves them concurrently); nothing
            // starts unless the build succeeded and every instance is defined.
            let define = |i: usize| -> anyhow::Result<oasis_cli::package::VmSpec> {
                let spec =
                    vm.replica(&app, i as u32, replicas)?
                        .spec(&app, &image, Engine::Libvirt)?;
                let xml = spec.write(Engine::Libvirt, dir)?;
                if let Some(state) = virsh.define_replacing(&spec.name, &xml)? {
                    eprintln!("oasis: replaced {} ({state})", spec.name);
                }
                Ok(spec)
            };
            let (built, defined) = std::thread::scope(|s| {
                let build = (!no_build).then(|| s.spawn(|| build_release(&app)));
                let defined =
                    dep::for_each_at_once(replicas as usize, dep::CONCURRENT_CALLS, define);
                let built = build.map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("the build thread panicked")))
                });
                (built, defined)
            });
            if let Some(built) = built {
                built?;
            }
            let specs = defined.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
            // Start the instances (up to CONCURRENT_CALLS at once) and wait for each
            // to say it is ready.
            let results =
                dep::start_all(&virsh, &specs, "ready", std::time::Duration::from_secs(60));
            let mut failed = 0;
            for (spec, result) in specs.iter().zip(results) {
                let console = match result {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("oasis: {}: {e:#}", spec.name);
                        failed += 1;
                        continue;
                    }
                };
                for p in &spec.ports {
                    println!("127.0.0.1:{} -> guest port {}", p.host, p.guest);
                }
                match dep::address(&console) {
                    Some(a) => println!("{a}"),
                    None => eprintln!(
                        "oasis: the console names no address yet: `cargo oasis logs {}`",
                        spec.name
                    ),
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {replicas} instances did not become ready");
            }
            Ok(0)
        }
        Cmd::Stop {
            name,
            connect,
            remove,
        } => {
            let virsh = Virsh::new(connect);
            match virsh.state(&name).as_deref() {
                None => anyhow::bail!("no domain `{name}` on {}", virsh.uri),
                Some("shut off") => {}
                Some(_) => virsh.destroy(&name)?,
            }
            if remove {
                virsh.undefine(&name)?;
            }
            eprintln!(
                "oasis: {name} stopped{}",
                if remove { " and removed" } else { "" }
            );
            Ok(0)
        }
        Cmd::Status { name, connect } => {
            let virsh = Virsh::new(connect);
            let Some(state) = virsh.state(&name) else {
                println!("{name}: not defined on {}", virsh.uri);
                return Ok(3);
            };
            let addr = virsh
                .console_log(&name)
                .and_then(|p| dep::read_console(&p))
                .ok()
                .and_then(|c| dep::address(&c));
            match addr {
                Some(a) if state == "running" => println!("{name}: {state} at {a}"),
                _ => println!("{name}: {state}"),
            }
            Ok(if state == "running" { 0 } else { 3 })
        }
        Cmd::Logs { name, connect } => {
            let virsh = Virsh::new(connect);
            let path = virsh.console_log(&name)?;
            print!("{}", dep::read_console(&path)?);
            Ok(0)
        }
        Cmd::Image { kind } => {
            let (out, len) = match kind {
                ImageKind::Tar {
                    dir,
                    out,
                    size,
                    force,
                } => {
                    let len = oasis_cli::image::tar(&dir, &out, size, force)?;
                    (out, len)
                }
                ImageKind::Empty { out, size, force } => {
                    let len = oasis_cli::image::empty(&out, size, force)?;
                    (out, len)
                }
            };
            eprintln!("oasis: wrote {} ({len} bytes)", out.display());
            println!("{}", out.display());
            Ok(0)
        }
        Cmd::Size { app } => {
            eprintln!("oasis: building {app} for kvm (release)");
            let req = BuildRequest {
                app,
                target: Target::Kvm,
                release: true,
                env: vec![],
                quiet: false,
            };
            let path = build::build(&req)?;
            println!("{}", oasis_cli::size::report(&path)?);
            println!("{}", path.display());
            Ok(0)
        }
        Cmd::Cert { dir, force } => {
            let dir = dir.unwrap_or_else(tls::default_dir);
            let (cert, outcome) = tls::ensure(&dir, force)?;
            report_cert(&cert, outcome);
            println!("CA certificate:     {}", cert.ca.display());
            println!("CA key:             {}", cert.ca_key.display());
            println!(
                "server certificate: {} (localhost, 127.0.0.1, ::1; no chain)",
                cert.cert.display()
            );
            println!("server key:         {}", cert.key.display());
            println!();
            println!("{}", trust_hint(&cert.ca));
            Ok(0)
        }
        Cmd::New { name } => {
            let dir = oasis_cli::scaffold::new_app(&name)?;
            println!(
                "created {}; run it with `cargo oasis run {name}`",
                dir.display()
            );
            Ok(0)
        }
        Cmd::Run {
            app,
            target,
            release,
            machine,
            hypervisor,
            mem,
            net,
            mut ports,
            disks,
            tls,
            pcap,
            gdb,
            mut args,
        } => {
            build::check_app(&app)?;
            if hypervisor == Hypervisor::XenDomu {
                return run_as_xen_domu(XenDomuRun {
                    app: &app,
                    target,
                    release,
                    mem,
                    net,
                    ports,
                    disks: &disks,
                    extras: tls || pcap.is_some() || gdb.is_some(),
                    args,
                });
            }
            if target == Target::Sandbox {
                // A sealed Linux process on a TAP: no QEMU, no port forwarding.
                if pcap.is_some() || gdb.is_some() {
                    anyhow::bail!(
                        "--pcap and --gdb need QEMU (the kvm target); the sandbox is a Linux process: capture on its TAP with tcpdump -i NAME"
                    );
                }
                let mem = mem.or(build::run_defaults(&app)?.mem).unwrap_or(64);
                let mut args = oasis_cli::sandbox::process_args(
                    net.as_ref(),
                    &ports,
                    &disks,
                    mem,
                    tls,
                    &args,
                )?;
                let mut env = vec![];
                if tls {
                    let (cert, outcome) = tls::ensure(&tls::default_dir(), false)?;
                    report_cert(&cert, outcome);
                    let plan = TlsRun::new(&cert, target, net.as_ref())?;
                    plan.apply(&mut args, &mut ports)?;
                    env = plan.env;
                }
                eprintln!("oasis: building {app} for sandbox ({})", profile(release));
                let image = build::build(&BuildRequest {
                    app,
                    target,
                    release,
                    env,
                    quiet: false,
                })?;
                return oasis_cli::sandbox::run(&image, &args);
            }
            let mut target = target;
            let qemu_path = qemu::find_qemu();
            let xen = match hypervisor {
                Hypervisor::Qemu => None,
                Hypervisor::Xen => Some(find_or_fetch_xen(target, qemu_path.is_some())?),
                Hypervisor::XenDomu => unreachable!("handled above"),
            };
            if target == Target::Kvm && qemu_path.is_none() {
                eprintln!(
                    "oasis: QEMU is not installed; install it with:\n\n    {}\n",
                    qemu::INSTALL_HINT
                );
                eprintln!("oasis: running {app} hosted (as a Linux process) instead");
                target = Target::Hosted;
            }
            let defaults = build::run_defaults(&app)?;
            if ports.is_empty() && net.is_none() {
                for p in &defaults.ports {
                    ports.push(p.parse().map_err(|e| {
                        anyhow::anyhow!("appliances/{app}/Cargo.toml: port {p}: {e}")
                    })?);
                }
            }
            let https = match tls {
                false => None,
                true => {
                    let (cert, outcome) = tls::ensure(&tls::default_dir(), false)?;
                    report_cert(&cert, outcome);
                    let plan = TlsRun::new(&cert, target, net.as_ref())?;
                    plan.apply(&mut args, &mut ports)?;
                    Some((plan, cert))
                }
            };
            let mem = mem.or(defaults.mem).unwrap_or(64);
            let net = net.unwrap_or(if ports.is_empty() {
                Net::None
            } else {
                Net::User
            });
            if !ports.is_empty() && net != Net::User {
                anyhow::bail!(
                    "--port needs --net user (QEMU forwards ports only with user networking)"
                );
            }
            for d in &disks {
                if !d.path.is_file() {
                    anyhow::bail!("disk image {} does not exist", d.path.display());
                }
            }
            eprintln!(
                "oasis: building {app} for {} ({})",
                target.name(),
                profile(release)
            );
            let image = build::build(&BuildRequest {
                app: app.clone(),
                target,
                release,
                env: https
                    .as_ref()
                    .map(|(plan, _)| plan.env.clone())
                    .unwrap_or_default(),
                quiet: false,
            })?;
            let https_hint = https.as_ref().map(|(plan, cert)| {
                format!(
                    "oasis: HTTPS at {} (trust {})",
                    plan.url,
                    shown(&cert.ca).display()
                )
            });
            if target == Target::Hosted {
                if pcap.is_some() || gdb.is_some() {
                    anyhow::bail!(
                        "--pcap and --gdb need QEMU (the kvm target); a hosted app is a Linux process: use tcpdump -i lo or gdb --args {}",
                        shown(&image).display()
                    );
                }
                // Hosted apps listen on host ports directly: give the app the host
                // side of its first forward (e.g. www's 8080:80 -> --port=8080) unless
                // the user chose a port.
                let mut args = args;
                // Hosted apps open the disk files themselves (`--disk=FILE[:ro]`).
                // Before the user's arguments, which may end with `--` positionals.
                let disk_args = disks.iter().map(|d| {
                    let ro = if d.read_only { ":ro" } else { "" };
                    format!("--disk={}{ro}", d.path.display())
                });
                args.splice(0..0, disk_args);
                if let Some(p) = ports.first() {
                    if !args.iter().any(|a| a.starts_with("--port")) {
                        args.push(format!("--port={}", p.host));
                    }
                    eprintln!("oasis: serving on 127.0.0.1:{} (host sockets)", p.host);
                }
                if let Some(h) = &https_hint {
                    eprintln!("{h}");
                }
                let status = std::process::Command::new(&image)
                    .args(&args)
                    .status()
                    .with_context(|| format!("starting {}", image.display()))?;
                return Ok(status.code().map_or(1, |c| c as u8));
            }
            let qemu_path = qemu_path.context("QEMU vanished")?;
            let mut vm = Vm::new(qemu_path, image);
            vm.machine = machine;
            vm.mem_mib = mem;
            vm.net = net;
            vm.ports = ports;
            vm.disks = disks;
            vm.append = args.join(" ");
            if pcap.is_some() && vm.net == Net::None {
                anyhow::bail!("--pcap needs a network: add --net user or --port HOST:GUEST");
            }
            vm.pcap = pcap;
            vm.gdb = gdb;
            if let Some(xen) = xen {
                return run_on_xen(&app, &vm, &xen);
            }
            if let qemu::Accel::Tcg { reason } = &vm.accel {
                eprintln!("oasis: notice: using TCG (software emulation): {reason}");
            }
            for p in vm.ports.iter().filter(|p| p.guest == 80) {
                eprintln!(
                    "oasis: once the guest is ready, open http://127.0.0.1:{}/",
                    p.host
                );
            }
            if let Some(h) = &https_hint {
                eprintln!("{h}");
            }
            for p in &vm.ports {
                eprintln!(
                    "oasis: forwarding 127.0.0.1:{} -> guest port {} (tcp, udp)",
                    p.host, p.guest
                );
            }
            eprintln!(
                "oasis: booting {app} on {} with {} MiB ({})",
                machine.name(),
                mem,
                vm.accel.name()
            );
            if let Some(p) = &vm.pcap {
                eprintln!(
                    "oasis: recording the NIC's traffic to {} (read it with `tcpdump -r {} -A`)",
                    p.0.display(),
                    p.0.display()
                );
            }
            let symbols = match crash::Symbols::open(&vm.kernel) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("oasis: crash reports will not be symbolised: {e}");
                    None
                }
            };
            if let Some(port) = vm.gdb {
                let elf = shown(&vm.kernel);
                eprintln!(
                    "oasis: the guest waits for gdb on 127.0.0.1:{port}; attach with\n\n    {}\n\nthen `continue`.",
                    qemu::gdb_command(port, &elf, "__oasis_start")
                );
                match symbols.as_ref().is_some_and(|s| s.has_lines()) {
                    true => eprintln!(
                        "oasis: the image has line tables: `break {}::main::{{async_fn#0}}` stops in your async main, `break FILE:LINE` anywhere",
                        app.replace('-', "_")
                    ),
                    false => eprintln!(
                        "oasis: this image has symbol names but no line tables (release images carry no DWARF); drop --release for source lines (docs/observability.md)"
                    ),
                }
            }
            let exit = crash::run_guest(&mut vm.command(), symbols.as_ref(), std::io::stdout())
                .context("running QEMU")?;
            if !matches!(exit, GuestExit::Status(0) | GuestExit::PoweredOff) {
                eprintln!("oasis: {exit}");
            }
            Ok(exit.code().clamp(0, 255) as u8)
        }
    }
}

/// The Xen hypervisor for `run --hypervisor xen`: found, or fetched into target/
/// with `apt-get download` (saying so).
fn find_or_fetch_xen(target: Target, have_qemu: bool) -> anyhow::Result<std::path::PathBuf> {
    if target != Target::Kvm {
        anyhow::bail!("--hypervisor xen boots the kvm image; drop --target");
    }
    if !have_qemu {
        anyhow::bail!(
            "--hypervisor xen runs Xen inside QEMU, which is not installed: {}",
            qemu::INSTALL_HINT
        );
    }
    match oasis_cli::xen::find_xen() {
        Ok(p) => Ok(p),
        Err(oasis_cli::xen::XenError::Missing { .. }) => {
            eprintln!("oasis: Xen is not installed; fetching it (no system change)");
            oasis_cli::xen::fetch(|step| eprintln!("oasis: {step}")).with_context(|| {
                format!(
                    "fetching Xen failed; install it instead: {}",
                    oasis_cli::xen::INSTALL_HINT
                )
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// What `run --hypervisor xen-domu` was asked for.
struct XenDomuRun<'a> {
    app: &'a str,
    target: Target,
    release: bool,
    mem: Option<u32>,
    net: Option<Net>,
    ports: Vec<PortForward>,
    disks: &'a [Disk],
    /// `--tls`, `--pcap` or `--gdb` (not supported here).
    extras: bool,
    args: Vec<String>,
}

/// The domU's address on QEMU's user network, which the dom0 bridges to its vif.
const XEN_DOMU_IPV4: &str = "10.0.2.15/24";

/// `run --hypervisor xen-domu`: bench/xen/run boots Xen and a Linux dom0 in QEMU
/// (building the dom0 from Debian packages the first time), with a NIC on QEMU's
/// user network bridged to the domU's vif; the dom0 `xl create`s the image and
/// streams its console here until it exits. Exits with the guest's status.
fn run_as_xen_domu(r: XenDomuRun<'_>) -> anyhow::Result<u8> {
    let XenDomuRun {
        app,
        mut ports,
        mut args,
        ..
    } = r;
    if r.target != Target::Kvm {
        anyhow::bail!("--hypervisor xen-domu boots the kvm image; drop --target");
    }
    if r.extras || !r.disks.is_empty() {
        anyhow::bail!(
            "--hypervisor xen-domu does not take --tls, --pcap, --gdb or --disk yet (kv on a Xen disk: bench/xen/run --kv, see docs/xen.md)"
        );
    }
    if matches!(&r.net, Some(n) if *n != Net::User) {
        anyhow::bail!(
            "--hypervisor xen-domu: the domU's vif is bridged to QEMU's user network; only --net user"
        );
    }
    if qemu::find_qemu().is_none() {
        anyhow::bail!(
            "--hypervisor xen-domu runs Xen inside QEMU, which is not installed: {}",
            qemu::INSTALL_HINT
        );
    }
    let runner = oasis_cli::workspace_root().join("bench/xen/run");
    if !runner.is_file() {
        anyhow::bail!(
            "{} is missing (it ships with the Oasis checkout)",
            runner.display()
        );
    }
    if let Some(a) = args.iter().find(|a| a.contains('"')) {
        anyhow::bail!("argument {a:?}: a domU's command line cannot hold a double quote");
    }
    let defaults = build::run_defaults(app)?;
    if ports.is_empty() {
        for p in &defaults.ports {
            ports.push(
                p.parse()
                    .map_err(|e| anyhow::anyhow!("appliances/{app}/Cargo.toml: port {p}: {e}"))?,
            );
        }
    }
    let mem = r.mem.or(defaults.mem).unwrap_or(64);
    if !args.iter().any(|a| a.starts_with("--ipv4")) {
        args.insert(0, format!("--ipv4={XEN_DOMU_IPV4}"));
    }
    eprintln!("oasis: building {app} for kvm ({})", profile(r.release));
    let image = build::build(&BuildRequest {
        app: app.into(),
        target: Target::Kvm,
        release: r.release,
        env: vec![],
        quiet: false,
    })?;
    let mut cmd = std::process::Command::new(&runner);
    cmd.arg("--domu")
        .arg(&image)
        .args(["--vif", "--memory", &mem.to_string()])
        .arg(format!("--domu-cmdline={}", args.join(" ")))
        .args(["--follow", "--timeout", "0"]);
    for p in &ports {
        cmd.args(["--hostfwd", &format!("{}:{}", p.host, p.guest)]);
    }
    eprintln!(
        "oasis: booting {app} as a PVH domU ({mem} MiB) of a Linux dom0 under Xen in QEMU (TCG: about a minute; the dom0 is built from Debian packages the first time); its console follows"
    );
    for p in &ports {
        eprintln!(
            "oasis: forwarding 127.0.0.1:{} -> domU port {} (tcp)",
            p.host, p.guest
        );
    }
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", runner.display()))?;
    Ok(status.code().map_or(1, |c| c.clamp(0, 255) as u8))
}

/// Boots `vm` as Xen's PVH dom0 in QEMU: the guest's console on stdout, Xen's own
/// lines in `NAME.xen.log` beside the image; exits with the guest's status.
fn run_on_xen(app: &str, vm: &Vm, xen: &std::path::Path) -> anyhow::Result<u8> {
    let mut cmd = oasis_cli::xen::command(vm, xen)?;
    let log_path = vm.kernel.with_extension("xen.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!("oasis: Xen is {}", shown(xen).display());
    eprintln!(
        "oasis: booting {app} as Xen's PVH dom0 with {} MiB, Xen in QEMU q35 (TCG, slow: Xen itself takes a few seconds); Xen's log: {}",
        vm.mem_mib,
        shown(&log_path).display()
    );
    let symbols = crash::Symbols::open(&vm.kernel).ok();
    let out = oasis_cli::xen::SplitXenLog::new(std::io::stdout(), log);
    let exit = crash::run_guest(&mut cmd, symbols.as_ref(), out).context("running QEMU")?;
    if !matches!(exit, GuestExit::Status(0) | GuestExit::PoweredOff) {
        eprintln!("oasis: {exit} (Xen's log: {})", shown(&log_path).display());
    }
    Ok(exit.code().clamp(0, 255) as u8)
}

/// What `package` and `deploy` ship: `app`'s release kvm image.
fn release_request(app: &str) -> BuildRequest {
    BuildRequest {
        app: app.into(),
        target: Target::Kvm,
        release: true,
        env: vec![],
        quiet: false,
    }
}

/// Builds `app`'s release kvm image (what `package` and `deploy` ship).
fn build_release(app: &str) -> anyhow::Result<std::path::PathBuf> {
    build::check_app(app)?;
    eprintln!("oasis: building {app} for kvm (release)");
    build::build(&release_request(app))
}

/// Says whether the development certificate is new, and whether the CA must be
/// trusted anew.
fn report_cert(cert: &tls::DevCert, outcome: Outcome) {
    let dir = shown(&cert.dir);
    match outcome {
        Outcome::Reused => eprintln!(
            "oasis: using the development certificate in {}",
            dir.display()
        ),
        Outcome::Renewed => eprintln!(
            "oasis: renewed the development server certificate in {} (same CA)",
            dir.display()
        ),
        Outcome::Created => eprintln!(
            "oasis: created a development CA and server certificate in {}; clients must trust {} (`cargo oasis cert` says how)",
            dir.display(),
            shown(&cert.ca).display()
        ),
    }
}

/// How to trust the development CA.
fn trust_hint(ca: &std::path::Path) -> String {
    let ca = shown(ca).display().to_string();
    format!(
        "These are development keys: never deploy or commit them (target/ is git-ignored).
Trust the CA (it can only vouch for localhost, 127.0.0.0/8 and ::1):
  curl:     curl --cacert {ca} https://localhost:{port}/
  Firefox:  Settings > Privacy & Security > Certificates > View Certificates >
            Authorities > Import {ca}, tick \"Trust this CA to identify websites\"
  Chrome:   (Linux) certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n oasis-dev -i {ca}
            (elsewhere) Settings > Privacy and security > Security > Manage certificates
  system:   sudo cp {ca} /usr/local/share/ca-certificates/oasis-dev.crt && sudo update-ca-certificates",
        port = tls::HOST_PORT
    )
}

/// `path` relative to the current directory when it is below it.
fn shown(path: &std::path::Path) -> std::path::PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| path.to_path_buf())
}

fn profile(release: bool) -> &'static str {
    if release { "release" } else { "debug" }
}
