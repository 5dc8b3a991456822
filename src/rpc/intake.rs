//! `pactgate.v1.SignalIntake`: a partner's own systems push signals to, and list signals from,
//! their own node. Only the node's own organisation may call it. Validates on arrival, has the
//! pseudonymisation service pseudonymise the checked records in a batch; stores a push
//! whole-record-or-nothing and answers only after the flush.

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

/// The most records one Push stream may carry; larger pushes are refused whole.
pub const MAX_RECORDS_PER_PUSH: usize = 100_000;
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
        Some(c) => Some(signal::check_school(&c, signal::Category::Lrv).map_err(invalid)?),
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

type ViewStream = Pin<Box<dyn Stream<Item = Result<pb::SignalView, Status>> + Send>>;

#[tonic::async_trait]
impl SignalIntake for IntakeService {
    async fn push(
        &self,
        request: Request<Streaming<pb::SignalRecord>>,
    ) -> Result<Response<pb::PushReport>, Status> {
        let caller = self.authorize(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let actor = super::stated_actor(request.metadata());
        let mut stream = request.into_inner();
        let now = chrono::Utc::now();
        let today = now.date_naive();
        let mut checked: Vec<Validated> = Vec::new();
        let mut refused = Vec::new();
        let mut index = 0usize;
        while let Some(record) = stream.message().await? {
            if index >= MAX_RECORDS_PER_PUSH {
                let refusal = format!(
                    "a push may carry at most {MAX_RECORDS_PER_PUSH} records; nothing of this \
                     push was stored: split it into smaller pushes"
                );
                let mut e = entry(
                    &trace,
                    &caller,
                    &actor,
                    Action::Ingest,
                    &self.node.policy_version(),
                );
                e.decision = crate::audit::Decision::Deny;
                e.reason = refusal.clone();
                self.node.record_async(e).await?;
                return Err(Status::resource_exhausted(refusal));
            }
            match signal::validate(convert::raw_signal(record), today, now) {
                Ok(v) => checked.push(v),
                Err(e) => refused.push(rejected(index, e)),
            }
            index += 1;
        }
        let good = pseudonymise_batch(&self.node, checked, &trace).await?;
        let accepted = good.len();
        let mut e = entry(
            &trace,
            &caller,
            &actor,
            Action::Ingest,
            &self.node.policy_version(),
        );
        e.pupils = distinct_pupils(&good);
        e.count = accepted as u64;
        e.reason = format!("{accepted} records stored, {} refused", refused.len());
        let node = self.node.clone();
        // The signals and the audit entry of the push become durable with one sync.
        tokio::task::spawn_blocking(move || {
            node.store
                .upsert_batch_unsynced(&good)
                .map_err(super::store_status)?;
            node.audit.append(e).map_err(audit_status)?;
            node.store.sync().map_err(super::store_status)
        })
        .await
        .map_err(super::task_status)??;
        tracing::info!(
            peer.oin = %caller.oin,
            push.records = index,
            push.accepted = accepted,
            push.rejected = refused.len(),
            "push stored"
        );
        Ok(Response::new(pb::PushReport {
            accepted: u32::try_from(accepted).unwrap_or(u32::MAX),
            rejected: refused,
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
