//! Reading serde's error messages back into located spec errors.
//!
//! Typed parts of a spec (models, stage parameters, top-level fields) are deserialised with
//! `serde_path_to_error`, which says *where* below the field the problem is; serde says
//! *what* only as an English sentence. [`classify`] turns the sentence into a [`SpecError`]
//! (unknown field, missing field, unknown variant, wrong type, invalid value) and says
//! whether to point at the key or the value; [`Checker::report_serde`] joins the two and
//! reports it. It deliberately does not decide which fields a type has: that is serde's.

use super::{Checker, Place};
use crate::spec::error::SpecError;
use crate::spec::path::FieldPath;

impl Checker<'_> {
    /// Reports a deserialisation error found below `base`.
    pub(super) fn report_serde(
        &mut self,
        base: &FieldPath,
        e: serde_path_to_error::Error<serde_json::Error>,
    ) {
        let mut path = base.clone();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => path = path.index(*index),
                serde_path_to_error::Segment::Map { key } => path = path.key(key.clone()),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.into_inner().to_string();
        let (error, place) = classify(&message);
        if let SpecError::UnknownField { field, .. } = &error
            && path.last_key() != Some(field.as_str())
        {
            path = path.key(field.clone());
        }
        if let SpecError::MissingField { field } = &error {
            path = path.key(field.clone());
        }
        self.report(path, place, error);
    }
}

/// Turns a serde error message into a [`SpecError`] and where to point it.
pub(super) fn classify(message: &str) -> (SpecError, Place) {
    let backticked = |text: &str| -> Vec<String> {
        text.split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        return (
            SpecError::UnknownField {
                field: field.to_string(),
                expected: backticked(tail),
            },
            Place::Key,
        );
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return (
            SpecError::MissingField {
                field: field.to_string(),
            },
            Place::Value,
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, tail) = rest.split_once('`').unwrap_or((rest, ""));
        return (
            SpecError::UnknownVariant {
                value: value.to_string(),
                expected: backticked(tail),
            },
            Place::Value,
        );
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        return (
            SpecError::WrongType {
                found: found.to_string(),
                expected: humanise_expected(expected),
            },
            Place::Value,
        );
    }
    for prefix in ["invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (found, expected) = rest
                .split_once(", expected ")
                .unwrap_or((rest, "another value"));
            return (
                SpecError::InvalidValue {
                    message: found.to_string(),
                    expected: humanise_expected(expected),
                },
                Place::Value,
            );
        }
    }
    (
        SpecError::InvalidValue {
            message: message.to_string(),
            expected: "a valid value".into(),
        },
        Place::Value,
    )
}

/// Rust type names in serde messages, in words a spec author uses.
fn humanise_expected(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "a string" | "a sequence" => expected.into(),
        "a map" | "map" => "a mapping".into(),
        other if other.starts_with("struct ") => "a mapping".into(),
        other if other.starts_with("enum ") => "one of the listed values".into(),
        other => other.into(),
    }
}
