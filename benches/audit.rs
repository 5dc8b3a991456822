//! The audit log's costs beside their bare limits, all from one run, with the ratios: Push with
//! the audit on (the real node) vs off (the same handler minus the audit entry); `audit::verify`
//! beside bare SHA-256 over the same entry bytes; checkpoint signing and witness cosigning (in
//! process, and as `POST /add-checkpoint` over HTTPS to a real node) beside bare Ed25519;
//! inclusion proofs beside bare SHA-256 of their pairs. Measures only.
//!
//! Run with `cargo bench --bench audit`. `AUDIT_BENCH_STREAMS` / `AUDIT_BENCH_BATCH` change the
//! Push workload (default 100 streams of 1,000 records), `AUDIT_BENCH_ENTRIES` the log size
//! (default 200,000 entries).

mod common;

use anyhow::{ensure, Context as _};
use common::{
    bench_key, env_count, intake_client, loadavg, per_sec, target, us, Summary, ViewStream,
};
use pactgate::audit::{
    self, Action, AddCheckpoint, AuditLog, Checkpoint, Decision, NewEntry, SigningKey, Witness,
};
use pactgate::pb;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use pactgate::pb::signal_intake_service_server::SignalIntakeService;
use pactgate::pseudonym::{PseudonymKey, PupilId};
use pactgate::pseudonymiser::PseudonymiserClient;
use pactgate::signal::{self, Signal};
use pactgate::store::Store;
use pactgate::tls::TlsMaterial;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// The party whose node the Push figures use (its own system pushes to it).
const PARTY: &str = "swv-vo";
/// Pushes of each kind before the clock runs.
const PUSH_WARMUP: usize = 5;
/// Passes of the verify and proof figures (the best counts; the figures alternate).
const PASSES: usize = 5;
/// Timed calls of the checkpoint and cosign figures (each; after 20 of warm-up).
const SIGN_CALLS: usize = 200;
/// Inclusion proofs made and checked per pass.
const PROOFS: usize = 10_000;
/// A checkpoint every this many entries while the log is built (as a busy node would sign).
const CHECKPOINT_EVERY: u64 = 10_000;
/// Seed of the bench's pseudonym key.
const KEY_SEED: u64 = 0x0061_7564_6974;

// ---------------------------------------------------------------------------------------------
// (1) Push with the audit on and off.

/// `src/rpc/intake.rs`'s Push minus the audit entry: the own-organisation check, validation and
/// pseudonymisation per record, then one `Store::upsert_batch` (batch, flush, fdatasync).
struct UnauditedIntake {
    own_oin: String,
    store: Store,
    pseudonymiser: PseudonymiserClient,
}

#[tonic::async_trait]
impl SignalIntakeService for UnauditedIntake {
    async fn push(
        &self,
        request: Request<Streaming<pb::PushRequest>>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let caller = pactgate::rpc::caller(&request)?;
        if caller.oin != self.own_oin {
            return Err(Status::permission_denied("not the node's own organisation"));
        }
        let mut stream = request.into_inner();
        let now = chrono::Utc::now();
        let today = now.date_naive();
        let mut checked = Vec::new();
        let mut refused = Vec::new();
        let mut index = 0u32;
        while let Some(message) = stream.message().await? {
            let record = message.record.unwrap_or_default();
            match signal::validate(pactgate::rpc::convert::raw_signal(record), today, now) {
                Ok(v) => checked.push(v),
                Err(e) => refused.push(pb::RejectedRecord {
                    index,
                    field: e.field.to_owned(),
                    reason: e.to_string(),
                }),
            }
            index += 1;
        }
        let trace =
            pactgate::trace::TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
        let pseudonyms = self
            .pseudonymiser
            .pseudonymise_batch(checked.iter().map(|v| &v.pupil), &trace)
            .await
            .map_err(pactgate::rpc::pseudonymiser_status)?;
        let good: Vec<Signal> = checked
            .into_iter()
            .zip(pseudonyms)
            .map(|(v, p)| v.pseudonymised(p.parse().expect("a pseudonym")))
            .collect();
        let accepted = good.len();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.upsert_batch(&good))
            .await
            .map_err(pactgate::rpc::task_status)?
            .map_err(pactgate::rpc::store_status)?;
        Ok(Response::new(pb::PushResponse {
            accepted: u32::try_from(accepted).unwrap_or(u32::MAX),
            rejected_count: u32::try_from(refused.len()).unwrap_or(u32::MAX),
            rejected: refused,
        }))
    }

    type ListStream = ViewStream;

    async fn list(
        &self,
        _request: Request<pb::ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }
}

/// The unaudited handler on a bare tonic server with the node's TLS config, with a
/// pseudonymisation service of its own in its path (as the audited node has).
async fn start_unaudited(tls: &TlsMaterial, data_dir: &Path) -> anyhow::Result<common::Running> {
    let (service, config) =
        common::start_pseudonymiser(&data_dir.join("pseudonymiser"), &bench_key(KEY_SEED)).await?;
    let handler = UnauditedIntake {
        own_oin: tls.organisation()?.oin.into_string(),
        store: Store::open(data_dir)?,
        pseudonymiser: PseudonymiserClient::connect_lazy(&config, tls)?,
    };
    Ok(common::start_intake(tls, handler)
        .await?
        .with_service(service))
}

/// Pushes one stream; checks every record was accepted; returns the time taken.
async fn push_one(
    client: &mut SignalIntakeServiceClient<Channel>,
    records: Vec<pb::SignalRecord>,
) -> anyhow::Result<Duration> {
    let expected = records.len();
    let started = Instant::now();
    let report = client
        .push(tokio_stream::iter(
            records.into_iter().map(pb::PushRequest::from),
        ))
        .await?
        .into_inner();
    let took = started.elapsed();
    ensure!(
        report.accepted as usize == expected && report.rejected.is_empty(),
        "push accepted {} of {expected}, refused {}",
        report.accepted,
        report.rejected.len()
    );
    Ok(took)
}

struct PushFigures {
    on: Duration,
    off: Duration,
    on_streams: Vec<Duration>,
    off_streams: Vec<Duration>,
    audit_entries: u64,
    audit_entry_bytes: usize,
    verified: u64,
}

/// Both servers run side by side; the same streams go to each, alternating stream by stream
/// (and which goes first), so both see the same outside load.
async fn push_figures(dir: &Path, streams: usize, batch: usize) -> anyhow::Result<PushFigures> {
    let tls = pactgate::demo::dev_certs::material(PARTY).context("no dev certificate")?;
    let on_dir = dir.join("on");
    let off_dir = dir.join("off");
    let on = common::start_node(tls.clone(), &on_dir, &bench_key(KEY_SEED)).await?;
    let off = start_unaudited(&tls, &off_dir).await?;
    let mut on_client = intake_client(on.addr, &tls).await?;
    let mut off_client = intake_client(off.addr, &tls).await?;

    for records in common::push_records(PARTY, PUSH_WARMUP, batch, "warmup", 7) {
        push_one(&mut on_client, records.clone()).await?;
        push_one(&mut off_client, records).await?;
    }
    let measured = common::push_records(PARTY, streams, batch, "measured", 42);
    let mut on_streams = Vec::with_capacity(streams);
    let mut off_streams = Vec::with_capacity(streams);
    for (i, records) in measured.into_iter().enumerate() {
        if i % 2 == 0 {
            on_streams.push(push_one(&mut on_client, records.clone()).await?);
            off_streams.push(push_one(&mut off_client, records).await?);
        } else {
            off_streams.push(push_one(&mut off_client, records.clone()).await?);
            on_streams.push(push_one(&mut on_client, records).await?);
        }
    }
    drop(on_client);
    drop(off_client);
    on.stop().await?;
    off.stop().await?;

    // The audited node's log: one entry per push (plus its policy load), and it verifies.
    let store = Store::open(&on_dir)?;
    let key = SigningKey::load_or_create(&on_dir.join(pactgate::node::AUDIT_KEY_FILE))?;
    let log = AuditLog::open(store.db(), &tls.organisation()?.oin, key)?;
    let report = audit::verify(&log, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let last = log.len().saturating_sub(1);
    let audit_entry_bytes = log.entry_bytes(last)?.map_or(0, |b| b.len());
    Ok(PushFigures {
        on: on_streams.iter().sum(),
        off: off_streams.iter().sum(),
        on_streams,
        off_streams,
        audit_entries: log.len(),
        audit_entry_bytes,
        verified: report.entries,
    })
}

// ---------------------------------------------------------------------------------------------
// (2)-(4) A log of realistic entries.

const NODE_OIN: &str = "00000001001234567000";

/// The peers whose requests a node's audit records.
const ACTORS: [(&str, &str, &str); 4] = [
    (
        "00000001002220647000",
        "Gemeente Groningen (Leerplicht)",
        "leerplichtambtenaar A. Bakker",
    ),
    (
        "00000001003214345000",
        "WIJ Groningen",
        "wij-medewerker B. de Vries",
    ),
    ("00000001001589623000", "GGD Groningen", "jeugdarts C. Smit"),
    ("00000001005000000001", "Noorderpoort", "verzuimcoordinator"),
];

fn hex_id(rng: &mut StdRng, digits: usize) -> String {
    (0..digits)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

/// What a node's exchanges write: mostly case reads about one child, routine-flow answers and
/// received answers with the pupils of a municipality's list (10-60), denials with none, and now
/// and then an ingest of a partner's batch (200-1,000 pupils).
/// With `max_pupils`, every list is cut to that length (the small-entry diagnostic).
fn realistic_entry(rng: &mut StdRng, pupils: &[String], i: u64, max_pupils: usize) -> NewEntry {
    let (actor_oin, actor_name, actor) = ACTORS[rng.random_range(0..ACTORS.len())];
    let roll = rng.random_range(0..100);
    let mut pick = |n: usize| -> Vec<String> {
        (0..n.min(max_pupils))
            .map(|_| pupils[rng.random_range(0..pupils.len())].clone())
            .collect()
    };
    let (action, decision, pupil_list, flow, meeting, case_id, reason) = match roll {
        0..=49 => (
            if roll % 2 == 0 {
                Action::Disclose
            } else {
                Action::Query
            },
            Decision::Allow,
            pick(1),
            "",
            "aoj-team-vo",
            format!("case-{}", i % 997),
            "case aoj-team-vo: seat jeugdarts",
        ),
        50..=79 => {
            let n = 10 + (roll as usize * 7919 + i as usize) % 51;
            (
                if roll % 2 == 0 {
                    Action::Disclose
                } else {
                    Action::Receive
                },
                Decision::Allow,
                pick(n),
                "verzuimmelding",
                "",
                String::new(),
                "routine_flow verzuimmelding",
            )
        }
        80..=88 => (
            Action::Query,
            Decision::Deny,
            Vec::new(),
            "verzuimmelding",
            "",
            String::new(),
            "denied: legal basis 'jw-7-4' is not one of the flow verzuimmelding's bases",
        ),
        89..=98 => (
            Action::FederatedQuery,
            Decision::Allow,
            pick(30),
            "verzuimmelding",
            "",
            String::new(),
            "federated over 3 peers",
        ),
        _ => {
            let n = 200 + (i as usize * 31) % 801;
            (
                Action::Ingest,
                Decision::Allow,
                pick(n),
                "",
                "",
                String::new(),
                "1000 records stored, 0 refused",
            )
        }
    };
    NewEntry {
        trace_id: hex_id(rng, 32),
        span_id: hex_id(rng, 16),
        actor_oin: actor_oin.into(),
        actor_name: actor_name.into(),
        actor: actor.into(),
        action,
        flow: flow.into(),
        meeting_type: meeting.into(),
        case_id,
        processing_activity: "VA-LP-003 verzuimaanpak".into(),
        purpose: "verzuimaanpak".into(),
        legal_basis: "lpw-art21".into(),
        count: pupil_list.len() as u64,
        pupils: pupil_list,
        data_categories: vec!["identificatie".into(), "verzuim".into(), "school".into()],
        decision,
        reason: reason.into(),
        policy_version: "groningen-2026.3".into(),
        parent_span_id: String::new(),
    }
}

/// A pool of pupil pseudonyms made with the real key (format `v1.` + 22 base64url).
fn pseudonyms(n: usize) -> anyhow::Result<Vec<String>> {
    let key = PseudonymKey::from_bytes(1, &bench_key(KEY_SEED));
    let mut rng = StdRng::seed_from_u64(5);
    (0..n)
        .map(|_| {
            let id = PupilId::parse(&pactgate::demo::synthetic_bsn(&mut rng))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(key.pseudonym(&id))
        })
        .collect()
}

struct Log {
    db: sled::Db,
    log: AuditLog,
    pkcs8: Vec<u8>,
    entries: Vec<sled::IVec>,
    build: Duration,
}

fn build_log(dir: &Path, name: &str, n: u64, max_pupils: usize) -> anyhow::Result<Log> {
    let db = sled::Config::new().path(dir.join(name)).open()?;
    let pkcs8 = SigningKey::generate_pkcs8()?;
    let log = AuditLog::open(&db, NODE_OIN, SigningKey::from_pkcs8(&pkcs8)?)?;
    let pupils = pseudonyms(20_000)?;
    let mut rng = StdRng::seed_from_u64(2026);
    let started = Instant::now();
    for i in 0..n {
        log.append(realistic_entry(&mut rng, &pupils, i, max_pupils))?;
        if (i + 1) % CHECKPOINT_EVERY == 0 {
            log.checkpoint()?;
        }
    }
    db.flush()?;
    let build = started.elapsed();
    // The stored entries exactly as `verify` reads them (storage layout: see `src/audit/mod.rs`).
    let tree = db.open_tree("audit")?;
    let entries = tree
        .scan_prefix([b'e'])
        .map(|kv| kv.map(|(_, v)| v))
        .collect::<Result<Vec<_>, _>>()?;
    ensure!(entries.len() as u64 == n, "{} entries read", entries.len());
    Ok(Log {
        db,
        log,
        pkcs8,
        entries,
        build,
    })
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

struct VerifyFigures {
    verify: Duration,
    sha: Duration,
    scan: Duration,
    bytes: usize,
    checkpoints: u64,
}

/// Best of `PASSES` each, alternating: `audit::verify`, bare SHA-256 over every entry's bytes,
/// and (diagnostic) a bare sled scan of the same entries.
fn verify_figures(l: &Log) -> anyhow::Result<VerifyFigures> {
    let n = l.entries.len() as u64;
    let tree = l.db.open_tree("audit")?;
    let mut best = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut checkpoints = 0;
    for _ in 0..PASSES {
        let started = Instant::now();
        let report = audit::verify(&l.log, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
        best.0 = best.0.min(started.elapsed());
        ensure!(report.entries == n, "verify saw {} entries", report.entries);
        checkpoints = report.checkpoints_checked;

        let started = Instant::now();
        for e in &l.entries {
            black_box(sha256(e));
        }
        best.1 = best.1.min(started.elapsed());

        let started = Instant::now();
        let mut bytes = 0usize;
        for kv in tree.scan_prefix([b'e']) {
            bytes += kv?.1.len();
        }
        black_box(bytes);
        best.2 = best.2.min(started.elapsed());
    }
    Ok(VerifyFigures {
        verify: best.0,
        sha: best.1,
        scan: best.2,
        bytes: l.entries.iter().map(|e| e.len()).sum(),
        checkpoints,
    })
}

struct SignFigures {
    checkpoint: Summary,
    checkpoint_sign_only: Summary,
    bare_sign: Summary,
    cosign: Summary,
    bare_verify_sign: Summary,
    consistency_check: Summary,
    body_bytes: usize,
    proof_hashes: usize,
}

/// Times `f` and `bare` alternately, `SIGN_CALLS` each after 20 of warm-up.
fn paired(
    mut f: impl FnMut(usize) -> anyhow::Result<()>,
    mut bare: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<(Summary, Summary)> {
    let mut a = Vec::with_capacity(SIGN_CALLS);
    let mut b = Vec::with_capacity(SIGN_CALLS);
    for i in 0..SIGN_CALLS + 20 {
        let started = Instant::now();
        f(i)?;
        let fa = started.elapsed();
        let started = Instant::now();
        bare(i)?;
        let fb = started.elapsed();
        if i >= 20 {
            a.push(fa);
            b.push(fb);
        }
    }
    Ok((Summary::of(a), Summary::of(b)))
}

fn sign_figures(l: &Log, dir: &Path) -> anyhow::Result<SignFigures> {
    let pair = Ed25519KeyPair::from_pkcs8(&l.pkcs8).map_err(|_| anyhow::anyhow!("key"))?;
    let origin = l.log.origin().to_owned();
    let n = l.log.len();
    let body = Checkpoint {
        origin: origin.clone(),
        size: n,
        root: l.log.root(n)?,
    }
    .body();

    // (3a) AuditLog::checkpoint (sign, store, flush) vs bare Ed25519 sign of the note body.
    let (checkpoint, bare_sign) = paired(
        |_| {
            black_box(l.log.checkpoint()?);
            Ok(())
        },
        |_| {
            black_box(pair.sign(body.as_bytes()));
            Ok(())
        },
    )?;
    // Diagnostic: the note alone (format + Ed25519), no storage.
    let signer = SigningKey::from_pkcs8(&l.pkcs8)?;
    let root = l.log.root(n)?;
    let (checkpoint_sign_only, _) = paired(
        |_| {
            let cp = Checkpoint {
                origin: origin.clone(),
                size: n,
                root,
            };
            black_box(cp.sign(&signer, &origin));
            Ok(())
        },
        |_| Ok(()),
    )?;

    // (3b) Witness::cosign of a growing log, each with the consistency proof from the last size
    // it cosigned, vs bare Ed25519 verify (of the note) + sign (of the cosigned message).
    let (notes, proofs) = growing_checkpoints(l, &signer)?;
    let proof_hashes = proofs.last().map_or(0, Vec::len);
    let wdb = sled::Config::new().path(dir.join("witness-db")).open()?;
    let wpkcs8 = SigningKey::generate_pkcs8()?;
    let vkey = l.log.verifier_key();
    let witness = Witness::open(
        &wdb,
        "pactgate-witness/bench",
        SigningKey::from_pkcs8(&wpkcs8)?,
    )?
    .trusting(vec![audit::VerifierKey::parse(&vkey)?]);
    let wpair = Ed25519KeyPair::from_pkcs8(&wpkcs8).map_err(|_| anyhow::anyhow!("key"))?;
    witness.add_checkpoint(witness.admit(request(&notes, &proofs, 0))?)?;
    let public = pair.public_key().as_ref().to_vec();
    let (cosign, bare_verify_sign) = paired(
        |i| {
            black_box(witness.add_checkpoint(witness.admit(request(&notes, &proofs, i + 1))?)?);
            Ok(())
        },
        |i| bare_verify_sign(&notes[i + 1], &public, &wpair),
    )?;
    // Diagnostic: the consistency check alone.
    let (consistency_check, _) = paired(
        |i| {
            let k = i + 1;
            let (old, new) = (&notes[k - 1].0, &notes[k].0);
            audit::verify_consistency(old.size, new.size, &old.root, &new.root, &proofs[k])?;
            Ok(())
        },
        |_| Ok(()),
    )?;
    Ok(SignFigures {
        checkpoint,
        checkpoint_sign_only,
        bare_sign,
        cosign,
        bare_verify_sign,
        consistency_check,
        body_bytes: body.len(),
        proof_hashes,
    })
}

/// Signed checkpoints of the last `SIGN_CALLS + 21` sizes of the log, one entry apart, each with
/// the consistency proof from the size before it (none for the first).
fn growing_checkpoints(
    l: &Log,
    signer: &SigningKey,
) -> anyhow::Result<(Notes, Vec<Vec<audit::Hash>>)> {
    let origin = l.log.origin().to_owned();
    let calls = SIGN_CALLS + 20;
    let first = l.log.len() - calls as u64 - 1;
    let mut notes = Vec::with_capacity(calls + 1);
    let mut proofs = Vec::with_capacity(calls + 1);
    for k in 0..=calls as u64 {
        let size = first + k;
        let cp = Checkpoint {
            origin: origin.clone(),
            size,
            root: l.log.root(size)?,
        };
        proofs.push(if k == 0 {
            Vec::new()
        } else {
            l.log.consistency_proof(size - 1, size)?
        });
        notes.push((cp.clone(), cp.sign(signer, &origin)));
    }
    Ok((notes, proofs))
}

type Notes = Vec<(Checkpoint, audit::SignedCheckpoint)>;

/// The add-checkpoint request for `notes[k]`, from the size before it.
fn request(
    notes: &[(Checkpoint, audit::SignedCheckpoint)],
    proofs: &[Vec<audit::Hash>],
    k: usize,
) -> AddCheckpoint {
    AddCheckpoint {
        old_size: if k == 0 { 0 } else { notes[k - 1].0.size },
        proof: proofs[k].clone(),
        note: notes[k].1.note.clone(),
    }
}

/// The bare limit of a witness: Ed25519 verify of the note's signature and sign of the
/// cosignature/v1 message (ring).
fn bare_verify_sign(
    (cp, signed): &(Checkpoint, audit::SignedCheckpoint),
    public: &[u8],
    witness: &Ed25519KeyPair,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    let body = cp.body();
    let sig_b64 = signed
        .note
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim_end();
    let raw = base64::engine::general_purpose::STANDARD.decode(sig_b64)?;
    UnparsedPublicKey::new(&ED25519, public)
        .verify(body.as_bytes(), &raw[4..])
        .map_err(|_| anyhow::anyhow!("bare verify failed"))?;
    let msg = format!("cosignature/v1\ntime {}\n{body}", 1_795_000_000u64);
    black_box(witness.sign(msg.as_bytes()));
    Ok(())
}

/// (3c) `POST /add-checkpoint` over HTTPS (HTTP/2, mTLS, one connection, one request at a time) to
/// a real node configured to witness the bench log, alternating with the bare verify + sign.
async fn http_witness_figures(l: &Log, dir: &Path) -> anyhow::Result<(Summary, Summary)> {
    let signer = SigningKey::from_pkcs8(&l.pkcs8)?;
    let (notes, proofs) = growing_checkpoints(l, &signer)?;
    let calls = notes.len() - 1;
    let tls = pactgate::demo::dev_certs::material(PARTY).context("no dev certificate")?;
    // The witness pseudonymises nothing: its service address is never dialled.
    let unused = pactgate::pseudonymiser::ServiceConfig {
        address: "127.0.0.1:9".to_owned(),
        oin: common::oin("pseudonymiser").to_owned(),
        public_keys: vec![PseudonymKey::from_bytes(1, &bench_key(KEY_SEED)).public_key()],
    };
    let mut setup = pactgate::node::NodeSetup::new(tls, unused, dir.join("witness-node"));
    setup.witnessed_logs = vec![l.log.verifier_key()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let node = common::serve_node(setup, listener)?;
    let client_tls = pactgate::demo::dev_certs::material("leerplicht")
        .context("no dev certificate")?
        .client_config_tls13()?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(client_tls)
        .http2_prior_knowledge()
        .build()?;
    let url = format!("https://{}/add-checkpoint", node.addr);
    let post = |k: usize| {
        let body = request(&notes, &proofs, k).body();
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut last = None;
            for _ in 0..50 {
                match client.post(&url).body(body.clone()).send().await {
                    Ok(r) if r.status() == 200 => return Ok(r.text().await?),
                    Ok(r) => anyhow::bail!("add-checkpoint answered {}", r.status()),
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(anyhow::anyhow!("no connection: {last:?}"))
        }
    };
    post(0).await?;
    let pair = Ed25519KeyPair::from_pkcs8(&l.pkcs8).map_err(|_| anyhow::anyhow!("key"))?;
    let public = pair.public_key().as_ref().to_vec();
    let wpair = Ed25519KeyPair::from_pkcs8(&SigningKey::generate_pkcs8()?)
        .map_err(|_| anyhow::anyhow!("key"))?;
    let mut http = Vec::with_capacity(SIGN_CALLS);
    let mut bare = Vec::with_capacity(SIGN_CALLS);
    for i in 0..calls {
        let started = Instant::now();
        black_box(post(i + 1).await?);
        let a = started.elapsed();
        let started = Instant::now();
        bare_verify_sign(&notes[i + 1], &public, &wpair)?;
        let b = started.elapsed();
        if i >= 20 {
            http.push(a);
            bare.push(b);
        }
    }
    node.stop().await?;
    Ok((Summary::of(http), Summary::of(bare)))
}

struct ProofFigures {
    generate: Duration,
    check: Duration,
    bare_pairs: Duration,
    bare_pairs_and_leaf: Duration,
    bare_gets: Duration,
    depth: usize,
    mean_proof_len: f64,
}

/// Best of `PASSES` each over the same `PROOFS` random entries, alternating.
fn proof_figures(l: &Log) -> anyhow::Result<ProofFigures> {
    let n = l.log.len();
    let root = l.log.root(n)?;
    let depth = (64 - (n - 1).leading_zeros()) as usize;
    let mut rng = StdRng::seed_from_u64(99);
    let seqs: Vec<u64> = (0..PROOFS).map(|_| rng.random_range(0..n)).collect();
    let proofs = seqs
        .iter()
        .map(|&s| l.log.inclusion_proof(s, n))
        .collect::<Result<Vec<_>, _>>()?;
    let mean_proof_len = proofs.iter().map(Vec::len).sum::<usize>() as f64 / PROOFS as f64;
    let tree = l.db.open_tree("audit")?;
    // Node keys `b'n' ++ level ++ index (u64 BE)`, `depth` per proof, of complete subtrees.
    let node_keys: Vec<Vec<[u8; 10]>> = seqs
        .iter()
        .map(|&s| {
            (0..depth as u8)
                .map(|level| {
                    let mut k = [b'n'; 10];
                    k[1] = level;
                    let index = ((s >> level) ^ 1).min((n >> level).saturating_sub(1));
                    k[2..].copy_from_slice(&index.to_be_bytes());
                    k
                })
                .collect()
        })
        .collect();
    let mut best = [Duration::MAX; 5];
    for _ in 0..PASSES {
        let started = Instant::now();
        for &s in &seqs {
            black_box(l.log.inclusion_proof(s, n)?);
        }
        best[0] = best[0].min(started.elapsed());

        let started = Instant::now();
        for (&s, proof) in seqs.iter().zip(&proofs) {
            audit::verify_inclusion(&l.entries[s as usize], s, n, &root, proof)?;
        }
        best[1] = best[1].min(started.elapsed());

        let started = Instant::now();
        let mut buf = [1u8; 65];
        for _ in &seqs {
            for _ in 0..depth {
                let h = sha256(&buf);
                buf[1..33].copy_from_slice(&h);
            }
        }
        black_box(buf);
        best[2] = best[2].min(started.elapsed());

        let started = Instant::now();
        for &s in &seqs {
            let mut h = {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                ctx.update(&[0]);
                ctx.update(&l.entries[s as usize]);
                ctx.finish()
            };
            let mut buf = [1u8; 65];
            for _ in 0..depth {
                buf[1..33].copy_from_slice(h.as_ref());
                h = ring::digest::digest(&ring::digest::SHA256, &buf);
            }
            black_box(h);
        }
        best[3] = best[3].min(started.elapsed());

        let started = Instant::now();
        for keys in &node_keys {
            for k in keys {
                black_box(tree.get(k)?);
            }
        }
        best[4] = best[4].min(started.elapsed());
    }
    Ok(ProofFigures {
        generate: best[0],
        check: best[1],
        bare_pairs: best[2],
        bare_pairs_and_leaf: best[3],
        bare_gets: best[4],
        depth,
        mean_proof_len,
    })
}

// ---------------------------------------------------------------------------------------------
// Printing.

fn print_verify(v: &VerifyFigures, n: u64, targets: bool) {
    let mb = v.bytes as f64 / 1e6;
    println!(
        "    entries: {n}, {mb:.1} MB, mean {:.0} B/entry; {} checkpoints checked",
        v.bytes as f64 / n as f64,
        v.checkpoints
    );
    let (ve, se, sc) = (
        per_sec(n as usize, v.verify),
        per_sec(n as usize, v.sha),
        per_sec(n as usize, v.scan),
    );
    println!(
        "    bare SHA-256 (ring) over the same entry bytes: {se:>10.0} entries/s  {:>7.0} MB/s",
        mb / v.sha.as_secs_f64()
    );
    println!(
        "    diagnostic: bare sled scan of the entries:     {sc:>10.0} entries/s  {:>7.0} MB/s",
        mb / v.scan.as_secs_f64()
    );
    println!(
        "    audit::verify:                                 {ve:>10.0} entries/s  {:>7.0} MB/s",
        mb / v.verify.as_secs_f64()
    );
    if targets {
        println!(
            "    ratio verify / bare SHA-256: {:.2}   target >= 0.5: {};  >= 1,000,000 entries/s: {}",
            ve / se,
            target(ve / se >= 0.5),
            target(ve >= 1e6)
        );
    } else {
        println!("    ratio verify / bare SHA-256: {:.2}", ve / se);
    }
}

// ---------------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let streams = env_count("AUDIT_BENCH_STREAMS", 100)?;
    let batch = env_count("AUDIT_BENCH_BATCH", 1_000)?;
    let n = env_count("AUDIT_BENCH_ENTRIES", 200_000)? as u64;
    ensure!(
        n > SIGN_CALLS as u64 + 100,
        "AUDIT_BENCH_ENTRIES is too small"
    );
    common::print_header("audit", true);
    let tmp = tempfile::tempdir()?;
    println!("temp dir: {}", tmp.path().display());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let p = runtime.block_on(push_figures(tmp.path(), streams, batch))?;
    drop(runtime);
    let records = streams * batch;
    let (on_rate, off_rate) = (per_sec(records, p.on), per_sec(records, p.off));
    println!();
    println!(
        "(1) Push, {streams} streams x {batch} records over mTLS ({PARTY} dev cert), one at a time, \
         the two servers alternating stream by stream:"
    );
    let on_s = Summary::of(p.on_streams.clone());
    let off_s = Summary::of(p.off_streams.clone());
    println!(
        "    audit OFF (bench handler: validate + Store::upsert_batch): {off_rate:>10.0} signals/s  \
         (per push p50 {:.1} ms, p99 {:.1} ms)",
        us(off_s.p50) / 1e3,
        us(off_s.p99) / 1e3
    );
    println!(
        "    audit ON  (node::serve, SignalIntakeService/Push):         {on_rate:>10.0} signals/s  \
         (per push p50 {:.1} ms, p99 {:.1} ms)",
        us(on_s.p50) / 1e3,
        us(on_s.p99) / 1e3
    );
    println!(
        "    audit log after: {} entries (one per push, plus policy loads), {} B per push entry; \
         verify: {} entries OK",
        p.audit_entries, p.audit_entry_bytes, p.verified
    );
    let ratio = on_rate / off_rate;
    println!(
        "    ratio on / off: {ratio:.2}   target >= 0.8: {}",
        target(ratio >= 0.8)
    );

    println!();
    let l = build_log(tmp.path(), "audit-db", n, usize::MAX)?;
    let small = build_log(tmp.path(), "audit-db-small", n, 1)?;
    println!();
    println!(
        "(2) verify: a log of {n} realistic entries (append, a checkpoint every {CHECKPOINT_EVERY}), \
         built in {:.1} s ({:.0} appends/s, no flush per append); best of {PASSES}, alternating:",
        l.build.as_secs_f64(),
        per_sec(n as usize, l.build)
    );
    print_verify(&verify_figures(&l)?, n, true);
    println!(
        "    diagnostic: the same log with every pupil list cut to at most one pseudonym (built in \
         {:.1} s):",
        small.build.as_secs_f64()
    );
    print_verify(&verify_figures(&small)?, n, false);
    drop(small);

    let s = sign_figures(&l, tmp.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (http_cosign, http_bare) = runtime.block_on(http_witness_figures(&l, tmp.path()))?;
    drop(runtime);
    println!();
    println!(
        "(3) signing, {SIGN_CALLS} calls each after 20 warm-up, alternating with the bare figure \
         (note body {} B; consistency proofs of {} hashes):",
        s.body_bytes, s.proof_hashes
    );
    let row = |name: &str, x: &Summary| {
        println!(
            "    {name:<62} p50 {:>8.1} us  p99 {:>8.1} us  mean {:>8.1} us  ({:>7.0}/s)",
            us(x.p50),
            us(x.p99),
            us(x.mean),
            1e6 / us(x.mean)
        )
    };
    row("bare Ed25519 sign (ring) of the note body", &s.bare_sign);
    row(
        "diagnostic: Checkpoint::sign (note text + Ed25519)",
        &s.checkpoint_sign_only,
    );
    row(
        "AuditLog::checkpoint (sign + store + db flush)",
        &s.checkpoint,
    );
    println!(
        "    ratio checkpoint / bare sign (mean): {:.1}",
        us(s.checkpoint.mean) / us(s.bare_sign.mean)
    );
    row("bare Ed25519 verify + sign (ring)", &s.bare_verify_sign);
    row("diagnostic: verify_consistency", &s.consistency_check);
    row(
        "Witness::cosign (verify, proof, store + flush, sign)",
        &s.cosign,
    );
    println!(
        "    ratio cosign / bare verify+sign (mean): {:.1}",
        us(s.cosign.mean) / us(s.bare_verify_sign.mean)
    );
    row(
        "bare Ed25519 verify + sign (ring), alternating with HTTP",
        &http_bare,
    );
    row(
        "POST /add-checkpoint, HTTPS h2 mTLS (+ store fdatasync)",
        &http_cosign,
    );
    println!(
        "    ratio add-checkpoint over HTTP / bare verify+sign (mean): {:.1}",
        us(http_cosign.mean) / us(http_bare.mean)
    );

    let pf = proof_figures(&l)?;
    println!();
    println!(
        "(4) inclusion proofs in the log of {n}: {PROOFS} random entries, best of {PASSES}; depth \
         {}, mean proof {:.1} hashes:",
        pf.depth, pf.mean_proof_len
    );
    let rate = |d: Duration| per_sec(PROOFS, d);
    println!(
        "    bare SHA-256 of {} 65-byte pairs:                      {:>10.0} /s",
        pf.depth,
        rate(pf.bare_pairs)
    );
    println!(
        "    diagnostic: bare leaf hash + {} pairs:                 {:>10.0} /s",
        pf.depth,
        rate(pf.bare_pairs_and_leaf)
    );
    println!(
        "    diagnostic: bare {} sled gets of node hashes:          {:>10.0} /s",
        pf.depth,
        rate(pf.bare_gets)
    );
    println!(
        "    AuditLog::inclusion_proof (generation):                {:>10.0} /s   ratio / bare pairs {:.2}, / bare gets {:.2}",
        rate(pf.generate),
        rate(pf.generate) / rate(pf.bare_pairs),
        rate(pf.generate) / rate(pf.bare_gets)
    );
    println!(
        "    verify_inclusion (checking, entry bytes + proof):      {:>10.0} /s   ratio / bare pairs {:.2}, / bare leaf + pairs {:.2}",
        rate(pf.check),
        rate(pf.check) / rate(pf.bare_pairs),
        rate(pf.check) / rate(pf.bare_pairs_and_leaf)
    );
    println!("load average after: {}", loadavg());
    Ok(())
}
