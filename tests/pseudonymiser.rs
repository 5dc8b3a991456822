//! The oblivious pseudonymisation service (issue 14): a node holds no pseudonymisation secret and
//! cannot pseudonymise with the service stopped; the same BSN gets the same pseudonym at two
//! nodes; two requests for the same BSN look unrelated on the wire; quotas refuse with a clear
//! status and are audited for the FG; the service keeps no BSN and no pseudonym on disk or in its
//! log; a service that answers with another key than the published one is detected.

mod common;

use base64::Engine as _;
use common::*;
use pactgate::pb;
use pactgate::pb::pseudonymiser_service_server::{
    PseudonymiserService, PseudonymiserServiceServer,
};
use pactgate::pseudonym::PseudonymKey;
use pactgate::pseudonymiser::ServiceConfig;
use std::io::BufRead as _;
use std::sync::{Arc, Mutex};
use tonic::{Code, Request, Response, Status};

/// The pseudonyms (by record id) a node holds.
async fn stored(node: &TestNode) -> Vec<(String, String)> {
    let mut views: Vec<(String, String)> = list_all(&mut node.intake().await)
        .await
        .into_iter()
        .map(|v| (v.source_record_id, v.pupil_pseudonym))
        .collect();
    views.sort();
    views
}

/// Every byte string that would let its holder evaluate the pseudonymisation function: the test
/// key's seeds (raw and as written in a key file) and the OPRF secret scalars derived from them.
fn key_material() -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut out = Vec::new();
    for (version, seed) in [(1, TEST_KEY), (2, TEST_KEY_V2)] {
        out.push((format!("seed v{version}"), seed.to_vec()));
        out.push((
            format!("seed v{version} base64url"),
            b64.encode(seed).into_bytes(),
        ));
        // RFC 9497 DeriveKeyPair as the service does it; a VoprfServer serialises as sk || pk.
        let server = voprf::VoprfServer::<voprf::Ristretto255>::new_from_seed(
            &seed,
            b"pactgate/v1/pseudonymiser-key",
        )
        .unwrap();
        let sk = server.serialize()[..32].to_vec();
        out.push((format!("secret scalar v{version}"), sk.clone()));
        out.push((
            format!("secret scalar v{version} base64url"),
            b64.encode(&sk).into_bytes(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_node_cannot_pseudonymise_a_known_bsn() {
    let service = tokio::task::spawn_blocking(TestPseudonymiser::start)
        .await
        .unwrap();
    let node = TestNode::start_with_pseudonymiser(
        "leerplicht",
        NodeOptions::default(),
        service.config.clone(),
    )
    .await;
    let bsns = Bsns::new(1401).take(2);
    push_all(&node, vec![good_record("known-1", &bsns[0])]).await;
    assert_eq!(
        stored(&node).await,
        [("known-1".to_owned(), pseudonym_of(&bsns[0]))]
    );
    let party = node.party.clone();
    let kept = node.stop().await;

    // The node's whole data dir, its configuration and its certificate files: no byte of the key.
    let copy = tempfile::tempdir().unwrap();
    let copied_data = copy.path().join("data");
    copy_tree(&kept.path().join("data"), &copied_data);
    // As an operator would restore it: private to the node's user.
    pactgate::store::make_private(&copied_data).unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\npseudonymiser = \"{}\"\n\
         pseudonymiser_oin = \"{}\"\npseudonymiser_public_keys = [\"{}\"]\n",
        copied_data.display(),
        service.config.address,
        service.config.oin,
        service.config.public_keys[0]
    );
    std::fs::write(copy.path().join("node.toml"), &config).unwrap();
    let (cert, key, ca) = cert_paths(&party);
    for file in [cert, key, ca, policy_path(), counting_path()] {
        std::fs::copy(&file, copy.path().join(file.file_name().unwrap())).unwrap();
    }
    // As an operator keeps it (the node refuses a TLS key others can read).
    let copied_key = copy.path().join(format!("{party}.key"));
    std::fs::set_permissions(
        &copied_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let files = read_tree(copy.path());
    assert!(files.len() > 5, "the copy holds the node's files");
    for (what, bytes) in key_material() {
        for (path, contents) in &files {
            assert!(
                !contains_bytes(contents, &bytes),
                "{} holds the {what}",
                path.display()
            );
        }
    }

    // With the service stopped, the copy (the binary on the copied data dir and configuration)
    // cannot pseudonymise: a push of the known BSN fails and stores nothing, and so does the
    // FG's access report by BSN.
    tokio::task::spawn_blocking(move || drop(service.stop()))
        .await
        .unwrap();
    let mut child = pactgate_bin()
        .arg("serve")
        .arg("--config")
        .arg(copy.path().join("node.toml"))
        .arg("--cert")
        .arg(copy.path().join(format!("{party}.pem")))
        .arg("--key")
        .arg(copy.path().join(format!("{party}.key")))
        .arg("--ca")
        .arg(copy.path().join("ca.pem"))
        .arg("--policy")
        .arg(copy.path().join("groningen.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pactgate serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    let channel = channel_with(addr, &material(&party)).await.unwrap();
    let mut intake = pb::signal_intake_service_client::SignalIntakeServiceClient::new(channel);
    let status = push(&mut intake, vec![good_record("known-2", &bsns[0])])
        .await
        .expect_err("pseudonymised without the service");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("pseudonymisation service"),
        "{status:?}"
    );
    assert!(!status.message().contains(&bsns[0]));
    assert_eq!(
        list_all(&mut intake).await.len(),
        1,
        "the refused push stored something"
    );
    let fg = channel_with(addr, &material("fg")).await.unwrap();
    let report = pb::audit_service_client::AuditServiceClient::new(fg)
        .access_report(pb::AccessReportRequest {
            pupil_id: bsns[1].clone(),
            pupil_pseudonym: String::new(),
        })
        .await
        .expect_err("an access report by BSN without the service");
    assert_eq!(report.code(), Code::Unavailable, "{report:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for (path, bytes) in read_tree(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bsn_at_two_nodes_gets_the_same_pseudonym() {
    let service = tokio::task::spawn_blocking(TestPseudonymiser::start)
        .await
        .unwrap();
    let swv = TestNode::start_with_pseudonymiser(
        "swv-vo",
        NodeOptions::default(),
        service.config.clone(),
    )
    .await;
    let lp = TestNode::start_with_pseudonymiser(
        "leerplicht",
        NodeOptions::default(),
        service.config.clone(),
    )
    .await;
    let bsns = Bsns::new(1402).take(3);
    push_all(
        &swv,
        vec![good_record("s-0", &bsns[0]), good_record("s-1", &bsns[1])],
    )
    .await;
    push_all(
        &lp,
        vec![good_record("l-0", &bsns[0]), good_record("l-2", &bsns[2])],
    )
    .await;
    let at_swv = stored(&swv).await;
    let at_lp = stored(&lp).await;
    assert_eq!(at_swv[0].1, at_lp[0].1, "the same BSN, two pseudonyms");
    assert_eq!(at_swv[0].1, pseudonym_of(&bsns[0]));
    assert_ne!(at_swv[1].1, at_lp[1].1);
    assert!(at_swv.iter().all(|(_, p)| p.starts_with("v1.")));
}

/// A pseudonymisation service of the test's own: evaluates with `key` (which may not be the
/// published one) and keeps every blinded element it was sent.
struct RecordingService {
    key: PseudonymKey,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[tonic::async_trait]
impl PseudonymiserService for RecordingService {
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let req = request.into_inner();
        self.seen
            .lock()
            .unwrap()
            .extend(req.blinded_elements.iter().cloned());
        let blinded: Vec<_> = req
            .blinded_elements
            .iter()
            .map(|b| voprf::BlindedElement::<voprf::Ristretto255>::deserialize(b).unwrap())
            .collect();
        let (evaluated, proof) = self.key.evaluate_blinded(&blinded).unwrap();
        Ok(Response::new(pb::EvaluateResponse {
            key_version: req.key_version,
            evaluated_elements: evaluated.iter().map(|e| e.serialize().to_vec()).collect(),
            proof: proof.serialize().to_vec(),
            used_today: 0,
            quota_per_day: 0,
        }))
    }

    async fn inspect(
        &self,
        _request: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::InspectResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Starts a [`RecordingService`] under the pseudonymiser's certificate on this runtime; returns
/// the configuration a node uses for it (the published test key v1) and what it saw.
async fn recording_service(key: PseudonymKey) -> (ServiceConfig, Arc<Mutex<Vec<Vec<u8>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming =
        pactgate::tls::incoming(listener, material("pseudonymiser").server_config().unwrap());
    let service = PseudonymiserServiceServer::new(RecordingService {
        key,
        seen: seen.clone(),
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    (service_config(&addr.to_string()), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_blinded_requests_for_the_same_bsn_look_unrelated() {
    let (config, seen) = recording_service(test_key()).await;
    let node = TestNode::start_with_pseudonymiser("swv-vo", NodeOptions::default(), config).await;
    let bsn = Bsns::new(1403).next_bsn();
    let mut client = node.intake().await;
    for id in ["b-1", "b-2"] {
        let report = push(&mut client, vec![good_record(id, &bsn)])
            .await
            .unwrap();
        assert_eq!(report.accepted, 1);
    }
    let stored = stored(&node).await;
    assert_eq!(stored[0].1, stored[1].1, "the same pseudonym both times");
    assert_eq!(stored[0].1, pseudonym_of(&bsn));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one blinded element per push");
    assert_eq!(seen[0].len(), 32);
    assert_ne!(seen[0], seen[1], "the same BSN was sent the same way twice");
    // Unrelated: no shared run of bytes beyond chance, and neither the BSN nor its pseudonym in
    // what the service saw.
    let shared = seen[0].iter().zip(&seen[1]).filter(|(a, b)| a == b).count();
    assert!(shared < 6, "{shared} of 32 bytes equal");
    let pseudonym_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&stored[0].1[3..])
        .unwrap();
    for element in &seen {
        assert!(!contains_bytes(element, bsn.as_bytes()));
        assert!(!contains_bytes(element, &pseudonym_bytes[..8]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_answering_with_another_key_is_detected() {
    let (config, seen) = recording_service(PseudonymKey::from_bytes(1, &[0x33; 32])).await;
    let node = TestNode::start_with_pseudonymiser("swv-vo", NodeOptions::default(), config).await;
    let bsns = Bsns::new(1404).take(3);
    let records = bsns
        .iter()
        .enumerate()
        .map(|(i, b)| good_record(&format!("w-{i}"), b))
        .collect();
    let status = push(&mut node.intake().await, records)
        .await
        .expect_err("a push pseudonymised under another key");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status
            .message()
            .contains("does not verify against the published public key v1"),
        "{status:?}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "the batch went in one request"
    );
    assert!(stored(&node).await.is_empty(), "something was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_its_daily_quota_is_refused_and_seen_by_the_fg() {
    let policy = PolicyFile::with_text(&edited(
        &std::fs::read_to_string(policy_path()).unwrap(),
        "region = \"Groningen Stad\"\npseudonyms_per_day = 50000",
        "region = \"Groningen Stad\"\npseudonyms_per_day = 3",
    ));
    let path = policy.path.clone();
    let service =
        tokio::task::spawn_blocking(move || TestPseudonymiser::start_with(&path, test_key_ring()))
            .await
            .unwrap();
    let node = TestNode::start_with_pseudonymiser(
        "swv-vo",
        NodeOptions::default(),
        service.config.clone(),
    )
    .await;
    let bsns = Bsns::new(1405).take(4);
    let mut client = node.intake().await;
    let first = push(
        &mut client,
        vec![good_record("q-0", &bsns[0]), good_record("q-1", &bsns[1])],
    )
    .await
    .unwrap();
    assert_eq!(first.accepted, 2);
    // Records that fail their checks cost nothing.
    let bad = pb::SignalRecord {
        age: 99,
        ..good_record("q-bad", &bsns[2])
    };
    let second = push(&mut client, vec![bad]).await.unwrap();
    assert_eq!((second.accepted, second.rejected.len()), (0, 1));
    let refused = push(
        &mut client,
        vec![good_record("q-2", &bsns[2]), good_record("q-3", &bsns[3])],
    )
    .await
    .expect_err("a push beyond the quota");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    for words in [
        "pseudonymisation service",
        "2 of its 3",
        "pseudonyms_per_day",
    ] {
        assert!(refused.message().contains(words), "{words}: {refused:?}");
    }
    assert_eq!(
        stored(&node).await.len(),
        2,
        "the refused push stored something"
    );

    // Not a party (the FG's certificate): refused. Not an FG (a party): may not inspect.
    let mut as_fg = service.client_as("fg").await;
    let not_party = as_fg
        .evaluate(pb::EvaluateRequest {
            key_version: 1,
            blinded_elements: vec![curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED
                .to_bytes()
                .to_vec()],
        })
        .await
        .expect_err("the FG evaluated");
    assert_eq!(not_party.code(), Code::PermissionDenied, "{not_party:?}");
    let not_fg = service
        .client_as("swv-vo")
        .await
        .inspect(pb::InspectRequest::default())
        .await
        .expect_err("a party inspected the service's log");
    assert_eq!(not_fg.code(), Code::PermissionDenied);

    // The FG sees both batches: the node, the count, the trace id, allowed and refused.
    let log = as_fg
        .inspect(pb::InspectRequest {
            node_oin: oin("swv-vo"),
            first_page: true,
            ..Default::default()
        })
        .await
        .expect("the FG inspects")
        .into_inner();
    let batches: Vec<_> = log
        .entries
        .iter()
        .filter(|e| e.action == i32::from(pb::AuditAction::Pseudonymise))
        .collect();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(
        (batches[0].count, batches[0].decision),
        (2, i32::from(pb::AuditDecision::Allow))
    );
    assert_eq!(
        (batches[1].count, batches[1].decision),
        (2, i32::from(pb::AuditDecision::Deny))
    );
    assert!(batches.iter().all(|e| e.trace_id.len() == 32));
    assert!(
        batches[1].reason.contains("quota"),
        "{:?}",
        batches[1].reason
    );
    let checkpoint = log.checkpoint.expect("a signed checkpoint");
    assert!(checkpoint.size >= log.entries.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_no_bsn_and_no_pseudonym_on_disk_or_in_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pseudonym.key");
    write_test_key(&key_file);
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = pseudonymiser_command(dir.path(), &key_file)
        .env("PACTGATE_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(stderr))
        .spawn()
        .expect("spawn pactgate pseudonymiser");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();

    let node = TestNode::start_with_pseudonymiser(
        "leerplicht",
        NodeOptions::default(),
        service_config(&addr),
    )
    .await;
    let bsns = Bsns::new(1406).take(6);
    let records = bsns
        .iter()
        .enumerate()
        .map(|(i, b)| good_record(&format!("d-{i}"), b))
        .collect();
    push_all(&node, records).await;
    // The FG's access report by BSN goes through the service too.
    let report = node
        .audit_as("fg")
        .await
        .access_report(pb::AccessReportRequest {
            pupil_id: bsns[0].clone(),
            pupil_pseudonym: String::new(),
        })
        .await
        .expect("the FG's access report")
        .into_inner();
    let pseudonyms: Vec<String> = stored(&node).await.into_iter().map(|(_, p)| p).collect();
    assert_eq!(pseudonyms.len(), 6);
    assert_eq!(report.pupil_pseudonym, pseudonyms[0]);
    assert!(!report.entries.is_empty());
    drop(node);
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "the service did not stop cleanly: {exit:?}");

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut files = read_tree(&dir.path().join("data"));
    files.push((
        dir.path().join("stderr.log"),
        std::fs::read(dir.path().join("stderr.log")).unwrap(),
    ));
    let log = String::from_utf8_lossy(&files.last().unwrap().1).to_string();
    assert!(
        log.contains("batch evaluated"),
        "the service logged nothing:\n{log}"
    );
    for (path, bytes) in &files {
        for bsn in &bsns {
            assert!(
                !contains_bytes(bytes, bsn.as_bytes()),
                "{} holds a BSN",
                path.display()
            );
        }
        for p in &pseudonyms {
            let raw = b64.decode(&p[3..]).unwrap();
            assert!(
                !contains_bytes(bytes, p.as_bytes()),
                "{} holds a pseudonym",
                path.display()
            );
            assert!(
                !contains_bytes(bytes, &raw),
                "{} holds a pseudonym's bytes",
                path.display()
            );
            assert!(
                !contains_bytes(bytes, &p.as_bytes()[3..13]),
                "{} holds part of a pseudonym",
                path.display()
            );
        }
    }
}

/// Refusals that name no pupil cannot flood the service's log (issue 9, finding 5): a caller that
/// is no party asking again and again, and a party asking to inspect, are audited as one counted
/// entry per caller and window (here: the window the stop closes), not one fsynced entry each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_callers_without_a_seat_are_counted_not_written_one_by_one() {
    let service = tokio::task::spawn_blocking(TestPseudonymiser::start)
        .await
        .unwrap();
    let mut as_fg = service.client_as("fg").await;
    for _ in 0..40 {
        let refused = as_fg
            .evaluate(pb::EvaluateRequest {
                key_version: 1,
                blinded_elements: vec![curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED
                    .to_bytes()
                    .to_vec()],
            })
            .await
            .expect_err("the FG evaluated");
        assert_eq!(refused.code(), Code::PermissionDenied);
    }
    let mut as_party = service.client_as("swv-vo").await;
    for _ in 0..5 {
        let refused = as_party
            .inspect(pb::InspectRequest::default())
            .await
            .expect_err("a party inspected the service's log");
        assert_eq!(refused.code(), Code::PermissionDenied);
    }
    let data_dir = service.data_dir();
    let kept = tokio::task::spawn_blocking(move || service.stop())
        .await
        .unwrap();
    let db = pactgate::store::open_stopped(&data_dir).expect("the stopped service's store");
    let key = pactgate::audit::SigningKey::load_or_create(
        &data_dir.join(pactgate::audit::AUDIT_KEY_FILE),
    )
    .unwrap();
    let log = pactgate::audit::AuditLog::open(&db, &oin("pseudonymiser"), key).unwrap();
    let refusals: Vec<_> = log
        .range(0, log.len())
        .map(Result::unwrap)
        .filter(|e| e.decision == pactgate::audit::Decision::Deny)
        .collect();
    let by_caller = |who: &str| {
        refusals
            .iter()
            .filter(|e| e.actor_oin == oin(who))
            .collect::<Vec<_>>()
    };
    let fg = by_caller("fg");
    assert_eq!(fg.len(), 1, "{refusals:#?}");
    assert_eq!(fg[0].count, 40);
    assert!(
        fg[0].reason.contains("40 × evaluate: not a party"),
        "{}",
        fg[0].reason
    );
    let party = by_caller("swv-vo");
    assert_eq!(party.len(), 1, "{refusals:#?}");
    assert_eq!(party[0].count, 5);
    assert!(
        party[0].reason.contains("5 × inspect: not an FG"),
        "{}",
        party[0].reason
    );
    drop(kept);
}
