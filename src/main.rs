//! The `pactgate` binary: parses the command line, installs the log subscriber, runs the command.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = pactgate::cli::Cli::parse();
    // The demo prints its own story; its nodes log warnings only unless PACTGATE_LOG says more.
    let default_level = match cli.command {
        pactgate::cli::Command::Demo(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PACTGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    pactgate::cli::run(cli).await
}
