//! The clock copy of a signal: a compact binary form of every field the clock and the G4 report
//! read, kept beside the signal's JSON in the same tree and written in the same batch, so that a
//! report need not decode JSON. The JSON stays the source of truth; copies that disagree with it
//! are rebuilt from it. Copies are kept in blocks of up to [`BLOCK_MAX`]: sled's iterator costs
//! about the same per entry whatever its size, so one entry per copy would cost a full scan.
//! Invariant: `decode(record, &encode(s)) == s` for every signal; every signal's copy is in
//! exactly one block, and `K\0<record>` names that block.
//!
//! Keys: `k\0<block number, u64 big-endian>` -> a block: version (1), count (u32), then per copy
//! the record id (u16 length + bytes) and the copy (u32 length + bytes);
//! `K\0<record>` -> the number of the block that holds the record's copy.
//!
//! Layout, version 1 (integers little-endian; a date is its day number from the Common Era as
//! an i32, `i32::MIN` for none; a text is a u16 length and its UTF-8 bytes):
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 1 | version (1) |
//! | 1 | 1 | category (index in `Category::ALL`) |
//! | 2 | 1 | sector (0 none, else 1 + index in `Sector::ALL`) |
//! | 3 | 1 | status (index in `Status::ALL`) |
//! | 4 | 1 | flags: 1 address under investigation, 2 5c requested, 4 awaiting MBO intake, 8 parents agreed |
//! | 5 | 1 | exemption term (0 none, 1 temporary, 2 permanent) |
//! | 6 | 1 | offer kind (0 none, else 1 + index in `OfferKind::ALL`) |
//! | 7 | 1 | zero |
//! | 8 | 4 | age (u32) |
//! | 12 | 8 | updated_at, seconds since the Unix epoch (i64) |
//! | 20 | 4 | updated_at, nanoseconds (u32) |
//! | 24 | 24 | absent_since, offer_date, exemption_end, closed_on, age_on, offer_place_from |
//! | 48 | .. | pupil_pseudonym, residence_municipality, school (texts) |
//!
//! The record id is the key's, not repeated in the value.

use super::StoreError;
use crate::ids::{MunicipalityCode, Pseudonym, SchoolCode};
use crate::signal::{Category, ExemptionTerm, OfferKind, Sector, Signal, Status};
use chrono::{Datelike as _, NaiveDate};
use std::collections::{BTreeMap, HashMap};

/// The layout version this code writes and reads.
pub(super) const VERSION: u8 = 1;
const FIXED: usize = 48;
const NO_DATE: i32 = i32::MIN;
const OFFER_KINDS: [OfferKind; 3] = [
    OfferKind::Onderwijs,
    OfferKind::Zorg,
    OfferKind::OnderwijsEnZorg,
];

/// The most copies in one block.
pub(super) const BLOCK_MAX: usize = 256;
const BLOCK_VERSION: u8 = 1;
const BLOCK: u8 = b'k';
const WHERE: u8 = b'K';

/// (record id, copy) pairs of one block.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

pub(super) fn block_key(n: u64) -> Vec<u8> {
    let mut key = vec![BLOCK, 0];
    key.extend_from_slice(&n.to_be_bytes());
    key
}

pub(super) fn where_key(record: &[u8]) -> Vec<u8> {
    let mut key = vec![WHERE, 0];
    key.extend_from_slice(record);
    key
}

fn block_number(key: &[u8]) -> u64 {
    let mut n = [0u8; 8];
    let tail = key.get(key.len().saturating_sub(8)..).unwrap_or_default();
    n[8 - tail.len()..].copy_from_slice(tail);
    u64::from_be_bytes(n)
}

pub(super) fn encode_block(entries: &Entries) -> Vec<u8> {
    let size: usize = entries.iter().map(|(r, c)| r.len() + c.len() + 6).sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(BLOCK_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (record, copy) in entries {
        out.extend_from_slice(&(record.len() as u16).to_le_bytes());
        out.extend_from_slice(record);
        out.extend_from_slice(&(copy.len() as u32).to_le_bytes());
        out.extend_from_slice(copy);
    }
    out
}

/// (record id, copy) pairs read in place from a block.
type InPlace<'a> = Vec<(&'a [u8], &'a [u8])>;

/// The (record id, copy) pairs of a block.
fn block_entries(bytes: &[u8]) -> Result<InPlace<'_>, CopyError> {
    let mut r = Reader { bytes, at: 0 };
    let [version] = r.array("block")?;
    if version != BLOCK_VERSION {
        return Err(CopyError { field: "block" });
    }
    let count = u32::from_le_bytes(r.array("block")?) as usize;
    let mut out = Vec::with_capacity(count.min(BLOCK_MAX));
    for _ in 0..count {
        let len = u16::from_le_bytes(r.array("block")?);
        let record = r.take(usize::from(len), "block")?;
        let len = u32::from_le_bytes(r.array("block")?) as usize;
        out.push((record, r.take(len, "block")?));
    }
    if r.at != bytes.len() {
        return Err(CopyError { field: "block" });
    }
    Ok(out)
}

fn block_error(key: &[u8], e: CopyError) -> StoreError {
    StoreError::ClockCopy {
        record: format!("(block {})", block_number(key)),
        field: e.field,
    }
}

/// Every signal, from the copies.
pub(super) fn list(tree: &sled::Tree) -> Result<Vec<Signal>, StoreError> {
    let mut out = Vec::new();
    for entry in tree.scan_prefix([BLOCK, 0]) {
        let (key, bytes) = entry?;
        let entries = block_entries(&bytes).map_err(|e| block_error(&key, e))?;
        out.reserve(entries.len());
        for (record, copy) in entries {
            out.push(decode(record, copy).map_err(|e| StoreError::ClockCopy {
                record: String::from_utf8_lossy(record).into_owned(),
                field: e.field,
            })?);
        }
    }
    Ok(out)
}

/// The copies' changes of one batch: records taken out of their blocks, copies added (to the
/// last block while it has room, then to new ones).
pub(super) struct Edits<'t> {
    tree: &'t sled::Tree,
    blocks: BTreeMap<u64, Entries>,
    added: Entries,
    removed: Vec<Vec<u8>>,
}

impl<'t> Edits<'t> {
    pub(super) fn new(tree: &'t sled::Tree) -> Self {
        Self {
            tree,
            blocks: BTreeMap::new(),
            added: Vec::new(),
            removed: Vec::new(),
        }
    }

    fn load(&mut self, n: u64) -> Result<&mut Entries, StoreError> {
        if !self.blocks.contains_key(&n) {
            let key = block_key(n);
            let entries = match self.tree.get(&key)? {
                Some(bytes) => block_entries(&bytes)
                    .map_err(|e| block_error(&key, e))?
                    .into_iter()
                    .map(|(r, c)| (r.to_vec(), c.to_vec()))
                    .collect(),
                None => Vec::new(),
            };
            self.blocks.insert(n, entries);
        }
        Ok(self.blocks.entry(n).or_default())
    }

    /// Takes a stored record's copy out of its block.
    pub(super) fn remove(&mut self, record: &[u8]) -> Result<(), StoreError> {
        if let Some(n) = self.tree.get(where_key(record))? {
            self.load(block_number(&n))?
                .retain(|(r, _)| r.as_slice() != record);
        }
        self.removed.push(record.to_vec());
        Ok(())
    }

    pub(super) fn add(&mut self, s: &Signal) {
        self.added
            .push((s.source_record_id.as_bytes().to_vec(), encode(s)));
    }

    /// Puts the changed blocks and index entries into `batch`.
    pub(super) fn write(mut self, batch: &mut sled::Batch) -> Result<(), StoreError> {
        for record in &self.removed {
            batch.remove(where_key(record));
        }
        let last = match self.tree.scan_prefix([BLOCK, 0]).keys().next_back() {
            Some(key) => Some(block_number(&key?)),
            None => None,
        };
        let mut target = last.unwrap_or(0);
        for (record, copy) in std::mem::take(&mut self.added) {
            if self.load(target)?.len() >= BLOCK_MAX {
                target += 1;
            }
            batch.insert(where_key(&record), &target.to_be_bytes()[..]);
            self.load(target)?.push((record, copy));
        }
        for (n, entries) in &self.blocks {
            if entries.is_empty() {
                batch.remove(block_key(*n));
            } else {
                batch.insert(block_key(*n), encode_block(entries));
            }
        }
        Ok(())
    }
}

/// Replaces every copy and index entry by copies of the signals' JSON, in one batch.
pub(super) fn rebuild(tree: &sled::Tree) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for prefix in [[BLOCK, 0], [WHERE, 0]] {
        for key in tree.scan_prefix(prefix).keys() {
            batch.remove(key?);
        }
    }
    let mut entries: Entries = Vec::new();
    let mut n = 0u64;
    for entry in tree.scan_prefix([super::SIGNAL, 0]) {
        let (key, bytes) = entry?;
        let s: Signal = serde_json::from_slice(&bytes)?;
        batch.insert(where_key(&key[2..]), &n.to_be_bytes()[..]);
        entries.push((key[2..].to_vec(), encode(&s)));
        if entries.len() == BLOCK_MAX {
            batch.insert(block_key(n), encode_block(&entries));
            entries.clear();
            n += 1;
        }
    }
    if !entries.is_empty() {
        batch.insert(block_key(n), encode_block(&entries));
    }
    tree.apply_batch(batch)?;
    Ok(())
}

/// Whether the blocks and the index cover exactly the stored signals, each block readable
/// (keys and counts only; [`differing`] compares contents).
pub(super) fn consistent(tree: &sled::Tree) -> Result<bool, StoreError> {
    let mut copies = 0usize;
    for entry in tree.scan_prefix([BLOCK, 0]) {
        let (_, bytes) = entry?;
        match block_entries(&bytes) {
            Ok(entries) => copies += entries.len(),
            Err(_) => return Ok(false),
        }
    }
    let mut index = tree.scan_prefix([WHERE, 0]).keys();
    let mut signals = 0usize;
    for key in tree.scan_prefix([super::SIGNAL, 0]).keys() {
        let key = key?;
        match index.next().transpose()? {
            Some(w) if w[2..] == key[2..] => signals += 1,
            _ => return Ok(false),
        }
    }
    Ok(index.next().is_none() && copies == signals)
}

/// The records whose copy is missing, unreadable, different from the JSON or without a signal,
/// and "(index)" if the index does not match the blocks.
pub(super) fn differing(tree: &sled::Tree) -> Result<Vec<String>, StoreError> {
    let mut copies: HashMap<Vec<u8>, (u64, Result<Signal, CopyError>)> = HashMap::new();
    let mut out = Vec::new();
    for entry in tree.scan_prefix([BLOCK, 0]) {
        let (key, bytes) = entry?;
        let n = block_number(&key);
        match block_entries(&bytes) {
            Ok(entries) => {
                for (record, copy) in entries {
                    copies.insert(record.to_vec(), (n, decode(record, copy)));
                }
            }
            Err(_) => out.push(format!("(block {n})")),
        }
    }
    let mut index_right = true;
    for entry in tree.scan_prefix([super::SIGNAL, 0]) {
        let (key, bytes) = entry?;
        let record = &key[2..];
        let s: Signal = serde_json::from_slice(&bytes)?;
        let at = tree.get(where_key(record))?.map(|n| block_number(&n));
        match copies.remove(record) {
            Some((n, Ok(copy))) if copy == s => index_right &= at == Some(n),
            _ => out.push(s.source_record_id),
        }
    }
    out.extend(
        copies
            .into_keys()
            .map(|r| String::from_utf8_lossy(&r).into_owned()),
    );
    if !index_right || !consistent(tree)? {
        out.push("(index)".to_owned());
    }
    Ok(out)
}

/// A copy that cannot be read: the field where reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CopyError {
    pub field: &'static str,
}

fn index_of<T: PartialEq>(all: &[T], v: &T) -> u8 {
    all.iter().position(|x| x == v).unwrap_or(0) as u8
}

fn day(d: Option<NaiveDate>) -> i32 {
    d.map_or(NO_DATE, |d| d.num_days_from_ce())
}

/// The clock copy of `s`.
pub(super) fn encode(s: &Signal) -> Vec<u8> {
    let texts = [
        s.pupil_pseudonym.as_bytes(),
        s.residence_municipality.as_bytes(),
        s.school.as_ref().map_or(&b""[..], |c| c.as_bytes()),
    ];
    let mut out = Vec::with_capacity(FIXED + texts.iter().map(|t| t.len() + 2).sum::<usize>());
    let flags = u8::from(s.address_under_investigation)
        | u8::from(s.exemption_5c_requested) << 1
        | u8::from(s.awaiting_mbo_intake) << 2
        | u8::from(s.offer_parents_agreed) << 3;
    out.extend_from_slice(&[
        VERSION,
        index_of(&Category::ALL, &s.category),
        s.sector.map_or(0, |x| 1 + index_of(&Sector::ALL, &x)),
        index_of(&Status::ALL, &s.status),
        flags,
        match s.exemption_term {
            None => 0,
            Some(ExemptionTerm::Temporary) => 1,
            Some(ExemptionTerm::Permanent) => 2,
        },
        s.offer_kind.map_or(0, |k| 1 + index_of(&OFFER_KINDS, &k)),
        0,
    ]);
    out.extend_from_slice(&s.age.to_le_bytes());
    out.extend_from_slice(&s.updated_at.timestamp().to_le_bytes());
    out.extend_from_slice(&s.updated_at.timestamp_subsec_nanos().to_le_bytes());
    for d in [
        Some(s.absent_since),
        s.offer_date,
        s.exemption_end,
        s.closed_on,
        s.age_on,
        s.offer_place_from,
    ] {
        out.extend_from_slice(&day(d).to_le_bytes());
    }
    for t in texts {
        // Texts are checked short on intake (pseudonym, CBS code, BRIN); clipped, the copy
        // would differ from the JSON and the check rebuilds it, so clipping never goes unseen.
        let len = t.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&t[..len]);
    }
    out
}

/// A reader over a copy that names the field it fails on.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CopyError> {
        let end = self.at.checked_add(n).ok_or(CopyError { field })?;
        let out = self.bytes.get(self.at..end).ok_or(CopyError { field })?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CopyError> {
        self.take(N, field)?
            .try_into()
            .map_err(|_| CopyError { field })
    }

    fn date(&mut self, field: &'static str) -> Result<Option<NaiveDate>, CopyError> {
        match i32::from_le_bytes(self.array(field)?) {
            NO_DATE => Ok(None),
            n => NaiveDate::from_num_days_from_ce_opt(n)
                .map(Some)
                .ok_or(CopyError { field }),
        }
    }

    fn text(&mut self, field: &'static str) -> Result<String, CopyError> {
        let len = u16::from_le_bytes(self.array(field)?);
        let bytes = self.take(usize::from(len), field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CopyError { field })
    }
}

fn pick<T: Copy>(all: &[T], i: u8, field: &'static str) -> Result<T, CopyError> {
    all.get(usize::from(i)).copied().ok_or(CopyError { field })
}

fn pick_optional<T: Copy>(all: &[T], i: u8, field: &'static str) -> Result<Option<T>, CopyError> {
    match i {
        0 => Ok(None),
        i => pick(all, i - 1, field).map(Some),
    }
}

/// The signal of record `record` from its clock copy.
pub(super) fn decode(record: &[u8], bytes: &[u8]) -> Result<Signal, CopyError> {
    let mut r = Reader { bytes, at: 0 };
    let head: [u8; 8] = r.array("version")?;
    if head[0] != VERSION {
        return Err(CopyError { field: "version" });
    }
    let flags = head[4];
    if flags & !0x0f != 0 || head[7] != 0 {
        return Err(CopyError { field: "flags" });
    }
    let age = u32::from_le_bytes(r.array("age")?);
    let secs = i64::from_le_bytes(r.array("updated_at")?);
    let nanos = u32::from_le_bytes(r.array("updated_at")?);
    let updated_at = chrono::DateTime::from_timestamp(secs, nanos).ok_or(CopyError {
        field: "updated_at",
    })?;
    let absent_since = r.date("absent_since")?.ok_or(CopyError {
        field: "absent_since",
    })?;
    let offer_date = r.date("offer_date")?;
    let exemption_end = r.date("exemption_end")?;
    let closed_on = r.date("closed_on")?;
    let age_on = r.date("age_on")?;
    let offer_place_from = r.date("offer_place_from")?;
    let pupil_pseudonym =
        Pseudonym::try_from(r.text("pupil_pseudonym")?).map_err(|_| CopyError {
            field: "pupil_pseudonym",
        })?;
    let residence_municipality = MunicipalityCode::try_from(r.text("residence_municipality")?)
        .map_err(|_| CopyError {
            field: "residence_municipality",
        })?;
    // No school (a child without school history) is kept as the empty text.
    let school = match r.text("school")? {
        text if text.is_empty() => None,
        text => Some(SchoolCode::try_from(text).map_err(|_| CopyError { field: "school" })?),
    };
    if r.at != bytes.len() {
        return Err(CopyError { field: "school" });
    }
    let source_record_id = std::str::from_utf8(record)
        .map_err(|_| CopyError {
            field: "source_record_id",
        })?
        .to_owned();
    Ok(Signal {
        source_record_id,
        pupil_pseudonym,
        category: pick(&Category::ALL, head[1], "category")?,
        sector: pick_optional(&Sector::ALL, head[2], "sector")?,
        residence_municipality,
        school,
        absent_since,
        status: pick(&Status::ALL, head[3], "status")?,
        offer_date,
        age,
        updated_at,
        address_under_investigation: flags & 1 != 0,
        exemption_5c_requested: flags & 2 != 0,
        awaiting_mbo_intake: flags & 4 != 0,
        exemption_term: pick_optional(
            &[ExemptionTerm::Temporary, ExemptionTerm::Permanent],
            head[5],
            "exemption_term",
        )?,
        exemption_end,
        closed_on,
        age_on,
        offer_kind: pick_optional(&OFFER_KINDS, head[6], "offer_kind")?,
        offer_place_from,
        offer_parents_agreed: flags & 8 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date() -> impl Strategy<Value = NaiveDate> {
        (-100_000i32..1_000_000).prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
    }

    fn signal() -> impl Strategy<Value = Signal> {
        (
            (
                "[ -~]{1,40}",
                "v[0-9]{1,5}[.][A-Za-z0-9_-]{22}",
                0..Category::ALL.len(),
                proptest::option::of(0..Sector::ALL.len()),
                "GM[0-9]{4}",
                proptest::option::of("[0-9]{2}[A-Z]{2}[0-9]{2}"),
                date(),
                0..Status::ALL.len(),
                proptest::option::of(date()),
                any::<u32>(),
            ),
            (
                (-10_000_000_000i64..10_000_000_000, 0u32..1_000_000_000),
                any::<[bool; 4]>(),
                proptest::option::of(any::<bool>()),
                proptest::option::of(date()),
                proptest::option::of(date()),
                proptest::option::of(date()),
                proptest::option::of(0..OFFER_KINDS.len()),
                proptest::option::of(date()),
            ),
        )
            .prop_map(|(a, b)| Signal {
                source_record_id: a.0,
                pupil_pseudonym: a.1.parse().unwrap(),
                category: Category::ALL[a.2],
                sector: a.3.map(|i| Sector::ALL[i]),
                residence_municipality: a.4.parse().unwrap(),
                school: a.5.map(|c| c.parse().unwrap()),
                absent_since: a.6,
                status: Status::ALL[a.7],
                offer_date: a.8,
                age: a.9,
                updated_at: chrono::DateTime::from_timestamp(b.0 .0, b.0 .1).unwrap(),
                address_under_investigation: b.1[0],
                exemption_5c_requested: b.1[1],
                awaiting_mbo_intake: b.1[2],
                offer_parents_agreed: b.1[3],
                exemption_term: b.2.map(|t| {
                    if t {
                        ExemptionTerm::Temporary
                    } else {
                        ExemptionTerm::Permanent
                    }
                }),
                exemption_end: b.3,
                closed_on: b.4,
                age_on: b.5,
                offer_kind: b.6.map(|i| OFFER_KINDS[i]),
                offer_place_from: b.7,
            })
    }

    proptest! {
        #[test]
        fn every_signal_round_trips(s in signal()) {
            let copy = encode(&s);
            prop_assert_eq!(decode(s.source_record_id.as_bytes(), &copy), Ok(s));
        }

        #[test]
        fn a_cut_or_extended_copy_is_refused(s in signal(), cut in 0usize..200) {
            let mut copy = encode(&s);
            if cut < copy.len() {
                copy.truncate(cut);
            } else {
                copy.push(0);
            }
            prop_assert!(decode(s.source_record_id.as_bytes(), &copy).is_err());
        }
    }

    fn store_with(ids: &[&str]) -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let batch: Vec<_> = ids
            .iter()
            .map(|id| crate::store::tests::signal(id, "GM0014", "20XY01"))
            .collect();
        store.upsert_batch(&batch).unwrap();
        (dir, store)
    }

    fn by_id(mut v: Vec<Signal>) -> Vec<Signal> {
        v.sort_by(|a, b| a.source_record_id.cmp(&b.source_record_id));
        v
    }

    #[test]
    fn copies_follow_every_write_update_and_purge() {
        let (_dir, store) = store_with(&["a", "b", "c"]);
        let mut changed = crate::store::tests::signal("b", "GM1966", "");
        changed.status = Status::Aanbod;
        changed.offer_kind = Some(OfferKind::Zorg);
        store.upsert_batch(&[changed]).unwrap();
        store.purge_unsynced(|s| s.source_record_id == "c").unwrap();
        store.sync().unwrap();
        let all = store.list(&Default::default()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(by_id(store.list_for_clock().unwrap()), by_id(all));
        assert!(store.check_clock_copies().unwrap().is_empty());
    }

    fn tree(store: &crate::store::Store) -> sled::Tree {
        store.db().open_tree(super::super::SIGNALS_TREE).unwrap()
    }

    #[test]
    fn many_copies_fill_blocks_and_updates_move_them() {
        let ids: Vec<String> = (0..BLOCK_MAX + 10).map(|i| format!("r{i:04}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (_dir, store) = store_with(&refs);
        let t = tree(&store);
        assert_eq!(
            t.scan_prefix([BLOCK, 0]).count(),
            2,
            "one full block and a tail"
        );
        // Pushed in small batches, copies go to the last block while it has room.
        for i in 0..5 {
            store
                .upsert_batch(&[crate::store::tests::signal(&format!("x{i}"), "GM0014", "")])
                .unwrap();
        }
        let mut changed = crate::store::tests::signal("r0003", "GM1966", "");
        changed.age = 9;
        store.upsert_batch(&[changed]).unwrap();
        assert_eq!(t.scan_prefix([BLOCK, 0]).count(), 2);
        assert_eq!(
            by_id(store.list_for_clock().unwrap()),
            by_id(store.list(&Default::default()).unwrap())
        );
        assert!(consistent(&t).unwrap());
        assert!(store.check_clock_copies().unwrap().is_empty());
        store
            .purge_unsynced(|s| s.source_record_id.as_str() < "r0200")
            .unwrap();
        store.sync().unwrap();
        assert_eq!(
            by_id(store.list_for_clock().unwrap()),
            by_id(store.list(&Default::default()).unwrap())
        );
        assert!(store.check_clock_copies().unwrap().is_empty());
    }

    #[test]
    fn the_check_rebuilds_a_different_missing_or_orphaned_copy() {
        let (_dir, store) = store_with(&["a", "b", "c"]);
        let t = tree(&store);
        let mut other = crate::store::tests::signal("a", "GM0014", "20XY01");
        other.age += 1;
        let orphan = crate::store::tests::signal("zz", "GM0014", "20XY01");
        let entries: Entries = [&other, &orphan]
            .iter()
            .map(|s| (s.source_record_id.as_bytes().to_vec(), encode(s)))
            .collect();
        t.insert(block_key(0), encode_block(&entries)).unwrap();
        let mut found = store.check_clock_copies().unwrap();
        found.sort();
        assert_eq!(found, ["(index)", "a", "b", "c", "zz"]);
        assert!(store.check_clock_copies().unwrap().is_empty());
        assert_eq!(
            by_id(store.list_for_clock().unwrap()),
            by_id(store.list(&Default::default()).unwrap())
        );
    }

    #[test]
    fn opening_gives_a_store_without_copies_its_copies() {
        let (dir, store) = store_with(&["a", "b"]);
        let t = tree(&store);
        for prefix in [[BLOCK, 0], [WHERE, 0]] {
            for k in t.scan_prefix(prefix).keys() {
                t.remove(k.unwrap()).unwrap();
            }
        }
        store.sync().unwrap();
        assert!(store.list_for_clock().unwrap().is_empty());
        assert!(!consistent(&t).unwrap());
        drop((t, store));
        let store = crate::store::Store::open(dir.path()).unwrap();
        assert_eq!(
            by_id(store.list_for_clock().unwrap()),
            by_id(store.list(&Default::default()).unwrap())
        );
    }

    #[test]
    fn a_damaged_copy_is_named_by_record_and_field() {
        let (_dir, store) = store_with(&["a"]);
        let entries: Entries = vec![(b"a".to_vec(), vec![VERSION, 42])];
        tree(&store)
            .insert(block_key(0), encode_block(&entries))
            .unwrap();
        let err = store.list_for_clock().unwrap_err().to_string();
        assert!(err.contains("signal a") && err.contains("version"), "{err}");
        tree(&store).insert(block_key(0), &[9u8][..]).unwrap();
        let err = store.list_for_clock().unwrap_err().to_string();
        assert!(err.contains("block 0") && err.contains("block"), "{err}");
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let s = crate::store::tests::signal("a", "GM0014", "20XY01");
        let mut copy = encode(&s);
        copy[0] = VERSION + 1;
        assert_eq!(decode(b"a", &copy), Err(CopyError { field: "version" }));
    }
}
