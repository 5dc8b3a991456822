//! The `pactgate` binary: parses the command line, installs the log subscriber, runs the command
//! and decides the exit code (a `cli::Failed` error carries its own; any other error is 1).

use clap::Parser as _;
use std::process::ExitCode;

/// jemalloc with its background thread, not glibc's malloc: a push churns through many small
/// short-lived allocations (sled copies a tree node on every insert) on several threads, and
/// glibc keeps what they free in per-thread arenas for good; jemalloc's background thread hands
/// freed pages back to the system within seconds (BENCHMARKS.md, Memory).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = pactgate::cli::Cli::parse();
    // The demo prints its own story (its refusals are on purpose); its nodes log errors only
    // unless RUST_LOG (or the older PACTGATE_LOG) says more.
    let default_level = match cli.command {
        pactgate::cli::Command::Demo(_) => "error",
        _ => "info",
    };
    let filter = ["RUST_LOG", "PACTGATE_LOG"]
        .into_iter()
        .find_map(|var| tracing_subscriber::EnvFilter::try_from_env(var).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    match pactgate::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<pactgate::cli::Failed>() {
            Some(failed) => {
                eprintln!("{}", failed.message);
                ExitCode::from(failed.code)
            }
            None => {
                eprintln!("Error: {e:?}");
                ExitCode::FAILURE
            }
        },
    }
}
