//! The console's client of its node's REST API (`/v1`, issue 12): HTTP/2 over the node's mutual
//! TLS with the organisation's certificate, the person passed as the stated actor in the same
//! `pactgate-actor` header the CLI's `--actor` travels in as gRPC metadata. Carries requests and
//! answers; decides nothing. A BSN travels only in a POST body, never in a path or a log line.

use crate::rpc::ACTOR_METADATA;
use crate::tls::TlsMaterial;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::codegen::http;
use tonic::transport::Channel;
use tower::ServiceExt as _;

/// What a JSON call accepts.
const JSON: &str = "application/json";

/// The most an answer of the node may hold (an audit export of a busy log fits).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NodeApiError {
    #[error("the node cannot be reached: {0}")]
    Unreachable(String),
    /// A problem+json answer (or another 4xx/5xx) of the node.
    #[error("{title} ({status}): {detail}")]
    Problem {
        status: u16,
        title: String,
        detail: String,
    },
    #[error("the node's answer to {path} cannot be read: {reason}")]
    Answer { path: String, reason: String },
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
}

/// RFC 9457 problem details, as far as the console shows them.
#[derive(Debug, Default, serde::Deserialize)]
struct Problem {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
}

/// A connection to the node's REST API.
#[derive(Clone, Debug)]
pub struct NodeApi {
    channel: Channel,
}

impl NodeApi {
    /// A lazily connecting client of the node at `addr` ("host:port") with the organisation's
    /// TLS material.
    pub fn new(addr: &str, tls: &TlsMaterial) -> Result<Self, NodeApiError> {
        Ok(Self {
            channel: crate::client::connect_lazy(addr, tls, None)?,
        })
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        actor: &str,
        (body, accept): (Option<Vec<u8>>, &str),
    ) -> Result<(http::HeaderMap, Vec<u8>), NodeApiError> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::ACCEPT, accept)
            .header(ACTOR_METADATA, actor);
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let body = axum::body::Body::from(body.unwrap_or_default());
        let request = request
            .body(tonic::body::Body::new(body))
            .map_err(|e| NodeApiError::Unreachable(e.to_string()))?;
        let response = self
            .channel
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| NodeApiError::Unreachable(e.to_string()))?;
        let (head, body) = response.into_parts();
        let bytes = axum::body::to_bytes(axum::body::Body::new(body), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| NodeApiError::Answer {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
            .to_vec();
        if !head.status.is_success() {
            let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(NodeApiError::Problem {
                status: head.status.as_u16(),
                title: if problem.title.is_empty() {
                    head.status.canonical_reason().unwrap_or("").to_owned()
                } else {
                    problem.title
                },
                detail: problem.detail,
            });
        }
        Ok((head.headers, bytes))
    }

    fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, NodeApiError> {
        serde_json::from_slice(bytes).map_err(|e| NodeApiError::Answer {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// GET `path` (no personal data in it), as `actor`, as JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        actor: &str,
    ) -> Result<T, NodeApiError> {
        let (_, bytes) = self
            .send(http::Method::GET, path, actor, (None, JSON))
            .await?;
        Self::decode(path, &bytes)
    }

    fn encode<B: Serialize>(path: &str, body: &B) -> Result<Vec<u8>, NodeApiError> {
        serde_json::to_vec(body).map_err(|e| NodeApiError::Answer {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// POST `body` as JSON to `path` as `actor`, a JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        actor: &str,
        body: &B,
    ) -> Result<T, NodeApiError> {
        let json = Self::encode(path, body)?;
        let (_, bytes) = self
            .send(http::Method::POST, path, actor, (Some(json), JSON))
            .await?;
        Self::decode(path, &bytes)
    }

    /// POST `body` as JSON to `path` as `actor`, a CSV answer.
    pub async fn post_csv<B: Serialize>(
        &self,
        path: &str,
        actor: &str,
        body: &B,
    ) -> Result<Vec<u8>, NodeApiError> {
        self.post_for(path, actor, body, "text/csv").await
    }

    /// POST `body` as JSON to `path` as `actor`, the answer in the media type `accept` (e.g.
    /// `image/svg+xml`).
    pub async fn post_for<B: Serialize>(
        &self,
        path: &str,
        actor: &str,
        body: &B,
        accept: &str,
    ) -> Result<Vec<u8>, NodeApiError> {
        Ok(self.post_download(path, actor, body, accept).await?.1)
    }

    /// POST `body` as JSON to `path` as `actor`, accepting `accept`: the answer's content type
    /// and bytes as the node sent them (a download).
    pub async fn post_download<B: Serialize>(
        &self,
        path: &str,
        actor: &str,
        body: &B,
        accept: &str,
    ) -> Result<(String, Vec<u8>), NodeApiError> {
        let json = Self::encode(path, body)?;
        let (headers, bytes) = self
            .send(http::Method::POST, path, actor, (Some(json), accept))
            .await?;
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        Ok((content_type, bytes))
    }
}
