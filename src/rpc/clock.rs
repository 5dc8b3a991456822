//! `pactgate.v1.Clock` and `pactgate.v1.Counts`: the due list and the G4 report for the node's
//! own organisation (over its own signals and, with a claim, what the peers share under it), and
//! suppressed counts for other parties under the monitoring routine flow. Counting itself is the
//! `clock` module's; this layer gathers signals and converts.

use super::convert;
use crate::audit::Action;
use crate::clock::{self, CountingRules};
use crate::exchange::{self, ExchangeFilter};
use crate::pb;
use crate::pb::clock_server::Clock;
use crate::pb::counts_server::Counts;
use crate::service::NodeContext;
use crate::service::{Caller, Service, ServiceError};
use crate::signal::Signal;
use crate::store::SignalFilter;
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub struct ClockService {
    service: Service,
    node: Arc<NodeContext>,
}

impl ClockService {
    pub fn new(service: Service) -> Self {
        Self {
            node: service.node().clone(),
            service,
        }
    }
}

pub struct CountsService {
    service: Service,
    node: Arc<NodeContext>,
}

impl CountsService {
    pub fn new(service: Service) -> Self {
        Self {
            node: service.node().clone(),
            service,
        }
    }
}

fn rules(node: &NodeContext) -> Result<Arc<CountingRules>, ServiceError> {
    node.counting.clone().ok_or_else(|| {
        ServiceError::FailedPrecondition(
            "this node has no counting rules loaded (config: counting)".into(),
        )
    })
}

fn parse_day(field: &str, text: &str) -> Result<NaiveDate, ServiceError> {
    if text.is_empty() {
        return Ok(chrono::Utc::now().date_naive());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ServiceError::invalid(
            field,
            format!(
                "{field}: {:?} is not a date (YYYY-MM-DD)",
                crate::pseudonym::withhold_ids(text)
            ),
        )
    })
}

/// The reference dates of a request: at least one, at most the node's limit (the work grows with
/// their number), each a date.
fn parse_days(node: &NodeContext, texts: &[String]) -> Result<Vec<NaiveDate>, ServiceError> {
    if texts.is_empty() {
        return Err(ServiceError::invalid(
            "at",
            "at: give at least one reference date",
        ));
    }
    crate::service::check_count("at", texts.len(), node.gate.limits().max_reference_dates)?;
    texts.iter().map(|t| parse_day("at", t)).collect()
}

fn rule<'a>(rules: &'a CountingRules, name: &str) -> Result<&'a clock::Rule, ServiceError> {
    rules.rule(name).ok_or_else(|| {
        ServiceError::invalid(
            "rule",
            format!(
                "rule: {:?} is not a counting rule (known: {})",
                crate::pseudonym::withhold_ids(name),
                rules.rule_names().join(", ")
            ),
        )
    })
}

fn codes(rows: &[clock::Row]) -> Vec<String> {
    rows.iter().map(|r| r.code().to_owned()).collect()
}

fn timeout(ms: u32) -> Duration {
    crate::service::federation::timeout_of(ms)
}

/// What a report over the gathered signals covers: without a claim every category (the node's
/// own data); with one only what the claim's flow or seat shares (peers give nothing else). The
/// denominators are those of the node's own municipalities (none for a school-based party).
fn coverage(node: &NodeContext, claim: Option<&pb::AccessClaim>) -> clock::Coverage {
    let policy = node.policy.current();
    let own = policy.as_ref().and_then(|p| p.party_by_oin(&node.own.oin));
    let municipalities = own.map(|p| p.municipalities.clone()).unwrap_or_default();
    let Some(claim) = claim else {
        return clock::Coverage {
            visible: crate::signal::Category::ALL.to_vec(),
            municipalities,
        };
    };
    let visible = policy
        .as_ref()
        .and_then(|p| match claim.context.as_ref()? {
            pb::access_claim::Context::RoutineFlow(flow) => {
                Some(p.routine_flow(flow)?.signal_categories().to_vec())
            }
            pb::access_claim::Context::CaseRef(case) => Some(
                p.meeting(&case.meeting_type)?
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
    service: &Service,
    caller: &crate::identity::Organisation,
    trace: &crate::trace::TraceContext,
    claim: Option<pb::AccessClaim>,
    wait: Duration,
) -> Result<(Vec<(String, Signal)>, Vec<pb::PeerFailure>), Status> {
    let store = service.node().store.clone();
    let own = tokio::task::spawn_blocking(move || store.list(&SignalFilter::default()))
        .await
        .map_err(super::task_status)?
        .map_err(super::store_status)?;
    let mut signals: Vec<(String, Signal)> =
        own.into_iter().map(|s| ("self".to_owned(), s)).collect();
    let Some(claim) = claim else {
        return Ok((signals, Vec::new()));
    };
    let asker = Caller::new(caller.clone(), trace.clone());
    let federated = super::federation::federate_audited(service, &asker, claim, None, wait).await?;
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
        let caller = super::authorize_own(&self.node, &request)?;
        let trace = crate::trace::TraceContext::from_metadata(request.metadata());
        let req = request.into_inner();
        let rules = rules(&self.node)?;
        let at = parse_day("at", &req.at)?;
        let (signals, failures) = gather(
            &self.service,
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
        let caller = super::authorize_own(&self.node, &request)?;
        let trace = crate::trace::TraceContext::from_metadata(request.metadata());
        let req = request.into_inner();
        let rules = rules(&self.node)?;
        let dates = parse_days(&self.node, &req.at)?;
        let rule = rule(&rules, &req.rule)?.clone();
        let coverage = coverage(&self.node, req.claim.as_ref());
        let (signals, failures) = gather(
            &self.service,
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
        let caller = super::service_caller(&request)?;
        let req = request.into_inner();
        let claim = req.claim.clone().map(super::exchange::claim_from_pb);
        let outcome = self.decide_counts(&caller.org, claim.as_ref(), req).await;
        let service = self.service.clone();
        let response = tokio::task::spawn_blocking(move || {
            let claim = claim.unwrap_or_default();
            let outcome = outcome.map(|(response, entry)| {
                let mut e = service.claim_entry(&caller, &claim, Action::Disclose);
                e.processing_activity = entry.processing_activity;
                e.data_categories = entry.data_categories;
                e.count = response.cells.len() as u64;
                e.reason = entry.reason;
                (response, e)
            });
            service.audit_decision(&caller, &claim, outcome)
        })
        .await
        .map_err(super::task_status)??;
        Ok(Response::new(response))
    }
}

impl CountsService {
    /// Decides a counts request (a case claim is bound to its case, as for a query) and
    /// computes the suppressed cells; the audit facts of the permit go back with them.
    async fn decide_counts(
        &self,
        caller: &crate::identity::Organisation,
        claim: Option<&crate::service::Claim>,
        req: pb::CountsRequest,
    ) -> Result<(pb::CountsResponse, crate::audit::NewEntry), ServiceError> {
        // Oversized before anything else: the cap costs nothing, the policy decision does.
        crate::service::check_count(
            "at",
            req.at.len(),
            self.node.gate.limits().max_reference_dates,
        )?;
        let claim = claim.ok_or_else(|| ServiceError::denied("the request carries no claim"))?;
        let service = self.service.clone();
        let (owner, asked) = (caller.clone(), claim.clone());
        let (policy, permit) =
            tokio::task::spawn_blocking(move || service.decide(&owner, &asked)).await??;
        if permit
            .fields()
            .contains(crate::policy::Field::PupilPseudonym)
        {
            return Err(ServiceError::denied(format!(
                "rule {} shares pupil-level data; counts are only given under a flow whose \
                 data categories hold no pseudonym (e.g. monitoring)",
                permit.rule()
            )));
        }
        let rules = rules(&self.node)?;
        let dates = parse_days(&self.node, &req.at)?;
        let rule = rule(&rules, &req.rule)?.clone();
        let node = self.node.clone();
        let visible = permit.signal_categories().to_vec();
        let mut facts = crate::audit::NewEntry::new(
            &crate::trace::TraceContext::new_root(),
            caller,
            "",
            Action::Disclose,
            "",
        );
        facts.processing_activity = permit.processing_activity().to_owned();
        facts.data_categories = permit.data_categories().to_vec();
        let permit_rule = permit.rule().to_owned();
        let selected = tokio::task::spawn_blocking(move || {
            let today = chrono::Utc::now().date_naive();
            exchange::select(&node.store, &permit, &ExchangeFilter::default(), today)
        })
        .await??;
        let own = self.node.own.name.clone();
        let signals: Vec<(String, Signal)> =
            selected.into_iter().map(|s| (own.clone(), s)).collect();
        let threshold = rules.suppression_threshold();
        let coverage = clock::Coverage {
            visible,
            municipalities: policy
                .party_by_oin(&self.node.own.oin)
                .map(|p| p.municipalities.clone())
                .unwrap_or_default(),
        };
        let suppressed = self
            .node
            .gate
            .heavy(move || {
                clock::report_for(&signals, &dates, &rule, &rules, &coverage).suppressed(threshold)
            })
            .await
            .map_err(|s| ServiceError::Unavailable(s.message().to_owned()))?;
        tracing::info!(peer.oin = %caller.oin, counts.cells = suppressed.cells.len(), "counts answered");
        facts.reason = format!("{permit_rule} (suppressed counts only, threshold {threshold})");
        let response = pb::CountsResponse {
            cells: suppressed.cells.iter().map(convert::report_cell).collect(),
            threshold,
            holder: Some(convert::organisation(&self.node.own)),
            policy_version: policy.version().to_owned(),
            unavailable_rows: codes(&suppressed.unavailable),
            denominator_municipalities: suppressed.covered.clone(),
        };
        Ok((response, facts))
    }
}
