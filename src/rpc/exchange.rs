//! `pactgate.v1.Exchange`: peer nodes ask this node for signals, share cases with it, and ask
//! who it is. Every Query is decided by the policy (fail closed) and answered with only the
//! fields the caller's role may see; a case only narrows a read (its pupils, its purpose, the
//! caller's and the lead's scope) and counts only once this node's organisation accepted it.
//! A ShareCase is taken only from a lead that may lead the meeting, never to change a case.

use super::convert;
use crate::audit::{Action, Decision as AuditDecision, NewEntry};
use crate::cases::{Acceptance, Case, RateLimiter};
use crate::exchange::{self, ExchangeFilter};
use crate::identity::Organisation;
use crate::node::entry;
use crate::node::NodeContext;
use crate::pb;
use crate::pb::exchange_server::Exchange;
use crate::policy::{AccessRequest, Context, Decision, Permit, Policy};
use crate::pseudonym::is_pseudonym;
use crate::trace::TraceContext;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ExchangeService {
    node: Arc<NodeContext>,
    /// Bounds how fast one organisation shares cases with this node.
    share_limiter: RateLimiter,
}

impl ExchangeService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self {
            node,
            share_limiter: RateLimiter::default(),
        }
    }
}

/// The claim's context as the policy names it.
pub fn context_of(claim: &pb::AccessClaim) -> Result<Context<'_>, Status> {
    match &claim.context {
        Some(pb::access_claim::Context::RoutineFlow(flow)) => Ok(Context::RoutineFlow { flow }),
        Some(pb::access_claim::Context::CaseRef(case)) => Ok(Context::Case {
            meeting: &case.meeting_type,
        }),
        None => Err(Status::permission_denied(
            "denied: the claim names neither a routine_flow nor a case_ref",
        )),
    }
}

/// The filter of a query as the domain knows it; malformed filters are INVALID_ARGUMENT.
pub fn filter_from(filter: Option<pb::QueryFilter>) -> Result<ExchangeFilter, Status> {
    let f = filter.unwrap_or_default();
    let invalid = |e: crate::signal::FieldError| Status::invalid_argument(format!("filter: {e}"));
    let residence_municipality = match f.residence_municipality.as_str() {
        "" => None,
        m => Some(crate::signal::check_municipality(m).map_err(invalid)?),
    };
    let school = match f.school.as_str() {
        "" => None,
        c => crate::signal::check_school(c, crate::signal::Category::Lrv).map_err(invalid)?,
    };
    crate::limits::check_count(
        "filter.categories",
        f.categories.len(),
        crate::limits::MAX_FILTER_VALUES,
    )?;
    let categories = f
        .categories
        .iter()
        .map(|c| convert::category_from_pb(*c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|r| Status::invalid_argument(format!("filter: category {r}")))?;
    let status = match f.status {
        0 => None,
        s => Some(
            convert::status_from_pb(s)
                .map_err(|r| Status::invalid_argument(format!("filter: status {r}")))?,
        ),
    };
    Ok(ExchangeFilter {
        residence_municipality,
        school,
        categories,
        status,
        open_longer_than_days: (f.open_longer_than_days > 0).then_some(f.open_longer_than_days),
    })
}

/// Checks a case-context request against the case this node holds: known, of the claimed
/// meeting, open, accepted here (unless the meeting needs no acceptance), for the claimed
/// purpose, with caller and this node at the table, still within the policy's lead and size.
fn check_case(
    node: &NodeContext,
    policy: &Policy,
    claim: &pb::AccessClaim,
    caller_oin: &str,
) -> Result<Option<Case>, Status> {
    let Some(pb::access_claim::Context::CaseRef(reference)) = &claim.context else {
        return Ok(None);
    };
    let deny = |reason: String| Err(Status::permission_denied(format!("denied: {reason}")));
    let case = node
        .cases
        .get(&reference.case_id)
        .map_err(super::case_status)?;
    let Some(case) = case else {
        return deny(format!(
            "case {:?} is not known at this node",
            crate::pseudonym::withhold_ids(&reference.case_id)
        ));
    };
    if case.meeting_type != reference.meeting_type {
        return deny(format!(
            "case {} belongs to meeting {:?}, not {:?}",
            case.id,
            case.meeting_type,
            crate::pseudonym::withhold_ids(&reference.meeting_type)
        ));
    }
    if !case.open {
        return deny(format!("case {} is closed", case.id));
    }
    let Some(meeting) = policy.meeting(&case.meeting_type) else {
        return deny(format!(
            "case {} belongs to meeting {:?}, which the policy no longer has",
            case.id, case.meeting_type
        ));
    };
    if meeting.needs_acceptance && case.acceptance != Acceptance::Accepted {
        return deny(format!(
            "case {} has not been accepted by this node's organisation ({}); it grants nothing here until then",
            case.id,
            match case.acceptance {
                Acceptance::Declined => "it declined it",
                _ => "pending: `pactgate case accept`",
            }
        ));
    }
    if case.purpose != claim.purpose {
        return deny(format!(
            "purpose {:?} of the query is not the purpose of case {} ({})",
            crate::pseudonym::withhold_ids(&claim.purpose)
                .chars()
                .take(64)
                .collect::<String>(),
            case.id,
            case.purpose
        ));
    }
    if case.pupils.len() > meeting.max_pupils {
        return deny(format!(
            "case {} covers {} pupils; meeting {} allows at most {}",
            case.id,
            case.pupils.len(),
            meeting.id,
            meeting.max_pupils
        ));
    }
    if let Err(reason) = policy.check_case_lead(&case.meeting_type, &case.lead.oin) {
        return deny(format!("case {}: {reason}", case.id));
    }
    if !case.has_participant(caller_oin) {
        return deny(format!("the caller does not take part in case {}", case.id));
    }
    if !case.has_participant(&node.own.oin) {
        return deny(format!(
            "this node's organisation does not take part in case {}",
            case.id
        ));
    }
    Ok(Some(case))
}

/// What an allowed query disclosed, for the audit entry.
struct Disclosure {
    response: pb::QueryResponse,
    permit: Permit,
    pupils: Vec<String>,
}

/// Refuses a claim whose caller-written text could carry a pupil id (INVALID_ARGUMENT naming the
/// field, never echoing it).
pub(super) fn check_claim_text(claim: &pb::AccessClaim) -> Result<(), Status> {
    for (field, text) in [
        ("claim.role", &claim.role),
        ("claim.legal_basis", &claim.legal_basis),
        ("claim.purpose", &claim.purpose),
        ("claim.actor", &claim.actor),
    ] {
        super::refuse_id_like(field, text)?;
    }
    match &claim.context {
        Some(pb::access_claim::Context::RoutineFlow(flow)) => {
            super::refuse_id_like("claim.routine_flow", flow)
        }
        Some(pb::access_claim::Context::CaseRef(case)) => {
            super::refuse_id_like("claim.case_ref.meeting_type", &case.meeting_type)?;
            super::refuse_id_like_case_id("claim.case_ref.case_id", &case.case_id)
        }
        None => Ok(()),
    }
}

/// The policy's decision on a claim by `caller_oin` to this node's data: the active policy and
/// the permit, or PERMISSION_DENIED naming the part that did not match (INVALID_ARGUMENT for
/// claim text that could carry a pupil id). The one place every data-bearing request (queries
/// and counts) is decided.
pub fn permit_for(
    node: &NodeContext,
    caller_oin: &str,
    claim: &pb::AccessClaim,
) -> Result<(Arc<Policy>, Permit), Status> {
    check_claim_text(claim)?;
    let policy = node.policy.current().ok_or_else(|| {
        Status::permission_denied("denied: this node has no covenant policy loaded")
    })?;
    let access = AccessRequest {
        caller_oin,
        holder_oin: &node.own.oin,
        role: &claim.role,
        legal_basis: &claim.legal_basis,
        purpose: &claim.purpose,
        context: context_of(claim)?,
    };
    match policy.evaluate(&access) {
        Decision::Permit(permit) => Ok((policy, permit)),
        Decision::Deny(d) => Err(Status::permission_denied(format!("denied: {}", d.reason))),
    }
}

/// Decides a query and selects what it may see; every refusal is a PERMISSION_DENIED status
/// naming the part that did not match.
fn decide(
    node: &NodeContext,
    caller_oin: &str,
    claim: &pb::AccessClaim,
    filter: Option<pb::QueryFilter>,
) -> Result<Disclosure, Status> {
    let (policy, permit) = permit_for(node, caller_oin, claim)?;
    let case = check_case(node, &policy, claim, caller_oin)?;
    let permit = match &case {
        Some(case) => policy
            .narrow_to_case(permit, &case.lead.oin)
            .map_err(|reason| Status::permission_denied(format!("denied: {reason}")))?,
        None => permit,
    };
    let filter = filter_from(filter)?;
    let today = chrono::Utc::now().date_naive();
    let signals = exchange::select(&node.store, &permit, &filter, case.as_ref(), today)
        .map_err(super::store_status)?;
    let response = pb::QueryResponse {
        signals: signals
            .iter()
            .map(|s| convert::minimised_view(s, &permit.fields))
            .collect(),
        disclosed_fields: convert::field_names(&permit.fields),
        holder: Some(convert::organisation(&node.own)),
        rule: permit.rule.clone(),
        processing_activity: permit.processing_activity.clone(),
        policy_version: policy.version().to_owned(),
    };
    Ok(Disclosure {
        response,
        pupils: super::intake::distinct_pupils(&signals),
        permit,
    })
}

/// The claim's context and purpose on an audit entry.
pub fn claim_entry(
    node: &NodeContext,
    trace: &TraceContext,
    caller: &Organisation,
    claim: &pb::AccessClaim,
    action: Action,
) -> NewEntry {
    let mut e = entry(trace, caller, &claim.actor, action, &node.policy_version());
    e.purpose = claim.purpose.chars().take(100).collect();
    e.legal_basis = claim.legal_basis.chars().take(100).collect();
    match &claim.context {
        Some(pb::access_claim::Context::RoutineFlow(flow)) => {
            e.flow = flow.chars().take(100).collect()
        }
        Some(pb::access_claim::Context::CaseRef(c)) => {
            e.meeting_type = c.meeting_type.chars().take(100).collect();
            e.case_id = c.case_id.chars().take(100).collect();
        }
        None => {}
    }
    e
}

/// Answers a peer's query and audits the decision (durably, before the answer leaves).
pub fn answer(
    node: &NodeContext,
    caller: &Organisation,
    trace: &TraceContext,
    request: pb::QueryRequest,
) -> Result<pb::QueryResponse, Status> {
    let missing = request.claim.is_none();
    let claim = request.claim.unwrap_or_default();
    let decided = if missing {
        Err(Status::permission_denied(
            "denied: the request carries no claim",
        ))
    } else {
        decide(node, &caller.oin, &claim, request.filter)
    };
    match decided {
        Ok(d) => {
            let mut e = claim_entry(node, trace, caller, &claim, Action::Disclose);
            e.processing_activity = d.permit.processing_activity.clone();
            e.data_categories = d.permit.data_categories.clone();
            e.pupils = d.pupils;
            e.count = d.response.signals.len() as u64;
            e.reason = d.permit.rule.clone();
            node.record(e)?;
            tracing::info!(peer.oin = %caller.oin, policy.rule = %d.permit.rule, query.count = d.response.signals.len(), "query answered");
            Ok(d.response)
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            // A malformed or oversized request names no pupil: counted, not logged alone.
            node.gate
                .refusals()
                .note(&caller.oin, &caller.name, crate::limits::reason::INVALID);
            Err(status)
        }
        Err(status) => {
            let mut e = claim_entry(node, trace, caller, &claim, Action::Query);
            e.decision = AuditDecision::Deny;
            e.reason = status.message().to_owned();
            node.record(e)?;
            tracing::info!(peer.oin = %caller.oin, policy.decision = "deny", reason = %status.message(), "query refused");
            Err(status)
        }
    }
}

/// Checks a case shared by `caller_oin` and stores it (or its closing); never changes, widens,
/// re-leads or reopens a case this node already holds. A new case starts pending: it grants
/// nothing here until this node's organisation accepts it.
fn take_shared_case(node: &NodeContext, caller_oin: &str, shared: pb::Case) -> Result<(), Status> {
    let deny = |reason: String| Err(Status::permission_denied(format!("denied: {reason}")));
    let policy = node.policy.current().ok_or_else(|| {
        Status::permission_denied("denied: this node has no covenant policy loaded")
    })?;
    super::cases::check_pupils(
        &shared.pupil_pseudonyms,
        super::cases::max_pupils(&policy, &shared.meeting_type),
        &shared.meeting_type,
        "case.pupil_pseudonyms",
    )?;
    let mut case = convert::case_from_pb(shared)?;
    if case.lead.oin != caller_oin {
        return deny("only the lead of a case may share or close it".into());
    }
    if case.participants.len() > policy.parties().len() {
        return Err(Status::invalid_argument(format!(
            "case.participants: {} organisations; the covenant has {} parties",
            case.participants.len(),
            policy.parties().len()
        )));
    }
    if !case.has_participant(&node.own.oin) || case.lead.oin == node.own.oin {
        return deny("this node's organisation does not take part in the case".into());
    }
    if let Err(reason) =
        policy.check_case_parties(&case.meeting_type, &case.purpose, caller_oin, &node.own.oin)
    {
        return deny(reason);
    }
    for p in &case.participants {
        if let Err(reason) =
            policy.check_case_parties(&case.meeting_type, &case.purpose, caller_oin, &p.oin)
        {
            return deny(format!("participant {}: {reason}", p.oin));
        }
    }
    if let Some(existing) = node.cases.get(&case.id).map_err(super::case_status)? {
        if !existing.same_content(&case) {
            return deny(format!(
                "case {} is already held here with another lead, meeting, purpose, pupils or participants; a case cannot be changed, open a new one",
                case.id
            ));
        }
        if !existing.open {
            return deny(format!(
                "case {} is closed here and cannot be reopened",
                case.id
            ));
        }
        if case.open {
            return Ok(());
        }
        case.acceptance = existing.acceptance;
    }
    node.cases.put(&case).map_err(super::case_status)?;
    tracing::info!(peer.oin = %caller_oin, case.id = %case.id, case.open = case.open, "case shared");
    Ok(())
}

#[tonic::async_trait]
impl Exchange for ExchangeService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let caller = super::caller(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let node = self.node.clone();
        let inner = request.into_inner();
        let response = tokio::task::spawn_blocking(move || answer(&node, &caller, &trace, inner))
            .await
            .map_err(super::task_status)??;
        Ok(Response::new(response))
    }

    async fn share_case(
        &self,
        request: Request<pb::ShareCaseRequest>,
    ) -> Result<Response<pb::ShareCaseResponse>, Status> {
        let caller = super::caller(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let shared = request
            .into_inner()
            .case
            .ok_or_else(|| Status::invalid_argument("case is missing"))?;
        let node = self.node.clone();
        // Over the rate, the refusal is counted per caller and window, not written one by one:
        // flooding ShareCase cannot grow the audit log at will.
        if !self.share_limiter.try_take(&caller.oin) {
            self.node.gate.refusals().note(
                &caller.oin,
                &caller.name,
                crate::limits::reason::CASE_RATE,
            );
            return Err(super::cases::rate_limited("shared"));
        }
        tokio::task::spawn_blocking(move || {
            let mut e = entry(
                &trace,
                &caller,
                "",
                Action::ShareCase,
                &node.policy_version(),
            );
            e.case_id = shared.case_id.chars().take(100).collect();
            e.meeting_type = shared.meeting_type.chars().take(100).collect();
            e.purpose = shared.purpose.chars().take(100).collect();
            // An oversized case is refused; its pupils are not copied into the log.
            if shared.pupil_pseudonyms.len() <= crate::policy::MAX_PUPILS_CEILING {
                e.pupils = shared
                    .pupil_pseudonyms
                    .iter()
                    .filter(|p| is_pseudonym(p))
                    .cloned()
                    .collect();
            }
            e.reason = if shared.open {
                "case shared".into()
            } else {
                "case closed".into()
            };
            let outcome = take_shared_case(&node, &caller.oin, shared);
            if let Err(status) = &outcome {
                e.decision = AuditDecision::Deny;
                e.reason = status.message().to_owned();
            }
            node.record(e)?;
            outcome
        })
        .await
        .map_err(super::task_status)??;
        Ok(Response::new(pb::ShareCaseResponse { accepted: true }))
    }

    async fn describe_node(
        &self,
        request: Request<pb::DescribeNodeRequest>,
    ) -> Result<Response<pb::DescribeNodeResponse>, Status> {
        super::caller(&request)?;
        let policy = self.node.policy.current();
        Ok(Response::new(pb::DescribeNodeResponse {
            organisation: Some(convert::organisation(&self.node.own)),
            policy_version: policy
                .as_ref()
                .map(|p| p.version().to_owned())
                .unwrap_or_default(),
            covenant: policy
                .as_ref()
                .map(|p| p.covenant().name.clone())
                .unwrap_or_default(),
            audit_log_verifier_key: self.node.audit.verifier_key(),
            witness_verifier_key: self.node.witness.verifier_key(),
        }))
    }
}
