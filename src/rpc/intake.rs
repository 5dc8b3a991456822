//! `pactgate.v1.SignalIntake`: a partner's own systems push signals to, and list signals from,
//! their own node. Only the node's own organisation may call it. Validates on arrival and has the
//! pseudonymisation service pseudonymise the checked records a batch at a time; stores a push in
//! durable batches as it streams in (each batch whole-record-or-nothing, with its audit entry)
//! and answers only after the last batch's flush.

use super::convert;
use crate::audit::Action;
use crate::identity::Organisation;
use crate::node::{audit_status, entry, NodeContext};
use crate::pb;
use crate::pb::signal_intake_server::SignalIntake;
use crate::pseudonym::is_pseudonym;
use crate::signal::{self, Signal, Validated};
use crate::store::SignalFilter;
use crate::trace::TraceContext;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The most records one Push stream may carry; the records beyond it are refused unread.
pub const MAX_RECORDS_PER_PUSH: usize = 100_000;
/// The most refusals a push report lists; it counts them all (`rejected_count`), so the report
/// stays small whatever a push carries.
pub const MAX_REPORTED_REJECTS: usize = 100;
/// The largest encoded SignalRecord accepted.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

pub struct IntakeService {
    node: Arc<NodeContext>,
}

impl IntakeService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }

    /// Only the node's own organisation may use intake.
    fn authorize<T>(&self, request: &Request<T>) -> Result<Organisation, Status> {
        self.node.authorize_own(request)
    }
}

fn rejected(index: usize, e: signal::FieldError) -> pb::RejectedRecord {
    pb::RejectedRecord {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        field: e.field.to_owned(),
        reason: format!("record {index}: {} {}", e.field, e.reason),
    }
}

fn filter_from(req: pb::ListRequest) -> Result<SignalFilter, Status> {
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let invalid = |e: signal::FieldError| Status::invalid_argument(e.to_string());
    let residence_municipality = non_empty(req.residence_municipality)
        .map(|m| signal::check_municipality(&m))
        .transpose()
        .map_err(invalid)?;
    let school = match non_empty(req.school) {
        Some(c) => signal::check_school(&c, signal::Category::Lrv).map_err(invalid)?,
        None => None,
    };
    let pupil_pseudonym = non_empty(req.pupil_pseudonym);
    if pupil_pseudonym.as_deref().is_some_and(|p| !is_pseudonym(p)) {
        return Err(Status::invalid_argument(
            "pupil_pseudonym is not a pseudonym (\"v<version>.\" and 22 base64url characters); \
             compute it with `pactgate pseudonym`",
        ));
    }
    let category = match req.category {
        0 => None,
        v => Some(
            convert::category_from_pb(v)
                .map_err(|r| Status::invalid_argument(format!("category {r}")))?,
        ),
    };
    let status = match req.status {
        0 => None,
        v => Some(
            convert::status_from_pb(v)
                .map_err(|r| Status::invalid_argument(format!("status {r}")))?,
        ),
    };
    Ok(SignalFilter {
        residence_municipality,
        school,
        pupil_pseudonym,
        category,
        status,
        limit: (req.limit > 0).then_some(req.limit as usize),
    })
}

/// Fills in the pseudonyms of checked records: one call to the pseudonymisation service for the
/// batch (split only above its per-request maximum). A refusal (quota) or failure fails the whole
/// batch, so nothing of it is stored.
pub async fn pseudonymise_batch(
    node: &NodeContext,
    checked: Vec<Validated>,
    trace: &TraceContext,
) -> Result<Vec<Signal>, Status> {
    if checked.is_empty() {
        return Ok(Vec::new());
    }
    let pseudonyms = node
        .pseudonymiser
        .pseudonymise_batch(checked.iter().map(|v| &v.pupil), trace)
        .await
        .map_err(super::pseudonymiser_status)?;
    Ok(checked
        .into_iter()
        .zip(pseudonyms)
        .map(|(v, p)| v.pseudonymised(p))
        .collect())
}

/// The distinct pseudonyms of some signals, in first-seen order.
pub fn distinct_pupils(signals: &[Signal]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    signals
        .iter()
        .filter(|s| seen.insert(s.pupil_pseudonym.as_str()))
        .map(|s| s.pupil_pseudonym.clone())
        .collect()
}

/// A Push in progress: the records validated since the last durable batch, the rejects so far
/// and how many records are stored already.
struct PushBatches {
    node: Arc<NodeContext>,
    trace: TraceContext,
    actor: String,
    caller: Organisation,
    /// Checked records waiting for their pseudonyms (one service round trip per batch).
    batch: Vec<Validated>,
    /// The first refusals (at most [`MAX_REPORTED_REJECTS`]) and how many there were.
    refused: Vec<pb::RejectedRecord>,
    refused_count: usize,
    stored: usize,
}

impl PushBatches {
    /// An Ingest audit entry of this push.
    fn entry(&self) -> crate::audit::NewEntry {
        entry(
            &self.trace,
            &self.caller,
            &self.actor,
            Action::Ingest,
            &self.node.policy_version(),
        )
    }

    /// Makes the current batch durable: its signals and its audit entry in one sync, before the
    /// next record is read. Memory stays bounded by one batch whatever the push's size.
    async fn commit(&mut self) -> Result<(), Status> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let checked = std::mem::take(&mut self.batch);
        let good = pseudonymise_batch(&self.node, checked, &self.trace).await?;
        let mut e = self.entry();
        e.pupils = distinct_pupils(&good);
        e.count = good.len() as u64;
        e.reason = format!(
            "{} records stored (batch of a push; {} stored before it in this push)",
            good.len(),
            self.stored
        );
        let node = self.node.clone();
        let count = good.len();
        tokio::task::spawn_blocking(move || {
            node.store
                .upsert_batch_unsynced(&good)
                .map_err(super::store_status)?;
            node.audit.append(e).map_err(audit_status)?;
            node.store.sync().map_err(super::store_status)
        })
        .await
        .map_err(super::task_status)??;
        self.stored += count;
        Ok(())
    }

    /// Stores what came within the limit, audits the refusal and returns its status.
    async fn refuse_oversized(&mut self) -> Status {
        if let Err(status) = self.commit().await {
            return status;
        }
        let refusal = format!(
            "a push may carry at most {MAX_RECORDS_PER_PUSH} records; the first \
             {MAX_RECORDS_PER_PUSH} were handled ({} stored, {} refused) and the rest was not \
             read: push the rest in another push (pushing a record again replaces it)",
            self.stored, self.refused_count
        );
        let mut e = self.entry();
        e.decision = crate::audit::Decision::Deny;
        e.reason = refusal.clone();
        if let Err(status) = self.node.record_async(e).await {
            return status;
        }
        Status::resource_exhausted(refusal)
    }
}

type ViewStream = Pin<Box<dyn Stream<Item = Result<pb::SignalView, Status>> + Send>>;

#[tonic::async_trait]
impl SignalIntake for IntakeService {
    async fn push(
        &self,
        request: Request<Streaming<pb::SignalRecord>>,
    ) -> Result<Response<pb::PushReport>, Status> {
        let caller = self.authorize(&request)?;
        let gate = &self.node.gate;
        let _place = gate.push_permit().inspect_err(|_| {
            gate.refusals()
                .note(&caller.oin, &caller.name, crate::limits::reason::PUSHES)
        })?;
        let mut push = PushBatches {
            node: self.node.clone(),
            trace: TraceContext::from_metadata(request.metadata()),
            actor: super::stated_actor(request.metadata()),
            caller,
            batch: Vec::new(),
            refused: Vec::new(),
            refused_count: 0,
            stored: 0,
        };
        let batch_size = gate.limits().push_batch.max(1);
        let mut stream = request.into_inner();
        let now = chrono::Utc::now();
        let today = now.date_naive();
        let floor = self.node.absent_since_floor();
        let mut index = 0usize;
        let idle = gate.limits().push_idle();
        // A broken or idle stream returns its error here; the batches committed before it stay
        // stored.
        while let Some(record) = tokio::time::timeout(idle, stream.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no record for {} s: the push is closed; the {} records stored before stay",
                    idle.as_secs(),
                    push.stored
                ))
            })??
        {
            if index >= MAX_RECORDS_PER_PUSH {
                return Err(push.refuse_oversized().await);
            }
            match signal::validate_within(convert::raw_signal(record), floor, today, now) {
                Ok(s) => push.batch.push(s),
                Err(e) => {
                    push.refused_count += 1;
                    if push.refused.len() < MAX_REPORTED_REJECTS {
                        push.refused.push(rejected(index, e));
                    }
                }
            }
            index += 1;
            if push.batch.len() >= batch_size {
                push.commit().await?;
            }
        }
        push.commit().await?;
        tracing::info!(
            peer.oin = %push.caller.oin,
            push.records = index,
            push.accepted = push.stored,
            push.rejected = push.refused_count,
            "push stored"
        );
        Ok(Response::new(pb::PushReport {
            accepted: u32::try_from(push.stored).unwrap_or(u32::MAX),
            rejected: push.refused,
            rejected_count: u32::try_from(push.refused_count).unwrap_or(u32::MAX),
        }))
    }

    type ListStream = ViewStream;

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let caller = self.authorize(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let actor = super::stated_actor(request.metadata());
        let filter = filter_from(request.into_inner())?;
        let store = self.node.store.clone();
        let signals = tokio::task::spawn_blocking(move || store.list(&filter))
            .await
            .map_err(super::task_status)?
            .map_err(super::store_status)?;
        let mut e = entry(
            &trace,
            &caller,
            &actor,
            Action::Query,
            &self.node.policy_version(),
        );
        e.pupils = distinct_pupils(&signals);
        e.count = signals.len() as u64;
        e.reason = "own organisation lists its own node".into();
        self.node.record_async(e).await?;
        tracing::info!(peer.oin = %caller.oin, list.count = signals.len(), "list answered");
        let views: Vec<_> = signals
            .iter()
            .map(|s| Ok(convert::signal_view(s)))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(views))))
    }
}
