//! A running pactgate node: opens the store, loads keys, certificates and the covenant policy,
//! and serves every gRPC service over mutual TLS on a listener it is given, until a shutdown
//! future completes. Owns no port of its own, so tests and the demo choose ports and decide when
//! to stop. On SIGHUP it reloads the policy; an invalid new policy keeps the old one.

use crate::audit::{Action, AuditLog, Decision as AuditDecision, NewEntry, SigningKey, Witness};
use crate::cases::CaseStore;
use crate::clock::CountingRules;
use crate::identity::Organisation;
use crate::pb;
use crate::peers::{Peer, PeerConfig};
use crate::policy::Policy;
use crate::pseudonymiser::{PseudonymiserClient, ServiceConfig};
use crate::rpc::audit::{AuditService, WitnessService};
use crate::rpc::cases::CasesService;
use crate::rpc::clock::{ClockService, CountsService};
use crate::rpc::exchange::ExchangeService;
use crate::rpc::federation::FederationService;
use crate::rpc::intake::{IntakeService, MAX_MESSAGE_BYTES};
use crate::store::Store;
use crate::tls::TlsMaterial;
use crate::trace::TraceContext;
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
    Pseudonymiser(#[from] crate::pseudonymiser::PseudonymiseError),
    #[error(transparent)]
    Counting(#[from] crate::clock::RulesErrors),
    #[error("the audit log could not be opened: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("the witness store could not be opened: {0}")]
    Witness(String),
    #[error("gRPC reflection could not be set up: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Everything a node needs to start.
pub struct NodeSetup {
    pub tls: TlsMaterial,
    /// The pseudonymisation service: the node holds no pseudonymisation secret of its own.
    pub pseudonymiser: ServiceConfig,
    pub data_dir: PathBuf,
    /// The covenant policy file. Without one, every exchange is denied (intake still works).
    pub policy: Option<PathBuf>,
    /// The other partners' nodes.
    pub peers: Vec<PeerConfig>,
    /// The counting rules file (policies/counting.toml). Without one, the clock is unavailable
    /// and nothing is purged.
    pub counting: Option<PathBuf>,
    /// How often the node signs a checkpoint of its audit log (if it grew) and has its peers
    /// cosign it.
    pub checkpoint_interval: std::time::Duration,
    /// Told once the node is fully set up (policy loaded, store open, SIGHUP handler installed)
    /// and about to serve; dropped unsent if it fails before that.
    pub ready: Option<tokio::sync::oneshot::Sender<()>>,
}

impl NodeSetup {
    /// A node with no policy and no peers: intake only.
    pub fn new(tls: TlsMaterial, pseudonymiser: ServiceConfig, data_dir: PathBuf) -> Self {
        Self {
            tls,
            pseudonymiser,
            data_dir,
            policy: None,
            peers: Vec::new(),
            counting: None,
            checkpoint_interval: crate::rpc::audit::CHECKPOINT_INTERVAL,
            ready: None,
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
    pub audit: AuditLog,
    pub witness: Witness,
    pub store: Store,
    pub cases: CaseStore,
    pub policy: PolicyHandle,
    pub peers: Vec<Peer>,
    pub pseudonymiser: PseudonymiserClient,
    pub counting: Option<Arc<CountingRules>>,
}

/// The file, in the data dir, of the node's Ed25519 key that signs its audit checkpoints and its
/// cosignatures as a witness.
pub const AUDIT_KEY_FILE: &str = "audit-signing.key";

/// The name under which a node cosigns as a witness.
pub fn witness_name(oin: &str) -> String {
    format!("pactgate-witness/{oin}")
}

/// An audit entry with the request's trace, the acting organisation and the stated actor; the
/// caller fills in what else it knows. Allowed unless set otherwise.
pub fn entry(
    trace: &TraceContext,
    org: &Organisation,
    actor: &str,
    action: Action,
    policy_version: &str,
) -> NewEntry {
    NewEntry {
        trace_id: trace.trace_id.clone(),
        span_id: trace.span_id.clone(),
        actor_oin: org.oin.clone(),
        actor_name: org.name.clone(),
        actor: actor.chars().take(200).collect(),
        action,
        flow: String::new(),
        meeting_type: String::new(),
        case_id: String::new(),
        processing_activity: String::new(),
        purpose: String::new(),
        legal_basis: String::new(),
        pupils: Vec::new(),
        data_categories: Vec::new(),
        decision: AuditDecision::Allow,
        reason: String::new(),
        policy_version: policy_version.to_owned(),
        count: 0,
    }
}

impl NodeContext {
    /// The active policy's version, or "" without one.
    pub fn policy_version(&self) -> String {
        self.policy
            .current()
            .map(|p| p.version().to_owned())
            .unwrap_or_default()
    }

    /// Appends an audit entry and makes it durable before returning: a request whose entry cannot
    /// be written fails (fail closed). Blocking; call from a blocking context.
    pub fn record(&self, entry: NewEntry) -> Result<(), Status> {
        self.audit.append(entry).map_err(audit_status)?;
        self.store.sync().map_err(crate::rpc::store_status)?;
        Ok(())
    }

    /// [`NodeContext::record`] from async code.
    pub async fn record_async(self: &Arc<Self>, entry: NewEntry) -> Result<(), Status> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.record(entry))
            .await
            .map_err(crate::rpc::task_status)?
    }

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

/// Turns an audit failure into a status; the request fails with it.
pub fn audit_status(e: crate::audit::AuditError) -> Status {
    tracing::error!(error = %e, "audit write failed");
    Status::internal("the node could not write its audit log, so it refuses the request")
}

/// Records a policy load (or a refused reload) in the audit log.
fn record_policy_load(node: &NodeContext, outcome: Result<Option<String>, String>) {
    let trace = TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
    let mut e = entry(&trace, &node.own, "pactgate node", Action::PolicyLoad, "");
    match outcome {
        Ok(version) => {
            e.policy_version = version.unwrap_or_default();
            e.reason = "policy loaded".into();
        }
        Err(errors) => {
            e.decision = AuditDecision::Deny;
            e.policy_version = node.policy_version();
            e.reason = format!("invalid policy refused, the old one stays: {errors}");
        }
    }
    if let Err(status) = node.record(e) {
        tracing::error!(error = %status.message(), "could not audit the policy load");
    }
}

/// Reloads the policy on every SIGHUP, for as long as the node runs.
/// The SIGHUP handler is installed before this returns (so a SIGHUP right after the node reports
/// ready reloads instead of killing it); the reloading runs in the returned task.
fn reload_on_sighup(policy: PolicyHandle, node: Arc<NodeContext>) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the policy will not be reloaded");
        return tokio::spawn(async {});
    };
    #[cfg(unix)]
    return tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let outcome = match policy.reload() {
                Ok(Some(version)) => {
                    tracing::info!(policy.version = %version, "policy reloaded");
                    Ok(Some(version))
                }
                Ok(None) => {
                    tracing::info!("SIGHUP: no policy file configured");
                    continue;
                }
                Err(errors) => {
                    tracing::error!(
                        errors = %errors,
                        "SIGHUP: the new policy is invalid; the old policy stays active"
                    );
                    Err(errors.to_string())
                }
            };
            let node = node.clone();
            let _ = tokio::task::spawn_blocking(move || record_policy_load(&node, outcome)).await;
        }
    });
    #[cfg(not(unix))]
    {
        let _ = (policy, node);
        tokio::spawn(async {})
    }
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
    let signing = SigningKey::load_or_create(&setup.data_dir.join(AUDIT_KEY_FILE))
        .map_err(crate::audit::AuditError::from)?;
    let witness_key = SigningKey::load_or_create(&setup.data_dir.join(AUDIT_KEY_FILE))
        .map_err(crate::audit::AuditError::from)?;
    let context = Arc::new(NodeContext {
        own: own.clone(),
        audit: AuditLog::open(store.db(), &own.oin, signing)?,
        witness: Witness::open(store.db(), &witness_name(&own.oin), witness_key)
            .map_err(|e| NodeError::Witness(e.to_string()))?,
        cases: CaseStore::open(&store)?,
        store: store.clone(),
        peers: crate::peers::connect_all(&setup.peers, &setup.tls)?,
        policy: policy.clone(),
        pseudonymiser: PseudonymiserClient::connect_lazy(&setup.pseudonymiser, &setup.tls)?,
        counting: setup
            .counting
            .as_deref()
            .map(CountingRules::load)
            .transpose()?
            .map(Arc::new),
    });
    record_policy_load(
        &context,
        Ok(policy.current().map(|p| p.version().to_owned())),
    );
    // Background tasks hold the context (and so the store); they end with the node, so that a
    // stopped node releases its data dir.
    let mut tasks = vec![
        reload_on_sighup(policy.clone(), context.clone()),
        crate::rpc::audit::spawn_checkpoints(context.clone(), setup.checkpoint_interval),
    ];
    if let Some(rules) = &context.counting {
        tasks.push(crate::retention::spawn_task(context.clone(), rules.clone()));
    }
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
    let audit = pb::audit_server::AuditServer::new(AuditService::new(context.clone()));
    let witness = pb::witness_server::WitnessServer::new(WitnessService::new(context.clone()));
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
    if let Some(ready) = setup.ready {
        let _ = ready.send(());
    }
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(intake)
        .add_service(exchange)
        .add_service(federation)
        .add_service(cases)
        .add_service(clock)
        .add_service(audit)
        .add_service(witness)
        .add_service(counts)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    store.sync()?;
    tracing::info!(node.org = %own.name, "node stopped");
    Ok(())
}
