//! The three-month clock, the G4 report, counts and retention over real nodes: the due list of
//! Leerplicht across its peers (one line per child), the report under two definitions at fixed
//! dates, suppressed counts under the monitoring flow only, and `pactgate purge` on a stopped
//! node. The counting rules themselves are unit- and property-tested in `src/clock/tests.rs`.

mod common;

use common::*;
use pactgate::audit::Action;
use pactgate::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn with_counting() -> NodeTuning {
    NodeTuning {
        counting: Some(counting_path()),
        ..NodeTuning::default()
    }
}

fn monitoring_claim() -> pb::AccessClaim {
    flow_claim("monitor", "lpw-art25", "monitoring", "monitoring")
}

/// A record absent since a fixed date (YYYY-MM-DD).
fn since(id: &str, bsn: &str, category: pb::Category, absent_since: &str) -> pb::SignalRecord {
    pb::SignalRecord {
        category: category as i32,
        school: "20VA01".into(),
        absent_since: absent_since.into(),
        ..good_record(id, bsn)
    }
}

// ---------------------------------------------------------------------------------------------
// Due
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leerplichts_due_list_has_one_line_per_child_across_its_peers() {
    let fed = Federation::start_tuned(
        &["leerplicht", "swv-vo", "mbo"],
        Some(policy_path()),
        Vec::new(),
        with_counting(),
    )
    .await;
    let mut bsns = Bsns::new(0xd0e);
    let [shared, d55, d56, d84, d120, offered, waiting, elsewhere, own] =
        std::array::from_fn(|_| bsns.next_bsn());
    let swv_record = |id: &str, bsn: &str, days: i64| {
        record(id, bsn, pb::Category::Lrv, "GM0014", "20VA01", days)
    };
    push_all(
        fed.node("swv-vo"),
        vec![
            swv_record("swv-shared", &shared, 70),
            swv_record("swv-55", &d55, 55),
            swv_record("swv-56", &d56, 56),
            swv_record("swv-84", &d84, 84),
            swv_record("swv-120", &d120, 120),
            pb::SignalRecord {
                status: pb::Status::Aanbod as i32,
                offer_date: date_from_today(-5),
                offer_kind: pb::OfferKind::OnderwijsEnZorg as i32,
                offer_place_from: date_from_today(-1),
                offer_parents_agreed: true,
                ..swv_record("swv-offered", &offered, 120)
            },
            // An offer on a waiting list (no place yet) does not stop the clock.
            pb::SignalRecord {
                status: pb::Status::Aanbod as i32,
                offer_date: date_from_today(-5),
                offer_kind: pb::OfferKind::Onderwijs as i32,
                offer_parents_agreed: true,
                ..swv_record("swv-waiting", &waiting, 100)
            },
            record(
                "swv-elsewhere",
                &elsewhere,
                pb::Category::Av,
                "GM0034",
                "20VA01",
                100,
            ),
        ],
    )
    .await;
    // The same child, reported by the MBO by its school.
    push_all(
        fed.node("mbo"),
        vec![pb::SignalRecord {
            sector: pb::Sector::Mbo as i32,
            age: 16,
            ..record(
                "mbo-shared",
                &shared,
                pb::Category::Lrv,
                "GM0014",
                "25MA01",
                60,
            )
        }],
    )
    .await;
    push_all(
        fed.node("leerplicht"),
        vec![record("lp-own", &own, pb::Category::Av, "GM0014", "", 60)],
    )
    .await;

    let due = fed
        .node("leerplicht")
        .clock_as("leerplicht")
        .await
        .due(pb::DueRequest {
            claim: Some(verzuimmelding_claim()),
            at: date_from_today(0),
            timeout_ms: 5000,
        })
        .await
        .expect("ClockService/Due")
        .into_inner();
    assert!(due.failures.is_empty(), "{:?}", due.failures);
    let lines: BTreeMap<String, &pb::DueLine> = due
        .lines
        .iter()
        .map(|l| (l.pupil_pseudonym.clone(), l))
        .collect();
    assert_eq!(lines.len(), due.lines.len(), "a child on two lines");
    use pb::DueBand::*;
    let expected = [
        (&shared, 70, Weeks10),
        (&d55, 55, Weeks4),
        (&d56, 56, Weeks8),
        (&d84, 84, Weeks12),
        (&d120, 120, OverThreeMonths),
        (&waiting, 100, OverThreeMonths),
        (&own, 60, Weeks8),
    ];
    for (bsn, days, band) in expected {
        let line = lines
            .get(&pseudonym_of(bsn))
            .unwrap_or_else(|| panic!("no line for the child absent {days} days"));
        assert_eq!((line.days, line.band()), (days, band), "absent {days} days");
        assert_eq!(line.weeks as i64, days / 7);
    }
    assert_eq!(
        lines.len(),
        expected.len(),
        "an offer with a place, a non-resident: no line"
    );
    // Each line names the region's next step for its band and sector group (VO here).
    let step = |bsn: &str| lines[&pseudonym_of(bsn)].escalation_step.as_str();
    assert_eq!(step(&d55), "AOJ-team op school");
    assert_eq!(step(&d56), "Expertise- en Consultatieteam (ECT) SWV VO");
    assert_eq!(
        step(&shared),
        "commissie Moeilijk Plaatsbare Leerlingen (MPL)"
    );
    let holders = |bsn: &str| -> BTreeSet<(String, String)> {
        lines[&pseudonym_of(bsn)]
            .holders
            .iter()
            .map(|h| (h.partner.clone(), h.source_record_id.clone()))
            .collect()
    };
    assert_eq!(
        holders(&shared),
        BTreeSet::from([
            ("mbo".to_owned(), "mbo-shared".to_owned()),
            ("swv-vo".to_owned(), "swv-shared".to_owned())
        ])
    );
    let joined = lines[&pseudonym_of(&shared)];
    assert_eq!(joined.schools, ["20VA01", "25MA01"]);
    assert_eq!(
        joined.sectors,
        [i32::from(pb::Sector::Vo), i32::from(pb::Sector::Mbo)]
    );
    assert_eq!(
        holders(&own),
        BTreeSet::from([("self".to_owned(), "lp-own".to_owned())])
    );
    assert!(due
        .lines
        .iter()
        .all(|l| l.residence_municipalities == ["GM0014"]));
    // Another organisation may not ask this node for its due list.
    let refused = fed
        .node("leerplicht")
        .clock_as("swv-vo")
        .await
        .due(pb::DueRequest::default())
        .await;
    assert_denied(refused, &[]);
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const DATES: [&str; 2] = ["2026-06-01", "2026-11-01"];

fn region_count(cells: &[pb::ReportCell], date: &str, row: &str, column: &str) -> Option<u64> {
    cells
        .iter()
        .find(|c| c.date == date && c.scope == "region" && c.row == row && c.column == column)
        .unwrap_or_else(|| panic!("no cell {date} region {row} {column}"))
        .count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_counts_the_same_signals_differently_under_g4_and_groningen() {
    let fed = Federation::start_tuned(
        &["leerplicht", "swv-vo"],
        Some(policy_path()),
        Vec::new(),
        with_counting(),
    )
    .await;
    let mut bsns = Bsns::new(0x9e4);
    push_all(
        fed.node("swv-vo"),
        vec![
            // Five weeks out of school on 1 November: AV under g4 (four weeks), not groningen.
            since(
                "av-5-weeks",
                &bsns.next_bsn(),
                pb::Category::Av,
                "2026-09-27",
            ),
            // Over three months on 1 November: AV under both, longer than three months.
            since("av-long", &bsns.next_bsn(), pb::Category::Av, "2026-07-15"),
        ],
    )
    .await;
    let mut clock = fed.node("leerplicht").clock_as("leerplicht").await;
    let mut reports = BTreeMap::new();
    for rule in ["g4", "groningen"] {
        let report = clock
            .report(pb::ReportRequest {
                at: DATES.iter().map(|d| d.to_string()).collect(),
                rule: rule.into(),
                claim: Some(verzuimmelding_claim()),
                timeout_ms: 5000,
            })
            .await
            .unwrap_or_else(|s| panic!("ClockService/Report {rule}: {s:?}"))
            .into_inner();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        reports.insert(rule, report);
    }
    let (g4, groningen) = (&reports["g4"].cells, &reports["groningen"].cells);
    for (cells, shorter, longer) in [(g4, 1, 1), (groningen, 0, 1)] {
        assert_eq!(region_count(cells, DATES[0], "AV_VO", "TOTAL"), Some(0));
        assert_eq!(
            region_count(cells, DATES[1], "AV_VO", "SHORTER_THAN_3_MONTHS"),
            Some(shorter)
        );
        assert_eq!(
            region_count(cells, DATES[1], "AV_VO", "LONGER_THAN_3_MONTHS"),
            Some(longer)
        );
        assert_eq!(
            region_count(cells, DATES[1], "AV_VO", "TOTAL"),
            Some(shorter + longer)
        );
    }

    for (rule, report) in &reports {
        // CSV: a header and one line per cell, with the same counts.
        let mut csv = csv::Reader::from_reader(report.csv.as_bytes());
        let headers: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(
            headers,
            ["rule", "date", "scope", "row", "column", "value", "note"]
        );
        let all: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("a CSV row")).collect();
        // Cells and rates; the indicators and the rows not available come on lines of their own.
        let rows: Vec<&csv::StringRecord> = all
            .iter()
            .filter(|r| {
                !r[3].starts_with("INDICATOR:")
                    && &r[4] != "SCHOOL_YEAR"
                    && &r[6] != "niet beschikbaar"
            })
            .collect();
        assert!(all
            .iter()
            .any(|r| &r[3] == "LANGDURIG_ZIEK" && &r[6] == "niet beschikbaar"));
        let by_cell: BTreeMap<(&str, &str, &str, &str), &str> = rows
            .iter()
            .map(|r| ((&r[1], &r[2], &r[3], &r[4]), &r[5]))
            .collect();
        for c in &report.cells {
            let key = (
                c.date.as_str(),
                c.scope.as_str(),
                c.row.as_str(),
                c.column.as_str(),
            );
            assert_eq!(
                by_cell.get(&key).copied(),
                Some(
                    c.count
                        .expect("nothing suppressed for the own organisation")
                        .to_string()
                        .as_str()
                ),
                "{rule}: {key:?}"
            );
        }
        let av_vo = rows
            .iter()
            .find(|r| (&r[1], &r[2], &r[3], &r[4]) == (DATES[1], "region", "AV_VO", "TOTAL"))
            .expect("the AV VO total in the CSV");
        assert_eq!(&av_vo[0], *rule);
        let count = region_count(&report.cells, DATES[1], "AV_VO", "TOTAL").unwrap();
        assert_eq!(av_vo[5], count.to_string());
        // JSON: the rule, the dates and every cell.
        let json: serde_json::Value = serde_json::from_str(&report.json).expect("JSON");
        assert_eq!(json["rule"], *rule);
        assert_eq!(json["dates"], serde_json::json!(DATES));
        assert_eq!(json["cells"].as_array().unwrap().len(), rows.len());
        // SVG: a document.
        let svg = report.svg.trim();
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{rule}"
        );
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"), "{rule}");
        assert!(report.table.contains("AV"), "{rule}");
    }
    assert_ne!(reports["g4"].svg, reports["groningen"].svg);
}

// ---------------------------------------------------------------------------------------------
// The G4 result schema as the seeds define it (issue 11, "Done when")
// ---------------------------------------------------------------------------------------------

/// A signal of a child living in Groningen, with fixed dates (the test's population is in the
/// school year 2025-2026, counted at 1 February 2026).
fn child(
    id: &str,
    bsn: &str,
    category: pb::Category,
    sector: pb::Sector,
    school: &str,
    age: u32,
    absent_since: &str,
) -> pb::SignalRecord {
    pb::SignalRecord {
        category: category as i32,
        sector: sector as i32,
        school: school.into(),
        age,
        age_on: "2026-02-01".into(),
        absent_since: absent_since.into(),
        ..good_record(id, bsn)
    }
}

fn cell(cells: &[pb::ReportCell], scope: &str, row: &str, column: &str) -> Option<u64> {
    cells
        .iter()
        .find(|c| c.date == "2026-02-01" && c.scope == scope && c.row == row && c.column == column)
        .unwrap_or_else(|| panic!("no cell {scope} {row} {column}"))
        .count
}

async fn report_at(
    node: &TestNode,
    rule: &str,
    claim: Option<pb::AccessClaim>,
) -> pb::ReportResponse {
    let report = node
        .clock_as(&node.party)
        .await
        .report(pb::ReportRequest {
            at: vec!["2026-02-01".into()],
            rule: rule.into(),
            claim,
            timeout_ms: 5000,
        })
        .await
        .unwrap_or_else(|s| panic!("ClockService/Report {rule} at {}: {s:?}", node.party))
        .into_inner();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_g4_schema_counts_the_pacts_children_as_the_seeds_define_them() {
    let fed = Federation::start_tuned(
        &["leerplicht", "swv-vo", "swv-po", "mbo"],
        Some(policy_path()),
        Vec::new(),
        with_counting(),
    )
    .await;
    let mut bsns = Bsns::new(0x611);
    let [p1, p2, p3, p4, p5, sick, exempt] = std::array::from_fn(|_| bsns.next_bsn());
    use pb::Category::*;
    use pb::Sector::{Mbo, Po, Unspecified, Vo};
    // P1: LRV VO, 13, absent since 6 Oct 2025; an offer of 10 Jan 2026 with a place from 12 Jan,
    // agreed with the parents; still absent. Leerplicht holds its own LRV dossier of the child.
    let p1_swv = pb::SignalRecord {
        status: pb::Status::Aanbod as i32,
        offer_date: "2026-01-10".into(),
        offer_kind: pb::OfferKind::Onderwijs as i32,
        offer_place_from: "2026-01-12".into(),
        offer_parents_agreed: true,
        ..child("p1-swv", &p1, Lrv, Vo, "20VA01", 13, "2025-10-06")
    };
    // The long-term sick child (only the SWV may know it is sick).
    let sick_swv = child(
        "sick-swv",
        &sick,
        LangdurigZiek,
        Vo,
        "20VB01",
        15,
        "2025-11-10",
    );
    push_all(fed.node("swv-vo"), vec![p1_swv, sick_swv]).await;
    // P2: LRV PO, 9, absent since 8 Dec 2025 (6 school weeks on 1 Feb), open.
    push_all(
        fed.node("swv-po"),
        vec![child("p2-swv", &p2, Lrv, Po, "10PA01", 9, "2025-12-08")],
    )
    .await;
    // P3: LRV MBO, 18: not of compulsory school age.
    push_all(
        fed.node("mbo"),
        vec![child("p3-mbo", &p3, Lrv, Mbo, "25MA01", 18, "2025-10-06")],
    )
    .await;
    push_all(
        fed.node("leerplicht"),
        vec![
            child("p1-lp", &p1, Lrv, Vo, "20VA01", 13, "2025-10-06"),
            // P2, reported to Leerplicht as VERZUIM.
            child("p2-lp", &p2, Verzuim, Po, "10PA01", 9, "2025-12-08"),
            // P4: AV, 7, never enrolled (no school, no sector), since 3 Nov 2025.
            child("p4-lp", &p4, Av, Unspecified, "", 7, "2025-11-03"),
            // P5: AV, 14, never enrolled, since 19 Jan 2026 (under four weeks on 1 Feb).
            child("p5-lp", &p5, Av, Unspecified, "", 14, "2026-01-19"),
            // A 5a exemption of a child without school history.
            pb::SignalRecord {
                exemption_term: pb::ExemptionTerm::Temporary as i32,
                exemption_end: "2026-07-31".into(),
                ..child(
                    "5a-lp",
                    &exempt,
                    Vrijstelling5a,
                    Unspecified,
                    "",
                    8,
                    "2025-09-01",
                )
            },
        ],
    )
    .await;

    let leerplicht = fed.node("leerplicht");
    let g4 = report_at(leerplicht, "g4", Some(verzuimmelding_claim())).await;
    let at = |row: &str, column: &str| cell(&g4.cells, "region", row, column);
    let expected = [
        ("LRV_VO", "LONGER_THAN_3_MONTHS", 1),
        ("LRV_VO", "SHORTER_THAN_3_MONTHS", 0),
        ("LRV_PO", "SHORTER_THAN_3_MONTHS", 1),
        ("LRV_PO", "LONGER_THAN_3_MONTHS", 0),
        ("AV_PO", "SHORTER_THAN_3_MONTHS", 1),
        ("AV_PO", "LONGER_THAN_3_MONTHS", 0),
        ("AV_VO", "TOTAL", 0),
        ("TOTAL_NOT_ATTENDING", "TOTAL", 3),
        ("WITHOUT_OFFER", "TOTAL", 2),
        ("WITHOUT_OFFER", "LONGER_THAN_3_MONTHS", 0),
    ];
    for (row, column, n) in expected {
        assert_eq!(at(row, column), Some(n), "g4 {row} {column}");
    }
    // The children without school count where they live, in no SWV.
    assert_eq!(cell(&g4.cells, "GM0014", "AV_PO", "TOTAL"), Some(1));
    assert_eq!(cell(&g4.cells, "no-swv", "AV_PO", "TOTAL"), Some(1));
    assert!(g4.table.contains("waarvan zonder aanbod"), "{}", g4.table);
    // Verzuimmelding shares no health data: the sick and 5a rows are not available, never 0.
    for row in ["LANGDURIG_ZIEK", "VRIJSTELLING_5A_TEMPORARY"] {
        assert!(g4.unavailable_rows.iter().any(|r| r == row), "{row}");
        assert!(g4.cells.iter().all(|c| c.row != row), "{row} given a count");
    }
    assert!(g4.table.contains("niet beschikbaar"), "{}", g4.table);
    // The rate is over Groningen's own resident pupils only, and says so.
    assert_eq!(g4.denominator_municipalities, ["GM0014"]);
    assert_eq!(
        cell(&g4.cells, "region", "RESIDENT_PUPILS", "TOTAL"),
        Some(27_400)
    );
    assert!(g4
        .table
        .contains("noemer = woonachtige leerplichtigen van GM0014"));
    // The pact's indicators, with baseline, change and target.
    assert!(g4.table.contains("Pact-indicatoren"), "{}", g4.table);
    assert!(g4
        .csv
        .contains("INDICATOR:zonder-aanbod-langer-dan-3-maanden"));
    assert!(g4.csv.contains("INDICATOR:vrijstellingen-5a"));

    // Counts over the school year 2025-2026: each child once; P3 (18) never; nobody back yet.
    let year = |row: &str| {
        let line = g4
            .csv
            .lines()
            .find(|l| l.starts_with(&format!("g4,2025-08-01,region,{row},SCHOOL_YEAR,")))
            .unwrap_or_else(|| panic!("no school-year line {row} in\n{}", g4.csv));
        line.split(',').nth(5).unwrap_or_default().to_owned()
    };
    assert_eq!(year("YEAR_NOT_ATTENDING"), "4", "P1, P2, P4, P5");
    assert_eq!(year("YEAR_LRV"), "2", "P1 and P2, not P3");
    assert_eq!(year("YEAR_AV"), "2");
    assert_eq!(year("YEAR_SCHOOLGANG_HERSTELD"), "0");
    assert!(g4
        .table
        .contains("Aantallen over het schooljaar 01-08-2025 t/m 31-07-2026"));

    // Leerplicht's own register: the 5a exemption of a child without school history.
    let own = report_at(leerplicht, "g4", None).await;
    let at = |row: &str| cell(&own.cells, "region", row, "TOTAL");
    assert_eq!(at("VRIJSTELLING_5A_TEMPORARY"), Some(1));
    assert!(own.unavailable_rows.is_empty());

    let duo = report_at(leerplicht, "duo", Some(verzuimmelding_claim())).await;
    let at = |row: &str, column: &str| cell(&duo.cells, "region", row, column);
    assert_eq!(at("TOTAL_NOT_ATTENDING", "TOTAL"), Some(4), "duo");
    assert_eq!(
        at("AV_VO", "SHORTER_THAN_3_MONTHS"),
        Some(1),
        "duo: P5 by age"
    );
    assert_eq!(at("WITHOUT_OFFER", "TOTAL"), Some(3), "duo");

    // The Groningen evaluation's own AV count: every AV dossier of a resident, no threshold.
    let evaluation = report_at(
        leerplicht,
        "groningen-evaluatie",
        Some(verzuimmelding_claim()),
    )
    .await;
    let av = |row| cell(&evaluation.cells, "region", row, "TOTAL");
    assert_eq!((av("AV_PO"), av("AV_VO")), (Some(1), Some(1)));

    // The SWV VO sees its sick pupil in its own report; an offer does not remove P1 from LRV.
    let swv = report_at(fed.node("swv-vo"), "g4", None).await;
    let at = |row: &str| cell(&swv.cells, "region", row, "TOTAL");
    assert_eq!(at("LANGDURIG_ZIEK"), Some(1));
    assert_eq!((at("LRV_VO"), at("WITHOUT_OFFER")), (Some(1), Some(0)));
}

// ---------------------------------------------------------------------------------------------
// Counts
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_leave_a_node_only_suppressed_and_only_under_the_monitoring_flow() {
    let swv = TestNode::start_tuned("swv-vo", NodeOptions::default(), with_counting()).await;
    let mut bsns = Bsns::new(0xc0);
    let mut records = Vec::new();
    for i in 0..6 {
        records.push(since(
            &format!("lrv-{i}"),
            &bsns.next_bsn(),
            pb::Category::Lrv,
            "2026-06-01",
        ));
    }
    for i in 0..2 {
        records.push(since(
            &format!("av-{i}"),
            &bsns.next_bsn(),
            pb::Category::Av,
            "2026-07-01",
        ));
    }
    for i in 0..3 {
        records.push(pb::SignalRecord {
            residence_municipality: "GM0034".into(),
            ..since(
                &format!("out-{i}"),
                &bsns.next_bsn(),
                pb::Category::Lrv,
                "2026-06-01",
            )
        });
    }
    push_all(&swv, records).await;
    let ask = |party: &'static str, claim: Option<pb::AccessClaim>| {
        let swv = &swv;
        async move {
            swv.counts_as(party)
                .await
                .counts(pb::CountsRequest {
                    claim,
                    at: vec!["2026-11-01".into()],
                    rule: "g4".into(),
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };

    let counts = ask("leerplicht", Some(monitoring_claim()))
        .await
        .expect("counts under monitoring");
    assert_eq!(counts.threshold, 5);
    assert_eq!(
        counts.holder.as_ref().map(|h| h.oin.clone()),
        Some(oin("swv-vo"))
    );
    for c in &counts.cells {
        if let Some(n) = c.count {
            assert!(
                n == 0 || n >= counts.threshold,
                "a small cell left the node: {c:?}"
            );
        }
    }
    let cell = |scope: &str, row: &str| {
        counts
            .cells
            .iter()
            .find(|c| c.scope == scope && c.row == row && c.column == "TOTAL")
            .unwrap_or_else(|| panic!("no cell {scope} {row}"))
            .count
    };
    assert_eq!(cell("region", "TOTAL_NOT_ATTENDING"), Some(8));
    assert_eq!(
        cell("region", "AV_VO"),
        None,
        "2 AV pupils must be suppressed"
    );
    // ... and so must the 6 LRV pupils, or 8 - 6 would give the 2 away.
    assert_eq!(
        cell("region", "LRV_VO"),
        None,
        "no complementary suppression"
    );
    assert_eq!(
        (cell("region", "AV_PO"), cell("region", "LRV_PO")),
        (Some(0), Some(0))
    );
    // Rows the monitoring flow does not share are "niet beschikbaar", never 0; a school-based
    // partner's counts have no per-1,000 denominator.
    for row in [
        "LANGDURIG_ZIEK",
        "VRIJSTELLING_5A_TEMPORARY",
        "VRIJSTELLING_5A_PERMANENT",
    ] {
        assert!(counts.unavailable_rows.iter().any(|r| r == row), "{row}");
        assert!(
            counts.cells.iter().all(|c| c.row != row),
            "{row} given a count"
        );
    }
    assert!(counts.denominator_municipalities.is_empty());
    assert!(counts.cells.iter().all(|c| c.row != "RESIDENT_PUPILS"));
    // Only leerplicht's residents were counted.
    assert!(counts
        .cells
        .iter()
        .filter(|c| c.scope == "GM0034")
        .all(|c| c.count.unwrap_or(0) == 0));

    // Pupil-level flows give no counts; nor does a party without the monitoring rule.
    assert_denied(
        ask("leerplicht", Some(verzuimmelding_claim())).await,
        &["pupil-level"],
    );
    assert_denied(ask("wij", Some(monitoring_claim())).await, &[]);
    assert_denied(ask("mbo", Some(monitoring_claim())).await, &[]);
    assert_denied(ask("leerplicht", None).await, &["no claim"]);

    // Each answer and each refusal is audited, the answer without pupils.
    let dir = swv.stop().await;
    let entries = stored_entries(&dir.path().join("data"), "swv-vo");
    let disclosed: Vec<_> = entries
        .iter()
        .filter(|e| e.action == Action::Disclose && e.actor_oin == oin("leerplicht"))
        .collect();
    assert_eq!(disclosed.len(), 1);
    assert!(disclosed[0].pupils.is_empty());
    assert!(disclosed[0].reason.contains("suppressed counts only"));
    let refused: Vec<_> = entries
        .iter()
        .filter(|e| e.action == Action::Query && e.decision == pactgate::audit::Decision::Deny)
        .map(|e| e.actor_oin.clone())
        .collect();
    assert_eq!(
        refused,
        [oin("leerplicht"), oin("wij"), oin("mbo"), oin("leerplicht")]
    );
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

fn purge(data: &std::path::Path, counting: &std::path::Path) -> String {
    let (cert, _, _) = cert_paths("swv-vo");
    let output = run_within(
        pactgate_bin()
            .arg("purge")
            .arg("--data-dir")
            .arg(data)
            .arg("--counting")
            .arg(counting)
            .arg("--cert")
            .arg(cert),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "purge failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_signals_closed_past_retention_with_their_indexes_and_audits_a_count() {
    let swv = TestNode::start_tuned("swv-vo", NodeOptions::default(), with_counting()).await;
    let mut bsns = Bsns::new(0x9e7);
    let closed = |id: &str, bsn: &str, status: pb::Status, days_ago: i64| pb::SignalRecord {
        status: status as i32,
        closed_on: date_from_today(-days_ago),
        ..record(id, bsn, pb::Category::Lrv, "GM0014", "20VA01", 100)
    };
    let gone = [
        ("closed-40", bsns.next_bsn(), pb::Status::Gesloten, 40),
        ("closed-31", bsns.next_bsn(), pb::Status::Teruggeleid, 31),
    ];
    let kept = [
        ("closed-30", bsns.next_bsn(), pb::Status::Gesloten, 30),
        ("closed-10", bsns.next_bsn(), pb::Status::Teruggeleid, 10),
    ];
    let open = ("open", bsns.next_bsn());
    let mut records: Vec<_> = gone
        .iter()
        .chain(&kept)
        .map(|(id, bsn, status, days)| closed(id, bsn, *status, *days))
        .collect();
    records.push(good_record(open.0, &open.1));
    push_all(&swv, records).await;
    // The node runs the shipped rules (365 days): nothing of this is purged while it runs.
    let dir = swv.stop().await;
    let data = dir.path().join("data");

    let rules = PolicyFile::with_text(&edited(
        &std::fs::read_to_string(counting_path()).unwrap(),
        "retention_days = 365",
        "retention_days = 30",
    ));
    let out = purge(&data, &rules.path);
    assert!(out.contains("purged 2 signals"), "{out}");

    let kept_ids: Vec<&str> = kept.iter().map(|k| k.0).chain([open.0]).collect();
    {
        let store = pactgate::store::Store::open(&data).expect("store");
        let left: BTreeSet<String> = store
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .map(|s| s.source_record_id)
            .collect();
        assert_eq!(left, kept_ids.iter().map(|s| s.to_string()).collect());
    }
    // No key or value of the signals tree (signals and indexes) names a purged signal or pupil.
    let signals = tree_keys_and_values(&data, "signals");
    for (id, bsn, _, _) in &gone {
        let pseudonym = pseudonym_of(bsn);
        for (_, bytes) in &signals {
            assert!(
                !contains_bytes(bytes, id.as_bytes()),
                "{id} left in the store"
            );
            assert!(
                !contains_bytes(bytes, pseudonym.as_bytes()),
                "{id}'s pupil left"
            );
        }
    }
    for id in &kept_ids {
        let keys = signals
            .iter()
            .filter(|(_, b)| contains_bytes(b, id.as_bytes()))
            .count();
        assert!(
            keys >= 4,
            "{id}: the signal and its three index entries, found {keys}"
        );
    }

    // One PURGE entry, by count, with no pupil in it; the log still verifies.
    let entries = stored_entries(&data, "swv-vo");
    let purges: Vec<_> = entries
        .iter()
        .filter(|e| e.action == Action::Purge)
        .collect();
    assert_eq!(purges.len(), 1);
    let p = purges[0];
    assert_eq!((p.count, p.actor_oin.as_str()), (2, oin("swv-vo").as_str()));
    assert!(p.pupils.is_empty());
    assert!(p.reason.contains("30 days"), "{}", p.reason);
    let bytes = serde_json::to_vec(p).unwrap();
    for (id, bsn, _, _) in &gone {
        assert!(!contains_bytes(&bytes, pseudonym_of(bsn).as_bytes()));
        assert!(!contains_bytes(&bytes, id.as_bytes()));
    }
    assert_verifies(&verify_offline(&data, &[]), "after the purge");

    // Nothing more to purge: nothing more audited.
    let out = purge(&data, &rules.path);
    assert!(out.contains("purged 0 signals"), "{out}");
    let again = stored_entries(&data, "swv-vo");
    assert_eq!(again.len(), entries.len());
}

// ---------------------------------------------------------------------------------------------
// Care offers recorded in a case
// ---------------------------------------------------------------------------------------------

/// A care offer for one pupil of a case, made today.
fn care_offer(case_id: &str, pupil: &str, place_from: &str) -> pb::RecordOfferRequest {
    pb::RecordOfferRequest {
        offer: Some(pb::CaseOffer {
            case_id: case_id.into(),
            pupil_pseudonym: pupil.into(),
            kind: pb::OfferKind::Zorg.into(),
            offered_on: date_from_today(-5),
            place_from: place_from.into(),
            parents_agreed: true,
            ..Default::default()
        }),
        actor: "wij-medewerker".into(),
    }
}

/// The pupils on a node's own due list.
async fn due_pupils(node: &TestNode) -> BTreeSet<String> {
    let due = node
        .clock_as(&node.party.clone())
        .await
        .due(pb::DueRequest::default())
        .await
        .expect("ClockService/Due")
        .into_inner();
    due.lines.into_iter().map(|l| l.pupil_pseudonym).collect()
}

/// The care-offer entries of a node's audit log, as its own FG lists them: (pupils, decision).
async fn offer_entries(node: &TestNode, fg: &str) -> Vec<(Vec<String>, pb::AuditDecision)> {
    node.audit_entries(fg)
        .await
        .into_iter()
        .filter(|e| e.action() == pb::AuditAction::CaseOffer)
        .map(|e| (e.pupil_pseudonyms.clone(), e.decision()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_care_offer_recorded_by_wij_in_an_aoj_case_stops_the_clock_at_the_swv() {
    let fed = Federation::start_tuned(
        &["swv-vo", "wij", "leerplicht"],
        Some(policy_path()),
        Vec::new(),
        with_counting(),
    )
    .await;
    let mut bsns = Bsns::new(0x0ffe);
    let [placed, waiting, refused, outside] = std::array::from_fn(|_| bsns.next_bsn());
    push_all(
        fed.node("swv-vo"),
        [&placed, &waiting, &refused, &outside]
            .iter()
            .enumerate()
            .map(|(i, bsn)| {
                record(
                    &format!("swv-lrv-{i}"),
                    bsn,
                    pb::Category::Lrv,
                    "GM0014",
                    "20VA01",
                    50,
                )
            })
            .collect(),
    )
    .await;
    let [placed, waiting, refused, outside] =
        [placed, waiting, refused, outside].map(|b| pseudonym_of(&b));
    let before = due_pupils(fed.node("swv-vo")).await;
    for p in [&placed, &waiting, &refused, &outside] {
        assert!(before.contains(p), "absent 50 days without an offer: due");
    }

    // The SWV opens an AOJ case with WIJ and Leerplicht; both accept it.
    let case = fed
        .node("swv-vo")
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "zorg-en-ondersteuning".into(),
            pupil_pseudonyms: vec![placed.clone(), waiting.clone(), refused.clone()],
            participant_oins: vec![oin("wij"), oin("leerplicht")],
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("OpenCase")
        .into_inner()
        .case
        .expect("the case");
    for party in ["wij", "leerplicht"] {
        fed.node(party)
            .cases_as(party)
            .await
            .accept_case(pb::AcceptCaseRequest {
                case_id: case.case_id.clone(),
                actor: "voorzitter".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("AcceptCase at {party}: {s:?}"));
    }

    // WIJ records a care offer with a place from yesterday, agreed with the parents: told to
    // the SWV and Leerplicht.
    let mut wij = fed.node("wij").cases_as("wij").await;
    let recorded = wij
        .record_offer(care_offer(&case.case_id, &placed, &date_from_today(-1)))
        .await
        .expect("RecordOffer by WIJ")
        .into_inner();
    assert!(
        recorded.not_notified.is_empty(),
        "{:?}",
        recorded.not_notified
    );
    let offer = recorded.offer.expect("the offer");
    assert_eq!(offer.recorded_by_oin, oin("wij"));
    // A waiting-list offer (no place yet) is recorded, but does not stop the clock.
    wij.record_offer(care_offer(&case.case_id, &waiting, ""))
        .await
        .expect("RecordOffer (waiting list)");
    // A pupil outside the case, and an education offer alone, are refused.
    let outside_case = wij
        .record_offer(care_offer(&case.case_id, &outside, &date_from_today(-1)))
        .await
        .expect_err("a pupil outside the case");
    assert_eq!(outside_case.code(), tonic::Code::InvalidArgument);
    assert!(
        outside_case.message().contains("offer.pupil_pseudonym"),
        "{}",
        outside_case.message()
    );
    let mut education = care_offer(&case.case_id, &placed, &date_from_today(-1));
    if let Some(o) = education.offer.as_mut() {
        o.kind = pb::OfferKind::Onderwijs.into();
    }
    let education = wij.record_offer(education).await.expect_err("education");
    assert!(
        education.message().contains("offer.kind"),
        "{}",
        education.message()
    );

    // Leerplicht (a gemeente) sits in the case, but the meeting does not let it record offers.
    let denied = fed
        .node("leerplicht")
        .cases_as("leerplicht")
        .await
        .record_offer(care_offer(&case.case_id, &refused, &date_from_today(-1)))
        .await
        .expect_err("a gemeente may not record a care offer in an AOJ case");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("may_record_offer"),
        "{}",
        denied.message()
    );

    // The SWV's clock: the placed child is off the due list; the others are still on it.
    let after = due_pupils(fed.node("swv-vo")).await;
    assert!(
        !after.contains(&placed),
        "a care offer with a place stops it"
    );
    for p in [&waiting, &refused, &outside] {
        assert!(
            after.contains(p),
            "no offer that stops the clock: still due"
        );
    }

    // Audited at the recording node and at the signal holder; the refusal where it was made.
    assert_eq!(
        offer_entries(fed.node("wij"), "fg-wij").await,
        [
            (vec![placed.clone()], pb::AuditDecision::Allow),
            (vec![waiting.clone()], pb::AuditDecision::Allow),
            (vec![outside.clone()], pb::AuditDecision::Deny),
            (vec![placed.clone()], pb::AuditDecision::Deny),
        ]
    );
    assert_eq!(
        offer_entries(fed.node("swv-vo"), "fg-swv-vo").await,
        [
            (vec![placed.clone()], pb::AuditDecision::Allow),
            (vec![waiting.clone()], pb::AuditDecision::Allow),
        ]
    );
    assert_eq!(
        offer_entries(fed.node("leerplicht"), "fg").await,
        [
            (vec![placed.clone()], pb::AuditDecision::Allow),
            (vec![waiting.clone()], pb::AuditDecision::Allow),
            (vec![refused.clone()], pb::AuditDecision::Deny),
        ]
    );
}
