//! The covenant as an FG reviews it, in Dutch: plain text, one block per routine flow, one table
//! per case meeting, then the legal bases (with source and whether verified), purposes and data
//! categories the ids stand for; and the same matrix as JSON for tools.
//! Only formats; derived entirely from the checked policy, so it cannot disagree with `evaluate`.

use super::model::{DataCategory, FlowScope, Meeting, Participant, Party, RoutineFlow};
use super::Policy;
use std::fmt::Write;

const SPECIAL_NOTE: &str = "* bijzonder persoonsgegeven (AVG art. 9)";

impl Policy {
    /// The reviewable matrix of the whole covenant.
    pub fn matrix(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        self.write_parties(&mut out);
        self.write_flows(&mut out);
        self.write_meetings(&mut out);
        self.write_legend(&mut out);
        out
    }

    /// The same matrix as JSON, for tools (`policy check --format json`).
    pub fn matrix_json(&self) -> serde_json::Value {
        use serde_json::json;
        let c = self.covenant();
        let basis = |b: &super::model::LegalBasis| {
            json!({
                "id": b.id, "wet": b.law, "artikel": b.article, "tekst": b.text,
                "bron": b.source, "geverifieerd": b.verified,
                "uitzondering_art9": b.art9_exception,
            })
        };
        let special = |ids: &[String]| {
            ids.iter()
                .any(|id| self.data_category(id).is_some_and(|d| d.special))
        };
        json!({
            "convenant": {
                "naam": c.name, "omschrijving": c.description, "tekstversie": c.text_version,
                "beleidsversie": self.version(),
            },
            "partijen": self.parties().iter().map(|p| json!({
                "id": p.id, "soort": p.org_type.code(), "soort_naam": p.org_type.label(),
                "oin": p.oin, "naam": p.name, "gemeenten": p.municipalities,
                "scholen": p.schools, "status": status_text(p.connected).to_lowercase(),
                "fg": self.fgs().iter().filter(|f| f.of.contains(&p.id))
                    .map(|f| json!({"oin": f.oin, "naam": f.name})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "vaste_stromen": self.routine_flows().iter().map(|f| json!({
                "id": f.id, "naam": f.name,
                "van": f.from.iter().map(|t| t.code()).collect::<Vec<_>>(),
                "naar": f.to.iter().map(|t| t.code()).collect::<Vec<_>>(),
                "rol": f.role, "grondslagen": f.legal_bases, "doel": f.purpose,
                "gegevenscategorieen": f.data_categories, "reikwijdte": f.scope.code(),
                "verwerkingsactiviteit": f.processing_activity,
                "bijzondere_persoonsgegevens": special(&f.data_categories),
            })).collect::<Vec<_>>(),
            "casusoverleggen": self.meetings().iter().map(|m| json!({
                "id": m.id, "naam": m.name, "omschrijving": m.description, "doelen": m.purposes,
                "deelnemers": m.participants.iter().map(|p| json!({
                    "soort": p.org_type.code(), "rol": p.role, "grondslagen": p.legal_bases,
                    "doelen": p.purposes, "gegevenscategorieen": p.data_categories,
                    "bijzondere_persoonsgegevens": special(&p.data_categories),
                })).collect::<Vec<_>>(),
                "verwerkingsactiviteiten": m.processing_activities,
                "aanbod_vastleggen": m.may_record_offer.iter().map(|t| t.code()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "grondslagen": self.legal_bases().iter().map(basis).collect::<Vec<_>>(),
            "doelen": self.purposes().iter().map(|p| json!({"id": p.id, "tekst": p.text}))
                .collect::<Vec<_>>(),
            "gegevenscategorieen": self.data_categories().iter().map(|d| json!({
                "id": d.id, "naam": d.name,
                "signaalcategorieen": d.signal_categories.iter().map(|c| c.code()).collect::<Vec<_>>(),
                "velden": d.fields.iter().map(|f| f.name()).collect::<Vec<_>>(),
                "bijzonder": d.special,
            })).collect::<Vec<_>>(),
            "waarschuwingen": self.warnings(),
        })
    }

    fn write_header(&self, out: &mut String) {
        let c = self.covenant();
        heading(out, &format!("Convenantmatrix (Bijlage 3): {}", c.name));
        line(out, &c.description);
        line(out, &format!("Gemodelleerde tekst: {}", c.text_version));
        line(out, &format!("Beleidsversie:      {}", self.version()));
    }

    fn write_parties(&self, out: &mut String) {
        heading(out, "Partijen");
        let rows = self.parties().iter().map(party_row).collect::<Vec<_>>();
        out.push_str(&table(
            &["partij", "soort", "OIN", "naam", "reikwijdte", "status"],
            &rows,
        ));
        for fg in self.fgs() {
            line(
                out,
                &format!(
                    "FG: {} ({}) is FG van: {}",
                    fg.name,
                    fg.oin,
                    fg.of.join(", ")
                ),
            );
        }
        for p in self.parties() {
            if !self.fgs().iter().any(|f| f.of.contains(&p.id)) {
                line(out, &format!("LET OP: partij {} heeft geen eigen FG", p.id));
            }
        }
    }

    fn write_flows(&self, out: &mut String) {
        heading(out, "Vaste gegevensstromen (zonder casusoverleg)");
        for f in self.routine_flows() {
            self.write_flow(out, f);
        }
    }

    fn write_flow(&self, out: &mut String, f: &RoutineFlow) {
        let from: Vec<&str> = f.from.iter().map(|t| t.code()).collect();
        let to: Vec<&str> = f.to.iter().map(|t| t.code()).collect();
        let scope = match f.scope {
            FlowScope::Residents => {
                "inwoners: alleen leerlingen die in de gemeente(n) van de ontvanger wonen"
            }
            FlowScope::Schools => "scholen: alleen leerlingen van de scholen van de ontvanger",
            FlowScope::Own => {
                "eigen: inwoners van een ontvangende gemeente, leerlingen van de scholen van een ontvangend swv/mbo"
            }
            FlowScope::None => "geen: NIET BEPERKT, de ontvanger ziet elke leerling",
        };
        let rows = vec![
            vec![
                vec!["van -> naar".into()],
                vec![format!("{} -> {}", from.join(", "), to.join(", "))],
            ],
            vec![vec!["rol".into()], vec![f.role.clone()]],
            vec![vec!["grondslagen".into()], self.bases(&f.legal_bases)],
            vec![
                vec!["doel".into()],
                self.purposes_text(std::slice::from_ref(&f.purpose)),
            ],
            vec![
                vec!["gegevenscategorieën".into()],
                self.categories(&f.data_categories),
            ],
            vec![vec!["reikwijdte".into()], vec![scope.into()]],
            vec![
                vec!["verwerkingsactiviteit".into()],
                vec![f.processing_activity.clone()],
            ],
        ];
        line(out, &format!("\n[{}] {}", f.id, f.name));
        out.push_str(&indent(&table(&[], &rows)));
        if f.grant.special {
            line(out, &format!("  {SPECIAL_NOTE}"));
        }
    }

    fn write_meetings(&self, out: &mut String) {
        heading(out, "Casusoverleggen (Bijlage 3)");
        for m in self.meetings() {
            self.write_meeting(out, m);
        }
    }

    fn write_meeting(&self, out: &mut String, m: &Meeting) {
        line(out, &format!("\n[{}] {}", m.id, m.name));
        line(out, &format!("  {}", m.description));
        line(out, &format!("  doelen: {}", m.purposes.join(", ")));
        let rows: Vec<_> = m
            .participants
            .iter()
            .map(|p| self.participant_row(p))
            .collect();
        let headers = ["deelnemer", "grondslagen", "doelen", "gegevenscategorieën"];
        out.push_str(&indent(&table(&headers, &rows)));
        if m.participants.iter().any(|p| p.grant.special) {
            line(out, &format!("  {SPECIAL_NOTE}"));
        }
        line(out, "  verwerkingsactiviteiten:");
        for (purpose, activity) in &m.processing_activities {
            line(out, &format!("    {purpose} -> {activity}"));
        }
        write_case_rules(out, m);
    }

    fn participant_row(&self, p: &Participant) -> Vec<Vec<String>> {
        vec![
            vec![format!("{} : {}", p.org_type.label(), p.role)],
            p.legal_bases.clone(),
            p.purposes.clone(),
            self.categories(&p.data_categories),
        ]
    }

    fn write_legend(&self, out: &mut String) {
        heading(out, "Grondslagen");
        let rows: Vec<_> = self
            .legal_bases()
            .iter()
            .map(|b| {
                vec![
                    vec![b.id.clone()],
                    vec![format!("{} {}", b.law, b.article)],
                    vec![b.text.clone()],
                    vec![b.source.clone()],
                    vec![if b.verified { "ja" } else { "NEE" }.to_string()],
                ]
            })
            .collect();
        out.push_str(&table(
            &["id", "wet en artikel", "tekst", "bron", "geverifieerd"],
            &rows,
        ));
        heading(out, "Doelen");
        let rows: Vec<_> = self
            .purposes()
            .iter()
            .map(|p| vec![vec![p.id.clone()], vec![p.text.clone()]])
            .collect();
        out.push_str(&table(&["id", "tekst"], &rows));
        heading(out, "Gegevenscategorieën");
        let rows: Vec<_> = self.data_categories().iter().map(category_row).collect();
        out.push_str(&table(
            &["id", "naam", "rijen (signaalcategorieën)", "velden"],
            &rows,
        ));
        line(out, SPECIAL_NOTE);
    }

    fn bases(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .map(|id| match self.legal_basis(id) {
                Some(b) => format!("{id}: {} {}", b.law, b.article),
                None => id.clone(),
            })
            .collect()
    }

    fn purposes_text(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .map(|id| match self.purpose(id) {
                Some(p) => format!("{id}: {}", p.text),
                None => id.clone(),
            })
            .collect()
    }

    fn categories(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .map(|id| match self.data_category(id) {
                Some(d) if d.special => format!("{id}*"),
                _ => id.clone(),
            })
            .collect()
    }
}

/// The meeting's case rules, in Dutch for the FG and the chair: who leads, how many pupils, who
/// must accept.
fn write_case_rules(out: &mut String, m: &Meeting) {
    let leads: Vec<&str> = m.lead.iter().map(|t| t.code()).collect();
    line(out, "  casusregels:");
    line(
        out,
        &format!(
            "    regie: alleen een {} mag een casus openen en delen",
            leads.join(" of ")
        ),
    );
    line(
        out,
        &format!(
            "    omvang: hoogstens {} leerlingen per casus (een kind en eventueel broers en zussen)",
            m.max_pupils
        ),
    );
    let acceptance = if m.needs_acceptance {
        "elke deelnemende organisatie accepteert een gedeelde casus eerst zelf (pactgate case accept); tot dan geeft de casus bij haar niets vrij"
    } else {
        "GEEN acceptatie nodig: een gedeelde casus geeft direct na ontvangst toegang"
    };
    line(out, &format!("    acceptatie: {acceptance}"));
    let makers: Vec<&str> = m.may_record_offer.iter().map(|t| t.code()).collect();
    let offers = if makers.is_empty() {
        "niemand in de casus; alleen de organisatie die het signaal heeft, legt een aanbod vast"
            .to_owned()
    } else {
        format!(
            "een {} in de casus mag een zorgaanbod voor een leerling van de casus vastleggen (pactgate case offer); het stopt de klok alleen met een plaats en instemming van de ouders",
            makers.join(" of ")
        )
    };
    line(out, &format!("    aanbod vastleggen: {offers}"));
    line(
        out,
        "    doel en bereik: een vraag in een casus moet het doel van de casus noemen en blijft binnen het eigen bereik van de vrager en de regiehouder",
    );
}

fn party_row(p: &Party) -> Vec<Vec<String>> {
    let scope = match (p.municipalities.is_empty(), p.schools.is_empty()) {
        (false, _) => format!("inwoners van {}", p.municipalities.join(", ")),
        (_, false) => format!("scholen {}", p.schools.join(", ")),
        _ => "-".to_string(),
    };
    vec![
        vec![p.id.clone()],
        vec![p.org_type.label().to_string()],
        vec![p.oin.to_string()],
        vec![p.name.clone()],
        vec![scope],
        vec![status_text(p.connected).to_string()],
    ]
}

fn status_text(connected: bool) -> &'static str {
    if connected {
        "aangesloten"
    } else {
        "AAN TE HAKEN"
    }
}

fn category_row(d: &DataCategory) -> Vec<Vec<String>> {
    let id = if d.special {
        format!("{}*", d.id)
    } else {
        d.id.clone()
    };
    vec![
        vec![id],
        vec![d.name.clone()],
        d.signal_categories
            .iter()
            .map(|c| c.code().to_string())
            .collect(),
        d.fields.iter().map(|f| f.name().to_string()).collect(),
    ]
}

fn heading(out: &mut String, title: &str) {
    let _ = write!(out, "\n{title}\n{}\n", "=".repeat(title.chars().count()));
}

fn line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A padded table; each cell may hold several lines. Without headers, no header row.
fn table(headers: &[&str], rows: &[Vec<Vec<String>>]) -> String {
    let columns = rows
        .iter()
        .map(Vec::len)
        .chain([headers.len()])
        .max()
        .unwrap_or(0);
    let mut widths = vec![0; columns];
    for (i, h) in headers.iter().enumerate() {
        widths[i] = h.chars().count();
    }
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let longest = cell.iter().map(|l| l.chars().count()).max().unwrap_or(0);
            widths[i] = widths[i].max(longest);
        }
    }
    let mut out = String::new();
    if !headers.is_empty() {
        let header: Vec<Vec<String>> = headers.iter().map(|h| vec![h.to_string()]).collect();
        write_row(&mut out, &header, &widths);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(rule.join("-+-").trim_end());
        out.push('\n');
    }
    for row in rows {
        write_row(&mut out, row, &widths);
    }
    out
}

fn write_row(out: &mut String, row: &[Vec<String>], widths: &[usize]) {
    let height = row.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let separator = if row.len() > 1 && widths.len() > 1 {
        " | "
    } else {
        ""
    };
    for k in 0..height {
        let cells: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let text = row.get(i).and_then(|c| c.get(k)).map_or("", String::as_str);
                format!("{text:<w$}")
            })
            .collect();
        out.push_str(cells.join(separator).trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_and_stacks_lines() {
        let rows = vec![
            vec![
                vec!["a".to_string()],
                vec!["x".to_string(), "yy".to_string()],
            ],
            vec![vec!["bbb".to_string()], vec![]],
        ];
        let t = table(&["h", "values"], &rows);
        assert_eq!(t, "h   | values\n----+-------\na   | x\n    | yy\nbbb |\n");
    }
}
