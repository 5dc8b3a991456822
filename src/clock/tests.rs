//! Tests of the clock, the report and suppression: hand-made cases at each rule's edges, and
//! property tests against an independent brute-force recount. Test-only; no I/O but the rules text.
//! Invariant: the rules under test are the real `policies/counting.toml`.

use super::*;
use crate::signal::{Category, ExemptionTerm, OfferKind, Sector, Signal, Status};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const RULES: &str = include_str!("../../policies/counting.toml");

fn rules() -> CountingRules {
    CountingRules::parse(RULES, "policies/counting.toml")
        .expect("the shipped rules pass their check")
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
}

fn stamp(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, day, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// The pseudonym of test pupil `tag` ("p1"): the tag padded to a pseudonym's shape.
fn test_pseudonym(tag: &str) -> crate::ids::Pseudonym {
    format!("v1.{tag:A<22}").parse().expect("a pseudonym")
}

/// The tag of a [`test_pseudonym`].
fn tag_of(pseudonym: &str) -> &str {
    pseudonym.trim_start_matches("v1.").trim_end_matches('A')
}

fn sig(id: &str, pupil: &str, category: Category, sector: Sector, since: NaiveDate) -> Signal {
    Signal {
        source_record_id: id.to_string(),
        pupil_pseudonym: test_pseudonym(pupil),
        category,
        sector: Some(sector),
        residence_municipality: "GM0014".parse().unwrap(),
        school: if category == Category::Av {
            None
        } else {
            Some("20VA01".parse().unwrap())
        },
        absent_since: since,
        status: Status::Open,
        offer_date: None,
        age: 14,
        updated_at: stamp(1),
        address_under_investigation: false,
        exemption_5c_requested: false,
        awaiting_mbo_intake: false,
        exemption_term: None,
        exemption_end: None,
        closed_on: None,
        age_on: None,
        offer_kind: None,
        offer_place_from: None,
        offer_parents_agreed: false,
    }
}

/// A full offer as the G4 define it: kind, a place from `place_from`, agreed with the parents.
fn with_offer(mut s: Signal, made: NaiveDate, place_from: Option<NaiveDate>) -> Signal {
    s.status = Status::Aanbod;
    s.offer_date = Some(made);
    s.offer_kind = Some(OfferKind::OnderwijsEnZorg);
    s.offer_place_from = place_from;
    s.offer_parents_agreed = true;
    s
}

fn held(signals: Vec<Signal>) -> Vec<(String, Signal)> {
    signals
        .into_iter()
        .map(|s| ("leerplicht-groningen".to_string(), s))
        .collect()
}

fn count_at(
    signals: &[(String, Signal)],
    at: NaiveDate,
    rule: &str,
    row: Row,
    column: Column,
) -> u64 {
    let r = rules();
    let rule = r.rule(rule).expect("rule exists");
    report(signals, &[at], rule, &r)
        .count(at, REGION, row, column)
        .expect("cell exists")
}

// ---- the rules file ----

#[test]
fn min_absent_since_is_a_date_or_refused_with_its_line() {
    let without = RULES.replace("min_absent_since = \"2000-01-01\"\n", "");
    assert_ne!(without, RULES, "the shipped rules set min_absent_since");
    let r = CountingRules::parse(&without, "c.toml").expect("optional");
    assert_eq!(
        r.min_absent_since(),
        crate::signal::DEFAULT_MIN_ABSENT_SINCE
    );
    for bad in ["1900-01-01", "2000-13-01", "yesterday"] {
        let text = RULES.replace("\"2000-01-01\"", &format!("\"{bad}\""));
        let err = CountingRules::parse(&text, "c.toml").expect_err(bad);
        assert!(err.to_string().contains("min_absent_since"), "{err}");
    }
}

#[test]
fn shipped_rules_have_the_four_definitions() {
    let r = rules();
    assert_eq!(
        r.rule_names(),
        vec!["duo", "g4", "groningen", "groningen-evaluatie"]
    );
    assert_eq!(r.compulsory_age(), CompulsoryAge { from: 5, under: 18 });
    assert_eq!(r.av_po_under_age(), 12);
    assert_eq!(r.suppression_threshold(), 5);
    assert_eq!(r.retention_days(), 365);
    assert_eq!(r.min_absent_since(), d(2000, 1, 1));
    assert_eq!(
        r.reference_dates(2025),
        vec![d(2025, 11, 1), d(2026, 2, 1), d(2026, 6, 1)]
    );
    assert_eq!(r.swv_of_school("20VA01"), Some("swv-vo"));
    assert_eq!(r.swv_of_school("10PB03"), Some("swv-po"));
    assert_eq!(r.swv_of_school("25MA"), Some("mbo"));
    assert_eq!(r.swv_of_school(""), None);
    assert_eq!(r.swv_of_school("99XX01"), None);
    assert_eq!(r.denominators().len(), 4);
    assert!(r.calendar().covers(d(2026, 11, 1)));
    let g4 = r.rule("g4").expect("g4");
    assert_eq!(g4.av_after, Period::Weeks(4));
    assert_eq!(
        g4.av_exclude,
        vec![Flag::Exemption5cRequested, Flag::AddressUnderInvestigation]
    );
    assert!(g4.names_mbo_intake_apart());
}

#[test]
fn rule_errors_name_file_line_and_fix() {
    let bad = RULES
        .replace(
            "av_after = { weeks = 4 }",
            "av_after = { weeks = 4, days = 1 }",
        )
        .replace(
            "\"address_under_investigation\"]",
            "\"adres_in_onderzoek\"]",
        );
    let err = CountingRules::parse(&bad, "counting.toml").expect_err("two problems");
    let text = err.to_string();
    assert_eq!(err.0.len(), 2, "{text}");
    let line = RULES
        .lines()
        .position(|l| l.starts_with("av_after = { weeks = 4 }"))
        .expect("line")
        + 1;
    assert!(text.contains(&format!("counting.toml:{line}:")), "{text}");
    assert!(
        text.contains("exactly one of days, weeks, months, school_weeks"),
        "{text}"
    );
    assert!(
        text.contains("\"adres_in_onderzoek\" cannot be used here — use one of"),
        "{text}"
    );
}

#[test]
fn syntax_and_unknown_keys_are_reported_with_a_position() {
    let err =
        CountingRules::parse("[counting]\nsupression_threshold = 5\n", "x.toml").expect_err("typo");
    assert!(err.to_string().contains("x.toml:2:"), "{err}");
    let err = CountingRules::parse(
        &RULES.replace("to = 2024-11-03", "to = 2024-13-03"),
        "x.toml",
    )
    .expect_err("bad date");
    assert!(err.to_string().contains("x.toml:"), "{err}");
    let overlap = RULES.replace("from = 2025-12-20", "from = 2025-10-20");
    let err = CountingRules::parse(&overlap, "x.toml").expect_err("overlap");
    assert!(err.to_string().contains("overlaps"), "{err}");
}

// ---- AV at its edges ----

#[test]
fn g4_counts_av_from_day_28_not_day_27() {
    // Day n = absent_since + n days; four weeks are reached on day 28.
    let since = d(2025, 10, 6);
    let s = held(vec![sig("r1", "p1", Category::Av, Sector::Vo, since)]);
    assert_eq!(
        count_at(
            &s,
            since + Duration::days(27),
            "g4",
            Row::AvVo,
            Column::Total
        ),
        0
    );
    assert_eq!(
        count_at(
            &s,
            since + Duration::days(28),
            "g4",
            Row::AvVo,
            Column::Total
        ),
        1
    );
    assert_eq!(
        count_at(&s, since, "duo", Row::AvVo, Column::Total),
        1,
        "DUO counts from day one"
    );
    assert_eq!(
        count_at(
            &s,
            since - Duration::days(1),
            "duo",
            Row::AvVo,
            Column::Total
        ),
        0
    );
}

#[test]
fn groningen_counts_av_only_after_three_calendar_months() {
    let since = d(2025, 8, 31); // + 3 months = 30 Nov (clamped)
    let mut av = sig("r1", "p1", Category::Av, Sector::Po, since);
    av.age = 8; // AV PO by age
    let s = held(vec![av]);
    assert_eq!(
        count_at(&s, d(2025, 11, 29), "groningen", Row::AvPo, Column::Total),
        0
    );
    assert_eq!(
        count_at(&s, d(2025, 11, 30), "groningen", Row::AvPo, Column::Longer),
        1
    );
    assert_eq!(
        count_at(&s, d(2025, 11, 29), "g4", Row::AvPo, Column::Shorter),
        1
    );
}

#[test]
fn g4_leaves_out_5c_applications_and_address_under_investigation() {
    let since = d(2025, 9, 1);
    let mut a = sig("r1", "p1", Category::Av, Sector::Vo, since);
    a.exemption_5c_requested = true;
    let mut b = sig("r2", "p2", Category::Av, Sector::Vo, since);
    b.address_under_investigation = true;
    let s = held(vec![a, b]);
    let at = d(2025, 11, 1);
    assert_eq!(count_at(&s, at, "g4", Row::AvVo, Column::Total), 0);
    assert_eq!(count_at(&s, at, "duo", Row::AvVo, Column::Total), 2);
}

#[test]
fn g4_names_the_mbo_intake_apart_and_still_counts_it() {
    let mut a = sig("r1", "p1", Category::Av, Sector::Vo, d(2025, 9, 1));
    a.awaiting_mbo_intake = true;
    let s = held(vec![a]);
    let at = d(2025, 11, 1);
    assert_eq!(count_at(&s, at, "g4", Row::AvVo, Column::Total), 1);
    assert_eq!(
        count_at(&s, at, "g4", Row::AvVoMboTransition, Column::Total),
        1
    );
    let r = rules();
    let duo = report(&s, &[at], r.rule("duo").expect("duo"), &r);
    assert!(!duo.rows().contains(&Row::AvVoMboTransition));
}

// ---- LRV and the school calendar ----

#[test]
fn a_holiday_inside_four_weeks_delays_lrv() {
    // Herfstvakantie Noord 2025: 18-26 Oct. From Mon 6 Oct, 4 calendar weeks are 3 school weeks.
    let r = rules();
    let since = d(2025, 10, 6);
    let lrv = sig("r1", "p1", Category::Lrv, Sector::Vo, since);
    assert_eq!(school_weeks_absent(r.calendar(), &lrv, d(2025, 11, 3)), 3);
    assert_eq!(school_weeks_absent(r.calendar(), &lrv, d(2025, 11, 10)), 4);
    let s = held(vec![lrv]);
    assert_eq!(
        count_at(&s, d(2025, 11, 3), "g4", Row::LrvVo, Column::Total),
        0
    );
    assert_eq!(
        count_at(&s, d(2025, 11, 10), "g4", Row::LrvVo, Column::Total),
        1
    );
    // Without a holiday, four calendar weeks are four school weeks.
    let plain = held(vec![sig(
        "r2",
        "p2",
        Category::Lrv,
        Sector::Po,
        d(2025, 9, 8),
    )]);
    assert_eq!(
        count_at(&plain, d(2025, 10, 3), "g4", Row::LrvPo, Column::Total),
        0
    );
    assert_eq!(
        count_at(&plain, d(2025, 10, 6), "g4", Row::LrvPo, Column::Total),
        1
    );
}

// ---- the clock ----

#[test]
fn an_offer_on_the_deadline_day_is_in_time() {
    let r = rules();
    let since = d(2025, 9, 1);
    let deadline = d(2025, 12, 1);
    let open = sig("r1", "p1", Category::Lrv, Sector::Vo, since);
    let offered = with_offer(
        sig("r2", "p2", Category::Lrv, Sector::Vo, since),
        deadline - Duration::days(3),
        Some(deadline),
    );
    assert_eq!(days_without_offer(&offered, deadline), None);
    assert_eq!(
        days_without_offer(&offered, deadline - Duration::days(1)),
        Some(90)
    );
    assert_eq!(days_without_offer(&open, deadline), Some(91));
    let s = held(vec![open, offered]);
    let day_before = due(&s, deadline - Duration::days(1), &r);
    assert_eq!(day_before.len(), 2);
    assert!(day_before.iter().all(|l| l.band == DueBand::Weeks12));
    let on_deadline = due(&s, deadline, &r);
    assert_eq!(on_deadline.len(), 1);
    assert_eq!(on_deadline[0].pupil_pseudonym, test_pseudonym("p1"));
    assert_eq!(on_deadline[0].band, DueBand::OverThreeMonths);
    // Both still absent: both count as LRV; only the one without an offer is "zonder aanbod".
    assert_eq!(count_at(&s, deadline, "g4", Row::LrvVo, Column::Longer), 2);
    assert_eq!(
        count_at(&s, deadline, "g4", Row::WithoutOffer, Column::Longer),
        1
    );
}

#[test]
fn only_an_offer_with_kind_place_and_parents_stops_the_clock() {
    let since = d(2025, 9, 1);
    let at = d(2025, 12, 1);
    let full = with_offer(
        sig("r", "p", Category::Lrv, Sector::Vo, since),
        d(2025, 11, 1),
        Some(d(2025, 11, 3)),
    );
    assert!(offer_stops_clock(&full, at));
    let waiting_list = Signal {
        offer_place_from: None,
        ..full.clone()
    };
    let place_later = Signal {
        offer_place_from: Some(d(2025, 12, 2)),
        ..full.clone()
    };
    let no_kind = Signal {
        offer_kind: None,
        ..full.clone()
    };
    let parents_not_asked = Signal {
        offer_parents_agreed: false,
        ..full.clone()
    };
    for s in [waiting_list, place_later, no_kind, parents_not_asked] {
        assert!(!offer_stops_clock(&s, at), "{s:?}");
        assert_eq!(days_without_offer(&s, at), Some(91));
    }
}

#[test]
fn the_age_at_a_date_follows_the_day_it_was_true() {
    let mut s = sig("r", "p", Category::Lrv, Sector::Mbo, d(2025, 9, 1));
    s.age = 17;
    s.age_on = Some(d(2025, 10, 15));
    assert_eq!(age_at(&s, d(2025, 10, 14)), 17);
    assert_eq!(age_at(&s, d(2026, 10, 14)), 17);
    assert_eq!(age_at(&s, d(2026, 10, 15)), 18);
    assert_eq!(age_at(&s, d(2024, 10, 15)), 16);
    s.age_on = None;
    assert_eq!(age_at(&s, s.updated_at.date_naive()), 17);
    // Counted while 17, not from the day the child is 18.
    s.age_on = Some(d(2025, 10, 15));
    let h = held(vec![s]);
    assert_eq!(
        count_at(&h, d(2026, 6, 1), "g4", Row::LrvVo, Column::Total),
        1
    );
    assert_eq!(
        count_at(&h, d(2026, 10, 15), "g4", Row::LrvVo, Column::Total),
        0
    );
}

#[test]
fn av_is_split_by_age_and_a_child_without_school_history_counts() {
    let at = d(2026, 2, 1);
    let mut young = sig("a", "p7", Category::Av, Sector::Vo, d(2025, 11, 3));
    young.age = 7;
    young.sector = None;
    let mut old = sig("b", "p14", Category::Av, Sector::Po, d(2025, 11, 3));
    old.age = 12;
    let mut exempt = sig(
        "c",
        "p5a",
        Category::Vrijstelling5a,
        Sector::So,
        d(2025, 9, 1),
    );
    exempt.sector = None;
    exempt.school = None;
    let h = held(vec![young, old, exempt]);
    assert_eq!(count_at(&h, at, "g4", Row::AvPo, Column::Total), 1);
    assert_eq!(count_at(&h, at, "g4", Row::AvVo, Column::Total), 1);
    assert_eq!(
        count_at(&h, at, "g4", Row::Vrijstelling5aPermanent, Column::Total),
        1
    );
}

#[test]
fn the_evaluation_rule_counts_every_av_dossier_without_an_exemption() {
    let at = d(2026, 2, 1);
    let av = sig("a", "p1", Category::Av, Sector::Vo, at - Duration::days(3));
    let av_exempt = sig("b", "p2", Category::Av, Sector::Vo, at - Duration::days(3));
    let exemption = sig(
        "c",
        "p2",
        Category::Vrijstelling5b,
        Sector::Vo,
        d(2025, 9, 1),
    );
    let h = held(vec![av, av_exempt, exemption]);
    assert_eq!(
        count_at(&h, at, "groningen-evaluatie", Row::AvVo, Column::Total),
        1
    );
    assert_eq!(count_at(&h, at, "duo", Row::AvVo, Column::Total), 2);
    assert_eq!(count_at(&h, at, "g4", Row::AvVo, Column::Total), 0);
}

#[test]
fn due_bands_start_at_4_8_10_and_12_weeks_and_name_the_step() {
    let r = rules();
    let at = d(2026, 3, 2);
    let s = held(vec![
        sig(
            "a",
            "p55",
            Category::Av,
            Sector::Po,
            at - Duration::days(55),
        ),
        sig(
            "b",
            "p56",
            Category::Av,
            Sector::Po,
            at - Duration::days(56),
        ),
        sig(
            "c",
            "p70",
            Category::Av,
            Sector::Po,
            at - Duration::days(70),
        ),
        sig(
            "e",
            "p84",
            Category::Av,
            Sector::Po,
            at - Duration::days(84),
        ),
    ]);
    let lines = due(&s, at, &r);
    let bands: Vec<(&str, DueBand, u32)> = lines
        .iter()
        .map(|l| (tag_of(&l.pupil_pseudonym), l.band, l.weeks))
        .collect();
    assert_eq!(
        bands,
        vec![
            ("p84", DueBand::Weeks12, 12),
            ("p70", DueBand::Weeks10, 10),
            ("p56", DueBand::Weeks8, 8),
            ("p55", DueBand::Weeks4, 7)
        ]
    );
    // AV children of 14 (the test's age): the VO route; the same at 8 under the PO route.
    assert_eq!(
        lines[0].escalation,
        "directeur-bestuurder SWV VO (doorbraak)"
    );
    let mut young = sig("y", "p8", Category::Av, Sector::Po, at - Duration::days(30));
    young.age = 8;
    let lines = due(&held(vec![young]), at, &r);
    assert_eq!(lines[0].band, DueBand::Weeks4);
    assert!(
        lines[0].escalation.contains("expertteam"),
        "{}",
        lines[0].escalation
    );
}

#[test]
fn due_joins_partners_on_the_pseudonym() {
    let r = rules();
    let since = d(2025, 9, 1);
    let by_school = sig("swv-1", "p1", Category::Lrv, Sector::Vo, since);
    let mut by_home = sig(
        "lp-7",
        "p1",
        Category::Verzuim,
        Sector::Vo,
        since + Duration::days(10),
    );
    by_home.residence_municipality = "GM1966".parse().unwrap();
    let s = vec![
        ("swv-vo".to_string(), by_school),
        ("leerplicht".to_string(), by_home),
    ];
    let lines = due(&s, d(2025, 11, 10), &r);
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line.days, 70);
    assert_eq!(line.categories, vec![Category::Lrv, Category::Verzuim]);
    assert_eq!(
        line.municipalities,
        vec!["GM0014".to_string(), "GM1966".to_string()]
    );
    assert_eq!(
        line.holders,
        vec![
            ("leerplicht".into(), "lp-7".into()),
            ("swv-vo".into(), "swv-1".into())
        ]
    );
    assert!(
        !format!("{line:?}").contains("p1"),
        "Debug leaves the pseudonym out"
    );
}

#[test]
fn an_offer_by_any_partner_stops_the_childs_clock() {
    let r = rules();
    let a = sig("a", "p1", Category::Av, Sector::Vo, d(2025, 9, 1));
    let b = with_offer(
        sig("b", "p1", Category::Lrv, Sector::Vo, d(2025, 9, 1)),
        d(2025, 10, 20),
        Some(d(2025, 10, 27)),
    );
    let s = held(vec![a, b]);
    assert!(due(&s, d(2025, 11, 10), &r).is_empty());
    assert_eq!(
        count_at(&s, d(2025, 11, 10), "duo", Row::WithoutOffer, Column::Total),
        0
    );
    assert_eq!(
        count_at(
            &s,
            d(2025, 11, 10),
            "duo",
            Row::TotalNotAttending,
            Column::Total
        ),
        1
    );
}

// ---- exemptions, closing, retention ----

#[test]
fn an_exemption_counts_up_to_its_end_date() {
    let mut v = sig(
        "v",
        "p1",
        Category::Vrijstelling5a,
        Sector::Po,
        d(2025, 8, 25),
    );
    v.exemption_term = Some(ExemptionTerm::Temporary);
    v.exemption_end = Some(d(2026, 2, 1));
    let s = held(vec![v.clone()]);
    assert_eq!(
        count_at(
            &s,
            d(2026, 2, 1),
            "g4",
            Row::Vrijstelling5aTemporary,
            Column::Total
        ),
        1
    );
    assert_eq!(
        count_at(
            &s,
            d(2026, 2, 2),
            "g4",
            Row::Vrijstelling5aTemporary,
            Column::Total
        ),
        0
    );
    v.exemption_term = None;
    v.exemption_end = None;
    let permanent = held(vec![v]);
    assert_eq!(
        count_at(
            &permanent,
            d(2026, 6, 1),
            "g4",
            Row::Vrijstelling5aPermanent,
            Column::Longer
        ),
        1
    );
}

#[test]
fn a_signal_closed_on_or_before_the_date_does_not_count() {
    let mut s1 = sig("a", "p1", Category::Lrv, Sector::Vo, d(2025, 9, 1));
    s1.status = Status::Teruggeleid;
    s1.closed_on = Some(d(2025, 11, 1));
    let s = held(vec![s1]);
    assert_eq!(
        count_at(&s, d(2025, 10, 31), "g4", Row::LrvVo, Column::Total),
        1
    );
    assert_eq!(
        count_at(&s, d(2025, 11, 1), "g4", Row::LrvVo, Column::Total),
        0
    );
}

#[test]
fn retention_runs_from_the_day_closed() {
    let r = rules();
    let mut s = sig("a", "p1", Category::Lrv, Sector::Vo, d(2024, 9, 1));
    assert!(
        !r.retention_expired(&s, d(2030, 1, 1)),
        "open signals are kept"
    );
    s.status = Status::Gesloten;
    s.closed_on = Some(d(2025, 1, 1));
    assert!(!r.retention_expired(&s, d(2026, 1, 1)));
    assert!(r.retention_expired(&s, d(2026, 1, 2)));
}

// ---- the report's shape, suppression, rendering ----

#[test]
fn a_child_reported_as_lrv_and_av_counts_once() {
    let lrv = sig("swv", "p1", Category::Lrv, Sector::Vo, d(2025, 9, 1));
    let av = sig("lp", "p1", Category::Av, Sector::Vo, d(2025, 9, 15));
    let s = held(vec![lrv, av]);
    let at = d(2025, 11, 1);
    assert_eq!(
        count_at(&s, at, "duo", Row::TotalNotAttending, Column::Total),
        1
    );
    assert_eq!(
        count_at(&s, at, "duo", Row::LrvVo, Column::Total),
        1,
        "earliest absent_since wins"
    );
    assert_eq!(count_at(&s, at, "duo", Row::AvVo, Column::Total), 0);
}

#[test]
fn suppression_hides_small_cells_and_a_complement() {
    let r = rules();
    let mut signals = Vec::new();
    for i in 0..9 {
        let mut s = sig(
            &format!("r{i}"),
            &format!("p{i}"),
            Category::Lrv,
            Sector::Vo,
            d(2025, 9, 1),
        );
        if i < 2 {
            s.residence_municipality = "GM1966".parse().unwrap();
        }
        signals.push(s);
    }
    let s = held(signals);
    let at = d(2025, 11, 1);
    let rep = report(&s, &[at], r.rule("g4").expect("g4"), &r);
    let out = rep.suppressed(5);
    let value = |scope: &str, row: Row, col: Column| {
        out.cells
            .iter()
            .find(|c| c.scope == scope && c.row == row && c.column == col)
            .map(|c| c.value)
            .expect("cell")
    };
    assert_eq!(value("GM1966", Row::LrvVo, Column::Total), None, "2 < 5");
    assert_eq!(
        value("GM0014", Row::LrvVo, Column::Total),
        None,
        "complement of GM1966 in the region"
    );
    assert_eq!(value(REGION, Row::LrvVo, Column::Total), Some(9));
    assert_eq!(
        value(REGION, Row::ResidentPupils, Column::Total),
        Some(52700)
    );
}

#[test]
fn renderers_show_suppressed_cells_as_gaps() {
    let r = rules();
    let s = held(vec![sig(
        "r1",
        "p1",
        Category::Lrv,
        Sector::Vo,
        d(2025, 9, 1),
    )]);
    let dates = r.reference_dates(2025);
    let rep = report(&s, &dates, r.rule("g4").expect("g4"), &r);
    let full = rep.to_table();
    assert!(
        full.contains("LRV VO") && full.contains("01-11-2025") && full.contains("01-06-2026"),
        "{full}"
    );
    let hidden = rep.suppressed(5);
    let table = hidden.to_table();
    assert!(table.contains(" x"), "{table}");
    let csv = hidden.to_csv().expect("csv");
    assert!(csv.starts_with("rule,date,scope,row,column,value,note\n"));
    assert!(
        csv.contains("g4,2025-11-01,region,PER_1000,TOTAL,,noemer: GM0014 "),
        "rate of a hidden count is hidden, its denominator named"
    );
    let json: serde_json::Value =
        serde_json::from_str(&hidden.to_json().expect("json")).expect("valid json");
    assert_eq!(json["rule"], "g4");
    assert!(json["cells"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x["value"].is_null())));
    let svg = rep.to_svg();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>") && svg.contains("<line"));
}

// ---- property tests ----

const PUPILS: usize = 10;
const MUNICIPALITIES: [&str; 5] = ["GM0014", "GM1966", "GM1969", "GM1952", "GM0037"];
const SCHOOLS: [&str; 6] = ["20VA01", "20VC02", "10PA01", "25MB01", "99XX01", ""];
const HOLDERS: [&str; 3] = ["swv-vo", "leerplicht-groningen", "noorderpoort"];

fn base() -> NaiveDate {
    d(2025, 6, 1)
}

fn arb_signal() -> impl Strategy<Value = Signal> {
    let what = (
        0..PUPILS,
        0..9usize,
        0..8usize,
        0..5usize,
        0..6usize,
        0..400i64,
        0..4usize,
    );
    let flags = (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0..3usize,
        0..3u32,
        5..19u32,
    );
    let dates = (
        proptest::option::of(0..420i64),
        proptest::option::of(0..420i64),
        proptest::option::of(0..420i64),
    );
    let offer = (
        proptest::option::of(0..3usize),
        proptest::option::of(0..60i64),
        any::<bool>(),
        proptest::option::of(-400..400i64),
    );
    (what, flags, dates, offer).prop_map(
        |(
            (p, c, sec, m, sch, since, st),
            (aui, c5, mbo, term, upd, age),
            (offer, end, closed),
            (kind, place, agreed, age_on),
        )| {
            let absent_since = base() + Duration::days(since);
            let status = Status::ALL[st];
            Signal {
                source_record_id: format!("rec-{p}-{c}-{since}"),
                pupil_pseudonym: test_pseudonym(&format!("pupil-{p}")),
                category: Category::ALL[c],
                sector: Sector::ALL.get(sec).copied(),
                residence_municipality: MUNICIPALITIES[m].parse().unwrap(),
                school: (!SCHOOLS[sch].is_empty()).then(|| SCHOOLS[sch].parse().unwrap()),
                absent_since,
                status,
                offer_date: offer.map(|o| base() + Duration::days(o)),
                age,
                updated_at: stamp(1 + upd),
                address_under_investigation: aui,
                exemption_5c_requested: c5,
                awaiting_mbo_intake: mbo,
                exemption_term: [
                    None,
                    Some(ExemptionTerm::Temporary),
                    Some(ExemptionTerm::Permanent),
                ][term],
                exemption_end: end.map(|e| base() + Duration::days(e)),
                closed_on: closed.map(|e| base() + Duration::days(e)),
                age_on: age_on.map(|e| base() + Duration::days(e)),
                offer_kind: kind.map(|k| {
                    [
                        OfferKind::Onderwijs,
                        OfferKind::Zorg,
                        OfferKind::OnderwijsEnZorg,
                    ][k]
                }),
                offer_place_from: offer
                    .zip(place)
                    .map(|(o, p)| base() + Duration::days(o + p)),
                offer_parents_agreed: agreed,
            }
        },
    )
}

// -- an independent, simple recount: day-by-day calendars, no shared helpers --

fn bf_closed(s: &Signal) -> Option<NaiveDate> {
    match (s.closed_on, s.status) {
        (Some(c), _) => Some(c),
        (None, Status::Teruggeleid | Status::Gesloten) => Some(s.updated_at.date_naive()),
        _ => None,
    }
}

fn bf_offer(s: &Signal) -> Option<NaiveDate> {
    match (s.offer_date, s.status) {
        (Some(o), _) => Some(o),
        (None, Status::Aanbod) => Some(s.updated_at.date_naive()),
        _ => None,
    }
}

/// The offer stops the clock on the later of the offer and the place, if kind and parents hold.
fn bf_stops(s: &Signal, at: NaiveDate) -> bool {
    let (Some(o), Some(p)) = (bf_offer(s), s.offer_place_from) else {
        return false;
    };
    s.offer_kind.is_some() && s.offer_parents_agreed && o.max(p) <= at
}

/// The age at `at`: whole years between the day the age was true and `at`, by calendar.
fn bf_age(s: &Signal, at: NaiveDate) -> u32 {
    use chrono::Datelike;
    let on = s.age_on.unwrap_or(s.updated_at.date_naive());
    let whole = |from: NaiveDate, to: NaiveDate| {
        let short = (to.month(), to.day()) < (from.month(), from.day());
        u32::try_from(to.year() - from.year() - i32::from(short)).expect("ordered")
    };
    if at >= on {
        s.age + whole(on, at)
    } else {
        s.age.saturating_sub(whole(at, on))
    }
}

fn bf_active(s: &Signal, at: NaiveDate) -> bool {
    s.absent_since <= at && bf_closed(s).is_none_or(|c| at < c)
}

fn bf_school_days(r: &CountingRules, from: NaiveDate, to: NaiveDate) -> i64 {
    let mut n = 0;
    let mut day = from;
    while day < to {
        let weekend = matches!(
            chrono::Datelike::weekday(&day),
            chrono::Weekday::Sat | chrono::Weekday::Sun
        );
        let holiday = r
            .calendar()
            .holidays()
            .iter()
            .any(|h| h.from <= day && day <= h.to);
        if !weekend && !holiday {
            n += 1;
        }
        day += Duration::days(1);
    }
    n
}

fn bf_reached(r: &CountingRules, p: Period, since: NaiveDate, at: NaiveDate) -> bool {
    match p {
        Period::Days(n) => (at - since).num_days() >= i64::from(n),
        Period::Weeks(n) => (at - since).num_days() >= 7 * i64::from(n),
        Period::Months(n) => since
            .checked_add_months(chrono::Months::new(n))
            .is_some_and(|x| x <= at),
        Period::SchoolWeeks(n) => bf_school_days(r, since, at) >= 5 * i64::from(n),
    }
}

fn bf_counts(r: &CountingRules, rule: &Rule, s: &Signal, at: NaiveDate) -> bool {
    if !bf_active(s, at) || !(5..18).contains(&bf_age(s, at)) {
        return false;
    }
    match s.category {
        Category::Lrv => bf_reached(r, rule.lrv_after, s.absent_since, at),
        Category::Av => {
            bf_reached(r, rule.av_after, s.absent_since, at)
                && !(rule.av_exclude.contains(&Flag::Exemption5cRequested)
                    && s.exemption_5c_requested)
                && !(rule.av_exclude.contains(&Flag::AddressUnderInvestigation)
                    && s.address_under_investigation)
                && !(rule.av_exclude.contains(&Flag::AwaitingMboIntake) && s.awaiting_mbo_intake)
        }
        Category::Vrijstelling5a | Category::Vrijstelling5b | Category::Vrijstelling5c => {
            s.exemption_end.is_none_or(|e| at <= e)
        }
        Category::LangdurigZiek => bf_reached(r, rule.sick_after, s.absent_since, at),
        _ => false,
    }
}

fn bf_po(s: &Signal, at: NaiveDate) -> bool {
    match (s.category, s.sector) {
        (Category::Av, _) | (_, None) => bf_age(s, at) < 12,
        (_, Some(sector)) => matches!(sector, Sector::Po | Sector::Sbo | Sector::So),
    }
}

/// The rows of one winning signal, by its category.
fn bf_rows(rule: &Rule, w: &Signal, at: NaiveDate) -> Vec<Row> {
    let permanent = w.exemption_term == Some(ExemptionTerm::Permanent)
        || (w.exemption_term.is_none() && w.exemption_end.is_none());
    match w.category {
        Category::Lrv => vec![
            Row::TotalNotAttending,
            if bf_po(w, at) { Row::LrvPo } else { Row::LrvVo },
        ],
        Category::Av if bf_po(w, at) => vec![Row::TotalNotAttending, Row::AvPo],
        Category::Av
            if w.awaiting_mbo_intake && rule.av_name_apart.contains(&Flag::AwaitingMboIntake) =>
        {
            vec![Row::TotalNotAttending, Row::AvVo, Row::AvVoMboTransition]
        }
        Category::Av => vec![Row::TotalNotAttending, Row::AvVo],
        Category::Vrijstelling5a if permanent => vec![Row::Vrijstelling5aPermanent],
        Category::Vrijstelling5a => vec![Row::Vrijstelling5aTemporary],
        Category::Vrijstelling5b => vec![Row::Vrijstelling5b],
        Category::Vrijstelling5c => vec![Row::Vrijstelling5c],
        _ => vec![Row::LangdurigZiek],
    }
}

fn bf_scopes(w: &Signal) -> Vec<String> {
    let swv = match w.school.as_ref().and_then(|s| s.get(..4)) {
        Some("20VA" | "20VB" | "20VC" | "20VD") => "swv-vo",
        Some("10PA" | "10PB" | "10PC") => "swv-po",
        Some("25MA" | "25MB") => "mbo",
        _ => "no-swv",
    };
    vec![
        REGION.to_string(),
        w.residence_municipality.to_string(),
        swv.to_string(),
    ]
}

/// Every (scope, row, column) the child counts in at `at`.
fn bf_child(
    r: &CountingRules,
    rule: &Rule,
    mine: &[&Signal],
    at: NaiveDate,
) -> BTreeSet<(String, Row, Column)> {
    let offered = mine.iter().any(|s| {
        bf_active(s, at)
            && matches!(
                s.category,
                Category::Lrv
                    | Category::Av
                    | Category::Schorsing
                    | Category::Verwijdering
                    | Category::LangdurigZiek
            )
            && bf_stops(s, at)
    });
    let exempt = mine.iter().any(|s| {
        matches!(
            s.category,
            Category::Vrijstelling5a | Category::Vrijstelling5b | Category::Vrijstelling5c
        ) && bf_counts(r, rule, s, at)
    });
    let families: [&[Category]; 5] = [
        &[Category::Lrv, Category::Av],
        &[Category::Vrijstelling5a],
        &[Category::Vrijstelling5b],
        &[Category::Vrijstelling5c],
        &[Category::LangdurigZiek],
    ];
    let mut out = BTreeSet::new();
    for (i, fam) in families.iter().enumerate() {
        let fam: &[Category] = if i == 0 && rule.av_not_if_exempt && exempt {
            &[Category::Lrv]
        } else {
            fam
        };
        let mut cands: Vec<&Signal> = mine
            .iter()
            .copied()
            .filter(|s| fam.contains(&s.category) && bf_counts(r, rule, s, at))
            .collect();
        cands.sort_by(|a, b| {
            a.absent_since
                .cmp(&b.absent_since)
                .then(b.updated_at.cmp(&a.updated_at))
                .then(a.category.cmp(&b.category))
                .then(a.sector.cmp(&b.sector))
                .then(a.residence_municipality.cmp(&b.residence_municipality))
                .then(a.school.cmp(&b.school))
                .then(a.source_record_id.cmp(&b.source_record_id))
        });
        let Some(w) = cands.first() else { continue };
        let longer = w
            .absent_since
            .checked_add_months(chrono::Months::new(3))
            .is_some_and(|x| x <= at);
        let col = if longer {
            Column::Longer
        } else {
            Column::Shorter
        };
        let mut rows = bf_rows(rule, w, at);
        if i == 0 && !offered {
            rows.push(Row::WithoutOffer);
        }
        for row in rows {
            for scope in bf_scopes(w) {
                out.insert((scope.clone(), row, col));
                out.insert((scope, row, Column::Total));
            }
        }
    }
    out
}

fn bf_report(
    r: &CountingRules,
    rule: &Rule,
    signals: &[(String, Signal)],
    at: NaiveDate,
) -> BTreeMap<(String, Row, Column), u64> {
    let pupils: BTreeSet<&str> = signals
        .iter()
        .map(|(_, s)| s.pupil_pseudonym.as_str())
        .collect();
    let mut out = BTreeMap::new();
    for p in pupils {
        let mine: Vec<&Signal> = signals
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.pupil_pseudonym == p)
            .collect();
        for key in bf_child(r, rule, &mine, at) {
            *out.entry(key).or_insert(0) += 1;
        }
    }
    out
}

/// The additive relations, enumerated independently of `suppress::relations`, as
/// (total hidden, parts hidden).
fn bf_relations(cells: &[SuppressedCell]) -> Vec<(bool, Vec<bool>)> {
    let get = |date: NaiveDate, scope: &str, row: Row, col: Column| {
        cells
            .iter()
            .find(|c| c.date == date && c.scope == scope && c.row == row && c.column == col)
    };
    let pack = |total: &SuppressedCell, parts: Vec<&SuppressedCell>| {
        (
            total.value.is_none(),
            parts.iter().map(|p| p.value.is_none()).collect::<Vec<_>>(),
        )
    };
    let mut out = Vec::new();
    for c in cells.iter().filter(|c| c.row != Row::ResidentPupils) {
        if c.column == Column::Total {
            let parts: Vec<&SuppressedCell> = [Column::Shorter, Column::Longer]
                .iter()
                .filter_map(|&col| get(c.date, &c.scope, c.row, col))
                .collect();
            out.push(pack(c, parts));
        }
        if c.row == Row::TotalNotAttending {
            let parts = [Row::AvPo, Row::AvVo, Row::LrvPo, Row::LrvVo]
                .iter()
                .filter_map(|&row| get(c.date, &c.scope, row, c.column))
                .collect();
            out.push(pack(c, parts));
        }
        if c.scope == REGION {
            let same =
                |x: &&SuppressedCell| x.date == c.date && x.row == c.row && x.column == c.column;
            let munis = cells
                .iter()
                .filter(same)
                .filter(|x| x.scope.starts_with("GM"))
                .collect();
            out.push(pack(c, munis));
            let swvs = cells
                .iter()
                .filter(same)
                .filter(|x| x.scope != REGION && !x.scope.starts_with("GM"))
                .collect();
            out.push(pack(c, swvs));
        }
    }
    out
}

fn dates() -> Vec<NaiveDate> {
    vec![d(2025, 11, 1), d(2026, 2, 1), d(2026, 6, 1)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_cell_equals_a_brute_force_recount(sigs in proptest::collection::vec(arb_signal(), 0..40), extra in 0..420i64, rule_ix in 0..4usize) {
        let r = rules();
        let rule = r.rule(["duo", "g4", "groningen", "groningen-evaluatie"][rule_ix]).expect("rule");
        let signals = held(sigs);
        let mut at = dates();
        at.push(base() + Duration::days(extra));
        at.sort();
        at.dedup();
        let rep = report(&signals, &at, rule, &r);
        for &date in &at {
            let expected = bf_report(&r, rule, &signals, date);
            for cell in rep.cells().iter().filter(|c| c.date == date && c.row != Row::ResidentPupils) {
                let want = expected.get(&(cell.scope.clone(), cell.row, cell.column)).copied().unwrap_or(0);
                prop_assert_eq!(cell.count, want, "{} {} {:?} {:?}", date, cell.scope, cell.row, cell.column);
            }
            let reported: u64 = rep.cells().iter().filter(|c| c.date == date && c.row != Row::ResidentPupils).map(|c| c.count).sum();
            let total: u64 = expected.iter().filter(|((_, row, _), _)| *row != Row::AvVoMboTransition || rule.names_mbo_intake_apart()).map(|(_, n)| *n).sum();
            prop_assert_eq!(reported, total, "no recounted cell is missing from the report");
        }
    }

    #[test]
    fn a_child_counts_once_however_many_partners_report_it(sigs in proptest::collection::vec(arb_signal(), 0..40), copies in proptest::collection::vec(1..4usize, 40)) {
        let r = rules();
        let rule = r.rule("g4").expect("g4");
        let once = held(sigs.clone());
        let mut many = Vec::new();
        for (i, s) in sigs.iter().enumerate().rev() {
            for h in HOLDERS.iter().take(copies[i]) {
                many.push((h.to_string(), s.clone()));
            }
        }
        prop_assert_eq!(report(&once, &dates(), rule, &r), report(&many, &dates(), rule, &r));
        let at = d(2026, 2, 1);
        let (a, b) = (due(&once, at, &r), due(&many, at, &r));
        prop_assert_eq!(a.iter().map(|l| (&l.pupil_pseudonym, l.days, l.band)).collect::<Vec<_>>(), b.iter().map(|l| (&l.pupil_pseudonym, l.days, l.band)).collect::<Vec<_>>());
        let distinct: BTreeSet<&str> = b.iter().map(|l| l.pupil_pseudonym.as_str()).collect();
        prop_assert_eq!(distinct.len(), b.len(), "one line per child");
    }

    #[test]
    fn nothing_small_or_recomputable_survives_suppression(sigs in proptest::collection::vec(arb_signal(), 0..80), threshold in 2..8u64) {
        let r = rules();
        let rule = r.rule("duo").expect("duo");
        let rep = report(&held(sigs), &dates(), rule, &r);
        let out = suppress(&rep.cells(), threshold);
        prop_assert_eq!(out.len(), rep.cells().len());
        for (c, s) in rep.cells().iter().zip(&out) {
            prop_assert!(s.value.is_none() || s.value == Some(c.count), "visible values are unchanged");
            if c.row != Row::ResidentPupils {
                prop_assert!(!(c.count > 0 && c.count < threshold && s.value.is_some()), "small cell visible: {:?}", c);
            }
        }
        for (total_hidden, parts_hidden) in bf_relations(&out) {
            let hidden = usize::from(total_hidden) + parts_hidden.iter().filter(|h| **h).count();
            prop_assert!(hidden != 1, "a hidden value follows from a visible total and visible parts");
        }
    }
}

#[test]
fn school_year_counts_each_child_once_and_those_back_at_school() {
    let r = rules();
    let g4 = r.rule("g4").expect("g4");
    let mut back = sig("a", "p1", Category::Lrv, Sector::Vo, d(2025, 9, 1));
    back.status = Status::Teruggeleid;
    back.closed_on = Some(d(2025, 12, 1));
    let also_av = sig("b", "p1", Category::Av, Sector::Vo, d(2026, 1, 5));
    let mut turned_18 = sig("c", "p2", Category::Lrv, Sector::Mbo, d(2026, 3, 2));
    turned_18.age = 17;
    turned_18.age_on = Some(d(2025, 3, 20)); // 18 from 20 March 2026, before four school weeks
    let h = held(vec![back, also_av, turned_18]);
    let (start, end) = school_year_of(d(2026, 2, 1));
    assert_eq!((start, end), (d(2025, 8, 1), d(2026, 7, 31)));
    let y = year_counts(&h, start, end, g4, &r);
    assert_eq!(y[&YearRow::Lrv], 1);
    assert_eq!(y[&YearRow::Av], 1);
    assert_eq!(y[&YearRow::NotAttending], 1, "one child in both");
    assert_eq!(y[&YearRow::SchoolgangHersteld], 1);
    let (next_start, next_end) = school_year_of(d(2026, 9, 1));
    let next = year_counts(&h, next_start, next_end, g4, &r);
    assert_eq!(next[&YearRow::SchoolgangHersteld], 0);
    assert_eq!(next[&YearRow::Lrv], 0);
}
