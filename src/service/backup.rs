//! Backup: a consistent copy of the node's data for the node's own organisation or its FG only,
//! every call audited first; one backup at a time. Copies bytes; never decodes a signal.
//! Invariant: writes wait only while the copy is taken to a private temporary file, never while
//! the transport sends it (or its caller stops reading).

use super::{Caller, Service, ServiceError};
use crate::audit::{Action, Decision as AuditDecision, NewEntry};
use tokio::sync::OwnedSemaphorePermit;

/// Leave to copy the node's data: made only by [`Service::backup_access`] for the node's own
/// organisation or its FG, and holding the node's one place for a running backup.
#[derive(Debug)]
pub struct BackupGrant {
    _place: OwnedSemaphorePermit,
}

impl Service {
    /// Decides and audits a backup request; RESOURCE_EXHAUSTED while another backup runs.
    #[tracing::instrument(name = "service.backup", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn backup_access(&self, caller: &Caller) -> Result<BackupGrant, ServiceError> {
        let node = &self.node;
        let own = caller.org.oin == node.own.oin;
        let fg = self.is_fg(caller);
        let mut e = NewEntry::new(
            &caller.trace,
            &caller.org,
            "",
            Action::Backup,
            &node.policy_version(),
        );
        e.reason = "backup of the node's data".into();
        if !own && !fg {
            e.decision = AuditDecision::Deny;
            e.reason = "backup refused: neither the node's organisation nor its FG".into();
        }
        node.record_async(e).await?;
        if !own && !fg {
            tracing::warn!(peer.oin = %caller.org.oin, "backup refused");
            return Err(ServiceError::permission(format!(
                "a backup of {} is only for that organisation or its FG; {} is neither",
                node.own, caller.org
            )));
        }
        let place = self.backups.clone().try_acquire_owned().map_err(|_| {
            ServiceError::ResourceExhausted(
                "a backup of this node is already running; try again later".into(),
            )
        })?;
        Ok(BackupGrant { _place: place })
    }

    /// Takes the consistent copy into a private temporary file in the data dir (writes wait only
    /// for that), then writes the file to `out` with writes running again. Blocking.
    pub fn write_backup(
        &self,
        grant: BackupGrant,
        out: &mut impl std::io::Write,
    ) -> Result<crate::backup::Summary, crate::backup::BackupError> {
        use std::io::{Seek as _, Write as _};
        let _grant = grant;
        let node = &self.node;
        let mut copy = tempfile::tempfile_in(&node.data_dir)?;
        let summary = crate::backup::write(&node.store, &node.data_dir, &mut copy)?;
        copy.flush()?;
        copy.rewind()?;
        std::io::copy(&mut copy, out)?;
        out.flush()?;
        Ok(summary)
    }
}
