//! `pactgate.v1.PseudonymiserService`: evaluates blinded elements under the covenant's OPRF key,
//! within each party's daily quota, recording every party's batch (allowed or refused) durably in
//! the service's own audit log before it answers; refusals of callers without a seat (no party,
//! no FG) are counted per caller and window and written as one entry each window. Never sees a
//! pupil id or a pseudonym, never logs or stores a blinded element. Invariant: no evaluation
//! leaves the service unless it was counted and audited.

use super::keys::KeyRing;
use super::MAX_BATCH;
use crate::audit::{Action, AuditLog, Decision, NewEntry, SigningKey};
use crate::identity::Organisation;
use crate::pb;
use crate::pb::pseudonymiser_service_server::{PseudonymiserService, PseudonymiserServiceServer};
use crate::policy::Policy;
use crate::pseudonym::Suite;
use crate::store::Store;
use crate::tls::TlsMaterial;
use crate::trace::TraceContext;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use voprf::BlindedElement;

/// The sled tree of evaluations used per day and organisation ("<YYYY-MM-DD>/<OIN>" -> u64 BE).
const QUOTA_TREE: &str = "pseudonymiser.quota";
/// The most entries one Inspect answer carries.
const MAX_INSPECT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyErrors),
    #[error("the service's audit log could not be opened: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("the service's store could not be opened: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "the certificate names {0}, a party that holds pupil data in the policy; the \
         pseudonymisation service must run under a certificate of its own"
    )]
    OwnIsParty(String),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Everything the service needs to start.
pub struct ServiceSetup {
    pub tls: TlsMaterial,
    pub keys: KeyRing,
    /// The covenant policy: the parties and their daily quota, the FGs who may inspect.
    pub policy: PathBuf,
    /// The service's own data dir: its audit log and quota counters; never signals.
    pub data_dir: PathBuf,
    /// Told once the service is set up and about to serve.
    pub ready: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The running service's state.
struct State {
    keys: KeyRing,
    policy: Arc<Policy>,
    store: Store,
    audit: AuditLog,
    quota: sled::Tree,
    /// Serialises the check-and-count of quotas.
    counting: Mutex<()>,
    /// Refusals of callers the covenant does not entitle (no party, no FG): they name no pupil
    /// and are audited as one entry per caller and window, so they cannot flood the log.
    refusals: crate::audit::Refusals,
}

/// The gRPC handler.
pub struct PseudonymiserHandler {
    state: Arc<State>,
}

fn be_u64(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

fn audit_status(e: crate::audit::AuditError) -> Status {
    tracing::error!(error = %e, "pseudonymiser audit write failed");
    Status::internal(
        "the pseudonymisation service could not write its audit log; nothing was evaluated",
    )
}

fn quota_status(e: sled::Error) -> Status {
    tracing::error!(error = %e, "pseudonymiser quota store failed");
    Status::internal(
        "the pseudonymisation service could not count the request; nothing was evaluated",
    )
}

/// What an allowed batch is evaluated with.
struct Allowed {
    used: u64,
    limit: u64,
}

impl State {
    /// Writes the refusals of the ending window: one audit entry per caller with the count and
    /// the reasons, made durable with one sync (as a node does, `NodeContext::record_refusals`).
    fn record_refusals(&self, own: &Organisation, window: &str) {
        let tallies = self.refusals.take();
        if tallies.is_empty() {
            return;
        }
        for tally in tallies {
            let mut e = self.entry(&TraceContext::new_root(), own, Action::Pseudonymise);
            e.actor_oin = tally.caller.oin.clone();
            e.actor_name = tally.caller.name.clone();
            e.decision = Decision::Deny;
            e.count = tally.total();
            e.reason = format!(
                "{} ({window}; refusals that name no pupil, counted)",
                tally.summary()
            );
            if let Err(err) = self.audit.append(e) {
                tracing::error!(error = %err, "could not audit the window's refusals");
            }
        }
        if let Err(err) = self.store.sync() {
            tracing::error!(error = %err, "could not sync the window's refusals");
        }
    }

    fn entry(&self, trace: &TraceContext, caller: &Organisation, action: Action) -> NewEntry {
        crate::audit::NewEntry::new(trace, caller, "", action, self.policy.version())
    }

    /// Appends an entry and makes it (and the quota counters) durable.
    fn record(&self, entry: NewEntry) -> Result<(), Status> {
        self.audit.append(entry).map_err(audit_status)?;
        self.store.sync().map_err(crate::rpc::store_status)
    }

    /// Counts `n` evaluations against the caller's quota for today, or refuses the whole batch;
    /// either way the batch is in the audit log, durably, when this returns.
    fn count(
        &self,
        trace: &TraceContext,
        caller: &Organisation,
        version: u16,
        n: u64,
    ) -> Result<Allowed, Status> {
        let mut e = self.entry(trace, caller, Action::Pseudonymise);
        e.count = n;
        let Some(party) = self.policy.party_by_oin(&caller.oin) else {
            self.refusals.note(
                &caller.oin,
                &caller.name,
                "evaluate: not a party of the covenant",
            );
            return Err(Status::permission_denied(format!(
                "{caller} is not a party of the covenant policy, so the pseudonymisation \
                 service evaluates nothing for it"
            )));
        };
        let limit = party.pseudonyms_per_day;
        let today = chrono::Utc::now().date_naive();
        let key = format!("{today}/{}", caller.oin);
        let _guard = self.counting.lock().unwrap_or_else(|p| p.into_inner());
        let used = be_u64(self.quota.get(&key).map_err(quota_status)?);
        if used.saturating_add(n) > limit {
            e.decision = Decision::Deny;
            e.reason = format!(
                "daily quota exceeded: {used} of {limit} evaluations used on {today}; a batch \
                 of {n} refused"
            );
            self.record(e)?;
            tracing::warn!(peer.oin = %caller.oin, quota.used = used, quota.limit = limit, batch.size = n, "quota refusal");
            return Err(Status::resource_exhausted(format!(
                "{} has used {used} of its {limit} pseudonyms for today ({today}, UTC), so a \
                 batch of {n} is refused; the covenant policy sets its pseudonyms_per_day; \
                 nothing was evaluated",
                party.name
            )));
        }
        let used = used + n;
        self.quota
            .insert(key.as_bytes(), &used.to_be_bytes())
            .map_err(quota_status)?;
        e.reason = format!("{n} evaluated under key v{version}; {used} of {limit} used on {today}");
        self.record(e)?;
        Ok(Allowed { used, limit })
    }

    fn evaluate(
        &self,
        trace: &TraceContext,
        caller: &Organisation,
        req: pb::EvaluateRequest,
    ) -> Result<pb::EvaluateResponse, Status> {
        let n = req.blinded_elements.len();
        if n == 0 || n > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "blinded_elements must hold 1 to {MAX_BATCH} elements, found {n}"
            )));
        }
        let key = u16::try_from(req.key_version)
            .ok()
            .and_then(|v| self.keys.get(v))
            .ok_or_else(|| {
                Status::not_found(format!(
                    "key_version {} is not held by this service; it holds {}",
                    req.key_version,
                    shown_versions(&self.keys)
                ))
            })?;
        let blinded = req
            .blinded_elements
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                BlindedElement::<Suite>::deserialize(bytes).map_err(|_| {
                    Status::invalid_argument(format!(
                        "blinded_elements[{i}] is not a ristretto255 point"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allowed = self.count(trace, caller, key.version(), n as u64)?;
        let (evaluated, proof) = key.evaluate_blinded(&blinded).map_err(|e| {
            tracing::error!(error = %e, "batch evaluation failed");
            Status::internal("the pseudonymisation service could not evaluate the batch")
        })?;
        tracing::info!(peer.oin = %caller.oin, batch.size = n, key.version = key.version(), quota.used = allowed.used, "batch evaluated");
        Ok(pb::EvaluateResponse {
            key_version: u32::from(key.version()),
            evaluated_elements: evaluated.iter().map(|e| e.serialize().to_vec()).collect(),
            proof: proof.serialize().to_vec(),
            used_today: allowed.used,
            quota_per_day: allowed.limit,
        })
    }

    fn inspect(
        &self,
        trace: &TraceContext,
        caller: &Organisation,
        req: pb::InspectRequest,
    ) -> Result<pb::InspectResponse, Status> {
        if self.policy.fg(&caller.oin).is_none() {
            self.refusals.note(
                &caller.oin,
                &caller.name,
                "inspect: not an FG named in the policy",
            );
            return Err(Status::permission_denied(format!(
                "denied: {caller} is not named in the policy as an FG, so it may not inspect \
                 the pseudonymisation service's log"
            )));
        }
        let mut e = self.entry(trace, caller, Action::AuditAccess);
        e.reason = "inspect the pseudonymisation service's log".into();
        self.record(e)?;
        let limit = match req.limit as usize {
            0 => MAX_INSPECT,
            n => n.min(MAX_INSPECT),
        };
        let mut page = Vec::new();
        for entry in self.audit.range(0, self.audit.len()) {
            let entry = entry.map_err(audit_status)?;
            let after = req.first_page || entry.seq > req.after_seq;
            let of_node = req.node_oin.is_empty() || entry.actor_oin == req.node_oin;
            if after && of_node {
                page.push(crate::rpc::convert::audit_entry(&entry));
                if page.len() > limit {
                    break;
                }
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        let signed = self.audit.checkpoint().map_err(audit_status)?;
        Ok(pb::InspectResponse {
            entries: page,
            more,
            checkpoint: Some(pb::SignedCheckpoint {
                origin: signed.checkpoint.origin.clone(),
                size: signed.checkpoint.size,
                root_hash: signed.checkpoint.root.to_vec(),
                note: signed.note.clone(),
                ..Default::default()
            }),
        })
    }
}

fn shown_versions(keys: &KeyRing) -> String {
    keys.versions()
        .iter()
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tonic::async_trait]
impl PseudonymiserService for PseudonymiserHandler {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let caller = crate::rpc::caller(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let state = self.state.clone();
        let req = request.into_inner();
        tokio::task::spawn_blocking(move || state.evaluate(&trace, &caller, req))
            .await
            .map_err(crate::rpc::task_status)?
            .map(Response::new)
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::InspectResponse>, Status> {
        let caller = crate::rpc::caller(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let state = self.state.clone();
        let req = request.into_inner();
        tokio::task::spawn_blocking(move || state.inspect(&trace, &caller, req))
            .await
            .map_err(crate::rpc::task_status)?
            .map(Response::new)
    }
}

/// Serves the pseudonymisation service on `listener` until `shutdown` completes, on the same
/// mTLS listener path and under the same limits as a node (`crate::tls::incoming_limited`).
pub async fn serve(
    setup: ServiceSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    let own = setup.tls.organisation()?;
    let server_tls = setup.tls.server_config()?;
    let policy = Arc::new(Policy::load(&setup.policy)?);
    if policy.party_by_oin(&own.oin).is_some() {
        return Err(ServiceError::OwnIsParty(own.to_string()));
    }
    let store = Store::open(&setup.data_dir)?;
    let signing = SigningKey::load_or_create(&setup.data_dir.join(crate::audit::AUDIT_KEY_FILE))
        .map_err(crate::audit::AuditError::from)?;
    let state = Arc::new(State {
        audit: AuditLog::open(store.db(), &own.oin, signing)?,
        quota: store.db().open_tree(QUOTA_TREE)?,
        store: store.clone(),
        keys: setup.keys,
        policy,
        counting: Mutex::new(()),
        refusals: crate::audit::Refusals::default(),
    });
    let trace = TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
    let mut start = state.entry(&trace, &own, Action::ConfigChange);
    start.actor = "pactgate pseudonymiser".into();
    start.reason = format!(
        "pseudonymisation service started with key versions {}",
        shown_versions(&state.keys)
    );
    if let Err(status) = state.record(start) {
        tracing::error!(error = %status.message(), "could not audit the service start");
    }
    tracing::info!(
        service.org = %own.name,
        service.oin = %own.oin,
        service.addr = ?listener.local_addr().ok(),
        key.versions = %shown_versions(&state.keys),
        policy.version = state.policy.version(),
        "pseudonymisation service serving"
    );
    let service = PseudonymiserServiceServer::new(PseudonymiserHandler {
        state: state.clone(),
    });
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<PseudonymiserServiceServer<PseudonymiserHandler>>()
        .await;
    // The node's limits hold here too: handshake timeout and cap, connections per organisation,
    // HTTP/2 streams and keepalive, and a deadline on every request.
    let limits = crate::limits::Limits::default();
    let incoming = crate::tls::incoming_limited(
        listener,
        server_tls,
        crate::limits::Gate::new(limits.clone()),
    );
    if let Some(ready) = setup.ready {
        let _ = ready.send(());
    }
    let windows = spawn_refusal_windows(state.clone(), own.clone(), limits.refusal_window());
    let served = limits
        .grpc_server()
        .timeout(limits.request_timeout())
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    windows.abort();
    let _ = windows.await;
    let last = state.clone();
    let stopped = own.clone();
    let _ = tokio::task::spawn_blocking(move || {
        last.record_refusals(&stopped, "until the service stopped")
    })
    .await;
    served?;
    state.audit.checkpoint()?;
    store.sync()?;
    tracing::info!(service.org = %own.name, "pseudonymisation service stopped");
    Ok(())
}

/// Every refusal window, writes its refusals (see [`State::record_refusals`]).
fn spawn_refusal_windows(
    state: Arc<State>,
    own: Organisation,
    period: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticks.tick().await;
            let window = format!(
                "the {} s before {}",
                period.as_secs(),
                chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
            );
            let (state, own) = (state.clone(), own.clone());
            let _ = tokio::task::spawn_blocking(move || state.record_refusals(&own, &window)).await;
        }
    })
}
