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
                .push(futures::stream::pending::<pb::SignalRecord>())
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
