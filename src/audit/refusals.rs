//! Refusals that name no pupil (a caller that is no party, a request over a limit, a malformed
//! request), counted per caller and written as one audit entry per caller and time window, so a
//! flood cannot grow the log without bound and no refusal drops out of the count. A refusal that
//! concerns a pupil is never counted here: it stays an entry of its own.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Who was refused, as the certificate names them ("" when it names no usable OIN).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refused {
    pub oin: String,
    pub name: String,
}

/// The refusals of one caller in one window, by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub caller: Refused,
    pub reasons: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// How many refusals in all.
    pub fn total(&self) -> u64 {
        self.reasons.values().sum()
    }

    /// "3 refused: 2 × no party of the covenant, 1 × too many reference dates".
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} × {reason}"))
            .collect();
        format!("{} refused: {}", self.total(), parts.join(", "))
    }
}

/// The running count of the current window.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: Mutex<BTreeMap<Refused, BTreeMap<&'static str, u64>>>,
}

impl Refusals {
    /// Counts one refusal of `caller` for `reason` (a fixed text: never caller data).
    pub fn note(&self, oin: &str, name: &str, reason: &'static str) {
        let caller = Refused {
            oin: oin.chars().take(20).collect(),
            name: name.chars().take(200).collect(),
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(caller).or_default().entry(reason).or_default() += 1;
    }

    /// The window's tallies, one per caller, leaving an empty window behind.
    pub fn take(&self) -> Vec<Tally> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *counts)
            .into_iter()
            .map(|(caller, reasons)| Tally { caller, reasons })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tally_per_caller_with_every_refusal_counted() {
        let refusals = Refusals::default();
        for _ in 0..1000 {
            refusals.note(
                "00000099000000000001",
                "Stranger",
                "no party of the covenant",
            );
        }
        refusals.note(
            "00000099000000000001",
            "Stranger",
            "too many reference dates",
        );
        refusals.note("00000099000000000002", "Other", "no party of the covenant");
        let tallies = refusals.take();
        assert_eq!(tallies.len(), 2);
        assert_eq!(tallies[0].total(), 1001);
        assert_eq!(
            tallies[0].summary(),
            "1001 refused: 1000 × no party of the covenant, 1 × too many reference dates"
        );
        assert!(refusals.take().is_empty(), "the window starts empty again");
    }
}
