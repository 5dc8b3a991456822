//! Cases (casussen) of case meetings: which pupils (by pseudonym) and which organisations a case
//! covers, who leads it, whether it is open and whether this node's organisation accepted it.
//! Kept in the node's sled database, in a tree of their own; a case write is durable before it
//! is acknowledged. Decides nothing: the exchange checks a case against the policy and the
//! caller. Also the token bucket that bounds how fast an organisation opens, accepts or shares.

use crate::identity::Organisation;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CASES_TREE: &str = "cases";

/// A case as every participating node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub meeting_type: String,
    pub purpose: String,
    pub pupils: Vec<String>,
    pub participants: Vec<Party>,
    pub lead: Party,
    pub open: bool,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// This node's organisation's decision on the case; never taken from a peer. A case stored
    /// before acceptance existed reads as pending (fail closed).
    #[serde(default)]
    pub acceptance: Acceptance,
}

/// Whether this node's organisation takes part in a case shared with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acceptance {
    /// Shared with this node, not yet screened: grants nothing (unless the meeting needs no
    /// acceptance).
    #[default]
    Pending,
    /// Accepted by this node's organisation (or opened by it as lead).
    Accepted,
    /// Declined by this node's organisation: grants nothing, for good.
    Declined,
}

/// An organisation as a case names it (serialisable form of [`Organisation`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    pub oin: String,
    pub name: String,
}

impl From<&Organisation> for Party {
    fn from(o: &Organisation) -> Self {
        Self {
            oin: o.oin.to_string(),
            name: o.name.clone(),
        }
    }
}

impl Case {
    /// Whether the organisation with this OIN takes part (the lead always does).
    pub fn has_participant(&self, oin: &str) -> bool {
        self.lead.oin == oin || self.participants.iter().any(|p| p.oin == oin)
    }

    pub fn covers_pupil(&self, pseudonym: &str) -> bool {
        self.pupils.iter().any(|p| p == pseudonym)
    }

    /// Whether two copies describe the same case (all but the state: open, closed, accepted).
    pub fn same_content(&self, other: &Case) -> bool {
        self.id == other.id
            && self.meeting_type == other.meeting_type
            && self.purpose == other.purpose
            && self.pupils == other.pupils
            && self.participants == other.participants
            && self.lead == other.lead
            && self.opened_at == other.opened_at
    }
}

/// How many case operations (open, accept, decline, share) an organisation may do in a burst.
pub const RATE_BURST: u32 = 30;

/// How fast the burst refills: one operation per this interval (30 a minute).
pub const RATE_REFILL: Duration = Duration::from_secs(2);

/// A token bucket per organisation (by OIN): [`RATE_BURST`] at once, then one per
/// [`RATE_REFILL`]. In memory; a restart refills every bucket.
#[derive(Debug)]
pub struct RateLimiter {
    burst: u32,
    refill: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(RATE_BURST, RATE_REFILL)
    }
}

impl RateLimiter {
    pub fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst,
            refill,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `oin`'s bucket; false if it is empty.
    pub fn try_take(&self, oin: &str) -> bool {
        self.try_take_at(oin, Instant::now())
    }

    fn try_take_at(&self, oin: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let burst = f64::from(self.burst);
        let bucket = buckets.entry(oin.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at);
        bucket.tokens =
            (bucket.tokens + elapsed.as_secs_f64() / self.refill.as_secs_f64()).min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("the case store failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("a stored case could not be read: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the case store could not sync to disk: {0}")]
    Sync(#[from] crate::store::StoreError),
}

/// The cases a node holds: those it leads and those shared with it.
#[derive(Clone)]
pub struct CaseStore {
    tree: sled::Tree,
    store: crate::store::Store,
}

impl CaseStore {
    pub fn open(store: &crate::store::Store) -> Result<Self, CaseError> {
        Ok(Self {
            tree: store.db().open_tree(CASES_TREE)?,
            store: store.clone(),
        })
    }

    /// Stores (or replaces) a case and makes it durable.
    pub fn put(&self, case: &Case) -> Result<(), CaseError> {
        self.tree
            .insert(case.id.as_bytes(), serde_json::to_vec(case)?)?;
        self.store.sync()?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Case>, CaseError> {
        self.tree
            .get(id.as_bytes())?
            .map(|b| serde_json::from_slice(&b).map_err(CaseError::from))
            .transpose()
    }

    pub fn list(&self, open_only: bool) -> Result<Vec<Case>, CaseError> {
        let mut out = Vec::new();
        for entry in self.tree.iter() {
            let (_, bytes) = entry?;
            let case: Case = serde_json::from_slice(&bytes)?;
            if case.open || !open_only {
                out.push(case);
            }
        }
        Ok(out)
    }
}

/// A new random case id: "case-" and 16 hex digits.
pub fn new_case_id() -> String {
    loop {
        let mut bytes = [0u8; 8];
        // SystemRandom only fails if the OS has no randomness, which ring treats as fatal
        // elsewhere.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // Never an id whose hex digits could be read as a pupil's number.
        if !crate::pseudonym::holds_pupil_id_digits(&hex) {
            return format!("case-{hex}");
        }
    }
}

/// True if the text has the shape of a case id.
pub fn is_case_id(text: &str) -> bool {
    text.strip_prefix("case-")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_round_trip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let cases = CaseStore::open(&store).unwrap();
        let lead = Party {
            oin: "1".repeat(20),
            name: "SWV".into(),
        };
        let mut case = Case {
            id: new_case_id(),
            meeting_type: "aoj-team-vo".into(),
            purpose: "passend-aanbod".into(),
            pupils: vec!["v1.AAAAAAAAAAAAAAAAAAAAAA".into()],
            participants: vec![Party {
                oin: "2".repeat(20),
                name: "GGD".into(),
            }],
            lead,
            open: true,
            opened_at: chrono::Utc::now(),
            closed_at: None,
            acceptance: Acceptance::Pending,
        };
        assert!(is_case_id(&case.id));
        cases.put(&case).unwrap();
        assert!(case.has_participant(&"2".repeat(20)));
        assert!(!case.has_participant(&"3".repeat(20)));
        case.open = false;
        cases.put(&case).unwrap();
        assert_eq!(cases.get(&case.id).unwrap().unwrap(), case);
        assert!(cases.list(true).unwrap().is_empty());
        assert_eq!(cases.list(false).unwrap().len(), 1);
    }

    #[test]
    fn a_case_stored_before_acceptance_existed_reads_as_pending() {
        let json = r#"{"id":"case-0123456789abcdef","meeting_type":"aoj-team-vo","purpose":"passend-aanbod","pupils":["v1.AAAAAAAAAAAAAAAAAAAAAA"],"participants":[],"lead":{"oin":"1","name":"SWV"},"open":true,"opened_at":"2026-01-01T00:00:00Z","closed_at":null}"#;
        let case: Case = serde_json::from_str(json).unwrap();
        assert_eq!(case.acceptance, Acceptance::Pending);
    }

    #[test]
    fn the_bucket_empties_per_organisation_and_refills() {
        let limiter = RateLimiter::new(3, Duration::from_secs(2));
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.try_take_at("a", t0)));
        assert!(!limiter.try_take_at("a", t0), "a burst of three, no more");
        assert!(
            limiter.try_take_at("b", t0),
            "another organisation has its own bucket"
        );
        assert!(!limiter.try_take_at("a", t0 + Duration::from_secs(1)));
        assert!(limiter.try_take_at("a", t0 + Duration::from_secs(3)));
        assert!(!limiter.try_take_at("a", t0 + Duration::from_secs(3)));
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| limiter.try_take_at("a", later)));
        assert!(
            !limiter.try_take_at("a", later),
            "never more than the burst"
        );
    }
}
