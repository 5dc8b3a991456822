//! Turns the written file into a checked covenant: syntax, formats, references, completeness.
//! Collects every error with its line and a fix instead of stopping at the first; values built
//! while errors exist are discarded, so fallbacks used to keep checking never reach a caller.

use super::error::PolicyErrors;
use super::model::{
    category_from_code, Covenant, DataCategory, Fg, Field, FieldSet, FlowScope, Grant, LegalBasis,
    Meeting, OrgType, Participant, Party, Purpose, Revoked, RoutineFlow, DEFAULT_MAX_PUPILS,
    MAX_PUPILS_CEILING,
};
use super::raw::{
    RawCovenant, RawDataCategory, RawFg, RawLegalBasis, RawMeeting, RawParticipant, RawParty,
    RawPolicy, RawPurpose, RawRevoked, RawRoutineFlow, Text, Texts,
};
use crate::ids::{Brin, MunicipalityCode, Oin};
use crate::toml_check::{self, Findings};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use toml::Spanned;

/// The checked content of a policy file.
#[derive(Debug)]
pub(super) struct Checked {
    pub covenant: Covenant,
    pub parties: Vec<Party>,
    pub fgs: Vec<Fg>,
    pub legal_bases: Vec<LegalBasis>,
    pub purposes: Vec<Purpose>,
    pub data_categories: Vec<DataCategory>,
    pub routine_flows: Vec<RoutineFlow>,
    pub meetings: Vec<Meeting>,
    pub revoked: Vec<Revoked>,
    pub warnings: Vec<String>,
}

/// Checks `text` (named `file` in messages).
pub(super) fn check(text: &str, file: &str) -> Result<Checked, PolicyErrors> {
    let raw = toml_check::parse::<RawPolicy>(text, file).map_err(|e| PolicyErrors(vec![e]))?;
    let mut checker = Checker {
        findings: Findings::new(text, file),
        known: Known::default(),
    };
    let checked = checker.policy(raw);
    let (mut checked, warnings) = checker.findings.finish(checked).map_err(PolicyErrors)?;
    checked.warnings = warnings;
    Ok(checked)
}

/// Ids defined so far, each with what a reference needs to know about it.
#[derive(Default)]
struct Known {
    legal_bases: BTreeMap<String, bool>,
    purposes: BTreeMap<String, ()>,
    data_categories: BTreeMap<String, DataCategory>,
    parties: BTreeMap<String, OrgType>,
    party_oins: BTreeSet<String>,
    org_types: BTreeSet<OrgType>,
    /// Org types with at least one connected party.
    connected_types: BTreeSet<OrgType>,
    flows: BTreeSet<String>,
    meetings: BTreeSet<String>,
}

struct Checker<'a> {
    findings: Findings<'a>,
    known: Known,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>, fix: impl Into<String>) {
        self.findings.error(span, message, fix);
    }

    fn warn(&mut self, span: Range<usize>, message: impl AsRef<str>) {
        self.findings.warn(span, message);
    }

    fn policy(&mut self, raw: RawPolicy) -> Checked {
        let covenant = self.covenant(&raw.covenant);
        let legal_bases: Vec<LegalBasis> = raw
            .legal_basis
            .iter()
            .map(|b| self.legal_basis(b))
            .collect();
        let purposes = raw.purpose.iter().map(|p| self.purpose(p)).collect();
        let data_categories = raw
            .data_category
            .iter()
            .map(|d| self.data_category(d))
            .collect();
        let parties: Vec<Party> = raw.party.iter().map(|p| self.party(p)).collect();
        let fgs: Vec<Fg> = raw.fg.iter().map(|f| self.fg(f)).collect();
        self.warn_parties_without_fg(&parties, &fgs, raw.covenant.span());
        let routine_flows = raw
            .routine_flow
            .iter()
            .map(|f| self.routine_flow(f))
            .collect();
        let meetings = raw.meeting.iter().map(|m| self.meeting(m)).collect();
        let revoked = raw.revoked.iter().map(|r| self.revoked(r)).collect();
        Checked {
            covenant,
            parties,
            fgs,
            legal_bases,
            purposes,
            data_categories,
            routine_flows,
            meetings,
            revoked,
            warnings: Vec::new(),
        }
    }

    // ---- values ----

    fn text(&mut self, t: &Text, what: &str) -> String {
        let value = t.get_ref().trim();
        if value.is_empty() {
            self.error(
                t.span(),
                format!("{what} is empty"),
                format!("write the {what}"),
            );
        }
        value.to_string()
    }

    fn id(&mut self, t: &Text, kind: &str, taken: bool) -> String {
        let id = self.text(t, &format!("{kind} id"));
        if id.chars().any(char::is_whitespace) {
            self.error(
                t.span(),
                format!("{kind} id '{id}' contains a space"),
                "write ids as one word, e.g. with hyphens",
            );
        }
        if taken {
            self.error(
                t.span(),
                format!("{kind} id '{id}' is used twice"),
                format!("give each {kind} its own id"),
            );
        }
        id
    }

    fn org_type(&mut self, t: &Text) -> OrgType {
        OrgType::from_code(t.get_ref()).unwrap_or_else(|| {
            self.error(
                t.span(),
                format!("unknown organisation type '{}'", t.get_ref()),
                "use one of: swv, mbo, gemeente, wij, ggd",
            );
            OrgType::Swv
        })
    }

    /// The OIN, or `None` after recording why it is not one.
    fn oin(&mut self, t: &Text, owner: &str) -> Option<Oin> {
        let oin = t.get_ref();
        let parsed = Oin::parse_field(oin, "oin").ok();
        if parsed.is_none() {
            self.error(
                t.span(),
                format!("OIN '{oin}' of {owner} is not 20 digits"),
                "copy the 20-digit OIN from the party's PKIoverheid certificate (subject serialNumber)",
            );
        }
        parsed
    }

    /// Checks that a list of ids names at least one and only known ones; keeps the known ones.
    fn refs<T>(
        &mut self,
        list: &Texts,
        known: &BTreeMap<String, T>,
        kind: &str,
        owner: &str,
        at: Range<usize>,
    ) -> Vec<String> {
        if list.is_empty() {
            self.error(
                at,
                format!("{owner} names no {kind}"),
                format!("add at least one {kind} id"),
            );
        }
        let mut ids: Vec<String> = Vec::with_capacity(list.len());
        for t in list {
            if let Some(id) = self.reference(t, known, kind) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    fn reference<T>(
        &mut self,
        t: &Text,
        known: &BTreeMap<String, T>,
        kind: &str,
    ) -> Option<String> {
        if known.contains_key(t.get_ref()) {
            return Some(t.get_ref().clone());
        }
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        self.error(
            t.span(),
            format!("unknown {kind} '{}'", t.get_ref()),
            format!(
                "use an id defined in a [[{}]] table: {}",
                kind.replace(' ', "_"),
                names.join(", ")
            ),
        );
        None
    }

    // ---- tables ----

    fn covenant(&mut self, c: &Spanned<RawCovenant>) -> Covenant {
        let raw = c.get_ref();
        Covenant {
            name: self.text(&raw.name, "covenant name"),
            description: self.text(&raw.description, "covenant description"),
            text_version: self.text(&raw.text_version, "covenant text version"),
        }
    }

    fn legal_basis(&mut self, b: &Spanned<RawLegalBasis>) -> LegalBasis {
        let raw = b.get_ref();
        let taken = self.known.legal_bases.contains_key(raw.id.get_ref());
        let id = self.id(&raw.id, "legal basis", taken);
        self.known
            .legal_bases
            .insert(id.clone(), raw.art9_exception);
        let basis = LegalBasis {
            id,
            law: self.text(&raw.law, "law"),
            article: self.text(&raw.article, "article"),
            text: self.text(&raw.text, "legal basis text"),
            art9_exception: raw.art9_exception,
            source: raw
                .source
                .as_ref()
                .map(|t| t.get_ref().trim().to_string())
                .unwrap_or_default(),
            verified: raw.verified,
        };
        if !basis.verified {
            let source = if basis.source.is_empty() {
                "no source given"
            } else {
                basis.source.as_str()
            };
            self.warn(
                b.span(),
                format!(
                    "legal basis '{}' ({} {}) is not verified (source: {source})",
                    basis.id, basis.law, basis.article
                ),
            );
        }
        basis
    }

    /// Every party should name its own FG, so each node can be inspected by one.
    fn warn_parties_without_fg(&mut self, parties: &[Party], fgs: &[Fg], at: Range<usize>) {
        for p in parties {
            if !fgs.iter().any(|f| f.of.contains(&p.id)) {
                self.warn(
                    at.clone(),
                    format!(
                        "party '{}' names no FG: no one can inspect its node's audit log",
                        p.id
                    ),
                );
            }
        }
    }

    /// A flow or seat that depends on an org type whose parties are all still to be connected.
    fn warn_unconnected<'t>(
        &mut self,
        types: impl Iterator<Item = &'t OrgType>,
        owner: &str,
        at: Range<usize>,
    ) {
        let waiting: BTreeSet<OrgType> = types
            .filter(|t| self.known.org_types.contains(t) && !self.known.connected_types.contains(t))
            .copied()
            .collect();
        for t in waiting {
            self.warn(
                at.clone(),
                format!("{owner} depends on org type {t}, whose parties are still to be connected (aan te haken)"),
            );
        }
    }

    fn purpose(&mut self, p: &Spanned<RawPurpose>) -> Purpose {
        let raw = p.get_ref();
        let taken = self.known.purposes.contains_key(raw.id.get_ref());
        let id = self.id(&raw.id, "purpose", taken);
        self.known.purposes.insert(id.clone(), ());
        Purpose {
            id,
            text: self.text(&raw.text, "purpose text"),
        }
    }

    fn data_category(&mut self, d: &Spanned<RawDataCategory>) -> DataCategory {
        let raw = d.get_ref();
        let taken = self.known.data_categories.contains_key(raw.id.get_ref());
        let id = self.id(&raw.id, "data category", taken);
        let owner = format!("data category '{id}'");
        let category = DataCategory {
            name: self.text(&raw.name, "data category name"),
            fields: self.fields(&raw.fields, &owner, d.span()),
            signal_categories: self.signal_categories(&raw.signal_categories, &owner, d.span()),
            special: raw.special,
            id: id.clone(),
        };
        self.check_health_is_special(&category, d.span());
        self.known.data_categories.insert(id, category.clone());
        category
    }

    fn fields(&mut self, list: &Texts, owner: &str, at: Range<usize>) -> FieldSet {
        if list.is_empty() {
            self.error(
                at,
                format!("{owner} covers no fields"),
                "add fields = [\"pupil_pseudonym\", ...]",
            );
        }
        let mut set = FieldSet::EMPTY;
        for t in list {
            match Field::from_name(t.get_ref()) {
                Some(field) => set.insert(field),
                None => {
                    let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                    self.error(
                        t.span(),
                        format!("unknown field '{}'", t.get_ref()),
                        format!("use one of: {}", names.join(", ")),
                    );
                }
            }
        }
        set
    }

    fn signal_categories(
        &mut self,
        list: &Texts,
        owner: &str,
        at: Range<usize>,
    ) -> Vec<crate::signal::Category> {
        if list.is_empty() {
            self.error(
                at,
                format!("{owner} covers no signal categories"),
                "add signal_categories = [\"LRV\", ...]",
            );
        }
        let mut found = BTreeSet::new();
        for t in list {
            match category_from_code(t.get_ref()) {
                Some(c) => {
                    found.insert(c);
                }
                None => {
                    let codes: Vec<&str> = crate::signal::Category::ALL
                        .iter()
                        .map(|c| c.code())
                        .collect();
                    self.error(
                        t.span(),
                        format!("unknown signal category '{}'", t.get_ref()),
                        format!("use one of: {}", codes.join(", ")),
                    );
                }
            }
        }
        found.into_iter().collect()
    }

    /// Health rows (LANGDURIG_ZIEK, VRIJSTELLING_5A) are special-category data (AVG art. 9).
    fn check_health_is_special(&mut self, d: &DataCategory, at: Range<usize>) {
        use crate::signal::Category::{LangdurigZiek, Vrijstelling5a};
        let health = d
            .signal_categories
            .iter()
            .any(|c| matches!(c, LangdurigZiek | Vrijstelling5a));
        if health && !d.special {
            self.error(
                at,
                format!("data category '{}' covers health data (LANGDURIG_ZIEK or VRIJSTELLING_5A) but is not marked special", d.id),
                "add special = true (AVG art. 9), or move the health rows to a special data category",
            );
        }
    }

    fn party(&mut self, p: &Spanned<RawParty>) -> Party {
        let raw = p.get_ref();
        let taken = self.known.parties.contains_key(raw.id.get_ref());
        let id = self.id(&raw.id, "party", taken);
        let owner = format!("party '{id}'");
        let oin = self.oin(&raw.oin, &owner);
        if let Some(oin) = &oin {
            if !self.known.party_oins.insert(oin.to_string()) {
                self.error(
                    raw.oin.span(),
                    format!("OIN {oin} is used by two parties"),
                    "give each party its own OIN",
                );
            }
        }
        let oin = oin.unwrap_or_else(Oin::stand_in);
        let org_type = self.org_type(&raw.org_type);
        self.known.parties.insert(id.clone(), org_type);
        self.known.org_types.insert(org_type);
        let connected = match raw.status.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("aangesloten") => true,
            Some("aan-te-haken") => false,
            Some(other) => {
                let span = raw.status.as_ref().map_or(p.span(), |t| t.span());
                self.error(
                    span,
                    format!("{owner} has unknown status '{other}'"),
                    "write status = \"aangesloten\" or status = \"aan-te-haken\"",
                );
                true
            }
        };
        if connected {
            self.known.connected_types.insert(org_type);
        }
        let scope_at = p.span();
        Party {
            connected,
            name: self.text(&raw.name, "party name"),
            municipalities: self.municipalities(raw, org_type, &owner, scope_at.clone()),
            schools: self.schools(raw, org_type, &owner, scope_at),
            region: raw.region.as_ref().map(|r| self.text(r, "region")),
            pseudonyms_per_day: raw.pseudonyms_per_day.as_ref().map_or(0, |q| *q.get_ref()),
            id,
            oin,
            org_type,
        }
    }

    fn municipalities(
        &mut self,
        raw: &RawParty,
        org_type: OrgType,
        owner: &str,
        at: Range<usize>,
    ) -> Vec<MunicipalityCode> {
        let list = &raw.municipalities;
        match (org_type == OrgType::Gemeente, list.first()) {
            (true, None) => self.error(
                at,
                format!("{owner} is a gemeente but lists no municipalities"),
                "add municipalities = [\"GM0014\"] (CBS codes)",
            ),
            (false, Some(first)) => self.error(
                first.span(),
                format!("{owner} is not a gemeente but lists municipalities"),
                "remove municipalities; only a gemeente has residents in scope",
            ),
            _ => {}
        }
        let mut codes = Vec::with_capacity(list.len());
        for t in list {
            match t.get_ref().parse() {
                Ok(code) => codes.push(code),
                Err(_) => self.error(
                    t.span(),
                    format!("'{}' is not a CBS municipality code", t.get_ref()),
                    "write GM followed by 4 digits, e.g. GM0014",
                ),
            }
        }
        codes
    }

    fn schools(
        &mut self,
        raw: &RawParty,
        org_type: OrgType,
        owner: &str,
        at: Range<usize>,
    ) -> Vec<Brin> {
        let list = &raw.schools;
        let has_schools = matches!(org_type, OrgType::Swv | OrgType::Mbo);
        match (has_schools, list.first()) {
            (true, None) => self.error(
                at,
                format!("{owner} is an {org_type} but lists no schools"),
                "add schools = [\"20XY\"] (BRIN codes)",
            ),
            (false, Some(first)) => self.error(
                first.span(),
                format!("{owner} is a {org_type} and cannot list schools"),
                "remove schools; only an swv or mbo has schools in scope",
            ),
            _ => {}
        }
        let mut brins = Vec::with_capacity(list.len());
        for t in list {
            match t.get_ref().parse() {
                Ok(brin) => brins.push(brin),
                Err(_) => self.error(
                    t.span(),
                    format!("'{}' is not a BRIN code", t.get_ref()),
                    "write two digits and two capitals, e.g. 20XY (without the vestiging)",
                ),
            }
        }
        brins
    }

    /// A revoked certificate: a fingerprint (`sha256:` and 64 hex digits, colons allowed) or a
    /// serial number (hex, colons allowed), not both.
    fn revoked(&mut self, r: &Spanned<RawRevoked>) -> Revoked {
        let raw = r.get_ref();
        let reason = raw.reason.as_ref().map(|t| t.get_ref().trim().to_owned());
        let fix = "write `fingerprint = \"sha256:<64 hex digits>\"` or `serial = \"<hex>\"` \
                   (the certificate's SHA-256 fingerprint or serial number), one per [[revoked]]";
        let (fingerprint, serial) = match (&raw.fingerprint, &raw.serial) {
            (Some(f), None) => {
                let text = f.get_ref().trim();
                let hex = normal_hex(text.strip_prefix("sha256:").unwrap_or(text));
                if hex.as_ref().is_none_or(|h| h.len() != 64) {
                    self.error(
                        f.span(),
                        format!("fingerprint '{text}' is not a SHA-256 fingerprint"),
                        fix,
                    );
                }
                (hex, None)
            }
            (None, Some(s)) => {
                let text = s.get_ref().trim();
                let hex = normal_hex(text).map(|h| h.trim_start_matches("00").to_owned());
                if hex.as_ref().is_none_or(|h| h.is_empty() || h.len() > 42) {
                    self.error(
                        s.span(),
                        format!("serial '{text}' is not a certificate serial number"),
                        fix,
                    );
                }
                (None, hex)
            }
            _ => {
                self.error(
                    r.span(),
                    "a [[revoked]] certificate needs a fingerprint or a serial, not both",
                    fix,
                );
                (None, None)
            }
        };
        Revoked {
            fingerprint,
            serial,
            reason: reason.unwrap_or_default(),
        }
    }

    fn fg(&mut self, f: &Spanned<RawFg>) -> Fg {
        let raw = f.get_ref();
        let name = self.text(&raw.name, "FG name");
        let oin = self
            .oin(&raw.oin, &format!("FG '{name}'"))
            .unwrap_or_else(Oin::stand_in);
        if self.known.party_oins.contains(oin.as_str()) {
            self.error(
                raw.oin.span(),
                format!("FG '{name}' has the OIN of a party"),
                "give the FG its own certificate and OIN, so a party's node cannot act as FG",
            );
        }
        let parties = self.known.parties.clone();
        let of = self.refs(
            &raw.of,
            &parties,
            "party",
            &format!("FG '{name}'"),
            f.span(),
        );
        Fg { oin, name, of }
    }

    fn routine_flow(&mut self, f: &Spanned<RawRoutineFlow>) -> RoutineFlow {
        let raw = f.get_ref();
        let taken = !self.known.flows.insert(raw.id.get_ref().clone());
        let id = self.id(&raw.id, "routine flow", taken);
        let owner = format!("routine flow '{id}'");
        if raw.from.is_empty() {
            self.error(
                f.span(),
                format!("{owner} names no org type in from"),
                "add from = [\"swv\", ...]: the org types that hold the data",
            );
        }
        let from: Vec<OrgType> = raw.from.iter().map(|t| self.org_type(t)).collect();
        if raw.to.is_empty() {
            self.error(
                f.span(),
                format!("{owner} names no org type in to"),
                "add to = [\"gemeente\"]: the org types that receive the data",
            );
        }
        let to: Vec<OrgType> = raw.to.iter().map(|t| self.org_type(t)).collect();
        let scope = self.flow_scope(&raw.scope, &to, &owner);
        let legal_bases = self.refs(
            &raw.legal_bases,
            &self.known.legal_bases.clone(),
            "legal basis",
            &owner,
            f.span(),
        );
        let purpose = self
            .reference(&raw.purpose, &self.known.purposes.clone(), "purpose")
            .unwrap_or_default();
        let data_categories = self.refs(
            &raw.data_categories,
            &self.known.data_categories.clone(),
            "data category",
            &owner,
            f.span(),
        );
        let processing_activity =
            self.processing_activity(raw.processing_activity.as_ref(), &owner, f.span());
        let grant = self.grant(&data_categories, &legal_bases, &owner, f.span());
        if grant.special {
            self.error(
                f.span(),
                format!("{owner} carries special-category data as a routine flow: standing access to health data"),
                "share special-category data only in a case about one pupil (a [[meeting]]), never in a routine flow",
            );
        }
        self.warn_missing_types(from.iter().chain(&to), &owner, f.span());
        self.warn_unconnected(from.iter().chain(&to), &owner, f.span());
        RoutineFlow {
            rule: format!("routine_flow {id}"),
            name: self.text(&raw.name, "routine flow name"),
            role: self.text(&raw.role, "role"),
            id,
            from,
            to,
            legal_bases,
            purpose,
            data_categories,
            scope,
            processing_activity,
            grant,
        }
    }

    fn flow_scope(&mut self, t: &Text, to: &[OrgType], owner: &str) -> FlowScope {
        let Some(scope) = FlowScope::from_code(t.get_ref()) else {
            self.error(
                t.span(),
                format!("unknown scope '{}'", t.get_ref()),
                "use residents, schools, own or none",
            );
            return FlowScope::None;
        };
        if scope == FlowScope::None {
            self.warn(
                t.span(),
                format!("{owner} has scope none: the receiver sees signals of every pupil"),
            );
        }
        for &receiver in to {
            if !scope_fits(scope, receiver) {
                self.error(
                    t.span(),
                    format!("{owner} has scope {} but goes to {receiver}, which has no such scope", scope.code()),
                    "residents fits a gemeente, schools an swv or mbo, own any of these; use none only with the FG's consent",
                );
            }
        }
        scope
    }

    fn processing_activity(&mut self, t: Option<&Text>, owner: &str, at: Range<usize>) -> String {
        match t {
            Some(t) => self.text(t, "processing activity"),
            None => {
                self.error(at, format!("{owner} names no processing activity"), "add processing_activity = \"...\" (its id in the register of processing activities)");
                String::new()
            }
        }
    }

    /// What a rule's data categories grant; special data needs an AVG art. 9(2) exception.
    fn grant(
        &mut self,
        data_categories: &[String],
        legal_bases: &[String],
        owner: &str,
        at: Range<usize>,
    ) -> Grant {
        let mut grant = Grant {
            data_categories: data_categories.to_vec(),
            fields: FieldSet::EMPTY,
            signal_categories: Vec::new(),
            special: false,
        };
        let mut rows = BTreeSet::new();
        for d in data_categories
            .iter()
            .filter_map(|id| self.known.data_categories.get(id))
        {
            grant.fields = grant.fields.union(d.fields);
            rows.extend(d.signal_categories.iter().copied());
            grant.special |= d.special;
        }
        grant.signal_categories = rows.into_iter().collect();
        let exception = legal_bases
            .iter()
            .any(|b| self.known.legal_bases.get(b) == Some(&true));
        if grant.special && !exception {
            self.error(
                at,
                format!("{owner} receives special-category data but none of its legal bases is an AVG art. 9(2) exception"),
                "add a legal basis with art9_exception = true (e.g. AVG art. 9(2)(h)), or remove the special data category",
            );
        }
        grant
    }

    fn warn_missing_types<'t>(
        &mut self,
        types: impl Iterator<Item = &'t OrgType>,
        owner: &str,
        at: Range<usize>,
    ) {
        let missing: BTreeSet<OrgType> = types
            .filter(|t| !self.known.org_types.contains(t))
            .copied()
            .collect();
        for t in missing {
            self.warn(
                at.clone(),
                format!("{owner} names org type {t}, but no party is a {t}"),
            );
        }
    }

    fn meeting(&mut self, m: &Spanned<RawMeeting>) -> Meeting {
        let raw = m.get_ref();
        let taken = !self.known.meetings.insert(raw.id.get_ref().clone());
        let id = self.id(&raw.id, "meeting", taken);
        let owner = format!("meeting '{id}'");
        let purposes = self.refs(
            &raw.purposes,
            &self.known.purposes.clone(),
            "purpose",
            &owner,
            m.span(),
        );
        let mut participants: Vec<Participant> = Vec::new();
        for p in &raw.participant {
            let seat = self.participant(p, &id, &purposes);
            if participants
                .iter()
                .any(|q| q.org_type == seat.org_type && q.role == seat.role)
            {
                self.error(
                    p.span(),
                    format!("{owner} has two seats for {}:{}", seat.org_type, seat.role),
                    "merge them into one [[meeting.participant]]",
                );
            }
            participants.push(seat);
        }
        if participants.is_empty() {
            self.error(
                m.span(),
                format!("{owner} has no participants"),
                "add [[meeting.participant]] tables",
            );
        }
        let processing_activities = self.meeting_activities(raw, &owner);
        let lead = self.meeting_lead(m, &participants, &owner);
        let needs_acceptance = self.meeting_acceptance(raw, &owner);
        let max_pupils = self.meeting_max_pupils(raw, &owner);
        let may_record_offer = self.meeting_offer_makers(raw, &participants, &owner);
        Meeting {
            name: self.text(&raw.name, "meeting name"),
            description: self.text(&raw.description, "meeting description"),
            id,
            purposes,
            participants,
            processing_activities,
            lead,
            needs_acceptance,
            max_pupils,
            may_record_offer,
        }
    }

    /// The org types that may record a care offer in a case: each with a seat at the meeting.
    fn meeting_offer_makers(
        &mut self,
        raw: &RawMeeting,
        participants: &[Participant],
        owner: &str,
    ) -> Vec<OrgType> {
        let mut makers = Vec::new();
        for t in &raw.may_record_offer {
            let org_type = self.org_type(t);
            if !participants.iter().any(|p| p.org_type == org_type) {
                self.error(
                    t.span(),
                    format!("{owner} lets a {org_type} record a care offer, but a {org_type} has no seat"),
                    "add a [[meeting.participant]] for it or remove it from may_record_offer",
                );
            }
            if !makers.contains(&org_type) {
                makers.push(org_type);
            }
        }
        makers
    }

    /// The org types that may lead a case: named, each with a seat and a scope of its own.
    fn meeting_lead(
        &mut self,
        m: &Spanned<RawMeeting>,
        participants: &[Participant],
        owner: &str,
    ) -> Vec<OrgType> {
        let raw = m.get_ref();
        if raw.lead.is_empty() {
            self.error(
                m.span(),
                format!("{owner} names no lead"),
                "add lead = [\"swv\"]: the org types that may open and share a case of this meeting",
            );
        }
        let mut lead = Vec::new();
        for t in &raw.lead {
            let org_type = self.org_type(t);
            if !participants.iter().any(|p| p.org_type == org_type) {
                self.error(
                    t.span(),
                    format!("{owner} lets a {org_type} lead, but a {org_type} has no seat"),
                    "add a [[meeting.participant]] for it or remove it from lead",
                );
            }
            if !matches!(org_type, OrgType::Gemeente | OrgType::Swv | OrgType::Mbo) {
                self.error(
                    t.span(),
                    format!("{owner} lets a {org_type} lead, but a {org_type} has no scope (municipalities or schools) to bound a case's reads"),
                    "let a gemeente, swv or mbo lead",
                );
            }
            if !lead.contains(&org_type) {
                lead.push(org_type);
            }
        }
        lead
    }

    fn meeting_acceptance(&mut self, raw: &RawMeeting, owner: &str) -> bool {
        match &raw.needs_acceptance {
            Some(flag) if !*flag.get_ref() => {
                self.warn(
                    flag.span(),
                    format!("{owner} needs no acceptance: a shared case grants access at a participant's node as soon as it arrives"),
                );
                false
            }
            _ => true,
        }
    }

    fn meeting_max_pupils(&mut self, raw: &RawMeeting, owner: &str) -> usize {
        let Some(max) = &raw.max_pupils else {
            return DEFAULT_MAX_PUPILS;
        };
        match usize::try_from(*max.get_ref()) {
            Ok(n) if (1..=MAX_PUPILS_CEILING).contains(&n) => n,
            _ => {
                self.error(
                    max.span(),
                    format!("{owner} has max_pupils = {}", max.get_ref()),
                    format!("a case is about a child and perhaps its siblings: use 1 to {MAX_PUPILS_CEILING} (default {DEFAULT_MAX_PUPILS})"),
                );
                DEFAULT_MAX_PUPILS
            }
        }
    }

    fn participant(
        &mut self,
        p: &Spanned<RawParticipant>,
        meeting: &str,
        meeting_purposes: &[String],
    ) -> Participant {
        let raw = p.get_ref();
        let org_type = self.org_type(&raw.org_type);
        let role = self.text(&raw.role, "role");
        let owner = format!("participant {org_type}:{role} of meeting '{meeting}'");
        let legal_bases = self.refs(
            &raw.legal_bases,
            &self.known.legal_bases.clone(),
            "legal basis",
            &owner,
            p.span(),
        );
        let purposes = self.refs(
            &raw.purposes,
            &self.known.purposes.clone(),
            "purpose",
            &owner,
            p.span(),
        );
        self.check_subset(&raw.purposes, meeting_purposes, &owner, meeting);
        let data_categories = self.refs(
            &raw.data_categories,
            &self.known.data_categories.clone(),
            "data category",
            &owner,
            p.span(),
        );
        let grant = self.grant(&data_categories, &legal_bases, &owner, p.span());
        self.warn_missing_types([org_type].iter(), &owner, p.span());
        self.warn_unconnected([org_type].iter(), &owner, p.span());
        Participant {
            rule: format!("meeting {meeting} / participant {org_type}:{role}"),
            org_type,
            role,
            legal_bases,
            purposes: purposes
                .into_iter()
                .filter(|p| meeting_purposes.contains(p))
                .collect(),
            data_categories,
            grant,
        }
    }

    fn check_subset(
        &mut self,
        purposes: &Texts,
        meeting_purposes: &[String],
        owner: &str,
        meeting: &str,
    ) {
        for t in purposes {
            let known = self.known.purposes.contains_key(t.get_ref());
            if known && !meeting_purposes.contains(t.get_ref()) {
                self.error(
                    t.span(),
                    format!(
                        "purpose '{}' of {owner} is not a purpose of meeting '{meeting}'",
                        t.get_ref()
                    ),
                    format!(
                        "add it to the meeting's purposes or remove it here (meeting purposes: {})",
                        meeting_purposes.join(", ")
                    ),
                );
            }
        }
    }

    fn meeting_activities(&mut self, raw: &RawMeeting, owner: &str) -> BTreeMap<String, String> {
        let mut activities = BTreeMap::new();
        for (purpose, activity) in &raw.processing_activities {
            if !raw.purposes.iter().any(|p| p.get_ref() == purpose) {
                self.error(activity.span(), format!("{owner} has a processing activity for '{purpose}', which is not one of its purposes"), "remove the line or add the purpose to the meeting's purposes");
            }
            activities.insert(purpose.clone(), self.text(activity, "processing activity"));
        }
        for p in &raw.purposes {
            if !raw.processing_activities.contains_key(p.get_ref()) {
                let fix = format!(
                    "add {} = \"...\" under [meeting.processing_activities]",
                    p.get_ref()
                );
                self.error(
                    p.span(),
                    format!(
                        "purpose '{}' of {owner} has no processing activity",
                        p.get_ref()
                    ),
                    fix,
                );
            }
        }
        activities
    }
}

/// Whether a receiver of this org type has the scope a flow asks for.
fn scope_fits(scope: FlowScope, receiver: OrgType) -> bool {
    let has_schools = matches!(receiver, OrgType::Swv | OrgType::Mbo);
    match scope {
        FlowScope::Residents => receiver == OrgType::Gemeente,
        FlowScope::Schools => has_schools,
        FlowScope::Own => has_schools || receiver == OrgType::Gemeente,
        FlowScope::None => true,
    }
}

/// Hex digits with `:` and spaces removed, lowercase; `None` if anything else is in it.
fn normal_hex(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_certificates_are_normalised_and_bad_ones_named() {
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/groningen.toml"),
        )
        .unwrap();
        let fp = "AB:".repeat(31) + "AB";
        let good = format!(
            "{shipped}\n[[revoked]]\nfingerprint = \"sha256:{fp}\"\n[[revoked]]\nserial = \"00:40:12\"\n"
        );
        let checked = check(&good, "p.toml").expect("valid revocations");
        assert_eq!(checked.revoked[0].fingerprint, Some("ab".repeat(32)));
        assert_eq!(checked.revoked[1].serial.as_deref(), Some("4012"));
        for bad in [
            "fingerprint = \"sha256:abcd\"",
            "serial = \"xyz\"",
            "fingerprint = \"ab\"\nserial = \"01\"",
            "reason = \"no certificate named\"",
        ] {
            let text = format!("{shipped}\n[[revoked]]\n{bad}\n");
            let errors = check(&text, "p.toml").expect_err(bad);
            assert!(errors.0[0].fix.contains("[[revoked]]"), "{bad}: {errors}");
        }
    }

    #[test]
    fn lines_are_one_based() {
        let p = crate::toml_check::Positions::new("a\nbb\n\nc");
        let line = |offset| p.line_col(offset).0;
        assert_eq!(
            [line(0), line(1), line(2), line(5), line(6)],
            [1, 1, 2, 3, 4]
        );
    }
}
