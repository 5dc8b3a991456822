//! What every operation of a node shares: its organisation, store, audit log, witness, cases,
//! policy handle, peers and limits. Built once by the node's wiring ([`crate::node`]) and handed
//! to the service layer and the transports; knows no transport. Invariant: an audit entry is
//! durable before the request it records is answered ([`NodeContext::record`]).

use super::ServiceError;
use crate::audit::{Action, AuditLog, Decision as AuditDecision, NewEntry, Witness};
use crate::cases::CaseStore;
use crate::clock::CountingRules;
use crate::identity::Organisation;
use crate::limits::Gate;
use crate::peers::Peer;
use crate::policy::Policy;
use crate::pseudonymiser::PseudonymiserClient;
use crate::store::Store;
use crate::trace::TraceContext;
use crate::witness_client::WitnessTarget;
use arc_swap::ArcSwapOption;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The active policy, swapped whole and atomically on reload; readers keep the version they
/// started with, and a reload reports the version it installed.
#[derive(Clone, Default)]
pub struct PolicyHandle {
    current: Arc<ArcSwapOption<Policy>>,
    path: Option<PathBuf>,
}

impl PolicyHandle {
    /// Loads the policy at `path` (or none), refusing an invalid one.
    pub fn load(path: Option<&Path>) -> Result<Self, crate::policy::PolicyErrors> {
        let policy = path.map(Policy::load).transpose()?;
        Ok(Self {
            current: Arc::new(ArcSwapOption::new(policy.map(Arc::new))),
            path: path.map(Path::to_path_buf),
        })
    }

    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.load_full()
    }

    /// Re-reads the policy file. On success the new policy replaces the old and the version of
    /// the policy installed is returned; on failure the old policy stays and the errors are
    /// returned.
    pub fn reload(&self) -> Result<Option<String>, crate::policy::PolicyErrors> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let policy = Arc::new(Policy::load(path)?);
        let version = policy.version().to_owned();
        self.current.store(Some(policy));
        Ok(Some(version))
    }
}

/// What every service of a node shares.
pub struct NodeContext {
    pub own: Organisation,
    /// Shared with the node's background tasks (retention).
    pub audit: Arc<AuditLog>,
    pub witness: Witness,
    pub store: Store,
    pub cases: CaseStore,
    pub policy: PolicyHandle,
    pub peers: Vec<Peer>,
    /// The witnesses its checkpoints are submitted to.
    pub witnesses: Vec<WitnessTarget>,
    pub pseudonymiser: PseudonymiserClient,
    pub counting: Option<Arc<CountingRules>>,
    /// The node's data dir (the store, its integrity record, the audit signing key).
    pub data_dir: PathBuf,
    /// The limits and their counters, shared with the listener.
    pub gate: Arc<Gate>,
}

impl NodeContext {
    /// The active policy's version, or "" without one.
    pub fn policy_version(&self) -> String {
        self.policy
            .current()
            .map(|p| p.version().to_owned())
            .unwrap_or_default()
    }

    /// The earliest `absent_since` the node accepts: its counting rules' floor, or the default.
    pub fn absent_since_floor(&self) -> chrono::NaiveDate {
        self.counting
            .as_ref()
            .map_or(crate::signal::DEFAULT_MIN_ABSENT_SINCE, |r| {
                r.min_absent_since()
            })
    }

    /// Appends an audit entry and makes it durable before returning: a request whose entry cannot
    /// be written fails (fail closed). Blocking; call from a blocking context.
    pub fn record(&self, entry: NewEntry) -> Result<(), ServiceError> {
        self.record_all(vec![entry])
    }

    /// Appends several audit entries and makes them durable with one sync.
    pub fn record_all(&self, entries: Vec<NewEntry>) -> Result<(), ServiceError> {
        for entry in entries {
            self.audit.append(entry)?;
        }
        self.store.sync()?;
        Ok(())
    }

    /// [`NodeContext::record`] from async code.
    pub async fn record_async(self: &Arc<Self>, entry: NewEntry) -> Result<(), ServiceError> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.record(entry)).await?
    }

    /// Only the node's own organisation may use the services for its own systems (intake,
    /// federation, cases); any other organisation is refused.
    pub fn check_own(&self, caller: &Organisation) -> Result<(), ServiceError> {
        if caller.oin == self.own.oin {
            return Ok(());
        }
        tracing::warn!(peer.oin = %caller.oin, "own-organisation service refused to another organisation");
        Err(ServiceError::permission(format!(
            "this service is only for {} itself; {} may not use it",
            self.own, caller
        )))
    }

    /// Records a policy load (or a refused reload) in the audit log.
    pub fn record_policy_load(&self, outcome: Result<Option<String>, String>) {
        let node = self;
        let trace = TraceContext::new_root();
        let mut e = NewEntry::new(&trace, &node.own, "pactgate node", Action::PolicyLoad, "");
        match outcome {
            Ok(version) => {
                e.policy_version = version.unwrap_or_default();
                e.reason = "policy loaded".into();
            }
            Err(errors) => {
                e.decision = AuditDecision::Deny;
                e.policy_version = node.policy_version();
                e.reason = format!("invalid policy refused, the old one stays: {errors}");
            }
        }
        if let Err(err) = node.record(e) {
            tracing::error!(error = %err, "could not audit the policy load");
        }
    }

    /// Writes the refusals of the ending window that name no pupil: one audit entry per caller with
    /// the count and the reasons, all made durable with one sync.
    pub fn record_refusals(&self, window: &str) {
        let node = self;
        let tallies = node.gate.refusals().take();
        if tallies.is_empty() {
            return;
        }
        let version = node.policy_version();
        for tally in tallies {
            let trace = TraceContext::new_root();
            // The refused caller may name no usable OIN: its text goes in as the gate read it.
            let mut e = NewEntry::new(&trace, &node.own, "", Action::Query, &version);
            e.actor_oin = tally.caller.oin.clone();
            e.actor_name = tally.caller.name.clone();
            e.decision = AuditDecision::Deny;
            e.count = tally.total();
            e.reason = format!(
                "{} ({window}; refusals that name no pupil, counted)",
                tally.summary()
            );
            if let Err(err) = node.audit.append(e) {
                tracing::error!(error = %err, "could not audit the window's refusals");
            }
        }
        if let Err(err) = node.store.sync() {
            tracing::error!(error = %err, "could not sync the window's refusals");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PolicyHandle;

    const SHIPPED: &str = include_str!("../../policies/groningen.toml");

    /// A reload reports the version it installed, and that is the version readers then get; an
    /// invalid file leaves the old policy in force.
    #[test]
    fn a_reload_reports_the_version_it_installed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, SHIPPED).unwrap();
        let handle = PolicyHandle::load(Some(&path)).unwrap();
        let first = handle.current().unwrap().version().to_owned();
        let held = handle.current().unwrap();
        std::fs::write(&path, format!("{SHIPPED}\n# a new version\n")).unwrap();
        let reported = handle.reload().unwrap().unwrap();
        assert_ne!(reported, first);
        assert_eq!(handle.current().unwrap().version(), reported);
        assert_eq!(
            held.version(),
            first,
            "a reader keeps the version it started with"
        );
        std::fs::write(&path, "not a policy").unwrap();
        assert!(handle.reload().is_err());
        assert_eq!(handle.current().unwrap().version(), reported);
        assert_eq!(PolicyHandle::load(None).unwrap().reload().unwrap(), None);
    }
}
