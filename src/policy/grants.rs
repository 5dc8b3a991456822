//! The grants of the policy besides the [`super::Permit`]: a peer lead's sharing of a case with
//! this node ([`CaseShareGrant`]). Decides; never stores. Invariant: a grant is made only here,
//! after every check of the caller, and cannot be copied or made by hand.

use super::Policy;
use crate::cases::Case;

/// A peer's sharing (or closing) of a case with this node, granted by the policy
/// ([`Policy::case_share_grant`]) after checking that the caller is the case's lead, that its
/// organisation type may lead the meeting, and that this node's organisation and every other
/// participant have a seat at it for the case's purpose. Private fields, not `Clone`; storing a
/// shared case ([`crate::cases::CaseStore::put_shared`]) takes it by value, so a case reaches
/// the store only as the policy granted it.
///
/// Storing a shared case without the grant does not compile:
///
/// ```compile_fail
/// use pactgate::cases::{Acceptance, Case, CaseStore};
/// fn keep(store: &CaseStore, case: Case) {
///     let _ = store.put_shared(case, Acceptance::Pending);
/// }
/// ```
///
/// The same code holding the grant compiles:
///
/// ```
/// use pactgate::cases::{Acceptance, CaseStore};
/// use pactgate::policy::CaseShareGrant;
/// fn keep(store: &CaseStore, grant: CaseShareGrant) {
///     let _ = store.put_shared(grant, Acceptance::Pending);
/// }
/// ```
///
/// And a grant cannot be made by hand:
///
/// ```compile_fail
/// let forged = pactgate::policy::CaseShareGrant::default();
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct CaseShareGrant {
    case: Case,
    policy_version: String,
}

impl CaseShareGrant {
    /// The case as it was granted.
    pub fn case(&self) -> &Case {
        &self.case
    }

    /// The version of the policy that granted it.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// The case, to be stored (by [`crate::cases::CaseStore::put_shared`]).
    pub(crate) fn into_case(self) -> Case {
        self.case
    }
}

impl Policy {
    /// Grants `caller_oin` the sharing (or closing) of `case` with the node of `own_oin`: the
    /// caller is the case's lead and may lead its meeting, `own_oin` is a participant (not the
    /// lead), and every participant has a seat at the meeting for the case's purpose. The only
    /// way to make a [`CaseShareGrant`]; the refusal says why.
    pub fn case_share_grant(
        &self,
        case: Case,
        caller_oin: &str,
        own_oin: &str,
    ) -> Result<CaseShareGrant, String> {
        if case.lead.oin != caller_oin {
            return Err("only the lead of a case may share or close it".into());
        }
        if !case.has_participant(own_oin) || case.lead.oin == own_oin {
            return Err("this node's organisation does not take part in the case".into());
        }
        self.check_case_parties(&case.meeting_type, &case.purpose, caller_oin, own_oin)?;
        for p in &case.participants {
            self.check_case_parties(&case.meeting_type, &case.purpose, caller_oin, &p.oin)
                .map_err(|reason| format!("participant {}: {reason}", p.oin))?;
        }
        Ok(CaseShareGrant {
            case,
            policy_version: self.version().to_owned(),
        })
    }
}
