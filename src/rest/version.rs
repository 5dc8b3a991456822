//! The `API-Version` header on every answer (/core/version-header) and the last line of defence
//! for /core/error-handling/problem-details: an error answer that is not yet problem+json (one
//! of axum's own, say) is replaced by one with the same status. Never reads a body it keeps.

use super::problem::{Problem, PROBLEM_JSON};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The full version of the API (semver); its major version is the `/v1` in every path. The
/// OpenAPI document's `info.version` is this value.
pub const API_VERSION: &str = "1.0.0";

/// The header that carries [`API_VERSION`] on every answer.
pub const API_VERSION_HEADER: &str = "api-version";

/// Runs the request; makes an error answer problem+json and stamps the version on every answer.
pub async fn stamp(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let detail = match status.as_u16() {
            404 => "no operation at this path; see /v1/openapi.json for the operations".into(),
            405 => "this path does not take this method; see /v1/openapi.json".into(),
            _ => format!("the request failed ({status})"),
        };
        response = Problem::new(status, detail).into_response();
    }
    response.headers_mut().insert(
        header::HeaderName::from_static(API_VERSION_HEADER),
        HeaderValue::from_static(API_VERSION),
    );
    response
}
