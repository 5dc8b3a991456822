//! Limits on everything a caller controls, one piece for every listener a node has (gRPC now;
//! REST, console, witness and pseudonymisation service later): connections in the TLS handshake
//! and per organisation, HTTP/2 streams, keepalive and request deadlines, requests in flight,
//! pushes and CPU-heavy work at once, repeated fields, who may call at all, and the hard close at
//! the end of the shutdown grace. Counts and refuses; never reads a payload or a pupil id.
//!
//! Invariant: whatever a caller does, the node holds at most `max_handshakes` unauthenticated
//! connections, `max_connections_per_org` per organisation and `max_in_flight` requests.

use crate::audit::Refusals;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tonic::codegen::http;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

/// The limits of a node, from the `[limits]` table of its config; every setting has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Connections still in the TLS handshake, in all. A new connection beyond this closes the
    /// oldest one still handshaking, so idle sockets cannot lock legitimate clients out.
    pub max_handshakes: usize,
    /// Established connections per organisation (OIN of the client certificate).
    pub max_connections_per_org: usize,
    /// HTTP/2 keepalive: a PING after this much silence.
    pub keepalive_interval_secs: u64,
    /// HTTP/2 keepalive: the connection closes when a PING is not answered within this.
    pub keepalive_timeout_secs: u64,
    /// Concurrent HTTP/2 streams (requests) per connection.
    pub max_streams_per_connection: u32,
    /// The deadline of every request but a Push (for a streamed answer: until its first message).
    pub request_timeout_secs: u64,
    /// The deadline of a whole Push stream.
    pub push_timeout_secs: u64,
    /// How long a Push stream may go without a record.
    pub push_idle_secs: u64,
    /// Requests being handled at once, in all.
    pub max_in_flight: usize,
    /// Push streams at once, in all.
    pub max_pushes: usize,
    /// Records per durable batch of a Push.
    pub push_batch: usize,
    /// CPU-heavy computations (reports, counts over many dates) at once, off the async workers.
    pub max_heavy: usize,
    /// Reference dates per Counts or Report request.
    pub max_reference_dates: usize,
    /// After SIGTERM or Ctrl-C: how long requests in flight may take before the rest is closed.
    pub shutdown_grace_secs: u64,
    /// sled's page cache, in MiB. sled 0.34 holds several times this (BENCHMARKS.md, Memory).
    pub store_cache_mib: u64,
    /// Refusals that name no pupil are audited as one entry per caller per window of this length.
    pub refusal_window_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout_secs: 10,
            max_handshakes: 64,
            max_connections_per_org: 64,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 10,
            max_streams_per_connection: 64,
            request_timeout_secs: 60,
            push_timeout_secs: 1_800,
            push_idle_secs: 30,
            max_in_flight: 256,
            max_pushes: 4,
            push_batch: 1_000,
            max_heavy: 2,
            max_reference_dates: 120,
            shutdown_grace_secs: 10,
            store_cache_mib: 4,
            refusal_window_secs: 60,
        }
    }
}

impl Limits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn push_idle(&self) -> Duration {
        Duration::from_secs(self.push_idle_secs)
    }

    /// The deadline of a request to `path`.
    fn deadline(&self, path: &str) -> Duration {
        if path == PUSH_PATH {
            Duration::from_secs(self.push_timeout_secs)
        } else {
            self.request_timeout()
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn refusal_window(&self) -> Duration {
        Duration::from_secs(self.refusal_window_secs.max(1))
    }

    pub fn store_cache_bytes(&self) -> u64 {
        self.store_cache_mib.max(1) * 1024 * 1024
    }

    /// A gRPC server builder with these limits on HTTP/2 (the deadlines are the [`GateLayer`]'s).
    pub fn grpc_server(&self) -> tonic::transport::Server {
        tonic::transport::Server::builder()
            .max_concurrent_streams(self.max_streams_per_connection)
            .http2_keepalive_interval(Some(Duration::from_secs(self.keepalive_interval_secs)))
            .http2_keepalive_timeout(Some(Duration::from_secs(self.keepalive_timeout_secs)))
            .http2_max_header_list_size(64 * 1024)
    }
}

/// The most values a repeated filter field of a request may hold (there are a handful of
/// categories; more is a malformed request).
pub const MAX_FILTER_VALUES: usize = 16;

/// Why heavy work did not run to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeavyError {
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("the node failed while handling the request; nothing was acknowledged")]
    Failed,
}

/// All places for pushes are taken; holds how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node takes at most {0} pushes at once; try again when one has finished")]
pub struct PushesFull(pub usize);

/// Refuses a repeated field with more than `max` items: INVALID_ARGUMENT naming the field.
pub fn check_count(field: &str, count: usize, max: usize) -> Result<(), Status> {
    if count <= max {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "{field}: {count} items; a request may carry at most {max}"
    )))
}

/// The reasons a refusal that names no pupil is counted under (fixed texts, never caller data).
pub mod reason {
    pub const NOT_A_PARTY: &str = "no party of the covenant";
    pub const NO_IDENTITY: &str = "certificate names no organisation";
    pub const IN_FLIGHT: &str = "too many requests in flight";
    pub const PUSHES: &str = "too many pushes at once";
    pub const INVALID: &str = "malformed or oversized request";
    pub const CASE_RATE: &str = "case actions beyond the rate limit";
}

/// The shared state behind the limits of one node: counters, semaphores, the refusal tally and
/// the switch that closes every connection at the end of the shutdown grace.
pub struct Gate {
    limits: Limits,
    handshakes: Mutex<Handshakes>,
    orgs: Mutex<HashMap<String, usize>>,
    in_flight: Arc<Semaphore>,
    pushes: Arc<Semaphore>,
    heavy: Arc<Semaphore>,
    closing: tokio::sync::watch::Sender<bool>,
    refusals: Refusals,
}

#[derive(Default)]
struct Handshakes {
    next: u64,
    pending: VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            pushes: Arc::new(Semaphore::new(limits.max_pushes.max(1))),
            heavy: Arc::new(Semaphore::new(limits.max_heavy.max(1))),
            handshakes: Mutex::new(Handshakes::default()),
            orgs: Mutex::new(HashMap::new()),
            closing: tokio::sync::watch::channel(false).0,
            refusals: Refusals::default(),
            limits,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The refusals of the current window that name no pupil.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// A slot for one more connection in the TLS handshake. When all slots are taken, the oldest
    /// handshake still pending is told to give up (its receiver completes).
    pub fn handshake_slot(self: &Arc<Self>) -> (HandshakeSlot, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut h = lock(&self.handshakes);
        while h.pending.len() >= self.limits.max_handshakes.max(1) {
            if let Some((_, oldest)) = h.pending.pop_front() {
                let _ = oldest.send(());
            }
        }
        let id = h.next;
        h.next += 1;
        h.pending.push_back((id, tx));
        let slot = HandshakeSlot {
            gate: self.clone(),
            id,
        };
        (slot, rx)
    }

    /// Admits an established TLS connection if its organisation has a connection left; the
    /// connection gives its place back when closed.
    pub fn admit(self: &Arc<Self>, tls: TlsStream<TcpStream>) -> Result<Conn, String> {
        let oin = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|leaf| crate::identity::organisation_of(leaf.as_ref()).ok())
            .map(|org| org.oin.into_string())
            .unwrap_or_default();
        {
            let mut orgs = lock(&self.orgs);
            let open = orgs.entry(oin.clone()).or_default();
            if *open >= self.limits.max_connections_per_org {
                return Err(oin);
            }
            *open += 1;
        }
        let mut closing = self.closing.subscribe();
        Ok(Conn {
            inner: tls,
            _slot: OrgSlot {
                gate: self.clone(),
                oin,
            },
            closing: Box::pin(async move {
                if closing.wait_for(|closed| *closed).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }),
            closed: false,
        })
    }

    /// Closes every connection admitted through this gate (the end of the shutdown grace).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// A place for one Push stream, or RESOURCE_EXHAUSTED when all are taken.
    pub fn push_permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.push_place()
            .map_err(|full| Status::resource_exhausted(full.to_string()))
    }

    /// A place for one push (of any transport), or why there is none.
    pub fn push_place(&self) -> Result<OwnedSemaphorePermit, PushesFull> {
        self.pushes
            .clone()
            .try_acquire_owned()
            .map_err(|_| PushesFull(self.limits.max_pushes))
    }

    /// Runs CPU-heavy work on a blocking thread, at most `max_heavy` at once; the others wait
    /// their turn (within the request's deadline).
    pub async fn heavy<T, F>(&self, work: F) -> Result<T, HeavyError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .heavy
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HeavyError::ShuttingDown)?;
        // The permit goes with the work: a request dropped at its deadline does not free the
        // place of work that still runs.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "blocking task failed");
            HeavyError::Failed
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection's place among those in the handshake; given back when dropped.
pub struct HandshakeSlot {
    gate: Arc<Gate>,
    id: u64,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        lock(&self.gate.handshakes)
            .pending
            .retain(|(id, _)| *id != self.id);
    }
}

/// An organisation's place for one connection; given back when the connection closes.
struct OrgSlot {
    gate: Arc<Gate>,
    oin: String,
}

impl Drop for OrgSlot {
    fn drop(&mut self) {
        let mut orgs = lock(&self.gate.orgs);
        if let Some(open) = orgs.get_mut(&self.oin) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                orgs.remove(&self.oin);
            }
        }
    }
}

/// An admitted mTLS connection: the TLS stream, its organisation's place, and the switch that
/// fails its reads and writes once the node closes all connections.
pub struct Conn {
    inner: TlsStream<TcpStream>,
    _slot: OrgSlot,
    closing: Pin<Box<dyn Future<Output = ()> + Send>>,
    closed: bool,
}

impl Conn {
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && self.closing.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }
}

fn aborted() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the node closed the connection at the end of its shutdown grace",
    )
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.poll_closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.poll_closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.poll_closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for Conn {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Who may call a listener at all, by OIN (the rest is refused before any handler runs).
pub type Admits = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The tower layer over every service of a listener: refuses a caller whose certificate names no
/// organisation or one that `admits` does not know (PERMISSION_DENIED, before any handler; the
/// health service excepted), and requests beyond `max_in_flight`. Its refusals are counted in
/// the gate's tally, never audited one by one.
#[derive(Clone)]
pub struct GateLayer {
    gate: Arc<Gate>,
    admits: Admits,
    own: String,
}

impl GateLayer {
    /// `own` is how refusals name the node's organisation.
    pub fn new(gate: Arc<Gate>, admits: Admits, own: String) -> Self {
        Self { gate, admits, own }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GateService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GateService<S> {
    inner: S,
    layer: GateLayer,
}

/// The one long request: a partner's system streaming its signals in.
const PUSH_PATH: &str = "/pactgate.v1.SignalIntakeService/Push";

/// Paths any verified client may call whoever it is: the health check.
const OPEN_PATHS: &[&str] = &["/grpc.health.v1.Health/"];

/// The caller: an [`Organisation`] a listener put in the extensions from its TLS session, or
/// the organisation of the client certificate tonic's TLS listener recorded.
///
/// [`Organisation`]: crate::identity::Organisation
fn caller_of(extensions: &http::Extensions) -> Option<crate::identity::Organisation> {
    if let Some(org) = extensions.get::<crate::identity::Organisation>() {
        return Some(org.clone());
    }
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    crate::identity::organisation_of(certs.first()?.as_ref()).ok()
}

impl GateLayer {
    /// Admits a request before any handler runs, or says why not (counted in the gate's tally):
    /// the in-flight permit is held until the request is answered. Listeners that are no tower
    /// stack of tonic's call this themselves and render the status their way.
    pub fn admit_request(
        &self,
        extensions: &http::Extensions,
    ) -> Result<OwnedSemaphorePermit, Status> {
        let refusals = self.gate.refusals();
        let Some(caller) = caller_of(extensions) else {
            refusals.note("", "", reason::NO_IDENTITY);
            return Err(Status::unauthenticated(
                "the client certificate names no organisation (OIN and name)",
            ));
        };
        if !(self.admits)(&caller.oin) {
            refusals.note(&caller.oin, &caller.name, reason::NOT_A_PARTY);
            tracing::debug!(peer.oin = %caller.oin, "caller is no party; refused");
            return Err(Status::permission_denied(format!(
                "{caller} is not a party of the covenant that {} serves; its requests are refused",
                self.own
            )));
        }
        self.gate
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                refusals.note(&caller.oin, &caller.name, reason::IN_FLIGHT);
                Status::resource_exhausted("the node is at its limit of requests; try again")
            })
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for GateService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    R: Default + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let open = OPEN_PATHS
            .iter()
            .any(|p| request.uri().path().starts_with(p));
        let permit = if open {
            None
        } else {
            match self.layer.admit_request(request.extensions()) {
                Ok(permit) => Some(permit),
                Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
            }
        };
        let deadline = self.layer.gate.limits.deadline(request.uri().path());
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let response = match tokio::time::timeout(deadline, inner.call(request)).await {
                Ok(response) => response,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the request took longer than the node's deadline of {} s",
                    deadline.as_secs()
                ))
                .into_http()),
            };
            drop(permit);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_path_is_the_generated_services() {
        let service = crate::pb::signal_intake_service_server::SERVICE_NAME;
        assert_eq!(PUSH_PATH, format!("/{service}/Push"));
    }

    #[test]
    fn count_caps_name_the_field() {
        assert!(check_count("at", 120, 120).is_ok());
        let status = check_count("at", 20_000, 120).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("at: 20000 items"),
            "{status:?}"
        );
    }

    #[test]
    fn config_table_overrides_defaults() {
        let limits: Limits = toml::from_str("shutdown_grace_secs = 2\nmax_pushes = 1").unwrap();
        assert_eq!(limits.shutdown_grace(), Duration::from_secs(2));
        assert_eq!(limits.max_pushes, 1);
        assert_eq!(limits.push_batch, Limits::default().push_batch);
        assert!(toml::from_str::<Limits>("max_pushez = 1").is_err());
    }

    #[tokio::test]
    async fn a_full_handshake_pool_drops_its_oldest() {
        let gate = Gate::new(Limits {
            max_handshakes: 2,
            ..Limits::default()
        });
        let (_a, mut first) = gate.handshake_slot();
        let (b, mut second) = gate.handshake_slot();
        let (_c, _third) = gate.handshake_slot();
        assert!(first.try_recv().is_ok(), "the oldest was told to give up");
        assert!(second.try_recv().is_err());
        drop(b);
        let (_d, _) = gate.handshake_slot();
        assert!(
            second.try_recv().is_err(),
            "a finished handshake frees its slot"
        );
    }
}
