//! The REST API (`/v1`) over real nodes and a real HTTP client with the dev certificates: the
//! OpenAPI document (served, committed, and the routes it lists), the `API-Version` header and
//! problem details on every answer, the TLS and gate refusals.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

/// Where the public copy of the document is committed.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

#[tokio::test]
async fn the_served_document_is_the_committed_one_over_http1_and_http2() {
    let node = TestNode::start("swv-vo").await;
    let committed = std::fs::read_to_string(COMMITTED).expect("docs/openapi.json is committed");
    for http1 in [false, true] {
        let client = rest_client_with(&material("swv-vo"), http1);
        let answer = rest_call(&client, node.addr(), Method::GET, "/openapi.json", None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(
            answer.api_version.as_deref(),
            Some(pactgate::rest::version::API_VERSION)
        );
        assert_eq!(
            answer.text, committed,
            "docs/openapi.json differs from the served document; regenerate it with \
             `cargo run -- openapi > docs/openapi.json`"
        );
    }
    assert_eq!(pactgate::rest::doc::document_json(), committed);
}

#[tokio::test]
async fn the_document_is_openapi_3_with_contact_version_and_dutch_descriptions() {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).expect("committed")).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let info = &doc["info"];
    for field in ["name", "url", "email"] {
        assert!(info["contact"][field].is_string(), "info.contact.{field}");
    }
    let version = info["version"].as_str().unwrap();
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "semver: {version}"
    );
    assert!(info["description"].as_str().unwrap().contains(" de "));
    assert_eq!(doc["servers"][0]["url"], "/v1");
    // The typed model reads it back whole.
    let typed: utoipa::openapi::OpenApi = serde_json::from_value(doc.clone()).unwrap();
    assert!(!typed.paths.paths.is_empty());
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(!path.ends_with('/'), "trailing slash: {path}");
        for segment in path.split('/').filter(|s| !s.starts_with('{')) {
            assert!(
                segment
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c)),
                "not kebab-case: {path}"
            );
        }
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let takes_input = op.get("requestBody").is_some()
                || op["parameters"].as_array().is_some_and(|p| !p.is_empty());
            if takes_input {
                assert!(
                    responses.contains_key("400"),
                    "{method} {path} documents no 400"
                );
            }
            for (code, response) in responses {
                assert!(
                    response["headers"]["API-Version"].is_object(),
                    "{method} {path} {code}: no API-Version header"
                );
                if code.starts_with('4') || code.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {code} is not problem+json"
                    );
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                assert!(
                    name.chars().next().unwrap().is_ascii_lowercase()
                        && name.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{method} {path}: parameter {name} is not lowerCamelCase"
                );
                assert!(
                    !["bsn", "pupilId", "pupilPseudonym", "pseudonym"].contains(&name),
                    "{method} {path}: a pupil in a URL"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_route_served_is_documented_and_every_documented_route_is_served() {
    let doc = pactgate::rest::doc::document();
    let mut documented = pactgate::rest::doc::documented(&doc);
    let mut served = pactgate::rest::served();
    documented.sort_by(|a, b| (a.1.as_str(), a.0.as_str()).cmp(&(b.1.as_str(), b.0.as_str())));
    served.sort_by(|a, b| (a.1.as_str(), a.0.as_str()).cmp(&(b.1.as_str(), b.0.as_str())));
    assert_eq!(documented, served);

    // And the running server answers each: never the router's own 404 or 405.
    let node = TestNode::start("swv-vo").await;
    let client = rest_client("swv-vo");
    for (method, path) in &documented {
        let path = path
            .trim_start_matches("/v1")
            .replace("{caseId}", "0123456789abcdef0123456789abcdef");
        let body = (*method == Method::POST).then(|| json!({}));
        let answer = rest_call(&client, node.addr(), method.clone(), &path, body.as_ref()).await;
        assert_eq!(
            answer.api_version.as_deref(),
            Some(pactgate::rest::version::API_VERSION)
        );
        assert_ne!(answer.status, 405, "{method} {path}: {answer:?}");
        if answer.status == 404 {
            assert!(
                !answer.problem(404).starts_with("no operation at this path"),
                "{method} {path} is documented but not served"
            );
        }
    }
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_trailing_slashes_are_problems() {
    let node = TestNode::start("swv-vo").await;
    let client = rest_client("swv-vo");
    let missing = rest_call(&client, node.addr(), Method::GET, "/no-such-thing", None).await;
    assert!(missing
        .problem(404)
        .starts_with("no operation at this path"));
    let slash = rest_call(&client, node.addr(), Method::GET, "/openapi.json/", None).await;
    slash.problem(404);
    let base = rest_call(&client, node.addr(), Method::GET, "", None).await;
    base.problem(404);
    let wrong = rest_call(&client, node.addr(), Method::DELETE, "/openapi.json", None).await;
    wrong.problem(405);
}

#[tokio::test]
async fn a_stranger_to_the_covenant_gets_a_403_problem() {
    let node = TestNode::start("swv-vo").await;
    let client = rest_client_with(&stranger_cert(), false);
    let answer = rest_call(&client, node.addr(), Method::GET, "/openapi.json", None).await;
    let detail = answer.problem(403);
    assert!(detail.contains("not a party"), "{detail}");
}

#[tokio::test]
async fn refused_certificates_get_no_answer_at_all() {
    let node = TestNode::start("swv-vo").await;
    let url = format!("{}/openapi.json", rest_base(node.addr()));
    for (case, tls) in [
        ("an expired certificate", expired_cert("swv-vo")),
        ("a foreign CA", foreign_cert("swv-vo")),
    ] {
        for http1 in [false, true] {
            let outcome = rest_client_with(&tls, http1).get(&url).send().await;
            assert!(outcome.is_err(), "{case} got an answer: {outcome:?}");
        }
    }
    // No client certificate at all.
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(material("swv-vo").roots().unwrap())
    .with_no_client_auth();
    let anonymous = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .http1_only()
        .build()
        .unwrap();
    let outcome = anonymous.get(&url).send().await;
    assert!(
        outcome.is_err(),
        "no certificate got an answer: {outcome:?}"
    );
    // The control: the party's own certificate is answered.
    let ok = rest_call(
        &rest_client("swv-vo"),
        node.addr(),
        Method::GET,
        "/openapi.json",
        None,
    )
    .await;
    assert_eq!(ok.status, 200);
}
