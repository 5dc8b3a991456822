//! `pactgate.v1.FederationService`: a partner's own system asks its own node, which asks every
//! peer in parallel under the same claim, waits at most a timeout per peer, and merges the
//! answers. A
//! peer that refuses, fails or is too slow is reported, never waited for beyond the timeout.

use crate::pb;
use crate::pb::exchange_service_client::ExchangeServiceClient;
use crate::pb::federation_service_server::FederationService;
use crate::peers::Peer;
use crate::service::clock::CountableAnswer;
use crate::service::federation::{
    timeout_of, FederatedAnswers, PeerAnswered, PeerAsker, PeerFailure,
};
use crate::service::{Caller, Claim, Service};
use crate::trace::TraceContext;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub use crate::service::federation::{DEFAULT_TIMEOUT, MAX_TIMEOUT};

pub struct FederationHandler {
    service: Service,
}

impl FederationHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
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
    let mut client = ExchangeServiceClient::new(peer.channel.clone());
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
) -> pb::QueryPeersResponse {
    let asks = peers
        .iter()
        .cloned()
        .map(|peer| ask(peer, request.clone(), timeout, trace.cloned()));
    let mut response = pb::QueryPeersResponse::default();
    for result in futures::future::join_all(asks).await {
        match result {
            Ok(answer) => response.answers.push(answer),
            Err(failure) => response.failures.push(failure),
        }
    }
    response
}

/// The node's peers over gRPC, as the service layer asks them.
pub struct GrpcPeers<'a>(pub &'a [Peer]);

impl PeerAnswered for pb::PeerAnswer {
    fn peer(&self) -> &str {
        &self.peer
    }

    fn rule(&self) -> &str {
        self.response.as_ref().map_or("", |r| r.rule.as_str())
    }

    fn processing_activity(&self) -> &str {
        self.response
            .as_ref()
            .map_or("", |r| r.processing_activity.as_str())
    }

    fn pupil_pseudonyms(&self) -> Vec<&str> {
        self.response.as_ref().map_or_else(Vec::new, |r| {
            r.signals
                .iter()
                .map(|s| s.pupil_pseudonym.as_str())
                .collect()
        })
    }
}

impl CountableAnswer for pb::PeerAnswer {
    fn signals(&self) -> Vec<crate::signal::Signal> {
        self.response
            .iter()
            .flat_map(|r| r.signals.iter())
            .filter_map(super::convert::signal_from_view)
            .collect()
    }
}

impl PeerAsker for GrpcPeers<'_> {
    type Filter = Option<pb::QueryFilter>;
    type Answer = pb::PeerAnswer;

    fn peer_count(&self) -> usize {
        self.0.len()
    }

    async fn ask_all(
        &self,
        claim: &Claim,
        filter: &Self::Filter,
        timeout: Duration,
        trace: &TraceContext,
    ) -> FederatedAnswers<pb::PeerAnswer> {
        let request = pb::QueryRequest {
            claim: Some(super::exchange::claim_to_pb(claim)),
            filter: filter.clone(),
        };
        let response = federate(self.0, request, timeout, Some(trace)).await;
        FederatedAnswers {
            answers: response.answers,
            failures: response
                .failures
                .into_iter()
                .map(|f| PeerFailure {
                    peer: f.peer,
                    code: f.code,
                    message: f.message,
                })
                .collect(),
        }
    }
}

/// Asks every peer under the caller's claim through the service layer, which audits it.
pub async fn federate_audited(
    service: &Service,
    caller: &Caller,
    claim: pb::AccessClaim,
    filter: Option<pb::QueryFilter>,
    timeout: Duration,
) -> Result<pb::QueryPeersResponse, Status> {
    let peers = GrpcPeers(&service.node().peers);
    let claim = super::exchange::claim_from_pb(claim);
    let answers = service
        .federated_query(caller, &peers, claim, filter, timeout)
        .await?;
    Ok(pb::QueryPeersResponse {
        answers: answers.answers,
        failures: answers
            .failures
            .into_iter()
            .map(|f| pb::PeerFailure {
                peer: f.peer,
                code: f.code,
                message: f.message,
            })
            .collect(),
    })
}

#[tonic::async_trait]
impl FederationService for FederationHandler {
    async fn query_peers(
        &self,
        request: Request<pb::QueryPeersRequest>,
    ) -> Result<Response<pb::QueryPeersResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let inner = request.into_inner();
        let timeout = timeout_of(inner.timeout_ms);
        let claim = inner.claim.unwrap_or_default();
        let response =
            federate_audited(&self.service, &caller, claim, inner.filter, timeout).await?;
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
