//! Cases of case meetings at the node's own organisation: open (checked against the policy,
//! then shared with every participant's node through a [`CaseNotifier`] the transport
//! provides), close (by the lead only), accept or decline a case shared here, and list. Only the
//! node's own organisation may call these; open, accept and decline are rate-limited; every
//! decision is audited before it is answered. Care offers: [`Service::record_offer`] (by the
//! organisation that makes it, where the meeting allows) and [`Service::take_shared_offer`]. A case names pupils by pseudonym only.

use super::{parse_id, parse_ids, refuse_id_like, Caller, PeerFailure, Service, ServiceError};
use crate::audit::{Action, Decision as AuditDecision, NewEntry};
use crate::cases::{self, Acceptance, CareOffer, Case, Party};
use crate::ids::{Oin, Pseudonym};
use crate::pseudonym::is_pseudonym;
use crate::signal::OfferKind;
use crate::trace::TraceContext;
use chrono::NaiveDate;
use std::future::Future;

/// A case to open, as the caller asks for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenCase {
    pub meeting_type: String,
    pub purpose: String,
    /// The person or system acting (for the audit log).
    pub actor: String,
    /// Parsed at the edge ([`super::parse_ids`]).
    pub pupil_pseudonyms: Vec<Pseudonym>,
    pub participant_oins: Vec<Oin>,
}

/// A case after an operation, and the participants whose node could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    pub case: Case,
    pub not_notified: Vec<PeerFailure>,
}

/// Tells the participants' nodes of a case (opened or closed); the transport's side.
pub trait CaseNotifier: Send + Sync {
    /// Shares `case` with every participant's node except this one; returns those that could
    /// not be told.
    fn share(
        &self,
        case: &Case,
        trace: &TraceContext,
    ) -> impl Future<Output = Vec<PeerFailure>> + Send;

    /// Tells the case's lead and participants (all but this node) of a care offer recorded
    /// here; returns those that could not be told.
    fn share_offer(
        &self,
        case: &Case,
        offer: &CareOffer,
        trace: &TraceContext,
    ) -> impl Future<Output = Vec<PeerFailure>> + Send;
}

/// The refusal of an organisation that opens, accepts, declines or shares too fast.
pub fn rate_limited(what: &str) -> ServiceError {
    ServiceError::ResourceExhausted(format!(
        "too many cases {what} in a short time: at most {} at once, then one every {} s; try again later",
        cases::RATE_BURST,
        cases::RATE_REFILL.as_secs()
    ))
}

/// Checks a case's pupils: present, pseudonyms, no repeats, at most the meeting's maximum
/// (`field` names them in the refusal).
pub fn check_pupils<P: AsRef<str> + PartialEq>(
    pupils: &[P],
    max: usize,
    meeting: &str,
    field: &str,
) -> Result<(), ServiceError> {
    let invalid = |message: String| Err(ServiceError::invalid(field, message));
    if pupils.is_empty() {
        return invalid(format!("{field}: a case needs at least one pupil"));
    }
    if pupils.len() > max {
        return invalid(format!(
            "{field}: {} pupils; a case of meeting {} covers at most {max} (a child and its siblings)",
            pupils.len(),
            crate::pseudonym::withhold_ids(meeting).chars().take(64).collect::<String>()
        ));
    }
    if let Some(i) = pupils.iter().position(|p| !is_pseudonym(p.as_ref())) {
        return invalid(format!(
            "{field}[{i}] is not a pseudonym; compute it with `pactgate pseudonym`"
        ));
    }
    if let Some(i) = (1..pupils.len()).find(|&i| pupils[..i].contains(&pupils[i])) {
        return invalid(format!("{field}[{i}] repeats an earlier pupil"));
    }
    Ok(())
}

/// The most pupils a case of this meeting may cover under the policy.
pub fn max_pupils(policy: &crate::policy::Policy, meeting: &str) -> usize {
    policy
        .meeting(meeting)
        .map_or(crate::policy::DEFAULT_MAX_PUPILS, |m| m.max_pupils)
}

impl Service {
    /// Opens a case led by this node's organisation, checked against the policy, and shares it
    /// with every participant's node.
    #[tracing::instrument(name = "service.open_case", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn open_case<N: CaseNotifier>(
        &self,
        caller: &Caller,
        req: OpenCase,
        notifier: &N,
    ) -> Result<CaseOutcome, ServiceError> {
        self.node.check_own(&caller.org)?;
        if !self.case_limiter.try_take(&caller.org.oin) {
            return Err(self
                .limited(caller, &req.actor, Action::CaseOpen, "opened")
                .await);
        }
        let case = match self.new_case(&req) {
            Ok(case) => case,
            Err(refusal) => {
                let mut e = self.case_entry(caller, &req.actor, Action::CaseOpen, None);
                e.meeting_type = req.meeting_type.chars().take(100).collect();
                e.decision = AuditDecision::Deny;
                e.reason = refusal.to_string();
                self.node.record_async(e).await?;
                return Err(refusal);
            }
        };
        let mut e = self.case_entry(caller, &req.actor, Action::CaseOpen, Some(&case));
        e.reason = "case opened".into();
        self.node.record_async(e).await?;
        let not_notified = self.store_and_share(&case, caller, notifier).await?;
        tracing::info!(peer.oin = %caller.org.oin, case.id = %case.id, case.meeting = %case.meeting_type, "case opened");
        Ok(CaseOutcome { case, not_notified })
    }

    /// Closes a case this node's organisation leads, and tells the participants' nodes.
    #[tracing::instrument(name = "service.close_case", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn close_case<N: CaseNotifier>(
        &self,
        caller: &Caller,
        case_id: &str,
        actor: &str,
        notifier: &N,
    ) -> Result<CaseOutcome, ServiceError> {
        self.node.check_own(&caller.org)?;
        let mut case = self.load_case(case_id).await?;
        if case.lead.oin != self.node.own.oin {
            return Err(ServiceError::permission(format!(
                "case {} is led by {}; only the lead may close it",
                case.id, case.lead.name
            )));
        }
        case.open = false;
        case.closed_at = Some(chrono::Utc::now());
        let mut e = self.case_entry(caller, actor, Action::CaseClose, Some(&case));
        e.reason = "case closed".into();
        self.node.record_async(e).await?;
        let not_notified = self.store_and_share(&case, caller, notifier).await?;
        tracing::info!(peer.oin = %caller.org.oin, case.id = %case.id, "case closed");
        Ok(CaseOutcome { case, not_notified })
    }

    /// The node's own organisation accepts (`accept`) or declines a case shared with it:
    /// rate-limited, decided and audited.
    #[tracing::instrument(name = "service.answer_case", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn answer_case(
        &self,
        caller: &Caller,
        case_id: &str,
        actor: &str,
        accept: bool,
    ) -> Result<Case, ServiceError> {
        self.node.check_own(&caller.org)?;
        let (action, what) = if accept {
            (Action::CaseAccept, "accepted")
        } else {
            (Action::CaseDecline, "declined")
        };
        if !self.case_limiter.try_take(&caller.org.oin) {
            return Err(self.limited(caller, actor, action, what).await);
        }
        let (known, decided) = match self.load_case(case_id).await {
            Ok(case) => {
                let decided = self.decided(&case, accept);
                (Some(case), decided)
            }
            Err(refusal) => (None, Err(refusal)),
        };
        let case = match decided {
            Ok(case) => case,
            Err(refusal) => {
                let mut e = self.case_entry(caller, actor, action, known.as_ref());
                e.case_id = case_id.chars().take(100).collect();
                e.decision = AuditDecision::Deny;
                e.reason = refusal.to_string();
                self.node.record_async(e).await?;
                return Err(refusal);
            }
        };
        let mut e = self.case_entry(caller, actor, action, Some(&case));
        e.reason = if accept {
            "case accepted"
        } else {
            "case declined"
        }
        .into();
        self.node.record_async(e).await?;
        let node = self.node.clone();
        let stored = case.clone();
        tokio::task::spawn_blocking(move || node.cases.put(&stored)).await??;
        tracing::info!(peer.oin = %caller.org.oin, case.id = %case.id, case.accepted = accept, "case decided");
        Ok(case)
    }

    /// The cases this node holds (only the open ones if `open_only`).
    #[tracing::instrument(name = "service.list_cases", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn list_cases(
        &self,
        caller: &Caller,
        open_only: bool,
    ) -> Result<Vec<Case>, ServiceError> {
        self.node.check_own(&caller.org)?;
        let node = self.node.clone();
        Ok(tokio::task::spawn_blocking(move || node.cases.list(open_only)).await??)
    }

    /// Builds a new case from the request, checked against the policy.
    fn new_case(&self, req: &OpenCase) -> Result<Case, ServiceError> {
        let policy = self.node.policy.current().ok_or_else(|| {
            ServiceError::FailedPrecondition("this node has no covenant policy loaded".into())
        })?;
        refuse_id_like("meeting_type", &req.meeting_type)?;
        refuse_id_like("purpose", &req.purpose)?;
        refuse_id_like("actor", &req.actor)?;
        check_pupils(
            &req.pupil_pseudonyms,
            max_pupils(&policy, &req.meeting_type),
            &req.meeting_type,
            "pupil_pseudonyms",
        )?;
        let own = &self.node.own;
        policy
            .check_case_lead(&req.meeting_type, &own.oin)
            .map_err(|reason| ServiceError::permission(format!("meeting_type: {reason}")))?;
        let mut participants: Vec<Party> = Vec::new();
        for (i, oin) in req.participant_oins.iter().enumerate() {
            let field = format!("participant_oins[{i}]");
            let party = policy.party_by_oin(oin).ok_or_else(|| {
                ServiceError::invalid(
                    &field,
                    format!(
                        "{field}: OIN {} is not a party of the covenant",
                        crate::pseudonym::withhold_ids(oin)
                    ),
                )
            })?;
            policy
                .check_case_parties(&req.meeting_type, &req.purpose, &own.oin, oin)
                .map_err(|reason| ServiceError::permission(format!("{field}: {reason}")))?;
            if party.oin == own.oin || participants.iter().any(|p| p.oin == party.oin) {
                return Err(ServiceError::invalid(
                    &field,
                    format!("{field} names the lead or an earlier participant again"),
                ));
            }
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
            lead: Party::from(own),
            open: true,
            opened_at: chrono::Utc::now(),
            closed_at: None,
            // The lead's own organisation opened it: it takes part.
            acceptance: Acceptance::Accepted,
        })
    }

    /// The case with this id at this node, or NOT_FOUND.
    async fn load_case(&self, id: &str) -> Result<Case, ServiceError> {
        let node = self.node.clone();
        let lookup = id.to_owned();
        let existing = tokio::task::spawn_blocking(move || node.cases.get(&lookup)).await??;
        existing.ok_or_else(|| {
            ServiceError::NotFound(format!(
                "case {:?} is not known at this node",
                crate::pseudonym::withhold_ids(id)
                    .chars()
                    .take(64)
                    .collect::<String>()
            ))
        })
    }

    /// The case after this organisation's decision, or the refusal.
    fn decided(&self, case: &Case, accept: bool) -> Result<Case, ServiceError> {
        let own = &self.node.own;
        if !case.open {
            return Err(ServiceError::FailedPrecondition(format!(
                "case {} is closed",
                case.id
            )));
        }
        if case.lead.oin == own.oin {
            return match accept {
                true => Ok(case.clone()),
                false => Err(ServiceError::FailedPrecondition(format!(
                    "case {} is led by this organisation; close it instead of declining it",
                    case.id
                ))),
            };
        }
        if accept && case.acceptance == Acceptance::Declined {
            return Err(ServiceError::FailedPrecondition(format!(
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
                        &own.oin,
                    )
                })
                .map_err(ServiceError::denied)?;
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
        caller: &Caller,
        actor: &str,
        action: Action,
        what: &str,
    ) -> ServiceError {
        let refusal = rate_limited(what);
        let mut e = self.case_entry(caller, actor, action, None);
        e.decision = AuditDecision::Deny;
        e.reason = refusal.to_string();
        match self.node.record_async(e).await {
            Ok(()) => refusal,
            Err(failed) => failed,
        }
    }

    /// An audit entry about a case, with the actor the request names.
    fn case_entry(
        &self,
        caller: &Caller,
        actor: &str,
        action: Action,
        case: Option<&Case>,
    ) -> NewEntry {
        let mut e = NewEntry::new(
            &caller.trace,
            &caller.org,
            actor,
            action,
            &self.node.policy_version(),
        );
        if let Some(case) = case {
            e.case_id = case.id.clone();
            e.meeting_type = case.meeting_type.clone();
            e.purpose = case.purpose.clone();
            e.pupils = case.pupils.iter().map(ToString::to_string).collect();
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
    async fn store_and_share<N: CaseNotifier>(
        &self,
        case: &Case,
        caller: &Caller,
        notifier: &N,
    ) -> Result<Vec<PeerFailure>, ServiceError> {
        let node = self.node.clone();
        let stored = case.clone();
        tokio::task::spawn_blocking(move || node.cases.put(&stored)).await??;
        Ok(notifier.share(case, &caller.trace).await)
    }
}

/// A case as a peer's lead shares it (or its closing), unchecked: [`Service::take_shared_case`]
/// checks every part before anything is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedCase {
    pub case_id: String,
    pub meeting_type: String,
    pub purpose: String,
    pub pupil_pseudonyms: Vec<String>,
    pub participants: Vec<SharedParty>,
    pub lead: Option<SharedParty>,
    pub open: bool,
    /// RFC 3339.
    pub opened_at: String,
    /// RFC 3339, or "" while open.
    pub closed_at: String,
}

/// An organisation as a shared case names it, unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedParty {
    pub oin: String,
    pub name: String,
}

impl SharedParty {
    /// The party, its OIN parsed (`field` names it in the refusal) and its name checked.
    fn into_party(self, field: &str) -> Result<Party, ServiceError> {
        refuse_id_like(&format!("{field}.name"), &self.name)?;
        Ok(Party {
            oin: parse_id(&format!("{field}.oin"), &self.oin)?,
            name: self.name,
        })
    }
}

impl SharedCase {
    /// The case, pending here; malformed parts are INVALID_ARGUMENT naming the field.
    fn into_case(self) -> Result<Case, ServiceError> {
        let invalid = |what: &str| {
            ServiceError::invalid(format!("case.{what}"), format!("case.{what} is malformed"))
        };
        if !cases::is_case_id(&self.case_id)
            || crate::pseudonym::holds_pupil_id_digits(&self.case_id)
        {
            return Err(invalid("case_id"));
        }
        refuse_id_like("case.meeting_type", &self.meeting_type)?;
        refuse_id_like("case.purpose", &self.purpose)?;
        if self.pupil_pseudonyms.is_empty() {
            return Err(invalid("pupil_pseudonyms"));
        }
        let pupils = parse_ids("case.pupil_pseudonyms", &self.pupil_pseudonyms)?;
        let participants = self
            .participants
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.into_party(&format!("case.participants[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let lead = self
            .lead
            .ok_or_else(|| invalid("lead"))?
            .into_party("case.lead")?;
        let parse_time = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc))
        };
        Ok(Case {
            id: self.case_id,
            meeting_type: self.meeting_type,
            purpose: self.purpose,
            pupils,
            participants,
            lead,
            open: self.open,
            opened_at: parse_time(&self.opened_at).map_err(|_| invalid("opened_at"))?,
            closed_at: match self.closed_at.as_str() {
                "" => None,
                t => Some(parse_time(t).map_err(|_| invalid("closed_at"))?),
            },
            acceptance: Acceptance::Pending,
        })
    }
}

impl Service {
    /// Takes a case a peer's lead shares (or closes) with this node: rate-limited per caller
    /// (counted, not audited one by one, so a flood cannot grow the log), checked and audited.
    /// Never changes, widens, re-leads or reopens a case this node already holds; a new case
    /// starts pending and grants nothing here until this node's organisation accepts it.
    #[tracing::instrument(name = "service.share_case", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn take_shared_case(
        &self,
        caller: &Caller,
        shared: SharedCase,
    ) -> Result<(), ServiceError> {
        if !self.share_limiter.try_take(&caller.org.oin) {
            return Err(self.counted(
                &caller.org,
                crate::limits::reason::CASE_RATE,
                rate_limited("shared"),
            ));
        }
        let service = self.clone();
        let caller = caller.clone();
        tokio::task::spawn_blocking(move || {
            let mut e = NewEntry::new(
                &caller.trace,
                &caller.org,
                "",
                Action::ShareCase,
                &service.node.policy_version(),
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
            let outcome = service.keep_shared_case(&caller.org.oin, shared);
            if let Err(refusal) = &outcome {
                e.decision = AuditDecision::Deny;
                e.reason = refusal.to_string();
            }
            service.node.record(e)?;
            outcome
        })
        .await?
    }

    /// Checks a case shared by `caller_oin` and stores it (or its closing). Blocking.
    fn keep_shared_case(&self, caller_oin: &str, shared: SharedCase) -> Result<(), ServiceError> {
        let node = &self.node;
        let deny = |reason: String| Err(ServiceError::denied(reason));
        let policy = node
            .policy
            .current()
            .ok_or_else(|| ServiceError::denied("this node has no covenant policy loaded"))?;
        check_pupils(
            &shared.pupil_pseudonyms,
            max_pupils(&policy, &shared.meeting_type),
            &shared.meeting_type,
            "case.pupil_pseudonyms",
        )?;
        let case = shared.into_case()?;
        if case.participants.len() > policy.parties().len() {
            return Err(ServiceError::invalid(
                "case.participants",
                format!(
                    "case.participants: {} organisations; the covenant has {} parties",
                    case.participants.len(),
                    policy.parties().len()
                ),
            ));
        }
        let grant = match policy.case_share_grant(case, caller_oin, &node.own.oin) {
            Ok(grant) => grant,
            Err(reason) => return deny(reason),
        };
        let case = grant.case();
        let mut acceptance = case.acceptance;
        if let Some(existing) = node.cases.get(&case.id)? {
            if !existing.same_content(case) {
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
            acceptance = existing.acceptance;
        }
        let (id, open) = (case.id.clone(), case.open);
        node.cases.put_shared(grant, acceptance)?;
        tracing::info!(peer.oin = %caller_oin, case.id = %id, case.open = open, "case shared");
        Ok(())
    }
}

/// A care offer as the caller records it (or a participant's node tells it), unchecked:
/// [`NewOffer::into_offer`] checks every part before anything is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewOffer {
    pub case_id: String,
    pub pupil_pseudonym: String,
    /// What is offered; None: not given (refused).
    pub kind: Option<OfferKind>,
    /// YYYY-MM-DD.
    pub offered_on: String,
    /// YYYY-MM-DD, or "" for a waiting list.
    pub place_from: String,
    pub parents_agreed: bool,
}

impl NewOffer {
    /// The offer, recorded by `by`; malformed parts are INVALID_ARGUMENT naming the field.
    pub fn into_offer(self, by: Party) -> Result<CareOffer, ServiceError> {
        super::refuse_id_like_case_id("offer.case_id", &self.case_id)?;
        if !cases::is_case_id(&self.case_id) {
            return Err(ServiceError::invalid(
                "offer.case_id",
                "offer.case_id is not a case id (case- and 16 hex digits; see pactgate case list)",
            ));
        }
        let pupil: Pseudonym = self.pupil_pseudonym.parse().map_err(|_| {
            ServiceError::invalid(
                "offer.pupil_pseudonym",
                "offer.pupil_pseudonym is not a pseudonym; compute it with `pactgate pseudonym`",
            )
        })?;
        let kind = self.kind.ok_or_else(|| {
            ServiceError::invalid(
                "offer.kind",
                "offer.kind is missing: say what is offered (ZORG or ONDERWIJS_EN_ZORG)",
            )
        })?;
        let day = |field: &str, text: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                ServiceError::invalid(field, format!("{field} is not a date (YYYY-MM-DD)"))
            })
        };
        let place_from = match self.place_from.as_str() {
            "" => None,
            text => Some(day("offer.place_from", text)?),
        };
        Ok(CareOffer {
            case_id: self.case_id,
            pupil,
            kind,
            offered_on: day("offer.offered_on", &self.offered_on)?,
            place_from,
            parents_agreed: self.parents_agreed,
            by,
        })
    }
}

/// A care offer recorded here, and the participants whose node could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferOutcome {
    pub offer: CareOffer,
    pub not_notified: Vec<PeerFailure>,
}

impl Service {
    /// Records a care offer of this node's own organisation in a case it takes part in (where
    /// the meeting lets its org type, `may_record_offer`): rate-limited, checked, audited
    /// (allowed or denied), then told to the case's other participants' nodes.
    #[tracing::instrument(name = "service.record_offer", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn record_offer<N: CaseNotifier>(
        &self,
        caller: &Caller,
        req: NewOffer,
        actor: &str,
        notifier: &N,
    ) -> Result<OfferOutcome, ServiceError> {
        self.node.check_own(&caller.org)?;
        refuse_id_like("actor", actor)?;
        if !self.case_limiter.try_take(&caller.org.oin) {
            return Err(self
                .limited(caller, actor, Action::CaseOffer, "offers recorded")
                .await);
        }
        let offer = req.into_offer(Party::from(&self.node.own))?;
        let node = self.node.clone();
        let recorded = offer.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let policy = node.policy.current();
            cases::record_own_offer(policy.as_deref(), &node.cases, &node.own.oin, &recorded)
        })
        .await?;
        let mut e = self.case_entry(caller, actor, Action::CaseOffer, outcome.as_ref().ok());
        e.case_id = offer.case_id.clone();
        e.pupils = vec![offer.pupil.to_string()];
        let case = match outcome {
            Ok(case) => case,
            Err(err) => {
                let refusal = ServiceError::from(err);
                e.decision = AuditDecision::Deny;
                e.reason = refusal.to_string();
                self.node.record_async(e).await?;
                return Err(refusal);
            }
        };
        e.reason = offer.describe();
        self.node.record_async(e).await?;
        let not_notified = notifier.share_offer(&case, &offer, &caller.trace).await;
        tracing::info!(peer.oin = %caller.org.oin, case.id = %offer.case_id, "care offer recorded");
        Ok(OfferOutcome {
            offer,
            not_notified,
        })
    }

    /// Takes a care offer that a participant's node tells this node of (`recorded_by_oin` is
    /// the organisation that says it recorded it; it must be the caller's): rate-limited per
    /// caller (counted), checked against the case as held here and audited.
    #[tracing::instrument(name = "service.share_case_offer", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn take_shared_offer(
        &self,
        caller: &Caller,
        shared: NewOffer,
        recorded_by_oin: &str,
    ) -> Result<(), ServiceError> {
        if !self.share_limiter.try_take(&caller.org.oin) {
            return Err(self.counted(
                &caller.org,
                crate::limits::reason::CASE_RATE,
                rate_limited("offers told"),
            ));
        }
        let by = Party {
            oin: parse_id("offer.recorded_by_oin", recorded_by_oin)?,
            name: caller.org.name.clone(),
        };
        let offer = shared.into_offer(by)?;
        let service = self.clone();
        let caller = caller.clone();
        tokio::task::spawn_blocking(move || {
            let node = &service.node;
            let mut e = NewEntry::new(
                &caller.trace,
                &caller.org,
                "",
                Action::CaseOffer,
                &node.policy_version(),
            );
            e.case_id = offer.case_id.clone();
            e.pupils = vec![offer.pupil.to_string()];
            let policy = node.policy.current();
            let outcome =
                cases::take_shared_offer(policy.as_deref(), &node.cases, &caller.org.oin, &offer)
                    .map_err(ServiceError::from);
            match &outcome {
                Ok(case) => {
                    e.meeting_type = case.meeting_type.clone();
                    e.purpose = case.purpose.clone();
                    e.reason = offer.describe();
                }
                Err(refusal) => {
                    e.decision = AuditDecision::Deny;
                    e.reason = refusal.to_string();
                }
            }
            node.record(e)?;
            outcome.map(|_| ())
        })
        .await?
    }
}

/// The cases and care offers of one pupil held at this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PupilCases {
    pub cases: Vec<Case>,
    /// The offers of cases this node takes part in (none of a declined case).
    pub offers: Vec<CareOffer>,
}

/// A seat at a case meeting, as the covenant gives it: who, in which role, on which bases, for
/// which purposes, seeing which data categories (`(id, name)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingSeat {
    pub org_type: String,
    pub role: String,
    pub legal_bases: Vec<(String, String)>,
    pub purposes: Vec<String>,
    pub data_categories: Vec<(String, String)>,
}

/// A case meeting of the policy, for the form that opens a case: its purposes, seats and the
/// parties that may take a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingChoice {
    pub id: String,
    pub name: String,
    /// `(purpose id, text)`.
    pub purposes: Vec<(String, String)>,
    /// Whether this node's organisation may lead (open) a case of it.
    pub may_lead: bool,
    pub needs_acceptance: bool,
    pub max_pupils: usize,
    pub seats: Vec<MeetingSeat>,
    /// Org types that may record a care offer in it.
    pub may_record_offer: Vec<String>,
    /// The covenant's parties with a seat: `Party` and org type.
    pub parties: Vec<(Party, String)>,
}

impl Service {
    /// The cases (open or closed) and the care offers this node holds for one pupil; audited as
    /// a look at that pupil's data, naming the caller's actor.
    #[tracing::instrument(name = "service.pupil_cases", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn pupil_cases(
        &self,
        caller: &Caller,
        pupil: &crate::ids::Pseudonym,
    ) -> Result<PupilCases, ServiceError> {
        self.node.check_own(&caller.org)?;
        let node = self.node.clone();
        let wanted = pupil.to_string();
        let found = tokio::task::spawn_blocking(move || -> Result<PupilCases, cases::CaseError> {
            let cases = node
                .cases
                .list(false)?
                .into_iter()
                .filter(|c| c.covers_pupil(&wanted))
                .collect();
            let offers = node
                .cases
                .clock_offers(|_| false)?
                .into_iter()
                .filter(|o| o.pupil == wanted)
                .collect();
            Ok(PupilCases { cases, offers })
        })
        .await??;
        let mut e = caller.entry(Action::Query, &self.node.policy_version());
        e.pupils = vec![pupil.to_string()];
        e.count = (found.cases.len() + found.offers.len()) as u64;
        e.reason = "the cases and care offers of one pupil at the own node".into();
        self.node.record_async(e).await?;
        Ok(found)
    }

    /// The case meetings of the policy with what the form that opens a case offers: purposes,
    /// seats, and the parties that may take them. Only the node's own organisation.
    pub fn case_meetings(&self, caller: &Caller) -> Result<Vec<MeetingChoice>, ServiceError> {
        self.node.check_own(&caller.org)?;
        let policy = self.node.policy.current().ok_or_else(|| {
            ServiceError::FailedPrecondition("this node has no covenant policy loaded".into())
        })?;
        let own_type = policy.party_by_oin(&self.node.own.oin).map(|p| p.org_type);
        Ok(policy
            .meetings()
            .iter()
            .map(|m| meeting_choice(&policy, m, own_type))
            .collect())
    }
}

fn meeting_choice(
    policy: &crate::policy::Policy,
    m: &crate::policy::Meeting,
    own_type: Option<crate::policy::OrgType>,
) -> MeetingChoice {
    let named = |ids: &[String], name: &dyn Fn(&str) -> Option<String>| {
        ids.iter()
            .map(|id| (id.clone(), name(id).unwrap_or_else(|| id.clone())))
            .collect::<Vec<_>>()
    };
    let seats = m
        .participants
        .iter()
        .map(|s| MeetingSeat {
            org_type: s.org_type.code().to_owned(),
            role: s.role.clone(),
            legal_bases: named(&s.legal_bases, &|id| {
                policy
                    .legal_basis(id)
                    .map(|b| format!("{} {}", b.law, b.article))
            }),
            purposes: s.purposes.clone(),
            data_categories: named(&s.data_categories, &|id| {
                policy.data_category(id).map(|d| d.name.clone())
            }),
        })
        .collect();
    let parties = policy
        .parties()
        .iter()
        .filter(|p| m.has_seat(p.org_type))
        .map(|p| {
            (
                Party {
                    oin: p.oin.clone(),
                    name: p.name.clone(),
                },
                p.org_type.code().to_owned(),
            )
        })
        .collect();
    MeetingChoice {
        id: m.id.clone(),
        name: m.name.clone(),
        purposes: named(&m.purposes, &|id| {
            policy.purpose(id).map(|p| p.text.clone())
        }),
        may_lead: own_type.is_some_and(|t| m.may_lead(t)),
        needs_acceptance: m.needs_acceptance,
        max_pupils: m.max_pupils,
        seats,
        may_record_offer: m
            .may_record_offer
            .iter()
            .map(|t| t.code().to_owned())
            .collect(),
        parties,
    }
}
