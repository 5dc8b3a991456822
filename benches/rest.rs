//! REST push beside gRPC push: the same records pushed through a real node as a gRPC client
//! stream and as `POST /v1/signals` JSON batches, and the bare HTTP/JSON limit (a no-op handler
//! that only reads the JSON batch, over the node's own TLS config and server stack), all from one
//! run, with the ratios. Measures only; never changes what it measures.
//!
//! Run with `cargo bench --bench rest`. `REST_BENCH_BATCHES` and `REST_BENCH_BATCH` override the
//! workload (default 20 batches of 1,000 records).

mod common;

use anyhow::{ensure, Context as _};
use common::{bench_key, env_count, intake_client, loadavg, per_sec};
use futures::StreamExt as _;
use pactgate::pb;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use pactgate::tls::TlsMaterial;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The party whose node and own system the benchmark plays (a push to one's own node).
const PARTY: &str = "swv-vo";
/// Batches in flight at once in the concurrent rows (one HTTP/2 connection each way).
const IN_FLIGHT: usize = 4;
/// Seed of the bench's pseudonym key.
const KEY_SEED: u64 = 0x0062_656e_6368;

/// A record as the REST API takes it (the enum codes are the proto names without their prefix).
fn json_record(r: &pb::SignalRecord) -> serde_json::Value {
    let code = |name: &str, prefix: &str| name.trim_start_matches(prefix).to_owned();
    let category = pb::Category::try_from(r.category).map_or("", |c| c.as_str_name());
    let sector = pb::Sector::try_from(r.sector).map_or("", |c| c.as_str_name());
    let status = pb::Status::try_from(r.status).map_or("", |c| c.as_str_name());
    serde_json::json!({
        "sourceRecordId": r.source_record_id,
        "pupilId": r.pupil_id,
        "category": code(category, "CATEGORY_"),
        "sector": code(sector, "SECTOR_"),
        "residenceMunicipality": r.residence_municipality,
        "school": r.school,
        "absentSince": r.absent_since,
        "status": code(status, "STATUS_"),
        "age": r.age,
    })
}

/// The JSON bodies of some batches, serialised before any clock runs.
fn bodies(batches: &[Vec<pb::SignalRecord>]) -> anyhow::Result<Vec<Vec<u8>>> {
    batches
        .iter()
        .map(|b| {
            let records: Vec<_> = b.iter().map(json_record).collect();
            Ok(serde_json::to_vec(
                &serde_json::json!({ "records": records }),
            )?)
        })
        .collect()
}

fn https_client(tls: &TlsMaterial) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config_tls13()?)
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(120))
        .build()?)
}

/// POSTs every body, `in_flight` at a time; each must be answered 200 with all records stored.
async fn post_all(
    client: &reqwest::Client,
    addr: SocketAddr,
    bodies: Vec<Vec<u8>>,
    per_body: usize,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let url = format!("https://{addr}/v1/signals");
    let started = Instant::now();
    let answers: Vec<anyhow::Result<()>> = futures::stream::iter(bodies)
        .map(|body| {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body);
            async move {
                let response = request.send().await?;
                let status = response.status();
                let report: serde_json::Value = response.json().await?;
                ensure!(
                    status == 200 && report["accepted"] == per_body,
                    "REST push answered {status}: {report}"
                );
                Ok(())
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let took = started.elapsed();
    answers.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(took)
}

async fn push_all(
    client: &SignalIntakeServiceClient<Channel>,
    streams: Vec<Vec<pb::SignalRecord>>,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let reports: Vec<anyhow::Result<()>> = futures::stream::iter(streams)
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
                    report.accepted as usize == expected,
                    "gRPC push accepted {} of {expected}",
                    report.accepted
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

/// A no-op `POST /v1/signals`: reads the JSON batch into the API's own request type and counts
/// it, nothing else.
async fn count_only(
    axum::Json(request): axum::Json<pactgate::rest::signals::PushRequest>,
) -> axum::Json<serde_json::Value> {
    let n = request.records.len();
    std::hint::black_box(request);
    axum::Json(serde_json::json!({ "accepted": n, "rejected": [], "rejectedCount": 0 }))
}

/// The bare HTTP/JSON server: the node's TLS listener and tonic's server with HTTP/1.1 on, an
/// axum route with the no-op handler and the API's body limit.
async fn start_bare(
    tls: &TlsMaterial,
) -> anyhow::Result<(
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = pactgate::tls::incoming(listener, tls.server_config()?);
    let router = axum::Router::new()
        .route("/v1/signals", axum::routing::post(count_only))
        .layer(axum::extract::DefaultBodyLimit::max(
            pactgate::rest::signals::MAX_PUSH_BYTES,
        ));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(router.into())
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await?;
        Ok(())
    });
    Ok((addr, stop, task))
}

fn main() -> anyhow::Result<()> {
    let batches = env_count("REST_BENCH_BATCHES", 20)?;
    let batch = env_count("REST_BENCH_BATCH", 1_000)?;
    let n = batches * batch;
    common::print_header("rest", true);

    let warmup = common::push_records(PARTY, 2, batch, "w", 3);
    let sequential = common::push_records(PARTY, batches, batch, "m", 1);
    let concurrent = common::push_records(PARTY, batches, batch, "c", 2);
    let (warmup_json, sequential_json, concurrent_json) =
        (bodies(&warmup)?, bodies(&sequential)?, bodies(&concurrent)?);
    let json_bytes = sequential_json.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
    println!(
        "workload: {batches} batches x {batch} records = {n} signals per figure, the same records \
         over gRPC (one client stream per batch) and REST (one POST per batch, {json_bytes:.0} B \
         of JSON per record)"
    );

    let tls = pactgate::demo::dev_certs::material(PARTY).context("no dev certificate")?;
    let tmp = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rest = https_client(&tls)?;

    let (bare_one, bare_many) = runtime.block_on(async {
        let (addr, stop, task) = start_bare(&tls).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        post_all(&rest, addr, warmup_json.clone(), batch, 1).await?;
        let one = post_all(&rest, addr, sequential_json.clone(), batch, 1).await?;
        let many = post_all(&rest, addr, concurrent_json.clone(), batch, IN_FLIGHT).await?;
        let _ = stop.send(());
        task.await??;
        anyhow::Ok((one, many))
    })?;

    let grpc_dir = tempfile::tempdir_in(tmp.path())?;
    let (grpc_one, grpc_many) = runtime.block_on(async {
        let node = common::start_node(tls.clone(), grpc_dir.path(), &bench_key(KEY_SEED)).await?;
        let client = intake_client(node.addr, &tls).await?;
        push_all(&client, warmup.clone(), 1).await?;
        let one = push_all(&client, sequential.clone(), 1).await?;
        let many = push_all(&client, concurrent.clone(), IN_FLIGHT).await?;
        drop(client);
        node.stop().await?;
        anyhow::Ok((one, many))
    })?;

    let rest_dir = tempfile::tempdir_in(tmp.path())?;
    let (rest_one, rest_many) = runtime.block_on(async {
        let node = common::start_node(tls.clone(), rest_dir.path(), &bench_key(KEY_SEED)).await?;
        // The node answers gRPC once it is up; REST shares its listener.
        drop(intake_client(node.addr, &tls).await?);
        post_all(&rest, node.addr, warmup_json, batch, 1).await?;
        let one = post_all(&rest, node.addr, sequential_json, batch, 1).await?;
        let many = post_all(&rest, node.addr, concurrent_json, batch, IN_FLIGHT).await?;
        node.stop().await?;
        anyhow::Ok((one, many))
    })?;
    drop(rest);
    for dir in [&grpc_dir, &rest_dir] {
        let stored = pactgate::store::Store::open(dir.path())?.count();
        ensure!(
            stored == 2 * n + warmup.len() * batch,
            "a node holds {stored} signals"
        );
    }

    let rate = |d| per_sec(n, d);
    println!();
    println!("{:<72} {:>12}", "figure", "signals/s");
    let row = |name: &str, v: f64| println!("{name:<72} {v:>12.0}");
    row(
        "(a) bare HTTP/JSON over the node's mTLS, no-op handler, 1 at a time",
        rate(bare_one),
    );
    row(
        &format!("(a) bare HTTP/JSON over the node's mTLS, no-op handler, {IN_FLIGHT} in flight"),
        rate(bare_many),
    );
    row(
        "(g) gRPC Push through node::serve, 1 stream at a time",
        rate(grpc_one),
    );
    row(
        &format!("(g) gRPC Push through node::serve, {IN_FLIGHT} in flight"),
        rate(grpc_many),
    );
    row(
        "(r) REST POST /v1/signals through node::serve, 1 batch at a time",
        rate(rest_one),
    );
    row(
        &format!("(r) REST POST /v1/signals through node::serve, {IN_FLIGHT} in flight"),
        rate(rest_many),
    );
    println!();
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "ratio REST / gRPC (target >= 0.8): {:.2} one at a time, {:.2} with {IN_FLIGHT} in flight",
        ratio(rest_one, grpc_one),
        ratio(rest_many, grpc_many)
    );
    println!(
        "ratio REST / bare HTTP/JSON:       {:.2} one at a time, {:.2} with {IN_FLIGHT} in flight",
        ratio(rest_one, bare_one),
        ratio(rest_many, bare_many)
    );
    println!("load average after: {}", loadavg());
    Ok(())
}
