//! The covenant policy (privacyconvenant, Bijlage 3) as data: `raw` file -> `check` -> `model`,
//! then `evaluate` (permit or denial) and `matrix` (the FG's review). Decides; never reads,
//! stores or logs pupil data. Immutable once loaded; every permit traces to one written rule.

mod check;
mod error;
mod evaluate;
mod grants;
mod matrix;
mod model;
mod raw;

#[cfg(test)]
mod bind_tests;
#[cfg(test)]
mod tests;

pub use error::{PolicyError, PolicyErrors};
pub use evaluate::{AccessRequest, CaseClaim, Context, Decision, Denial, Permit, Scope};
pub use grants::CaseShareGrant;
pub use model::{
    category_from_code, Covenant, DataCategory, Fg, Field, FieldSet, FlowScope, LegalBasis,
    Meeting, OrgType, Participant, Party, Purpose, Revoked, RoutineFlow, DEFAULT_MAX_PUPILS,
    MAX_PUPILS_CEILING,
};

use std::collections::HashMap;
use std::path::Path;

/// A checked, immutable covenant policy. Cheap to share (`Send + Sync`); lookups are hash maps
/// built once at load.
#[derive(Debug)]
pub struct Policy {
    version: String,
    covenant: Covenant,
    parties: Vec<Party>,
    fgs: Vec<Fg>,
    legal_bases: Vec<LegalBasis>,
    purposes: Vec<Purpose>,
    data_categories: Vec<DataCategory>,
    routine_flows: Vec<RoutineFlow>,
    meetings: Vec<Meeting>,
    revoked: Vec<Revoked>,
    warnings: Vec<String>,
    index: Index,
}

/// Positions by id (or OIN) in the policy's vectors.
#[derive(Debug, Default)]
struct Index {
    party_by_oin: HashMap<String, usize>,
    party_by_id: HashMap<String, usize>,
    fg_by_oin: HashMap<String, usize>,
    legal_basis: HashMap<String, usize>,
    purpose: HashMap<String, usize>,
    data_category: HashMap<String, usize>,
    routine_flow: HashMap<String, usize>,
    meeting: HashMap<String, usize>,
}

fn positions<T>(items: &[T], key: impl Fn(&T) -> &str) -> HashMap<String, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (key(item).to_string(), i))
        .collect()
}

/// An FG's access to a party's audit log, granted by the policy ([`Policy::fg_grant`]): private
/// fields, not `Clone`; the audit inspection operations take it.
#[derive(Debug, PartialEq, Eq)]
pub struct FgGrant {
    fg_oin: String,
    party_oin: String,
    policy_version: String,
}

impl FgGrant {
    /// The FG's OIN.
    pub fn fg_oin(&self) -> &str {
        &self.fg_oin
    }

    /// The OIN of the party whose log it may read.
    pub fn party_oin(&self) -> &str {
        &self.party_oin
    }

    /// The version of the policy that granted it.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }
}

impl Policy {
    /// Parses and checks a policy; `file_name` is used in error messages. Reports every error.
    pub fn parse(text: &str, file_name: &str) -> Result<Policy, PolicyErrors> {
        let c = check::check(text, file_name)?;
        let index = Index {
            party_by_oin: positions(&c.parties, |p| &p.oin),
            party_by_id: positions(&c.parties, |p| &p.id),
            fg_by_oin: positions(&c.fgs, |f| &f.oin),
            legal_basis: positions(&c.legal_bases, |b| &b.id),
            purpose: positions(&c.purposes, |p| &p.id),
            data_category: positions(&c.data_categories, |d| &d.id),
            routine_flow: positions(&c.routine_flows, |f| &f.id),
            meeting: positions(&c.meetings, |m| &m.id),
        };
        Ok(Policy {
            version: version_of(text.as_bytes()),
            covenant: c.covenant,
            parties: c.parties,
            fgs: c.fgs,
            legal_bases: c.legal_bases,
            purposes: c.purposes,
            data_categories: c.data_categories,
            routine_flows: c.routine_flows,
            meetings: c.meetings,
            revoked: c.revoked,
            warnings: c.warnings,
            index,
        })
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyErrors> {
        let text =
            crate::toml_check::read(path, "the policy file").map_err(|e| PolicyErrors(vec![e]))?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// `sha256:` and the hex digest of the file's bytes: what the audit log records.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The covenant certificates revoked before their end; the TLS layer refuses them.
    pub fn revoked(&self) -> &[Revoked] {
        &self.revoked
    }

    /// Things that are allowed but an FG should look at (e.g. a flow without scope).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn covenant(&self) -> &Covenant {
        &self.covenant
    }

    pub fn parties(&self) -> &[Party] {
        &self.parties
    }

    pub fn fgs(&self) -> &[Fg] {
        &self.fgs
    }

    pub fn legal_bases(&self) -> &[LegalBasis] {
        &self.legal_bases
    }

    pub fn purposes(&self) -> &[Purpose] {
        &self.purposes
    }

    pub fn data_categories(&self) -> &[DataCategory] {
        &self.data_categories
    }

    pub fn routine_flows(&self) -> &[RoutineFlow] {
        &self.routine_flows
    }

    pub fn meetings(&self) -> &[Meeting] {
        &self.meetings
    }

    pub fn party_by_oin(&self, oin: &str) -> Option<&Party> {
        self.index.party_by_oin.get(oin).map(|&i| &self.parties[i])
    }

    pub fn party(&self, id: &str) -> Option<&Party> {
        self.index.party_by_id.get(id).map(|&i| &self.parties[i])
    }

    /// The FG with this (certificate) OIN, if the policy names one.
    pub fn fg(&self, fg_oin: &str) -> Option<&Fg> {
        self.index.fg_by_oin.get(fg_oin).map(|&i| &self.fgs[i])
    }

    /// Whether `fg_oin` is named as FG of the party with `party_oin`.
    pub fn is_fg_of(&self, fg_oin: &str, party_oin: &str) -> bool {
        match (self.fg(fg_oin), self.party_by_oin(party_oin)) {
            (Some(fg), Some(party)) => fg.of.contains(&party.id),
            _ => false,
        }
    }

    /// The grant of an FG's access to the audit log of the party with `party_oin`, if the policy
    /// names `fg_oin` as its FG; the only way to make an [`FgGrant`].
    pub fn fg_grant(&self, fg_oin: &str, party_oin: &str) -> Option<FgGrant> {
        self.is_fg_of(fg_oin, party_oin).then(|| FgGrant {
            fg_oin: fg_oin.to_owned(),
            party_oin: party_oin.to_owned(),
            policy_version: self.version().to_owned(),
        })
    }

    pub fn legal_basis(&self, id: &str) -> Option<&LegalBasis> {
        self.index
            .legal_basis
            .get(id)
            .map(|&i| &self.legal_bases[i])
    }

    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.index.purpose.get(id).map(|&i| &self.purposes[i])
    }

    pub fn data_category(&self, id: &str) -> Option<&DataCategory> {
        self.index
            .data_category
            .get(id)
            .map(|&i| &self.data_categories[i])
    }

    pub fn meeting(&self, id: &str) -> Option<&Meeting> {
        self.index.meeting.get(id).map(|&i| &self.meetings[i])
    }

    pub fn routine_flow(&self, id: &str) -> Option<&RoutineFlow> {
        self.index
            .routine_flow
            .get(id)
            .map(|&i| &self.routine_flows[i])
    }

    /// The data categories whose fields include `field` (in file order).
    pub fn data_categories_of_field(&self, field: Field) -> Vec<&DataCategory> {
        self.data_categories
            .iter()
            .filter(|d| d.fields.contains(field))
            .collect()
    }
}

fn version_of(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";
