//! TLS for every port: rustls with the ring provider, TLS 1.3 only, client certificates required
//! and verified against the covenant CA, its revocation list and the policy's revoked
//! certificates, each naming exactly one OIN. Builds configs and accepts connections; never
//! decides what a verified peer may do.

use crate::limits::{Conn, Gate};
use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
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
    #[error(
        "private key {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}`"
    )]
    KeyPermissions { path: String, mode: u32 },
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

    /// Like [`TlsMaterial::load`], for a node's own key file: refuses a key that group or others
    /// may read. (Clients, the demo and tests load keys without this check.)
    pub fn load_for_node(cert: &Path, key: &Path, ca: &Path) -> Result<Self, TlsError> {
        let shown = key.display().to_string();
        match crate::pseudonym::exposed_mode(key) {
            Ok(None) => Self::load(cert, key, ca),
            Ok(Some(mode)) => Err(TlsError::KeyPermissions { path: shown, mode }),
            Err(e) => Err(TlsError::Read {
                what: "private key",
                path: shown,
                reason: e.to_string(),
            }),
        }
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        parse_certs("certificate", &self.cert_pem)
    }

    /// The organisation this material's certificate names.
    pub fn organisation(&self) -> Result<crate::identity::Organisation, TlsError> {
        organisation_of_pem(&self.cert_pem)
    }

    /// The server side: TLS 1.3 only, ALPN h2, a client certificate from the covenant CA required
    /// (no revocation list, nothing revoked).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let verifier = CovenantVerifier::new(self.roots()?, None, DenyList::default())?;
        self.server_config_with(Arc::new(verifier))
    }

    /// [`TlsMaterial::server_config`] with a verifier of the caller's, e.g. a
    /// [`CovenantVerifier`] it keeps to reload.
    pub fn server_config_with(
        &self,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = self.private_key()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs()?, key)?;
        // gRPC needs HTTP/2; the C2SP witness protocol may come over HTTP/1.1 as well.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
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

/// Covenant certificates revoked by the policy: SHA-256 fingerprints of their DER and serial
/// numbers, as lowercase hex (serials without leading zero bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList {
    fingerprints: HashSet<String>,
    serials: HashSet<String>,
}

impl DenyList {
    /// The policy's `[[revoked]]` certificates.
    pub fn from_policy(policy: &crate::policy::Policy) -> Self {
        let revoked = policy.revoked();
        Self {
            fingerprints: revoked
                .iter()
                .filter_map(|r| r.fingerprint.clone())
                .collect(),
            serials: revoked.iter().filter_map(|r| r.serial.clone()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len() + self.serials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this DER certificate is on the list, by fingerprint or by serial.
    fn denies(&self, der: &[u8]) -> bool {
        if self.is_empty() {
            return false;
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        if self.fingerprints.contains(&hex(digest.as_ref())) {
            return true;
        }
        x509_parser::parse_x509_certificate(der).is_ok_and(|(_, cert)| {
            let serial = hex(cert.raw_serial());
            self.serials.contains(serial.trim_start_matches("00"))
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a [`CovenantVerifier`] swaps whole on reload.
struct Current {
    webpki: Arc<dyn ClientCertVerifier>,
    denied: DenyList,
    crl_entries: usize,
}

/// The client-certificate verifier of every listener: the chain to the covenant CA (webpki),
/// checked against the CA's revocation list if one is configured, then the policy's revoked
/// certificates, then the subject must name exactly one OIN. Each refusal fails the handshake.
/// The CRL file is re-read and the deny list replaced by [`CovenantVerifier::reload`].
pub struct CovenantVerifier {
    roots: Arc<rustls::RootCertStore>,
    hints: Vec<DistinguishedName>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    crl: Option<PathBuf>,
    current: ArcSwap<Current>,
}

impl std::fmt::Debug for CovenantVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CovenantVerifier")
            .field("crl", &self.crl)
            .finish_non_exhaustive()
    }
}

impl CovenantVerifier {
    /// A verifier for the covenant CA `roots`, with the CRL at `crl` (PEM, one or more) and
    /// `denied`. Fails if the CRL cannot be read.
    pub fn new(
        roots: rustls::RootCertStore,
        crl: Option<PathBuf>,
        denied: DenyList,
    ) -> Result<Self, TlsError> {
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let hints = roots.subjects();
        let current = build_current(&roots, &provider, crl.as_deref(), denied)?;
        Ok(Self {
            roots,
            hints,
            provider,
            crl,
            current: ArcSwap::from_pointee(current),
        })
    }

    /// Re-reads the CRL file and takes `denied` as the new deny list; connections from then on
    /// are verified against both. If the CRL cannot be read the old CRL stays (the new deny list
    /// is still taken) and the error is returned. Returns the CRL's number of revoked
    /// certificates.
    pub fn reload(&self, denied: DenyList) -> Result<usize, TlsError> {
        match build_current(
            &self.roots,
            &self.provider,
            self.crl.as_deref(),
            denied.clone(),
        ) {
            Ok(current) => {
                let entries = current.crl_entries;
                self.current.store(Arc::new(current));
                Ok(entries)
            }
            Err(e) => {
                let old = self.current.load();
                self.current.store(Arc::new(Current {
                    webpki: old.webpki.clone(),
                    denied,
                    crl_entries: old.crl_entries,
                }));
                Err(e)
            }
        }
    }

    /// The number of certificates the CRL and the deny list revoke.
    pub fn revoked_counts(&self) -> (usize, usize) {
        let current = self.current.load();
        (current.crl_entries, current.denied.len())
    }
}

fn build_current(
    roots: &Arc<rustls::RootCertStore>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    crl: Option<&Path>,
    denied: DenyList,
) -> Result<Current, TlsError> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    let (webpki, crl_entries) = match crl {
        None => (builder.build()?, 0),
        Some(path) => {
            let (crls, entries) = read_crls(path)?;
            let webpki = builder
                .with_crls(crls)
                .only_check_end_entity_revocation()
                .build()?;
            (webpki, entries)
        }
    };
    Ok(Current {
        webpki,
        denied,
        crl_entries,
    })
}

/// The CRLs in a PEM file and how many certificates they revoke.
fn read_crls(path: &Path) -> Result<(Vec<CertificateRevocationListDer<'static>>, usize), TlsError> {
    let bad = |reason: String| TlsError::Read {
        what: "revocation list",
        path: path.display().to_string(),
        reason,
    };
    let pem = read("revocation list", path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if crls.is_empty() {
        return Err(TlsError::Empty {
            what: "revocation list",
            path: path.display().to_string(),
            kind: "X509 CRL",
        });
    }
    use x509_parser::prelude::FromDer as _;
    let mut entries = 0;
    for crl in &crls {
        let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(crl)
            .map_err(|e| bad(format!("not a CRL: {e}")))?;
        entries += parsed.iter_revoked_certificates().count();
    }
    Ok((crls, entries))
}

impl ClientCertVerifier for CovenantVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let current = self.current.load();
        current
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        if current.denied.denies(end_entity.as_ref()) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        crate::identity::organisation_of(end_entity.as_ref()).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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
