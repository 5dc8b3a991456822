//! Who is using the console: the person and the organisation, from the configuration (one
//! workstation, loopback) or from a personal certificate of the covenant CA (shared on a
//! network). Identity only; what the person may see is the node's decision.

use crate::identity::Organisation;
use x509_parser::der_parser::oid::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The person at the keyboard and the organisation they work for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub organisation: Organisation,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonError {
    #[error("the certificate cannot be parsed")]
    Parse,
    #[error("the certificate names no person (CN)")]
    NoName,
    #[error("the certificate names no organisation (O)")]
    NoOrganisation,
    #[error("the certificate has no organizationIdentifier NTRNL-<OIN> of 20 digits")]
    NoOin,
    #[error(
        "the certificate has a subject serialNumber: it is an organisation's certificate, \
         not a personal one"
    )]
    OrganisationCertificate,
    #[error("{person} works for {theirs}, and this console serves {ours}")]
    OtherOrganisation {
        person: String,
        theirs: String,
        ours: String,
    },
}

/// Reads the person from a DER personal certificate (the leaf of a chain the TLS layer has
/// verified): CN is the person, O the organisation, `organizationIdentifier` `NTRNL-<OIN>` its
/// OIN. A certificate with a subject serialNumber is an organisation's and is refused.
pub fn person_of(der: &[u8]) -> Result<Person, PersonError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| PersonError::Parse)?;
    let subject = cert.subject();
    if subject
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .next()
        .is_some()
    {
        return Err(PersonError::OrganisationCertificate);
    }
    let text = |attr: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        attr.and_then(|a| a.as_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = text(subject.iter_common_name().next()).ok_or(PersonError::NoName)?;
    let org = text(subject.iter_organization().next()).ok_or(PersonError::NoOrganisation)?;
    let oid = Oid::from(&crate::certs::ORGANIZATION_IDENTIFIER).map_err(|_| PersonError::Parse)?;
    let oin = text(subject.iter_by_oid(&oid).next())
        .and_then(|v| v.strip_prefix("NTRNL-").map(str::to_owned))
        .and_then(|oin| crate::ids::Oin::try_from(oin).ok())
        .ok_or(PersonError::NoOin)?;
    Ok(Person {
        name,
        organisation: Organisation { oin, name: org },
    })
}

/// [`person_of`], and the person must work for `own` (the organisation whose certificate the
/// console uses at the node).
pub fn person_for(der: &[u8], own: &Organisation) -> Result<Person, PersonError> {
    let person = person_of(der)?;
    if person.organisation.oin != own.oin {
        return Err(PersonError::OtherOrganisation {
            person: person.name,
            theirs: person.organisation.to_string(),
            ours: own.to_string(),
        });
    }
    Ok(person)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{dev_party, dev_validity, DevCa, DEV_PERSONS};

    fn der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_personal_certificate_names_person_and_organisation() {
        let ca = DevCa::generate("test CA").unwrap();
        let (from, until) = dev_validity();
        let person = DEV_PERSONS[0];
        let party = dev_party(person.party).unwrap();
        let issued = ca.issue_person(&person, &party, from, until).unwrap();
        let read = person_of(&der(&issued.cert_pem)).unwrap();
        assert_eq!(read.name, person.name);
        assert_eq!(read.organisation.oin, party.oin);
        assert_eq!(read.organisation.name, party.name);
        let other = dev_party("wij").unwrap();
        let own = Organisation {
            oin: crate::ids::Oin::try_from(other.oin).expect("a dev party's OIN"),
            name: other.name.into(),
        };
        assert!(matches!(
            person_for(&der(&issued.cert_pem), &own),
            Err(PersonError::OtherOrganisation { .. })
        ));
    }

    #[test]
    fn an_organisation_certificate_is_no_person() {
        let ca = DevCa::generate("test CA").unwrap();
        let (from, until) = dev_validity();
        let issued = ca
            .issue(&dev_party("leerplicht").unwrap(), from, until)
            .unwrap();
        assert_eq!(
            person_of(&der(&issued.cert_pem)),
            Err(PersonError::OrganisationCertificate)
        );
    }
}
