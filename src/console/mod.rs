//! `pactgate console`: the Dutch web console for the people of the pact, served by pactgate
//! itself. A client of its node's REST API with the organisation's certificate, passing the
//! person as the stated actor; it has no logic of its own and stores nothing.
//!
//! Two modes: on one workstation it listens on loopback only and the person is named in its
//! configuration; shared on a network it requires TLS with personal certificates of the
//! covenant CA, and person and organisation come from the certificate. It refuses a
//! non-loopback address without TLS. Every form carries a CSRF token; every answer a strict
//! Content-Security-Policy. The node's [`Limits`] hold for this listener too.
//!
//! # Layout
//! - [`person`]: who is using it (configuration or personal certificate).
//! - [`csrf`]: the form tokens (HMAC-SHA256, ring).
//! - [`guard`]: admission, host check, deadline and security headers on every request.
//! - [`node_api`]: the client of the node's REST API.
//! - [`pages`]: the layout, Start, refusals, CSRF checks of forms; templates in `templates/console/`.
//! - [`due`]: the Signaleringslijst (the due list from four weeks, `POST /v1/due-list`).
//! - [`privacy`]: the FG's pages: audit log, an entry's proof, verify the whole log with the
//!   witnesses, export, the access report for a BSN.
//! - [`query`]: the Navragen page (a federated query, `POST /v1/federated-queries`).
//! - [`report`]: Rapportage, the G4 result schema and its CSV (`POST /v1/reports`).
//! - [`cases`]: the Casussen page (open cases, `GET /v1/cases`) with the form "Zorgaanbod
//!   vastleggen" (`POST /v1/cases/{caseId}/offers`).
//! - [`child`]: a child's page (`/leerling/{pseudoniem}`) and the look-up by BSN (`POST /leerling`).
//! - [`signals`]: the Signalen page (the organisation's own signals, `GET /v1/signals`).
//! - [`start`]: Start: the organisation, each peer up or down (`GET /v1/peers`), the newest
//!   checkpoint and its cosigners, the children on the clock.
//! - [`evidence`]: the console's own check of proofs, checkpoints and cosignatures.
//! - [`matrix`]: the FG's Convenantmatrix (Bijlage 3, `GET /v1/covenant/matrix`), printable.

pub mod cases;
pub mod child;
pub mod csrf;
pub mod due;
pub mod evidence;
pub mod guard;
pub mod matrix;
pub mod node_api;
pub mod pages;
pub mod person;
pub mod privacy;
pub mod query;
pub mod report;
pub mod signals;
pub mod start;

use crate::identity::Organisation;
use crate::limits::{Gate, Limits};
use crate::tls::TlsMaterial;
use person::Person;
use serde::Deserialize;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot read console config {path}: {reason}")]
    Config { path: String, reason: String },
    #[error(
        "the console would listen on {0}, which is not a loopback address, without TLS: \
         set `tls = true` (personal certificates of the covenant CA) or listen on 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    #[error(
        "person: a console on one workstation (no TLS) names the person using it, e.g. \
         person = \"A. Bakker, leerplichtambtenaar\""
    )]
    NoPerson,
    #[error(
        "person: a console with TLS takes the person from each personal certificate; \
         remove `person` from the config"
    )]
    PersonWithTls,
    #[error("person: {0}")]
    BadPerson(&'static str),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("invalid client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error(transparent)]
    Node(#[from] node_api::NodeApiError),
    #[error(transparent)]
    Csrf(#[from] csrf::CsrfError),
    #[error("the console's listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The console's configuration file (TOML).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address to listen on, e.g. "127.0.0.1:8443". Not loopback only with `tls = true`.
    pub listen: String,
    /// The node's address (host:port of its mTLS port, where its REST API is under /v1).
    pub node: String,
    /// The organisation's certificate (PEM): the console's identity at the node, and with TLS
    /// also the console's server certificate.
    pub cert: PathBuf,
    /// The organisation's private key (PEM).
    pub key: PathBuf,
    /// The covenant CA (PEM): the node's and, with TLS, the personal certificates' CA.
    pub ca: PathBuf,
    /// On one workstation: the person using the console, as the audit names them.
    pub person: Option<String>,
    /// Shared on a network: TLS with personal certificates of the covenant CA.
    #[serde(default)]
    pub tls: bool,
    /// The certificate is an FG's: the console shows the FG's Privacy pages.
    #[serde(default)]
    pub fg: bool,
    /// The limits of the listener (the node's `[limits]` table).
    #[serde(default)]
    pub limits: Limits,
}

impl ConsoleConfig {
    pub fn load(path: &Path) -> Result<Self, ConsoleError> {
        let bad = |reason: String| ConsoleError::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        toml::from_str(&text).map_err(|e| bad(e.to_string()))
    }

    /// What [`serve`] needs, with the certificate files read.
    pub fn setup(&self) -> Result<ConsoleSetup, ConsoleError> {
        Ok(ConsoleSetup {
            tls: TlsMaterial::load(&self.cert, &self.key, &self.ca)?,
            node: self.node.clone(),
            person: self.person.clone(),
            network: self.tls,
            fg: self.fg,
            limits: self.limits.clone(),
        })
    }
}

/// Everything a console needs to start.
#[derive(Debug, Clone)]
pub struct ConsoleSetup {
    /// The organisation's TLS material (client of the node; server with `network`).
    pub tls: TlsMaterial,
    /// The node's address.
    pub node: String,
    /// The person on a workstation (without `network`).
    pub person: Option<String>,
    /// Shared on a network: TLS with personal certificates.
    pub network: bool,
    /// An FG's console: the Privacy pages.
    pub fg: bool,
    pub limits: Limits,
}

/// How people reach the console, checked before it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Loopback only; the one person named in the configuration.
    Workstation(Person),
    /// TLS with a personal certificate per person.
    Network,
}

impl ConsoleSetup {
    /// The mode for a listener bound to `addr`, or why the console refuses to start.
    pub fn mode(&self, own: &Organisation, addr: SocketAddr) -> Result<Mode, ConsoleError> {
        if self.network {
            if self.person.is_some() {
                return Err(ConsoleError::PersonWithTls);
            }
            return Ok(Mode::Network);
        }
        if !addr.ip().is_loopback() {
            return Err(ConsoleError::NotLoopback(addr));
        }
        let name = self
            .person
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .ok_or(ConsoleError::NoPerson)?;
        check_person_name(name)?;
        Ok(Mode::Workstation(Person {
            name: name.to_owned(),
            organisation: own.clone(),
        }))
    }
}

/// A person's name travels as the stated actor: short, one line, and no number that could be a
/// pupil's.
fn check_person_name(name: &str) -> Result<(), ConsoleError> {
    if name.chars().count() > 200 {
        return Err(ConsoleError::BadPerson("longer than 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ConsoleError::BadPerson("holds a control character"));
    }
    if crate::pseudonym::looks_like_id(name) {
        return Err(ConsoleError::BadPerson(
            "holds nine or more digits in a row, which could be a pupil's number",
        ));
    }
    Ok(())
}

/// What every request of one console shares.
pub struct Console {
    pub own: Organisation,
    pub mode: Mode,
    pub node: node_api::NodeApi,
    pub node_addr: String,
    pub csrf: csrf::Csrf,
    pub gate: Arc<Gate>,
    /// An FG's console: the Privacy pages in the menu.
    pub fg: bool,
    /// The `Host` values a workstation console answers (its own address; not a rebound name).
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("own", &self.own)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Console {
    pub fn secure(&self) -> bool {
        self.mode == Mode::Network
    }
}

/// Serves the console on `listener` until `shutdown` completes; requests in flight then have
/// the limits' shutdown grace.
pub async fn serve(
    setup: ConsoleSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    let own = setup.tls.organisation()?;
    let addr = listener.local_addr()?;
    let mode = setup.mode(&own, addr)?;
    let gate = Gate::new(setup.limits.clone());
    let console = Arc::new(Console {
        own: own.clone(),
        node: node_api::NodeApi::new(&setup.node, &setup.tls)?,
        node_addr: setup.node.clone(),
        csrf: csrf::Csrf::new(mode == Mode::Network)?,
        gate: gate.clone(),
        fg: setup.fg,
        hosts: loopback_hosts(addr),
        mode: mode.clone(),
    });
    tracing::info!(
        console.addr = %addr,
        console.org = %own.name,
        console.tls = setup.network,
        node.addr = %setup.node,
        "console serving"
    );
    let router = pages::router(console.clone());
    match mode {
        Mode::Workstation(person) => {
            let listener = guard::Workstation { listener, person };
            run(listener, router, shutdown, &gate).await
        }
        Mode::Network => {
            let config = server_config(&setup.tls)?;
            let incoming = crate::tls::incoming_limited(listener, config, gate.clone());
            let listener = guard::Network::new(incoming, own, addr);
            run(listener, router, shutdown, &gate).await
        }
    }
}

/// The Host header values of a loopback console.
fn loopback_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]
}

/// TLS 1.3 with the organisation's certificate, and a client certificate of the covenant CA
/// required; whether it names a person of this organisation is checked per connection.
fn server_config(tls: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, ConsoleError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(tls.roots()?),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()?;
    Ok(tls.server_config_with(verifier)?)
}

async fn run<L>(
    listener: L,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    gate: &Gate,
) -> Result<(), ConsoleError>
where
    L: axum::serve::Listener<Addr = guard::Peer>,
    guard::Peer: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let grace = gate.limits().shutdown_grace();
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let signalled = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<guard::Peer>(),
    )
    .with_graceful_shutdown(signalled);
    let deadline = async move {
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served?,
        () = deadline => {
            tracing::warn!(shutdown.grace = ?grace, "console: shutdown grace over; closing");
            gate.close_all();
        }
    }
    tracing::info!("console stopped");
    Ok(())
}
