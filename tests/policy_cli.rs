//! The policy as files and as the running binary sees them: `pactgate policy check` accepts the
//! shipped covenant and prints its matrix, and names FILE:LINE for broken copies; `pactgate serve`
//! refuses a broken policy with the same message; SIGHUP swaps in a changed valid policy without
//! dropping connections and keeps the old one when the new file is invalid.

mod common;

use common::*;
use pactgate::pb;
use std::path::Path;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn policy_check(file: &Path) -> std::process::Output {
    run_within(pactgate_bin().arg("policy").arg("check").arg(file), LIMIT)
}

/// Broken copies of the shipped policy: what is changed, into what, and the text at the line the
/// error must name.
fn broken_copies() -> Vec<(&'static str, String, &'static str)> {
    let shipped = std::fs::read_to_string(policy_path()).unwrap();
    vec![
        (
            "an unknown purpose in a seat",
            edited(
                &shipped,
                "legal_bases = [\"jw-jgz-verzuim\", \"avg-6-1-e\", \"avg-9-2-a\"]\npurposes = [\"jgz-advies\"]",
                "legal_bases = [\"jw-jgz-verzuim\", \"avg-6-1-e\", \"avg-9-2-a\"]\npurposes = [\"jgz-advise\"]",
            ),
            "purposes = [\"jgz-advise\"]",
        ),
        (
            "an OIN of 19 digits",
            edited(
                &shipped,
                "oin = \"00000099000000000005\"",
                "oin = \"0000009900000000005\"",
            ),
            "oin = \"0000009900000000005\"",
        ),
        (
            "an unknown legal basis in a routine flow",
            edited(
                &shipped,
                "legal_bases = [\"lpw-art21\", \"web-8-3\", \"avg-6-1-c\"]",
                "legal_bases = [\"lpw-art21\", \"lpw-art81\", \"web-8-3\", \"avg-6-1-c\"]",
            ),
            "\"lpw-art81\"",
        ),
        (
            "a TOML syntax error",
            edited(
                &shipped,
                "id = \"monitoring\"\ntext",
                "id = \"monitoring\ntext",
            ),
            "id = \"monitoring\n",
        ),
    ]
}

#[test]
fn policy_check_accepts_the_shipped_covenant_and_prints_its_matrix() {
    let out = policy_check(&policy_path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let policy = shipped_policy();
    assert!(
        stdout.contains(&format!("valid, version {}", policy.version())),
        "{stdout}"
    );
    for meeting in policy.meetings() {
        assert!(
            stdout.contains(&meeting.id),
            "the matrix lacks meeting {}",
            meeting.id
        );
        for seat in &meeting.participants {
            assert!(
                stdout.contains(&seat.role),
                "the matrix lacks role {}",
                seat.role
            );
        }
    }
    for flow in policy.routine_flows() {
        assert!(
            stdout.contains(&flow.id),
            "the matrix lacks flow {}",
            flow.id
        );
    }
    for needle in ["GRN-GGD-010", "gezondheid", "lpw-art21", "jgz-advies"] {
        assert!(stdout.contains(needle), "the matrix lacks {needle}");
    }
}

#[test]
fn policy_check_prints_a_dutch_matrix_with_its_warnings_and_the_same_as_json() {
    let out = policy_check(&policy_path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for needle in [
        "Convenantmatrix (Bijlage 3)",
        "Vaste gegevensstromen",
        "Casusoverleggen (Bijlage 3)",
        "Grondslagen",
        "geverifieerd",
        "AAN TE HAKEN",
        "legal basis 'lpw-art21' (Leerplichtwet 1969 art. 21 en 21a) is not verified",
        "depends on org type mbo, whose parties are still to be connected",
        "names org type jeugdhulp, but no party is a jeugdhulp",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }
    for english in ["Routine flows", "Case meetings", "Legal bases", "Parties\n"] {
        assert!(!stdout.contains(english), "English heading {english:?}");
    }

    let out = run_within(
        pactgate_bin()
            .args(["policy", "check", "--format", "json"])
            .arg(policy_path()),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the JSON matrix parses");
    let policy = shipped_policy();
    assert_eq!(json["convenant"]["beleidsversie"], policy.version());
    let parties = json["partijen"].as_array().expect("partijen");
    assert_eq!(parties.len(), policy.parties().len());
    for p in parties {
        assert_eq!(
            p["fg"].as_array().map(Vec::len),
            Some(1),
            "every party its own FG: {p}"
        );
    }
    let mbo = parties.iter().find(|p| p["id"] == "mbo").expect("mbo");
    assert_eq!(mbo["status"], "aan te haken");
    let flows = json["vaste_stromen"].as_array().expect("vaste_stromen");
    assert_eq!(flows.len(), policy.routine_flows().len());
    assert!(flows.iter().all(|f| f["id"] != "advies-vrijstelling-5a"));
    assert!(
        flows
            .iter()
            .all(|f| f["bijzondere_persoonsgegevens"] == false),
        "no routine flow carries a special category"
    );
    let advies = json["casusoverleggen"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == "advies-5a"))
        .expect("the 5a advice is a case meeting");
    let seats: Vec<(&str, &str)> = advies["deelnemers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["soort"].as_str().unwrap(), d["rol"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seats,
        [("gemeente", "leerplichtambtenaar"), ("swv", "ect-lid")]
    );
    let ggd_bases: Vec<&serde_json::Value> = json["casusoverleggen"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["deelnemers"].as_array().unwrap())
        .filter(|d| d["soort"] == "ggd")
        .flat_map(|d| d["grondslagen"].as_array().unwrap())
        .collect();
    assert!(!ggd_bases.is_empty());
    assert!(
        ggd_bases.iter().all(|b| *b != "wpg-5" && *b != "avg-9-2-h"),
        "{ggd_bases:?}"
    );
    let unverified = json["grondslagen"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["geverifieerd"] == false && b["bron"] != "")
        .count();
    assert_eq!(
        unverified,
        policy.legal_bases().len(),
        "each basis has a source, none verified"
    );
}

#[test]
fn policy_check_names_file_and_line_of_each_error() {
    for (what, broken, at) in broken_copies() {
        let file = PolicyFile::with_text(&broken);
        let out = policy_check(&file.path);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{what}: exit 0; {stderr}");
        let line = line_of(&broken, at);
        let place = format!("{}:{line}:", file.path.display());
        assert!(stderr.contains(&place), "{what}: no {place:?} in\n{stderr}");
        assert!(
            pactgate::policy::Policy::load(&file.path).is_err(),
            "{what}: the library loads it"
        );
    }
    let missing = policy_check(Path::new("/nonexistent/covenant.toml"));
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("/nonexistent/covenant.toml"));
}

fn serve_command(dir: &Path, policy: &Path) -> std::process::Command {
    let (cert, _, ca) = cert_paths("swv-vo");
    let key = private_tls_key("swv-vo", dir);
    let mut cmd = pactgate_bin();
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(ca)
        // No service listens there: these nodes refuse to start or pseudonymise nothing.
        .args(pseudonymiser_flags(&service_config("127.0.0.1:9")))
        .arg("--policy")
        .arg(policy);
    cmd
}

#[test]
fn serve_refuses_an_invalid_policy_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (what, broken, at) in broken_copies() {
        let file = PolicyFile::with_text(&broken);
        let out = run_within(&mut serve_command(dir.path(), &file.path), LIMIT);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{what}: serve exited 0");
        let place = format!("{}:{}:", file.path.display(), line_of(&broken, at));
        assert!(stderr.contains(&place), "{what}: no {place:?} in\n{stderr}");
        // The same message as `policy check`.
        let checked = text(&policy_check(&file.path).stderr);
        let first = checked.lines().next().unwrap();
        assert!(
            stderr.contains(first),
            "{what}: serve said\n{stderr}\ncheck said\n{checked}"
        );
    }
}

#[test]
fn serve_does_not_announce_a_listener_for_an_invalid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (_, broken, _) = broken_copies().remove(0);
    let file = PolicyFile::with_text(&broken);
    let out = run_within(&mut serve_command(dir.path(), &file.path), LIMIT);
    assert!(!out.status.success());
    assert!(
        !text(&out.stdout).contains("listening on"),
        "a supervisor waiting for \"listening on\" takes the refused node for a started one: {}",
        text(&out.stdout)
    );
}

async fn version_of(
    exchange: &mut pactgate::pb::exchange_service_client::ExchangeServiceClient<
        tonic::transport::Channel,
    >,
) -> String {
    exchange
        .describe_node(pb::DescribeNodeRequest {})
        .await
        .expect("DescribeNode")
        .into_inner()
        .policy_version
}

/// Polls DescribeNode on the same channel until the version is `wanted`.
async fn wait_for_version(
    exchange: &mut pactgate::pb::exchange_service_client::ExchangeServiceClient<
        tonic::transport::Channel,
    >,
    wanted: &str,
) {
    let started = Instant::now();
    loop {
        let version = version_of(exchange).await;
        if version == wanted {
            return;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the node still runs policy {version}, not {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_a_valid_policy_in_and_keeps_the_old_one_for_an_invalid_file() {
    let file = PolicyFile::shipped_copy();
    let original = file.text();
    let v1 = pactgate::policy::Policy::load(&file.path)
        .unwrap()
        .version()
        .to_owned();
    let mut node = ProcessNode::start_with_policy("swv-vo", Some(&file.path));
    let mut bsns = Bsns::new(61);
    let records = vec![
        record(
            "hup-lrv",
            &bsns.next_bsn(),
            pb::Category::Lrv,
            "GM0014",
            "20VA01",
            30,
        ),
        record(
            "hup-verzuim",
            &bsns.next_bsn(),
            pb::Category::Verzuim,
            "GM0014",
            "20VA01",
            31,
        ),
    ];
    let report = push(&mut node.intake().await, records).await.expect("push");
    assert_eq!(report.accepted, 2, "{report:?}");

    // One channel for the whole test: a reload must not drop its connection.
    let (channel, connects) = counted_channel(node.addr, "leerplicht");
    let mut leerplicht = pactgate::pb::exchange_service_client::ExchangeServiceClient::new(channel);
    assert_eq!(version_of(&mut leerplicht).await, v1);
    let before = query(&mut leerplicht, verzuimmelding_claim())
        .await
        .expect("permitted");
    assert_eq!(before.signals.len(), 2);
    assert_eq!(before.policy_version, v1);
    let mut other_purpose = verzuimmelding_claim();
    other_purpose.purpose = "passend-aanbod".into();
    assert_denied(
        query(&mut leerplicht, other_purpose.clone()).await,
        &["purpose 'passend-aanbod'"],
    );

    // A valid change: the absence flow now serves another purpose.
    let changed = edited(
        &original,
        "purpose = \"verzuimaanpak\"\ndata_categories = [\"verzuim\", \"vrijstelling\", \"bronverwijzing\"]",
        "purpose = \"passend-aanbod\"\ndata_categories = [\"verzuim\", \"vrijstelling\", \"bronverwijzing\"]",
    );
    let v2 = pactgate::policy::Policy::parse(&changed, "changed")
        .unwrap()
        .version()
        .to_owned();
    assert_ne!(v1, v2);
    file.replace_text(&changed);
    node.hangup();
    wait_for_version(&mut leerplicht, &v2).await;
    assert_denied(
        query(&mut leerplicht, verzuimmelding_claim()).await,
        &["purpose 'verzuimaanpak'"],
    );
    let after = query(&mut leerplicht, other_purpose.clone())
        .await
        .expect("permitted now");
    assert_eq!(after.signals.len(), 2);
    assert_eq!(after.policy_version, v2);

    // An invalid file: the node logs why, keeps v2, and keeps serving on the same channel.
    let broken = edited(&changed, "oin = \"00000099000000000005\"", "oin = \"5\"");
    file.replace_text(&broken);
    node.hangup();
    node.wait_for_log("the new policy is invalid");
    let place = format!(
        "{}:{}:",
        file.path.display(),
        line_of(&broken, "oin = \"5\"")
    );
    node.wait_for_log(&place);
    assert!(node.is_running(), "the node stopped on an invalid policy");
    assert_eq!(version_of(&mut leerplicht).await, v2);
    assert!(query(&mut leerplicht, other_purpose.clone()).await.is_ok());
    assert_denied(
        query(&mut leerplicht, verzuimmelding_claim()).await,
        &["purpose 'verzuimaanpak'"],
    );

    // Back to the original: the same content is the same version again.
    file.replace_text(&original);
    node.hangup();
    wait_for_version(&mut leerplicht, &v1).await;
    assert!(query(&mut leerplicht, verzuimmelding_claim()).await.is_ok());
    assert!(node.is_running());
    assert_eq!(
        connects.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the client had to reconnect: a reload dropped its connection"
    );
    assert_eq!(node.terminate().code(), Some(0));
}

#[test]
fn a_sighup_right_after_listening_on_reloads_instead_of_killing_the_node() {
    let file = PolicyFile::shipped_copy();
    let mut node = ProcessNode::start_with_policy("swv-vo", Some(&file.path));
    // A supervisor that reloads as soon as the node says it listens.
    node.hangup();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        node.is_running(),
        "SIGHUP killed the node that had announced \"listening on\"; stderr:\n{}",
        text(&node.stderr_log())
    );
    node.wait_for_log("policy reloaded");
}
