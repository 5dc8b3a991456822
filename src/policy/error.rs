//! What is wrong with a policy file, where, and how to fix it: the checked-TOML framework's
//! [`FileError`] (file, 1-based line and column, message, fix; line 0 when the whole file is
//! meant, e.g. it cannot be read), gathered per file.

use crate::toml_check::FileError;
use std::fmt;

/// One problem in a policy file.
pub type PolicyError = FileError;

/// All problems found in a policy file, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::toml_check::write_lines(f, &self.0, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize) -> PolicyError {
        PolicyError {
            file: "p.toml".into(),
            line,
            column: 7,
            message: "bad".into(),
            fix: "mend it".into(),
        }
    }

    #[test]
    fn displays_one_error_per_line() {
        let errors = PolicyErrors(vec![error(3), error(0)]);
        assert_eq!(
            errors.to_string(),
            "p.toml:3:7: bad — mend it\np.toml: bad — mend it"
        );
    }
}
