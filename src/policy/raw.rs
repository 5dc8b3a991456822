//! The policy file as written: a serde mirror of the TOML that keeps each value's position.
//! Gives no meaning to anything (that is `check`); refuses keys it does not know.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub(super) type Text = Spanned<String>;
pub(super) type Texts = Vec<Spanned<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub covenant: Spanned<RawCovenant>,
    #[serde(default)]
    pub party: Vec<Spanned<RawParty>>,
    #[serde(default)]
    pub fg: Vec<Spanned<RawFg>>,
    #[serde(default)]
    pub legal_basis: Vec<Spanned<RawLegalBasis>>,
    #[serde(default)]
    pub purpose: Vec<Spanned<RawPurpose>>,
    #[serde(default)]
    pub data_category: Vec<Spanned<RawDataCategory>>,
    #[serde(default)]
    pub routine_flow: Vec<Spanned<RawRoutineFlow>>,
    #[serde(default)]
    pub meeting: Vec<Spanned<RawMeeting>>,
    #[serde(default)]
    pub revoked: Vec<Spanned<RawRevoked>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCovenant {
    pub name: Text,
    pub description: Text,
    pub text_version: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParty {
    pub id: Text,
    pub oin: Text,
    pub name: Text,
    #[serde(rename = "type")]
    pub org_type: Text,
    #[serde(default)]
    pub municipalities: Texts,
    #[serde(default)]
    pub schools: Texts,
    pub region: Option<Text>,
    /// "aangesloten" (default) or "aan-te-haken" (still to be connected).
    pub status: Option<Text>,
    #[serde(default)]
    pub pseudonyms_per_day: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFg {
    pub oin: Text,
    pub name: Text,
    #[serde(default)]
    pub of: Texts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLegalBasis {
    pub id: Text,
    pub law: Text,
    pub article: Text,
    pub text: Text,
    #[serde(default)]
    pub art9_exception: bool,
    /// Where the article comes from (a seed line, a statute, "aanname").
    pub source: Option<Text>,
    /// Whether an FG checked the article against the statute text.
    #[serde(default)]
    pub verified: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPurpose {
    pub id: Text,
    pub text: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataCategory {
    pub id: Text,
    pub name: Text,
    #[serde(default)]
    pub fields: Texts,
    #[serde(default)]
    pub signal_categories: Texts,
    #[serde(default)]
    pub special: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoutineFlow {
    pub id: Text,
    pub name: Text,
    #[serde(default)]
    pub from: Texts,
    #[serde(default)]
    pub to: Texts,
    pub role: Text,
    #[serde(default)]
    pub legal_bases: Texts,
    pub purpose: Text,
    #[serde(default)]
    pub data_categories: Texts,
    pub scope: Text,
    pub processing_activity: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeeting {
    pub id: Text,
    pub name: Text,
    pub description: Text,
    #[serde(default)]
    pub purposes: Texts,
    #[serde(default)]
    pub participant: Vec<Spanned<RawParticipant>>,
    #[serde(default)]
    pub processing_activities: BTreeMap<String, Text>,
    /// Org types that may lead (open and share) a case of this meeting.
    #[serde(default)]
    pub lead: Texts,
    /// Whether each participating organisation must accept a case before it grants anything
    /// at its node (default: yes).
    pub needs_acceptance: Option<Spanned<bool>>,
    /// The most pupils one case may cover (default: [`super::model::DEFAULT_MAX_PUPILS`]).
    pub max_pupils: Option<Spanned<i64>>,
    /// Org types whose participant may record a care offer for a pupil of a case of this
    /// meeting (default: none; only a signal's owner records an offer, on the signal).
    #[serde(default)]
    pub may_record_offer: Texts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParticipant {
    pub org_type: Text,
    pub role: Text,
    #[serde(default)]
    pub legal_bases: Texts,
    #[serde(default)]
    pub purposes: Texts,
    #[serde(default)]
    pub data_categories: Texts,
}

/// A certificate revoked by the covenant: by fingerprint or by serial number.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRevoked {
    pub fingerprint: Option<Text>,
    pub serial: Option<Text>,
    pub reason: Option<Text>,
}
