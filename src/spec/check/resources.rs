//! Checking a `resources` mapping (the spec's, or a stage's): what a cluster job asks for.
//!
//! The fields are read as typed values, memory may be a bare number of megabytes, and the
//! spellings Slurm accepts for memory and time are checked by [`Resources::problems`]. It
//! deliberately does not check that a cluster could grant them: only Slurm knows that.

use serde_json::Value;

use super::{Checker, Place, is_null};
use crate::spec::error::SpecError;
use crate::spec::path::FieldPath;
use crate::stage::Resources;

/// The fields of a `resources` mapping.
const RESOURCE_FIELDS: &[&str] = &["gpus", "cpus", "mem", "time", "partition", "extra"];

impl Checker<'_> {
    /// A `resources` mapping, with Slurm's spellings of memory and time checked.
    pub(super) fn check_resources(&mut self, path: &FieldPath) -> Resources {
        if self.doc.at(path).is_none_or(is_null) {
            return Resources::default();
        }
        if !self.expect_mapping(
            path,
            "a mapping of `gpus`, `cpus`, `mem`, `time`, `partition`",
        ) {
            return Resources::default();
        }
        self.unknown_keys(path, RESOURCE_FIELDS);
        // Memory may be written as a bare number of megabytes.
        let text = |checker: &mut Self, field: &str| -> Option<String> {
            match checker.typed::<Value>(&path.key(field))? {
                Value::Number(n) => Some(n.to_string()),
                _ => checker.typed(&path.key(field)),
            }
        };
        let resources = Resources {
            gpus: self.typed(&path.key("gpus")),
            cpus: self.typed(&path.key("cpus")),
            mem: text(self, "mem"),
            time: text(self, "time"),
            partition: self.typed(&path.key("partition")),
            extra: self.typed(&path.key("extra")).unwrap_or_default(),
        };
        for (field, message, expected) in resources.problems() {
            self.report(
                path.key(field),
                Place::Value,
                SpecError::InvalidValue {
                    message,
                    expected: expected.into(),
                },
            );
        }
        resources
    }
}
