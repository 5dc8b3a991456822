//! `pactgate.v1.Cases`: a partner's own system opens and closes cases at its own node, which
//! checks them against the policy and tells every participant's node over mTLS, and accepts or
//! declines the cases shared with it. Only the node's own organisation may call it; only the
//! lead may close a case; open, accept and decline are rate-limited and audited.

use super::convert;
use crate::audit::{Action, Decision as AuditDecision, NewEntry};
use crate::cases::{self, Acceptance, Case, Party, RateLimiter};
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
    limiter: RateLimiter,
}

/// The refusal of an organisation that opens, accepts or declines too fast.
pub fn rate_limited(what: &str) -> Status {
    Status::resource_exhausted(format!(
        "too many cases {what} in a short time: at most {} at once, then one every {} s; try again later",
        cases::RATE_BURST,
        cases::RATE_REFILL.as_secs()
    ))
}

/// Checks a case's pupils: present, pseudonyms, no repeats, at most the meeting's maximum
/// (`field` names them in the refusal).
pub fn check_pupils(
    pupils: &[String],
    max: usize,
    meeting: &str,
    field: &str,
) -> Result<(), Status> {
    if pupils.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field}: a case needs at least one pupil"
        )));
    }
    if pupils.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field}: {} pupils; a case of meeting {} covers at most {max} (a child and its siblings)",
            pupils.len(),
            crate::pseudonym::withhold_ids(meeting).chars().take(64).collect::<String>()
        )));
    }
    if let Some(i) = pupils.iter().position(|p| !is_pseudonym(p)) {
        return Err(Status::invalid_argument(format!(
            "{field}[{i}] is not a pseudonym; compute it with `pactgate pseudonym`"
        )));
    }
    if let Some(i) = (1..pupils.len()).find(|&i| pupils[..i].contains(&pupils[i])) {
        return Err(Status::invalid_argument(format!(
            "{field}[{i}] repeats an earlier pupil"
        )));
    }
    Ok(())
}

/// The most pupils a case of this meeting may cover under the policy.
pub fn max_pupils(policy: &crate::policy::Policy, meeting: &str) -> usize {
    policy
        .meeting(meeting)
        .map_or(crate::policy::DEFAULT_MAX_PUPILS, |m| m.max_pupils)
}

impl CasesService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self {
            node,
            limiter: RateLimiter::default(),
        }
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
        check_pupils(
            &req.pupil_pseudonyms,
            max_pupils(&policy, &req.meeting_type),
            &req.meeting_type,
            "pupil_pseudonyms",
        )?;
        policy
            .check_case_lead(&req.meeting_type, &self.node.own.oin)
            .map_err(|reason| Status::permission_denied(format!("meeting_type: {reason}")))?;
        let mut participants: Vec<Party> = Vec::new();
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
            if party.oin == self.node.own.oin || participants.iter().any(|p| p.oin == party.oin) {
                return Err(Status::invalid_argument(format!(
                    "participant_oins[{i}] names the lead or an earlier participant again"
                )));
            }
            participants.push(Party {
                oin: party.oin.to_string(),
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
            // The lead's own organisation opened it: it takes part.
            acceptance: Acceptance::Accepted,
        })
    }

    /// Accepts or declines a case shared with this node, as its own organisation decides.
    /// The node's own organisation accepts (or declines) a case shared with it: rate-limited,
    /// then decided and audited by [`Self::decide_case`].
    async fn answer_case(
        &self,
        caller: &Organisation,
        trace: &TraceContext,
        case_id: &str,
        actor: &str,
        accept: bool,
    ) -> Result<Response<pb::CaseResponse>, Status> {
        let (action, what) = if accept {
            (Action::CaseAccept, "accepted")
        } else {
            (Action::CaseDecline, "declined")
        };
        if !self.limiter.try_take(&caller.oin) {
            return Err(self.limited(trace, caller, actor, action, what).await);
        }
        let case = self
            .decide_case(caller, trace, case_id, actor, accept)
            .await?;
        Ok(Response::new(pb::CaseResponse {
            case: Some(convert::case_to_pb(&case)),
            not_notified: Vec::new(),
        }))
    }

    async fn decide_case(
        &self,
        caller: &Organisation,
        trace: &TraceContext,
        case_id: &str,
        actor: &str,
        accept: bool,
    ) -> Result<Case, Status> {
        let action = if accept {
            Action::CaseAccept
        } else {
            Action::CaseDecline
        };
        let (known, decided) = match self.load(case_id).await {
            Ok(case) => {
                let decided = self.decided(&case, accept);
                (Some(case), decided)
            }
            Err(status) => (None, Err(status)),
        };
        let case = match decided {
            Ok(case) => case,
            Err(status) => {
                let mut e = self.case_entry(trace, caller, actor, action, known.as_ref());
                e.case_id = case_id.chars().take(100).collect();
                e.decision = AuditDecision::Deny;
                e.reason = status.message().to_owned();
                self.node.record_async(e).await?;
                return Err(status);
            }
        };
        let mut e = self.case_entry(trace, caller, actor, action, Some(&case));
        e.reason = if accept {
            "case accepted"
        } else {
            "case declined"
        }
        .into();
        self.node.record_async(e).await?;
        let node = self.node.clone();
        let stored = case.clone();
        tokio::task::spawn_blocking(move || node.cases.put(&stored))
            .await
            .map_err(super::task_status)?
            .map_err(super::case_status)?;
        tracing::info!(peer.oin = %caller.oin, case.id = %case.id, case.accepted = accept, "case decided");
        Ok(case)
    }

    /// The case with this id at this node, or NOT_FOUND.
    async fn load(&self, id: &str) -> Result<Case, Status> {
        let node = self.node.clone();
        let lookup = id.to_owned();
        let existing = tokio::task::spawn_blocking(move || node.cases.get(&lookup))
            .await
            .map_err(super::task_status)?
            .map_err(super::case_status)?;
        existing.ok_or_else(|| {
            Status::not_found(format!(
                "case {:?} is not known at this node",
                crate::pseudonym::withhold_ids(id)
                    .chars()
                    .take(64)
                    .collect::<String>()
            ))
        })
    }

    /// The case after this organisation's decision, or the refusal.
    fn decided(&self, case: &Case, accept: bool) -> Result<Case, Status> {
        if !case.open {
            return Err(Status::failed_precondition(format!(
                "case {} is closed",
                case.id
            )));
        }
        if case.lead.oin == self.node.own.oin {
            return match accept {
                true => Ok(case.clone()),
                false => Err(Status::failed_precondition(format!(
                    "case {} is led by this organisation; close it instead of declining it",
                    case.id
                ))),
            };
        }
        if accept && case.acceptance == Acceptance::Declined {
            return Err(Status::failed_precondition(format!(
                "case {} was declined here; the lead may open a new case",
                case.id
            )));
        }
        if accept {
            self.node
                .policy
                .current()
                .ok_or_else(|| "this node has no covenant policy loaded".to_owned())
                .and_then(|p| {
                    p.check_case_parties(
                        &case.meeting_type,
                        &case.purpose,
                        &case.lead.oin,
                        &self.node.own.oin,
                    )
                })
                .map_err(|reason| Status::permission_denied(format!("denied: {reason}")))?;
        }
        Ok(Case {
            acceptance: if accept {
                Acceptance::Accepted
            } else {
                Acceptance::Declined
            },
            ..case.clone()
        })
    }

    /// A refusal for going too fast, audited.
    async fn limited(
        &self,
        trace: &TraceContext,
        caller: &Organisation,
        actor: &str,
        action: Action,
        what: &str,
    ) -> Status {
        let status = rate_limited(what);
        let mut e = self.case_entry(trace, caller, actor, action, None);
        e.decision = AuditDecision::Deny;
        e.reason = status.message().to_owned();
        match self.node.record_async(e).await {
            Ok(()) => status,
            Err(failed) => failed,
        }
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
                case: Some(convert::case_to_peer(case)),
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
        if !self.limiter.try_take(&caller.oin) {
            let actor = &request.get_ref().actor;
            return Err(self
                .limited(&trace, &caller, actor, Action::CaseOpen, "opened")
                .await);
        }
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
        let mut case = self.load(&request.get_ref().case_id).await?;
        if case.lead.oin != self.node.own.oin {
            return Err(Status::permission_denied(format!(
                "case {} is led by {}; only the lead may close it",
                case.id, case.lead.name
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

    async fn accept_case(
        &self,
        request: Request<pb::AcceptCaseRequest>,
    ) -> Result<Response<pb::CaseResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let req = request.into_inner();
        self.answer_case(&caller, &trace, &req.case_id, &req.actor, true)
            .await
    }

    async fn decline_case(
        &self,
        request: Request<pb::DeclineCaseRequest>,
    ) -> Result<Response<pb::CaseResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let req = request.into_inner();
        self.answer_case(&caller, &trace, &req.case_id, &req.actor, false)
            .await
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
