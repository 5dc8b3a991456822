//! TLS for every port: rustls with the ring provider, TLS 1.3 only, client certificates required
//! and verified against the covenant CA. Builds configs and accepts connections; never decides
//! what a verified peer may do.

use crate::limits::{Conn, Gate};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{what} {path} holds no PEM {kind}")]
    Empty {
        what: &'static str,
        path: String,
        kind: &'static str,
    },
    #[error("invalid TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("the node's own certificate does not name an organisation: {0}")]
    Identity(#[from] crate::identity::IdentityError),
}

/// The PEM material of one party: its certificate chain, its private key and the covenant CA.
/// Its `Debug` leaves the key out.
#[derive(Clone)]
pub struct TlsMaterial {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial { .. }")
    }
}

impl TlsMaterial {
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            cert_pem: read("certificate", cert)?,
            key_pem: read("private key", key)?,
            ca_pem: read("CA certificate", ca)?,
        })
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        parse_certs("certificate", &self.cert_pem)
    }

    /// The organisation this material's certificate names.
    pub fn organisation(&self) -> Result<crate::identity::Organisation, TlsError> {
        organisation_of_pem(&self.cert_pem)
    }

    /// The server side: TLS 1.3 only, ALPN h2, a client certificate from the covenant CA required.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
                .build()?;
        let key = self.private_key()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs()?, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The covenant CA as a root store.
    pub fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in parse_certs("CA certificate", &self.ca_pem)? {
            roots.add(ca)?;
        }
        Ok(roots)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| TlsError::Read {
            what: "private key",
            path: String::new(),
            reason: e.to_string(),
        })
    }

    /// The client side: TLS 1.3 only, ALPN h2, our certificate as client identity, the covenant
    /// CA as the only root.
    pub fn client_config_tls13(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.certs()?, self.private_key()?)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The organisation a PEM certificate names.
pub fn organisation_of_pem(pem: &[u8]) -> Result<crate::identity::Organisation, TlsError> {
    let certs = parse_certs("certificate", pem)?;
    let leaf = certs.first().ok_or(TlsError::Empty {
        what: "certificate",
        path: String::new(),
        kind: "certificate",
    })?;
    Ok(crate::identity::organisation_of(leaf.as_ref())?)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn parse_certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read {
            what,
            path: String::new(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: String::new(),
            kind: "certificate",
        });
    }
    Ok(certs)
}

/// Accepts TCP connections and completes their TLS handshakes concurrently, yielding only the
/// connections whose client certificate verified, under the default [`Limits`]. See
/// [`incoming_limited`].
///
/// [`Limits`]: crate::limits::Limits
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<Result<Conn, std::io::Error>> {
    incoming_limited(listener, config, Gate::new(Default::default()))
}

/// Accepts TCP connections and completes their TLS handshakes concurrently, yielding only the
/// connections whose client certificate verified. A failed handshake (no certificate, a foreign
/// CA, an expired certificate, TLS 1.2) is logged and dropped; so is one that takes longer than
/// the gate's handshake timeout, the oldest pending handshake when too many are pending, and a
/// connection of an organisation that has all its connections open already. Stops accepting
/// once the returned stream is dropped.
pub fn incoming_limited(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    gate: Arc<Gate>,
) -> ReceiverStream<Result<Conn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, addr) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let gate = gate.clone();
            let (slot, evicted) = gate.handshake_slot();
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(gate.limits().handshake_timeout(), acceptor.accept(tcp));
                let outcome = tokio::select! {
                    outcome = handshake => outcome,
                    _ = evicted => {
                        tracing::info!(peer.addr = %addr, "TLS handshake dropped: too many pending");
                        return;
                    }
                };
                drop(slot);
                match outcome {
                    Ok(Ok(tls)) => match gate.admit(tls) {
                        Ok(conn) => {
                            let _ = tx.send(Ok(conn)).await;
                        }
                        Err(oin) => {
                            tracing::info!(peer.addr = %addr, peer.oin = %oin, "connection refused: the organisation has all its connections open");
                        }
                    },
                    Ok(Err(e)) => {
                        tracing::info!(peer.addr = %addr, error = %e, "TLS handshake refused");
                    }
                    Err(_) => {
                        tracing::info!(peer.addr = %addr, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
