//! Cases over real nodes on loopback: an AOJ-team case opened at the SWV VO travels to the
//! participants' nodes, where it counts only once each participant has accepted it; each
//! participant reads only the case's pupils, for the case's purpose, only the rows and fields of
//! its seat (the GGD doctor sees long-term sickness, the WIJ worker does not); non-participants,
//! the wrong meeting or purpose and a closed case are refused; only the lead closes or shares.
//! Then the adversarial cases of issue 9: forged leads, oversized and re-shared cases, floods.

mod common;

use common::*;
use pactgate::pb;
use std::collections::BTreeSet;

/// (record id, pupil, category, days absent): the days tell records apart in minimised answers.
type Row = (&'static str, char, pb::Category, i64);

const SWV_VO_ROWS: &[Row] = &[
    ("a-ziek", 'A', pb::Category::LangdurigZiek, 70),
    ("a-lrv", 'A', pb::Category::Lrv, 71),
    ("b-lrv", 'B', pb::Category::Lrv, 73),
    ("b-5a", 'B', pb::Category::Vrijstelling5a, 74),
    ("b-5b", 'B', pb::Category::Vrijstelling5b, 75),
    ("c-ziek", 'C', pb::Category::LangdurigZiek, 76),
    ("c-lrv", 'C', pb::Category::Lrv, 77),
];
const LEERPLICHT_ROWS: &[Row] = &[
    ("lp-a-verzuim", 'A', pb::Category::Verzuim, 72),
    ("lp-c-verzuim", 'C', pb::Category::Verzuim, 78),
];
const MBO_ROWS: &[Row] = &[("mbo-a-lrv", 'A', pb::Category::Lrv, 79)];

fn all_rows() -> impl Iterator<Item = &'static Row> {
    SWV_VO_ROWS.iter().chain(LEERPLICHT_ROWS).chain(MBO_ROWS)
}

/// The record ids of views, recognised by their absence date.
fn row_ids(views: &[pb::SignalView]) -> BTreeSet<&'static str> {
    views
        .iter()
        .map(|v| {
            all_rows()
                .find(|(_, _, _, days)| date_from_today(-days) == v.absent_since)
                .unwrap_or_else(|| panic!("a view of no known row: {v:?}"))
                .0
        })
        .collect()
}

fn ids(list: &[&'static str]) -> BTreeSet<&'static str> {
    list.iter().copied().collect()
}

/// The three pupils' BSNs (A and B are in the case, C is not).
struct Pupils {
    bsn: [String; 3],
}

impl Pupils {
    fn new(seed: u64) -> Self {
        let mut bsns = Bsns::new(seed);
        Self {
            bsn: [bsns.next_bsn(), bsns.next_bsn(), bsns.next_bsn()],
        }
    }

    fn bsn(&self, pupil: char) -> &str {
        &self.bsn[(pupil as u8 - b'A') as usize]
    }

    fn pseudonym(&self, pupil: char) -> String {
        pseudonym_of(self.bsn(pupil))
    }

    fn records(&self, rows: &[Row], school: &str) -> Vec<pb::SignalRecord> {
        rows.iter()
            .map(|(id, pupil, category, days)| {
                record(id, self.bsn(*pupil), *category, "GM0014", school, *days)
            })
            .collect()
    }
}

fn participants() -> Vec<String> {
    vec![oin("leerplicht"), oin("wij"), oin("ggd")]
}

fn aoj_case(pupils: &Pupils) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        meeting_type: "aoj-team-vo".into(),
        purpose: "jgz-advies".into(),
        pupil_pseudonyms: vec![pupils.pseudonym('A'), pupils.pseudonym('B')],
        participant_oins: participants(),
        actor: "zorgcoordinator".into(),
    }
}

/// The fields a seat of the shipped policy may see, by proto name.
fn seat_fields(meeting: &str, org_type: &str, role: &str) -> Vec<&'static str> {
    let policy = shipped_policy();
    let seat = policy
        .meeting(meeting)
        .and_then(|m| {
            m.participants
                .iter()
                .find(|s| s.org_type.code() == org_type && s.role == role)
        })
        .unwrap_or_else(|| panic!("no seat {org_type}:{role} in {meeting}"));
    let mut names = Vec::new();
    for id in &seat.data_categories {
        let category = policy.data_category(id).expect("a known data category");
        for field in category.fields.iter() {
            if !names.contains(&field.name()) {
                names.push(field.name());
            }
        }
    }
    names
}

/// Accepts a case at a party's node, as that party.
async fn accept(node: &TestNode, case_id: &str) -> Result<pb::Case, tonic::Status> {
    node.cases_as(&node.party.clone())
        .await
        .accept_case(pb::AcceptCaseRequest {
            case_id: case_id.into(),
            actor: "voorzitter".into(),
        })
        .await
        .map(|r| r.into_inner().case.expect("the case"))
}

/// Opens a case at the SWV VO node and accepts it at each of `accepting`'s nodes.
async fn open_accepted(
    fed: &Federation,
    request: pb::OpenCaseRequest,
    accepting: &[&str],
) -> pb::Case {
    let opened = fed
        .node("swv-vo")
        .cases_as("swv-vo")
        .await
        .open_case(request)
        .await
        .expect("OpenCase")
        .into_inner();
    assert!(opened.not_notified.is_empty(), "{:?}", opened.not_notified);
    let case = opened.case.expect("the case");
    for party in accepting {
        let accepted = accept(fed.node(party), &case.case_id)
            .await
            .unwrap_or_else(|s| panic!("AcceptCase at {party}: {s:?}"));
        assert_eq!(accepted.acceptance(), pb::CaseAcceptance::Accepted);
    }
    case
}

async fn list_cases(node: &TestNode, open_only: bool) -> Vec<pb::Case> {
    node.cases_as(&node.party.clone())
        .await
        .list_cases(pb::ListCasesRequest { open_only })
        .await
        .unwrap_or_else(|s| panic!("ListCases at {}: {s:?}", node.party))
        .into_inner()
        .cases
}

/// Every signal of a federated answer, from every peer.
fn all_signals(response: &pb::QueryPeersResponse) -> Vec<pb::SignalView> {
    response
        .answers
        .iter()
        .flat_map(|a| a.response.iter().flat_map(|r| r.signals.iter().cloned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aoj_case_from_open_to_closed() {
    let fed = Federation::start(&["swv-vo", "leerplicht", "wij", "ggd", "mbo"]).await;
    let pupils = Pupils::new(51);
    push_all(fed.node("swv-vo"), pupils.records(SWV_VO_ROWS, "20VA01")).await;
    push_all(
        fed.node("leerplicht"),
        pupils.records(LEERPLICHT_ROWS, "20VB01"),
    )
    .await;
    push_all(fed.node("mbo"), pupils.records(MBO_ROWS, "25MA01")).await;

    // Opening at the lead's node tells every participant's node.
    let mut lead = fed.node("swv-vo").cases_as("swv-vo").await;
    let opened = lead
        .open_case(aoj_case(&pupils))
        .await
        .expect("OpenCase")
        .into_inner();
    assert!(opened.not_notified.is_empty(), "{:?}", opened.not_notified);
    let case = opened.case.expect("the case");
    assert!(
        pactgate::cases::is_case_id(&case.case_id),
        "{}",
        case.case_id
    );
    assert!(case.open && case.closed_at.is_empty());
    assert_eq!(
        case.lead.as_ref().map(|l| l.oin.clone()),
        Some(oin("swv-vo"))
    );
    assert_eq!(
        case.acceptance(),
        pb::CaseAcceptance::Accepted,
        "the lead opened it"
    );
    let case_id = case.case_id.clone();
    for party in ["swv-vo", "leerplicht", "wij", "ggd"] {
        let held = list_cases(fed.node(party), true).await;
        assert_eq!(held.len(), 1, "{party}: {held:?}");
        assert_eq!(held[0].case_id, case_id);
        assert_eq!(held[0].pupil_pseudonyms, case.pupil_pseudonyms);
        assert_eq!(held[0].lead, case.lead);
    }
    assert!(list_cases(fed.node("mbo"), false).await.is_empty());

    // Until the participants accept, the case opens nothing at their nodes.
    let ggd_claim = || {
        case_claim(
            "jeugdarts",
            "jw-jgz-verzuim",
            "jgz-advies",
            "aoj-team-vo",
            &case_id,
        )
    };
    let early = federated(fed.node("ggd"), ggd_claim(), Default::default(), 5000).await;
    let pending = failure_of(&early, "leerplicht").expect("leerplicht refused");
    assert!(
        pending.message.contains("not been accepted"),
        "{}",
        pending.message
    );
    assert!(
        answer_of(&early, "swv-vo").is_some(),
        "the lead's node counts it"
    );
    for party in ["leerplicht", "wij", "ggd"] {
        let held = list_cases(fed.node(party), true).await;
        assert_eq!(held[0].acceptance(), pb::CaseAcceptance::Pending, "{party}");
        accept(fed.node(party), &case_id)
            .await
            .unwrap_or_else(|s| panic!("AcceptCase at {party}: {s:?}"));
        let held = list_cases(fed.node(party), true).await;
        assert_eq!(
            held[0].acceptance(),
            pb::CaseAcceptance::Accepted,
            "{party}"
        );
    }
    // Another organisation cannot accept at a node that is not its own.
    let status = fed
        .node("wij")
        .cases_as("leerplicht")
        .await
        .accept_case(pb::AcceptCaseRequest {
            case_id: case_id.clone(),
            actor: String::new(),
        })
        .await
        .expect_err("only the node's own organisation");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // The GGD jeugdarts: long-term sickness and 5a of the case's pupils, nothing of pupil C.
    let ggd = federated(fed.node("ggd"), ggd_claim(), Default::default(), 5000).await;
    let from_swv = answer_of(&ggd, "swv-vo").expect("swv-vo answered the GGD");
    assert_eq!(
        row_ids(&from_swv.signals),
        ids(&["a-ziek", "a-lrv", "b-lrv", "b-5a"])
    );
    assert_eq!(from_swv.processing_activity, "GRN-GGD-010");
    assert!(from_swv.rule.contains("aoj-team-vo") && from_swv.rule.contains("jeugdarts"));
    let from_lp = answer_of(&ggd, "leerplicht").expect("leerplicht answered the GGD");
    assert_eq!(row_ids(&from_lp.signals), ids(&["lp-a-verzuim"]));
    assert!(answer_of(&ggd, "wij").is_some_and(|a| a.signals.is_empty()));
    // The mbo node has no seat at this meeting (and holds no such case): it refuses.
    let mbo = failure_of(&ggd, "mbo").expect("mbo refused");
    assert_eq!(mbo.code, "PERMISSION_DENIED");
    assert!(mbo.message.contains("holder 'mbo'"), "{}", mbo.message);
    let ggd_fields = seat_fields("aoj-team-vo", "ggd", "jeugdarts");
    let signals = all_signals(&ggd);
    assert_minimised(&signals, &ggd_fields, "jeugdarts");
    let in_case = [pupils.pseudonym('A'), pupils.pseudonym('B')];
    assert!(signals.iter().all(|v| in_case.contains(&v.pupil_pseudonym)));
    assert!(signals.iter().all(|v| v.source_record_id.is_empty()));

    // The WIJ worker: not in this case (its purpose is not the case's); in a case of its own
    // purpose, the same pupils but no health rows and only the verzuim fields.
    let wij_claim = |case_id: &str| {
        case_claim(
            "wij-medewerker",
            "jw-7-4",
            "zorg-en-ondersteuning",
            "aoj-team-vo",
            case_id,
        )
    };
    let mut wij_at_swv = fed.node("swv-vo").exchange_as("wij").await;
    assert_denied(
        query(&mut wij_at_swv, wij_claim(&case_id)).await,
        &["purpose", "jgz-advies"],
    );
    let wij_case = open_accepted(
        &fed,
        pb::OpenCaseRequest {
            purpose: "zorg-en-ondersteuning".into(),
            participant_oins: vec![oin("leerplicht"), oin("wij")],
            ..aoj_case(&pupils)
        },
        &["leerplicht", "wij"],
    )
    .await;
    let wij = federated(
        fed.node("wij"),
        wij_claim(&wij_case.case_id),
        Default::default(),
        5000,
    )
    .await;
    let signals = all_signals(&wij);
    assert_eq!(row_ids(&signals), ids(&["a-lrv", "b-lrv", "lp-a-verzuim"]));
    assert!(signals.iter().all(|v| !matches!(
        v.category(),
        pb::Category::LangdurigZiek | pb::Category::Vrijstelling5a
    )));
    assert_minimised(
        &signals,
        &seat_fields("aoj-team-vo", "wij", "wij-medewerker"),
        "wij",
    );

    // Leerplicht at the table of a passend-aanbod case: verzuim and vrijstelling (5b), no health.
    let lp_case = open_accepted(
        &fed,
        pb::OpenCaseRequest {
            purpose: "passend-aanbod".into(),
            participant_oins: vec![oin("leerplicht")],
            ..aoj_case(&pupils)
        },
        &["leerplicht"],
    )
    .await;
    let lp_claim = case_claim(
        "leerplichtambtenaar",
        "lpw-art22",
        "passend-aanbod",
        "aoj-team-vo",
        &lp_case.case_id,
    );
    let mut lp_at_swv = fed.node("swv-vo").exchange_as("leerplicht").await;
    let answer = query(&mut lp_at_swv, lp_claim.clone())
        .await
        .expect("permitted");
    assert_eq!(row_ids(&answer.signals), ids(&["a-lrv", "b-lrv", "b-5b"]));
    assert_minimised(
        &answer.signals,
        &seat_fields("aoj-team-vo", "gemeente", "leerplichtambtenaar"),
        "leerplicht",
    );

    // Refusals, each naming what did not match.
    let mut mbo_at_swv = fed.node("swv-vo").exchange_as("mbo").await;
    assert_denied(
        query(
            &mut mbo_at_swv,
            case_claim(
                "ect-lid",
                "web-8-3",
                "passend-aanbod",
                "aoj-team-vo",
                &case_id,
            ),
        )
        .await,
        &["caller 'mbo' is a mbo", "no seat", "aoj-team-vo"],
    );
    // A party with a seat at this meeting, but not at this case's table.
    let mut swv_po = fed.node("swv-vo").exchange_as("swv-po").await;
    assert_denied(
        query(
            &mut swv_po,
            case_claim(
                "zorgcoordinator",
                "wvo-17a",
                "passend-aanbod",
                "aoj-team-vo",
                &lp_case.case_id,
            ),
        )
        .await,
        &["does not take part", &lp_case.case_id],
    );
    // The right seat at another meeting than the case's.
    assert_denied(
        query(
            &mut lp_at_swv,
            case_claim(
                "leerplichtambtenaar",
                "lpw-art22",
                "verzuimaanpak",
                "ect-vo",
                &case_id,
            ),
        )
        .await,
        &["belongs to meeting", "aoj-team-vo", "ect-vo"],
    );
    assert_denied(
        query(
            &mut lp_at_swv,
            case_claim(
                "leerplichtambtenaar",
                "lpw-art22",
                "verzuimaanpak",
                "aoj-team-vo",
                "case-0123456789abcdef",
            ),
        )
        .await,
        &["not known"],
    );
    let mut ggd_at_swv = fed.node("swv-vo").exchange_as("ggd").await;
    for (claim, reason) in [
        (
            case_claim(
                "wij-medewerker",
                "jw-jgz-verzuim",
                "jgz-advies",
                "aoj-team-vo",
                &case_id,
            ),
            &["role 'wij-medewerker'", "ggd"][..],
        ),
        (
            case_claim("jeugdarts", "jw-7-4", "jgz-advies", "aoj-team-vo", &case_id),
            &["legal basis 'jw-7-4'", "jeugdarts"][..],
        ),
        // The JGZ has no role in absence under the Wpg (seed 002, line 291-292).
        (
            case_claim("jeugdarts", "wpg-5", "jgz-advies", "aoj-team-vo", &case_id),
            &["legal basis 'wpg-5'", "jeugdarts"][..],
        ),
        (
            case_claim(
                "jeugdarts",
                "jw-jgz-verzuim",
                "passend-aanbod",
                "aoj-team-vo",
                &case_id,
            ),
            &["purpose 'passend-aanbod'", "jeugdarts"][..],
        ),
        (
            case_claim(
                "jeugdarts",
                "jw-jgz-verzuim",
                "jgz-advies",
                "geen-overleg",
                &case_id,
            ),
            &["meeting 'geen-overleg' does not exist"][..],
        ),
    ] {
        assert_denied(query(&mut ggd_at_swv, claim).await, reason);
    }

    // Only the lead closes: leerplicht's own system cannot close its copy.
    let status = fed
        .node("leerplicht")
        .cases_as("leerplicht")
        .await
        .close_case(pb::CloseCaseRequest {
            case_id: case_id.clone(),
            actor: "leerplichtambtenaar".into(),
        })
        .await
        .expect_err("only the lead may close");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("only the lead"),
        "{}",
        status.message()
    );

    // ShareCase from a node that is not the lead is refused, whichever lead it names.
    let mut closed_copy = case.clone();
    closed_copy.open = false;
    closed_copy.closed_at = case.opened_at.clone();
    let mut lp_to_wij = fed.node("wij").exchange_as("leerplicht").await;
    let refused = lp_to_wij
        .share_case(pb::ShareCaseRequest {
            case: Some(closed_copy.clone()),
        })
        .await;
    assert_denied(refused, &["only the lead"]);
    let mut forged = closed_copy.clone();
    forged.lead = Some(pb::Organisation {
        oin: oin("leerplicht"),
        name: "Gemeente Groningen Leerplicht RMC".into(),
    });
    forged.participants = vec![
        pb::Organisation {
            oin: oin("wij"),
            name: "WIJ Groningen".into(),
        },
        pb::Organisation {
            oin: oin("swv-vo"),
            name: "Samenwerkingsverband VO Groningen".into(),
        },
    ];
    assert_denied(
        lp_to_wij
            .share_case(pb::ShareCaseRequest { case: Some(forged) })
            .await,
        &["may not lead"],
    );
    let at_wij = list_cases(fed.node("wij"), true).await;
    assert!(
        at_wij.iter().any(|c| c.case_id == case_id && c.open),
        "the wij copy is still open: {at_wij:?}"
    );

    // The lead closes; every copy closes and every read is refused as closed.
    let closed = lead
        .close_case(pb::CloseCaseRequest {
            case_id: case_id.clone(),
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("CloseCase")
        .into_inner();
    assert!(closed.not_notified.is_empty(), "{:?}", closed.not_notified);
    let closed_case = closed.case.expect("the case");
    assert!(!closed_case.open && !closed_case.closed_at.is_empty());
    for party in ["swv-vo", "leerplicht", "wij", "ggd"] {
        assert!(
            list_cases(fed.node(party), true)
                .await
                .iter()
                .all(|c| c.case_id != case_id),
            "{party}"
        );
        let all = list_cases(fed.node(party), false).await;
        let copy = all.iter().find(|c| c.case_id == case_id);
        assert!(
            copy.is_some_and(|c| !c.open),
            "{party} still holds the case open"
        );
    }
    // A closed case cannot be accepted any more.
    let status = accept(fed.node("wij"), &case_id).await.expect_err("closed");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let after = federated(fed.node("ggd"), ggd_claim(), Default::default(), 5000).await;
    assert!(all_signals(&after).is_empty(), "{after:?}");
    for peer in ["swv-vo", "leerplicht", "wij"] {
        let failure = failure_of(&after, peer).unwrap_or_else(|| panic!("{peer}: {after:?}"));
        assert_eq!(failure.code, "PERMISSION_DENIED");
        assert!(
            failure.message.contains("closed"),
            "{peer}: {}",
            failure.message
        );
    }
    lead.close_case(pb::CloseCaseRequest {
        case_id: lp_case.case_id.clone(),
        actor: "zorgcoordinator".into(),
    })
    .await
    .expect("CloseCase");
    assert_denied(query(&mut lp_at_swv, lp_claim).await, &["closed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_case_is_checked_against_the_policy() {
    let swv = TestNode::start("swv-vo").await;
    let pupils = Pupils::new(52);
    let mut cases = swv.cases_as("swv-vo").await;

    // A party without a seat at the meeting.
    let mut with_mbo = aoj_case(&pupils);
    with_mbo.participant_oins.push(oin("mbo"));
    let status = cases
        .open_case(with_mbo)
        .await
        .expect_err("mbo has no seat");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("no seat"), "{}", status.message());

    // A purpose that is not the meeting's; an unknown meeting.
    let mut wrong_purpose = aoj_case(&pupils);
    wrong_purpose.purpose = "plaatsing".into();
    let status = cases.open_case(wrong_purpose).await.expect_err("purpose");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("plaatsing"),
        "{}",
        status.message()
    );
    let mut unknown = aoj_case(&pupils);
    unknown.meeting_type = "koffie-overleg".into();
    let status = cases.open_case(unknown).await.expect_err("meeting");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Not a party; no pupils; a BSN instead of a pseudonym.
    let mut stranger = aoj_case(&pupils);
    stranger.participant_oins.push(oin("fg"));
    let status = cases.open_case(stranger).await.expect_err("fg is no party");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut empty = aoj_case(&pupils);
    empty.pupil_pseudonyms.clear();
    let status = cases.open_case(empty).await.expect_err("no pupils");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut bsn = aoj_case(&pupils);
    bsn.pupil_pseudonyms = vec![pupils.bsn('A').to_owned()];
    let status = cases.open_case(bsn).await.expect_err("a BSN");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("pupil_pseudonyms[0]"),
        "names the field and index: {}",
        status.message()
    );
    assert!(
        !status.message().contains(pupils.bsn('A')),
        "{}",
        status.message()
    );
    assert!(
        list_cases(&swv, false).await.is_empty(),
        "nothing refused was stored"
    );

    // Participants whose node is not configured as a peer are reported, not silently dropped.
    let opened = cases
        .open_case(aoj_case(&pupils))
        .await
        .expect("OpenCase")
        .into_inner();
    let mut untold: Vec<&str> = opened
        .not_notified
        .iter()
        .map(|f| f.code.as_str())
        .collect();
    untold.dedup();
    assert_eq!(opened.not_notified.len(), 3, "{:?}", opened.not_notified);
    assert_eq!(untold, ["NOT_FOUND"]);
}

// ---------------------------------------------------------------------------------------------
// Adversarial cases (issue 9, finding 1): every way a non-lead, a non-participant, a wrong
// meeting or purpose, an oversized, an unaccepted or a re-shared case could make a node
// disclose. Each is refused, and the refused case is not held and opens nothing.
// ---------------------------------------------------------------------------------------------

/// A well-formed pseudonym of no pupil (letters only), for oversized cases.
fn filler(i: usize) -> String {
    let letters: String = format!("{i:016x}")
        .bytes()
        .map(|b| match b {
            b'0'..=b'9' => char::from(b'a' + (b - b'0')),
            _ => char::from(b'A' + (b - b'a')),
        })
        .collect();
    format!("v1.Filler{letters:A>13}")
}

/// A case as a peer would send it in a ShareCase.
fn shared_case(
    meeting: &str,
    purpose: &str,
    lead: &str,
    participants: &[&str],
    pupils: Vec<String>,
) -> pb::Case {
    let org = |party: &str| pb::Organisation {
        oin: oin(party),
        name: party.into(),
    };
    pb::Case {
        case_id: pactgate::cases::new_case_id(),
        meeting_type: meeting.into(),
        pupil_pseudonyms: pupils,
        participants: participants.iter().map(|p| org(p)).collect(),
        lead: Some(org(lead)),
        open: true,
        opened_at: chrono::Utc::now().to_rfc3339(),
        closed_at: String::new(),
        purpose: purpose.into(),
        acceptance: pb::CaseAcceptance::Unspecified as i32,
    }
}

async fn share(
    node: &TestNode,
    from: &str,
    case: pb::Case,
) -> Result<pb::ShareCaseResponse, tonic::Status> {
    node.exchange_as(from)
        .await
        .share_case(pb::ShareCaseRequest { case: Some(case) })
        .await
        .map(tonic::Response::into_inner)
}

/// The leerplicht claim at an AOJ-team table, for the case's own purpose.
fn lp_aoj_claim(case_id: &str) -> pb::AccessClaim {
    case_claim(
        "leerplichtambtenaar",
        "lpw-art22",
        "passend-aanbod",
        "aoj-team-vo",
        case_id,
    )
}

/// Asserts a refusal: PERMISSION_DENIED or INVALID_ARGUMENT, never an answer.
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    what: &str,
) -> tonic::Status {
    match result {
        Ok(answer) => panic!("{what}: expected a refusal, got {answer:?}"),
        Err(status) => {
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument
                        | tonic::Code::FailedPrecondition
                ),
                "{what}: {status:?}"
            );
            status
        }
    }
}

/// SWV VO data of a resident (R), a non-resident (N, GM0037 Stadskanaal) and a long-term-sick
/// resident (S), all at an SWV VO school.
async fn swv_with_three_pupils(node: &TestNode, bsns: &[String; 3]) {
    push_all(
        node,
        vec![
            record("r-lrv", &bsns[0], pb::Category::Lrv, "GM0014", "20VA01", 80),
            record("n-lrv", &bsns[1], pb::Category::Lrv, "GM0037", "20VA01", 81),
            record(
                "s-ziek",
                &bsns[2],
                pb::Category::LangdurigZiek,
                "GM0014",
                "20VA01",
                82,
            ),
        ],
    )
    .await;
}

fn three_bsns(seed: u64) -> [String; 3] {
    let mut bsns = Bsns::new(seed);
    [bsns.next_bsn(), bsns.next_bsn(), bsns.next_bsn()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_case_naming_a_lead_that_may_not_lead_opens_nothing() {
    let fed = Federation::start(&["swv-vo", "leerplicht"]).await;
    let bsns = three_bsns(61);
    swv_with_three_pupils(fed.node("swv-vo"), &bsns).await;
    let mut pupils: Vec<String> = bsns.iter().map(|b| pseudonym_of(b)).collect();
    pupils.extend((0..20_000).map(filler));

    // Leerplicht names itself lead of an AOJ-team case (led by the SWV) at the SWV VO node.
    let forged = shared_case(
        "aoj-team-vo",
        "passend-aanbod",
        "leerplicht",
        &["swv-vo"],
        pupils.clone(),
    );
    let case_id = forged.case_id.clone();
    assert_refused(
        share(fed.node("swv-vo"), "leerplicht", forged).await,
        "a forged lead",
    );
    assert!(list_cases(fed.node("swv-vo"), false).await.is_empty());
    let mut lp_at_swv = fed.node("swv-vo").exchange_as("leerplicht").await;
    assert_denied(query(&mut lp_at_swv, lp_aoj_claim(&case_id)).await, &[]);

    // The same through its own node: Leerplicht may not lead an ECT VO case either.
    let opened = fed
        .node("leerplicht")
        .cases_as("leerplicht")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "ect-vo".into(),
            purpose: "verzuimaanpak".into(),
            pupil_pseudonyms: pupils[..3].to_vec(),
            participant_oins: vec![oin("swv-vo")],
            actor: "leerplichtambtenaar".into(),
        })
        .await;
    let status = assert_refused(opened, "leerplicht leading ect-vo");
    assert!(status.message().contains("lead"), "{}", status.message());
    assert!(list_cases(fed.node("swv-vo"), false).await.is_empty());
    assert!(list_cases(fed.node("leerplicht"), false).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_shared_only_by_its_lead_and_only_with_participants() {
    let fed = Federation::start(&["swv-vo", "leerplicht", "wij"]).await;
    let bsns = three_bsns(62);
    let pupils: Vec<String> = bsns.iter().map(|b| pseudonym_of(b)).collect();

    // A party that is not the named lead shares the lead's case.
    let not_the_lead = shared_case(
        "aoj-team-vo",
        "passend-aanbod",
        "swv-vo",
        &["leerplicht", "wij"],
        pupils.clone(),
    );
    assert_denied(
        share(fed.node("wij"), "leerplicht", not_the_lead).await,
        &["lead"],
    );
    // The lead shares with a node whose organisation is not at the table.
    let without_wij = shared_case(
        "aoj-team-vo",
        "passend-aanbod",
        "swv-vo",
        &["leerplicht"],
        pupils.clone(),
    );
    assert_denied(
        share(fed.node("wij"), "swv-vo", without_wij).await,
        &["does not take part"],
    );
    // A meeting the receiving organisation has no seat at.
    let no_seat = shared_case(
        "mpl-vo",
        "plaatsing",
        "swv-vo",
        &["leerplicht", "wij"],
        pupils.clone(),
    );
    assert_denied(
        share(fed.node("wij"), "swv-vo", no_seat).await,
        &["no seat"],
    );
    assert!(list_cases(fed.node("wij"), false).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_case_is_refused_when_opened_and_when_shared() {
    let fed = Federation::start(&["swv-vo", "leerplicht"]).await;
    let many: Vec<String> = (0..20_000).map(filler).collect();
    let status = fed
        .node("swv-vo")
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "passend-aanbod".into(),
            pupil_pseudonyms: many[..11].to_vec(),
            participant_oins: vec![oin("leerplicht")],
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect_err("eleven pupils in one case");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("pupil_pseudonyms"),
        "{}",
        status.message()
    );
    let big = shared_case(
        "aoj-team-vo",
        "passend-aanbod",
        "swv-vo",
        &["leerplicht"],
        many,
    );
    assert_refused(
        share(fed.node("leerplicht"), "swv-vo", big).await,
        "20,000 pupils",
    );
    assert!(list_cases(fed.node("leerplicht"), false).await.is_empty());
    assert!(list_cases(fed.node("swv-vo"), false).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_case_grants_nothing_until_the_node_accepts_it() {
    let fed = Federation::start(&["swv-vo", "leerplicht"]).await;
    let pupils = Pupils::new(63);
    push_all(
        fed.node("leerplicht"),
        pupils.records(LEERPLICHT_ROWS, "20VB01"),
    )
    .await;
    let opened = fed
        .node("swv-vo")
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            purpose: "passend-aanbod".into(),
            participant_oins: vec![oin("leerplicht")],
            ..aoj_case(&pupils)
        })
        .await
        .expect("OpenCase")
        .into_inner();
    let case_id = opened.case.expect("the case").case_id;
    // The case reached the Leerplicht node, but Leerplicht has not accepted it.
    assert_eq!(list_cases(fed.node("leerplicht"), false).await.len(), 1);
    let mut swv_at_lp = fed.node("leerplicht").exchange_as("swv-vo").await;
    let claim = case_claim(
        "zorgcoordinator",
        "wvo-17a",
        "passend-aanbod",
        "aoj-team-vo",
        &case_id,
    );
    assert_denied(query(&mut swv_at_lp, claim.clone()).await, &["accepted"]);
    // Declined, it grants nothing and cannot be accepted after all.
    let declined = fed
        .node("leerplicht")
        .cases_as("leerplicht")
        .await
        .decline_case(pb::DeclineCaseRequest {
            case_id: case_id.clone(),
            actor: "leerplichtambtenaar".into(),
        })
        .await
        .expect("DeclineCase")
        .into_inner();
    assert_eq!(
        declined.case.map(|c| c.acceptance()),
        Some(pb::CaseAcceptance::Declined)
    );
    assert_denied(query(&mut swv_at_lp, claim.clone()).await, &["declined"]);
    let status = accept(fed.node("leerplicht"), &case_id)
        .await
        .expect_err("declined for good");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    // Leerplicht's own log holds the share, the decline and the refused accept.
    let entries = fg_entries(
        fed.node("leerplicht"),
        pb::AuditFilter {
            case_id: case_id.clone(),
            ..Default::default()
        },
    )
    .await;
    let seen: Vec<(pb::AuditAction, pb::AuditDecision)> = entries
        .iter()
        .filter(|e| e.action() != pb::AuditAction::Query)
        .map(|e| (e.action(), e.decision()))
        .collect();
    assert_eq!(
        seen,
        [
            (pb::AuditAction::ShareCase, pb::AuditDecision::Allow),
            (pb::AuditAction::CaseDecline, pb::AuditDecision::Allow),
            (pb::AuditAction::CaseAccept, pb::AuditDecision::Deny),
        ],
        "{entries:?}"
    );

    // A second case, accepted: now (and only now) it opens the case's pupils at Leerplicht.
    let case = open_accepted(
        &fed,
        pb::OpenCaseRequest {
            purpose: "passend-aanbod".into(),
            participant_oins: vec![oin("leerplicht")],
            ..aoj_case(&pupils)
        },
        &["leerplicht"],
    )
    .await;
    let claim = case_claim(
        "zorgcoordinator",
        "wvo-17a",
        "passend-aanbod",
        "aoj-team-vo",
        &case.case_id,
    );
    let answer = query(&mut swv_at_lp, claim).await.expect("accepted");
    assert_eq!(row_ids(&answer.signals), ids(&["lp-a-verzuim"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_read_stays_within_the_callers_scope_categories_and_the_cases_purpose() {
    let fed = Federation::start(&["swv-vo", "leerplicht", "wij"]).await;
    let bsns = three_bsns(64);
    swv_with_three_pupils(fed.node("swv-vo"), &bsns).await;
    let pupils: Vec<String> = bsns.iter().map(|b| pseudonym_of(b)).collect();
    let opened = fed
        .node("swv-vo")
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "passend-aanbod".into(),
            pupil_pseudonyms: pupils.clone(),
            participant_oins: vec![oin("leerplicht"), oin("wij")],
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("OpenCase")
        .into_inner();
    let case_id = opened.case.expect("the case").case_id;

    // Leerplicht sees its residents only, and no health rows: not N (GM0037), not S's sickness.
    let mut lp_at_swv = fed.node("swv-vo").exchange_as("leerplicht").await;
    let answer = query(&mut lp_at_swv, lp_aoj_claim(&case_id))
        .await
        .expect("a permitted case read");
    let seen: BTreeSet<&str> = answer
        .signals
        .iter()
        .map(|v| v.pupil_pseudonym.as_str())
        .collect();
    assert_eq!(
        seen,
        [pupils[0].as_str()].into_iter().collect(),
        "{answer:?}"
    );
    assert!(answer
        .signals
        .iter()
        .all(|v| v.category() != pb::Category::LangdurigZiek));

    // A purpose other than the case's is refused, though the seat has it.
    assert_denied(
        query(
            &mut lp_at_swv,
            case_claim(
                "leerplichtambtenaar",
                "lpw-art22",
                "verzuimaanpak",
                "aoj-team-vo",
                &case_id,
            ),
        )
        .await,
        &["purpose", "passend-aanbod"],
    );
    let mut wij_at_swv = fed.node("swv-vo").exchange_as("wij").await;
    assert_denied(
        query(
            &mut wij_at_swv,
            case_claim(
                "wij-medewerker",
                "jw-7-4",
                "zorg-en-ondersteuning",
                "aoj-team-vo",
                &case_id,
            ),
        )
        .await,
        &["purpose"],
    );
    // The right case under another meeting's name.
    assert_denied(
        query(
            &mut lp_at_swv,
            case_claim(
                "leerplichtambtenaar",
                "lpw-art22",
                "verzuimaanpak",
                "ect-vo",
                &case_id,
            ),
        )
        .await,
        &["meeting"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_sharing_cannot_widen_re_lead_or_reopen_a_case() {
    let fed = Federation::start(&["swv-vo", "leerplicht"]).await;
    let bsns = three_bsns(65);
    let pupils: Vec<String> = bsns.iter().map(|b| pseudonym_of(b)).collect();
    let opened = fed
        .node("swv-vo")
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "passend-aanbod".into(),
            pupil_pseudonyms: pupils[..1].to_vec(),
            participant_oins: vec![oin("leerplicht")],
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("OpenCase")
        .into_inner();
    let case = opened.case.expect("the case");
    let held = || async { list_cases(fed.node("leerplicht"), false).await };
    let same = |held: &[pb::Case]| {
        held.len() == 1
            && held[0].case_id == case.case_id
            && held[0].pupil_pseudonyms == case.pupil_pseudonyms
            && held[0].purpose == case.purpose
            && held[0].lead == case.lead
    };
    assert!(same(&held().await), "{:?}", held().await);

    // Widen: more pupils under the same id, from the lead's own node.
    let mut wider = case.clone();
    wider.pupil_pseudonyms = pupils.clone();
    assert_refused(
        share(fed.node("leerplicht"), "swv-vo", wider).await,
        "widen",
    );
    // Another purpose, another meeting.
    let mut repurposed = case.clone();
    repurposed.purpose = "verzuimaanpak".into();
    assert_refused(
        share(fed.node("leerplicht"), "swv-vo", repurposed).await,
        "another purpose",
    );
    assert!(same(&held().await), "unchanged: {:?}", held().await);

    // The lead closes; a re-share of the open case cannot reopen it.
    fed.node("swv-vo")
        .cases_as("swv-vo")
        .await
        .close_case(pb::CloseCaseRequest {
            case_id: case.case_id.clone(),
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("CloseCase");
    assert!(held().await.iter().all(|c| !c.open));
    assert_refused(
        share(fed.node("leerplicht"), "swv-vo", case.clone()).await,
        "reopen",
    );
    assert!(held().await.iter().all(|c| !c.open), "still closed");

    // Every refusal is in Leerplicht's own audit log, with the case and the lead that tried.
    let entries = fg_entries(
        fed.node("leerplicht"),
        pb::AuditFilter {
            case_id: case.case_id.clone(),
            ..Default::default()
        },
    )
    .await;
    let refused: Vec<&pb::AuditEntry> = entries
        .iter()
        .filter(|e| e.action() == pb::AuditAction::ShareCase)
        .filter(|e| e.decision() == pb::AuditDecision::Deny)
        .collect();
    assert_eq!(refused.len(), 3, "widen, repurpose, reopen: {entries:?}");
    assert!(refused.iter().all(|e| e.actor_oin == oin("swv-vo")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_and_sharing_cases_is_rate_limited_per_organisation() {
    let fed = Federation::start(&["swv-vo", "leerplicht"]).await;
    let pupils = Pupils::new(66);
    // A flood of shares from one organisation: refused with RESOURCE_EXHAUSTED before long.
    let mut exhausted = 0;
    for _ in 0..60 {
        let case = shared_case(
            "aoj-team-vo",
            "passend-aanbod",
            "swv-vo",
            &["leerplicht"],
            vec![pupils.pseudonym('A')],
        );
        if let Err(status) = share(fed.node("leerplicht"), "swv-vo", case).await {
            if status.code() == tonic::Code::ResourceExhausted {
                exhausted += 1;
            }
        }
    }
    assert!(exhausted > 0, "sixty shares in a row were never limited");
    // A flood of opens at its own node.
    let mut cases = fed.node("swv-vo").cases_as("swv-vo").await;
    let mut exhausted = 0;
    for _ in 0..60 {
        let request = pb::OpenCaseRequest {
            participant_oins: vec![],
            ..aoj_case(&pupils)
        };
        if let Err(status) = cases.open_case(request).await {
            if status.code() == tonic::Code::ResourceExhausted {
                exhausted += 1;
            }
        }
    }
    assert!(exhausted > 0, "sixty opens in a row were never limited");
}
