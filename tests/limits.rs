//! Limits on everything a caller controls (issue 9, findings 3 and 5): a caller that is no party
//! is refused before any handler and its refusals are counted, not logged one by one; half-sent
//! requests, idle sockets, oversized requests, too many connections or pushes cost the node
//! little; a push is stored in durable batches as it streams in.

mod common;

use common::*;
use pactgate::limits::Limits;
use pactgate::pb;
use pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use std::time::{Duration, Instant};
use tonic::Code;

/// A channel as `party` over one TCP connection whose other handle the test keeps, to cut it.
async fn cuttable_channel(
    addr: std::net::SocketAddr,
    party: &str,
) -> (tonic::transport::Channel, std::net::TcpStream) {
    let (endpoint, config) =
        pactgate::client::channel(&addr.to_string(), &material(party), None).expect("config");
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    let cut = tcp.try_clone().expect("clone");
    tcp.set_nonblocking(true).unwrap();
    let one = std::sync::Arc::new(std::sync::Mutex::new(Some(tcp)));
    let connector = tokio_rustls::TlsConnector::from(config);
    let connect = tower::service_fn(move |uri: tonic::transport::Uri| {
        let tcp = one.lock().unwrap().take();
        let connector = connector.clone();
        async move {
            let tcp = tcp.ok_or_else(|| std::io::Error::other("the one connection is used"))?;
            let tcp = tokio::net::TcpStream::from_std(tcp)?;
            let host = uri.host().unwrap_or("127.0.0.1").to_owned();
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = endpoint
        .connect_with_connector(connect)
        .await
        .expect("channel");
    (channel, cut)
}

fn assert_not_a_party(status: &tonic::Status, what: &str) {
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    assert!(
        status.message().contains("not a party of the covenant")
            && status.message().contains("Stichting Onbekend"),
        "{what}: {:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_party_is_refused_before_any_handler_and_its_refusals_are_counted() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let node = TestNode::start("swv-vo").await;
    let channel = channel_with(node.addr(), &stranger_cert())
        .await
        .expect("the covenant CA signed the stranger's certificate");
    // The health check stays open to every verified client.
    let health = HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let mut intake = SignalIntakeServiceClient::new(channel.clone());
    let status = list(&mut intake, pb::ListRequest::default())
        .await
        .expect_err("List by a stranger");
    assert_not_a_party(&status, "List");
    let status = query(
        &mut pactgate::pb::exchange_service_client::ExchangeServiceClient::new(channel.clone()),
        verzuimmelding_claim(),
    )
    .await
    .expect_err("Query by a stranger");
    assert_not_a_party(&status, "Query");
    let status = pactgate::pb::counts_service_client::CountsServiceClient::new(channel.clone())
        .counts(pb::CountsRequest {
            claim: Some(verzuimmelding_claim()),
            at: vec!["2026-11-01".into()],
            rule: "g4".into(),
        })
        .await
        .expect_err("Counts by a stranger");
    assert_not_a_party(&status, "Counts");
    for i in 0..297 {
        let status = list(&mut intake, pb::ListRequest::default())
            .await
            .expect_err("List by a stranger");
        assert_eq!(status.code(), Code::PermissionDenied, "call {i}");
    }

    let dir = node.stop().await;
    let entries = stored_entries(&dir.path().join("data"), "swv-vo");
    let stranger: Vec<_> = entries
        .iter()
        .filter(|e| e.actor_oin == STRANGER_OIN)
        .collect();
    let counted: u64 = stranger.iter().map(|e| e.count).sum();
    assert_eq!(counted, 300, "every refusal counted: {stranger:#?}");
    assert!(
        !stranger.is_empty() && stranger.len() <= 2,
        "one entry per caller per window, not one per refusal: {} entries",
        stranger.len()
    );
    for e in &stranger {
        assert_eq!(e.decision, pactgate::audit::Decision::Deny);
        assert!(e.pupils.is_empty());
        assert!(
            e.reason.contains("no party of the covenant"),
            "{}",
            e.reason
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_with_20000_reference_dates_are_refused_naming_the_field() {
    let node = TestNode::start_tuned(
        "swv-vo",
        NodeOptions::default(),
        NodeTuning::fast_audit_with_counting(),
    )
    .await;
    push_all(
        &node,
        Bsns::new(91)
            .take(50)
            .iter()
            .enumerate()
            .map(|(i, bsn)| good_record(&format!("r-{i}"), bsn))
            .collect(),
    )
    .await;
    let dates: Vec<String> = (0..20_000).map(|d| date_from_today(-d)).collect();
    let mut counts = node.counts_as("leerplicht").await;
    let started = Instant::now();
    let asked = counts.counts(pb::CountsRequest {
        claim: Some(verzuimmelding_claim()),
        at: dates.clone(),
        rule: "g4".into(),
    });
    let status = tokio::time::timeout(Duration::from_secs(20), asked)
        .await
        .expect("answered at once, not after computing")
        .expect_err("20,000 dates");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("at: 20000 items"),
        "{:?}",
        status.message()
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The node's own Report refuses them likewise.
    let mut clock = node.clock_as("swv-vo").await;
    let report = clock.report(pb::ReportRequest {
        at: dates,
        rule: "g4".into(),
        ..Default::default()
    });
    let status = tokio::time::timeout(Duration::from_secs(20), report)
        .await
        .expect("answered at once")
        .expect_err("20,000 dates");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("at: "), "{status:?}");
}

#[test]
fn three_hundred_idle_sockets_do_not_lock_out_a_client() {
    // The node may open 256 descriptors, as in the finding.
    let node = ProcessNode::start_with_limits("swv-vo", &[], Some(256));
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|i| {
            std::net::TcpStream::connect(node.addr).unwrap_or_else(|e| panic!("socket {i}: {e}"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let listed = tokio::time::timeout(Duration::from_secs(5), async {
            let mut client = node.intake().await;
            list(&mut client, pb::ListRequest::default()).await
        })
        .await
        .expect("a legitimate client got in within 5 s")
        .expect("List");
        assert!(listed.is_empty());
        eprintln!(
            "legitimate List after 300 idle sockets: {:?}",
            started.elapsed()
        );
    });
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_of_a_non_party_are_refused_and_do_not_slow_the_own_list() {
    let node = TestNode::start("swv-vo").await;
    push_all(
        &node,
        Bsns::new(92)
            .take(200)
            .iter()
            .enumerate()
            .map(|(i, bsn)| good_record(&format!("r-{i}"), bsn))
            .collect(),
    )
    .await;
    let mut own = node.intake().await;
    let timed_lists = |n: usize| {
        let mut client = own.clone();
        async move {
            let mut took = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                list(&mut client, pb::ListRequest::default())
                    .await
                    .expect("own List");
                took.push(started.elapsed());
            }
            took.sort();
            took[took.len() / 2]
        }
    };
    let baseline = timed_lists(20).await;

    let mut held = Vec::new();
    for _ in 0..5 {
        let channel = channel_with(node.addr(), &stranger_cert())
            .await
            .expect("stranger connects");
        for _ in 0..100 {
            let channel = channel.clone();
            held.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), half_sent_list(channel)).await
            }));
        }
    }
    let during = timed_lists(20).await;
    let mut refused_by_node = 0;
    for (i, h) in held.into_iter().enumerate() {
        let status = h
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("half-sent request {i} still pending after 10 s"))
            .expect_err("a stranger's request");
        // Refused by the node, or by HTTP/2 itself (REFUSED_STREAM beyond the streams a
        // connection may open): never left pending.
        assert!(
            matches!(status.code(), Code::PermissionDenied | Code::Unavailable),
            "request {i}: {status:?}"
        );
        refused_by_node += usize::from(status.code() == Code::PermissionDenied);
    }
    assert!(
        refused_by_node >= 100,
        "{refused_by_node} refused by the node"
    );
    let bound = (baseline * 10).max(Duration::from_millis(100));
    assert!(
        during <= bound,
        "own List p50 {during:?} with 500 half-sent requests against {baseline:?} before"
    );
    assert_eq!(list_all(&mut own).await.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_gets_at_most_its_connections() {
    let limits = Limits {
        max_connections_per_org: 2,
        ..Limits::default()
    };
    let node = TestNode::start_limited("swv-vo", NodeTuning::default(), limits).await;
    let mut first = node.intake().await;
    let mut second = node.intake().await;
    list(&mut first, pb::ListRequest::default()).await.unwrap();
    list(&mut second, pb::ListRequest::default()).await.unwrap();
    // A third connection is closed after its handshake: its request fails.
    let third = match channel_with(node.addr(), &material("swv-vo")).await {
        Ok(channel) => list(
            &mut SignalIntakeServiceClient::new(channel),
            pb::ListRequest::default(),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(third.is_err(), "a third connection of swv-vo was served");
    // Another organisation is not affected.
    let mut other = node.exchange_as("leerplicht").await;
    query(&mut other, verzuimmelding_claim())
        .await
        .expect("leerplicht has connections of its own");
    // A closed connection gives its place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = match channel_with(node.addr(), &material("swv-vo")).await {
            Ok(channel) => {
                list(
                    &mut SignalIntakeServiceClient::new(channel),
                    pb::ListRequest::default(),
                )
                .await
            }
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
        if again.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_beyond_the_limit_are_refused_while_others_run() {
    let limits = Limits {
        max_pushes: 1,
        ..Limits::default()
    };
    let node = TestNode::start_limited("swv-vo", NodeTuning::default(), limits).await;
    let mut idle = node.intake().await;
    let holder = tokio::spawn(async move {
        idle.push(futures::stream::pending::<pb::PushRequest>())
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut client = node.intake().await;
    let bsn = Bsns::new(93).next_bsn();
    let status = push(&mut client, vec![good_record("second", &bsn)])
        .await
        .expect_err("a second push at once");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    holder.abort();
    let _ = holder.await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while push(&mut client, vec![good_record("second", &bsn)])
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the push place never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_push_keeps_its_durable_batches_and_pushing_again_is_idempotent() {
    let node = TestNode::start("swv-vo").await;
    let records: Vec<pb::SignalRecord> = Bsns::new(94)
        .take(2_500)
        .iter()
        .enumerate()
        .map(|(i, bsn)| good_record(&format!("batch-{i}"), bsn))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (channel, cut) = cuttable_channel(node.addr(), "swv-vo").await;
    let mut pushing = SignalIntakeServiceClient::new(channel);
    let push_task = tokio::spawn(async move {
        pushing
            .push(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(|_| ())
    });
    for r in records.iter().cloned() {
        tx.send(r.into()).await.expect("the push is open");
    }
    // The stream stays open: two batches of 1,000 are durable before the push ends.
    let mut own = node.intake().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while list_all(&mut own).await.len() < 2_000 {
        assert!(
            Instant::now() < deadline,
            "no batch stored while the push streams"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection breaks: the open batch is lost, the committed ones stay.
    cut.shutdown(std::net::Shutdown::Both).expect("cut");
    let broken = push_task.await.unwrap();
    assert!(broken.is_err(), "the push was not broken off");
    drop(tx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list_all(&mut own).await.len(), 2_000);
    // Pushing all again stores each record once.
    let report = push(&mut own, records).await.expect("push again");
    assert_eq!(report.accepted, 2_500);
    assert_eq!(list_all(&mut own).await.len(), 2_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_with_thousands_of_categories_is_refused_naming_the_field() {
    let node = TestNode::start("swv-vo").await;
    let mut exchange = node.exchange_as("leerplicht").await;
    let filter = pb::QueryFilter {
        categories: vec![pb::Category::Lrv as i32; 10_000],
        ..Default::default()
    };
    let status = query_filtered(&mut exchange, verzuimmelding_claim(), filter)
        .await
        .expect_err("10,000 categories");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("filter.categories: 10000 items"),
        "{:?}",
        status.message()
    );
    // Malformed requests name no pupil: counted per caller, not logged one by one.
    for _ in 0..49 {
        let filter = pb::QueryFilter {
            categories: vec![pb::Category::Lrv as i32; 100],
            ..Default::default()
        };
        query_filtered(&mut exchange, verzuimmelding_claim(), filter)
            .await
            .expect_err("100 categories");
    }
    let dir = node.stop().await;
    let entries = stored_entries(&dir.path().join("data"), "swv-vo");
    let refusals: Vec<_> = entries
        .iter()
        .filter(|e| e.actor_oin == oin("leerplicht"))
        .collect();
    assert!(
        refusals.len() <= 2,
        "one entry per caller per window: {refusals:#?}"
    );
    assert_eq!(refusals.iter().map(|e| e.count).sum::<u64>(), 50);
    assert!(refusals
        .iter()
        .all(|e| e.reason.contains("malformed or oversized request")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_and_an_idle_push_end_at_their_deadlines() {
    let limits = Limits {
        request_timeout_secs: 1,
        push_idle_secs: 1,
        ..Limits::default()
    };
    let node = TestNode::start_limited("swv-vo", NodeTuning::default(), limits).await;
    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        half_sent_list(node.channel_as("swv-vo").await),
    )
    .await
    .expect("the half-sent request ended")
    .expect_err("a half-sent request");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut idle = node.intake().await;
    let bsn = Bsns::new(96).next_bsn();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(good_record("before-the-pause", &bsn).into())
        .await
        .unwrap();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        idle.push(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await
    .expect("the idle push ended")
    .expect_err("an idle push");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("no record for 1 s"), "{status:?}");
    drop(tx);
}
