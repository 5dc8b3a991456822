//! `pactgate due` and `pactgate report`: the three-month clock and the G4 report, over gRPC.

use super::{DueArgs, ReportArgs, ReportFormat};
use crate::pb;
use crate::text::{due_json, render_due};
use anyhow::Context as _;

pub(super) async fn due(args: DueArgs) -> anyhow::Result<()> {
    let channel = args.connect.channel().await?;
    let response = pb::clock_service_client::ClockServiceClient::new(channel)
        .due(pb::DueRequest {
            claim: args.claim.to_pb(),
            at: args.at.clone().unwrap_or_default(),
            timeout_ms: 0,
        })
        .await
        .map_err(|s| anyhow::anyhow!("your node refused: {}", s.message()))?
        .into_inner();
    if args.json {
        for line in &response.lines {
            println!("{}", serde_json::to_string(&due_json(line))?);
        }
    } else {
        print!("{}", render_due(&response));
    }
    for f in &response.failures {
        eprintln!("peer {}: {} {}", f.peer, f.code, f.message);
    }
    Ok(())
}

pub(super) async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let channel = args.connect.channel().await?;
    let response = pb::clock_service_client::ClockServiceClient::new(channel)
        .report(pb::ReportRequest {
            at: args.at.clone(),
            rule: args.rule.clone(),
            claim: args.claim.to_pb(),
            timeout_ms: 0,
        })
        .await
        .map_err(|s| anyhow::anyhow!("your node refused: {}", s.message()))?
        .into_inner();
    match args.format {
        ReportFormat::Table => print!("{}", response.table),
        ReportFormat::Csv => print!("{}", response.csv),
        ReportFormat::Json => println!("{}", response.json),
        ReportFormat::Svg => println!("{}", response.svg),
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, &response.svg)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    for f in &response.failures {
        eprintln!("peer {}: {} {}", f.peer, f.code, f.message);
    }
    Ok(())
}
