//! `pactgate.v1.Exchange` over gRPC: peer nodes ask this node for signals, share cases with it,
//! and ask who it is. Thin for Query and DescribeNode: converts the claim and filter, calls
//! [`Service::answer_query`] (which decides, selects and audits) and renders each signal
//! minimised to the permit's fields. A ShareCase is taken only from a lead that may lead the
//! meeting, never to change a case.

use super::convert;
use crate::audit::NewEntry;
use crate::audit::{Action, Decision as AuditDecision};
use crate::cases::RateLimiter;
use crate::exchange::ExchangeFilter;
use crate::pb;
use crate::pb::exchange_server::Exchange;
use crate::pseudonym::is_pseudonym;
use crate::service::{Claim, ClaimContext, Disclosure, NodeContext, Service, ServiceError};
use crate::trace::TraceContext;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ExchangeService {
    service: Service,
    node: Arc<NodeContext>,
    /// Bounds how fast one organisation shares cases with this node.
    share_limiter: RateLimiter,
}

impl ExchangeService {
    pub fn new(service: Service) -> Self {
        Self {
            node: service.node().clone(),
            service,
            share_limiter: RateLimiter::default(),
        }
    }
}

/// A claim as the service layer takes it.
pub fn claim_from_pb(claim: pb::AccessClaim) -> Claim {
    Claim {
        role: claim.role,
        legal_basis: claim.legal_basis,
        purpose: claim.purpose,
        actor: claim.actor,
        context: claim.context.map(|c| match c {
            pb::access_claim::Context::RoutineFlow(flow) => ClaimContext::RoutineFlow(flow),
            pb::access_claim::Context::CaseRef(case) => ClaimContext::Case {
                meeting_type: case.meeting_type,
                case_id: case.case_id,
            },
        }),
    }
}

/// A claim as a peer takes it.
pub fn claim_to_pb(claim: &Claim) -> pb::AccessClaim {
    pb::AccessClaim {
        role: claim.role.clone(),
        legal_basis: claim.legal_basis.clone(),
        purpose: claim.purpose.clone(),
        actor: claim.actor.clone(),
        context: claim.context.as_ref().map(|c| match c {
            ClaimContext::RoutineFlow(flow) => pb::access_claim::Context::RoutineFlow(flow.clone()),
            ClaimContext::Case {
                meeting_type,
                case_id,
            } => pb::access_claim::Context::CaseRef(pb::CaseRef {
                meeting_type: meeting_type.clone(),
                case_id: case_id.clone(),
            }),
        }),
    }
}

/// The filter of a query as the domain knows it; malformed filters are INVALID_ARGUMENT.
pub fn filter_from(filter: Option<pb::QueryFilter>) -> Result<ExchangeFilter, ServiceError> {
    let f = filter.unwrap_or_default();
    let invalid = |e: crate::signal::FieldError| {
        ServiceError::invalid(format!("filter.{}", e.field), format!("filter: {e}"))
    };
    let residence_municipality = match f.residence_municipality.as_str() {
        "" => None,
        m => Some(crate::signal::check_municipality(m).map_err(invalid)?),
    };
    let school = match f.school.as_str() {
        "" => None,
        c => Some(crate::signal::check_school(c, crate::signal::Category::Lrv).map_err(invalid)?),
    };
    crate::service::check_count(
        "filter.categories",
        f.categories.len(),
        crate::limits::MAX_FILTER_VALUES,
    )?;
    let categories = f
        .categories
        .iter()
        .map(|c| convert::category_from_pb(*c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|r| ServiceError::invalid("filter.categories", format!("filter: category {r}")))?;
    let status =
        match f.status {
            0 => None,
            s => Some(convert::status_from_pb(s).map_err(|r| {
                ServiceError::invalid("filter.status", format!("filter: status {r}"))
            })?),
        };
    Ok(ExchangeFilter {
        residence_municipality,
        school,
        categories,
        status,
        open_longer_than_days: (f.open_longer_than_days > 0).then_some(f.open_longer_than_days),
    })
}

/// An answer as the peer receives it: every signal minimised to the permit's fields.
pub fn query_response(d: &Disclosure) -> pb::QueryResponse {
    pb::QueryResponse {
        signals: d
            .signals
            .iter()
            .map(|s| convert::minimised_view(s, &d.fields))
            .collect(),
        disclosed_fields: convert::field_names(&d.fields),
        holder: Some(convert::organisation(&d.holder)),
        rule: d.rule.clone(),
        processing_activity: d.processing_activity.clone(),
        policy_version: d.policy_version.clone(),
    }
}

/// An audit entry with the request's trace and the acting organisation (for ShareCase).
fn entry(
    trace: &TraceContext,
    org: &crate::identity::Organisation,
    actor: &str,
    action: Action,
    version: &str,
) -> NewEntry {
    NewEntry::new(trace, org, actor, action, version)
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
        let caller = super::service_caller(&request)?;
        let inner = request.into_inner();
        let claim = inner.claim.map(claim_from_pb);
        let filter = filter_from(inner.filter);
        let disclosure = self.service.answer_query(caller, claim, filter).await?;
        Ok(Response::new(query_response(&disclosure)))
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
        let d = self.service.describe();
        Ok(Response::new(pb::DescribeNodeResponse {
            organisation: Some(convert::organisation(&d.organisation)),
            policy_version: d.policy_version,
            covenant: d.covenant,
            audit_log_verifier_key: d.audit_log_verifier_key,
            witness_verifier_key: d.witness_verifier_key,
        }))
    }
}
