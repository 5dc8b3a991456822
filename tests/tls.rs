//! The node's mutual TLS: every client it must refuse is refused (no certificate, a foreign CA,
//! an expired certificate, TLS 1.2), each against a control that succeeds the same way with a
//! good certificate; and a covenant party that is not the node's own organisation is refused
//! SignalIntakeService with PERMISSION_DENIED and stores nothing.

mod common;

use common::*;
use pactgate::pb;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use pactgate::tls::TlsMaterial;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

/// Connects with the library's client and pushes one good record; the error of whichever step
/// failed. With TLS 1.3 the server's refusal of a client certificate may only surface on the
/// first read, so this asserts on the RPC, not on `connect`.
async fn try_push(
    addr: SocketAddr,
    tls: &TlsMaterial,
    id: &str,
) -> Result<pb::PushResponse, String> {
    let channel = channel_with(addr, tls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = SignalIntakeServiceClient::new(channel);
    let bsn = Bsns::new(id.len() as u64 + 100).next_bsn();
    let call = push(&mut client, vec![good_record(id, &bsn)]);
    match tokio::time::timeout(Duration::from_secs(15), call).await {
        Ok(result) => result.map_err(|s| format!("push: {s}")),
        Err(_) => Err("push: timed out".into()),
    }
}

/// A client identity made of a certificate and key PEM.
fn identity(tls: &TlsMaterial) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let certs = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).unwrap();
    (certs, key)
}

/// A raw rustls client config trusting the covenant CA, for the given versions and identity.
fn raw_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<&TlsMaterial>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(certs_dir().join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(tls) => {
            let (certs, key) = identity(tls);
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A raw TLS handshake, then the HTTP/2 preface, then one read: Ok with the bytes the server
/// sent (its HTTP/2 SETTINGS) if the node accepted the client, Err with the TLS error otherwise.
async fn raw_session(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Vec<u8>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("tcp: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .map_err(|_| "read timed out".to_owned())?
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("read: closed without a word".into());
    }
    buf.truncate(n);
    Ok(buf)
}

/// Asserts the node refused the client with a TLS alert naming one of `alerts`.
fn assert_alert(result: Result<Vec<u8>, String>, alerts: &[&str], case: &str) {
    let err = result.expect_err(&format!("{case}: the node accepted the TLS session"));
    assert!(
        alerts.iter().any(|a| err.contains(a)),
        "{case}: expected an alert among {alerts:?}, got {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_certificate_is_accepted_control() {
    let node = TestNode::start("swv-vo").await;
    // The committed certificate and a freshly issued one both work, through the library's
    // client and a raw TLS 1.3 session: so the refusals below are about what they change.
    try_push(node.addr(), &material("swv-vo"), "control-1")
        .await
        .expect("committed cert");
    try_push(node.addr(), &fresh_cert("swv-vo"), "control-2")
        .await
        .expect("fresh cert");
    let settings = raw_session(
        node.addr(),
        raw_config(&[&rustls::version::TLS13], Some(&material("swv-vo"))),
    )
    .await
    .expect("raw TLS 1.3 session");
    assert_eq!(
        settings.get(3),
        Some(&4),
        "the node's first HTTP/2 frame is SETTINGS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() {
    let node = TestNode::start("swv-vo").await;
    let ca_only = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(std::fs::read(certs_dir().join("ca.pem")).unwrap()),
    );
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{}", node.addr()))
        .unwrap()
        .tls_config(ca_only)
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    let outcome = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut client = SignalIntakeServiceClient::new(channel);
        push(
            &mut client,
            vec![good_record("anon", &Bsns::new(11).next_bsn())],
        )
        .await
        .map_err(|s| format!("push: {s}"))
    };
    let outcome = tokio::time::timeout(Duration::from_secs(15), outcome)
        .await
        .expect("no hang");
    assert!(
        outcome.is_err(),
        "a client without a certificate pushed: {outcome:?}"
    );

    assert_alert(
        raw_session(node.addr(), raw_config(&[&rustls::version::TLS13], None)).await,
        &["CertificateRequired", "HandshakeFailure"],
        "no client certificate",
    );
    assert!(list_all(&mut node.intake().await).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_a_foreign_ca_is_refused() {
    let node = TestNode::start("swv-vo").await;
    // The same party, the same names, only signed by a CA outside the covenant.
    let foreign = foreign_cert("swv-vo");
    let outcome = try_push(node.addr(), &foreign, "foreign").await;
    assert!(
        outcome.is_err(),
        "a foreign-CA certificate pushed: {outcome:?}"
    );
    assert_alert(
        raw_session(
            node.addr(),
            raw_config(&[&rustls::version::TLS13], Some(&foreign)),
        )
        .await,
        &["UnknownCA", "BadCertificate", "DecryptError"],
        "foreign CA",
    );
    assert!(list_all(&mut node.intake().await).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let node = TestNode::start("swv-vo").await;
    let expired = expired_cert("swv-vo");
    let outcome = try_push(node.addr(), &expired, "expired").await;
    assert!(
        outcome.is_err(),
        "an expired certificate pushed: {outcome:?}"
    );
    assert_alert(
        raw_session(
            node.addr(),
            raw_config(&[&rustls::version::TLS13], Some(&expired)),
        )
        .await,
        &["CertificateExpired", "BadCertificate"],
        "expired certificate",
    );
    assert!(list_all(&mut node.intake().await).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls12_only_client_is_refused() {
    let node = TestNode::start("swv-vo").await;
    let tls12 = raw_config(&[&rustls::version::TLS12], Some(&material("swv-vo")));
    let result = raw_session(node.addr(), tls12).await;
    let err = result.expect_err("a TLS 1.2 client got a session");
    assert!(
        err.starts_with("handshake:"),
        "refused at the handshake: {err}"
    );
    assert!(
        err.contains("ProtocolVersion")
            || err.contains("HandshakeFailure")
            || err.contains("version"),
        "{err}"
    );
    // The control: the same client, allowed TLS 1.3, gets through.
    let both = raw_config(
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some(&material("swv-vo")),
    );
    raw_session(node.addr(), both)
        .await
        .expect("TLS 1.3 with the same identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_covenant_party_may_not_use_signal_intake() {
    let node = TestNode::start("swv-vo").await;
    let mut bsns = Bsns::new(12);
    for party in ["wij", "leerplicht", "swv-po"] {
        let mut client = node.intake_as(party).await;
        let status = push(
            &mut client,
            vec![good_record(&format!("from-{party}"), &bsns.next_bsn())],
        )
        .await
        .expect_err("Push by another organisation");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{party} Push: {status:?}"
        );
        let name = pactgate::certs::dev_party(party).unwrap().name;
        assert!(
            status.message().contains(name),
            "{party}: {:?}",
            status.message()
        );
        assert!(
            status
                .message()
                .contains("Samenwerkingsverband VO Groningen"),
            "{:?}",
            status.message()
        );

        let status = list(&mut client, pb::ListRequest::default())
            .await
            .expect_err("List by another organisation");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{party} List: {status:?}"
        );
    }
    // The node's own party was never refused, and nothing of the others was stored.
    let mut own = node.intake().await;
    assert!(list_all(&mut own).await.is_empty());
    push(&mut own, vec![good_record("own", &bsns.next_bsn())])
        .await
        .expect("own push");
    // A node of another party refuses swv-vo in turn.
    let wij_node = TestNode::start("wij").await;
    let mut at_wij = wij_node.intake_as("swv-vo").await;
    let status = list(&mut at_wij, pb::ListRequest::default())
        .await
        .expect_err("swv-vo at wij");
    assert_eq!(status.code(), Code::PermissionDenied);
}
