//! What a node acknowledged survives a crash: the real binary is SIGKILLed at random moments while
//! a client pushes new records and updates, and after each restart every acknowledged record
//! (in at least its acknowledged version) is there, and nothing that was never sent. Also
//! `pactgate push` from a CSV file, end to end.

mod common;

use common::*;
use pactgate::pb;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROUNDS: usize = 8;
const NEW_PER_BATCH: usize = 15;
const UPDATES_PER_BATCH: usize = 5;
/// The test gives up starting new rounds after this long (it must still do at least two).
const TIME_BUDGET: Duration = Duration::from_secs(60);

/// A record's version, carried in its school code (two digits, XY, two digits).
fn school_of(version: usize) -> String {
    assert!(version < 10_000);
    format!("{:02}XY{:02}", version / 100, version % 100)
}

fn version_of(school: &str) -> usize {
    let digits: String = school.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("school {school:?} carries no version"))
}

/// What the pusher did: per record id, the pupil and the versions sent and acknowledged.
#[derive(Default)]
struct Ledger {
    pupil: BTreeMap<String, String>,
    sent: BTreeMap<String, BTreeSet<usize>>,
    acked: BTreeMap<String, usize>,
    batches_acked: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_sigkill() {
    let mut node = ProcessNode::start("swv-vo");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = StdRng::seed_from_u64(0x7a11);
    let started = Instant::now();
    let mut next_version = 1usize;
    let mut rounds = 0;

    while rounds < ROUNDS && (rounds < 2 || started.elapsed() < TIME_BUDGET) {
        let mut client = node.intake().await;
        let (first_ack_tx, first_ack) = tokio::sync::oneshot::channel::<()>();
        let pusher_ledger = ledger.clone();
        let seed = rng.random::<u64>();
        let first_version = next_version;
        let pusher = tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            // The seed in letters, so that a record id never holds nine digits in a row (the
            // node refuses such an id: it could be a BSN).
            let tag: String = (0..16)
                .map(|k| char::from(b'g' + ((seed >> (4 * k)) & 0xf) as u8))
                .collect();
            let mut bsns = Bsns::new(seed);
            let mut first_ack_tx = Some(first_ack_tx);
            let mut version = first_version;
            for batch in 0.. {
                let mut records = Vec::new();
                {
                    let mut l = pusher_ledger.lock().unwrap();
                    let known: Vec<String> = l.acked.keys().cloned().collect();
                    let mut ids: Vec<String> = (0..NEW_PER_BATCH)
                        .map(|i| format!("s{tag}-b{batch}-{i}"))
                        .collect();
                    for _ in 0..UPDATES_PER_BATCH.min(known.len()) {
                        ids.push(known[rng.random_range(0..known.len())].clone());
                    }
                    for id in ids {
                        let pupil = l
                            .pupil
                            .entry(id.clone())
                            .or_insert_with(|| bsns.next_bsn())
                            .clone();
                        l.sent.entry(id.clone()).or_default().insert(version);
                        records.push(pb::SignalRecord {
                            school: school_of(version),
                            ..good_record(&id, &pupil)
                        });
                    }
                }
                let this_version = version;
                version += 1;
                let sent: Vec<String> =
                    records.iter().map(|r| r.source_record_id.clone()).collect();
                let answer =
                    tokio::time::timeout(Duration::from_secs(20), push(&mut client, records)).await;
                let Ok(Ok(report)) = answer else {
                    return version; // the node died under us
                };
                assert!(report.rejected.is_empty(), "{:?}", report.rejected);
                let mut l = pusher_ledger.lock().unwrap();
                for id in sent {
                    let v = l.acked.entry(id).or_insert(0);
                    *v = (*v).max(this_version);
                }
                l.batches_acked += 1;
                if let Some(tx) = first_ack_tx.take() {
                    let _ = tx.send(());
                }
            }
            unreachable!()
        });

        // Readiness: at least one push of this round acknowledged; then a random moment.
        tokio::time::timeout(Duration::from_secs(30), first_ack)
            .await
            .expect("no push acknowledged within 30 s")
            .expect("the pusher stopped before any acknowledgement");
        let delay = Duration::from_millis(rng.random_range(0..400));
        tokio::time::sleep(delay).await;
        node.kill();
        next_version = tokio::time::timeout(Duration::from_secs(30), pusher)
            .await
            .expect("the pusher did not notice the kill")
            .expect("the pusher panicked");

        node.restart();
        let mut client = node.intake().await;
        let views = list_all(&mut client).await;
        // The pusher has ended: a snapshot of what it did.
        let l = {
            let l = ledger.lock().unwrap();
            Ledger {
                pupil: l.pupil.clone(),
                sent: l.sent.clone(),
                acked: l.acked.clone(),
                batches_acked: l.batches_acked,
            }
        };
        let listed: BTreeMap<&str, &pb::SignalView> = views
            .iter()
            .map(|v| (v.source_record_id.as_str(), v))
            .collect();
        assert_eq!(listed.len(), views.len(), "a record id is listed twice");
        for (id, acked_version) in &l.acked {
            let view = listed.get(id.as_str()).unwrap_or_else(|| {
                panic!("round {rounds} (kill after {delay:?}): acknowledged {id} lost")
            });
            let version = version_of(&view.school);
            assert!(
                version >= *acked_version,
                "round {rounds}: {id} is back at version {version}, acknowledged {acked_version}"
            );
            assert_eq!(
                view.pupil_pseudonym,
                pseudonym_of(&l.pupil[id]),
                "{id} corrupted"
            );
        }
        for (id, view) in &listed {
            let sent = l
                .sent
                .get(*id)
                .unwrap_or_else(|| panic!("{id} was never sent"));
            let version = version_of(&view.school);
            assert!(
                sent.contains(&version),
                "{id} at version {version} never sent ({sent:?})"
            );
        }
        // The secondary indexes agree with the records after recovery.
        let by_municipality = list(
            &mut client,
            pb::ListRequest {
                residence_municipality: "GM0014".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            ids(&by_municipality),
            ids(&views),
            "municipality index out of step after a crash"
        );
        let mut by_school: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for v in &views {
            by_school
                .entry(v.school.as_str())
                .or_default()
                .push(v.source_record_id.clone());
        }
        for (school, mut expected) in by_school {
            expected.sort();
            let request = pb::ListRequest {
                school: school.into(),
                ..Default::default()
            };
            let found = ids(&list(&mut client, request).await.unwrap());
            assert_eq!(
                found, expected,
                "school index of {school} out of step after a crash"
            );
        }
        rounds += 1;
    }
    let l = ledger.lock().unwrap();
    assert!(rounds >= 2, "only {rounds} rounds");
    assert!(
        l.batches_acked >= rounds,
        "{} batches acknowledged",
        l.batches_acked
    );
    eprintln!(
        "{rounds} kills survived: {} batches, {} records acknowledged in {:?}",
        l.batches_acked,
        l.acked.len(),
        started.elapsed()
    );
    drop(l);
    // And a graceful stop after all that.
    assert!(node.terminate().success());
    // No kill left a batch's signals without its audit entry (a batch's first versions of new
    // records would name pupils that no Ingest entry names).
    let audited = ingested_pupils(&node.data_dir(), "swv-vo");
    for (record, pupil) in stored_pupils(&node.data_dir()) {
        assert!(
            audited.contains(&pupil),
            "signal {record} survived a kill without the audit entry of its batch"
        );
    }
}

/// Every stored signal of a stopped node: its record id and pupil pseudonym, read raw.
fn stored_pupils(data_dir: &std::path::Path) -> Vec<(String, String)> {
    let db = open_db(data_dir);
    let signals = db.open_tree("signals").expect("signals tree");
    signals
        .scan_prefix(b"s\0")
        .map(|kv| {
            let v: serde_json::Value = serde_json::from_slice(&kv.expect("read").1).unwrap();
            let field = |f: &str| v[f].as_str().expect("a string field").to_owned();
            (field("source_record_id"), field("pupil_pseudonym"))
        })
        .collect()
}

/// The pupils the Ingest entries of a stopped node's audit log name.
fn ingested_pupils(data_dir: &std::path::Path, party: &str) -> BTreeSet<String> {
    stored_entries(data_dir, party)
        .into_iter()
        .filter(|e| e.action == pactgate::audit::Action::Ingest)
        .flat_map(|e| e.pupils)
        .collect()
}

/// A push batch's signals and its audit entry are one atomic write: when the audit half fails
/// (here: the log's Merkle cache is damaged, so it refuses every append), no signal of the
/// batch is stored either, and the log holds no entry for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_audit_entry_fails_stores_none_of_its_signals() {
    let mut node = TestNode::start("swv-vo").await;
    let mut bsns = Bsns::new(0xa70);
    let mut client = node.intake().await;
    let first = vec![good_record("kept-1", &bsns.next_bsn())];
    assert_eq!(push(&mut client, first).await.unwrap().accepted, 1);
    drop(client);

    node.restart_after(|data_dir| {
        let db = open_db(data_dir);
        let audit = db.open_tree(pactgate::audit::TREE).unwrap();
        for key in audit.scan_prefix(b"n").keys() {
            audit.remove(key.unwrap()).unwrap();
        }
        db.flush().unwrap();
    })
    .await;
    let mut client = node.intake().await;
    let second: Vec<_> = (0..3)
        .map(|i| good_record(&format!("lost-{i}"), &bsns.next_bsn()))
        .collect();
    push(&mut client, second)
        .await
        .expect_err("a push whose audit entry cannot be written must fail");
    drop(client);

    let dir = node.stop().await;
    let data_dir = dir.path().join("data");
    let stored: Vec<String> = stored_pupils(&data_dir)
        .into_iter()
        .map(|(record, _)| record)
        .collect();
    assert_eq!(
        stored,
        ["kept-1"],
        "signals of a batch whose audit entry failed were stored"
    );
    let ingests = stored_entries(&data_dir, "swv-vo")
        .into_iter()
        .filter(|e| e.action == pactgate::audit::Action::Ingest)
        .count();
    assert_eq!(ingests, 1, "only the first push's batch is audited");
}

fn push_cli(
    node: std::net::SocketAddr,
    file: &std::path::Path,
    party: &str,
) -> std::process::Output {
    let (cert, key, ca) = cert_paths(party);
    let mut child = pactgate_bin()
        .arg("push")
        .arg("--file")
        .arg(file)
        .arg("--node")
        .arg(node.to_string())
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pactgate push");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("pactgate push still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_command_imports_a_csv_and_reports_refused_rows() {
    let node = TestNode::start("swv-vo").await;
    let mut bsns = Bsns::new(50);
    let b: Vec<String> = bsns.take(8);
    let d = date_from_today(-40);
    let offer = date_from_today(-5);
    let bad_bsn = failing_eleven_proof(&b[3]);
    let csv = format!(
        "source_record_id,pupil_id,category,sector,residence_municipality,school,absent_since,status,offer_date,age\n\
         csv-1,{},LRV,VO,GM0014,20XY01,{d},OPEN,,14\n\
         csv-2,{},CATEGORY_AV,SECTOR_VO,GM1966,,{d},STATUS_AANBOD,{offer},15\n\
         csv-3,{},verzuim,po,GM0014,30AB02,{d},open,,9\n\
         csv-4,{bad_bsn},LRV,VO,GM0014,20XY01,{d},OPEN,,14\n\
         csv-5,{},NOPE,VO,GM0014,20XY01,{d},OPEN,,14\n\
         csv-6,{},LRV,VO,GM0014,20XY01,2031-02-30,OPEN,,14\n\
         csv-7,{},LRV,VO,GM0014\n\
         csv-8,{},LRV,VO,GM0014,20XY01,{d},OPEN,,fourteen\n",
        b[0], b[1], b[2], b[4], b[5], b[6], b[7],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signals.csv");
    std::fs::write(&file, csv).unwrap();

    let output = push_cli(node.addr(), &file, "swv-vo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "exit code; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("8 records read, 3 stored, 5 refused"),
        "{stdout}"
    );
    let refused: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("refused:"))
        .collect();
    assert_eq!(refused.len(), 5, "{stdout}");
    // Each refusal names the file line (header is line 1) and the field.
    for (line, field) in [
        (5, "pupil_id"),
        (6, "category"),
        (7, "absent_since"),
        (8, "row"),
        (9, "age"),
    ] {
        assert!(
            refused
                .iter()
                .any(|r| r.contains(&format!("line {line}")) && r.contains(field)),
            "no refusal of line {line} for {field}:\n{stdout}"
        );
    }
    assert!(stdout.contains("11-proef"), "{stdout}");
    for bsn in b.iter().chain([&bad_bsn]) {
        assert!(
            !stdout.contains(bsn.as_str()) && !stderr.contains(bsn.as_str()),
            "{bsn} echoed"
        );
    }

    let mut client = node.intake().await;
    let views = list_all(&mut client).await;
    assert_eq!(ids(&views), ["csv-1", "csv-2", "csv-3"]);
    let v3 = views
        .iter()
        .find(|v| v.source_record_id == "csv-3")
        .unwrap();
    assert_eq!(v3.category, pb::Category::Verzuim as i32);
    assert_eq!(v3.sector, pb::Sector::Po as i32);
    assert_eq!(v3.pupil_pseudonym, pseudonym_of(&b[2]));
    let v2 = views
        .iter()
        .find(|v| v.source_record_id == "csv-2")
        .unwrap();
    assert_eq!(
        (v2.status, v2.offer_date.as_str()),
        (pb::Status::Aanbod as i32, offer.as_str())
    );

    // A clean file: exit 0; pushing it again updates, never duplicates.
    let clean = dir.path().join("clean.csv");
    std::fs::write(
        &clean,
        format!(
            "source_record_id,pupil_id,category,sector,residence_municipality,school,absent_since,status,offer_date,age\n\
             csv-1,{},LRV,VO,GM0014,20XY01,{d},TERUGGELEID,{offer},14\n",
            b[0]
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let output = push_cli(node.addr(), &clean, "swv-vo");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("1 records read, 1 stored, 0 refused"),
            "{stdout}"
        );
    }
    let views = list_all(&mut client).await;
    assert_eq!(views.len(), 3);
    let v1 = views
        .iter()
        .find(|v| v.source_record_id == "csv-1")
        .unwrap();
    assert_eq!(v1.status, pb::Status::Teruggeleid as i32);

    // Another party's certificate: the push fails as a whole, with a non-zero exit.
    let output = push_cli(node.addr(), &clean, "wij");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("WIJ Groningen"),
        "{stderr}"
    );
}
