//! The audit entry, its canonical byte encoding and the FG's filter.
//! Pure data: never stores, never logs; `Debug` leaves the pupil pseudonyms out.
//! Invariant: the leaf hash is over exactly `Entry::canonical_bytes`, which begin `{"seq":<seq>,`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What was done. Serialized in snake_case; the names are part of the canonical encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Ingest,
    Query,
    Disclose,
    Receive,
    CaseOpen,
    CaseClose,
    ShareCase,
    PolicyLoad,
    ConfigChange,
    Purge,
    FederatedQuery,
    AuditAccess,
    CaseAccept,
    CaseDecline,
    Backup,
    /// A batch evaluated (or refused) by the pseudonymisation service.
    Pseudonymise,
    /// A care offer recorded in a case, or received from a participant (or refused).
    CaseOffer,
}

/// The policy's decision for this processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

/// An entry as the caller hands it in. The log adds `seq`, `time` and `node_oin`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    /// W3C trace id: 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// W3C span id: 16 lowercase hex digits, not all zero.
    pub span_id: String,
    /// OIN of the acting organisation, from its certificate.
    pub actor_oin: String,
    /// Name of the acting organisation, from its certificate.
    pub actor_name: String,
    /// The acting person or system, as the caller states it.
    pub actor: String,
    pub action: Action,
    /// Routine flow id, or empty.
    pub flow: String,
    /// Case meeting type (Bijlage 3), or empty.
    pub meeting_type: String,
    pub case_id: String,
    /// Reference into the register of processing activities.
    pub processing_activity: String,
    pub purpose: String,
    pub legal_basis: String,
    /// Pupil pseudonyms only; never a BSN or onderwijsnummer.
    pub pupils: Vec<String>,
    pub data_categories: Vec<String>,
    pub decision: Decision,
    pub reason: String,
    pub policy_version: String,
    /// Records ingested, disclosed or received.
    pub count: u64,
    /// W3C span id of the caller's hop (from its traceparent), or empty.
    pub parent_span_id: String,
}

/// One record of the audit log.
///
/// # Canonical encoding
/// `serde_json::to_vec` of this struct: fields in declaration order, no maps, no floats,
/// enums as snake_case strings, `time` as RFC 3339 UTC truncated to microseconds
/// (`2024-11-01T09:30:00.123456Z`; the fraction in 3 or 6 digits, none when zero), strings
/// escaped by serde_json, `parent_span_id` only when not empty. The bytes are made once
/// at append, stored as they are, and hashed as they are; verification never re-encodes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub trace_id: String,
    pub span_id: String,
    pub node_oin: String,
    pub actor_oin: String,
    pub actor_name: String,
    pub actor: String,
    pub action: Action,
    pub flow: String,
    pub meeting_type: String,
    pub case_id: String,
    pub processing_activity: String,
    pub purpose: String,
    pub legal_basis: String,
    pub pupils: Vec<String>,
    pub data_categories: Vec<String>,
    pub decision: Decision,
    pub reason: String,
    pub policy_version: String,
    pub count: u64,
    /// The caller's span (from its traceparent); left out of the encoding when empty, so entries
    /// written before it existed keep their bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_span_id: String,
}

/// Why an entry cannot be appended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("trace id must be 32 lowercase hex digits, not all zero")]
    TraceId,
    #[error("span id must be 16 lowercase hex digits, not all zero")]
    SpanId,
    #[error("the entry could not be encoded")]
    Encode,
}

impl NewEntry {
    /// An entry with the request's trace, the acting organisation and the stated actor (clipped
    /// to 200 characters); the caller fills in what else it knows. Allowed unless set otherwise.
    pub fn new(
        trace: &crate::trace::TraceContext,
        org: &crate::identity::Organisation,
        actor: &str,
        action: Action,
        policy_version: &str,
    ) -> Self {
        Self {
            trace_id: trace.trace_id.clone(),
            span_id: trace.span_id.clone(),
            actor_oin: org.oin.to_string(),
            actor_name: org.name.clone(),
            actor: actor.chars().take(200).collect(),
            action,
            flow: String::new(),
            meeting_type: String::new(),
            case_id: String::new(),
            processing_activity: String::new(),
            purpose: String::new(),
            legal_basis: String::new(),
            pupils: Vec::new(),
            data_categories: Vec::new(),
            decision: Decision::Allow,
            reason: String::new(),
            policy_version: policy_version.to_owned(),
            count: 0,
            parent_span_id: trace.parent_span_id.clone().unwrap_or_default(),
        }
    }

    /// Checks the W3C ids; everything else is free text chosen by the caller.
    pub fn validate(&self) -> Result<(), EntryError> {
        if !is_w3c_id(&self.trace_id, 32) {
            return Err(EntryError::TraceId);
        }
        if !is_w3c_id(&self.span_id, 16) {
            return Err(EntryError::SpanId);
        }
        if !self.parent_span_id.is_empty() && !is_w3c_id(&self.parent_span_id, 16) {
            return Err(EntryError::SpanId);
        }
        Ok(())
    }

    /// The entry with every id-like number withheld from the text callers can put in it (the
    /// stated actor, the organisation name, claimed purpose, basis, flow, meeting and data
    /// categories), OINs from the node's own reasons kept, an actor OIN kept only if it is one,
    /// and a case id kept only if it has a case id's shape and carries no pupil id: no raw pupil
    /// id reaches the log, whatever a caller writes where, in whatever script or with whatever
    /// separators. Pupils are pseudonyms and trace ids are checked by `validate`.
    pub(crate) fn scrubbed(mut self) -> Self {
        use crate::pseudonym::{withhold_ids, withhold_ids_keeping_oins};
        let scrub = |t: &mut String| {
            if let std::borrow::Cow::Owned(clean) = withhold_ids(t) {
                *t = clean;
            }
        };
        for text in [
            &mut self.actor,
            &mut self.actor_name,
            &mut self.flow,
            &mut self.meeting_type,
            &mut self.processing_activity,
            &mut self.purpose,
            &mut self.legal_basis,
        ] {
            scrub(text);
        }
        self.data_categories.iter_mut().for_each(scrub);
        if let std::borrow::Cow::Owned(clean) = withhold_ids_keeping_oins(&self.reason) {
            self.reason = clean;
        }
        if !crate::pseudonym::is_oin(&self.actor_oin) {
            self.actor_oin = "<malformed>".to_owned();
        }
        if !self.case_id.is_empty()
            && (!crate::cases::is_case_id(&self.case_id)
                || crate::pseudonym::holds_pupil_id_digits(&self.case_id))
        {
            self.case_id = "<malformed>".to_owned();
        }
        self
    }

    /// Completes the entry with what only the log knows.
    pub(crate) fn into_entry(self, seq: u64, time: DateTime<Utc>, node_oin: &str) -> Entry {
        Entry {
            seq,
            time,
            trace_id: self.trace_id,
            span_id: self.span_id,
            node_oin: node_oin.to_owned(),
            actor_oin: self.actor_oin,
            actor_name: self.actor_name,
            actor: self.actor,
            action: self.action,
            flow: self.flow,
            meeting_type: self.meeting_type,
            case_id: self.case_id,
            processing_activity: self.processing_activity,
            purpose: self.purpose,
            legal_basis: self.legal_basis,
            pupils: self.pupils,
            data_categories: self.data_categories,
            decision: self.decision,
            reason: self.reason,
            policy_version: self.policy_version,
            count: self.count,
            parent_span_id: self.parent_span_id,
        }
    }
}

impl Entry {
    /// The canonical encoding (see the type's docs).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EntryError> {
        serde_json::to_vec(self).map_err(|_| EntryError::Encode)
    }

    /// Parses stored canonical bytes.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EntryError> {
        serde_json::from_slice(bytes).map_err(|_| EntryError::Encode)
    }
}

/// Reads the sequence number from the head of canonical bytes without parsing the rest.
/// Verification uses this to stay fast; `None` if the bytes do not start `{"seq":<digits>,`.
pub fn seq_of(bytes: &[u8]) -> Option<u64> {
    let rest = bytes.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || rest.get(digits) != Some(&b',') {
        return None;
    }
    let text = std::str::from_utf8(&rest[..digits]).ok()?;
    if digits > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

fn is_w3c_id(id: &str, len: usize) -> bool {
    id.len() == len
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id.bytes().any(|b| b != b'0')
}

impl fmt::Debug for Entry {
    /// Leaves the pupil pseudonyms out; shows how many there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("seq", &self.seq)
            .field("time", &self.time)
            .field("trace_id", &self.trace_id)
            .field("actor_oin", &self.actor_oin)
            .field("action", &self.action)
            .field("case_id", &self.case_id)
            .field("purpose", &self.purpose)
            .field("pupils", &self.pupils.len())
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for NewEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEntry")
            .field("trace_id", &self.trace_id)
            .field("actor_oin", &self.actor_oin)
            .field("action", &self.action)
            .field("pupils", &self.pupils.len())
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

/// What the FG asks for; every set field must match. `until` is exclusive.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub pupil: Option<String>,
    pub actor_oin: Option<String>,
    pub case_id: Option<String>,
    pub purpose: Option<String>,
    pub decision: Option<Decision>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn matches(&self, e: &Entry) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.actor_oin, &e.actor_oin)
            && eq(&self.case_id, &e.case_id)
            && eq(&self.purpose, &e.purpose)
            && self.decision.is_none_or(|d| d == e.decision)
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && self
                .pupil
                .as_deref()
                .is_none_or(|p| e.pupils.iter().any(|q| q == p))
    }
}

impl fmt::Debug for Filter {
    /// Says whether a pupil is filtered on, never which.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("pupil", &self.pupil.as_ref().map(|_| "<set>"))
            .field("actor_oin", &self.actor_oin)
            .field("case_id", &self.case_id)
            .field("purpose", &self.purpose)
            .field("decision", &self.decision)
            .field("since", &self.since)
            .field("until", &self.until)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(i: u64) -> NewEntry {
        NewEntry {
            trace_id: format!("{:032x}", i + 1),
            span_id: format!("{:016x}", i + 1),
            actor_oin: "00000001001234567000".into(),
            actor_name: "Gemeente Groningen".into(),
            actor: "leerplichtambtenaar j.jansen".into(),
            action: if i % 2 == 0 {
                Action::Disclose
            } else {
                Action::Query
            },
            flow: "verzuimmelding".into(),
            meeting_type: "AOJ-team".into(),
            case_id: format!("case-{}", i % 5),
            processing_activity: "VA-LP-003".into(),
            purpose: "toezicht leerplicht".into(),
            legal_basis: "Leerplichtwet 1969 art. 16".into(),
            pupils: vec![format!("p{:x}", i % 7)],
            data_categories: vec!["verzuim".into()],
            decision: if i % 3 == 0 {
                Decision::Deny
            } else {
                Decision::Allow
            },
            reason: "rule lp-1".into(),
            policy_version: "2024.2".into(),
            count: i,
            parent_span_id: String::new(),
        }
    }

    #[test]
    fn canonical_bytes_start_with_seq_and_round_trip() {
        let t = DateTime::parse_from_rfc3339("2024-11-01T09:30:00.123456Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        let e = sample(3).into_entry(42, t, "00000001001234567001");
        let bytes = e.canonical_bytes().expect("encode");
        assert!(bytes.starts_with(b"{\"seq\":42,\"time\":\"2024-11-01T09:30:00.123456Z\""));
        assert_eq!(seq_of(&bytes), Some(42));
        assert_eq!(Entry::from_canonical(&bytes).expect("decode"), e);
        assert_eq!(e.canonical_bytes().expect("again"), bytes);
    }

    #[test]
    fn seq_of_rejects_odd_heads() {
        assert_eq!(seq_of(b"{\"seq\":0,"), Some(0));
        assert_eq!(seq_of(b"{\"seq\":01,"), None);
        assert_eq!(seq_of(b"{\"seq\":1}"), None);
        assert_eq!(seq_of(b"{\"seq\":,"), None);
        assert_eq!(seq_of(b"{\"time\":1,"), None);
        assert_eq!(seq_of(b"{\"seq\":99999999999999999999,"), None);
    }

    #[test]
    fn ids_are_checked() {
        let mut e = sample(1);
        assert_eq!(e.validate(), Ok(()));
        e.trace_id = "0".repeat(32);
        assert_eq!(e.validate(), Err(EntryError::TraceId));
        e = sample(1);
        e.span_id = "ABCDEF0123456789".into();
        assert_eq!(e.validate(), Err(EntryError::SpanId));
    }

    #[test]
    fn debug_leaves_pupils_out() {
        let e = sample(1).into_entry(0, Utc::now(), "n");
        assert!(!format!("{e:?}").contains("p1"));
        let f = Filter {
            pupil: Some("secret-pseudonym".into()),
            ..Filter::default()
        };
        assert!(!format!("{f:?}").contains("secret"));
    }
}
