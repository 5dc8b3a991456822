//! The audit log over real nodes: every tamper kind caught by `pactgate audit verify --data-dir`
//! at the right sequence number, a witness that refuses what does not extend what it cosigned,
//! SIGKILL during pushes and queries, no raw BSN anywhere in the audit trees, the FG's services
//! and nobody else's, and one trace id on both sides of an exchange.

mod common;

use common::*;
use pactgate::audit::{Action, AuditLog, Checkpoint, Entry, NewEntry, SigningKey};
use pactgate::pb;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tempfile::TempDir;

/// The parties of the federation the realistic log comes from.
const PARTIES: [&str; 2] = ["leerplicht", "swv-vo"];

fn fast() -> NodeTuning {
    NodeTuning {
        counting: None,
        checkpoint_interval: Duration::from_millis(200),
    }
}

fn resident_records(prefix: &str, bsns: &mut Bsns, n: usize) -> Vec<pb::SignalRecord> {
    (0..n)
        .map(|i| good_record(&format!("{prefix}-{i}"), &bsns.next_bsn()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A realistic log, made once per test binary: leerplicht's node after pushes, federated queries
// and lists, checkpointed every 200 ms and cosigned by swv-vo's witness, then stopped.
// ---------------------------------------------------------------------------------------------

struct Realistic {
    /// The stopped node's data dir, file by file (kept in memory: a static is never dropped, so
    /// a temporary directory here would outlive the run).
    files: Vec<(PathBuf, Vec<u8>)>,
    entries: Vec<Entry>,
    /// Sizes of the node's own signed checkpoints.
    checkpoints: Vec<u64>,
    /// Sizes swv-vo's witness cosigned (as stored on the node).
    cosigned: Vec<u64>,
    /// What swv-vo's witness holds for leerplicht's log (WitnessService/HeldCheckpoint) ...
    held: Checkpoint,
    /// ... and the signed note it keeps for it (tree `witness` of its data dir).
    held_note: String,
}

impl Realistic {
    fn seqs_of(&self, action: Action) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|e| e.action == action)
            .map(|e| e.seq)
            .collect()
    }

    /// A copy of the stopped node's data dir to tamper with.
    fn copy(&self) -> (TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("pactgate-tamper-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        for (path, bytes) in &self.files {
            let target = data.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).expect("create dir");
            std::fs::write(target, bytes).expect("write file");
        }
        (dir, data)
    }

    /// The note swv-vo's witness holds, in a file for `--peer-checkpoint`.
    fn held_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("held-by-swv-vo.note");
        std::fs::write(&path, &self.held_note).expect("write checkpoint");
        path
    }

    /// The checkpoint swv-vo's witness holds as the CLI documents the file: the note body
    /// (origin, size, base64 root), as WitnessService/HeldCheckpoint gives it.
    fn held_body_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("held-by-swv-vo.txt");
        std::fs::write(&path, self.held.body()).expect("write checkpoint");
        path
    }
}

fn realistic() -> &'static Realistic {
    static LOG: OnceLock<Realistic> = OnceLock::new();
    LOG.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(make_realistic())
        })
        .join()
        .expect("making the realistic log failed")
    })
}

async fn make_realistic() -> Realistic {
    let mut fed = Federation::start_tuned(&PARTIES, Some(policy_path()), Vec::new(), fast()).await;
    let mut bsns = Bsns::new(0xa0d17);
    for round in 0..4 {
        let (lp, swv) = (fed.node("leerplicht"), fed.node("swv-vo"));
        push_all(swv, resident_records(&format!("swv-{round}"), &mut bsns, 3)).await;
        push_all(lp, resident_records(&format!("lp-{round}"), &mut bsns, 2)).await;
        let asked = federated(lp, verzuimmelding_claim(), Default::default(), 5000).await;
        assert!(asked.failures.is_empty(), "{:?}", asked.failures);
        list_all(&mut lp.intake().await).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let lp = fed.node("leerplicht");
    let len = fg_entries(lp, Default::default()).await.len() as u64;
    wait_cosigned(lp, "swv-vo", len).await;
    let dir = fed.take("leerplicht").stop().await;
    let held = fed
        .node("swv-vo")
        .witness_as("leerplicht")
        .await
        .held_checkpoint(pb::HeldCheckpointRequest {})
        .await
        .expect("HeldCheckpoint")
        .into_inner();
    assert!(held.held, "swv-vo's witness holds nothing for leerplicht");
    let swv_dir = fed.take("swv-vo").stop().await;
    let swv_db = open_db(&swv_dir.path().join("data"));
    let kept = swv_db
        .open_tree("witness")
        .expect("witness tree")
        .get(held.origin.as_bytes())
        .expect("read")
        .expect("swv-vo's witness keeps leerplicht's checkpoint");
    let held_note = String::from_utf8(kept[40..].to_vec()).expect("a note");
    drop(swv_db);

    let data_dir = dir.path().join("data");
    let db = open_db(&data_dir);
    let log = open_audit(&db, &data_dir, "leerplicht");
    let entries: Vec<Entry> = log
        .range(0, log.len())
        .collect::<Result<_, _>>()
        .expect("entries");
    let sizes = |tree: &str| -> Vec<u64> {
        let mut sizes: Vec<u64> = db
            .open_tree(tree)
            .expect("tree")
            .iter()
            .keys()
            .map(|k| {
                let k = k.expect("key");
                u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap())
            })
            .collect();
        sizes.sort();
        sizes
    };
    let checkpoints = sizes("audit.checkpoints");
    let cosigned = sizes("audit.cosignatures");
    drop(log);
    drop(db);
    let files = read_tree(&data_dir)
        .into_iter()
        .map(|(path, bytes)| (path.strip_prefix(&data_dir).unwrap().to_path_buf(), bytes))
        .collect();
    let f = Realistic {
        files,
        entries,
        checkpoints,
        cosigned,
        held: Checkpoint {
            origin: held.origin,
            size: held.size,
            root: held.root_hash.try_into().expect("a 32-byte root"),
        },
        held_note,
    };
    assert!(f.checkpoints.len() >= 3, "checkpoints {:?}", f.checkpoints);
    assert!(f.cosigned.len() >= 2, "cosigned {:?}", f.cosigned);
    assert!(f.held.size >= len && f.held.size <= f.entries.len() as u64);
    assert_eq!(
        pactgate::audit::body_of(&f.held_note).expect("a signed note"),
        f.held
    );
    for action in [
        Action::PolicyLoad,
        Action::Ingest,
        Action::FederatedQuery,
        Action::Receive,
        Action::Query,
        Action::AuditAccess,
    ] {
        assert!(!f.seqs_of(action).is_empty(), "no {action:?} entry");
    }
    f
}

/// Rewrites the stored bytes of entry `seq` in a stopped node's data dir.
fn put_entry(data_dir: &Path, seq: u64, bytes: Option<&[u8]>) {
    let db = open_db(data_dir);
    let tree = db.open_tree("audit").expect("audit tree");
    let mut key = vec![b'e'];
    key.extend_from_slice(&seq.to_be_bytes());
    match bytes {
        Some(b) => tree.insert(key, b).expect("insert"),
        None => tree.remove(key).expect("remove"),
    };
    db.flush().expect("flush");
}

fn entry_bytes(data_dir: &Path, seq: u64) -> Vec<u8> {
    let db = open_db(data_dir);
    let log = open_audit(&db, data_dir, "leerplicht");
    log.entry_bytes(seq).expect("read").expect("present")
}

#[test]
fn an_untouched_log_verifies_alone_and_against_the_peer() {
    let f = realistic();
    let (dir, data) = f.copy();
    assert_verifies(&verify_offline(&data, &[]), "untouched");
    assert_verifies(
        &verify_offline(&data, &[f.held_file(dir.path())]),
        "untouched, with swv-vo's checkpoint note",
    );
}

#[test]
fn peer_checkpoint_files_may_hold_the_bare_body_as_documented() {
    let f = realistic();
    let (dir, data) = f.copy();
    assert_verifies(
        &verify_offline(&data, &[f.held_body_file(dir.path())]),
        "untouched, with swv-vo's checkpoint body",
    );
    rewrite_history(f, &data, false);
    let output = verify_offline(&data, &[f.held_body_file(dir.path())]);
    assert_tamper_found(&output, 0, "rewritten, with the peer's checkpoint body");
}

#[test]
fn a_flipped_byte_in_an_entry_is_caught_at_its_seq() {
    let f = realistic();
    let (_dir, data) = f.copy();
    // Change who a receipt was about: one character of the first pupil's pseudonym.
    let seq = f
        .entries
        .iter()
        .find(|e| e.action == Action::Receive && !e.pupils.is_empty())
        .map(|e| e.seq)
        .expect("a receipt about pupils");
    let mut bytes = entry_bytes(&data, seq);
    let at = bytes
        .windows(12)
        .position(|w| w == b"\"pupils\":[\"v")
        .map(|p| p + 16)
        .expect("a pupil in the entry");
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    put_entry(&data, seq, Some(&bytes));
    let stderr = assert_tamper_found(&verify_offline(&data, &[]), seq, "flipped byte");
    assert!(stderr.contains("modified"), "{stderr}");
}

#[test]
fn a_deleted_entry_is_caught_at_its_seq() {
    let f = realistic();
    let (_dir, data) = f.copy();
    // Hide that something was received.
    let seq = f.seqs_of(Action::Receive)[1];
    put_entry(&data, seq, None);
    let stderr = assert_tamper_found(&verify_offline(&data, &[]), seq, "deleted entry");
    assert!(stderr.contains("deleted"), "{stderr}");
}

#[test]
fn swapped_entries_are_caught_at_the_first() {
    let f = realistic();
    let (_dir, data) = f.copy();
    let first = f.seqs_of(Action::Ingest)[1];
    let second = f.seqs_of(Action::Receive)[2];
    assert!(first < second);
    let (a, b) = (entry_bytes(&data, first), entry_bytes(&data, second));
    put_entry(&data, first, Some(&b));
    put_entry(&data, second, Some(&a));
    let stderr = assert_tamper_found(&verify_offline(&data, &[]), first, "swapped entries");
    assert!(stderr.contains("reordered"), "{stderr}");
}

#[test]
fn truncation_below_a_cosigned_checkpoint_is_caught_at_the_new_end() {
    let f = realistic();
    let (_dir, data) = f.copy();
    let covered = *f.cosigned.last().unwrap();
    let cut = covered - 3;
    for seq in cut..f.entries.len() as u64 {
        put_entry(&data, seq, None);
    }
    let stderr = assert_tamper_found(&verify_offline(&data, &[]), cut, "truncated");
    assert!(stderr.contains("truncated"), "{stderr}");
}

/// What an attacker with the node's signing key does: empty the log and write another history
/// with the library (the same entries without their pupils, so no receipt shows in an access
/// report), re-signing a checkpoint at every size the node had signed one. Clears
/// `audit.cosignatures` too unless `keep_cosignatures`.
fn rewrite_history(f: &Realistic, data: &Path, keep_cosignatures: bool) {
    let db = open_db(data);
    let mut trees = vec!["audit", "audit.checkpoints"];
    if !keep_cosignatures {
        trees.push("audit.cosignatures");
    }
    for tree in trees {
        db.open_tree(tree).expect("tree").clear().expect("clear");
    }
    let log = AuditLog::open(&db, &oin("leerplicht"), audit_key(data)).expect("open");
    assert_eq!(log.len(), 0);
    for e in &f.entries {
        log.append(NewEntry {
            trace_id: e.trace_id.clone(),
            span_id: e.span_id.clone(),
            actor_oin: e.actor_oin.clone(),
            actor_name: e.actor_name.clone(),
            actor: e.actor.clone(),
            action: e.action,
            flow: e.flow.clone(),
            meeting_type: e.meeting_type.clone(),
            case_id: e.case_id.clone(),
            processing_activity: e.processing_activity.clone(),
            purpose: e.purpose.clone(),
            legal_basis: e.legal_basis.clone(),
            pupils: Vec::new(),
            data_categories: e.data_categories.clone(),
            decision: e.decision,
            reason: e.reason.clone(),
            policy_version: e.policy_version.clone(),
            count: e.count,
            parent_span_id: e.parent_span_id.clone(),
        })
        .expect("append");
        if f.checkpoints.contains(&log.len()) {
            log.checkpoint().expect("re-sign");
        }
    }
    db.flush().expect("flush");
}

#[test]
fn a_consistent_rewrite_is_caught_by_the_checkpoint_the_peer_holds() {
    let f = realistic();
    let (dir, data) = f.copy();
    rewrite_history(f, &data, false);
    // With its cosignatures gone, the node alone cannot tell: every signature is good.
    assert_verifies(&verify_offline(&data, &[]), "rewritten, no peer checkpoint");
    // The checkpoint swv-vo's witness holds disagrees; nothing below it can be trusted.
    let output = verify_offline(&data, &[f.held_file(dir.path())]);
    let stderr = assert_tamper_found(&output, 0, "rewritten, with the peer's checkpoint");
    assert!(stderr.contains("rewritten"), "{stderr}");
    assert!(
        stderr.contains(&format!("at size {}", f.held.size))
            && stderr.contains(&format!("one of 0..={}", f.held.size - 1)),
        "{stderr}"
    );
}

#[test]
fn a_rewrite_that_kept_the_cosignatures_is_caught_by_them() {
    let f = realistic();
    let (_dir, data) = f.copy();
    rewrite_history(f, &data, true);
    let first = f.cosigned[0];
    let stderr = assert_tamper_found(
        &verify_offline(&data, &[]),
        0,
        "rewritten, cosignatures kept",
    );
    let range = match first {
        1 => "first bad entry: 0".to_owned(),
        n => format!("first bad entry: one of 0..={}", n - 1),
    };
    assert!(stderr.contains(&range), "{stderr}");
}

#[test]
fn a_rewrite_that_kept_the_cosignatures_is_named_a_rewrite() {
    let f = realistic();
    let (_dir, data) = f.copy();
    rewrite_history(f, &data, true);
    let stderr = assert_tamper_found(
        &verify_offline(&data, &[]),
        0,
        "rewritten, cosignatures kept",
    );
    assert!(stderr.contains("rewritten"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The witness
// ---------------------------------------------------------------------------------------------

/// An add-checkpoint request body (c2sp.org/tlog-witness).
fn add_checkpoint_body(note: &str, old_size: u64, proof: &[[u8; 32]]) -> String {
    use base64::Engine as _;
    let mut body = format!("old {old_size}\n");
    for h in proof {
        body.push_str(&base64::engine::general_purpose::STANDARD.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// A checkpoint offered to a witness, and the refusal expected: the HTTP status and, for a 409
/// about the old size, the held size as the `text/x.tlog.size` body.
struct Offer {
    case: &'static str,
    note: String,
    old_size: u64,
    proof: Vec<[u8; 32]>,
    status: u16,
    held_size: Option<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_refuses_what_does_not_extend_what_it_cosigned() {
    let mut fed = Federation::start_tuned(&PARTIES, Some(policy_path()), Vec::new(), fast()).await;
    push_all(
        fed.node("leerplicht"),
        resident_records("lp", &mut Bsns::new(0x717), 3),
    )
    .await;
    wait_cosigned(fed.node("leerplicht"), "swv-vo", 2).await;
    let dir = fed.take("leerplicht").stop().await;
    let data = dir.path().join("data");
    let swv = fed.node("swv-vo");
    let held = move || async move {
        swv.witness_as("leerplicht")
            .await
            .held_checkpoint(pb::HeldCheckpointRequest {})
            .await
            .expect("HeldCheckpoint")
            .into_inner()
    };
    let before = held().await;
    assert!(before.held);
    let size = before.size;

    // The real log, grown by a few entries with its own key, so there is a true next checkpoint.
    let db = open_db(&data);
    let log = open_audit(&db, &data, "leerplicht");
    assert_eq!(log.root(size).unwrap().to_vec(), before.root_hash);
    let org = pactgate::identity::Organisation {
        oin: oin("leerplicht").parse().unwrap(),
        name: "Gemeente Groningen Leerplicht RMC".into(),
    };
    for _ in 0..3 {
        let trace = pactgate::trace::TraceContext::from_metadata(&Default::default());
        log.append(pactgate::audit::NewEntry::new(
            &trace,
            &org,
            "test",
            Action::ConfigChange,
            "",
        ))
        .expect("append");
    }
    let next = log.checkpoint().expect("checkpoint");
    let new_size = next.checkpoint.size;
    let proof = log.consistency_proof(size, new_size).expect("proof");
    assert!(!proof.is_empty());
    let key = audit_key(&data);
    let origin = origin_of("leerplicht");
    let signed = |size: u64, root: [u8; 32], origin: &str, key: &SigningKey| {
        Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        }
        .sign(key, origin)
        .note
    };

    let mut bad_proof = proof.clone();
    bad_proof[0][0] ^= 1;
    let other = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
    let offers = vec![
        Offer {
            case: "a consistency proof that does not hold",
            note: next.note.clone(),
            old_size: size,
            proof: bad_proof,
            status: 422,
            held_size: None,
        },
        Offer {
            case: "an old size other than the one held",
            note: next.note.clone(),
            old_size: size - 1,
            proof: log.consistency_proof(size - 1, new_size).unwrap(),
            status: 409,
            held_size: Some(size),
        },
        Offer {
            case: "a smaller checkpoint, offered as a first submission",
            note: signed(size - 1, log.root(size - 1).unwrap(), &origin, &key),
            old_size: 0,
            proof: Vec::new(),
            status: 409,
            held_size: Some(size),
        },
        Offer {
            case: "another root at the held size (a fork)",
            note: signed(size, log.root(size - 1).unwrap(), &origin, &key),
            old_size: size,
            proof: Vec::new(),
            status: 409,
            held_size: None,
        },
        Offer {
            case: "a log the witness is not configured for",
            note: signed(new_size, next.checkpoint.root, &origin_of("swv-po"), &key),
            old_size: size,
            proof: proof.clone(),
            status: 404,
            held_size: None,
        },
        Offer {
            case: "another key for the configured origin",
            note: signed(new_size, next.checkpoint.root, &origin, &other),
            old_size: size,
            proof: proof.clone(),
            status: 403,
            held_size: None,
        },
    ];
    for o in offers {
        let body = add_checkpoint_body(&o.note, o.old_size, &o.proof);
        let (status, content_type, answer) = add_checkpoint(swv.addr(), "leerplicht", body).await;
        assert_eq!(status, o.status, "{}: {answer}", o.case);
        if let Some(held_size) = o.held_size {
            assert_eq!(content_type, "text/x.tlog.size", "{}", o.case);
            assert_eq!(answer, format!("{held_size}\n"), "{}", o.case);
        }
        assert_eq!(
            held().await,
            before,
            "{}: the held checkpoint changed",
            o.case
        );
    }

    // Control: the true extension is cosigned (by whoever submits it: the spec authenticates the
    // checkpoint's signature, not the submitter), and then held.
    let body = add_checkpoint_body(&next.note, size, &proof);
    let (status, _, answer) = add_checkpoint(swv.addr(), "swv-po", body).await;
    assert_eq!(status, 200, "{answer}");
    let cosignature = pactgate::audit::Cosignature::parse_line(answer.trim_end()).expect("a line");
    assert_eq!(cosignature.name, witness_of("swv-vo"));
    let witness_key =
        pactgate::audit::VerifierKey::parse(&audit_keys_of("swv-vo", &oin("swv-vo")).witness)
            .expect("a key");
    cosignature
        .verify(&next.checkpoint, &witness_key)
        .expect("the cosignature checks");
    let after = held().await;
    assert_eq!(
        (after.size, after.root_hash),
        (new_size, next.checkpoint.root.to_vec())
    );
}

// ---------------------------------------------------------------------------------------------
// SIGKILL during pushes and queries
// ---------------------------------------------------------------------------------------------

const KILL_ROUNDS: u32 = 5;

#[derive(Default)]
struct Acked {
    /// trace id -> (records accepted, their pseudonyms)
    pushes: BTreeMap<String, (u64, BTreeSet<String>)>,
    /// trace id -> signals disclosed
    queries: BTreeMap<String, u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_the_log_verifies_and_holds_every_acknowledged_request() {
    let mut node = ProcessNode::start_with_policy("swv-vo", Some(&policy_path()));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = StdRng::seed_from_u64(0x5e9c111);
    for round in 0..KILL_ROUNDS {
        let (pushed_tx, pushed) = tokio::sync::oneshot::channel::<()>();
        let (asked_tx, asked) = tokio::sync::oneshot::channel::<()>();
        let mut intake = node.intake().await;
        let ledger = acked.clone();
        let pusher = tokio::spawn(async move {
            let mut bsns = Bsns::new(u64::from(round) + 100);
            let mut tx = Some(pushed_tx);
            for n in 0u64.. {
                let trace = trace_id(round, n);
                let records = resident_records(&format!("r{round}-{n}"), &mut bsns, 3);
                let pseudonyms = records.iter().map(|r| pseudonym_of(&r.pupil_id)).collect();
                let messages: Vec<pb::PushRequest> = records.into_iter().map(Into::into).collect();
                let call = intake.push(traced(tokio_stream::iter(messages), &trace));
                let Ok(Ok(report)) = tokio::time::timeout(Duration::from_secs(20), call).await
                else {
                    return;
                };
                let report = report.into_inner();
                ledger
                    .lock()
                    .unwrap()
                    .pushes
                    .insert(trace, (u64::from(report.accepted), pseudonyms));
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        });
        let mut exchange = node.exchange_as("leerplicht").await;
        let ledger = acked.clone();
        let querier = tokio::spawn(async move {
            let mut tx = Some(asked_tx);
            for n in 0u64.. {
                let trace = trace_id(round + 1000, n);
                let request = pb::QueryRequest {
                    claim: Some(verzuimmelding_claim()),
                    filter: None,
                };
                let call = exchange.query(traced(request, &trace));
                let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(20), call).await
                else {
                    return;
                };
                let signals = answer.into_inner().signals.len() as u64;
                ledger.lock().unwrap().queries.insert(trace, signals);
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        });
        for first in [pushed, asked] {
            tokio::time::timeout(Duration::from_secs(30), first)
                .await
                .expect("nothing acknowledged within 30 s")
                .expect("a worker stopped before its first acknowledgement");
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        node.kill();
        for worker in [pusher, querier] {
            tokio::time::timeout(Duration::from_secs(30), worker)
                .await
                .expect("a worker did not notice the kill")
                .expect("a worker panicked");
        }

        // The node is down: its log must verify and hold every acknowledged request.
        let data = node.data_dir();
        assert_verifies(&verify_offline(&data, &[]), &format!("after kill {round}"));
        let entries = stored_entries(&data, "swv-vo");
        let by_trace: BTreeMap<&str, Vec<&Entry>> =
            entries.iter().fold(BTreeMap::new(), |mut m, e| {
                m.entry(e.trace_id.as_str()).or_default().push(e);
                m
            });
        let l = acked.lock().unwrap();
        for (trace, (accepted, pseudonyms)) in &l.pushes {
            let found = by_trace
                .get(trace.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert!(
                found.iter().any(|e| e.action == Action::Ingest
                    && e.count == *accepted
                    && e.pupils.iter().cloned().collect::<BTreeSet<_>>() == *pseudonyms),
                "round {round}: the acknowledged push {trace} has no INGEST entry"
            );
        }
        for (trace, signals) in &l.queries {
            let found = by_trace
                .get(trace.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert!(
                found.iter().any(|e| e.action == Action::Disclose
                    && e.count == *signals
                    && e.actor_oin == oin("leerplicht")),
                "round {round}: the answered query {trace} has no DISCLOSE entry"
            );
        }
        drop(l);
        node.restart();
    }
    let l = acked.lock().unwrap();
    assert!(l.pushes.len() >= KILL_ROUNDS as usize && l.queries.len() >= KILL_ROUNDS as usize);
}

// ---------------------------------------------------------------------------------------------
// No raw BSN
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_bsn_reaches_an_audit_tree_or_any_file() {
    let mut fed = Federation::start_tuned(&PARTIES, Some(policy_path()), Vec::new(), fast()).await;
    let mut bsns = Bsns::new(0xb5b);
    let mut all = Vec::new();
    let swv_records = resident_records("swv", &mut bsns, 4);
    let lp_records = resident_records("lp", &mut bsns, 2);
    all.extend(
        swv_records
            .iter()
            .chain(&lp_records)
            .map(|r| r.pupil_id.clone()),
    );
    // Refused records: valid BSNs with a bad field, and a BSN failing the 11-proef.
    let refused_bsn = bsns.next_bsn();
    let bad_bsn = failing_eleven_proof(&bsns.next_bsn());
    all.extend([refused_bsn.clone(), bad_bsn.clone()]);
    let refused = vec![
        pb::SignalRecord {
            residence_municipality: "nowhere".into(),
            ..good_record("refused-1", &refused_bsn)
        },
        good_record("refused-2", &bad_bsn),
    ];
    let (swv, lp) = (fed.node("swv-vo"), fed.node("leerplicht"));
    push_all(swv, swv_records.clone()).await;
    let report = push(&mut lp.intake().await, [lp_records, refused].concat())
        .await
        .expect("push");
    assert_eq!((report.accepted, report.rejected.len()), (2, 2));
    federated(lp, verzuimmelding_claim(), Default::default(), 5000).await;
    let opened = swv
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "passend-aanbod".into(),
            pupil_pseudonyms: vec![pseudonym_of(&swv_records[0].pupil_id)],
            participant_oins: vec![oin("leerplicht"), oin("wij")],
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("OpenCase")
        .into_inner();
    assert!(opened.case.is_some());
    let mut fg = lp.audit_as("fg").await;
    let access = fg
        .access_report(pb::AccessReportRequest {
            pupil_id: swv_records[0].pupil_id.clone(),
            pupil_pseudonym: String::new(),
        })
        .await
        .expect("AccessReport")
        .into_inner();
    assert!(!access.entries.is_empty());
    let refused_report = fg
        .access_report(pb::AccessReportRequest {
            pupil_id: bad_bsn.clone(),
            pupil_pseudonym: String::new(),
        })
        .await
        .expect_err("a BSN failing the 11-proef");
    assert_eq!(refused_report.code(), tonic::Code::InvalidArgument);
    assert!(!refused_report.message().contains(&bad_bsn));
    let len = fg_entries(lp, Default::default()).await.len() as u64;
    wait_cosigned(lp, "swv-vo", len).await;

    let lp_dir = fed.take("leerplicht").stop().await;
    let swv_dir = fed.take("swv-vo").stop().await;
    let seen = pseudonym_of(&swv_records[0].pupil_id);
    for (party, dir) in [("leerplicht", &lp_dir), ("swv-vo", &swv_dir)] {
        let data = dir.path().join("data");
        let audit = tree_keys_and_values(&data, "audit");
        assert!(
            audit
                .iter()
                .any(|(_, v)| contains_bytes(v, seen.as_bytes())),
            "{party}: the pseudonym is in no audit tree, so the scan sees nothing"
        );
        for (tree, value) in audit.iter().chain(&tree_keys_and_values(&data, "witness")) {
            for bsn in &all {
                assert!(
                    !contains_bytes(value, bsn.as_bytes()),
                    "{party}: a raw BSN in tree {tree}"
                );
            }
        }
        for (path, bytes) in read_tree(&data) {
            for bsn in &all {
                assert!(
                    !contains_bytes(&bytes, bsn.as_bytes()),
                    "{party}: a raw BSN in {}",
                    path.display()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Who may read the audit log
// ---------------------------------------------------------------------------------------------

/// Calls every Audit RPC and returns each one's status (OK or the error).
async fn every_audit_call(
    node: &TestNode,
    party: &str,
) -> Vec<(&'static str, Result<(), tonic::Status>)> {
    fn ok<T>(r: Result<T, tonic::Status>) -> Result<(), tonic::Status> {
        r.map(|_| ())
    }
    let mut c = node.audit_as(party).await;
    vec![
        (
            "ListEntries",
            ok(c.list_entries(pb::ListEntriesRequest::default()).await),
        ),
        (
            "StreamEntries",
            ok(c.stream_entries(pb::StreamEntriesRequest::default()).await),
        ),
        (
            "Export",
            ok(c.export(pb::ExportRequest {
                filter: None,
                format: pb::ExportFormat::Csv.into(),
            })
            .await),
        ),
        (
            "AccessReport",
            ok(c.access_report(pb::AccessReportRequest {
                pupil_id: Bsns::new(1).next_bsn(),
                pupil_pseudonym: String::new(),
            })
            .await),
        ),
        ("Verify", ok(c.verify(pb::VerifyRequest {}).await)),
        ("Prove", ok(c.prove(pb::ProveRequest { seq: 0 }).await)),
        (
            "ConsistencyProof",
            ok(c.consistency_proof(pb::ConsistencyProofRequest {
                old_size: 1,
                new_size: 0,
            })
            .await),
        ),
        (
            "LatestCheckpoint",
            ok(c.latest_checkpoint(pb::LatestCheckpointRequest {}).await),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_fg_may_use_the_audit_service_and_every_refusal_is_audited() {
    let node = TestNode::start_tuned("leerplicht", NodeOptions::default(), fast()).await;
    push_all(&node, resident_records("lp", &mut Bsns::new(0xf9), 2)).await;
    let outsiders = ["wij", "swv-vo", "leerplicht"];
    for party in outsiders {
        for (rpc, result) in every_audit_call(&node, party).await {
            let status = result.expect_err(&format!("{party} may not call {rpc}"));
            assert_eq!(
                status.code(),
                tonic::Code::PermissionDenied,
                "{party} {rpc}: {status:?}"
            );
            assert!(
                status.message().contains("not named in the policy as FG"),
                "{party} {rpc}: {}",
                status.message()
            );
        }
    }
    // The FG sees each refusal: one AUDIT_ACCESS DENY per call, by the caller's OIN.
    let calls = every_audit_call(&node, "fg").await.len();
    let denied = fg_entries(
        &node,
        pb::AuditFilter {
            decision: pb::AuditDecision::Deny.into(),
            ..Default::default()
        },
    )
    .await;
    for party in outsiders {
        let theirs: Vec<_> = denied
            .iter()
            .filter(|e| e.actor_oin == oin(party))
            .collect();
        assert_eq!(theirs.len(), calls, "{party}: {theirs:?}");
        assert!(theirs
            .iter()
            .all(|e| e.action() == pb::AuditAction::AuditAccess && e.reason.contains("not an FG")));
    }
    // The FG's own reads are audited as allowed.
    let fg_reads = fg_entries(
        &node,
        pb::AuditFilter {
            actor_oin: oin("fg"),
            ..Default::default()
        },
    )
    .await;
    assert!(fg_reads.len() >= 2);
    assert!(fg_reads
        .iter()
        .all(|e| e.action() == pb::AuditAction::AuditAccess
            && e.decision() == pb::AuditDecision::Allow));
    // The FG of leerplicht is no FG of swv-vo.
    let swv = TestNode::start("swv-vo").await;
    for (rpc, result) in every_audit_call(&swv, "fg").await {
        let status = result.expect_err(&format!("fg may not call {rpc} at swv-vo"));
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{rpc}");
    }
}

// ---------------------------------------------------------------------------------------------
// The FG's services
// ---------------------------------------------------------------------------------------------

async fn list_page(node: &TestNode, after: Option<u64>, limit: u32) -> pb::ListEntriesResponse {
    node.audit_as("fg")
        .await
        .list_entries(pb::ListEntriesRequest {
            filter: None,
            after_seq: after.unwrap_or(0),
            first_page: after.is_none(),
            limit,
        })
        .await
        .expect("ListEntries")
        .into_inner()
}

async fn export(node: &TestNode, filter: pb::AuditFilter, format: pb::ExportFormat) -> String {
    let mut stream = node
        .audit_as("fg")
        .await
        .export(pb::ExportRequest {
            filter: Some(filter),
            format: format.into(),
        })
        .await
        .expect("Export")
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        bytes.extend(chunk.data);
    }
    String::from_utf8(bytes).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fg_filters_exports_reports_and_proves() {
    let fed = Federation::start_tuned(&PARTIES, Some(policy_path()), Vec::new(), fast()).await;
    let (lp, swv) = (fed.node("leerplicht"), fed.node("swv-vo"));
    let mut bsns = Bsns::new(0xf6);
    let swv_records = resident_records("swv", &mut bsns, 3);
    let elsewhere = bsns.next_bsn();
    push_all(
        swv,
        [
            swv_records.clone(),
            vec![pb::SignalRecord {
                residence_municipality: "GM0034".into(),
                ..good_record("swv-elsewhere", &elsewhere)
            }],
        ]
        .concat(),
    )
    .await;
    push_all(lp, resident_records("lp", &mut bsns, 2)).await;
    let pupil = pseudonym_of(&swv_records[0].pupil_id);
    let trace = trace_id(0xf6, 1);
    let asked = lp
        .federation_as("leerplicht")
        .await
        .query_peers(traced(
            pb::QueryPeersRequest {
                claim: Some(verzuimmelding_claim()),
                filter: None,
                timeout_ms: 5000,
            },
            &trace,
        ))
        .await
        .expect("FederationService/QueryPeers")
        .into_inner();
    assert_eq!(
        answer_of(&asked, "swv-vo").map(|a| a.signals.len()),
        Some(3)
    );
    let case = swv
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "passend-aanbod".into(),
            pupil_pseudonyms: vec![pupil.clone()],
            participant_oins: vec![oin("leerplicht"), oin("wij")],
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("OpenCase")
        .into_inner()
        .case
        .expect("a case");
    // A refusal to find with the decision filter.
    let _ = lp.audit_as("wij").await.verify(pb::VerifyRequest {}).await;
    let start = chrono::Utc::now();

    // Filters: every listed entry matches, and each finds something.
    let by_pupil = fg_entries(
        lp,
        pb::AuditFilter {
            pupil_pseudonym: pupil.clone(),
            ..Default::default()
        },
    )
    .await;
    let actions: BTreeSet<i32> = by_pupil.iter().map(|e| e.action).collect();
    assert!(
        actions.contains(&pb::AuditAction::Receive.into()),
        "{by_pupil:?}"
    );
    assert!(
        actions.contains(&pb::AuditAction::ShareCase.into()),
        "{by_pupil:?}"
    );
    assert!(by_pupil.iter().all(|e| e.pupil_pseudonyms.contains(&pupil)));
    type Check<'a> = (pb::AuditFilter, Box<dyn Fn(&pb::AuditEntry) -> bool + 'a>);
    let checks: Vec<Check<'_>> = vec![
        (
            pb::AuditFilter {
                actor_oin: oin("swv-vo"),
                ..Default::default()
            },
            Box::new(|e| e.actor_oin == oin("swv-vo")),
        ),
        (
            pb::AuditFilter {
                case_id: case.case_id.clone(),
                ..Default::default()
            },
            Box::new(|e| e.case_id == case.case_id),
        ),
        (
            pb::AuditFilter {
                purpose: "verzuimaanpak".into(),
                ..Default::default()
            },
            Box::new(|e| e.purpose == "verzuimaanpak"),
        ),
        (
            pb::AuditFilter {
                decision: pb::AuditDecision::Deny.into(),
                ..Default::default()
            },
            Box::new(|e| e.decision() == pb::AuditDecision::Deny),
        ),
        (
            pb::AuditFilter {
                from: start.to_rfc3339(),
                ..Default::default()
            },
            // The listed time has whole seconds.
            Box::new(move |e| {
                chrono::DateTime::parse_from_rfc3339(&e.time).unwrap()
                    >= chrono::SubsecRound::trunc_subsecs(start, 0)
            }),
        ),
    ];
    for (filter, matches) in checks {
        let found = fg_entries(lp, filter.clone()).await;
        assert!(!found.is_empty(), "{filter:?} found nothing");
        assert!(found.iter().all(&matches), "{filter:?}: {found:?}");
    }
    let tomorrow = fg_entries(
        lp,
        pb::AuditFilter {
            from: date_from_today(1),
            ..Default::default()
        },
    )
    .await;
    assert!(tomorrow.is_empty());

    // Pages: in order, without gaps or repeats, `more` until the end.
    let first = list_page(lp, None, 3).await;
    assert!(first.more && first.entries.len() == 3);
    let next = list_page(lp, Some(first.entries[2].seq), 3).await;
    let seqs: Vec<u64> = first
        .entries
        .iter()
        .chain(&next.entries)
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (0..6).collect::<Vec<u64>>());

    // Export: JSON lines and CSV of the same entries.
    let filter = pb::AuditFilter {
        purpose: "verzuimaanpak".into(),
        ..Default::default()
    };
    let jsonl = export(lp, filter.clone(), pb::ExportFormat::JsonLines).await;
    let json: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let csv_text = export(lp, filter, pb::ExportFormat::Csv).await;
    let mut csv = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = csv.headers().expect("a header").clone();
    assert_eq!(headers.len(), 21);
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("a row")).collect();
    assert_eq!(rows.len(), json.len());
    assert!(json.len() >= 2);
    for (row, j) in rows.iter().zip(&json) {
        assert_eq!(row[col("seq")], j["seq"].to_string());
        assert_eq!(row[col("trace_id")], *j["trace_id"].as_str().unwrap());
        assert_eq!(row[col("purpose")], *"verzuimaanpak");
    }
    assert!(rows.iter().any(|r| &r[col("trace_id")] == trace.as_str()
        && r[col("action")] == *"RECEIVE"
        && r[col("pupil_pseudonyms")].contains(&pupil)));

    // The access report by BSN: every receipt and share about the pupil, none about others.
    let mut fg = lp.audit_as("fg").await;
    let report = fg
        .access_report(pb::AccessReportRequest {
            pupil_id: swv_records[0].pupil_id.clone(),
            pupil_pseudonym: String::new(),
        })
        .await
        .expect("AccessReport")
        .into_inner();
    assert_eq!(report.pupil_pseudonym, pupil);
    // The report lists what was listed for the pupil before, plus the FG's own lookup of this
    // pupil (an AUDIT_ACCESS entry naming the pseudonym, written before the report is read).
    let reported: BTreeSet<u64> = report
        .entries
        .iter()
        .filter(|e| e.action() != pb::AuditAction::AuditAccess)
        .map(|e| e.seq)
        .collect();
    let listed: BTreeSet<u64> = by_pupil
        .iter()
        .filter(|e| e.action() != pb::AuditAction::AuditAccess)
        .map(|e| e.seq)
        .collect();
    assert_eq!(reported, listed);
    assert!(report.entries.iter().any(
        |e| e.action() == pb::AuditAction::AuditAccess && e.pupil_pseudonyms == [pupil.clone()]
    ));
    let nobody = fg
        .access_report(pb::AccessReportRequest {
            pupil_id: elsewhere,
            pupil_pseudonym: String::new(),
        })
        .await
        .expect("AccessReport")
        .into_inner();
    assert!(
        nobody
            .entries
            .iter()
            .all(|e| e.action() == pb::AuditAction::AuditAccess),
        "a non-resident was never disclosed to leerplicht (only the FG's own lookup is listed)"
    );

    // An inclusion proof from `pactgate audit prove` that checks against the cosigned root, with
    // the entry exactly as exported (JSON lines are the canonical bytes).
    let cp = wait_cosigned(lp, "swv-vo", 10).await;
    let seq = json[0]["seq"].as_u64().unwrap();
    let (cert, key, ca) = cert_paths("fg");
    let output = run_within(
        pactgate_bin()
            .args(["audit", "prove", "--seq", &seq.to_string(), "--node"])
            .arg(lp.addr().to_string())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--ca")
            .arg(ca),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let proof: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let b64 = |v: &serde_json::Value| -> [u8; 32] {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let size = proof["tree_size"].as_u64().unwrap();
    assert!(size >= cp.size);
    let root = b64(&proof["root_hash"]);
    let note = proof["checkpoint_note"].as_str().unwrap();
    let body = pactgate::audit::body_of(note).expect("a checkpoint note");
    assert_eq!(
        (body.origin, body.size, body.root),
        (origin_of("leerplicht"), size, root)
    );
    let path: Vec<[u8; 32]> = proof["path"].as_array().unwrap().iter().map(b64).collect();
    let line = jsonl.lines().next().unwrap().as_bytes();
    assert_eq!(pactgate::audit::leaf_hash(line), b64(&proof["leaf_hash"]));
    pactgate::audit::verify_inclusion(line, seq, size, &root, &path).expect("the proof checks");
    assert!(pactgate::audit::verify_inclusion(line, seq + 1, size, &root, &path).is_err());
    let beyond = fg
        .prove(pb::ProveRequest { seq: 1 << 40 })
        .await
        .expect_err("beyond");
    assert_eq!(beyond.code(), tonic::Code::OutOfRange);
}

/// Leerplicht's system asks every peer under the verzuimmelding flow, in the trace `trace`.
async fn verzuimmelding_traced(lp: &TestNode, trace: &str) -> pb::QueryPeersResponse {
    lp.federation_as("leerplicht")
        .await
        .query_peers(traced(
            pb::QueryPeersRequest {
                claim: Some(verzuimmelding_claim()),
                filter: None,
                timeout_ms: 5000,
            },
            trace,
        ))
        .await
        .expect("FederationService/QueryPeers")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_querys_trace_id_is_in_both_nodes_logs() {
    let mut fed = Federation::start_tuned(&PARTIES, Some(policy_path()), Vec::new(), fast()).await;
    push_all(
        fed.node("swv-vo"),
        resident_records("swv", &mut Bsns::new(0x7ace), 2),
    )
    .await;
    let trace = trace_id(0x7ace, 1);
    let lp = fed.node("leerplicht");
    verzuimmelding_traced(lp, &trace).await;
    let asking: Vec<pb::AuditEntry> = fg_entries(lp, Default::default())
        .await
        .into_iter()
        .filter(|e| e.trace_id == trace)
        .collect();
    let actions: BTreeSet<i32> = asking.iter().map(|e| e.action).collect();
    // The caller's span is stored as the entry's parent.
    let federated_query = asking
        .iter()
        .find(|e| e.action == i32::from(pb::AuditAction::FederatedQuery))
        .expect("the federated query's entry");
    assert_eq!(federated_query.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(
        actions,
        BTreeSet::from([
            i32::from(pb::AuditAction::FederatedQuery),
            i32::from(pb::AuditAction::Receive)
        ]),
        "{asking:?}"
    );
    let dir = fed.take("swv-vo").stop().await;
    let answering: Vec<Entry> = stored_entries(&dir.path().join("data"), "swv-vo")
        .into_iter()
        .filter(|e| e.trace_id == trace)
        .collect();
    assert_eq!(answering.len(), 1, "{answering:?}");
    let disclosed = &answering[0];
    assert_eq!(disclosed.action, Action::Disclose);
    assert_eq!(disclosed.actor_oin, oin("leerplicht"));
    assert_eq!(disclosed.count, 2);
    // Each hop has a span of its own under the caller's.
    let spans: BTreeSet<&str> = asking
        .iter()
        .map(|e| e.span_id.as_str())
        .chain([disclosed.span_id.as_str()])
        .collect();
    assert!(!spans.contains("00f067aa0ba902b7"));
    assert!(asking.iter().all(|e| e.span_id != disclosed.span_id));
}

// ---------------------------------------------------------------------------------------------
// The log as Logboek Dataverwerkingen records
// ---------------------------------------------------------------------------------------------

/// The pinned LDV 1.0.0 record definition (tests/fixtures/ldv).
fn ldv_definition() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldv/record-1.0.0.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("JSON")
}

fn is_lower_hex(s: &str, bytes: u64) -> bool {
    s.len() as u64 == 2 * bytes && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_uri(s: &str) -> bool {
    s.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.contains(char::is_whitespace)
    })
}

/// Checks one exported record against the definition, field by field; returns its problems.
fn ldv_problems(record: &serde_json::Value, definition: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = record.as_object() else {
        return vec!["not an object".into()];
    };
    let fields = definition["fields"].as_array().expect("fields");
    for key in object.keys() {
        if !fields.iter().any(|f| f["name"] == key.as_str()) {
            problems.push(format!("{key}: not a field of an LDV record"));
        }
    }
    for field in fields {
        let name = field["name"].as_str().expect("a name");
        let Some(value) = object.get(name) else {
            if field["required"] == true {
                problems.push(format!("{name}: required, missing"));
            }
            continue;
        };
        let ok = match field["type"].as_str().expect("a type") {
            "bytes" => value
                .as_str()
                .is_some_and(|s| is_lower_hex(s, field["bytes"].as_u64().expect("bytes"))),
            "string" => value.as_str().is_some_and(|s| !s.is_empty()),
            "enum" => field["values"]
                .as_array()
                .expect("values")
                .iter()
                .any(|v| v == value),
            "timestamp" => value
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            "object" => value.as_object().is_some_and(|o| {
                field["fields"]
                    .as_array()
                    .is_none_or(|allowed| o.keys().all(|k| allowed.iter().any(|a| a == k.as_str())))
            }),
            other => panic!("the fixture names an unknown type {other}"),
        };
        if !ok {
            problems.push(format!("{name}: {value} is not a valid {}", field["type"]));
        }
    }
    let attributes = record["attributes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let prefix = definition["fields"][8]["namespace_prefix"]
        .as_str()
        .expect("prefix");
    for key in attributes.keys() {
        if !key.starts_with(prefix) {
            problems.push(format!("attributes.{key}: outside the {prefix} namespace"));
        }
        if key.starts_with(definition["core_namespace"].as_str().expect("core"))
            && !definition["attributes"]
                .as_array()
                .expect("attributes")
                .iter()
                .any(|a| a["name"] == key.as_str())
        {
            problems.push(format!("attributes.{key}: not a dpl.core attribute"));
        }
    }
    let subject = attributes.contains_key("dpl.core.data_subject_id");
    for attribute in definition["attributes"].as_array().expect("attributes") {
        let name = attribute["name"].as_str().expect("a name");
        let required = match attribute["required"].as_str() {
            Some("with_personal_data") => true,
            Some("with_data_subject") => subject,
            _ => false,
        };
        match attributes.get(name) {
            None if required => problems.push(format!("attributes.{name}: required, missing")),
            None => {}
            Some(v) => {
                let ok = match attribute["type"].as_str().expect("a type") {
                    "uri" => v.as_str().is_some_and(is_uri),
                    _ => v.as_str().is_some_and(|s| !s.is_empty()),
                };
                if !ok {
                    problems.push(format!(
                        "attributes.{name}: {v} is not a valid {}",
                        attribute["type"]
                    ));
                }
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ldv_export_meets_the_ldv_record_definition_field_by_field() {
    let definition = ldv_definition();
    assert_eq!(
        definition["source"],
        "https://gitdocumentatie.logius.nl/publicatie/logboek/dataverwerkingen/1.0.0"
    );
    let fed = Federation::start_tuned(&PARTIES, Some(policy_path()), Vec::new(), fast()).await;
    let (lp, swv) = (fed.node("leerplicht"), fed.node("swv-vo"));
    push_all(swv, resident_records("swv", &mut Bsns::new(0x1d5), 30)).await;
    let trace = trace_id(0x1d5, 1);
    verzuimmelding_traced(lp, &trace).await;
    wait_cosigned(lp, "swv-vo", 3).await;

    // (The FG of the shipped policy is leerplicht's.)
    let node = lp;
    {
        let entries: Vec<serde_json::Value> =
            export(node, Default::default(), pb::ExportFormat::JsonLines)
                .await
                .lines()
                .map(|l| serde_json::from_str(l).expect("an entry"))
                .collect();
        let records: Vec<serde_json::Value> =
            export(node, Default::default(), pb::ExportFormat::Ldv)
                .await
                .lines()
                .map(|l| serde_json::from_str(l).expect("a record"))
                .collect();
        for r in &records {
            let problems = ldv_problems(r, &definition);
            assert!(problems.is_empty(), "{}: {problems:?} in {r}", node.party);
        }
        // Each entry: its own record, then one child per pupil, under the entry's span.
        let mut rest = records.as_slice();
        // (The LDV export was audited after the JSON one: it has one entry more, at the end.)
        for e in &entries {
            let pupils = e["pupils"].as_array().expect("pupils");
            let (own, tail) = rest.split_first().expect("a record per entry");
            assert_eq!(own["span_id"], e["span_id"]);
            assert_eq!(own["trace_id"], e["trace_id"]);
            assert!(own["attributes"].get("dpl.core.data_subject_id").is_none());
            assert_eq!(own["attributes"]["dpl.pactgate.leaf_index"], e["seq"]);
            assert_eq!(own["attributes"]["dpl.pactgate.purpose"], e["purpose"]);
            assert_eq!(
                own["attributes"]["dpl.pactgate.legal_basis"],
                e["legal_basis"]
            );
            assert_eq!(own["attributes"]["dpl.pactgate.decision"], e["decision"]);
            if let Some(parent) = e.get("parent_span_id") {
                assert_eq!(&own["parent_span_id"], parent);
            }
            let (children, tail) = tail.split_at(pupils.len());
            let mut spans = BTreeSet::from([e["span_id"].as_str().unwrap().to_owned()]);
            for (child, pupil) in children.iter().zip(pupils) {
                assert_eq!(child["parent_span_id"], e["span_id"]);
                assert_eq!(child["trace_id"], e["trace_id"]);
                assert_eq!(&child["attributes"]["dpl.core.data_subject_id"], pupil);
                assert_eq!(
                    child["attributes"]["dpl.core.data_subject_id_type"],
                    "pseudonym"
                );
                assert!(spans.insert(child["span_id"].as_str().unwrap().to_owned()));
            }
            rest = tail;
        }
    }
    // The receipt of 30 pupils' signals: its record and 30 children.
    let records: Vec<serde_json::Value> = export(lp, Default::default(), pb::ExportFormat::Ldv)
        .await
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    let receipt = records
        .iter()
        .find(|r| {
            r["trace_id"] == trace.as_str() && r["attributes"]["dpl.pactgate.action"] == "receive"
        })
        .expect("the receipt's record");
    assert_eq!(receipt["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(receipt["attributes"]["dpl.pactgate.data_subjects"], 30);
    let children = records
        .iter()
        .filter(|r| r["parent_span_id"] == receipt["span_id"])
        .count();
    assert_eq!(children, 30);
    // Another organisation acting (the FG reading the log) is named as the foreign processor.
    let access = records
        .iter()
        .find(|r| r["attributes"]["dpl.pactgate.action"] == "audit_access")
        .expect("an FG access record");
    assert_eq!(
        access["attributes"]["dpl.core.foreign_operation.processor"],
        format!("urn:oin:{}", oin("fg"))
    );
}

// ---------------------------------------------------------------------------------------------
// Keys a third party can pin
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_vkey_prints_the_separate_keys_describe_node_publishes() {
    let node = TestNode::start("leerplicht").await;
    let described = node
        .exchange_as("swv-vo")
        .await
        .describe_node(pb::DescribeNodeRequest {})
        .await
        .expect("DescribeNode")
        .into_inner();
    let dir = node.stop().await;
    let data = dir.path().join("data");
    let (cert, _, _) = cert_paths("leerplicht");
    let published = [
        (None, &described.audit_log_verifier_key, 0x01),
        (Some("--witness"), &described.witness_verifier_key, 0x04),
    ];
    let mut public_keys = BTreeSet::new();
    for (flag, expected, key_type) in published {
        let mut cmd = pactgate_bin();
        cmd.args(["audit", "vkey", "--data-dir"])
            .arg(&data)
            .arg("--cert")
            .arg(&cert)
            .args(flag);
        let out = run_within(&mut cmd, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            expected.as_str()
        );
        // name+keyhash+base64(type || Ed25519 public key)
        let parts: Vec<&str> = expected.splitn(3, '+').collect();
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(parts[2])
            .expect("base64");
        assert_eq!((parts[1].len(), raw.len(), raw[0]), (8, 33, key_type));
        public_keys.insert(raw[1..].to_vec());
    }
    assert_eq!(
        public_keys.len(),
        2,
        "the log and the witness sign with separate keys"
    );
    assert!(described
        .audit_log_verifier_key
        .starts_with(&format!("{}+", origin_of("leerplicht"))));
    assert!(described
        .witness_verifier_key
        .starts_with(&format!("{}+", witness_of("leerplicht"))));
}
