//! Storage limitation (AVG art. 5(1)(e)): signals closed (TERUGGELEID or GESLOTEN) longer than the
//! retention period of the counting rules are purged with their indexes, by the node's hourly
//! task and by `pactgate purge`. Every purge that removes anything is audited by count and
//! period, never with the pupils' pseudonyms.

use crate::clock::CountingRules;
use crate::identity::Organisation;
use crate::store::{Store, StoreError};
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;

/// How often a running node purges.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Purges what has expired at `today` and makes it durable. Returns how many were removed.
pub fn purge(
    store: &Store,
    own: &Organisation,
    rules: &CountingRules,
    today: NaiveDate,
) -> Result<usize, StoreError> {
    let removed = store.purge_unsynced(|s| rules.retention_expired(s, today))?;
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
pub fn spawn_task(store: Store, own: Organisation, rules: Arc<CountingRules>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            let (store, own, rules) = (store.clone(), own.clone(), rules.clone());
            let today = chrono::Utc::now().date_naive();
            let result =
                tokio::task::spawn_blocking(move || purge(&store, &own, &rules, today)).await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
                Err(e) => tracing::error!(error = %e, "retention purge task failed"),
            }
        }
    });
}
