//! The node's signal store in sled: one tree holding the signals and their indexes, written only
//! in atomic batches, acknowledged only after a flush and an fdatasync. Never sees a raw pupil id.
//!
//! Keys in the `signals` tree (record ids are printable ASCII, so 0x00 separates safely):
//! - `s\0<record>`: the signal, as JSON;
//! - `p\0<pseudonym>\0<record>`, `m\0<municipality>\0<record>`, `c\0<school>\0<record>`: empty
//!   index entries for queries by pupil, residence municipality and school.

use crate::signal::{Category, Signal, Status};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const SIGNALS_TREE: &str = "signals";
const SIGNAL: u8 = b's';
const BY_PUPIL: u8 = b'p';
const BY_MUNICIPALITY: u8 = b'm';
const BY_SCHOOL: u8 = b'c';

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data store failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("the data store could not sync to disk: {0}")]
    Sync(#[from] std::io::Error),
    #[error("a stored signal could not be read (data dir damaged?): {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the store's write lock was poisoned by an earlier panic")]
    Poisoned,
}

/// Which signals a listing returns; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalFilter {
    pub residence_municipality: Option<String>,
    pub school: Option<String>,
    pub pupil_pseudonym: Option<String>,
    pub category: Option<Category>,
    pub status: Option<Status>,
    pub limit: Option<usize>,
}

impl SignalFilter {
    pub fn matches(&self, s: &Signal) -> bool {
        self.residence_municipality
            .as_ref()
            .is_none_or(|m| *m == s.residence_municipality)
            && self.school.as_ref().is_none_or(|c| *c == s.school)
            && self
                .pupil_pseudonym
                .as_ref()
                .is_none_or(|p| *p == s.pupil_pseudonym)
            && self.category.is_none_or(|c| c == s.category)
            && self.status.is_none_or(|st| st == s.status)
    }

    /// The narrowest index prefix this filter can use, if any.
    fn index_prefix(&self) -> Option<Vec<u8>> {
        if let Some(p) = &self.pupil_pseudonym {
            return Some(index_prefix(BY_PUPIL, p));
        }
        if let Some(c) = &self.school {
            return Some(index_prefix(BY_SCHOOL, c));
        }
        self.residence_municipality
            .as_ref()
            .map(|m| index_prefix(BY_MUNICIPALITY, m))
    }
}

/// The signal store of one node. Cheap to clone; all clones share the database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    signals: sled::Tree,
    path: PathBuf,
    // One writer at a time: a batch reads the old versions of its records to replace their
    // index entries, so two concurrent batches must not interleave.
    write_lock: Arc<Mutex<()>>,
}

impl Store {
    /// Opens (or creates) the store under `data_dir/store`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("store");
        let db = open_with_retry(&path)?;
        let signals = db.open_tree(SIGNALS_TREE)?;
        Ok(Self {
            db,
            signals,
            path,
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    /// The underlying database, for other concerns that keep trees of their own (the audit).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Stores (inserts or replaces, by `source_record_id`) a batch of signals atomically, then
    /// makes it durable. When this returns `Ok`, every signal of the batch is on disk.
    pub fn upsert_batch(&self, signals: &[Signal]) -> Result<usize, StoreError> {
        let stored = self.upsert_batch_unsynced(signals)?;
        self.sync()?;
        Ok(stored)
    }

    /// Like [`Store::upsert_batch`] but without the final sync, for a caller that writes more
    /// (the audit entry of the push) and then calls [`Store::sync`] once for both.
    pub fn upsert_batch_unsynced(&self, signals: &[Signal]) -> Result<usize, StoreError> {
        if signals.is_empty() {
            return Ok(0);
        }
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = sled::Batch::default();
        // The newest version per record within this batch, so a record pushed twice in one
        // stream leaves exactly one set of index entries.
        let mut latest: HashMap<&str, &Signal> = HashMap::new();
        for s in signals {
            latest.insert(&s.source_record_id, s);
        }
        for s in latest.values() {
            if let Some(old) = self.get(&s.source_record_id)? {
                for key in index_keys(&old) {
                    batch.remove(key);
                }
            }
            for key in index_keys(s) {
                batch.insert(key, &[][..]);
            }
            batch.insert(signal_key(&s.source_record_id), serde_json::to_vec(s)?);
        }
        self.signals.apply_batch(batch)?;
        Ok(latest.len())
    }

    /// Removes, with their index entries, every signal for which `expired` holds, in one atomic
    /// batch; does not sync (the caller writes the purge's audit entry, then syncs both). Returns
    /// how many were removed.
    pub fn purge_unsynced(&self, expired: impl Fn(&Signal) -> bool) -> Result<usize, StoreError> {
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for entry in self.signals.scan_prefix([SIGNAL, 0]) {
            let (key, bytes) = entry?;
            let s: Signal = serde_json::from_slice(&bytes)?;
            if !expired(&s) {
                continue;
            }
            for index in index_keys(&s) {
                batch.remove(index);
            }
            batch.remove(key);
            removed += 1;
        }
        if removed > 0 {
            self.signals.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// Flushes sled and then fdatasyncs its log file. sled 0.34's own flush uses
    /// `sync_file_range`, which neither writes the file's size nor flushes the disk's cache; the
    /// extra fdatasync does both.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        std::fs::File::open(self.path.join("db"))?.sync_data()?;
        Ok(())
    }

    /// One signal by its record id.
    pub fn get(&self, record_id: &str) -> Result<Option<Signal>, StoreError> {
        self.signals
            .get(signal_key(record_id))?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(StoreError::from))
            .transpose()
    }

    /// The signals that match the filter, using an index where the filter allows.
    pub fn list(&self, filter: &SignalFilter) -> Result<Vec<Signal>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        match filter.index_prefix() {
            Some(prefix) => {
                for entry in self.signals.scan_prefix(&prefix) {
                    let (key, _) = entry?;
                    let record = &key[prefix.len()..];
                    let Some(bytes) = self.signals.get(signal_key_bytes(record))? else {
                        continue;
                    };
                    let s: Signal = serde_json::from_slice(&bytes)?;
                    if filter.matches(&s) {
                        out.push(s);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
            }
            None => {
                for entry in self.signals.scan_prefix([SIGNAL, 0]) {
                    let (_, bytes) = entry?;
                    let s: Signal = serde_json::from_slice(&bytes)?;
                    if filter.matches(&s) {
                        out.push(s);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The number of stored signals.
    pub fn count(&self) -> usize {
        self.signals.scan_prefix([SIGNAL, 0]).count()
    }
}

/// Opens sled, retrying for up to two seconds while another handle in this process still holds
/// the directory's lock: sled 0.34 releases it from a background thread shortly after the last
/// `Db` is dropped, so a quick restart can otherwise fail with "could not acquire lock".
fn open_with_retry(path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new().path(path).open() {
            // sled reports the held lock as an io::Error of kind Other wrapping the EWOULDBLOCK.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

fn signal_key(record_id: &str) -> Vec<u8> {
    signal_key_bytes(record_id.as_bytes())
}

fn signal_key_bytes(record_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(record_id.len() + 2);
    key.extend_from_slice(&[SIGNAL, 0]);
    key.extend_from_slice(record_id);
    key
}

fn index_prefix(kind: u8, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 3);
    key.extend_from_slice(&[kind, 0]);
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

fn index_keys(s: &Signal) -> Vec<Vec<u8>> {
    let mut keys = vec![
        index_prefix(BY_PUPIL, &s.pupil_pseudonym),
        index_prefix(BY_MUNICIPALITY, &s.residence_municipality),
    ];
    if !s.school.is_empty() {
        keys.push(index_prefix(BY_SCHOOL, &s.school));
    }
    for key in &mut keys {
        key.extend_from_slice(s.source_record_id.as_bytes());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Sector;
    use chrono::NaiveDate;

    fn signal(id: &str, muni: &str, school: &str) -> Signal {
        Signal {
            source_record_id: id.into(),
            pupil_pseudonym: format!("v1.{id:_<22}"),
            category: Category::Lrv,
            sector: Some(Sector::Vo),
            residence_municipality: muni.into(),
            school: school.into(),
            absent_since: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            status: Status::Open,
            offer_date: None,
            age: 14,
            updated_at: chrono::Utc::now(),
            address_under_investigation: false,
            exemption_5c_requested: false,
            awaiting_mbo_intake: false,
            exemption_term: None,
            exemption_end: None,
            closed_on: None,
            age_on: None,
            offer_kind: None,
            offer_place_from: None,
            offer_parents_agreed: false,
        }
    }

    #[test]
    fn upsert_replaces_and_moves_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .upsert_batch(&[signal("a", "GM0014", "20XY01")])
            .unwrap();
        store
            .upsert_batch(&[signal("a", "GM1966", "20XY01")])
            .unwrap();
        assert_eq!(store.count(), 1);
        let by = |m: &str| SignalFilter {
            residence_municipality: Some(m.into()),
            ..Default::default()
        };
        assert!(store.list(&by("GM0014")).unwrap().is_empty());
        assert_eq!(store.list(&by("GM1966")).unwrap().len(), 1);
    }

    #[test]
    fn purge_removes_signal_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .upsert_batch(&[
                signal("a", "GM0014", "20XY01"),
                signal("b", "GM0014", "20XY01"),
            ])
            .unwrap();
        assert_eq!(
            store.purge_unsynced(|s| s.source_record_id == "a").unwrap(),
            1
        );
        store.sync().unwrap();
        assert_eq!(store.count(), 1);
        let keys: Vec<_> = store
            .signals
            .iter()
            .keys()
            .map(|k| k.unwrap().to_vec())
            .collect();
        assert!(
            keys.iter().all(|k| !k.ends_with(b"\0a")),
            "an index entry of a survived"
        );
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let batch: Vec<_> = (0..50)
                .map(|i| signal(&format!("r{i}"), "GM0014", ""))
                .collect();
            assert_eq!(store.upsert_batch(&batch).unwrap(), 50);
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.count(), 50);
        assert_eq!(store.get("r7").unwrap().unwrap().source_record_id, "r7");
    }
}
