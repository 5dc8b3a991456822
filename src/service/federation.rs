//! Federation: the node's own organisation asks every peer under one claim, through a
//! [`PeerAsker`] the transport provides (peers speak gRPC), waits at most a timeout per peer,
//! and gets the answers and failures back. Audits the federated query and, per peer, what it
//! sent back or why not, all durable before the answers are returned. Decides nothing about a
//! peer's data: each peer decides for itself.

use super::{Caller, Claim, Service, ServiceError};
use crate::audit::{Action, Decision as AuditDecision};
use crate::trace::TraceContext;
use std::future::Future;
use std::time::Duration;

/// How long a peer may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// The longest timeout a caller may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The timeout a caller asked for in milliseconds (0: the default), clamped to [`MAX_TIMEOUT`].
pub fn timeout_of(ms: u32) -> Duration {
    match ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)).min(MAX_TIMEOUT),
    }
}

/// A peer's answer as the audit needs to see it; the transport keeps the rest for its caller.
pub trait PeerAnswered {
    /// The peer's configured name.
    fn peer(&self) -> &str;
    fn rule(&self) -> &str;
    fn processing_activity(&self) -> &str;
    /// The pseudonyms of the signals it sent (anything else is left out of the audit).
    fn pupil_pseudonyms(&self) -> Vec<&str>;
}

/// A peer that refused, failed or was too slow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFailure {
    pub peer: String,
    /// The gRPC status name, e.g. "PERMISSION_DENIED" or "DEADLINE_EXCEEDED".
    pub code: String,
    pub message: String,
}

/// What came back from the peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedAnswers<A> {
    pub answers: Vec<A>,
    pub failures: Vec<PeerFailure>,
}

/// Asks every configured peer, in parallel, under one claim and filter; the transport's side of
/// a federated query.
pub trait PeerAsker: Send + Sync {
    /// The filter as the peers take it (passed through unread).
    type Filter: Send + Sync;
    type Answer: PeerAnswered + Send;

    /// How many peers are asked.
    fn peer_count(&self) -> usize;

    /// Asks them all; each answers or fails within `timeout`.
    fn ask_all(
        &self,
        claim: &Claim,
        filter: &Self::Filter,
        timeout: Duration,
        trace: &TraceContext,
    ) -> impl Future<Output = FederatedAnswers<Self::Answer>> + Send;
}

impl Service {
    /// Asks every peer under the caller's claim and audits it: one entry for the federated
    /// query and one per peer for what it sent back (or why not), all durable before the answer
    /// is returned. Only the node's own organisation may ask; claim text that could be a pupil
    /// id is refused before a copy goes to any peer.
    #[tracing::instrument(name = "service.federated_query", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn federated_query<A: PeerAsker>(
        &self,
        caller: &Caller,
        peers: &A,
        claim: Claim,
        filter: A::Filter,
        timeout: Duration,
    ) -> Result<FederatedAnswers<A::Answer>, ServiceError> {
        self.node.check_own(&caller.org)?;
        claim.check_text()?;
        let response = peers.ask_all(&claim, &filter, timeout, &caller.trace).await;
        let mut entries = Vec::new();
        let mut asked = self.claim_entry(caller, &claim, Action::FederatedQuery);
        asked.count = response.answers.len() as u64;
        asked.reason = format!(
            "asked {} peers: {} answered, {} refused or failed",
            peers.peer_count(),
            response.answers.len(),
            response.failures.len()
        );
        entries.push(asked);
        for answer in &response.answers {
            let mut e = self.claim_entry(caller, &claim, Action::Receive);
            let pseudonyms = answer.pupil_pseudonyms();
            e.processing_activity = answer.processing_activity().to_owned();
            e.count = pseudonyms.len() as u64;
            e.pupils = distinct(pseudonyms.into_iter());
            e.reason = format!("received from {} under {}", answer.peer(), answer.rule());
            entries.push(e);
        }
        for failure in &response.failures {
            let mut e = self.claim_entry(caller, &claim, Action::Receive);
            e.decision = AuditDecision::Deny;
            e.reason = format!("{} {}: {}", failure.peer, failure.code, failure.message);
            entries.push(e);
        }
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || node.record_all(entries)).await??;
        tracing::info!(
            peer.oin = %caller.org.oin,
            federation.answers = response.answers.len(),
            federation.failures = response.failures.len(),
            "federated query"
        );
        Ok(response)
    }
}

/// The distinct pseudonyms a peer sent; anything that is not a pseudonym (a peer's mistake, or
/// worse a raw id) is left out of the audit entry.
fn distinct<'a>(pseudonyms: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    pseudonyms
        .filter(|p| crate::pseudonym::is_pseudonym(p) && seen.insert(*p))
        .map(str::to_owned)
        .collect()
}
