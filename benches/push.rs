//! Push throughput: the bare limits (tonic client streaming over the node's own mTLS setup into a
//! no-op handler; sled batches with flush + fdatasync; the batch OPRF round trip to the
//! pseudonymisation service over mTLS) and the full path through a real node with the service in
//! its path, all from one run, with the ratios. Measures only; never changes what it measures.
//!
//! Run with `cargo bench --bench push`. `PUSH_BENCH_STREAMS` and `PUSH_BENCH_BATCH` override the
//! workload (default 100 streams of 1,000 records).

mod common;

use anyhow::{ensure, Context as _};
use common::{bench_key, env_count, intake_client, loadavg, per_sec, ViewStream};
use futures::StreamExt as _;
use pactgate::pb;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use pactgate::pb::signal_intake_service_server::SignalIntakeService;
use pactgate::pseudonym::{PseudonymKey, PupilId};
use pactgate::pseudonymiser::PseudonymiserClient;
use pactgate::signal::Signal;
use pactgate::store::Store;
use pactgate::trace::TraceContext;
use prost::Message as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// The party whose node and own system the benchmark plays (a push to one's own node).
const PARTY: &str = "swv-vo";
/// Streams in flight at once in the concurrent rows (one HTTP/2 connection, like the CLI's).
const IN_FLIGHT: usize = 4;
/// Passes over all records for the CPU figures (the best pass counts).
const CPU_PASSES: usize = 5;
/// Seed of the bench's pseudonym key.
const KEY_SEED: u64 = 0x0062_656e_6368;

struct Workload {
    streams: usize,
    batch: usize,
}

impl Workload {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            streams: env_count("PUSH_BENCH_STREAMS", 100)?,
            batch: env_count("PUSH_BENCH_BATCH", 1_000)?,
        })
    }

    fn records(&self) -> usize {
        self.streams * self.batch
    }
}

// ---------------------------------------------------------------------------------------------
// (a) bare tonic: the same listener, TLS config and certificates, a handler that only counts.

struct CountingIntake;

#[tonic::async_trait]
impl SignalIntakeService for CountingIntake {
    async fn push(
        &self,
        request: Request<Streaming<pb::PushRequest>>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let mut stream = request.into_inner();
        let mut count = 0u32;
        while let Some(record) = stream.message().await? {
            black_box(&record);
            count += 1;
        }
        Ok(Response::new(pb::PushResponse {
            accepted: count,
            rejected: Vec::new(),
            rejected_count: 0,
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

/// Pushes every stream, `in_flight` at a time over one channel; checks every record was
/// accepted and returns the time taken.
async fn push_all(
    client: &SignalIntakeServiceClient<Channel>,
    streams: Vec<Vec<pb::SignalRecord>>,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let reports: Vec<_> = futures::stream::iter(streams)
        .map(|records| {
            let mut client = client.clone();
            let expected = records.len();
            async move {
                let report = client
                    .push(tokio_stream::iter(
                        records.into_iter().map(pb::PushRequest::from),
                    ))
                    .await?
                    .into_inner();
                ensure!(
                    report.accepted as usize == expected && report.rejected.is_empty(),
                    "push accepted {} of {expected}, refused {}",
                    report.accepted,
                    report.rejected.len()
                );
                Ok(())
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let took = started.elapsed();
    reports.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(took)
}

/// Pushes the warm-up streams, then the measured ones sequentially and `IN_FLIGHT` at a time.
async fn measure_grpc(
    client: &SignalIntakeServiceClient<Channel>,
    warmup: &[Vec<pb::SignalRecord>],
    sequential: &[Vec<pb::SignalRecord>],
    concurrent: &[Vec<pb::SignalRecord>],
) -> anyhow::Result<(Duration, Duration)> {
    push_all(client, warmup.to_vec(), 1).await?;
    let one = push_all(client, sequential.to_vec(), 1).await?;
    let many = push_all(client, concurrent.to_vec(), IN_FLIGHT).await?;
    Ok((one, many))
}

// ---------------------------------------------------------------------------------------------
// (b) bare sled: the store's keys and values, prepared up front; per batch one `sled::Batch`,
// one `flush()` and one fdatasync of the log file, as `Store::sync` does.

/// The four (key, value) entries a signal occupies in the `signals` tree (see `store.rs`).
type Entries = [(Vec<u8>, Vec<u8>); 4];

/// Builds a signal's entries, as `Store::upsert_batch` does.
fn entries(s: &Signal) -> anyhow::Result<Entries> {
    let key = |kind: u8, value: &str| {
        let mut k = vec![kind, 0];
        k.extend_from_slice(value.as_bytes());
        k.push(0);
        k.extend_from_slice(s.source_record_id.as_bytes());
        k
    };
    let mut signal_key = vec![b's', 0];
    signal_key.extend_from_slice(s.source_record_id.as_bytes());
    Ok([
        (signal_key, serde_json::to_vec(s)?),
        (key(b'p', &s.pupil_pseudonym), Vec::new()),
        (key(b'm', &s.residence_municipality), Vec::new()),
        (
            key(b'c', s.school.as_deref().unwrap_or_default()),
            Vec::new(),
        ),
    ])
}

/// Where the time of the bare sled figure goes: building and applying the batch, sled's
/// `flush()`, the fdatasync.
#[derive(Default)]
struct SledParts {
    apply: Duration,
    flush: Duration,
    sync: Duration,
}

impl SledParts {
    fn total(&self) -> Duration {
        self.apply + self.flush + self.sync
    }
}

fn bare_sled(dir: &Path, batches: &[Vec<Entries>]) -> anyhow::Result<SledParts> {
    let path = dir.join("store");
    let db = sled::Config::new().path(&path).open()?;
    let tree = db.open_tree("signals")?;
    let mut parts = SledParts::default();
    for records in batches {
        let started = Instant::now();
        let mut batch = sled::Batch::default();
        for entry in records {
            for (k, v) in entry {
                batch.insert(k.as_slice(), v.as_slice());
            }
        }
        tree.apply_batch(batch)?;
        let applied = Instant::now();
        db.flush()?;
        let flushed = Instant::now();
        std::fs::File::open(path.join("db"))?.sync_data()?;
        parts.apply += applied - started;
        parts.flush += flushed - applied;
        parts.sync += flushed.elapsed();
    }
    Ok(parts)
}

/// The store's own batch path without gRPC: `Store::upsert_batch` on validated signals.
fn store_only(dir: &Path, batches: &[Vec<Signal>]) -> anyhow::Result<Duration> {
    let store = Store::open(dir)?;
    let started = Instant::now();
    for signals in batches {
        store.upsert_batch(signals)?;
    }
    Ok(started.elapsed())
}

// ---------------------------------------------------------------------------------------------
// (d) bare ring vs validation + pseudonymisation.

fn best_of<F: FnMut() -> anyhow::Result<()>>(mut pass: F) -> anyhow::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..CPU_PASSES {
        let started = Instant::now();
        pass()?;
        best = best.min(started.elapsed());
    }
    Ok(best)
}

struct CpuFigures {
    pseudonym: Duration,
    validate: Duration,
}

fn cpu(flat: &[pb::SignalRecord]) -> anyhow::Result<CpuFigures> {
    let key = PseudonymKey::from_bytes(1, &bench_key(KEY_SEED));
    let now = chrono::Utc::now();
    let today = now.date_naive();

    let pseudonym = best_of(|| {
        for r in flat {
            let id = PupilId::parse(&r.pupil_id).map_err(|e| anyhow::anyhow!("{e}"))?;
            black_box(key.pseudonym(&id));
        }
        Ok(())
    })?;
    // The conversion from the proto record is part of the handler's per-record work; the clone
    // that feeds it is done before the clock starts.
    let mut validate = Duration::MAX;
    for _ in 0..CPU_PASSES {
        let owned = flat.to_vec();
        let started = Instant::now();
        for r in owned {
            let raw = pactgate::rpc::convert::raw_signal(r);
            black_box(
                pactgate::signal::validate(raw, today, now).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
        validate = validate.min(started.elapsed());
    }
    Ok(CpuFigures {
        pseudonym,
        validate,
    })
}

// ---------------------------------------------------------------------------------------------
// (f) bare batch OPRF round trip: blind, one Evaluate over mTLS to the pseudonymisation service,
// verify the proof, unblind; one batch per stream.

async fn oprf_all(
    client: &PseudonymiserClient,
    batches: &[Vec<PupilId>],
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let trace = TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(batches)
        .map(|ids| {
            let trace = trace.clone();
            async move {
                let out = client.pseudonymise_batch(ids, &trace).await?;
                ensure!(
                    out.len() == ids.len(),
                    "{} of {} pseudonyms",
                    out.len(),
                    ids.len()
                );
                Ok(())
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let took = started.elapsed();
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(took)
}

fn ids_of(batches: &[Vec<pb::SignalRecord>]) -> anyhow::Result<Vec<Vec<PupilId>>> {
    batches
        .iter()
        .map(|b| {
            b.iter()
                .map(|r| PupilId::parse(&r.pupil_id).map_err(|e| anyhow::anyhow!("{e}")))
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The machine.

/// The device and filesystem type of the mount that holds `path`, from /proc/mounts.
fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter(|(_, point, _)| path.starts_with(point))
        .max_by_key(|(_, point, _)| point.len())
        .map(|(dev, point, fs)| format!("{fs} on {dev} (mounted at {point})"))
        .unwrap_or_else(|| "unknown".to_owned())
}

// ---------------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let work = Workload::from_env()?;
    let n = work.records();
    let tmp = tempfile::tempdir()?;

    common::print_header("push", false);
    println!(
        "temp dir {}: {}",
        tmp.path().display(),
        filesystem_of(tmp.path())
    );

    let measured = common::push_records(PARTY, work.streams, work.batch, "m", 1);
    let concurrent = common::push_records(PARTY, work.streams, work.batch, "c", 2);
    let warmup = common::push_records(PARTY, 2, work.batch, "w", 3);
    let flat: Vec<pb::SignalRecord> = measured.iter().flatten().cloned().collect();
    let wire = flat.iter().map(|r| r.encoded_len()).sum::<usize>() as f64 / n as f64;

    // Validated signals and their store entries, prepared before any clock runs.
    let key = PseudonymKey::from_bytes(1, &bench_key(KEY_SEED));
    let now = chrono::Utc::now();
    let validated: Vec<Vec<Signal>> = measured
        .iter()
        .map(|b| {
            b.iter()
                .map(|r| {
                    let checked = pactgate::signal::validate(
                        pactgate::rpc::convert::raw_signal(r.clone()),
                        now.date_naive(),
                        now,
                    )
                    .map_err(|e| anyhow::anyhow!("benchmark record refused: {e}"))?;
                    let pseudonym = key.pseudonym(&checked.pupil);
                    Ok(checked.pseudonymised(pseudonym.parse()?))
                })
                .collect()
        })
        .collect::<anyhow::Result<_>>()?;
    let sled_batches: Vec<Vec<_>> = validated
        .iter()
        .map(|b| b.iter().map(entries).collect::<anyhow::Result<_>>())
        .collect::<anyhow::Result<_>>()?;
    let value = sled_batches
        .iter()
        .flatten()
        .map(|e| e[0].1.len())
        .sum::<usize>() as f64
        / n as f64;
    let entry = sled_batches
        .iter()
        .flatten()
        .map(|e| e.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>())
        .sum::<usize>() as f64
        / n as f64;
    println!(
        "workload: {} streams x {} records = {n} signals per figure; batch = one stream = {} \
         records; SignalRecord {wire:.0} B on the wire; stored JSON {value:.0} B, all 4 entries \
         {entry:.0} B (keys + values)",
        work.streams, work.batch, work.batch
    );

    // (d) first, on a quiet runtime.
    let cpu = cpu(&flat)?;

    let tls = pactgate::demo::dev_certs::material(PARTY).context("no dev certificate")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (bare_one, bare_many) = runtime.block_on(async {
        let server = common::start_intake(&tls, CountingIntake).await?;
        let client = intake_client(server.addr, &tls).await?;
        let took = measure_grpc(&client, &warmup, &measured, &concurrent).await?;
        drop(client);
        server.stop().await?;
        anyhow::Ok(took)
    })?;

    let oprf_dir = tempfile::tempdir_in(tmp.path())?;
    let (oprf_warmup, oprf_measured, oprf_concurrent) =
        (ids_of(&warmup)?, ids_of(&measured)?, ids_of(&concurrent)?);
    let (oprf_one, oprf_many) = runtime.block_on(async {
        let (service, config) =
            common::start_pseudonymiser(oprf_dir.path(), &bench_key(KEY_SEED)).await?;
        let client = PseudonymiserClient::connect_lazy(&config, &tls)?;
        oprf_all(&client, &oprf_warmup, 1).await?;
        let one = oprf_all(&client, &oprf_measured, 1).await?;
        let many = oprf_all(&client, &oprf_concurrent, IN_FLIGHT).await?;
        drop(client);
        service.stop().await?;
        anyhow::Ok((one, many))
    })?;
    drop(oprf_dir);

    let sled_dir = tempfile::tempdir_in(tmp.path())?;
    let sled_parts = bare_sled(sled_dir.path(), &sled_batches)?;
    let sled_took = sled_parts.total();
    drop(sled_dir);

    let store_dir = tempfile::tempdir_in(tmp.path())?;
    let store_took = store_only(store_dir.path(), &validated)?;
    drop(store_dir);

    let node_dir = tempfile::tempdir_in(tmp.path())?;
    let (full_one, full_many) = runtime.block_on(async {
        let node = common::start_node(tls.clone(), node_dir.path(), &bench_key(KEY_SEED)).await?;
        let client = intake_client(node.addr, &tls).await?;
        let took = measure_grpc(&client, &warmup, &measured, &concurrent).await?;
        drop(client);
        node.stop().await?;
        anyhow::Ok(took)
    })?;
    let stored = Store::open(node_dir.path())?.count();
    ensure!(
        stored == 2 * n + warmup.len() * work.batch,
        "the node holds {stored} signals"
    );

    let a1 = per_sec(n, bare_one);
    let a4 = per_sec(n, bare_many);
    let b = per_sec(n, sled_took);
    let c1 = per_sec(n, full_one);
    let c4 = per_sec(n, full_many);
    let e = per_sec(n, store_took);
    let f1 = per_sec(n, oprf_one);
    let f4 = per_sec(n, oprf_many);
    let pseudonym = per_sec(n, cpu.pseudonym);
    let validate = per_sec(n, cpu.validate);

    println!();
    println!("{:<72} {:>12}", "figure", "signals/s");
    let row = |name: &str, v: f64| println!("{name:<72} {v:>12.0}");
    row(
        "(a) bare tonic mTLS client streaming, no-op handler, 1 stream at a time",
        a1,
    );
    row(
        &format!("(a) bare tonic mTLS client streaming, no-op handler, {IN_FLIGHT} in flight"),
        a4,
    );
    row(
        "(b) bare sled: 4 inserts/record, 1 Batch + flush + fdatasync per batch",
        b,
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / work.streams as f64;
    println!(
        "    per batch: apply {:.1} ms, sled flush {:.1} ms, fdatasync {:.1} ms",
        ms(sled_parts.apply),
        ms(sled_parts.flush),
        ms(sled_parts.sync)
    );
    row(
        "(f) bare batch OPRF round trip over mTLS (blind, Evaluate, verify), 1 at a time",
        f1,
    );
    row(
        &format!("(f) bare batch OPRF round trip over mTLS, {IN_FLIGHT} in flight"),
        f4,
    );
    row(
        "(c) full Push through node::serve, service in the path, 1 stream at a time",
        c1,
    );
    row(
        &format!("(c) full Push through node::serve, service in the path, {IN_FLIGHT} in flight"),
        c4,
    );
    row("(e) Store::upsert_batch alone (no gRPC), per batch", e);
    row(
        "(d) PupilId::parse + OPRF Evaluate with the key (the service's own), 1 core",
        pseudonym,
    );
    row(
        "(d) convert::raw_signal + signal::validate, 1 core",
        validate,
    );
    println!();
    let slowest = |a: f64, f: f64| {
        [("a", a), ("b", b), ("f", f)]
            .into_iter()
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .unwrap_or(("b", b))
    };
    let (name1, min1) = slowest(a1, f1);
    let (name4, min4) = slowest(a4, f4);
    println!(
        "ratio full / min(a, b, f), 1 stream at a time:  {:.2}  (min = {name1})",
        c1 / min1
    );
    println!(
        "ratio full / min(a, b, f), {IN_FLIGHT} in flight:        {:.2}  (min = {name4})",
        c4 / min4
    );
    println!("load average after: {}", loadavg());
    Ok(())
}
