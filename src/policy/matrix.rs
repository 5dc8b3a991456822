//! The covenant as an FG reviews it: plain text, one block per routine flow, one table per case
//! meeting, then the legal bases, purposes and data categories the ids stand for.
//! Only formats; derived entirely from the checked policy, so it cannot disagree with `evaluate`.

use super::model::{DataCategory, FlowScope, Meeting, Participant, Party, RoutineFlow};
use super::Policy;
use std::fmt::Write;

const SPECIAL_NOTE: &str = "* special category, AVG art. 9";

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

    fn write_header(&self, out: &mut String) {
        let c = self.covenant();
        heading(out, &format!("Covenant policy matrix: {}", c.name));
        line(out, &c.description);
        line(out, &format!("Text modelled:  {}", c.text_version));
        line(out, &format!("Policy version: {}", self.version()));
    }

    fn write_parties(&self, out: &mut String) {
        heading(out, "Parties");
        let rows = self.parties().iter().map(party_row).collect::<Vec<_>>();
        out.push_str(&table(&["party", "type", "OIN", "name", "scope"], &rows));
        for fg in self.fgs() {
            line(
                out,
                &format!(
                    "FG: {} ({}) is FG of: {}",
                    fg.name,
                    fg.oin,
                    fg.of.join(", ")
                ),
            );
        }
    }

    fn write_flows(&self, out: &mut String) {
        heading(out, "Routine flows");
        for f in self.routine_flows() {
            self.write_flow(out, f);
        }
    }

    fn write_flow(&self, out: &mut String, f: &RoutineFlow) {
        let from: Vec<&str> = f.from.iter().map(|t| t.code()).collect();
        let to: Vec<&str> = f.to.iter().map(|t| t.code()).collect();
        let scope = match f.scope {
            FlowScope::Residents => {
                "residents: only pupils living in the receiver's municipalities"
            }
            FlowScope::Schools => "schools: only pupils of the receiver's schools",
            FlowScope::Own => {
                "own: residents of a receiving gemeente, pupils of a receiving swv/mbo's schools"
            }
            FlowScope::None => "none: NOT RESTRICTED, the receiver sees every pupil",
        };
        let rows = vec![
            vec![
                vec!["from -> to".into()],
                vec![format!("{} -> {}", from.join(", "), to.join(", "))],
            ],
            vec![vec!["role".into()], vec![f.role.clone()]],
            vec![vec!["legal bases".into()], self.bases(&f.legal_bases)],
            vec![
                vec!["purpose".into()],
                self.purposes_text(std::slice::from_ref(&f.purpose)),
            ],
            vec![
                vec!["data categories".into()],
                self.categories(&f.data_categories),
            ],
            vec![vec!["scope".into()], vec![scope.into()]],
            vec![
                vec!["processing activity".into()],
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
        heading(out, "Case meetings (Bijlage 3)");
        for m in self.meetings() {
            self.write_meeting(out, m);
        }
    }

    fn write_meeting(&self, out: &mut String, m: &Meeting) {
        line(out, &format!("\n[{}] {}", m.id, m.name));
        line(out, &format!("  {}", m.description));
        line(out, &format!("  purposes: {}", m.purposes.join(", ")));
        let rows: Vec<_> = m
            .participants
            .iter()
            .map(|p| self.participant_row(p))
            .collect();
        let headers = ["participant", "legal bases", "purposes", "data categories"];
        out.push_str(&indent(&table(&headers, &rows)));
        if m.participants.iter().any(|p| p.grant.special) {
            line(out, &format!("  {SPECIAL_NOTE}"));
        }
        line(out, "  processing activities:");
        for (purpose, activity) in &m.processing_activities {
            line(out, &format!("    {purpose} -> {activity}"));
        }
        write_case_rules(out, m);
    }

    fn participant_row(&self, p: &Participant) -> Vec<Vec<String>> {
        vec![
            vec![format!("{} : {}", p.org_type, p.role)],
            p.legal_bases.clone(),
            p.purposes.clone(),
            self.categories(&p.data_categories),
        ]
    }

    fn write_legend(&self, out: &mut String) {
        heading(out, "Legal bases");
        let rows: Vec<_> = self
            .legal_bases()
            .iter()
            .map(|b| {
                vec![
                    vec![b.id.clone()],
                    vec![format!("{} {}", b.law, b.article)],
                    vec![b.text.clone()],
                ]
            })
            .collect();
        out.push_str(&table(&["id", "law and article", "text"], &rows));
        heading(out, "Purposes");
        let rows: Vec<_> = self
            .purposes()
            .iter()
            .map(|p| vec![vec![p.id.clone()], vec![p.text.clone()]])
            .collect();
        out.push_str(&table(&["id", "text"], &rows));
        heading(out, "Data categories");
        let rows: Vec<_> = self.data_categories().iter().map(category_row).collect();
        out.push_str(&table(
            &["id", "name", "rows (signal categories)", "fields"],
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
    line(
        out,
        "    doel en bereik: een vraag in een casus moet het doel van de casus noemen en blijft binnen het eigen bereik van de vrager en de regiehouder",
    );
}

fn party_row(p: &Party) -> Vec<Vec<String>> {
    let scope = match (p.municipalities.is_empty(), p.schools.is_empty()) {
        (false, _) => format!("residents of {}", p.municipalities.join(", ")),
        (_, false) => format!("schools {}", p.schools.join(", ")),
        _ => "-".to_string(),
    };
    vec![
        vec![p.id.clone()],
        vec![p.org_type.to_string()],
        vec![p.oin.clone()],
        vec![p.name.clone()],
        vec![scope],
    ]
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
