//! Exchange: answering a peer's query under its claim. Every query is decided by the policy
//! (fail closed); a case-context claim binds the permit to the case this node holds (its pupils,
//! its purpose, the caller's and the lead's scope) and reads nothing until then. Returns only
//! what the permit allows and names the fields that may leave the node; audits every decision
//! durably before the answer leaves.

use super::{
    distinct_pupils, refuse_id_like, refuse_id_like_case_id, Caller, Service, ServiceError,
};
use crate::audit::{Action, Decision as AuditDecision, NewEntry};
use crate::exchange::{self, ExchangeFilter};
use crate::identity::Organisation;
use crate::policy::{AccessRequest, CaseClaim, Context, Decision, FieldSet, Permit, Policy};
use crate::signal::Signal;
use std::sync::Arc;

/// What a caller claims for a request: its role, legal basis, purpose, the acting person, and
/// the rule of the covenant it asks under. All of it is caller text, checked before use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub role: String,
    pub legal_basis: String,
    pub purpose: String,
    pub actor: String,
    pub context: Option<ClaimContext>,
}

/// The rule a claim asks under: a routine flow, or a case of a case meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimContext {
    RoutineFlow(String),
    Case {
        meeting_type: String,
        case_id: String,
    },
}

impl Claim {
    /// Refuses a claim whose caller-written text could carry a pupil id (naming the field,
    /// never echoing it).
    pub fn check_text(&self) -> Result<(), ServiceError> {
        for (field, text) in [
            ("claim.role", &self.role),
            ("claim.legal_basis", &self.legal_basis),
            ("claim.purpose", &self.purpose),
            ("claim.actor", &self.actor),
        ] {
            refuse_id_like(field, text)?;
        }
        match &self.context {
            Some(ClaimContext::RoutineFlow(flow)) => refuse_id_like("claim.routine_flow", flow),
            Some(ClaimContext::Case {
                meeting_type,
                case_id,
            }) => {
                refuse_id_like("claim.case_ref.meeting_type", meeting_type)?;
                refuse_id_like_case_id("claim.case_ref.case_id", case_id)
            }
            None => Ok(()),
        }
    }

    /// The claim's context as the policy names it.
    fn context(&self) -> Result<Context<'_>, ServiceError> {
        match &self.context {
            Some(ClaimContext::RoutineFlow(flow)) => Ok(Context::RoutineFlow { flow }),
            Some(ClaimContext::Case { meeting_type, .. }) => Ok(Context::Case {
                meeting: meeting_type,
            }),
            None => Err(ServiceError::denied(
                "the claim names neither a routine_flow nor a case_ref",
            )),
        }
    }
}

/// What an allowed query discloses: the signals, and the only fields of them that may leave the
/// node ([`Disclosure::fields`]); a transport renders each signal minimised to them.
#[derive(Debug)]
pub struct Disclosure {
    pub signals: Vec<Signal>,
    pub fields: FieldSet,
    pub holder: Organisation,
    pub rule: String,
    pub processing_activity: String,
    pub policy_version: String,
}

/// Who this node is, for a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    pub organisation: Organisation,
    pub policy_version: String,
    pub covenant: String,
    pub audit_log_verifier_key: String,
    pub witness_verifier_key: String,
}

impl Service {
    /// The policy's decision on `claim` by the caller to this node's data: the active policy and
    /// the permit (bound to the case for a case context), or a refusal naming the part that did
    /// not match (INVALID_ARGUMENT for claim text that could carry a pupil id). The one place
    /// every data-bearing request (queries and counts) is decided. Blocking (reads the cases).
    pub fn decide(
        &self,
        caller: &Organisation,
        claim: &Claim,
    ) -> Result<(Arc<Policy>, Permit), ServiceError> {
        claim.check_text()?;
        let node = &self.node;
        let policy = node
            .policy
            .current()
            .ok_or_else(|| ServiceError::denied("this node has no covenant policy loaded"))?;
        let access = AccessRequest {
            caller_oin: &caller.oin,
            holder_oin: &node.own.oin,
            role: &claim.role,
            legal_basis: &claim.legal_basis,
            purpose: &claim.purpose,
            context: claim.context()?,
        };
        let permit = match policy.evaluate(&access) {
            Decision::Permit(permit) => permit,
            Decision::Deny(d) => return Err(ServiceError::denied(d.reason)),
        };
        let Some(ClaimContext::Case {
            meeting_type,
            case_id,
        }) = &claim.context
        else {
            return Ok((policy, permit));
        };
        let Some(case) = node.cases.get(case_id)? else {
            return Err(ServiceError::denied(format!(
                "case {:?} is not known at this node",
                crate::pseudonym::withhold_ids(case_id)
            )));
        };
        let bound = policy.bind_case(
            permit,
            case,
            &CaseClaim {
                meeting_type,
                purpose: &claim.purpose,
                caller_oin: &caller.oin,
                holder_oin: &node.own.oin,
            },
        );
        match bound {
            Ok(permit) => Ok((policy, permit)),
            Err(d) => Err(ServiceError::denied(d.reason)),
        }
    }

    /// An audit entry of a request under `claim`: its context and purpose.
    pub fn claim_entry(&self, caller: &Caller, claim: &Claim, action: Action) -> NewEntry {
        let mut e = NewEntry::new(
            &caller.trace,
            &caller.org,
            &claim.actor,
            action,
            &self.node.policy_version(),
        );
        e.purpose = claim.purpose.chars().take(100).collect();
        e.legal_basis = claim.legal_basis.chars().take(100).collect();
        match &claim.context {
            Some(ClaimContext::RoutineFlow(flow)) => e.flow = flow.chars().take(100).collect(),
            Some(ClaimContext::Case {
                meeting_type,
                case_id,
            }) => {
                e.meeting_type = meeting_type.chars().take(100).collect();
                e.case_id = case_id.chars().take(100).collect();
            }
            None => {}
        }
        e
    }

    /// Records the outcome of a data-bearing request: an allowed one as `allowed` says; a
    /// malformed one (it names no pupil) counted for the window; a refused one audited as a
    /// denied Query. Blocking.
    pub fn audit_decision<T>(
        &self,
        caller: &Caller,
        claim: &Claim,
        outcome: Result<(T, NewEntry), ServiceError>,
    ) -> Result<T, ServiceError> {
        match outcome {
            Ok((value, entry)) => {
                self.node.record(entry)?;
                Ok(value)
            }
            Err(e) if e.is_invalid_argument() => {
                Err(self.counted(&caller.org, crate::limits::reason::INVALID, e))
            }
            Err(e) => {
                let mut entry = self.claim_entry(caller, claim, Action::Query);
                entry.decision = AuditDecision::Deny;
                entry.reason = e.to_string();
                self.node.record(entry)?;
                tracing::info!(peer.oin = %caller.org.oin, policy.decision = "deny", reason = %e, "request refused");
                Err(e)
            }
        }
    }

    /// Answers a peer's query: decides it, selects what the permit allows and audits the
    /// decision durably before returning. `claim` is `None` when the request carries none;
    /// `filter` is the transport's reading of the request's filter (its error is returned as an
    /// INVALID_ARGUMENT after the decision is made, as if the filter were part of it).
    #[tracing::instrument(name = "service.query", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn answer_query(
        &self,
        caller: Caller,
        claim: Option<Claim>,
        filter: Result<ExchangeFilter, ServiceError>,
    ) -> Result<Disclosure, ServiceError> {
        let service = self.clone();
        tokio::task::spawn_blocking(move || service.answer_blocking(&caller, claim, filter)).await?
    }

    fn answer_blocking(
        &self,
        caller: &Caller,
        claim: Option<Claim>,
        filter: Result<ExchangeFilter, ServiceError>,
    ) -> Result<Disclosure, ServiceError> {
        let missing = claim.is_none();
        let claim = claim.unwrap_or_default();
        let outcome = if missing {
            Err(ServiceError::denied("the request carries no claim"))
        } else {
            self.disclose(caller, &claim, filter)
        };
        let disclosure = self.audit_decision(caller, &claim, outcome)?;
        tracing::info!(peer.oin = %caller.org.oin, policy.rule = %disclosure.rule, query.count = disclosure.signals.len(), "query answered");
        Ok(disclosure)
    }

    /// Decides and selects; the entry to record if allowed.
    fn disclose(
        &self,
        caller: &Caller,
        claim: &Claim,
        filter: Result<ExchangeFilter, ServiceError>,
    ) -> Result<(Disclosure, NewEntry), ServiceError> {
        let (policy, permit) = self.decide(&caller.org, claim)?;
        let filter = filter?;
        let today = chrono::Utc::now().date_naive();
        let signals = exchange::select(&self.node.store, &permit, &filter, today)?;
        let mut e = self.claim_entry(caller, claim, Action::Disclose);
        e.processing_activity = permit.processing_activity().to_owned();
        e.data_categories = permit.data_categories().to_vec();
        e.pupils = distinct_pupils(&signals);
        e.count = signals.len() as u64;
        e.reason = permit.rule().to_owned();
        let disclosure = Disclosure {
            signals,
            fields: *permit.fields(),
            holder: self.node.own.clone(),
            rule: permit.rule().to_owned(),
            processing_activity: permit.processing_activity().to_owned(),
            policy_version: policy.version().to_owned(),
        };
        Ok((disclosure, e))
    }

    /// Who this node is: its organisation, policy and verifier keys.
    pub fn describe(&self) -> NodeDescription {
        let policy = self.node.policy.current();
        NodeDescription {
            organisation: self.node.own.clone(),
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
        }
    }
}
