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
            "",
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
