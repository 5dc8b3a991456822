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
    let [shared, d55, d56, d84, d120, offered, elsewhere, own] =
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
                ..swv_record("swv-offered", &offered, 120)
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
        .expect("Clock/Due")
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
        (&d56, 56, Weeks8),
        (&d84, 84, Weeks12),
        (&d120, 120, OverThreeMonths),
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
        "55 days, an offer, a non-resident: no line"
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
            .unwrap_or_else(|s| panic!("Clock/Report {rule}: {s:?}"))
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
        assert_eq!(headers, ["rule", "date", "scope", "row", "column", "value"]);
        let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("a CSV row")).collect();
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
