//! Exchange under the covenant over real nodes on loopback: each routine flow allowed and denied
//! part by part, minimisation per flow, the organisation taken from the certificate, a peer down
//! during a federated query, and the property that no request without a matching rule gets any
//! data and no field outside the permit ever leaves a node.

mod common;

use common::*;
use pactgate::pb;
use pactgate::policy::{AccessRequest, Context, Decision, Permit, Scope};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What the swv-vo node holds: (record id, category, municipality, school, days absent). Every
/// record has its own absence date, so a minimised answer without record ids still tells which
/// record it is.
const SWV_VO_DATA: &[(&str, pb::Category, &str, &str, i64)] = &[
    ("vo-lrv-grn", pb::Category::Lrv, "GM0014", "20VA01", 60),
    (
        "vo-verzuim-grn",
        pb::Category::Verzuim,
        "GM0014",
        "20VB01",
        20,
    ),
    ("vo-lrv-hogeland", pb::Category::Lrv, "GM1966", "20VA01", 61),
    ("vo-av-hogeland", pb::Category::Av, "GM1966", "", 62),
    (
        "vo-ziek-grn",
        pb::Category::LangdurigZiek,
        "GM0014",
        "20VC01",
        63,
    ),
    (
        "vo-5a-grn",
        pb::Category::Vrijstelling5a,
        "GM0014",
        "20VC02",
        64,
    ),
    (
        "vo-5b-grn",
        pb::Category::Vrijstelling5b,
        "GM0014",
        "20VD01",
        65,
    ),
    (
        "vo-schorsing-grn",
        pb::Category::Schorsing,
        "GM0014",
        "20VD01",
        66,
    ),
    (
        "vo-ziek-hogeland",
        pb::Category::LangdurigZiek,
        "GM1966",
        "20VC01",
        67,
    ),
    (
        "vo-lrv-po-school",
        pb::Category::Lrv,
        "GM0014",
        "10PA01",
        68,
    ),
];

fn swv_vo_records(bsns: &mut Bsns) -> Vec<pb::SignalRecord> {
    SWV_VO_DATA
        .iter()
        .map(|(id, cat, gm, school, days)| record(id, &bsns.next_bsn(), *cat, gm, school, *days))
        .collect()
}

/// The record ids of the swv-vo data, recognised by absence date (works on minimised views).
fn swv_vo_ids(views: &[pb::SignalView]) -> BTreeSet<&'static str> {
    views
        .iter()
        .map(|v| {
            SWV_VO_DATA
                .iter()
                .find(|(_, _, _, _, days)| date_from_today(-days) == v.absent_since)
                .unwrap_or_else(|| panic!("a view not of the swv-vo data: {v:?}"))
                .0
        })
        .collect()
}

fn set(ids: &[&'static str]) -> BTreeSet<&'static str> {
    ids.iter().copied().collect()
}

/// The permit the shipped policy gives `caller` at `holder` for a claim.
fn local_permit(caller: &str, holder: &str, claim: &pb::AccessClaim) -> Permit {
    let policy = shipped_policy();
    let caller_oin = oin(caller);
    let holder_oin = oin(holder);
    let Some(pb::access_claim::Context::RoutineFlow(flow)) = &claim.context else {
        panic!("a routine-flow claim expected");
    };
    let decision = policy.evaluate(&AccessRequest {
        caller_oin: &caller_oin,
        holder_oin: &holder_oin,
        role: &claim.role,
        legal_basis: &claim.legal_basis,
        purpose: &claim.purpose,
        context: Context::RoutineFlow { flow },
    });
    decision
        .into_result()
        .unwrap_or_else(|d| panic!("the policy denies: {d}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verzuimmelding_gives_leerplicht_only_its_residents_and_only_the_flows_fields() {
    let fed = Federation::start(&["leerplicht", "swv-vo", "swv-po", "wij"]).await;
    push_all(fed.node("swv-vo"), swv_vo_records(&mut Bsns::new(41))).await;
    let claim = verzuimmelding_claim();
    let permit = local_permit("leerplicht", "swv-vo", &claim);
    let allowed = permit_field_names(&permit);

    // Directly, as the leerplicht node asks the swv-vo node.
    let mut exchange = fed.node("swv-vo").exchange_as("leerplicht").await;
    let answer = query(&mut exchange, claim.clone())
        .await
        .expect("permitted");
    assert_eq!(
        swv_vo_ids(&answer.signals),
        set(&[
            "vo-lrv-grn",
            "vo-verzuim-grn",
            "vo-5b-grn",
            "vo-schorsing-grn",
            "vo-lrv-po-school"
        ]),
        "only GM0014 residents, no health rows (LANGDURIG_ZIEK, VRIJSTELLING_5A)"
    );
    for v in &answer.signals {
        assert_eq!(v.residence_municipality, "GM0014");
        assert!(!matches!(
            v.category(),
            pb::Category::LangdurigZiek | pb::Category::Vrijstelling5a
        ));
        // bronverwijzing is part of the flow: the record id travels, the pupil by pseudonym.
        assert!(!v.source_record_id.is_empty() && v.pupil_pseudonym.starts_with("v1."));
    }
    assert_minimised(&answer.signals, &allowed, "verzuimmelding");
    assert_eq!(answer.disclosed_fields, allowed);
    assert_eq!(answer.rule, "routine_flow verzuimmelding");
    assert_eq!(answer.processing_activity, "GRN-LP-001");
    assert_eq!(answer.policy_version, shipped_policy().version());
    assert_eq!(
        answer.holder.as_ref().map(|h| h.oin.clone()),
        Some(oin("swv-vo"))
    );

    // A filter can narrow the scope, never widen it.
    let outside = query_filtered(
        &mut exchange,
        claim.clone(),
        pb::QueryFilter {
            residence_municipality: "GM1966".into(),
            ..Default::default()
        },
    )
    .await
    .expect("permitted");
    assert!(outside.signals.is_empty(), "{:?}", outside.signals);
    let only_lrv = query_filtered(
        &mut exchange,
        claim.clone(),
        pb::QueryFilter {
            categories: vec![pb::Category::Lrv as i32, pb::Category::LangdurigZiek as i32],
            ..Default::default()
        },
    )
    .await
    .expect("permitted");
    assert_eq!(
        swv_vo_ids(&only_lrv.signals),
        set(&["vo-lrv-grn", "vo-lrv-po-school"])
    );

    // Through the federation: the same answer from swv-vo, an empty one from swv-po, and the wij
    // node refuses because a wij is not where this flow comes from.
    let merged = federated(
        fed.node("leerplicht"),
        claim,
        pb::QueryFilter::default(),
        5000,
    )
    .await;
    let from_vo = answer_of(&merged, "swv-vo").expect("swv-vo answered");
    assert_eq!(swv_vo_ids(&from_vo.signals), swv_vo_ids(&answer.signals));
    assert!(answer_of(&merged, "swv-po")
        .expect("swv-po answered")
        .signals
        .is_empty());
    let wij = failure_of(&merged, "wij").expect("wij refused");
    assert_eq!(wij.code, "PERMISSION_DENIED");
    assert!(
        wij.message.contains("holder 'wij' is a wij"),
        "{}",
        wij.message
    );
    assert_eq!(merged.answers.len() + merged.failures.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_wrong_part_of_a_routine_flow_claim_is_denied_by_name() {
    let fed = Federation::start(&["swv-vo", "wij"]).await;
    push_all(fed.node("swv-vo"), swv_vo_records(&mut Bsns::new(42))).await;
    let swv = fed.node("swv-vo");
    let mut leerplicht = swv.exchange_as("leerplicht").await;
    let with = |f: &dyn Fn(&mut pb::AccessClaim)| {
        let mut claim = verzuimmelding_claim();
        f(&mut claim);
        claim
    };

    // The control: every part right.
    assert!(!query(&mut leerplicht, verzuimmelding_claim())
        .await
        .expect("permitted")
        .signals
        .is_empty());

    let cases: Vec<(&str, pb::AccessClaim, Vec<&str>)> = vec![
        (
            "wrong role",
            with(&|c| c.role = "wij-medewerker".into()),
            vec!["role 'wij-medewerker'", "verzuimmelding"],
        ),
        (
            "wrong legal basis",
            with(&|c| c.legal_basis = "jw-7-4".into()),
            vec!["legal basis 'jw-7-4'", "verzuimmelding"],
        ),
        (
            "unknown legal basis",
            with(&|c| c.legal_basis = "lpw-art99".into()),
            vec!["legal basis 'lpw-art99'"],
        ),
        (
            "wrong purpose",
            with(&|c| c.purpose = "passend-aanbod".into()),
            vec!["purpose 'passend-aanbod'", "verzuimmelding"],
        ),
        (
            "unknown flow",
            with(&|c| {
                c.context = Some(pb::access_claim::Context::RoutineFlow(
                    "verzuimmelding-2".into(),
                ))
            }),
            vec!["routine flow 'verzuimmelding-2' does not exist"],
        ),
        (
            "no context",
            with(&|c| c.context = None),
            vec!["neither a routine_flow nor a case_ref"],
        ),
        (
            "empty everything",
            pb::AccessClaim::default(),
            vec!["neither a routine_flow nor a case_ref"],
        ),
    ];
    for (what, claim, reason) in cases {
        let result = query(&mut leerplicht, claim).await;
        assert!(result.is_err(), "{what}: got data {result:?}");
        assert_denied(result, &reason);
    }
    let no_claim = leerplicht
        .query(pb::QueryRequest {
            claim: None,
            filter: None,
        })
        .await;
    assert_denied(no_claim, &["no claim"]);

    // The caller's organisation type is not one the flow goes to.
    let mut wij = swv.exchange_as("wij").await;
    assert_denied(
        query(&mut wij, verzuimmelding_claim()).await,
        &["caller 'wij' is a wij", "verzuimmelding", "gemeente"],
    );
    // The holder is not one the flow comes from: leerplicht asks the wij node.
    let mut at_wij = fed.node("wij").exchange_as("leerplicht").await;
    assert_denied(
        query(&mut at_wij, verzuimmelding_claim()).await,
        &["holder 'wij' is a wij", "verzuimmelding"],
    );
    // The FG is no party: it may inspect, never query.
    let mut fg = swv.exchange_as("fg").await;
    assert_denied(
        query(&mut fg, verzuimmelding_claim()).await,
        &["not a party of the covenant"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_flow_gives_health_data_and_monitoring_gets_its_own_rows_fields_and_scope() {
    let swv = TestNode::start("swv-vo").await;
    push_all(&swv, swv_vo_records(&mut Bsns::new(43))).await;

    // There is no routine flow to health data: the 5a advice is a case about one child
    // (meeting advies-5a), so the old bulk pull is refused by name.
    let mut leerplicht = swv.exchange_as("leerplicht").await;
    assert_denied(
        query(
            &mut leerplicht,
            flow_claim(
                "leerplichtambtenaar",
                "lpw-art5-onder-a",
                "advies-vrijstelling-5a",
                "advies-vrijstelling-5a",
            ),
        )
        .await,
        &["routine flow 'advies-vrijstelling-5a' does not exist"],
    );

    // monitoring by the gemeente: counting fields only (no pseudonym, school or age).
    let claim = flow_claim("monitor", "lpw-art25", "monitoring", "monitoring");
    let permit = local_permit("leerplicht", "swv-vo", &claim);
    let counts = query(&mut leerplicht, claim).await.expect("permitted");
    assert_eq!(
        swv_vo_ids(&counts.signals),
        set(&[
            "vo-lrv-grn",
            "vo-verzuim-grn",
            "vo-5b-grn",
            "vo-schorsing-grn",
            "vo-lrv-po-school"
        ])
    );
    assert_minimised(&counts.signals, &permit_field_names(&permit), "monitoring");
    for v in &counts.signals {
        assert!(v.pupil_pseudonym.is_empty() && v.school.is_empty() && v.age == 0);
        assert!(v.source_record_id.is_empty());
    }

    // monitoring by another swv: scoped to its own schools (10PA, 10PB, 10PC).
    let claim = flow_claim("monitor", "wpo-18a", "monitoring", "monitoring");
    let mut swv_po = swv.exchange_as("swv-po").await;
    let theirs = query(&mut swv_po, claim).await.expect("permitted");
    assert_eq!(swv_vo_ids(&theirs.signals), set(&["vo-lrv-po-school"]));

    // Denied parts of these flows: ggd is not a receiver; a case role in a flow; the wrong hat.
    let mut ggd = swv.exchange_as("ggd").await;
    assert_denied(
        query(
            &mut ggd,
            flow_claim("monitor", "lpw-art25", "monitoring", "monitoring"),
        )
        .await,
        &["caller 'ggd' is a ggd", "monitoring"],
    );
    assert_denied(
        query(
            &mut leerplicht,
            flow_claim(
                "leerplichtambtenaar",
                "lpw-art25",
                "monitoring",
                "monitoring",
            ),
        )
        .await,
        &["role 'leerplichtambtenaar'", "monitoring"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organisation_comes_from_the_certificate_not_the_claim() {
    let fed = Federation::start(&["leerplicht", "swv-vo"]).await;
    push_all(fed.node("swv-vo"), swv_vo_records(&mut Bsns::new(44))).await;

    // A wij client claims to be the leerplichtambtenaar of the absence flow.
    let mut wij = fed.node("swv-vo").exchange_as("wij").await;
    let mut claim = verzuimmelding_claim();
    claim.actor = "Gemeente Groningen Leerplicht RMC".into();
    assert_denied(query(&mut wij, claim).await, &["caller 'wij' is a wij"]);

    // FederationService/QueryPeers is for a node's own organisation only.
    let mut foreign = fed.node("leerplicht").federation_as("wij").await;
    let status = foreign
        .query_peers(pb::QueryPeersRequest {
            claim: Some(verzuimmelding_claim()),
            filter: None,
            timeout_ms: 1000,
        })
        .await
        .expect_err("wij may not use leerplicht's federation");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("only for"),
        "{}",
        status.message()
    );
    // Not even leerplicht at the swv-vo node: its own node is where it federates.
    let mut at_swv = fed.node("swv-vo").federation_as("leerplicht").await;
    let status = at_swv
        .query_peers(pb::QueryPeersRequest {
            claim: Some(verzuimmelding_claim()),
            filter: None,
            timeout_ms: 1000,
        })
        .await
        .expect_err("leerplicht may not use swv-vo's federation");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // The cases service likewise.
    let mut cases = fed.node("swv-vo").cases_as("leerplicht").await;
    let status = cases
        .list_cases(pb::ListCasesRequest { open_only: false })
        .await
        .expect_err("leerplicht may not list swv-vo's cases");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // DescribeNode: anyone of the covenant may ask who runs a node and under which policy.
    let described = fed
        .node("swv-vo")
        .exchange_as("wij")
        .await
        .describe_node(pb::DescribeNodeRequest {})
        .await
        .expect("DescribeNode")
        .into_inner();
    assert_eq!(described.organisation.map(|o| o.oin), Some(oin("swv-vo")));
    assert_eq!(described.policy_version, shipped_policy().version());
    assert!(described.policy_version.starts_with("sha256:"));
    assert_eq!(described.covenant, shipped_policy().covenant().name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_policy_denies_every_exchange() {
    let options = NodeOptions {
        policy: None,
        peers: Vec::new(),
    };
    let swv = TestNode::start_with("swv-vo", options).await;
    push_all(&swv, swv_vo_records(&mut Bsns::new(45))).await;
    let mut leerplicht = swv.exchange_as("leerplicht").await;
    assert_denied(
        query(&mut leerplicht, verzuimmelding_claim()).await,
        &["no covenant policy"],
    );
    let described = leerplicht
        .describe_node(pb::DescribeNodeRequest {})
        .await
        .expect("DescribeNode")
        .into_inner();
    assert_eq!(described.policy_version, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_silent_or_impostor_is_reported_while_the_others_answer_in_time() {
    let silent = SilentPeer::start();
    // A real node of the covenant at an address configured for another organisation.
    let impostor = TestNode::start("swv-po").await;
    let extra = vec![
        pactgate::peers::PeerConfig {
            name: "impostor".into(),
            address: impostor.addr().to_string(),
            oin: oin("mbo"),
        },
        pactgate::peers::PeerConfig {
            name: "silent".into(),
            address: silent.addr.to_string(),
            oin: oin("ggd"),
        },
        pactgate::peers::PeerConfig {
            name: "gone".into(),
            address: closed_port().to_string(),
            oin: oin("wij"),
        },
    ];
    let mut fed = Federation::start_with(
        &["leerplicht", "swv-vo", "swv-po", "mbo"],
        Some(policy_path()),
        extra,
    )
    .await;
    push_all(fed.node("swv-vo"), swv_vo_records(&mut Bsns::new(46))).await;
    let leerplicht = fed.node("leerplicht");
    // Once with every real peer up, so the connection to mbo exists before it goes down.
    let before = federated(leerplicht, verzuimmelding_claim(), Default::default(), 1000).await;
    assert!(answer_of(&before, "mbo").is_some(), "{before:?}");

    let mbo = fed.take("mbo");
    drop(mbo.stop().await);
    let timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let merged = federated(
        fed.node("leerplicht"),
        verzuimmelding_claim(),
        Default::default(),
        timeout.as_millis() as u32,
    )
    .await;
    let took = started.elapsed();

    assert!(
        took < timeout * 2,
        "the federated query took {took:?} with a timeout of {timeout:?}"
    );
    let from_vo = answer_of(&merged, "swv-vo").expect("swv-vo answered");
    assert_eq!(from_vo.signals.len(), 5, "{:?}", from_vo.signals);
    assert!(answer_of(&merged, "swv-po").is_some(), "{merged:?}");
    for (peer, codes) in [
        ("mbo", &["UNAVAILABLE"][..]),
        ("gone", &["UNAVAILABLE"][..]),
        ("silent", &["DEADLINE_EXCEEDED", "UNAVAILABLE"][..]),
        ("impostor", &["UNAVAILABLE"][..]),
    ] {
        let failure = failure_of(&merged, peer).unwrap_or_else(|| panic!("{peer}: {merged:?}"));
        assert!(
            codes.contains(&failure.code.as_str()),
            "{peer}: {} {}",
            failure.code,
            failure.message
        );
        assert!(!failure.message.is_empty());
    }
    assert_eq!(merged.answers.len(), 2);
    assert_eq!(merged.failures.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Property: no data without a matching rule; no field outside the permit
// ---------------------------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    /// Generated requests per run (one federation serves them all).
    const CASES: u32 = 256;
    const HOLDERS: [&str; 5] = ["swv-vo", "mbo", "leerplicht", "wij", "ggd"];
    const CALLERS: [&str; 7] = ["swv-vo", "swv-po", "mbo", "leerplicht", "wij", "ggd", "fg"];

    /// A generated request: who asks which node, with which claim.
    #[derive(Debug, Clone)]
    struct Ask {
        caller: &'static str,
        holder: &'static str,
        role: String,
        basis: String,
        purpose: String,
        /// Routine flow id, or (meeting id, which case: 0 open, 1 closed, 2 unknown).
        context: Result<String, (String, u8)>,
    }

    /// Ids of the policy plus junk that looks like them.
    fn ids_or_junk(ids: Vec<String>) -> BoxedStrategy<String> {
        prop_oneof![
            4 => proptest::sample::select(ids),
            1 => "[a-z-]{0,12}",
            1 => Just(String::new()),
        ]
        .boxed()
    }

    /// A rule of the policy a claim can be built from: its context, role, bases and purposes,
    /// and the parties (callers) of the org types it is written for.
    #[derive(Debug, Clone)]
    struct Rule {
        flow: Option<String>,
        meeting: Option<String>,
        role: String,
        bases: Vec<String>,
        purposes: Vec<String>,
        callers: Vec<&'static str>,
        /// The holders that can answer it (those the flow comes from, those with a seat).
        holders: Vec<&'static str>,
    }

    fn rules() -> Vec<Rule> {
        let p = shipped_policy();
        let parties_of = |types: &[pactgate::policy::OrgType], among: &[&'static str]| {
            p.parties()
                .iter()
                .filter(|party| types.contains(&party.org_type))
                .filter_map(|party| among.iter().copied().find(|c| *c == party.id))
                .collect::<Vec<&'static str>>()
        };
        let callers_of = |types: &[pactgate::policy::OrgType]| parties_of(types, &CALLERS);
        let holders_of = |types: &[pactgate::policy::OrgType]| parties_of(types, &HOLDERS);
        let mut out: Vec<Rule> = p
            .routine_flows()
            .iter()
            .map(|f| Rule {
                flow: Some(f.id.clone()),
                meeting: None,
                role: f.role.clone(),
                bases: f.legal_bases.clone(),
                purposes: vec![f.purpose.clone()],
                callers: callers_of(&f.to),
                holders: holders_of(&f.from),
            })
            .collect();
        for m in p.meetings() {
            for seat in &m.participants {
                out.push(Rule {
                    flow: None,
                    meeting: Some(m.id.clone()),
                    role: seat.role.clone(),
                    bases: seat.legal_bases.clone(),
                    purposes: seat.purposes.clone(),
                    callers: callers_of(&[seat.org_type]),
                    holders: holders_of(
                        &m.participants
                            .iter()
                            .map(|s| s.org_type)
                            .collect::<Vec<_>>(),
                    ),
                });
            }
        }
        out
    }

    /// Anything at all: ids of the policy or junk in every part, from any caller to any holder.
    fn random_asks() -> BoxedStrategy<Ask> {
        let p = shipped_policy();
        let mut roles: Vec<String> = p.routine_flows().iter().map(|f| f.role.clone()).collect();
        for m in p.meetings() {
            roles.extend(m.participants.iter().map(|s| s.role.clone()));
        }
        roles.sort();
        roles.dedup();
        let bases: Vec<String> = p.legal_bases().iter().map(|b| b.id.clone()).collect();
        let purposes: Vec<String> = p.purposes().iter().map(|x| x.id.clone()).collect();
        let flows: Vec<String> = p.routine_flows().iter().map(|f| f.id.clone()).collect();
        let meetings: Vec<String> = p.meetings().iter().map(|m| m.id.clone()).collect();
        let context = prop_oneof![
            ids_or_junk(flows).prop_map(Ok),
            (ids_or_junk(meetings), 0u8..3).prop_map(Err),
        ];
        (
            proptest::sample::select(&CALLERS[..]),
            proptest::sample::select(&HOLDERS[..]),
            ids_or_junk(roles),
            ids_or_junk(bases),
            ids_or_junk(purposes),
            context,
        )
            .prop_map(|(caller, holder, role, basis, purpose, context)| Ask {
                caller,
                holder,
                role,
                basis,
                purpose,
                context,
            })
            .boxed()
    }

    /// A claim written after one rule, mostly by a caller it is written for, with at most one
    /// part changed to another id or junk: near misses as well as hits.
    fn rule_asks() -> BoxedStrategy<Ask> {
        let p = shipped_policy();
        let mut any_id: Vec<String> = p.legal_bases().iter().map(|b| b.id.clone()).collect();
        any_id.extend(p.purposes().iter().map(|x| x.id.clone()));
        any_id.extend(p.meetings().iter().map(|m| m.id.clone()));
        any_id.push("leerplichtambtenaar".into());
        // Flows, the seats of the case's meeting, and the other seats, in equal measure.
        let (flows, seats): (Vec<Rule>, Vec<Rule>) =
            rules().into_iter().partition(|r| r.flow.is_some());
        let (aoj, other_seats): (Vec<Rule>, Vec<Rule>) = seats
            .into_iter()
            .partition(|r| r.meeting.as_deref() == Some("aoj-team-vo"));
        let rule = prop_oneof![
            proptest::sample::select(flows),
            proptest::sample::select(aoj),
            proptest::sample::select(other_seats),
        ];
        let pick = |fits: bool, list: &[&'static str], i: proptest::sample::Index, other| {
            if fits && !list.is_empty() {
                list[i.index(list.len())]
            } else {
                other
            }
        };
        (
            (
                rule,
                any::<proptest::sample::Index>(),
                any::<proptest::sample::Index>(),
                any::<proptest::sample::Index>(),
                any::<proptest::sample::Index>(),
            ),
            proptest::bool::weighted(0.8),
            proptest::sample::select(&CALLERS[..]),
            proptest::sample::select(&HOLDERS[..]),
            prop_oneof![4 => Just(0u8), 1 => 1u8..3],
            prop_oneof![3 => Just(0u8), 1 => 1u8..5],
            ids_or_junk(any_id),
        )
            .prop_map(
                move |(
                    (rule, basis, purpose, caller, holder),
                    fits,
                    other_caller,
                    other_holder,
                    which,
                    change,
                    junk,
                )| {
                    let mut ask = Ask {
                        caller: pick(fits, &rule.callers, caller, other_caller),
                        holder: pick(fits, &rule.holders, holder, other_holder),
                        role: rule.role.clone(),
                        basis: basis.get(&rule.bases).clone(),
                        purpose: purpose.get(&rule.purposes).clone(),
                        context: match (&rule.flow, &rule.meeting) {
                            (Some(flow), _) => Ok(flow.clone()),
                            (None, Some(meeting)) => Err((meeting.clone(), which)),
                            (None, None) => unreachable!(),
                        },
                    };
                    match change {
                        1 => ask.role = junk,
                        2 => ask.basis = junk,
                        3 => ask.purpose = junk,
                        4 => match &mut ask.context {
                            Ok(flow) => *flow = junk,
                            Err((meeting, _)) => *meeting = junk,
                        },
                        _ => {}
                    }
                    ask
                },
            )
            .boxed()
    }

    fn asks() -> impl Strategy<Value = Ask> {
        prop_oneof![1 => random_asks(), 3 => rule_asks()]
    }

    /// The data every holder node gets: (municipality, school, category) per record, each with its
    /// own absence date across the whole federation.
    const DATA: &[(&str, &str, pb::Category)] = &[
        ("GM0014", "20VA01", pb::Category::Lrv),
        ("GM0014", "25MA01", pb::Category::Verzuim),
        ("GM1966", "20VB01", pb::Category::Lrv),
        ("GM0014", "10PA01", pb::Category::Av),
        ("GM0014", "20VC01", pb::Category::LangdurigZiek),
        ("GM1966", "25MB01", pb::Category::LangdurigZiek),
        ("GM0014", "20VD01", pb::Category::Vrijstelling5a),
        ("GM0014", "20VA02", pb::Category::Vrijstelling5b),
        ("GM1966", "20VA03", pb::Category::Vrijstelling5c),
        ("GM0014", "25MA02", pb::Category::Schorsing),
        ("GM1966", "10PB01", pb::Category::Verwijdering),
    ];

    /// The full record behind a returned view, found by (holder, absence date).
    struct Held {
        record: pb::SignalRecord,
        pseudonym: String,
    }

    struct World {
        fed: Federation,
        held: BTreeMap<(String, String), Held>,
        open_case: pb::Case,
        closed_case: pb::Case,
        policy: pactgate::policy::Policy,
    }

    async fn world() -> World {
        let fed = Federation::start(&HOLDERS).await;
        let mut bsns = Bsns::new(47);
        let mut held = BTreeMap::new();
        let mut days = 10;
        let mut pupils = Vec::new();
        for holder in HOLDERS {
            let mut records = Vec::new();
            for (i, (gm, school, category)) in DATA.iter().enumerate() {
                days += 1;
                let bsn = bsns.next_bsn();
                let r = record(&format!("{holder}-r{i}"), &bsn, *category, gm, school, days);
                let pseudonym = pseudonym_of(&bsn);
                // Two pupils per holder (a case covers at most 10): a resident of GM0014 and a
                // non-resident, both at an SWV VO school.
                if i == 0 || i == 2 {
                    pupils.push(pseudonym.clone());
                }
                held.insert(
                    (holder.to_owned(), r.absent_since.clone()),
                    Held {
                        record: r.clone(),
                        pseudonym,
                    },
                );
                records.push(r);
            }
            push_all(fed.node(holder), records).await;
        }
        let mut cases = fed.node("swv-vo").cases_as("swv-vo").await;
        let open = |pupils: Vec<String>| {
            let request = pb::OpenCaseRequest {
                meeting_type: "aoj-team-vo".into(),
                purpose: "passend-aanbod".into(),
                pupil_pseudonyms: pupils,
                participant_oins: vec![oin("leerplicht"), oin("wij"), oin("ggd")],
                actor: "test".into(),
            };
            let mut cases = cases.clone();
            async move {
                cases
                    .open_case(request)
                    .await
                    .expect("OpenCase")
                    .into_inner()
            }
        };
        let opened = open(pupils.clone()).await;
        assert!(opened.not_notified.is_empty(), "{:?}", opened.not_notified);
        let open_id = opened.case.as_ref().unwrap().case_id.clone();
        for party in ["leerplicht", "wij", "ggd"] {
            fed.node(party)
                .cases_as(party)
                .await
                .accept_case(pb::AcceptCaseRequest {
                    case_id: open_id.clone(),
                    actor: "test".into(),
                })
                .await
                .expect("AcceptCase");
        }
        let closing = open(pupils).await;
        let closed = cases
            .close_case(pb::CloseCaseRequest {
                case_id: closing.case.unwrap().case_id,
                actor: "test".into(),
            })
            .await
            .expect("CloseCase")
            .into_inner();
        assert!(closed.not_notified.is_empty());
        World {
            fed,
            held,
            open_case: opened.case.unwrap(),
            closed_case: closed.case.unwrap(),
            policy: shipped_policy(),
        }
    }

    fn claim_of(ask: &Ask, w: &World) -> pb::AccessClaim {
        match &ask.context {
            Ok(flow) => flow_claim(&ask.role, &ask.basis, &ask.purpose, flow),
            Err((meeting, which)) => {
                let id = match which {
                    0 => w.open_case.case_id.clone(),
                    1 => w.closed_case.case_id.clone(),
                    _ => "case-00000000deadbeef".to_owned(),
                };
                case_claim(&ask.role, &ask.basis, &ask.purpose, meeting, &id)
            }
        }
    }

    /// Whether the holder's node would accept a case read, given a permit: the case is known
    /// there, of that meeting, open, for its purpose, and both caller and holder take part.
    fn case_readable(ask: &Ask, w: &World) -> bool {
        let Err((meeting, which)) = &ask.context else {
            return true;
        };
        let case = &w.open_case;
        let takes_part = |party: &str| {
            let o = oin(party);
            case.lead.as_ref().is_some_and(|l| l.oin == o)
                || case.participants.iter().any(|p| p.oin == o)
        };
        *which == 0
            && *meeting == case.meeting_type
            && ask.purpose == case.purpose
            && takes_part(ask.caller)
            && takes_part(ask.holder)
    }

    async fn check(ask: Ask, w: &World) -> Result<usize, TestCaseError> {
        let claim = claim_of(&ask, w);
        let decision = decide(&ask, &w.policy);
        let mut client = w.fed.node(ask.holder).exchange_as(ask.caller).await;
        let result = query(&mut client, claim).await;
        let permit = match decision {
            Decision::Deny(denial) => {
                let status = result.err().ok_or_else(|| {
                    TestCaseError::fail(format!("denied by the policy ({denial}) but answered"))
                })?;
                prop_assert_eq!(status.code(), tonic::Code::PermissionDenied, "{:?}", status);
                return Ok(0);
            }
            // A case read is narrowed to the scope of the case's lead (the SWV VO) as well.
            Decision::Permit(permit) if ask.context.is_err() => w
                .policy
                .narrow_to_case(permit, &oin("swv-vo"))
                .map_err(TestCaseError::fail)?,
            Decision::Permit(permit) => permit,
        };
        if !case_readable(&ask, w) {
            let status = result.err().ok_or_else(|| {
                TestCaseError::fail("a case read the node should refuse was answered")
            })?;
            prop_assert_eq!(status.code(), tonic::Code::PermissionDenied, "{:?}", status);
            return Ok(0);
        }
        let answer = result.map_err(|s| TestCaseError::fail(format!("permitted, yet {s:?}")))?;
        let allowed = permit_field_names(&permit);
        prop_assert_eq!(&answer.disclosed_fields, &allowed);
        for v in &answer.signals {
            for field in carried_fields(v) {
                prop_assert!(allowed.contains(&field), "field {} left the node", field);
            }
            let held = w
                .held
                .get(&(ask.holder.to_owned(), v.absent_since.clone()))
                .ok_or_else(|| TestCaseError::fail(format!("an unknown signal {v:?}")))?;
            let r = &held.record;
            let category = pactgate::rpc::convert::category_from_pb(r.category).unwrap();
            prop_assert!(
                permit.signal_categories().contains(&category),
                "row {:?}",
                category
            );
            let in_scope = covers(permit.scope(), r);
            prop_assert!(
                in_scope,
                "{} outside {:?}",
                r.source_record_id,
                permit.scope()
            );
            if ask.context.is_err() {
                prop_assert!(w.open_case.pupil_pseudonyms.contains(&held.pseudonym));
            }
            // Whatever is disclosed is the holder's own value, not something made up.
            if !v.pupil_pseudonym.is_empty() {
                prop_assert_eq!(&v.pupil_pseudonym, &held.pseudonym);
            }
            if !v.residence_municipality.is_empty() {
                prop_assert_eq!(&v.residence_municipality, &r.residence_municipality);
            }
        }
        // And nothing the permit allows is held back: the expected rows all came.
        let expected = w
            .held
            .iter()
            .filter(|((holder, _), _)| holder == ask.holder)
            .filter(|(_, h)| {
                let c = pactgate::rpc::convert::category_from_pb(h.record.category).unwrap();
                let in_scope = covers(permit.scope(), &h.record);
                permit.signal_categories().contains(&c)
                    && in_scope
                    && (ask.context.is_ok() || w.open_case.pupil_pseudonyms.contains(&h.pseudonym))
            })
            .count();
        prop_assert_eq!(answer.signals.len(), expected);
        Ok(expected)
    }

    /// Whether a record lies within a scope, written apart from the node's own check.
    fn covers(scope: &Scope, r: &pb::SignalRecord) -> bool {
        match scope {
            Scope::Unrestricted => true,
            Scope::Municipalities(codes) => codes.iter().any(|c| *c == r.residence_municipality),
            Scope::Schools(brins) => brins.iter().any(|b| r.school.starts_with(b.as_str())),
            Scope::Both(a, b) => covers(a, r) && covers(b, r),
        }
    }

    fn decide(ask: &Ask, policy: &pactgate::policy::Policy) -> Decision {
        let caller_oin = oin(ask.caller);
        let holder_oin = oin(ask.holder);
        let context = match &ask.context {
            Ok(flow) => Context::RoutineFlow { flow },
            Err((meeting, _)) => Context::Case { meeting },
        };
        policy.evaluate(&AccessRequest {
            caller_oin: &caller_oin,
            holder_oin: &holder_oin,
            role: &ask.role,
            legal_basis: &ask.basis,
            purpose: &ask.purpose,
            context,
        })
    }

    #[test]
    fn no_data_without_a_matching_rule_and_no_field_outside_the_permit() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let w = rt.block_on(world());
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let answered = std::cell::Cell::new(0usize);
        let with_data = std::cell::Cell::new(0usize);
        let case_reads = std::cell::Cell::new(0usize);
        let result = runner.run(&asks(), |ask| {
            let answers = decide(&ask, &w.policy).is_permit() && case_readable(&ask, &w);
            let in_case = ask.context.is_err();
            let signals = rt.block_on(check(ask, &w))?;
            answered.set(answered.get() + usize::from(answers));
            with_data.set(with_data.get() + usize::from(signals > 0));
            case_reads.set(case_reads.get() + usize::from(answers && in_case && signals > 0));
            Ok(())
        });
        drop(w);
        if let Err(e) = result {
            panic!("{e}");
        }
        eprintln!(
            "{} of {CASES} generated requests were answered, {} with data, {} of them case reads",
            answered.get(),
            with_data.get(),
            case_reads.get()
        );
        assert!(
            // About a quarter are answered; case reads with data (only seats with the case's
            // purpose, about ten a run): these floors lie far in the tail, so they fail only
            // when the generator stops reaching the rules.
            answered.get() >= CASES as usize / 8
                && with_data.get() >= CASES as usize / 16
                && case_reads.get() >= CASES as usize / 128,
            "the generator should reach the permitted side often enough"
        );
    }
}
