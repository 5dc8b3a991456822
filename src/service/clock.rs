//! The clock for the node's own organisation (the due list and the G4 report over its own
//! signals and, with a claim, what the peers share under it) and suppressed counts for other
//! parties. Counting itself is the `clock` module's; this layer gathers signals, decides (a
//! counts request through [`Service::decide`], so a case claim is bound to its case) and audits.

use super::federation::{PeerAnswered, PeerAsker, PeerFailure};
use super::{Caller, Claim, ClaimContext, Service, ServiceError};
use crate::audit::Action;
use crate::clock::{self, CountingRules, DueLine, SuppressedReport};
use crate::exchange::{self, ExchangeFilter};
use crate::identity::Organisation;
use crate::signal::Signal;
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;

/// A peer's answer that can also give back its signals, for counting.
pub trait CountableAnswer: PeerAnswered {
    /// The signals the peer shared that can be counted (the rest is left out).
    fn signals(&self) -> Vec<Signal>;
}

/// The due list at a date, and the peers that did not answer.
#[derive(Debug)]
pub struct DueList {
    pub at: NaiveDate,
    pub lines: Vec<DueLine>,
    pub failures: Vec<PeerFailure>,
}

/// The G4 report (nothing suppressed: for the node's own organisation), and the peers that did
/// not answer.
#[derive(Debug)]
pub struct G4Report {
    pub report: SuppressedReport,
    pub failures: Vec<PeerFailure>,
}

/// Suppressed counts for another party.
#[derive(Debug)]
pub struct Counts {
    pub report: SuppressedReport,
    pub threshold: u64,
    pub holder: Organisation,
    pub policy_version: String,
}

impl Service {
    fn counting_rules(&self) -> Result<Arc<CountingRules>, ServiceError> {
        self.node.counting.clone().ok_or_else(|| {
            ServiceError::FailedPrecondition(
                "this node has no counting rules loaded (config: counting)".into(),
            )
        })
    }

    /// The due list at `at` ("" for today) over the node's own signals and, with a claim, what
    /// the peers share under it.
    #[tracing::instrument(name = "service.due", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn due<A>(
        &self,
        caller: &Caller,
        at: &str,
        claim: Option<Claim>,
        peers: &A,
        filter: A::Filter,
        timeout: Duration,
    ) -> Result<DueList, ServiceError>
    where
        A: PeerAsker,
        A::Answer: CountableAnswer,
    {
        self.node.check_own(&caller.org)?;
        let rules = self.counting_rules()?;
        let at = parse_day("at", at)?;
        let (signals, failures) = self.gather(caller, claim, peers, filter, timeout).await?;
        let lines = self
            .node
            .gate
            .heavy(move || clock::due(&signals, at, &rules))
            .await?;
        tracing::info!(peer.oin = %caller.org.oin, due.lines = lines.len(), due.failures = failures.len(), "due list");
        Ok(DueList {
            at,
            lines,
            failures,
        })
    }

    /// The G4 report of `rule` at the reference dates `at`, over the node's own signals and, with
    /// a claim, what the peers share under it; nothing suppressed (the node's own organisation).
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(name = "service.report", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn g4_report<A>(
        &self,
        caller: &Caller,
        rule: &str,
        at: &[String],
        claim: Option<Claim>,
        peers: &A,
        filter: A::Filter,
        timeout: Duration,
    ) -> Result<G4Report, ServiceError>
    where
        A: PeerAsker,
        A::Answer: CountableAnswer,
    {
        self.node.check_own(&caller.org)?;
        let rules = self.counting_rules()?;
        let dates = self.parse_days(at)?;
        let counting = counting_rule(&rules, rule)?.clone();
        let coverage = self.coverage(claim.as_ref());
        let (signals, failures) = self.gather(caller, claim, peers, filter, timeout).await?;
        let dates_asked = dates.len();
        let report = self
            .node
            .gate
            .heavy(move || {
                clock::report_for(&signals, &dates, &counting, &rules, &coverage).suppressed(0)
            })
            .await?;
        tracing::info!(peer.oin = %caller.org.oin, report.rule = %rule, report.dates = dates_asked, "report");
        Ok(G4Report { report, failures })
    }

    /// Suppressed counts of `rule` at `at` for another party under its claim: decided like a
    /// query (a case claim is bound to its case and counts only its pupils), refused for a rule
    /// that shares pupil-level data, audited like a disclosure.
    #[tracing::instrument(name = "service.counts", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn counts(
        &self,
        caller: &Caller,
        claim: Option<Claim>,
        rule: &str,
        at: &[String],
    ) -> Result<Counts, ServiceError> {
        let outcome = self.decide_counts(caller, claim.as_ref(), rule, at).await;
        let service = self.clone();
        let caller = caller.clone();
        tokio::task::spawn_blocking(move || {
            let claim = claim.unwrap_or_default();
            let outcome = outcome.map(|(counts, facts)| {
                let mut e = service.claim_entry(&caller, &claim, Action::Disclose);
                e.processing_activity = facts.0;
                e.data_categories = facts.1;
                e.count = counts.report.cells.len() as u64;
                e.reason = facts.2;
                (counts, e)
            });
            service.audit_decision(&caller, &claim, outcome)
        })
        .await?
    }

    /// Decides a counts request and computes the cells; the permit's processing activity, data
    /// categories and audit reason go back with them.
    async fn decide_counts(
        &self,
        caller: &Caller,
        claim: Option<&Claim>,
        rule: &str,
        at: &[String],
    ) -> Result<(Counts, (String, Vec<String>, String)), ServiceError> {
        // Oversized before anything else: the cap costs nothing, the policy decision does.
        super::check_count("at", at.len(), self.node.gate.limits().max_reference_dates)?;
        let claim = claim.ok_or_else(|| ServiceError::denied("the request carries no claim"))?;
        let service = self.clone();
        let (owner, asked) = (caller.org.clone(), claim.clone());
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
        let rules = self.counting_rules()?;
        let dates = self.parse_days(at)?;
        let counting = counting_rule(&rules, rule)?.clone();
        let visible = permit.signal_categories().to_vec();
        let facts_of = |reason: String| {
            (
                permit.processing_activity().to_owned(),
                permit.data_categories().to_vec(),
                reason,
            )
        };
        let permit_rule = permit.rule().to_owned();
        let mut facts = facts_of(String::new());
        let node = self.node.clone();
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
                .map(|p| p.municipalities.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        };
        let report = self
            .node
            .gate
            .heavy(move || {
                clock::report_for(&signals, &dates, &counting, &rules, &coverage)
                    .suppressed(threshold)
            })
            .await?;
        tracing::info!(peer.oin = %caller.org.oin, counts.cells = report.cells.len(), "counts answered");
        facts.2 = format!("{permit_rule} (suppressed counts only, threshold {threshold})");
        let counts = Counts {
            report,
            threshold,
            holder: self.node.own.clone(),
            policy_version: policy.version().to_owned(),
        };
        Ok((counts, facts))
    }

    /// The reference dates of a request: at least one, at most the node's limit (the work grows
    /// with their number), each a date.
    fn parse_days(&self, texts: &[String]) -> Result<Vec<NaiveDate>, ServiceError> {
        if texts.is_empty() {
            return Err(ServiceError::invalid(
                "at",
                "at: give at least one reference date",
            ));
        }
        super::check_count(
            "at",
            texts.len(),
            self.node.gate.limits().max_reference_dates,
        )?;
        texts.iter().map(|t| parse_day("at", t)).collect()
    }

    /// What a report over the gathered signals covers: without a claim every category (the
    /// node's own data); with one only what the claim's flow or seat shares (peers give nothing
    /// else). The denominators are those of the node's own municipalities (none for a
    /// school-based party).
    fn coverage(&self, claim: Option<&Claim>) -> clock::Coverage {
        let node = &self.node;
        let policy = node.policy.current();
        let own = policy.as_ref().and_then(|p| p.party_by_oin(&node.own.oin));
        let municipalities = own
            .map(|p| p.municipalities.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let Some(claim) = claim else {
            return clock::Coverage {
                visible: crate::signal::Category::ALL.to_vec(),
                municipalities,
            };
        };
        let visible = policy
            .as_ref()
            .and_then(|p| match claim.context.as_ref()? {
                ClaimContext::RoutineFlow(flow) => {
                    Some(p.routine_flow(flow)?.signal_categories().to_vec())
                }
                ClaimContext::Case { meeting_type, .. } => Some(
                    p.meeting(meeting_type)?
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

    /// The node's own signals (as "self") and, with a claim, every signal the peers share under
    /// it (the federated query audited as such).
    async fn gather<A>(
        &self,
        caller: &Caller,
        claim: Option<Claim>,
        peers: &A,
        filter: A::Filter,
        timeout: Duration,
    ) -> Result<(Vec<(String, Signal)>, Vec<PeerFailure>), ServiceError>
    where
        A: PeerAsker,
        A::Answer: CountableAnswer,
    {
        let store = self.node.store.clone();
        let own = tokio::task::spawn_blocking(move || store.list_for_clock()).await??;
        let mut signals: Vec<(String, Signal)> =
            own.into_iter().map(|s| ("self".to_owned(), s)).collect();
        let policy = self.node.policy.current();
        let Some(claim) = claim else {
            crate::cases::apply_clock_offers(&self.node.cases, policy.as_deref(), &mut signals)?;
            return Ok((signals, Vec::new()));
        };
        let federated = self
            .federated_query(caller, peers, claim, filter, timeout)
            .await?;
        for answer in &federated.answers {
            let peer = answer.peer().to_owned();
            signals.extend(answer.signals().into_iter().map(|s| (peer.clone(), s)));
        }
        crate::cases::apply_clock_offers(&self.node.cases, policy.as_deref(), &mut signals)?;
        Ok((signals, federated.failures))
    }
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

fn counting_rule<'a>(
    rules: &'a CountingRules,
    name: &str,
) -> Result<&'a clock::Rule, ServiceError> {
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

impl Service {
    /// The pseudonym of one pupil id (BSN or onderwijsnummer) that a person of the node's own
    /// organisation looks up, under the current key version: the id goes to the
    /// pseudonymisation service blinded and is dropped; the look-up is audited with the
    /// pseudonym and the caller's actor, never the id.
    #[tracing::instrument(name = "service.pupil_pseudonym", skip_all, fields(peer.oin = %caller.org.oin, trace.id = %caller.trace.trace_id))]
    pub async fn pupil_pseudonym(
        &self,
        caller: &Caller,
        pupil_id: &str,
    ) -> Result<crate::ids::Pseudonym, ServiceError> {
        self.node.check_own(&caller.org)?;
        let id = crate::pseudonym::PupilId::parse(pupil_id)
            .map_err(|e| ServiceError::invalid("pupil_id", format!("pupil_id {e}")))?;
        let computed = self
            .node
            .pseudonymiser
            .pseudonymise_batch([&id], &caller.trace)
            .await?
            .pop()
            .unwrap_or_default();
        let pseudonym = crate::ids::Pseudonym::parse_field(&computed, "pupil_pseudonym")
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut e = caller.entry(Action::Query, &self.node.policy_version());
        e.pupils = vec![pseudonym.to_string()];
        e.count = 1;
        e.reason = "one pupil looked up by BSN or onderwijsnummer (pseudonymised)".into();
        self.node.record_async(e).await?;
        Ok(pseudonym)
    }
}
