//! The service layer: every domain operation of a node, once, for every transport. It takes an
//! authenticated [`Caller`] and domain types, decides (through the policy), audits, and returns
//! domain results or one [`ServiceError`]. It knows nothing of tonic, HTTP or the generated
//! `pb` types; the gRPC handlers in `rpc/` (and the REST API and the console) only convert,
//! call and map the error once.
//!
//! # Using it from a transport
//! 1. Build a [`Service`] from the node's shared [`NodeContext`] (the node's wiring does this
//!    once; [`Service::new`]).
//! 2. Per request, build a [`Caller`] from what the transport authenticated: the organisation
//!    from the client certificate ([`crate::identity::organisation_of`]), the stated actor
//!    ([`Caller::with_actor`], which refuses text that could be a pupil id) and the trace
//!    ([`crate::trace::TraceContext::continuing`] with the caller's `traceparent`, if any).
//! 3. Call one method per operation and render its result; map a [`ServiceError`] in one
//!    function (gRPC: `rpc::error`; REST: problem+json). The error's `Display` is the message
//!    for the caller: it never holds internals or a pupil id.
//!
//! The operations:
//! - intake ([`intake`]): [`Service::start_push`] gives a [`PushSession`]; feed it
//!   [`crate::signal::RawSignal`]s with [`PushSession::add`] (a gRPC stream or a JSON batch alike)
//!   and [`PushSession::finish`] it for the [`PushReport`] (per-record rejects with index, field
//!   and reason, and counts). Records are committed durably in bounded batches, each batch's
//!   signals with its audit entry under one sync. [`Service::list`] lists the node's own signals
//!   (a `limit`; no cursor yet).
//! - exchange ([`exchange`]): [`Service::answer_query`] answers a peer's query under a
//!   [`Claim`]; only the fields of its [`Disclosure::fields`] may leave the node.
//!   [`Service::decide`] is the one decision of every data-bearing request.
//!   [`Service::describe`].
//! - federation ([`federation`]): [`Service::federated_query`] asks every peer through a
//!   [`PeerAsker`] the transport provides (peers speak gRPC: `rpc::federation::GrpcPeers`) and
//!   audits what came back.
//! - cases ([`cases`]): [`Service::open_case`], [`Service::close_case`] (with a
//!   [`CaseNotifier`] that tells the participants' nodes), [`Service::answer_case`] (accept or
//!   decline), [`Service::list_cases`], and [`Service::take_shared_case`] for a peer's lead;
//!   care offers: [`Service::record_offer`] (by the organisation that makes it, told through
//!   the [`CaseNotifier`]) and [`Service::take_shared_offer`] for a participant's node.
//! - clock ([`clock`]): [`Service::due`], [`Service::g4_report`] (own organisation, optionally
//!   with what the peers share under a claim) and [`Service::counts`] (suppressed, for another
//!   party; a case claim counts only the case's pupils).
//! - audit ([`audit`]): [`Service::fg_access`] (the FG's grant, audited), then
//!   [`Service::audit_page`], [`Service::audit_entries`], [`Service::access_report`],
//!   [`Service::verify`], [`Service::prove`], [`Service::consistency`],
//!   [`Service::latest_checkpoint`]; the witness's [`Service::held_checkpoint`] and
//!   [`Service::add_checkpoint`]; the checkpoint task [`audit::spawn_checkpoints`].
//! - backup ([`backup`]): [`Service::backup_access`], then [`Service::write_backup`].

pub mod audit;
pub mod backup;
pub mod cases;
pub mod clock;
pub mod context;
pub mod error;
pub mod exchange;
pub mod federation;
pub mod intake;

pub use cases::{
    CaseNotifier, CaseOutcome, NewOffer, OfferOutcome, OpenCase, SharedCase, SharedParty,
};
pub use context::{NodeContext, PolicyHandle};
pub use error::ServiceError;
pub use exchange::{Claim, ClaimContext, Disclosure, NodeDescription};
pub use federation::{FederatedAnswers, PeerAnswered, PeerAsker, PeerFailure};
pub use intake::{PushReport, PushSession, Reject};

use crate::audit::{Action, NewEntry};
use crate::cases::RateLimiter;
use crate::identity::Organisation;
use crate::trace::TraceContext;
use std::sync::Arc;

/// Who is asking: the organisation its certificate names (never taken from the request), the
/// person or system it says is acting (for the audit log; may be empty) and the request's trace.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: Organisation,
    pub actor: String,
    pub trace: TraceContext,
}

impl Caller {
    /// A caller with no stated actor.
    pub fn new(org: Organisation, trace: TraceContext) -> Self {
        Self {
            org,
            actor: String::new(),
            trace,
        }
    }

    /// States the acting person or system (clipped to 200 characters); text that could be a
    /// pupil id is refused, naming `field` (how the transport carried it).
    pub fn with_actor(mut self, field: &str, actor: &str) -> Result<Self, ServiceError> {
        refuse_id_like(field, actor)?;
        self.actor = actor.chars().take(200).collect();
        Ok(self)
    }

    /// An audit entry of this caller's request; the operation fills in the rest.
    pub fn entry(&self, action: Action, policy_version: &str) -> NewEntry {
        NewEntry::new(&self.trace, &self.org, &self.actor, action, policy_version)
    }
}

/// The domain operations of one node. Cheap to clone; every clone shares the node.
#[derive(Clone)]
pub struct Service {
    node: Arc<NodeContext>,
    /// Bounds how fast the node's own organisation opens, accepts or declines cases.
    case_limiter: Arc<RateLimiter>,
    /// Bounds how fast one organisation shares cases with this node.
    share_limiter: Arc<RateLimiter>,
    /// One backup at a time: a second is refused, not queued on a blocking thread.
    backups: Arc<tokio::sync::Semaphore>,
}

impl Service {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self {
            node,
            case_limiter: Arc::new(RateLimiter::default()),
            share_limiter: Arc::new(RateLimiter::default()),
            backups: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// The node's shared context (for the operations still served by their handlers).
    pub fn node(&self) -> &Arc<NodeContext> {
        &self.node
    }

    /// Counts a refusal that names no pupil (a malformed request, a flood) for the caller, for
    /// the window's one audit entry, and returns it.
    pub fn counted(
        &self,
        caller: &Organisation,
        reason: &'static str,
        e: ServiceError,
    ) -> ServiceError {
        self.node
            .gate
            .refusals()
            .note(&caller.oin, &caller.name, reason);
        e
    }
}

/// Refuses caller text that holds a number that could be a pupil id (nine or more digits in a
/// row, in any script, counted across separators), naming the field and never echoing the text:
/// such text is never stored, shared or logged.
pub fn refuse_id_like(field: &str, text: &str) -> Result<(), ServiceError> {
    if crate::pseudonym::looks_like_id(text) {
        return Err(ServiceError::invalid(
            field,
            format!(
                "{field} holds nine or more digits in a row (counted across dots, dashes, spaces \
                 and other separators, in any script), which could be a BSN or onderwijsnummer; \
                 never put a pupil's number in {field}"
            ),
        ));
    }
    Ok(())
}

/// Refuses a case id that could carry a pupil id: a case id's hex digits may hold no valid BSN
/// or onderwijsnummer, and any other text is judged as free text ([`refuse_id_like`]).
pub fn refuse_id_like_case_id(field: &str, text: &str) -> Result<(), ServiceError> {
    if crate::cases::is_case_id(text) && !crate::pseudonym::holds_pupil_id_digits(text) {
        return Ok(());
    }
    if crate::pseudonym::holds_pupil_id_digits(text) {
        return Err(ServiceError::invalid(
            field,
            format!(
                "{field} holds nine digits that pass the BSN or onderwijsnummer check; case ids \
                 are made by the lead's node and never carry a pupil's number"
            ),
        ));
    }
    refuse_id_like(field, text)
}

/// Refuses an OIN field that is not exactly twenty digits, never echoing it.
pub fn refuse_non_oin(field: &str, text: &str) -> Result<(), ServiceError> {
    if crate::pseudonym::is_oin(text) {
        return Ok(());
    }
    Err(ServiceError::invalid(
        field,
        format!("{field} is not an OIN: an OIN is exactly twenty digits and nothing else"),
    ))
}

/// Parses one of the domain's ids ([`crate::ids`]) from `text`; a malformed one is
/// INVALID_ARGUMENT naming `field` (never echoing a number that could be a pupil id).
pub fn parse_id<T>(field: &str, text: &str) -> Result<T, ServiceError>
where
    T: std::str::FromStr<Err = crate::ids::IdError>,
{
    text.parse().map_err(|e: crate::ids::IdError| {
        ServiceError::invalid(field, format!("{field}: {}", e.reason()))
    })
}

/// [`parse_id`] for each text of a repeated field; a malformed one is INVALID_ARGUMENT naming
/// `field[index]`.
pub fn parse_ids<T>(field: &str, texts: &[String]) -> Result<Vec<T>, ServiceError>
where
    T: std::str::FromStr<Err = crate::ids::IdError>,
{
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| parse_id(&format!("{field}[{i}]"), t))
        .collect()
}

/// Refuses a repeated field with more than `max` items, naming the field.
pub fn check_count(field: &str, count: usize, max: usize) -> Result<(), ServiceError> {
    if count <= max {
        return Ok(());
    }
    Err(ServiceError::invalid(
        field,
        format!("{field}: {count} items; a request may carry at most {max}"),
    ))
}

/// The distinct pseudonyms of some signals, in first-seen order.
pub fn distinct_pupils(signals: &[crate::signal::Signal]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    signals
        .iter()
        .filter(|s| seen.insert(s.pupil_pseudonym.as_str()))
        .map(|s| s.pupil_pseudonym.to_string())
        .collect()
}
