//! The node's own record of what it acknowledged, kept beside sled's files so that a damaged
//! store cannot shrink silently: the number of stored signals, an order-independent hash of them
//! and the audit log's length, written atomically after each durable batch. Holds no signal.
//! Invariant: a store may be ahead of its record by batches in flight (announced in the intents
//! file before they are applied), never behind it.
//!
//! Files in the data dir: `integrity.json` (the record, replaced by write-to-temp, fsync, rename,
//! fsync of the directory; without the fsyncs when only the audit length grew) and `integrity.intents` (one line per batch applied since the record:
//! its number and its change to count and hash; appended before the batch is applied).

use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The record's file name in the data dir.
pub const RECORD_FILE: &str = "integrity.json";
/// The intents' file name in the data dir.
pub const INTENTS_FILE: &str = "integrity.intents";

/// How the operator recovers from a store that lost what it acknowledged.
pub const RECOVERY: &str = "To recover: keep the damaged data dir aside, restore the newest \
    backup into an empty data dir with `pactgate restore --from BACKUP --data-dir DIR`, start \
    the node and re-push every signal from your own system (pushing is idempotent)";

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the integrity record {path} is damaged ({reason})")]
    Damaged { path: String, reason: String },
    #[error(
        "the store holds {found} signals (hash {found_hash}) but the node acknowledged {expected} \
         (hash {expected_hash}, batch {batch}): signals were lost or changed; its audit log holds \
         {audit_found} of the {audit_expected} entries acknowledged"
    )]
    Signals {
        found: u64,
        found_hash: String,
        expected: u64,
        expected_hash: String,
        batch: u64,
        audit_found: u64,
        audit_expected: u64,
    },
    #[error(
        "the audit log holds {found} entries but the node acknowledged {expected}; its tail was lost"
    )]
    AuditShorter { found: u64, expected: u64 },
    #[error(
        "the store holds data but has no integrity record {path}; if you are sure the store is \
         complete, record it with `pactgate store check --data-dir DIR --adopt`"
    )]
    NoRecord { path: String },
}

/// The count and the XOR of the SHA-256 of every stored signal's key and value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    pub signals: u64,
    pub hash: [u8; 32],
}

impl Digest {
    /// The digest of the key-value pairs.
    pub fn of<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl Iterator<Item = (K, V)>) -> Self {
        let mut d = Digest::default();
        for (k, v) in pairs {
            d.hash = xor(d.hash, pair_hash(k.as_ref(), v.as_ref()));
            d.signals += 1;
        }
        d
    }

    /// This digest and another of disjoint pairs, together.
    pub fn merged(self, other: Digest) -> Digest {
        Digest {
            signals: self.signals + other.signals,
            hash: xor(self.hash, other.hash),
        }
    }

    pub(crate) fn apply(&mut self, delta: &Delta) {
        self.signals = self.signals.wrapping_add_signed(delta.signals);
        self.hash = xor(self.hash, delta.hash);
    }
}

/// What one batch changes in the digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    signals: i64,
    hash: [u8; 32],
}

impl Delta {
    /// A signal stored (new, or a new value of a replaced one whose old value is removed).
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.signals += 1;
        self.hash = xor(self.hash, pair_hash(key, value));
    }

    /// A stored signal removed (or its old value replaced).
    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        self.signals -= 1;
        self.hash = xor(self.hash, pair_hash(key, value));
    }
}

fn pair_hash(key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(key.len() as u64).to_be_bytes());
    ctx.update(key);
    ctx.update(value);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn xor(a: [u8; 32], b: [u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The record as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    /// The number of the last batch the record includes.
    batch: u64,
    signals: u64,
    hash: String,
    audit_entries: u64,
}

/// What the node acknowledged as of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub batch: u64,
    pub digest: Digest,
    pub audit_entries: u64,
}

impl Record {
    fn to_file(self) -> RecordFile {
        RecordFile {
            batch: self.batch,
            signals: self.digest.signals,
            hash: hex(&self.digest.hash),
            audit_entries: self.audit_entries,
        }
    }
}

/// The integrity files of one data dir.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.to_path_buf(),
        }
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join(RECORD_FILE)
    }

    fn intents_path(&self) -> PathBuf {
        self.dir.join(INTENTS_FILE)
    }

    /// The record, or `None` if there is none yet.
    pub fn read_record(&self) -> Result<Option<Record>, IntegrityError> {
        let path = self.record_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io("read", &path, source)),
        };
        let damaged = |reason: String| IntegrityError::Damaged {
            path: path.display().to_string(),
            reason,
        };
        let file: RecordFile =
            serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        let hash =
            unhex32(&file.hash).ok_or_else(|| damaged("hash is not 64 hex digits".into()))?;
        Ok(Some(Record {
            batch: file.batch,
            digest: Digest {
                signals: file.signals,
                hash,
            },
            audit_entries: file.audit_entries,
        }))
    }

    /// Replaces the record atomically (write a temporary file, rename it over the record); with
    /// `durable` also fsyncs the file before and the directory after the rename. A record that
    /// only grew the audit length is written without fsync (about 15 ms each on a busy disk,
    /// which every audited request would pay): it survives a kill, and if a power cut loses it
    /// the older record asks less, never more.
    pub fn write_record(&self, record: Record, durable: bool) -> Result<(), IntegrityError> {
        let path = self.record_path();
        let tmp = self.dir.join(format!("{RECORD_FILE}.tmp"));
        let bytes = serde_json::to_vec(&record.to_file()).expect("a record serialises");
        let mut file = private_file(&tmp, true).map_err(|e| io("create", &tmp, e))?;
        file.write_all(&bytes).map_err(|e| io("write", &tmp, e))?;
        if durable {
            file.sync_all().map_err(|e| io("sync", &tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))?;
        if !durable {
            return Ok(());
        }
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", &self.dir, e))
    }

    /// Announces a batch before it is applied (no fsync: it guards against a kill, in which the
    /// page cache survives; after a power loss the batch is most likely gone with it).
    pub fn append_intent(&self, batch: u64, delta: &Delta) -> Result<(), IntegrityError> {
        let path = self.intents_path();
        let line = format!("{batch} {} {}\n", delta.signals, hex(&delta.hash));
        private_file(&path, false)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| io("append to", &path, e))
    }

    /// Empties the intents file (every intent in it is included in the record).
    pub fn clear_intents(&self) -> Result<(), IntegrityError> {
        let path = self.intents_path();
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f.set_len(0).map_err(|e| io("truncate", &path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("open", &path, e)),
        }
    }

    /// The intents after `batch`, in order. A torn last line (a kill mid-append) is ignored: its
    /// batch was not applied yet.
    fn intents_after(&self, batch: u64) -> Result<Vec<(u64, Delta)>, IntegrityError> {
        let path = self.intents_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(IntegrityError::Damaged {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let mut out = Vec::new();
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let parsed = match parts.as_slice() {
                [n, count, hash] => n.parse::<u64>().ok().zip(
                    count
                        .parse::<i64>()
                        .ok()
                        .zip(unhex32(hash))
                        .map(|(signals, hash)| Delta { signals, hash }),
                ),
                _ => None,
            };
            let (n, delta) = parsed.ok_or_else(|| IntegrityError::Damaged {
                path: path.display().to_string(),
                reason: "a line is not `batch count hash`".into(),
            })?;
            if n > batch {
                out.push((n, delta));
            }
        }
        Ok(out)
    }

    /// Compares what the store holds with the record: the store must hold the recorded signals
    /// or those plus a prefix of the batches announced after it, and an audit log at least as
    /// long. Returns the batch number the store is at (to number the next batch after it).
    pub fn check(&self, found: Digest, audit_entries: u64) -> Result<u64, IntegrityError> {
        let record = match self.read_record()? {
            Some(record) => record,
            None if found.signals == 0 && audit_entries == 0 => return Ok(0),
            None => {
                return Err(IntegrityError::NoRecord {
                    path: self.record_path().display().to_string(),
                })
            }
        };
        let intents = self.intents_after(record.batch)?;
        let mut expected = record.digest;
        let mut matched = expected == found;
        for (_, delta) in &intents {
            expected.apply(delta);
            matched |= expected == found;
        }
        let last = intents.last().map_or(record.batch, |(n, _)| *n);
        if matched && audit_entries < record.audit_entries {
            return Err(IntegrityError::AuditShorter {
                found: audit_entries,
                expected: record.audit_entries,
            });
        }
        match matched {
            true => Ok(last),
            false => Err(IntegrityError::Signals {
                found: found.signals,
                found_hash: hex(&found.hash)[..16].to_owned(),
                expected: record.digest.signals,
                expected_hash: hex(&record.digest.hash)[..16].to_owned(),
                batch: record.batch,
                audit_found: audit_entries,
                audit_expected: record.audit_entries,
            }),
        }
    }
}

/// Opens a file readable by its owner only: truncated, or for appending.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true);
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> IntegrityError {
    IntegrityError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(pairs: &[(&str, &str)]) -> Digest {
        Digest::of(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn the_digest_does_not_depend_on_order() {
        assert_eq!(
            digest_of(&[("a", "1"), ("b", "2")]),
            digest_of(&[("b", "2"), ("a", "1")])
        );
        assert_ne!(
            digest_of(&[("a", "1"), ("b", "2")]),
            digest_of(&[("a", "2"), ("b", "1")])
        );
    }

    #[test]
    fn a_store_ahead_by_announced_batches_passes_and_one_behind_fails() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(dir.path());
        let acked = digest_of(&[("a", "1")]);
        files
            .write_record(
                Record {
                    batch: 3,
                    digest: acked,
                    audit_entries: 10,
                },
                true,
            )
            .unwrap();
        let mut delta = Delta::default();
        delta.remove(b"a", b"1");
        delta.insert(b"a", b"2");
        delta.insert(b"b", b"1");
        files.append_intent(4, &delta).unwrap();
        let ahead = digest_of(&[("a", "2"), ("b", "1")]);
        assert_eq!(files.check(acked, 10).unwrap(), 4);
        assert_eq!(files.check(ahead, 11).unwrap(), 4);
        assert!(matches!(
            files.check(Digest::default(), 10),
            Err(IntegrityError::Signals { .. })
        ));
        assert!(matches!(
            files.check(acked, 9),
            Err(IntegrityError::AuditShorter { .. })
        ));
    }

    #[test]
    fn a_damaged_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RECORD_FILE), b"{\"batch\":1,").unwrap();
        let files = Files::new(dir.path());
        assert!(matches!(
            files.check(Digest::default(), 0),
            Err(IntegrityError::Damaged { .. })
        ));
    }
}
