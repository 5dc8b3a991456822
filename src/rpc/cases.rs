//! `pactgate.v1.CasesService` over gRPC: a partner's own system opens, closes, accepts,
//! declines and lists cases at its own node. Thin: converts and calls the service layer
//! ([`crate::service::cases`]), which checks, decides and audits; this module only provides the
//! [`GrpcCaseNotifier`] that tells the participants' nodes over mTLS.

use super::convert;
use crate::cases::{CareOffer, Case, Party};
use crate::pb;
use crate::pb::cases_service_server::CasesService;
use crate::pb::exchange_service_client::ExchangeServiceClient;
use crate::peers::Peer;
use crate::service::{
    parse_ids, Caller, CaseNotifier, CaseOutcome, OpenCase, PeerFailure, Service,
};
use crate::trace::TraceContext;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// How long a participant's node may take to acknowledge a shared case.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);

pub use crate::service::cases::{check_pupils, max_pupils, rate_limited};

pub struct CasesHandler {
    service: Service,
}

impl CasesHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// The participants' nodes over gRPC (`ExchangeService/ShareCase`), as the service layer tells them.
pub struct GrpcCaseNotifier<'a> {
    pub peers: &'a [Peer],
    pub own_oin: &'a str,
}

impl GrpcCaseNotifier<'_> {
    /// Calls `call` on the node of each party but this one, within [`NOTIFY_TIMEOUT`]; returns
    /// the parties whose node has no peer entry, refused or did not answer.
    async fn tell<'c, F, Fut>(
        &self,
        parties: impl Iterator<Item = &'c Party>,
        call: F,
    ) -> Vec<PeerFailure>
    where
        F: Fn(ExchangeServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<(), Status>>,
    {
        let mut failures = Vec::new();
        for party in parties.filter(|p| p.oin != self.own_oin) {
            let Some(peer) = self.peers.iter().find(|p| p.config.oin == party.oin) else {
                failures.push(PeerFailure {
                    peer: party.name.clone(),
                    code: "NOT_FOUND".into(),
                    message: format!("no peer with OIN {} is configured", party.oin),
                });
                continue;
            };
            let client = ExchangeServiceClient::new(peer.channel.clone());
            let (code, message) = match tokio::time::timeout(NOTIFY_TIMEOUT, call(client)).await {
                Ok(Ok(())) => continue,
                Ok(Err(status)) => (
                    super::federation::code_name(status.code()),
                    status.message().to_owned(),
                ),
                Err(_) => ("DEADLINE_EXCEEDED".into(), "no answer in time".into()),
            };
            failures.push(PeerFailure {
                peer: peer.config.name.clone(),
                code,
                message,
            });
        }
        failures
    }
}

/// A request to a participant's node, with the notify deadline and the caller's trace.
fn notify_request<T>(message: T, trace: &TraceContext) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(NOTIFY_TIMEOUT);
    trace.inject(&mut request);
    request
}

impl CaseNotifier for GrpcCaseNotifier<'_> {
    async fn share(&self, case: &Case, trace: &TraceContext) -> Vec<PeerFailure> {
        self.tell(case.participants.iter(), |mut client| async move {
            let case = Some(convert::case_to_peer(case));
            let request = notify_request(pb::ShareCaseRequest { case }, trace);
            client.share_case(request).await.map(drop)
        })
        .await
    }

    async fn share_offer(
        &self,
        case: &Case,
        offer: &CareOffer,
        trace: &TraceContext,
    ) -> Vec<PeerFailure> {
        let parties = std::iter::once(&case.lead).chain(&case.participants);
        self.tell(parties, |mut client| async move {
            let offer = Some(convert::care_offer_to_pb(offer));
            let request = notify_request(pb::ShareCaseOfferRequest { offer }, trace);
            client.share_case_offer(request).await.map(drop)
        })
        .await
    }
}

/// The participants' nodes that could not be told.
fn not_notified(failures: Vec<PeerFailure>) -> Vec<pb::PeerFailure> {
    failures
        .into_iter()
        .map(|f| pb::PeerFailure {
            peer: f.peer,
            code: f.code,
            message: f.message,
        })
        .collect()
}

/// The case of an outcome, and the participants' nodes that could not be told.
fn case_and_failures(outcome: CaseOutcome) -> (Option<pb::Case>, Vec<pb::PeerFailure>) {
    let case = Some(convert::case_to_pb(&outcome.case));
    (case, not_notified(outcome.not_notified))
}

impl CasesHandler {
    fn notifier(&self) -> GrpcCaseNotifier<'_> {
        let node = self.service.node();
        GrpcCaseNotifier {
            peers: &node.peers,
            own_oin: &node.own.oin,
        }
    }

    /// Accepts or declines a case shared with this node; returns the case as this node now
    /// holds it (answering tells no other node).
    async fn answer(
        &self,
        caller: &Caller,
        case_id: &str,
        actor: &str,
        accept: bool,
    ) -> Result<Option<pb::Case>, Status> {
        let case = self
            .service
            .answer_case(caller, case_id, actor, accept)
            .await?;
        Ok(Some(convert::case_to_pb(&case)))
    }
}

#[tonic::async_trait]
impl CasesService for CasesHandler {
    async fn record_offer(
        &self,
        request: Request<pb::RecordOfferRequest>,
    ) -> Result<Response<pb::RecordOfferResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let offer = convert::new_offer(req.offer.as_ref())?;
        let outcome = self
            .service
            .record_offer(&caller, offer, &req.actor, &self.notifier())
            .await?;
        Ok(Response::new(pb::RecordOfferResponse {
            offer: Some(convert::care_offer_to_pb(&outcome.offer)),
            not_notified: not_notified(outcome.not_notified),
        }))
    }

    async fn open_case(
        &self,
        request: Request<pb::OpenCaseRequest>,
    ) -> Result<Response<pb::OpenCaseResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let open = OpenCase {
            meeting_type: req.meeting_type,
            purpose: req.purpose,
            actor: req.actor,
            pupil_pseudonyms: parse_ids("pupil_pseudonyms", &req.pupil_pseudonyms)?,
            participant_oins: parse_ids("participant_oins", &req.participant_oins)?,
        };
        let outcome = self
            .service
            .open_case(&caller, open, &self.notifier())
            .await?;
        let (case, not_notified) = case_and_failures(outcome);
        Ok(Response::new(pb::OpenCaseResponse { case, not_notified }))
    }

    async fn close_case(
        &self,
        request: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::CloseCaseResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let outcome = self
            .service
            .close_case(&caller, &req.case_id, &req.actor, &self.notifier())
            .await?;
        let (case, not_notified) = case_and_failures(outcome);
        Ok(Response::new(pb::CloseCaseResponse { case, not_notified }))
    }

    async fn accept_case(
        &self,
        request: Request<pb::AcceptCaseRequest>,
    ) -> Result<Response<pb::AcceptCaseResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let case = self.answer(&caller, &req.case_id, &req.actor, true).await?;
        Ok(Response::new(pb::AcceptCaseResponse { case }))
    }

    async fn decline_case(
        &self,
        request: Request<pb::DeclineCaseRequest>,
    ) -> Result<Response<pb::DeclineCaseResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let case = self
            .answer(&caller, &req.case_id, &req.actor, false)
            .await?;
        Ok(Response::new(pb::DeclineCaseResponse { case }))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let cases = self
            .service
            .list_cases(&caller, request.get_ref().open_only)
            .await?;
        Ok(Response::new(pb::ListCasesResponse {
            cases: cases.iter().map(convert::case_to_pb).collect(),
        }))
    }
}
