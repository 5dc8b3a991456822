//! No BSN ever reaches a node's disk or log: records with known BSNs, good ones and bad ones whose
//! errors could echo them, are pushed to an in-process node and to the real binary with debug
//! logging; then every byte of the data dir and the log is searched. Also the key file rules of
//! the pseudonymisation service and `keygen`, and that `pactgate pseudonym` computes what the
//! node stores.

mod common;

use common::*;
use pactgate::pb;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs a command to its end, killing it and failing if it takes longer than `limit`.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("{cmd:?} still running after {limit:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Records with known BSNs: three good ones (stored), and bad ones that carry a BSN in a field
/// whose error could echo it. Returns the records and every BSN they carry.
fn records_with_bsns(bsns: &mut Bsns, prefix: &str) -> (Vec<pb::SignalRecord>, Vec<String>) {
    let all = bsns.take(12);
    let b = |i: usize| all[i].clone();
    let records = vec![
        good_record(&format!("{prefix}-good-0"), &b(0)),
        pb::SignalRecord {
            pupil_id: format!("  {}  ", b(1)),
            ..good_record(&format!("{prefix}-good-1"), &b(1))
        },
        pb::SignalRecord {
            category: pb::Category::Av as i32,
            school: String::new(),
            ..good_record(&format!("{prefix}-good-2"), &b(2))
        },
        // A BSN in the wrong column.
        pb::SignalRecord {
            school: b(3),
            ..good_record(&format!("{prefix}-bad-school"), &b(0))
        },
        pb::SignalRecord {
            residence_municipality: format!("GM{}", b(4)),
            ..good_record(&format!("{prefix}-bad-gm"), &b(0))
        },
        pb::SignalRecord {
            absent_since: b(5),
            ..good_record(&format!("{prefix}-bad-date"), &b(0))
        },
        pb::SignalRecord {
            status: pb::Status::Aanbod as i32,
            offer_date: b(6),
            ..good_record(&format!("{prefix}-bad-offer"), &b(0))
        },
        // The record id holds the pupil's own BSN, plain and with separators.
        good_record(&format!("{prefix}-{}", b(7)), &b(7)),
        good_record(
            &format!("{prefix}-{}-{}-{}", &b(8)[..3], &b(8)[3..6], &b(8)[6..]),
            &b(8),
        ),
        // A valid BSN in a record refused for another field.
        pb::SignalRecord {
            category: 0,
            ..good_record(&format!("{prefix}-bad-cat"), &b(9))
        },
        pb::SignalRecord {
            age: 40,
            ..good_record(&format!("{prefix}-bad-age"), &b(10))
        },
        // A valid BSN in a record id that is too long.
        good_record(&format!("{}{}", "x".repeat(130), b(11)), &b(0)),
    ];
    (records, all)
}

/// Asserts no BSN occurs in any file under `dir` nor in `extra`, and that `must_find` does occur
/// somewhere (so the search reads what the node wrote).
fn assert_no_bsn(dir: &Path, extra: &[(&str, &[u8])], bsns: &[String], must_find: &[String]) {
    let files = read_tree(dir);
    assert!(!files.is_empty(), "no files under {}", dir.display());
    let mut haystacks: Vec<(String, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.display().to_string(), b.as_slice()))
        .collect();
    haystacks.extend(extra.iter().map(|(n, b)| ((*n).to_owned(), *b)));
    for bsn in bsns {
        for (name, bytes) in &haystacks {
            assert!(
                !contains_bytes(bytes, bsn.as_bytes()),
                "BSN {bsn} found in {name}"
            );
        }
    }
    for needle in must_find {
        assert!(
            haystacks
                .iter()
                .any(|(_, b)| contains_bytes(b, needle.as_bytes())),
            "{needle:?} not found anywhere: the search does not see the node's data"
        );
    }
}

fn assert_reasons_clean(report: &pb::PushReport, bsns: &[String]) {
    for r in &report.rejected {
        for bsn in bsns {
            assert!(
                !r.reason.contains(bsn.as_str()),
                "reason echoes {bsn}: {:?}",
                r.reason
            );
            assert!(!r.field.contains(bsn.as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bsn_reaches_the_data_dir_of_an_in_process_node() {
    let node = TestNode::start("swv-vo").await;
    let mut client = node.intake().await;
    let (records, bsns) = records_with_bsns(&mut Bsns::new(20), "inproc");
    let report = push(&mut client, records).await.expect("push");
    assert_eq!(report.accepted, 3, "{:?}", report.rejected);
    assert_eq!(report.rejected.len(), 9);
    assert_reasons_clean(&report, &bsns);

    // A BSN used where a pseudonym belongs is refused without echo.
    let status = list(
        &mut client,
        pb::ListRequest {
            pupil_pseudonym: bsns[0].clone(),
            ..Default::default()
        },
    )
    .await
    .expect_err("a BSN as pseudonym filter");
    assert!(!status.message().contains(bsns[0].as_str()));
    let views = list_all(&mut client).await;
    assert_eq!(views.len(), 3);
    for bsn in &bsns {
        assert!(!format!("{views:?}").contains(bsn.as_str()));
    }
    drop(client);

    let data_dir = node.data_dir();
    let dir = node.stop().await; // flushed and closed: everything the node keeps is on disk
    assert_no_bsn(
        &data_dir,
        &[],
        &bsns,
        &[pseudonym_of(&bsns[0]), "inproc-good-2".to_owned()],
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bsn_reaches_the_disk_or_debug_log_of_the_binary() {
    let mut node = ProcessNode::start("swv-vo");
    let mut bsn_gen = Bsns::new(21);
    let (records, mut bsns) = records_with_bsns(&mut bsn_gen, "proc");
    let mut client = node.intake().await;
    let report = push(&mut client, records).await.expect("push");
    assert_eq!(report.accepted, 3, "{:?}", report.rejected);
    assert_reasons_clean(&report, &bsns);
    let _ = list(
        &mut client,
        pb::ListRequest {
            pupil_pseudonym: bsns[1].clone(),
            ..Default::default()
        },
    )
    .await;

    // The same kinds of mistakes through `pactgate push` from a CSV file.
    let csv_bsns = bsn_gen.take(5);
    let csv = format!(
        "source_record_id,pupil_id,category,sector,residence_municipality,school,absent_since,status,offer_date,age\n\
         csv-1,{b0},LRV,VO,GM0014,20XY01,{d},OPEN,,14\n\
         csv-2,{b0},LRV,VO,GM0014,{b1},{d},OPEN,,14\n\
         csv-3,{b0},{b2},VO,GM0014,20XY01,{d},OPEN,,14\n\
         csv-{b3},{b3},LRV,VO,GM0014,20XY01,{d},OPEN,,14\n\
         csv-5,{b4},LRV,{b4},GM0014,20XY01,{d},OPEN,,14\n",
        b0 = csv_bsns[0],
        b1 = csv_bsns[1],
        b2 = csv_bsns[2],
        b3 = csv_bsns[3],
        b4 = csv_bsns[4],
        d = date_from_today(-30),
    );
    let csv_path = node.data_dir().with_file_name("signals.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let (cert, key, ca) = cert_paths("swv-vo");
    let output = run(
        pactgate_bin()
            .arg("push")
            .arg("--file")
            .arg(&csv_path)
            .arg("--node")
            .arg(node.addr.to_string())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--ca")
            .arg(ca)
            .env("PACTGATE_LOG", "debug"),
        Duration::from_secs(60),
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "stdout {}\nstderr {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("5 records read, 1 stored, 4 refused"),
        "{}",
        text(&output.stdout)
    );
    std::fs::remove_file(&csv_path).unwrap();
    bsns.extend(csv_bsns);

    drop(client);
    let status = node.terminate();
    assert!(
        status.success(),
        "pactgate serve exited {status:?} on SIGTERM"
    );
    let log = node.stderr_log();
    let log_text = text(&log);
    assert!(
        log_text.contains("DEBUG"),
        "the node did not log at debug level:\n{log_text}"
    );
    assert!(
        log_text.contains("push stored"),
        "the log misses the push:\n{log_text}"
    );
    assert_no_bsn(
        &node.data_dir(),
        &[
            ("serve stderr", &log),
            ("push stdout", &output.stdout),
            ("push stderr", &output.stderr),
        ],
        &bsns,
        &[
            pseudonym_of(&bsns[0]),
            "proc-good-1".to_owned(),
            "csv-1".to_owned(),
        ],
    );
}

#[test]
fn the_pseudonymiser_refuses_a_key_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("pseudonym.key");
    write_test_key(&key);
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = run(
            &mut pseudonymiser_command(dir.path(), &key),
            Duration::from_secs(30),
        );
        let stderr = text(&output.stderr);
        assert!(
            !output.status.success(),
            "the service started with a {mode:o} key"
        );
        assert!(
            !text(&output.stdout).contains("listening on"),
            "the service listened with a {mode:o} key"
        );
        assert!(stderr.contains("chmod 600"), "{mode:o}: {stderr}");
        assert!(stderr.contains("readable"), "{mode:o}: {stderr}");
    }
    // A malformed key file is refused too, naming the line and never showing its bytes.
    let short = dir.path().join("short.key");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&short)
            .unwrap();
        f.write_all(b"1 0123456789abcdef").unwrap();
    }
    let output = run(
        &mut pseudonymiser_command(dir.path(), &short),
        Duration::from_secs(30),
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("line 1") && stderr.contains("32 bytes"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("0123456789abcdef"),
        "the key's bytes were printed"
    );
}

#[test]
fn keygen_writes_a_private_key_prints_its_public_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pseudonym.key");
    let output = run(
        pactgate_bin().arg("keygen").arg("--out").arg(&out),
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read(&out).unwrap();
    let public: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(public.len(), 1, "{public:?}");
    let v1: pactgate::pseudonym::PublicKey = public[0].parse().expect("a public key");
    assert_eq!(v1.version, 1);

    let again = run(
        pactgate_bin().arg("keygen").arg("--out").arg(&out),
        Duration::from_secs(30),
    );
    assert!(!again.status.success(), "keygen overwrote an existing key");
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains("exists") && stderr.contains("overwrite"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        key,
        "the existing key was changed"
    );

    // A second key is another key.
    let other = dir.path().join("other.key");
    let second = run(
        pactgate_bin().arg("keygen").arg("--out").arg(&other),
        Duration::from_secs(30),
    );
    assert!(second.status.success());
    assert_ne!(text(&second.stdout).trim(), public[0]);

    // Rotation adds v2 and keeps v1.
    let rotated = run(
        pactgate_bin().arg("keygen").arg("--rotate").arg(&out),
        Duration::from_secs(30),
    );
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let lines: Vec<String> = text(&rotated.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], public[0]);
    assert!(lines[1].starts_with("v2:"), "{lines:?}");
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // And the service accepts what keygen makes.
    let service_dir = tempfile::tempdir().unwrap();
    let mut child = pseudonymiser_command(service_dir.path(), &out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line:?}");
}

/// `pactgate pseudonym` as a development party, through the service `config`.
fn pseudonym_command(party: &str, config: &pactgate::pseudonymiser::ServiceConfig) -> Command {
    let (cert, key, ca) = cert_paths(party);
    let mut cmd = pactgate_bin();
    cmd.arg("pseudonym")
        .args(pseudonymiser_flags(config))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(ca);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pseudonym_command_prints_what_the_node_stores() {
    let node = ProcessNode::start("swv-vo");
    let bsns = Bsns::new(22).take(3);
    let mut client = node.intake().await;
    let records: Vec<_> = bsns
        .iter()
        .enumerate()
        .map(|(i, b)| good_record(&format!("p-{i}"), b))
        .collect();
    assert_eq!(push(&mut client, records).await.unwrap().accepted, 3);
    let views = list_all(&mut client).await;
    let stored = |id: &str| {
        views
            .iter()
            .find(|v| v.source_record_id == id)
            .unwrap()
            .pupil_pseudonym
            .clone()
    };

    // As arguments, through the node's pseudonymisation service.
    let config = node.pseudonymiser().config.clone();
    let output = run(
        pseudonym_command("swv-vo", &config).arg(&bsns[0]),
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), stored("p-0"));

    // One per line on stdin, in order; an invalid id gives an empty line and a failure that does
    // not echo it.
    let bad = failing_eleven_proof(&bsns[0]);
    let mut child = pseudonym_command("swv-vo", &config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}\n{bad}\n{}", bsns[1], bsns[2]).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "an invalid id must make the command fail"
    );
    let lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines, [stored("p-1"), String::new(), stored("p-2")]);
    assert!(
        text(&output.stderr).contains("line 2"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        !text(&output.stderr).contains(&bad),
        "the invalid id was echoed"
    );

    // Once v2 of the key is published, the command uses it: another pseudonym, marked with its
    // version.
    let mut rotated = config.clone();
    rotated
        .public_keys
        .push(pactgate::pseudonym::PseudonymKey::from_bytes(2, &TEST_KEY_V2).public_key());
    let v2 = run(
        pseudonym_command("swv-vo", &rotated).arg(&bsns[0]),
        Duration::from_secs(30),
    );
    assert!(text(&v2.stdout).starts_with("v2."), "{}", text(&v2.stdout));

    // And a found pseudonym finds the pupil's signals.
    let found = list(
        &mut client,
        pb::ListRequest {
            pupil_pseudonym: stored("p-0"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&found), ["p-0"]);
}

/// A BSN typed into a numeric field (age, or an enum sent as its number) is echoed back in the
/// refusal, in Push and in List. Fix in src/signal.rs (`validate`, the age branch) and
/// src/rpc/convert.rs (`category_from_pb`, `sector_from_pb`, `status_from_pb`): show the refused
/// number only when it is short (at most 3 digits), e.g. "is outside 3-23 years" /
/// "is not a known category" otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bsn_in_a_numeric_field_is_not_echoed() {
    let node = TestNode::start("swv-vo").await;
    let mut client = node.intake().await;
    let bsns = Bsns::new(23).take(5);
    let number = |i: usize| -> u32 { bsns[i].parse().unwrap() };
    let records = vec![
        pb::SignalRecord {
            age: number(1),
            ..good_record("n-age", &bsns[0])
        },
        pb::SignalRecord {
            category: number(2) as i32,
            ..good_record("n-cat", &bsns[0])
        },
        pb::SignalRecord {
            sector: number(3) as i32,
            ..good_record("n-sector", &bsns[0])
        },
        pb::SignalRecord {
            status: number(4) as i32,
            ..good_record("n-status", &bsns[0])
        },
    ];
    let report = push(&mut client, records).await.expect("push");
    let fields: Vec<&str> = report.rejected.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["age", "category", "sector", "status"]);
    assert_reasons_clean(&report, &bsns);
    for request in [
        pb::ListRequest {
            category: number(2) as i32,
            ..Default::default()
        },
        pb::ListRequest {
            status: number(4) as i32,
            ..Default::default()
        },
    ] {
        let status = list(&mut client, request)
            .await
            .expect_err("an unknown enum filter");
        for bsn in &bsns {
            assert!(
                !status.message().contains(bsn.as_str()),
                "List echoes {bsn}: {:?}",
                status.message()
            );
        }
    }
}
