//! A running pactgate node, the wiring of the transports: opens the store, loads keys,
//! certificates and the covenant policy into the shared [`NodeContext`], builds the
//! [`Service`] every handler calls, and serves every gRPC service (with health and reflection)
//! over mutual TLS on a listener it is given, until a shutdown future completes. Owns no port of its own, so tests and the demo choose ports and decide when
//! to stop. On SIGHUP it reloads the policy and the revocation list; an invalid new policy keeps
//! the old one, as an unreadable CRL does.

use crate::audit::{AuditLog, SigningKey, Witness};
use crate::cases::CaseStore;
use crate::clock::CountingRules;
use crate::identity::Organisation;
use crate::limits::{Admits, Gate, GateLayer, Limits};
use crate::pb;
use crate::peers::PeerConfig;
use crate::pseudonymiser::{PseudonymiserClient, ServiceConfig};
use crate::rpc::audit::{AuditHandler, WitnessHandler};
use crate::rpc::backup::BackupHandler;
use crate::rpc::cases::CasesHandler;
use crate::rpc::clock::{ClockHandler, CountsHandler};
use crate::rpc::exchange::ExchangeHandler;
use crate::rpc::federation::FederationHandler;
use crate::rpc::intake::{IntakeHandler, MAX_MESSAGE_BYTES};
use crate::service::Service;
use crate::store::Store;
use crate::tls::{CovenantVerifier, DenyList, TlsMaterial};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

pub use crate::service::{NodeContext, PolicyHandle};

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
    #[error(transparent)]
    WitnessConfig(#[from] crate::witness_client::SubmitError),
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
    /// The covenant CA's revocation list (PEM), re-read on SIGHUP. Without one, only the policy's
    /// `[[revoked]]` certificates are refused.
    pub crl: Option<PathBuf>,
    /// How often the node signs a checkpoint of its audit log (if it grew) and has its peers
    /// cosign it.
    pub checkpoint_interval: std::time::Duration,
    /// The witnesses the node submits its checkpoints to (c2sp.org/tlog-witness).
    pub witnesses: Vec<crate::config::WitnessConfig>,
    /// The logs the node witnesses: pinned signed-note verifier keys, named by origin.
    pub witnessed_logs: Vec<String>,
    /// Told once the node is fully set up (policy loaded, store open, SIGHUP handler installed)
    /// and about to serve; dropped unsent if it fails before that.
    pub ready: Option<tokio::sync::oneshot::Sender<()>>,
    /// The limits on what callers may cost the node, and the shutdown grace.
    pub limits: Limits,
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
            crl: None,
            checkpoint_interval: crate::service::audit::CHECKPOINT_INTERVAL,
            witnesses: Vec::new(),
            witnessed_logs: Vec::new(),
            ready: None,
            limits: Limits::default(),
        }
    }
}

pub use crate::audit::{AUDIT_KEY_FILE, WITNESS_KEY_FILE};

/// The node's two public keys in the signed-note format, for others to pin: its log's
/// (`pactgate/<oin>+<keyhash>+<base64>`, type 0x01) and its witness's
/// (`pactgate-witness/<oin>+...`, cosignature/v1 type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerifierKeys {
    pub log: String,
    pub witness: String,
}

/// The verifier keys of the node of `oin` with data dir `data_dir`, making the keys (and the dir)
/// first if absent, so they can be configured at the peers before the node ever starts.
pub fn audit_verifier_keys(
    data_dir: &Path,
    oin: &str,
) -> Result<AuditVerifierKeys, crate::audit::AuditError> {
    std::fs::create_dir_all(data_dir).map_err(crate::audit::NoteError::from)?;
    let log = SigningKey::load_or_create(&data_dir.join(AUDIT_KEY_FILE))?;
    let witness = SigningKey::load_or_create(&data_dir.join(WITNESS_KEY_FILE))?;
    Ok(AuditVerifierKeys {
        log: log.verifier_key(&format!("pactgate/{oin}")),
        witness: witness.cosignature_verifier_key(&witness_name(oin)),
    })
}

/// Witness settings for nodes that witness each other: each peer's log (under its pinned key) is
/// witnessed here, and each peer's witness, at `https://<its address>`, cosigns this node's log.
pub fn mutual_witnessing(
    peers: &[(PeerConfig, AuditVerifierKeys)],
) -> (Vec<crate::config::WitnessConfig>, Vec<String>) {
    let witnesses = peers
        .iter()
        .map(|(p, k)| crate::config::WitnessConfig {
            url: format!("https://{}", p.address),
            key: k.witness.clone(),
        })
        .collect();
    let logs = peers.iter().map(|(_, k)| k.log.clone()).collect();
    (witnesses, logs)
}

/// The name under which a node cosigns as a witness.
pub fn witness_name(oin: &str) -> String {
    format!("pactgate-witness/{oin}")
}

/// Reloads the policy on every SIGHUP, for as long as the node runs.
/// The SIGHUP handler is installed before this returns (so a SIGHUP right after the node reports
/// ready reloads instead of killing it); the reloading runs in the returned task.
fn reload_on_sighup(
    policy: PolicyHandle,
    node: Arc<NodeContext>,
    verifier: Arc<CovenantVerifier>,
) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the policy will not be reloaded");
        return tokio::spawn(async {});
    };
    #[cfg(unix)]
    return tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let outcome = policy.reload();
            reload_revocation(&verifier, &policy);
            let outcome = match outcome {
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
            let _ = tokio::task::spawn_blocking(move || node.record_policy_load(outcome)).await;
        }
    });
    #[cfg(not(unix))]
    {
        let _ = (policy, node, verifier);
        tokio::spawn(async {})
    }
}

/// The policy's revoked certificates (none without a policy).
fn deny_list(policy: &PolicyHandle) -> DenyList {
    policy
        .current()
        .map(|p| DenyList::from_policy(&p))
        .unwrap_or_default()
}

/// Re-reads the CRL and takes the active policy's revoked certificates; a CRL that cannot be read
/// leaves the old one in force.
fn reload_revocation(verifier: &CovenantVerifier, policy: &PolicyHandle) {
    match verifier.reload(deny_list(policy)) {
        Ok(crl_entries) => tracing::info!(
            tls.crl_revoked = crl_entries,
            tls.policy_revoked = verifier.revoked_counts().1,
            "revocation reloaded"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "SIGHUP: the revocation list cannot be read; the old one stays in force"
        ),
    }
}

/// Serves the node on `listener` until `shutdown` completes.
pub async fn serve(
    setup: NodeSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    let own: Organisation = setup.tls.organisation()?;
    let policy = PolicyHandle::load(setup.policy.as_deref())?;
    let verifier = Arc::new(CovenantVerifier::new(
        setup.tls.roots()?,
        setup.crl.clone(),
        deny_list(&policy),
    )?);
    let server_tls = setup.tls.server_config_with(verifier.clone())?;
    let gate = Gate::new(setup.limits.clone());
    let store = Store::open_guarded(&setup.data_dir, setup.limits.store_cache_bytes())?;
    let signing = SigningKey::load_or_create(&setup.data_dir.join(AUDIT_KEY_FILE))
        .map_err(crate::audit::AuditError::from)?;
    let witness_key = SigningKey::load_or_create(&setup.data_dir.join(WITNESS_KEY_FILE))
        .map_err(crate::audit::AuditError::from)?;
    let witnessed_logs = setup
        .witnessed_logs
        .iter()
        .map(|k| crate::audit::VerifierKey::parse(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::audit::AuditError::from)?;
    let peers = crate::peers::connect_all(&setup.peers, &setup.tls)?;
    let witnesses = crate::witness_client::targets(&setup.witnesses, &peers, &setup.tls)?;
    crate::rpc::audit::record_witness_keys(&store, &witnesses)?;
    let context = Arc::new(NodeContext {
        own: own.clone(),
        audit: Arc::new(AuditLog::open(store.db(), &own.oin, signing)?),
        witness: Witness::open(store.db(), &witness_name(&own.oin), witness_key)
            .map_err(|e| NodeError::Witness(e.to_string()))?
            .trusting(witnessed_logs),
        cases: CaseStore::open(&store)?,
        store: store.clone(),
        peers,
        witnesses,
        policy: policy.clone(),
        pseudonymiser: PseudonymiserClient::connect_lazy(&setup.pseudonymiser, &setup.tls)?,
        counting: setup
            .counting
            .as_deref()
            .map(CountingRules::load)
            .transpose()?
            .map(Arc::new),
        data_dir: setup.data_dir.clone(),
        gate: gate.clone(),
    });
    context.record_policy_load(Ok(policy.current().map(|p| p.version().to_owned())));
    // Background tasks hold the context (and so the store); they end with the node, so that a
    // stopped node releases its data dir.
    let mut tasks = vec![
        reload_on_sighup(policy.clone(), context.clone(), verifier.clone()),
        crate::service::audit::spawn_checkpoints(context.clone(), setup.checkpoint_interval),
        spawn_refusal_windows(context.clone()),
    ];
    if let Some(rules) = &context.counting {
        tasks.push(crate::retention::spawn_task(
            store.clone(),
            context.audit.clone(),
            own.clone(),
            rules.clone(),
        ));
    }
    let addr = listener.local_addr().ok();
    tracing::info!(
        node.org = %own.name,
        node.oin = %own.oin,
        node.addr = ?addr,
        policy.version = policy.current().map(|p| p.version().to_owned()).unwrap_or_default(),
        "node serving"
    );

    let service = Service::new(context.clone());
    let intake = pb::signal_intake_service_server::SignalIntakeServiceServer::new(
        IntakeHandler::new(service.clone()),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let exchange = pb::exchange_service_server::ExchangeServiceServer::new(ExchangeHandler::new(
        service.clone(),
    ));
    let federation = pb::federation_service_server::FederationServiceServer::new(
        FederationHandler::new(service.clone()),
    );
    let cases =
        pb::cases_service_server::CasesServiceServer::new(CasesHandler::new(service.clone()));
    let audit =
        pb::audit_service_server::AuditServiceServer::new(AuditHandler::new(service.clone()));
    let witness =
        pb::witness_service_server::WitnessServiceServer::new(WitnessHandler::new(service.clone()));
    let clock =
        pb::clock_service_server::ClockServiceServer::new(ClockHandler::new(service.clone()));
    let counts =
        pb::counts_service_server::CountsServiceServer::new(CountsHandler::new(service.clone()));
    let backup =
        pb::backup_service_server::BackupServiceServer::new(BackupHandler::new(service.clone()));

    let (health, health_service) = tonic_health::server::health_reporter();
    // Every service reports SERVING (and the node as a whole, under "").
    health
        .set_serving::<pb::signal_intake_service_server::SignalIntakeServiceServer<IntakeHandler>>()
        .await;
    health
        .set_serving::<pb::exchange_service_server::ExchangeServiceServer<ExchangeHandler>>()
        .await;
    health
        .set_serving::<pb::federation_service_server::FederationServiceServer<FederationHandler>>()
        .await;
    health
        .set_serving::<pb::cases_service_server::CasesServiceServer<CasesHandler>>()
        .await;
    health
        .set_serving::<pb::audit_service_server::AuditServiceServer<AuditHandler>>()
        .await;
    health
        .set_serving::<pb::witness_service_server::WitnessServiceServer<WitnessHandler>>()
        .await;
    health
        .set_serving::<pb::clock_service_server::ClockServiceServer<ClockHandler>>()
        .await;
    health
        .set_serving::<pb::counts_service_server::CountsServiceServer<CountsHandler>>()
        .await;
    health
        .set_serving::<pb::backup_service_server::BackupServiceServer<BackupHandler>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let incoming = crate::tls::incoming_limited(listener, server_tls, gate.clone());
    if let Some(ready) = setup.ready {
        let _ = ready.send(());
    }
    let admits = admits(&own, &policy, &setup.peers);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let signalled = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let gate_layer = GateLayer::new(gate.clone(), admits, own.to_string());
    let rest = crate::rest::router(service.clone(), gate_layer.clone());
    let server = setup
        .limits
        .grpc_server()
        // HTTP/1.1 too, for the C2SP witness protocol (`POST /add-checkpoint`) and the REST API.
        .accept_http1(true)
        // Outermost: `/v1` goes to the REST API, which has its own gate and problem answers.
        .layer(crate::rest::front::RestLayer::new(rest))
        // Then: caller text in the metadata that could be a pupil id is refused unread.
        .layer(tonic::service::InterceptorLayer::new(
            crate::rpc::check_metadata,
        ))
        .layer(gate_layer)
        .add_routes(crate::rpc::witness_http::routes(service.clone()).into())
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
        .add_service(backup)
        .serve_with_incoming_shutdown(incoming, signalled);
    serve_until_grace(server, stopping, &gate).await?;
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    let last = context.clone();
    let _ =
        tokio::task::spawn_blocking(move || last.record_refusals("until the node stopped")).await;
    store.sync()?;
    tracing::info!(node.org = %own.name, "node stopped");
    Ok(())
}

/// Runs the server until it has stopped: after the shutdown signal it stops accepting and lets
/// requests in flight finish for the grace period, then closes every connection still open.
async fn serve_until_grace(
    server: impl Future<Output = Result<(), tonic::transport::Error>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    gate: &Gate,
) -> Result<(), NodeError> {
    let grace = gate.limits().shutdown_grace();
    let deadline = async move {
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!(shutdown.grace = ?grace, "stopped accepting; requests in flight may finish");
        tokio::time::sleep(grace).await;
    };
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return Ok(served?),
        () = deadline => {}
    }
    tracing::warn!(shutdown.grace = ?grace, "shutdown grace over: closing the connections still open");
    gate.close_all();
    match tokio::time::timeout(std::time::Duration::from_secs(5), &mut server).await {
        Ok(served) => Ok(served?),
        Err(_) => {
            tracing::error!("connections did not close after the grace; stopping anyway");
            Ok(())
        }
    }
}

/// Who may call the node at all: its own organisation, its configured peers, and the parties and
/// FGs of the active policy (read per request, so a reload applies at once). A node without a
/// policy knows no parties: it admits every certificate of the covenant CA and its services deny
/// every exchange ("no covenant policy").
fn admits(own: &Organisation, policy: &PolicyHandle, peers: &[PeerConfig]) -> Admits {
    let own = own.oin.clone();
    let policy = policy.clone();
    let peers: std::collections::HashSet<String> = peers.iter().map(|p| p.oin.clone()).collect();
    Arc::new(move |oin: &str| {
        oin == own
            || peers.contains(oin)
            || policy
                .current()
                .is_none_or(|p| p.party_by_oin(oin).is_some() || p.fg(oin).is_some())
    })
}

/// Every refusal window, writes its refusals (see [`NodeContext::record_refusals`]).
fn spawn_refusal_windows(node: Arc<NodeContext>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = node.gate.limits().refusal_window();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticks.tick().await;
            let window = format!(
                "the {} s before {}",
                period.as_secs(),
                chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
            );
            let node = node.clone();
            let _ = tokio::task::spawn_blocking(move || node.record_refusals(&window)).await;
        }
    })
}
