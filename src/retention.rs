//! Storage limitation (AVG art. 5(1)(e)): signals closed (TERUGGELEID or GESLOTEN) longer than the
//! retention period of the counting rules are purged with their indexes, by the node's hourly
//! task and by `pactgate purge`. Every purge that removes anything is audited by count and
//! period, never with the pupils' pseudonyms.

use crate::audit::{Action, AuditLog};
use crate::clock::CountingRules;
use crate::identity::Organisation;
use crate::store::{Store, StoreError};
use crate::trace::TraceContext;
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;

/// How often a running node purges.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the purge could not be audited: {0}")]
    Audit(#[from] crate::audit::AuditError),
}

/// Purges what has expired at `today`, audits it (count and period, no pupils) and makes both
/// durable with one sync. Returns how many were removed.
pub fn purge(
    store: &Store,
    audit: &AuditLog,
    own: &Organisation,
    rules: &CountingRules,
    today: NaiveDate,
) -> Result<usize, PurgeError> {
    let removed = store.purge_unsynced(|s| rules.retention_expired(s, today))?;
    if removed > 0 {
        let trace = TraceContext::new_root();
        let mut e =
            crate::audit::NewEntry::new(&trace, own, "pactgate retention", Action::Purge, "");
        e.count = removed as u64;
        e.reason = format!(
            "{removed} signals closed more than {} days before {today} purged",
            rules.retention_days()
        );
        audit.append(e)?;
    }
    store.sync()?;
    if removed > 0 {
        tracing::info!(
            node.oin = %own.oin,
            purge.count = removed,
            purge.retention_days = rules.retention_days(),
            "purged signals past their retention period"
        );
    }
    Ok(removed)
}

/// Runs [`purge`] now and then every [`PURGE_INTERVAL`], for as long as the node runs.
pub fn spawn_task(
    store: Store,
    audit: Arc<AuditLog>,
    own: Organisation,
    rules: Arc<CountingRules>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            let (store, audit, own, rules) =
                (store.clone(), audit.clone(), own.clone(), rules.clone());
            let today = chrono::Utc::now().date_naive();
            let result =
                tokio::task::spawn_blocking(move || purge(&store, &audit, &own, &rules, today))
                    .await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
                Err(e) => tracing::error!(error = %e, "retention purge task failed"),
            }
        }
    })
}
