//! `pactgate.v1.Federation`: a partner's own system asks its own node, which asks every peer in
//! parallel under the same claim, waits at most a timeout per peer, and merges the answers. A
//! peer that refuses, fails or is too slow is reported, never waited for beyond the timeout.

use super::exchange::claim_entry;
use crate::audit::{Action, Decision as AuditDecision};
use crate::identity::Organisation;
use crate::node::{audit_status, NodeContext};
use crate::pb;
use crate::pb::exchange_client::ExchangeClient;
use crate::pb::federation_server::Federation;
use crate::peers::Peer;
use crate::trace::TraceContext;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// How long a peer may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// The longest timeout a caller may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

pub struct FederationService {
    node: Arc<NodeContext>,
}

impl FederationService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }
}

async fn ask(
    peer: Peer,
    request: pb::QueryRequest,
    timeout: Duration,
    trace: Option<TraceContext>,
) -> Result<pb::PeerAnswer, pb::PeerFailure> {
    let fail = |code: tonic::Code, message: String| pb::PeerFailure {
        peer: peer.config.name.clone(),
        code: code_name(code),
        message,
    };
    let mut client = ExchangeClient::new(peer.channel.clone());
    let mut outgoing = Request::new(request);
    outgoing.set_timeout(timeout);
    if let Some(trace) = &trace {
        trace.inject(&mut outgoing);
    }
    match tokio::time::timeout(timeout, client.query(outgoing)).await {
        Err(_) => Err(fail(
            tonic::Code::DeadlineExceeded,
            format!("no answer within {} ms", timeout.as_millis()),
        )),
        Ok(Err(status)) => Err(fail(status.code(), status.message().to_owned())),
        Ok(Ok(response)) => Ok(pb::PeerAnswer {
            peer: peer.config.name.clone(),
            response: Some(response.into_inner()),
        }),
    }
}

/// The proto name of a status code, e.g. "PERMISSION_DENIED".
pub fn code_name(code: tonic::Code) -> String {
    let name = format!("{code:?}");
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    match out.as_str() {
        "OK" => "OK".into(),
        _ => out,
    }
}

/// Asks every peer in parallel and merges the answers; the trace, if given, goes to every peer.
pub async fn federate(
    peers: &[Peer],
    request: pb::QueryRequest,
    timeout: Duration,
    trace: Option<&TraceContext>,
) -> pb::FederationQueryResponse {
    let asks = peers
        .iter()
        .cloned()
        .map(|peer| ask(peer, request.clone(), timeout, trace.cloned()));
    let mut response = pb::FederationQueryResponse::default();
    for result in futures::future::join_all(asks).await {
        match result {
            Ok(answer) => response.answers.push(answer),
            Err(failure) => response.failures.push(failure),
        }
    }
    response
}

/// Asks every peer under the caller's claim and audits it: one entry for the federated query and
/// one per peer for what it sent back (or why not), all durable before the answer is returned.
pub async fn federate_audited(
    node: &Arc<NodeContext>,
    caller: &Organisation,
    trace: &TraceContext,
    request: pb::QueryRequest,
    timeout: Duration,
) -> Result<pb::FederationQueryResponse, Status> {
    let claim = request.claim.clone().unwrap_or_default();
    // Caller text that could be a pupil id is refused here, before a copy goes to every peer.
    super::exchange::check_claim_text(&claim)?;
    let response = federate(&node.peers, request, timeout, Some(trace)).await;
    let mut entries = Vec::new();
    let mut asked = claim_entry(node, trace, caller, &claim, Action::FederatedQuery);
    asked.count = response.answers.len() as u64;
    asked.reason = format!(
        "asked {} peers: {} answered, {} refused or failed",
        node.peers.len(),
        response.answers.len(),
        response.failures.len()
    );
    entries.push(asked);
    for answer in &response.answers {
        let Some(r) = &answer.response else { continue };
        let mut e = claim_entry(node, trace, caller, &claim, Action::Receive);
        e.processing_activity = r.processing_activity.clone();
        e.pupils = distinct(r.signals.iter().map(|s| s.pupil_pseudonym.as_str()));
        e.count = r.signals.len() as u64;
        e.reason = format!("received from {} under {}", answer.peer, r.rule);
        entries.push(e);
    }
    for failure in &response.failures {
        let mut e = claim_entry(node, trace, caller, &claim, Action::Receive);
        e.decision = AuditDecision::Deny;
        e.reason = format!("{} {}: {}", failure.peer, failure.code, failure.message);
        entries.push(e);
    }
    let recorder = node.clone();
    tokio::task::spawn_blocking(move || {
        for e in entries {
            recorder.audit.append(e).map_err(audit_status)?;
        }
        recorder.store.sync().map_err(super::store_status)
    })
    .await
    .map_err(super::task_status)??;
    Ok(response)
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

#[tonic::async_trait]
impl Federation for FederationService {
    async fn query(
        &self,
        request: Request<pb::FederationQueryRequest>,
    ) -> Result<Response<pb::FederationQueryResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let inner = request.into_inner();
        let timeout = match inner.timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)).min(MAX_TIMEOUT),
        };
        let query = pb::QueryRequest {
            claim: inner.claim,
            filter: inner.filter,
        };
        let response = federate_audited(&self.node, &caller, &trace, query, timeout).await?;
        tracing::info!(
            peer.oin = %caller.oin,
            federation.answers = response.answers.len(),
            federation.failures = response.failures.len(),
            "federated query"
        );
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_names_follow_grpc() {
        assert_eq!(
            super::code_name(tonic::Code::PermissionDenied),
            "PERMISSION_DENIED"
        );
        assert_eq!(super::code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(
            super::code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
    }
}
