//! Corruption is never silent: bytes flipped at many offsets of a stopped node's files make the
//! real binary either serve every record it acknowledged or refuse to start naming what is wrong
//! and how to recover; never a silently shorter store, never a panic. `pactgate store check` says
//! the same of a stopped node. Offline `audit verify` leaves the data dir as it found it and fails
//! on an audit log shorter than the node acknowledged. Backup and restore round-trip a running
//! node's data.

mod common;

use common::*;
use pactgate::pb;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use tempfile::TempDir;

const PUSHES: usize = 4;
const PER_PUSH: usize = 100;
/// Offsets flipped in sled's log file and in each other file, at most (spread evenly over the
/// file, first and last byte included).
const OFFSETS_IN_DB: usize = 18;
const OFFSETS_PER_FILE: usize = 3;
/// Damaged copies tried at the same time.
const PARALLEL: usize = 4;
/// What a refusal must say: that the node refuses, and how to recover.
const REFUSES: &str = "refuses to serve";
const RECOVER: &str = "pactgate restore";

/// A stopped node's data dir holding acknowledged records, and their ids.
struct Stopped {
    data: TempDir,
    ids: Vec<String>,
}

/// Starts the real binary, pushes `PUSHES` x `PER_PUSH` records (each push acknowledged), stops
/// it with SIGTERM and keeps a copy of its data dir.
async fn populated() -> Stopped {
    let mut node = ProcessNode::start("swv-vo");
    let mut client = node.intake().await;
    let mut bsns = Bsns::new(0xd15c);
    let mut pushed = Vec::new();
    for p in 0..PUSHES {
        let records: Vec<pb::SignalRecord> = (0..PER_PUSH)
            .map(|i| good_record(&format!("rec-{p}-{i:03}"), &bsns.next_bsn()))
            .collect();
        let report = push(&mut client, records).await.expect("push");
        assert_eq!(report.accepted as usize, PER_PUSH, "{:?}", report.rejected);
        pushed.extend((0..PER_PUSH).map(|i| format!("rec-{p}-{i:03}")));
    }
    pushed.sort();
    assert_eq!(ids(&list_all(&mut client).await), pushed);
    drop(client);
    assert!(node.terminate().success(), "clean stop");
    let data = tempfile::tempdir().unwrap();
    copy_tree(&node.data_dir(), data.path());
    Stopped { data, ids: pushed }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every non-empty regular file of the store and the integrity record, relative to the data dir
/// (the node's keys are not the store and are left alone).
fn damageable_files(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = read_tree(data)
        .into_iter()
        .filter(|(_, bytes)| !bytes.is_empty())
        .map(|(path, _)| path.strip_prefix(data).unwrap().to_path_buf())
        .filter(|p| p.starts_with("store") || p.to_string_lossy().contains("integrity"))
        .collect();
    files.sort();
    files
}

/// `n` offsets spread evenly over a file of `len` bytes.
fn offsets(len: u64, n: usize) -> Vec<u64> {
    let n = (n as u64).min(len);
    let mut out: Vec<u64> = (0..n)
        .map(|i| if n == 1 { 0 } else { i * (len - 1) / (n - 1) })
        .collect();
    out.dedup();
    out
}

/// What a node did on a damaged copy.
enum Outcome {
    ServedAll,
    Refused(String),
}

/// A copy of the stopped data dir with the byte at `offset` of `file` inverted; starts the real
/// binary on it and either lists everything or returns its refusal. Fails the test on anything
/// else: a shorter (or different) store, a panic, a crash.
async fn try_damaged(stopped: &Stopped, file: &Path, offset: u64) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(stopped.data.path(), &dir.path().join("data"));
    let target = dir.path().join("data").join(file);
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[offset as usize] ^= 0xff;
    std::fs::write(&target, bytes).unwrap();
    let what = format!("{} at offset {offset}", file.display());
    let started = tokio::task::spawn_blocking(move || ProcessNode::try_start_in("swv-vo", dir))
        .await
        .expect("start task");
    match started {
        Ok(node) => {
            let mut client = node.intake().await;
            let listed = tokio::time::timeout(
                Duration::from_secs(20),
                list(&mut client, Default::default()),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: List timed out"));
            let views = listed.unwrap_or_else(|s| {
                panic!("{what}: the node started but failed to list its store: {s}")
            });
            assert_eq!(
                ids(&views),
                stopped.ids,
                "{what}: the node started and served a different store"
            );
            Outcome::ServedAll
        }
        Err((status, stderr)) => {
            assert_refusal(status, &stderr, &what);
            Outcome::Refused(refusal_line(&stderr))
        }
    }
}

/// A refusal exits 1 (an error, not a panic's 101 or a signal) and says what to do.
fn assert_refusal(status: ExitStatus, stderr: &str, what: &str) {
    assert_eq!(
        status.code(),
        Some(1),
        "{what}: the node died instead of refusing: {status:?}\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{what}: a panic reached the operator:\n{stderr}"
    );
    assert!(
        stderr.contains(REFUSES) && stderr.contains(RECOVER),
        "{what}: the refusal must say it refuses and how to recover:\n{stderr}"
    );
}

/// What the refusal says is wrong (without the recovery advice).
fn refusal_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains(REFUSES))
        .unwrap_or_default();
    let start = line.find(REFUSES).map_or(0, |i| i + REFUSES.len() + 2);
    line[start..]
        .split(". To recover")
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_are_served_intact_or_refused_never_silently_lost() {
    let stopped = populated().await;
    let files = damageable_files(stopped.data.path());
    assert!(
        files.iter().any(|f| f.ends_with("db")),
        "sled's db file among {files:?}"
    );
    let mut cases = Vec::new();
    for file in &files {
        let len = std::fs::metadata(stopped.data.path().join(file))
            .unwrap()
            .len();
        let n = match file.ends_with("db") {
            true => OFFSETS_IN_DB,
            false => OFFSETS_PER_FILE,
        };
        cases.extend(offsets(len, n).into_iter().map(|o| (file.clone(), o, len)));
    }
    let mut table = Vec::new();
    for chunk in cases.chunks(PARALLEL) {
        let tries = chunk
            .iter()
            .map(|(file, offset, _)| try_damaged(&stopped, file, *offset));
        let outcomes = futures::future::join_all(tries).await;
        for ((file, offset, len), outcome) in chunk.iter().zip(outcomes) {
            let line = match outcome {
                Outcome::ServedAll => "served every acknowledged record".to_owned(),
                Outcome::Refused(message) => format!("refused: {message}"),
            };
            table.push(format!("{} @ {offset}/{len}: {line}", file.display()));
        }
    }
    assert!(table.len() >= 20, "only {} offsets tried", table.len());
    eprintln!("flipped-byte outcomes:\n{}", table.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_check_tells_a_whole_store_from_a_shorter_one() {
    let stopped = populated().await;
    let check = |data: &Path| {
        run_within(
            pactgate_bin()
                .arg("store")
                .arg("check")
                .arg("--data-dir")
                .arg(data),
            Duration::from_secs(60),
        )
    };
    let whole = check(stopped.data.path());
    assert!(
        whole.status.success(),
        "a whole store: {}",
        String::from_utf8_lossy(&whole.stderr)
    );
    assert!(
        String::from_utf8_lossy(&whole.stdout).contains(&format!("{} signals", stopped.ids.len()))
    );

    // Records removed behind the node's back, through sled itself: a store that opens fine but
    // holds less than the node acknowledged.
    let shorter = tempfile::tempdir().unwrap();
    copy_tree(stopped.data.path(), shorter.path());
    {
        let db = open_db(shorter.path());
        let signals = db.open_tree("signals").unwrap();
        let victims: Vec<_> = signals
            .scan_prefix(b"s\0")
            .keys()
            .take(3)
            .map(|k| k.unwrap())
            .collect();
        for key in victims {
            signals.remove(key).unwrap();
        }
        db.flush().unwrap();
    }
    let short = check(shorter.path());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert_eq!(short.status.code(), Some(1), "a shorter store: {stderr}");
    assert!(
        stderr.contains("signals") && stderr.contains(RECOVER),
        "names what is wrong and how to recover: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_audit_verify_is_read_only_and_fails_on_a_shorter_log() {
    let stopped = populated().await;
    let before = read_tree(stopped.data.path());
    let out = verify_offline(stopped.data.path(), &[]);
    assert_verifies(&out, "untouched");
    assert!(
        read_tree(stopped.data.path()) == before,
        "audit verify changed the data dir it checked"
    );

    // The newest audit entries and any checkpoint over them removed, consistently: a log that
    // verifies against itself but is shorter than the node acknowledged.
    let shorter = tempfile::tempdir().unwrap();
    copy_tree(stopped.data.path(), shorter.path());
    let len = {
        let db = open_db(shorter.path());
        let audit = db.open_tree("audit").unwrap();
        let len = audit.scan_prefix([b'e']).count() as u64;
        assert!(len > 2, "the pushes were audited");
        let keep = len - 2;
        for seq in keep..len {
            let mut key = vec![b'e'];
            key.extend_from_slice(&seq.to_be_bytes());
            audit.remove(key).unwrap();
        }
        let checkpoints = db.open_tree("audit.checkpoints").unwrap();
        for kv in checkpoints.iter() {
            let (k, _) = kv.unwrap();
            if u64::from_be_bytes(k.as_ref().try_into().unwrap()) > keep {
                checkpoints.remove(k).unwrap();
            }
        }
        db.flush().unwrap();
        keep
    };
    let out = verify_offline(shorter.path(), &[]);
    assert_tamper_found(&out, len, "a log shorter than acknowledged");
}

/// `pactgate backup` as a development party against a running node.
fn backup_as(party: &str, addr: std::net::SocketAddr, out: &Path) -> std::process::Output {
    let (cert, key, ca) = cert_paths(party);
    run_within(
        pactgate_bin()
            .arg("backup")
            .arg("--node")
            .arg(addr.to_string())
            .args([
                &"--cert".into(),
                &cert,
                &"--key".into(),
                &key,
                &"--ca".into(),
                &ca,
            ])
            .arg("--out")
            .arg(out),
        Duration::from_secs(60),
    )
}

fn restore(from: &Path, data_dir: &Path) -> std::process::Output {
    run_within(
        pactgate_bin()
            .arg("restore")
            .arg("--from")
            .arg(from)
            .arg("--data-dir")
            .arg(data_dir),
        Duration::from_secs(60),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_through_the_running_node_restores_into_an_empty_data_dir() {
    let node = ProcessNode::start_with_policy("swv-vo", Some(&policy_path()));
    let mut client = node.intake().await;
    let mut bsns = Bsns::new(0xbac);
    let before: Vec<pb::SignalRecord> = (0..50)
        .map(|i| good_record(&format!("kept-{i:02}"), &bsns.next_bsn()))
        .collect();
    push(&mut client, before).await.expect("push");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.backup");

    let refused = backup_as("leerplicht", node.addr, &file);
    assert!(
        !refused.status.success(),
        "another organisation got a backup"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!file.exists(), "a refused backup left a file");

    let made = backup_as("swv-vo", node.addr, &file);
    assert!(
        made.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let after = vec![good_record("after-backup", &bsns.next_bsn())];
    push(&mut client, after)
        .await
        .expect("push after the backup");

    // A damaged backup is refused whole, before anything is written.
    let damaged = dir.path().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = restore(&damaged, &target.path().join("data"));
    assert!(!out.status.success(), "a damaged backup was restored");
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    assert!(!target.path().join("data").join("store").exists());

    // Not into a data dir in use.
    let out = restore(&file, &node.data_dir());
    assert!(!out.status.success(), "restored over a running node's data");

    let restored = tempfile::tempdir().unwrap();
    let out = restore(&file, &restored.path().join("data"));
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = restored.path().join("data");
    assert_verifies(&verify_offline(&data, &[]), "the restored audit log");
    let check = run_within(
        pactgate_bin()
            .args(["store", "check", "--data-dir"])
            .arg(&data),
        Duration::from_secs(60),
    );
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let restarted = ProcessNode::try_start_in("swv-vo", restored)
        .unwrap_or_else(|(s, e)| panic!("the restored node refused to start: {s:?}\n{e}"));
    let mut client = restarted.intake().await;
    let mut expected: Vec<String> = (0..50).map(|i| format!("kept-{i:02}")).collect();
    expected.sort();
    assert_eq!(
        ids(&list_all(&mut client).await),
        expected,
        "the restored node holds what the backup held, not what came after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fg_of_the_node_may_take_a_backup_and_a_peer_may_not() {
    let node = ProcessNode::start_with_policy("leerplicht", Some(&policy_path()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fg.backup");
    let refused = backup_as("swv-vo", node.addr, &file);
    assert!(!refused.status.success(), "a peer got a backup");
    let made = backup_as("fg", node.addr, &file);
    assert!(
        made.status.success(),
        "the FG's backup: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let restored = tempfile::tempdir().unwrap();
    let out = restore(&file, &restored.path().join("data"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_verifies(
        &verify_offline(&restored.path().join("data"), &[]),
        "the FG's backup, restored",
    );
}
