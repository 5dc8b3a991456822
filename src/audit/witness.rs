//! The witness a node runs for its peers (c2sp.org/tlog-witness): cosigns a checkpoint of a log it
//! is configured for only if it extends the last one it cosigned for that origin. Sees sizes and
//! hashes only, never an entry. Invariant: per origin, cosigned sizes only grow, each proven
//! consistent with the previous; no log is trusted on first use. Cosigning and serving what it
//! holds take its grants ([`CosignGrant`], [`HeldGrant`]), made only after that check.

use std::sync::Mutex;

use chrono::Utc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::checkpoint::{
    cosign_text, note_text, open_with, Checkpoint, Cosignature, NoteError, SigningKey, VerifierKey,
};
use super::merkle::{verify_consistency, Hash};
use super::verify::TrustedCheckpoint;

/// Why a checkpoint was not cosigned, each with the HTTP status c2sp.org/tlog-witness gives it.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("witness store: {0}")]
    Store(#[from] sled::Error),
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("malformed checkpoint: {0}")]
    Note(NoteError),
    #[error("this witness is not configured for the log {0}")]
    UnknownLog(String),
    #[error("no valid signature by a key configured for {0}")]
    Signature(String),
    #[error("old size {old_size} is larger than the checkpoint size {size}")]
    OldSizeBeyond { old_size: u64, size: u64 },
    #[error("old size {offered} given, but the latest size cosigned for this origin is {held}")]
    Conflict { held: u64, offered: u64 },
    #[error("a different root at the cosigned size {size}: the log forked")]
    Fork { size: u64 },
    #[error("old size 0 takes an empty consistency proof")]
    ProofNotEmpty,
    #[error("the consistency proof from {old_size} to {new_size} does not check")]
    Inconsistent { old_size: u64, new_size: u64 },
    #[error("the witness store is damaged")]
    Damaged,
}

impl From<NoteError> for WitnessError {
    fn from(e: NoteError) -> Self {
        match e {
            // The origin line is the submitter's text: logged and echoed only withheld and clipped.
            NoteError::UnknownOrigin(origin) => WitnessError::UnknownLog(shown_origin(&origin)),
            NoteError::Signature(origin) => WitnessError::Signature(shown_origin(&origin)),
            other => WitnessError::Note(other),
        }
    }
}

impl WitnessError {
    /// The status c2sp.org/tlog-witness prescribes for this refusal (500 for the witness's own
    /// failures).
    pub fn http_status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_)
            | WitnessError::Note(_)
            | WitnessError::OldSizeBeyond { .. } => 400,
            WitnessError::Signature(_) => 403,
            WitnessError::UnknownLog(_) => 404,
            WitnessError::Conflict { .. } | WitnessError::Fork { .. } => 409,
            WitnessError::ProofNotEmpty | WitnessError::Inconsistent { .. } => 422,
            WitnessError::Store(_) | WitnessError::Damaged => 500,
        }
    }
}

/// At most this many consistency proof lines (c2sp.org/tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// An `add-checkpoint` request body (c2sp.org/tlog-witness): `old <size>`, one base64 hash per
/// line of the consistency proof, an empty line, then the signed checkpoint note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    pub note: String,
}

impl AddCheckpoint {
    /// Parses a request body; anything off the grammar is [`WitnessError::Malformed`].
    pub fn parse(body: &str) -> Result<Self, WitnessError> {
        let (head, note) = body.split_once("\n\n").ok_or(WitnessError::Malformed(
            "no empty line before the checkpoint",
        ))?;
        let mut lines = head.split('\n');
        let old =
            lines
                .next()
                .and_then(|l| l.strip_prefix("old "))
                .ok_or(WitnessError::Malformed(
                    "the first line must be `old <size>`",
                ))?;
        let canonical = !old.is_empty()
            && old.bytes().all(|b| b.is_ascii_digit())
            && (old == "0" || !old.starts_with('0'));
        let old_size = old
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or(WitnessError::Malformed(
                "old size is not a decimal without leading zeroes",
            ))?;
        let proof = lines
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|h| Hash::try_from(h.as_slice()).ok())
                    .ok_or(WitnessError::Malformed(
                        "a proof line is not a base64 SHA-256 hash",
                    ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(WitnessError::Malformed(
                "more than 63 consistency proof lines",
            ));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: note.to_owned(),
        })
    }

    /// The request body.
    pub fn body(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }
}

/// A checkpoint this witness may cosign: signed by the key, from configuration, of a log it is
/// configured for. Made only by [`Witness::admit`]; private fields, not `Clone`;
/// [`Witness::add_checkpoint`] takes it by value.
///
/// Cosigning without it does not compile:
///
/// ```compile_fail
/// use pactgate::audit::{AddCheckpoint, Witness};
/// fn cosign(witness: &Witness, request: AddCheckpoint) {
///     let _ = witness.add_checkpoint(request);
/// }
/// ```
///
/// The same code holding the grant compiles:
///
/// ```
/// use pactgate::audit::{CosignGrant, Witness};
/// fn cosign(witness: &Witness, grant: CosignGrant) {
///     let _ = witness.add_checkpoint(grant);
/// }
/// ```
#[derive(Debug)]
pub struct CosignGrant {
    offered: Checkpoint,
    request: AddCheckpoint,
}

impl CosignGrant {
    /// The checkpoint offered, opened under its log's configured key.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.offered
    }
}

/// A peer's read of what this witness holds of its own log: granted only when the witness is
/// configured for that log (its key is pinned in configuration), so a witness call reveals
/// nothing of another log. Made only by [`Witness::admit_peer`]; private fields, not `Clone`;
/// [`Witness::held_for`] takes it.
#[derive(Debug)]
pub struct HeldGrant {
    origin: String,
}

impl HeldGrant {
    /// The origin of the peer's log.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// A witness: its name, its key, the logs it is configured for, and what it cosigned per origin.
pub struct Witness {
    name: String,
    key: SigningKey,
    logs: Vec<VerifierKey>,
    latest: sled::Tree,
    history: sled::Tree,
    lock: Mutex<()>,
}

/// Stored per accepted checkpoint: size (u64 BE) ++ root ++ the note as received.
fn encode(cp: &Checkpoint, note: &str) -> Vec<u8> {
    let mut v = cp.size.to_be_bytes().to_vec();
    v.extend_from_slice(&cp.root);
    v.extend_from_slice(note.as_bytes());
    v
}

fn decode(origin: &str, v: &[u8]) -> Result<Checkpoint, WitnessError> {
    if v.len() < 40 {
        return Err(WitnessError::Damaged);
    }
    let size = u64::from_be_bytes(v[..8].try_into().map_err(|_| WitnessError::Damaged)?);
    let root: Hash = v[8..40].try_into().map_err(|_| WitnessError::Damaged)?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

fn history_key(origin: &str, size: u64) -> Vec<u8> {
    let mut k = origin.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&size.to_be_bytes());
    k
}

impl Witness {
    /// Opens the witness state in `db` (trees `witness` and `witness.history`). It cosigns for no
    /// log until given their keys with [`Witness::trusting`].
    pub fn open(db: &sled::Db, name: &str, key: SigningKey) -> Result<Self, WitnessError> {
        VerifierKey::parse(&key.cosignature_verifier_key(name))?;
        Ok(Witness {
            name: name.to_owned(),
            key,
            logs: Vec::new(),
            latest: db.open_tree("witness")?,
            history: db.open_tree("witness.history")?,
            lock: Mutex::new(()),
        })
    }

    /// This witness, configured for the logs of these signed-note verifier keys (each key's name
    /// is its log's origin).
    pub fn trusting(mut self, logs: Vec<VerifierKey>) -> Self {
        self.logs = logs;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignature/v1 verifier key the peers configure for this witness.
    pub fn verifier_key(&self) -> String {
        self.key.cosignature_verifier_key(&self.name)
    }

    /// The logs this witness is configured for.
    pub fn logs(&self) -> &[VerifierKey] {
        &self.logs
    }

    /// Admits an `add-checkpoint` request for cosigning: its origin must be a configured log
    /// (else 404) and the note signed by that log's configured key (403). The only way to make a
    /// [`CosignGrant`].
    pub fn admit(&self, request: AddCheckpoint) -> Result<CosignGrant, WitnessError> {
        let offered = open_with(&request.note, &self.logs)?.checkpoint;
        Ok(CosignGrant { offered, request })
    }

    /// Admits a peer (by its OIN, from its certificate) to read what this witness holds of its
    /// own log `pactgate/<oin>`: only if this witness is configured for that log. The only way
    /// to make a [`HeldGrant`].
    pub fn admit_peer(&self, peer_oin: &str) -> Result<HeldGrant, WitnessError> {
        let origin = format!("pactgate/{peer_oin}");
        if !self.logs.iter().any(|k| k.name == origin) {
            return Err(WitnessError::UnknownLog(shown_origin(&origin)));
        }
        Ok(HeldGrant { origin })
    }

    /// What this witness holds of the granted peer's log: the newest checkpoint it cosigned.
    pub fn held_for(&self, grant: &HeldGrant) -> Result<Option<Checkpoint>, WitnessError> {
        self.held(&grant.origin)
    }

    /// Handles an admitted `add-checkpoint` request ([`Witness::admit`]: the origin configured,
    /// else 404, and signed by its key, else 403) exactly as c2sp.org/tlog-witness says: `old_size` at most the checkpoint size
    /// (400) and equal to the size last cosigned for the origin, 0 if none (409); the same size
    /// must have the same root (409); the proof must be empty from 0 and check otherwise (422).
    /// The cosignature covers the whole note text, extension lines included. Check and update are
    /// atomic; the caller makes the store durable before it answers.
    pub fn add_checkpoint(&self, grant: CosignGrant) -> Result<Cosignature, WitnessError> {
        let CosignGrant { offered, request } = grant;
        let old_size = request.old_size;
        if old_size > offered.size {
            return Err(WitnessError::OldSizeBeyond {
                old_size,
                size: offered.size,
            });
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let held = self.held(&offered.origin)?;
        check_extends(held.as_ref(), &offered, &request)?;
        let value = encode(&offered, &request.note);
        self.history
            .insert(history_key(&offered.origin, offered.size), value.as_slice())?;
        self.latest.insert(offered.origin.as_bytes(), value)?;
        self.latest.flush()?;
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let text = note_text(&request.note)?;
        Ok(cosign_text(text, &self.key, &self.name, now))
    }

    fn held(&self, origin: &str) -> Result<Option<Checkpoint>, WitnessError> {
        self.latest
            .get(origin.as_bytes())?
            .map(|v| decode(origin, &v))
            .transpose()
    }

    /// The newest checkpoint accepted for `origin`, as verify's trusted input.
    pub fn latest(&self, origin: &str) -> Result<Option<TrustedCheckpoint>, WitnessError> {
        Ok(self
            .held(origin)?
            .map(|cp| TrustedCheckpoint::new(cp, format!("held by witness {}", self.name))))
    }

    /// Every checkpoint accepted for `origin`, oldest first.
    pub fn history(&self, origin: &str) -> Result<Vec<TrustedCheckpoint>, WitnessError> {
        let prefix = history_key(origin, 0);
        self.history
            .scan_prefix(&prefix[..prefix.len() - 8])
            .map(|kv| {
                let cp = decode(origin, &kv?.1)?;
                Ok(TrustedCheckpoint::new(
                    cp,
                    format!("held by witness {}", self.name),
                ))
            })
            .collect()
    }
}

fn check_extends(
    held: Option<&Checkpoint>,
    offered: &Checkpoint,
    request: &AddCheckpoint,
) -> Result<(), WitnessError> {
    let held_size = held.map_or(0, |h| h.size);
    if request.old_size != held_size {
        return Err(WitnessError::Conflict {
            held: held_size,
            offered: request.old_size,
        });
    }
    if let Some(held) = held.filter(|h| h.size == offered.size) {
        if held.root != offered.root {
            return Err(WitnessError::Fork { size: held.size });
        }
    }
    if request.old_size == 0 || request.old_size == offered.size {
        return match request.proof.is_empty() {
            true => Ok(()),
            false => Err(WitnessError::ProofNotEmpty),
        };
    }
    let held_root = held.map_or([0; 32], |h| h.root);
    verify_consistency(
        request.old_size,
        offered.size,
        &held_root,
        &offered.root,
        &request.proof,
    )
    .map_err(|_| WitnessError::Inconsistent {
        old_size: request.old_size,
        new_size: offered.size,
    })
}

/// A submitted origin as refusals show it: id-like numbers withheld, at most 128 characters.
fn shown_origin(origin: &str) -> String {
    crate::pseudonym::withhold_ids(origin)
        .chars()
        .take(128)
        .collect()
}
