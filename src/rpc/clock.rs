//! `pactgate.v1.Clock` and `pactgate.v1.Counts`: the due list and the G4 report for the node's
//! own organisation (over its own signals and, with a claim, what the peers share under it), and
//! suppressed counts for other parties under the monitoring routine flow. Counting itself is the
//! `clock` module's; this layer gathers signals and converts.

use super::convert;
use crate::audit::{Action, Decision as AuditDecision};
use crate::clock::{self, CountingRules};
use crate::exchange::{self, ExchangeFilter};
use crate::node::NodeContext;
use crate::pb;
use crate::pb::clock_server::Clock;
use crate::pb::counts_server::Counts;
use crate::signal::Signal;
use crate::store::SignalFilter;
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub struct ClockService {
    node: Arc<NodeContext>,
}

impl ClockService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }
}

pub struct CountsService {
    node: Arc<NodeContext>,
}

impl CountsService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }
}

fn rules(node: &NodeContext) -> Result<Arc<CountingRules>, Status> {
    node.counting.clone().ok_or_else(|| {
        Status::failed_precondition("this node has no counting rules loaded (config: counting)")
    })
}

fn parse_day(field: &str, text: &str) -> Result<NaiveDate, Status> {
    if text.is_empty() {
        return Ok(chrono::Utc::now().date_naive());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        Status::invalid_argument(format!(
            "{field}: {:?} is not a date (YYYY-MM-DD)",
            crate::pseudonym::withhold_ids(text)
        ))
    })
}

/// The reference dates of a request: at least one, at most the node's limit (the work grows with
/// their number), each a date.
fn parse_days(node: &NodeContext, texts: &[String]) -> Result<Vec<NaiveDate>, Status> {
    if texts.is_empty() {
        return Err(Status::invalid_argument(
            "at: give at least one reference date",
        ));
    }
    crate::limits::check_count("at", texts.len(), node.gate.limits().max_reference_dates)?;
    texts.iter().map(|t| parse_day("at", t)).collect()
}

fn rule<'a>(rules: &'a CountingRules, name: &str) -> Result<&'a clock::Rule, Status> {
    rules.rule(name).ok_or_else(|| {
        Status::invalid_argument(format!(
            "rule: {:?} is not a counting rule (known: {})",
            crate::pseudonym::withhold_ids(name),
            rules.rule_names().join(", ")
        ))
    })
}

fn codes(rows: &[clock::Row]) -> Vec<String> {
    rows.iter().map(|r| r.code().to_owned()).collect()
}

fn timeout(ms: u32) -> Duration {
    match ms {
        0 => super::federation::DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)).min(super::federation::MAX_TIMEOUT),
    }
}

/// What a report over the gathered signals covers: without a claim every category (the node's
/// own data); with one only what the claim's flow or seat shares (peers give nothing else). The
/// denominators are those of the node's own municipalities (none for a school-based party).
fn coverage(node: &NodeContext, claim: Option<&pb::AccessClaim>) -> clock::Coverage {
    let policy = node.policy.current();
    let own = policy.as_ref().and_then(|p| p.party_by_oin(&node.own.oin));
    let municipalities = own.map(|p| names(&p.municipalities)).unwrap_or_default();
    let Some(claim) = claim else {
        return clock::Coverage {
            visible: crate::signal::Category::ALL.to_vec(),
            municipalities,
        };
    };
    let visible = policy
        .as_ref()
        .and_then(|p| match super::exchange::context_of(claim).ok()? {
            crate::policy::Context::RoutineFlow { flow } => {
                Some(p.routine_flow(flow)?.signal_categories().to_vec())
            }
            crate::policy::Context::Case { meeting } => Some(
                p.meeting(meeting)?
                    .participant(own?.org_type, &claim.role)?
                    .signal_categories()
                    .to_vec(),
            ),
        })
        .unwrap_or_default();
    clock::Coverage {
        visible,
        municipalities,
    }
}

/// The node's own signals (as "self") and, with a claim, every signal the peers share under it.
async fn gather(
    node: &Arc<NodeContext>,
    caller: &crate::identity::Organisation,
    trace: &crate::trace::TraceContext,
    claim: Option<pb::AccessClaim>,
    wait: Duration,
) -> Result<(Vec<(String, Signal)>, Vec<pb::PeerFailure>), Status> {
    let store = node.store.clone();
    let own = tokio::task::spawn_blocking(move || store.list(&SignalFilter::default()))
        .await
        .map_err(super::task_status)?
        .map_err(super::store_status)?;
    let mut signals: Vec<(String, Signal)> =
        own.into_iter().map(|s| ("self".to_owned(), s)).collect();
    let Some(claim) = claim else {
        return Ok((signals, Vec::new()));
    };
    let query = pb::QueryRequest {
        claim: Some(claim),
        filter: None,
    };
    let federated = super::federation::federate_audited(node, caller, trace, query, wait).await?;
    for answer in &federated.answers {
        for view in answer.response.iter().flat_map(|r| r.signals.iter()) {
            if let Some(s) = convert::signal_from_view(view) {
                signals.push((answer.peer.clone(), s));
            }
        }
    }
    Ok((signals, federated.failures))
}

#[tonic::async_trait]
impl Clock for ClockService {
    async fn due(
        &self,
        request: Request<pb::DueRequest>,
    ) -> Result<Response<pb::DueResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let trace = crate::trace::TraceContext::from_metadata(request.metadata());
        let req = request.into_inner();
        let rules = rules(&self.node)?;
        let at = parse_day("at", &req.at)?;
        let (signals, failures) = gather(
            &self.node,
            &caller,
            &trace,
            req.claim,
            timeout(req.timeout_ms),
        )
        .await?;
        let lines = self
            .node
            .gate
            .heavy(move || clock::due(&signals, at, &rules))
            .await?;
        tracing::info!(peer.oin = %caller.oin, due.lines = lines.len(), due.failures = failures.len(), "due list");
        Ok(Response::new(pb::DueResponse {
            at: at.to_string(),
            lines: lines.iter().map(convert::due_line).collect(),
            failures,
        }))
    }

    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        let caller = self.node.authorize_own(&request)?;
        let trace = crate::trace::TraceContext::from_metadata(request.metadata());
        let req = request.into_inner();
        let rules = rules(&self.node)?;
        let dates = parse_days(&self.node, &req.at)?;
        let rule = rule(&rules, &req.rule)?.clone();
        let coverage = coverage(&self.node, req.claim.as_ref());
        let (signals, failures) = gather(
            &self.node,
            &caller,
            &trace,
            req.claim,
            timeout(req.timeout_ms),
        )
        .await?;
        let dates_asked = dates.len();
        // For the node's own organisation: nothing suppressed (threshold 0).
        let shown = self
            .node
            .gate
            .heavy(move || {
                clock::report_for(&signals, &dates, &rule, &rules, &coverage).suppressed(0)
            })
            .await?;
        let render = |e: clock::RenderError| {
            Status::internal(format!("the report could not be rendered: {e}"))
        };
        tracing::info!(peer.oin = %caller.oin, report.rule = %req.rule, report.dates = dates_asked, "report");
        Ok(Response::new(pb::ReportResponse {
            cells: shown.cells.iter().map(convert::report_cell).collect(),
            table: shown.to_table(),
            csv: shown.to_csv().map_err(render)?,
            json: shown.to_json().map_err(render)?,
            svg: shown.to_svg(),
            failures,
            unavailable_rows: codes(&shown.unavailable),
            denominator_municipalities: shown.covered.clone(),
        }))
    }
}

#[tonic::async_trait]
impl Counts for CountsService {
    async fn counts(
        &self,
        request: Request<pb::CountsRequest>,
    ) -> Result<Response<pb::CountsResponse>, Status> {
        let caller = super::caller(&request)?;
        let trace = crate::trace::TraceContext::from_metadata(request.metadata());
        let req = request.into_inner();
        let claim = req.claim.clone().unwrap_or_default();
        match self.decide_counts(&caller, req).await {
            Ok((response, permit)) => {
                let mut e = super::exchange::claim_entry(
                    &self.node,
                    &trace,
                    &caller,
                    &claim,
                    Action::Disclose,
                );
                e.processing_activity = permit.processing_activity.clone();
                e.data_categories = permit.data_categories.clone();
                e.count = response.cells.len() as u64;
                e.reason = format!(
                    "{} (suppressed counts only, threshold {})",
                    permit.rule, response.threshold
                );
                self.node.record_async(e).await?;
                Ok(Response::new(response))
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                // A malformed or oversized request names no pupil: counted, not logged alone.
                self.node.gate.refusals().note(
                    &caller.oin,
                    &caller.name,
                    crate::limits::reason::INVALID,
                );
                Err(status)
            }
            Err(status) => {
                let mut e = super::exchange::claim_entry(
                    &self.node,
                    &trace,
                    &caller,
                    &claim,
                    Action::Query,
                );
                e.decision = AuditDecision::Deny;
                e.reason = status.message().to_owned();
                self.node.record_async(e).await?;
                Err(status)
            }
        }
    }
}

impl CountsService {
    /// Decides a counts request and computes the suppressed cells.
    async fn decide_counts(
        &self,
        caller: &crate::identity::Organisation,
        req: pb::CountsRequest,
    ) -> Result<(pb::CountsResponse, crate::policy::Permit), Status> {
        // Oversized before anything else: the cap costs nothing, the policy decision does.
        crate::limits::check_count(
            "at",
            req.at.len(),
            self.node.gate.limits().max_reference_dates,
        )?;
        let claim = req
            .claim
            .ok_or_else(|| Status::permission_denied("denied: the request carries no claim"))?;
        let (policy, permit) = super::exchange::permit_for(&self.node, &caller.oin, &claim)?;
        if permit.fields.contains(crate::policy::Field::PupilPseudonym) {
            return Err(Status::permission_denied(format!(
                "denied: rule {} shares pupil-level data; counts are only given under a flow whose \
                 data categories hold no pseudonym (e.g. monitoring)",
                permit.rule
            )));
        }
        let rules = rules(&self.node)?;
        let dates = parse_days(&self.node, &req.at)?;
        let rule = rule(&rules, &req.rule)?.clone();
        let node = self.node.clone();
        let scope = permit.clone();
        let selected = tokio::task::spawn_blocking(move || {
            let today = chrono::Utc::now().date_naive();
            exchange::select(&node.store, &scope, &ExchangeFilter::default(), None, today)
        })
        .await
        .map_err(super::task_status)?
        .map_err(super::store_status)?;
        let own = self.node.own.name.clone();
        let signals: Vec<(String, Signal)> =
            selected.into_iter().map(|s| (own.clone(), s)).collect();
        let threshold = rules.suppression_threshold();
        let coverage = clock::Coverage {
            visible: permit.signal_categories.clone(),
            municipalities: policy
                .party_by_oin(&self.node.own.oin)
                .map(|p| names(&p.municipalities))
                .unwrap_or_default(),
        };
        let suppressed = self
            .node
            .gate
            .heavy(move || {
                clock::report_for(&signals, &dates, &rule, &rules, &coverage).suppressed(threshold)
            })
            .await?;
        tracing::info!(peer.oin = %caller.oin, counts.cells = suppressed.cells.len(), "counts answered");
        let response = pb::CountsResponse {
            cells: suppressed.cells.iter().map(convert::report_cell).collect(),
            threshold,
            holder: Some(convert::organisation(&self.node.own)),
            policy_version: policy.version().to_owned(),
            unavailable_rows: codes(&suppressed.unavailable),
            denominator_municipalities: suppressed.covered.clone(),
        };
        Ok((response, permit))
    }
}

/// Ids as the strings the clock's reports name them by.
fn names<T: ToString>(ids: &[T]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}
