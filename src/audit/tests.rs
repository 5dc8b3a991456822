//! Tests of the log, the witness exchange and every tamper kind `verify` must catch.

use super::entry::tests::sample;
use super::*;

const OIN: &str = "00000001001234567000";

fn key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key")
}

fn db() -> sled::Db {
    sled::Config::new().temporary(true).open().expect("db")
}

struct Node {
    db: sled::Db,
    pkcs8: Vec<u8>,
    log: AuditLog,
}

impl Node {
    fn new() -> Node {
        let db = db();
        let pkcs8 = SigningKey::generate_pkcs8().expect("gen");
        let log =
            AuditLog::open(&db, OIN, SigningKey::from_pkcs8(&pkcs8).expect("key")).expect("open");
        Node { db, pkcs8, log }
    }

    fn fill(&self, n: u64) {
        for _ in 0..n {
            self.log.append(sample(self.log.len())).expect("append");
        }
    }

    fn fill_to(&self, size: u64) {
        while self.log.len() < size {
            self.log.append(sample(self.log.len())).expect("append");
        }
    }

    fn reopen(&mut self) {
        self.log = AuditLog::open(
            &self.db,
            OIN,
            SigningKey::from_pkcs8(&self.pkcs8).expect("key"),
        )
        .expect("reopen");
    }

    fn raw(&self, seq: u64) -> Vec<u8> {
        self.log.entry_bytes(seq).expect("read").expect("present")
    }

    fn put(&self, seq: u64, bytes: &[u8]) {
        self.log.tree.insert(entry_key(seq), bytes).expect("write");
    }
}

fn tamper(result: Result<VerifyReport, VerifyError>) -> Tamper {
    match result {
        Err(VerifyError::Tamper(t)) => t,
        other => panic!("expected tamper, got {other:?}"),
    }
}

fn exact(t: &Tamper) -> u64 {
    let range = t.first_bad.expect("a seq");
    assert!(range.is_exact(), "not exact: {t}");
    range.first
}

/// A node with checkpoints at 10, 20 and 30 and 35 entries.
fn checkpointed() -> Node {
    let node = Node::new();
    for size in [10, 20, 30] {
        node.fill_to(size);
        node.log.checkpoint().expect("checkpoint");
    }
    node.fill_to(35);
    node
}

#[test]
fn append_assigns_seq_time_and_node() {
    let node = Node::new();
    let a = node.log.append(sample(0)).expect("a");
    let b = node.log.append_durable(sample(1)).expect("b");
    assert_eq!((a.seq, b.seq), (0, 1));
    assert!(b.time >= a.time);
    assert_eq!(a.node_oin, OIN);
    assert_eq!(node.log.get(1).expect("get"), Some(b));
    assert_eq!(node.log.len(), 2);
    let mut bad = sample(2);
    bad.trace_id = "xyz".into();
    assert!(matches!(
        node.log.append(bad),
        Err(AuditError::Entry(EntryError::TraceId))
    ));
    assert_eq!(node.log.len(), 2);
}

#[test]
fn id_like_numbers_in_caller_text_never_reach_the_log() {
    let node = Node::new();
    let mut e = sample(0);
    e.actor = "mentor 111222333".into();
    e.purpose = "111222333".into();
    e.reason = "purpose '111222333' is not a purpose of flow x".into();
    e.case_id = "case 111222333".into();
    let stored = node.log.append(e).expect("append");
    let bytes = node
        .log
        .entry_bytes(stored.seq)
        .expect("read")
        .expect("present");
    assert!(!String::from_utf8_lossy(&bytes).contains("111222333"));
    assert_eq!(stored.actor, "mentor <withheld>");
    assert_eq!(stored.case_id, "<malformed>");
}

#[test]
fn a_failed_write_of_append_with_leaves_the_log_as_it_was() {
    let node = Node::new();
    node.fill(3);
    let root = node.log.root(3).expect("root");
    let failed = node
        .log
        .append_with(sample(3), |_, _| Err(AuditError::Damaged("injected")));
    assert!(matches!(failed, Err(AuditError::Damaged("injected"))));
    assert_eq!(node.log.len(), 3);
    assert!(node.log.get(3).expect("read").is_none());
    // The next entry takes seq 3 and the tree stays a valid extension of the old one.
    let entry = node
        .log
        .append_with(sample(3), |tree, batch| {
            Ok::<_, AuditError>(tree.apply_batch(batch)?)
        })
        .expect("append");
    assert_eq!(entry.seq, 3);
    let proof = node.log.consistency_proof(3, 4).expect("proof");
    verify_consistency(3, 4, &root, &node.log.root(4).expect("root"), &proof).expect("consistent");
    verify(&node.log, &[]).expect("verifies");
}

#[test]
fn root_and_proofs_survive_reopen() {
    let mut node = Node::new();
    node.fill(13);
    let root13 = node.log.root(13).expect("root");
    node.reopen();
    assert_eq!(node.log.len(), 13);
    assert_eq!(node.log.root(13).expect("root"), root13);
    node.fill(20);
    let n = node.log.len();
    let root = node.log.root(n).expect("root");
    for seq in [0, 7, 12, 32] {
        let proof = node.log.inclusion_proof(seq, n).expect("proof");
        verify_inclusion(&node.raw(seq), seq, n, &root, &proof).expect("inclusion");
    }
    let proof = node.log.consistency_proof(13, n).expect("proof");
    verify_consistency(13, n, &root13, &root, &proof).expect("consistency");
    assert!(node.log.root(n + 1).is_err());
}

#[test]
fn filter_and_range() {
    let node = Node::new();
    node.fill(30);
    let all: Vec<Entry> = node.log.range(5, 9).collect::<Result<_>>().expect("range");
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![5, 6, 7, 8]
    );
    let f = Filter {
        pupil: Some("p3".into()),
        decision: Some(Decision::Allow),
        ..Filter::default()
    };
    let hits: Vec<Entry> = node
        .log
        .entries_matching(&f)
        .collect::<Result<_>>()
        .expect("filter");
    assert!(!hits.is_empty());
    assert!(hits
        .iter()
        .all(|e| e.pupils.contains(&"p3".to_string()) && e.decision == Decision::Allow));
    let want = (0..30u64).filter(|i| i % 7 == 3 && i % 3 != 0).count();
    assert_eq!(hits.len(), want);
    let later = Filter {
        since: Some(Utc::now() + chrono::Duration::hours(1)),
        ..Filter::default()
    };
    assert_eq!(node.log.entries_matching(&later).count(), 0);
}

#[test]
fn concurrent_appends_are_contiguous_and_verify() {
    let node = Node::new();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = &node.log;
            s.spawn(move || {
                for i in 0..50 {
                    log.append(sample(t * 100 + i)).expect("append");
                }
            });
        }
    });
    node.log.checkpoint().expect("checkpoint");
    let report = verify(&node.log, &[]).expect("verifies");
    assert_eq!(report.entries, 200);
    assert_eq!(report.root, node.log.root(200).expect("root"));
}

#[test]
fn intact_log_verifies() {
    let node = checkpointed();
    let report = verify(&node.log, &[]).expect("verifies");
    assert_eq!(report.entries, 35);
    assert_eq!(report.checkpoints_checked, 3);
    assert_eq!(report.attested_size, 30);
}

#[test]
fn flipped_byte_is_caught_at_its_seq() {
    let node = checkpointed();
    let bytes = String::from_utf8(node.raw(17))
        .expect("utf8")
        .replace("rule lp-1", "rule lp-2");
    node.put(17, bytes.as_bytes());
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(t.kind, TamperKind::Modified);
    assert_eq!(exact(&t), 17);
}

#[test]
fn flipped_byte_with_cache_updated_gives_the_checkpoint_range() {
    let node = checkpointed();
    let mut bytes = node.raw(17);
    let at = bytes.len() - 5;
    bytes[at] ^= 0x01;
    node.put(17, &bytes);
    node.log
        .tree
        .insert(
            node_key(NodeId {
                level: 0,
                index: 17,
            }),
            &leaf_hash(&bytes)[..],
        )
        .expect("cache");
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(t.kind, TamperKind::Modified);
    assert_eq!(
        t.first_bad,
        Some(SeqRange {
            first: 10,
            last: 19
        })
    );
}

#[test]
fn deleted_entry_is_caught_at_its_seq() {
    let node = checkpointed();
    node.log.tree.remove(entry_key(12)).expect("remove");
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(t.kind, TamperKind::Missing);
    assert_eq!(exact(&t), 12);
}

#[test]
fn swapped_entries_are_caught_at_the_first() {
    let node = checkpointed();
    let (a, b) = (node.raw(5), node.raw(9));
    node.put(5, &b);
    node.put(9, &a);
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(t.kind, TamperKind::Misplaced { found: 9 });
    assert_eq!(exact(&t), 5);
}

#[test]
fn swapped_entries_with_rewritten_seqs_are_caught_as_modified() {
    let node = checkpointed();
    let a = String::from_utf8(node.raw(5))
        .expect("utf8")
        .replacen("{\"seq\":5,", "{\"seq\":9,", 1);
    let b = String::from_utf8(node.raw(9))
        .expect("utf8")
        .replacen("{\"seq\":9,", "{\"seq\":5,", 1);
    node.put(5, b.as_bytes());
    node.put(9, a.as_bytes());
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(t.kind, TamperKind::Modified);
    assert_eq!(exact(&t), 5);
}

#[test]
fn truncation_is_caught_at_the_new_end() {
    let node = checkpointed();
    for seq in 25..35 {
        node.log.tree.remove(entry_key(seq)).expect("remove");
    }
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(
        t.kind,
        TamperKind::Truncated {
            size: 25,
            checkpoint_size: 30
        }
    );
    assert_eq!(exact(&t), 25);
}

#[test]
fn forged_checkpoint_is_caught() {
    let node = checkpointed();
    let note = node
        .log
        .checkpoints
        .get(20u64.to_be_bytes())
        .expect("get")
        .expect("present");
    let forged = String::from_utf8(note.to_vec())
        .expect("utf8")
        .replacen("\n20\n", "\n21\n", 1);
    node.log
        .checkpoints
        .insert(20u64.to_be_bytes(), forged.as_bytes())
        .expect("put");
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(t.kind, TamperKind::CheckpointSignature { size: 20 });
}

/// A witness configured for `node`'s log (its verifier key pinned).
fn witness_for(node: &Node, name: &str) -> Witness {
    let log_key = VerifierKey::parse(&node.log.verifier_key()).expect("log key");
    Witness::open(&db(), name, key())
        .expect("witness")
        .trusting(vec![log_key])
}

#[test]
fn a_peer_reads_what_the_witness_holds_only_of_a_log_it_is_configured_for() {
    let node = Node::new();
    let w = witness_for(&node, "w1");
    let grant = w
        .admit_peer(OIN)
        .expect("the witnessed log's node is admitted");
    assert_eq!(grant.origin(), node.log.origin());
    assert!(w.held_for(&grant).expect("read").is_none());
    witness_round(&node, &w);
    let held = w.held_for(&grant).expect("read").expect("held");
    assert_eq!(held.size, node.log.len());
    let stranger = w.admit_peer("00000009999999999000");
    assert!(
        matches!(stranger, Err(WitnessError::UnknownLog(_))),
        "{stranger:?}"
    );
}

/// An add-checkpoint request to `w`.
fn offer(
    w: &Witness,
    note: &str,
    proof: &[Hash],
    old_size: u64,
) -> Result<Cosignature, WitnessError> {
    let grant = w.admit(AddCheckpoint {
        old_size,
        proof: proof.to_vec(),
        note: note.to_owned(),
    })?;
    w.add_checkpoint(grant)
}

/// A peer witnessing `node`: checkpoint, prove from the witness's last size, cosign, store.
fn witness_round(node: &Node, w: &Witness) -> Cosignature {
    let cp = node.log.checkpoint().expect("checkpoint");
    let old = node.log.last_cosigned(w.name()).expect("last");
    let proof = node
        .log
        .consistency_proof(old, cp.checkpoint.size)
        .expect("proof");
    let cosig = offer(w, &cp.note, &proof, old).expect("cosign");
    node.log
        .add_cosignature(&w.verifier_key(), &cp, &cosig)
        .expect("store");
    cosig
}

/// What an attacker with the node key does: rewrite entries, rebuild the cache, re-sign every
/// checkpoint, and drop the cosignatures that no longer check.
fn rewrite(node: &mut Node, change: impl Fn(u64, Vec<u8>) -> Vec<u8>) {
    let n = node.log.len();
    let mut nodes = Vec::new();
    let mut frontier = merkle::Frontier::default();
    for seq in 0..n {
        let bytes = change(seq, node.raw(seq));
        node.put(seq, &bytes);
        frontier.push(leaf_hash(&bytes), |id, h| nodes.push((id, *h)));
    }
    for (id, h) in nodes {
        node.log.tree.insert(node_key(id), &h[..]).expect("node");
    }
    let sizes: Vec<u64> = node
        .log
        .checkpoints
        .iter()
        .keys()
        .map(|k| be_u64(&k.expect("key")).expect("size"))
        .collect();
    for size in sizes {
        let root = node.log.root(size).expect("root");
        let signed = Checkpoint {
            origin: node.log.origin.clone(),
            size,
            root,
        }
        .sign(&node.log.key, &node.log.origin);
        node.log
            .checkpoints
            .insert(size.to_be_bytes(), signed.note.as_bytes())
            .expect("resign");
    }
    node.log.cosignatures.clear().expect("clear");
    node.reopen();
}

#[test]
fn consistent_rewrite_is_caught_by_the_peer_between_its_checkpoints() {
    let mut node = Node::new();
    let w = witness_for(&node, "witness/wij");
    for size in [4, 8, 12, 16] {
        node.fill_to(size);
        witness_round(&node, &w);
    }
    node.fill_to(18);
    rewrite(&mut node, |seq, bytes| {
        if seq == 5 {
            String::from_utf8(bytes)
                .expect("utf8")
                .replace("rule lp-1", "rule lp-9")
                .into_bytes()
        } else {
            bytes
        }
    });
    // The node alone cannot tell.
    verify(&node.log, &[]).expect("own checkpoints were re-signed");
    let held = w.history(node.log.origin()).expect("history");
    let t = tamper(verify(&node.log, &held));
    assert!(
        matches!(
            t.kind,
            TamperKind::Rewritten {
                checkpoint_size: 8,
                ..
            }
        ),
        "{t}"
    );
    assert_eq!(t.first_bad, Some(SeqRange { first: 4, last: 7 }));
    // And the witness refuses to cosign the rewritten history.
    let cp = node.log.checkpoint().expect("checkpoint");
    let proof = node
        .log
        .consistency_proof(16, cp.checkpoint.size)
        .expect("proof");
    assert!(matches!(
        offer(&w, &cp.note, &proof, 16),
        Err(WitnessError::Inconsistent { .. })
    ));
}

#[test]
fn rewrite_that_forgot_the_cache_is_pinpointed() {
    let node = Node::new();
    let w = witness_for(&node, "witness/ggd");
    node.fill_to(10);
    witness_round(&node, &w);
    let bytes = String::from_utf8(node.raw(3))
        .expect("utf8")
        .replace("rule lp-1", "rule lp-7");
    node.put(3, bytes.as_bytes());
    // Re-sign the own checkpoint over the modified entries, leave the cache.
    let mut f = merkle::Frontier::default();
    for seq in 0..10 {
        f.push(leaf_hash(&node.raw(seq)), |_, _| {});
    }
    let signed = Checkpoint {
        origin: node.log.origin.clone(),
        size: 10,
        root: f.root(),
    }
    .sign(&node.log.key, &node.log.origin);
    node.log
        .checkpoints
        .insert(10u64.to_be_bytes(), signed.note.as_bytes())
        .expect("resign");
    node.log.cosignatures.clear().expect("clear");
    let held = w.history(node.log.origin()).expect("history");
    let t = tamper(verify(&node.log, &held));
    assert_eq!(t.kind, TamperKind::Modified);
    assert_eq!(exact(&t), 3);
}

#[test]
fn cosigned_checkpoints_are_trusted_with_configured_keys() {
    let node = Node::new();
    let w = witness_for(&node, "witness/swv");
    node.fill_to(6);
    witness_round(&node, &w);
    node.fill_to(9);
    let cosig = witness_round(&node, &w);
    assert_eq!(node.log.last_cosigned(w.name()).expect("last"), 9);
    let trusted = node
        .log
        .cosigned_checkpoints(&[&w.verifier_key()])
        .expect("cosigned");
    assert_eq!(
        trusted
            .iter()
            .map(|t| t.checkpoint.size)
            .collect::<Vec<_>>(),
        vec![6, 9]
    );
    let report = verify(&node.log, &trusted).expect("verifies");
    assert_eq!(
        (report.checkpoints_checked, report.cosignatures_checked),
        (2, 2)
    );
    let note = node.log.cosigned_note(9).expect("note").expect("present");
    assert!(note.ends_with(&cosig.line()));
    let other = witness_for(&node, "witness/swv");
    assert!(node
        .log
        .cosigned_checkpoints(&[&other.verifier_key()])
        .is_err());
}

#[test]
fn witness_refuses_what_does_not_extend() {
    let node = Node::new();
    let w = witness_for(&node, "witness/mbo");
    node.fill_to(8);
    let first = node.log.checkpoint().expect("checkpoint");
    // A first submission must give old size 0 (409 with the held size 0), with an empty proof.
    assert!(matches!(
        offer(&w, &first.note, &[], 4),
        Err(WitnessError::Conflict {
            held: 0,
            offered: 4
        })
    ));
    assert!(matches!(
        offer(&w, &first.note, &[[1; 32]], 0),
        Err(WitnessError::ProofNotEmpty)
    ));
    witness_round(&node, &w);
    node.fill_to(12);
    let cp = node.log.checkpoint().expect("checkpoint");
    let proof = node.log.consistency_proof(8, 12).expect("proof");

    let mut bad = proof.clone();
    bad[0][0] ^= 1;
    assert!(matches!(
        offer(&w, &cp.note, &bad, 8),
        Err(WitnessError::Inconsistent { .. })
    ));
    assert!(matches!(
        offer(&w, &cp.note, &proof, 4),
        Err(WitnessError::Conflict {
            held: 8,
            offered: 4
        })
    ));
    assert!(matches!(
        offer(&w, &cp.note, &[], 0),
        Err(WitnessError::Conflict {
            held: 8,
            offered: 0
        })
    ));
    assert!(matches!(
        offer(&w, &cp.note, &proof, 13),
        Err(WitnessError::OldSizeBeyond {
            old_size: 13,
            size: 12
        })
    ));

    let small = Checkpoint {
        origin: node.log.origin.clone(),
        size: 5,
        root: node.log.root(5).expect("root"),
    }
    .sign(&node.log.key, &node.log.origin);
    assert!(matches!(
        offer(&w, &small.note, &[], 8),
        Err(WitnessError::OldSizeBeyond {
            old_size: 8,
            size: 5
        })
    ));

    let fork = Checkpoint {
        origin: node.log.origin.clone(),
        size: 8,
        root: [9; 32],
    }
    .sign(&node.log.key, &node.log.origin);
    assert!(matches!(
        offer(&w, &fork.note, &[], 8),
        Err(WitnessError::Fork { size: 8 })
    ));

    let impostor = key();
    let forged = cp.checkpoint.clone().sign(&impostor, &node.log.origin);
    assert!(matches!(
        offer(&w, &forged.note, &proof, 8),
        Err(WitnessError::Signature(_))
    ));
    let other_log = Checkpoint {
        origin: "pactgate/other".into(),
        ..cp.checkpoint.clone()
    }
    .sign(&impostor, "pactgate/other");
    assert!(matches!(
        offer(&w, &other_log.note, &proof, 8),
        Err(WitnessError::UnknownLog(_))
    ));
    for (e, status) in [
        (offer(&w, &forged.note, &proof, 8), 403),
        (offer(&w, &other_log.note, &proof, 8), 404),
        (offer(&w, &cp.note, &proof, 4), 409),
        (offer(&w, &cp.note, &bad, 8), 422),
        (offer(&w, &cp.note, &proof, 13), 400),
    ] {
        assert_eq!(e.expect_err("refused").http_status(), status);
    }

    // Nothing above changed what the witness holds; the honest proof is still accepted.
    assert_eq!(
        w.latest(node.log.origin())
            .expect("latest")
            .map(|t| t.checkpoint.size),
        Some(8)
    );
    offer(&w, &cp.note, &proof, 8).expect("honest");
    offer(&w, &cp.note, &[], 12).expect("same checkpoint again");
    assert_eq!(w.history(node.log.origin()).expect("history").len(), 2);
}

#[test]
fn cosignature_covers_extension_lines() {
    let node = Node::new();
    let w = witness_for(&node, "witness/ext");
    node.fill_to(3);
    let body = Checkpoint {
        origin: node.log.origin.clone(),
        size: 3,
        root: node.log.root(3).expect("root"),
    }
    .body();
    let text = format!("{body}extension line one\nanother\n");
    let resigned = node.log.key.sign_note(&text, &node.log.origin);
    let cosig = offer(&w, &resigned, &[], 0).expect("cosigned");
    let wkey = VerifierKey::parse(&w.verifier_key()).expect("wkey");
    cosig
        .verify_text(&text, &wkey)
        .expect("covers the whole text");
    let plain = Checkpoint::parse_body(&text).expect("body");
    assert!(cosig.verify(&plain, &wkey).is_err());
}

#[test]
fn damaged_cache_refuses_appends_but_verifies() {
    let mut node = checkpointed();
    node.log
        .tree
        .remove(node_key(NodeId { level: 5, index: 0 }))
        .expect("remove");
    node.reopen();
    assert_eq!(node.log.len(), 35);
    assert!(matches!(
        node.log.append(sample(35)),
        Err(AuditError::Damaged(_))
    ));
    assert_eq!(
        verify(&node.log, &[]).expect("entries are intact").entries,
        35
    );
}

#[test]
fn bad_stored_cosignature_is_caught() {
    let node = Node::new();
    let w = witness_for(&node, "witness/rmc");
    node.fill_to(5);
    witness_round(&node, &w);
    let (k, v) = node
        .log
        .cosignatures
        .iter()
        .next()
        .expect("one")
        .expect("kv");
    let mut record: CosignatureRecord = serde_json::from_slice(&v).expect("record");
    record.note = record.note.replacen("\n5\n", "\n4\n", 1);
    node.log
        .cosignatures
        .insert(k, serde_json::to_vec(&record).expect("json"))
        .expect("put");
    let t = tamper(verify(&node.log, &[]));
    assert_eq!(
        t.kind,
        TamperKind::Cosignature {
            witness: "witness/rmc".into(),
            size: 5
        }
    );
}
