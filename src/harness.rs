//! Starting real nodes and pseudonymisation services in-process on loopback: the one harness of
//! the integration tests (`tests/common`), the benchmarks (`benches/common`) and the demo. Binds,
//! serves, waits until ready and stops; every server here is `node::serve` or
//! `pseudonymiser::serve` itself, never a stand-in. Decides nothing about what a node does.

use crate::audit::AuditError;
use crate::node::{AuditVerifierKeys, NodeError, NodeSetup};
use crate::peers::PeerConfig;
use crate::pseudonymiser::{ServiceConfig, ServiceError, ServiceSetup};
use crate::tls::TlsMaterial;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

/// Why a server could not start, failed, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot use the listener: {0}")]
    Listener(std::io::Error),
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
    #[error("node::serve failed: {0}")]
    Node(#[from] NodeError),
    #[error("pseudonymiser::serve failed: {0}")]
    Service(#[from] ServiceError),
    #[error("the server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the server did not start: {0}")]
    NotReady(String),
    #[error("connections still open {0:?} after shutdown")]
    Lingering(Duration),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What a harness server runs.
pub enum Serve {
    Node(Box<NodeSetup>),
    Pseudonymiser(Box<ServiceSetup>),
}

impl From<NodeSetup> for Serve {
    fn from(setup: NodeSetup) -> Self {
        Serve::Node(Box::new(setup))
    }
}

impl From<ServiceSetup> for Serve {
    fn from(setup: ServiceSetup) -> Self {
        Serve::Pseudonymiser(Box::new(setup))
    }
}

impl Serve {
    /// Installs a readiness signal (both servers send it once they accept connections).
    fn signal_ready(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        match self {
            Serve::Node(setup) => setup.ready = Some(tx),
            Serve::Pseudonymiser(setup) => setup.ready = Some(tx),
        }
        rx
    }

    async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), HarnessError> {
        match self {
            Serve::Node(setup) => crate::node::serve(*setup, listener, shutdown).await?,
            Serve::Pseudonymiser(setup) => {
                crate::pseudonymiser::serve(*setup, listener, shutdown).await?
            }
        }
        Ok(())
    }
}

/// A listener on a free port of 127.0.0.1, non-blocking (ready for tokio).
pub fn bind_loopback() -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A node's setup with the development-style mutual witnessing: every peer (with its audit
/// verifier keys) is also a witness of this node and a log this node witnesses.
pub fn node_setup(
    tls: TlsMaterial,
    pseudonymiser: ServiceConfig,
    data_dir: PathBuf,
    peers: &[(PeerConfig, AuditVerifierKeys)],
) -> NodeSetup {
    let (witnesses, witnessed_logs) = crate::node::mutual_witnessing(peers);
    let mut setup = NodeSetup::new(tls, pseudonymiser, data_dir);
    setup.witnesses = witnesses;
    setup.witnessed_logs = witnessed_logs;
    setup.peers = peers.iter().map(|(p, _)| p.clone()).collect();
    setup
}

/// A server on the caller's tokio runtime (benches, the demo). Stop it with [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), HarnessError>>,
}

impl Server {
    /// Serves on `listener` until stopped; returns at once.
    pub fn spawn(
        serve: impl Into<Serve>,
        listener: tokio::net::TcpListener,
    ) -> Result<Server, HarnessError> {
        let addr = listener.local_addr().map_err(HarnessError::Listener)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = serve.into();
        let task = tokio::spawn(serve.run(listener, async {
            let _ = stopped.await;
        }));
        Ok(Server { addr, stop, task })
    }

    /// Serves on `listener` and returns once the server accepts connections.
    pub async fn spawn_ready(
        serve: impl Into<Serve>,
        listener: tokio::net::TcpListener,
    ) -> Result<Server, HarnessError> {
        let mut serve = serve.into();
        let ready = serve.signal_ready();
        let server = Server::spawn(serve, listener)?;
        if ready.await.is_err() {
            let failed = server.task.await?;
            return Err(HarnessError::NotReady(format!("{failed:?}")));
        }
        Ok(server)
    }

    /// Stops the server and waits until it has flushed and closed.
    pub async fn stop(self) -> Result<(), HarnessError> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// A server on a thread and runtime of its own (for tests, whose own runtime may end first): a
/// stop waits at most `grace` for open connections, then reports them.
pub struct ThreadedServer {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), HarnessError>>,
}

impl ThreadedServer {
    /// Serves on `listener` (non-blocking) on a new thread named `name`. With `ready_within`,
    /// returns only once the server accepts connections, or fails after that long.
    pub fn spawn(
        name: String,
        serve: impl Into<Serve>,
        listener: std::net::TcpListener,
        grace: Duration,
        ready_within: Option<Duration>,
    ) -> Result<ThreadedServer, HarnessError> {
        let addr = listener.local_addr().map_err(HarnessError::Listener)?;
        let mut serve = serve.into();
        let ready = ready_within.map(|_| serve.signal_ready());
        let (stop, stopped) = oneshot::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(HarnessError::Runtime)?;
                let result = rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(HarnessError::Listener)?;
                    let (stopping_tx, stopping) = oneshot::channel::<()>();
                    let shutdown = async move {
                        let _ = stopped.await;
                        let _ = stopping_tx.send(());
                    };
                    let served = tokio::spawn(serve.run(listener, shutdown));
                    if let Some(ready) = ready {
                        if ready.await.is_ok() {
                            let _ = started_tx.send(());
                        }
                    }
                    tokio::select! {
                        served = served => served?,
                        () = async {
                            let _ = stopping.await;
                            tokio::time::sleep(grace).await;
                        } => Err(HarnessError::Lingering(grace)),
                    }
                });
                rt.shutdown_timeout(grace);
                result
            })
            .map_err(HarnessError::Runtime)?;
        let server = ThreadedServer { addr, stop, thread };
        if let Some(limit) = ready_within {
            if started.recv_timeout(limit).is_err() {
                let result = server.stop_blocking();
                return Err(HarnessError::NotReady(format!("{result:?}")));
            }
        }
        Ok(server)
    }

    /// True once the server's thread has ended (it failed, or was stopped).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops the server and waits until its thread (and so its store) is gone. A panic on the
    /// server's thread is resumed here.
    pub fn stop_blocking(self) -> Result<(), HarnessError> {
        let _ = self.stop.send(());
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
