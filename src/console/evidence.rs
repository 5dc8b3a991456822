//! The console's own check of the evidence its node sends: an entry's inclusion proof against a
//! checkpoint, the checkpoint's signature, the witnesses' cosignatures and the consistency of each
//! witness's checkpoint with the newest, all with the audit module's verification functions.
//! Verifies only; trusts nothing the node says about the outcome, decides nothing else.

use crate::audit::{self, Checkpoint, Cosignature, Hash, VerifierKey};
use crate::rest::audit::{CheckpointStatus, EntryProof, SignedCheckpoint, WitnessCheckpoint};
use base64::Engine as _;

/// One check, in plain Dutch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(what: &str, outcome: Result<String, String>) -> Self {
        let (ok, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        Self {
            what: what.to_owned(),
            ok,
            detail,
        }
    }
}

/// A 32-byte hash from lowercase hex.
pub fn hash_of(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hashes_of(texts: &[String]) -> Result<Vec<Hash>, String> {
    texts
        .iter()
        .map(|t| hash_of(t).ok_or_else(|| format!("{t} is geen hash")))
        .collect()
}

/// The checkpoint a signed checkpoint's fields state, checked against its own note's body.
fn stated_checkpoint(c: &SignedCheckpoint) -> Result<Checkpoint, String> {
    let root = hash_of(&c.root_hash).ok_or("de root hash is geen hash")?;
    let body = audit::body_of(&c.note).map_err(|e| format!("de note is onleesbaar: {e}"))?;
    let stated = Checkpoint {
        origin: c.origin.clone(),
        size: c.size,
        root,
    };
    if body != stated {
        return Err("de note zegt iets anders dan grootte en root hash".into());
    }
    Ok(stated)
}

/// The checkpoint's note is signed with the log's key.
fn signed_by_log(c: &SignedCheckpoint, log_key: &str) -> Result<String, String> {
    let key = VerifierKey::parse(log_key).map_err(|e| format!("de sleutel van het log: {e}"))?;
    Checkpoint::open(&c.note, &key)
        .map(|_| format!("ondertekend met de sleutel van het log ({})", key.name))
        .map_err(|e| format!("de handtekening klopt niet: {e}"))
}

/// Whether `witness` cosigned `checkpoint` (one of its cosignature lines, checked with the
/// witness's key).
fn cosigned(
    checkpoint: &Checkpoint,
    lines: &[String],
    witness: &WitnessCheckpoint,
) -> Result<String, String> {
    let key = VerifierKey::parse(&witness.key).map_err(|e| format!("haar sleutel: {e}"))?;
    let line = lines
        .iter()
        .filter_map(|l| Cosignature::parse_line(l).ok())
        .find(|c| c.name == key.name)
        .ok_or("heeft dit checkpoint (nog) niet medeondertekend")?;
    line.verify(checkpoint, &key)
        .map(|_| format!("medeondertekend op {}", time_of(line.timestamp)))
        .map_err(|e| format!("de medeondertekening klopt niet: {e}"))
}

/// A cosignature's timestamp as the pages show times (UTC).
pub fn time_of(timestamp: u64) -> String {
    i64::try_from(timestamp)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%d-%m-%Y %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Checks an entry's inclusion proof: its bytes are the entry shown, its leaf hash, its path up
/// to the checkpoint's root, the checkpoint's signature (with the log's key from `keys`) and
/// each witness's cosignature of it. Returns the checks and the entry as its bytes say it.
pub fn check_proof(
    proof: &EntryProof,
    keys: Option<&CheckpointStatus>,
) -> (Vec<Check>, Option<audit::Entry>) {
    let mut checks = Vec::new();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&proof.entry_bytes)
        .map_err(|_| "de bytes van de regel zijn geen base64".to_owned());
    let entry = bytes
        .as_ref()
        .ok()
        .and_then(|b| audit::Entry::from_canonical(b).ok());
    checks.push(Check::new(
        "De regel",
        match &entry {
            Some(e) if e.seq == proof.entry.seq => {
                Ok("de canonieke bytes zijn deze regel, zoals hierboven getoond".into())
            }
            Some(e) => Err(format!(
                "de bytes zijn regel {}, niet {}",
                e.seq, proof.entry.seq
            )),
            None => Err("de canonieke bytes zijn geen regel van een auditlog".into()),
        },
    ));
    let leaf = bytes.as_ref().map(|b| audit::leaf_hash(b));
    checks.push(Check::new(
        "Bladhash",
        match &leaf {
            Ok(leaf) if hash_of(&proof.leaf_hash) == Some(*leaf) => {
                Ok(format!("SHA-256 van de regel: {}", proof.leaf_hash))
            }
            Ok(_) => Err("de bladhash hoort niet bij de bytes van de regel".into()),
            Err(e) => Err(e.to_string()),
        },
    ));
    let checkpoint = stated_checkpoint(&proof.checkpoint);
    checks.push(Check::new(
        "Inclusiebewijs",
        inclusion(proof, bytes.as_deref().ok(), checkpoint.as_ref()),
    ));
    checks.push(Check::new(
        "Checkpoint",
        match (&checkpoint, keys) {
            (Err(e), _) => Err(e.clone()),
            (Ok(_), None) => Err("de sleutel van het log is niet bekend".into()),
            (Ok(_), Some(keys)) => signed_by_log(&proof.checkpoint, &keys.log_key),
        },
    ));
    if let (Ok(checkpoint), Some(keys)) = (&checkpoint, keys) {
        for witness in &keys.witnesses {
            checks.push(Check::new(
                &format!("Getuige {}", witness.witness),
                cosigned(checkpoint, &proof.checkpoint.cosignatures, witness),
            ));
        }
    }
    (checks, entry)
}

fn inclusion(
    proof: &EntryProof,
    bytes: Option<&[u8]>,
    checkpoint: Result<&Checkpoint, &String>,
) -> Result<String, String> {
    let checkpoint = checkpoint.map_err(Clone::clone)?;
    let bytes = bytes.ok_or("de bytes van de regel zijn onleesbaar")?;
    let path = hashes_of(&proof.path)?;
    audit::verify_inclusion(
        bytes,
        proof.entry.seq,
        checkpoint.size,
        &checkpoint.root,
        &path,
    )
    .map(|_| {
        format!(
            "regel {} zit in de boom van {} regels met root hash {} ({} stappen)",
            proof.entry.seq,
            checkpoint.size,
            proof.checkpoint.root_hash,
            path.len()
        )
    })
    .map_err(|e| format!("het bewijs klopt niet: {e}"))
}

/// What the console checked of one witness's newest cosigned checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessView {
    pub witness: String,
    pub size: u64,
    pub root_hash: String,
    pub time: String,
    /// Its cosignature checks with its key.
    pub cosignature: Check,
    /// The newest checkpoint extends what it cosigned.
    pub consistent: Check,
}

/// Checks the newest checkpoint's signature, and per witness its cosignature of the checkpoint it
/// holds and that the newest checkpoint extends it (RFC 9162 consistency).
pub fn check_witnesses(status: &CheckpointStatus) -> (Check, Vec<WitnessView>) {
    let newest = stated_checkpoint(&status.checkpoint);
    let signed = Check::new(
        "Nieuwste checkpoint",
        newest
            .clone()
            .and_then(|_| signed_by_log(&status.checkpoint, &status.log_key)),
    );
    let views = status
        .witnesses
        .iter()
        .map(|w| witness_view(w, newest.as_ref()))
        .collect();
    (signed, views)
}

fn witness_view(w: &WitnessCheckpoint, newest: Result<&Checkpoint, &String>) -> WitnessView {
    let Some(c) = &w.cosigned else {
        let none = || Check::new("", Err("heeft nog niets medeondertekend".into()));
        return WitnessView {
            witness: w.witness.clone(),
            size: 0,
            root_hash: String::new(),
            time: String::new(),
            cosignature: none(),
            consistent: none(),
        };
    };
    let root = hash_of(&c.root_hash);
    let held = newest.map_err(Clone::clone).and_then(|n| {
        Ok(Checkpoint {
            origin: n.origin.clone(),
            size: c.size,
            root: root.ok_or("de root hash is geen hash")?,
        })
    });
    let cosignature = held
        .clone()
        .and_then(|held| cosigned(&held, std::slice::from_ref(&c.cosignature), w));
    let consistent = newest.map_err(Clone::clone).and_then(|n| {
        let held = held.clone()?;
        let path = hashes_of(&c.consistency_path)?;
        audit::verify_consistency(held.size, n.size, &held.root, &n.root, &path)
            .map(|_| {
                format!(
                    "het log van {} regels bouwt voort op wat zij medeondertekende",
                    n.size
                )
            })
            .map_err(|e| format!("het log bouwt NIET voort op wat zij medeondertekende: {e}"))
    });
    WitnessView {
        witness: w.witness.clone(),
        size: c.size,
        root_hash: c.root_hash.clone(),
        time: c.time.format("%d-%m-%Y %H:%M:%S").to_string(),
        cosignature: Check::new("Medeondertekening", cosignature),
        consistent: Check::new("Consistent", consistent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_from_lowercase_hex_only_at_full_length() {
        let text = "00ff".repeat(16);
        let hash = hash_of(&text).unwrap();
        assert_eq!(hash[0], 0x00);
        assert_eq!(hash[1], 0xff);
        assert_eq!(hash_of(&text[..62]), None);
        assert_eq!(hash_of(&"zz".repeat(32)), None);
        assert_eq!(hash_of(&"é".repeat(32)), None);
    }
}
