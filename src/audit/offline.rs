//! Verifying a stopped node's audit log from its store directory, read-only: sled cannot open a
//! store read-only (and opening one may write to it), so this verifies a copy in a temporary
//! dir. Finds the node the log belongs to, trusts the cosigned checkpoints stored with it and any
//! checkpoints a caller brings, then runs [`super::verify()`]. Never writes to the data dir.

use super::{
    entry_key, AuditError, AuditLog, SigningKey, TrustedCheckpoint, VerifyError, VerifyReport,
};
use std::path::Path;

/// The tree where a node pins the witness keys it accepted cosignatures from (key -> key text).
use super::WITNESS_KEYS_TREE;

/// Why a stopped node's log could not be verified at all (a log that fails verification is an
/// [`OfflineVerify`] with an `Err` result, not this).
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot copy {path} for verification: {source}")]
    Copy {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the audit log is empty")]
    Empty,
    #[error("the first audit entry names no node")]
    NoNode,
}

impl From<sled::Error> for OfflineError {
    fn from(e: sled::Error) -> Self {
        OfflineError::Audit(AuditError::Store(e))
    }
}

/// The outcome of an offline verification.
#[derive(Debug)]
pub struct OfflineVerify {
    /// The log's checkpoint origin (`pactgate/<node OIN>`).
    pub origin: String,
    pub result: Result<VerifyReport, VerifyError>,
}

/// Verifies the audit log in the sled store at `store_dir` (a copy of it), signed with `key`,
/// against its stored cosigned checkpoints and the `peer` checkpoints.
pub fn verify_stopped(
    store_dir: &Path,
    key: SigningKey,
    peer: Vec<TrustedCheckpoint>,
) -> Result<OfflineVerify, OfflineError> {
    let copy = tempfile::tempdir().map_err(|source| OfflineError::Copy {
        path: "a temporary dir".to_owned(),
        source,
    })?;
    let copied = copy.path().join("store");
    copy_dir(store_dir, &copied)?;
    let db = sled::open(&copied)?;
    let oin = node_oin_of(&db)?;
    let log = AuditLog::open(&db, &oin, key)?;
    let keys: Vec<String> = db
        .open_tree(WITNESS_KEYS_TREE)?
        .iter()
        .values()
        .filter_map(|v| v.ok().and_then(|v| String::from_utf8(v.to_vec()).ok()))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut trusted = log.cosigned_checkpoints(&key_refs)?;
    trusted.extend(peer);
    Ok(OfflineVerify {
        origin: log.origin().to_owned(),
        result: super::verify(&log, &trusted),
    })
}

/// The node OIN a log belongs to: from its newest checkpoint's origin, or else its first entry
/// (read leniently, so a damaged entry is left for the verifier to name).
fn node_oin_of(db: &sled::Db) -> Result<String, OfflineError> {
    let checkpoints = db.open_tree("audit.checkpoints")?;
    if let Some(kv) = checkpoints.iter().next_back() {
        let note = String::from_utf8_lossy(&kv?.1).into_owned();
        if let Some(oin) = note
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("pactgate/"))
        {
            return Ok(oin.to_owned());
        }
    }
    let entries = db.open_tree(super::TREE)?;
    let bytes = entries.get(entry_key(0))?.ok_or(OfflineError::Empty)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| OfflineError::NoNode)?;
    value["node_oin"]
        .as_str()
        .map(str::to_owned)
        .ok_or(OfflineError::NoNode)
}

/// Copies a directory tree (sled's files) file by file.
fn copy_dir(from: &Path, to: &Path) -> Result<(), OfflineError> {
    let copy_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| OfflineError::Copy { path, source }
    };
    std::fs::create_dir_all(to).map_err(copy_error(to))?;
    for entry in std::fs::read_dir(from).map_err(copy_error(from))? {
        let entry = entry.map_err(copy_error(from))?;
        let target = to.join(entry.file_name());
        if entry
            .file_type()
            .map_err(copy_error(&entry.path()))?
            .is_dir()
        {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(copy_error(&entry.path()))?;
        }
    }
    Ok(())
}
