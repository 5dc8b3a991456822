//! The node's signal store in sled: one tree holding the signals and their indexes, written only
//! in atomic batches, acknowledged only after a flush and an fdatasync. Never sees a raw pupil id.
//! Opens only a store that holds what the node acknowledged (see [`crate::integrity`]): each
//! batch is announced before it is applied, and each sync records what it made durable.
//!
//! Keys in the `signals` tree (record ids are printable ASCII, so 0x00 separates safely):
//! - `s\0<record>`: the signal, as JSON;
//! - `p\0<pseudonym>\0<record>`, `m\0<municipality>\0<record>`, `c\0<school>\0<record>`: empty
//!   index entries for queries by pupil, residence municipality and school;
//! - `k\0<block>` and `K\0<record>`: the signals' clock copies in blocks, and which block holds
//!   each record's copy (see [`clock_copy`]); what the report reads.

use crate::ids::{MunicipalityCode, SchoolCode};
use crate::integrity::{Delta, Digest, Files, IntegrityError, Record};
use crate::signal::{Category, Signal, Status};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const SIGNALS_TREE: &str = "signals";
const SIGNAL: u8 = b's';
const BY_PUPIL: u8 = b'p';
const BY_MUNICIPALITY: u8 = b'm';
const BY_SCHOOL: u8 = b'c';

mod clock_copy;
/// sled's page cache unless the node's limits say otherwise: 4 MiB (BENCHMARKS.md, Memory).
pub const DEFAULT_CACHE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data store failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("the data store could not sync to disk: {0}")]
    Sync(#[from] std::io::Error),
    #[error("a stored signal could not be read (data dir damaged?): {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the data directory could not be made private (0700, files 0600): {0}")]
    Private(std::io::Error),
    #[error("the store's write lock was poisoned by an earlier panic")]
    Poisoned,
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    #[error("the audit log's length cannot be read: {0}")]
    Audit(String),
    #[error("the store could not be read: sled crashed on it ({0})")]
    Crashed(String),
    #[error("the clock copy of signal {record} could not be read at field {field}")]
    ClockCopy { record: String, field: &'static str },
}

/// Which signals a listing returns; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalFilter {
    pub residence_municipality: Option<MunicipalityCode>,
    pub school: Option<SchoolCode>,
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
            && self
                .school
                .as_ref()
                .is_none_or(|c| Some(c) == s.school.as_ref())
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
    integrity: Arc<Integrity>,
}

/// What the store keeps for its integrity record.
struct Integrity {
    files: Files,
    audit: sled::Tree,
    /// The number of the last batch applied and the digest after it; changed under the store's
    /// write lock.
    applied: Mutex<(u64, Digest)>,
    /// The record last written.
    written: Mutex<Record>,
}

impl Integrity {
    fn applied(&self) -> (u64, Digest) {
        *self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn audit_len(&self) -> Result<u64, StoreError> {
        crate::audit::stored_len(&self.audit).map_err(|e| StoreError::Audit(e.to_string()))
    }
}

impl Store {
    /// Opens (or creates) the store under `data_dir/store`, with the default page cache.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store under `data_dir/store` with a page cache of `cache_bytes`
    /// (sled's own default is 1 GiB, which a node under load fills and keeps), private to the
    /// node's user (see [`make_private`]), refusing one that holds less than the node
    /// acknowledged (its integrity record in `data_dir`); then records what it holds.
    pub fn open_with_cache(data_dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        // The data dir's own files (the audit key) are checked by their owners before the first
        // sync makes them private too, so a key that was exposed is refused, not quietly fixed.
        create_private_dir(data_dir)
            .and_then(|()| make_entry_private(data_dir))
            .map_err(StoreError::Private)?;
        let path = data_dir.join("store");
        let (found, audit_entries) = scan(&path)?;
        let db = open_with_retry(&path, cache_bytes)?;
        make_private(&path).map_err(StoreError::Private)?;
        let signals = db.open_tree(SIGNALS_TREE)?;
        let audit = db.open_tree(crate::audit::TREE)?;
        let files = Files::new(data_dir);
        let batch = files.check(found, audit_entries)?;
        let record = Record {
            batch,
            digest: found,
            audit_entries,
        };
        files.write_record(record, true)?;
        files.clear_intents()?;
        Ok(Self {
            db,
            signals,
            path,
            write_lock: Arc::new(Mutex::new(())),
            integrity: Arc::new(Integrity {
                files,
                audit,
                applied: Mutex::new((batch, found)),
                written: Mutex::new(record),
            }),
        })
    }

    /// [`Store::open`] that turns a panic inside sled (which it has on some damaged files) into
    /// [`StoreError::Crashed`]. A process abort cannot be caught this way: the binary checks the
    /// store in a child process first.
    pub fn open_guarded(data_dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::open_with_cache(data_dir, cache_bytes)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(StoreError::Crashed(what))
        })
    }

    /// Records what the store under `data_dir` holds now as acknowledged (for a store made before
    /// integrity records, after the operator made sure it is complete). The node must be stopped.
    pub fn adopt(data_dir: &Path) -> Result<Record, StoreError> {
        let db = open_with_retry(&data_dir.join("store"), DEFAULT_CACHE_BYTES)?;
        let signals = db.open_tree(SIGNALS_TREE)?;
        let audit = db.open_tree(crate::audit::TREE)?;
        let record = Record {
            batch: 0,
            digest: digest_of(&signals)?,
            audit_entries: crate::audit::stored_len(&audit)
                .map_err(|e| StoreError::Audit(e.to_string()))?,
        };
        let files = Files::new(data_dir);
        files.write_record(record, true)?;
        files.clear_intents()?;
        Ok(record)
    }

    /// Runs `f` on the database and the audit log's length while no batch can be written (pushes
    /// and purges wait), e.g. to copy the store consistently.
    pub fn while_writes_wait<R>(
        &self,
        f: impl FnOnce(&sled::Db, u64) -> R,
    ) -> Result<R, StoreError> {
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let audit_len = self.integrity.audit_len()?;
        Ok(f(&self.db, audit_len))
    }

    /// Announces a batch's change in the intents file, applies the batch (with `also`, another
    /// tree's batch, in one sled transaction: both or neither survive a crash) and counts it.
    /// Call with the write lock held.
    fn apply(
        &self,
        batch: sled::Batch,
        delta: &Delta,
        also: Option<(&sled::Tree, sled::Batch)>,
    ) -> Result<(), StoreError> {
        let mut applied = self
            .integrity
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let number = applied.0 + 1;
        self.integrity.files.append_intent(number, delta)?;
        match also {
            None => self.signals.apply_batch(batch)?,
            Some((tree, other)) => {
                use sled::transaction::{
                    ConflictableTransactionError, TransactionError, Transactional as _,
                };
                (&self.signals, tree)
                    .transaction(|(signals, tree)| {
                        signals.apply_batch(&batch)?;
                        tree.apply_batch(&other)?;
                        Ok::<_, ConflictableTransactionError<std::convert::Infallible>>(())
                    })
                    .map_err(|e| match e {
                        TransactionError::Storage(e) => StoreError::Sled(e),
                        TransactionError::Abort(never) => match never {},
                    })?
            }
        }
        free_retired();
        applied.0 = number;
        applied.1.apply(delta);
        Ok(())
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
        let (batch, delta, stored) = self.upsert_edits(signals)?;
        self.apply(batch, &delta, None)?;
        Ok(stored)
    }

    /// Like [`Store::upsert_batch_unsynced`], and writes another tree's batch (a push batch's
    /// audit entry) in the same atomic sled write: after a crash both are there or neither.
    /// `along` runs under the store's write lock with a [`Along`] it must hand that batch to
    /// (as [`crate::audit::AuditLog::append_with`] does); a failure before or in that write
    /// leaves the store as it was. Returns how many signals were stored and what `along`
    /// returned.
    pub fn upsert_batch_unsynced_with<R, E: From<StoreError>>(
        &self,
        signals: &[Signal],
        along: impl FnOnce(Along<'_>) -> Result<R, E>,
    ) -> Result<(usize, R), E> {
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let (batch, delta, stored) = self.upsert_edits(signals)?;
        let written = std::cell::Cell::new(false);
        let result = along(Along {
            store: self,
            batch,
            delta: &delta,
            written: &written,
        })?;
        if !written.get() {
            return Err(StoreError::Audit("the batch's audit entry was not written".into()).into());
        }
        Ok((stored, result))
    }

    /// The batch that stores `signals` (replacing older versions and their index entries and
    /// clock copies), its change to the digest, and how many records it stores. Call with the
    /// write lock held.
    fn upsert_edits(&self, signals: &[Signal]) -> Result<(sled::Batch, Delta, usize), StoreError> {
        let mut batch = sled::Batch::default();
        // The newest version per record within this batch, so a record pushed twice in one
        // stream leaves exactly one set of index entries.
        let mut latest: HashMap<&str, &Signal> = HashMap::new();
        for s in signals {
            latest.insert(&s.source_record_id, s);
        }
        let mut delta = Delta::default();
        let mut copies = clock_copy::Edits::new(&self.signals);
        for s in latest.values() {
            let key = signal_key(&s.source_record_id);
            if let Some(old_bytes) = self.signals.get(&key)? {
                let old: Signal = serde_json::from_slice(&old_bytes)?;
                for index in index_keys(&old) {
                    batch.remove(index);
                }
                delta.remove(&key, &old_bytes);
                copies.remove(&key[2..])?;
            }
            for index in index_keys(s) {
                batch.insert(index, &[][..]);
            }
            let value = serde_json::to_vec(s)?;
            delta.insert(&key, &value);
            batch.insert(key, value);
            copies.add(s);
        }
        copies.write(&mut batch)?;
        Ok((batch, delta, latest.len()))
    }

    /// Removes, with their index entries, every signal for which `expired` holds, in one atomic
    /// batch; does not sync (the caller writes the purge's audit entry, then syncs both). Returns
    /// how many were removed.
    pub fn purge_unsynced(&self, expired: impl Fn(&Signal) -> bool) -> Result<usize, StoreError> {
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = sled::Batch::default();
        let mut delta = Delta::default();
        let mut copies = clock_copy::Edits::new(&self.signals);
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
            delta.remove(&key, &bytes);
            copies.remove(&key[2..])?;
            batch.remove(key);
            removed += 1;
        }
        if removed > 0 {
            copies.write(&mut batch)?;
            self.apply(batch, &delta, None)?;
        }
        Ok(removed)
    }

    /// Flushes sled and then fdatasyncs its log file; then records what that made durable (the
    /// batches applied and the audit entries appended before the flush). sled 0.34's own flush
    /// uses `sync_file_range`, which neither writes the file's size nor flushes the disk's cache;
    /// the extra fdatasync does both.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (batch, digest) = self.integrity.applied();
        let audit_entries = self.integrity.audit_len()?;
        self.db.flush()?;
        std::fs::File::open(self.path.join("db"))?.sync_data()?;
        self.record(Record {
            batch,
            digest,
            audit_entries,
        })?;
        // sled may have made a file since (a snapshot, a blob) with the process umask, and so
        // may the integrity record.
        if let Some(data_dir) = self.path.parent() {
            make_private(data_dir).map_err(StoreError::Private)?;
        }
        Ok(())
    }

    /// Writes the record of what a sync made durable, merged with the one written last (syncs
    /// may finish out of order), and empties the intents once the record covers every batch.
    /// Never waits for the write lock, so requests are not held up by a running backup.
    fn record(&self, durable: Record) -> Result<(), StoreError> {
        let mut written = self
            .integrity
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut next = if durable.batch >= written.batch {
            durable
        } else {
            *written
        };
        next.audit_entries = durable.audit_entries.max(written.audit_entries);
        if next == *written {
            return Ok(());
        }
        let signals_changed = next.batch != written.batch;
        self.integrity.files.write_record(next, signals_changed)?;
        *written = next;
        // Clearing needs the write lock (no batch may be announced meanwhile); a writer or a
        // backup holding it only postpones the clearing to a later sync.
        let Ok(_guard) = self.write_lock.try_lock() else {
            return Ok(());
        };
        if self.integrity.applied().0 == next.batch {
            self.integrity.files.clear_intents()?;
        }
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
        self.list_page(filter, None)
    }

    /// [`Store::list`] in pages: the matching signals whose `source_record_id` sorts after
    /// `after` (every listing runs in `source_record_id` order, by index or not), at most the
    /// filter's limit.
    pub fn list_page(
        &self,
        filter: &SignalFilter,
        after: Option<&str>,
    ) -> Result<Vec<Signal>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let later = |s: &Signal| after.is_none_or(|a| s.source_record_id.as_str() > a);
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
                    if later(&s) && filter.matches(&s) {
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
                    if later(&s) && filter.matches(&s) {
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

    /// Every stored signal, read from its clock copy (no JSON decoding): what the clock and the
    /// report read.
    pub fn list_for_clock(&self) -> Result<Vec<Signal>, StoreError> {
        clock_copy::list(&self.signals)
    }

    /// Compares every signal's clock copy with its JSON (the source of truth) and, if any is
    /// missing, unreadable, different or without a signal, rebuilds all copies from the JSON in
    /// one batch. Returns the record ids (or blocks) that differed.
    pub fn check_clock_copies(&self) -> Result<Vec<String>, StoreError> {
        let _guard = self.write_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let differing = clock_copy::differing(&self.signals)?;
        if !differing.is_empty() {
            clock_copy::rebuild(&self.signals)?;
        }
        Ok(differing)
    }

    /// Reads and decodes every stored signal (one at a time); returns how many there are.
    pub fn read_all(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in self.signals.scan_prefix([SIGNAL, 0]) {
            let (_, bytes) = entry?;
            serde_json::from_slice::<Signal>(&bytes)?;
            n += 1;
        }
        Ok(n)
    }

    /// The number of stored signals.
    pub fn count(&self) -> usize {
        self.signals.scan_prefix([SIGNAL, 0]).count()
    }
}

/// The write of a push batch's signals, handed to the code that writes another tree's batch
/// with it ([`Store::upsert_batch_unsynced_with`]).
pub struct Along<'a> {
    store: &'a Store,
    batch: sled::Batch,
    delta: &'a Delta,
    written: &'a std::cell::Cell<bool>,
}

impl Along<'_> {
    /// Writes the signals and `batch` of `tree` in one atomic sled write (not synced).
    pub fn write(self, tree: &sled::Tree, batch: sled::Batch) -> Result<(), StoreError> {
        self.store
            .apply(self.batch, self.delta, Some((tree, batch)))?;
        self.written.set(true);
        Ok(())
    }
}

/// Rounds of [`free_retired`]: each frees up to 8 bags of 64 retired objects, so this drains
/// what a batch of several thousand writes retires many times over.
const FREE_ROUNDS: usize = 256;

/// Frees the tree nodes sled has retired and no reader can still see. sled replaces a node on
/// every write and retires the old one to crossbeam's epoch collector, which frees at most 512
/// of them per 128 pins of a thread. A batch holds one pin for all its writes (several thousand
/// node copies) and a push pins far less often than it retires, so without this the retired
/// nodes pile up for as long as pushes come in, and an idle node never frees them (BENCHMARKS.md,
/// Memory). Each round pins, moves this thread's retired nodes to the collector, advances the
/// epoch if no other thread is pinned in an older one, and frees what has expired.
fn free_retired() {
    for _ in 0..FREE_ROUNDS {
        crossbeam_epoch::pin().flush();
    }
}

/// sled's page cache while the digest is read at open: the smallest that reads well.
const SCAN_CACHE_BYTES: u64 = 1024 * 1024;

/// The digest of the stored signals and the audit log's length, read through a sled handle of
/// its own with a small cache and no flusher, closed before the node's own handle opens. The
/// digest pages in every signal once; sled 0.34 keeps up to 64 unaccounted pages per cache shard
/// (256 shards) besides its cache, so read through the node's handle they would stay resident
/// (about 130 MB for 300,000 signals; BENCHMARKS.md, Memory).
fn scan(path: &Path) -> Result<(Digest, u64), StoreError> {
    let db = open_config(path, SCAN_CACHE_BYTES, None)?;
    let signals = db.open_tree(SIGNALS_TREE)?;
    let found = digest_of(&signals)?;
    // The clock copies are checked (and rebuilt if they do not cover exactly the stored signals)
    // through this short-lived handle too, so their pages do not stay in the node's cache.
    reconcile_clock_copies(&signals)?;
    drop(signals);
    let audit_entries = crate::audit::stored_len(&db.open_tree(crate::audit::TREE)?)
        .map_err(|e| StoreError::Audit(e.to_string()))?;
    drop(db);
    free_retired();
    Ok((found, audit_entries))
}

/// The digest of every stored signal (not the indexes).
fn digest_of(signals: &sled::Tree) -> Result<Digest, StoreError> {
    let mut pairs = Vec::new();
    let mut digest = Digest::default();
    for entry in signals.scan_prefix([SIGNAL, 0]) {
        pairs.push(entry?);
        if pairs.len() == 1024 {
            digest = digest.merged(Digest::of(pairs.drain(..)));
        }
    }
    Ok(digest.merged(Digest::of(pairs.into_iter())))
}

/// Creates `dir` (and its parents) if absent; the data dir itself is made 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Gives one directory mode 0700 or one file mode 0600 if it has another; leaves symbolic links
/// and other kinds alone. True if the path is a directory.
fn make_entry_private(path: &Path) -> std::io::Result<bool> {
    let meta = std::fs::symlink_metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let wanted = if meta.is_dir() {
            0o700
        } else if meta.is_file() {
            0o600
        } else {
            return Ok(false);
        };
        if meta.permissions().mode() & 0o777 != wanted {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))?;
        }
    }
    Ok(meta.is_dir())
}

/// Makes `dir` and everything under it private to the node's user: directories 0700, files
/// 0600, whatever the umask was when they were made (sled makes its files with the process
/// umask, usually 0644). An entry below `dir` that vanishes during the walk is skipped: sled
/// removes replaced blobs and snapshots from its own threads while a sync walks the store.
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let below = path != dir;
        let walked = make_entry_private(&path).and_then(|is_dir| {
            if is_dir {
                for entry in std::fs::read_dir(&path)? {
                    stack.push(entry?.path());
                }
            }
            Ok(())
        });
        match walked {
            Err(e) if below && e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// The raw sled database of a stopped node's store (`data_dir/store`), for the tools that read
/// or rewrite it offline (restore, tests): waits, like the node, for a lock that a handle of this
/// process dropped a moment ago.
pub fn open_stopped(data_dir: &Path) -> Result<sled::Db, StoreError> {
    open_with_retry(&data_dir.join("store"), DEFAULT_CACHE_BYTES)
}

/// Opens sled, retrying for up to five seconds while another handle in this process still holds
/// the directory's lock: sled 0.34 releases it from a background thread shortly after the last
/// `Db` is dropped, so a quick restart (or the open after [`scan`]) can otherwise fail with
/// "could not acquire lock".
fn open_with_retry(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    open_config(path, cache_bytes, Some(500))
}

/// [`open_with_retry`] with sled's background flush every `flush_every_ms` (none: no flusher).
fn open_config(
    path: &Path,
    cache_bytes: u64,
    flush_every_ms: Option<u64>,
) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(flush_every_ms)
            .open()
        {
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

/// Rebuilds the clock copies if they do not cover exactly the stored signals (a store from
/// before the copies, or restored from such a backup); compares keys and counts only
/// ([`Store::check_clock_copies`] compares the contents).
fn reconcile_clock_copies(signals: &sled::Tree) -> Result<(), StoreError> {
    if !clock_copy::consistent(signals)? {
        clock_copy::rebuild(signals)?;
        signals.flush()?;
    }
    Ok(())
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
    if let Some(school) = &s.school {
        keys.push(index_prefix(BY_SCHOOL, school));
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

    pub(super) fn signal(id: &str, muni: &str, school: &str) -> Signal {
        Signal {
            source_record_id: id.into(),
            pupil_pseudonym: format!("v1.{id:_<22}").parse().unwrap(),
            category: Category::Lrv,
            sector: Some(Sector::Vo),
            residence_municipality: muni.parse().unwrap(),
            school: (!school.is_empty()).then(|| school.parse().unwrap()),
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
            residence_municipality: Some(m.parse().unwrap()),
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
    fn files_vanishing_during_the_walk_do_not_fail_it() {
        // sled removes replaced blobs while a sync makes the store private; the walk must not
        // fail a push on a file that was listed and is gone a moment later.
        let dir = tempfile::tempdir().unwrap();
        let churn = dir.path().join("blobs");
        std::fs::create_dir(&churn).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churner = {
            let (churn, stop) = (churn.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let file = churn.join(format!("{i}"));
                    std::fs::write(&file, b"blob").unwrap();
                    let sub = churn.join(format!("d{i}"));
                    std::fs::create_dir(&sub).unwrap();
                    std::fs::remove_file(&file).unwrap();
                    std::fs::remove_dir(&sub).unwrap();
                    i += 1;
                }
            })
        };
        let walked = (0..3000)
            .map(|_| make_private(dir.path()))
            .find(Result::is_err);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churner.join().unwrap();
        assert!(walked.is_none(), "the walk failed: {walked:?}");
        // The data dir itself must still exist.
        assert!(make_private(&dir.path().join("gone")).is_err());
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
