//! Checking the spec's `name`, which becomes file names.
//!
//! `accord report` writes `NAME-report.html` in the current folder, and the store keeps
//! each spec's latest keys under a file named after it; a name that cannot be a file name
//! (empty, too long, a `/`, `..`, a NUL) would otherwise fail, or write elsewhere, after
//! the work is done. So it is a validation error here, at the name's `file:line:column`.

use super::{Checker, Place};
use crate::spec::error::{SPEC_NAME_MAX, SpecError};
use crate::spec::path::FieldPath;

impl Checker<'_> {
    /// The spec's `name` can be a file name.
    pub(super) fn check_spec_name(&mut self, name: &str) {
        if let Some(problem) = spec_name_problem(name) {
            self.report(
                FieldPath::root().key("name"),
                Place::Value,
                SpecError::InvalidSpecName {
                    name: name.to_string(),
                    problem,
                },
            );
        }
    }
}

/// Why `name` cannot be a file name; `None` when it can.
pub(crate) fn spec_name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("is empty".into());
    }
    if name.len() > SPEC_NAME_MAX {
        return Some(format!(
            "is {} bytes long, more than the {SPEC_NAME_MAX} a file name can take here",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\')) {
        return Some(format!("contains `{c}`, which separates folders in a path"));
    }
    if name.chars().any(char::is_control) {
        return Some("contains a control character".into());
    }
    if matches!(name, "." | "..") {
        return Some("names a folder, not a file".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_file_names() {
        for name in [
            "",
            " ",
            "a/b",
            "../x",
            "a\\b",
            "a\0b",
            ".",
            "..",
            &"x".repeat(101),
        ] {
            assert!(spec_name_problem(name).is_some(), "{name:?}");
        }
        for name in [
            "quickstart",
            "paper-like",
            "my experiment",
            "v1.2",
            &"x".repeat(100),
        ] {
            assert_eq!(spec_name_problem(name), None, "{name:?}");
        }
    }
}
