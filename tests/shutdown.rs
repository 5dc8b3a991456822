//! Shutdown with a deadline (issue 9, finding 4): on SIGTERM the real `pactgate serve` process
//! stops accepting, lets requests in flight finish for its grace period, closes the rest, flushes
//! and exits 0, however long clients hold idle streams or half-sent requests open.

mod common;

use common::*;
use pactgate::pb;
use std::time::{Duration, Instant};

/// Opens, as the node's own organisation, an idle Push stream and `n` half-sent unary requests
/// on other connections, and keeps them open on `rt` until the node goes away.
fn hold_open(rt: &tokio::runtime::Runtime, node: &ProcessNode, n: usize) {
    rt.block_on(async {
        let mut idle = node.intake().await;
        tokio::spawn(async move {
            let _ = idle
                .push(futures::stream::pending::<pb::PushRequest>())
                .await;
        });
        for _ in 0..n {
            let channel = channel_with(node.addr, &material(&node.party))
                .await
                .expect("connect");
            tokio::spawn(half_sent_list(channel));
        }
        // Let the node see every request before the signal.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sigterm_with_an_idle_push_and_half_sent_requests_exits_0_within_the_default_grace() {
    let mut node = ProcessNode::start("swv-vo");
    let rt = runtime();
    hold_open(&rt, &node, 5);
    let started = Instant::now();
    let status = node.terminate();
    let took = started.elapsed();
    assert!(
        status.success(),
        "exit {status:?}; stderr:\n{}",
        String::from_utf8_lossy(&node.stderr_log())
    );
    // The default grace is 10 s; a little more for closing and flushing.
    assert!(took < Duration::from_secs(14), "stopped after {took:?}");
}

#[test]
fn a_push_in_flight_finishes_within_the_grace_and_the_rest_is_closed_at_its_end() {
    let node = ProcessNode::start_with_limits("swv-vo", &["--shutdown-grace-secs", "3"], None);
    let rt = runtime();
    let records: Vec<pb::SignalRecord> = Bsns::new(95)
        .take(20)
        .iter()
        .enumerate()
        .map(|(i, bsn)| good_record(&format!("late-{i}"), bsn))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(32);
    let mut client = rt.block_on(node.intake());
    let pushing = rt.spawn(async move {
        client
            .push(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner)
    });
    hold_open(&rt, &node, 3);
    rt.block_on(async {
        for r in &records[..10] {
            tx.send(r.clone().into()).await.unwrap();
        }
    });
    let started = Instant::now();
    let stopper = std::thread::spawn(move || {
        let mut node = node;
        let status = node.terminate();
        (status, node)
    });
    // The push in flight goes on after the signal and ends within the grace.
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for r in &records[10..] {
            tx.send(r.clone().into()).await.unwrap();
        }
        drop(tx);
    });
    let report = rt
        .block_on(pushing)
        .unwrap()
        .expect("the push in flight finished within the grace");
    assert_eq!(report.accepted, 20);
    let (status, mut node) = stopper.join().unwrap();
    let took = started.elapsed();
    assert!(
        status.success(),
        "exit {status:?}; stderr:\n{}",
        String::from_utf8_lossy(&node.stderr_log())
    );
    // The idle stream and the half-sent requests held it to the end of the 3 s grace.
    assert!(
        took >= Duration::from_millis(2_500) && took < Duration::from_secs(7),
        "stopped after {took:?}"
    );
    assert!(contains_bytes(&node.stderr_log(), b"shutdown grace over"));
    // Flushed: everything acknowledged is there after a restart.
    node.restart();
    let listed = rt.block_on(async {
        let mut client = node.intake().await;
        list_all(&mut client).await
    });
    assert_eq!(listed.len(), 20);
}
