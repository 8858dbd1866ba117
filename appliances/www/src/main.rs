//! `www`: a static-site unikernel. Serves the directory packed into the image at build
//! time (default: the Oasis docs) over HTTP/1.1 on port 80, with keep-alive,
//! pipelining, conditional and range requests, and precompressed gzip variants.
//!
//! Every connection is a task that pumps bytes between its TCP stream and an
//! `oasis::http::Connection`; file bodies are written straight from the image, never
//! copied. Slow clients are bounded by a header timeout and an idle timeout;
//! connections beyond `--max-connections` are refused.
//!
//! With a disk holding a tar image, `www` serves that instead (`--site=auto`, the
//! default, uses it when present; `--site=disk` requires it; `--site=embedded` never
//! looks): see [`disk`].
//!
//! `GET /healthz` answers `200 ok` (text/plain) while `www` serves, for load
//! balancers and orchestrators (HAProxy `option httpchk`, a Kubernetes
//! `readinessProbe`); it takes precedence over a site file of that name.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod disk;

use oasis::http::{
    Connection, Handler, Limits, Method, Request, ResponseWriter, StaticSite, StatusCode,
};
use oasis::http::{HttpStream, Policy, Secured};
use oasis::log::info;
use oasis::net::NetError;
use oasis::prelude::*;

oasis::embed!(SITE, concat!(env!("OUT_DIR"), "/site.pack"));

/// Why `www` stopped.
#[derive(Debug)]
enum WwwError {
    Site(oasis::http::PackError),
    Net(NetError),
    Disk(alloc::string::String),
    Tls(alloc::string::String),
}

/// Where the site comes from (`--site`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum SiteSource {
    /// A tar image on the first disk when there is one, else the embedded pack.
    Auto,
    /// The embedded pack.
    Embedded,
    /// The tar image on the first disk (an error without one).
    Disk,
}

impl core::str::FromStr for SiteSource {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(SiteSource::Auto),
            "embedded" => Ok(SiteSource::Embedded),
            "disk" => Ok(SiteSource::Disk),
            _ => Err("expected auto, embedded or disk"),
        }
    }
}

impl core::fmt::Display for WwwError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WwwError::Site(e) => write!(f, "the embedded site is corrupt: {e}"),
            WwwError::Net(e) => write!(f, "network: {e}"),
            WwwError::Disk(e) => write!(f, "site on disk: {e}"),
            WwwError::Tls(e) => write!(f, "https: {e}"),
        }
    }
}

impl From<NetError> for WwwError {
    fn from(e: NetError) -> Self {
        WwwError::Net(e)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Settings {
    timeouts: oasis::http::Timeouts,
    limits: Limits,
    /// Redirect and HSTS (`--tls-redirect`, `--hsts`).
    policy: Policy,
}

#[oasis::main]
async fn main(os: Os) -> Result<(), WwwError> {
    let mut args = os.args();
    let opts = oasis::http::ServerOptions::from_args(&mut args);
    let (port, max_conns) = (opts.port, opts.max_connections);
    let source: SiteSource = args.value_or(
        "site",
        SiteSource::Auto,
        "auto|embedded|disk",
        "serve a tar image from the first disk (auto: when there is one)",
    );
    let max_file_mib: u64 = args.value_or(
        "disk-max-file",
        8,
        "MiB",
        "largest file served from a disk site",
    );
    let https = oasis::http::Https::from_args(&mut args).map_err(WwwError::Tls)?;
    args.finish();

    let disk_site = match source {
        SiteSource::Embedded => None,
        SiteSource::Auto | SiteSource::Disk => match os.disk() {
            Ok(d) => match disk::mount(d).await {
                Ok(Some(site)) => Some(site),
                Ok(None) if source == SiteSource::Auto => None,
                Ok(None) => return Err(WwwError::Disk("the disk holds no files".into())),
                Err(e) if source == SiteSource::Auto => {
                    oasis::log::info!("not serving from the disk: {e}");
                    None
                }
                Err(e) => return Err(WwwError::Disk(format!("{e}"))),
            },
            Err(_) if source == SiteSource::Auto => None,
            Err(e) => return Err(WwwError::Disk(format!("{e}"))),
        },
    };

    let site = StaticSite::parse(&SITE).map_err(WwwError::Site)?;
    let settings = Settings {
        timeouts: opts.timeouts,
        limits: Limits::default(),
        policy: https.as_ref().map(|h| h.policy()).unwrap_or_default(),
    };
    let net = os.net().await?;
    if let Some(ds) = disk_site {
        let (client, os2) = (ds.client.clone(), os.clone());
        let urls = oasis::http::spawn_listeners(
            &net,
            port,
            https.as_ref(),
            max_conns,
            move |stream, peer| {
                let (os3, client) = (os2.clone(), client.clone());
                async move { disk::serve(&os3, stream, peer, client, settings).await }
            },
        )?;
        println!(
            "www: ready: serving {} files from {} on {}",
            ds.len(),
            ds.disk,
            urls.join("/ and ") + "/"
        );
        ds.run(max_file_mib.saturating_mul(1024 * 1024)).await;
        return Ok(());
    }
    let os2 = os.clone();
    let urls = oasis::http::spawn_listeners(
        &net,
        port,
        https.as_ref(),
        max_conns,
        move |stream, peer| {
            let os3 = os2.clone();
            async move { serve(&os3, stream, peer, site, settings).await }
        },
    )?;
    println!(
        "www: ready: serving {} files on {}",
        site.len(),
        urls.join("/ and ") + "/"
    );
    core::future::pending::<()>().await;
    Ok(())
}

/// The health check's path.
pub(crate) const HEALTH_PATH: &str = "/healthz";

/// Answers `GET`/`HEAD /healthz` with `200 ok` (any other method: 405); `false`,
/// leaving `resp` alone, for every other path. Serving at all is the health: `www`
/// only accepts connections once its site is loaded.
pub(crate) fn health(req: &Request<'_>, resp: &mut ResponseWriter) -> bool {
    if req.path() != HEALTH_PATH {
        return false;
    }
    if matches!(req.method(), Method::Get | Method::Head) {
        resp.set_status(StatusCode::Ok);
        resp.header("Content-Type", b"text/plain");
        resp.header("Cache-Control", b"no-store");
        resp.body_static(b"ok\n");
    } else {
        resp.set_status(StatusCode::MethodNotAllowed);
        resp.header("Allow", b"GET, HEAD");
    }
    true
}

/// The static site, logging each request at info level (the access log).
struct Logged<'a> {
    site: StaticSite<'static>,
    peer: &'a core::net::SocketAddr,
}

impl Handler for Logged<'_> {
    fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
        // Not logged: a load balancer asks every few seconds.
        if health(req, resp) {
            return;
        }
        self.site.handle(req, resp);
        info!(target: "www::access", "{} \"{} {}\" {} {}", self.peer, req.method().as_str(), req.target(), resp.status().code(), resp.body_len());
    }

    fn wants_body(&self) -> bool {
        self.site.wants_body()
    }
}

async fn serve(
    os: &Os,
    mut stream: HttpStream,
    peer: core::net::SocketAddr,
    site: StaticSite<'static>,
    s: Settings,
) {
    let mut conn = Connection::new(s.limits);
    let tls = stream.is_tls();
    let mut handler = Secured::new(Logged { site, peer: &peer }, s.policy, tls, HEALTH_PATH);
    let t = s.timeouts;
    oasis::http::drive(os, &mut stream, &mut conn, &mut handler, t).await;
}
