//! Intake: the node's own organisation pushes signals to, and lists signals from, its own node.
//! A push is validated record by record, pseudonymised a batch at a time by the pseudonymisation
//! service, and committed durably in bounded batches, each batch's signals with its audit entry
//! in one atomic write and one sync; memory stays bounded by one batch whatever a push carries. Never stores,
//! logs or returns a raw pupil id.

use super::{distinct_pupils, Caller, Service, ServiceError};
use crate::audit::{Action, Decision as AuditDecision, NewEntry};
use crate::signal::{self, RawSignal, Signal, Validated};
use crate::store::SignalFilter;
use tokio::sync::OwnedSemaphorePermit;

/// The most records one push may carry; the records beyond it are refused unread.
pub const MAX_RECORDS_PER_PUSH: usize = 100_000;
/// The most refusals a push report lists; it counts them all ([`PushReport::rejected_count`]),
/// so the report stays small whatever a push carries.
pub const MAX_REPORTED_REJECTS: usize = 100;

/// A refused record: its index in the push (from 0), the field and the reason (which names the
/// record and the field, never the value of a pupil id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub index: usize,
    pub field: String,
    pub reason: String,
}

/// What a finished push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Records stored (durably).
    pub accepted: usize,
    /// The first [`MAX_REPORTED_REJECTS`] refusals.
    pub rejected: Vec<Reject>,
    /// All refusals.
    pub rejected_count: usize,
}

/// A push in progress: feed it records with [`PushSession::add`], then [`PushSession::finish`].
/// It holds one of the node's places for pushes until dropped. Dropping it unfinished keeps the
/// batches committed so far (they were acknowledged batch by batch) and drops the rest.
pub struct PushSession {
    service: Service,
    caller: Caller,
    /// Checked records waiting for their pseudonyms (one service round trip per batch).
    batch: Vec<Validated>,
    batch_size: usize,
    report: PushReport,
    /// Records seen so far (the next record's index).
    seen: usize,
    floor: chrono::NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
    _place: OwnedSemaphorePermit,
}

impl Service {
    /// Starts a push by the node's own organisation; refused to anyone else, and when the node
    /// already takes as many pushes as it may (counted, not audited one by one).
    pub fn start_push(&self, caller: Caller) -> Result<PushSession, ServiceError> {
        self.node.check_own(&caller.org)?;
        let gate = &self.node.gate;
        let place = gate.push_place().map_err(|full| {
            self.counted(&caller.org, crate::limits::reason::PUSHES, full.into())
        })?;
        Ok(PushSession {
            batch_size: gate.limits().push_batch.max(1),
            floor: self.node.absent_since_floor(),
            now: chrono::Utc::now(),
            service: self.clone(),
            caller,
            batch: Vec::new(),
            report: PushReport::default(),
            seen: 0,
            _place: place,
        })
    }

    /// The node's own signals matching `filter` (its text fields as the caller wrote them; they
    /// are checked here), for its own organisation only; audited with the pupils it returns.
    #[tracing::instrument(name = "service.list", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn list(
        &self,
        caller: &Caller,
        filter: SignalFilter,
    ) -> Result<Vec<Signal>, ServiceError> {
        self.list_page(caller, filter, None).await
    }

    /// [`Service::list`] a page at a time: the signals after the one with `source_record_id`
    /// `after` (listings run in that order), at most the filter's limit.
    pub async fn list_page(
        &self,
        caller: &Caller,
        filter: SignalFilter,
        after: Option<String>,
    ) -> Result<Vec<Signal>, ServiceError> {
        self.node.check_own(&caller.org)?;
        let filter = checked_filter(filter)?;
        let store = self.node.store.clone();
        let signals =
            tokio::task::spawn_blocking(move || store.list_page(&filter, after.as_deref()))
                .await??;
        let mut e = caller.entry(Action::Query, &self.node.policy_version());
        e.pupils = distinct_pupils(&signals);
        e.count = signals.len() as u64;
        e.reason = "own organisation lists its own node".into();
        self.node.record_async(e).await?;
        tracing::info!(peer.oin = %caller.org.oin, list.count = signals.len(), "list answered");
        Ok(signals)
    }
}

/// A list filter with its pseudonym checked (municipality and school are typed at the edge).
fn checked_filter(mut filter: SignalFilter) -> Result<SignalFilter, ServiceError> {
    filter.pupil_pseudonym = filter.pupil_pseudonym.filter(|s| !s.is_empty());
    if filter
        .pupil_pseudonym
        .as_deref()
        .is_some_and(|p| !crate::pseudonym::is_pseudonym(p))
    {
        return Err(ServiceError::invalid(
            "pupil_pseudonym",
            "pupil_pseudonym is not a pseudonym (\"v<version>.\" and 22 base64url characters); \
             compute it with `pactgate pseudonym`",
        ));
    }
    Ok(filter)
}

impl PushSession {
    /// Takes the next record: checks it (a refusal is noted in the report, naming the record
    /// and the field) and commits the batch once it is full. Beyond [`MAX_RECORDS_PER_PUSH`]
    /// the push is refused (RESOURCE_EXHAUSTED) after storing what came within it.
    pub async fn add(&mut self, raw: RawSignal) -> Result<(), ServiceError> {
        if self.seen >= MAX_RECORDS_PER_PUSH {
            return Err(self.refuse_oversized().await);
        }
        let index = self.seen;
        self.seen += 1;
        let today = self.now.date_naive();
        match signal::validate_within(raw, self.floor, today, self.now) {
            Ok(s) => self.batch.push(s),
            Err(e) => {
                self.report.rejected_count += 1;
                if self.report.rejected.len() < MAX_REPORTED_REJECTS {
                    self.report.rejected.push(Reject {
                        index,
                        field: e.field.to_owned(),
                        reason: format!("record {index}: {} {}", e.field, e.reason),
                    });
                }
            }
        }
        if self.batch.len() >= self.batch_size {
            self.commit().await?;
        }
        Ok(())
    }

    /// Records stored so far (durably).
    pub fn stored(&self) -> usize {
        self.report.accepted
    }

    /// Commits the last batch and reports the push.
    pub async fn finish(mut self) -> Result<PushReport, ServiceError> {
        self.commit().await?;
        tracing::info!(
            peer.oin = %self.caller.org.oin,
            push.records = self.seen,
            push.accepted = self.report.accepted,
            push.rejected = self.report.rejected_count,
            "push stored"
        );
        Ok(std::mem::take(&mut self.report))
    }

    /// An Ingest audit entry of this push.
    fn entry(&self) -> NewEntry {
        self.caller
            .entry(Action::Ingest, &self.service.node.policy_version())
    }

    /// Makes the current batch durable before the next record is read: its signals and its audit
    /// entry in one atomic sled write (after a crash both are there or neither), then one sync.
    #[tracing::instrument(name = "service.push_batch", skip_all, fields(peer.oin = %self.caller.org.oin, push.batch = self.batch.len()))]
    async fn commit(&mut self) -> Result<(), ServiceError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let checked = std::mem::take(&mut self.batch);
        let good = self.service.pseudonymise(checked, &self.caller).await?;
        let mut e = self.entry();
        e.pupils = distinct_pupils(&good);
        e.count = good.len() as u64;
        e.reason = format!(
            "{} records stored (batch of a push; {} stored before it in this push)",
            good.len(),
            self.report.accepted
        );
        let node = self.service.node.clone();
        let count = good.len();
        tokio::task::spawn_blocking(move || {
            node.store.upsert_batch_unsynced_with(&good, |along| {
                node.audit.append_with(e, |tree, batch| {
                    Ok::<_, ServiceError>(along.write(tree, batch)?)
                })
            })?;
            node.store.sync()?;
            Ok::<_, ServiceError>(())
        })
        .await??;
        self.report.accepted += count;
        Ok(())
    }

    /// Stores what came within the limit, audits the refusal and returns it.
    async fn refuse_oversized(&mut self) -> ServiceError {
        if let Err(e) = self.commit().await {
            return e;
        }
        let refusal = format!(
            "a push may carry at most {MAX_RECORDS_PER_PUSH} records; the first \
             {MAX_RECORDS_PER_PUSH} were handled ({} stored, {} refused) and the rest was not \
             read: push the rest in another push (pushing a record again replaces it)",
            self.report.accepted, self.report.rejected_count
        );
        let mut e = self.entry();
        e.decision = AuditDecision::Deny;
        e.reason = refusal.clone();
        if let Err(e) = self.service.node.record_async(e).await {
            return e;
        }
        ServiceError::ResourceExhausted(refusal)
    }
}

impl Service {
    /// Fills in the pseudonyms of checked records: one call to the pseudonymisation service for
    /// the batch (split only above its per-request maximum). A refusal (quota) or failure fails
    /// the whole batch, so nothing of it is stored.
    pub async fn pseudonymise(
        &self,
        checked: Vec<Validated>,
        caller: &Caller,
    ) -> Result<Vec<Signal>, ServiceError> {
        if checked.is_empty() {
            return Ok(Vec::new());
        }
        let pseudonyms = self
            .node
            .pseudonymiser
            .pseudonymise_batch(checked.iter().map(|v| &v.pupil), &caller.trace)
            .await?;
        checked
            .into_iter()
            .zip(pseudonyms)
            .map(|(v, p)| {
                let p = p.parse().map_err(|_| {
                    crate::pseudonymiser::PseudonymiseError::Malformed("a pseudonym")
                })?;
                Ok(v.pseudonymised(p))
            })
            .collect()
    }
}
