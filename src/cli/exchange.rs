//! `pactgate push`, `list`, `query` and `case`: a partner system's commands, over gRPC only.

use super::render::{case_line, output_format, render_federation};
use super::{CareOfferKind, CaseArgs, CaseCommand, ListArgs, PushArgs, QueryArgs};
use crate::client::push_rows;
use crate::pb;
use crate::text::render_views;
use anyhow::Context as _;

pub(super) fn query_filter(args: &QueryArgs) -> anyhow::Result<pb::QueryFilter> {
    let categories = args
        .category
        .iter()
        .map(|c| {
            enum_filter(&Some(c.clone()), "CATEGORY_", |s| {
                pb::Category::from_str_name(s).map(Into::into)
            })
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    Ok(pb::QueryFilter {
        residence_municipality: args.municipality.clone().unwrap_or_default(),
        school: args.school.clone().unwrap_or_default(),
        categories,
        status: enum_filter(&args.status, "STATUS_", |s| {
            pb::Status::from_str_name(s).map(Into::into)
        })?,
        open_longer_than_days: args.open_longer_than,
    })
}

pub(super) async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let request = pb::QueryPeersRequest {
        claim: Some(args.claim.to_pb()?),
        filter: Some(query_filter(&args)?),
        timeout_ms: args.timeout_ms,
    };
    let channel = args.connect.channel().await?;
    let response = pb::federation_service_client::FederationServiceClient::new(channel)
        .query_peers(request)
        .await
        .map_err(|s| anyhow::anyhow!("your node refused: {}", s.message()))?
        .into_inner();
    let format = output_format(args.json, args.csv);
    print!("{}", render_federation(&response, format)?);
    for failure in &response.failures {
        eprintln!(
            "peer {}: {} {}",
            failure.peer, failure.code, failure.message
        );
    }
    Ok(())
}

pub(super) async fn case(args: CaseArgs) -> anyhow::Result<()> {
    let mut cases =
        pb::cases_service_client::CasesServiceClient::new(args.connect.channel().await?);
    let refused = |s: tonic::Status| anyhow::anyhow!("your node refused: {}", s.message());
    // The case as the node now holds it, and the participants' nodes it could not tell.
    let (case, not_notified) = match args.command {
        CaseCommand::Open {
            meeting,
            purpose,
            pupils,
            participants,
            actor,
        } => cases
            .open_case(pb::OpenCaseRequest {
                meeting_type: meeting,
                purpose,
                pupil_pseudonyms: pupils,
                participant_oins: participants,
                actor,
            })
            .await
            .map_err(refused)
            .map(|r| r.into_inner())
            .map(|r| (r.case, r.not_notified))?,
        CaseCommand::Accept { id, actor } => cases
            .accept_case(pb::AcceptCaseRequest { case_id: id, actor })
            .await
            .map_err(refused)
            .map(|r| (r.into_inner().case, Vec::new()))?,
        CaseCommand::Decline { id, actor } => cases
            .decline_case(pb::DeclineCaseRequest { case_id: id, actor })
            .await
            .map_err(refused)
            .map(|r| (r.into_inner().case, Vec::new()))?,
        CaseCommand::Close { id, actor } => cases
            .close_case(pb::CloseCaseRequest { case_id: id, actor })
            .await
            .map_err(refused)
            .map(|r| r.into_inner())
            .map(|r| (r.case, r.not_notified))?,
        CaseCommand::Offer {
            id,
            pupil,
            kind,
            offered_on,
            place_from,
            parents_agreed,
            actor,
        } => {
            let kind = match kind {
                CareOfferKind::Zorg => pb::OfferKind::Zorg,
                CareOfferKind::OnderwijsEnZorg => pb::OfferKind::OnderwijsEnZorg,
            };
            let answer = cases
                .record_offer(pb::RecordOfferRequest {
                    offer: Some(pb::CaseOffer {
                        case_id: id,
                        pupil_pseudonym: pupil,
                        kind: kind.into(),
                        offered_on,
                        place_from,
                        parents_agreed,
                        ..Default::default()
                    }),
                    actor,
                })
                .await
                .map_err(refused)?
                .into_inner();
            if let Some(o) = &answer.offer {
                let place = match o.place_from.as_str() {
                    "" => "geen plaats (wachtlijst): de klok loopt door".to_owned(),
                    day => format!("plaats vanaf {day}"),
                };
                println!(
                    "zorgaanbod vastgelegd in {} voor {}: {}, gedaan {}, {place}, ouders {}",
                    o.case_id,
                    o.pupil_pseudonym,
                    o.kind().as_str_name(),
                    o.offered_on,
                    if o.parents_agreed {
                        "akkoord"
                    } else {
                        "niet akkoord"
                    }
                );
            }
            for f in &answer.not_notified {
                eprintln!("participant {} not told: {} {}", f.peer, f.code, f.message);
            }
            return Ok(());
        }
        CaseCommand::List { open } => {
            let list = cases
                .list_cases(pb::ListCasesRequest { open_only: open })
                .await
                .map_err(refused)?
                .into_inner();
            for c in &list.cases {
                println!("{}", case_line(c));
            }
            return Ok(());
        }
    };
    if let Some(c) = &case {
        println!("{}", case_line(c));
    }
    for f in &not_notified {
        eprintln!("participant {} not told: {} {}", f.peer, f.code, f.message);
    }
    Ok(())
}

pub(super) async fn push(args: PushArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let rows =
        crate::import::read(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let mut intake = args.connect.intake().await?;
    let progress = indicatif::ProgressBar::new(rows.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let total = rows.len();
    let summary = push_rows(&mut intake, rows, args.batch, &progress).await?;
    progress.finish_and_clear();
    println!(
        "{total} records read, {} stored, {} refused",
        summary.accepted,
        summary.refused()
    );
    for line in &summary.rejected {
        println!("  refused: {line}");
    }
    if summary.unlisted > 0 {
        println!(
            "  ... and {} more refused (the node lists the first {} of each batch)",
            summary.unlisted,
            crate::rpc::intake::MAX_REPORTED_REJECTS
        );
    }
    if summary.refused() > 0 {
        return Err(super::Failed {
            code: 3,
            message: format!("{} of {total} records refused", summary.refused()),
        }
        .into());
    }
    Ok(())
}

pub(super) fn enum_filter(
    text: &Option<String>,
    prefix: &str,
    from: fn(&str) -> Option<i32>,
) -> anyhow::Result<i32> {
    let Some(text) = text else { return Ok(0) };
    crate::import::enum_value(text, prefix, from).map_err(|reason| anyhow::anyhow!("{reason}"))
}

pub(super) async fn list(args: ListArgs) -> anyhow::Result<()> {
    let request = pb::ListRequest {
        residence_municipality: args.municipality.clone().unwrap_or_default(),
        school: args.school.clone().unwrap_or_default(),
        pupil_pseudonym: args.pupil.clone().unwrap_or_default(),
        category: enum_filter(&args.category, "CATEGORY_", |s| {
            pb::Category::from_str_name(s).map(Into::into)
        })?,
        status: enum_filter(&args.status, "STATUS_", |s| {
            pb::Status::from_str_name(s).map(Into::into)
        })?,
        limit: args.limit,
    };
    let mut intake = args.connect.intake().await?;
    let mut stream = intake
        .list(request)
        .await
        .map_err(|s| anyhow::anyhow!("the node refused: {}", s.message()))?
        .into_inner();
    let mut views = Vec::new();
    while let Some(v) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
    {
        views.extend(v.signal);
    }
    print!(
        "{}",
        render_views(&views, output_format(args.json, args.csv))?
    );
    Ok(())
}
