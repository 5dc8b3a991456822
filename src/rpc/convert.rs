//! Conversions between the generated proto types and the domain types, in both directions. The
//! only place that knows both; everything else uses the domain types.

use crate::cases::{Acceptance, Case, Party};
use crate::identity::Organisation;
use crate::pb;
use crate::policy::{Field, FieldSet};
use crate::signal::{Category, ExemptionTerm, OfferKind, RawSignal, Sector, Signal, Status};

pub fn category_from_pb(value: i32) -> Result<Category, String> {
    match pb::Category::try_from(value) {
        Ok(pb::Category::Unspecified) => Err("is not set (CATEGORY_UNSPECIFIED)".into()),
        Ok(pb::Category::Lrv) => Ok(Category::Lrv),
        Ok(pb::Category::Av) => Ok(Category::Av),
        Ok(pb::Category::Vrijstelling5a) => Ok(Category::Vrijstelling5a),
        Ok(pb::Category::Vrijstelling5b) => Ok(Category::Vrijstelling5b),
        Ok(pb::Category::Vrijstelling5c) => Ok(Category::Vrijstelling5c),
        Ok(pb::Category::LangdurigZiek) => Ok(Category::LangdurigZiek),
        Ok(pb::Category::Schorsing) => Ok(Category::Schorsing),
        Ok(pb::Category::Verwijdering) => Ok(Category::Verwijdering),
        Ok(pb::Category::Verzuim) => Ok(Category::Verzuim),
        Err(_) => Err(format!(
            "{} is not a known category",
            crate::signal::shown_number(value)
        )),
    }
}

pub fn category_to_pb(c: Category) -> pb::Category {
    match c {
        Category::Lrv => pb::Category::Lrv,
        Category::Av => pb::Category::Av,
        Category::Vrijstelling5a => pb::Category::Vrijstelling5a,
        Category::Vrijstelling5b => pb::Category::Vrijstelling5b,
        Category::Vrijstelling5c => pb::Category::Vrijstelling5c,
        Category::LangdurigZiek => pb::Category::LangdurigZiek,
        Category::Schorsing => pb::Category::Schorsing,
        Category::Verwijdering => pb::Category::Verwijdering,
        Category::Verzuim => pb::Category::Verzuim,
    }
}

pub fn sector_from_pb(value: i32) -> Result<Sector, String> {
    match pb::Sector::try_from(value) {
        Ok(pb::Sector::Unspecified) => Err("is not set (SECTOR_UNSPECIFIED)".into()),
        Ok(pb::Sector::Po) => Ok(Sector::Po),
        Ok(pb::Sector::Sbo) => Ok(Sector::Sbo),
        Ok(pb::Sector::So) => Ok(Sector::So),
        Ok(pb::Sector::Vo) => Ok(Sector::Vo),
        Ok(pb::Sector::Vso) => Ok(Sector::Vso),
        Ok(pb::Sector::Pro) => Ok(Sector::Pro),
        Ok(pb::Sector::Mbo) => Ok(Sector::Mbo),
        Err(_) => Err(format!(
            "{} is not a known sector",
            crate::signal::shown_number(value)
        )),
    }
}

pub fn sector_to_pb(s: Sector) -> pb::Sector {
    match s {
        Sector::Po => pb::Sector::Po,
        Sector::Sbo => pb::Sector::Sbo,
        Sector::So => pb::Sector::So,
        Sector::Vo => pb::Sector::Vo,
        Sector::Vso => pb::Sector::Vso,
        Sector::Pro => pb::Sector::Pro,
        Sector::Mbo => pb::Sector::Mbo,
    }
}

pub fn status_from_pb(value: i32) -> Result<Status, String> {
    match pb::Status::try_from(value) {
        Ok(pb::Status::Unspecified) => Err("is not set (STATUS_UNSPECIFIED)".into()),
        Ok(pb::Status::Open) => Ok(Status::Open),
        Ok(pb::Status::Aanbod) => Ok(Status::Aanbod),
        Ok(pb::Status::Teruggeleid) => Ok(Status::Teruggeleid),
        Ok(pb::Status::Gesloten) => Ok(Status::Gesloten),
        Err(_) => Err(format!(
            "{} is not a known status",
            crate::signal::shown_number(value)
        )),
    }
}

pub fn status_to_pb(s: Status) -> pb::Status {
    match s {
        Status::Open => pb::Status::Open,
        Status::Aanbod => pb::Status::Aanbod,
        Status::Teruggeleid => pb::Status::Teruggeleid,
        Status::Gesloten => pb::Status::Gesloten,
    }
}

pub fn exemption_term_from_pb(value: i32) -> Result<Option<ExemptionTerm>, String> {
    match pb::ExemptionTerm::try_from(value) {
        Ok(pb::ExemptionTerm::Unspecified) => Ok(None),
        Ok(pb::ExemptionTerm::Temporary) => Ok(Some(ExemptionTerm::Temporary)),
        Ok(pb::ExemptionTerm::Permanent) => Ok(Some(ExemptionTerm::Permanent)),
        Err(_) => Err(format!(
            "{} is not a known exemption term",
            crate::signal::shown_number(value)
        )),
    }
}

pub fn exemption_term_to_pb(t: Option<ExemptionTerm>) -> pb::ExemptionTerm {
    match t {
        None => pb::ExemptionTerm::Unspecified,
        Some(ExemptionTerm::Temporary) => pb::ExemptionTerm::Temporary,
        Some(ExemptionTerm::Permanent) => pb::ExemptionTerm::Permanent,
    }
}

pub fn offer_kind_from_pb(value: i32) -> Result<Option<OfferKind>, String> {
    match pb::OfferKind::try_from(value) {
        Ok(pb::OfferKind::Unspecified) => Ok(None),
        Ok(pb::OfferKind::Onderwijs) => Ok(Some(OfferKind::Onderwijs)),
        Ok(pb::OfferKind::Zorg) => Ok(Some(OfferKind::Zorg)),
        Ok(pb::OfferKind::OnderwijsEnZorg) => Ok(Some(OfferKind::OnderwijsEnZorg)),
        Err(_) => Err(format!(
            "{} is not a known offer kind",
            crate::signal::shown_number(value)
        )),
    }
}

pub fn offer_kind_to_pb(k: Option<OfferKind>) -> pb::OfferKind {
    match k {
        None => pb::OfferKind::Unspecified,
        Some(OfferKind::Onderwijs) => pb::OfferKind::Onderwijs,
        Some(OfferKind::Zorg) => pb::OfferKind::Zorg,
        Some(OfferKind::OnderwijsEnZorg) => pb::OfferKind::OnderwijsEnZorg,
    }
}

fn date_text(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// An inbound record as a raw domain record; the pupil id moves into wiping storage.
pub fn raw_signal(record: pb::SignalRecord) -> RawSignal {
    RawSignal {
        source_record_id: record.source_record_id,
        pupil_id: zeroize::Zeroizing::new(record.pupil_id),
        category: category_from_pb(record.category),
        sector: sector_from_pb(record.sector),
        residence_municipality: record.residence_municipality,
        school: record.school,
        absent_since: record.absent_since,
        status: status_from_pb(record.status),
        offer_date: record.offer_date,
        age: record.age,
        address_under_investigation: record.address_under_investigation,
        exemption_5c_requested: record.exemption_5c_requested,
        awaiting_mbo_intake: record.awaiting_mbo_intake,
        exemption_term: exemption_term_from_pb(record.exemption_term),
        exemption_end: record.exemption_end,
        closed_on: record.closed_on,
        age_on: record.age_on,
        offer_kind: offer_kind_from_pb(record.offer_kind),
        offer_place_from: record.offer_place_from,
        offer_parents_agreed: record.offer_parents_agreed,
    }
}

pub fn signal_view(s: &Signal) -> pb::SignalView {
    pb::SignalView {
        source_record_id: s.source_record_id.clone(),
        pupil_pseudonym: s.pupil_pseudonym.to_string(),
        category: category_to_pb(s.category).into(),
        sector: s.sector.map_or(0, |x| sector_to_pb(x).into()),
        residence_municipality: s.residence_municipality.to_string(),
        school: s
            .school
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        absent_since: s.absent_since.to_string(),
        status: status_to_pb(s.status).into(),
        offer_date: date_text(s.offer_date),
        age: s.age,
        updated_at: s
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        address_under_investigation: s.address_under_investigation,
        exemption_5c_requested: s.exemption_5c_requested,
        awaiting_mbo_intake: s.awaiting_mbo_intake,
        exemption_term: exemption_term_to_pb(s.exemption_term).into(),
        exemption_end: date_text(s.exemption_end),
        closed_on: date_text(s.closed_on),
        age_on: date_text(s.age_on),
        offer_kind: offer_kind_to_pb(s.offer_kind).into(),
        offer_place_from: date_text(s.offer_place_from),
        offer_parents_agreed: s.offer_parents_agreed,
    }
}

/// A signal as a peer may see it: every field outside `fields` left at its default (empty or
/// unspecified), so nothing the role may not see leaves the node.
pub fn minimised_view(s: &Signal, fields: &FieldSet) -> pb::SignalView {
    let full = signal_view(s);
    let keep = |f: Field| fields.contains(f);
    pb::SignalView {
        source_record_id: if keep(Field::SourceRecordId) {
            full.source_record_id
        } else {
            String::new()
        },
        pupil_pseudonym: if keep(Field::PupilPseudonym) {
            full.pupil_pseudonym
        } else {
            String::new()
        },
        category: if keep(Field::Category) {
            full.category
        } else {
            0
        },
        sector: if keep(Field::Sector) { full.sector } else { 0 },
        residence_municipality: if keep(Field::ResidenceMunicipality) {
            full.residence_municipality
        } else {
            String::new()
        },
        school: if keep(Field::School) {
            full.school
        } else {
            String::new()
        },
        absent_since: if keep(Field::AbsentSince) {
            full.absent_since
        } else {
            String::new()
        },
        status: if keep(Field::Status) { full.status } else { 0 },
        offer_date: if keep(Field::OfferDate) {
            full.offer_date
        } else {
            String::new()
        },
        age: if keep(Field::Age) { full.age } else { 0 },
        // When this node stored the signal says nothing about the pupil; it is always shared.
        updated_at: full.updated_at,
        // The counting details travel with the category they qualify.
        address_under_investigation: keep(Field::Category) && full.address_under_investigation,
        exemption_5c_requested: keep(Field::Category) && full.exemption_5c_requested,
        awaiting_mbo_intake: keep(Field::Category) && full.awaiting_mbo_intake,
        exemption_term: if keep(Field::Category) {
            full.exemption_term
        } else {
            0
        },
        exemption_end: if keep(Field::Category) {
            full.exemption_end
        } else {
            String::new()
        },
        closed_on: if keep(Field::Status) {
            full.closed_on
        } else {
            String::new()
        },
        // The day the age was true travels with the age; the offer's details with its date.
        age_on: if keep(Field::Age) {
            full.age_on
        } else {
            String::new()
        },
        offer_kind: if keep(Field::OfferDate) {
            full.offer_kind
        } else {
            0
        },
        offer_place_from: if keep(Field::OfferDate) {
            full.offer_place_from
        } else {
            String::new()
        },
        offer_parents_agreed: keep(Field::OfferDate) && full.offer_parents_agreed,
    }
}

/// The proto names of the fields in a set, in field order.
pub fn field_names(fields: &FieldSet) -> Vec<String> {
    Field::ALL
        .iter()
        .filter(|f| fields.contains(**f))
        .map(|f| f.name().to_owned())
        .collect()
}

pub fn organisation(o: &Organisation) -> pb::Organisation {
    pb::Organisation {
        oin: o.oin.to_string(),
        name: o.name.clone(),
    }
}

fn party_to_pb(p: &Party) -> pb::Organisation {
    pb::Organisation {
        oin: p.oin.to_string(),
        name: p.name.clone(),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A care offer as the caller sends it, unchecked (the service checks it); an unknown kind
/// is INVALID_ARGUMENT naming the field.
pub fn new_offer(
    o: Option<&pb::CaseOffer>,
) -> Result<crate::service::NewOffer, crate::service::ServiceError> {
    use crate::service::ServiceError;
    let o = o.ok_or_else(|| ServiceError::invalid("offer", "offer is missing"))?;
    let kind = offer_kind_from_pb(o.kind)
        .map_err(|reason| ServiceError::invalid("offer.kind", format!("offer.kind {reason}")))?;
    Ok(crate::service::NewOffer {
        case_id: o.case_id.clone(),
        pupil_pseudonym: o.pupil_pseudonym.clone(),
        kind,
        offered_on: o.offered_on.clone(),
        place_from: o.place_from.clone(),
        parents_agreed: o.parents_agreed,
    })
}

pub fn care_offer_to_pb(o: &crate::cases::CareOffer) -> pb::CaseOffer {
    pb::CaseOffer {
        case_id: o.case_id.clone(),
        pupil_pseudonym: o.pupil.to_string(),
        kind: offer_kind_to_pb(Some(o.kind)).into(),
        offered_on: o.offered_on.to_string(),
        place_from: date_text(o.place_from),
        parents_agreed: o.parents_agreed,
        recorded_by_oin: o.by.oin.to_string(),
        recorded_by_name: o.by.name.clone(),
    }
}

pub fn case_to_pb(c: &Case) -> pb::Case {
    pb::Case {
        case_id: c.id.clone(),
        meeting_type: c.meeting_type.clone(),
        pupil_pseudonyms: c.pupils.iter().map(ToString::to_string).collect(),
        participants: c.participants.iter().map(party_to_pb).collect(),
        lead: Some(party_to_pb(&c.lead)),
        open: c.open,
        opened_at: rfc3339(c.opened_at),
        closed_at: c.closed_at.map(rfc3339).unwrap_or_default(),
        purpose: c.purpose.clone(),
        acceptance: match c.acceptance {
            Acceptance::Pending => pb::CaseAcceptance::Pending,
            Acceptance::Accepted => pb::CaseAcceptance::Accepted,
            Acceptance::Declined => pb::CaseAcceptance::Declined,
        } as i32,
    }
}

/// A case as sent to a peer: this node's acceptance stays here.
pub fn case_to_peer(c: &Case) -> pb::Case {
    pb::Case {
        acceptance: pb::CaseAcceptance::Unspecified as i32,
        ..case_to_pb(c)
    }
}

/// A case as a peer sent it, unchecked (the service layer checks every part).
pub fn shared_case(c: pb::Case) -> crate::service::SharedCase {
    let party = |p: pb::Organisation| crate::service::SharedParty {
        oin: p.oin,
        name: p.name,
    };
    crate::service::SharedCase {
        case_id: c.case_id,
        meeting_type: c.meeting_type,
        purpose: c.purpose,
        pupil_pseudonyms: c.pupil_pseudonyms,
        participants: c.participants.into_iter().map(party).collect(),
        lead: c.lead.map(party),
        open: c.open,
        opened_at: c.opened_at,
        closed_at: c.closed_at,
    }
}

/// A signal a peer shared, back as a domain signal for counting. Fields the sharer withheld stay
/// empty; a view without a well-formed pseudonym, category, status or first day absent cannot be
/// counted and gives `None`.
pub fn signal_from_view(v: &pb::SignalView) -> Option<Signal> {
    let date = |t: &str| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok();
    Some(Signal {
        source_record_id: v.source_record_id.clone(),
        pupil_pseudonym: v.pupil_pseudonym.parse().ok()?,
        category: category_from_pb(v.category).ok()?,
        sector: sector_from_pb(v.sector).ok(),
        residence_municipality: v.residence_municipality.parse().ok()?,
        school: match v.school.as_str() {
            "" => None,
            code => Some(code.parse().ok()?),
        },
        absent_since: date(&v.absent_since)?,
        status: status_from_pb(v.status).ok()?,
        offer_date: date(&v.offer_date),
        age: v.age,
        updated_at: chrono::DateTime::parse_from_rfc3339(&v.updated_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now()),
        address_under_investigation: v.address_under_investigation,
        exemption_5c_requested: v.exemption_5c_requested,
        awaiting_mbo_intake: v.awaiting_mbo_intake,
        exemption_term: exemption_term_from_pb(v.exemption_term).ok().flatten(),
        exemption_end: date(&v.exemption_end),
        closed_on: date(&v.closed_on),
        age_on: date(&v.age_on),
        offer_kind: offer_kind_from_pb(v.offer_kind).ok().flatten(),
        offer_place_from: date(&v.offer_place_from),
        offer_parents_agreed: v.offer_parents_agreed,
    })
}

pub fn due_band_to_pb(b: crate::clock::DueBand) -> pb::DueBand {
    match b {
        crate::clock::DueBand::Weeks4 => pb::DueBand::Weeks4,
        crate::clock::DueBand::Weeks8 => pb::DueBand::Weeks8,
        crate::clock::DueBand::Weeks10 => pb::DueBand::Weeks10,
        crate::clock::DueBand::Weeks12 => pb::DueBand::Weeks12,
        crate::clock::DueBand::OverThreeMonths => pb::DueBand::OverThreeMonths,
    }
}

pub fn due_line(l: &crate::clock::DueLine) -> pb::DueLine {
    pb::DueLine {
        pupil_pseudonym: l.pupil_pseudonym.clone(),
        weeks: l.weeks,
        days: l.days,
        band: due_band_to_pb(l.band).into(),
        escalation_step: l.escalation.clone(),
        categories: l
            .categories
            .iter()
            .map(|c| category_to_pb(*c).into())
            .collect(),
        sectors: l.sectors.iter().map(|s| sector_to_pb(*s).into()).collect(),
        schools: l.schools.clone(),
        residence_municipalities: l.municipalities.clone(),
        holders: l
            .holders
            .iter()
            .map(|(partner, record)| pb::SignalHolder {
                partner: partner.clone(),
                source_record_id: record.clone(),
            })
            .collect(),
    }
}

pub fn report_cell(c: &crate::clock::SuppressedCell) -> pb::ReportCell {
    pb::ReportCell {
        date: c.date.to_string(),
        scope: c.scope.clone(),
        row: c.row.code().to_owned(),
        column: c.column.code().to_owned(),
        count: c.value,
    }
}

fn audit_action(a: crate::audit::Action) -> pb::AuditAction {
    use crate::audit::Action as A;
    match a {
        A::Ingest => pb::AuditAction::Ingest,
        A::Query => pb::AuditAction::Query,
        A::Disclose => pb::AuditAction::Disclose,
        A::Receive => pb::AuditAction::Receive,
        A::CaseOpen => pb::AuditAction::CaseOpen,
        A::CaseClose => pb::AuditAction::CaseClose,
        A::ShareCase => pb::AuditAction::ShareCase,
        A::PolicyLoad => pb::AuditAction::PolicyLoad,
        A::ConfigChange => pb::AuditAction::ConfigChange,
        A::Purge => pb::AuditAction::Purge,
        A::FederatedQuery => pb::AuditAction::FederatedQuery,
        A::AuditAccess => pb::AuditAction::AuditAccess,
        A::CaseAccept => pb::AuditAction::CaseAccept,
        A::CaseDecline => pb::AuditAction::CaseDecline,
        A::Backup => pb::AuditAction::Backup,
        A::Pseudonymise => pb::AuditAction::Pseudonymise,
        A::CaseOffer => pb::AuditAction::CaseOffer,
    }
}

fn audit_decision(d: crate::audit::Decision) -> pb::AuditDecision {
    match d {
        crate::audit::Decision::Allow => pb::AuditDecision::Allow,
        crate::audit::Decision::Deny => pb::AuditDecision::Deny,
    }
}

pub fn audit_entry(e: &crate::audit::Entry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        time: e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        trace_id: e.trace_id.clone(),
        span_id: e.span_id.clone(),
        node_oin: e.node_oin.clone(),
        actor_oin: e.actor_oin.clone(),
        actor_name: e.actor_name.clone(),
        actor: e.actor.clone(),
        action: audit_action(e.action).into(),
        routine_flow: e.flow.clone(),
        meeting_type: e.meeting_type.clone(),
        case_id: e.case_id.clone(),
        processing_activity: e.processing_activity.clone(),
        purpose: e.purpose.clone(),
        legal_basis: e.legal_basis.clone(),
        pupil_pseudonyms: e.pupils.clone(),
        data_categories: e.data_categories.clone(),
        decision: audit_decision(e.decision).into(),
        reason: e.reason.clone(),
        policy_version: e.policy_version.clone(),
        count: e.count,
        parent_span_id: e.parent_span_id.clone(),
    }
}

/// An entry as one CSV row, in the order of `rpc::audit::CSV_COLUMNS`.
pub fn audit_row(e: &crate::audit::Entry) -> Vec<String> {
    let p = audit_entry(e);
    let action = p
        .action()
        .as_str_name()
        .trim_start_matches("AUDIT_ACTION_")
        .to_owned();
    let decision = p
        .decision()
        .as_str_name()
        .trim_start_matches("AUDIT_DECISION_")
        .to_owned();
    vec![
        p.seq.to_string(),
        p.time,
        p.trace_id,
        p.span_id,
        p.node_oin,
        p.actor_oin,
        p.actor_name,
        p.actor,
        action,
        p.routine_flow,
        p.meeting_type,
        p.case_id,
        p.processing_activity,
        p.purpose,
        p.legal_basis,
        p.pupil_pseudonyms.join(" "),
        p.data_categories.join(" "),
        decision,
        p.reason,
        p.policy_version,
        p.count.to_string(),
    ]
}

/// The outcome of verifying the audit log.
pub fn verify_response(
    result: Result<crate::audit::VerifyReport, crate::audit::VerifyError>,
) -> pb::VerifyResponse {
    match result {
        Ok(r) => pb::VerifyResponse {
            ok: true,
            entries: r.entries,
            checkpoints_checked: r.checkpoints_checked,
            cosignatures_checked: r.cosignatures_checked,
            first_bad_seq: 0,
            problem: String::new(),
            root_hash: r.root.to_vec(),
            size: r.size,
        },
        Err(crate::audit::VerifyError::Tamper(t)) => pb::VerifyResponse {
            ok: false,
            first_bad_seq: t.first_bad.map(|r| r.first).unwrap_or(0),
            problem: t.to_string(),
            ..Default::default()
        },
        Err(e) => pb::VerifyResponse {
            ok: false,
            problem: format!("the log could not be read: {e}"),
            ..Default::default()
        },
    }
}
