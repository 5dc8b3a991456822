//! `pactgate policy check`: checks a policy file (or, by its `[counting]` table, a counting
//! rules file) and prints the FG's matrix or every error with its file, line and column.

use anyhow::bail;

/// True if a TOML file is a counting rules file (it has a `[counting]` table).
pub(super) fn is_counting_file(file: &std::path::Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("counting"))
}

pub(super) fn counting_check(file: &std::path::Path) -> anyhow::Result<()> {
    match crate::clock::CountingRules::load(file) {
        Ok(rules) => {
            println!(
                "{}: valid counting rules: {}",
                file.display(),
                rules.rule_names().join(", ")
            );
            println!(
                "suppression threshold {}, retention {} days after closing",
                rules.suppression_threshold(),
                rules.retention_days()
            );
            Ok(())
        }
        Err(errors) => {
            eprintln!("{errors}");
            bail!("{}: the counting rules are not valid", file.display())
        }
    }
}

pub(super) fn policy_check(file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    if is_counting_file(file) {
        return counting_check(file);
    }
    match crate::policy::Policy::load(file) {
        Ok(policy) if json => {
            println!("{}", serde_json::to_string_pretty(&policy.matrix_json())?);
            Ok(())
        }
        Ok(policy) => {
            println!("{}: valid, version {}", file.display(), policy.version());
            for warning in policy.warnings() {
                println!("warning: {warning}");
            }
            println!();
            print!("{}", policy.matrix());
            Ok(())
        }
        Err(errors) => {
            eprintln!("{errors}");
            bail!(
                "{}: {} error(s); the policy is not valid",
                file.display(),
                errors.0.len()
            )
        }
    }
}
