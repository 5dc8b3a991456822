//! Memory of a real node under the largest pushes (issue 9, finding 3): the `pactgate serve`
//! binary of this build on a fresh data dir, three concurrent Push streams of 100,000 records
//! each as the node's own party, the node's resident size (VmRSS, VmHWM from /proc) before,
//! at its peak, and some time after. The bare figure is the idle node; the full path is the peak.
//!
//! `MEMORY_BENCH_PUSHES`, `MEMORY_BENCH_RECORDS` and `MEMORY_BENCH_SETTLE_SECS` change the
//! workload (defaults 3, 100,000 and 30); `MEMORY_BENCH_CACHE_MIB` sets the node's
//! `[limits] store_cache_mib` (default: the node's default). The node inherits the environment;
//! it runs on jemalloc, so glibc's `MALLOC_ARENA_MAX` changes nothing. `MEMORY_BENCH_PROBE`, a
//! shell command, runs on the idle and on the settled node of each phase (`$PROBE_AT`), with its
//! pid in `$NODE_PID`.

mod common;

use anyhow::Context as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTY: &str = "swv-vo";
/// The targets of the issue.
const PEAK_TARGET_MB: f64 = 200.0;
const SETTLE_TARGET_RATIO: f64 = 1.5;

/// A kB field (VmRSS, VmHWM) of /proc/PID/status.
fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    line.split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()
        .context("not a number")
}

/// The node's open TCP sockets and its threads, from /proc: what it still holds for clients
/// and for its blocking pool.
fn sockets_and_threads(pid: u32) -> (usize, u64) {
    let sockets = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count()
    });
    (sockets, status_kb(pid, "Threads:").unwrap_or(0))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// `pactgate serve` as a child; killed when dropped.
struct Node {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(
    dir: &Path,
    cache_mib: Option<usize>,
    service: &pactgate::pseudonymiser::ServiceConfig,
) -> anyhow::Result<Node> {
    let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs-dev");
    // The node refuses a TLS key others can read; a fresh clone checks the dev keys out 0644.
    let key = dir.join(format!("{PARTY}-tls.key"));
    if !key.exists() {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)?;
        file.write_all(&std::fs::read(certs.join(format!("{PARTY}.key")))?)?;
    }
    let config = dir.join("node.toml");
    let limits = cache_mib.map_or(String::new(), |mib| format!("store_cache_mib = {mib}\n"));
    std::fs::write(&config, format!("[limits]\n{limits}"))?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pactgate"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--cert")
        .arg(certs.join(format!("{PARTY}.pem")))
        .arg("--key")
        .arg(&key)
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--pseudonymiser")
        .arg(&service.address)
        .arg("--pseudonymiser-oin")
        .arg(&service.oin)
        .args(
            service
                .public_keys
                .iter()
                .flat_map(|k| ["--pseudonymiser-public-key".to_owned(), k.to_string()]),
        )
        .env("PACTGATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn pactgate serve")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .context("pactgate serve ended before listening")??;
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.parse()?;
        }
    };
    // Keep reading stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Node { child, addr })
}

/// Samples VmRSS every 20 ms until stopped; the highest value seen.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> (std::thread::JoinHandle<()>, Arc<AtomicU64>) {
    let peak = Arc::new(AtomicU64::new(0));
    let seen = peak.clone();
    let sampler = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(kb) = status_kb(pid, "VmRSS:") {
                seen.fetch_max(kb, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (sampler, peak)
}

async fn push_all(
    addr: std::net::SocketAddr,
    pushes: usize,
    records: usize,
) -> anyhow::Result<u64> {
    let tls = pactgate::demo::dev_certs::material(PARTY).context("dev certificate")?;
    let mut tasks = Vec::new();
    for p in 0..pushes {
        let mut client = common::intake_client(addr, &tls).await?;
        let stream = common::push_records(PARTY, 1, records, &format!("m{p}"), 90 + p as u64)
            .pop()
            .unwrap_or_default();
        tasks.push(tokio::spawn(async move {
            client
                .push(tokio_stream::iter(
                    stream.into_iter().map(pactgate::pb::PushRequest::from),
                ))
                .await
                .map(|r| {
                    let report = r.into_inner();
                    if let Some(first) = report.rejected.first() {
                        eprintln!(
                            "{} refused, the first: record {} {}: {}",
                            report.rejected_count, first.index, first.field, first.reason
                        );
                    }
                    u64::from(report.accepted)
                })
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await??;
    }
    Ok(accepted)
}

/// Runs `MEMORY_BENCH_PROBE` (a shell command, `$NODE_PID` the node's pid, `$PROBE_AT` `idle`
/// or `settled`), if set, after the node's idle and its settled size are read: e.g. a heap
/// profiler attached to the idle node, or a debugger on the settled one.
fn probe(pid: u32, at: &str) -> anyhow::Result<()> {
    let Ok(command) = std::env::var("MEMORY_BENCH_PROBE") else {
        return Ok(());
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("NODE_PID", pid.to_string())
        .env("PROBE_AT", at)
        .status()
        .context("MEMORY_BENCH_PROBE")?;
    anyhow::ensure!(status.success(), "MEMORY_BENCH_PROBE failed: {status}");
    Ok(())
}

/// What one phase measured, in kB.
struct Phase {
    before: u64,
    /// Open sockets and threads of the idle node.
    idle: (usize, u64),
    peak: u64,
    hwm: u64,
    sampled: u64,
    at_end: u64,
    after: u64,
    /// (seconds after the pushes, VmRSS kB, open sockets, threads) during the settle time.
    timeline: Vec<(u64, u64, usize, u64)>,
    accepted: u64,
    took: Duration,
}

/// Measures the node idle, during `pushes` concurrent pushes of `records` each, and `settle` later.
fn measure(
    rt: &tokio::runtime::Runtime,
    node: &Node,
    pushes: usize,
    records: usize,
    settle: Duration,
) -> anyhow::Result<Phase> {
    let pid = node.child.id();
    std::thread::sleep(Duration::from_secs(2));
    let before = status_kb(pid, "VmRSS:")?;
    let idle = sockets_and_threads(pid);
    probe(pid, "idle")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (sampler, peak) = sample_peak(pid, stop.clone());
    let started = Instant::now();
    let accepted = rt.block_on(push_all(node.addr, pushes, records))?;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let hwm = status_kb(pid, "VmHWM:")?;
    let at_end = status_kb(pid, "VmRSS:")?;
    let sampled = peak.load(Ordering::Relaxed);
    anyhow::ensure!(
        accepted == (pushes * records) as u64,
        "only {accepted} records accepted"
    );
    let mut timeline = Vec::new();
    let settled = Instant::now();
    for at in [0u64, 2, 5, 10, 15, 20, 25, 30, 40, 60, 90, 120] {
        if at > settle.as_secs() {
            break;
        }
        std::thread::sleep(Duration::from_secs(at).saturating_sub(settled.elapsed()));
        let (sockets, threads) = sockets_and_threads(pid);
        timeline.push((at, status_kb(pid, "VmRSS:")?, sockets, threads));
    }
    std::thread::sleep(settle.saturating_sub(settled.elapsed()));
    let after = status_kb(pid, "VmRSS:")?;
    probe(pid, "settled")?;
    Ok(Phase {
        before,
        idle,
        peak: sampled.max(hwm),
        hwm,
        sampled,
        at_end,
        after,
        timeline,
        accepted,
        took,
    })
}

fn report(title: &str, p: &Phase, settle: Duration) {
    println!("{title}");
    println!(
        "  pushed {} records in {:.1} s ({:.0} records/s)",
        p.accepted,
        p.took.as_secs_f64(),
        common::per_sec(p.accepted as usize, p.took)
    );
    println!(
        "  (bare) idle node before the pushes: VmRSS {:.1} MB ({} sockets, {} threads)",
        mb(p.before),
        p.idle.0,
        p.idle.1
    );
    println!(
        "  (full) peak during the pushes:      {:.1} MB (VmHWM {:.1} MB, sampled VmRSS max {:.1} MB)",
        mb(p.peak),
        mb(p.hwm),
        mb(p.sampled)
    );
    println!(
        "  right after the pushes:             VmRSS {:.1} MB",
        mb(p.at_end)
    );
    println!(
        "  {settle:?} later:                       VmRSS {:.1} MB",
        mb(p.after)
    );
    let timeline: Vec<String> = p
        .timeline
        .iter()
        .map(|(at, kb, sockets, threads)| {
            format!(
                "{at} s {:.1} MB ({sockets} sockets, {threads} threads)",
                mb(*kb)
            )
        })
        .collect();
    println!("  after the pushes: {}", timeline.join("; "));
    println!(
        "  ratio peak / idle: {:.2}; ratio settled / idle: {:.2}",
        p.peak as f64 / p.before as f64,
        p.after as f64 / p.before as f64
    );
    println!(
        "  target: peak under {PEAK_TARGET_MB} MB: {}",
        common::target(mb(p.peak) < PEAK_TARGET_MB)
    );
    println!(
        "  target: {settle:?} later within {SETTLE_TARGET_RATIO}x the idle size: {}",
        common::target(p.after as f64 <= p.before as f64 * SETTLE_TARGET_RATIO)
    );
}

fn main() -> anyhow::Result<()> {
    common::print_header("memory", true);
    let pushes = common::env_count("MEMORY_BENCH_PUSHES", 3)?;
    let records = common::env_count("MEMORY_BENCH_RECORDS", 100_000)?;
    let settle = Duration::from_secs(common::env_count("MEMORY_BENCH_SETTLE_SECS", 30)? as u64);
    let cache_mib = std::env::var("MEMORY_BENCH_CACHE_MIB")
        .ok()
        .map(|v| v.parse::<usize>())
        .transpose()
        .context("MEMORY_BENCH_CACHE_MIB is not a count")?;
    println!(
        "workload: {pushes} concurrent Push streams of {records} records into `pactgate serve` ({PARTY}), then {settle:?} idle; (1) on a fresh data dir, (2) the same records again into the node restarted on that data dir"
    );
    println!(
        "node: store_cache_mib {}, MALLOC_ARENA_MAX {}",
        cache_mib.map_or_else(
            || format!(
                "default ({})",
                pactgate::limits::Limits::default().store_cache_mib
            ),
            |m| m.to_string()
        ),
        std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "unset".to_owned())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    // The pseudonymisation service runs in this process, so the node's figures are its own.
    let (service, config) = rt.block_on(common::start_pseudonymiser(
        &dir.path().join("pseudonymiser"),
        &common::bench_key(9),
    ))?;
    let fresh = {
        let node = start_node(dir.path(), cache_mib, &config)?;
        measure(&rt, &node, pushes, records, settle)?
    };
    report("(1) fresh node, empty store:", &fresh, settle);
    let holding = {
        let node = start_node(dir.path(), cache_mib, &config)?;
        measure(&rt, &node, pushes, records, settle)?
    };
    report(
        "(2) restarted node holding those records, the same pushes again (idempotent):",
        &holding,
        settle,
    );
    rt.block_on(service.stop())?;
    println!("load average after: {}", common::loadavg());
    Ok(())
}
