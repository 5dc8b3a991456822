//! Problem details (RFC 9457, `application/problem+json`): the one shape of every 4xx and 5xx the
//! REST API answers, and the extractors that turn axum's own rejections into it. A problem names
//! the record and field at fault, never echoes a pupil id, and holds no internals.

use crate::service::ServiceError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The content type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Een foutmelding volgens RFC 9457 (problem details). Elke 4xx- en 5xx-respons van deze API heeft
/// deze vorm, met content type `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Het soort probleem; `about:blank` betekent: de HTTP-status zegt genoeg.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: &'static str,
    /// De HTTP-statusomschrijving.
    #[schema(example = "Bad Request")]
    pub title: &'static str,
    /// De HTTP-statuscode.
    #[schema(example = 400)]
    pub status: u16,
    /// Wat er mis is, in woorden die een mens begrijpt; nooit een leerling-id.
    pub detail: String,
    /// De velden van het verzoek die zijn geweigerd, elk met de reden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
    /// Bij het aanleveren van signalen: de geweigerde records, elk met index, veld en reden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedRecord>,
}

/// Een geweigerd veld van een verzoek.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvalidParam {
    /// De naam van het veld of de query-parameter.
    pub name: String,
    /// Waarom het is geweigerd.
    pub reason: String,
}

/// Een geweigerd record van een aanlevering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RejectedRecord {
    /// De positie van het record in `records`, vanaf 0.
    pub index: u32,
    /// De naam van het geweigerde veld (zoals in het SignalRecord).
    pub field: String,
    /// Waarom, in woorden die een mens begrijpt; herhaalt nooit het leerling-id.
    pub reason: String,
}

impl Problem {
    /// A problem of `status` (its reason phrase as title) with `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            invalid_params: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// A 400 naming the field at fault.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let mut problem = Self::new(StatusCode::BAD_REQUEST, format!("{field}: {reason}"));
        problem.invalid_params.push(InvalidParam {
            name: field.into(),
            reason,
        });
        problem
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A refusal of the gate in front of every handler (identity, party, load, deadline).
    pub fn from_status(status: &tonic::Status) -> Self {
        let code = match status.code() {
            tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
            tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(code, status.message())
    }
}

/// The one mapping of the service layer's errors to problems. A malformed field is named in
/// `invalidParams` as the JSON names it (lowerCamelCase).
impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        let status = match &e {
            E::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            E::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            E::InvalidArgument { .. } | E::OutOfRange(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            E::FailedPrecondition(_) => StatusCode::CONFLICT,
            E::DeadlineExceeded(_) => StatusCode::REQUEST_TIMEOUT,
            E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut problem = Problem::new(status, e.to_string());
        if let E::InvalidArgument { field, message } = e {
            problem.invalid_params.push(InvalidParam {
                name: camel_case(&field),
                reason: message,
            });
        }
        problem
    }
}

/// A proto field path (`claim.legal_basis`) as the JSON names it (`claim.legalBasis`).
pub fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response()
    }
}

/// A JSON body; a body that is not the documented JSON is a 400 (413 if too large) problem naming
/// where it fails, without echoing the body.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The problem for a body that could not be read as JSON. serde's message names the place
/// (line, column, field) but, for a wrong value, may quote it: only the part before the quote is
/// kept, so no pupil id is echoed.
fn json_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(e) => Problem::invalid("body", quiet(&e.body_text())),
        JsonRejection::JsonSyntaxError(_) => Problem::invalid("body", "the body is not valid JSON"),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be sent with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than this operation accepts",
            )
        }
        other => Problem::new(other.status(), "the body could not be read"),
    }
}

/// A deserializer's message with every quoted value left out (it could be a pupil id): a
/// double-quoted string always, a backquoted one (a field name, or a number) if it holds a digit.
fn quiet(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = &rest[start..=start];
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else {
            out.push_str("<value>");
            rest = "";
            break;
        };
        let inner = &after[..end];
        if quote == "`" && !inner.chars().any(char::is_numeric) {
            out.push_str(&rest[start..start + end + 2]);
        } else {
            out.push_str("<value>");
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if crate::pseudonym::looks_like_id(&out) {
        return "the body does not have the documented shape".into();
    }
    out
}

/// Query parameters; unknown or malformed ones are a 400 problem naming them.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Problem::invalid("query", quiet(&e.body_text())))
            }
            Err(other) => Err(Problem::new(
                other.status(),
                "the query string could not be read",
            )),
        }
    }
}

/// A path parameter; one that is not of the documented form is a 400 problem.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_| Problem::invalid("path", "a path parameter is not of the documented form"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_become_camel_case() {
        assert_eq!(camel_case("claim.legal_basis"), "claim.legalBasis");
        assert_eq!(camel_case("pupil_pseudonym"), "pupilPseudonym");
    }

    #[test]
    fn quoted_values_are_left_out() {
        let m = quiet("invalid type: string \"123456782\", expected u32 at line 1 column 30");
        assert!(!m.contains("123456782"), "{m}");
        assert!(m.contains("expected u32 at line 1 column 30"), "{m}");
        let m = quiet("records[2]: invalid type: integer `123456782`, expected a string");
        assert!(
            !m.contains("123456782") && m.starts_with("records[2]"),
            "{m}"
        );
        let m = quiet("records[0]: missing field `pupilId`");
        assert!(m.ends_with("`pupilId`"), "{m}");
    }

    #[test]
    fn a_problem_is_problem_json_with_its_status() {
        let response = Problem::invalid("records[0].age", "must be 3 to 23").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
