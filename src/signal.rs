//! The pupil signal as the node keeps it, and the checks a raw record must pass to become one.
//! Holds no raw pupil id: a checked record keeps its id only until the pseudonymisation service
//! has given the pseudonym (a batch at a time), then drops it.

use crate::ids::{MunicipalityCode, Pseudonym, SchoolCode};
use crate::pseudonym::PupilId;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a signal is about (see the proto for each meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Category {
    Lrv,
    Av,
    Vrijstelling5a,
    Vrijstelling5b,
    Vrijstelling5c,
    LangdurigZiek,
    Schorsing,
    Verwijdering,
    Verzuim,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Lrv,
        Category::Av,
        Category::Vrijstelling5a,
        Category::Vrijstelling5b,
        Category::Vrijstelling5c,
        Category::LangdurigZiek,
        Category::Schorsing,
        Category::Verwijdering,
        Category::Verzuim,
    ];

    /// The short code as partners write it (`LRV`, `VRIJSTELLING_5A`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Category::Lrv => "LRV",
            Category::Av => "AV",
            Category::Vrijstelling5a => "VRIJSTELLING_5A",
            Category::Vrijstelling5b => "VRIJSTELLING_5B",
            Category::Vrijstelling5c => "VRIJSTELLING_5C",
            Category::LangdurigZiek => "LANGDURIG_ZIEK",
            Category::Schorsing => "SCHORSING",
            Category::Verwijdering => "VERWIJDERING",
            Category::Verzuim => "VERZUIM",
        }
    }
}

/// The sector of the pupil's (last) school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sector {
    Po,
    Sbo,
    So,
    Vo,
    Vso,
    Pro,
    Mbo,
}

impl Sector {
    pub const ALL: [Sector; 7] = [
        Sector::Po,
        Sector::Sbo,
        Sector::So,
        Sector::Vo,
        Sector::Vso,
        Sector::Pro,
        Sector::Mbo,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Sector::Po => "PO",
            Sector::Sbo => "SBO",
            Sector::So => "SO",
            Sector::Vo => "VO",
            Sector::Vso => "VSO",
            Sector::Pro => "PRO",
            Sector::Mbo => "MBO",
        }
    }
}

/// Where a signal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    Open,
    Aanbod,
    Teruggeleid,
    Gesloten,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Aanbod,
        Status::Teruggeleid,
        Status::Gesloten,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Status::Open => "OPEN",
            Status::Aanbod => "AANBOD",
            Status::Teruggeleid => "TERUGGELEID",
            Status::Gesloten => "GESLOTEN",
        }
    }
}

/// The term of an exemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExemptionTerm {
    Temporary,
    Permanent,
}

/// What an offer (aanbod) holds out: G4 "een passend aanbod van zorg en/of onderwijs" (`004`
/// §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OfferKind {
    Onderwijs,
    Zorg,
    OnderwijsEnZorg,
}

impl OfferKind {
    pub fn code(self) -> &'static str {
        match self {
            OfferKind::Onderwijs => "ONDERWIJS",
            OfferKind::Zorg => "ZORG",
            OfferKind::OnderwijsEnZorg => "ONDERWIJS_EN_ZORG",
        }
    }
}

/// A stored signal: the pupil appears only by pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub source_record_id: String,
    pub pupil_pseudonym: Pseudonym,
    pub category: Category,
    /// None only where the category allows a child without school history (AV, 5a).
    pub sector: Option<Sector>,
    pub residence_municipality: MunicipalityCode,
    /// None only where the category allows a child without school history (AV, 5a). Stored as
    /// the code, or "" for none.
    #[serde(with = "crate::ids::school_or_empty")]
    pub school: Option<SchoolCode>,
    pub absent_since: NaiveDate,
    pub status: Status,
    pub offer_date: Option<NaiveDate>,
    pub age: u32,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub address_under_investigation: bool,
    #[serde(default)]
    pub exemption_5c_requested: bool,
    #[serde(default)]
    pub awaiting_mbo_intake: bool,
    #[serde(default)]
    pub exemption_term: Option<ExemptionTerm>,
    #[serde(default)]
    pub exemption_end: Option<NaiveDate>,
    #[serde(default)]
    pub closed_on: Option<NaiveDate>,
    /// The day `age` was true; None: the day the signal was stored (`updated_at`).
    #[serde(default)]
    pub age_on: Option<NaiveDate>,
    /// What the offer holds out; an offer without it does not stop the clock.
    #[serde(default)]
    pub offer_kind: Option<OfferKind>,
    /// The first day the offered place is actually available; None: no place yet (waiting list).
    #[serde(default)]
    pub offer_place_from: Option<NaiveDate>,
    /// The offer was agreed with the parents (and the child).
    #[serde(default)]
    pub offer_parents_agreed: bool,
}

/// A record as it arrives, before any check. Enums are already mapped by the gRPC layer (an
/// unknown or unspecified value arrives as `Err` with its reason). Its `Debug` hides `pupil_id`.
pub struct RawSignal {
    pub source_record_id: String,
    pub pupil_id: zeroize::Zeroizing<String>,
    pub category: Result<Category, String>,
    pub sector: Result<Sector, String>,
    pub residence_municipality: String,
    pub school: String,
    pub absent_since: String,
    pub status: Result<Status, String>,
    pub offer_date: String,
    pub age: u32,
    pub address_under_investigation: bool,
    pub exemption_5c_requested: bool,
    pub awaiting_mbo_intake: bool,
    /// `Ok(None)`: not given; `Err`: an unknown value.
    pub exemption_term: Result<Option<ExemptionTerm>, String>,
    pub exemption_end: String,
    pub closed_on: String,
    pub age_on: String,
    /// `Ok(None)`: not given; `Err`: an unknown value.
    pub offer_kind: Result<Option<OfferKind>, String>,
    pub offer_place_from: String,
    pub offer_parents_agreed: bool,
}

impl fmt::Debug for RawSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSignal")
            .field("source_record_id", &self.source_record_id)
            .field("pupil_id", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One refused field: which and why, in words a person understands, never with a pupil id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl FieldError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

/// The longest accepted `source_record_id`.
pub const MAX_RECORD_ID_LEN: usize = 128;
/// Ages accepted: from pre-school to the end of RMC's reach.
pub const AGE_RANGE: std::ops::RangeInclusive<u32> = 3..=23;

/// The earliest `absent_since` a node accepts when its counting rules set none
/// (`min_absent_since` in policies/counting.toml).
pub const DEFAULT_MIN_ABSENT_SINCE: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(day) => day,
    None => NaiveDate::MIN,
};

/// A record that passed every check, waiting for its pupil's pseudonym. Its `Debug` hides the
/// pupil id, which is wiped when [`Validated::pseudonymised`] drops it.
pub struct Validated {
    pub pupil: PupilId,
    signal: Signal,
}

impl fmt::Debug for Validated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validated")
            .field("source_record_id", &self.signal.source_record_id)
            .field("pupil", &self.pupil)
            .finish_non_exhaustive()
    }
}

impl Validated {
    /// The signal with its pupil's pseudonym; the pupil id is dropped (and wiped).
    pub fn pseudonymised(self, pupil_pseudonym: Pseudonym) -> Signal {
        Signal {
            pupil_pseudonym,
            ..self.signal
        }
    }
}

/// Checks every field of a raw record. The first failing field is reported; a record either
/// passes whole or not at all. The pseudonym is filled in afterwards, for a batch of records at
/// once ([`Validated::pseudonymised`]), so only records that pass cost an evaluation. The
/// default floor for `absent_since`; see [`validate_within`].
pub fn validate(
    raw: RawSignal,
    today: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Validated, FieldError> {
    validate_within(raw, DEFAULT_MIN_ABSENT_SINCE, today, now)
}

/// Checks every field of a raw record; `absent_since` must lie between `floor` and `today`. The
/// first failing field is reported; a record either passes whole or not at all.
pub fn validate_within(
    raw: RawSignal,
    floor: NaiveDate,
    today: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Validated, FieldError> {
    let source_record_id = check_record_id(&raw.source_record_id)?;
    let pupil =
        PupilId::parse(&raw.pupil_id).map_err(|e| FieldError::new("pupil_id", e.to_string()))?;
    if contains_digits_of(&raw.source_record_id, raw.pupil_id.trim()) {
        return Err(FieldError::new(
            "source_record_id",
            "contains the digits of the pupil_id; use an identifier that does not reveal a pupil",
        ));
    }
    let category = raw
        .category
        .clone()
        .map_err(|r| FieldError::new("category", r))?;
    let sector = check_sector(&raw.sector, category)?;
    let residence_municipality = check_municipality(&raw.residence_municipality)?;
    let school = check_school(&raw.school, category)?;
    let absent_since = parse_date("absent_since", &raw.absent_since)?;
    if absent_since < floor {
        return Err(FieldError::new(
            "absent_since",
            format!(
                "{absent_since} is before {floor}, the earliest date the counting rules accept \
                 (min_absent_since)"
            ),
        ));
    }
    if absent_since > today {
        return Err(FieldError::new(
            "absent_since",
            format!("{absent_since} is in the future"),
        ));
    }
    let status = raw
        .status
        .clone()
        .map_err(|r| FieldError::new("status", r))?;
    let offer_date = check_offer(&raw.offer_date, status, absent_since, today)?;
    if !AGE_RANGE.contains(&raw.age) {
        return Err(FieldError::new(
            "age",
            format!(
                "{} is outside {}-{} years",
                shown_number(raw.age),
                AGE_RANGE.start(),
                AGE_RANGE.end()
            ),
        ));
    }
    let details = check_details(&raw, category, status, absent_since, today)?;
    let offer = check_offer_details(&raw, offer_date)?;
    let age_on = match raw.age_on.as_str() {
        "" => None,
        text => Some(parse_date("age_on", text)?),
    };
    if age_on.is_some_and(|d| d > today) {
        return Err(FieldError::new("age_on", "is in the future"));
    }
    let signal = Signal {
        source_record_id,
        // Replaced by `Validated::pseudonymised` before the signal leaves the `Validated`.
        pupil_pseudonym: Pseudonym::stand_in(),
        category,
        sector,
        residence_municipality,
        school,
        absent_since,
        status,
        offer_date,
        age: raw.age,
        updated_at: now,
        address_under_investigation: raw.address_under_investigation,
        exemption_5c_requested: raw.exemption_5c_requested,
        awaiting_mbo_intake: raw.awaiting_mbo_intake,
        exemption_term: details.exemption_term,
        exemption_end: details.exemption_end,
        closed_on: details.closed_on,
        age_on,
        offer_kind: offer.kind,
        offer_place_from: offer.place_from,
        offer_parents_agreed: raw.offer_parents_agreed,
    };
    Ok(Validated { pupil, signal })
}

/// Categories a child without any school history can have: AV (enrolled nowhere) and an
/// exemption 5a (76% of the 5a children in Groningen have "geen schoolgeschiedenis", `002`).
pub fn may_lack_school(c: Category) -> bool {
    matches!(c, Category::Av | Category::Vrijstelling5a)
}

fn check_sector(
    sector: &Result<Sector, String>,
    category: Category,
) -> Result<Option<Sector>, FieldError> {
    match sector {
        Ok(s) => Ok(Some(*s)),
        Err(r) if r.contains("not set") && may_lack_school(category) => Ok(None),
        Err(r) if r.contains("not set") => Err(FieldError::new(
            "sector",
            format!("{r}; only an AV or VRIJSTELLING_5A signal may have none"),
        )),
        Err(r) => Err(FieldError::new("sector", r.clone())),
    }
}

/// The checked details of an offer.
struct OfferDetails {
    kind: Option<OfferKind>,
    place_from: Option<NaiveDate>,
}

/// Offer details belong to an offer: each needs `offer_date`; a place is never available
/// before the offer was made.
fn check_offer_details(
    raw: &RawSignal,
    offer_date: Option<NaiveDate>,
) -> Result<OfferDetails, FieldError> {
    let kind = raw
        .offer_kind
        .clone()
        .map_err(|r| FieldError::new("offer_kind", r))?;
    let needs_offer = |field: &'static str, set: bool| {
        if set && offer_date.is_none() {
            return Err(FieldError::new(field, "may be set only with an offer_date"));
        }
        Ok(())
    };
    needs_offer("offer_kind", kind.is_some())?;
    needs_offer("offer_place_from", !raw.offer_place_from.is_empty())?;
    needs_offer("offer_parents_agreed", raw.offer_parents_agreed)?;
    let place_from = match raw.offer_place_from.as_str() {
        "" => None,
        text => Some(parse_date("offer_place_from", text)?),
    };
    if let (Some(place), Some(offer)) = (place_from, offer_date) {
        if place < offer {
            return Err(FieldError::new(
                "offer_place_from",
                format!("{place} is before offer_date {offer}"),
            ));
        }
    }
    Ok(OfferDetails { kind, place_from })
}

/// The checked optional details the counting rules need.
struct Details {
    exemption_term: Option<ExemptionTerm>,
    exemption_end: Option<NaiveDate>,
    closed_on: Option<NaiveDate>,
}

fn is_exemption(c: Category) -> bool {
    matches!(
        c,
        Category::Vrijstelling5a | Category::Vrijstelling5b | Category::Vrijstelling5c
    )
}

fn check_details(
    raw: &RawSignal,
    category: Category,
    status: Status,
    absent_since: NaiveDate,
    today: NaiveDate,
) -> Result<Details, FieldError> {
    let only_av = |field: &'static str, set: bool| {
        if set && category != Category::Av {
            return Err(FieldError::new(field, "may be set only on an AV signal"));
        }
        Ok(())
    };
    only_av("exemption_5c_requested", raw.exemption_5c_requested)?;
    only_av("awaiting_mbo_intake", raw.awaiting_mbo_intake)?;
    let exemption_term = raw
        .exemption_term
        .clone()
        .map_err(|r| FieldError::new("exemption_term", r))?;
    if exemption_term.is_some() && !is_exemption(category) {
        return Err(FieldError::new(
            "exemption_term",
            "may be set only on a VRIJSTELLING_* signal",
        ));
    }
    let exemption_end = match raw.exemption_end.as_str() {
        "" => None,
        text => {
            if !is_exemption(category) {
                return Err(FieldError::new(
                    "exemption_end",
                    "may be set only on a VRIJSTELLING_* signal",
                ));
            }
            let end = parse_date("exemption_end", text)?;
            if end < absent_since {
                return Err(FieldError::new(
                    "exemption_end",
                    format!("{end} is before absent_since {absent_since}"),
                ));
            }
            Some(end)
        }
    };
    let closed_on = match raw.closed_on.as_str() {
        "" => None,
        text => {
            if !matches!(status, Status::Teruggeleid | Status::Gesloten) {
                return Err(FieldError::new(
                    "closed_on",
                    "may be set only when status is TERUGGELEID or GESLOTEN",
                ));
            }
            let day = parse_date("closed_on", text)?;
            if day < absent_since {
                return Err(FieldError::new(
                    "closed_on",
                    format!("{day} is before absent_since {absent_since}"),
                ));
            }
            if day > today {
                return Err(FieldError::new(
                    "closed_on",
                    format!("{day} is in the future"),
                ));
            }
            Some(day)
        }
    };
    Ok(Details {
        exemption_term,
        exemption_end,
        closed_on,
    })
}

fn check_record_id(id: &str) -> Result<String, FieldError> {
    if id.is_empty() {
        return Err(FieldError::new("source_record_id", "is empty"));
    }
    if id.len() > MAX_RECORD_ID_LEN {
        return Err(FieldError::new(
            "source_record_id",
            format!("is longer than {MAX_RECORD_ID_LEN} characters"),
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            "source_record_id",
            "may hold only printable ASCII characters without spaces",
        ));
    }
    if crate::pseudonym::looks_like_id(id) {
        return Err(FieldError::new(
            "source_record_id",
            "holds nine or more digits in a row (counted across dots, dashes and other \
             separators), which could be a BSN or onderwijsnummer; use an identifier that does \
             not reveal a pupil",
        ));
    }
    Ok(id.to_owned())
}

/// True if the nine digits of the pupil id occur in the text (ignoring separators and letters,
/// of any script).
fn contains_digits_of(text: &str, pupil_digits: &str) -> bool {
    !pupil_digits.is_empty() && crate::pseudonym::ascii_digits(text).contains(pupil_digits)
}

/// Checks a CBS municipality code: "GM" followed by four digits ([`MunicipalityCode`]).
pub fn check_municipality(code: &str) -> Result<MunicipalityCode, FieldError> {
    MunicipalityCode::parse_field(code, "residence_municipality").map_err(FieldError::from)
}

/// Checks a school code: BRIN + vestiging ([`SchoolCode`]). Only a pupil enrolled nowhere
/// (absoluut verzuim) or exempt without school history (5a) may have none.
pub fn check_school(code: &str, category: Category) -> Result<Option<SchoolCode>, FieldError> {
    if code.is_empty() {
        if may_lack_school(category) {
            return Ok(None);
        }
        return Err(FieldError::new(
            "school",
            "is empty; only an AV signal (enrolled nowhere) or a VRIJSTELLING_5A signal may \
             have no school",
        ));
    }
    SchoolCode::parse_field(code, "school")
        .map(Some)
        .map_err(FieldError::from)
}

impl From<crate::ids::IdError> for FieldError {
    fn from(e: crate::ids::IdError) -> Self {
        FieldError::new(e.field, e.reason())
    }
}

/// Parses a YYYY-MM-DD date.
pub fn parse_date(field: &'static str, text: &str) -> Result<NaiveDate, FieldError> {
    if text.is_empty() {
        return Err(FieldError::new(
            field,
            "is empty; expected a date as YYYY-MM-DD",
        ));
    }
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(FieldError::new(
            field,
            format!("{:?} is not written as YYYY-MM-DD", clip(text)),
        ));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| FieldError::new(field, format!("{text} is not a date")))
}

fn check_offer(
    text: &str,
    status: Status,
    absent_since: NaiveDate,
    today: NaiveDate,
) -> Result<Option<NaiveDate>, FieldError> {
    if text.is_empty() {
        if status == Status::Aanbod {
            return Err(FieldError::new(
                "offer_date",
                "is required when status is AANBOD",
            ));
        }
        return Ok(None);
    }
    if status == Status::Open {
        return Err(FieldError::new(
            "offer_date",
            "is given but status is OPEN; set status AANBOD or leave offer_date empty",
        ));
    }
    let date = parse_date("offer_date", text)?;
    if date < absent_since {
        return Err(FieldError::new(
            "offer_date",
            format!("{date} is before absent_since {absent_since}"),
        ));
    }
    if date > today {
        return Err(FieldError::new(
            "offer_date",
            format!("{date} is in the future"),
        ));
    }
    Ok(Some(date))
}

/// A refused number as an error may echo it: small numbers as they are, anything with enough
/// digits to be a pupil id withheld (a partner may put a BSN in the wrong field).
pub fn shown_number(value: impl Into<i64>) -> String {
    let value = value.into();
    if value.unsigned_abs() < 100_000 {
        value.to_string()
    } else {
        "<withheld: looks like an identifier>".to_owned()
    }
}

/// Shortens a refused value before it is echoed in an error, so an error never carries a large
/// payload, and withholds it whole if it holds a run of digits long enough to be a pupil id
/// (a partner may put a BSN in the wrong column).
pub(crate) fn clip(text: &str) -> String {
    if crate::pseudonym::looks_like_id(text) {
        return "<withheld: looks like an identifier>".to_owned();
    }
    text.chars().take(24).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::{PseudonymKey, KEY_LEN};
    use proptest::prelude::*;

    fn raw() -> RawSignal {
        RawSignal {
            source_record_id: "indigo-17".into(),
            pupil_id: zeroize::Zeroizing::new("111222333".into()),
            category: Ok(Category::Lrv),
            sector: Ok(Sector::Vo),
            residence_municipality: "GM0014".into(),
            school: "20XY01".into(),
            absent_since: "2026-09-01".into(),
            status: Ok(Status::Open),
            offer_date: String::new(),
            age: 14,
            address_under_investigation: false,
            exemption_5c_requested: false,
            awaiting_mbo_intake: false,
            exemption_term: Ok(None),
            exemption_end: String::new(),
            closed_on: String::new(),
            age_on: String::new(),
            offer_kind: Ok(None),
            offer_place_from: String::new(),
            offer_parents_agreed: false,
        }
    }

    fn check(r: RawSignal) -> Result<Signal, FieldError> {
        let key = PseudonymKey::from_bytes(1, &[1u8; KEY_LEN]);
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let checked = validate(r, today, chrono::Utc::now())?;
        let pseudonym = key.pseudonym(&checked.pupil);
        Ok(checked.pseudonymised(pseudonym.parse().unwrap()))
    }

    #[test]
    fn good_record_passes() {
        let s = check(raw()).unwrap();
        assert!(s.pupil_pseudonym.starts_with("v1."));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Case = (fn(&mut RawSignal), &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (
                |r| r.pupil_id = zeroize::Zeroizing::new("123456789".into()),
                "pupil_id",
                "11-proef",
            ),
            (
                |r| r.source_record_id = String::new(),
                "source_record_id",
                "empty",
            ),
            (
                |r| r.source_record_id = "x-111222333".into(),
                "source_record_id",
                "nine or more digits",
            ),
            (
                |r| r.residence_municipality = "0014".into(),
                "residence_municipality",
                "CBS",
            ),
            (|r| r.school = "AB1234".into(), "school", "BRIN"),
            (|r| r.school = String::new(), "school", "empty"),
            (
                |r| r.absent_since = "2031-02-30".into(),
                "absent_since",
                "2031-02-30 is not a date",
            ),
            (
                |r| r.absent_since = "1-2-2026".into(),
                "absent_since",
                "YYYY-MM-DD",
            ),
            (
                |r| r.absent_since = "2027-01-01".into(),
                "absent_since",
                "future",
            ),
            (
                |r| r.absent_since = "0000-01-01".into(),
                "absent_since",
                "before 2000-01-01",
            ),
            (
                |r| r.absent_since = "1900-01-01".into(),
                "absent_since",
                "min_absent_since",
            ),
            (
                |r| r.source_record_id = "lln-1234.56.789".into(),
                "source_record_id",
                "nine or more digits",
            ),
            (|r| r.status = Ok(Status::Aanbod), "offer_date", "required"),
            (|r| r.offer_date = "2026-10-01".into(), "offer_date", "OPEN"),
            (
                |r| {
                    r.status = Ok(Status::Aanbod);
                    r.offer_date = "2026-08-01".into();
                },
                "offer_date",
                "before",
            ),
            (|r| r.age = 41, "age", "outside"),
            (
                |r| r.category = Err("is not set".into()),
                "category",
                "not set",
            ),
            (
                |r| r.exemption_5c_requested = true,
                "exemption_5c_requested",
                "only on an AV",
            ),
            (
                |r| r.exemption_term = Ok(Some(ExemptionTerm::Temporary)),
                "exemption_term",
                "VRIJSTELLING",
            ),
            (
                |r| r.exemption_end = "2027-01-01".into(),
                "exemption_end",
                "VRIJSTELLING",
            ),
            (
                |r| r.closed_on = "2026-10-01".into(),
                "closed_on",
                "TERUGGELEID",
            ),
            (
                |r| {
                    r.status = Ok(Status::Gesloten);
                    r.closed_on = "2026-08-01".into();
                },
                "closed_on",
                "before",
            ),
        ];
        for (change, field, words) in cases {
            let mut r = raw();
            change(&mut r);
            let err = check(r).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.reason.contains(words), "{err}");
            assert!(!err.reason.contains("111222333"));
        }
    }

    #[test]
    fn av_and_5a_may_come_without_school_or_sector_and_are_still_checked() {
        for category in [Category::Av, Category::Vrijstelling5a] {
            let mut r = raw();
            r.category = Ok(category);
            r.school = String::new();
            r.sector = Err("is not set (SECTOR_UNSPECIFIED)".into());
            if category == Category::Vrijstelling5a {
                r.school = "20XY01".into();
            }
            let s = check(r).unwrap();
            assert_eq!(s.sector, None);
            let mut r = raw();
            r.category = Ok(category);
            r.sector = Err("is not set (SECTOR_UNSPECIFIED)".into());
            r.residence_municipality = "0014".into();
            assert_eq!(check(r).unwrap_err().field, "residence_municipality");
        }
        let mut r = raw();
        r.sector = Err("is not set (SECTOR_UNSPECIFIED)".into());
        let err = check(r).unwrap_err();
        assert_eq!(err.field, "sector");
        assert!(err.reason.contains("only an AV"), "{err}");
    }

    #[test]
    fn offer_details_need_an_offer_and_a_place_comes_after_it() {
        let mut r = raw();
        r.offer_kind = Ok(Some(OfferKind::Zorg));
        assert_eq!(check(r).unwrap_err().field, "offer_kind");
        let mut r = raw();
        r.offer_parents_agreed = true;
        assert_eq!(check(r).unwrap_err().field, "offer_parents_agreed");
        let mut r = raw();
        r.status = Ok(Status::Aanbod);
        r.offer_date = "2026-10-01".into();
        r.offer_place_from = "2026-09-30".into();
        let err = check(r).unwrap_err();
        assert_eq!(
            (err.field, err.reason.contains("before")),
            ("offer_place_from", true)
        );
        let mut r = raw();
        r.status = Ok(Status::Aanbod);
        r.offer_date = "2026-10-01".into();
        r.offer_place_from = "2027-01-04".into();
        r.offer_kind = Ok(Some(OfferKind::OnderwijsEnZorg));
        r.offer_parents_agreed = true;
        let s = check(r).unwrap();
        assert_eq!(s.offer_place_from, NaiveDate::from_ymd_opt(2027, 1, 4));
        let mut r = raw();
        r.age_on = "2027-01-01".into();
        assert_eq!(check(r).unwrap_err().field, "age_on");
    }

    #[test]
    fn av_may_have_no_school() {
        let mut r = raw();
        r.category = Ok(Category::Av);
        r.school = String::new();
        assert!(check(r).is_ok());
    }

    proptest! {
        #[test]
        fn errors_never_echo_the_pupil_id(n in 100_000_000u32..999_999_999, junk in "[ -~]{0,30}") {
            let id = n.to_string();
            let mut r = raw();
            r.pupil_id = zeroize::Zeroizing::new(id.clone());
            r.source_record_id = junk.clone();
            r.absent_since = junk.clone();
            r.school = junk;
            if let Err(e) = check(r) {
                prop_assert!(!e.reason.contains(&id));
            }
            let mut r = raw();
            r.school = id.clone();
            r.residence_municipality = format!("GM{id}");
            if let Err(e) = check(r) {
                prop_assert!(!e.reason.contains(&id));
            }
        }
    }
}
