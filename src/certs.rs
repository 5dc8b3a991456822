//! Development certificates: a covenant CA and one certificate per partner, each naming its
//! organisation (O) and OIN (subject serialNumber), made with rcgen. For tests and the demo
//! only; a real node uses certificates from the covenant's CA (for example PKIoverheid).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::Path;

/// A party of the development covenant: file name, organisation name and OIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevParty {
    pub file: &'static str,
    pub name: &'static str,
    pub oin: &'static str,
}

/// The parties `pactgate certs dev` makes certificates for: the six covenant parties, the FG
/// of each (every party names its own FG, `002`:1501-1506; the gemeente's FG keeps `fg`), and the
/// pseudonymisation service (a trusted third party that holds no pupil data).
pub const DEV_PARTIES: [DevParty; 13] = [
    DevParty {
        file: "swv-vo",
        name: "Samenwerkingsverband VO Groningen",
        oin: "00000099000000000001",
    },
    DevParty {
        file: "swv-po",
        name: "Samenwerkingsverband PO Groningen",
        oin: "00000099000000000002",
    },
    DevParty {
        file: "mbo",
        name: "Noorderpoort",
        oin: "00000099000000000003",
    },
    DevParty {
        file: "leerplicht",
        name: "Gemeente Groningen Leerplicht RMC",
        oin: "00000099000000000004",
    },
    DevParty {
        file: "wij",
        name: "WIJ Groningen",
        oin: "00000099000000000005",
    },
    DevParty {
        file: "ggd",
        name: "GGD Groningen",
        oin: "00000099000000000006",
    },
    DevParty {
        file: "fg",
        name: "FG Gemeente Groningen",
        oin: "00000099000000000007",
    },
    DevParty {
        file: "fg-swv-vo",
        name: "FG Samenwerkingsverband VO Groningen",
        oin: "00000099000000000008",
    },
    DevParty {
        file: "fg-swv-po",
        name: "FG Samenwerkingsverband PO Groningen",
        oin: "00000099000000000009",
    },
    DevParty {
        file: "fg-mbo",
        name: "FG Noorderpoort",
        oin: "00000099000000000010",
    },
    DevParty {
        file: "fg-wij",
        name: "FG WIJ Groningen",
        oin: "00000099000000000011",
    },
    DevParty {
        file: "fg-ggd",
        name: "FG GGD Groningen",
        oin: "00000099000000000012",
    },
    // The pseudonymisation service: a trusted third party, not a party that holds pupil data.
    DevParty {
        file: "pseudonymiser",
        name: "Pseudonimiseringsdienst Thuiszitterspact",
        oin: "00000099000000000013",
    },
];

/// A person of a development party, for the console shared on a network: a personal
/// certificate naming the person (CN) and the organisation (O, and its OIN as
/// `organizationIdentifier` `NTRNL-<OIN>`, as PKIoverheid's organisation-bound personal
/// certificates carry it). It has no subject serialNumber, so a node never takes it for the
/// organisation's own certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevPerson {
    pub file: &'static str,
    pub name: &'static str,
    /// The file name of the person's organisation in [`DEV_PARTIES`].
    pub party: &'static str,
}

/// The persons `pactgate certs dev` makes personal certificates for.
pub const DEV_PERSONS: [DevPerson; 2] = [
    DevPerson {
        file: "persoon-leerplicht-bakker",
        name: "A. Bakker, leerplichtambtenaar",
        party: "leerplicht",
    },
    DevPerson {
        file: "persoon-fg-devries",
        name: "J. de Vries, functionaris gegevensbescherming",
        party: "fg",
    },
];

/// The OID of the X.520 `organizationIdentifier` attribute.
pub const ORGANIZATION_IDENTIFIER: [u64; 4] = [2, 5, 4, 97];

/// The development party with this file name.
pub fn dev_party(file: &str) -> Option<DevParty> {
    DEV_PARTIES.iter().copied().find(|p| p.file == file)
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A certificate and its private key, PEM-encoded.
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that can issue party certificates.
pub struct DevCa {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl DevCa {
    /// A new self-signed CA with the given name.
    pub fn generate(name: &str) -> Result<Self, CertsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date(2025, 1, 1);
        params.not_after = date(2045, 1, 1);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA from its PEM certificate and key (to issue more certificates under `certs-dev/`).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertsError> {
        let issuer = Issuer::from_ca_cert_pem(cert_pem, KeyPair::from_pem(key_pem)?)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
        })
    }

    /// Issues a certificate for a party, valid from `not_before` to `not_after`, usable both as a
    /// server and as a client certificate, for localhost, 127.0.0.1 and `<file>.pactgate.test`.
    pub fn issue(
        &self,
        party: &DevParty,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<IssuedCert, CertsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            format!("{}.pactgate.test", party.file),
        ])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, party.name);
        dn.push(DnType::OrganizationName, party.name);
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), party.oin);
        dn.push(DnType::CountryName, "NL");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl DevCa {
    /// Issues a personal certificate (client authentication only) for `person` of `party`.
    pub fn issue_person(
        &self,
        person: &DevPerson,
        party: &DevParty,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<IssuedCert, CertsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, person.name);
        dn.push(DnType::OrganizationName, party.name);
        dn.push(
            DnType::CustomDnType(ORGANIZATION_IDENTIFIER.to_vec()),
            format!("NTRNL-{}", party.oin),
        );
        dn.push(DnType::CountryName, "NL");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn date(year: i32, month: u8, day: u8) -> time::OffsetDateTime {
    rcgen::date_time_ymd(year, month, day)
}

/// The validity of development party certificates.
pub fn dev_validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    (date(2025, 1, 1), date(2035, 1, 1))
}

/// Writes the development set to `out`: `ca.pem`, `ca.key`, and `NAME.pem` + `NAME.key` for
/// every party in [`DEV_PARTIES`] and every person in [`DEV_PERSONS`]. A CA already in `out` is kept, and so is every party
/// certificate already there: only the missing ones are issued (delete the directory for a
/// wholly new set). Keys are written readable by the owner only.
pub fn write_dev_set(out: &Path) -> Result<(), CertsError> {
    std::fs::create_dir_all(out).map_err(|source| CertsError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let existing = std::fs::read_to_string(out.join("ca.pem"))
        .ok()
        .zip(std::fs::read_to_string(out.join("ca.key")).ok());
    let ca = match existing {
        Some((cert, key)) => DevCa::from_pem(&cert, &key)?,
        None => {
            let ca = DevCa::generate("pactgate development covenant CA")?;
            write(out, "ca.pem", &ca.cert_pem)?;
            write(out, "ca.key", &ca.key_pem)?;
            ca
        }
    };
    let (from, until) = dev_validity();
    for party in &DEV_PARTIES {
        let have = |ext: &str| out.join(format!("{}.{ext}", party.file)).exists();
        if have("pem") && have("key") {
            continue;
        }
        let issued = ca.issue(party, from, until)?;
        write(out, &format!("{}.pem", party.file), &issued.cert_pem)?;
        write(out, &format!("{}.key", party.file), &issued.key_pem)?;
    }
    for person in &DEV_PERSONS {
        let have = |ext: &str| out.join(format!("{}.{ext}", person.file)).exists();
        if have("pem") && have("key") {
            continue;
        }
        let Some(party) = dev_party(person.party) else {
            continue;
        };
        let issued = ca.issue_person(person, &party, from, until)?;
        write(out, &format!("{}.pem", person.file), &issued.cert_pem)?;
        write(out, &format!("{}.key", person.file), &issued.key_pem)?;
    }
    Ok(())
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<(), CertsError> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let result = if name.ends_with(".key") {
        crate::pseudonym::write_private(&path, contents.as_bytes())
    } else {
        std::fs::write(&path, contents)
    };
    result.map_err(|source| CertsError::Write {
        path: path.display().to_string(),
        source,
    })
}
