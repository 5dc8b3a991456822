//! Conversions between the generated proto types and the domain types, in both directions. The
//! only place that knows both; everything else uses the domain types.

use crate::pb;
use crate::signal::{Category, RawSignal, Sector, Signal, Status};

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
        Err(_) => Err(format!("{value} is not a known category")),
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
        Err(_) => Err(format!("{value} is not a known sector")),
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
        Err(_) => Err(format!("{value} is not a known status")),
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
    }
}

pub fn signal_view(s: &Signal) -> pb::SignalView {
    pb::SignalView {
        source_record_id: s.source_record_id.clone(),
        pupil_pseudonym: s.pupil_pseudonym.clone(),
        category: category_to_pb(s.category).into(),
        sector: sector_to_pb(s.sector).into(),
        residence_municipality: s.residence_municipality.clone(),
        school: s.school.clone(),
        absent_since: s.absent_since.to_string(),
        status: status_to_pb(s.status).into(),
        offer_date: s.offer_date.map(|d| d.to_string()).unwrap_or_default(),
        age: s.age,
        updated_at: s.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}
