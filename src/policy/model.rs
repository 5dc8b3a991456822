//! The covenant as checked data: parties, legal bases, purposes, data categories, routine flows,
//! case meetings and FGs. Pure values; never read from disk here. Every id a value holds was
//! resolved against the file when the policy was checked.

use crate::ids::{Brin, MunicipalityCode, Oin};
use crate::signal::Category;
use std::collections::BTreeMap;
use std::fmt;

/// The kind of organisation a party is; flows and meeting seats are written per org type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrgType {
    Swv,
    Mbo,
    Gemeente,
    Wij,
    Ggd,
    /// A jeugdhulp provider (expertteam PO, ECT MBO).
    Jeugdhulp,
    /// A schoolbestuur (the school's competent authority; MPL members act with its mandate).
    Schoolbestuur,
}

impl OrgType {
    pub const ALL: [OrgType; 7] = [
        OrgType::Swv,
        OrgType::Mbo,
        OrgType::Gemeente,
        OrgType::Wij,
        OrgType::Ggd,
        OrgType::Jeugdhulp,
        OrgType::Schoolbestuur,
    ];

    /// The code as the policy file writes it (`swv`, `mbo`, `gemeente`, `wij`, `ggd`,
    /// `jeugdhulp`, `schoolbestuur`).
    pub fn code(self) -> &'static str {
        match self {
            OrgType::Swv => "swv",
            OrgType::Mbo => "mbo",
            OrgType::Gemeente => "gemeente",
            OrgType::Wij => "wij",
            OrgType::Ggd => "ggd",
            OrgType::Jeugdhulp => "jeugdhulp",
            OrgType::Schoolbestuur => "schoolbestuur",
        }
    }

    /// The name an FG reads (Dutch).
    pub fn label(self) -> &'static str {
        match self {
            OrgType::Swv => "samenwerkingsverband",
            OrgType::Mbo => "mbo-instelling",
            OrgType::Gemeente => "gemeente",
            OrgType::Wij => "WIJ (sociaal team)",
            OrgType::Ggd => "GGD (JGZ)",
            OrgType::Jeugdhulp => "jeugdhulpaanbieder",
            OrgType::Schoolbestuur => "schoolbestuur",
        }
    }

    pub fn from_code(code: &str) -> Option<OrgType> {
        OrgType::ALL.into_iter().find(|t| t.code() == code)
    }
}

impl fmt::Display for OrgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A field of a signal, named as in the proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    SourceRecordId,
    PupilPseudonym,
    Category,
    Sector,
    ResidenceMunicipality,
    School,
    AbsentSince,
    Status,
    OfferDate,
    Age,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::SourceRecordId,
        Field::PupilPseudonym,
        Field::Category,
        Field::Sector,
        Field::ResidenceMunicipality,
        Field::School,
        Field::AbsentSince,
        Field::Status,
        Field::OfferDate,
        Field::Age,
    ];

    /// The proto field name (`pupil_pseudonym`, `residence_municipality`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Field::SourceRecordId => "source_record_id",
            Field::PupilPseudonym => "pupil_pseudonym",
            Field::Category => "category",
            Field::Sector => "sector",
            Field::ResidenceMunicipality => "residence_municipality",
            Field::School => "school",
            Field::AbsentSince => "absent_since",
            Field::Status => "status",
            Field::OfferDate => "offer_date",
            Field::Age => "age",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of signal fields (a bitset; copying it never allocates).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FieldSet(u16);

impl FieldSet {
    pub const EMPTY: FieldSet = FieldSet(0);

    pub fn contains(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }

    pub fn insert(&mut self, field: Field) {
        self.0 |= field.bit();
    }

    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The fields in the order of [`Field::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Field> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut set = FieldSet::EMPTY;
        iter.into_iter().for_each(|f| set.insert(f));
        set
    }
}

impl fmt::Debug for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Field::name)).finish()
    }
}

/// The signal category for a code as partners write it (`LRV`, `LANGDURIG_ZIEK`, ...).
pub fn category_from_code(code: &str) -> Option<Category> {
    Category::ALL.into_iter().find(|c| c.code() == code)
}

/// What the covenant file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covenant {
    pub name: String,
    pub description: String,
    /// The date/version label of the covenant text this file models.
    pub text_version: String,
}

/// An organisation that signed the covenant and runs a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub id: String,
    pub oin: Oin,
    pub name: String,
    pub org_type: OrgType,
    /// CBS codes of the municipalities whose residents a gemeente serves.
    pub municipalities: Vec<MunicipalityCode>,
    /// BRIN codes of the schools an swv or mbo covers.
    pub schools: Vec<Brin>,
    pub region: Option<String>,
    /// False for a party the seeds say is still to be connected ("aan te haken").
    pub connected: bool,
    /// How many pupil ids the pseudonymisation service evaluates for this party per day (UTC):
    /// what the partner plausibly pushes and looks up. 0 (not set): none.
    pub pseudonyms_per_day: u64,
}

/// A legal basis (grondslag): a law and article, quoted as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalBasis {
    pub id: String,
    pub law: String,
    pub article: String,
    pub text: String,
    /// Whether this basis is an exception of AVG art. 9(2) that allows special-category data.
    pub art9_exception: bool,
    /// Where the article comes from; empty when the file does not say.
    pub source: String,
    /// Whether an FG checked the article against the statute text.
    pub verified: bool,
}

/// A purpose (doelbinding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    pub id: String,
    pub text: String,
}

/// A group of signal data: which rows (signal categories) and which fields of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCategory {
    pub id: String,
    pub name: String,
    pub fields: FieldSet,
    pub signal_categories: Vec<Category>,
    /// Special-category data (AVG art. 9), e.g. health.
    pub special: bool,
}

/// Which signals a routine flow reaches, judged from the receiving party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowScope {
    /// Signals whose residence municipality is one of the receiver's municipalities.
    Residents,
    /// Signals whose school (BRIN) is one of the receiver's schools.
    Schools,
    /// The receiver's own scope: residents for a gemeente, schools for an swv or mbo.
    Own,
    /// No restriction (`policy check` warns).
    None,
}

impl FlowScope {
    pub fn code(self) -> &'static str {
        match self {
            FlowScope::Residents => "residents",
            FlowScope::Schools => "schools",
            FlowScope::Own => "own",
            FlowScope::None => "none",
        }
    }

    pub fn from_code(code: &str) -> Option<FlowScope> {
        [
            FlowScope::Residents,
            FlowScope::Schools,
            FlowScope::Own,
            FlowScope::None,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// What a rule grants, precomputed from its data categories when the policy is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub data_categories: Vec<String>,
    pub fields: FieldSet,
    pub signal_categories: Vec<Category>,
    pub special: bool,
}

/// A routine flow: data that moves between org types without a case meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutineFlow {
    pub id: String,
    pub name: String,
    /// Org types that hold the data (any of them).
    pub from: Vec<OrgType>,
    /// Org types that receive it (the caller must be one of them).
    pub to: Vec<OrgType>,
    pub role: String,
    pub legal_bases: Vec<String>,
    pub purpose: String,
    pub data_categories: Vec<String>,
    pub scope: FlowScope,
    pub processing_activity: String,
    pub(super) grant: Grant,
    pub(super) rule: String,
}

impl RoutineFlow {
    /// The signal categories the flow shares.
    pub fn signal_categories(&self) -> &[Category] {
        &self.grant.signal_categories
    }
}

/// A seat at a case meeting: an org type in a role, with its bases, purposes and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub org_type: OrgType,
    pub role: String,
    pub legal_bases: Vec<String>,
    pub purposes: Vec<String>,
    pub data_categories: Vec<String>,
    pub(super) grant: Grant,
    pub(super) rule: String,
}

impl Participant {
    /// The signal categories the seat may see.
    pub fn signal_categories(&self) -> &[Category] {
        &self.grant.signal_categories
    }
}

/// A case meeting type (casusoverleg) of Bijlage 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub id: String,
    pub name: String,
    pub description: String,
    pub purposes: Vec<String>,
    pub participants: Vec<Participant>,
    /// Purpose id -> processing activity id in the register.
    pub processing_activities: BTreeMap<String, String>,
    /// Org types that may lead a case of this meeting (always a gemeente, swv or mbo: a case's
    /// reads are bounded by its lead's scope).
    pub lead: Vec<OrgType>,
    /// Whether a case grants nothing at a node until that node's organisation has accepted it.
    pub needs_acceptance: bool,
    /// The most pupils one case may cover.
    pub max_pupils: usize,
    /// Org types whose participant may record a care offer (zorgaanbod) for a pupil of a case of
    /// this meeting, e.g. WIJ and jeugdhulp: the organisations that make such offers.
    pub may_record_offer: Vec<OrgType>,
}

/// Pupils per case when the policy does not say: a child and its siblings.
pub const DEFAULT_MAX_PUPILS: usize = 10;

/// The highest `max_pupils` a policy may set: a case is about a child, not a school.
pub const MAX_PUPILS_CEILING: usize = 50;

impl Meeting {
    /// The seat for this org type in this role, if the meeting has one.
    pub fn participant(&self, org_type: OrgType, role: &str) -> Option<&Participant> {
        self.participants
            .iter()
            .find(|p| p.org_type == org_type && p.role == role)
    }

    /// Whether any seat is held by this org type.
    pub fn has_seat(&self, org_type: OrgType) -> bool {
        self.participants.iter().any(|p| p.org_type == org_type)
    }

    /// Whether an organisation of this type may record a care offer in a case of this meeting.
    pub fn may_record_offer(&self, org_type: OrgType) -> bool {
        self.may_record_offer.contains(&org_type)
    }

    /// Whether an organisation of this type may lead a case of this meeting.
    pub fn may_lead(&self, org_type: OrgType) -> bool {
        self.lead.contains(&org_type)
    }
}

/// A data protection officer (FG) and the parties it is FG of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fg {
    pub oin: Oin,
    pub name: String,
    /// Party ids.
    pub of: Vec<String>,
}

/// A covenant certificate revoked before its end (a leaked key), named by the SHA-256 fingerprint
/// of its DER or by its serial number, both as lowercase hex without separators or leading zero
/// bytes. Exactly one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub fingerprint: Option<String>,
    pub serial: Option<String>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
        for t in OrgType::ALL {
            assert_eq!(OrgType::from_code(t.code()), Some(t));
        }
        for c in Category::ALL {
            assert_eq!(category_from_code(c.code()), Some(c));
        }
        assert_eq!(Field::from_name("bsn"), None);
        assert_eq!(OrgType::from_code("SWV"), None);
    }

    #[test]
    fn field_set_is_a_set() {
        let set: FieldSet = [Field::Age, Field::School, Field::Age]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 2);
        assert!(set.contains(Field::Age) && !set.contains(Field::Status));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Field::School, Field::Age]
        );
        assert_eq!(format!("{set:?}"), r#"{"school", "age"}"#);
    }
}
