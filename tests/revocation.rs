//! Revocation: a certificate on the covenant CA's revocation list (a CRL file the node's
//! configuration names) or on the policy's `revoked` list is refused at the TLS handshake, both
//! reloaded on SIGHUP, each against the same certificate working before it was revoked; a
//! certificate naming two OINs (two subject serialNumbers), or none, is refused at the handshake.
//! Every certificate and CRL here is made at test time from `certs-dev/ca.key` with rcgen.

mod common;

use common::*;
use pactgate::tls::TlsMaterial;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber, SigningKey as _,
};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The subject serialNumber attribute (where the OIN lives).
const SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];
/// The subject uniqueIdentifier attribute: same encoded length as serialNumber, so its OID bytes
/// can be patched into a second serialNumber.
const UNIQUE_IDENTIFIER: [u64; 4] = [2, 5, 4, 45];

fn read_dev(name: &str) -> String {
    std::fs::read_to_string(certs_dir().join(name)).expect(name)
}

fn ca_key() -> KeyPair {
    KeyPair::from_pem(&read_dev("ca.key")).expect("dev CA key")
}

fn issuer() -> Issuer<'static, KeyPair> {
    Issuer::from_ca_cert_pem(&read_dev("ca.pem"), ca_key()).expect("dev CA")
}

fn days(n: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(n)
}

/// Certificate parameters as the dev CA issues them, with this serial and these subject
/// attributes (besides CN, O and C).
fn params(serial: u8, subject: &[(DnType, &str)]) -> CertificateParams {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Gemeente Groningen Leerplicht RMC");
    dn.push(
        DnType::OrganizationName,
        "Gemeente Groningen Leerplicht RMC",
    );
    for (ty, value) in subject {
        dn.push(ty.clone(), *value);
    }
    dn.push(DnType::CountryName, "NL");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.serial_number = Some(SerialNumber::from(vec![0x40, serial]));
    params.not_before = days(-1);
    params.not_after = days(30);
    params
}

fn material(cert_der: &[u8], key: &KeyPair) -> TlsMaterial {
    TlsMaterial {
        cert_pem: base64_pem("CERTIFICATE", cert_der).into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
        ca_pem: read_dev("ca.pem").into_bytes(),
    }
}

fn base64_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A certificate for leerplicht (one OIN) with this serial, from the dev CA.
fn leerplicht_cert(serial: u8) -> TlsMaterial {
    let key = KeyPair::generate().unwrap();
    let oin = oin("leerplicht");
    let cert = params(
        serial,
        &[(DnType::CustomDnType(SERIAL_NUMBER.to_vec()), oin.as_str())],
    )
    .signed_by(&key, &issuer())
    .unwrap();
    material(cert.der(), &key)
}

/// A certificate with no serialNumber (no OIN) at all.
fn no_oin_cert() -> TlsMaterial {
    let key = KeyPair::generate().unwrap();
    let cert = params(0x30, &[]).signed_by(&key, &issuer()).unwrap();
    material(cert.der(), &key)
}

/// A certificate whose subject holds two serialNumbers (two OINs). rcgen keeps one value per
/// attribute type, so it is issued with a uniqueIdentifier as the second, whose OID is then
/// patched to serialNumber and the certificate signed again with the dev CA's key.
fn two_oin_cert() -> TlsMaterial {
    let key = KeyPair::generate().unwrap();
    let first = oin("leerplicht");
    let second = oin("wij");
    let cert = params(
        0x31,
        &[
            (DnType::CustomDnType(SERIAL_NUMBER.to_vec()), first.as_str()),
            (
                DnType::CustomDnType(UNIQUE_IDENTIFIER.to_vec()),
                second.as_str(),
            ),
        ],
    )
    .signed_by(&key, &issuer())
    .unwrap();
    let der = cert.der().to_vec();
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (tbs_start, _) = der_element(&der, 0);
    let (_, tbs_end) = der_element(&der, tbs_start);
    let mut tbs = der[tbs_start..tbs_end].to_vec();
    let from = [0x06, 0x03, 0x55, 0x04, 0x2d];
    let at = tbs
        .windows(from.len())
        .position(|w| w == from)
        .expect("the uniqueIdentifier OID in the subject");
    tbs[at + 4] = 0x05;
    let (_, alg_end) = der_element(&der, tbs_end);
    let algorithm = &der[tbs_end..alg_end];
    let signature = ca_key().sign(&tbs).unwrap();
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    let mut body = tbs;
    body.extend_from_slice(algorithm);
    body.extend(der_wrap(0x03, &bits));
    let patched = der_wrap(0x30, &body);
    let (_, parsed) = x509_parser::parse_x509_certificate(&patched).expect("patched parses");
    let oins = parsed
        .subject()
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .count();
    assert_eq!(oins, 2, "the patched certificate names two OINs");
    material(&patched, &key)
}

/// The start of the content and the end of the DER element at `at`.
fn der_element(der: &[u8], at: usize) -> (usize, usize) {
    let first = der[at + 1];
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = der[at + 2..at + 2 + n]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        (len, 2 + n)
    };
    (at + header, at + header + len)
}

fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// Writes a CRL of the dev CA revoking these serials (replacing the file atomically).
fn write_crl(path: &Path, number: u8, revoked: &[u8]) {
    let crl = CertificateRevocationListParams {
        this_update: days(-1),
        next_update: days(7),
        crl_number: SerialNumber::from(vec![number]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from(vec![0x40, *serial]),
                revocation_time: days(-1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer())
    .unwrap();
    let next = path.with_extension("next");
    std::fs::write(&next, crl.pem().unwrap()).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Whether the node completes a handshake with this material and answers a health check.
async fn accepted(addr: SocketAddr, tls: &TlsMaterial) -> bool {
    let Ok(channel) = channel_with(addr, tls).await else {
        return false;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = health.check(tonic_health::pb::HealthCheckRequest::default());
    matches!(
        tokio::time::timeout(Duration::from_secs(10), check).await,
        Ok(Ok(_))
    )
}

/// Waits until `accepted` gives `want` (a SIGHUP is handled asynchronously).
async fn until_accepted(addr: SocketAddr, tls: &TlsMaterial, want: bool, what: &str) {
    let started = Instant::now();
    while accepted(addr, tls).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what}: still {} after 15 s",
            if want { "refused" } else { "accepted" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SHA-256 fingerprint of a PEM certificate, hex.
fn fingerprint(tls: &TlsMaterial) -> String {
    use rustls::pki_types::pem::PemObject as _;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&tls.cert_pem).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_are_refused_at_the_handshake_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let crl = dir.path().join("covenant-ca.crl");
    write_crl(&crl, 1, &[]);
    let policy = PolicyFile::shipped_copy();
    let node = ProcessNode::start_with_args(
        "swv-vo",
        Some(&policy.path),
        &[std::ffi::OsStr::new("--crl"), crl.as_os_str()],
    );
    let by_crl = leerplicht_cert(0x01);
    let by_policy = leerplicht_cert(0x02);
    let control = leerplicht_cert(0x03);
    for (tls, what) in [
        (&by_crl, "to be revoked by CRL"),
        (&by_policy, "to be revoked by policy"),
        (&control, "control"),
    ] {
        assert!(
            accepted(node.addr, tls).await,
            "{what}: refused before any revocation"
        );
    }

    write_crl(&crl, 2, &[0x01]);
    node.hangup();
    until_accepted(node.addr, &by_crl, false, "revoked in the CRL").await;
    assert!(accepted(node.addr, &by_policy).await, "not in the CRL");
    assert!(accepted(node.addr, &control).await, "control after CRL");

    let revoked = format!(
        "{}\n[[revoked]]\nfingerprint = \"{}\"\nreason = \"sleutel uitgelekt\"\n",
        policy.text(),
        fingerprint(&by_policy)
    );
    policy.replace_text(&revoked);
    node.hangup();
    until_accepted(node.addr, &by_policy, false, "revoked in the policy").await;
    assert!(!accepted(node.addr, &by_crl).await, "still in the CRL");
    assert!(accepted(node.addr, &control).await, "control after policy");

    // An unreadable CRL on reload keeps the old one in force (it does not open the door).
    std::fs::write(&crl, "not a CRL").unwrap();
    node.hangup();
    node.wait_for_log("the revocation list cannot be read");
    assert!(
        !accepted(node.addr, &by_crl).await,
        "CRL dropped on a bad reload"
    );
    assert!(
        !accepted(node.addr, &by_policy).await,
        "policy list dropped"
    );
    assert!(
        accepted(node.addr, &control).await,
        "control after a bad reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_crl_cannot_be_read_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let crl = dir.path().join("missing.crl");
    let mut serve = pactgate_bin();
    let (cert, _, ca) = cert_paths("swv-vo");
    let key = private_tls_key("swv-vo", dir.path());
    let out = run_within(
        serve
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                &"--cert".into(),
                &cert,
                &"--key".into(),
                &key,
                &"--ca".into(),
                &ca,
            ])
            // The node stops at its CRL before it ever asks the service.
            .args(pseudonymiser_flags(&service_config("127.0.0.1:9")))
            .arg("--crl")
            .arg(&crl),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without its CRL");
    assert!(
        stderr.contains("revocation list") && stderr.contains("missing.crl"),
        "names the CRL: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_revoked_serial_is_refused_at_start() {
    let control = leerplicht_cert(0x11);
    let revoked = leerplicht_cert(0x12);
    let policy = PolicyFile::shipped_copy();
    policy.replace_text(&format!(
        "{}\n[[revoked]]\nserial = \"40:12\"\nreason = \"laptop gestolen\"\n",
        policy.text()
    ));
    let node = ProcessNode::start_with_args("swv-vo", Some(&policy.path), &[]);
    assert!(accepted(node.addr, &control).await, "control");
    assert!(!accepted(node.addr, &revoked).await, "serial 40:12 revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_naming_two_oins_or_none_is_refused() {
    let node = TestNode::start("swv-vo").await;
    assert!(
        accepted(node.addr(), &leerplicht_cert(0x21)).await,
        "control: one OIN"
    );
    assert!(
        !accepted(node.addr(), &two_oin_cert()).await,
        "two serialNumbers (OINs) accepted"
    );
    assert!(
        !accepted(node.addr(), &no_oin_cert()).await,
        "no serialNumber (OIN) accepted"
    );
}
