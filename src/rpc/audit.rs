//! `pactgate.v1.Audit` for the FG of the node's party, `pactgate.v1.Witness` (what this node's
//! witness holds) for peer nodes, and the task that signs checkpoints and has every configured
//! witness cosign them over HTTP. The FG's every call is itself audited; a witness sees only
//! sizes and hashes.

use super::audit_status;
use super::convert;
use crate::audit::NewEntry;
use crate::audit::{
    self, Action, AuditLog, Checkpoint, Decision as AuditDecision, Filter, TrustedCheckpoint,
};
use crate::identity::Organisation;
use crate::pb;
use crate::pb::audit_server::Audit;
use crate::pb::witness_client::WitnessClient;
use crate::pb::witness_server::Witness;
use crate::pseudonym::{is_pseudonym, PupilId};
use crate::service::NodeContext;
use crate::trace::TraceContext;
use crate::witness_client::WitnessTarget;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// How often the node considers signing a new checkpoint.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// A checkpoint is also signed, without waiting for the interval, once this many entries were
/// appended since the last one.
pub const CHECKPOINT_EVERY_ENTRIES: u64 = 1000;
/// How often the task looks at the log's growth between intervals.
const GROWTH_POLL: Duration = Duration::from_millis(200);
/// How long a peer may take to say what its witness holds.
const COSIGN_TIMEOUT: Duration = Duration::from_secs(3);
/// The configured witness keys, by witness name, recorded at every start for offline
/// verification (`audit verify --data-dir`).
const WITNESS_KEYS_TREE: &str = "audit.witness_keys";

pub struct AuditService {
    node: Arc<NodeContext>,
}

impl AuditService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }

    /// Only an FG the policy names for this node's party; every call (allowed or not) is audited.
    async fn authorize<T>(&self, request: &Request<T>, what: &str) -> Result<Organisation, Status> {
        self.authorize_about(request, what, Vec::new()).await
    }

    /// [`AuditService::authorize`], recording the pupils the FG looks up.
    async fn authorize_about<T>(
        &self,
        request: &Request<T>,
        what: &str,
        pupils: Vec<String>,
    ) -> Result<Organisation, Status> {
        let caller = super::caller(request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let allowed = self
            .node
            .policy
            .current()
            .is_some_and(|p| p.is_fg_of(&caller.oin, &self.node.own.oin));
        let mut e = NewEntry::new(
            &trace,
            &caller,
            "",
            Action::AuditAccess,
            &self.node.policy_version(),
        );
        e.reason = what.to_owned();
        e.pupils = pupils;
        if !allowed {
            e.decision = AuditDecision::Deny;
            e.reason = format!("{what}: not an FG of this node's party");
        }
        self.node.record_async(e).await?;
        if !allowed {
            return Err(Status::permission_denied(format!(
                "denied: {caller} is not named in the policy as FG of {}",
                self.node.own.name
            )));
        }
        Ok(caller)
    }
}

/// Records the configured witnesses' keys by name, for offline verification of what they cosigned.
pub fn record_witness_keys(
    store: &crate::store::Store,
    witnesses: &[WitnessTarget],
) -> Result<(), audit::AuditError> {
    let tree = store.db().open_tree(WITNESS_KEYS_TREE)?;
    for w in witnesses {
        tree.insert(w.name().as_bytes(), w.key.as_bytes())?;
    }
    Ok(())
}

fn pinned_keys(db: &sled::Db, tree: &str) -> Vec<String> {
    db.open_tree(tree)
        .map(|t| {
            t.iter()
                .values()
                .filter_map(|v| v.ok())
                .filter_map(|v| String::from_utf8(v.to_vec()).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn parse_time(field: &str, text: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "{field}: {:?} is not a date or time",
                crate::pseudonym::withhold_ids(text)
            ))
        })
}

fn filter_from(f: Option<pb::AuditFilter>) -> Result<Filter, Status> {
    let f = f.unwrap_or_default();
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(Filter {
        pupil: non_empty(f.pupil_pseudonym),
        actor_oin: non_empty(f.actor_oin),
        case_id: non_empty(f.case_id),
        purpose: non_empty(f.purpose),
        decision: match pb::AuditDecision::try_from(f.decision) {
            Ok(pb::AuditDecision::Allow) => Some(AuditDecision::Allow),
            Ok(pb::AuditDecision::Deny) => Some(AuditDecision::Deny),
            _ => None,
        },
        since: parse_time("from", &f.from)?,
        until: parse_time("until", &f.until)?,
    })
}

fn matching(log: &AuditLog, filter: &Filter) -> Result<Vec<audit::Entry>, Status> {
    log.entries_matching(filter)
        .collect::<Result<Vec<_>, _>>()
        .map_err(audit_status)
}

/// The newest checkpoint with the cosignatures the peers returned for it.
fn signed_checkpoint(log: &AuditLog) -> Result<Option<pb::SignedCheckpoint>, Status> {
    let Some(latest) = log.latest_checkpoint().map_err(audit_status)? else {
        return Ok(None);
    };
    let size = latest.checkpoint.size;
    let cosigned = log.cosigned_note(size).map_err(audit_status)?;
    let lines: Vec<String> = cosigned
        .as_deref()
        .map(|note| {
            note.lines()
                .skip_while(|l| !l.is_empty())
                .filter(|l| l.starts_with('\u{2014}'))
                .filter(|l| l.split_whitespace().nth(1) != Some(latest.checkpoint.origin.as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let witnesses = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    Ok(Some(pb::SignedCheckpoint {
        origin: latest.checkpoint.origin.clone(),
        size,
        root_hash: latest.checkpoint.root.to_vec(),
        note: latest.note.clone(),
        cosignatures: lines,
        witnesses,
    }))
}

/// Every checkpoint this node's peers vouch for: the cosignatures it holds (checked against the
/// witness keys pinned at first use) and, asked now, what each peer's witness holds.
async fn trusted_checkpoints(node: &Arc<NodeContext>) -> Result<Vec<TrustedCheckpoint>, Status> {
    let keys = pinned_keys(node.store.db(), WITNESS_KEYS_TREE);
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut trusted = node
        .audit
        .cosigned_checkpoints(&key_refs)
        .map_err(audit_status)?;
    for peer in &node.peers {
        let mut client = WitnessClient::new(peer.channel.clone());
        let mut request = Request::new(pb::HeldCheckpointRequest {});
        request.set_timeout(COSIGN_TIMEOUT);
        let Ok(Ok(held)) =
            tokio::time::timeout(COSIGN_TIMEOUT, client.held_checkpoint(request)).await
        else {
            continue;
        };
        let held = held.into_inner();
        let Ok(root) = <[u8; 32]>::try_from(held.root_hash.as_slice()) else {
            continue;
        };
        if held.held && held.origin == node.audit.origin() {
            trusted.push(TrustedCheckpoint::new(
                Checkpoint {
                    origin: held.origin,
                    size: held.size,
                    root,
                },
                format!("held by peer {}", peer.config.name),
            ));
        }
    }
    Ok(trusted)
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEntry, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ExportChunk, Status>> + Send>>;

const CSV_COLUMNS: [&str; 21] = [
    "seq",
    "time",
    "trace_id",
    "span_id",
    "node_oin",
    "actor_oin",
    "actor_name",
    "actor",
    "action",
    "routine_flow",
    "meeting_type",
    "case_id",
    "processing_activity",
    "purpose",
    "legal_basis",
    "pupil_pseudonyms",
    "data_categories",
    "decision",
    "reason",
    "policy_version",
    "count",
];

/// Entries as JSON lines, CSV or LDV records (JSON lines).
pub fn export(
    entries: &[audit::Entry],
    format: pb::ExportFormat,
    ldv: &audit::ldv::LdvContext<'_>,
) -> Result<Vec<u8>, Status> {
    let fail = |e: String| Status::internal(format!("export failed: {e}"));
    match format {
        pb::ExportFormat::Ldv => {
            let mut out = Vec::new();
            for record in entries.iter().flat_map(|e| audit::ldv::records(e, ldv)) {
                out.extend(serde_json::to_vec(&record).map_err(|e| fail(e.to_string()))?);
                out.push(b'\n');
            }
            Ok(out)
        }
        pb::ExportFormat::JsonLines => {
            let mut out = Vec::new();
            for e in entries {
                out.extend(serde_json::to_vec(e).map_err(|e| fail(e.to_string()))?);
                out.push(b'\n');
            }
            Ok(out)
        }
        pb::ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_COLUMNS)
                .map_err(|e| fail(e.to_string()))?;
            for e in entries {
                w.write_record(convert::audit_row(e))
                    .map_err(|e| fail(e.to_string()))?;
            }
            w.into_inner().map_err(|e| fail(e.to_string()))
        }
        pb::ExportFormat::Unspecified => Err(Status::invalid_argument(
            "format: choose EXPORT_FORMAT_JSON_LINES, EXPORT_FORMAT_CSV or EXPORT_FORMAT_LDV",
        )),
    }
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn list_entries(
        &self,
        request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        self.authorize(&request, "list entries").await?;
        let req = request.into_inner();
        let filter = filter_from(req.filter)?;
        let limit = if req.limit == 0 {
            1000
        } else {
            req.limit as usize
        };
        let all = matching(&self.node.audit, &filter)?;
        let mut page: Vec<_> = all
            .iter()
            .filter(|e| req.first_page || e.seq > req.after_seq)
            .take(limit + 1)
            .map(convert::audit_entry)
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        Ok(Response::new(pb::ListEntriesResponse {
            entries: page,
            more,
        }))
    }

    type StreamEntriesStream = EntryStream;

    async fn stream_entries(
        &self,
        request: Request<pb::StreamEntriesRequest>,
    ) -> Result<Response<Self::StreamEntriesStream>, Status> {
        self.authorize(&request, "stream entries").await?;
        let filter = filter_from(request.into_inner().filter)?;
        let entries: Vec<_> = matching(&self.node.audit, &filter)?
            .iter()
            .map(|e| Ok(convert::audit_entry(e)))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(entries))))
    }

    type ExportStream = ChunkStream;

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        self.authorize(&request, "export").await?;
        let req = request.into_inner();
        let format =
            pb::ExportFormat::try_from(req.format).unwrap_or(pb::ExportFormat::Unspecified);
        let filter = filter_from(req.filter)?;
        let latest = self.node.audit.latest_checkpoint().map_err(audit_status)?;
        let ldv = audit::ldv::LdvContext {
            node_oin: &self.node.own.oin,
            checkpoint: latest.as_ref().map(|c| &c.checkpoint),
        };
        let bytes = export(&matching(&self.node.audit, &filter)?, format, &ldv)?;
        let chunks: Vec<_> = bytes
            .chunks(64 * 1024)
            .map(|c| Ok(pb::ExportChunk { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn access_report(
        &self,
        request: Request<pb::AccessReportRequest>,
    ) -> Result<Response<pb::AccessReportResponse>, Status> {
        // Refused (and audited) before anything is asked of the pseudonymisation service.
        let caller = super::caller(&request)?;
        let fg = self
            .node
            .policy
            .current()
            .is_some_and(|p| p.is_fg_of(&caller.oin, &self.node.own.oin));
        if !fg {
            self.authorize_about(&request, "access report", Vec::new())
                .await?;
        }
        let req = request.get_ref();
        // Every key version's pseudonym of the pupil, the current one last: entries made before
        // a key rotation carry the old version's pseudonym.
        let pseudonyms = if !req.pupil_id.is_empty() {
            let id = PupilId::parse(&req.pupil_id)
                .map_err(|e| Status::invalid_argument(format!("pupil_id {e}")))?;
            let trace = TraceContext::from_metadata(request.metadata());
            let client = &self.node.pseudonymiser;
            let mut all = Vec::new();
            for version in client.versions() {
                let mut one = client
                    .pseudonymise_under(version, [&id], &trace)
                    .await
                    .map_err(super::pseudonymiser_status)?;
                all.append(&mut one);
            }
            all
        } else if is_pseudonym(&req.pupil_pseudonym) {
            vec![req.pupil_pseudonym.clone()]
        } else {
            return Err(Status::invalid_argument(
                "give pupil_id (BSN or onderwijsnummer) or pupil_pseudonym",
            ));
        };
        let pseudonym = pseudonyms.last().cloned().unwrap_or_default();
        self.authorize_about(&request, "access report", pseudonyms.clone())
            .await?;
        let mut entries = Vec::new();
        for p in &pseudonyms {
            let filter = Filter {
                pupil: Some(p.clone()),
                ..Filter::default()
            };
            entries.extend(matching(&self.node.audit, &filter)?);
        }
        entries.sort_by_key(|e| e.seq);
        entries.dedup_by_key(|e| e.seq);
        Ok(Response::new(pb::AccessReportResponse {
            pupil_pseudonym: pseudonym,
            entries: entries.iter().map(convert::audit_entry).collect(),
            checkpoint: signed_checkpoint(&self.node.audit)?,
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        self.authorize(&request, "verify").await?;
        let trusted = trusted_checkpoints(&self.node).await?;
        let node = self.node.clone();
        let result = tokio::task::spawn_blocking(move || audit::verify(&node.audit, &trusted))
            .await
            .map_err(super::task_status)?;
        Ok(Response::new(convert::verify_response(result)))
    }

    async fn prove(
        &self,
        request: Request<pb::ProveRequest>,
    ) -> Result<Response<pb::ProveResponse>, Status> {
        self.authorize(&request, "prove").await?;
        let seq = request.into_inner().seq;
        let checkpoint = signed_checkpoint(&self.node.audit)?
            .ok_or_else(|| Status::failed_precondition("no checkpoint has been signed yet"))?;
        if seq >= checkpoint.size {
            return Err(Status::out_of_range(format!(
                "seq {seq} is not covered by the newest checkpoint (size {}); try again after the next checkpoint",
                checkpoint.size
            )));
        }
        let log = &self.node.audit;
        let entry = log
            .get(seq)
            .map_err(audit_status)?
            .ok_or_else(|| Status::not_found(format!("no entry {seq}")))?;
        let bytes = log
            .entry_bytes(seq)
            .map_err(audit_status)?
            .unwrap_or_default();
        let path = log
            .inclusion_proof(seq, checkpoint.size)
            .map_err(audit_status)?;
        Ok(Response::new(pb::ProveResponse {
            entry: Some(convert::audit_entry(&entry)),
            leaf_hash: audit::leaf_hash(&bytes).to_vec(),
            path: path.iter().map(|h| h.to_vec()).collect(),
            checkpoint: Some(checkpoint),
            entry_bytes: bytes,
        }))
    }

    async fn consistency_proof(
        &self,
        request: Request<pb::ConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        self.authorize(&request, "consistency proof").await?;
        let req = request.into_inner();
        let checkpoint = signed_checkpoint(&self.node.audit)?
            .ok_or_else(|| Status::failed_precondition("no checkpoint has been signed yet"))?;
        let new_size = match req.new_size {
            0 => checkpoint.size,
            n => n,
        };
        if req.old_size == 0 || req.old_size > new_size || new_size > checkpoint.size {
            return Err(Status::out_of_range(format!(
                "old_size {} and new_size {new_size}: need 1 <= old_size <= new_size <= {} (the newest checkpoint's size)",
                req.old_size, checkpoint.size
            )));
        }
        let log = &self.node.audit;
        let path = log
            .consistency_proof(req.old_size, new_size)
            .map_err(audit_status)?;
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: req.old_size,
            new_size,
            old_root_hash: log.root(req.old_size).map_err(audit_status)?.to_vec(),
            new_root_hash: log.root(new_size).map_err(audit_status)?.to_vec(),
            path: path.iter().map(|h| h.to_vec()).collect(),
            checkpoint: Some(checkpoint),
        }))
    }

    async fn latest_checkpoint(
        &self,
        request: Request<pb::LatestCheckpointRequest>,
    ) -> Result<Response<pb::SignedCheckpoint>, Status> {
        self.authorize(&request, "latest checkpoint").await?;
        signed_checkpoint(&self.node.audit)?
            .map(Response::new)
            .ok_or_else(|| Status::failed_precondition("no checkpoint has been signed yet"))
    }
}

pub struct WitnessService {
    node: Arc<NodeContext>,
}

impl WitnessService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl Witness for WitnessService {
    async fn held_checkpoint(
        &self,
        request: Request<pb::HeldCheckpointRequest>,
    ) -> Result<Response<pb::HeldCheckpointResponse>, Status> {
        let caller = super::caller(&request)?;
        let origin = format!("pactgate/{}", caller.oin);
        let held = self
            .node
            .witness
            .latest(&origin)
            .map_err(|e| Status::internal(format!("witness store: {e}")))?;
        Ok(Response::new(match held {
            Some(t) => pb::HeldCheckpointResponse {
                held: true,
                origin,
                size: t.checkpoint.size,
                root_hash: t.checkpoint.root.to_vec(),
            },
            None => pb::HeldCheckpointResponse {
                held: false,
                origin,
                ..Default::default()
            },
        }))
    }
}

/// Signs a checkpoint when the log has grown and has every peer cosign it: every `interval`, or
/// sooner once [`CHECKPOINT_EVERY_ENTRIES`] entries were appended, for as long as the node runs.
pub fn spawn_checkpoints(
    node: Arc<NodeContext>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.min(GROWTH_POLL));
        let mut last_round: Option<tokio::time::Instant> = None;
        let mut last_size = 0;
        loop {
            tick.tick().await;
            let size = node.audit.len();
            let due = last_round.is_none_or(|t| t.elapsed() >= interval)
                || size >= last_size + CHECKPOINT_EVERY_ENTRIES;
            if !due {
                continue;
            }
            last_round = Some(tokio::time::Instant::now());
            last_size = size;
            if let Err(e) = checkpoint_round(&node).await {
                tracing::warn!(error = %e, "audit checkpoint round failed");
            }
        }
    })
}

/// One round: sign if grown, then ask every configured witness that has not cosigned the newest
/// checkpoint.
pub async fn checkpoint_round(node: &Arc<NodeContext>) -> Result<(), String> {
    let signer = node.clone();
    let checkpoint = tokio::task::spawn_blocking(move || {
        let latest = signer
            .audit
            .latest_checkpoint()
            .map_err(|e| e.to_string())?;
        let len = signer.audit.len();
        let checkpoint = match latest {
            Some(cp) if cp.checkpoint.size >= len => cp,
            _ => signer.audit.checkpoint().map_err(|e| e.to_string())?,
        };
        // sled's flush is not an fdatasync: make the signed checkpoint durable before any peer
        // sees it.
        signer.store.sync().map_err(|e| e.to_string())?;
        Ok::<_, String>(checkpoint)
    })
    .await
    .map_err(|e| e.to_string())??;
    if checkpoint.checkpoint.size == 0 {
        return Ok(());
    }
    for witness in &node.witnesses {
        if let Err(e) = crate::witness_client::submit(&node.audit, witness, &checkpoint).await {
            tracing::debug!(witness.url = %witness.url, error = %e, "checkpoint not cosigned");
        }
    }
    Ok(())
}
