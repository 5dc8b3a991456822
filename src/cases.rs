//! Cases (casussen) of case meetings: which pupils (by pseudonym) and which organisations a case
//! covers, who leads it, whether it is open and whether this node's organisation accepted it.
//! Kept in the node's sled database, in a tree of their own; a case write is durable before it
//! is acknowledged. Decides nothing: the exchange checks a case against the policy and the
//! caller. Also the token bucket that bounds how fast an organisation opens, accepts or shares.
//! And the care offers (zorgaanbod) recorded in a case by the organisations that make them: who
//! may record one (the policy's `may_record_offer`), and how it stops a pupil's clock. Pupils
//! and organisations are typed ([`Pseudonym`], [`Oin`]); a case shared by a peer is stored only
//! with the policy's [`crate::policy::CaseShareGrant`].

use crate::identity::Organisation;
use crate::ids::{Oin, Pseudonym};
use crate::signal::{OfferKind, Signal};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CASES_TREE: &str = "cases";
const OFFERS_TREE: &str = "case_offers";

/// A case as every participating node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub meeting_type: String,
    pub purpose: String,
    pub pupils: Vec<Pseudonym>,
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
    pub oin: Oin,
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
    offers: sled::Tree,
    store: crate::store::Store,
}

impl CaseStore {
    pub fn open(store: &crate::store::Store) -> Result<Self, CaseError> {
        Ok(Self {
            tree: store.db().open_tree(CASES_TREE)?,
            offers: store.db().open_tree(OFFERS_TREE)?,
            store: store.clone(),
        })
    }

    /// Stores (or replaces: one offer per case, pupil and organisation, the latest) a care offer
    /// and makes it durable.
    pub fn put_offer(&self, offer: &CareOffer) -> Result<(), CaseError> {
        let key = [
            offer.case_id.as_bytes(),
            offer.pupil.as_bytes(),
            offer.by.oin.as_bytes(),
        ]
        .join(&0u8);
        self.offers.insert(key, serde_json::to_vec(offer)?)?;
        self.store.sync()?;
        Ok(())
    }

    /// The care offers that count for the clock at this node: those of cases it holds and
    /// takes part in (accepted, or of a meeting that `needs_acceptance` says needs none).
    pub fn clock_offers(
        &self,
        needs_acceptance: impl Fn(&str) -> bool,
    ) -> Result<Vec<CareOffer>, CaseError> {
        let mut out = Vec::new();
        for entry in self.offers.iter() {
            let (_, bytes) = entry?;
            let offer: CareOffer = serde_json::from_slice(&bytes)?;
            let counts = self
                .get(&offer.case_id)?
                .is_some_and(|c| match c.acceptance {
                    Acceptance::Accepted => true,
                    Acceptance::Pending => !needs_acceptance(&c.meeting_type),
                    Acceptance::Declined => false,
                });
            if counts {
                out.push(offer);
            }
        }
        Ok(out)
    }

    /// Stores (or replaces) a case and makes it durable.
    pub fn put(&self, case: &Case) -> Result<(), CaseError> {
        self.tree
            .insert(case.id.as_bytes(), serde_json::to_vec(case)?)?;
        self.store.sync()?;
        Ok(())
    }

    /// Stores (or replaces) a case a peer's lead shared with this node, as the policy granted
    /// it, with this node's `acceptance`, and makes it durable.
    pub fn put_shared(
        &self,
        grant: crate::policy::CaseShareGrant,
        acceptance: Acceptance,
    ) -> Result<(), CaseError> {
        let case = Case {
            acceptance,
            ..grant.into_case()
        };
        self.put(&case)
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

/// A care offer (zorgaanbod) for a pupil of a case, recorded by the organisation that makes it
/// (WIJ, jeugdhulp). It stops the pupil's clock by the rules of an offer on a signal
/// ([`crate::clock::offer_stops_clock`]): a kind, a place actually available, the parents'
/// agreement; a waiting-list offer (no place) does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareOffer {
    pub case_id: String,
    /// The pupil's pseudonym.
    pub pupil: Pseudonym,
    pub kind: OfferKind,
    /// The day the offer was made.
    pub offered_on: NaiveDate,
    /// The first day the place is actually available; None: waiting list.
    pub place_from: Option<NaiveDate>,
    pub parents_agreed: bool,
    /// The organisation that recorded it.
    pub by: Party,
}

impl CareOffer {
    /// The first day this offer stops the clock, if it ever does.
    pub fn stops_clock_from(&self) -> Option<NaiveDate> {
        crate::clock::offer_stop_day(
            Some(self.offered_on),
            Some(self.kind),
            self.place_from,
            self.parents_agreed,
        )
    }

    /// What the audit log says of it (no pupil id; the pupil is in the entry's pseudonyms).
    pub fn describe(&self) -> String {
        let place = match self.place_from {
            Some(day) => format!("place from {day}"),
            None => "no place yet (waiting list): does not stop the clock".to_owned(),
        };
        let parents = if self.parents_agreed {
            "agreed with the parents"
        } else {
            "not (yet) agreed with the parents: does not stop the clock"
        };
        format!(
            "care offer {} made {} by {}; {place}; {parents}",
            self.kind.code(),
            self.offered_on,
            self.by.name
        )
    }
}

/// Why a care offer is refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferRefusal {
    /// The offer itself is wrong (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// The policy does not let this organisation record it (PERMISSION_DENIED).
    #[error("{0}")]
    Denied(String),
    /// The case does not allow it now: closed, declined, not accepted (FAILED_PRECONDITION).
    #[error("{0}")]
    State(String),
    /// The case is not held at this node (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
}

/// A care offer refused, or the case store failing.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error(transparent)]
    Refused(#[from] OfferRefusal),
    #[error(transparent)]
    Store(#[from] CaseError),
}

/// The case of a care offer as this node holds it.
fn case_of(cases: &CaseStore, offer: &CareOffer) -> Result<Case, OfferError> {
    cases.get(&offer.case_id)?.ok_or_else(|| {
        OfferRefusal::NotFound(format!("case {} is not known at this node", offer.case_id)).into()
    })
}

/// Checks and stores a care offer this node's own organisation records ([`check_own_offer`]);
/// returns its case. The caller audits before it tells the other participants.
pub fn record_own_offer(
    policy: Option<&crate::policy::Policy>,
    cases: &CaseStore,
    own_oin: &str,
    offer: &CareOffer,
) -> Result<Case, OfferError> {
    let policy = policy
        .ok_or_else(|| OfferRefusal::State("this node has no covenant policy loaded".to_owned()))?;
    let case = case_of(cases, offer)?;
    check_own_offer(policy, &case, own_oin, offer)?;
    cases.put_offer(offer)?;
    Ok(case)
}

/// Checks and stores a care offer that the participant `caller_oin` tells this node of
/// ([`check_offer`] against the case as this node holds it); returns its case.
pub fn take_shared_offer(
    policy: Option<&crate::policy::Policy>,
    cases: &CaseStore,
    caller_oin: &str,
    offer: &CareOffer,
) -> Result<Case, OfferError> {
    let policy = policy
        .ok_or_else(|| OfferRefusal::State("this node has no covenant policy loaded".to_owned()))?;
    if offer.by.oin != caller_oin {
        return Err(OfferRefusal::Denied(
            "offer.recorded_by_oin: a node tells only of offers its own organisation recorded"
                .to_owned(),
        )
        .into());
    }
    let case = case_of(cases, offer)?;
    if case.acceptance == Acceptance::Declined {
        return Err(OfferRefusal::State(format!(
            "case {} was declined by this organisation",
            case.id
        ))
        .into());
    }
    check_offer(policy, &case, caller_oin, offer)?;
    cases.put_offer(offer)?;
    Ok(case)
}

/// Checks a care offer that the organisation `maker_oin` records (or, at another node, tells)
/// in `case` under `policy`: the case is open, the maker takes part and its org type may
/// record offers in the meeting, the pupil is the case's, the offer is care. Acceptance is the
/// caller's own to check (each node decides on its own organisation).
pub fn check_offer(
    policy: &crate::policy::Policy,
    case: &Case,
    maker_oin: &str,
    offer: &CareOffer,
) -> Result<(), OfferRefusal> {
    if offer.case_id != case.id {
        return Err(OfferRefusal::Invalid(format!(
            "offer.case_id: the offer names case {}, not {}",
            offer.case_id, case.id
        )));
    }
    if !case.open {
        return Err(OfferRefusal::State(format!("case {} is closed", case.id)));
    }
    if offer.kind == OfferKind::Onderwijs {
        return Err(OfferRefusal::Invalid(
            "offer.kind: a care offer is ZORG or ONDERWIJS_EN_ZORG; an education offer alone is recorded by the signal's owner, on the signal".to_owned(),
        ));
    }
    if !case.covers_pupil(&offer.pupil) {
        return Err(OfferRefusal::Invalid(format!(
            "offer.pupil_pseudonym: not a pupil of case {}",
            case.id
        )));
    }
    if !case.has_participant(maker_oin) {
        return Err(OfferRefusal::Denied(format!(
            "the recording organisation takes no part in case {}",
            case.id
        )));
    }
    let org_type = policy
        .party_by_oin(maker_oin)
        .map(|p| p.org_type)
        .ok_or_else(|| {
            OfferRefusal::Denied("the recording organisation is not a party of the covenant".into())
        })?;
    let meeting = policy.meeting(&case.meeting_type).ok_or_else(|| {
        OfferRefusal::Denied(format!(
            "case {}: meeting {} is not in the policy",
            case.id, case.meeting_type
        ))
    })?;
    if !meeting.may_record_offer(org_type) {
        return Err(OfferRefusal::Denied(format!(
            "meeting {} does not let a {} record a care offer (may_record_offer)",
            meeting.id,
            org_type.code()
        )));
    }
    Ok(())
}

/// Checks a care offer this node's own organisation records in `case`: as [`check_offer`], and
/// the organisation has accepted the case (or the meeting needs no acceptance).
pub fn check_own_offer(
    policy: &crate::policy::Policy,
    case: &Case,
    own_oin: &str,
    offer: &CareOffer,
) -> Result<(), OfferRefusal> {
    check_offer(policy, case, own_oin, offer)?;
    let needs = policy
        .meeting(&case.meeting_type)
        .is_none_or(|m| m.needs_acceptance);
    match case.acceptance {
        Acceptance::Accepted => Ok(()),
        Acceptance::Pending if !needs => Ok(()),
        Acceptance::Pending => Err(OfferRefusal::State(format!(
            "case {} is not accepted by this organisation yet (pactgate case accept)",
            case.id
        ))),
        Acceptance::Declined => Err(OfferRefusal::State(format!(
            "case {} was declined by this organisation",
            case.id
        ))),
    }
}

/// Lets care offers stop the clock: each offer is put on the signals of its pupil whose own
/// offer stops the clock later or never (the child's clock stops at the earliest offer that
/// stops it, whoever recorded it). Offers that never stop the clock change nothing.
pub fn apply_offers(signals: &mut [(String, Signal)], offers: &[CareOffer]) {
    let mut by_pupil: HashMap<&str, (NaiveDate, &CareOffer)> = HashMap::new();
    for o in offers {
        let Some(from) = o.stops_clock_from() else {
            continue;
        };
        let slot = by_pupil.entry(&o.pupil).or_insert((from, o));
        if from < slot.0 {
            *slot = (from, o);
        }
    }
    if by_pupil.is_empty() {
        return;
    }
    for (_, s) in signals.iter_mut() {
        let Some(&(from, o)) = by_pupil.get(s.pupil_pseudonym.as_str()) else {
            continue;
        };
        if crate::clock::signal_offer_stop_day(s).is_some_and(|own| own <= from) {
            continue;
        }
        s.offer_date = Some(o.offered_on);
        s.offer_kind = Some(o.kind);
        s.offer_place_from = o.place_from;
        s.offer_parents_agreed = o.parents_agreed;
    }
}

/// Applies the care offers that count at this node ([`CaseStore::clock_offers`]) to the
/// signals its clock counts ([`apply_offers`]).
pub fn apply_clock_offers(
    cases: &CaseStore,
    policy: Option<&crate::policy::Policy>,
    signals: &mut [(String, Signal)],
) -> Result<(), CaseError> {
    let offers = cases.clock_offers(|meeting| {
        policy
            .and_then(|p| p.meeting(meeting))
            .is_none_or(|m| m.needs_acceptance)
    })?;
    apply_offers(signals, &offers);
    Ok(())
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

    /// The pseudonym of test pupil `tag` ("p1").
    fn pseudonym(tag: &str) -> String {
        format!("v1.{tag:A<22}")
    }

    fn lrv(id: &str, pupil: &str) -> Signal {
        Signal {
            source_record_id: id.into(),
            pupil_pseudonym: pseudonym(pupil).parse().unwrap(),
            category: crate::signal::Category::Lrv,
            sector: Some(crate::signal::Sector::Vo),
            residence_municipality: "GM0014".parse().unwrap(),
            school: Some("20VA01".parse().unwrap()),
            absent_since: day(2025, 10, 6),
            status: crate::signal::Status::Open,
            offer_date: None,
            age: 13,
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

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn offer(pupil: &str, place_from: Option<NaiveDate>, agreed: bool) -> CareOffer {
        CareOffer {
            case_id: "case-0123456789abcdef".into(),
            pupil: pseudonym(pupil).parse().unwrap(),
            kind: OfferKind::Zorg,
            offered_on: day(2026, 1, 10),
            place_from,
            parents_agreed: agreed,
            by: Party {
                oin: "3".repeat(20).parse().unwrap(),
                name: "WIJ".into(),
            },
        }
    }

    #[test]
    fn a_care_offer_stops_the_clock_only_with_a_place_and_the_parents_agreement() {
        let at = day(2026, 2, 1);
        let stopped = |offers: &[CareOffer]| {
            let mut signals = vec![("self".to_owned(), lrv("r1", "p1"))];
            apply_offers(&mut signals, offers);
            crate::clock::offer_stops_clock(&signals[0].1, at)
        };
        assert!(!stopped(&[]));
        assert!(stopped(&[offer("p1", Some(day(2026, 1, 12)), true)]));
        assert!(!stopped(&[offer("p1", None, true)]), "a waiting list");
        assert!(!stopped(&[offer("p1", Some(day(2026, 1, 12)), false)]));
        assert!(
            !stopped(&[offer("p1", Some(day(2026, 2, 2)), true)]),
            "place later"
        );
        assert!(
            !stopped(&[offer("p2", Some(day(2026, 1, 12)), true)]),
            "another child"
        );
        // Of two offers, the one that stops the clock first.
        let mut signals = vec![("self".to_owned(), lrv("r1", "p1"))];
        apply_offers(
            &mut signals,
            &[
                offer("p1", Some(day(2026, 1, 20)), true),
                offer("p1", Some(day(2026, 1, 12)), true),
            ],
        );
        assert_eq!(signals[0].1.offer_place_from, Some(day(2026, 1, 12)));
    }

    #[test]
    fn a_signals_own_earlier_offer_is_kept() {
        let mut own = lrv("r1", "p1");
        own.offer_date = Some(day(2025, 12, 1));
        own.offer_kind = Some(OfferKind::Onderwijs);
        own.offer_place_from = Some(day(2025, 12, 8));
        own.offer_parents_agreed = true;
        let mut signals = vec![("self".to_owned(), own.clone())];
        apply_offers(&mut signals, &[offer("p1", Some(day(2026, 1, 12)), true)]);
        assert_eq!(signals[0].1, own);
    }

    /// A case and a care offer as stores written before the ids were types hold them (the
    /// JSON of `String` fields) read back and are written again byte for byte.
    #[test]
    fn stored_cases_and_offers_keep_their_bytes() {
        let case = concat!(
            r#"{"id":"case-0123456789abcdef","meeting_type":"aoj-team-vo","#,
            r#""purpose":"passend-aanbod","pupils":["v1.AAAAAAAAAAAAAAAAAAAAAA"],"#,
            r#""participants":[{"oin":"00000001001234567000","name":"GGD"}],"#,
            r#""lead":{"oin":"00000001009876543000","name":"SWV"},"open":true,"#,
            r#""opened_at":"2026-09-01T08:00:00Z","closed_at":null,"acceptance":"pending"}"#
        );
        let read: Case = serde_json::from_str(case).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), case);
        let offer = concat!(
            r#"{"case_id":"case-0123456789abcdef","pupil":"v1.AAAAAAAAAAAAAAAAAAAAAA","#,
            r#""kind":"Zorg","offered_on":"2026-01-10","place_from":null,"#,
            r#""parents_agreed":true,"by":{"oin":"00000001001234567000","name":"WIJ"}}"#
        );
        let read: CareOffer = serde_json::from_str(offer).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), offer);
        // A stored case whose pupil is not a pseudonym no longer reads: it was never written.
        let bad = case.replace("v1.AAAAAAAAAAAAAAAAAAAAAA", "123456782");
        assert!(serde_json::from_str::<Case>(&bad).is_err());
    }

    #[test]
    fn case_round_trip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let cases = CaseStore::open(&store).unwrap();
        let lead = Party {
            oin: "1".repeat(20).parse().unwrap(),
            name: "SWV".into(),
        };
        let mut case = Case {
            id: new_case_id(),
            meeting_type: "aoj-team-vo".into(),
            purpose: "passend-aanbod".into(),
            pupils: vec!["v1.AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap()],
            participants: vec![Party {
                oin: "2".repeat(20).parse().unwrap(),
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
        let json = r#"{"id":"case-0123456789abcdef","meeting_type":"aoj-team-vo","purpose":"passend-aanbod","pupils":["v1.AAAAAAAAAAAAAAAAAAAAAA"],"participants":[],"lead":{"oin":"00000001009876543000","name":"SWV"},"open":true,"opened_at":"2026-01-01T00:00:00Z","closed_at":null}"#;
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
