//! The one test harness: real pactgate nodes on `127.0.0.1:0` with the development certificates
//! and a temporary data dir, in-process ([`TestNode`], on a thread and runtime of its own) or as
//! the real binary ([`ProcessNode`], which can be SIGKILLed), plus test data: good records, valid
//! BSNs, and certificates the node must refuse. Every node stops when dropped.
#![allow(dead_code)]

use pactgate::certs::{dev_party, DevCa};
use pactgate::pb;
use pactgate::pb::signal_intake_client::SignalIntakeClient;
use pactgate::pseudonym::{PseudonymKey, PupilId, KEY_LEN};
use pactgate::tls::TlsMaterial;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tonic::transport::Channel;

/// The pseudonymisation key every test node uses (version 1).
pub const TEST_KEY: [u8; KEY_LEN] = [0x5a; KEY_LEN];
/// How long a node may take to become ready or to stop.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping in-process node may take to close its connections gracefully before it is
/// stopped hard.
const GRACE: Duration = Duration::from_secs(5);

/// The test key.
pub fn test_key() -> PseudonymKey {
    PseudonymKey::from_bytes(1, &TEST_KEY)
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

/// Pushes records and returns the report or the status.
pub async fn push(
    client: &mut SignalIntakeClient<Channel>,
    records: Vec<pb::SignalRecord>,
) -> Result<pb::PushReport, tonic::Status> {
    client
        .push(tokio_stream::iter(records))
        .await
        .map(tonic::Response::into_inner)
}

/// Lists with a request and collects the stream.
pub async fn list(
    client: &mut SignalIntakeClient<Channel>,
    request: pb::ListRequest,
) -> Result<Vec<pb::SignalView>, tonic::Status> {
    let mut stream = client.list(request).await?.into_inner();
    let mut views = Vec::new();
    while let Some(v) = stream.message().await? {
        views.push(v);
    }
    Ok(views)
}

/// Every stored signal.
pub async fn list_all(client: &mut SignalIntakeClient<Channel>) -> Vec<pb::SignalView> {
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

/// A node running on a thread with a runtime of its own.
struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

fn spawn_node(party: &str, data_dir: PathBuf) -> Running {
    let tls = material(party);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("node-{party}-{}", addr.port()))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let result = rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
                let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
                let shutdown = async move {
                    let _ = stop_rx.await;
                    let _ = stopping_tx.send(());
                };
                let mut setup = pactgate::node::NodeSetup::new(tls, test_key(), data_dir);
                setup.policy = Some(policy_path());
                tokio::select! {
                    served = pactgate::node::serve(setup, listener, shutdown) => {
                        served.map_err(|e| format!("node::serve failed: {e}"))
                    }
                    () = async {
                        let _ = stopping_rx.await;
                        tokio::time::sleep(GRACE).await;
                    } => Err(format!("connections still open {GRACE:?} after shutdown")),
                }
            });
            rt.shutdown_timeout(GRACE);
            result
        })
        .expect("spawn node thread");
    Running { addr, stop, thread }
}

impl Running {
    /// Stops the node and waits until its thread (and so its store) is gone.
    fn stop_blocking(self) -> Result<(), String> {
        let _ = self.stop.send(());
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// A real node in this process: the dev certificates of one party, a temporary data dir, the
/// test key, a free port on 127.0.0.1. Stops gracefully on [`TestNode::stop`] and on drop.
pub struct TestNode {
    pub party: String,
    running: Option<Running>,
    dir: TempDir,
}

impl TestNode {
    /// Starts a node for a development party and waits until its health check says SERVING.
    pub async fn start(party: &str) -> TestNode {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pactgate-{party}-"))
            .tempdir()
            .expect("temp dir");
        let mut node = TestNode {
            party: party.to_owned(),
            running: None,
            dir,
        };
        node.launch().await;
        node
    }

    async fn launch(&mut self) {
        self.running = Some(spawn_node(&self.party, self.data_dir()));
        self.wait_ready().await;
    }

    /// Waits until the node answers its health check, failing with the node's own error if it
    /// stopped instead.
    async fn wait_ready(&mut self) {
        let started = Instant::now();
        let tls = material(&self.party);
        loop {
            if self
                .running
                .as_ref()
                .is_some_and(|r| r.thread.is_finished())
            {
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

    /// A channel to the node as a development party.
    pub async fn channel_as(&self, party: &str) -> Channel {
        channel_with(self.addr(), &material(party))
            .await
            .unwrap_or_else(|e| panic!("connect as {party}: {e}"))
    }

    /// A SignalIntake client as a development party.
    pub async fn intake_as(&self, party: &str) -> SignalIntakeClient<Channel> {
        SignalIntakeClient::new(self.channel_as(party).await)
    }

    /// A SignalIntake client as the node's own party.
    pub async fn intake(&self) -> SignalIntakeClient<Channel> {
        self.intake_as(&self.party.clone()).await
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
        let Some(running) = self.running.take() else {
            return;
        };
        if let Err(e) = running.stop_blocking() {
            if std::thread::panicking() {
                eprintln!("node {} did not stop cleanly: {e}", self.party);
            } else {
                panic!("node {} did not stop cleanly: {e}", self.party);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------------

/// The `pactgate` binary of this build.
pub fn pactgate_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pactgate"));
    cmd.env_remove("PACTGATE_LOG")
        .env_remove("PACTGATE_NODE")
        .env_remove("PACTGATE_CERT")
        .env_remove("PACTGATE_KEY")
        .env_remove("PACTGATE_CA")
        .env_remove("PACTGATE_PSEUDONYM_KEY");
    cmd
}

/// Writes the test key to `path`, mode 0600.
pub fn write_test_key(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("key file");
    file.write_all(&TEST_KEY).unwrap();
}

/// `pactgate serve` as a child process: the dev certificates of one party, the test key in a
/// 0600 file and a data dir in a temporary directory, `PACTGATE_LOG=debug`, stderr captured to a
/// file per start. Can be SIGKILLed and started again on the same data dir.
pub struct ProcessNode {
    pub party: String,
    pub addr: SocketAddr,
    child: Option<Child>,
    starts: usize,
    dir: TempDir,
}

impl ProcessNode {
    /// Starts the binary and waits until it prints "listening on ADDR".
    pub fn start(party: &str) -> ProcessNode {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pactgate-proc-{party}-"))
            .tempdir()
            .expect("temp dir");
        write_test_key(&dir.path().join("pseudonym.key"));
        let mut node = ProcessNode {
            party: party.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            starts: 0,
            dir,
        };
        node.launch();
        node
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("pseudonym.key")
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
        assert!(self.child.is_none(), "already running");
        let (cert, key, ca) = cert_paths(&self.party);
        let stderr = std::fs::File::create(self.stderr_file(self.starts)).expect("stderr file");
        self.starts += 1;
        let mut child = pactgate_bin()
            .arg("serve")
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
            .arg("--pseudonym-key")
            .arg(self.key_file())
            .env("PACTGATE_LOG", "debug")
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
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "pactgate serve did not print \"listening on\" ({e}); exit {status:?}; stderr:\n{}",
                    String::from_utf8_lossy(&self.stderr_log())
                );
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

    /// A SignalIntake client as a development party.
    pub async fn intake_as(&self, party: &str) -> SignalIntakeClient<Channel> {
        let channel = channel_with(self.addr, &material(party))
            .await
            .unwrap_or_else(|e| panic!("connect as {party}: {e}"));
        SignalIntakeClient::new(channel)
    }

    pub async fn intake(&self) -> SignalIntakeClient<Channel> {
        self.intake_as(&self.party.clone()).await
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.kill();
    }
}
