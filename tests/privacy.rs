//! No BSN ever reaches a node's disk or log: records with known BSNs, good ones and bad ones whose
//! errors could echo them, are pushed to an in-process node and to the real binary with debug
//! logging; then every byte of the data dir and the log is searched. Also the key file rules of
//! the pseudonymisation service and `keygen`, and that `pactgate pseudonym` computes what the
//! node stores.

mod common;

use common::*;
use pactgate::pb;
use pactgate::tls::TlsMaterial;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs a command to its end, killing it and failing if it takes longer than `limit`.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    run_with_stdin(cmd, "", limit)
}

/// [`run`] with `input` on the command's stdin.
fn run_with_stdin(cmd: &mut Command, input: &str, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
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

fn assert_reasons_clean(report: &pb::PushResponse, bsns: &[String]) {
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

    // Never as an argument (the process list and shell history would keep it): refused unread.
    let config = node.pseudonymiser().config.clone();
    let output = run(
        pseudonym_command("swv-vo", &config).arg(&bsns[0]),
        Duration::from_secs(30),
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("stdin"),
        "{}",
        text(&output.stderr)
    );
    assert!(!text(&output.stdout).contains(&bsns[0]));
    assert!(
        !text(&output.stderr).contains(&bsns[0]),
        "the id given as an argument was echoed"
    );

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
    let v2 = run_with_stdin(
        &mut pseudonym_command("swv-vo", &rotated),
        &format!("{}\n", bsns[0]),
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

// ---------------------------------------------------------------------------------------------
// A BSN in every written form (issue 9, finding 2)
// ---------------------------------------------------------------------------------------------

/// The digit zeros of the scripts a written BSN may use: ASCII, full-width, Arabic-Indic,
/// Eastern Arabic-Indic, Devanagari, Bengali, Thai and mathematical bold digits.
const DIGIT_ZEROS: [u32; 8] = [0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1D7CE];
/// Superscript digits, which Unicode NFKC turns into ASCII digits.
const SUPERSCRIPTS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
/// What people and systems put between digit groups: nothing, dots, dashes, (no-break) spaces,
/// an en dash, slashes, underscores, a dot and a space, a dash and a zero-width space.
const SEPARATORS: [&str; 11] = [
    "",
    ".",
    "-",
    " ",
    "\u{a0}",
    "\u{202f}",
    "\u{2013}",
    "/",
    "_",
    ". ",
    "-\u{200b}",
];
/// How the nine digits are grouped.
const GROUPINGS: [&[usize]; 6] = [
    &[9],
    &[3, 3, 3],
    &[4, 2, 3],
    &[2, 2, 2, 3],
    &[3, 2, 4],
    &[1, 4, 4],
];

/// A BSN and one way of writing it.
#[derive(Debug, Clone)]
struct Written {
    bsn: String,
    form: String,
}

/// Valid BSNs (11-proef), computed here independently of the library.
fn bsn_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    proptest::collection::vec(0u32..10, 8).prop_filter_map("no check digit", |mut d| {
        d[0] = d[0].max(1);
        let sum: u32 = d.iter().zip((2..=9).rev()).map(|(x, w)| x * w).sum();
        let check = sum % 11;
        if check > 9 {
            return None;
        }
        d.push(check);
        let bsn: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
        passes_eleven_proof(&bsn).then_some(bsn)
    })
}

/// A BSN written in one script, mixed scripts or superscripts, grouped and separated in one of
/// many ways.
fn written_bsn() -> impl proptest::strategy::Strategy<Value = Written> {
    use proptest::prelude::*;
    (
        bsn_strategy(),
        0..GROUPINGS.len(),
        proptest::collection::vec(0..SEPARATORS.len(), 4),
        0..DIGIT_ZEROS.len() + 2,
        proptest::collection::vec(0..DIGIT_ZEROS.len(), 9),
    )
        .prop_map(|(bsn, grouping, seps, script, mixed)| {
            let digit = |i: usize, d: u32| -> char {
                if script < DIGIT_ZEROS.len() {
                    char::from_u32(DIGIT_ZEROS[script] + d).unwrap()
                } else if script == DIGIT_ZEROS.len() {
                    char::from_u32(DIGIT_ZEROS[mixed[i]] + d).unwrap()
                } else {
                    SUPERSCRIPTS[d as usize]
                }
            };
            let digits: Vec<u32> = bsn.bytes().map(|b| u32::from(b - b'0')).collect();
            let mut form = String::new();
            let mut i = 0;
            for (g, len) in GROUPINGS[grouping].iter().enumerate() {
                if g > 0 {
                    form.push_str(SEPARATORS[seps[g - 1]]);
                }
                for _ in 0..*len {
                    form.push(digit(i, digits[i]));
                    i += 1;
                }
            }
            Written { bsn, form }
        })
}

/// The written forms of the issue, and twenty-four generated ones.
fn written_forms() -> Vec<Written> {
    use proptest::strategy::{Strategy as _, ValueTree as _};
    let fixed = |bsn: &str, form: &str| Written {
        bsn: bsn.to_owned(),
        form: form.to_owned(),
    };
    let mut forms = vec![
        fixed("123456782", "1234.56.782"),
        fixed("101953811", "101.953.811"),
        fixed("123456782", "123 456 782"),
        fixed("123456782", "123-45-6782"),
        fixed("123456782", "１２３４５６７８２"),
        fixed("123456782", "١٢٣٤٥٦٧٨٢"),
        fixed("123456782", "12\u{a0}34\u{a0}56\u{a0}782"),
    ];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = written_bsn();
    for _ in 0..24 {
        forms.push(strategy.new_tree(&mut runner).expect("a form").current());
    }
    forms
}

/// A certificate from the covenant CA for an organisation that is in no policy.
fn stranger_material() -> TlsMaterial {
    let stranger = pactgate::certs::DevParty {
        file: "stranger",
        name: "Onbekende Stichting",
        oin: "00000099000000000099",
    };
    let now = time::OffsetDateTime::now_utc();
    let cert = dev_ca()
        .issue(
            &stranger,
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        )
        .expect("issue");
    TlsMaterial {
        cert_pem: cert.cert_pem.into_bytes(),
        key_pem: cert.key_pem.into_bytes(),
        ca_pem: std::fs::read(certs_dir().join("ca.pem")).expect("ca.pem"),
    }
}

/// A reply as text that can be searched: the code and message of a refusal, or the answer.
fn reply_text<T: std::fmt::Debug>(outcome: &Result<tonic::Response<T>, tonic::Status>) -> String {
    match outcome {
        Ok(answer) => format!("{:?}", answer.get_ref()),
        Err(status) => format!("{:?} {}", status.code(), status.message()),
    }
}

/// Every claim field a caller fills in, in turn holding `text`.
fn claims_holding(text: &str) -> Vec<pb::AccessClaim> {
    vec![
        pb::AccessClaim {
            purpose: text.into(),
            ..verzuimmelding_claim()
        },
        pb::AccessClaim {
            actor: text.into(),
            ..verzuimmelding_claim()
        },
        pb::AccessClaim {
            legal_basis: text.into(),
            ..verzuimmelding_claim()
        },
        pb::AccessClaim {
            role: text.into(),
            ..verzuimmelding_claim()
        },
        flow_claim("leerplichtambtenaar", "lpw-art21", "verzuimaanpak", text),
        case_claim(
            "leerplichtambtenaar",
            "lpw-art21",
            "verzuimaanpak",
            text,
            text,
        ),
        case_claim(
            "leerplichtambtenaar",
            "lpw-art21",
            "verzuimaanpak",
            "aoj-team",
            &format!("case-{text}"),
        ),
    ]
}

/// A W3C trace id and span id (lowercase hex) that carry a BSN's nine digits.
fn traceparent_with(bsn: &str) -> String {
    let trace = format!("a{bsn}{}", "b".repeat(22));
    let span = format!("c{bsn}{}", "d".repeat(6));
    format!("00-{trace}-{span}-01")
}

// The case messages are built field by field so that fields added to them later keep their
// defaults here.
#[allow(clippy::field_reassign_with_default)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bsn_in_any_written_form_never_reaches_disk_logs_replies_or_the_audit_log() {
    let forms = written_forms();
    let node = ProcessNode::start_with_policy("leerplicht", Some(&policy_path()));
    let mut replies = String::new();
    let mut pupils = Bsns::new(31);
    let control = pupils.next_bsn();
    let mut needles: Vec<String> = vec![control.clone()];

    // Each form where a record id, a municipality, a school and a date belong: one push per
    // form, so that each report lists all its refusals.
    let mut intake = node.intake().await;
    let report = push(&mut intake, vec![good_record("w-good", &control)])
        .await
        .expect("push");
    assert_eq!(report.accepted, 1, "the control record is stored");
    for (i, w) in forms.iter().enumerate() {
        let pupil = pupils.next_bsn();
        let records = vec![
            good_record(&format!("lln-{}", w.form), &pupil),
            pb::SignalRecord {
                residence_municipality: w.form.clone(),
                ..good_record(&format!("w{i}-gm"), &pupil)
            },
            pb::SignalRecord {
                school: w.form.clone(),
                ..good_record(&format!("w{i}-school"), &pupil)
            },
            pb::SignalRecord {
                absent_since: w.form.clone(),
                ..good_record(&format!("w{i}-date"), &pupil)
            },
        ];
        needles.extend([w.form.clone(), w.bsn.clone(), pupil]);
        let report = push(&mut intake, records).await.expect("push");
        for r in &report.rejected {
            replies.push_str(&format!("{} {} {}\n", r.index, r.field, r.reason));
        }
        let fields: Vec<&str> = report.rejected.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "source_record_id",
                "residence_municipality",
                "school",
                "absent_since"
            ],
            "{:?} was not refused everywhere",
            w.form
        );
        assert_eq!(report.accepted, 0);
    }

    // As the stated actor of a push, in a List filter, and hidden in a trace id.
    for w in &forms {
        if let Ok(value) = w.form.parse::<tonic::metadata::MetadataValue<_>>() {
            let mut request = tonic::Request::new(tokio_stream::iter(vec![pb::PushRequest::from(
                good_record("w-actor", &control),
            )]));
            request
                .metadata_mut()
                .insert(pactgate::rpc::ACTOR_METADATA, value);
            let outcome = intake.push(request).await;
            replies.push_str(&reply_text(&outcome));
            let status = outcome.expect_err("an actor that could be a BSN is refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains("pactgate-actor"), "{status:?}");
        }
        let mut request = tonic::Request::new(pb::ListRequest {
            school: w.form.clone(),
            ..Default::default()
        });
        request.metadata_mut().insert(
            pactgate::trace::TRACEPARENT,
            traceparent_with(&w.bsn).parse().unwrap(),
        );
        match intake.list(request).await {
            Ok(response) => {
                let mut listed = response.into_inner();
                loop {
                    match listed.message().await {
                        Ok(Some(v)) => replies.push_str(&format!("{v:?}\n")),
                        Ok(None) => break,
                        Err(status) => {
                            replies.push_str(&format!(
                                "{:?} {}\n",
                                status.code(),
                                status.message()
                            ));
                            break;
                        }
                    }
                }
            }
            Err(status) => replies.push_str(&format!("{:?} {}\n", status.code(), status.message())),
        }
        let mut request = tonic::Request::new(pb::ListRequest::default());
        request.metadata_mut().insert(
            pactgate::trace::TRACEPARENT,
            traceparent_with(&w.bsn).parse().unwrap(),
        );
        let mut listed = intake.list(request).await.expect("List").into_inner();
        while let Some(v) = listed.message().await.expect("List stream") {
            replies.push_str(&format!("{v:?}\n"));
        }
    }

    // In every claim field and filter of a query, from a partner and from a certificate whose
    // OIN is in no policy, and in a shared case.
    let mut stranger = pb::exchange_service_client::ExchangeServiceClient::new(
        channel_with(node.addr, &stranger_material()).await.unwrap(),
    );
    let mut partner = node.exchange_as("swv-vo").await;
    for w in &forms {
        for (client, is_partner) in [(&mut stranger, false), (&mut partner, true)] {
            for claim in claims_holding(&w.form) {
                let outcome = client
                    .query(traced_request(
                        pb::QueryRequest {
                            claim: Some(claim),
                            filter: None,
                        },
                        &w.bsn,
                    ))
                    .await;
                replies.push_str(&reply_text(&outcome));
                // A partner's claim is refused for its text, naming the field.
                if is_partner {
                    let status = outcome.expect_err("a claim holding a BSN");
                    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
                    assert!(status.message().contains("claim."), "{status:?}");
                }
            }
            let outcome = client
                .query(pb::QueryRequest {
                    claim: Some(verzuimmelding_claim()),
                    filter: Some(pb::QueryFilter {
                        school: w.form.clone(),
                        residence_municipality: w.form.clone(),
                        ..Default::default()
                    }),
                })
                .await;
            replies.push_str(&reply_text(&outcome));
            let mut case = pb::Case::default();
            case.case_id = format!("case-{}abcdef0", w.bsn);
            case.meeting_type = w.form.clone();
            case.purpose = w.form.clone();
            case.pupil_pseudonyms = vec![pseudonym_of(&control)];
            case.participants = vec![
                pb::Organisation {
                    oin: w.form.clone(),
                    name: w.form.clone(),
                },
                pb::Organisation {
                    oin: oin("leerplicht"),
                    name: "Leerplicht".into(),
                },
            ];
            case.lead = Some(pb::Organisation {
                oin: w.form.clone(),
                name: w.form.clone(),
            });
            case.open = true;
            case.opened_at = "2026-11-01T09:00:00Z".into();
            let mut share = pb::ShareCaseRequest::default();
            share.case = Some(case);
            let outcome = client.share_case(share).await;
            replies.push_str(&reply_text(&outcome));
        }
    }

    // The FG's export of the audit log, in both formats.
    let mut audit = pb::audit_service_client::AuditServiceClient::new(
        channel_with(node.addr, &material("fg")).await.unwrap(),
    );
    let mut export = Vec::new();
    for format in [pb::ExportFormat::JsonLines, pb::ExportFormat::Csv] {
        let mut chunks = audit
            .export(pb::ExportRequest {
                filter: None,
                format: format.into(),
            })
            .await
            .expect("export")
            .into_inner();
        while let Some(chunk) = chunks.message().await.expect("export chunk") {
            export.extend(chunk.data);
        }
    }
    assert!(
        contains_bytes(&export, b"verzuimmelding"),
        "the export misses the queries"
    );
    drop((intake, stranger, partner, audit));

    let mut node = node;
    assert!(node.terminate().success());
    let log = node.stderr_log();
    assert!(
        contains_bytes(&log, b"DEBUG"),
        "the node did not log at debug level"
    );
    assert_no_bsn(
        &node.data_dir(),
        &[
            ("serve stderr", &log),
            ("replies", replies.as_bytes()),
            ("audit export", &export),
        ],
        &needles,
        &[pseudonym_of(&control), "w-good".to_owned()],
    );
}

/// `message` with a `traceparent` whose ids carry the BSN's digits.
fn traced_request<T>(message: T, bsn: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        pactgate::trace::TRACEPARENT,
        traceparent_with(bsn).parse().unwrap(),
    );
    request
}

// ---------------------------------------------------------------------------------------------
// Private files and keys (issue 9, finding 8)
// ---------------------------------------------------------------------------------------------

/// The mode bits of a path.
fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Asserts the data dir and every directory under it are 0700 and every file 0600.
fn assert_private_tree(dir: &Path, when: &str) {
    assert_eq!(mode_of(dir), 0o700, "{when}: {} is not 0700", dir.display());
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(
                    mode,
                    0o700,
                    "{when}: directory {} is {mode:o}",
                    path.display()
                );
                stack.push(path);
            } else {
                assert_eq!(mode, 0o600, "{when}: file {} is {mode:o}", path.display());
                files += 1;
            }
        }
    }
    assert!(files > 0, "{when}: no files under {}", dir.display());
}

/// `pactgate serve` for swv-vo under umask 000 (so nothing but the node's own care makes its
/// files private), with this TLS key and this pseudonymisation service.
fn serve_under_umask_000(
    dir: &Path,
    tls_key: &Path,
    service: &pactgate::pseudonymiser::ServiceConfig,
) -> Command {
    let (cert, _, ca) = cert_paths("swv-vo");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_pactgate"))
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(tls_key)
        .arg("--ca")
        .arg(ca)
        .args(pseudonymiser_flags(service))
        .env_remove("PACTGATE_LOG")
        .env_remove("RUST_LOG");
    cmd
}

/// A copy of a development TLS key readable by its owner only (a fresh clone checks the keys
/// out as 0644).
fn private_copy(key: &Path, dir: &Path) -> std::path::PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let out = dir.join("tls.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&out)
        .unwrap();
    f.write_all(&std::fs::read(key).unwrap()).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_its_files_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let service = TestPseudonymiser::start();
    let tls_key = private_copy(&cert_paths("swv-vo").1, dir.path());
    let mut child = serve_under_umask_000(dir.path(), &tls_key, &service.config)
        .stdin(std::process::Stdio::null())
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
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("serve did not start: {line:?}");
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut intake = pb::signal_intake_service_client::SignalIntakeServiceClient::new(
        channel_with(addr, &material("swv-vo")).await.unwrap(),
    );
    let bsn = Bsns::new(33).next_bsn();
    let report = push(&mut intake, vec![good_record("perm-1", &bsn)])
        .await
        .expect("push");
    assert_eq!(report.accepted, 1);
    drop(intake);
    let data = dir.path().join("data");
    assert_private_tree(&data, "running");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    assert_private_tree(&data, "stopped");
}

#[test]
fn serve_refuses_a_tls_key_or_audit_key_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    // No service listens there: serve refuses its keys before it would ask one.
    let service = service_config("127.0.0.1:9");
    let tls_key = private_copy(&cert_paths("swv-vo").1, dir.path());
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&tls_key, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = run(
            &mut serve_under_umask_000(dir.path(), &tls_key, &service),
            Duration::from_secs(30),
        );
        let stderr = text(&output.stderr);
        assert!(
            !output.status.success(),
            "serve started with a {mode:o} TLS key"
        );
        assert!(
            stderr.contains("chmod 600") && stderr.contains("readable"),
            "{mode:o}: {stderr}"
        );
        assert!(
            stderr.contains("tls.key"),
            "the error does not name the file: {stderr}"
        );
    }
    std::fs::set_permissions(&tls_key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The audit signing key in the data dir.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let audit_key = data.join(pactgate::node::AUDIT_KEY_FILE);
    std::fs::write(
        &audit_key,
        pactgate::audit::SigningKey::generate_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&audit_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run(
        &mut serve_under_umask_000(dir.path(), &tls_key, &service),
        Duration::from_secs(30),
    );
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "serve started with a 0644 audit key"
    );
    assert!(
        stderr.contains("chmod 600") && stderr.contains(pactgate::node::AUDIT_KEY_FILE),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// RUST_LOG (issue 9, finding 8)
// ---------------------------------------------------------------------------------------------

/// Starts `pactgate serve` with this log environment, waits until it listens, stops it and
/// returns what it logged.
fn serve_log(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let service = service_config("127.0.0.1:9");
    let tls_key = private_copy(&cert_paths("swv-vo").1, dir.path());
    let log_file = dir.path().join("stderr.log");
    let mut cmd = serve_under_umask_000(dir.path(), &tls_key, &service);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(line.starts_with("listening on"), "{line:?}\n{log}");
    log
}

#[test]
fn rust_log_sets_the_log_level() {
    let quiet = serve_log(&[("RUST_LOG", "error")]);
    assert!(
        !quiet.contains("node serving"),
        "RUST_LOG=error still logs at info:\n{quiet}"
    );
    let debug = serve_log(&[("RUST_LOG", "debug")]);
    assert!(
        debug.contains("DEBUG"),
        "RUST_LOG=debug logs no debug lines:\n{debug}"
    );
    let default = serve_log(&[]);
    assert!(default.contains("node serving"), "{default}");
    assert!(!default.contains("DEBUG"), "{default}");
    // The old variable still works when RUST_LOG is not set.
    let fallback = serve_log(&[("PACTGATE_LOG", "error")]);
    assert!(!fallback.contains("node serving"), "{fallback}");
}
