//! Cases (casussen) of case meetings: which pupils (by pseudonym) and which organisations a case
//! covers, who leads it, and whether it is open. Kept in the node's sled database, in a tree of
//! their own; a case write is durable before it is acknowledged. Decides nothing: the exchange
//! checks a case against the policy and the caller.

use crate::identity::Organisation;
use serde::{Deserialize, Serialize};

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
            oin: o.oin.clone(),
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
}
