//! Connecting to a node over mutual TLS, as a partner's own system or a peer node does: TLS 1.3
//! only, the covenant CA as the only root, our certificate as client identity, and optionally a
//! check that the server's certificate names the organisation (OIN) we expect.

use crate::tls::{TlsError, TlsMaterial};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the node refused the push: {0}")]
    PushRefused(String),
    #[error("invalid node address {0:?}: expected host:port")]
    Address(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
}

/// Verifies the server's chain with webpki, then that its certificate names the expected OIN.
#[derive(Debug)]
struct ExpectOin {
    inner: Arc<WebPkiServerVerifier>,
    oin: String,
}

impl ServerCertVerifier for ExpectOin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let org = crate::identity::organisation_of(end_entity.as_ref())
            .map_err(|e| rustls::Error::General(format!("peer certificate: {e}")))?;
        if org.oin != self.oin {
            return Err(rustls::Error::General(format!(
                "peer certificate names {org}, expected OIN {}",
                self.oin
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A lazily connecting channel to a node at `addr` ("host:port"). With `expected_oin`, the
/// handshake fails unless the node's certificate names that OIN.
pub fn channel(
    addr: &str,
    tls: &TlsMaterial,
    expected_oin: Option<&str>,
) -> Result<(Endpoint, Arc<rustls::ClientConfig>), ClientError> {
    let addr = addr.strip_prefix("https://").unwrap_or(addr);
    let uri: Uri = format!("http://{addr}")
        .parse()
        .map_err(|_| ClientError::Address(addr.to_owned()))?;
    if uri.host().is_none() || uri.port().is_none() {
        return Err(ClientError::Address(addr.to_owned()));
    }
    let mut config = tls.client_config_tls13()?;
    if let Some(oin) = expected_oin {
        let roots = Arc::new(tls.roots()?);
        let inner = WebPkiServerVerifier::builder_with_provider(
            roots,
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(ExpectOin {
                inner,
                oin: oin.to_owned(),
            }));
    }
    let endpoint = Endpoint::from(uri)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30));
    Ok((endpoint, Arc::new(config)))
}

fn connector(
    config: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Send
       + Clone
       + 'static {
    let connector = tokio_rustls::TlsConnector::from(config);
    tower::service_fn(move |uri: Uri| {
        let connector = connector.clone();
        async move {
            let host = uri.host().unwrap_or("localhost").to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        }
    })
}

/// Connects to a node now (fails fast if it is unreachable or refuses the handshake).
pub async fn connect(addr: &str, tls: &TlsMaterial) -> Result<Channel, ClientError> {
    connect_expecting(addr, tls, None).await
}

/// Connects to a node now, requiring its certificate to name `expected_oin` if given.
pub async fn connect_expecting(
    addr: &str,
    tls: &TlsMaterial,
    expected_oin: Option<&str>,
) -> Result<Channel, ClientError> {
    let (endpoint, config) = channel(addr, tls, expected_oin)?;
    endpoint
        .connect_with_connector(connector(config))
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })
}

/// A channel that connects on first use (for peers that may be down when the node starts).
pub fn connect_lazy(
    addr: &str,
    tls: &TlsMaterial,
    expected_oin: Option<&str>,
) -> Result<Channel, ClientError> {
    let (endpoint, config) = channel(addr, tls, expected_oin)?;
    Ok(endpoint.connect_with_connector_lazy(connector(config)))
}

/// The totals of a push of a whole file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushSummary {
    pub accepted: usize,
    /// Refusals with the file line they came from.
    pub rejected: Vec<String>,
    /// Refusals the node counted but did not list (a report lists the first of each push).
    pub unlisted: usize,
}

impl PushSummary {
    /// Every refused record, listed or not.
    pub fn refused(&self) -> usize {
        self.rejected.len() + self.unlisted
    }
}

/// Pushes rows in batches; each refusal is reported with the file line it came from.
pub async fn push_rows(
    intake: &mut crate::pb::signal_intake_service_client::SignalIntakeServiceClient<Channel>,
    rows: Vec<crate::import::Row>,
    batch: usize,
    progress: &indicatif::ProgressBar,
) -> Result<PushSummary, ClientError> {
    let mut summary = PushSummary::default();
    let mut pending: Vec<(usize, crate::pb::SignalRecord)> = Vec::new();
    for (line, row) in rows {
        match row {
            Ok(record) => pending.push((line, record)),
            Err(e) => {
                summary.rejected.push(e.to_string());
                progress.inc(1);
            }
        }
    }
    for chunk in pending.chunks(batch.max(1)) {
        let lines: Vec<usize> = chunk.iter().map(|(l, _)| *l).collect();
        let records: Vec<crate::pb::PushRequest> =
            chunk.iter().map(|(_, r)| r.clone().into()).collect();
        let report = intake
            .push(tokio_stream::iter(records))
            .await
            .map_err(|s| ClientError::PushRefused(s.message().to_owned()))?
            .into_inner();
        summary.accepted += report.accepted as usize;
        summary.unlisted += (report.rejected_count as usize).saturating_sub(report.rejected.len());
        for r in report.rejected {
            let line = lines.get(r.index as usize).copied().unwrap_or(0);
            summary.rejected.push(format!("line {line} ({})", r.reason));
        }
        progress.inc(chunk.len() as u64);
    }
    Ok(summary)
}
