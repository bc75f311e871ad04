//! Checking `ablations`: the axes a spec is crossed over.
//!
//! Within an axis the lists are zipped, so they must be as long as each other; the
//! settings must get distinct variant names; each path must name a field of this spec,
//! and `seeds` lists non-negative integers. It deliberately does not apply any variant:
//! a variant is checked by loading the spec with its overrides, like `--set`.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Checker, Place, TOP_FIELDS};
use crate::spec::document::{Node, NodeValue};
use crate::spec::error::SpecError;
use crate::spec::path::{FieldPath, Segment};
use crate::spec::{AblationAxis, StageSpec};

impl Checker<'_> {
    /// The `ablations` mapping: each axis a zipped mapping of field paths to lists (or
    /// the plain list `seeds`), whose settings have distinct names and whose paths name
    /// fields of this spec.
    pub(super) fn check_ablations(
        &mut self,
        stages: &IndexMap<String, StageSpec>,
    ) -> IndexMap<String, AblationAxis> {
        let path = FieldPath::root().key("ablations");
        let mut axes = IndexMap::new();
        if !self.expect_mapping(&path, "a mapping of axis names to axes") {
            return axes;
        }
        // Borrowed from the document, not from `self`, so checks can report meanwhile.
        let doc = self.doc;
        let entries = doc.at(&path).and_then(Node::as_mapping).unwrap_or(&[]);
        for entry in entries {
            let axis_path = path.key(entry.key.clone());
            let axis = match &entry.value.value {
                NodeValue::Sequence(_) => self
                    .typed::<Vec<Value>>(&axis_path)
                    .map(AblationAxis::Values),
                NodeValue::Mapping(_) => self
                    .typed::<IndexMap<String, Vec<Value>>>(&axis_path)
                    .map(AblationAxis::Fields),
                NodeValue::Scalar(_) => {
                    self.report(
                        axis_path.clone(),
                        Place::Value,
                        SpecError::WrongType {
                            expected: "a mapping of field paths to lists of values, or a list"
                                .into(),
                            found: entry.value.type_name().into(),
                        },
                    );
                    None
                }
            };
            let Some(axis) = axis else { continue };
            match &axis {
                AblationAxis::Values(values) => {
                    if entry.key != "seeds" {
                        self.report(
                            axis_path.clone(),
                            Place::Value,
                            SpecError::WrongType {
                                expected: "a mapping of field paths to lists of values (only `seeds` is a plain list)".into(),
                                found: "a sequence".into(),
                            },
                        );
                    } else if let Some(i) = values.iter().position(|v| v.as_u64().is_none()) {
                        self.report(
                            axis_path.index(i),
                            Place::Value,
                            SpecError::WrongType {
                                expected: "a non-negative integer seed".into(),
                                found: describe_json(&values[i]),
                            },
                        );
                    }
                }
                AblationAxis::Fields(fields) => {
                    let lengths: BTreeSet<usize> = fields.values().map(Vec::len).collect();
                    if lengths.len() > 1 {
                        self.report(
                            axis_path.clone(),
                            Place::Key,
                            SpecError::InvalidValue {
                                message:
                                    "the lists of one axis are zipped, but their lengths differ"
                                        .into(),
                                expected: "lists of equal length".into(),
                            },
                        );
                    }
                    // Variants are named by the axis's `name` list, else its first path's
                    // values: those must tell the settings apart.
                    let labels = fields
                        .get(crate::spec::variants::NAME_KEY)
                        .or_else(|| fields.values().next());
                    if let Some(labels) = labels {
                        let distinct: BTreeSet<String> =
                            labels.iter().map(crate::spec::variants::label).collect();
                        if distinct.len() < labels.len() {
                            self.report(
                                axis_path.clone(),
                                Place::Key,
                                SpecError::InvalidValue {
                                    message: "two settings of this axis would have the same variant name".into(),
                                    expected: "distinct values in the first list, or a `name` list naming each setting".into(),
                                },
                            );
                        }
                    }
                    for (field, values) in fields {
                        let field_path = axis_path.key(field.clone());
                        if field == crate::spec::variants::NAME_KEY {
                            continue;
                        }
                        if values.is_empty() {
                            self.report(
                                field_path.clone(),
                                Place::Value,
                                SpecError::InvalidValue {
                                    message: "an axis needs at least one value".into(),
                                    expected: "a non-empty list".into(),
                                },
                            );
                        }
                        match FieldPath::parse(field) {
                            Some(target) => {
                                if let Some(Segment::Key(first)) = target.0.first() {
                                    let stage_ok = match (first.as_str(), target.0.get(1)) {
                                        ("stages", Some(Segment::Key(stage))) => {
                                            stages.contains_key(stage)
                                        }
                                        ("stages", _) => false,
                                        _ => TOP_FIELDS.contains(&first.as_str()),
                                    };
                                    if !stage_ok {
                                        self.report(
                                            field_path,
                                            Place::Key,
                                            SpecError::InvalidValue {
                                                message: format!(
                                                    "`{field}` names no field of this spec"
                                                ),
                                                expected: "a path such as `stages.train.with.lr`"
                                                    .into(),
                                            },
                                        );
                                    }
                                }
                            }
                            None => self.report(
                                field_path,
                                Place::Key,
                                SpecError::InvalidValue {
                                    message: format!("`{field}` is not a field path"),
                                    expected: "a path such as `stages.train.with.lr`".into(),
                                },
                            ),
                        }
                    }
                }
            }
            axes.insert(entry.key.clone(), axis);
        }
        axes
    }
}

fn describe_json(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) if n.is_f64() => "a float".into(),
        Value::Number(n) if n.as_i64().is_some_and(|i| i < 0) => "a negative integer".into(),
        Value::Number(_) => "an integer".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a sequence".into(),
        Value::Object(_) => "a mapping".into(),
    }
}
