//! The witness a node runs for its peers: cosigns a peer's checkpoint only if it extends the last
//! one it accepted for that origin. Sees sizes and hashes only, never an entry.
//! Invariant: per origin, accepted sizes only grow, and each is proven consistent with the previous.

use std::sync::Mutex;

use chrono::Utc;

use super::checkpoint::{Checkpoint, Cosignature, NoteError, SigningKey, VerifierKey};
use super::merkle::{verify_consistency, Hash};
use super::verify::TrustedCheckpoint;

/// Why a checkpoint was not cosigned.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("witness store: {0}")]
    Store(#[from] sled::Error),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("old size {offered} given, but the last size accepted for this origin is {held}")]
    OldSize { held: u64, offered: u64 },
    #[error("checkpoint size {offered} is smaller than the accepted {held}")]
    Shrinking { held: u64, offered: u64 },
    #[error("a different root at the accepted size {size}: the log forked")]
    Fork { size: u64 },
    #[error("the consistency proof from {old_size} to {new_size} does not check")]
    Inconsistent { old_size: u64, new_size: u64 },
    #[error("the witness store is damaged")]
    Damaged,
}

/// A witness: its name, its key, and what it accepted per origin.
pub struct Witness {
    name: String,
    key: SigningKey,
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
    /// Opens the witness state in `db` (trees `witness` and `witness.history`).
    pub fn open(db: &sled::Db, name: &str, key: SigningKey) -> Result<Self, WitnessError> {
        VerifierKey::parse(&key.cosignature_verifier_key(name))?;
        Ok(Witness {
            name: name.to_owned(),
            key,
            latest: db.open_tree("witness")?,
            history: db.open_tree("witness.history")?,
            lock: Mutex::new(()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignature/v1 verifier key the peers configure for this witness.
    pub fn verifier_key(&self) -> String {
        self.key.cosignature_verifier_key(&self.name)
    }

    /// Cosigns `checkpoint_note` of the log with `origin_verifier_key` (whose name must be the
    /// origin) if it extends the last checkpoint accepted for that origin: `old_size` must be that
    /// size and `consistency_proof` must prove it. The first checkpoint of an origin is accepted as
    /// it is. Re-offering the accepted checkpoint is cosigned again.
    pub fn cosign(
        &self,
        origin_verifier_key: &str,
        checkpoint_note: &str,
        consistency_proof: &[Hash],
        old_size: u64,
    ) -> Result<Cosignature, WitnessError> {
        let log_key = VerifierKey::parse(origin_verifier_key)?;
        let offered = Checkpoint::open(checkpoint_note, &log_key)?.checkpoint;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = self.held(&offered.origin)? {
            check_extends(&held, &offered, consistency_proof, old_size)?;
        }
        let value = encode(&offered, checkpoint_note);
        self.history
            .insert(history_key(&offered.origin, offered.size), value.as_slice())?;
        self.latest.insert(offered.origin.as_bytes(), value)?;
        self.latest.flush()?;
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        Ok(offered.cosign(&self.key, &self.name, now))
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
    held: &Checkpoint,
    offered: &Checkpoint,
    proof: &[Hash],
    old_size: u64,
) -> Result<(), WitnessError> {
    if offered.size < held.size {
        return Err(WitnessError::Shrinking {
            held: held.size,
            offered: offered.size,
        });
    }
    if offered.size == held.size {
        return if offered.root == held.root {
            Ok(())
        } else {
            Err(WitnessError::Fork { size: held.size })
        };
    }
    if old_size != held.size {
        return Err(WitnessError::OldSize {
            held: held.size,
            offered: old_size,
        });
    }
    verify_consistency(held.size, offered.size, &held.root, &offered.root, proof).map_err(|_| {
        WitnessError::Inconsistent {
            old_size: held.size,
            new_size: offered.size,
        }
    })
}
