//! The one framework for a checked TOML file (the policy, the counting rules): read, parse with
//! spans, collect every problem with file, line, column and what to fix, and hand back a value
//! only if there were none. Knows nothing of what a file means; each checker brings its rules.

use serde::de::DeserializeOwned;
use std::fmt;
use std::ops::Range;
use std::path::Path;

/// One problem in a checked file: where (1-based line and column; line 0 when the whole file is
/// meant, e.g. it cannot be read) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// What to change; may be empty when the message says it all.
    pub fix: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.message)?,
            line => write!(f, "{}:{line}:{}: {}", self.file, self.column, self.message)?,
        }
        if !self.fix.is_empty() {
            write!(f, " — {}", self.fix)?;
        }
        Ok(())
    }
}

impl FileError {
    /// A problem with the whole file (it cannot be read, say).
    pub fn whole_file(file: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Writes errors one per line, each after `indent`.
pub fn write_lines(f: &mut fmt::Formatter<'_>, errors: &[FileError], indent: &str) -> fmt::Result {
    for (i, error) in errors.iter().enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        write!(f, "{indent}{error}")?;
    }
    Ok(())
}

/// Reads a file as text; `what` names it in the error ("the policy file").
pub fn read(path: &Path, what: &str) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|e| {
        FileError::whole_file(
            &path.display().to_string(),
            format!("cannot read {what}: {e}"),
            "check the path and that the file is readable UTF-8 text",
        )
    })
}

/// Parses TOML into its raw (spanned) form; a syntax or shape error points at its place.
pub fn parse<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, FileError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map_or((0, 0), |s| Positions::new(text).line_col(s.start));
        let message = e.message().trim().to_string();
        let fix = if message.starts_with("unknown field") {
            "remove this key or correct its spelling (the allowed keys are listed)"
        } else if message.starts_with("missing field") {
            "add the missing key to this table"
        } else if message.starts_with("invalid type") {
            "write the value in the form the key needs (text in quotes, a list in [ ])"
        } else {
            "correct the TOML syntax on this line"
        };
        FileError {
            file: file.to_owned(),
            line,
            column,
            message,
            fix: fix.to_owned(),
        }
    })
}

/// Byte offsets to 1-based lines and columns (columns count characters, not bytes).
pub struct Positions<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Positions<'a> {
    pub fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, line_starts }
    }

    /// The 1-based line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, column + 1)
    }
}

/// Collects the problems and warnings of one file as a checker walks it; the checked value is
/// handed out only by [`Findings::finish`], and only if there were no errors, so a fallback a
/// checker builds to keep going never reaches a caller.
pub struct Findings<'a> {
    file: &'a str,
    positions: Positions<'a>,
    errors: Vec<FileError>,
    warnings: Vec<String>,
}

impl<'a> Findings<'a> {
    pub fn new(text: &'a str, file: &'a str) -> Self {
        Self {
            file,
            positions: Positions::new(text),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records a problem at the start of `span`, with what to fix.
    pub fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let (line, column) = self.positions.line_col(span.start);
        self.errors.push(FileError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Records something allowed that a reader should look at: "file:line:column: message".
    pub fn warn(&mut self, span: Range<usize>, message: impl AsRef<str>) {
        let (line, column) = self.positions.line_col(span.start);
        self.warnings.push(format!(
            "{}:{line}:{column}: {}",
            self.file,
            message.as_ref()
        ));
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The value with the warnings, if no error was recorded; else every error.
    pub fn finish<T>(self, value: T) -> Result<(T, Vec<String>), Vec<FileError>> {
        match self.errors.is_empty() {
            true => Ok((value, self.warnings)),
            false => Err(self.errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let p = Positions::new("ab\nçd = 1\n");
        assert_eq!(p.line_col(0), (1, 1));
        assert_eq!(p.line_col(3), (2, 1));
        // "ç" is two bytes but one column.
        assert_eq!(p.line_col(6), (2, 3));
        assert_eq!(p.line_col(999), (3, 1));
    }

    #[test]
    fn an_error_reads_file_line_column_message_fix() {
        let mut f = Findings::new("a = 1\nb = 2\n", "x.toml");
        f.error(6..7, "b is wrong", "write c");
        f.warn(0..1, "a is odd");
        let errors = f.finish(()).unwrap_err();
        assert_eq!(errors[0].to_string(), "x.toml:2:1: b is wrong — write c");
        let whole = FileError::whole_file("x.toml", "cannot read it", "");
        assert_eq!(whole.to_string(), "x.toml: cannot read it");
    }

    #[test]
    fn toml_errors_point_at_their_place() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Raw {
            a: u32,
        }
        let e = parse::<Raw>("a = 1\nbee = 2\n", "x.toml").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.fix.starts_with("remove this key"), "{e}");
        let e = parse::<Raw>("a = \"one\"\n", "x.toml").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(e.to_string().starts_with("x.toml:1:5: "), "{e}");
    }
}
