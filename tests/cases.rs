//! Cases over real nodes on loopback: an AOJ-team case opened at the SWV VO travels to the
//! participants' nodes; each participant reads only the case's pupils, only the rows and fields of
//! its seat (the GGD doctor sees long-term sickness, the WIJ worker does not); non-participants,
//! the wrong meeting and a closed case are refused; only the lead closes or shares.

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
        purpose: "passend-aanbod".into(),
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
fn all_signals(response: &pb::FederationQueryResponse) -> Vec<pb::SignalView> {
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
    let case_id = case.case_id.clone();
    for party in ["swv-vo", "leerplicht", "wij", "ggd"] {
        let held = list_cases(fed.node(party), true).await;
        assert_eq!(held.len(), 1, "{party}: {held:?}");
        assert_eq!(held[0].case_id, case_id);
        assert_eq!(held[0].pupil_pseudonyms, case.pupil_pseudonyms);
        assert_eq!(held[0].lead, case.lead);
    }
    assert!(list_cases(fed.node("mbo"), false).await.is_empty());

    // The GGD jeugdarts: long-term sickness and 5a of the case's pupils, nothing of pupil C.
    let ggd_claim = || {
        case_claim(
            "jeugdarts",
            "jw-jgz-verzuim",
            "jgz-advies",
            "aoj-team-vo",
            &case_id,
        )
    };
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

    // The WIJ worker: the same case, but no health rows and only the verzuim fields.
    let wij_claim = case_claim(
        "wij-medewerker",
        "jw-7-4",
        "zorg-en-ondersteuning",
        "aoj-team-vo",
        &case_id,
    );
    let wij = federated(fed.node("wij"), wij_claim, Default::default(), 5000).await;
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

    // Leerplicht at the table: verzuim and vrijstelling (5b), no health.
    let lp_claim = case_claim(
        "leerplichtambtenaar",
        "lpw-art22",
        "verzuimaanpak",
        "aoj-team-vo",
        &case_id,
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
                &case_id,
            ),
        )
        .await,
        &["does not take part", &case_id],
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
        &["another lead"],
    );
    let at_wij = list_cases(fed.node("wij"), true).await;
    assert_eq!(at_wij.len(), 1, "the wij copy is still open: {at_wij:?}");
    assert!(at_wij[0].open);

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
            list_cases(fed.node(party), true).await.is_empty(),
            "{party}"
        );
        let all = list_cases(fed.node(party), false).await;
        assert_eq!(all.len(), 1, "{party}");
        assert!(!all[0].open, "{party} still holds the case open");
    }
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
