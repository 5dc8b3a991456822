//! Pupil identifiers and their pseudonyms. Pure: no I/O except reading and writing key files.
//! The raw identifier lives only inside [`PupilId`], which never prints its value and is wiped on
//! drop. A pseudonym is the output of an oblivious PRF (RFC 9497, ristretto255-SHA512) over the
//! domain-separated id; its key, [`PseudonymKey`], lives only at the pseudonymisation service
//! (`crate::pseudonymiser`), never at a node. Also the one rule for withholding id-like numbers
//! from any text that is echoed, logged or stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;
use std::path::Path;
use voprf::{BlindedElement, EvaluationElement, Proof, Ristretto255, VoprfServer};
use zeroize::Zeroizing;

/// The length of a pseudonymisation key seed in bytes.
pub const KEY_LEN: usize = 32;

/// Domain separation: the OPRF input is DOMAIN || kind || 0x00 || digits, so the same key can
/// never yield the same bytes for another use, nor a BSN the same pseudonym as an onderwijsnummer
/// with the same digits.
const DOMAIN: &[u8] = b"pactgate/v1/pupil-pseudonym\x00";

/// The RFC 9497 DeriveKeyPair info string: a key seed yields this OPRF key only.
const KEY_INFO: &[u8] = b"pactgate/v1/pseudonymiser-key";

/// How many bytes of the OPRF output a pseudonym keeps: 128 bits, far beyond collisions among
/// the roughly 10^8 possible pupil ids.
const PSEUDONYM_BYTES: usize = 16;

/// The OPRF ciphersuite: ristretto255 with SHA-512 (RFC 9497 section 4.1).
pub type Suite = Ristretto255;

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
    #[error(
        "pseudonymisation key file {path}, line {line}: {reason} (each line is \
         \"<version> <43 base64url characters>\", a {KEY_LEN}-byte seed)"
    )]
    Format {
        path: String,
        line: usize,
        reason: &'static str,
    },
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

impl PupilId {
    /// The OPRF input for this id: DOMAIN || kind || 0x00 || the nine ASCII digits. Wiped on
    /// drop; only ever hashed to the curve and blinded, never sent.
    pub(crate) fn oprf_input(&self) -> Zeroizing<Vec<u8>> {
        let kind: &[u8] = match self.kind {
            PupilIdKind::Bsn => b"bsn",
            PupilIdKind::Onderwijsnummer => b"onderwijsnummer",
        };
        let mut input = Zeroizing::new(Vec::with_capacity(DOMAIN.len() + kind.len() + 10));
        input.extend_from_slice(DOMAIN);
        input.extend_from_slice(kind);
        input.push(0);
        input.extend(self.digits.iter().map(|d| d + b'0'));
        input
    }
}

/// The pseudonym for an OPRF output under a key version: "v<version>." followed by the first
/// 16 bytes of the output as 22 base64url characters.
pub fn pseudonym_from_output(version: u16, output: &[u8]) -> String {
    let kept = &output[..PSEUDONYM_BYTES.min(output.len())];
    format!("v{version}.{}", URL_SAFE_NO_PAD.encode(kept))
}

/// A published OPRF public key with its version: what a node checks the service's proofs
/// against. Written "v<version>:<43 base64url characters>".
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    pub version: u16,
    pub element: curve25519_dalek::RistrettoPoint,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.element.compress().to_bytes();
        write!(f, "v{}:{}", self.version, URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let shape = "a public key is written v<version>:<43 base64url characters>";
        let (version, body) = text
            .trim()
            .strip_prefix('v')
            .and_then(|t| t.split_once(':'))
            .ok_or_else(|| shape.to_owned())?;
        let version: u16 = version.parse().map_err(|_| shape.to_owned())?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| shape.to_owned())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| shape.to_owned())?;
        let element = curve25519_dalek::ristretto::CompressedRistretto(bytes)
            .decompress()
            .ok_or_else(|| format!("v{version} is not a ristretto255 point"))?;
        Ok(Self { version, element })
    }
}

/// One version of the covenant's pseudonymisation key: an RFC 9497 VOPRF key derived from a
/// 32-byte seed. Whoever holds it can reverse a pseudonym by trying all ~10^8 ids, so it exists
/// only at the pseudonymisation service (and in tests), is never logged or sent, and is wiped on
/// drop (voprf zeroizes its server on drop).
pub struct PseudonymKey {
    version: u16,
    server: VoprfServer<Suite>,
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PseudonymKey(v{}, <redacted>)", self.version)
    }
}

impl PseudonymKey {
    /// The key a seed yields (RFC 9497 DeriveKeyPair with this crate's info string).
    pub fn from_bytes(version: u16, seed: &[u8; KEY_LEN]) -> Self {
        // DeriveKeyPair fails only for seed and info longer than 65,532 bytes together, or when
        // 256 derived scalars in a row are zero; neither can happen with these constants.
        let server =
            VoprfServer::new_from_seed(seed, KEY_INFO).expect("DeriveKeyPair of a 32-byte seed");
        Self { version, server }
    }

    pub fn version(&self) -> u16 {
        self.version
    }

    /// The public key nodes check this key's proofs against.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            version: self.version,
            element: self.server.get_public_key(),
        }
    }

    /// The pseudonym of a pupil, evaluated directly with the key (RFC 9497 Evaluate): the same
    /// value a node gets through the blinded protocol. Only the service and tests hold a key.
    pub fn pseudonym(&self, id: &PupilId) -> String {
        let input = id.oprf_input();
        // Evaluate fails only for an empty input or one longer than 65,535 bytes.
        let output = self
            .server
            .evaluate(&input)
            .expect("a pupil id's OPRF input has a valid length");
        pseudonym_from_output(self.version, &output)
    }

    /// Evaluates a batch of blinded elements with one DLEQ proof for the whole batch (RFC 9497
    /// BlindEvaluateBatch). Sees only blinded points: nothing about the pupils behind them.
    pub fn evaluate_blinded(
        &self,
        blinded: &[BlindedElement<Suite>],
    ) -> Result<(Vec<EvaluationElement<Suite>>, Proof<Suite>), voprf::Error> {
        let prepared: Vec<_> = self
            .server
            .batch_blind_evaluate_prepare(blinded.iter())
            .collect();
        let finished = self.server.batch_blind_evaluate_finish(
            &mut rand_core::OsRng,
            blinded.iter(),
            &prepared,
        )?;
        Ok((finished.messages.collect(), finished.proof))
    }

    /// Makes a new random seed.
    pub fn random_seed() -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        ring::rand::SecureRandom::fill(&rng, raw.as_mut_slice()).map_err(|_| KeyError::Write {
            path: String::new(),
            source: std::io::Error::other("no system randomness"),
        })?;
        Ok(raw)
    }
}

/// The fewest digits that make a run of digits id-like: a BSN and an onderwijsnummer have nine.
pub const ID_LIKE_DIGITS: usize = 9;

/// How many separator characters (dots, dashes, spaces, ...) may stand between two digits of one
/// run: "123.456.789", "123 - 456 - 789" is written by hand too rarely to weigh against dates.
const MAX_GAP: usize = 2;

/// The zero of every block of ten decimal digits in Unicode 14 (general category Nd), sorted.
/// Each block holds the digits 0 to 9 in order (a Unicode stability guarantee).
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// What a character is to the search for id-like numbers, after compatibility decomposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A digit of any script, or another numeric character (a Roman numeral, a fraction part).
    Digit,
    /// What people put between digit groups: spaces of any width, dots, dashes, slashes, ...
    Separator,
    /// Invisible: zero-width characters, soft hyphens, combining marks (a keycap around a digit).
    Ignored,
    Other,
}

/// The value of a decimal digit of any script: ASCII, Arabic-Indic, Devanagari, full-width, ...
fn decimal_value(c: char) -> Option<u8> {
    let cp = u32::from(c);
    let block = DECIMAL_ZEROS
        .partition_point(|zero| *zero <= cp)
        .checked_sub(1)?;
    let value = cp - DECIMAL_ZEROS[block];
    (value < 10).then_some(value as u8)
}

fn classify(c: char) -> Class {
    if c.is_numeric() {
        return Class::Digit;
    }
    // Not commas, colons or semicolons: they part list items and times, not digit groups.
    if c.is_whitespace()
        || matches!(
            c,
            '.' | '-' | '_' | '/' | '\\' | '\'' | '\u{b7}' | '\u{2010}'
                ..='\u{2015}'
                    | '\u{2022}'
                    | '\u{2027}'
                    | '\u{2043}'
                    | '\u{2212}'
                    | '\u{30fb}'
                    | '\u{2e31}'
        )
    {
        return Class::Separator;
    }
    if unicode_normalization::char::is_combining_mark(c)
        || matches!(
            c,
            '\u{ad}' | '\u{34f}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        )
    {
        return Class::Ignored;
    }
    Class::Other
}

/// A run of digits found in a text: its byte range in the text and what it holds.
#[derive(Debug, Clone)]
struct Run {
    start: usize,
    end: usize,
    digits: usize,
    /// Only ASCII digits, with nothing between them.
    plain: bool,
}

impl Run {
    fn id_like(&self, keep_oins: bool) -> bool {
        let oin = keep_oins && self.plain && self.digits == 20;
        self.digits >= ID_LIKE_DIGITS && !oin
    }
}

/// Finds the runs of digits of a text, one (decomposed) character at a time.
#[derive(Default)]
struct Scanner {
    runs: Vec<Run>,
    current: Option<Run>,
    /// Separators since the last digit.
    gap: usize,
}

impl Scanner {
    /// Takes one part of the character at bytes `at..end`; `ascii_digit`: that character is
    /// an ASCII digit.
    fn feed(&mut self, part: char, at: usize, end: usize, ascii_digit: bool) {
        match classify(part) {
            Class::Digit => {
                match self.current.as_mut() {
                    Some(run) if self.gap <= MAX_GAP => {
                        run.plain &= ascii_digit && self.gap == 0 && run.end == at;
                        run.digits += 1;
                        run.end = end;
                    }
                    _ => {
                        self.runs.extend(self.current.take());
                        self.current = Some(Run {
                            start: at,
                            end,
                            digits: 1,
                            plain: ascii_digit,
                        });
                    }
                }
                self.gap = 0;
            }
            Class::Separator => {
                self.gap += 1;
                if self.gap > MAX_GAP {
                    self.runs.extend(self.current.take());
                }
            }
            Class::Ignored => {}
            Class::Other => {
                self.runs.extend(self.current.take());
                self.gap = 0;
            }
        }
    }
}

/// The runs of digits in a text, in any script and with separators between digit groups, as one
/// rule for the whole node. Each character is decomposed for compatibility (the "K" of NFKC:
/// full-width, superscript and circled digits become ASCII digits, a no-break space a space);
/// digits of other scripts count as digits too.
fn digit_runs(text: &str) -> Vec<Run> {
    let mut scanner = Scanner::default();
    for (at, c) in text.char_indices() {
        let end = at + c.len_utf8();
        if c.is_ascii() {
            scanner.feed(c, at, end, c.is_ascii_digit());
        } else {
            unicode_normalization::char::decompose_compatible(c, |part| {
                scanner.feed(part, at, end, false)
            });
        }
    }
    scanner.runs.extend(scanner.current);
    scanner.runs
}

/// The decimal digits of a text, of any script, as ASCII digits; everything else left out.
pub fn ascii_digits(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        unicode_normalization::char::decompose_compatible(c, |d| {
            if let Some(v) = decimal_value(d) {
                out.push(char::from(b'0' + v));
            }
        });
    }
    out
}

/// True if the text holds a number that could be a pupil id: nine or more digits in a row, of
/// any script, counted across separators such as dots, dashes and spaces. The rule for caller
/// text that would be stored, shared, echoed or logged: such text is refused or withheld.
pub fn looks_like_id(text: &str) -> bool {
    digit_runs(text).iter().any(|r| r.id_like(false))
}

fn withhold(text: &str, keep_oins: bool) -> std::borrow::Cow<'_, str> {
    let runs: Vec<Run> = digit_runs(text)
        .into_iter()
        .filter(|r| r.id_like(keep_oins))
        .collect();
    if runs.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for run in runs {
        out.push_str(&text[at..run.start]);
        out.push_str("<withheld>");
        at = run.end;
    }
    out.push_str(&text[at..]);
    std::borrow::Cow::Owned(out)
}

/// The text with every number that could be a pupil id (see [`looks_like_id`]) replaced by
/// `<withheld>`, for caller text that is quoted in a reason, an error message or the audit log.
pub fn withhold_ids(text: &str) -> std::borrow::Cow<'_, str> {
    withhold(text, false)
}

/// Like [`withhold_ids`], but an OIN (exactly twenty ASCII digits, nothing between them) stays:
/// for text the node writes itself, which names organisations by OIN.
pub fn withhold_ids_keeping_oins(text: &str) -> std::borrow::Cow<'_, str> {
    withhold(text, true)
}

/// True if the text is an OIN: exactly twenty ASCII digits and nothing else.
pub fn is_oin(text: &str) -> bool {
    crate::ids::Oin::is_valid(text)
}

/// True if nine consecutive decimal digits of the text form a valid BSN or onderwijsnummer: the
/// rule for ids in hex (W3C trace and span ids, case ids), which may hold digit runs by chance
/// but must not carry a pupil id.
pub fn holds_pupil_id_digits(text: &str) -> bool {
    text.as_bytes()
        .windows(9)
        .filter(|w| w.iter().all(u8::is_ascii_digit))
        .any(|w| std::str::from_utf8(w).is_ok_and(|w| PupilId::parse(w).is_ok()))
}

/// Whether a file's mode lets group or others read or write it: `Some(mode)` if so. For the
/// node's private keys, which it refuses to use then.
pub fn exposed_mode(path: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path)?;
        Ok(None)
    }
}

/// True if the text has the shape of a pseudonym ("v<digits>.<22 base64url chars>").
pub fn is_pseudonym(text: &str) -> bool {
    crate::ids::Pseudonym::is_valid(text)
}

pub(crate) fn check_private(path: &Path) -> Result<(), KeyError> {
    let shown = path.display().to_string();
    match exposed_mode(path) {
        Ok(None) => Ok(()),
        Ok(Some(mode)) => Err(KeyError::Permissions { path: shown, mode }),
        Err(source) => Err(KeyError::Read {
            path: shown,
            source,
        }),
    }
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

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 9497 appendix A.1.2 (ristretto255-SHA512, VOPRF mode): the key derived from the
    /// vector's seed and info has the vector's public key, and Evaluate gives the vector's output
    /// for test vector 1 (input 00), which the blinded protocol must reproduce.
    #[test]
    fn rfc9497_voprf_vector() {
        let seed = [0xa3u8; 32];
        let server = VoprfServer::<Suite>::new_from_seed(&seed, b"test key").unwrap();
        let pk = server.get_public_key().compress().to_bytes();
        assert_eq!(
            pk.to_vec(),
            hex("c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e")
        );
        let output = server.evaluate(&[0x00]).unwrap();
        assert_eq!(
            output.to_vec(),
            hex(concat!(
                "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d",
                "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
            ))
        );
        let blind = voprf::VoprfClient::<Suite>::blind(&[0x00], &mut rand_core::OsRng).unwrap();
        let evaluated = server.blind_evaluate(&mut rand_core::OsRng, &blind.message);
        let unblinded = blind
            .state
            .finalize(
                &[0x00],
                &evaluated.message,
                &evaluated.proof,
                server.get_public_key(),
            )
            .unwrap();
        assert_eq!(unblinded, output);
    }

    #[test]
    fn blinded_batch_gives_the_direct_pseudonyms() {
        let key = key();
        let ids: Vec<PupilId> = ["111222333", "123456782"]
            .iter()
            .map(|s| PupilId::parse(s).unwrap())
            .collect();
        let inputs: Vec<_> = ids.iter().map(PupilId::oprf_input).collect();
        let blinds: Vec<_> = inputs
            .iter()
            .map(|i| voprf::VoprfClient::<Suite>::blind(i, &mut rand_core::OsRng).unwrap())
            .collect();
        let messages: Vec<_> = blinds.iter().map(|b| b.message.clone()).collect();
        let (evaluated, proof) = key.evaluate_blinded(&messages).unwrap();
        let clients: Vec<_> = blinds.iter().map(|b| b.state.clone()).collect();
        let inputs_ref: Vec<&[u8]> = inputs.iter().map(|i| i.as_slice()).collect();
        let outputs: Vec<_> = voprf::VoprfClient::batch_finalize(
            &inputs_ref,
            &clients,
            &evaluated,
            &proof,
            key.public_key().element,
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
        for (id, output) in ids.iter().zip(&outputs) {
            assert_eq!(pseudonym_from_output(1, output), key.pseudonym(id));
        }
        // Another key's public key does not verify this proof.
        let other = PseudonymKey::from_bytes(1, &[8u8; KEY_LEN]).public_key();
        assert!(voprf::VoprfClient::batch_finalize(
            &inputs_ref,
            &clients,
            &evaluated,
            &proof,
            other.element
        )
        .is_err());
    }

    #[test]
    fn public_key_text_round_trips() {
        let pk = key().public_key();
        let text = pk.to_string();
        assert!(text.starts_with("v1:"), "{text}");
        assert_eq!(text.parse::<PublicKey>().unwrap(), pk);
        assert!(!is_pseudonym(&text));
        assert!("v1:abc".parse::<PublicKey>().is_err());
        assert!("1:AAAA".parse::<PublicKey>().is_err());
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

    /// DUO's onderwijsnummer: nine digits, starting with "10", whose BSN-style weighted sum
    /// (9·d1 + 8·d2 + … + 2·d8 − d9) leaves 5 after division by 11. Known answers, the sums
    /// worked out by hand; the first and last vectors are python-stdnum's (`stdnum.nl.onderwijsnummer`).
    #[test]
    fn onderwijsnummer_vectors() {
        let valid = [
            "101222331", // 9+0+7+12+10+8+9+6-1 = 60 = 5*11 + 5
            "100000004", // 9-4 = 5
            "100000016", // 9+2*1-6 = 5
            "100000028", // 9+2*2-8 = 5
        ];
        for n in valid {
            let id = PupilId::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(id.kind(), PupilIdKind::Onderwijsnummer, "{n}");
        }
        let refused = [
            ("101222332", PupilIdError::Checksum), // sum 59, remainder 4
            ("100000013", PupilIdError::Checksum), // sum 8
            ("100000009", PupilIdError::Checksum), // sum 0: neither rule (a BSN's sum is not 0)
            ("211222337", PupilIdError::Checksum), // remainder 5, but does not start with 10
            ("1012.22.331", PupilIdError::NotNineDigits), // written with dots: not accepted
            ("1012223310", PupilIdError::NotNineDigits),
            ("10122233", PupilIdError::NotNineDigits),
        ];
        for (n, why) in refused {
            assert_eq!(PupilId::parse(n).unwrap_err(), why, "{n}");
        }
        // Starts with 10 but its sum (66) divides by 11: a valid BSN, never an onderwijsnummer.
        assert_eq!(
            PupilId::parse("100252333").unwrap().kind(),
            PupilIdKind::Bsn
        );
    }

    #[test]
    fn id_like_numbers_are_withheld_but_oins_shown_in_node_text() {
        assert_eq!(withhold_ids("purpose 111222333 x"), "purpose <withheld> x");
        assert_eq!(withhold_ids("a1112223334b"), "a<withheld>b");
        assert_eq!(
            withhold_ids_keeping_oins("OIN 00000099000000000004"),
            "OIN 00000099000000000004"
        );
        assert_eq!(withhold_ids("OIN 00000099000000000004"), "OIN <withheld>");
        assert_eq!(
            withhold_ids("2026-11-23, 1000 records"),
            "2026-11-23, 1000 records"
        );
        assert_eq!(withhold_ids("12345678 records"), "12345678 records");
    }

    #[test]
    fn id_like_numbers_in_every_written_form() {
        for form in [
            "lln-1234.56.789",
            "123 456 789",
            "123-45-6789",
            "123. 456. 789",
            "12\u{a0}34\u{a0}56\u{a0}789",
            "123\u{202f}456\u{202f}789",
            "１２３４５６７８９",
            "١٢٣٤٥٦٧٨٩",
            "۱۲۳-۴۵۶-۷۸۹",
            "१२३४५६७८९",
            "¹²³⁴⁵⁶⁷⁸⁹",
            "①②③④⑤⑥⑦⑧⑨",
            "1\u{200b}2\u{ad}3456789",
            "1\u{20e3}2\u{20e3}3456789",
            "𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗",
            "12३4５6٧8۹",
            "123–456–789",
        ] {
            assert!(looks_like_id(form), "{form:?}");
            let shown = withhold_ids(form);
            assert!(shown.contains("<withheld>"), "{form:?} -> {shown:?}");
            assert!(
                ascii_digits(&shown).len() < ID_LIKE_DIGITS,
                "{form:?} -> {shown:?}"
            );
        }
        assert_eq!(ascii_digits("١٢٣-۴۵۶ ७८९"), "123456789");
        for fine in [
            "2026-11-23",
            "2026-11-01, 2027-02-01",
            "record 84: school",
            "12:30",
            "GM0014",
            "case-0a1b2c3d4e5f6a7b",
            "v1.AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!looks_like_id(fine), "{fine:?}");
        }
    }

    #[test]
    fn oins_and_hex_ids() {
        assert!(is_oin("00000099000000000004"));
        assert!(!is_oin("0000009900000000000"));
        assert!(!is_oin("0000009900000000000x"));
        assert!(!is_oin("00000099.000000000004"));
        assert!(holds_pupil_id_digits("a111222333bbbbbbbbbbbbbbbbbbbbbb"));
        assert!(holds_pupil_id_digits("c1234567820000ff"));
        assert!(!holds_pupil_id_digits("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!holds_pupil_id_digits("a123456789bbbbbb"));
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
        fn withheld_text_never_holds_nine_digits(text in "[0-9a-z .\\-\u{a0}\u{ff10}-\u{ff19}\u{660}-\u{669}]{0,40}") {
            let shown = withhold_ids(&text);
            let digits_in_a_row = ascii_digits(&shown);
            prop_assert!(!looks_like_id(&shown), "{:?} -> {:?} ({})", text, shown, digits_in_a_row);
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
