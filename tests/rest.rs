//! The REST API (`/v1`) over real nodes and a real HTTP client with the dev certificates: the
//! OpenAPI document (served, committed, and the routes it lists), the `API-Version` header and
//! problem details on every answer, the TLS and gate refusals.

mod common;

use common::*;
use pactgate::pb;
use reqwest::Method;
use serde_json::json;

/// Where the public copy of the document is committed.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_committed_one_over_http1_and_http2() {
    if std::env::var_os("PACTGATE_WRITE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, pactgate::rest::doc::document_json()).unwrap();
    }
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
             `cargo run -- openapi > docs/openapi.json` (or run this test with \
             PACTGATE_WRITE_OPENAPI=1)"
        );
    }
    assert_eq!(pactgate::rest::doc::document_json(), committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
            .replace("{caseId}", "case-abcdefabcdefabcd");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_to_the_covenant_gets_a_403_problem() {
    let node = TestNode::start("swv-vo").await;
    let client = rest_client_with(&stranger_cert(), false);
    let answer = rest_call(&client, node.addr(), Method::GET, "/openapi.json", None).await;
    let detail = answer.problem(403);
    assert!(detail.contains("not a party"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

/// A record that passes every check, as JSON (see `good_record` for the gRPC one).
fn json_record(id: &str, bsn: &str) -> serde_json::Value {
    json!({
        "sourceRecordId": id,
        "pupilId": bsn,
        "category": "LRV",
        "sector": "VO",
        "residenceMunicipality": "GM0014",
        "school": "20XY01",
        "absentSince": date_from_today(-60),
        "status": "OPEN",
        "age": 14,
    })
}

async fn rest_push(node: &TestNode, party: &str, records: Vec<serde_json::Value>) -> RestAnswer {
    let body = json!({ "records": records });
    rest_call(
        &rest_client(party),
        node.addr(),
        Method::POST,
        "/signals",
        Some(&body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_push_answers_as_a_grpc_push_and_lists_the_same() {
    let rest_node = TestNode::start("swv-vo").await;
    let grpc_node = TestNode::start("swv-vo").await;
    let bsns = Bsns::new(12).take(3);
    let bad = failing_eleven_proof(&bsns[0]);
    let ids = ["rest-a1", "rest-b2", "rest-c3"];
    let mut json_records: Vec<_> = ids
        .iter()
        .zip(&bsns)
        .map(|(id, b)| json_record(id, b))
        .collect();
    json_records.push(json_record("rest-d4", &bad));
    let mut grpc_records: Vec<_> = ids
        .iter()
        .zip(&bsns)
        .map(|(id, b)| good_record(id, b))
        .collect();
    grpc_records.push(good_record("rest-d4", &bad));

    let answer = rest_push(&rest_node, "swv-vo", json_records).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.api_version.as_deref(),
        Some(pactgate::rest::version::API_VERSION)
    );
    assert!(
        !answer.text.contains(&bad),
        "the refused pupil id is echoed"
    );
    let grpc = push(&mut grpc_node.intake().await, grpc_records)
        .await
        .unwrap();
    assert_eq!(answer.body["accepted"], grpc.accepted);
    assert_eq!(answer.body["rejectedCount"], grpc.rejected_count);
    let rejected = answer.body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), grpc.rejected.len());
    assert_eq!(rejected[0]["index"], grpc.rejected[0].index);
    assert_eq!(rejected[0]["field"], "pupilId");
    assert_eq!(grpc.rejected[0].field, "pupil_id");
    assert_eq!(rejected[0]["reason"], grpc.rejected[0].reason);

    // The REST listing, the gRPC listing of the same node and the gRPC node's listing agree.
    let listed = rest_call(
        &rest_client("swv-vo"),
        rest_node.addr(),
        Method::GET,
        "/signals",
        None,
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let views = list_all(&mut rest_node.intake().await).await;
    let other = list_all(&mut grpc_node.intake().await).await;
    let rest_views = listed.body["signals"].as_array().unwrap();
    assert_eq!(rest_views.len(), 3);
    for ((json, view), twin) in rest_views.iter().zip(&views).zip(&other) {
        assert_eq!(json["sourceRecordId"], view.source_record_id);
        assert_eq!(json["pupilPseudonym"], view.pupil_pseudonym);
        assert_eq!(view.pupil_pseudonym, twin.pupil_pseudonym);
        assert_eq!(json["absentSince"], view.absent_since);
        assert_eq!(json["category"], "LRV");
        assert_eq!(json["status"], "OPEN");
        assert!(json["updatedAt"].as_str().unwrap().ends_with('Z'));
    }
    assert!(listed.body.get("nextPageToken").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_every_record_is_refused_is_a_400_listing_them() {
    let node = TestNode::start("swv-vo").await;
    let bsn = Bsns::new(13).next_bsn();
    let mut no_category = json_record("rest-x1", &bsn);
    no_category["category"] = json!("");
    let mut unknown = json_record("rest-x2", &bsn);
    unknown["status"] = json!("123456782");
    let mut young = json_record("rest-x3", &bsn);
    young["age"] = json!(2);
    let answer = rest_push(&node, "swv-vo", vec![no_category, unknown, young]).await;
    let detail = answer.problem(400);
    assert!(detail.contains("all 3 records were refused"), "{detail}");
    let rejected = answer.body["rejected"].as_array().unwrap();
    let fields: Vec<_> = rejected
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, [(0, "category"), (1, "status"), (2, "age")]);
    assert!(!answer.text.contains("123456782"));
    assert!(list_all(&mut node.intake().await).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_nodes_own_organisation_may_push_and_list() {
    let node = TestNode::start_with(
        "swv-vo",
        NodeOptions {
            policy: Some(policy_path()),
            ..Default::default()
        },
    )
    .await;
    let bsn = Bsns::new(14).next_bsn();
    let answer = rest_push(&node, "leerplicht", vec![json_record("rest-p1", &bsn)]).await;
    let detail = answer.problem(403);
    assert!(!detail.contains(&bsn));
    let listed = rest_call(
        &rest_client("leerplicht"),
        node.addr(),
        Method::GET,
        "/signals",
        None,
    )
    .await;
    listed.problem(403);
    assert!(list_all(&mut node.intake().await).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_come_in_pages_and_a_pupil_is_searched_in_the_body() {
    let node = TestNode::start("swv-vo").await;
    let bsns = Bsns::new(15).take(5);
    let records: Vec<_> = bsns
        .iter()
        .enumerate()
        .map(|(i, b)| json_record(&format!("page-{i}x"), b))
        .collect();
    assert_eq!(rest_push(&node, "swv-vo", records).await.status, 200);
    let client = rest_client("swv-vo");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..4 {
        let path = match &token {
            Some(t) => format!("/signals?pageSize=2&pageToken={t}"),
            None => "/signals?pageSize=2".into(),
        };
        let page = rest_call(&client, node.addr(), Method::GET, &path, None).await;
        assert_eq!(page.status, 200, "{page:?}");
        for s in page.body["signals"].as_array().unwrap() {
            seen.push(s["sourceRecordId"].as_str().unwrap().to_owned());
        }
        token = page.body["nextPageToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        ["page-0x", "page-1x", "page-2x", "page-3x", "page-4x"]
    );

    let pseudonym = pseudonym_of(&bsns[3]);
    let found = rest_call(
        &client,
        node.addr(),
        Method::POST,
        "/signals/search",
        Some(&json!({ "pupilPseudonym": pseudonym })),
    )
    .await;
    assert_eq!(found.status, 200, "{found:?}");
    let signals = found.body["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0]["sourceRecordId"], "page-3x");
    let filtered = rest_call(
        &client,
        node.addr(),
        Method::GET,
        "/signals?category=AV",
        None,
    )
    .await;
    assert_eq!(
        filtered.body["signals"].as_array().unwrap().len(),
        0,
        "{filtered:?}"
    );

    let bad = rest_call(
        &client,
        node.addr(),
        Method::POST,
        "/signals/search",
        Some(&json!({ "pupilPseudonym": "not one" })),
    )
    .await;
    bad.problem(400);
    assert_eq!(bad.body["invalidParams"][0]["name"], "pupilPseudonym");
    let oversized = rest_call(
        &client,
        node.addr(),
        Method::GET,
        "/signals?pageSize=5000",
        None,
    )
    .await;
    oversized.problem(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_problems_that_echo_no_pupil_id() {
    let node = TestNode::start("swv-vo").await;
    let client = rest_client("swv-vo");
    let bsn = Bsns::new(16).next_bsn();
    let mut numeric = json_record("rest-m1", &bsn);
    numeric["pupilId"] = json!(bsn.parse::<u64>().unwrap());
    let answer = rest_push(&node, "swv-vo", vec![numeric]).await;
    let detail = answer.problem(400);
    assert!(!answer.text.contains(&bsn), "{detail}");
    assert!(detail.contains("records[0]"), "{detail}");

    let not_json = RestAnswer::read(
        client
            .post(format!("{}/signals", rest_base(node.addr())))
            .header("content-type", "application/json")
            .body(format!("{{\"records\": [{bsn}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    not_json.problem(400);
    assert!(!not_json.text.contains(&bsn));
    let wrong_type = RestAnswer::read(
        client
            .post(format!("{}/signals", rest_base(node.addr())))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    wrong_type.problem(415);

    let unknown_key = rest_call(
        &client,
        node.addr(),
        Method::GET,
        &format!("/signals?bsn={bsn}"),
        None,
    )
    .await;
    unknown_key.problem(400);
    assert!(!unknown_key.text.contains(&bsn));

    let too_many: Vec<_> = (0..pactgate::rest::signals::MAX_PUSH_RECORDS + 1)
        .map(|i| json!({ "sourceRecordId": format!("n{i}x") }))
        .collect();
    rest_push(&node, "swv-vo", too_many).await.problem(413);

    let actor = RestAnswer::read(
        client
            .get(format!("{}/signals", rest_base(node.addr())))
            .header("Pactgate-Actor", format!("medewerker {bsn}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    actor.problem(400);
    assert!(!actor.text.contains(&bsn));
    assert!(list_all(&mut node.intake().await).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_query_over_rest_answers_as_over_grpc() {
    let fed = Federation::start(&["leerplicht", "swv-vo"]).await;
    let bsns = Bsns::new(17).take(3);
    let records: Vec<_> = bsns
        .iter()
        .enumerate()
        .map(|(i, b)| json_record(&format!("fed-{i}x"), b))
        .collect();
    let pushed = rest_push(fed.node("swv-vo"), "swv-vo", records).await;
    assert_eq!(pushed.body["accepted"], 3, "{pushed:?}");

    let body = json!({
        "claim": {
            "role": "leerplichtambtenaar",
            "legalBasis": "lpw-art21",
            "purpose": "verzuimaanpak",
            "actor": "test",
            "routineFlow": "verzuimmelding",
        },
        "timeoutMs": 3000,
    });
    let leerplicht = fed.node("leerplicht");
    let client = rest_client("leerplicht");
    let answer = rest_call(
        &client,
        leerplicht.addr(),
        Method::POST,
        "/federated-queries",
        Some(&body),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let grpc = leerplicht
        .federation_as("leerplicht")
        .await
        .query_peers(pb::QueryPeersRequest {
            claim: Some(verzuimmelding_claim()),
            filter: None,
            timeout_ms: 3000,
        })
        .await
        .unwrap()
        .into_inner();
    let answers = answer.body["answers"].as_array().unwrap();
    assert_eq!(answers.len(), grpc.answers.len());
    assert_eq!(
        answer.body["failures"].as_array().unwrap().len(),
        grpc.failures.len()
    );
    let (json, proto) = (&answers[0], grpc.answers[0].response.as_ref().unwrap());
    assert_eq!(json["peer"], grpc.answers[0].peer);
    assert_eq!(json["rule"], proto.rule);
    assert_eq!(json["disclosedFields"], json!(proto.disclosed_fields));
    let signals = json["signals"].as_array().unwrap();
    assert_eq!(signals.len(), proto.signals.len());
    assert!(!signals.is_empty());
    let mut rest_pupils: Vec<_> = signals
        .iter()
        .map(|s| s["pupilPseudonym"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut grpc_pupils: Vec<_> = proto
        .signals
        .iter()
        .map(|s| s.pupil_pseudonym.clone())
        .collect();
    rest_pupils.sort();
    grpc_pupils.sort();
    assert_eq!(rest_pupils, grpc_pupils);
    for s in signals {
        for key in s.as_object().unwrap().keys() {
            let proto_name: String = key
                .chars()
                .flat_map(|c| {
                    if c.is_ascii_uppercase() {
                        vec!['_', c.to_ascii_lowercase()]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            assert!(
                proto.disclosed_fields.contains(&proto_name),
                "{key} was not disclosed"
            );
        }
    }

    // A claim the policy does not allow is each peer's refusal, as over gRPC.
    let mut wrong = body.clone();
    wrong["claim"]["legalBasis"] = json!("lpw-art25");
    let refused = rest_call(
        &client,
        leerplicht.addr(),
        Method::POST,
        "/federated-queries",
        Some(&wrong),
    )
    .await;
    assert_eq!(refused.status, 200, "{refused:?}");
    assert_eq!(refused.body["failures"][0]["code"], "PERMISSION_DENIED");

    // A pupil number in the claim's text is refused before any peer sees it.
    let mut leaky = body.clone();
    leaky["claim"]["actor"] = json!(format!("over {}", bsns[0]));
    let leak = rest_call(
        &client,
        leerplicht.addr(),
        Method::POST,
        "/federated-queries",
        Some(&leaky),
    )
    .await;
    leak.problem(400);
    assert!(!leak.text.contains(&bsns[0]));
    assert_eq!(leak.body["invalidParams"][0]["name"], "claim.actor");

    // Another organisation may not ask through this node.
    let foreign = rest_call(
        &rest_client("wij"),
        leerplicht.addr(),
        Method::POST,
        "/federated-queries",
        Some(&body),
    )
    .await;
    foreign.problem(403);
}

/// The Python client that `openapi-python-client` generates from the committed document, with no
/// edits, pushes, lists, asks a federated query and reads a refusal (`.ci/rest_client.py`).
/// Needs the generated package: `.ci/run` generates it and runs this test with
/// `PACTGATE_PYTHON_CLIENT` set to the directory that holds `pactgate_client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the generated Python client; .ci/run runs it"]
async fn generated_python_client_pushes_lists_and_queries() {
    let client_dir = std::env::var("PACTGATE_PYTHON_CLIENT")
        .expect("PACTGATE_PYTHON_CLIENT names the directory of the generated client");
    let fed = Federation::start(&["leerplicht", "swv-vo"]).await;
    let bsns = Bsns::new(18).take(3);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/rest_client.py");
    let mut python = std::process::Command::new("python3");
    python
        .arg(script)
        .arg(rest_base(fed.node("swv-vo").addr()))
        .arg(rest_base(fed.node("leerplicht").addr()))
        .arg(certs_dir())
        .args(&bsns)
        .env("PYTHONPATH", client_dir);
    let output = tokio::task::spawn_blocking(move || python.output())
        .await
        .unwrap()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_open_list_accept_and_close_over_rest_as_over_grpc() {
    let fed = Federation::start(&["swv-vo", "leerplicht"]).await;
    let bsns = Bsns::new(19).take(2);
    let (swv, leerplicht) = (fed.node("swv-vo"), fed.node("leerplicht"));
    let (at_swv, at_lp) = (rest_client("swv-vo"), rest_client("leerplicht"));
    let open = json!({
        "meetingType": "aoj-team-vo",
        "purpose": "passend-aanbod",
        "actor": "zorgcoordinator",
        "pupilPseudonyms": bsns.iter().map(|b| pseudonym_of(b)).collect::<Vec<_>>(),
        "participantOins": [oin("leerplicht")],
    });
    let opened = rest_call(&at_swv, swv.addr(), Method::POST, "/cases", Some(&open)).await;
    assert_eq!(opened.status, 201, "{opened:?}");
    assert_eq!(opened.body["notNotified"], json!([]));
    let case = &opened.body["case"];
    let id = case["id"].as_str().unwrap().to_owned();
    assert_eq!(case["acceptance"], "ACCEPTED");
    assert_eq!(case["lead"]["oin"], oin("swv-vo"));

    // The participant's node holds it, pending, as its gRPC listing says too.
    let listed = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::GET,
        "/cases?openOnly=true",
        None,
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let grpc = leerplicht
        .cases_as("leerplicht")
        .await
        .list_cases(pb::ListCasesRequest { open_only: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.body["cases"].as_array().unwrap().len(),
        grpc.cases.len()
    );
    assert_eq!(listed.body["cases"][0]["id"], grpc.cases[0].case_id);
    assert_eq!(listed.body["cases"][0]["acceptance"], "PENDING");
    assert_eq!(
        listed.body["cases"][0]["pupilPseudonyms"],
        json!(grpc.cases[0].pupil_pseudonyms)
    );

    let actor = json!({ "actor": "leerplichtambtenaar" });
    let accepted = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::POST,
        &format!("/cases/{id}/accept"),
        Some(&actor),
    )
    .await;
    assert_eq!(accepted.status, 200, "{accepted:?}");
    assert_eq!(accepted.body["acceptance"], "ACCEPTED");
    // Declined, it stays declined: accepting again is a 409 problem.
    let declined = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::POST,
        &format!("/cases/{id}/decline"),
        Some(&actor),
    )
    .await;
    assert_eq!(declined.body["acceptance"], "DECLINED", "{declined:?}");
    let again = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::POST,
        &format!("/cases/{id}/accept"),
        Some(&actor),
    )
    .await;
    assert!(again.problem(409).contains("was declined here"));

    // Only the lead closes; then it is closed at the participant's node too.
    let not_lead = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::POST,
        &format!("/cases/{id}/close"),
        Some(&actor),
    )
    .await;
    not_lead.problem(403);
    let closed = rest_call(
        &at_swv,
        swv.addr(),
        Method::POST,
        &format!("/cases/{id}/close"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    assert_eq!(closed.body["case"]["open"], false);
    let open_now = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::GET,
        "/cases?openOnly=true",
        None,
    )
    .await;
    assert_eq!(open_now.body["cases"], json!([]), "{open_now:?}");

    // Refusals as problems: unknown case, a pupil number as case id, another organisation.
    let unknown = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::POST,
        "/cases/case-abcdefabcdefabcd/accept",
        Some(&actor),
    )
    .await;
    unknown.problem(404);
    let leak = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::POST,
        &format!("/cases/{}/accept", bsns[0]),
        Some(&actor),
    )
    .await;
    leak.problem(400);
    assert!(!leak.text.contains(&bsns[0]));
    let foreign = rest_call(&at_lp, swv.addr(), Method::POST, "/cases", Some(&open)).await;
    foreign.problem(403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_list_report_and_counts_over_rest_answer_as_over_grpc() {
    let tuning = NodeTuning {
        counting: Some(counting_path()),
        ..NodeTuning::default()
    };
    let node = TestNode::start_tuned("swv-vo", NodeOptions::default(), tuning).await;
    let records: Vec<_> = Bsns::new(20)
        .take(6)
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut r = json_record(&format!("clock-{i}x"), b);
            r["absentSince"] = json!("2026-06-01");
            r
        })
        .collect();
    assert_eq!(rest_push(&node, "swv-vo", records).await.status, 200);
    let own = rest_client("swv-vo");

    let due = rest_call(
        &own,
        node.addr(),
        Method::POST,
        "/due-list",
        Some(&json!({})),
    )
    .await;
    assert_eq!(due.status, 200, "{due:?}");
    let grpc_due = node
        .clock_as("swv-vo")
        .await
        .due(pb::DueRequest::default())
        .await
        .unwrap()
        .into_inner();
    let lines = due.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines.len(), grpc_due.lines.len());
    for (json, line) in lines.iter().zip(&grpc_due.lines) {
        assert_eq!(json["pupilPseudonym"], line.pupil_pseudonym);
        assert_eq!(json["weeks"], line.weeks);
        assert_eq!(json["escalationStep"], line.escalation_step);
    }
    assert_eq!(due.body["at"], grpc_due.at);

    let ask = json!({ "rule": "g4", "at": ["2026-11-01"] });
    let report = rest_call(&own, node.addr(), Method::POST, "/reports", Some(&ask)).await;
    assert_eq!(report.status, 200, "{report:?}");
    let grpc_report = node
        .clock_as("swv-vo")
        .await
        .report(pb::ReportRequest {
            at: vec!["2026-11-01".into()],
            rule: "g4".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let cells = report.body["cells"].as_array().unwrap();
    assert_eq!(cells.len(), grpc_report.cells.len());
    for (json, cell) in cells.iter().zip(&grpc_report.cells) {
        assert_eq!(
            (
                json["scope"].as_str(),
                json["row"].as_str(),
                json["column"].as_str()
            ),
            (
                Some(cell.scope.as_str()),
                Some(cell.row.as_str()),
                Some(cell.column.as_str())
            )
        );
        assert_eq!(json["count"].as_u64(), cell.count);
    }
    let csv = RestAnswer::read(
        own.post(format!("{}/reports", rest_base(node.addr())))
            .header("accept", "text/csv")
            .json(&ask)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"), "{csv:?}");
    assert_eq!(csv.text, grpc_report.csv);

    let monitoring = json!({
        "rule": "g4",
        "at": ["2026-11-01"],
        "claim": {
            "role": "monitor",
            "legalBasis": "lpw-art25",
            "purpose": "monitoring",
            "routineFlow": "monitoring",
        },
    });
    let counts = rest_call(
        &rest_client("leerplicht"),
        node.addr(),
        Method::POST,
        "/counts",
        Some(&monitoring),
    )
    .await;
    assert_eq!(counts.status, 200, "{counts:?}");
    assert_eq!(counts.body["threshold"], 5);
    assert_eq!(counts.body["holderOin"], oin("swv-vo"));
    for cell in counts.body["cells"].as_array().unwrap() {
        if let Some(n) = cell["count"].as_u64() {
            assert!(n == 0 || n >= 5, "a small cell left the node: {cell}");
        }
    }
    let mut wrong = monitoring.clone();
    wrong["claim"]["legalBasis"] = json!("lpw-art21");
    rest_call(
        &rest_client("leerplicht"),
        node.addr(),
        Method::POST,
        "/counts",
        Some(&wrong),
    )
    .await
    .problem(403);
    let unknown = rest_call(
        &own,
        node.addr(),
        Method::POST,
        "/reports",
        Some(&json!({ "rule": "nope", "at": ["2026-11-01"] })),
    )
    .await;
    unknown.problem(400);
    rest_call(
        &rest_client("leerplicht"),
        node.addr(),
        Method::POST,
        "/due-list",
        Some(&json!({})),
    )
    .await
    .problem(403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fg_inspects_the_audit_log_over_rest_as_over_grpc() {
    let node = TestNode::start_tuned(
        "leerplicht",
        NodeOptions::default(),
        NodeTuning::fast_audit_with_counting(),
    )
    .await;
    let bsns = Bsns::new(21).take(2);
    let records: Vec<_> = bsns
        .iter()
        .enumerate()
        .map(|(i, b)| json_record(&format!("audit-{i}x"), b))
        .collect();
    assert_eq!(rest_push(&node, "leerplicht", records).await.status, 200);
    let fg = rest_client("fg");

    let page = rest_call(
        &fg,
        node.addr(),
        Method::POST,
        "/audit/entries/search",
        Some(&json!({ "limit": 2 })),
    )
    .await;
    assert_eq!(page.status, 200, "{page:?}");
    let grpc = node
        .audit_as("fg")
        .await
        .list_entries(pb::ListEntriesRequest {
            filter: None,
            after_seq: 0,
            first_page: true,
            limit: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), grpc.entries.len());
    for (json, e) in entries.iter().zip(&grpc.entries) {
        assert_eq!(json["seq"], e.seq);
        assert_eq!(json["reason"], e.reason);
        assert_eq!(json["pupilPseudonyms"], json!(e.pupil_pseudonyms));
    }
    assert_eq!(page.body["more"], true);

    let report = rest_call(
        &fg,
        node.addr(),
        Method::POST,
        "/audit/access-reports",
        Some(&json!({ "pupilId": bsns[0] })),
    )
    .await;
    assert_eq!(report.status, 200, "{report:?}");
    assert!(!report.text.contains(&bsns[0]), "the pupil id is echoed");
    assert_eq!(report.body["pupilPseudonym"], pseudonym_of(&bsns[0]));
    assert!(!report.body["entries"].as_array().unwrap().is_empty());

    let verified = rest_call(&fg, node.addr(), Method::GET, "/audit/verification", None).await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["ok"], true, "{verified:?}");

    let mut proof = rest_call(
        &fg,
        node.addr(),
        Method::GET,
        "/audit/entries/0/proof",
        None,
    )
    .await;
    for _ in 0..50 {
        if proof.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        proof = rest_call(
            &fg,
            node.addr(),
            Method::GET,
            "/audit/entries/0/proof",
            None,
        )
        .await;
    }
    assert_eq!(proof.status, 200, "{proof:?}");
    assert_eq!(proof.body["entry"]["seq"], 0);
    assert_eq!(proof.body["leafHash"].as_str().unwrap().len(), 64);

    let csv = rest_call(
        &fg,
        node.addr(),
        Method::POST,
        "/audit/exports",
        Some(&json!({ "format": "CSV" })),
    )
    .await;
    assert_eq!(csv.status, 200, "{csv:?}");
    assert!(csv.content_type.starts_with("text/csv"));
    assert!(csv.text.starts_with("seq,time,"), "{}", csv.text);

    // Nobody but the party's FG; a BSN that fails its check is refused unechoed.
    rest_call(
        &rest_client("leerplicht"),
        node.addr(),
        Method::GET,
        "/audit/verification",
        None,
    )
    .await
    .problem(403);
    let bad = failing_eleven_proof(&bsns[1]);
    let refused = rest_call(
        &fg,
        node.addr(),
        Method::POST,
        "/audit/access-reports",
        Some(&json!({ "pupilId": bad })),
    )
    .await;
    refused.problem(400);
    assert!(!refused.text.contains(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_finishes_its_body_is_cut_off_at_the_deadline_as_a_problem() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let limits = pactgate::limits::Limits {
        request_timeout_secs: 1,
        ..pactgate::limits::Limits::default()
    };
    let node = TestNode::start_limited("swv-vo", NodeTuning::default(), limits).await;
    let mut config = material("swv-vo").client_config_tls13().unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::IpAddress(node.addr().ip().into());
    let mut tls = connector.connect(name, tcp).await.unwrap();
    // A search (not a push, whose deadline is longer) whose body stops half-way.
    tls.write_all(
        b"POST /v1/signals/search HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"school\": ",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tls.read(&mut buf))
            .await
            .expect("an answer within the deadline")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.to_lowercase().contains("api-version: 1.0.0"),
        "{answer}"
    );
    assert!(answer.contains("deadline of 1 s"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// The care-offer entries of a node's audit log, as its FG lists them: (pupils, decision).
async fn care_offer_entries(node: &TestNode, fg: &str) -> Vec<(Vec<String>, pb::AuditDecision)> {
    node.audit_entries(fg)
        .await
        .into_iter()
        .filter(|e| e.action() == pb::AuditAction::CaseOffer)
        .map(|e| (e.pupil_pseudonyms.clone(), e.decision()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_care_offer_is_recorded_over_rest_through_the_same_service_as_over_grpc() {
    let fed = Federation::start(&["swv-vo", "wij", "leerplicht"]).await;
    let bsns = Bsns::new(0x0ff3).take(3);
    let [placed, waiting, outside] = [0, 1, 2].map(|i| pseudonym_of(&bsns[i]));
    let (swv, wij, leerplicht) = (fed.node("swv-vo"), fed.node("wij"), fed.node("leerplicht"));
    let (at_swv, at_wij, at_lp) = (
        rest_client("swv-vo"),
        rest_client("wij"),
        rest_client("leerplicht"),
    );
    let open = json!({
        "meetingType": "aoj-team-vo",
        "purpose": "zorg-en-ondersteuning",
        "actor": "zorgcoordinator",
        "pupilPseudonyms": [placed, waiting],
        "participantOins": [oin("wij"), oin("leerplicht")],
    });
    let opened = rest_call(&at_swv, swv.addr(), Method::POST, "/cases", Some(&open)).await;
    assert_eq!(opened.status, 201, "{opened:?}");
    let id = opened.body["case"]["id"].as_str().unwrap().to_owned();
    let offers = format!("/cases/{id}/offers");
    let offer = |pupil: &str, place_from: &str| {
        json!({
            "pupilPseudonym": pupil,
            "kind": "ZORG",
            "offeredOn": date_from_today(-5),
            "placeFrom": place_from,
            "parentsAgreed": true,
            "actor": "wij-medewerker",
        })
    };

    // Not accepted yet at WIJ: refused as a conflict, and audited there.
    let early = rest_call(
        &at_wij,
        wij.addr(),
        Method::POST,
        &offers,
        Some(&offer(&placed, &date_from_today(-1))),
    )
    .await;
    assert!(early.problem(409).contains("not accepted"), "{early:?}");
    for (party, client, node) in [("wij", &at_wij, wij), ("leerplicht", &at_lp, leerplicht)] {
        let accepted = rest_call(
            client,
            node.addr(),
            Method::POST,
            &format!("/cases/{id}/accept"),
            Some(&json!({ "actor": "voorzitter" })),
        )
        .await;
        assert_eq!(accepted.status, 200, "accept at {party}: {accepted:?}");
    }

    // WIJ records an offer with a place: told to the SWV and Leerplicht.
    let recorded = rest_call(
        &at_wij,
        wij.addr(),
        Method::POST,
        &offers,
        Some(&offer(&placed, &date_from_today(-1))),
    )
    .await;
    assert_eq!(recorded.status, 201, "{recorded:?}");
    assert_eq!(recorded.body["notNotified"], json!([]), "{recorded:?}");
    let body = &recorded.body["offer"];
    assert_eq!(body["caseId"], id.as_str());
    assert_eq!(body["pupilPseudonym"], placed.as_str());
    assert_eq!(body["kind"], "ZORG");
    assert_eq!(body["recordedBy"]["oin"], oin("wij"));
    assert_eq!(body["placeFrom"], date_from_today(-1));
    assert_eq!(body["stopsClockFrom"], date_from_today(-1));
    // A waiting list: recorded, but it does not stop the clock.
    let waiting_list = rest_call(
        &at_wij,
        wij.addr(),
        Method::POST,
        &offers,
        Some(&offer(&waiting, "")),
    )
    .await;
    assert_eq!(waiting_list.status, 201, "{waiting_list:?}");
    assert!(waiting_list.body["offer"].get("stopsClockFrom").is_none());
    assert!(waiting_list.body["offer"].get("placeFrom").is_none());

    // Refusals as problems, each naming the field, never echoing a pupil number.
    let not_in_case = rest_call(
        &at_wij,
        wij.addr(),
        Method::POST,
        &offers,
        Some(&offer(&outside, &date_from_today(-1))),
    )
    .await;
    assert!(
        not_in_case.problem(400).contains("offer.pupil_pseudonym"),
        "{not_in_case:?}"
    );
    // An education offer alone is no care offer: not a kind this endpoint knows.
    let mut education = offer(&placed, &date_from_today(-1));
    education["kind"] = json!("ONDERWIJS");
    rest_call(&at_wij, wij.addr(), Method::POST, &offers, Some(&education))
        .await
        .problem(400);
    let mut bad_day = offer(&placed, "");
    bad_day["offeredOn"] = json!("gisteren");
    let bad_day = rest_call(&at_wij, wij.addr(), Method::POST, &offers, Some(&bad_day)).await;
    assert!(
        bad_day.problem(400).contains("offer.offered_on"),
        "{bad_day:?}"
    );
    let raw = rest_call(
        &at_wij,
        wij.addr(),
        Method::POST,
        &offers,
        Some(&offer(&bsns[0], "")),
    )
    .await;
    raw.problem(400);
    assert!(!raw.text.contains(&bsns[0]), "{raw:?}");
    let leak = rest_call(
        &at_wij,
        wij.addr(),
        Method::POST,
        &format!("/cases/{}/offers", bsns[1]),
        Some(&offer(&placed, "")),
    )
    .await;
    leak.problem(400);
    assert!(!leak.text.contains(&bsns[1]), "{leak:?}");
    rest_call(
        &at_wij,
        wij.addr(),
        Method::POST,
        "/cases/case-abcdefabcdefabcd/offers",
        Some(&offer(&placed, "")),
    )
    .await
    .problem(404);
    // Leerplicht (a gemeente) takes part, but the meeting does not let it record offers.
    let denied = rest_call(
        &at_lp,
        leerplicht.addr(),
        Method::POST,
        &offers,
        Some(&offer(&waiting, &date_from_today(-1))),
    )
    .await;
    assert!(
        denied.problem(403).contains("may_record_offer"),
        "{denied:?}"
    );
    // WIJ cannot record at the SWV's node.
    rest_call(
        &at_wij,
        swv.addr(),
        Method::POST,
        &offers,
        Some(&offer(&placed, "")),
    )
    .await
    .problem(403);

    // Audited where recorded (allowed and refused by the service), and where told.
    assert_eq!(
        care_offer_entries(wij, "fg-wij").await,
        [
            (vec![placed.clone()], pb::AuditDecision::Deny),
            (vec![placed.clone()], pb::AuditDecision::Allow),
            (vec![waiting.clone()], pb::AuditDecision::Allow),
            (vec![outside.clone()], pb::AuditDecision::Deny),
            // The unknown case (a malformed request is refused before anything is decided).
            (vec![placed.clone()], pb::AuditDecision::Deny),
        ]
    );
    assert_eq!(
        care_offer_entries(swv, "fg-swv-vo").await,
        [
            (vec![placed.clone()], pb::AuditDecision::Allow),
            (vec![waiting.clone()], pb::AuditDecision::Allow),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_the_newest_checkpoint_and_the_peers_are_for_whom_they_concern() {
    let fed = Federation::start_tuned(
        &["leerplicht", "swv-vo"],
        Some(policy_path()),
        Vec::new(),
        NodeTuning::fast_audit_with_counting(),
    )
    .await;
    let node = fed.node("leerplicht");
    let get = |party: &'static str, path: &'static str| async move {
        rest_call(&rest_client(party), node.addr(), Method::GET, path, None).await
    };

    // The matrix: every party and FG of the covenant, from the policy's model.
    for party in ["swv-vo", "fg"] {
        let matrix = get(party, "/covenant/matrix").await;
        assert_eq!(matrix.status, 200, "{matrix:?}");
        let aoj = matrix.body["meetings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "aoj-team-vo")
            .expect("the AOJ-team VO");
        let seat = aoj["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["role"] == "leerplichtambtenaar")
            .expect("the leerplichtambtenaar's seat");
        assert_eq!(seat["orgType"], "gemeente");
        assert!(seat["legalBases"]
            .as_array()
            .unwrap()
            .contains(&json!("lpw-art22")));
        assert!(!matrix.body["legalBases"].as_array().unwrap().is_empty());
    }

    // Peers and checkpoints: the node's own organisation and its FG, no other party.
    for path in ["/peers", "/audit/checkpoints/latest"] {
        let detail = get("swv-vo", path).await.problem(403);
        assert!(detail.contains("only for"), "{detail}");
    }
    let peers = get("leerplicht", "/peers").await;
    assert_eq!(peers.status, 200, "{peers:?}");
    assert_eq!(peers.body["peers"][0]["name"], "swv-vo");
    assert_eq!(peers.body["peers"][0]["up"], true, "{peers:?}");

    let mut latest = get("fg", "/audit/checkpoints/latest").await;
    for _ in 0..50 {
        if latest.body["witnesses"][0]["cosigned"].is_object() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        latest = get("fg", "/audit/checkpoints/latest").await;
    }
    assert_eq!(latest.status, 200, "{latest:?}");
    let witness = &latest.body["witnesses"][0];
    assert_eq!(
        witness["witness"],
        format!("pactgate-witness/{}", oin("swv-vo"))
    );
    let cosigned = &witness["cosigned"];
    assert!(cosigned["size"].as_u64().unwrap() >= 1, "{latest:?}");
    assert!(
        cosigned["size"].as_u64() <= latest.body["checkpoint"]["size"].as_u64(),
        "{latest:?}"
    );
    assert!(latest.body["logKey"]
        .as_str()
        .unwrap()
        .starts_with(&format!("pactgate/{}+", oin("leerplicht"))));
    let fg_look = node
        .audit_as("fg")
        .await
        .list_entries(pb::ListEntriesRequest {
            first_page: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .any(|e| e.reason == "checkpoints" && e.actor_oin == oin("fg"));
    assert!(fg_look, "the FG's look at the checkpoints is audited");
}
