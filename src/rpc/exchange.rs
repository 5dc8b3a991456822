//! `pactgate.v1.ExchangeService` over gRPC: peer nodes ask this node for signals, share cases
//! with it, and ask who it is. Thin: converts the claim, filter and case, calls the service layer
//! ([`Service::answer_query`], [`Service::take_shared_case`], [`Service::describe`]), which
//! decides, selects and audits, and renders each signal minimised to the permit's fields.

use super::convert;
use crate::exchange::ExchangeFilter;
use crate::pb;
use crate::pb::exchange_service_server::ExchangeService;
use crate::service::{Claim, ClaimContext, Disclosure, Service, ServiceError};
use tonic::{Request, Response, Status};

pub struct ExchangeHandler {
    service: Service,
}

impl ExchangeHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
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
        c => crate::signal::check_school(c, crate::signal::Category::Lrv).map_err(invalid)?,
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

#[tonic::async_trait]
impl ExchangeService for ExchangeHandler {
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
        let caller = super::service_caller(&request)?;
        let shared = request
            .into_inner()
            .case
            .ok_or_else(|| Status::invalid_argument("case is missing"))?;
        self.service
            .take_shared_case(&caller, convert::shared_case(shared))
            .await?;
        Ok(Response::new(pb::ShareCaseResponse { accepted: true }))
    }

    async fn share_case_offer(
        &self,
        request: Request<pb::ShareCaseOfferRequest>,
    ) -> Result<Response<pb::ShareCaseOfferResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let offer = request.get_ref().offer.as_ref();
        let recorded_by = offer.map_or_else(String::new, |o| o.recorded_by_oin.clone());
        let shared = convert::new_offer(offer)?;
        self.service
            .take_shared_offer(&caller, shared, &recorded_by)
            .await?;
        Ok(Response::new(pb::ShareCaseOfferResponse { accepted: true }))
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
