//! `cargo oasis cert` and `run --tls`: a development CA and a `localhost` server
//! certificate signed by it (rcgen on the host, ECDSA P-256), and what a TLS run adds
//! to the build (the files `os/build.rs` embeds), the boot arguments and the port
//! forwards.
//!
//! These are development keys, not for deployment: they live under `target/`
//! (ignored by git), the key files are mode 0600, and the CA is name-constrained to
//! `localhost`, 127.0.0.0/8 and ::1, so a leaked CA key cannot vouch for another site.
//!
//! rcgen writes certificates but cannot read them, so each certificate's expiry is
//! kept beside it as a Unix time (`ca.expires`, `localhost.expires`), and a CA that is
//! kept is rebuilt for signing from its key and its fixed name.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
};

use crate::build::Target;
use crate::qemu::{Net, PortForward};

const DAY: u64 = 86_400;
/// Lifetime of a new CA.
pub const CA_DAYS: u64 = 365;
/// Lifetime of a new server certificate (never past its CA's).
pub const SERVER_DAYS: u64 = 90;
/// A certificate that expires within this many days is replaced.
pub const RENEW_DAYS: u64 = 7;
/// Backdating of `notBefore`, for a guest clock a little behind the host's.
const BACKDATE_SECS: u64 = 3600;
/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// The CA's subject: fixed, so a kept CA can be rebuilt from its key for signing.
const CA_COMMON_NAME: &str = "Oasis development CA";
const ORGANIZATION: &str = "Oasis development";

/// The host port `run --tls` forwards to the guest's HTTPS port.
pub const HOST_PORT: u16 = 8443;
/// The guest's HTTPS port under `run --tls` on kvm.
pub const GUEST_PORT: u16 = 443;

/// What went wrong making or finding the development certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("creating {path}: {why}")]
    CreateDir { path: PathBuf, why: std::io::Error },
    #[error("writing {path}: {why}")]
    Write { path: PathBuf, why: std::io::Error },
    #[error("reading {path}: {why}")]
    Read { path: PathBuf, why: std::io::Error },
    #[error(
        "{path} is not a key rcgen can load ({why}); `cargo oasis cert --force` makes a new CA"
    )]
    Key { path: PathBuf, why: rcgen::Error },
    #[error("generating the {what}: {why}")]
    Generate {
        what: &'static str,
        why: rcgen::Error,
    },
    #[error("the system clock reads {0} s after 1970, which a certificate cannot hold")]
    Clock(i128),
}

/// The files of a development certificate directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCert {
    pub dir: PathBuf,
    /// The CA certificate: what clients trust.
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    /// The server certificate alone (no chain: clients hold the CA).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl DevCert {
    /// The paths under `dir` (nothing is read).
    pub fn at(dir: &Path) -> DevCert {
        DevCert {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("localhost.pem"),
            key: dir.join("localhost-key.pem"),
        }
    }

    fn ca_expires(&self) -> PathBuf {
        self.dir.join("ca.expires")
    }

    fn cert_expires(&self) -> PathBuf {
        self.dir.join("localhost.expires")
    }
}

/// `target/oasis/tls` (in `CARGO_TARGET_DIR` when set).
pub fn default_dir() -> PathBuf {
    crate::build::target_dir().join("oasis").join("tls")
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both certificates were kept.
    Reused,
    /// The CA was kept, the server certificate made anew.
    Renewed,
    /// A new CA (and server certificate): clients must trust the new `ca.pem`.
    Created,
}

/// Makes the development CA and server certificate in `dir` unless usable ones are
/// there: a certificate is kept unless `force`, a file is missing, or it expires
/// within [`RENEW_DAYS`].
pub fn ensure(dir: &Path, force: bool) -> Result<(DevCert, Outcome), CertError> {
    let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs(),
        Err(e) => return Err(CertError::Clock(-(e.duration().as_secs() as i128))),
    };
    ensure_at(dir, force, now)
}

/// [`ensure`] at the Unix time `now`.
pub fn ensure_at(dir: &Path, force: bool, now: u64) -> Result<(DevCert, Outcome), CertError> {
    let files = DevCert::at(dir);
    create_dir(dir)?;
    let renew_before = now + RENEW_DAYS * DAY;
    let keep = |expires: &Path, pems: [&Path; 2]| {
        !force
            && pems.iter().all(|p| p.is_file())
            && read_expiry(expires).is_some_and(|t| t > renew_before)
    };

    let (ca_key, ca_expires, outcome) = if keep(&files.ca_expires(), [&files.ca, &files.ca_key]) {
        let pem = fs::read_to_string(&files.ca_key).map_err(|why| CertError::Read {
            path: files.ca_key.clone(),
            why,
        })?;
        let key = KeyPair::from_pem(&pem).map_err(|why| CertError::Key {
            path: files.ca_key.clone(),
            why,
        })?;
        let expires = read_expiry(&files.ca_expires()).unwrap_or(0);
        let outcome = if keep(&files.cert_expires(), [&files.cert, &files.key]) {
            Outcome::Reused
        } else {
            Outcome::Renewed
        };
        (key, expires, outcome)
    } else {
        // The expiry files are the commit marks: drop them first, so a run cut short
        // never keeps a certificate whose partner was replaced.
        remove(&files.cert_expires())?;
        remove(&files.ca_expires())?;
        let key = new_key("CA key")?;
        let expires = now + CA_DAYS * DAY;
        let ca = ca_params(now, expires)?
            .self_signed(&key)
            .map_err(|why| CertError::Generate { what: "CA", why })?;
        write(&files.ca_key, key.serialize_pem().as_bytes(), 0o600)?;
        write(&files.ca, ca.pem().as_bytes(), 0o644)?;
        write(
            &files.ca_expires(),
            format!("{expires}\n").as_bytes(),
            0o644,
        )?;
        (key, expires, Outcome::Created)
    };
    if outcome == Outcome::Reused {
        return Ok((files, outcome));
    }

    remove(&files.cert_expires())?;
    // Only the CA's name, key and key identifier reach the server certificate.
    let issuer = ca_params(now, ca_expires)?
        .self_signed(&ca_key)
        .map_err(|why| CertError::Generate { what: "CA", why })?;
    let key = new_key("server key")?;
    let expires = (now + SERVER_DAYS * DAY).min(ca_expires);
    let cert = server_params(now, expires)?
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|why| CertError::Generate {
            what: "server certificate",
            why,
        })?;
    write(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write(&files.cert, cert.pem().as_bytes(), 0o644)?;
    write(
        &files.cert_expires(),
        format!("{expires}\n").as_bytes(),
        0o644,
    )?;
    Ok((files, outcome))
}

fn new_key(what: &'static str) -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|why| CertError::Generate { what, why })
}

fn ca_params(now: u64, expires: u64) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(CA_COMMON_NAME);
    p.not_before = time(now.saturating_sub(BACKDATE_SECS))?;
    p.not_after = time(expires)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // RFC 5280 §4.2.1.10: whatever this CA signs must be named in these subtrees.
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([127, 0, 0, 0], 8)),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                std::net::Ipv6Addr::LOCALHOST.into(),
                128,
            )),
        ],
        excluded_subtrees: vec![],
    });
    Ok(p)
}

fn server_params(now: u64, expires: u64) -> Result<CertificateParams, CertError> {
    let names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).map_err(|why| CertError::Generate {
        what: "server certificate's names",
        why,
    })?;
    p.distinguished_name = name("localhost");
    p.not_before = time(now.saturating_sub(BACKDATE_SECS))?;
    p.not_after = time(expires)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn time(unix: u64) -> Result<time::OffsetDateTime, CertError> {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or(CertError::Clock(i128::from(unix)))
}

/// The Unix time in an expiry file; `None` when it is missing or unreadable (the
/// certificate is then made anew).
fn read_expiry(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|why| CertError::CreateDir {
            path: dir.to_path_buf(),
            why,
        })
}

fn remove(path: &Path) -> Result<(), CertError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CertError::Write {
            path: path.to_path_buf(),
            why: e,
        }),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` with `mode` through a temporary file renamed into place;
/// a key is never readable by others, not even while it is written.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let err = |why| CertError::Write {
        path: path.to_path_buf(),
        why,
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// What `run --tls` adds to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRun {
    /// Build environment: the files `os/build.rs` embeds in the image.
    pub env: Vec<(String, String)>,
    /// The boot argument that turns HTTPS on.
    pub arg: String,
    /// From the host to the guest's HTTPS port (kvm under user networking).
    pub forward: Option<PortForward>,
    /// Where HTTPS will be, for the user.
    pub url: String,
}

/// Why `run --tls` cannot go ahead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsRunError {
    #[error("--tls needs a network; drop --net none")]
    NoNetwork,
    #[error("--tls sets {given} itself (as {ours}); drop one of them")]
    PortArgGiven { given: String, ours: String },
    #[error(
        "--tls forwards 127.0.0.1:{HOST_PORT} to the guest's port {GUEST_PORT}, but --port already forwards it to {0}"
    )]
    HostPortTaken(u16),
}

impl TlsRun {
    /// The plan for `target`, `net` being the `--net` the user gave (if any).
    pub fn new(cert: &DevCert, target: Target, net: Option<&Net>) -> Result<TlsRun, TlsRunError> {
        let env = vec![
            (
                "OASIS_TLS_CERT".to_string(),
                cert.cert.display().to_string(),
            ),
            ("OASIS_TLS_KEY".to_string(), cert.key.display().to_string()),
        ];
        let localhost = format!("https://localhost:{HOST_PORT}/");
        let (port, forward, url) = match (target, net) {
            // A process listens on the host itself.
            (Target::Hosted, _) => (HOST_PORT, None, localhost),
            (Target::Kvm, Some(Net::None)) => return Err(TlsRunError::NoNetwork),
            (Target::Kvm | Target::Sandbox, Some(Net::Tap(_))) => (
                GUEST_PORT,
                None,
                "https://GUEST-ADDRESS/ (the address the guest prints)".into(),
            ),
            // The sandbox's only network is a TAP.
            (Target::Sandbox, _) => return Err(TlsRunError::NoNetwork),
            (Target::Kvm, None | Some(Net::User)) => (
                GUEST_PORT,
                Some(PortForward {
                    host: HOST_PORT,
                    guest: GUEST_PORT,
                }),
                localhost,
            ),
        };
        Ok(TlsRun {
            env,
            arg: format!("--tls-port={port}"),
            forward,
            url,
        })
    }

    /// Adds the boot argument (first: the user's may end with `--` positionals) and
    /// the forward (after the app's).
    pub fn apply(
        &self,
        args: &mut Vec<String>,
        ports: &mut Vec<PortForward>,
    ) -> Result<(), TlsRunError> {
        if let Some(given) = args
            .iter()
            .take_while(|a| *a != "--")
            .find(|a| *a == "--tls-port" || a.starts_with("--tls-port="))
        {
            return Err(TlsRunError::PortArgGiven {
                given: given.clone(),
                ours: self.arg.clone(),
            });
        }
        if let Some(f) = self.forward {
            match ports.iter().find(|p| p.host == f.host) {
                Some(p) if *p == f => {}
                Some(p) => return Err(TlsRunError::HostPortTaken(p.guest)),
                None => ports.push(f),
            }
        }
        args.insert(0, self.arg.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    /// 2025-01-01T00:00:00Z.
    const NOW: u64 = 1_735_689_600;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oasis-cert-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn der(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(&fs::read(path).unwrap()).unwrap()
    }

    /// Verifies the server certificate against the CA for `name` at `at`, the way a
    /// client does (chain, name constraints, validity, server-auth EKU).
    fn verify(c: &DevCert, name: &str, at: u64) -> Result<(), String> {
        let ca = der(&c.ca);
        let leaf = der(&c.cert);
        let e = |e: webpki::Error| format!("{e:?}");
        let anchors = [webpki::anchor_from_trusted_cert(&ca).map_err(e)?];
        let ee = webpki::EndEntityCert::try_from(&leaf).map_err(e)?;
        ee.verify_for_usage(
            &[webpki::ring::ECDSA_P256_SHA256],
            &anchors,
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(at)),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(e)?;
        let name = ServerName::try_from(name).map_err(|e| format!("{name}: {e}"))?;
        ee.verify_is_valid_for_subject_name(&name).map_err(e)
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn makes_a_ca_and_a_server_certificate_clients_accept() {
        let dir = tmpdir("make");
        let (c, outcome) = ensure_at(&dir, false, NOW).unwrap();
        assert_eq!(outcome, Outcome::Created);
        for p in [&c.ca, &c.ca_key, &c.cert, &c.key] {
            assert!(p.is_file(), "{} missing", p.display());
        }
        assert_eq!(mode(&c.key), 0o600);
        assert_eq!(mode(&c.ca_key), 0o600);
        // The leaf alone, no chain.
        let pem = fs::read_to_string(&c.cert).unwrap();
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1);
        assert!(
            fs::read_to_string(&c.key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        for name in SERVER_NAMES {
            verify(&c, name, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verify(&c, "example.com", NOW).is_err());
        // 90 days, then expired.
        assert!(verify(&c, "localhost", NOW + (SERVER_DAYS - 1) * DAY).is_ok());
        assert!(verify(&c, "localhost", NOW + (SERVER_DAYS + 1) * DAY).is_err());
        assert_eq!(
            read_expiry(&c.cert_expires()),
            Some(NOW + SERVER_DAYS * DAY)
        );
        assert_eq!(read_expiry(&c.ca_expires()), Some(NOW + CA_DAYS * DAY));
        openssl_agrees(&c);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The same checks by OpenSSL (what curl uses), where it is installed.
    fn openssl_agrees(c: &DevCert) {
        let run = |args: &[&str]| std::process::Command::new("openssl").args(args).output();
        let Ok(out) = run(&["x509", "-noout", "-ext", "subjectAltName", "-in"]
            .iter()
            .copied()
            .chain([c.cert.to_str().unwrap()])
            .collect::<Vec<_>>())
        else {
            eprintln!("openssl is not installed: skipping its checks");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        for want in [
            "DNS:localhost",
            "IP Address:127.0.0.1",
            "IP Address:0:0:0:0:0:0:0:1",
        ] {
            assert!(text.contains(want), "{want} not in {text}");
        }
        // Dated for the real clock: verify only the chain and names, at NOW.
        let out = run(&[
            "verify",
            "-attime",
            &NOW.to_string(),
            "-CAfile",
            c.ca.to_str().unwrap(),
            "-verify_hostname",
            "localhost",
            c.cert.to_str().unwrap(),
        ])
        .unwrap();
        assert!(out.status.success(), "openssl verify: {out:?}");
    }

    #[test]
    fn reuses_renews_and_forces() {
        let dir = tmpdir("reuse");
        let (c, _) = ensure_at(&dir, false, NOW).unwrap();
        let read = |p: &Path| fs::read(p).unwrap();
        let (ca0, leaf0) = (read(&c.ca), read(&c.cert));

        // A month later: both kept.
        let later = NOW + 30 * DAY;
        assert_eq!(ensure_at(&dir, false, later).unwrap().1, Outcome::Reused);
        assert_eq!((read(&c.ca), read(&c.cert)), (ca0.clone(), leaf0.clone()));

        // Within a week of the server certificate's expiry: a new one from the same CA.
        let late = NOW + (SERVER_DAYS - RENEW_DAYS + 1) * DAY;
        assert_eq!(ensure_at(&dir, false, late).unwrap().1, Outcome::Renewed);
        assert_eq!(read(&c.ca), ca0);
        assert_ne!(read(&c.cert), leaf0);
        verify(&c, "localhost", late + 60 * DAY).unwrap();

        // A missing file is made again; a missing CA key means a new CA.
        fs::remove_file(&c.key).unwrap();
        assert_eq!(ensure_at(&dir, false, late).unwrap().1, Outcome::Renewed);
        fs::remove_file(&c.ca_key).unwrap();
        assert_eq!(ensure_at(&dir, false, late).unwrap().1, Outcome::Created);
        assert_ne!(read(&c.ca), ca0);
        verify(&c, "localhost", late).unwrap();

        // --force: everything new.
        let ca1 = read(&c.ca);
        assert_eq!(ensure_at(&dir, true, late).unwrap().1, Outcome::Created);
        assert_ne!(read(&c.ca), ca1);
        verify(&c, "localhost", late).unwrap();

        // Near the CA's end: a new CA; the server certificate never outlives its CA.
        let ca_end = late + CA_DAYS * DAY;
        let near = ca_end - 30 * DAY;
        assert_eq!(ensure_at(&dir, false, near).unwrap().1, Outcome::Renewed);
        assert_eq!(read_expiry(&c.cert_expires()), Some(ca_end));
        let (_, o) = ensure_at(&dir, false, ca_end - RENEW_DAYS * DAY).unwrap();
        assert_eq!(o, Outcome::Created);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_expiry_file_means_a_new_certificate() {
        let dir = tmpdir("garbled");
        let (c, _) = ensure_at(&dir, false, NOW).unwrap();
        fs::write(c.cert_expires(), "soon").unwrap();
        assert_eq!(ensure_at(&dir, false, NOW).unwrap().1, Outcome::Renewed);
        fs::write(c.ca_expires(), "").unwrap();
        assert_eq!(ensure_at(&dir, false, NOW).unwrap().1, Outcome::Created);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn plan(target: Target, net: Option<&Net>) -> Result<TlsRun, TlsRunError> {
        TlsRun::new(&DevCert::at(Path::new("/t/tls")), target, net)
    }

    #[test]
    fn kvm_run_embeds_the_certificate_boots_with_tls_port_and_forwards_8443() {
        let tls = plan(Target::Kvm, None).unwrap();
        assert_eq!(
            tls.env,
            [
                ("OASIS_TLS_CERT".into(), "/t/tls/localhost.pem".into()),
                ("OASIS_TLS_KEY".into(), "/t/tls/localhost-key.pem".into()),
            ]
        );
        assert_eq!(tls.url, "https://localhost:8443/");
        let mut args = vec!["--hsts=60".to_string()];
        let mut ports = vec!["8080:80".parse().unwrap()];
        tls.apply(&mut args, &mut ports).unwrap();
        assert_eq!(args, ["--tls-port=443", "--hsts=60"]);

        let mut vm = crate::qemu::Vm::new("qemu".into(), "/k".into());
        vm.net = Net::User;
        vm.ports = ports;
        vm.append = args.join(" ");
        let a = vm.args().join(" ");
        assert!(
            a.contains(
                "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:8080-:80,\
                 hostfwd=tcp:127.0.0.1:8443-:443,"
            ),
            "{a}"
        );
        assert!(a.ends_with("-append --tls-port=443 --hsts=60"), "{a}");
    }

    #[test]
    fn hosted_and_tap_runs_forward_nothing() {
        let tls = plan(Target::Hosted, None).unwrap();
        let (mut args, mut ports) = (vec![], vec!["8080:80".parse().unwrap()]);
        tls.apply(&mut args, &mut ports).unwrap();
        assert_eq!(args, ["--tls-port=8443"]);
        assert_eq!(ports.len(), 1);
        assert_eq!(tls.url, "https://localhost:8443/");

        let tls = plan(Target::Kvm, Some(&Net::Tap("tap0".into()))).unwrap();
        assert_eq!((tls.arg.as_str(), tls.forward), ("--tls-port=443", None));
        assert_eq!(
            plan(Target::Kvm, Some(&Net::None)),
            Err(TlsRunError::NoNetwork)
        );
    }

    #[test]
    fn run_rejects_a_conflicting_port_or_argument() {
        let tls = plan(Target::Kvm, None).unwrap();
        let mut ports = vec!["8443:80".parse().unwrap()];
        assert_eq!(
            tls.apply(&mut vec![], &mut ports),
            Err(TlsRunError::HostPortTaken(80))
        );
        // The same forward given by hand is fine.
        let mut ports = vec!["8443:443".parse().unwrap()];
        tls.apply(&mut vec![], &mut ports).unwrap();
        assert_eq!(ports.len(), 1);
        let mut args = vec!["--tls-port=4443".to_string()];
        assert!(matches!(
            tls.apply(&mut args, &mut vec![]),
            Err(TlsRunError::PortArgGiven { .. })
        ));
        // After `--`, it is a positional, not ours to judge.
        let mut args = vec!["--".to_string(), "--tls-port".to_string()];
        tls.apply(&mut args, &mut vec![]).unwrap();
        assert_eq!(args[0], "--tls-port=443");
    }
}
