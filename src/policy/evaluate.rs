//! Decides one access request against the covenant: a permit saying what may be seen, or a
//! denial naming the part that did not match. Fails closed (anything unknown is denied); never
//! looks at pupil data, and allocates nothing but the permit or the denial.

use super::model::{FieldSet, FlowScope, Grant, Meeting, OrgType, Participant, Party, RoutineFlow};
use super::Policy;
use crate::cases::{Acceptance, Case};
use crate::ids::{Brin, MunicipalityCode};
use crate::signal::Category;

/// Who asks whom for what, under which basis and for which purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    /// From the caller's mTLS certificate, never from the request.
    pub caller_oin: &'a str,
    /// The node's own party: whose data is asked for.
    pub holder_oin: &'a str,
    /// As the caller claims it.
    pub role: &'a str,
    /// Legal basis id, as claimed.
    pub legal_basis: &'a str,
    /// Purpose id, as claimed.
    pub purpose: &'a str,
    pub context: Context<'a>,
}

/// Under which rule of the covenant the request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context<'a> {
    RoutineFlow { flow: &'a str },
    Case { meeting: &'a str },
}

/// Which signals a permit reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Signals whose residence municipality (CBS code) is listed.
    Municipalities(Vec<MunicipalityCode>),
    /// Signals whose school's BRIN is listed.
    Schools(Vec<Brin>),
    /// No restriction by the policy (a case restricts to its own pupils).
    Unrestricted,
    /// Within both (a case read: the caller's own scope and the case lead's).
    Both(Box<Scope>, Box<Scope>),
}

impl Scope {
    /// A party's own scope: a gemeente's residents, an swv's or mbo's schools; none for a wij,
    /// ggd, jeugdhulp or schoolbestuur (their case reads are bounded by the case's lead).
    pub fn of_party(party: &Party) -> Option<Scope> {
        match party.org_type {
            OrgType::Gemeente => Some(Scope::Municipalities(party.municipalities.clone())),
            OrgType::Swv | OrgType::Mbo => Some(Scope::Schools(party.schools.clone())),
            OrgType::Wij | OrgType::Ggd | OrgType::Jeugdhulp | OrgType::Schoolbestuur => None,
        }
    }

    /// This scope, narrowed to `other` as well.
    fn within(self, other: Scope) -> Scope {
        match self {
            Scope::Unrestricted => other,
            narrow => Scope::Both(Box::new(narrow), Box::new(other)),
        }
    }
}

/// What a permitted request may see and under which rule: the capability every disclosure of
/// pupil data needs. Only [`Policy::evaluate`] makes one, and [`Policy::bind_case`] (and
/// [`Policy::narrow_to_case`]) only narrow it; its fields are private and it cannot be cloned,
/// so holding one is proof of the decision (its fields are visible to the policy module alone,
/// for its tests). A case-context permit reaches no signal until it is
/// bound to the case it names, and then only that case's pupils.
///
/// Code that discloses takes the permit; without one it does not compile:
///
/// ```compile_fail
/// use pactgate::exchange::{select, ExchangeFilter};
/// use pactgate::store::Store;
/// fn disclose(store: &Store, today: chrono::NaiveDate) {
///     let _ = select(store, &ExchangeFilter::default(), today);
/// }
/// ```
///
/// The same code holding a permit compiles:
///
/// ```
/// use pactgate::exchange::{select, ExchangeFilter};
/// use pactgate::policy::Permit;
/// use pactgate::store::Store;
/// fn disclose(store: &Store, permit: &Permit, today: chrono::NaiveDate) {
///     let _ = select(store, permit, &ExchangeFilter::default(), today);
/// }
/// ```
///
/// And a permit cannot be made by hand:
///
/// ```compile_fail
/// let forged = pactgate::policy::Permit::default();
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    /// E.g. "routine_flow verzuimmelding" or "meeting aoj-team-vo / participant gemeente:leerplichtambtenaar".
    pub(super) rule: String,
    pub(super) processing_activity: String,
    /// Data category ids granted.
    pub(super) data_categories: Vec<String>,
    /// The union of the fields of the granted data categories.
    pub(super) fields: FieldSet,
    /// The rows (signal categories) of the granted data categories, in [`Category::ALL`] order.
    pub(super) signal_categories: Vec<Category>,
    pub(super) scope: Scope,
    pub(super) legal_basis: String,
    pub(super) purpose: String,
    pub(super) case: CaseBinding,
}

/// Whether a permit is tied to a case.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CaseBinding {
    /// A routine flow: no case.
    None,
    /// A case context not yet bound to its case: reaches nothing.
    Unbound,
    /// Bound to this case: reaches only its pupils.
    Bound(Box<Case>),
}

impl Permit {
    /// E.g. "routine_flow verzuimmelding" or "meeting aoj-team-vo / participant gemeente:leerplichtambtenaar".
    pub fn rule(&self) -> &str {
        &self.rule
    }

    pub fn processing_activity(&self) -> &str {
        &self.processing_activity
    }

    /// Data category ids granted.
    pub fn data_categories(&self) -> &[String] {
        &self.data_categories
    }

    /// The union of the fields of the granted data categories: all that may leave the node.
    pub fn fields(&self) -> &FieldSet {
        &self.fields
    }

    /// The rows (signal categories) of the granted data categories, in [`Category::ALL`] order.
    pub fn signal_categories(&self) -> &[Category] {
        &self.signal_categories
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn legal_basis(&self) -> &str {
        &self.legal_basis
    }

    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The case the permit is bound to, if any.
    pub fn case(&self) -> Option<&Case> {
        match &self.case {
            CaseBinding::Bound(case) => Some(case),
            CaseBinding::None | CaseBinding::Unbound => None,
        }
    }

    /// Whether the permit is under a case context that is not bound to its case yet (it then
    /// reaches no signal).
    pub fn awaits_case(&self) -> bool {
        self.case == CaseBinding::Unbound
    }
}

/// Why a request was refused: names the part that did not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denial {
    pub reason: String,
}

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Permit(Permit),
    Deny(Denial),
}

impl Decision {
    pub fn is_permit(&self) -> bool {
        matches!(self, Decision::Permit(_))
    }

    pub fn permit(&self) -> Option<&Permit> {
        match self {
            Decision::Permit(p) => Some(p),
            Decision::Deny(_) => None,
        }
    }

    pub fn into_result(self) -> Result<Permit, Denial> {
        match self {
            Decision::Permit(p) => Ok(p),
            Decision::Deny(d) => Err(d),
        }
    }
}

impl Policy {
    /// Decides a request. Permit only if one rule of the covenant matches every part of it.
    pub fn evaluate(&self, request: &AccessRequest<'_>) -> Decision {
        match self.decide(request) {
            Ok(permit) => Decision::Permit(permit),
            Err(reason) => Decision::Deny(Denial { reason }),
        }
    }

    fn decide(&self, r: &AccessRequest<'_>) -> Result<Permit, String> {
        let caller = self.party_by_oin(r.caller_oin).ok_or_else(|| {
            format!(
                "caller OIN '{}' is not a party of the covenant",
                shown(r.caller_oin)
            )
        })?;
        let holder = self.party_by_oin(r.holder_oin).ok_or_else(|| {
            format!(
                "holder OIN '{}' is not a party of the covenant",
                shown(r.holder_oin)
            )
        })?;
        match r.context {
            Context::RoutineFlow { flow } => self.decide_flow(r, caller, holder, flow),
            Context::Case { meeting } => self.decide_case(r, caller, holder, meeting),
        }
    }

    fn decide_flow(
        &self,
        r: &AccessRequest<'_>,
        caller: &Party,
        holder: &Party,
        id: &str,
    ) -> Result<Permit, String> {
        let f = self
            .routine_flow(id)
            .ok_or_else(|| format!("routine flow '{}' does not exist", shown(id)))?;
        check_flow(f, r, caller, holder)?;
        let scope = flow_scope(f.scope, caller);
        Ok(permit(&f.rule, &f.processing_activity, &f.grant, scope, r))
    }

    fn decide_case(
        &self,
        r: &AccessRequest<'_>,
        caller: &Party,
        holder: &Party,
        id: &str,
    ) -> Result<Permit, String> {
        let m = self
            .meeting(id)
            .ok_or_else(|| format!("meeting '{}' does not exist", shown(id)))?;
        let seat = m
            .participant(caller.org_type, r.role)
            .ok_or_else(|| no_seat(m, caller, r.role))?;
        check_seat(m, seat, r)?;
        if !m.has_seat(holder.org_type) {
            return Err(format!(
                "holder '{}' is a {}, which has no seat in meeting '{}'",
                holder.id, holder.org_type, m.id
            ));
        }
        let activity = m.processing_activities.get(r.purpose).ok_or_else(|| {
            format!(
                "purpose '{}' of meeting '{}' has no processing activity",
                r.purpose, m.id
            )
        })?;
        // A case only narrows: the caller never reads beyond its own scope.
        let scope = Scope::of_party(caller).unwrap_or(Scope::Unrestricted);
        Ok(permit(&seat.rule, activity, &seat.grant, scope, r))
    }
}

fn check_flow(
    f: &RoutineFlow,
    r: &AccessRequest<'_>,
    caller: &Party,
    holder: &Party,
) -> Result<(), String> {
    if !f.to.contains(&caller.org_type) {
        return Err(format!(
            "caller '{}' is a {}, but routine flow '{}' goes to {}",
            caller.id,
            caller.org_type,
            f.id,
            codes(&f.to)
        ));
    }
    if !f.from.contains(&holder.org_type) {
        return Err(format!(
            "holder '{}' is a {}, but routine flow '{}' comes from {}",
            holder.id,
            holder.org_type,
            f.id,
            codes(&f.from)
        ));
    }
    if f.role != r.role {
        return Err(format!(
            "role '{}' is not the role of routine flow '{}' (allowed: {})",
            shown(r.role),
            f.id,
            f.role
        ));
    }
    if !f.legal_bases.iter().any(|b| b == r.legal_basis) {
        return Err(format!(
            "legal basis '{}' is not a legal basis of routine flow '{}' (allowed: {})",
            shown(r.legal_basis),
            f.id,
            f.legal_bases.join(", ")
        ));
    }
    if f.purpose != r.purpose {
        return Err(format!(
            "purpose '{}' is not a purpose of routine flow '{}' (allowed: {})",
            shown(r.purpose),
            f.id,
            f.purpose
        ));
    }
    Ok(())
}

/// The scope of a routine flow for this caller; fails closed (empty) if the caller has none.
fn flow_scope(scope: FlowScope, caller: &Party) -> Scope {
    let residents = || Scope::Municipalities(caller.municipalities.clone());
    let schools = || Scope::Schools(caller.schools.clone());
    match scope {
        FlowScope::Residents => residents(),
        FlowScope::Schools => schools(),
        FlowScope::Own if caller.org_type == OrgType::Gemeente => residents(),
        FlowScope::Own => schools(),
        FlowScope::None => Scope::Unrestricted,
    }
}

fn codes(types: &[OrgType]) -> String {
    types
        .iter()
        .map(|t| t.code())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_seat(m: &Meeting, seat: &Participant, r: &AccessRequest<'_>) -> Result<(), String> {
    let who = format!(
        "participant {}:{} in meeting '{}'",
        seat.org_type, seat.role, m.id
    );
    if !seat.legal_bases.iter().any(|b| b == r.legal_basis) {
        return Err(format!(
            "legal basis '{}' is not a legal basis of {who} (allowed: {})",
            shown(r.legal_basis),
            seat.legal_bases.join(", ")
        ));
    }
    if !seat.purposes.iter().any(|p| p == r.purpose) {
        return Err(format!(
            "purpose '{}' is not a purpose of {who} (allowed: {})",
            shown(r.purpose),
            seat.purposes.join(", ")
        ));
    }
    Ok(())
}

fn no_seat(m: &Meeting, caller: &Party, role: &str) -> String {
    if !m.has_seat(caller.org_type) {
        return format!(
            "caller '{}' is a {}, which has no seat in meeting '{}'",
            caller.id, caller.org_type, m.id
        );
    }
    let roles: Vec<&str> = m
        .participants
        .iter()
        .filter(|p| p.org_type == caller.org_type)
        .map(|p| p.role.as_str())
        .collect();
    format!(
        "role '{}' is not a role of {} in meeting '{}' (allowed: {})",
        shown(role),
        caller.org_type,
        m.id,
        roles.join(", ")
    )
}

fn permit(
    rule: &str,
    activity: &str,
    grant: &Grant,
    scope: Scope,
    r: &AccessRequest<'_>,
) -> Permit {
    Permit {
        rule: rule.to_string(),
        processing_activity: activity.to_string(),
        data_categories: grant.data_categories.clone(),
        fields: grant.fields,
        signal_categories: grant.signal_categories.clone(),
        scope,
        legal_basis: r.legal_basis.to_string(),
        purpose: r.purpose.to_string(),
        case: match r.context {
            Context::RoutineFlow { .. } => CaseBinding::None,
            Context::Case { .. } => CaseBinding::Unbound,
        },
    }
}

/// A claimed value as a denial quotes it: at most 64 characters, so junk cannot flood a log.
fn shown(value: &str) -> String {
    crate::pseudonym::withhold_ids(value)
        .chars()
        .take(64)
        .collect()
}

impl Policy {
    /// Whether a case of `meeting` for `purpose` may be led by `lead_oin` with `participant_oin`
    /// at the table: both are parties, the purpose is one of the meeting's, the lead's
    /// organisation type may lead the meeting, and both parties' organisation types have a seat.
    /// Used when a case is opened, when it is shared and when it is read.
    pub fn check_case_parties(
        &self,
        meeting: &str,
        purpose: &str,
        lead_oin: &str,
        participant_oin: &str,
    ) -> Result<(), String> {
        let m = self
            .meeting(meeting)
            .ok_or_else(|| format!("meeting type {:?} is not in the policy", shown(meeting)))?;
        if !m.purposes.iter().any(|p| p == purpose) {
            return Err(format!(
                "purpose {:?} is not a purpose of meeting {} (allowed: {})",
                shown(purpose),
                m.id,
                m.purposes.join(", ")
            ));
        }
        self.check_case_lead(meeting, lead_oin)?;
        for oin in [lead_oin, participant_oin] {
            let party = self
                .party_by_oin(oin)
                .ok_or_else(|| format!("OIN {} is not a party of the covenant", shown(oin)))?;
            if !m.has_seat(party.org_type) {
                return Err(format!(
                    "{} ({}) has no seat at meeting {}",
                    party.name, party.org_type, m.id
                ));
            }
        }
        Ok(())
    }
}

impl Policy {
    /// Whether the party with `lead_oin` may lead a case of `meeting` (its org type is one of
    /// the meeting's `lead`).
    pub fn check_case_lead(&self, meeting: &str, lead_oin: &str) -> Result<(), String> {
        let m = self
            .meeting(meeting)
            .ok_or_else(|| format!("meeting type {:?} is not in the policy", shown(meeting)))?;
        let lead = self.party_by_oin(lead_oin).ok_or_else(|| {
            format!(
                "lead OIN {} is not a party of the covenant",
                shown(lead_oin)
            )
        })?;
        if !m.may_lead(lead.org_type) {
            return Err(format!(
                "{} ({}) may not lead a case of meeting {} (lead: {})",
                lead.name,
                lead.org_type,
                m.id,
                codes(&m.lead)
            ));
        }
        Ok(())
    }

    /// A case-context permit narrowed to the scope of the case's lead, so that a case never
    /// reaches pupils outside both the caller's and the lead's scope.
    pub fn narrow_to_case(&self, mut permit: Permit, lead_oin: &str) -> Result<Permit, String> {
        let lead = self.party_by_oin(lead_oin).ok_or_else(|| {
            format!(
                "lead OIN {} is not a party of the covenant",
                shown(lead_oin)
            )
        })?;
        let scope = Scope::of_party(lead)
            .ok_or_else(|| format!("the case's lead {} has no scope of its own", lead.name))?;
        permit.scope = permit.scope.within(scope);
        Ok(permit)
    }
}

/// The claim's own words about the case it reads under, checked against the case held here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseClaim<'a> {
    pub meeting_type: &'a str,
    pub purpose: &'a str,
    /// From the caller's certificate.
    pub caller_oin: &'a str,
    /// The node's own organisation.
    pub holder_oin: &'a str,
}

impl Policy {
    /// Binds a case-context permit to the case this node holds: the case must be of the claimed
    /// meeting, open, accepted here (unless the meeting needs no acceptance), for the claimed
    /// purpose, with caller and this node at the table, still within the policy's lead and
    /// size. The permit is then narrowed to the case's pupils and to the lead's scope. A permit
    /// of a routine flow, or one already bound, is refused.
    pub fn bind_case(
        &self,
        permit: Permit,
        case: Case,
        claim: &CaseClaim<'_>,
    ) -> Result<Permit, Denial> {
        if !permit.awaits_case() {
            return Err(denial("the permit is not for a case context".into()));
        }
        self.check_case(&case, claim).map_err(denial)?;
        let mut permit = self
            .narrow_to_case(permit, &case.lead.oin)
            .map_err(denial)?;
        permit.case = CaseBinding::Bound(Box::new(case));
        Ok(permit)
    }

    fn check_case(&self, case: &Case, claim: &CaseClaim<'_>) -> Result<(), String> {
        if case.meeting_type != claim.meeting_type {
            return Err(format!(
                "case {} belongs to meeting {:?}, not {:?}",
                case.id,
                case.meeting_type,
                crate::pseudonym::withhold_ids(claim.meeting_type)
            ));
        }
        if !case.open {
            return Err(format!("case {} is closed", case.id));
        }
        let Some(meeting) = self.meeting(&case.meeting_type) else {
            return Err(format!(
                "case {} belongs to meeting {:?}, which the policy no longer has",
                case.id, case.meeting_type
            ));
        };
        if meeting.needs_acceptance && case.acceptance != Acceptance::Accepted {
            return Err(format!(
                "case {} has not been accepted by this node's organisation ({}); it grants nothing here until then",
                case.id,
                match case.acceptance {
                    Acceptance::Declined => "it declined it",
                    _ => "pending: `pactgate case accept`",
                }
            ));
        }
        if case.purpose != claim.purpose {
            return Err(format!(
                "purpose {:?} of the query is not the purpose of case {} ({})",
                shown(claim.purpose),
                case.id,
                case.purpose
            ));
        }
        if case.pupils.len() > meeting.max_pupils {
            return Err(format!(
                "case {} covers {} pupils; meeting {} allows at most {}",
                case.id,
                case.pupils.len(),
                meeting.id,
                meeting.max_pupils
            ));
        }
        if let Err(reason) = self.check_case_lead(&case.meeting_type, &case.lead.oin) {
            return Err(format!("case {}: {reason}", case.id));
        }
        if !case.has_participant(claim.caller_oin) {
            return Err(format!("the caller does not take part in case {}", case.id));
        }
        if !case.has_participant(claim.holder_oin) {
            return Err(format!(
                "this node's organisation does not take part in case {}",
                case.id
            ));
        }
        Ok(())
    }
}

fn denial(reason: String) -> Denial {
    Denial { reason }
}
