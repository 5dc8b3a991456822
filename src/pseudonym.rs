//! Pupil identifiers and their keyed pseudonyms. Pure: no I/O except reading and writing the key
//! file. The raw identifier lives only inside [`PupilId`], which never prints its value and is
//! wiped on drop; the key lives only inside [`PseudonymKey`], which never prints it. Also the one
//! rule for withholding id-like numbers from any text that is echoed, logged or stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use std::fmt;
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

/// The length of a pseudonymisation key in bytes.
pub const KEY_LEN: usize = 32;

/// Domain separation: a pseudonym is HMAC-SHA256(key, DOMAIN || kind || 0x00 || digits), so the
/// same key can never yield the same bytes for another use, nor a BSN the same pseudonym as an
/// onderwijsnummer with the same digits.
const DOMAIN: &[u8] = b"pactgate/v1/pupil-pseudonym\x00";

/// How many bytes of the HMAC a pseudonym keeps: 128 bits, far beyond collisions among the
/// roughly 10^8 possible pupil ids.
const PSEUDONYM_BYTES: usize = 16;

/// Why a pupil id was refused. The messages never contain the id itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PupilIdError {
    #[error("is empty")]
    Empty,
    #[error("must be exactly nine digits")]
    NotNineDigits,
    #[error("fails the 11-proef (not a BSN) and is not a valid onderwijsnummer")]
    Checksum,
}

/// Why a key could not be loaded or written. Never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read pseudonymisation key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write pseudonymisation key {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("pseudonymisation key {path} must be exactly {KEY_LEN} bytes, found {found}")]
    Length { path: String, found: usize },
    #[error(
        "pseudonymisation key {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}`"
    )]
    Permissions { path: String, mode: u32 },
    #[error("{path} already exists; refusing to overwrite a pseudonymisation key")]
    Exists { path: String },
}

/// Which kind of identifier a [`PupilId`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PupilIdKind {
    Bsn,
    Onderwijsnummer,
}

/// A validated BSN or onderwijsnummer. Its `Debug` hides the digits and it is wiped on drop.
pub struct PupilId {
    kind: PupilIdKind,
    digits: Zeroizing<[u8; 9]>,
}

impl fmt::Debug for PupilId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PupilId({:?}, <redacted>)", self.kind)
    }
}

/// The weighted sum of the 11-proef: 9*d1 + 8*d2 + ... + 2*d8 - d9.
fn eleven_sum(digits: &[u8; 9]) -> i32 {
    let head: i32 = digits[..8]
        .iter()
        .zip((2..=9).rev())
        .map(|(d, w)| i32::from(*d) * w)
        .sum();
    head - i32::from(digits[8])
}

impl PupilId {
    /// Parses and checks an identifier: a BSN passes the 11-proef (weighted sum divisible by 11);
    /// an onderwijsnummer starts with "10" and its weighted sum leaves 5 after division by 11.
    /// The two rules never both hold, so the kind follows from the digits alone and every node
    /// classifies the same id the same way.
    pub fn parse(raw: &str) -> Result<Self, PupilIdError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PupilIdError::Empty);
        }
        if raw.len() != 9 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PupilIdError::NotNineDigits);
        }
        let mut digits = Zeroizing::new([0u8; 9]);
        for (slot, b) in digits.iter_mut().zip(raw.bytes()) {
            *slot = b - b'0';
        }
        let sum = eleven_sum(&digits);
        let kind = if sum % 11 == 0 && sum != 0 {
            PupilIdKind::Bsn
        } else if sum.rem_euclid(11) == 5 && digits[0] == 1 && digits[1] == 0 {
            PupilIdKind::Onderwijsnummer
        } else {
            return Err(PupilIdError::Checksum);
        };
        Ok(Self { kind, digits })
    }

    pub fn kind(&self) -> PupilIdKind {
        self.kind
    }
}

/// The covenant's pseudonymisation key, with its version. Whoever holds it can reverse a
/// pseudonym by trying all ~10^8 ids, so it is never logged or sent. The raw bytes live only in
/// wiping buffers while the key is made; what remains is ring's HMAC key schedule (which ring
/// does not wipe; see the README).
pub struct PseudonymKey {
    version: u16,
    hmac: hmac::Key,
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PseudonymKey(v{}, <redacted>)", self.version)
    }
}

impl PseudonymKey {
    /// A key from its bytes (tests, the demo).
    pub fn from_bytes(version: u16, bytes: &[u8; KEY_LEN]) -> Self {
        Self {
            version,
            hmac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// Loads a key file: exactly 32 bytes, readable by the owner only.
    pub fn load(path: &Path, version: u16) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        check_private(path)?;
        let mut bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        if bytes.len() != KEY_LEN {
            let found = bytes.len();
            bytes.zeroize();
            return Err(KeyError::Length { path: shown, found });
        }
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        raw.copy_from_slice(&bytes);
        bytes.zeroize();
        Ok(Self::from_bytes(version, &raw))
    }

    /// Makes a new random key file (mode 0600), refusing to overwrite an existing one.
    pub fn generate(path: &Path) -> Result<(), KeyError> {
        let shown = path.display().to_string();
        let rng = ring::rand::SystemRandom::new();
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        ring::rand::SecureRandom::fill(&rng, raw.as_mut_slice()).map_err(|_| KeyError::Write {
            path: shown.clone(),
            source: std::io::Error::other("no system randomness"),
        })?;
        write_private(path, raw.as_slice()).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: shown.clone(),
            },
            _ => KeyError::Write {
                path: shown,
                source,
            },
        })
    }

    pub fn version(&self) -> u16 {
        self.version
    }

    /// The pseudonym of a pupil: "v<version>." followed by 22 base64url characters.
    pub fn pseudonym(&self, id: &PupilId) -> String {
        let kind: &[u8] = match id.kind {
            PupilIdKind::Bsn => b"bsn",
            PupilIdKind::Onderwijsnummer => b"onderwijsnummer",
        };
        let mut ctx = hmac::Context::with_key(&self.hmac);
        ctx.update(DOMAIN);
        ctx.update(kind);
        ctx.update(&[0]);
        let mut ascii = Zeroizing::new([0u8; 9]);
        for (slot, d) in ascii.iter_mut().zip(id.digits.iter()) {
            *slot = d + b'0';
        }
        ctx.update(ascii.as_slice());
        let tag = ctx.sign();
        format!(
            "v{}.{}",
            self.version,
            URL_SAFE_NO_PAD.encode(&tag.as_ref()[..PSEUDONYM_BYTES])
        )
    }
}

/// True if a run of digits could be a pupil id, or a pupil id with digits around it: eight or
/// more digits. A run of exactly twenty is an OIN, an organisation's number, and is shown.
fn id_like_run(run: &str) -> bool {
    run.len() >= 8 && run.len() != 20
}

/// True if the text holds a run of digits that could be a pupil id.
pub fn looks_like_id(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(id_like_run)
}

/// The text with every digit run that could be a pupil id replaced by `<withheld>`, for text a
/// caller supplied that is quoted in a reason, an error message or the audit log.
pub fn withhold_ids(text: &str) -> std::borrow::Cow<'_, str> {
    if !looks_like_id(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        out.push_str(if id_like_run(run) { "<withheld>" } else { run });
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    std::borrow::Cow::Owned(out)
}

/// True if the text has the shape of a pseudonym ("v<digits>.<22 base64url chars>").
pub fn is_pseudonym(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else {
        return false;
    };
    let Some((version, body)) = rest.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.len() <= 5
        && version.bytes().all(|b| b.is_ascii_digit())
        && body.len() == 22
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// Writes a new file readable by its owner only; fails if it exists.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> PseudonymKey {
        PseudonymKey::from_bytes(1, &[7u8; KEY_LEN])
    }

    #[test]
    fn bsn_eleven_proof() {
        assert_eq!(
            PupilId::parse("111222333").unwrap().kind(),
            PupilIdKind::Bsn
        );
        assert_eq!(
            PupilId::parse("123456782").unwrap().kind(),
            PupilIdKind::Bsn
        );
        assert_eq!(
            PupilId::parse("123456789").unwrap_err(),
            PupilIdError::Checksum
        );
        assert_eq!(
            PupilId::parse("000000000").unwrap_err(),
            PupilIdError::Checksum
        );
        assert_eq!(
            PupilId::parse("12345678").unwrap_err(),
            PupilIdError::NotNineDigits
        );
        assert_eq!(
            PupilId::parse("12345678a").unwrap_err(),
            PupilIdError::NotNineDigits
        );
        assert_eq!(PupilId::parse(" ").unwrap_err(), PupilIdError::Empty);
    }

    #[test]
    fn onderwijsnummer_rule() {
        // 101234561: 9+0+7+12+15+16+15+12-1 = 85 = 7*11 + 8 -> not 5; find a valid one instead.
        let valid = (100_000_000u32..100_001_000)
            .map(|n| n.to_string())
            .find(|s| {
                PupilId::parse(s)
                    .map(|id| id.kind() == PupilIdKind::Onderwijsnummer)
                    .unwrap_or(false)
            })
            .expect("some onderwijsnummer in range");
        assert!(valid.starts_with("10"));
    }

    #[test]
    fn id_like_numbers_are_withheld_but_oins_shown() {
        assert_eq!(withhold_ids("purpose 111222333 x"), "purpose <withheld> x");
        assert_eq!(withhold_ids("a1112223334b"), "a<withheld>b");
        assert_eq!(
            withhold_ids("OIN 00000099000000000004"),
            "OIN 00000099000000000004"
        );
        assert_eq!(
            withhold_ids("2026-11-23, 1000 records"),
            "2026-11-23, 1000 records"
        );
    }

    #[test]
    fn debug_never_shows_digits() {
        let id = PupilId::parse("111222333").unwrap();
        assert!(!format!("{id:?}").contains("111222333"));
        assert!(!format!("{:?}", key()).contains('7'));
    }

    #[test]
    fn pseudonym_shape_and_version() {
        let p = key().pseudonym(&PupilId::parse("111222333").unwrap());
        assert!(p.starts_with("v1."), "{p}");
        assert!(is_pseudonym(&p));
        let p2 = PseudonymKey::from_bytes(2, &[7u8; KEY_LEN])
            .pseudonym(&PupilId::parse("111222333").unwrap());
        assert!(p2.starts_with("v2."));
    }

    proptest! {
        #[test]
        fn pseudonym_is_deterministic_and_hides_the_id(n in 100_000_000u32..999_999_999) {
            let text = n.to_string();
            if let Ok(id) = PupilId::parse(&text) {
                let a = key().pseudonym(&id);
                let b = key().pseudonym(&PupilId::parse(&text).unwrap());
                prop_assert_eq!(&a, &b);
                prop_assert!(is_pseudonym(&a));
                prop_assert!(!a.contains(&text));
            }
        }

        #[test]
        fn distinct_ids_distinct_pseudonyms(a in 100_000_000u32..999_999_999, b in 100_000_000u32..999_999_999) {
            let (sa, sb) = (a.to_string(), b.to_string());
            if let (Ok(ia), Ok(ib)) = (PupilId::parse(&sa), PupilId::parse(&sb)) {
                prop_assert_eq!(a == b, key().pseudonym(&ia) == key().pseudonym(&ib));
            }
        }

        #[test]
        fn another_key_another_pseudonym(n in 100_000_000u32..999_999_999, k in any::<[u8; 32]>()) {
            prop_assume!(k != [7u8; 32]);
            if let Ok(id) = PupilId::parse(&n.to_string()) {
                let other = PseudonymKey::from_bytes(1, &k);
                prop_assert_ne!(key().pseudonym(&id), other.pseudonym(&id));
            }
        }

        #[test]
        fn withheld_text_never_holds_a_valid_id(n in 100_000_000u32..999_999_999, pre in "[a-z ]{0,5}", post in "[a-z0-9 ]{0,5}") {
            let id = n.to_string();
            let text = format!("{pre}{id}{post}");
            prop_assert!(!withhold_ids(&text).contains(&id));
        }

        #[test]
        fn parse_never_panics(s in ".{0,20}") {
            let _ = PupilId::parse(&s);
        }
    }
}
