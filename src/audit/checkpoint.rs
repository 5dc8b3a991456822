//! Ed25519 keys (ring) and the C2SP text formats: signed-note, tlog-checkpoint, tlog-cosignature/v1.
//! Formats and signatures only; never stores anything but the key file it is told to make.
//! Invariant: a `Checkpoint` parsed from a note was checked against a verifier key first.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};

use super::merkle::Hash;

/// Signature type byte of an Ed25519 signed-note key (c2sp.org/signed-note).
const ALG_ED25519: u8 = 0x01;
/// Signature type byte of a timestamped Ed25519 witness cosignature (c2sp.org/tlog-cosignature).
const ALG_COSIGNATURE_V1: u8 = 0x04;
const MAX_NOTE: usize = 64 * 1024;
const MAX_SIGNATURES: usize = 100;

/// Why a key, note, checkpoint or cosignature was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("key file: {0}")]
    KeyFile(#[from] std::io::Error),
    #[error(
        "audit signing key {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}`"
    )]
    KeyPermissions { path: String, mode: u32 },
    #[error("the key file does not hold an Ed25519 PKCS#8 key")]
    KeyFormat,
    #[error("could not generate a key")]
    KeyGen,
    #[error("malformed verifier key")]
    VerifierKey,
    #[error("key name must be non-empty and hold no spaces or '+'")]
    KeyName,
    #[error("malformed signed note")]
    Note,
    #[error("malformed checkpoint")]
    Checkpoint,
    #[error("no valid signature by {0}")]
    Signature(String),
    #[error("malformed cosignature")]
    Cosignature,
    #[error("no key is configured for the log {0}")]
    UnknownOrigin(String),
}

/// The node's Ed25519 key, made with ring on first start and kept as PKCS#8 (mode 0600).
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &B64.encode(self.public_key()))
            .finish()
    }
}

impl SigningKey {
    /// Loads the key at `path`, or makes one there (mode 0600, never overwriting) if absent. A
    /// key that group or others may read is refused.
    pub fn load_or_create(path: &Path) -> Result<Self, NoteError> {
        match crate::pseudonym::exposed_mode(path) {
            Ok(Some(mode)) => {
                return Err(NoteError::KeyPermissions {
                    path: path.display().to_string(),
                    mode,
                })
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        match std::fs::read(path) {
            Ok(pkcs8) => Self::from_pkcs8(&pkcs8),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a fresh key to a temporary file (mode 0600) beside `path` and links it into place
    /// only if `path` is still absent, so a concurrent reader never sees half a key; if another
    /// process made the key first, that key is loaded instead.
    fn create(path: &Path) -> Result<Self, NoteError> {
        let pkcs8 = Self::generate_pkcs8()?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let mut file = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(&pkcs8)?;
        file.as_file().sync_all()?;
        match file.persist_noclobber(path) {
            Ok(_) => Self::from_pkcs8(&pkcs8),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::from_pkcs8(&std::fs::read(path)?)
            }
            Err(e) => Err(e.error.into()),
        }
    }

    /// A fresh PKCS#8 document, for callers that keep keys elsewhere (and tests).
    pub fn generate_pkcs8() -> Result<Vec<u8>, NoteError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| NoteError::KeyGen)
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, NoteError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| NoteError::KeyFormat)?;
        Ok(SigningKey { pair })
    }

    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// The signed-note verifier key `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self, name: &str) -> String {
        verifier_key_string(name, ALG_ED25519, &self.public_key())
    }

    /// The witness verifier key for cosignature/v1 (type byte 0x04).
    pub fn cosignature_verifier_key(&self, name: &str) -> String {
        verifier_key_string(name, ALG_COSIGNATURE_V1, &self.public_key())
    }

    /// The signed note of `text` (ending in a newline): the text, a blank line and this key's
    /// Ed25519 signature line under `name`.
    pub fn sign_note(&self, text: &str, name: &str) -> String {
        let sig = self.sign(text.as_bytes());
        let id = key_id(name, ALG_ED25519, &self.public_key());
        format!("{text}\n{}", signature_line(name, &id, &[&sig]))
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

fn verifier_key_string(name: &str, alg: u8, public: &[u8; 32]) -> String {
    let id = key_id(name, alg, public);
    let mut encoded = Vec::with_capacity(33);
    encoded.push(alg);
    encoded.extend_from_slice(public);
    format!("{name}+{}+{}", hex(&id), B64.encode(encoded))
}

/// Key id: the first 4 bytes of SHA-256(name || "\n" || type byte || public key).
fn key_id(name: &str, alg: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[alg]);
    ctx.update(public);
    let mut id = [0u8; 4];
    id.copy_from_slice(&ctx.finish().as_ref()[..4]);
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A parsed verifier key (Ed25519 note signer or cosignature/v1 witness).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    alg: u8,
    id: [u8; 4],
    public: [u8; 32],
}

impl VerifierKey {
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::VerifierKey);
        };
        let raw = B64.decode(key_b64).map_err(|_| NoteError::VerifierKey)?;
        if !valid_name(name) || raw.len() != 33 || id_hex.len() != 8 {
            return Err(NoteError::VerifierKey);
        }
        let alg = raw[0];
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::VerifierKey);
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&raw[1..]);
        let id = key_id(name, alg, &public);
        if hex(&id) != id_hex {
            return Err(NoteError::VerifierKey);
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            alg,
            id,
            public,
        })
    }

    pub fn is_cosigner(&self) -> bool {
        self.alg == ALG_COSIGNATURE_V1
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(msg, sig)
            .is_ok()
    }
}

/// A signed note split into its text and signature lines (c2sp.org/signed-note).
struct Note<'a> {
    text: &'a str,
    signatures: Vec<(&'a str, Vec<u8>)>,
}

impl<'a> Note<'a> {
    fn parse(note: &'a str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE || !note.ends_with('\n') {
            return Err(NoteError::Note);
        }
        let split = note.rfind("\n\n").ok_or(NoteError::Note)?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        let signatures = sigs
            .lines()
            .map(|line| {
                let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Note)?;
                let (name, b64) = rest.split_once(' ').ok_or(NoteError::Note)?;
                let sig = B64.decode(b64).map_err(|_| NoteError::Note)?;
                if !valid_name(name) || sig.len() < 5 {
                    return Err(NoteError::Note);
                }
                Ok((name, sig))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Note);
        }
        Ok(Note { text, signatures })
    }

    /// The signature bytes after the key id, of the first line by this key.
    fn by<'s>(&'s self, key: &'s VerifierKey) -> impl Iterator<Item = &'s [u8]> + 's {
        self.signatures
            .iter()
            .filter(move |(name, sig)| *name == key.name && sig[..4] == key.id)
            .map(|(_, sig)| &sig[4..])
    }
}

fn signature_line(name: &str, id: &[u8; 4], rest: &[&[u8]]) -> String {
    let mut raw = id.to_vec();
    for part in rest {
        raw.extend_from_slice(part);
    }
    format!("\u{2014} {name} {}\n", B64.encode(raw))
}

/// A log's checkpoint body: origin, size and root hash (c2sp.org/tlog-checkpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// `"<origin>\n<size>\n<base64 root>\n"`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::Checkpoint);
        };
        let canonical_size = !size.is_empty() && (size == "0" || !size.starts_with('0'));
        let size: u64 = size.parse().map_err(|_| NoteError::Checkpoint)?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Checkpoint)?;
        if origin.is_empty() || !canonical_size {
            return Err(NoteError::Checkpoint);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Signs this checkpoint as a signed note by `key` under `name`.
    pub fn sign(self, key: &SigningKey, name: &str) -> SignedCheckpoint {
        let note = key.sign_note(&self.body(), name);
        SignedCheckpoint {
            checkpoint: self,
            note,
        }
    }

    /// Parses `note` and checks that `key` (an Ed25519 note key whose name is the origin) signed it.
    pub fn open(note: &str, key: &VerifierKey) -> Result<SignedCheckpoint, NoteError> {
        let parsed = Note::parse(note)?;
        let checkpoint = Self::parse_body(parsed.text)?;
        if key.alg != ALG_ED25519 || checkpoint.origin != key.name {
            return Err(NoteError::Signature(key.name.clone()));
        }
        if !parsed
            .by(key)
            .any(|sig| key.verify(parsed.text.as_bytes(), sig))
        {
            return Err(NoteError::Signature(key.name.clone()));
        }
        Ok(SignedCheckpoint {
            checkpoint,
            note: note.to_owned(),
        })
    }

    /// A witness's cosignature over this checkpoint at `timestamp` (seconds since the epoch).
    /// For a checkpoint without extension lines; [`cosign_text`] covers any note text.
    pub fn cosign(&self, key: &SigningKey, name: &str, timestamp: u64) -> Cosignature {
        cosign_text(&self.body(), key, name, timestamp)
    }
}

/// The message a cosignature/v1 signs: the header, the timestamp line and the whole checkpoint
/// text (every line before the blank line, extension lines included).
fn cosigned_message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// A witness's cosignature/v1 over the checkpoint `text` (the note body up to and including its
/// last newline, before the blank line) at `timestamp` (seconds since the epoch).
pub fn cosign_text(text: &str, key: &SigningKey, name: &str, timestamp: u64) -> Cosignature {
    let sig = key.sign(cosigned_message(text, timestamp).as_bytes());
    let id = key_id(name, ALG_COSIGNATURE_V1, &key.public_key());
    Cosignature {
        name: name.to_owned(),
        key_id: id,
        timestamp,
        signature: sig,
    }
}

/// The text of a signed note (every line before the blank line, newline included): what the
/// log signed and what a cosignature covers.
pub fn note_text(note: &str) -> Result<&str, NoteError> {
    Ok(Note::parse(note)?.text)
}

/// Parses a checkpoint `note` and checks it against the first of `keys` whose name is its origin.
/// Unknown origin: [`NoteError::UnknownOrigin`]; known origin but no valid signature by any of its
/// keys: [`NoteError::Signature`]. Signatures by other keys are ignored.
pub fn open_with(note: &str, keys: &[VerifierKey]) -> Result<SignedCheckpoint, NoteError> {
    let parsed = Note::parse(note)?;
    let checkpoint = Checkpoint::parse_body(parsed.text)?;
    let mut known = keys
        .iter()
        .filter(|k| k.alg == ALG_ED25519 && k.name == checkpoint.origin)
        .peekable();
    if known.peek().is_none() {
        return Err(NoteError::UnknownOrigin(checkpoint.origin.clone()));
    }
    let signed = known.any(|key| {
        parsed
            .by(key)
            .any(|sig| key.verify(parsed.text.as_bytes(), sig))
    });
    if !signed {
        return Err(NoteError::Signature(checkpoint.origin.clone()));
    }
    Ok(SignedCheckpoint {
        checkpoint,
        note: note.to_owned(),
    })
}

/// The checkpoint in `note` without checking any signature: only for a body whose signature is
/// checked otherwise (a witness's cosignature covers the body).
pub fn body_of(note: &str) -> Result<Checkpoint, NoteError> {
    Checkpoint::parse_body(Note::parse(note)?.text)
}

/// A checkpoint with its signed note (body, blank line, signature line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: String,
}

/// A C2SP tlog-cosignature/v1: `— <name> base64(key id || timestamp BE || Ed25519 signature)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub timestamp: u64,
    pub signature: [u8; 64],
}

impl Cosignature {
    /// The signature line, newline included; append it to the checkpoint note.
    pub fn line(&self) -> String {
        signature_line(
            &self.name,
            &self.key_id,
            &[&self.timestamp.to_be_bytes(), &self.signature],
        )
    }

    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .trim_end_matches('\n')
            .strip_prefix("\u{2014} ")
            .ok_or(NoteError::Cosignature)?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::Cosignature)?;
        let raw = B64.decode(b64).map_err(|_| NoteError::Cosignature)?;
        if !valid_name(name) || raw.len() != 4 + 8 + 64 {
            return Err(NoteError::Cosignature);
        }
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(&raw[..4]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[4..12]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[12..]);
        Ok(Cosignature {
            name: name.to_owned(),
            key_id,
            timestamp: u64::from_be_bytes(ts),
            signature,
        })
    }

    /// Checks this cosignature over `checkpoint` with the witness key `key` (type 0x04).
    /// For a checkpoint without extension lines; [`Cosignature::verify_text`] covers any.
    pub fn verify(&self, checkpoint: &Checkpoint, key: &VerifierKey) -> Result<(), NoteError> {
        self.verify_text(&checkpoint.body(), key)
    }

    /// Checks this cosignature over the checkpoint note text `text` (see [`note_text`]).
    pub fn verify_text(&self, text: &str, key: &VerifierKey) -> Result<(), NoteError> {
        let ok = key.alg == ALG_COSIGNATURE_V1
            && self.name == key.name
            && self.key_id == key.id
            && key.verify(
                cosigned_message(text, self.timestamp).as_bytes(),
                &self.signature,
            );
        if ok {
            Ok(())
        } else {
            Err(NoteError::Signature(key.name.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("gen")).expect("key")
    }

    fn cp(size: u64) -> Checkpoint {
        Checkpoint {
            origin: "pactgate/00000001001234567000".into(),
            size,
            root: [7; 32],
        }
    }

    #[test]
    fn checkpoint_note_round_trips_and_detects_changes() {
        let k = key();
        let name = "pactgate/00000001001234567000";
        let vkey = VerifierKey::parse(&k.verifier_key(name)).expect("vkey");
        let signed = cp(12).sign(&k, name);
        assert!(signed
            .note
            .starts_with("pactgate/00000001001234567000\n12\nBwcH"));
        assert!(signed
            .note
            .contains("\n\n\u{2014} pactgate/00000001001234567000 "));
        assert_eq!(Checkpoint::open(&signed.note, &vkey).expect("open"), signed);
        let forged = signed.note.replacen("\n12\n", "\n13\n", 1);
        assert!(Checkpoint::open(&forged, &vkey).is_err());
        let other = VerifierKey::parse(&key().verifier_key(name)).expect("other");
        assert!(Checkpoint::open(&signed.note, &other).is_err());
    }

    #[test]
    fn verifier_key_has_the_spec_key_id() {
        let k = key();
        let vkey = k.verifier_key("example.com/log");
        let parts: Vec<&str> = vkey.split('+').collect();
        let mut pre = b"example.com/log\n\x01".to_vec();
        pre.extend_from_slice(&k.public_key());
        let digest = ring::digest::digest(&ring::digest::SHA256, &pre);
        assert_eq!(parts[1], hex(&digest.as_ref()[..4]));
        assert!(VerifierKey::parse(&vkey.replace("example", "exampel")).is_err());
    }

    #[test]
    fn cosignature_round_trips_and_binds_the_checkpoint() {
        let w = key();
        let vkey = VerifierKey::parse(&w.cosignature_verifier_key("witness/a")).expect("vkey");
        let cosig = cp(5).cosign(&w, "witness/a", 1_730_000_000);
        let parsed = Cosignature::parse_line(&cosig.line()).expect("parse");
        assert_eq!(parsed, cosig);
        parsed.verify(&cp(5), &vkey).expect("verifies");
        assert!(parsed.verify(&cp(6), &vkey).is_err());
        let note_key = VerifierKey::parse(&w.verifier_key("witness/a")).expect("note key");
        assert!(parsed.verify(&cp(5), &note_key).is_err());
    }

    #[test]
    fn malformed_notes_are_refused() {
        let k = key();
        let vkey = VerifierKey::parse(&k.verifier_key("o")).expect("vkey");
        for bad in [
            "",
            "o\n1\nAAAA\n",
            "o\n1\n\n\u{2014} o AAAA\n",
            "o\n01\nBwcH\n\n\u{2014} o AAAAAAAA\n",
        ] {
            assert!(Checkpoint::open(bad, &vkey).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn concurrent_first_loads_agree_on_one_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("witness.key");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| SigningKey::load_or_create(&path).expect("key").public_key()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "one key for all");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temp files left"
        );
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.key");
        let a = SigningKey::load_or_create(&path).expect("create");
        let b = SigningKey::load_or_create(&path).expect("load");
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
