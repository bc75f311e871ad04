//! Errors in a stage's `with:` that serde cannot place by itself.
//!
//! `rollout`, `grpo` and `evaluate` flatten the dialogue settings they share into their
//! parameters (`#[serde(flatten)]`). serde reads flattened fields from a buffer, which
//! costs two things: an unknown field is reported without the list of fields the kind
//! takes, and a wrong value of a flattened field is reported at `with` itself. The list
//! comes from the kind's schema instead ([`StageKind::param_names`]); the field is found
//! by leaving each one out in turn: the first whose absence makes the error go away (or
//! become another) is the one. Everything else goes to [`Checker::report_serde`].

use serde_json::Value;

use super::serde_errors::classify;
use super::{Checker, Place};
use crate::spec::error::SpecError;
use crate::spec::path::FieldPath;
use crate::stage::StageKind;

impl Checker<'_> {
    /// Reports `e`, found while `kind` read the stage's `with` (at `with_path`).
    pub(super) fn report_params_error(
        &mut self,
        kind: &dyn StageKind,
        with_path: &FieldPath,
        with: &Value,
        e: serde_path_to_error::Error<serde_json::Error>,
    ) {
        if let Some(field) = flattened_culprit(kind, with, &e) {
            let (error, place) = classify(&e.into_inner().to_string());
            self.report(with_path.key(field), place, error);
            return;
        }
        let message = e.inner().to_string();
        if let Some(rest) = message.strip_prefix("unknown field `")
            && !rest.contains("expected")
        {
            let field = rest.split('`').next().unwrap_or(rest).to_string();
            let mut path = with_path.clone();
            for segment in e.path().iter() {
                if let serde_path_to_error::Segment::Map { key } = segment {
                    path = path.key(key.clone());
                }
            }
            if path.last_key() != Some(field.as_str()) {
                path = path.key(field.clone());
            }
            let expected = kind.param_names();
            self.report(
                path,
                Place::Key,
                SpecError::UnknownField { field, expected },
            );
            return;
        }
        self.report_serde(with_path, e);
    }
}

/// The field of `with` that `error` (from `kind` reading it) is about, when serde reported
/// it at `with` itself.
fn flattened_culprit(
    kind: &dyn StageKind,
    with: &Value,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> Option<String> {
    let message = error.inner().to_string();
    let about_a_field =
        message.starts_with("unknown field") || message.starts_with("missing field");
    let Value::Object(fields) = with else {
        return None;
    };
    if error.path().iter().next().is_some() || about_a_field {
        return None;
    }
    fields.keys().find_map(|key| {
        let mut without = fields.clone();
        without.remove(key);
        let changed = match kind.resolve(Value::Object(without)) {
            Ok(_) => true,
            Err(other) => other.inner().to_string() != message,
        };
        changed.then(|| key.clone())
    })
}
