//! Tests of binding a case-context permit to its case ([`Policy::bind_case`]) against the
//! shipped policy: a case permit reaches nothing until bound, binds only to an open, accepted
//! case of the claimed meeting and purpose with caller and holder at the table, and is then
//! narrowed to the lead's scope and carries the case's pupils.

use super::*;
use crate::cases::{Acceptance, Case, Party};

const SHIPPED: &str = include_str!("../../policies/groningen.toml");
const SWV_VO: &str = "00000099000000000001";
const LEERPLICHT: &str = "00000099000000000004";
const WIJ: &str = "00000099000000000005";
const PUPIL: &str = "v1.AAAAAAAAAAAAAAAAAAAAAA";

fn policy() -> Policy {
    Policy::parse(SHIPPED, "groningen.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn party(oin: &str) -> Party {
    Party {
        oin: oin.parse().unwrap(),
        name: format!("party {oin}"),
    }
}

/// An open, accepted aoj-team-vo case led by the SWV VO, with Leerplicht at the table.
fn case() -> Case {
    Case {
        id: "c0ffee".into(),
        meeting_type: "aoj-team-vo".into(),
        purpose: "passend-aanbod".into(),
        pupils: vec![PUPIL.parse().unwrap()],
        participants: vec![party(LEERPLICHT)],
        lead: party(SWV_VO),
        open: true,
        opened_at: chrono::Utc::now(),
        closed_at: None,
        acceptance: Acceptance::Accepted,
    }
}

/// Leerplicht's permit to read at the SWV VO under the case context.
fn case_permit(policy: &Policy) -> Permit {
    let decision = policy.evaluate(&AccessRequest {
        caller_oin: LEERPLICHT,
        holder_oin: SWV_VO,
        role: "leerplichtambtenaar",
        legal_basis: "lpw-art22",
        purpose: "passend-aanbod",
        context: Context::Case {
            meeting: "aoj-team-vo",
        },
    });
    decision
        .into_result()
        .unwrap_or_else(|d| panic!("denied: {d}"))
}

fn claim() -> CaseClaim<'static> {
    CaseClaim {
        meeting_type: "aoj-team-vo",
        purpose: "passend-aanbod",
        caller_oin: LEERPLICHT,
        holder_oin: SWV_VO,
    }
}

#[test]
fn a_case_permit_awaits_its_case_and_binds_to_it_narrowed() {
    let policy = policy();
    let permit = case_permit(&policy);
    assert!(permit.awaits_case(), "unbound, it reaches nothing");
    assert_eq!(permit.case(), None);
    let bound = policy
        .bind_case(permit, case(), &claim())
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(!bound.awaits_case());
    assert_eq!(
        bound.case().map(|c| c.pupils.clone()),
        Some(vec![PUPIL.parse().unwrap()])
    );
    let swv_schools = Scope::Schools(policy.party_by_oin(SWV_VO).unwrap().schools.clone());
    assert_eq!(
        bound.scope(),
        &Scope::Both(
            Box::new(Scope::Municipalities(vec!["GM0014"
                .parse()
                .expect("a CBS code")])),
            Box::new(swv_schools)
        )
    );
}

#[test]
fn a_case_permit_binds_to_no_other_case() {
    let policy = policy();
    let refused = |case: Case, claim: CaseClaim<'_>| {
        policy
            .bind_case(case_permit(&policy), case, &claim)
            .map(|_| ())
            .expect_err("bound where it must not")
            .reason
    };
    let closed = Case {
        open: false,
        ..case()
    };
    assert!(refused(closed, claim()).contains("is closed"));
    let pending = Case {
        acceptance: Acceptance::Pending,
        ..case()
    };
    assert!(refused(pending, claim()).contains("has not been accepted"));
    let other_purpose = CaseClaim {
        purpose: "jgz-advies",
        ..claim()
    };
    assert!(refused(case(), other_purpose).contains("is not the purpose of case"));
    let other_meeting = CaseClaim {
        meeting_type: "aoj-team-po",
        ..claim()
    };
    assert!(refused(case(), other_meeting).contains("belongs to meeting"));
    let without_caller = Case {
        participants: vec![party(WIJ)],
        ..case()
    };
    assert!(refused(without_caller, claim()).contains("does not take part"));
}

#[test]
fn a_routine_flow_permit_is_never_bound_to_a_case() {
    let policy = policy();
    let permit = policy
        .evaluate(&AccessRequest {
            caller_oin: LEERPLICHT,
            holder_oin: SWV_VO,
            role: "leerplichtambtenaar",
            legal_basis: "lpw-art21",
            purpose: "verzuimaanpak",
            context: Context::RoutineFlow {
                flow: "verzuimmelding",
            },
        })
        .into_result()
        .unwrap_or_else(|d| panic!("denied: {d}"));
    assert!(!permit.awaits_case());
    assert_eq!(permit.case(), None);
    let reason = policy
        .bind_case(permit, case(), &claim())
        .map(|_| ())
        .expect_err("a flow permit bound to a case")
        .reason;
    assert!(reason.contains("not for a case context"), "{reason}");
}
