//! A running pactgate node: opens the store, loads keys, certificates and the covenant policy,
//! and serves every gRPC service over mutual TLS on a listener it is given, until a shutdown
//! future completes. Owns no port of its own, so tests and the demo choose ports and decide when
//! to stop. On SIGHUP it reloads the policy; an invalid new policy keeps the old one.

use crate::cases::CaseStore;
use crate::clock::CountingRules;
use crate::rpc::clock::{ClockService, CountsService};
use crate::identity::Organisation;
use crate::pb;
use crate::peers::{Peer, PeerConfig};
use crate::policy::Policy;
use crate::pseudonym::PseudonymKey;
use crate::rpc::cases::CasesService;
use crate::rpc::exchange::ExchangeService;
use crate::rpc::federation::FederationService;
use crate::rpc::intake::{IntakeService, MAX_MESSAGE_BYTES};
use crate::store::Store;
use crate::tls::TlsMaterial;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Cases(#[from] crate::cases::CaseError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyErrors),
    #[error(transparent)]
    Peer(#[from] crate::client::ClientError),
    #[error(transparent)]
    Counting(#[from] crate::clock::RulesErrors),
    #[error("gRPC reflection could not be set up: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Everything a node needs to start.
pub struct NodeSetup {
    pub tls: TlsMaterial,
    pub key: PseudonymKey,
    pub data_dir: PathBuf,
    /// The covenant policy file. Without one, every exchange is denied (intake still works).
    pub policy: Option<PathBuf>,
    /// The other partners' nodes.
    pub peers: Vec<PeerConfig>,
    /// The counting rules file (policies/counting.toml). Without one, the clock is unavailable
    /// and nothing is purged.
    pub counting: Option<PathBuf>,
}

impl NodeSetup {
    /// A node with no policy and no peers: intake only.
    pub fn new(tls: TlsMaterial, key: PseudonymKey, data_dir: PathBuf) -> Self {
        Self {
            tls,
            key,
            data_dir,
            policy: None,
            peers: Vec::new(),
            counting: None,
        }
    }
}

/// The active policy, swapped whole on reload; readers keep the version they started with.
#[derive(Clone, Default)]
pub struct PolicyHandle {
    current: Arc<RwLock<Option<Arc<Policy>>>>,
    path: Option<PathBuf>,
}

impl PolicyHandle {
    /// Loads the policy at `path` (or none), refusing an invalid one.
    pub fn load(path: Option<&Path>) -> Result<Self, crate::policy::PolicyErrors> {
        let policy = path.map(Policy::load).transpose()?;
        Ok(Self {
            current: Arc::new(RwLock::new(policy.map(Arc::new))),
            path: path.map(Path::to_path_buf),
        })
    }

    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.read().ok().and_then(|p| p.clone())
    }

    /// Re-reads the policy file. On success the new policy replaces the old and its version is
    /// returned; on failure the old policy stays and the errors are returned.
    pub fn reload(&self) -> Result<Option<String>, crate::policy::PolicyErrors> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let policy = Arc::new(Policy::load(path)?);
        let version = policy.version().to_owned();
        if let Ok(mut slot) = self.current.write() {
            *slot = Some(policy);
        }
        Ok(Some(version))
    }
}

/// What every service of a node shares.
pub struct NodeContext {
    pub own: Organisation,
    pub store: Store,
    pub cases: CaseStore,
    pub policy: PolicyHandle,
    pub peers: Vec<Peer>,
    pub key: Arc<PseudonymKey>,
    pub counting: Option<Arc<CountingRules>>,
}

impl NodeContext {
    /// Only the node's own organisation may use the services for its own systems (intake,
    /// federation, cases); any other organisation gets PERMISSION_DENIED.
    pub fn authorize_own<T>(&self, request: &tonic::Request<T>) -> Result<Organisation, Status> {
        let caller = crate::rpc::caller(request)?;
        if caller.oin != self.own.oin {
            tracing::warn!(peer.oin = %caller.oin, "own-organisation service refused to another organisation");
            return Err(Status::permission_denied(format!(
                "this service is only for {} itself; {} may not use it",
                self.own, caller
            )));
        }
        Ok(caller)
    }
}

/// Reloads the policy on every SIGHUP, for as long as the node runs.
fn reload_on_sighup(policy: PolicyHandle) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; the policy will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match policy.reload() {
                Ok(Some(version)) => tracing::info!(policy.version = %version, "policy reloaded"),
                Ok(None) => tracing::info!("SIGHUP: no policy file configured"),
                Err(errors) => tracing::error!(
                    errors = %errors,
                    "SIGHUP: the new policy is invalid; the old policy stays active"
                ),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = policy;
}

/// Serves the node on `listener` until `shutdown` completes.
pub async fn serve(
    setup: NodeSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    let own: Organisation = setup.tls.organisation()?;
    let server_tls = setup.tls.server_config()?;
    let policy = PolicyHandle::load(setup.policy.as_deref())?;
    let store = Store::open(&setup.data_dir)?;
    let context = Arc::new(NodeContext {
        own: own.clone(),
        cases: CaseStore::open(&store)?,
        store: store.clone(),
        peers: crate::peers::connect_all(&setup.peers, &setup.tls)?,
        policy: policy.clone(),
        key: Arc::new(setup.key),
        counting: setup
            .counting
            .as_deref()
            .map(CountingRules::load)
            .transpose()?
            .map(Arc::new),
    });
    reload_on_sighup(policy.clone());
    let addr = listener.local_addr().ok();
    tracing::info!(
        node.org = %own.name,
        node.oin = %own.oin,
        node.addr = ?addr,
        policy.version = policy.current().map(|p| p.version().to_owned()).unwrap_or_default(),
        "node serving"
    );

    let intake =
        pb::signal_intake_server::SignalIntakeServer::new(IntakeService::new(context.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let exchange = pb::exchange_server::ExchangeServer::new(ExchangeService::new(context.clone()));
    let federation =
        pb::federation_server::FederationServer::new(FederationService::new(context.clone()));
    let cases = pb::cases_server::CasesServer::new(CasesService::new(context.clone()));
    let clock = pb::clock_server::ClockServer::new(ClockService::new(context.clone()));
    let counts = pb::counts_server::CountsServer::new(CountsService::new(context.clone()));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::signal_intake_server::SignalIntakeServer<IntakeService>>()
        .await;
    health
        .set_serving::<pb::exchange_server::ExchangeServer<ExchangeService>>()
        .await;
    health
        .set_serving::<pb::federation_server::FederationServer<FederationService>>()
        .await;
    health
        .set_serving::<pb::cases_server::CasesServer<CasesService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let incoming = crate::tls::incoming(listener, server_tls);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(intake)
        .add_service(exchange)
        .add_service(federation)
        .add_service(cases)
        .add_service(clock)
        .add_service(counts)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    store.sync()?;
    tracing::info!(node.org = %own.name, "node stopped");
    Ok(())
}
