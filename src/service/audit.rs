//! Audit inspection and the checkpoint task. Every audit operation of an FG starts with
//! [`Service::fg_access`]: the policy's [`FgGrant`] for an FG of this node's party, the call
//! (allowed or not) audited durably first. The checkpoint task signs checkpoints of the node's
//! log when it grew and has every configured witness cosign them. Sees entries, never a raw id.

use super::{Caller, Service, ServiceError};
use crate::audit::{self, Action, AuditLog, Decision as AuditDecision, NewEntry};
use crate::policy::FgGrant;
use crate::service::NodeContext;
use std::sync::Arc;
use std::time::Duration;

/// How often the node considers signing a new checkpoint.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// A checkpoint is also signed, without waiting for the interval, once this many entries were
/// appended since the last one.
pub const CHECKPOINT_EVERY_ENTRIES: u64 = 1000;
/// How often the task looks at the log's growth between intervals.
const GROWTH_POLL: Duration = Duration::from_millis(200);

/// The newest signed checkpoint of the node's log, with the witnesses' cosignatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root_hash: [u8; 32],
    /// The signed note.
    pub note: String,
    /// The witnesses' cosignature lines.
    pub cosignatures: Vec<String>,
    /// The names of the witnesses that cosigned.
    pub witnesses: Vec<String>,
}

impl Service {
    /// Whether the caller is an FG of this node's party under the active policy (asks nothing,
    /// audits nothing).
    pub fn is_fg(&self, caller: &Caller) -> bool {
        self.node
            .policy
            .current()
            .is_some_and(|p| p.is_fg_of(&caller.org.oin, &self.node.own.oin))
    }

    /// An FG's access to this node's audit log for `what` (recording the pupils it looks up):
    /// the policy's grant, or PERMISSION_DENIED. Every call, allowed or not, is audited first.
    #[tracing::instrument(name = "service.fg_access", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn fg_access(
        &self,
        caller: &Caller,
        what: &str,
        pupils: Vec<String>,
    ) -> Result<FgGrant, ServiceError> {
        let grant = self
            .node
            .policy
            .current()
            .and_then(|p| p.fg_grant(&caller.org.oin, &self.node.own.oin));
        let mut e = NewEntry::new(
            &caller.trace,
            &caller.org,
            &caller.actor,
            Action::AuditAccess,
            &self.node.policy_version(),
        );
        e.reason = what.to_owned();
        e.pupils = pupils;
        if grant.is_none() {
            e.decision = AuditDecision::Deny;
            e.reason = format!("{what}: not an FG of this node's party");
        }
        self.node.record_async(e).await?;
        grant.ok_or_else(|| {
            ServiceError::denied(format!(
                "{} is not named in the policy as FG of {}",
                caller.org, self.node.own.name
            ))
        })
    }

    /// The entries matching `filter`, oldest first, for an FG.
    pub fn audit_entries(
        &self,
        _grant: &FgGrant,
        filter: &audit::Filter,
    ) -> Result<Vec<audit::Entry>, ServiceError> {
        Ok(self
            .node
            .audit
            .entries_matching(filter)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The newest checkpoint with the cosignatures the witnesses returned for it, if one was
    /// signed yet.
    pub fn cosigned_checkpoint(&self) -> Result<Option<CosignedCheckpoint>, ServiceError> {
        let log = &self.node.audit;
        let Some(latest) = log.latest_checkpoint()? else {
            return Ok(None);
        };
        let size = latest.checkpoint.size;
        let (cosignatures, witnesses) = log
            .cosigned_note(size)?
            .map(|note| audit::witness_cosignatures(&note, &latest.checkpoint.origin))
            .unwrap_or_default();
        Ok(Some(CosignedCheckpoint {
            origin: latest.checkpoint.origin.clone(),
            size,
            root_hash: latest.checkpoint.root,
            note: latest.note.clone(),
            cosignatures,
            witnesses,
        }))
    }

    /// The checkpoints the node's own store vouches for beyond its own key: those cosigned under
    /// the witness keys pinned at start.
    pub fn cosigned_checkpoints(&self) -> Result<Vec<audit::TrustedCheckpoint>, ServiceError> {
        let keys = audit::pinned_witness_keys(self.node.store.db());
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self.node.audit.cosigned_checkpoints(&key_refs)?)
    }
}

/// Signs a checkpoint when the log has grown and has every configured witness cosign it: every
/// `interval`, or sooner once [`CHECKPOINT_EVERY_ENTRIES`] entries were appended, for as long as
/// the node runs.
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

/// Why a checkpoint round failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the signing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Signs a checkpoint if the log grew (or returns the newest), durable before any peer sees it.
fn sign_if_grown(
    log: &AuditLog,
    store: &crate::store::Store,
) -> Result<audit::SignedCheckpoint, CheckpointError> {
    let latest = log.latest_checkpoint()?;
    let checkpoint = match latest {
        Some(cp) if cp.checkpoint.size >= log.len() => cp,
        _ => log.checkpoint()?,
    };
    // sled's flush is not an fdatasync: make the signed checkpoint durable before any peer sees
    // it.
    store.sync()?;
    Ok(checkpoint)
}

/// One round: sign if grown, then ask every configured witness that has not cosigned the newest
/// checkpoint.
pub async fn checkpoint_round(node: &Arc<NodeContext>) -> Result<(), CheckpointError> {
    let signer = node.clone();
    let checkpoint =
        tokio::task::spawn_blocking(move || sign_if_grown(&signer.audit, &signer.store)).await??;
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

/// Whose entries an access report is about.
#[derive(Clone, PartialEq, Eq)]
pub enum ReportSubject {
    /// A BSN or onderwijsnummer as the FG typed it: pseudonymised under every key version,
    /// never stored, logged or echoed.
    PupilId(zeroize::Zeroizing<String>),
    /// A pseudonym.
    Pseudonym(String),
}

impl std::fmt::Debug for ReportSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PupilId(_) => f.write_str("PupilId(<withheld>)"),
            Self::Pseudonym(p) => f.debug_tuple("Pseudonym").field(p).finish(),
        }
    }
}

/// The entries about one pupil, for the FG (AVG art. 15), with the checkpoint that covers them.
#[derive(Debug)]
pub struct AccessReport {
    /// The pupil's pseudonym under the current key.
    pub pseudonym: String,
    pub entries: Vec<audit::Entry>,
    pub checkpoint: Option<CosignedCheckpoint>,
}

/// An entry with its inclusion proof under the newest checkpoint.
#[derive(Debug)]
pub struct EntryProof {
    pub entry: audit::Entry,
    pub entry_bytes: Vec<u8>,
    pub leaf_hash: audit::Hash,
    pub path: Vec<audit::Hash>,
    pub checkpoint: CosignedCheckpoint,
}

/// A consistency proof between two sizes of the log.
#[derive(Debug)]
pub struct Consistency {
    pub old_size: u64,
    pub new_size: u64,
    pub old_root_hash: audit::Hash,
    pub new_root_hash: audit::Hash,
    pub path: Vec<audit::Hash>,
    pub checkpoint: CosignedCheckpoint,
}

impl Service {
    /// A page of the entries matching `filter`: after `after_seq` (unless `first_page`), at most
    /// `limit` (0: 1000); and whether there are more.
    pub fn audit_page(
        &self,
        grant: &FgGrant,
        filter: &audit::Filter,
        first_page: bool,
        after_seq: u64,
        limit: usize,
    ) -> Result<(Vec<audit::Entry>, bool), ServiceError> {
        let limit = if limit == 0 { 1000 } else { limit };
        let mut page: Vec<_> = self
            .audit_entries(grant, filter)?
            .into_iter()
            .filter(|e| first_page || e.seq > after_seq)
            .take(limit + 1)
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// The access report of one pupil for an FG: refused (and audited) before anything is asked
    /// of the pseudonymisation service; a pupil id is pseudonymised under every key version
    /// (entries made before a key rotation carry the old version's pseudonym).
    #[tracing::instrument(name = "service.access_report", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn access_report(
        &self,
        caller: &Caller,
        subject: ReportSubject,
    ) -> Result<AccessReport, ServiceError> {
        if !self.is_fg(caller) {
            self.fg_access(caller, "access report", Vec::new()).await?;
        }
        let pseudonyms = match subject {
            ReportSubject::PupilId(text) => {
                let id = crate::pseudonym::PupilId::parse(&text)
                    .map_err(|e| ServiceError::invalid("pupil_id", format!("pupil_id {e}")))?;
                let client = &self.node.pseudonymiser;
                let mut all = Vec::new();
                for version in client.versions() {
                    let mut one = client
                        .pseudonymise_under(version, [&id], &caller.trace)
                        .await?;
                    all.append(&mut one);
                }
                all
            }
            ReportSubject::Pseudonym(p) if crate::pseudonym::is_pseudonym(&p) => vec![p],
            ReportSubject::Pseudonym(_) => {
                return Err(ServiceError::invalid(
                    "pupil_pseudonym",
                    "give pupil_id (BSN or onderwijsnummer) or pupil_pseudonym",
                ))
            }
        };
        let pseudonym = pseudonyms.last().cloned().unwrap_or_default();
        let grant = self
            .fg_access(caller, "access report", pseudonyms.clone())
            .await?;
        let mut entries = Vec::new();
        for p in &pseudonyms {
            let filter = audit::Filter {
                pupil: Some(p.clone()),
                ..audit::Filter::default()
            };
            entries.extend(self.audit_entries(&grant, &filter)?);
        }
        entries.sort_by_key(|e| e.seq);
        entries.dedup_by_key(|e| e.seq);
        Ok(AccessReport {
            pseudonym,
            entries,
            checkpoint: self.cosigned_checkpoint()?,
        })
    }

    fn newest_checkpoint(&self) -> Result<CosignedCheckpoint, ServiceError> {
        self.cosigned_checkpoint()?.ok_or_else(|| {
            ServiceError::FailedPrecondition("no checkpoint has been signed yet".into())
        })
    }

    /// Entry `seq` with its inclusion proof under the newest checkpoint.
    pub fn prove(&self, _grant: &FgGrant, seq: u64) -> Result<EntryProof, ServiceError> {
        let checkpoint = self.newest_checkpoint()?;
        if seq >= checkpoint.size {
            return Err(ServiceError::OutOfRange(format!(
                "seq {seq} is not covered by the newest checkpoint (size {}); try again after the next checkpoint",
                checkpoint.size
            )));
        }
        let log = &self.node.audit;
        let entry = log
            .get(seq)?
            .ok_or_else(|| ServiceError::NotFound(format!("no entry {seq}")))?;
        let entry_bytes = log.entry_bytes(seq)?.unwrap_or_default();
        let path = log.inclusion_proof(seq, checkpoint.size)?;
        Ok(EntryProof {
            entry,
            leaf_hash: audit::leaf_hash(&entry_bytes),
            entry_bytes,
            path,
            checkpoint,
        })
    }

    /// A consistency proof from `old_size` to `new_size` (0: the newest checkpoint's size).
    pub fn consistency(
        &self,
        _grant: &FgGrant,
        old_size: u64,
        new_size: u64,
    ) -> Result<Consistency, ServiceError> {
        let checkpoint = self.newest_checkpoint()?;
        let new_size = match new_size {
            0 => checkpoint.size,
            n => n,
        };
        if old_size == 0 || old_size > new_size || new_size > checkpoint.size {
            return Err(ServiceError::OutOfRange(format!(
                "old_size {old_size} and new_size {new_size}: need 1 <= old_size <= new_size <= {} (the newest checkpoint's size)",
                checkpoint.size
            )));
        }
        let log = &self.node.audit;
        Ok(Consistency {
            old_size,
            new_size,
            old_root_hash: log.root(old_size)?,
            new_root_hash: log.root(new_size)?,
            path: log.consistency_proof(old_size, new_size)?,
            checkpoint,
        })
    }

    /// Verifies the whole log against the checkpoints the node's own store vouches for and
    /// `also_trusted` (what the transport learnt from the peers' witnesses). Blocking.
    pub fn verify(
        &self,
        _grant: &FgGrant,
        mut also_trusted: Vec<audit::TrustedCheckpoint>,
    ) -> Result<Result<audit::VerifyReport, audit::VerifyError>, ServiceError> {
        let mut trusted = self.cosigned_checkpoints()?;
        trusted.append(&mut also_trusted);
        Ok(audit::verify(&self.node.audit, &trusted))
    }

    /// What this node's witness holds of the caller's own log (`pactgate/<its OIN>`): only for
    /// a peer whose log the witness is configured for ([`audit::HeldGrant`]), so a witness call
    /// reveals nothing of another log.
    pub fn held_checkpoint(
        &self,
        caller: &Caller,
    ) -> Result<(String, Option<audit::Checkpoint>), ServiceError> {
        let grant = self
            .node
            .witness
            .admit_peer(&caller.org.oin)
            .map_err(|e| ServiceError::permission(e.to_string()))?;
        let held = self.node.witness.held_for(&grant).map_err(|e| {
            tracing::error!(error = %e, "witness store failure");
            ServiceError::Internal("the witness could not read what it holds".into())
        })?;
        Ok((grant.origin().to_owned(), held))
    }

    /// This node's witness cosigns a checkpoint of a log it is configured for
    /// (c2sp.org/tlog-witness; admitted first: [`audit::CosignGrant`]), durable before it
    /// vouches for it: else it could later cosign a fork at that size. Blocking.
    pub fn add_checkpoint(
        &self,
        request: audit::AddCheckpoint,
    ) -> Result<audit::Cosignature, audit::WitnessError> {
        let grant = self.node.witness.admit(request)?;
        let cosignature = self.node.witness.add_checkpoint(grant)?;
        self.node.store.sync().map_err(|e| {
            tracing::error!(error = %e, "witness store sync failed");
            audit::WitnessError::Damaged
        })?;
        Ok(cosignature)
    }

    /// The newest checkpoint, for an FG.
    pub fn latest_checkpoint(&self, _grant: &FgGrant) -> Result<CosignedCheckpoint, ServiceError> {
        self.newest_checkpoint()
    }
}

/// One configured witness and the newest checkpoint of this node's log it cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessCheckpoint {
    /// The witness's name (from its key).
    pub witness: String,
    /// Its cosignature/v1 verifier key, as configured.
    pub key: String,
    /// What it cosigned; `None` while it has cosigned nothing.
    pub cosigned: Option<Cosigned>,
}

/// A checkpoint a witness cosigned, with the proof that the log's newest checkpoint extends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    pub size: u64,
    pub root_hash: audit::Hash,
    /// When it cosigned (seconds since the Unix epoch, from its cosignature).
    pub timestamp: u64,
    /// Its cosignature line over the checkpoint at `size`.
    pub line: String,
    /// The consistency proof from `size` to the newest checkpoint's size.
    pub consistency: Vec<audit::Hash>,
}

/// The newest checkpoint with what each configured witness cosigned of the log.
#[derive(Debug, Clone)]
pub struct CheckpointStatus {
    pub checkpoint: CosignedCheckpoint,
    /// The node's log verifier key (signed-note format).
    pub log_key: String,
    pub witnesses: Vec<WitnessCheckpoint>,
}

impl Service {
    /// The node's status (its peers, its newest checkpoint) is for its own organisation and the
    /// FG of its party; an FG's look is audited like every other audit access.
    pub async fn status_access(&self, caller: &Caller, what: &str) -> Result<(), ServiceError> {
        if self.is_fg(caller) {
            self.fg_access(caller, what, Vec::new()).await?;
            return Ok(());
        }
        self.node.check_own(&caller.org)
    }

    /// The active covenant policy, for the matrix (Bijlage 3): for a party of the covenant or an
    /// FG it names; it holds no pupil data.
    pub fn covenant(&self, caller: &Caller) -> Result<Arc<crate::policy::Policy>, ServiceError> {
        let policy = self.node.policy.current().ok_or_else(|| {
            ServiceError::FailedPrecondition("the node runs without a policy".into())
        })?;
        let oin = caller.org.oin.as_str();
        if policy.party_by_oin(oin).is_none() && policy.fg(oin).is_none() {
            return Err(ServiceError::permission(format!(
                "{} is no party and no FG of the covenant",
                caller.org
            )));
        }
        Ok(policy)
    }

    /// The newest checkpoint and, per configured witness, the newest checkpoint it cosigned with
    /// the consistency proof to the newest; after [`Service::status_access`].
    pub fn checkpoint_status(&self) -> Result<CheckpointStatus, ServiceError> {
        let checkpoint = self.newest_checkpoint()?;
        let witnesses = self
            .node
            .witnesses
            .iter()
            .map(|w| {
                Ok(WitnessCheckpoint {
                    witness: w.name().to_owned(),
                    key: w.key.clone(),
                    cosigned: self.cosigned_by(w.name(), &checkpoint)?,
                })
            })
            .collect::<Result<_, ServiceError>>()?;
        Ok(CheckpointStatus {
            checkpoint,
            log_key: self.node.audit.verifier_key(),
            witnesses,
        })
    }

    /// The newest checkpoint witness `name` cosigned, if any, and its proof up to `newest`.
    fn cosigned_by(
        &self,
        name: &str,
        newest: &CosignedCheckpoint,
    ) -> Result<Option<Cosigned>, ServiceError> {
        let log = &self.node.audit;
        let size = log.last_cosigned(name)?;
        let Some(note) = log.cosigned_note(size)? else {
            return Ok(None);
        };
        let Some((line, timestamp)) = note
            .lines()
            .filter_map(|l| audit::Cosignature::parse_line(l).ok().map(|c| (l, c)))
            .find(|(_, c)| c.name == name)
            .map(|(l, c)| (format!("{l}\n"), c.timestamp))
        else {
            return Ok(None);
        };
        // The root the witness signed, as the stored note says it, not recomputed here.
        let root_hash = audit::body_of(&note)
            .map_err(|_| ServiceError::Internal(format!("the note {name} cosigned is damaged")))?
            .root;
        if size > newest.size {
            return Err(ServiceError::Internal(format!(
                "witness {name} cosigned size {size}, beyond the newest checkpoint ({})",
                newest.size
            )));
        }
        Ok(Some(Cosigned {
            size,
            root_hash,
            timestamp,
            line,
            consistency: log.consistency_proof(size, newest.size)?,
        }))
    }
}
