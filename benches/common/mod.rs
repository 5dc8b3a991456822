//! The helpers every benchmark shares: workload counts from the environment, the fixed bench
//! key, rates, units and nearest-rank percentiles, the machine lines printed at the start and
//! end of a run, a node (or a bare intake handler) in-process on `127.0.0.1:0` that stops on
//! demand, mTLS connections to it, the leerplicht claim of the verzuimmelding flow, and the
//! valid Push records of a party's own system. Each bench is its own crate and includes this
//! module with `mod common;`; nothing here measures anything by itself.

// Every bench uses only part of these helpers (push, for one, has no percentiles and no
// connection as another party), and each bench is compiled as a crate of its own.
#![allow(dead_code)]

use anyhow::Context as _;
use pactgate::certs::dev_party;
use pactgate::demo::dev_certs;
use pactgate::harness::Server;
use pactgate::node::NodeSetup;
use pactgate::pb;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use pactgate::pb::signal_intake_service_server::{SignalIntakeService, SignalIntakeServiceServer};
use pactgate::pseudonym::{PseudonymKey, KEY_LEN};
use pactgate::pseudonymiser::{KeyRing, ServiceConfig};
use pactgate::rpc::intake::MAX_MESSAGE_BYTES;
use pactgate::tls::TlsMaterial;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::Status;

// ---------------------------------------------------------------------------------------------
// Workload, key, rates and units.

/// The count in the environment variable `name`, or `default` when it is not set.
pub fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        Err(_) => Ok(default),
    }
}

/// A pseudonym key drawn from `seed` (each bench has a seed of its own).
pub fn bench_key(seed: u64) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    StdRng::seed_from_u64(seed).fill(&mut key);
    key
}

pub fn per_sec(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

pub fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentiles of a set of durations.
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[i - 1]
        };
        let total: Duration = samples.iter().sum();
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            mean: total / samples.len() as u32,
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }
}

/// How a target line reads.
pub fn target(holds: bool) -> &'static str {
    if holds {
        "holds"
    } else {
        "MISSED"
    }
}

// ---------------------------------------------------------------------------------------------
// The machine.

pub fn proc_field(file: &str, field: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Prints `pactgate <bench> benchmark, <time>`, with `command` the line
/// `command: cargo bench --bench <bench>`, then the machine (cores, CPU, RAM, load average).
pub fn print_header(bench: &str, command: bool) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "pactgate {bench} benchmark, {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    if command {
        println!("command: cargo bench --bench {bench}");
    }
    println!(
        "machine: {cores} cores, {}, RAM {}; load average before: {}",
        proc_field("/proc/cpuinfo", "model name"),
        proc_field("/proc/meminfo", "MemTotal"),
        loadavg()
    );
}

// ---------------------------------------------------------------------------------------------
// Servers in-process.

/// A server (the library's harness) and the way to stop it; stopping waits until it has
/// finished (and then stops the pseudonymisation service a node was started with).
pub struct Running {
    pub addr: SocketAddr,
    server: Stoppable,
    service: Option<Box<Running>>,
}

/// A node or service of the harness, or a bare tonic server of a bench's own.
enum Stoppable {
    Harness(Server),
    Bare {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
}

impl Running {
    fn new(server: Server) -> Self {
        Running {
            addr: server.addr,
            server: Stoppable::Harness(server),
            service: None,
        }
    }

    /// This server, stopping `service` after itself.
    pub fn with_service(mut self, service: Running) -> Self {
        self.service = Some(Box::new(service));
        self
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        match self.server {
            Stoppable::Harness(server) => server.stop().await?,
            Stoppable::Bare { stop, task } => {
                let _ = stop.send(());
                task.await??;
            }
        }
        if let Some(service) = self.service {
            Box::pin(service.stop()).await?;
        }
        Ok(())
    }
}

/// The shipped policy with a daily quota no benchmark reaches, for the pseudonymisation service.
pub fn unlimited_policy() -> String {
    pactgate::demo::DEMO_POLICY
        .lines()
        .map(|l| {
            if l.starts_with("pseudonyms_per_day") {
                "pseudonyms_per_day = 1000000000"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pseudonymisation service (the dev certificate "pseudonymiser", key version 1 from `key`,
/// [`unlimited_policy`]) with its data in `data_dir`, and the configuration a node uses for it.
pub async fn start_pseudonymiser(
    data_dir: &Path,
    key: &[u8; KEY_LEN],
) -> anyhow::Result<(Running, ServiceConfig)> {
    std::fs::create_dir_all(data_dir)?;
    let policy = data_dir.join("policy.toml");
    std::fs::write(&policy, unlimited_policy())?;
    let key = PseudonymKey::from_bytes(1, key);
    let public_keys = vec![key.public_key()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let setup = pactgate::pseudonymiser::ServiceSetup {
        tls: dev_certs::material("pseudonymiser").context("no pseudonymiser certificate")?,
        keys: KeyRing::from_keys(vec![key]).context("no key")?,
        policy,
        data_dir: data_dir.to_owned(),
        ready: None,
    };
    let server = Server::spawn_ready(setup, listener).await?;
    let config = ServiceConfig {
        address: server.addr.to_string(),
        oin: dev_party("pseudonymiser")
            .context("no party")?
            .oin
            .to_owned(),
        public_keys,
    };
    Ok((Running::new(server), config))
}

/// Serves `setup` as a real node (`node::serve`) on `listener` until stopped.
pub fn serve_node(setup: NodeSetup, listener: tokio::net::TcpListener) -> anyhow::Result<Running> {
    Ok(Running::new(Server::spawn(setup, listener)?))
}

/// A real node with `tls` and its data in `data_dir`, with a pseudonymisation service of its own
/// (key `key`, version 1; its data in `data_dir`/pseudonymiser) in the path of every push.
pub async fn start_node(
    tls: TlsMaterial,
    data_dir: &Path,
    key: &[u8; KEY_LEN],
) -> anyhow::Result<Running> {
    let (service, config) = start_pseudonymiser(&data_dir.join("pseudonymiser"), key).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let setup = NodeSetup::new(tls, config, data_dir.to_owned());
    Ok(serve_node(setup, listener)?.with_service(service))
}

/// The stream type of a bench intake's `List`.
pub type ViewStream = Pin<Box<dyn Stream<Item = Result<pb::ListResponse, Status>> + Send>>;

/// A bare tonic server with only `handler` as `SignalIntakeService`, on the node's own listener and TLS
/// config and with the node's message size limit.
pub async fn start_intake<T: SignalIntakeService>(
    tls: &TlsMaterial,
    handler: T,
) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = pactgate::tls::incoming(listener, tls.server_config()?);
    let service =
        SignalIntakeServiceServer::new(handler).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await?;
        Ok(())
    });
    Ok(Running {
        addr,
        server: Stoppable::Bare { stop, task },
        service: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// The OIN of a development party.
pub fn oin(file: &str) -> &'static str {
    dev_party(file).map_or("unknown", |p| p.oin)
}

/// A `SignalIntakeService` client with `tls`, retrying briefly while the server task starts.
pub async fn intake_client(
    addr: SocketAddr,
    tls: &TlsMaterial,
) -> anyhow::Result<SignalIntakeServiceClient<Channel>> {
    let mut last = None;
    for _ in 0..50 {
        match pactgate::client::connect(&addr.to_string(), tls).await {
            Ok(channel) => {
                return Ok(SignalIntakeServiceClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES))
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no connection"), anyhow::Error::from))
}

/// Connects as `as_party`, retrying briefly while the node starts; with `expect`, only to a
/// node whose certificate names that party's OIN (as a peer channel does).
pub async fn connect(
    addr: SocketAddr,
    as_party: &str,
    expect: Option<&str>,
) -> anyhow::Result<Channel> {
    let tls = dev_certs::material(as_party).context("no dev certificate")?;
    let expected = expect.map(oin);
    let mut last = None;
    for _ in 0..50 {
        match pactgate::client::connect_expecting(&addr.to_string(), &tls, expected).await {
            Ok(channel) => return Ok(channel),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no connection"), anyhow::Error::from))
}

/// The leerplichtambtenaar's claim in the routine flow verzuimmelding.
pub fn claim() -> pb::AccessClaim {
    pb::AccessClaim {
        role: "leerplichtambtenaar".into(),
        legal_basis: "lpw-art21".into(),
        purpose: "verzuimaanpak".into(),
        actor: "leerplichtambtenaar (benchmark)".into(),
        context: Some(pb::access_claim::Context::RoutineFlow(
            "verzuimmelding".into(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Push records.

/// Valid VO records of `party`'s own system (BSNs passing the 11-proef, distinct ids of at most
/// 8 digits so no id can contain a BSN), one Vec per stream. `tag` keeps warm-up ids apart from
/// measured ones.
pub fn push_records(
    party: &str,
    streams: usize,
    batch: usize,
    tag: &str,
    seed: u64,
) -> Vec<Vec<pb::SignalRecord>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let absent_since = (chrono::Utc::now().date_naive() - chrono::Days::new(30)).to_string();
    let schools = ["20VA01", "20VB01", "20VC02", "20VD01"];
    (0..streams)
        .map(|s| {
            (0..batch)
                .map(|i| pb::SignalRecord {
                    // Letters between the numbers: a record id never holds nine digits in a row.
                    source_record_id: format!("{party}/verzuimmodule/{tag}/s{s}r{i}"),
                    pupil_id: pactgate::demo::synthetic_bsn(&mut rng),
                    category: pb::Category::Lrv.into(),
                    sector: pb::Sector::Vo.into(),
                    residence_municipality: pactgate::demo::MUNICIPALITIES[rng.random_range(0..4)]
                        .0
                        .to_owned(),
                    school: schools[rng.random_range(0..schools.len())].to_owned(),
                    absent_since: absent_since.clone(),
                    status: pb::Status::Open.into(),
                    age: rng.random_range(12..=17),
                    ..Default::default()
                })
                .collect()
        })
        .collect()
}
