//! Checking `ablations`: the axes a spec is crossed over.
//!
//! Within an axis the lists are zipped, so they must be as long as each other; the
//! settings must get distinct variant names and no setting may repeat another (it would
//! run the same variant twice); each path must name a field of this spec, and no two paths
//! may set the same field (or one inside the other); `seeds` lists distinct non-negative
//! integers; axis names must read back from variant names (see [`crate::spec::variants`]).
//! It deliberately does not apply any variant: a variant is checked by loading the spec
//! with its overrides, like `--set`.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Checker, Place, TOP_FIELDS};
use crate::spec::document::{Node, NodeValue};
use crate::spec::error::SpecError;
use crate::spec::path::{FieldPath, Segment};
use crate::spec::variants::{NAME_KEY, SEEDS_AXIS, is_axis_name, label};
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
        let has_seeds = entries.iter().any(|e| e.key == SEEDS_AXIS);
        // Every path set so far: (path, its axis, the path as written).
        let mut set: Vec<(FieldPath, String, String)> = Vec::new();
        for entry in entries {
            let axis_path = path.key(entry.key.clone());
            if !is_axis_name(&entry.key) || (has_seeds && entry.key == "seed") {
                self.report(
                    axis_path.clone(),
                    Place::Key,
                    SpecError::InvalidAxisName {
                        name: entry.key.clone(),
                    },
                );
            }
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
                    if entry.key != SEEDS_AXIS {
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
                    } else {
                        for j in 0..values.len() {
                            if let Some(first) = (0..j).find(|&i| values[i] == values[j]) {
                                self.report(
                                    axis_path.index(j),
                                    Place::Value,
                                    SpecError::DuplicateSetting {
                                        axis: entry.key.clone(),
                                        label: label(&values[j]),
                                        first,
                                    },
                                );
                            }
                        }
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
                    self.check_settings(&entry.key, &axis_path, fields);
                    for (field, values) in fields {
                        let field_path = axis_path.key(field.clone());
                        if field == NAME_KEY {
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
                                let overlapping = set.iter().find(|(other, ..)| {
                                    other.0.starts_with(&target.0) || target.0.starts_with(&other.0)
                                });
                                if let Some((_, other_axis, other_path)) = overlapping {
                                    self.report(
                                        field_path.clone(),
                                        Place::Key,
                                        SpecError::OverlappingAblationPaths {
                                            path: field.clone(),
                                            other_axis: other_axis.clone(),
                                            other_path: other_path.clone(),
                                        },
                                    );
                                }
                                set.push((target.clone(), entry.key.clone(), field.clone()));
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

impl Checker<'_> {
    /// The settings of a fields axis: no setting repeats another, and the labels that name
    /// them in variants (the `name` list's, else the first path's values) differ.
    fn check_settings(
        &mut self,
        axis: &str,
        axis_path: &FieldPath,
        fields: &IndexMap<String, Vec<Value>>,
    ) {
        let count = fields.values().map(Vec::len).min().unwrap_or(0);
        let Some((first_path, labels)) = fields
            .get_key_value(NAME_KEY)
            .or_else(|| fields.iter().next())
        else {
            return;
        };
        let same_setting = |i: usize, j: usize| {
            fields
                .values()
                .all(|values| same_value(&values[i], &values[j]))
        };
        let mut named_alike = false;
        for j in 0..count {
            if let Some(first) = (0..j).find(|&i| same_setting(i, j)) {
                self.report(
                    axis_path.key(first_path.clone()).index(j),
                    Place::Value,
                    SpecError::DuplicateSetting {
                        axis: axis.to_string(),
                        label: label(&labels[j]),
                        first,
                    },
                );
            } else if (0..j).any(|i| label(&labels[i]) == label(&labels[j])) {
                named_alike = true;
            }
        }
        if named_alike {
            self.report(
                axis_path.clone(),
                Place::Key,
                SpecError::InvalidValue {
                    message: "two settings of this axis would have the same variant name".into(),
                    expected:
                        "distinct values in the first list, or a `name` list naming each setting"
                            .into(),
                },
            );
        }
    }
}

/// Whether two ablation values set a field alike: numbers by value (`0` and `0.0` are
/// the same learning rate), everything else by its canonical JSON.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => crate::canonical::to_string(a) == crate::canonical::to_string(b),
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
