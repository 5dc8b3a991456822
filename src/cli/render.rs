//! Rendering that only the CLI's commands use (a federated answer, a case line, the choice of
//! format): a leaf of the CLI tree, built on [`crate::text`]; no command logic, no I/O.

use crate::pb;
use crate::text::{render_rows, view_cells, OutputFormat, VIEW_COLUMNS};

pub(super) fn output_format(json: bool, csv: bool) -> OutputFormat {
    if json {
        OutputFormat::Json
    } else if csv {
        OutputFormat::Csv
    } else {
        OutputFormat::Table
    }
}

/// Renders a federated answer: every signal with the peer that holds it.
pub fn render_federation(
    response: &pb::QueryPeersResponse,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let mut header = vec!["holder"];
    header.extend(VIEW_COLUMNS);
    let rows: Vec<Vec<String>> = response
        .answers
        .iter()
        .flat_map(|a| {
            a.response.iter().flat_map(|r| r.signals.iter()).map(|v| {
                let mut row = vec![a.peer.clone()];
                row.extend(view_cells(v));
                row
            })
        })
        .collect();
    let mut footer = format!(
        "{} signals from {} peers",
        rows.len(),
        response.answers.len()
    );
    if !response.failures.is_empty() {
        footer.push_str(&format!(
            ", {} peers did not answer",
            response.failures.len()
        ));
    }
    render_rows(&header, &rows, &footer, format)
}

pub(super) fn case_line(c: &pb::Case) -> String {
    let names: Vec<&str> = c.participants.iter().map(|p| p.name.as_str()).collect();
    let acceptance = match c.acceptance() {
        pb::CaseAcceptance::Accepted => "accepted",
        pb::CaseAcceptance::Declined => "declined",
        _ => "not yet accepted",
    };
    format!(
        "{} {} ({}) lead {} with {}; {} pupils; {}; {acceptance}",
        c.case_id,
        c.meeting_type,
        c.purpose,
        c.lead.as_ref().map(|l| l.name.as_str()).unwrap_or("?"),
        names.join(", "),
        c.pupil_pseudonyms.len(),
        if c.open {
            "open".to_owned()
        } else {
            format!("closed {}", c.closed_at)
        }
    )
}
