//! Audit entries as Logboek Dataverwerkingen 1.0 (Logius) records: one record per entry and one
//! child record per pupil it names, since an LDV record names at most one data subject.
//! Pure: never stores or logs; pupils appear by pseudonym only.
//! Invariant: a child's `parent_span_id` is its entry's `span_id`; child span ids are derived,
//! so exporting twice gives the same records.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::checkpoint::Checkpoint;
use super::entry::{Action, Decision, Entry};

/// The namespace of pactgate's own attributes. LDV 1.0 admits attributes outside `dpl.core`
/// only from extensions Logius adopted; this one is not, and a logboek may drop it.
pub const EXTENSION: &str = "dpl.pactgate";

/// The `dpl.core.data_subject_id_type` of every subject: a pactgate pupil pseudonym (keyed,
/// versioned; never a BSN or onderwijsnummer).
pub const SUBJECT_ID_TYPE: &str = "pseudonym";

/// What the records need besides the entry.
pub struct LdvContext<'a> {
    /// The OIN of the node whose log this is.
    pub node_oin: &'a str,
    /// The newest checkpoint; entries it covers carry its origin, size and root.
    pub checkpoint: Option<&'a Checkpoint>,
}

/// The URI of an entry's processing activity in its party's register: the policy's
/// `processing_activity` when it is a URI already (`https:` or `urn:`), else
/// `urn:pactgate:processing-activity:<node OIN>:<id>`, with `pactgate-<action>` as id for an entry
/// that names none (a refusal, or the node's own housekeeping).
pub fn processing_activity_uri(entry: &Entry, node_oin: &str) -> String {
    let id = entry.processing_activity.trim();
    if id.starts_with("https://") || id.starts_with("urn:") {
        return id.to_owned();
    }
    let id = match id {
        "" => format!("pactgate-{}", action_id(entry.action)),
        id => id.chars().map(uri_char).collect(),
    };
    format!("urn:pactgate:processing-activity:{node_oin}:{id}")
}

fn uri_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || "-._~".contains(c) {
        c
    } else {
        '_'
    }
}

fn action_id(action: Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The record's `name`: what was done, in Dutch for the people who read a logboek.
fn action_name(action: Action) -> &'static str {
    match action {
        Action::Ingest => "signalen ontvangen uit eigen bronsysteem",
        Action::Query => "bevraging door partner beantwoord of geweigerd",
        Action::Disclose => "gegevens verstrekt aan partner",
        Action::Receive => "gegevens ontvangen van partner",
        Action::CaseOpen => "casus geopend",
        Action::CaseClose => "casus gesloten",
        Action::ShareCase => "casus gedeeld",
        Action::PolicyLoad => "convenantbeleid geladen",
        Action::ConfigChange => "configuratie gewijzigd",
        Action::Purge => "signalen verwijderd na bewaartermijn",
        Action::FederatedQuery => "bevraging van partners verstuurd",
        Action::AuditAccess => "auditlog ingezien door FG",
        Action::CaseAccept => "casus aanvaard door eigen organisatie",
        Action::CaseDecline => "casus afgewezen door eigen organisatie",
        Action::Backup => "reservekopie van de gegevens gemaakt",
        Action::Pseudonymise => "pseudoniemen berekend door de pseudonimiseringsdienst",
        Action::CaseOffer => "zorgaanbod vastgelegd in casus",
    }
}

/// LDV `status`: `Ok` for an allowed processing; `Unset` for a refusal, which LDV counts with the
/// client-side outcomes (no server error). `Error` never occurs: a node that fails writes no entry.
fn status(decision: Decision) -> &'static str {
    match decision {
        Decision::Allow => "Ok",
        Decision::Deny => "Unset",
    }
}

/// The span id of the child record of `entry` for its `index`-th pupil: the first 8 bytes of
/// SHA-256("pactgate ldv child\n" trace_id "\n" span_id "\n" index), in hex.
pub fn child_span_id(entry: &Entry, index: usize) -> String {
    let input = format!(
        "pactgate ldv child\n{}\n{}\n{index}",
        entry.trace_id, entry.span_id
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entry's records: its own, then one child per pupil, in the order of `pupils`.
pub fn records(entry: &Entry, ctx: &LdvContext<'_>) -> Vec<Value> {
    let time = entry
        .time
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let activity = processing_activity_uri(entry, ctx.node_oin);
    let mut core = Map::new();
    core.insert("dpl.core.processing_activity_id".into(), json!(activity));
    if !entry.actor_oin.is_empty() && entry.actor_oin != ctx.node_oin {
        core.insert(
            "dpl.core.foreign_operation.processor".into(),
            json!(format!("urn:oin:{}", entry.actor_oin)),
        );
    }
    let mut own_attributes = core.clone();
    own_attributes.extend(extension(entry, ctx));
    let resource = json!({
        "attributes": {
            "service.name": "pactgate",
            "service.version": env!("CARGO_PKG_VERSION"),
            "service.instance.id": ctx.node_oin,
        }
    });
    let mut own = json!({
        "trace_id": entry.trace_id,
        "span_id": entry.span_id,
        "name": action_name(entry.action),
        "start_time": time,
        "end_time": time,
        "status": status(entry.decision),
        "resource": resource,
        "attributes": own_attributes,
    });
    if !entry.parent_span_id.is_empty() {
        own["parent_span_id"] = json!(entry.parent_span_id);
    }
    let mut out = Vec::with_capacity(1 + entry.pupils.len());
    out.push(own);
    for (i, pupil) in entry.pupils.iter().enumerate() {
        let mut attributes = core.clone();
        attributes.insert("dpl.core.data_subject_id".into(), json!(pupil));
        attributes.insert(
            "dpl.core.data_subject_id_type".into(),
            json!(SUBJECT_ID_TYPE),
        );
        attributes.insert(format!("{EXTENSION}.leaf_index"), json!(entry.seq));
        out.push(json!({
            "trace_id": entry.trace_id,
            "span_id": child_span_id(entry, i),
            "parent_span_id": entry.span_id,
            "name": format!("{} (betrokkene)", action_name(entry.action)),
            "start_time": time,
            "end_time": time,
            "status": status(entry.decision),
            "resource": resource,
            "attributes": attributes,
        }));
    }
    out
}

/// pactgate's extension attributes of an entry's own record.
fn extension(entry: &Entry, ctx: &LdvContext<'_>) -> Map<String, Value> {
    let decision = match entry.decision {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
    };
    let mut ext = Map::new();
    let mut put = |key: &str, value: Value| {
        ext.insert(format!("{EXTENSION}.{key}"), value);
    };
    put("action", json!(action_id(entry.action)));
    put("actor_oin", json!(entry.actor_oin));
    put("purpose", json!(entry.purpose));
    put("legal_basis", json!(entry.legal_basis));
    put("decision", json!(decision));
    put("reason", json!(entry.reason));
    put("policy_version", json!(entry.policy_version));
    put("data_subjects", json!(entry.pupils.len()));
    put("leaf_index", json!(entry.seq));
    if let Some(cp) = ctx.checkpoint.filter(|cp| entry.seq < cp.size) {
        put("checkpoint.origin", json!(cp.origin));
        put("checkpoint.size", json!(cp.size));
        put("checkpoint.root", json!(B64.encode(cp.root)));
    }
    ext
}

#[cfg(test)]
mod tests {
    use super::super::entry::tests::sample;
    use super::*;

    fn entry(pupils: usize) -> Entry {
        let mut new = sample(4);
        new.pupils = (0..pupils).map(|i| format!("v1.pupil{i:03}")).collect();
        new.parent_span_id = "00f067aa0ba902b7".into();
        new.into_entry(4, chrono::Utc::now(), "00000001001234567001")
    }

    #[test]
    fn an_entry_naming_thirty_pupils_gives_thirty_one_records() {
        let e = entry(30);
        let cp = Checkpoint {
            origin: "pactgate/00000001001234567001".into(),
            size: 10,
            root: [3; 32],
        };
        let ctx = LdvContext {
            node_oin: "00000001001234567001",
            checkpoint: Some(&cp),
        };
        let records = records(&e, &ctx);
        assert_eq!(records.len(), 31);
        assert_eq!(records[0]["span_id"], json!(e.span_id));
        assert_eq!(records[0]["parent_span_id"], json!("00f067aa0ba902b7"));
        assert_eq!(
            records[0]["attributes"]["dpl.pactgate.checkpoint.size"],
            json!(10)
        );
        let mut spans = std::collections::BTreeSet::new();
        for (i, child) in records[1..].iter().enumerate() {
            assert_eq!(child["parent_span_id"], json!(e.span_id));
            assert_eq!(
                child["attributes"]["dpl.core.data_subject_id"],
                json!(e.pupils[i])
            );
            assert!(spans.insert(child["span_id"].as_str().unwrap().to_owned()));
        }
        assert!(!spans.contains(&e.span_id));
        assert_eq!(records, super::records(&e, &ctx), "deterministic");
    }

    #[test]
    fn activity_uris() {
        let mut e = entry(0);
        e.processing_activity = "GRN-LP-001".into();
        assert_eq!(
            processing_activity_uri(&e, "1"),
            "urn:pactgate:processing-activity:1:GRN-LP-001"
        );
        e.processing_activity = "https://register.example/va/7".into();
        assert_eq!(
            processing_activity_uri(&e, "1"),
            "https://register.example/va/7"
        );
        e.processing_activity.clear();
        e.action = Action::AuditAccess;
        assert_eq!(
            processing_activity_uri(&e, "1"),
            "urn:pactgate:processing-activity:1:pactgate-audit_access"
        );
    }
}
