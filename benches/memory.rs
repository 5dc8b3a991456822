//! Memory of a real node under the largest pushes (issue 9, finding 3): the `pactgate serve`
//! binary of this build on a fresh data dir, three concurrent Push streams of 100,000 records
//! each as the node's own party, the node's resident size (VmRSS, VmHWM from /proc) before,
//! at its peak, and some time after. The bare figure is the idle node; the full path is the peak.
//!
//! `MEMORY_BENCH_PUSHES`, `MEMORY_BENCH_RECORDS` and `MEMORY_BENCH_SETTLE_SECS` change the
//! workload (defaults 3, 100,000 and 30).

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

fn start_node(dir: &Path) -> anyhow::Result<Node> {
    let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs-dev");
    let key = dir.join("pseudonym.key");
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)?;
        file.write_all(&common::bench_key(9))?;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_pactgate"))
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--cert")
        .arg(certs.join(format!("{PARTY}.pem")))
        .arg("--key")
        .arg(certs.join(format!("{PARTY}.key")))
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--pseudonym-key")
        .arg(&key)
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
                .push(tokio_stream::iter(stream))
                .await
                .map(|r| u64::from(r.into_inner().accepted))
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await??;
    }
    Ok(accepted)
}

fn main() -> anyhow::Result<()> {
    common::print_header("memory", true);
    let pushes = common::env_count("MEMORY_BENCH_PUSHES", 3)?;
    let records = common::env_count("MEMORY_BENCH_RECORDS", 100_000)?;
    let settle = Duration::from_secs(common::env_count("MEMORY_BENCH_SETTLE_SECS", 30)? as u64);
    println!(
        "workload: {pushes} concurrent Push streams of {records} records into a fresh `pactgate serve` ({PARTY}), then {settle:?} idle"
    );
    let dir = tempfile::tempdir()?;
    let node = start_node(dir.path())?;
    let pid = node.child.id();
    std::thread::sleep(Duration::from_secs(2));
    let before = status_kb(pid, "VmRSS:")?;

    let stop = Arc::new(AtomicBool::new(false));
    let (sampler, peak) = sample_peak(pid, stop.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let accepted = rt.block_on(push_all(node.addr, pushes, records))?;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let hwm = status_kb(pid, "VmHWM:")?;
    let at_end = status_kb(pid, "VmRSS:")?;
    let sampled = peak.load(Ordering::Relaxed);
    let peak = sampled.max(hwm);
    anyhow::ensure!(
        accepted == (pushes * records) as u64,
        "only {accepted} records accepted"
    );
    std::thread::sleep(settle);
    let after = status_kb(pid, "VmRSS:")?;

    println!(
        "pushed {accepted} records in {:.1} s ({:.0} records/s)",
        took.as_secs_f64(),
        common::per_sec(accepted as usize, took)
    );
    println!(
        "(bare) idle node before the pushes:  VmRSS {:.1} MB",
        mb(before)
    );
    println!(
        "(full) peak during the pushes:       {:.1} MB (VmHWM {:.1} MB, sampled VmRSS max {:.1} MB)",
        mb(peak),
        mb(hwm),
        mb(sampled)
    );
    println!(
        "       right after the pushes:      VmRSS {:.1} MB",
        mb(at_end)
    );
    println!(
        "       {:?} later:                VmRSS {:.1} MB",
        settle,
        mb(after)
    );
    println!("ratio peak / idle: {:.2}", peak as f64 / before as f64);
    println!("ratio settled / idle: {:.2}", after as f64 / before as f64);
    println!(
        "target: peak under {PEAK_TARGET_MB} MB: {}",
        common::target(mb(peak) < PEAK_TARGET_MB)
    );
    println!(
        "target: {settle:?} later within {SETTLE_TARGET_RATIO}x the idle size: {}",
        common::target(after as f64 <= before as f64 * SETTLE_TARGET_RATIO)
    );
    println!("load average after: {}", common::loadavg());
    drop(node);
    Ok(())
}
