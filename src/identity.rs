//! Who the peer is: the organisation named in an X.509 certificate that the TLS layer has already
//! verified. Identity only, never permission: deciding what an organisation may do is the
//! caller's and the policy's job.

use crate::ids::Oin;
use x509_parser::oid_registry::OID_X509_SERIALNUMBER;
use x509_parser::prelude::{FromDer, X509Certificate};

/// An organisation of the covenant, as its certificate names it: the OIN (20 digits, in the
/// subject serialNumber, as PKIoverheid certificates carry it) and the organisation name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Organisation {
    pub oin: Oin,
    pub name: String,
}

impl std::fmt::Display for Organisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (OIN {})", self.name, self.oin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the certificate cannot be parsed")]
    Parse,
    #[error("the certificate subject has no serialNumber (OIN)")]
    NoOin,
    #[error("the certificate subject has {0} serialNumbers: a certificate names exactly one OIN")]
    ManyOins(usize),
    #[error("the certificate's OIN is not 20 digits")]
    BadOin,
    #[error("the certificate subject has no organisation name (O)")]
    NoName,
    #[error("the connection carries no client certificate")]
    NoCertificate,
}

/// Reads the organisation from a DER certificate (the leaf of a verified chain). A subject with
/// more than one serialNumber is refused rather than read by its first: it names no single OIN.
pub fn organisation_of(der: &[u8]) -> Result<Organisation, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Parse)?;
    let subject = cert.subject();
    let mut serials = subject.iter_by_oid(&OID_X509_SERIALNUMBER);
    let first = serials.next().ok_or(IdentityError::NoOin)?;
    let more = serials.count();
    if more > 0 {
        return Err(IdentityError::ManyOins(more + 1));
    }
    let oin = first.as_str().map_err(|_| IdentityError::NoOin)?;
    let oin: Oin = oin.parse().map_err(|_| IdentityError::BadOin)?;
    let name = subject
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or(IdentityError::NoName)?;
    Ok(Organisation {
        oin,
        name: name.to_owned(),
    })
}

/// The organisation behind a gRPC request, from the client certificate of its mTLS connection.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Organisation, IdentityError> {
    let certs = request.peer_certs().ok_or(IdentityError::NoCertificate)?;
    let leaf = certs.first().ok_or(IdentityError::NoCertificate)?;
    organisation_of(leaf.as_ref())
}
