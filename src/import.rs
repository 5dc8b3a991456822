//! Reading signal files that partners export from their own systems (CSV with a header row, or
//! JSON lines) into `SignalRecord`s. Pure and total: any bytes in, a record or a line error per
//! row out, never a panic (so it can be fuzzed). Column names and keys are the proto field
//! names; enum values may be written with or without their prefix (`LRV` or `CATEGORY_LRV`).

use crate::pb;
use crate::signal::clip;
use std::collections::HashMap;

/// A row that could not be read, by its 1-based line in the file. Never echoes a pupil id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {} {}", self.line, self.field, self.reason)
    }
}

/// One row of the file: its line, and the record or why it could not be read.
pub type Row = (usize, Result<pb::SignalRecord, LineError>);

/// The file formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// JSON lines if the first non-blank byte is `{`, CSV otherwise.
    pub fn detect(bytes: &[u8]) -> Self {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::JsonLines,
            _ => Format::Csv,
        }
    }
}

const FIELDS: [&str; 20] = [
    "source_record_id",
    "pupil_id",
    "category",
    "sector",
    "residence_municipality",
    "school",
    "absent_since",
    "status",
    "offer_date",
    "age",
    "address_under_investigation",
    "exemption_5c_requested",
    "awaiting_mbo_intake",
    "exemption_term",
    "exemption_end",
    "closed_on",
    "age_on",
    "offer_kind",
    "offer_place_from",
    "offer_parents_agreed",
];

/// Reads every row of a file.
pub fn read(bytes: &[u8]) -> Result<Vec<Row>, LineError> {
    match Format::detect(bytes) {
        Format::Csv => read_csv(bytes),
        Format::JsonLines => Ok(read_json_lines(bytes)),
    }
}

fn read_csv(bytes: &[u8]) -> Result<Vec<Row>, LineError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(bytes);
    let header = reader.headers().map_err(|e| LineError {
        line: 1,
        field: "header".into(),
        reason: format!("cannot be read: {}", csv_reason(&e)),
    })?;
    let columns: Vec<String> = header.iter().map(str::to_owned).collect();
    if let Some(unknown) = columns.iter().find(|c| !FIELDS.contains(&c.as_str())) {
        return Err(LineError {
            line: 1,
            field: "header".into(),
            reason: format!(
                "has unknown column {:?}; known: {}",
                clip(unknown),
                FIELDS.join(", ")
            ),
        });
    }
    let mut rows = Vec::new();
    for (i, result) in reader.records().enumerate() {
        let line = i + 2;
        let row = match result {
            Ok(record) => {
                let map: HashMap<&str, String> = columns
                    .iter()
                    .map(String::as_str)
                    .zip(record.iter().map(str::to_owned))
                    .collect();
                record_from(line, &map)
            }
            Err(e) => Err(LineError {
                line,
                field: "row".into(),
                reason: csv_reason(&e),
            }),
        };
        rows.push((line, row));
    }
    Ok(rows)
}

/// A CSV error's kind without the row's content.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("has {len} fields, expected {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".into(),
        _ => "is not valid CSV".into(),
    }
}

fn read_json_lines(bytes: &[u8]) -> Vec<Row> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, json_row(i + 1, l)))
        .collect()
}

fn json_row(line: usize, text: &str) -> Result<pb::SignalRecord, LineError> {
    let err = |field: &str, reason: String| LineError {
        line,
        field: field.into(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| err("row", format!("is not valid JSON (column {})", e.column())))?;
    let object = value
        .as_object()
        .ok_or_else(|| err("row", "is not a JSON object".into()))?;
    let mut map = HashMap::new();
    for (key, value) in object {
        let Some(field) = FIELDS.iter().find(|f| **f == key) else {
            return Err(err("row", format!("has unknown key {:?}", clip(key))));
        };
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(err(field, "must be a string or a number".into())),
        };
        map.insert(*field, text);
    }
    record_from(line, &map)
}

fn record_from(line: usize, map: &HashMap<&str, String>) -> Result<pb::SignalRecord, LineError> {
    let get = |f: &str| map.get(f).cloned().unwrap_or_default();
    let err = |field: &str, reason: String| LineError {
        line,
        field: field.into(),
        reason,
    };
    let category = enum_value(&get("category"), "CATEGORY_", pb::Category::from_str_name)
        .map_err(|r| err("category", r))?;
    let sector = enum_value(&get("sector"), "SECTOR_", pb::Sector::from_str_name)
        .map_err(|r| err("sector", r))?;
    let status = enum_value(&get("status"), "STATUS_", pb::Status::from_str_name)
        .map_err(|r| err("status", r))?;
    let age_text = get("age");
    let age = if age_text.is_empty() {
        0
    } else {
        age_text.parse::<u32>().map_err(|_| {
            err(
                "age",
                format!("{:?} is not a whole number of years", clip(&age_text)),
            )
        })?
    };
    let exemption_term = enum_value(
        &get("exemption_term"),
        "EXEMPTION_TERM_",
        pb::ExemptionTerm::from_str_name,
    )
    .map_err(|r| err("exemption_term", r))?;
    let offer_kind = enum_value(
        &get("offer_kind"),
        "OFFER_KIND_",
        pb::OfferKind::from_str_name,
    )
    .map_err(|r| err("offer_kind", r))?;
    let flag = |field: &str| match get(field).to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "nee" | "n" => Ok(false),
        "true" | "1" | "ja" | "j" => Ok(true),
        other => Err(err(
            field,
            format!("{:?} is not true or false", clip(other)),
        )),
    };
    Ok(pb::SignalRecord {
        address_under_investigation: flag("address_under_investigation")?,
        exemption_5c_requested: flag("exemption_5c_requested")?,
        awaiting_mbo_intake: flag("awaiting_mbo_intake")?,
        exemption_term,
        exemption_end: get("exemption_end"),
        closed_on: get("closed_on"),
        age_on: get("age_on"),
        offer_kind,
        offer_place_from: get("offer_place_from"),
        offer_parents_agreed: flag("offer_parents_agreed")?,
        source_record_id: get("source_record_id"),
        pupil_id: get("pupil_id"),
        category,
        sector,
        residence_municipality: get("residence_municipality"),
        school: get("school"),
        absent_since: get("absent_since"),
        status,
        offer_date: get("offer_date"),
        age,
    })
}

/// Reads an enum value written with or without its prefix; empty means unspecified (0), which
/// the node refuses with its own message.
pub fn enum_value<E: Into<i32>>(
    text: &str,
    prefix: &str,
    from_name: fn(&str) -> Option<E>,
) -> Result<i32, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let upper = text.to_ascii_uppercase();
    let full = if upper.starts_with(prefix) {
        upper
    } else {
        format!("{prefix}{upper}")
    };
    from_name(&full)
        .map(Into::into)
        .ok_or_else(|| format!("{:?} is not a known value", clip(text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn csv_with_short_and_long_enum_names() {
        let file = "source_record_id,pupil_id,category,sector,residence_municipality,school,absent_since,status,offer_date,age\n\
                    r1,111222333,LRV,VO,GM0014,20VA01,2026-09-01,OPEN,,14\n\
                    r2,111222333,CATEGORY_AV,SECTOR_VO,GM0014,,2026-09-01,status_aanbod,2026-10-01,15\n\
                    r3,111222333,NOPE,VO,GM0014,20VA01,2026-09-01,OPEN,,14\n";
        let rows = read(file.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        let r1 = rows[0].1.as_ref().unwrap();
        assert_eq!(r1.category, pb::Category::Lrv as i32);
        let r2 = rows[1].1.as_ref().unwrap();
        assert_eq!(r2.status, pb::Status::Aanbod as i32);
        let e = rows[2].1.as_ref().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "category"));
    }

    #[test]
    fn json_lines() {
        let file = "{\"source_record_id\":\"r1\",\"pupil_id\":\"111222333\",\"category\":\"LRV\",\"age\":14}\n\n{\"bogus\":1}\n";
        let rows = read(file.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.as_ref().unwrap().age, 14);
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.is_err());
    }

    #[test]
    fn unknown_column_is_refused() {
        let e = read(b"source_record_id,name\nr1,Jan\n").unwrap_err();
        assert!(e.reason.contains("name"));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read(&bytes);
        }

        #[test]
        fn errors_never_echo_ids(id in "[1-9][0-9]{8}") {
            let file = format!("{{\"source_record_id\":\"r\",\"age\":\"{id}\",\"category\":\"{id}\"}}\n");
            for (_, row) in read(file.as_bytes()).unwrap() {
                if let Err(e) = row {
                    prop_assert!(!e.to_string().contains(&id));
                }
            }
        }
    }
}
