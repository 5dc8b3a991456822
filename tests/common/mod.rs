//! The one test harness: real pactgate nodes on `127.0.0.1:0` with the development certificates
//! and a temporary data dir, in-process ([`TestNode`], on a thread and runtime of its own) or as
//! the real binary ([`ProcessNode`], which can be SIGKILLed or sent SIGHUP), a [`Federation`] of
//! nodes that are each other's peers, plus test data: good records, valid BSNs, certificates the
//! node must refuse, claims, policy files of a test's own. Every node has a pseudonymisation
//! service of its own ([`TestPseudonymiser`], holding the test key) unless the test gives one.
//! Every node and service stops when dropped.
#![allow(dead_code)]

use pactgate::certs::{dev_party, DevCa};
use pactgate::pb;
use pactgate::pb::audit_service_client::AuditServiceClient;
use pactgate::pb::cases_service_client::CasesServiceClient;
use pactgate::pb::clock_service_client::ClockServiceClient;
use pactgate::pb::counts_service_client::CountsServiceClient;
use pactgate::pb::exchange_service_client::ExchangeServiceClient;
use pactgate::pb::federation_service_client::FederationServiceClient;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use pactgate::pb::witness_service_client::WitnessServiceClient;
use pactgate::peers::PeerConfig;
use pactgate::pseudonym::{PseudonymKey, PupilId, KEY_LEN};
use pactgate::pseudonymiser::{KeyRing, ServiceConfig};
use pactgate::tls::TlsMaterial;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::HashMap;
use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tonic::transport::Channel;

/// The seed of the pseudonymisation key (version 1) every test pseudonymisation service holds.
pub const TEST_KEY: [u8; KEY_LEN] = [0x5a; KEY_LEN];
/// The seed of version 2 of the test key, also held by every test service but published to the
/// nodes only by tests of key rotation.
pub const TEST_KEY_V2: [u8; KEY_LEN] = [0xa5; KEY_LEN];
/// How long a node may take to become ready or to stop.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping in-process node may take to close its connections gracefully before it is
/// stopped hard.
const GRACE: Duration = Duration::from_secs(5);

/// The test key (version 1), as the test pseudonymisation service holds it. No node holds it.
pub fn test_key() -> PseudonymKey {
    PseudonymKey::from_bytes(1, &TEST_KEY)
}

/// The key ring of a test pseudonymisation service: versions 1 and 2 of the test key.
pub fn test_key_ring() -> KeyRing {
    KeyRing::from_keys(vec![test_key(), PseudonymKey::from_bytes(2, &TEST_KEY_V2)])
        .expect("two keys")
}

/// What a node is configured with for a test service at `address`: its OIN and the public key of
/// version 1 of the test key.
pub fn service_config(address: &str) -> ServiceConfig {
    ServiceConfig {
        address: address.to_owned(),
        oin: oin("pseudonymiser"),
        public_keys: vec![test_key().public_key()],
    }
}

/// The `serve` / `pseudonym` flags naming a pseudonymisation service.
pub fn pseudonymiser_flags(config: &ServiceConfig) -> Vec<String> {
    let mut flags = vec![
        "--pseudonymiser".to_owned(),
        config.address.clone(),
        "--pseudonymiser-oin".to_owned(),
        config.oin.clone(),
    ];
    for key in &config.public_keys {
        flags.push("--pseudonymiser-public-key".to_owned());
        flags.push(key.to_string());
    }
    flags
}

/// The pseudonym the test key gives a pupil id.
pub fn pseudonym_of(id: &str) -> String {
    test_key().pseudonym(&PupilId::parse(id).expect("a valid pupil id"))
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// `certs-dev/` of this crate.
pub fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-dev")
}

/// Paths of a party's certificate, key and the covenant CA.
pub fn cert_paths(party: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = certs_dir();
    (
        dir.join(format!("{party}.pem")),
        dir.join(format!("{party}.key")),
        dir.join("ca.pem"),
    )
}

/// A development party's TLS material, read from `certs-dev/`.
pub fn material(party: &str) -> TlsMaterial {
    let (cert, key, ca) = cert_paths(party);
    TlsMaterial::load(&cert, &key, &ca).unwrap_or_else(|e| panic!("certs for {party}: {e}"))
}

/// The development covenant CA of `certs-dev/`, able to issue more certificates.
pub fn dev_ca() -> DevCa {
    let read = |name: &str| std::fs::read_to_string(certs_dir().join(name)).expect(name);
    DevCa::from_pem(&read("ca.pem"), &read("ca.key")).expect("dev CA")
}

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

fn issued(ca: &DevCa, party: &str, from: i64, until: i64) -> TlsMaterial {
    let party = dev_party(party).unwrap_or_else(|| panic!("no dev party {party}"));
    let cert = ca
        .issue(&party, days_from_now(from), days_from_now(until))
        .expect("issue");
    TlsMaterial {
        cert_pem: cert.cert_pem.into_bytes(),
        key_pem: cert.key_pem.into_bytes(),
        ca_pem: std::fs::read(certs_dir().join("ca.pem")).expect("ca.pem"),
    }
}

/// A fresh, valid certificate for `party` from the dev CA: the control for the refused cases.
pub fn fresh_cert(party: &str) -> TlsMaterial {
    issued(&dev_ca(), party, -1, 365)
}

/// A valid certificate from the dev (covenant) CA for an organisation that is no party of the
/// shipped policy: verified at the handshake, a stranger to the covenant.
pub fn stranger_cert() -> TlsMaterial {
    let stranger = pactgate::certs::DevParty {
        file: "stranger",
        name: "Stichting Onbekend",
        oin: STRANGER_OIN,
    };
    let cert = dev_ca()
        .issue(&stranger, days_from_now(-1), days_from_now(365))
        .expect("issue");
    TlsMaterial {
        cert_pem: cert.cert_pem.into_bytes(),
        key_pem: cert.key_pem.into_bytes(),
        ca_pem: std::fs::read(certs_dir().join("ca.pem")).expect("ca.pem"),
    }
}

/// The OIN of [`stranger_cert`].
pub const STRANGER_OIN: &str = "00000099000000000099";

/// A certificate for `party` from the dev CA that expired (valid two years ago for a year).
pub fn expired_cert(party: &str) -> TlsMaterial {
    issued(&dev_ca(), party, -730, -365)
}

/// A currently valid certificate for `party` from a freshly generated CA the node does not
/// trust. The material still trusts the real covenant CA, so the client accepts the node.
pub fn foreign_cert(party: &str) -> TlsMaterial {
    let foreign = DevCa::generate("some other covenant CA").expect("foreign CA");
    issued(&foreign, party, -1, 365)
}

// ---------------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------------

/// A date `days` from today (UTC, as the node counts), as YYYY-MM-DD.
pub fn date_from_today(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// The shipped covenant policy.
pub fn policy_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/groningen.toml")
}

/// A record that passes every check: an LRV signal of a VO pupil of 14 living in Groningen,
/// absent since 60 days, still open. Change fields with struct update syntax.
pub fn good_record(source_record_id: &str, bsn: &str) -> pb::SignalRecord {
    pb::SignalRecord {
        source_record_id: source_record_id.to_owned(),
        pupil_id: bsn.to_owned(),
        category: pb::Category::Lrv as i32,
        sector: pb::Sector::Vo as i32,
        residence_municipality: "GM0014".to_owned(),
        school: "20XY01".to_owned(),
        absent_since: date_from_today(-60),
        status: pb::Status::Open as i32,
        offer_date: String::new(),
        age: 14,
        ..Default::default()
    }
}

/// True if nine digits pass the 11-proef for a BSN, computed here independently of the library.
pub fn passes_eleven_proof(id: &str) -> bool {
    let d: Vec<i64> = id.bytes().map(|b| i64::from(b) - i64::from(b'0')).collect();
    if d.len() != 9 || d.iter().any(|x| !(0..=9).contains(x)) {
        return false;
    }
    let sum: i64 = (0..8).map(|i| d[i] * (9 - i as i64)).sum::<i64>() - d[8];
    sum != 0 && sum % 11 == 0
}

/// Distinct valid BSNs from a seed. They never start with "10" (so a changed digit never makes
/// an onderwijsnummer) and never with "0".
pub struct Bsns {
    rng: StdRng,
    seen: HashSet<String>,
}

impl Bsns {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            seen: HashSet::new(),
        }
    }

    /// The next valid, not yet given BSN.
    pub fn next_bsn(&mut self) -> String {
        loop {
            let mut d: Vec<u32> = (0..8).map(|_| self.rng.random_range(0..10)).collect();
            d[0] = self.rng.random_range(2..10);
            let sum: u32 = d.iter().zip((2..=9).rev()).map(|(x, w)| x * w).sum();
            let check = sum % 11;
            if check > 9 {
                continue;
            }
            d.push(check);
            let bsn: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
            assert!(passes_eleven_proof(&bsn), "{bsn}");
            if self.seen.insert(bsn.clone()) {
                return bsn;
            }
        }
    }

    /// `n` distinct valid BSNs.
    pub fn take(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next_bsn()).collect()
    }
}

/// A BSN with its last digit changed, so it fails the 11-proef.
pub fn failing_eleven_proof(bsn: &str) -> String {
    let mut bytes = bsn.as_bytes().to_vec();
    bytes[8] = b'0' + (bytes[8] - b'0' + 1) % 10;
    let bad = String::from_utf8(bytes).unwrap();
    assert!(!passes_eleven_proof(&bad));
    bad
}

/// True if `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`, recursively, with its contents.
pub fn read_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A channel to `addr` with this material (the library's own client, mTLS).
pub async fn channel_with(
    addr: SocketAddr,
    tls: &TlsMaterial,
) -> Result<Channel, pactgate::client::ClientError> {
    pactgate::client::connect(&addr.to_string(), tls).await
}

/// A channel to `addr` as a development party that counts the connections it opens (TCP + TLS):
/// a tonic channel reconnects silently, so only the count shows whether a connection was
/// dropped.
pub fn counted_channel(
    addr: SocketAddr,
    party: &str,
) -> (Channel, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (endpoint, config) = pactgate::client::channel(&addr.to_string(), &material(party), None)
        .expect("client config");
    let connects = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connects.clone();
    let connector = tokio_rustls::TlsConnector::from(config);
    let connect = tower::service_fn(move |uri: tonic::transport::Uri| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let connector = connector.clone();
        async move {
            let host = uri.host().unwrap_or("127.0.0.1").to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    (endpoint.connect_with_connector_lazy(connect), connects)
}

/// Pushes records and returns the report or the status.
pub async fn push(
    client: &mut SignalIntakeServiceClient<Channel>,
    records: Vec<pb::SignalRecord>,
) -> Result<pb::PushResponse, tonic::Status> {
    let messages = records.into_iter().map(pb::PushRequest::from);
    client
        .push(tokio_stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

/// Lists with a request and collects the stream.
pub async fn list(
    client: &mut SignalIntakeServiceClient<Channel>,
    request: pb::ListRequest,
) -> Result<Vec<pb::SignalView>, tonic::Status> {
    let mut stream = client.list(request).await?.into_inner();
    let mut views = Vec::new();
    while let Some(v) = stream.message().await? {
        views.push(v.signal.expect("a List message carries its signal"));
    }
    Ok(views)
}

/// Sends the headers of a unary `List` and never its body: a half-sent request. Completes with
/// the node's answer (a refusal) or when the connection goes.
pub async fn half_sent_list(channel: Channel) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let never = futures::stream::pending::<pb::ListRequest>();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/pactgate.v1.SignalIntakeService/List",
    );
    let codec = tonic_prost::ProstCodec::<pb::ListRequest, pb::ListResponse>::default();
    grpc.client_streaming(tonic::Request::new(never), path, codec)
        .await
        .map(|_| ())
}

/// Every stored signal.
pub async fn list_all(client: &mut SignalIntakeServiceClient<Channel>) -> Vec<pb::SignalView> {
    list(client, pb::ListRequest::default())
        .await
        .expect("List of everything")
}

/// The sorted record ids of views.
pub fn ids(views: &[pb::SignalView]) -> Vec<String> {
    let mut ids: Vec<String> = views.iter().map(|v| v.source_record_id.clone()).collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// In-process node
// ---------------------------------------------------------------------------------------------

/// A listener on a free port of 127.0.0.1, ready for tokio.
pub fn bind_loopback() -> std::net::TcpListener {
    pactgate::harness::bind_loopback().expect("bind 127.0.0.1:0")
}

/// A node or service running on a thread with a runtime of its own (the library's harness).
type Running = pactgate::harness::ThreadedServer;

/// The node's setup: the dev certificates of `party`, its options, tuning, limits, witnessing and
/// pseudonymisation service.
fn node_setup(
    party: &str,
    data_dir: PathBuf,
    options: NodeOptions,
    tuning: NodeTuning,
    limits: pactgate::limits::Limits,
    extras: WitnessExtras,
    pseudonymiser: ServiceConfig,
) -> pactgate::node::NodeSetup {
    let keyed: Vec<_> = options
        .peers
        .iter()
        .map(|p| (p.clone(), audit_keys_of(&p.name, &p.oin)))
        .collect();
    let mut setup = pactgate::harness::node_setup(material(party), pseudonymiser, data_dir, &keyed);
    setup.witnesses.extend(extras.witnesses);
    setup.witnessed_logs.extend(extras.logs);
    setup.policy = options.policy;
    setup.counting = tuning.counting;
    setup.checkpoint_interval = tuning.checkpoint_interval;
    setup.limits = limits;
    setup
}

fn spawn_node(
    party: &str,
    listener: std::net::TcpListener,
    setup: pactgate::node::NodeSetup,
) -> Running {
    let name = format!("node-{party}-{}", listener.local_addr().unwrap().port());
    Running::spawn(name, setup, listener, GRACE, None).expect("spawn node thread")
}

/// Stops a node or service from a `Drop`: a failed stop panics, unless the thread panics already.
fn stop_on_drop(running: Running, what: &str) {
    if let Err(e) = running.stop_blocking() {
        if std::thread::panicking() {
            eprintln!("{what} did not stop cleanly: {e}");
        } else {
            panic!("{what} did not stop cleanly: {e}");
        }
    }
}

/// A pseudonymisation service in this process, on a thread and runtime of its own: the dev
/// certificate "pseudonymiser", a key ring, a policy (its quotas and FGs), a temporary data dir, a
/// free port on 127.0.0.1. Stops gracefully on [`TestPseudonymiser::stop`] and on drop.
pub struct TestPseudonymiser {
    /// What a node is configured with to use it (version 1 of the test key published).
    pub config: ServiceConfig,
    running: Option<Running>,
    dir: TempDir,
}

impl TestPseudonymiser {
    /// The test key ring (versions 1 and 2) under the shipped policy.
    pub fn start() -> TestPseudonymiser {
        Self::start_with(&policy_path(), test_key_ring())
    }

    /// A service with this policy and these keys.
    pub fn start_with(policy: &Path, keys: KeyRing) -> TestPseudonymiser {
        let dir = tempfile::Builder::new()
            .prefix("pactgate-pseudonymiser-")
            .tempdir()
            .expect("temp dir");
        let listener = bind_loopback();
        let addr = listener.local_addr().unwrap();
        let setup = pactgate::pseudonymiser::ServiceSetup {
            tls: material("pseudonymiser"),
            keys,
            policy: policy.to_owned(),
            data_dir: dir.path().join("data"),
            ready: None,
        };
        let name = format!("pseudonymiser-{}", addr.port());
        let running = Running::spawn(name, setup, listener, GRACE, Some(READY_TIMEOUT))
            .unwrap_or_else(|e| panic!("the pseudonymisation service did not start: {e}"));
        TestPseudonymiser {
            config: service_config(&addr.to_string()),
            running: Some(running),
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.as_ref().expect("service is running").addr
    }

    /// The service's data dir (its audit log and quota counters).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A Pseudonymiser client as a development party.
    pub async fn client_as(
        &self,
        party: &str,
    ) -> pb::pseudonymiser_service_client::PseudonymiserServiceClient<Channel> {
        let channel = channel_with(self.addr(), &material(party))
            .await
            .unwrap_or_else(|e| panic!("connect as {party}: {e}"));
        pb::pseudonymiser_service_client::PseudonymiserServiceClient::new(channel)
    }

    /// Stops the service, asserting a clean stop; keeps its data dir until the returned
    /// [`TempDir`] is dropped.
    pub fn stop(mut self) -> TempDir {
        let running = self.running.take().expect("service is running");
        running
            .stop_blocking()
            .unwrap_or_else(|e| panic!("the pseudonymisation service did not stop cleanly: {e}"));
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for TestPseudonymiser {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            stop_on_drop(running, "the pseudonymisation service");
        }
    }
}

/// `pactgate pseudonymiser` with the dev certificate "pseudonymiser", the shipped policy, the key
/// file `key` and its data in `dir`/data (not started).
pub fn pseudonymiser_command(dir: &Path, key: &Path) -> Command {
    let (cert, tls_key, ca) = cert_paths("pseudonymiser");
    let mut cmd = pactgate_bin();
    cmd.arg("pseudonymiser")
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
        .arg("--policy")
        .arg(policy_path())
        .arg("--pseudonym-key")
        .arg(key);
    cmd
}

/// A real node in this process: the dev certificates of one party, a temporary data dir, a
/// pseudonymisation service of its own (or the test's), a free port on 127.0.0.1. Stops
/// gracefully on [`TestNode::stop`] and on drop.
pub struct TestNode {
    pub party: String,
    running: Option<Running>,
    options: NodeOptions,
    tuning: NodeTuning,
    limits: pactgate::limits::Limits,
    extras: WitnessExtras,
    /// The service the node uses.
    pseudonymiser: ServiceConfig,
    /// The node's own service, if the test gave none; dropped (stopped) after the node.
    own_service: Option<TestPseudonymiser>,
    dir: TempDir,
}

/// Witness settings of a test node beyond its peers' (which witness each other): logs it
/// witnesses and witnesses it submits to, for example ones a test wrote itself.
#[derive(Debug, Clone, Default)]
pub struct WitnessExtras {
    /// Signed-note verifier keys of further logs this node witnesses.
    pub logs: Vec<String>,
    /// Further witnesses this node submits its checkpoints to.
    pub witnesses: Vec<pactgate::config::WitnessConfig>,
}

/// What a test node runs with besides its party's certificate: the policy file and its peers.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The covenant policy; `None`: no policy, every exchange is denied.
    pub policy: Option<PathBuf>,
    pub peers: Vec<PeerConfig>,
}

/// What a test node runs with besides [`NodeOptions`]: counting rules (the clock, counts and
/// retention) and how often it signs an audit checkpoint and has its peers cosign it.
#[derive(Debug, Clone)]
pub struct NodeTuning {
    /// `None`: no clock, no purge.
    pub counting: Option<PathBuf>,
    pub checkpoint_interval: Duration,
}

impl Default for NodeTuning {
    /// No counting rules, the node's own checkpoint interval.
    fn default() -> Self {
        Self {
            counting: None,
            checkpoint_interval: pactgate::rpc::audit::CHECKPOINT_INTERVAL,
        }
    }
}

impl NodeTuning {
    /// The shipped counting rules and a checkpoint every 200 ms, so a test sees its requests
    /// checkpointed and cosigned within a second.
    pub fn fast_audit_with_counting() -> Self {
        Self {
            counting: Some(counting_path()),
            checkpoint_interval: Duration::from_millis(200),
        }
    }
}

impl Default for NodeOptions {
    /// The shipped policy, no peers.
    fn default() -> Self {
        Self {
            policy: Some(policy_path()),
            peers: Vec::new(),
        }
    }
}

impl TestNode {
    /// Starts a node for a development party (the shipped policy, no peers) and waits until its
    /// health check says SERVING.
    pub async fn start(party: &str) -> TestNode {
        Self::start_with(party, NodeOptions::default()).await
    }

    /// Starts a node with a policy and peers of the test's choosing.
    pub async fn start_with(party: &str, options: NodeOptions) -> TestNode {
        Self::start_on(party, options, bind_loopback()).await
    }

    /// Starts a node on a listener the test bound already (so its peers know its address
    /// before it runs).
    pub async fn start_on(
        party: &str,
        options: NodeOptions,
        listener: std::net::TcpListener,
    ) -> TestNode {
        Self::start_tuned_on(party, options, NodeTuning::default(), listener).await
    }

    /// Starts a node with a policy, peers, counting rules and checkpoint interval of the test's
    /// choosing.
    pub async fn start_tuned(party: &str, options: NodeOptions, tuning: NodeTuning) -> TestNode {
        Self::start_tuned_on(party, options, tuning, bind_loopback()).await
    }

    /// [`TestNode::start_tuned`] on a listener the test bound already.
    pub async fn start_tuned_on(
        party: &str,
        options: NodeOptions,
        tuning: NodeTuning,
        listener: std::net::TcpListener,
    ) -> TestNode {
        let service = tokio::task::spawn_blocking(TestPseudonymiser::start)
            .await
            .expect("start the pseudonymisation service");
        let config = service.config.clone();
        let limits = pactgate::limits::Limits::default();
        Self::start_using(
            party,
            options,
            tuning,
            listener,
            config,
            Some(service),
            limits,
        )
        .await
    }

    /// Starts a node with the shipped policy, `tuning` and limits of the test's choosing.
    pub async fn start_limited(
        party: &str,
        tuning: NodeTuning,
        limits: pactgate::limits::Limits,
    ) -> TestNode {
        let service = tokio::task::spawn_blocking(TestPseudonymiser::start)
            .await
            .expect("start the pseudonymisation service");
        let config = service.config.clone();
        let options = NodeOptions::default();
        Self::start_using(
            party,
            options,
            tuning,
            bind_loopback(),
            config,
            Some(service),
            limits,
        )
        .await
    }

    /// Starts a node that uses the pseudonymisation service `pseudonymiser` (a test's own:
    /// shared by several nodes, with another policy, or one that answers with another key).
    pub async fn start_with_pseudonymiser(
        party: &str,
        options: NodeOptions,
        pseudonymiser: ServiceConfig,
    ) -> TestNode {
        Self::start_using(
            party,
            options,
            NodeTuning::default(),
            bind_loopback(),
            pseudonymiser,
            None,
            pactgate::limits::Limits::default(),
        )
        .await
    }

    async fn start_using(
        party: &str,
        options: NodeOptions,
        tuning: NodeTuning,
        listener: std::net::TcpListener,
        pseudonymiser: ServiceConfig,
        own_service: Option<TestPseudonymiser>,
        limits: pactgate::limits::Limits,
    ) -> TestNode {
        let mut node = Self::unstarted(party, options, tuning, pseudonymiser, own_service);
        node.limits = limits;
        node.launch_on(listener).await;
        node
    }

    /// A node not started yet, with a fresh temporary data dir.
    fn unstarted(
        party: &str,
        options: NodeOptions,
        tuning: NodeTuning,
        pseudonymiser: ServiceConfig,
        own_service: Option<TestPseudonymiser>,
    ) -> TestNode {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pactgate-{party}-"))
            .tempdir()
            .expect("temp dir");
        TestNode {
            party: party.to_owned(),
            running: None,
            options,
            tuning,
            limits: pactgate::limits::Limits::default(),
            extras: WitnessExtras::default(),
            pseudonymiser,
            own_service,
            dir,
        }
    }

    /// Starts a node with the shipped policy, no peers, a checkpoint every 200 ms, and these
    /// witness settings.
    pub async fn start_witnessing(party: &str, extras: WitnessExtras) -> TestNode {
        let tuning = NodeTuning {
            counting: None,
            checkpoint_interval: Duration::from_millis(200),
        };
        let service = tokio::task::spawn_blocking(TestPseudonymiser::start)
            .await
            .expect("start the pseudonymisation service");
        let config = service.config.clone();
        let mut node =
            Self::unstarted(party, NodeOptions::default(), tuning, config, Some(service));
        node.extras = extras;
        node.launch().await;
        node
    }

    async fn launch(&mut self) {
        self.launch_on(bind_loopback()).await;
    }

    async fn launch_on(&mut self, listener: std::net::TcpListener) {
        install_audit_keys(&self.party, &self.data_dir());
        let setup = node_setup(
            &self.party,
            self.data_dir(),
            self.options.clone(),
            self.tuning.clone(),
            self.limits.clone(),
            self.extras.clone(),
            self.pseudonymiser.clone(),
        );
        self.running = Some(spawn_node(&self.party, listener, setup));
        self.wait_ready().await;
    }

    /// Waits until the node answers its health check, failing with the node's own error if it
    /// stopped instead.
    async fn wait_ready(&mut self) {
        let started = Instant::now();
        let tls = material(&self.party);
        loop {
            if self.running.as_ref().is_some_and(Running::is_finished) {
                let result = self.running.take().unwrap().stop_blocking();
                panic!("node {} stopped while starting: {result:?}", self.party);
            }
            if let Ok(channel) = channel_with(self.addr(), &tls).await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let check = health
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await;
                if check.is_ok_and(|r| r.into_inner().status == 1) {
                    return;
                }
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "node {} not ready after {READY_TIMEOUT:?}",
                self.party
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.as_ref().expect("node is running").addr
    }

    /// The node's data dir (kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The pseudonymisation service the node uses.
    pub fn pseudonymiser(&self) -> &ServiceConfig {
        &self.pseudonymiser
    }

    /// The node's own pseudonymisation service, if the test gave it none.
    pub fn own_pseudonymiser(&self) -> Option<&TestPseudonymiser> {
        self.own_service.as_ref()
    }

    /// A channel to the node as a development party.
    pub async fn channel_as(&self, party: &str) -> Channel {
        channel_with(self.addr(), &material(party))
            .await
            .unwrap_or_else(|e| panic!("connect as {party}: {e}"))
    }

    /// A SignalIntakeService client as a development party.
    pub async fn intake_as(&self, party: &str) -> SignalIntakeServiceClient<Channel> {
        SignalIntakeServiceClient::new(self.channel_as(party).await)
    }

    /// A SignalIntakeService client as the node's own party.
    pub async fn intake(&self) -> SignalIntakeServiceClient<Channel> {
        self.intake_as(&self.party.clone()).await
    }

    /// An Exchange client as a development party (a peer node calling this one).
    pub async fn exchange_as(&self, party: &str) -> ExchangeServiceClient<Channel> {
        ExchangeServiceClient::new(self.channel_as(party).await)
    }

    /// A Federation client as a development party (its own system, if the party is the node's).
    pub async fn federation_as(&self, party: &str) -> FederationServiceClient<Channel> {
        FederationServiceClient::new(self.channel_as(party).await)
    }

    /// A Cases client as a development party.
    pub async fn cases_as(&self, party: &str) -> CasesServiceClient<Channel> {
        CasesServiceClient::new(self.channel_as(party).await)
    }

    /// An Audit client as a development party (`fg` is the FG of leerplicht).
    pub async fn audit_as(&self, party: &str) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel_as(party).await)
    }

    /// Every entry of this node's audit log, as the FG `fg` streams them (unfiltered).
    pub async fn audit_entries(&self, fg: &str) -> Vec<pb::AuditEntry> {
        let mut stream = self
            .audit_as(fg)
            .await
            .stream_entries(pb::StreamEntriesRequest {
                filter: Some(pb::AuditFilter::default()),
            })
            .await
            .expect("StreamEntries as the node's FG")
            .into_inner();
        let mut out = Vec::new();
        while let Some(message) = stream.message().await.expect("an entry") {
            out.push(
                message
                    .entry
                    .expect("a StreamEntries message carries its entry"),
            );
        }
        out
    }

    /// A Witness client as a development party (a peer node whose log this node witnesses).
    pub async fn witness_as(&self, party: &str) -> WitnessServiceClient<Channel> {
        WitnessServiceClient::new(self.channel_as(party).await)
    }

    /// A Clock client as a development party.
    pub async fn clock_as(&self, party: &str) -> ClockServiceClient<Channel> {
        ClockServiceClient::new(self.channel_as(party).await)
    }

    /// A Counts client as a development party.
    pub async fn counts_as(&self, party: &str) -> CountsServiceClient<Channel> {
        CountsServiceClient::new(self.channel_as(party).await)
    }

    /// This node as a peer of another node.
    pub fn as_peer(&self) -> PeerConfig {
        peer_config(&self.party, self.addr())
    }

    /// Stops the node gracefully (asserting a clean stop) and starts it again on the same data
    /// dir, on a new port. Clients of the old node must reconnect.
    pub async fn restart(&mut self) {
        let running = self.running.take().expect("node is running");
        let party = self.party.clone();
        tokio::task::spawn_blocking(move || running.stop_blocking())
            .await
            .expect("stop task")
            .unwrap_or_else(|e| panic!("node {party} did not stop cleanly: {e}"));
        self.launch().await;
    }

    /// [`TestNode::restart`] with `change` applied to the stopped node's data dir in between
    /// (to damage it, for example).
    pub async fn restart_after(&mut self, change: impl FnOnce(&Path) + Send + 'static) {
        let running = self.running.take().expect("node is running");
        let party = self.party.clone();
        let data_dir = self.data_dir();
        tokio::task::spawn_blocking(move || {
            running
                .stop_blocking()
                .unwrap_or_else(|e| panic!("node {party} did not stop cleanly: {e}"));
            change(&data_dir);
        })
        .await
        .expect("stop task");
        self.launch().await;
    }

    /// Stops the node gracefully and asserts it stopped cleanly; keeps the data dir until the
    /// returned [`TempDir`] is dropped.
    pub async fn stop(mut self) -> TempDir {
        let running = self.running.take().expect("node is running");
        let party = self.party.clone();
        tokio::task::spawn_blocking(move || running.stop_blocking())
            .await
            .expect("stop task")
            .unwrap_or_else(|e| panic!("node {party} did not stop cleanly: {e}"));
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            stop_on_drop(running, &format!("node {}", self.party));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------------

/// The `pactgate` binary of this build.
pub fn pactgate_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pactgate"));
    clear_node_env(&mut cmd);
    cmd
}

/// Removes the environment variables a node reads its settings from.
fn clear_node_env(cmd: &mut Command) {
    cmd.env_remove("PACTGATE_LOG")
        .env_remove("RUST_LOG")
        .env_remove("PACTGATE_NODE")
        .env_remove("PACTGATE_CERT")
        .env_remove("PACTGATE_KEY")
        .env_remove("PACTGATE_CA")
        .env_remove("PACTGATE_PSEUDONYM_KEY");
}

/// Runs a command to its end with stdout and stderr captured, killing it and failing if it takes
/// longer than `limit`.
pub fn run_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
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

/// A copy of a development party's TLS key in `dir`, readable by its owner only: `pactgate
/// serve` refuses a key others can read, and a fresh clone checks `certs-dev/*.key` out as 0644.
pub fn private_tls_key(party: &str, dir: &Path) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt as _;
    let out = dir.join(format!("{party}-tls.key"));
    if !out.exists() {
        let pem = std::fs::read(cert_paths(party).1).expect("dev TLS key");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&out)
            .expect("private TLS key");
        file.write_all(&pem).unwrap();
    }
    out
}

/// Writes the test key ring (versions 1 and 2) as a pseudonymisation service's key file to
/// `path`, mode 0600.
pub fn write_test_key(path: &Path) {
    use base64::Engine as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("key file");
    writeln!(
        file,
        "1 {}\n2 {}",
        b64.encode(TEST_KEY),
        b64.encode(TEST_KEY_V2)
    )
    .unwrap();
}

/// `pactgate serve` as a child process: the dev certificates of one party, a pseudonymisation
/// service of its own (in this process), a data dir in a temporary directory, `RUST_LOG=debug`,
/// stderr captured to a file per start. Can be SIGKILLed and started again on the same data dir.
pub struct ProcessNode {
    pub party: String,
    pub addr: SocketAddr,
    child: Option<Child>,
    starts: usize,
    policy: Option<PathBuf>,
    /// More `serve` arguments (e.g. `--crl FILE`).
    extra_args: Vec<std::ffi::OsString>,
    /// The descriptor limit (`prlimit --nofile`) to run under, if any.
    nofile: Option<u32>,
    /// The pseudonymisation service it uses, its own.
    service: TestPseudonymiser,
    dir: TempDir,
}

impl ProcessNode {
    /// Starts the binary with `--policy FILE` (or none) and more `serve` arguments; waits until
    /// it prints "listening on ADDR".
    pub fn start_with_args(
        party: &str,
        policy: Option<&Path>,
        extra_args: &[&std::ffi::OsStr],
    ) -> ProcessNode {
        let mut node = Self::unstarted(party, policy, new_process_dir(party));
        node.extra_args = extra_args.iter().map(|a| a.to_os_string()).collect();
        node.launch();
        node
    }

    /// Starts the binary (no policy) on a directory that may already hold a data dir (`data/`),
    /// with a pseudonymisation service of its own. Returns the node's stderr instead of
    /// panicking if it exits or does not print "listening on" in time, so a test can assert on a
    /// refusal to start.
    pub fn try_start_in(party: &str, dir: TempDir) -> Result<ProcessNode, (ExitStatus, String)> {
        let mut node = Self::unstarted(party, None, dir);
        node.try_launch()?;
        Ok(node)
    }

    fn unstarted(party: &str, policy: Option<&Path>, dir: TempDir) -> ProcessNode {
        ProcessNode {
            party: party.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            starts: 0,
            policy: policy.map(Path::to_path_buf),
            extra_args: Vec::new(),
            nofile: None,
            service: TestPseudonymiser::start(),
            dir,
        }
    }

    /// Starts the binary (no policy) with extra `serve` arguments and, if given, a limit on its
    /// open file descriptors.
    pub fn start_with_limits(party: &str, extra: &[&str], nofile: Option<u32>) -> ProcessNode {
        let mut node = Self::unstarted(party, None, new_process_dir(party));
        node.extra_args = extra.iter().map(std::ffi::OsString::from).collect();
        node.nofile = nofile;
        node.launch();
        node
    }

    /// Starts the binary (no policy) and waits until it prints "listening on ADDR".
    pub fn start(party: &str) -> ProcessNode {
        Self::start_with_policy(party, None)
    }

    /// Starts the binary with `--policy FILE` (or none) and waits until it prints "listening on
    /// ADDR". The policy must be valid: an invalid one stops the node right after that line.
    pub fn start_with_policy(party: &str, policy: Option<&Path>) -> ProcessNode {
        let mut node = Self::unstarted(party, policy, new_process_dir(party));
        node.launch();
        node
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The node's pseudonymisation service.
    pub fn pseudonymiser(&self) -> &TestPseudonymiser {
        &self.service
    }

    fn stderr_file(&self, start: usize) -> PathBuf {
        self.dir.path().join(format!("stderr-{start}.log"))
    }

    /// Everything the node wrote to stderr, over all its starts.
    pub fn stderr_log(&self) -> Vec<u8> {
        (0..self.starts)
            .flat_map(|i| std::fs::read(self.stderr_file(i)).unwrap_or_default())
            .collect()
    }

    fn launch(&mut self) {
        if let Err((status, stderr)) = self.try_launch() {
            panic!(
                "pactgate serve did not print \"listening on\"; exit {status:?}; stderr:\n{stderr}"
            );
        }
    }

    fn try_launch(&mut self) -> Result<(), (ExitStatus, String)> {
        assert!(self.child.is_none(), "already running");
        let (cert, _, ca) = cert_paths(&self.party);
        let key = private_tls_key(&self.party, self.dir.path());
        let stderr = std::fs::File::create(self.stderr_file(self.starts)).expect("stderr file");
        self.starts += 1;
        let mut command = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_pactgate"));
                clear_node_env(&mut c);
                c
            }
            None => pactgate_bin(),
        };
        command.arg("serve");
        if let Some(policy) = &self.policy {
            command.arg("--policy").arg(policy);
        }
        let mut child = command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--ca")
            .arg(ca)
            .args(pseudonymiser_flags(&self.service.config))
            .args(&self.extra_args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn pactgate serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        std::thread::spawn(move || {
            // Reads stdout to its end, so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    if let Ok(addr) = addr.parse() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => {
                self.addr = addr;
                self.child = Some(child);
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().expect("reap");
                Err((
                    status,
                    String::from_utf8_lossy(&self.stderr_log()).into_owned(),
                ))
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// SIGTERM, then wait for the exit (at most [`READY_TIMEOUT`]); returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pactgate serve did not stop within {READY_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the binary again on the same data dir (after [`kill`](Self::kill) or
    /// [`terminate`](Self::terminate)); it gets a new port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// A SignalIntakeService client as a development party.
    pub async fn intake_as(&self, party: &str) -> SignalIntakeServiceClient<Channel> {
        let channel = channel_with(self.addr, &material(party))
            .await
            .unwrap_or_else(|e| panic!("connect as {party}: {e}"));
        SignalIntakeServiceClient::new(channel)
    }

    pub async fn intake(&self) -> SignalIntakeServiceClient<Channel> {
        self.intake_as(&self.party.clone()).await
    }

    /// An Exchange client as a development party.
    pub async fn exchange_as(&self, party: &str) -> ExchangeServiceClient<Channel> {
        let channel = channel_with(self.addr, &material(party))
            .await
            .unwrap_or_else(|e| panic!("connect as {party}: {e}"));
        ExchangeServiceClient::new(channel)
    }

    /// Sends SIGHUP (the node reloads its policy), with `kill` rather than libc.
    pub fn hangup(&self) {
        let sent = Command::new("kill")
            .arg("-HUP")
            .arg(self.pid().to_string())
            .status()
            .expect("kill -HUP");
        assert!(sent.success(), "kill -HUP failed");
    }

    /// Whether the node is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// Waits (at most [`READY_TIMEOUT`]) until the node's stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let started = Instant::now();
        while !contains_bytes(&self.stderr_log(), needle.as_bytes()) {
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "the node never logged {needle:?}; stderr:\n{}",
                String::from_utf8_lossy(&self.stderr_log())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A temporary directory for a [`ProcessNode`].
fn new_process_dir(party: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("pactgate-proc-{party}-"))
        .tempdir()
        .expect("temp dir")
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// A federation of nodes, and the exchange under the covenant
// ---------------------------------------------------------------------------------------------

/// The OIN of a development party (its certificate's serialNumber).
pub fn oin(party: &str) -> String {
    dev_party(party)
        .unwrap_or_else(|| panic!("no dev party {party}"))
        .oin
        .to_owned()
}

/// A peer entry naming a development party at `addr`.
pub fn peer_config(party: &str, addr: SocketAddr) -> PeerConfig {
    PeerConfig {
        name: party.to_owned(),
        address: addr.to_string(),
        oin: oin(party),
    }
}

/// In-process nodes on 127.0.0.1 that are each other's peers: every listener is bound before any
/// node starts, so each node's peer list holds the others' real addresses.
pub struct Federation {
    nodes: Vec<TestNode>,
}

impl Federation {
    /// Nodes of these parties, under the shipped policy.
    pub async fn start(parties: &[&str]) -> Federation {
        Self::start_with(parties, Some(policy_path()), Vec::new()).await
    }

    /// Nodes of these parties under `policy`; every node also gets `extra_peers` (for example a
    /// peer that is down).
    pub async fn start_with(
        parties: &[&str],
        policy: Option<PathBuf>,
        extra_peers: Vec<PeerConfig>,
    ) -> Federation {
        Self::start_tuned(parties, policy, extra_peers, NodeTuning::default()).await
    }

    /// [`Federation::start_with`], every node with `tuning`.
    pub async fn start_tuned(
        parties: &[&str],
        policy: Option<PathBuf>,
        extra_peers: Vec<PeerConfig>,
        tuning: NodeTuning,
    ) -> Federation {
        let listeners: Vec<std::net::TcpListener> =
            parties.iter().map(|_| bind_loopback()).collect();
        let configs: Vec<PeerConfig> = parties
            .iter()
            .zip(&listeners)
            .map(|(party, l)| peer_config(party, l.local_addr().unwrap()))
            .collect();
        let starts = parties.iter().zip(listeners).map(|(party, listener)| {
            let mut peers: Vec<PeerConfig> = configs
                .iter()
                .filter(|c| c.name != *party)
                .cloned()
                .collect();
            peers.extend(extra_peers.iter().cloned());
            let options = NodeOptions {
                policy: policy.clone(),
                peers,
            };
            TestNode::start_tuned_on(party, options, tuning.clone(), listener)
        });
        Federation {
            nodes: futures::future::join_all(starts).await,
        }
    }

    /// The node of a party.
    pub fn node(&self, party: &str) -> &TestNode {
        self.nodes
            .iter()
            .find(|n| n.party == party)
            .unwrap_or_else(|| panic!("no node {party} in the federation"))
    }

    /// Takes a node out of the federation (to stop it); the others keep it as a peer.
    pub fn take(&mut self, party: &str) -> TestNode {
        let i = self
            .nodes
            .iter()
            .position(|n| n.party == party)
            .unwrap_or_else(|| panic!("no node {party} in the federation"));
        self.nodes.remove(i)
    }

    pub fn parties(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.party.clone()).collect()
    }
}

/// An address on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap()
}

/// A TCP server on 127.0.0.1 that accepts connections and never says a word: a peer that hangs
/// in the TLS handshake. Stops accepting when dropped.
pub struct SilentPeer {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentPeer {
    pub fn start() -> SilentPeer {
        let listener = bind_loopback();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentPeer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A claim under a routine flow.
pub fn flow_claim(role: &str, basis: &str, purpose: &str, flow: &str) -> pb::AccessClaim {
    pb::AccessClaim {
        role: role.into(),
        legal_basis: basis.into(),
        purpose: purpose.into(),
        actor: "test".into(),
        context: Some(pb::access_claim::Context::RoutineFlow(flow.into())),
    }
}

/// A claim in a case of a case meeting.
pub fn case_claim(
    role: &str,
    basis: &str,
    purpose: &str,
    meeting: &str,
    case_id: &str,
) -> pb::AccessClaim {
    pb::AccessClaim {
        role: role.into(),
        legal_basis: basis.into(),
        purpose: purpose.into(),
        actor: "test".into(),
        context: Some(pb::access_claim::Context::CaseRef(pb::CaseRef {
            meeting_type: meeting.into(),
            case_id: case_id.into(),
        })),
    }
}

/// The leerplicht claim of the routine absence flow, every part right.
pub fn verzuimmelding_claim() -> pb::AccessClaim {
    flow_claim(
        "leerplichtambtenaar",
        "lpw-art21",
        "verzuimaanpak",
        "verzuimmelding",
    )
}

/// ExchangeService/Query with a claim and no filter.
pub async fn query(
    client: &mut ExchangeServiceClient<Channel>,
    claim: pb::AccessClaim,
) -> Result<pb::QueryResponse, tonic::Status> {
    query_filtered(client, claim, pb::QueryFilter::default()).await
}

/// ExchangeService/Query with a claim and a filter.
pub async fn query_filtered(
    client: &mut ExchangeServiceClient<Channel>,
    claim: pb::AccessClaim,
    filter: pb::QueryFilter,
) -> Result<pb::QueryResponse, tonic::Status> {
    client
        .query(pb::QueryRequest {
            claim: Some(claim),
            filter: Some(filter),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts a status is PERMISSION_DENIED and its message contains every one of `parts`.
pub fn assert_denied(result: Result<impl std::fmt::Debug, tonic::Status>, parts: &[&str]) {
    let status = match result {
        Ok(answer) => panic!("expected PERMISSION_DENIED naming {parts:?}, got {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(
        status.code(),
        tonic::Code::PermissionDenied,
        "expected PERMISSION_DENIED, got {status:?}"
    );
    for part in parts {
        assert!(
            status.message().contains(part),
            "the reason {:?} does not name {part:?}",
            status.message()
        );
    }
}

/// FederationService/QueryPeers at the party's own node.
pub async fn federated(
    node: &TestNode,
    claim: pb::AccessClaim,
    filter: pb::QueryFilter,
    timeout_ms: u32,
) -> pb::QueryPeersResponse {
    node.federation_as(&node.party.clone())
        .await
        .query_peers(pb::QueryPeersRequest {
            claim: Some(claim),
            filter: Some(filter),
            timeout_ms,
        })
        .await
        .unwrap_or_else(|s| panic!("FederationService/QueryPeers at {}: {s:?}", node.party))
        .into_inner()
}

/// The answer of one peer in a federated response.
pub fn answer_of<'a>(
    response: &'a pb::QueryPeersResponse,
    peer: &str,
) -> Option<&'a pb::QueryResponse> {
    response
        .answers
        .iter()
        .find(|a| a.peer == peer)
        .and_then(|a| a.response.as_ref())
}

/// The failure of one peer in a federated response.
pub fn failure_of<'a>(
    response: &'a pb::QueryPeersResponse,
    peer: &str,
) -> Option<&'a pb::PeerFailure> {
    response.failures.iter().find(|f| f.peer == peer)
}

/// Pushes records to a node as its own party and asserts every one was accepted.
pub async fn push_all(node: &TestNode, records: Vec<pb::SignalRecord>) {
    let n = records.len();
    let report = push(&mut node.intake().await, records)
        .await
        .unwrap_or_else(|s| panic!("push to {}: {s:?}", node.party));
    assert!(
        report.rejected.is_empty(),
        "push to {} rejected {:?}",
        node.party,
        report.rejected
    );
    assert_eq!(report.accepted as usize, n);
}

/// A record of a given category, municipality and school, absent `days_absent` days (the
/// absence date makes a record recognisable in a minimised answer).
pub fn record(
    id: &str,
    bsn: &str,
    category: pb::Category,
    municipality: &str,
    school: &str,
    days_absent: i64,
) -> pb::SignalRecord {
    pb::SignalRecord {
        category: category as i32,
        residence_municipality: municipality.into(),
        school: school.into(),
        absent_since: date_from_today(-days_absent),
        ..good_record(id, bsn)
    }
}

// ---------------------------------------------------------------------------------------------
// Minimisation
// ---------------------------------------------------------------------------------------------

/// The signal fields (by proto name, as `QueryResponse.disclosed_fields` names them) that carry
/// a value in a view. The counting details count as `category` (they qualify it) and `closed_on`
/// as `status`; `updated_at` says nothing about the pupil and is not counted.
pub fn carried_fields(v: &pb::SignalView) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut add = |set: bool, name: &'static str| {
        if set && !out.contains(&name) {
            out.push(name);
        }
    };
    add(!v.source_record_id.is_empty(), "source_record_id");
    add(!v.pupil_pseudonym.is_empty(), "pupil_pseudonym");
    add(v.category != 0, "category");
    add(v.sector != 0, "sector");
    add(
        !v.residence_municipality.is_empty(),
        "residence_municipality",
    );
    add(!v.school.is_empty(), "school");
    add(!v.absent_since.is_empty(), "absent_since");
    add(v.status != 0, "status");
    add(!v.offer_date.is_empty(), "offer_date");
    add(v.age != 0, "age");
    add(
        v.address_under_investigation
            || v.exemption_5c_requested
            || v.awaiting_mbo_intake
            || v.exemption_term != 0
            || !v.exemption_end.is_empty(),
        "category",
    );
    add(!v.closed_on.is_empty(), "status");
    add(!v.age_on.is_empty(), "age");
    add(
        v.offer_kind != 0 || !v.offer_place_from.is_empty() || v.offer_parents_agreed,
        "offer_date",
    );
    out
}

/// Asserts no view carries a field outside `allowed`.
pub fn assert_minimised(views: &[pb::SignalView], allowed: &[&str], who: &str) {
    for v in views {
        for field in carried_fields(v) {
            assert!(
                allowed.contains(&field),
                "{who}: field {field} left the node, but only {allowed:?} may"
            );
        }
    }
}

/// The proto names of a permit's fields.
pub fn permit_field_names(permit: &pactgate::policy::Permit) -> Vec<&'static str> {
    permit.fields().iter().map(|f| f.name()).collect()
}

/// The shipped policy, loaded as a node loads it.
pub fn shipped_policy() -> pactgate::policy::Policy {
    pactgate::policy::Policy::load(&policy_path()).expect("the shipped policy is valid")
}

// ---------------------------------------------------------------------------------------------
// Policy files of a test's own
// ---------------------------------------------------------------------------------------------

/// A policy file in a temporary directory, starting as a copy of the shipped one.
pub struct PolicyFile {
    pub path: PathBuf,
    _dir: TempDir,
}

impl PolicyFile {
    /// A copy of `policies/groningen.toml`.
    pub fn shipped_copy() -> PolicyFile {
        let text = std::fs::read_to_string(policy_path()).expect("groningen.toml");
        Self::with_text(&text)
    }

    /// A policy file with this text (named `covenant.toml`).
    pub fn with_text(text: &str) -> PolicyFile {
        let dir = tempfile::Builder::new()
            .prefix("pactgate-policy-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().join("covenant.toml");
        std::fs::write(&path, text).expect("write policy");
        PolicyFile { path, _dir: dir }
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).expect("read policy")
    }

    /// Replaces the file's text atomically (write a sibling, rename over), as an editor or a
    /// deployment does, so a reload never reads half a file.
    pub fn replace_text(&self, text: &str) {
        let next = self.path.with_extension("toml.next");
        std::fs::write(&next, text).expect("write policy");
        std::fs::rename(&next, &self.path).expect("rename policy");
    }
}

/// `text` with the one occurrence of `from` replaced by `to` (panics unless there is exactly one).
pub fn edited(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur exactly once in the policy"
    );
    text.replacen(from, to, 1)
}

/// The 1-based line of the first occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    text[..at].matches('\n').count() + 1
}

// ---------------------------------------------------------------------------------------------
// Audit, clock and counting
// ---------------------------------------------------------------------------------------------

/// The shipped counting rules.
pub fn counting_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/counting.toml")
}

/// A W3C trace id (32 lowercase hex digits) that names a test and a request number. Its decimal
/// digits never run to nine (groups of at most seven between letters), so the node never takes
/// it for one that carries a pupil id and replaces it.
pub fn trace_id(test: u32, n: u64) -> String {
    assert!(
        test < 1 << 28 && n < 1 << 56,
        "trace_id({test}, {n}) out of range"
    );
    format!("{test:07x}e7e57ace{:07x}e{:07x}ab", n >> 28, n & 0xfff_ffff)
}

/// `message` as a request carrying `traceparent` with this trace id (and a fixed span id).
pub fn traced<T>(message: T, trace_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("00-{trace_id}-00f067aa0ba902b7-01");
    request.metadata_mut().insert(
        pactgate::trace::TRACEPARENT,
        value.parse().expect("a valid metadata value"),
    );
    request
}

/// A node's two audit keys (log, witness) as PKCS#8.
type KeyPair = (Vec<u8>, Vec<u8>);

/// Per party name, its nodes' audit keys (log, witness) as PKCS#8, made once per test binary: every
/// node of a party gets the same keys, so its peers can pin them before it starts.
fn party_audit_keys(party: &str) -> KeyPair {
    static KEYS: OnceLock<Mutex<HashMap<String, KeyPair>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let gen = || pactgate::audit::SigningKey::generate_pkcs8().expect("generate a key");
    keys.entry(party.to_owned())
        .or_insert_with(|| (gen(), gen()))
        .clone()
}

/// Puts the party's audit keys in a node's data dir, unless it has its own already.
pub fn install_audit_keys(party: &str, data_dir: &Path) {
    let (log, witness) = party_audit_keys(party);
    std::fs::create_dir_all(data_dir).expect("create the data dir");
    for (file, pkcs8) in [
        (pactgate::node::AUDIT_KEY_FILE, log),
        (pactgate::node::WITNESS_KEY_FILE, witness),
    ] {
        let path = data_dir.join(file);
        if !path.exists() {
            std::fs::write(&path, pkcs8).expect("write a key file");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .expect("key file mode");
            }
        }
    }
}

/// The verifier keys of the nodes of `party` (OIN `oin`): what its peers pin.
pub fn audit_keys_of(party: &str, oin: &str) -> pactgate::node::AuditVerifierKeys {
    let (log, witness) = party_audit_keys(party);
    let key = |pkcs8: &[u8]| pactgate::audit::SigningKey::from_pkcs8(pkcs8).expect("a key");
    pactgate::node::AuditVerifierKeys {
        log: key(&log).verifier_key(&format!("pactgate/{oin}")),
        witness: key(&witness).cosignature_verifier_key(&pactgate::node::witness_name(oin)),
    }
}

/// An HTTPS client with a development party's certificate (the covenant's mutual TLS, HTTP/2),
/// for a node's HTTP endpoints such as `POST /add-checkpoint`.
pub fn https_client(party: &str) -> reqwest::Client {
    let config = material(party)
        .client_config_tls13()
        .expect("client TLS config");
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTPS client")
}

/// POSTs a c2sp.org/tlog-witness `add-checkpoint` body to a node as `party`: the status, the
/// content type and the body of the answer.
pub async fn add_checkpoint(node: SocketAddr, party: &str, body: String) -> (u16, String, String) {
    let response = https_client(party)
        .post(format!("https://{node}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .expect("the witness answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("a body"))
}

/// The witness name under which a development party's node cosigns.
pub fn witness_of(party: &str) -> String {
    pactgate::node::witness_name(&oin(party))
}

/// The checkpoint origin of a development party's audit log.
pub fn origin_of(party: &str) -> String {
    format!("pactgate/{}", oin(party))
}

/// Every entry of a node's audit log, as the FG lists it (this call is itself audited).
pub async fn fg_entries(node: &TestNode, filter: pb::AuditFilter) -> Vec<pb::AuditEntry> {
    let mut stream = node
        .audit_as("fg")
        .await
        .stream_entries(pb::StreamEntriesRequest {
            filter: Some(filter),
        })
        .await
        .expect("StreamEntries as the FG")
        .into_inner();
    let mut entries = Vec::new();
    while let Some(e) = stream.message().await.expect("an entry") {
        entries.push(e.entry.expect("a StreamEntries message carries its entry"));
    }
    entries
}

/// Waits (at most [`READY_TIMEOUT`]) until the node's newest checkpoint covers at least
/// `min_size` entries and the witness of `witness_party` cosigned it; returns it. Every look is
/// an FG call, itself audited, so the log grows while waiting.
pub async fn wait_cosigned(
    node: &TestNode,
    witness_party: &str,
    min_size: u64,
) -> pb::SignedCheckpoint {
    let started = Instant::now();
    let witness = witness_of(witness_party);
    let mut fg = node.audit_as("fg").await;
    loop {
        let latest = fg
            .latest_checkpoint(pb::LatestCheckpointRequest {})
            .await
            .map(|r| r.into_inner().checkpoint.expect("a checkpoint"));
        if let Ok(cp) = &latest {
            if cp.size >= min_size && cp.witnesses.contains(&witness) {
                return cp.clone();
            }
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "{} has no checkpoint of {min_size}+ entries cosigned by {witness}: {latest:?}",
            node.party
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The signing key a node keeps in its data dir for its checkpoints and cosignatures.
pub fn audit_key(data_dir: &Path) -> pactgate::audit::SigningKey {
    let pkcs8 = std::fs::read(data_dir.join(pactgate::node::AUDIT_KEY_FILE)).expect("audit key");
    pactgate::audit::SigningKey::from_pkcs8(&pkcs8).expect("a PKCS#8 Ed25519 key")
}

/// The sled database of a stopped node (`DATA_DIR/store`).
pub fn open_db(data_dir: &Path) -> sled::Db {
    pactgate::store::open_stopped(data_dir).expect("open the stopped node's store")
}

/// The audit log of a stopped node of `party`, through the library.
pub fn open_audit(db: &sled::Db, data_dir: &Path, party: &str) -> pactgate::audit::AuditLog {
    pactgate::audit::AuditLog::open(db, &oin(party), audit_key(data_dir)).expect("open audit log")
}

/// Every entry of a stopped node's audit log, read with the library.
pub fn stored_entries(data_dir: &Path, party: &str) -> Vec<pactgate::audit::Entry> {
    let db = open_db(data_dir);
    let log = open_audit(&db, data_dir, party);
    log.range(0, log.len())
        .collect::<Result<_, _>>()
        .expect("readable entries")
}

/// `pactgate audit verify --data-dir DIR [--peer-checkpoint FILE]...` (the node stopped).
pub fn verify_offline(data_dir: &Path, peer_checkpoints: &[PathBuf]) -> std::process::Output {
    let mut cmd = pactgate_bin();
    cmd.arg("audit")
        .arg("verify")
        .arg("--data-dir")
        .arg(data_dir);
    for file in peer_checkpoints {
        cmd.arg("--peer-checkpoint").arg(file);
    }
    run_within(&mut cmd, Duration::from_secs(30))
}

/// Asserts an offline verify found the log intact.
pub fn assert_verifies(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: audit verify failed: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        contains_bytes(&output.stdout, b"verified"),
        "{what}: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Asserts an offline verify exited 2 naming `first_bad` as the first bad sequence number;
/// returns its stderr.
pub fn assert_tamper_found(output: &std::process::Output, first_bad: u64, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{what}: audit verify should exit 2; stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    let line = format!("first bad sequence number: {first_bad}\n");
    assert!(
        stderr.contains(&line),
        "{what}: expected {line:?} in:\n{stderr}"
    );
    stderr
}

/// Every key and every value of every tree of a stopped node's store whose name starts with
/// `prefix`, each with the tree's name.
pub fn tree_keys_and_values(data_dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let db = open_db(data_dir);
    let mut out = Vec::new();
    for name in db.tree_names() {
        if !name.starts_with(prefix.as_bytes()) {
            continue;
        }
        let tree = db.open_tree(&name).expect("open tree");
        let name = String::from_utf8_lossy(&name).into_owned();
        for kv in tree.iter() {
            let (k, v) = kv.expect("read");
            out.push((name.clone(), k.to_vec()));
            out.push((name.clone(), v.to_vec()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The REST API (`/v1`)
// ---------------------------------------------------------------------------------------------

/// An HTTPS client for a node's REST API with the TLS material `tls`, over HTTP/2 (ALPN h2) or,
/// with `http1`, HTTP/1.1 (ALPN http/1.1).
pub fn rest_client_with(tls: &TlsMaterial, http1: bool) -> reqwest::Client {
    let mut config = tls.client_config_tls13().expect("client TLS config");
    let builder = if http1 {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        reqwest::Client::builder().http1_only()
    } else {
        reqwest::Client::builder().http2_prior_knowledge()
    };
    builder
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTPS client")
}

/// [`rest_client_with`] a development party's own certificate, over HTTP/2.
pub fn rest_client(party: &str) -> reqwest::Client {
    rest_client_with(&material(party), false)
}

/// The base URL of a node's REST API (the OpenAPI document's server).
pub fn rest_base(node: SocketAddr) -> String {
    format!("https://{node}/v1")
}

/// A REST answer read whole: status, content type, `API-Version` header and the JSON body
/// (`Null` for a body that is not JSON).
#[derive(Debug)]
pub struct RestAnswer {
    pub status: u16,
    pub content_type: String,
    pub api_version: Option<String>,
    pub body: serde_json::Value,
    pub text: String,
}

impl RestAnswer {
    pub async fn read(response: reqwest::Response) -> RestAnswer {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let content_type = header("content-type").unwrap_or_default();
        let api_version = header("api-version");
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        RestAnswer {
            status,
            content_type,
            api_version,
            body,
            text,
        }
    }

    /// Asserts the answer is a problem (RFC 9457) of `status` with the API version, and returns
    /// its detail.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(
            self.api_version.as_deref(),
            Some(pactgate::rest::version::API_VERSION),
            "{self:?}"
        );
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["title"].is_string(), "{self:?}");
        self.body["detail"].as_str().expect("a detail").to_owned()
    }
}

/// Sends `method` `path` (under `/v1`) to a node as `client`, with a JSON body if given.
pub async fn rest_call(
    client: &reqwest::Client,
    node: SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> RestAnswer {
    let mut request = client.request(method, format!("{}{path}", rest_base(node)));
    if let Some(body) = body {
        request = request.json(body);
    }
    RestAnswer::read(request.send().await.expect("the node answers")).await
}
