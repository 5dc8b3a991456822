//! SignalIntakeService over real mTLS: Push and List, List filters, upserts, restarts, every
//! refused field, size limits, and the health and reflection services that tools like grpcurl
//! use.

mod common;

use common::*;
use pactgate::pb;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use pactgate::rpc::intake::MAX_RECORDS_PER_PUSH;
use tonic::transport::Channel;
use tonic::Code;

async fn node_and_client() -> (TestNode, SignalIntakeServiceClient<Channel>) {
    let node = TestNode::start("swv-vo").await;
    let client = node.intake().await;
    (node, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_list_shows_pseudonymised_signals() {
    let (_node, mut client) = node_and_client().await;
    let bsns = Bsns::new(1).take(3);
    let records = vec![
        good_record("indigo-1", &bsns[0]),
        pb::SignalRecord {
            category: pb::Category::Av as i32,
            school: String::new(),
            residence_municipality: "GM1966".into(),
            ..good_record("indigo-2", &bsns[1])
        },
        pb::SignalRecord {
            status: pb::Status::Aanbod as i32,
            offer_date: date_from_today(-10),
            sector: pb::Sector::Po as i32,
            age: 9,
            ..good_record("indigo-3", &bsns[2])
        },
    ];
    let report = push(&mut client, records.clone()).await.expect("push");
    assert_eq!(report.accepted, 3);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);

    let views = list_all(&mut client).await;
    assert_eq!(ids(&views), ["indigo-1", "indigo-2", "indigo-3"]);
    for (record, bsn) in records.iter().zip(&bsns) {
        let view = views
            .iter()
            .find(|v| v.source_record_id == record.source_record_id)
            .unwrap();
        assert_eq!(view.pupil_pseudonym, pseudonym_of(bsn));
        assert!(view.pupil_pseudonym.starts_with("v1."));
        assert!(
            !format!("{view:?}").contains(bsn.as_str()),
            "a view shows the BSN"
        );
        assert_eq!(view.category, record.category);
        assert_eq!(view.sector, record.sector);
        assert_eq!(view.residence_municipality, record.residence_municipality);
        assert_eq!(view.school, record.school);
        assert_eq!(view.absent_since, record.absent_since);
        assert_eq!(view.status, record.status);
        assert_eq!(view.offer_date, record.offer_date);
        assert_eq!(view.age, record.age);
        let updated = chrono::DateTime::parse_from_rfc3339(&view.updated_at)
            .unwrap_or_else(|e| panic!("updated_at {:?}: {e}", view.updated_at));
        let age = chrono::Utc::now().signed_duration_since(updated);
        assert!(
            age.num_seconds().abs() < 120,
            "updated_at {updated} is not now"
        );
    }
}

/// A population where each filter picks a known subset.
fn filter_population(bsns: &mut Bsns) -> (Vec<pb::SignalRecord>, String) {
    let shared_pupil = bsns.next_bsn();
    let mut records = Vec::new();
    let combos = [
        (
            "f1",
            "GM0014",
            "20XY01",
            pb::Category::Lrv,
            pb::Status::Open,
        ),
        (
            "f2",
            "GM0014",
            "20XY01",
            pb::Category::Verzuim,
            pb::Status::Open,
        ),
        (
            "f3",
            "GM0014",
            "30AB02",
            pb::Category::Lrv,
            pb::Status::Aanbod,
        ),
        (
            "f4",
            "GM1966",
            "20XY01",
            pb::Category::Schorsing,
            pb::Status::Gesloten,
        ),
        (
            "f5",
            "GM1966",
            "30AB02",
            pb::Category::Lrv,
            pb::Status::Teruggeleid,
        ),
        ("f6", "GM1969", "", pb::Category::Av, pb::Status::Open),
    ];
    for (id, muni, school, category, status) in combos {
        let pupil = if id == "f2" || id == "f5" {
            shared_pupil.clone()
        } else {
            bsns.next_bsn()
        };
        let offer_date = if status == pb::Status::Open {
            String::new()
        } else {
            date_from_today(-5)
        };
        records.push(pb::SignalRecord {
            residence_municipality: muni.into(),
            school: school.into(),
            category: category as i32,
            status: status as i32,
            offer_date,
            ..good_record(id, &pupil)
        });
    }
    (records, pseudonym_of(&shared_pupil))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_select_exactly_the_matching_signals() {
    let (_node, mut client) = node_and_client().await;
    let (records, shared) = filter_population(&mut Bsns::new(2));
    let report = push(&mut client, records).await.unwrap();
    assert_eq!(
        (report.accepted, report.rejected.len()),
        (6, 0),
        "{report:?}"
    );

    let req = |f: fn(&mut pb::ListRequest)| {
        let mut r = pb::ListRequest::default();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, pb::ListRequest, Vec<&str>)> = vec![
        (
            "all",
            pb::ListRequest::default(),
            vec!["f1", "f2", "f3", "f4", "f5", "f6"],
        ),
        (
            "municipality",
            req(|r| r.residence_municipality = "GM0014".into()),
            vec!["f1", "f2", "f3"],
        ),
        (
            "municipality GM1969",
            req(|r| r.residence_municipality = "GM1969".into()),
            vec!["f6"],
        ),
        (
            "municipality none",
            req(|r| r.residence_municipality = "GM0000".into()),
            vec![],
        ),
        (
            "school",
            req(|r| r.school = "20XY01".into()),
            vec!["f1", "f2", "f4"],
        ),
        ("school none", req(|r| r.school = "99ZZ99".into()), vec![]),
        (
            "category",
            req(|r| r.category = pb::Category::Lrv as i32),
            vec!["f1", "f3", "f5"],
        ),
        (
            "category AV",
            req(|r| r.category = pb::Category::Av as i32),
            vec!["f6"],
        ),
        (
            "status",
            req(|r| r.status = pb::Status::Open as i32),
            vec!["f1", "f2", "f6"],
        ),
        (
            "status GESLOTEN",
            req(|r| r.status = pb::Status::Gesloten as i32),
            vec!["f4"],
        ),
        (
            "municipality+school",
            req(|r| {
                r.residence_municipality = "GM1966".into();
                r.school = "30AB02".into();
            }),
            vec!["f5"],
        ),
        (
            "school+category+status",
            req(|r| {
                r.school = "20XY01".into();
                r.category = pb::Category::Lrv as i32;
                r.status = pb::Status::Open as i32;
            }),
            vec!["f1"],
        ),
        (
            "municipality+status",
            req(|r| {
                r.residence_municipality = "GM0014".into();
                r.status = pb::Status::Aanbod as i32;
            }),
            vec!["f3"],
        ),
    ];
    for (name, request, expected) in cases {
        let views = list(&mut client, request)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ids(&views), expected, "filter {name}");
    }

    // By pupil pseudonym: the pupil with two signals, alone and with other filters.
    let by_pupil = pb::ListRequest {
        pupil_pseudonym: shared.clone(),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(&mut client, by_pupil.clone()).await.unwrap()),
        ["f2", "f5"]
    );
    let by_pupil_here = pb::ListRequest {
        residence_municipality: "GM1966".into(),
        ..by_pupil.clone()
    };
    assert_eq!(
        ids(&list(&mut client, by_pupil_here).await.unwrap()),
        ["f5"]
    );
    let unknown_pupil = pb::ListRequest {
        pupil_pseudonym: pseudonym_of(&Bsns::new(999).next_bsn()),
        ..Default::default()
    };
    assert!(list(&mut client, unknown_pupil).await.unwrap().is_empty());

    // Limit: with and without an index, never more than asked, always matching.
    for (limit, request) in [
        (2, pb::ListRequest::default()),
        (
            1,
            pb::ListRequest {
                residence_municipality: "GM0014".into(),
                ..Default::default()
            },
        ),
        (
            4,
            pb::ListRequest {
                school: "20XY01".into(),
                ..Default::default()
            },
        ),
        (
            1,
            pb::ListRequest {
                category: pb::Category::Lrv as i32,
                ..Default::default()
            },
        ),
    ] {
        let all = ids(&list(&mut client, request.clone()).await.unwrap());
        let limited = list(
            &mut client,
            pb::ListRequest {
                limit,
                ..request.clone()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            limited.len(),
            all.len().min(limit as usize),
            "limit {limit} on {request:?}"
        );
        for v in &limited {
            assert!(
                all.contains(&v.source_record_id),
                "{request:?} limit {limit}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_list_filters_are_refused_with_a_reason() {
    let (_node, mut client) = node_and_client().await;
    let cases = [
        (
            "municipality",
            pb::ListRequest {
                residence_municipality: "0014".into(),
                ..Default::default()
            },
            "CBS",
        ),
        (
            "school",
            pb::ListRequest {
                school: "ab1234".into(),
                ..Default::default()
            },
            "BRIN",
        ),
        (
            "pseudonym",
            pb::ListRequest {
                pupil_pseudonym: "123456782".into(),
                ..Default::default()
            },
            "not a pseudonym",
        ),
        (
            "category",
            pb::ListRequest {
                category: 99,
                ..Default::default()
            },
            "category",
        ),
        (
            "status",
            pb::ListRequest {
                status: 42,
                ..Default::default()
            },
            "status",
        ),
    ];
    for (name, request, words) in cases {
        let status = list(&mut client, request).await.expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        assert!(
            status.message().contains(words),
            "{name}: {:?}",
            status.message()
        );
        assert!(
            !status.message().contains("123456782"),
            "{name} echoes the id"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repush_of_a_record_id_updates_and_never_duplicates() {
    let (_node, mut client) = node_and_client().await;
    let mut bsns = Bsns::new(3);
    let (first_pupil, second_pupil) = (bsns.next_bsn(), bsns.next_bsn());

    // Across pushes: every indexed field changes.
    let v1 = good_record("dossier-7", &first_pupil);
    let v2 = pb::SignalRecord {
        residence_municipality: "GM1966".into(),
        school: "30AB02".into(),
        status: pb::Status::Aanbod as i32,
        offer_date: date_from_today(-3),
        category: pb::Category::Verzuim as i32,
        age: 15,
        ..good_record("dossier-7", &second_pupil)
    };
    assert_eq!(
        push(&mut client, vec![v1.clone()]).await.unwrap().accepted,
        1
    );
    let first = list_all(&mut client).await;
    assert_eq!(
        push(&mut client, vec![v2.clone()]).await.unwrap().accepted,
        1
    );
    let views = list_all(&mut client).await;
    assert_eq!(views.len(), 1, "{views:?}");
    let v = &views[0];
    assert_eq!(v.residence_municipality, "GM1966");
    assert_eq!(v.school, "30AB02");
    assert_eq!(v.status, pb::Status::Aanbod as i32);
    assert_eq!(v.category, pb::Category::Verzuim as i32);
    assert_eq!(v.pupil_pseudonym, pseudonym_of(&second_pupil));
    assert!(v.updated_at >= first[0].updated_at);

    let reader = client.clone();
    let count = move |r: pb::ListRequest| {
        let mut c = reader.clone();
        async move { list(&mut c, r).await.unwrap().len() }
    };
    let muni = |m: &str| pb::ListRequest {
        residence_municipality: m.into(),
        ..Default::default()
    };
    let school = |s: &str| pb::ListRequest {
        school: s.into(),
        ..Default::default()
    };
    let pupil = |p: String| pb::ListRequest {
        pupil_pseudonym: p,
        ..Default::default()
    };
    assert_eq!(
        count(muni("GM0014")).await,
        0,
        "old municipality index left behind"
    );
    assert_eq!(count(muni("GM1966")).await, 1);
    assert_eq!(
        count(school("20XY01")).await,
        0,
        "old school index left behind"
    );
    assert_eq!(count(school("30AB02")).await, 1);
    assert_eq!(
        count(pupil(pseudonym_of(&first_pupil))).await,
        0,
        "old pupil index left behind"
    );
    assert_eq!(count(pupil(pseudonym_of(&second_pupil))).await, 1);

    // Pushing the identical record again changes nothing but updated_at.
    push(&mut client, vec![v2.clone()]).await.unwrap();
    assert_eq!(list_all(&mut client).await.len(), 1);

    // Twice in one stream: the later version wins, once.
    let a = pb::SignalRecord {
        residence_municipality: "GM1969".into(),
        school: "40CD03".into(),
        ..good_record("dossier-8", &first_pupil)
    };
    let b = pb::SignalRecord {
        residence_municipality: "GM1952".into(),
        school: "50EF04".into(),
        ..good_record("dossier-8", &first_pupil)
    };
    let report = push(&mut client, vec![a, b.clone()]).await.unwrap();
    assert!(report.rejected.is_empty());
    let views = list_all(&mut client).await;
    assert_eq!(ids(&views), ["dossier-7", "dossier-8"]);
    let d8 = views
        .iter()
        .find(|v| v.source_record_id == "dossier-8")
        .unwrap();
    assert_eq!(
        (d8.residence_municipality.as_str(), d8.school.as_str()),
        ("GM1952", "50EF04")
    );
    assert_eq!(
        count(muni("GM1969")).await,
        0,
        "first version of the stream indexed"
    );
    assert_eq!(
        count(school("40CD03")).await,
        0,
        "first version of the stream indexed"
    );
    assert_eq!(count(muni("GM1952")).await, 1);
    assert_eq!(count(pupil(pseudonym_of(&first_pupil))).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_all_data() {
    let (mut node, mut client) = node_and_client().await;
    let mut bsns = Bsns::new(4);
    let first: Vec<_> = (0..20)
        .map(|i| good_record(&format!("a-{i:02}"), &bsns.next_bsn()))
        .collect();
    let second: Vec<_> = (0..20)
        .map(|i| pb::SignalRecord {
            residence_municipality: "GM1966".into(),
            ..good_record(&format!("b-{i:02}"), &bsns.next_bsn())
        })
        .collect();
    assert_eq!(push(&mut client, first).await.unwrap().accepted, 20);
    assert_eq!(push(&mut client, second).await.unwrap().accepted, 20);
    let before = list_all(&mut client).await;
    assert_eq!(before.len(), 40);
    drop(client);

    node.restart().await;
    let mut client = node.intake().await;
    let after = list_all(&mut client).await;
    let sorted = |mut v: Vec<pb::SignalView>| {
        v.sort_by(|a, b| a.source_record_id.cmp(&b.source_record_id));
        v
    };
    assert_eq!(sorted(after), sorted(before));
    let gm1966 = pb::ListRequest {
        residence_municipality: "GM1966".into(),
        ..Default::default()
    };
    assert_eq!(
        list(&mut client, gm1966).await.unwrap().len(),
        20,
        "index lost in restart"
    );

    // And it still takes pushes, then keeps them through a second restart.
    assert_eq!(
        push(&mut client, vec![good_record("c-1", &bsns.next_bsn())])
            .await
            .unwrap()
            .accepted,
        1
    );
    drop(client);
    node.restart().await;
    let mut client = node.intake().await;
    assert_eq!(list_all(&mut client).await.len(), 41);
}

type Change = Box<dyn Fn(&mut pb::SignalRecord)>;

fn change(f: impl Fn(&mut pb::SignalRecord) + 'static) -> Change {
    Box::new(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_field_is_refused_with_index_field_and_reason_and_good_records_are_stored() {
    let (_node, mut client) = node_and_client().await;
    let mut bsns = Bsns::new(5);
    let tomorrow = date_from_today(1);
    let future = date_from_today(3);
    let long_ago = date_from_today(-400);
    let cases: Vec<(&str, Change, &str, &str)> = vec![
        (
            "bsn fails 11-proef",
            change(|r| r.pupil_id = failing_eleven_proof(&r.pupil_id)),
            "pupil_id",
            "11-proef",
        ),
        (
            "bsn 123456789",
            change(|r| r.pupil_id = "123456789".into()),
            "pupil_id",
            "11-proef",
        ),
        (
            "bsn with a letter",
            change(|r| r.pupil_id = "12345678a".into()),
            "pupil_id",
            "nine digits",
        ),
        (
            "bsn with dots",
            change(|r| r.pupil_id = "1234.5678".into()),
            "pupil_id",
            "nine digits",
        ),
        (
            "bsn of ten digits",
            change(|r| r.pupil_id = format!("{}1", r.pupil_id)),
            "pupil_id",
            "nine digits",
        ),
        (
            "bsn empty",
            change(|r| r.pupil_id = String::new()),
            "pupil_id",
            "empty",
        ),
        (
            "bsn zeros",
            change(|r| r.pupil_id = "000000000".into()),
            "pupil_id",
            "11-proef",
        ),
        (
            "absent_since 30 Feb",
            change(|r| r.absent_since = "2031-02-30".into()),
            "absent_since",
            "2031-02-30 is not a date",
        ),
        (
            "absent_since month 13",
            change(|r| r.absent_since = "2025-13-01".into()),
            "absent_since",
            "not a date",
        ),
        (
            "absent_since dutch order",
            change(|r| r.absent_since = "01-09-2025".into()),
            "absent_since",
            "YYYY-MM-DD",
        ),
        (
            "absent_since empty",
            change(|r| r.absent_since = String::new()),
            "absent_since",
            "empty",
        ),
        (
            "absent_since in the future",
            change(move |r| r.absent_since = future.clone()),
            "absent_since",
            "in the future",
        ),
        (
            "municipality without GM",
            change(|r| r.residence_municipality = "0014".into()),
            "residence_municipality",
            "CBS code",
        ),
        (
            "municipality lower case",
            change(|r| r.residence_municipality = "gm0014".into()),
            "residence_municipality",
            "CBS code",
        ),
        (
            "municipality name",
            change(|r| r.residence_municipality = "Groningen".into()),
            "residence_municipality",
            "CBS code",
        ),
        (
            "municipality empty",
            change(|r| r.residence_municipality = String::new()),
            "residence_municipality",
            "CBS code",
        ),
        (
            "school shape",
            change(|r| r.school = "AB1234".into()),
            "school",
            "BRIN",
        ),
        (
            "school lower case",
            change(|r| r.school = "20xy01".into()),
            "school",
            "BRIN",
        ),
        (
            "school too long",
            change(|r| r.school = "20XY011".into()),
            "school",
            "BRIN",
        ),
        (
            "school empty for LRV",
            change(|r| r.school = String::new()),
            "school",
            "only an AV",
        ),
        (
            "category unspecified",
            change(|r| r.category = 0),
            "category",
            "not set",
        ),
        (
            "category unknown",
            change(|r| r.category = 99),
            "category",
            "99 is not a known category",
        ),
        (
            "sector unspecified",
            change(|r| r.sector = 0),
            "sector",
            "not set",
        ),
        (
            "sector unknown",
            change(|r| r.sector = 42),
            "sector",
            "42 is not a known sector",
        ),
        (
            "status unspecified",
            change(|r| r.status = 0),
            "status",
            "not set",
        ),
        (
            "status unknown",
            change(|r| r.status = 17),
            "status",
            "17 is not a known status",
        ),
        (
            "AANBOD without offer_date",
            change(|r| r.status = pb::Status::Aanbod as i32),
            "offer_date",
            "required",
        ),
        (
            "OPEN with offer_date",
            change(|r| r.offer_date = date_from_today(-1)),
            "offer_date",
            "status is OPEN",
        ),
        (
            "offer before absence",
            change(move |r| {
                r.status = pb::Status::Aanbod as i32;
                r.offer_date = long_ago.clone();
            }),
            "offer_date",
            "before absent_since",
        ),
        (
            "offer in the future",
            change(move |r| {
                r.status = pb::Status::Teruggeleid as i32;
                r.offer_date = tomorrow.clone();
            }),
            "offer_date",
            "in the future",
        ),
        (
            "offer not a date",
            change(|r| {
                r.status = pb::Status::Aanbod as i32;
                r.offer_date = "2026-02-30".into();
            }),
            "offer_date",
            "not a date",
        ),
        ("age 2", change(|r| r.age = 2), "age", "outside 3-23"),
        ("age 24", change(|r| r.age = 24), "age", "outside 3-23"),
        ("age 0", change(|r| r.age = 0), "age", "outside 3-23"),
        (
            "record id holds the BSN",
            change(|r| r.source_record_id = format!("dossier-{}", r.pupil_id)),
            "source_record_id",
            "could be a BSN",
        ),
        (
            "record id holds the BSN with dots",
            change(|r| {
                let p = &r.pupil_id;
                r.source_record_id = format!("x{}.{}.{}", &p[..3], &p[3..6], &p[6..]);
            }),
            "source_record_id",
            "could be a BSN",
        ),
        (
            "record id holds the BSN between letters",
            change(|r| {
                let p = &r.pupil_id;
                r.source_record_id = format!("x{}a{}b{}", &p[..3], &p[3..6], &p[6..]);
            }),
            "source_record_id",
            "contains the digits of the pupil_id",
        ),
        (
            "record id empty",
            change(|r| r.source_record_id = String::new()),
            "source_record_id",
            "empty",
        ),
        (
            "record id too long",
            change(|r| r.source_record_id = "x".repeat(129)),
            "source_record_id",
            "longer than 128",
        ),
        (
            "record id with a space",
            change(|r| r.source_record_id = "a b".into()),
            "source_record_id",
            "printable ASCII",
        ),
    ];
    // Good records that sit on the edges of the rules.
    let goods: Vec<Change> = vec![
        change(|_| {}),
        change(|r| r.age = 3),
        change(|r| r.age = 23),
        change(|r| r.absent_since = date_from_today(0)),
        change(|r| {
            r.category = pb::Category::Av as i32;
            r.school = String::new();
        }),
        change(|r| {
            r.status = pb::Status::Teruggeleid as i32;
            r.offer_date = r.absent_since.clone();
        }),
        change(|r| r.status = pb::Status::Gesloten as i32),
        change(|r| r.pupil_id = format!(" {} ", r.pupil_id)),
        change(|r| r.source_record_id = "x".repeat(128)),
    ];

    // Interleave: good, bad, good, bad, ...
    let mut stream = Vec::new();
    let mut expected_bad = Vec::new(); // (index, field, words, name, bsn)
    let mut expected_good = Vec::new();
    let mut goods = goods.into_iter();
    for (i, (name, bad, field, words)) in cases.iter().enumerate() {
        if let Some(g) = goods.next() {
            let mut r = good_record(&format!("good-{i}"), &bsns.next_bsn());
            g(&mut r);
            expected_good.push(r.source_record_id.clone());
            stream.push(r);
        }
        let bsn = bsns.next_bsn();
        let mut r = good_record(&format!("bad-{i}"), &bsn);
        bad(&mut r);
        expected_bad.push((stream.len(), *field, *words, *name, bsn));
        stream.push(r);
    }
    let report = push(&mut client, stream).await.expect("push");

    let mut refused = report.rejected.clone();
    refused.sort_by_key(|r| r.index);
    let got: Vec<(u32, &str)> = refused
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    let want: Vec<(u32, &str)> = expected_bad
        .iter()
        .map(|(i, f, ..)| (*i as u32, *f))
        .collect();
    assert_eq!(got, want, "refused (index, field)");
    for (r, (index, field, words, name, bsn)) in refused.iter().zip(&expected_bad) {
        let prefix = format!("record {index}: {field} ");
        assert!(
            r.reason.starts_with(&prefix),
            "{name}: {:?} should start with {prefix:?}",
            r.reason
        );
        assert!(
            r.reason.contains(words),
            "{name}: {:?} should say {words:?}",
            r.reason
        );
        assert!(
            r.reason.len() < 300,
            "{name}: reason too long: {:?}",
            r.reason
        );
        assert!(
            !r.reason.contains(bsn.as_str()),
            "{name}: the reason echoes the BSN: {:?}",
            r.reason
        );
    }
    assert_eq!(report.accepted as usize, expected_good.len());

    let mut stored = ids(&list_all(&mut client).await);
    stored.sort();
    expected_good.sort();
    assert_eq!(stored, expected_good, "exactly the good records are stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_record_refuses_the_whole_push() {
    let (node, mut client) = node_and_client().await;
    let mut bsns = Bsns::new(6);
    let mut records: Vec<_> = (0..5)
        .map(|i| good_record(&format!("ok-{i}"), &bsns.next_bsn()))
        .collect();
    records.push(pb::SignalRecord {
        school: "A".repeat(65 * 1024),
        ..good_record("huge", &bsns.next_bsn())
    });
    records.push(good_record("after", &bsns.next_bsn()));

    let status = push(&mut client, records)
        .await
        .expect_err("a 65 KiB record must be refused");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "code {:?}: {}",
        status.code(),
        status.message()
    );
    let message = status.message().to_lowercase();
    assert!(
        message.contains("too large") || message.contains("larger"),
        "the message should say the record is too large: {:?}",
        status.message()
    );
    assert!(
        message.contains("65536") || message.contains("64 kib"),
        "{:?}",
        status.message()
    );
    assert!(
        list_all(&mut client).await.is_empty(),
        "part of a refused push was stored"
    );

    // The node is fine afterwards, and a record just under the limit is judged on its fields.
    let mut client = node.intake().await;
    let near = pb::SignalRecord {
        school: "A".repeat(60 * 1024),
        ..good_record("near", &bsns.next_bsn())
    };
    let report = push(
        &mut client,
        vec![near, good_record("fine", &bsns.next_bsn())],
    )
    .await
    .expect("a push under the limit");
    assert_eq!(report.accepted, 1);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].field, "school");
    assert!(
        report.rejected[0].reason.len() < 300,
        "an error echoes a large value"
    );
    assert_eq!(ids(&list_all(&mut client).await), ["fine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_message_without_a_record_is_refused_by_index_and_the_others_are_stored() {
    let (_node, mut client) = node_and_client().await;
    let mut bsns = Bsns::new(61);
    let messages = vec![
        pb::PushRequest::from(good_record("first", &bsns.next_bsn())),
        pb::PushRequest { record: None },
        pb::PushRequest::from(good_record("third", &bsns.next_bsn())),
    ];
    let report = client
        .push(tokio_stream::iter(messages))
        .await
        .expect("a push with an empty message")
        .into_inner();
    assert_eq!(report.accepted, 2);
    assert_eq!(report.rejected_count, 1);
    assert_eq!(report.rejected[0].index, 1, "{:?}", report.rejected);
    assert!(
        !report.rejected[0].field.is_empty(),
        "{:?}",
        report.rejected
    );
    assert_eq!(ids(&list_all(&mut client).await), ["first", "third"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_more_than_the_maximum_records_keeps_the_first_and_refuses_the_rest() {
    // The shipped policy gives the SWV VO 50,000 pseudonyms a day; this push needs twice that.
    let policy = tempfile::NamedTempFile::new().unwrap();
    let shipped = std::fs::read_to_string(policy_path()).unwrap();
    let generous = shipped.replacen(
        "pseudonyms_per_day = 50000",
        "pseudonyms_per_day = 250000",
        1,
    );
    assert_ne!(
        generous, shipped,
        "the shipped policy sets the SWV VO's quota"
    );
    std::fs::write(policy.path(), generous).unwrap();
    let service = tokio::task::spawn_blocking({
        let path = policy.path().to_owned();
        move || TestPseudonymiser::start_with(&path, test_key_ring())
    })
    .await
    .unwrap();
    let node = TestNode::start_with_pseudonymiser(
        "swv-vo",
        NodeOptions::default(),
        service.config.clone(),
    )
    .await;
    let mut client = node.intake().await;
    let bsn = Bsns::new(7).next_bsn();
    // Small, valid records; only the count is wrong.
    let template = good_record("r", &bsn);
    let records = (0..=MAX_RECORDS_PER_PUSH).map(move |i| {
        pb::PushRequest::from(pb::SignalRecord {
            source_record_id: format!("r{i}"),
            ..template.clone()
        })
    });
    let status = client
        .push(tokio_stream::iter(records))
        .await
        .expect_err("too many records");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // A push is stored in durable batches as it streams in: the records within the limit are
    // stored, the one beyond it is not read, and the refusal says so.
    assert!(
        status
            .message()
            .contains(&format!("({MAX_RECORDS_PER_PUSH} stored, 0 refused)"))
            && status.message().contains("the rest was not read"),
        "{:?}",
        status.message()
    );
    let mut client = node.intake().await;
    let all = list(
        &mut client,
        pb::ListRequest {
            pupil_pseudonym: pseudonym_of(&bsn),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), MAX_RECORDS_PER_PUSH);
    assert!(
        !all.iter()
            .any(|v| v.source_record_id == format!("r{MAX_RECORDS_PER_PUSH}")),
        "the record beyond the limit was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_says_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let node = TestNode::start("swv-vo").await;
    let mut health = HealthClient::new(node.channel_as("swv-vo").await);
    for service in ["", "pactgate.v1.SignalIntakeService"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "pactgate.v1.Nothing".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_as_grpcurl_sees_them() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let node = TestNode::start("swv-vo").await;
    let mut reflection = ServerReflectionClient::new(node.channel_as("swv-vo").await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "pactgate.v1.SignalIntakeService".into(),
            )),
        },
    ];
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();

    let first = answers.message().await.unwrap().expect("a list answer");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("expected a service list, got {:?}", first.message_response);
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for wanted in ["pactgate.v1.SignalIntakeService", "grpc.health.v1.Health"] {
        assert!(names.contains(&wanted), "{wanted} not in {names:?}");
    }

    let second = answers.message().await.unwrap().expect("a file answer");
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!(
            "expected file descriptors, got {:?}",
            second.message_response
        );
    };
    let all: Vec<u8> = files.file_descriptor_proto.concat();
    for word in [
        "signals.proto",
        "SignalIntakeService",
        "SignalRecord",
        "PushRequest",
        "PushResponse",
    ] {
        assert!(
            contains_bytes(&all, word.as_bytes()),
            "{word} missing from the descriptor"
        );
    }

    // Older grpcurl versions ask v1alpha.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let mut alpha = Alpha::new(node.channel_as("swv-vo").await);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let mut answers = alpha
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(AlphaResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list");
    };
    assert!(list
        .service
        .iter()
        .any(|s| s.name == "pactgate.v1.SignalIntakeService"));
}

/// A copy of the shipped counting rules with `min_absent_since` set to `floor`.
fn counting_with_floor(floor: &str) -> tempfile::NamedTempFile {
    let shipped = std::fs::read_to_string(counting_path()).expect("counting rules");
    let without: String = shipped
        .lines()
        .filter(|l| !l.trim_start().starts_with("min_absent_since"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = without.replacen(
        "[counting]\n",
        &format!("[counting]\nmin_absent_since = \"{floor}\"\n"),
        1,
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// Issue 9, finding 8: an `absent_since` far in the past (year 0, 1900) is refused, naming the
/// record and the field; the floor is the counting rules' `min_absent_since`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_since_before_the_floor_is_refused_naming_record_and_field() {
    let bsn = Bsns::new(41).next_bsn();
    let dated = |id: &str, day: &str| pb::SignalRecord {
        absent_since: day.into(),
        ..good_record(id, &bsn)
    };

    // Without counting rules the node's own floor holds.
    let (_node, mut client) = node_and_client().await;
    let report = push(
        &mut client,
        vec![
            dated("year-0", "0000-01-01"),
            dated("year-1900", "1900-01-01"),
            dated("recent", &date_from_today(-400)),
        ],
    )
    .await
    .expect("push");
    assert_eq!(report.accepted, 1, "{:?}", report.rejected);
    for (index, r) in report.rejected.iter().enumerate() {
        assert_eq!(r.index as usize, index);
        assert_eq!(r.field, "absent_since", "{r:?}");
        assert!(
            r.reason.contains(&format!("record {index}")) && r.reason.contains("before"),
            "{r:?}"
        );
    }

    // With counting rules, theirs.
    let rules = counting_with_floor("2020-08-01");
    let node = TestNode::start_tuned(
        "swv-vo",
        NodeOptions::default(),
        NodeTuning {
            counting: Some(rules.path().to_path_buf()),
            ..NodeTuning::default()
        },
    )
    .await;
    let mut client = node.intake().await;
    let report = push(
        &mut client,
        vec![
            dated("before", "2020-07-31"),
            dated("on-the-floor", "2020-08-01"),
            dated("future", &date_from_today(1)),
        ],
    )
    .await
    .expect("push");
    assert_eq!(report.accepted, 1, "{:?}", report.rejected);
    let refused: Vec<(u32, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    assert_eq!(refused, [(0, "absent_since"), (2, "absent_since")]);
    assert!(
        report.rejected[0].reason.contains("2020-08-01"),
        "the refusal names the floor: {:?}",
        report.rejected[0]
    );
    assert!(report.rejected[1].reason.contains("future"));
}

/// Issue 9, finding 8: a push whose refusals would make a report over gRPC's 4 MiB gets a small
/// report (the count and the first refusals), and its good records are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_with_a_hundred_thousand_refusals_gets_a_small_report() {
    let (_node, mut client) = node_and_client().await;
    let bsn = Bsns::new(42).next_bsn();
    let mut records = vec![good_record("good-0", &bsn), good_record("good-1", &bsn)];
    records.extend((0..MAX_RECORDS_PER_PUSH - 2).map(|i| pb::SignalRecord {
        age: 99,
        ..good_record(&format!("bad-{i}"), &bsn)
    }));
    let report = push(&mut client, records)
        .await
        .expect("a report, not an error");
    assert_eq!(report.accepted, 2);
    assert_eq!(report.rejected_count as usize, MAX_RECORDS_PER_PUSH - 2);
    assert_eq!(
        report.rejected.len(),
        100,
        "the report lists the first 100 refusals"
    );
    let first: Vec<u32> = report.rejected.iter().map(|r| r.index).collect();
    assert_eq!(first, (2..102).collect::<Vec<u32>>());
    assert!(report.rejected.iter().all(|r| r.field == "age"));
    assert_eq!(list_all(&mut client).await.len(), 2);
}
