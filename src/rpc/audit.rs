//! `pactgate.v1.AuditService` for the FG of the node's party and `pactgate.v1.WitnessService`
//! (what this node's witness holds) for peer nodes, over gRPC. Every FG call first gets the policy's
//! [`FgGrant`] from [`Service::fg_access`] (which audits it); the checkpoint task, key pinning
//! and note parsing live in [`crate::service::audit`] and [`crate::audit`]. A witness sees only
//! sizes and hashes.

use super::audit_status;
use super::convert;
use crate::audit::{self, Checkpoint, Decision as AuditDecision, Filter, TrustedCheckpoint};
use crate::pb;
use crate::pb::audit_service_server::AuditService;
use crate::pb::witness_service_client::WitnessServiceClient;
use crate::pb::witness_service_server::WitnessService;
use crate::policy::FgGrant;
use crate::service::audit::{CosignedCheckpoint, ReportSubject};
use crate::service::{Caller, NodeContext, Service};
use crate::trace::TraceContext;
use crate::witness_client::WitnessTarget;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub use crate::service::audit::{CHECKPOINT_EVERY_ENTRIES, CHECKPOINT_INTERVAL};
/// How long a peer may take to say what its witness holds.
const COSIGN_TIMEOUT: Duration = Duration::from_secs(3);

pub struct AuditHandler {
    service: Service,
    node: Arc<NodeContext>,
}

impl AuditHandler {
    pub fn new(service: Service) -> Self {
        Self {
            node: service.node().clone(),
            service,
        }
    }

    /// Only an FG the policy names for this node's party; every call (allowed or not) is audited.
    async fn authorize<T>(&self, request: &Request<T>, what: &str) -> Result<FgGrant, Status> {
        self.authorize_about(request, what, Vec::new()).await
    }

    /// [`AuditHandler::authorize`], recording the pupils the FG looks up.
    async fn authorize_about<T>(
        &self,
        request: &Request<T>,
        what: &str,
        pupils: Vec<String>,
    ) -> Result<FgGrant, Status> {
        let caller = fg_caller(request)?;
        Ok(self.service.fg_access(&caller, what, pupils).await?)
    }
}

/// The caller of an FG request (the FG states no actor of its own).
fn fg_caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    Ok(Caller::new(
        super::caller(request)?,
        TraceContext::from_metadata(request.metadata()),
    ))
}

/// Records the configured witnesses' keys by name, for offline verification of what they cosigned.
pub fn record_witness_keys(
    store: &crate::store::Store,
    witnesses: &[WitnessTarget],
) -> Result<(), audit::AuditError> {
    audit::record_witness_keys(
        store.db(),
        witnesses.iter().map(|w| (w.name(), w.key.as_str())),
    )
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

fn matching(
    service: &Service,
    grant: &FgGrant,
    filter: &Filter,
) -> Result<Vec<audit::Entry>, Status> {
    Ok(service.audit_entries(grant, filter)?)
}

/// A cosigned checkpoint as the proto carries it.
fn signed_checkpoint_pb(c: CosignedCheckpoint) -> pb::SignedCheckpoint {
    pb::SignedCheckpoint {
        origin: c.origin,
        size: c.size,
        root_hash: c.root_hash.to_vec(),
        note: c.note,
        cosignatures: c.cosignatures,
        witnesses: c.witnesses,
    }
}

/// What each peer's witness holds of this node's log, asked now: checkpoints they vouch for.
pub async fn held_by_peers(service: &Service) -> Vec<TrustedCheckpoint> {
    let node = service.node();
    let mut trusted = Vec::new();
    for peer in &node.peers {
        let mut client = WitnessServiceClient::new(peer.channel.clone());
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
    trusted
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::StreamEntriesResponse, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ExportResponse, Status>> + Send>>;

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
impl AuditService for AuditHandler {
    async fn list_entries(
        &self,
        request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let grant = self.authorize(&request, "list entries").await?;
        let req = request.into_inner();
        let filter = filter_from(req.filter)?;
        let (page, more) = self.service.audit_page(
            &grant,
            &filter,
            req.first_page,
            req.after_seq,
            req.limit as usize,
        )?;
        Ok(Response::new(pb::ListEntriesResponse {
            entries: page.iter().map(convert::audit_entry).collect(),
            more,
        }))
    }

    type StreamEntriesStream = EntryStream;

    async fn stream_entries(
        &self,
        request: Request<pb::StreamEntriesRequest>,
    ) -> Result<Response<Self::StreamEntriesStream>, Status> {
        let grant = self.authorize(&request, "stream entries").await?;
        let filter = filter_from(request.into_inner().filter)?;
        let entries: Vec<_> = matching(&self.service, &grant, &filter)?
            .iter()
            .map(|e| {
                Ok(pb::StreamEntriesResponse {
                    entry: Some(convert::audit_entry(e)),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(entries))))
    }

    type ExportStream = ChunkStream;

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let grant = self.authorize(&request, "export").await?;
        let req = request.into_inner();
        let format =
            pb::ExportFormat::try_from(req.format).unwrap_or(pb::ExportFormat::Unspecified);
        let filter = filter_from(req.filter)?;
        let latest = self.node.audit.latest_checkpoint().map_err(audit_status)?;
        let ldv = audit::ldv::LdvContext {
            node_oin: &self.node.own.oin,
            checkpoint: latest.as_ref().map(|c| &c.checkpoint),
        };
        let bytes = export(&matching(&self.service, &grant, &filter)?, format, &ldv)?;
        let chunks: Vec<_> = bytes
            .chunks(64 * 1024)
            .map(|c| Ok(pb::ExportResponse { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn access_report(
        &self,
        request: Request<pb::AccessReportRequest>,
    ) -> Result<Response<pb::AccessReportResponse>, Status> {
        let caller = fg_caller(&request)?;
        let req = request.into_inner();
        let subject = if !req.pupil_id.is_empty() {
            ReportSubject::PupilId(zeroize::Zeroizing::new(req.pupil_id))
        } else {
            ReportSubject::Pseudonym(req.pupil_pseudonym)
        };
        let report = self.service.access_report(&caller, subject).await?;
        Ok(Response::new(pb::AccessReportResponse {
            pupil_pseudonym: report.pseudonym,
            entries: report.entries.iter().map(convert::audit_entry).collect(),
            checkpoint: report.checkpoint.map(signed_checkpoint_pb),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let grant = self.authorize(&request, "verify").await?;
        let held = held_by_peers(&self.service).await;
        let service = self.service.clone();
        let result = tokio::task::spawn_blocking(move || service.verify(&grant, held))
            .await
            .map_err(super::task_status)??;
        Ok(Response::new(convert::verify_response(result)))
    }

    async fn prove(
        &self,
        request: Request<pb::ProveRequest>,
    ) -> Result<Response<pb::ProveResponse>, Status> {
        let grant = self.authorize(&request, "prove").await?;
        let proof = self.service.prove(&grant, request.into_inner().seq)?;
        Ok(Response::new(pb::ProveResponse {
            entry: Some(convert::audit_entry(&proof.entry)),
            leaf_hash: proof.leaf_hash.to_vec(),
            path: proof.path.iter().map(|h| h.to_vec()).collect(),
            checkpoint: Some(signed_checkpoint_pb(proof.checkpoint)),
            entry_bytes: proof.entry_bytes,
        }))
    }

    async fn consistency_proof(
        &self,
        request: Request<pb::ConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let grant = self.authorize(&request, "consistency proof").await?;
        let req = request.into_inner();
        let c = self
            .service
            .consistency(&grant, req.old_size, req.new_size)?;
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: c.old_size,
            new_size: c.new_size,
            old_root_hash: c.old_root_hash.to_vec(),
            new_root_hash: c.new_root_hash.to_vec(),
            path: c.path.iter().map(|h| h.to_vec()).collect(),
            checkpoint: Some(signed_checkpoint_pb(c.checkpoint)),
        }))
    }

    async fn latest_checkpoint(
        &self,
        request: Request<pb::LatestCheckpointRequest>,
    ) -> Result<Response<pb::LatestCheckpointResponse>, Status> {
        let grant = self.authorize(&request, "latest checkpoint").await?;
        let checkpoint = signed_checkpoint_pb(self.service.latest_checkpoint(&grant)?);
        Ok(Response::new(pb::LatestCheckpointResponse {
            checkpoint: Some(checkpoint),
        }))
    }
}

pub struct WitnessHandler {
    service: Service,
}

impl WitnessHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl WitnessService for WitnessHandler {
    async fn held_checkpoint(
        &self,
        request: Request<pb::HeldCheckpointRequest>,
    ) -> Result<Response<pb::HeldCheckpointResponse>, Status> {
        let caller = fg_caller(&request)?;
        let (origin, held) = self.service.held_checkpoint(&caller)?;
        Ok(Response::new(match held {
            Some(checkpoint) => pb::HeldCheckpointResponse {
                held: true,
                origin,
                size: checkpoint.size,
                root_hash: checkpoint.root.to_vec(),
            },
            None => pb::HeldCheckpointResponse {
                held: false,
                origin,
                ..Default::default()
            },
        }))
    }
}
