//! The audit log: an append-only RFC 9162 Merkle log of every decision, in sled, with signed
//! C2SP checkpoints, a c2sp.org/tlog-witness witness, an offline verifier and the Logboek
//! Dataverwerkingen view ([`ldv`]). Records pseudonyms, never a raw id.
//! Invariant: entry `seq` is leaf `seq`; an entry and the tree nodes it completes land in one
//! atomic write (with a push batch's signals, when it is that batch's entry: [`AuditLog::append_with`]).
//!
//! # Storage
//! Tree `audit`: `b'e' ++ seq (u64 BE)` -> canonical entry bytes ([`Entry`]), and
//! `b'n' ++ level (u8) ++ index (u64 BE)` -> hash of that complete subtree (level 0 = leaf hash).
//! The node hashes are a cache derived from the entries that makes `append`, `root` and proofs
//! O(log n); [`verify`] never trusts them, it recomputes every leaf. Tree `audit.checkpoints`:
//! size (u64 BE) -> signed checkpoint note. Tree `audit.cosignatures`: witness name ++ 0 ++ size
//! -> the witness key, the checkpoint note and the cosignature line. A [`Witness`] keeps its own
//! trees `witness` (origin -> size ++ root ++ note of the latest cosigned) and `witness.history`;
//! it cosigns only logs whose keys it was given ([`Witness::trusting`]). The log's key and the
//! witness's key are separate files in the node's data dir.
//!
//! # Crates
//! Tree math and proof checking: `ct-merkle` (RFC 6962/9162 proof indices and verification),
//! fed SHA-256 from ring through a `digest` adapter (`merkle::RingSha256`); hashing of leaves,
//! nodes and roots is ring's directly. The note formats (signed-note, tlog-checkpoint,
//! tlog-cosignature/v1) are written here on ring's Ed25519: `signed_note` and `tlog_tiles` hard-wire
//! RustCrypto `sha2`/`ed25519-dalek` (and `tlog_tiles` its tree hashing), and neither does
//! cosignature/v1; the formats are ~150 lines with tests.
//!
//! # What `verify` can pinpoint
//! See [`verify()`]: a missing, misplaced (swapped, reordered) or truncated entry is found at its
//! exact seq; a modified entry at its exact seq when the node cache still authenticates against a
//! signed root, else as a range between two checkpoints; a consistent rewrite as the range between
//! the last peer checkpoint that still matches and the first that does not.

mod checkpoint;
mod entry;
pub mod ldv;
mod merkle;
mod offline;
mod refusals;
mod verify;
mod witness;

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};

pub use checkpoint::{
    body_of, cosign_text, note_text, open_with, Checkpoint, Cosignature, NoteError,
    SignedCheckpoint, SigningKey, VerifierKey,
};
pub use entry::{Action, Decision, Entry, EntryError, Filter, NewEntry};
pub use merkle::{leaf_hash, node_hash, verify_consistency, verify_inclusion, Hash, ProofError};
pub use offline::{verify_stopped, OfflineError, OfflineVerify};
pub use refusals::{Refusals, Refused, Tally};
pub use verify::{
    verify, SeqRange, Tamper, TamperKind, TrustedCheckpoint, VerifyError, VerifyReport,
};
pub use witness::{AddCheckpoint, CosignGrant, HeldGrant, Witness, WitnessError, MAX_PROOF_LINES};

use merkle::{Frontier, NodeId};

const ENTRY: u8 = b'e';
const NODE: u8 = b'n';

/// Why an audit operation failed. Any of these must fail the request that caused it.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store: {0}")]
    Store(#[from] sled::Error),
    #[error("invalid audit entry: {0}")]
    Entry(#[from] EntryError),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the audit store is damaged ({0}); run audit verify")]
    Damaged(&'static str),
    #[error("size {size} is beyond the log of {len} entries")]
    BeyondLog { size: u64, len: u64 },
    #[error("the checkpoint is not of this log")]
    Origin,
}

/// The file, in the data dir, of the node's Ed25519 key that signs its audit checkpoints.
pub const AUDIT_KEY_FILE: &str = "audit-signing.key";

/// The file, in the data dir, of the node's separate Ed25519 key that signs its cosignatures as a
/// witness.
pub const WITNESS_KEY_FILE: &str = "witness-cosigning.key";

/// The sled tree of the configured witness keys, by witness name, recorded at every start for
/// offline verification (`audit verify --data-dir`).
pub const WITNESS_KEYS_TREE: &str = "audit.witness_keys";

/// Pins the configured witnesses' verifier keys (`(name, key)`) by name, for offline
/// verification of what they cosigned.
pub fn record_witness_keys<'a>(
    db: &sled::Db,
    keys: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let tree = db.open_tree(WITNESS_KEYS_TREE)?;
    for (name, key) in keys {
        tree.insert(name.as_bytes(), key.as_bytes())?;
    }
    Ok(())
}

/// The witness verifier keys pinned in `db` (none if the tree cannot be read).
pub fn pinned_witness_keys(db: &sled::Db) -> Vec<String> {
    db.open_tree(WITNESS_KEYS_TREE)
        .map(|t| {
            t.iter()
                .values()
                .filter_map(|v| v.ok())
                .filter_map(|v| String::from_utf8(v.to_vec()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The witnesses' cosignature lines of a cosigned note (the log's own signature by `origin`
/// left out), and the names of the witnesses that signed them.
pub fn witness_cosignatures(note: &str, origin: &str) -> (Vec<String>, Vec<String>) {
    let lines: Vec<String> = note
        .lines()
        .skip_while(|l| !l.is_empty())
        .filter(|l| l.starts_with('\u{2014}'))
        .filter(|l| l.split_whitespace().nth(1) != Some(origin))
        .map(str::to_owned)
        .collect();
    let names = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    (lines, names)
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// The append-only audit log of one node.
pub struct AuditLog {
    db: sled::Db,
    tree: sled::Tree,
    checkpoints: sled::Tree,
    cosignatures: sled::Tree,
    node_oin: String,
    origin: String,
    key: SigningKey,
    state: Mutex<State>,
}

struct State {
    size: u64,
    /// `None` when the node cache is incomplete (only after tampering): appends are refused.
    frontier: Option<Frontier>,
    last_time: Option<DateTime<Utc>>,
}

/// A stored cosignature with what it was over.
#[derive(Serialize, Deserialize)]
struct CosignatureRecord {
    witness_key: String,
    note: String,
    line: String,
}

/// The sled tree of the entries and the node cache.
pub const TREE: &str = "audit";

/// The length of the log stored in `tree` (the [`TREE`]): one past the last entry's seq.
pub fn stored_len(tree: &sled::Tree) -> Result<u64> {
    match tree.scan_prefix([ENTRY]).next_back() {
        Some(kv) => Ok(be_u64(&kv?.0[1..]).ok_or(AuditError::Damaged("entry key"))? + 1),
        None => Ok(0),
    }
}

/// Whether a backup of a log of `len` entries keeps this pair of tree `tree`: entries below
/// `len`, cached nodes of subtrees within it, checkpoints and cosignatures of sizes up to it, and
/// everything of other trees.
pub fn backed_up(tree: &[u8], key: &[u8], len: u64) -> bool {
    match tree {
        b"audit" => match key.first() {
            Some(&ENTRY) => be_u64(&key[1..]).is_some_and(|seq| seq < len),
            Some(&NODE) if key.len() == 10 => be_u64(&key[2..]).is_some_and(|index| {
                index
                    .checked_add(1)
                    .and_then(|end| end.checked_shl(u32::from(key[1])))
                    .is_some_and(|end| end <= len)
            }),
            _ => true,
        },
        b"audit.checkpoints" => be_u64(key).is_some_and(|size| size <= len),
        b"audit.cosignatures" => {
            be_u64(&key[key.len().saturating_sub(8)..]).is_some_and(|size| size <= len)
        }
        _ => true,
    }
}

fn entry_key(seq: u64) -> [u8; 9] {
    let mut k = [ENTRY; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn node_key(id: NodeId) -> [u8; 10] {
    let mut k = [NODE; 10];
    k[1] = id.level;
    k[2..].copy_from_slice(&id.index.to_be_bytes());
    k
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl AuditLog {
    /// Opens the log of node `node_oin` in `db`; its checkpoints are signed by `key` under the
    /// origin `pactgate/<node_oin>`.
    pub fn open(db: &sled::Db, node_oin: &str, key: SigningKey) -> Result<Self> {
        let tree = db.open_tree(TREE)?;
        let size = stored_len(&tree)?;
        let frontier = Frontier::load(size, |id| lookup(&tree, id)).ok();
        let last_time = match size {
            0 => None,
            n => get_entry(&tree, n - 1).ok().flatten().map(|e| e.time),
        };
        Ok(AuditLog {
            db: db.clone(),
            checkpoints: db.open_tree("audit.checkpoints")?,
            cosignatures: db.open_tree("audit.cosignatures")?,
            tree,
            node_oin: node_oin.to_owned(),
            origin: format!("pactgate/{node_oin}"),
            key,
            state: Mutex::new(State {
                size,
                frontier,
                last_time,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // State is replaced only after a successful write, so a poisoned lock still holds a
        // consistent value.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The checkpoint origin, also the name of the log's key.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn node_oin(&self) -> &str {
        &self.node_oin
    }

    /// The signed-note verifier key peers use to check this log's checkpoints.
    pub fn verifier_key(&self) -> String {
        self.key.verifier_key(&self.origin)
    }

    /// Appends an entry, assigning the next seq and the time (never earlier than the previous
    /// entry's). Does not flush: the caller flushes the db once for its data and the audit, before
    /// it answers. An error here must fail the request.
    pub fn append(&self, new: NewEntry) -> Result<Entry> {
        self.append_with(new, |tree, batch| Ok(tree.apply_batch(batch)?))
    }

    /// [`append`](Self::append), with the entry's writes (the entry and the tree nodes it
    /// completes, all in [`TREE`]) handed to `write` as one batch for that tree, so that the
    /// caller writes them in one atomic sled write with data of its own (a push batch's signals:
    /// [`crate::store::Store::upsert_batch_unsynced_with`]). No other entry is appended while
    /// `write` runs; the log's size and frontier advance only when it succeeded.
    pub fn append_with<E: From<AuditError>>(
        &self,
        new: NewEntry,
        write: impl FnOnce(&sled::Tree, sled::Batch) -> Result<(), E>,
    ) -> Result<Entry, E> {
        new.validate().map_err(AuditError::from)?;
        let new = new.scrubbed();
        let mut state = self.state();
        let mut frontier = state
            .frontier
            .clone()
            .ok_or(AuditError::Damaged("merkle cache"))?;
        let now = Utc::now().trunc_subsecs(6);
        let time = state.last_time.map_or(now, |last| last.max(now));
        let entry = new.into_entry(frontier.size(), time, &self.node_oin);
        let bytes = entry.canonical_bytes().map_err(AuditError::from)?;
        let mut batch = sled::Batch::default();
        frontier.push(leaf_hash(&bytes), |id, hash| {
            batch.insert(&node_key(id)[..], &hash[..])
        });
        batch.insert(&entry_key(entry.seq)[..], bytes);
        write(&self.tree, batch)?;
        state.size = frontier.size();
        state.frontier = Some(frontier);
        state.last_time = Some(time);
        Ok(entry)
    }

    /// [`append`](Self::append), then flushes the db.
    pub fn append_durable(&self, new: NewEntry) -> Result<Entry> {
        let entry = self.append(new)?;
        self.db.flush()?;
        Ok(entry)
    }

    /// The number of entries (the tree size).
    pub fn len(&self) -> u64 {
        self.state().size
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, seq: u64) -> Result<Option<Entry>> {
        get_entry(&self.tree, seq)
    }

    /// Entries with `from <= seq < to`, in order.
    pub fn range(&self, from: u64, to: u64) -> impl Iterator<Item = Result<Entry>> + '_ {
        self.range_raw(from, to)
            .map(|kv| Ok(Entry::from_canonical(&kv?.1)?))
    }

    /// Every entry the filter matches, in order (a full scan).
    pub fn entries_matching<'a>(
        &'a self,
        filter: &'a Filter,
    ) -> impl Iterator<Item = Result<Entry>> + 'a {
        self.tree
            .scan_prefix([ENTRY])
            .map(|kv| Ok(Entry::from_canonical(&kv?.1)?))
            .filter(move |e| e.as_ref().map_or(true, |e| filter.matches(e)))
    }

    /// The raw canonical bytes of entry `seq`, as hashed (for `audit prove`).
    pub fn entry_bytes(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(entry_key(seq))?.map(|v| v.to_vec()))
    }

    /// Raw stored entries `from <= seq < to`: key and canonical bytes.
    fn range_raw(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + '_ {
        (from < to)
            .then(|| self.tree.range(entry_key(from)..entry_key(to)))
            .into_iter()
            .flatten()
    }

    fn check_size(&self, size: u64) -> Result<()> {
        let len = self.len();
        if size > len {
            return Err(AuditError::BeyondLog { size, len });
        }
        Ok(())
    }

    fn node(&self) -> impl FnMut(NodeId) -> Result<Hash> + '_ {
        |id| lookup(&self.tree, id)
    }

    /// The root of the tree of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash> {
        self.check_size(size)?;
        merkle::subtree_root(0, size, &mut self.node())
    }

    /// The inclusion proof of entry `seq` in the tree of `size` entries.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>> {
        self.check_size(size)?;
        merkle::inclusion_proof(seq, size, &mut self.node())
    }

    /// The consistency proof from the tree of `old_size` entries to that of `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
        self.check_size(new_size)?;
        merkle::consistency_proof(old_size, new_size, &mut self.node())
    }

    /// Signs and stores a checkpoint of the current size and root, after flushing the db so that
    /// every entry it covers is durable before it can reach a witness.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint> {
        let (size, root) = {
            let state = self.state();
            let frontier = state
                .frontier
                .as_ref()
                .ok_or(AuditError::Damaged("merkle cache"))?;
            (frontier.size(), frontier.root())
        };
        let signed = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        }
        .sign(&self.key, &self.origin);
        self.checkpoints
            .insert(size.to_be_bytes(), signed.note.as_bytes())?;
        self.db.flush()?;
        Ok(signed)
    }

    /// The newest stored checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>> {
        let Some(kv) = self.checkpoints.iter().next_back() else {
            return Ok(None);
        };
        let note =
            String::from_utf8(kv?.1.to_vec()).map_err(|_| AuditError::Damaged("checkpoint"))?;
        let key = VerifierKey::parse(&self.verifier_key())?;
        Ok(Some(Checkpoint::open(&note, &key)?))
    }

    /// Checks and stores a witness's cosignature of one of this log's checkpoints.
    pub fn add_cosignature(
        &self,
        witness_key: &str,
        checkpoint: &SignedCheckpoint,
        cosignature: &Cosignature,
    ) -> Result<()> {
        if checkpoint.checkpoint.origin != self.origin {
            return Err(AuditError::Origin);
        }
        let key = VerifierKey::parse(witness_key)?;
        cosignature.verify(&checkpoint.checkpoint, &key)?;
        let record = CosignatureRecord {
            witness_key: witness_key.to_owned(),
            note: checkpoint.note.clone(),
            line: cosignature.line(),
        };
        let value = serde_json::to_vec(&record).map_err(|_| AuditError::Damaged("cosignature"))?;
        self.cosignatures.insert(
            cosignature_key(&key.name, checkpoint.checkpoint.size),
            value,
        )?;
        Ok(())
    }

    /// The largest size `witness` (its name) has cosigned, 0 if none: the `old_size` to send it.
    pub fn last_cosigned(&self, witness: &str) -> Result<u64> {
        let prefix = cosignature_key(witness, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let Some(kv) = self.cosignatures.scan_prefix(prefix).next_back() else {
            return Ok(0);
        };
        let key = kv?.0;
        be_u64(&key[key.len() - 8..]).ok_or(AuditError::Damaged("cosignature key"))
    }

    /// The checkpoint at `size` as one note with every stored cosignature line appended.
    pub fn cosigned_note(&self, size: u64) -> Result<Option<String>> {
        let mut note: Option<String> = None;
        for record in self.cosignature_records() {
            let (_, record) = record?;
            if let Some(cp) = parse_cosigned_size(&record.note) {
                if cp == size {
                    note.get_or_insert_with(|| record.note.clone())
                        .push_str(&record.line);
                }
            }
        }
        Ok(note)
    }

    /// Checkpoints cosigned by any of `witness_keys` (keys from configuration, not from this
    /// store), checked against those keys: what `verify` may trust beyond the node's own key.
    /// A stored cosignature by one of these witnesses that does not check is an error.
    pub fn cosigned_checkpoints(&self, witness_keys: &[&str]) -> Result<Vec<TrustedCheckpoint>> {
        let keys = witness_keys
            .iter()
            .map(|k| VerifierKey::parse(k))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for record in self.cosignature_records() {
            let (_, record) = record?;
            let cosignature = Cosignature::parse_line(&record.line)?;
            let Some(key) = keys.iter().find(|k| k.name == cosignature.name) else {
                continue;
            };
            let checkpoint = checkpoint::body_of(&record.note)?;
            cosignature.verify(&checkpoint, key)?;
            out.push(TrustedCheckpoint::new(
                checkpoint,
                format!("cosigned by {}", key.name),
            ));
        }
        Ok(out)
    }

    fn cosignature_records(
        &self,
    ) -> impl Iterator<Item = Result<(sled::IVec, CosignatureRecord)>> + '_ {
        self.cosignatures.iter().map(|kv| {
            let (k, v) = kv?;
            let record =
                serde_json::from_slice(&v).map_err(|_| AuditError::Damaged("cosignature"))?;
            Ok((k, record))
        })
    }
}

fn cosignature_key(witness: &str, size: u64) -> Vec<u8> {
    let mut k = witness.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&size.to_be_bytes());
    k
}

fn parse_cosigned_size(note: &str) -> Option<u64> {
    note.split('\n').nth(1)?.parse().ok()
}

fn lookup(tree: &sled::Tree, id: NodeId) -> Result<Hash> {
    let v = tree
        .get(node_key(id))?
        .ok_or(AuditError::Damaged("merkle node missing"))?;
    v.as_ref()
        .try_into()
        .map_err(|_| AuditError::Damaged("merkle node"))
}

fn get_entry(tree: &sled::Tree, seq: u64) -> Result<Option<Entry>> {
    match tree.get(entry_key(seq))? {
        Some(v) => Ok(Some(Entry::from_canonical(&v)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests;
