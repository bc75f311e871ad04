//! Numbers a spec cannot hold: `.nan`, `.inf` and floats beyond a 32-bit float's range.
//!
//! YAML can write not-a-number and the infinities, and JSON (what typed parameters are
//! read from) cannot hold them, so [`super::super::document`] refuses to resolve them, and
//! refuses floats past ±3.4e38 too: the fields that read them as `f32` would get an
//! infinity. Such a scalar can be anywhere (a stage parameter, a model, an ablation's
//! values, a `--set` value), so one walk over the whole document reports each one at its
//! own place; the checks that convert a part of the document to JSON then leave that part
//! out without a second error. This is the only place that reports them.

use super::{Checker, Place};
use crate::spec::document::{Node, NodeValue};
use crate::spec::error::SpecError;
use crate::spec::path::FieldPath;

impl Checker<'_> {
    /// Reports every number in the document that is not finite or does not fit an `f32`.
    pub(super) fn check_numbers(&mut self) {
        let doc = self.doc;
        self.numbers_below(doc, FieldPath::root());
    }

    fn numbers_below(&mut self, node: &Node, path: FieldPath) {
        match &node.value {
            NodeValue::Scalar(scalar) => {
                if scalar.resolve().is_err() {
                    self.report(
                        path,
                        Place::Value,
                        SpecError::NotFinite {
                            value: scalar.text.clone(),
                        },
                    );
                }
            }
            NodeValue::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.numbers_below(item, path.index(i));
                }
            }
            NodeValue::Mapping(entries) => {
                for entry in entries {
                    self.numbers_below(&entry.value, path.key(entry.key.clone()));
                }
            }
        }
    }
}
