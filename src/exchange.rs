//! What a permitted request may see: selects the signals that fall within a permit's scope, its
//! case's pupils and the request's filter, and only rows of the signal categories the role may
//! see. Never decides whether a request is allowed (that is the policy's `evaluate`), and cannot
//! be called without the [`Permit`] it produced (which only the policy can make).

use crate::ids::{MunicipalityCode, SchoolCode};
use crate::policy::{Permit, Scope};
use crate::signal::{Category, Signal, Status};
use crate::store::{SignalFilter, Store, StoreError};
use chrono::NaiveDate;

/// The filters of an exchange query (all set filters must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeFilter {
    pub residence_municipality: Option<MunicipalityCode>,
    pub school: Option<SchoolCode>,
    pub categories: Vec<Category>,
    pub status: Option<Status>,
    pub open_longer_than_days: Option<u32>,
}

impl ExchangeFilter {
    fn matches(&self, s: &Signal, today: NaiveDate) -> bool {
        self.residence_municipality
            .as_ref()
            .is_none_or(|m| *m == s.residence_municipality)
            && self
                .school
                .as_ref()
                .is_none_or(|c| Some(c) == s.school.as_ref())
            && (self.categories.is_empty() || self.categories.contains(&s.category))
            && self.status.is_none_or(|st| st == s.status)
            && self.open_longer_than_days.is_none_or(|days| {
                s.status == Status::Open && (today - s.absent_since).num_days() > i64::from(days)
            })
    }
}

/// Whether a signal lies within the permit's scope.
pub fn in_scope(scope: &Scope, s: &Signal) -> bool {
    match scope {
        Scope::Unrestricted => true,
        Scope::Municipalities(codes) => codes.contains(&s.residence_municipality),
        Scope::Schools(brins) => s
            .school
            .as_ref()
            .is_some_and(|school| brins.iter().any(|b| school.is_of(b))),
        Scope::Both(a, b) => in_scope(a, s) && in_scope(b, s),
    }
}

/// The signals a permitted request may receive (before field minimisation to
/// [`Permit::fields`], which the transport applies as it renders the answer). A permit bound to
/// a case reaches only that case's pupils; a case-context permit not bound to its case reaches
/// nothing.
pub fn select(
    store: &Store,
    permit: &Permit,
    filter: &ExchangeFilter,
    today: NaiveDate,
) -> Result<Vec<Signal>, StoreError> {
    if permit.awaits_case() {
        return Ok(Vec::new());
    }
    let case = permit.case();
    let candidates = match case {
        Some(case) => {
            let mut all = Vec::new();
            for pupil in &case.pupils {
                all.extend(store.list(&SignalFilter {
                    pupil_pseudonym: Some(pupil.to_string()),
                    ..SignalFilter::default()
                })?);
            }
            all
        }
        None => match permit.scope() {
            Scope::Municipalities(codes) => {
                let mut all = Vec::new();
                for code in codes {
                    all.extend(store.list(&SignalFilter {
                        residence_municipality: Some(code.clone()),
                        ..SignalFilter::default()
                    })?);
                }
                all
            }
            _ => store.list(&SignalFilter::default())?,
        },
    };
    Ok(candidates
        .into_iter()
        .filter(|s| permit.signal_categories().contains(&s.category))
        .filter(|s| in_scope(permit.scope(), s))
        .filter(|s| case.is_none_or(|c| c.covers_pupil(&s.pupil_pseudonym)))
        .filter(|s| filter.matches(s, today))
        .collect())
}
