//! `pactgate.v1.ClockService` and `pactgate.v1.CountsService` over gRPC: the due list and the G4
//! report for the node's own organisation, and suppressed counts for other parties. Thin: converts and
//! calls the service layer ([`crate::service::clock`]), which gathers, decides and audits.

use super::convert;
use super::federation::GrpcPeers;
use crate::clock;
use crate::pb;
use crate::pb::clock_service_server::ClockService;
use crate::pb::counts_service_server::CountsService;
use crate::service::federation::{timeout_of, PeerFailure};
use crate::service::{Service, ServiceError};
use tonic::{Request, Response, Status};

pub struct ClockHandler {
    service: Service,
}

impl ClockHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

pub struct CountsHandler {
    service: Service,
}

impl CountsHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

fn codes(rows: &[clock::Row]) -> Vec<String> {
    rows.iter().map(|r| r.code().to_owned()).collect()
}

fn failures(failures: Vec<PeerFailure>) -> Vec<pb::PeerFailure> {
    failures
        .into_iter()
        .map(|f| pb::PeerFailure {
            peer: f.peer,
            code: f.code,
            message: f.message,
        })
        .collect()
}

#[tonic::async_trait]
impl ClockService for ClockHandler {
    async fn due(
        &self,
        request: Request<pb::DueRequest>,
    ) -> Result<Response<pb::DueResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let claim = req.claim.map(super::exchange::claim_from_pb);
        let peers = GrpcPeers(&self.service.node().peers);
        let due = self
            .service
            .due(
                &caller,
                &req.at,
                claim,
                &peers,
                None,
                timeout_of(req.timeout_ms),
            )
            .await?;
        Ok(Response::new(pb::DueResponse {
            at: due.at.to_string(),
            lines: due.lines.iter().map(convert::due_line).collect(),
            failures: failures(due.failures),
        }))
    }

    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let claim = req.claim.map(super::exchange::claim_from_pb);
        let peers = GrpcPeers(&self.service.node().peers);
        let wait = timeout_of(req.timeout_ms);
        let g4 = self
            .service
            .g4_report(&caller, &req.rule, &req.at, claim, &peers, None, wait)
            .await?;
        let shown = g4.report;
        let render = |e: clock::RenderError| {
            tracing::error!(error = %e, "report rendering failed");
            Status::from(ServiceError::Internal(format!(
                "the report could not be rendered: {e}"
            )))
        };
        Ok(Response::new(pb::ReportResponse {
            cells: shown.cells.iter().map(convert::report_cell).collect(),
            table: shown.to_table(),
            csv: shown.to_csv().map_err(render)?,
            json: shown.to_json().map_err(render)?,
            svg: shown.to_svg(),
            failures: failures(g4.failures),
            unavailable_rows: codes(&shown.unavailable),
            denominator_municipalities: shown.covered.clone(),
        }))
    }
}

#[tonic::async_trait]
impl CountsService for CountsHandler {
    async fn counts(
        &self,
        request: Request<pb::CountsRequest>,
    ) -> Result<Response<pb::CountsResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let claim = req.claim.map(super::exchange::claim_from_pb);
        let counts = self
            .service
            .counts(&caller, claim, &req.rule, &req.at)
            .await?;
        Ok(Response::new(pb::CountsResponse {
            cells: counts
                .report
                .cells
                .iter()
                .map(convert::report_cell)
                .collect(),
            threshold: counts.threshold,
            holder: Some(convert::organisation(&counts.holder)),
            policy_version: counts.policy_version,
            unavailable_rows: codes(&counts.report.unavailable),
            denominator_municipalities: counts.report.covered.clone(),
        }))
    }
}
