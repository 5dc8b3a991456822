//! Offline verification of an audit log: recompute every leaf, check every signature, compare with
//! every checkpoint, and name the first bad entry. Reads only; never repairs, never trusts the cache.
//! Invariant: a range is reported only when the stored data cannot name a single entry.

use std::fmt;

use super::checkpoint::{self, Checkpoint, Cosignature, NoteError, VerifierKey};
use super::entry::seq_of;
use super::merkle::{leaf_hash, Frontier, Hash};
use super::{be_u64, node_key, AuditError, AuditLog, NodeId, ENTRY};

/// A checkpoint of this log that someone other than the node vouches for: one a peer witness
/// holds, or one cosigned by a witness whose key came from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedCheckpoint {
    pub checkpoint: Checkpoint,
    /// Who vouches for it, for the report ("cosigned by ...", "held by ...").
    pub source: String,
}

impl TrustedCheckpoint {
    pub fn new(checkpoint: Checkpoint, source: String) -> Self {
        TrustedCheckpoint { checkpoint, source }
    }

    /// A checkpoint note signed by the log key `verifier_key`, as a peer keeps it.
    pub fn from_note(note: &str, verifier_key: &str, source: &str) -> Result<Self, NoteError> {
        let key = VerifierKey::parse(verifier_key)?;
        let signed = Checkpoint::open(note, &key)?;
        Ok(TrustedCheckpoint::new(signed.checkpoint, source.to_owned()))
    }
}

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries read and rehashed.
    pub entries: u64,
    /// Tree size (equal to `entries` for an intact log).
    pub size: u64,
    pub root: Hash,
    /// Node checkpoints whose signature was checked.
    pub checkpoints_checked: u64,
    /// Stored witness cosignatures checked (against the key stored with them).
    pub cosignatures_checked: u64,
    /// The largest size any checkpoint covers; entries past it are not yet attested.
    pub attested_size: u64,
}

/// Where the first bad entry lies: `first..=last`, exact when they are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRange {
    pub first: u64,
    pub last: u64,
}

impl SeqRange {
    pub fn exact(seq: u64) -> Self {
        SeqRange {
            first: seq,
            last: seq,
        }
    }

    pub fn is_exact(&self) -> bool {
        self.first == self.last
    }
}

impl fmt::Display for SeqRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_exact() {
            write!(f, "{}", self.first)
        } else {
            write!(f, "one of {}..={}", self.first, self.last)
        }
    }
}

/// What was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TamperKind {
    /// The entry's bytes differ from what was signed (or no longer say their own seq).
    Modified,
    /// No entry is stored at this seq, but later ones are.
    Missing,
    /// The entry stored at this seq is the one for `found` (swapped or reordered).
    Misplaced { found: u64 },
    /// The log has `size` entries but a checkpoint covers `checkpoint_size`.
    Truncated { size: u64, checkpoint_size: u64 },
    /// The node's own checkpoints agree with the log, a checkpoint held or cosigned by a peer
    /// does not: the log was rewritten and re-signed.
    Rewritten {
        checkpoint_size: u64,
        source: String,
    },
    /// A stored checkpoint of this size does not carry a valid signature of the node key.
    CheckpointSignature { size: u64 },
    /// A stored cosignature does not check.
    Cosignature { witness: String, size: u64 },
}

impl fmt::Display for TamperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TamperKind::Modified => write!(f, "an audit entry was modified"),
            TamperKind::Missing => write!(f, "an audit entry was deleted"),
            TamperKind::Misplaced { found } => write!(f, "audit entries were reordered (found entry {found} out of place)"),
            TamperKind::Truncated { size, checkpoint_size } => {
                write!(f, "the audit log was truncated to {size} entries; a checkpoint covers {checkpoint_size}")
            }
            TamperKind::Rewritten { checkpoint_size, source } => write!(
                f,
                "the audit log was rewritten: it disagrees with the checkpoint at size {checkpoint_size} {source}"
            ),
            TamperKind::CheckpointSignature { size } => write!(f, "the checkpoint at size {size} has a bad signature"),
            TamperKind::Cosignature { witness, size } => {
                write!(f, "the cosignature of {witness} at size {size} does not check")
            }
        }
    }
}

/// Evidence of tampering, with the first bad sequence number where entries are concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Tamper {
    pub kind: TamperKind,
    pub first_bad: Option<SeqRange>,
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_bad {
            Some(range) => write!(f, "{}; first bad entry: {range}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// Verification found tampering, or could not read the store.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("tampering detected: {0}")]
    Tamper(#[from] Tamper),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A signed root to compare with.
struct Ref {
    size: u64,
    root: Hash,
    /// Vouched for by a peer (not only by the node's own key).
    peer: bool,
    /// Signed by the node's own key only (not a cosignature nor a peer's copy).
    own: bool,
    source: String,
    matched: Option<bool>,
}

/// A structural fault found while streaming: exact position and kind.
struct Fault {
    seq: u64,
    kind: TamperKind,
}

/// Verifies `log` against its own stored checkpoints and cosignatures and the `trusted`
/// checkpoints (of this origin; others are ignored).
///
/// What it can pinpoint:
/// - a missing entry, an entry stored under another seq (swap, reorder), a head that no longer
///   parses, and truncation below any checkpoint: the exact seq;
/// - a modified entry (bytes changed, not re-signed): the exact seq when the node cache still
///   reproduces the signed root that the entries no longer do; otherwise the range between the last
///   checkpoint that matches and the first that does not;
/// - a consistent rewrite (entries, cache and own checkpoints redone with the node key): the range
///   between the last peer-vouched checkpoint that matches and the first that does not; nothing
///   finer exists, since everything below that checkpoint on the node was rewritten;
/// - entries past the last checkpoint (`attested_size`) can only be checked for gaps and order.
///
/// Entry faults are reported before signature faults; an earlier modification hidden behind a
/// structural fault shows as a range when the cache cannot rule it out.
pub fn verify(log: &AuditLog, trusted: &[TrustedCheckpoint]) -> Result<VerifyReport, VerifyError> {
    let (mut refs, counts, signature_fault) = collect_refs(log, trusted)?;
    refs.sort_by_key(|r| (r.size, r.peer));
    let (frontier, fault) = stream(log, &mut refs)?;
    let size = frontier.size();
    let attested_size = refs.last().map_or(0, |r| r.size);
    let fault = fault.or_else(|| {
        (attested_size > size).then_some(Fault {
            seq: size,
            kind: TamperKind::Truncated {
                size,
                checkpoint_size: attested_size,
            },
        })
    });
    if let Some(tamper) = judge(log, &refs, fault)? {
        return Err(tamper.into());
    }
    if let Some(kind) = signature_fault {
        return Err(Tamper {
            kind,
            first_bad: None,
        }
        .into());
    }
    Ok(VerifyReport {
        entries: size,
        size,
        root: frontier.root(),
        checkpoints_checked: counts.0,
        cosignatures_checked: counts.1,
        attested_size,
    })
}

type Collected = (Vec<Ref>, (u64, u64), Option<TamperKind>);

/// Every signed root: the node's checkpoints (signature checked), its stored cosignatures (checked
/// against the key stored with them) and the trusted ones.
fn collect_refs(log: &AuditLog, trusted: &[TrustedCheckpoint]) -> Result<Collected, AuditError> {
    let own = VerifierKey::parse(&log.verifier_key())?;
    let mut refs = Vec::new();
    let mut fault = None;
    let mut checked = (0u64, 0u64);
    for kv in log.checkpoints.iter() {
        let (k, v) = kv?;
        let size = be_u64(&k).ok_or(AuditError::Damaged("checkpoint key"))?;
        let opened = std::str::from_utf8(&v)
            .ok()
            .and_then(|note| Checkpoint::open(note, &own).ok());
        match opened {
            Some(s) if s.checkpoint.size == size => {
                refs.push(Ref::new(s.checkpoint, false, SIGNED_BY_NODE))
            }
            _ => {
                fault.get_or_insert(TamperKind::CheckpointSignature { size });
            }
        }
        checked.0 += 1;
    }
    for record in log.cosignature_records() {
        let (k, record) = record?;
        let size = be_u64(&k[k.len().saturating_sub(8)..])
            .ok_or(AuditError::Damaged("cosignature key"))?;
        let checked_ok = (|| {
            let key = VerifierKey::parse(&record.witness_key).ok()?;
            let cp = checkpoint::body_of(&record.note).ok()?;
            let cosig = Cosignature::parse_line(&record.line).ok()?;
            cosig.verify(&cp, &key).ok()?;
            (cp.size == size && cp.origin == log.origin).then_some((cp, key.name))
        })();
        match checked_ok {
            Some((cp, name)) => refs.push(Ref::new(
                cp,
                false,
                &format!("cosigned by {name} (stored on the node)"),
            )),
            None => {
                let witness =
                    String::from_utf8_lossy(k.split(|b| *b == 0).next().unwrap_or_default())
                        .into_owned();
                fault.get_or_insert(TamperKind::Cosignature { witness, size });
            }
        }
        checked.1 += 1;
    }
    let theirs = trusted.iter().filter(|t| t.checkpoint.origin == log.origin);
    refs.extend(theirs.map(|t| Ref::new(t.checkpoint.clone(), true, &t.source)));
    Ok((refs, checked, fault))
}

impl Ref {
    fn new(cp: Checkpoint, peer: bool, source: &str) -> Self {
        Ref {
            size: cp.size,
            root: cp.root,
            peer,
            own: !peer && source == SIGNED_BY_NODE,
            source: source.to_owned(),
            matched: None,
        }
    }
}

/// Entries handed from the reading thread to the hashing thread at a time.
const BATCH: usize = 1024;

type Batch = Vec<(sled::IVec, sled::IVec)>;

/// The fast pass: every entry in key order, its head, its leaf hash, and the root at every
/// reference size. Stops at the first structural fault (positions after it mean nothing).
/// One thread reads sled while this one hashes (the two costs are about equal); batches go back
/// to the reader to be freed and reused there.
fn stream(log: &AuditLog, refs: &mut [Ref]) -> Result<(Frontier, Option<Fault>), AuditError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<sled::Result<Batch>>(8);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Batch>();
    let tree = &log.tree;
    std::thread::scope(|s| {
        s.spawn(move || read_entries(tree, &tx, &back_rx));
        let mut frontier = Frontier::default();
        let mut next = check_refs(&frontier, refs, 0);
        for batch in rx {
            let batch = batch?;
            for (k, v) in &batch {
                if let Some(fault) = check_entry(&frontier, k, v)? {
                    return Ok((frontier, Some(fault)));
                }
                frontier.push(leaf_hash(v), |_, _| {});
                next = check_refs(&frontier, refs, next);
            }
            let _ = back_tx.send(batch);
        }
        Ok((frontier, None))
    })
}

/// Sends the entries in batches until done, an error, or the receiver hangs up.
fn read_entries(
    tree: &sled::Tree,
    tx: &std::sync::mpsc::SyncSender<sled::Result<Batch>>,
    back: &std::sync::mpsc::Receiver<Batch>,
) {
    let fresh = || {
        let mut b = back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        b.clear();
        b
    };
    let mut batch = fresh();
    for kv in tree.scan_prefix([ENTRY]) {
        match kv {
            Ok(kv) => batch.push(kv),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
        if batch.len() == BATCH && tx.send(Ok(std::mem::replace(&mut batch, fresh()))).is_err() {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch));
    }
}

/// The structural fault of the entry stored under key `k` at the next position, if any.
fn check_entry(frontier: &Frontier, k: &[u8], v: &[u8]) -> Result<Option<Fault>, AuditError> {
    let seq = frontier.size();
    let key_seq = be_u64(&k[1..]).ok_or(AuditError::Damaged("entry key"))?;
    let kind = match seq_of(v) {
        _ if key_seq != seq => TamperKind::Missing,
        Some(found) if found == seq => return Ok(None),
        Some(found) => TamperKind::Misplaced { found },
        None => TamperKind::Modified,
    };
    Ok(Some(Fault { seq, kind }))
}

fn check_refs(frontier: &Frontier, refs: &mut [Ref], mut next: usize) -> usize {
    let size = frontier.size();
    if refs.get(next).is_some_and(|r| r.size == size) {
        let root = frontier.root();
        while let Some(r) = refs.get_mut(next).filter(|r| r.size == size) {
            r.matched = Some(r.root == root);
            next += 1;
        }
    }
    next
}

/// Turns the fast pass's findings into the first bad entry, as precisely as the data allows.
fn judge(log: &AuditLog, refs: &[Ref], fault: Option<Fault>) -> Result<Option<Tamper>, AuditError> {
    let mismatch = refs.iter().find(|r| r.matched == Some(false));
    // `default.seq` is the last seq that can be the first bad one; `anchor` a signed root at or
    // above it that an intact cache reproduces.
    // `search_end` ends (exclusive) the entries to compare with the cache.
    let (default, anchor, search_end) = match (mismatch, fault) {
        (None, None) => return Ok(None),
        (Some(r), _) => (mismatch_default(r), Some(r), r.size),
        (None, Some(f)) => {
            let anchor = refs.iter().find(|r| r.size > f.seq);
            let end = f.seq;
            (f, anchor, end)
        }
    };
    // After a peer disagrees, the node's own signatures prove nothing.
    let rewritten = refs.iter().any(|r| r.peer && r.matched == Some(false));
    let start = refs
        .iter()
        .filter(|r| r.matched == Some(true) && r.size <= default.seq && (r.peer || !rewritten))
        .map(|r| r.size)
        .max()
        .unwrap_or(0);
    let verdict = match anchor {
        Some(anchor) => compare_with_cache(log, start, search_end, anchor)?,
        None => Cache::Untrusted,
    };
    let first_bad = match verdict {
        Cache::DiffersAt(seq) => {
            return Ok(Some(Tamper {
                kind: TamperKind::Modified,
                first_bad: Some(SeqRange::exact(seq)),
            }))
        }
        Cache::Agrees if mismatch.is_none() => SeqRange::exact(default.seq),
        _ => SeqRange {
            first: start,
            last: default.seq,
        },
    };
    Ok(Some(Tamper {
        kind: default.kind,
        first_bad: Some(first_bad),
    }))
}

/// The finding for a root mismatch at `r` when nothing finer is known: some entry below it.
/// Refs are sorted own-first, so a first mismatch by a peer means the node's own checkpoints agree.
/// The source of a reference the node signed itself.
const SIGNED_BY_NODE: &str = "signed by the node";

fn mismatch_default(r: &Ref) -> Fault {
    // Anything a witness vouched for (held by a peer, or its cosignature stored here) that no
    // longer matches means the log was rewritten; only the node's own signature cannot say so.
    let kind = if !r.own {
        TamperKind::Rewritten {
            checkpoint_size: r.size,
            source: r.source.clone(),
        }
    } else {
        TamperKind::Modified
    };
    Fault {
        seq: r.size.saturating_sub(1),
        kind,
    }
}

/// What the node cache says about the entries `[start, end)`.
enum Cache {
    /// Incomplete, or it does not reproduce the anchor's signed root.
    Untrusted,
    /// Authentic, and every entry in the range hashes to its cached leaf.
    Agrees,
    /// Authentic, and this entry no longer hashes to its cached leaf.
    DiffersAt(u64),
}

/// Cached leaf hashes `[0, size)`, if they are all there.
fn cached_leaves(log: &AuditLog, size: u64) -> Result<Option<Vec<Hash>>, AuditError> {
    let from = node_key(NodeId { level: 0, index: 0 });
    let to = node_key(NodeId {
        level: 0,
        index: size,
    });
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for kv in log.tree.range(from..to) {
        let (k, v) = kv?;
        let index = be_u64(&k[2..]).ok_or(AuditError::Damaged("node key"))?;
        let Ok(hash) = Hash::try_from(v.as_ref()) else {
            return Ok(None);
        };
        if index != out.len() as u64 {
            return Ok(None);
        }
        out.push(hash);
    }
    Ok((out.len() as u64 == size).then_some(out))
}

fn root_of(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::default();
    for l in leaves {
        f.push(*l, |_, _| {});
    }
    f.root()
}

/// Compares the entries `[start, end)` with the cached leaves, if the cache reproduces the
/// anchor's signed root (then, by collision resistance, its leaves are the originals).
fn compare_with_cache(
    log: &AuditLog,
    start: u64,
    end: u64,
    anchor: &Ref,
) -> Result<Cache, AuditError> {
    let Some(cached) = cached_leaves(log, anchor.size)? else {
        return Ok(Cache::Untrusted);
    };
    if root_of(&cached) != anchor.root {
        return Ok(Cache::Untrusted);
    }
    for kv in log.range_raw(start, end) {
        let (k, v) = kv?;
        let seq = be_u64(&k[1..]).ok_or(AuditError::Damaged("entry key"))?;
        let cached_leaf = usize::try_from(seq).ok().and_then(|i| cached.get(i));
        if cached_leaf.is_none_or(|c| *c != leaf_hash(&v)) {
            return Ok(Cache::DiffersAt(seq));
        }
    }
    Ok(Cache::Agrees)
}
