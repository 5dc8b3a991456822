//! `pactgate.v1.Cases`: a partner's own system opens and closes cases at its own node, which
//! checks them against the policy and tells every participant's node over mTLS. Only the node's
//! own organisation may call it; only the lead may close a case.

use super::convert;
use crate::audit::{Action, Decision as AuditDecision, NewEntry};
use crate::cases::{self, Case, Party};
use crate::identity::Organisation;
use crate::node::{entry, NodeContext};
use crate::pb;
use crate::pb::cases_server::Cases;
use crate::pb::exchange_client::ExchangeClient;
use crate::pseudonym::is_pseudonym;
use crate::trace::TraceContext;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// How long a participant's node may take to acknowledge a shared case.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);

pub struct CasesService {
    node: Arc<NodeContext>,
}

impl CasesService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }

    /// Builds a new case from the request, checked against the policy.
    fn new_case(&self, req: &pb::OpenCaseRequest) -> Result<Case, Status> {
        let policy = self.node.policy.current().ok_or_else(|| {
            Status::failed_precondition("this node has no covenant policy loaded")
        })?;
        super::refuse_id_like("meeting_type", &req.meeting_type)?;
        super::refuse_id_like("purpose", &req.purpose)?;
        super::refuse_id_like("actor", &req.actor)?;
        for (i, oin) in req.participant_oins.iter().enumerate() {
            super::refuse_non_oin(&format!("participant_oins[{i}]"), oin)?;
        }
        if req.pupil_pseudonyms.is_empty() {
            return Err(Status::invalid_argument(
                "pupil_pseudonyms: a case needs at least one pupil",
            ));
        }
        if let Some(i) = req.pupil_pseudonyms.iter().position(|p| !is_pseudonym(p)) {
            return Err(Status::invalid_argument(format!(
                "pupil_pseudonyms[{i}] is not a pseudonym; compute it with `pactgate pseudonym`"
            )));
        }
        let mut participants = Vec::new();
        for (i, oin) in req.participant_oins.iter().enumerate() {
            let party = policy.party_by_oin(oin).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "participant_oins[{i}]: OIN {} is not a party of the covenant",
                    crate::pseudonym::withhold_ids(oin)
                ))
            })?;
            policy
                .check_case_parties(&req.meeting_type, &req.purpose, &self.node.own.oin, oin)
                .map_err(|reason| {
                    Status::permission_denied(format!("participant_oins[{i}]: {reason}"))
                })?;
            participants.push(Party {
                oin: party.oin.clone(),
                name: party.name.clone(),
            });
        }
        Ok(Case {
            id: cases::new_case_id(),
            meeting_type: req.meeting_type.clone(),
            purpose: req.purpose.clone(),
            pupils: req.pupil_pseudonyms.clone(),
            participants,
            lead: Party::from(&self.node.own),
            open: true,
            opened_at: chrono::Utc::now(),
            closed_at: None,
        })
    }

    /// An audit entry about a case.
    fn case_entry(
        &self,
        trace: &TraceContext,
        caller: &Organisation,
        actor: &str,
        action: Action,
        case: Option<&Case>,
    ) -> NewEntry {
        let mut e = entry(trace, caller, actor, action, &self.node.policy_version());
        if let Some(case) = case {
            e.case_id = case.id.clone();
            e.meeting_type = case.meeting_type.clone();
            e.purpose = case.purpose.clone();
            e.pupils = case.pupils.clone();
            e.processing_activity = self
                .node
                .policy
                .current()
                .and_then(|p| {
                    p.meeting(&case.meeting_type)
                        .and_then(|m| m.processing_activities.get(&case.purpose).cloned())
                })
                .unwrap_or_default();
        }
        e
    }

    /// Stores the case and tells every participant's node; returns those that could not be told.
    async fn store_and_share(
        &self,
        case: &Case,
        trace: &TraceContext,
    ) -> Result<Vec<pb::PeerFailure>, Status> {
        let node = self.node.clone();
        let stored = case.clone();
        tokio::task::spawn_blocking(move || node.cases.put(&stored))
            .await
            .map_err(super::task_status)?
            .map_err(super::case_status)?;
        let mut failures = Vec::new();
        for participant in case
            .participants
            .iter()
            .filter(|p| p.oin != self.node.own.oin)
        {
            let Some(peer) = self
                .node
                .peers
                .iter()
                .find(|p| p.config.oin == participant.oin)
            else {
                failures.push(pb::PeerFailure {
                    peer: participant.name.clone(),
                    code: "NOT_FOUND".into(),
                    message: format!("no peer with OIN {} is configured", participant.oin),
                });
                continue;
            };
            let mut client = ExchangeClient::new(peer.channel.clone());
            let mut request = Request::new(pb::ShareCaseRequest {
                case: Some(convert::case_to_pb(case)),
            });
            request.set_timeout(NOTIFY_TIMEOUT);
            trace.inject(&mut request);
            let result = tokio::time::timeout(NOTIFY_TIMEOUT, client.share_case(request)).await;
            let failure = match result {
                Ok(Ok(_)) => continue,
                Ok(Err(status)) => (
                    super::federation::code_name(status.code()),
                    status.message().to_owned(),
                ),
                Err(_) => ("DEADLINE_EXCEEDED".into(), "no answer in time".into()),
            };
            failures.push(pb::PeerFailure {
                peer: peer.config.name.clone(),
                code: failure.0,
                message: failure.1,
            });
        }
        Ok(failures)
    }
}

#[tonic::async_trait]
impl Cases for CasesService {
    async fn open_case(
        &self,
        request: Request<pb::OpenCaseRequest>,
    ) -> Result<Response<pb::CaseResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let case = match self.new_case(request.get_ref()) {
            Ok(case) => case,
            Err(status) => {
                let mut e = self.case_entry(
                    &trace,
                    &caller,
                    &request.get_ref().actor,
                    Action::CaseOpen,
                    None,
                );
                e.meeting_type = request.get_ref().meeting_type.chars().take(100).collect();
                e.decision = AuditDecision::Deny;
                e.reason = status.message().to_owned();
                self.node.record_async(e).await?;
                return Err(status);
            }
        };
        let mut e = self.case_entry(
            &trace,
            &caller,
            &request.get_ref().actor,
            Action::CaseOpen,
            Some(&case),
        );
        e.reason = "case opened".into();
        self.node.record_async(e).await?;
        let not_notified = self.store_and_share(&case, &trace).await?;
        tracing::info!(peer.oin = %caller.oin, case.id = %case.id, case.meeting = %case.meeting_type, "case opened");
        Ok(Response::new(pb::CaseResponse {
            case: Some(convert::case_to_pb(&case)),
            not_notified,
        }))
    }

    async fn close_case(
        &self,
        request: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::CaseResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let actor = request.get_ref().actor.clone();
        let id = request.get_ref().case_id.clone();
        let node = self.node.clone();
        let lookup = id.clone();
        let existing = tokio::task::spawn_blocking(move || node.cases.get(&lookup))
            .await
            .map_err(super::task_status)?
            .map_err(super::case_status)?;
        let mut case = existing.ok_or_else(|| {
            Status::not_found(format!(
                "case {:?} is not known at this node",
                crate::pseudonym::withhold_ids(&id)
            ))
        })?;
        if case.lead.oin != self.node.own.oin {
            return Err(Status::permission_denied(format!(
                "case {id} is led by {}; only the lead may close it",
                case.lead.name
            )));
        }
        case.open = false;
        case.closed_at = Some(chrono::Utc::now());
        let mut e = self.case_entry(&trace, &caller, &actor, Action::CaseClose, Some(&case));
        e.reason = "case closed".into();
        self.node.record_async(e).await?;
        let not_notified = self.store_and_share(&case, &trace).await?;
        tracing::info!(peer.oin = %caller.oin, case.id = %case.id, "case closed");
        Ok(Response::new(pb::CaseResponse {
            case: Some(convert::case_to_pb(&case)),
            not_notified,
        }))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        self.node.authorize_own(&request)?;
        let open_only = request.get_ref().open_only;
        let node = self.node.clone();
        let cases = tokio::task::spawn_blocking(move || node.cases.list(open_only))
            .await
            .map_err(super::task_status)?
            .map_err(super::case_status)?;
        Ok(Response::new(pb::ListCasesResponse {
            cases: cases.iter().map(convert::case_to_pb).collect(),
        }))
    }
}
