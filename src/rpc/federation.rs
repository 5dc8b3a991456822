//! `pactgate.v1.Federation`: a partner's own system asks its own node, which asks every peer in
//! parallel under the same claim, waits at most a timeout per peer, and merges the answers. A
//! peer that refuses, fails or is too slow is reported, never waited for beyond the timeout.

use crate::node::NodeContext;
use crate::pb;
use crate::pb::exchange_client::ExchangeClient;
use crate::pb::federation_server::Federation;
use crate::peers::Peer;
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
) -> Result<pb::PeerAnswer, pb::PeerFailure> {
    let fail = |code: tonic::Code, message: String| pb::PeerFailure {
        peer: peer.config.name.clone(),
        code: code_name(code),
        message,
    };
    let mut client = ExchangeClient::new(peer.channel.clone());
    let mut outgoing = Request::new(request);
    outgoing.set_timeout(timeout);
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

/// Asks every peer in parallel and merges the answers.
pub async fn federate(
    peers: &[Peer],
    request: pb::QueryRequest,
    timeout: Duration,
) -> pb::FederationQueryResponse {
    let asks = peers
        .iter()
        .cloned()
        .map(|peer| ask(peer, request.clone(), timeout));
    let mut response = pb::FederationQueryResponse::default();
    for result in futures::future::join_all(asks).await {
        match result {
            Ok(answer) => response.answers.push(answer),
            Err(failure) => response.failures.push(failure),
        }
    }
    response
}

#[tonic::async_trait]
impl Federation for FederationService {
    async fn query(
        &self,
        request: Request<pb::FederationQueryRequest>,
    ) -> Result<Response<pb::FederationQueryResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let inner = request.into_inner();
        let timeout = match inner.timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)).min(MAX_TIMEOUT),
        };
        let query = pb::QueryRequest {
            claim: inner.claim,
            filter: inner.filter,
        };
        let response = federate(&self.node.peers, query, timeout).await;
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
