//! The C2SP witness protocol against code nobody on this project wrote. A log client written here
//! from c2sp.org/tlog-witness, with the `signed_note` and `tlog_tiles` crates and ring's Ed25519,
//! drives a pactgate node's witness over HTTP through every refusal case of the spec; a witness
//! written the same way cosigns a pactgate node's checkpoints; and a third party holding only the
//! published verifier keys checks a checkpoint, an inclusion proof and a consistency proof. No
//! pactgate code builds or checks a note, a proof or a cosignature in this file: pactgate only
//! runs the nodes (and the harness provisions their keys).

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use pactgate::pb;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tlog_tiles::{HashReader, TreeProof};

// ---------------------------------------------------------------------------------------------
// The spec side: a log, its notes, the add-checkpoint body, a cosignature/v1 verifier
// ---------------------------------------------------------------------------------------------

/// A tiny in-memory log (tlog_tiles' stored-hash layout) with an Ed25519 note key.
struct SpecLog {
    origin: String,
    signer: StandardSigner,
    vkey: String,
    stored: Vec<tlog_tiles::Hash>,
    size: u64,
}

struct Stored<'a>(&'a [tlog_tiles::Hash]);

impl HashReader for Stored<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(indexes.iter().map(|i| self.0[*i as usize]).collect())
    }
}

/// A fresh Ed25519 seed and its public key.
fn new_key() -> ([u8; 32], Vec<u8>) {
    let mut seed = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut seed);
    let public = Ed25519KeyPair::from_seed_unchecked(&seed)
        .expect("a key")
        .public_key()
        .as_ref()
        .to_vec();
    (seed, public)
}

/// `name+<hex key id>+<base64(alg || public key)>`, key id per c2sp.org/signed-note.
fn verifier_key(name: &str, alg: u8, public: &[u8]) -> String {
    let encoded = [&[alg][..], public].concat();
    format!(
        "{name}+{:08x}+{}",
        signed_note::key_id(name, &encoded),
        B64.encode(&encoded)
    )
}

impl SpecLog {
    fn new(origin: &str) -> SpecLog {
        let (seed, public) = new_key();
        let id = signed_note::key_id(origin, &[&[1u8][..], public.as_slice()].concat());
        let skey = format!(
            "PRIVATE+KEY+{origin}+{id:08x}+{}",
            B64.encode([&[1u8][..], seed.as_slice()].concat())
        );
        SpecLog {
            origin: origin.to_owned(),
            signer: StandardSigner::new(&skey).expect("a signer key"),
            vkey: verifier_key(origin, 1, &public),
            stored: Vec::new(),
            size: 0,
        }
    }

    fn grow_to(&mut self, size: u64) {
        while self.size < size {
            let data = format!("record {}", self.size);
            let hashes =
                tlog_tiles::stored_hashes(self.size, data.as_bytes(), &Stored(&self.stored))
                    .expect("stored hashes");
            self.stored.extend(hashes);
            self.size += 1;
        }
    }

    fn root(&self, size: u64) -> tlog_tiles::Hash {
        tlog_tiles::tree_hash(size, &Stored(&self.stored)).expect("tree hash")
    }

    fn proof(&self, old: u64, new: u64) -> TreeProof {
        tlog_tiles::prove_tree(new, old, &Stored(&self.stored)).expect("tree proof")
    }

    /// The checkpoint text of `size` with `root` and extension lines.
    fn text(&self, size: u64, root: tlog_tiles::Hash, extension: &str) -> Vec<u8> {
        tlog_tiles::Checkpoint::new(&self.origin, size, root, extension)
            .expect("a checkpoint")
            .to_bytes()
    }

    /// The signed note of the checkpoint at `size`, with extension lines.
    fn note(&self, size: u64, extension: &str) -> String {
        sign(&self.text(size, self.root(size), extension), &self.signer)
    }
}

fn sign(text: &[u8], signer: &StandardSigner) -> String {
    let mut note = Note::new(text, &[]).expect("a note");
    let signer: &dyn signed_note::Signer = signer;
    note.add_sigs(&[signer]).expect("signed");
    String::from_utf8(note.to_bytes()).expect("utf8")
}

/// An add-checkpoint request body: `old N`, proof lines, an empty line, the checkpoint.
fn body(old: u64, proof: &[tlog_tiles::Hash], note: &str) -> String {
    let mut out = format!("old {old}\n");
    for h in proof {
        out.push_str(&B64.encode(h.0));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(note);
    out
}

/// A witness's cosignature/v1 verifier (c2sp.org/tlog-cosignature): the signature is a big-endian
/// timestamp and an Ed25519 signature over "cosignature/v1\ntime <t>\n" and the note text.
struct CosignatureV1 {
    name: String,
    id: u32,
    public: Vec<u8>,
}

impl CosignatureV1 {
    fn parse(vkey: &str) -> CosignatureV1 {
        let mut parts = vkey.splitn(3, '+');
        let (name, id, key) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let key = B64.decode(key).expect("base64 key");
        assert_eq!(key.len(), 33);
        assert_eq!(key[0], 0x04, "a cosignature/v1 key");
        let id = u32::from_str_radix(id, 16).expect("hex id");
        assert_eq!(id, signed_note::key_id(name, &key), "the key id");
        CosignatureV1 {
            name: name.to_owned(),
            id,
            public: key[1..].to_vec(),
        }
    }
}

impl signed_note::Verifier for CosignatureV1 {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 8 + 64 {
            return false;
        }
        let time = u64::from_be_bytes(sig[..8].try_into().unwrap());
        let mut signed = format!("cosignature/v1\ntime {time}\n").into_bytes();
        signed.extend_from_slice(msg);
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(&signed, &sig[8..])
            .is_ok()
    }
}

/// Whether `cosignatures` (signature lines) on `note` verify under the witness key, checked by
/// `signed_note` with only that key known.
fn cosigned(note: &str, cosignatures: &str, witness_vkey: &str) -> bool {
    let all = format!("{note}{cosignatures}");
    let Ok(parsed) = Note::from_bytes(all.as_bytes()) else {
        return false;
    };
    let known = VerifierList::new(vec![
        Box::new(CosignatureV1::parse(witness_vkey)) as Box<dyn signed_note::Verifier>
    ]);
    parsed.verify(&known).is_ok()
}

// ---------------------------------------------------------------------------------------------
// A pactgate witness, driven through every case of the spec
// ---------------------------------------------------------------------------------------------

/// The witness key a node publishes, from DescribeNode.
async fn described(node: &TestNode) -> pb::DescribeNodeResponse {
    node.exchange_as("swv-po")
        .await
        .describe_node(pb::DescribeNodeRequest {})
        .await
        .expect("DescribeNode")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pactgate_witness_answers_every_case_as_the_spec_says() {
    let mut log = SpecLog::new("example.org/spec-log");
    let node = TestNode::start_witnessing(
        "swv-vo",
        WitnessExtras {
            logs: vec![log.vkey.clone()],
            witnesses: Vec::new(),
        },
    )
    .await;
    let witness_vkey = described(&node).await.witness_verifier_key;
    let post = |body: String| add_checkpoint(node.addr(), "swv-po", body);
    let ext = "example.org/extension-line one\nanother extension line\n";

    log.grow_to(5);
    let five = log.note(5, ext);
    // A first submission must say old size 0: 409 with the held size, 0.
    let (status, content_type, answer) = post(body(3, &log.proof(3, 5), &five)).await;
    assert_eq!(
        (status, content_type.as_str(), answer.as_str()),
        (409, "text/x.tlog.size", "0\n")
    );
    // Old size 0 takes an empty proof.
    let (status, _, _) = post(body(0, &log.proof(3, 5), &five)).await;
    assert_eq!(status, 422, "old size 0 with a proof");
    // Accepted; the cosignature covers the whole note text, extension lines included.
    let (status, content_type, answer) = post(body(0, &[], &five)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        answer.starts_with("\u{2014} ") && answer.ends_with('\n'),
        "{answer:?}"
    );
    assert!(
        cosigned(&five, &answer, &witness_vkey),
        "over the whole note"
    );
    let first_three = sign(&log.text(5, log.root(5), ""), &log.signer);
    assert!(
        !cosigned(&first_three, &answer, &witness_vkey),
        "the cosignature does not cover the checkpoint without its extension lines"
    );

    log.grow_to(8);
    let eight = log.note(8, ext);
    // A stale old size: 409 with the size held.
    let (status, content_type, answer) = post(body(3, &log.proof(3, 8), &eight)).await;
    assert_eq!(
        (status, content_type.as_str(), answer.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );
    let (status, _, answer) = post(body(0, &[], &eight)).await;
    assert_eq!(
        (status, answer.as_str()),
        (409, "5\n"),
        "old 0 once a size is held"
    );
    // A proof that does not verify: 422.
    let mut bad = log.proof(5, 8);
    bad[0].0[0] ^= 1;
    let (status, _, _) = post(body(5, &bad, &eight)).await;
    assert_eq!(status, 422, "a bad proof");
    // Old size beyond the checkpoint: 400; a body off the grammar: 400.
    let (status, _, _) = post(body(9, &[], &eight)).await;
    assert_eq!(status, 400, "old size beyond the checkpoint");
    for malformed in [
        eight.clone(),
        format!("old 05\n\n{eight}"),
        format!("old 5\nnot-base64!\n\n{eight}"),
        format!("old 5\n\n{}", eight.replacen("\n8\n", "\neight\n", 1)),
        format!(
            "old 5\n{}\n{eight}",
            (0..64)
                .map(|_| format!("{}\n", B64.encode([0u8; 32])))
                .collect::<String>()
        ),
    ] {
        let (status, _, _) = post(malformed.clone()).await;
        assert_eq!(status, 400, "{malformed:?}");
    }
    // An unknown origin: 404; the known origin under another key: 403.
    let stranger = SpecLog::new("example.org/unknown-log");
    let (status, _, _) = post(body(0, &[], &stranger.note(0, ""))).await;
    assert_eq!(status, 404, "unknown log");
    let impostor = SpecLog::new("example.org/spec-log");
    let forged = sign(&log.text(8, log.root(8), ext), &impostor.signer);
    let (status, _, _) = post(body(5, &log.proof(5, 8), &forged)).await;
    assert_eq!(status, 403, "a signature by an unknown key");
    // The same size with another root: 409.
    let fork = sign(&log.text(5, log.root(4), ext), &log.signer);
    let (status, _, _) = post(body(5, &[], &fork)).await;
    assert_eq!(status, 409, "a fork at the held size");

    // None of that moved the witness: the true extension from 5 is cosigned, then re-offered.
    let (status, _, answer) = post(body(5, &log.proof(5, 8), &eight)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(cosigned(&eight, &answer, &witness_vkey));
    let (status, _, answer) = post(body(8, &[], &eight)).await;
    assert_eq!(status, 200, "the same checkpoint again: {answer}");
    let (status, _, answer) = post(body(5, &log.proof(5, 8), &eight)).await;
    assert_eq!((status, answer.as_str()), (409, "8\n"));
}

// ---------------------------------------------------------------------------------------------
// A witness written from the spec, cosigning a pactgate node's checkpoints
// ---------------------------------------------------------------------------------------------

/// What the spec witness keeps: the log key it trusts, the latest size and root it cosigned, and
/// the old sizes it was asked with.
#[derive(Default)]
struct SpecWitnessState {
    log_vkey: Option<String>,
    latest: Option<(u64, tlog_tiles::Hash)>,
    old_sizes: Vec<u64>,
}

struct SpecWitness {
    name: String,
    signer_seed: [u8; 32],
    vkey: String,
    state: Mutex<SpecWitnessState>,
}

fn reply(status: u16, content_type: &str, body: String) -> axum::response::Response {
    axum::response::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .expect("a response")
}

impl SpecWitness {
    fn new(name: &str) -> SpecWitness {
        let (seed, public) = new_key();
        SpecWitness {
            name: name.to_owned(),
            signer_seed: seed,
            vkey: verifier_key(name, 0x04, &public),
            state: Mutex::default(),
        }
    }

    /// c2sp.org/tlog-witness add-checkpoint, step by step.
    fn add_checkpoint(&self, request: &str) -> axum::response::Response {
        let plain = "text/plain";
        let Some((head, note)) = request.split_once("\n\n") else {
            return reply(400, plain, "no empty line\n".into());
        };
        let mut lines = head.split('\n');
        let Some(old) = lines.next().and_then(|l| l.strip_prefix("old ")) else {
            return reply(400, plain, "no old size\n".into());
        };
        let Ok(old) = old.parse::<u64>() else {
            return reply(400, plain, "bad old size\n".into());
        };
        let proof: Option<TreeProof> = lines
            .map(|l| {
                let raw = B64.decode(l).ok()?;
                Some(tlog_tiles::Hash(raw.try_into().ok()?))
            })
            .collect();
        let Some(proof) = proof else {
            return reply(400, plain, "bad proof line\n".into());
        };
        let mut state = self.state.lock().unwrap();
        let Some(log_vkey) = state.log_vkey.clone() else {
            return reply(404, plain, "unknown log\n".into());
        };
        let Ok(parsed) = Note::from_bytes(note.as_bytes()) else {
            return reply(400, plain, "bad note\n".into());
        };
        let known =
            VerifierList::new(vec![
                Box::new(StandardVerifier::new(&log_vkey).expect("the log key"))
                    as Box<dyn signed_note::Verifier>,
            ]);
        if parsed.verify(&known).is_err() {
            return reply(403, plain, "no trusted signature\n".into());
        }
        let Ok(checkpoint) = tlog_tiles::Checkpoint::from_bytes(parsed.text()) else {
            return reply(400, plain, "bad checkpoint\n".into());
        };
        let size = checkpoint.size();
        if old > size {
            return reply(400, plain, "old size beyond the checkpoint\n".into());
        }
        let (held, held_root) = state.latest.unwrap_or((0, tlog_tiles::EMPTY_HASH));
        if old != held {
            return reply(409, "text/x.tlog.size", format!("{held}\n"));
        }
        state.old_sizes.push(old);
        if old == size && *checkpoint.hash() != held_root && old != 0 {
            return reply(409, plain, "fork\n".into());
        }
        let consistent = match old {
            0 => proof.is_empty(),
            old if old == size => proof.is_empty(),
            old => tlog_tiles::check_tree(&proof, size, *checkpoint.hash(), old, held_root).is_ok(),
        };
        if !consistent {
            return reply(422, plain, "inconsistent\n".into());
        }
        state.latest = Some((size, *checkpoint.hash()));
        reply(200, plain, self.cosign(parsed.text()))
    }

    /// A cosignature/v1 line over the note text.
    fn cosign(&self, text: &[u8]) -> String {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut signed = format!("cosignature/v1\ntime {time}\n").into_bytes();
        signed.extend_from_slice(text);
        let pair = Ed25519KeyPair::from_seed_unchecked(&self.signer_seed).expect("a key");
        let public = pair.public_key().as_ref().to_vec();
        let id = signed_note::key_id(&self.name, &[&[0x04u8][..], public.as_slice()].concat());
        let mut sig = id.to_be_bytes().to_vec();
        sig.extend_from_slice(&time.to_be_bytes());
        sig.extend_from_slice(pair.sign(&signed).as_ref());
        format!("\u{2014} {} {}\n", self.name, B64.encode(sig))
    }
}

/// Serves the spec witness on a free port of 127.0.0.1 (plain HTTP, HTTP/1.1 and HTTP/2).
async fn serve_spec_witness(witness: Arc<SpecWitness>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/witness/add-checkpoint",
        axum::routing::post(move |body: String| {
            let witness = witness.clone();
            async move { witness.add_checkpoint(&body) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_written_from_the_spec_cosigns_a_pactgate_log() {
    let witness = Arc::new(SpecWitness::new("example.org/spec-witness"));
    let addr = serve_spec_witness(witness.clone()).await;
    let node = TestNode::start_witnessing(
        "leerplicht",
        WitnessExtras {
            logs: Vec::new(),
            witnesses: vec![pactgate::config::WitnessConfig {
                url: format!("http://{addr}/witness/"),
                key: witness.vkey.clone(),
            }],
        },
    )
    .await;
    // The third party pins the log key the node publishes.
    let log_vkey = described(&node).await.audit_log_verifier_key;
    assert!(log_vkey.starts_with(&format!("{}+", origin_of("leerplicht"))));
    witness.state.lock().unwrap().log_vkey = Some(log_vkey.clone());

    // Every FG call is audited, so the log grows while we wait for two cosigned checkpoints.
    let mut fg = node.audit_as("fg").await;
    let started = Instant::now();
    let (first, cosigned_cp) = loop {
        let cp = fg
            .latest_checkpoint(pb::LatestCheckpointRequest {})
            .await
            .map(|r| r.into_inner().checkpoint.expect("a checkpoint"));
        if let Ok(cp) = cp {
            let by_spec = cp.witnesses.iter().any(|w| w == "example.org/spec-witness");
            let olds = witness.state.lock().unwrap().old_sizes.clone();
            if by_spec && olds.iter().any(|o| *o > 0) {
                break (olds[0], cp);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoint cosigned twice by the spec witness"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first, 0, "the node's first submission says old size 0");

    // The node kept the cosignature: its note and the cosignature lines verify with signed_note.
    let lines: String = cosigned_cp
        .cosignatures
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(cosigned(&cosigned_cp.note, &lines, &witness.vkey));
    let note = Note::from_bytes(cosigned_cp.note.as_bytes()).expect("a note");
    let log_key =
        VerifierList::new(vec![
            Box::new(StandardVerifier::new(&log_vkey).expect("the log key"))
                as Box<dyn signed_note::Verifier>,
        ]);
    note.verify(&log_key)
        .expect("signed by the published log key");
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(note.text()).expect("a checkpoint");
    assert_eq!(checkpoint.origin(), origin_of("leerplicht"));
    assert_eq!(checkpoint.size(), cosigned_cp.size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_checks_a_checkpoint_an_inclusion_and_a_consistency_proof() {
    let node = TestNode::start_witnessing("leerplicht", WitnessExtras::default()).await;
    let log_vkey = described(&node).await.audit_log_verifier_key;
    let mut fg = node.audit_as("fg").await;
    let latest = |size: u64| {
        let mut fg = fg.clone();
        async move {
            let started = Instant::now();
            loop {
                if let Ok(cp) = fg.latest_checkpoint(pb::LatestCheckpointRequest {}).await {
                    let cp = cp.into_inner().checkpoint.expect("a checkpoint");
                    if cp.size >= size {
                        return cp;
                    }
                }
                assert!(started.elapsed() < Duration::from_secs(30), "no checkpoint");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let old = latest(2).await;
    latest(old.size + 3).await;
    let verify_note =
        |note: &str| {
            let parsed = Note::from_bytes(note.as_bytes()).expect("a note");
            let known = VerifierList::new(vec![Box::new(
                StandardVerifier::new(&log_vkey).expect("the log key"),
            ) as Box<dyn signed_note::Verifier>]);
            parsed.verify(&known).expect("signed by the published key");
            tlog_tiles::Checkpoint::from_bytes(parsed.text()).expect("a checkpoint")
        };
    let old_cp = verify_note(&old.note);

    // Inclusion: hash the entry's bytes ourselves, check the path against the signed root.
    let proof = fg
        .prove(pb::ProveRequest { seq: 1 })
        .await
        .expect("Prove")
        .into_inner();
    let cp = verify_note(&proof.checkpoint.as_ref().expect("a checkpoint").note);
    let leaf = tlog_tiles::record_hash(&proof.entry_bytes);
    assert_eq!(leaf.0.to_vec(), proof.leaf_hash);
    let path: Vec<tlog_tiles::Hash> = proof
        .path
        .iter()
        .map(|h| tlog_tiles::Hash(h.as_slice().try_into().expect("32 bytes")))
        .collect();
    tlog_tiles::check_record(&path, cp.size(), *cp.hash(), 1, leaf).expect("included");
    let entry: serde_json::Value =
        serde_json::from_slice(&proof.entry_bytes).expect("the entry is JSON");
    assert_eq!(entry["seq"], 1);

    // Consistency from the older checkpoint we hold to the newest.
    let consistency = fg
        .consistency_proof(pb::ConsistencyProofRequest {
            old_size: old_cp.size(),
            new_size: 0,
        })
        .await
        .expect("ConsistencyProof")
        .into_inner();
    let newest = verify_note(&consistency.checkpoint.as_ref().expect("a checkpoint").note);
    assert_eq!(consistency.new_size, newest.size());
    let path: TreeProof = consistency
        .path
        .iter()
        .map(|h| tlog_tiles::Hash(h.as_slice().try_into().expect("32 bytes")))
        .collect();
    tlog_tiles::check_tree(
        &path,
        newest.size(),
        *newest.hash(),
        old_cp.size(),
        *old_cp.hash(),
    )
    .expect("the older checkpoint is a prefix of the newest");
    let mut tampered = path.clone();
    if let Some(first) = tampered.first_mut() {
        first.0[0] ^= 1;
        assert!(tlog_tiles::check_tree(
            &tampered,
            newest.size(),
            *newest.hash(),
            old_cp.size(),
            *old_cp.hash()
        )
        .is_err());
    }
}
