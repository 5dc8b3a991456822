//! `pactgate store check`, `backup` and `restore`, and the check `serve` runs before it opens the
//! store. sled can panic or abort on a damaged file, so the check opens the store in a child
//! process: whatever sled does there becomes one clear refusal that says how to recover.

use super::FgConnectArgs;
use crate::integrity::RECOVERY;
use crate::pb;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the child may take to check a store.
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check a stopped node's store against what the node acknowledged (its integrity record):
    /// every signal readable, none lost, the audit log not shorter. Exits 1 naming what is wrong.
    Check {
        /// The node's data directory (the node must be stopped).
        #[arg(long)]
        data_dir: PathBuf,
        /// Record the store's current content as acknowledged (for a data dir made before
        /// integrity records; only once you are sure it is complete).
        #[arg(long)]
        adopt: bool,
        /// Check in this process (what the child process of a check runs).
        #[arg(long, hide = true)]
        in_process: bool,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub connect: FgConnectArgs,
    /// The file to write (mode 0600; it holds the node's pseudonymised data and audit key).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A backup made by `pactgate backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// An empty or new data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// Runs a `store` subcommand.
pub fn store(args: StoreArgs) -> anyhow::Result<()> {
    let StoreCommand::Check {
        data_dir,
        adopt,
        in_process,
    } = args.command;
    if adopt {
        let record = crate::store::Store::adopt(&data_dir)?;
        eprintln!(
            "recorded {} signals and an audit log of {} entries as acknowledged",
            record.digest.signals, record.audit_entries
        );
    }
    if in_process {
        return check_in_process(&data_dir);
    }
    print!("{}", check_in_child(&data_dir)?);
    Ok(())
}

/// Opens the store (which compares it with its integrity record) and reads every signal.
fn check_in_process(data_dir: &Path) -> anyhow::Result<()> {
    let store = crate::store::Store::open(data_dir)?;
    let signals = store.read_all()?;
    let rebuilt = store.check_clock_copies()?;
    if !rebuilt.is_empty() {
        store.sync()?;
        println!(
            "store check: rebuilt the clock copies of {} signals from their JSON (first: {})",
            rebuilt.len(),
            rebuilt[..rebuilt.len().min(10)].join(", ")
        );
    }
    let audit = store.while_writes_wait(|_, len| len)?;
    println!(
        "store check: {signals} signals and an audit log of {audit} entries, as the node acknowledged"
    );
    Ok(())
}

/// Checks the store under `data_dir` in a child process of this binary; returns what the check
/// printed, or the refusal to serve, naming what is wrong and how to recover.
pub fn check_in_child(data_dir: &Path) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find this program to check the store")?;
    let mut child = Command::new(exe)
        .args(["store", "check", "--in-process", "--data-dir"])
        .arg(data_dir)
        .env("PACTGATE_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the store check")?;
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let out = std::thread::spawn(move || read_all(stdout.as_mut()));
    let err = std::thread::spawn(move || read_all(stderr.as_mut()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > CHECK_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(refusal(&format!(
                "reading the store took more than {} s (sled may loop on a damaged file)",
                CHECK_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status.code() {
        Some(0) => Ok(stdout),
        Some(1) => Err(refusal(&error_of(&stderr))),
        _ => Err(refusal(&format!(
            "sled crashed while reading the store ({status}): its files are damaged"
        ))),
    }
}

fn read_all(pipe: Option<&mut impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

/// The error a failed check printed (anyhow's `Error: ...`), without its debug trail.
fn error_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("Error: "))
        .unwrap_or("the store check failed")
        .trim()
        .to_owned()
}

fn refusal(what: &str) -> anyhow::Error {
    anyhow::anyhow!("the node refuses to serve: {what}. {RECOVERY}")
}

/// Checks the store before `serve` opens it, if there is one yet.
pub fn check_before_serving(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.join("store").exists() {
        return Ok(());
    }
    let summary = check_in_child(data_dir)?;
    tracing::info!(summary = summary.trim(), "store checked");
    Ok(())
}

/// `pactgate backup`: streams a backup from the node into a new file.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let channel = args.connect.channel().await?;
    let mut client = pb::backup_service_client::BackupServiceClient::new(channel);
    let mut stream = client
        .backup(pb::BackupRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("the node refused: {}", s.message()))?
        .into_inner();
    let tmp = args.out.with_extension("partial");
    let mut file = private_new_file(&tmp)?;
    let mut bytes = 0usize;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("the backup broke off: {}", s.message()))?
    {
        bytes += chunk.data.len();
        file.write_all(&chunk.data)?;
    }
    file.sync_all()?;
    drop(file);
    let summary = crate::backup::check(std::io::BufReader::new(std::fs::File::open(&tmp)?))
        .with_context(|| format!("the backup received in {} is incomplete", tmp.display()))?;
    std::fs::rename(&tmp, &args.out)?;
    println!(
        "wrote {} ({bytes} bytes: {} trees, {} pairs, {} files)",
        args.out.display(),
        summary.trees,
        summary.pairs,
        summary.files
    );
    Ok(())
}

fn private_new_file(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// `pactgate restore`: a backup into an empty data dir.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let from = args.from.clone();
    let summary = crate::backup::restore(&args.data_dir, || {
        Ok(
            Box::new(std::io::BufReader::new(std::fs::File::open(&from)?))
                as Box<dyn std::io::Read>,
        )
    })?;
    println!(
        "restored {} trees, {} pairs and {} files into {}; start the node, then re-push from your own system what changed since the backup",
        summary.trees,
        summary.pairs,
        summary.files,
        args.data_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_line_is_taken_from_anyhow_output() {
        assert_eq!(
            error_of("2026 WARN something\nError: the store holds 3 signals\n\nCaused by:\n x"),
            "the store holds 3 signals"
        );
    }

    #[test]
    fn a_refusal_says_how_to_recover() {
        let text = refusal("x").to_string();
        assert!(text.contains("refuses to serve") && text.contains("pactgate restore"));
    }
}
