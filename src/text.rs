//! How gRPC answers read for people: tables, CSV and JSON of signals, due lines and audit entries,
//! and one-line checkpoints. Pure text, no I/O and no connections; a leaf used by the CLI and the
//! demo alike (the CLI-only renderers live in `cli::render`).

use crate::pb;
use base64::Engine as _;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

pub const VIEW_COLUMNS: [&str; 11] = [
    "source_record_id",
    "pupil_pseudonym",
    "category",
    "sector",
    "residence_municipality",
    "school",
    "absent_since",
    "status",
    "offer_date",
    "age",
    "updated_at",
];

pub fn view_cells(v: &pb::SignalView) -> Vec<String> {
    let short = |name: &str, prefix: &str| name.strip_prefix(prefix).unwrap_or(name).to_owned();
    vec![
        v.source_record_id.clone(),
        v.pupil_pseudonym.clone(),
        short(v.category().as_str_name(), "CATEGORY_"),
        short(v.sector().as_str_name(), "SECTOR_"),
        v.residence_municipality.clone(),
        v.school.clone(),
        v.absent_since.clone(),
        short(v.status().as_str_name(), "STATUS_"),
        v.offer_date.clone(),
        v.age.to_string(),
        v.updated_at.clone(),
    ]
}

/// Renders signal views as a table, JSON lines or CSV.
pub fn render_views(views: &[pb::SignalView], format: OutputFormat) -> anyhow::Result<String> {
    let rows: Vec<Vec<String>> = views.iter().map(view_cells).collect();
    render_rows(
        &VIEW_COLUMNS,
        &rows,
        &format!("{} signals", views.len()),
        format,
    )
}

/// Rows of text cells as a table (with a footer line), JSON lines (one object per row, keyed by
/// the header) or CSV (with the header row).
pub fn render_rows(
    header: &[&str],
    rows: &[Vec<String>],
    footer: &str,
    format: OutputFormat,
) -> anyhow::Result<String> {
    match format {
        OutputFormat::Table => {
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(header);
            for row in rows {
                table.add_row(row);
            }
            Ok(format!("{table}\n{footer}\n"))
        }
        OutputFormat::Json => {
            let mut out = String::new();
            for row in rows {
                let object: serde_json::Map<String, serde_json::Value> = header
                    .iter()
                    .zip(row)
                    .map(|(k, c)| ((*k).to_owned(), serde_json::Value::String(c.clone())))
                    .collect();
                out.push_str(&serde_json::to_string(&object)?);
                out.push('\n');
            }
            Ok(out)
        }
        OutputFormat::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(header)?;
            for row in rows {
                writer.write_record(row)?;
            }
            Ok(String::from_utf8(writer.into_inner()?)?)
        }
    }
}

pub fn band_label(band: i32) -> &'static str {
    match pb::DueBand::try_from(band) {
        Ok(pb::DueBand::Weeks4) => "4+ weeks",
        Ok(pb::DueBand::Weeks8) => "8+ weeks",
        Ok(pb::DueBand::Weeks10) => "10+ weeks",
        Ok(pb::DueBand::Weeks12) => "12+ weeks",
        Ok(pb::DueBand::OverThreeMonths) => "OVER 3 MONTHS",
        _ => "?",
    }
}

pub fn category_names(categories: &[i32]) -> String {
    categories
        .iter()
        .map(|c| {
            pb::Category::try_from(*c)
                .map(|c| c.as_str_name().trim_start_matches("CATEGORY_").to_owned())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("+")
}

pub fn sector_names(sectors: &[i32]) -> String {
    sectors
        .iter()
        .map(|s| {
            pb::Sector::try_from(*s)
                .map(|s| s.as_str_name().trim_start_matches("SECTOR_").to_owned())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("+")
}

pub fn due_json(l: &pb::DueLine) -> serde_json::Value {
    serde_json::json!({
        "pupil_pseudonym": l.pupil_pseudonym,
        "band": band_label(l.band),
        "weeks": l.weeks,
        "days": l.days,
        "categories": category_names(&l.categories),
        "sectors": sector_names(&l.sectors),
        "schools": l.schools,
        "residence_municipalities": l.residence_municipalities,
        "holders": l.holders.iter().map(|h| format!("{}:{}", h.partner, h.source_record_id)).collect::<Vec<_>>(),
    })
}

/// Renders a due list as a table, one line per child.
pub fn render_due(response: &pb::DueResponse) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "band",
        "weeks",
        "pupil",
        "categories",
        "sector",
        "school",
        "lives in",
        "held by",
        "next step",
    ]);
    for l in &response.lines {
        let holders: Vec<String> = l
            .holders
            .iter()
            .map(|h| {
                if h.source_record_id.is_empty() {
                    h.partner.clone()
                } else {
                    format!("{} ({})", h.partner, h.source_record_id)
                }
            })
            .collect();
        table.add_row(vec![
            band_label(l.band).to_owned(),
            l.weeks.to_string(),
            l.pupil_pseudonym.clone(),
            category_names(&l.categories),
            sector_names(&l.sectors),
            l.schools.join(", "),
            l.residence_municipalities.join(", "),
            holders.join("; "),
            l.escalation_step.clone(),
        ]);
    }
    format!(
        "{table}\n{} children on the clock at {}\n",
        response.lines.len(),
        response.at
    )
}

/// Entries as a readable table.
pub fn render_entries(entries: &[pb::AuditEntry]) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "seq",
        "time",
        "who",
        "action",
        "context",
        "purpose / basis",
        "pupils",
        "decision",
        "reason",
    ]);
    for e in entries {
        let context = [
            e.routine_flow.as_str(),
            e.meeting_type.as_str(),
            e.case_id.as_str(),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
        table.add_row(vec![
            e.seq.to_string(),
            e.time.clone(),
            if e.actor.is_empty() {
                e.actor_name.clone()
            } else {
                format!("{} ({})", e.actor_name, e.actor)
            },
            e.action()
                .as_str_name()
                .trim_start_matches("AUDIT_ACTION_")
                .to_owned(),
            context,
            format!("{} {}", e.purpose, e.legal_basis).trim().to_owned(),
            e.pupil_pseudonyms.len().to_string(),
            e.decision()
                .as_str_name()
                .trim_start_matches("AUDIT_DECISION_")
                .to_owned(),
            e.reason.chars().take(80).collect(),
        ]);
    }
    format!("{table}\n{} entries\n", entries.len())
}

/// The newest checkpoint and who cosigned it, in a line.
pub fn checkpoint_line(c: &pb::SignedCheckpoint) -> String {
    format!(
        "checkpoint {} size {} root {}, cosigned by {}",
        c.origin,
        c.size,
        base64::engine::general_purpose::STANDARD.encode(&c.root_hash),
        if c.witnesses.is_empty() {
            "no peer yet".to_owned()
        } else {
            c.witnesses.join(", ")
        }
    )
}

/// A verification's outcome for people: the line saying what was checked, or (as `Err`) the
/// problem and the first bad sequence number.
pub fn verify_text(origin: &str, v: &pb::VerifyResponse) -> Result<String, String> {
    if v.ok {
        return Ok(format!(
            "{origin}: verified {} entries; root {}; {} checkpoint signatures and {} cosigned checkpoints checked",
            v.entries,
            base64::engine::general_purpose::STANDARD.encode(&v.root_hash),
            v.checkpoints_checked,
            v.cosignatures_checked
        ));
    }
    Err(format!(
        "{origin}: AUDIT LOG FAILED VERIFICATION: {}\nfirst bad sequence number: {}",
        v.problem, v.first_bad_seq
    ))
}
