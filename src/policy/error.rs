//! What is wrong with a policy file, where, and how to fix it. Every error names the file and
//! the 1-based line (0 when the whole file is meant, e.g. it cannot be read).

use std::fmt;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub message: String,
    pub fix: String,
}

impl PolicyError {
    fn render(&self) -> String {
        match self.line {
            0 => format!("{}: {} — {}", self.file, self.message, self.fix),
            line => format!("{}:{}: {} — {}", self.file, line, self.message, self.fix),
        }
    }
}

/// All problems found in a policy file, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize) -> PolicyError {
        PolicyError {
            file: "p.toml".into(),
            line,
            message: "bad".into(),
            fix: "mend it".into(),
        }
    }

    #[test]
    fn displays_one_error_per_line() {
        let errors = PolicyErrors(vec![error(3), error(0)]);
        assert_eq!(
            errors.to_string(),
            "p.toml:3: bad — mend it\np.toml: bad — mend it"
        );
    }
}
