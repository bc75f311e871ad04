//! The spec checker's core: walking the document tree and reporting located errors.
//!
//! [`Checker`] holds the spanned document and the diagnostics found so far; its methods
//! are spread over this folder by concept (numbers JSON cannot hold, models, stages and
//! their parameters, `needs` and the stage graph, ablations, cluster resources, reading
//! serde's error messages), and [`Checker::check`] here runs them in order. Every check
//! reports what it finds and carries on, so one run lists every error; a part that could
//! not be read is left out of the typed [`Spec`], never guessed. This module does not
//! parse YAML (see [`super::document`]), apply `--set` (see [`super::overrides`]) or plan
//! anything.

mod ablations;
mod dependencies;
mod models;
mod numbers;
mod params;
mod resources;
mod serde_errors;
mod spec_name;
mod stages;

use std::path::Path;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;

use super::document::{Node, NodeValue};
use super::error::{Diagnostic, SpecError};
use super::graph::StageDag;
use super::path::FieldPath;
use super::{Backend, Executor, Spec, StageSpec};
use crate::registry::Registry;
use crate::stage::Resolved;

/// The top-level fields of a spec.
const TOP_FIELDS: &[&str] = &[
    "version",
    "name",
    "seed",
    "backend",
    "models",
    "stages",
    "ablations",
    "executor",
    "resources",
];

/// Walks a spec's document tree, collecting a located [`Diagnostic`] for every problem.
pub(super) struct Checker<'a> {
    doc: &'a Node,
    diagnostics: Vec<Diagnostic>,
}

/// What a spec without errors checks into.
pub(super) struct Checked {
    pub spec: Spec,
    /// Each stage's parameters with defaults filled in, by stage name.
    pub params: IndexMap<String, Resolved>,
    /// What each stage waits for, and the order they run in.
    pub graph: StageDag,
}

/// Where to point an error about a field.
enum Place {
    /// The value of the field.
    Value,
    /// The key naming the field (for unknown fields).
    Key,
}

impl<'a> Checker<'a> {
    pub(super) fn new(doc: &'a Node) -> Self {
        Self {
            doc,
            diagnostics: Vec::new(),
        }
    }

    /// Every problem found, in the order found.
    pub(super) fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    fn report(&mut self, path: FieldPath, place: Place, error: SpecError) {
        let key_span = match place {
            Place::Key => self.doc.key_span(&path),
            Place::Value => None,
        };
        let span = key_span.unwrap_or_else(|| match self.doc.at(&path) {
            Some(node) => node.span,
            None => {
                // An absent field: point at the key of its nearest present parent.
                let mut parent = path.parent();
                loop {
                    if let Some(span) = self.doc.key_span(&parent) {
                        break span;
                    }
                    if parent.is_root() {
                        break self.doc.nearest(&path).span;
                    }
                    parent = parent.parent();
                }
            }
        });
        let location = (span.start.line > 0).then_some(span.start);
        let width = if span.end.line == span.start.line {
            span.end.column.saturating_sub(span.start.column).max(1)
        } else {
            1
        };
        self.diagnostics.push(Diagnostic {
            error,
            path,
            location,
            set: None,
            width,
        });
    }

    /// Deserialises the node at `path` into `T`, reporting a located error on failure.
    fn typed<T: DeserializeOwned>(&mut self, path: &FieldPath) -> Option<T> {
        let node = self.doc.at(path)?;
        // A number JSON cannot hold was reported where it is (see `numbers`).
        let json = node.to_json().ok()?;
        match serde_path_to_error::deserialize::<_, T>(json) {
            Ok(value) => Some(value),
            Err(e) => {
                self.report_serde(path, e);
                None
            }
        }
    }

    /// Reports every key of the mapping at `path` that is not in `known`.
    fn unknown_keys(&mut self, path: &FieldPath, known: &[&str]) {
        let Some(entries) = self.doc.at(path).and_then(Node::as_mapping) else {
            return;
        };
        let expected: Vec<String> = known.iter().map(|k| k.to_string()).collect();
        for entry in entries {
            if !known.contains(&entry.key.as_str()) {
                self.report(
                    path.key(entry.key.clone()),
                    Place::Key,
                    SpecError::UnknownField {
                        field: entry.key.clone(),
                        expected: expected.clone(),
                    },
                );
            }
        }
    }

    fn expect_mapping(&mut self, path: &FieldPath, what: &str) -> bool {
        match self.doc.at(path) {
            Some(node) if node.as_mapping().is_some() => true,
            Some(node) if is_null(node) => false,
            Some(node) => {
                let found = node.type_name().to_string();
                self.report(
                    path.clone(),
                    Place::Value,
                    SpecError::WrongType {
                        expected: what.to_string(),
                        found,
                    },
                );
                false
            }
            None => false,
        }
    }

    /// Checks the whole spec; the typed spec when its parts could be read (errors may
    /// still have been reported).
    pub(super) fn check(&mut self, registry: &Registry, dir: &Path) -> Option<Checked> {
        let root = FieldPath::root();
        if self.doc.as_mapping().is_none() {
            let found = self.doc.type_name().to_string();
            self.report(
                root,
                Place::Value,
                SpecError::WrongType {
                    expected: "a mapping with `version`, `name` and `stages`".into(),
                    found,
                },
            );
            return None;
        }
        self.unknown_keys(&root, TOP_FIELDS);
        self.check_numbers();
        for required in ["version", "name", "stages"] {
            if self.doc.get(required).is_none() {
                self.report(
                    root.key(required),
                    Place::Value,
                    SpecError::MissingField {
                        field: required.into(),
                    },
                );
            }
        }
        let version: Option<u64> = self.typed(&root.key("version"));
        if let Some(v) = version
            && v != 1
        {
            self.report(
                root.key("version"),
                Place::Value,
                SpecError::UnsupportedVersion {
                    found: v.to_string(),
                },
            );
        }
        let name: Option<String> = self.typed(&root.key("name"));
        if let Some(name) = &name {
            self.check_spec_name(name);
        }
        let seed: u64 = self.typed(&root.key("seed")).unwrap_or(0);
        let backend: Backend = self.typed(&root.key("backend")).unwrap_or_default();
        let executor: Executor = self.typed(&root.key("executor")).unwrap_or_default();
        let resources = self.check_resources(&root.key("resources"));
        let (models, declared_models) = self.check_models(dir);
        let stages_path = root.key("stages");
        let mut stages: IndexMap<String, StageSpec> = IndexMap::new();
        let mut params: IndexMap<String, Resolved> = IndexMap::new();
        // Every stage written, including those with errors of their own: naming one is
        // not reported again as naming no stage.
        let declared_stages: Vec<String> = self
            .doc
            .at(&stages_path)
            .and_then(Node::as_mapping)
            .unwrap_or(&[])
            .iter()
            .map(|e| e.key.clone())
            .collect();
        if self.expect_mapping(&stages_path, "a mapping of stage names to stages") {
            // Borrowed from the document, not from `self`, so checks can report meanwhile.
            let doc = self.doc;
            let entries = doc
                .at(&stages_path)
                .and_then(Node::as_mapping)
                .unwrap_or(&[]);
            if entries.is_empty() {
                self.report_no_stages(&stages_path);
            }
            for entry in entries {
                if let Some((stage, resolved)) = self.check_stage(registry, &entry.key, dir) {
                    if let Some(resolved) = resolved {
                        params.insert(entry.key.clone(), resolved);
                    }
                    stages.insert(entry.key.clone(), stage);
                }
            }
        } else if self.doc.get("stages").is_some_and(is_null) {
            self.report_no_stages(&stages_path);
        }
        self.check_needs(&stages, &declared_stages);
        let graph = self.check_graph(registry, &stages, &params, &models);
        for (name, resolved) in &params {
            let Some(kind) = stages.get(name).and_then(|s| registry.get(&s.kind)) else {
                continue;
            };
            self.check_stage_models(name, kind.as_ref(), resolved, &models, &declared_models);
            self.check_stage_inputs(name, kind.as_ref(), resolved, &stages);
        }
        self.check_model_sources(&models, &stages, &declared_stages);
        let ablations = self.check_ablations(&stages);
        let spec = Spec {
            version: version? as u32,
            name: name?,
            seed,
            backend,
            models,
            stages,
            ablations,
            executor,
            resources,
        };
        Some(Checked {
            spec,
            params,
            graph: graph?,
        })
    }
}

fn is_null(node: &Node) -> bool {
    matches!(&node.value, NodeValue::Scalar(s) if s.plain && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

impl Checker<'_> {
    /// `stages` is empty or null.
    fn report_no_stages(&mut self, stages_path: &FieldPath) {
        self.report(
            stages_path.clone(),
            Place::Value,
            SpecError::InvalidValue {
                message: "the spec has no stages".into(),
                expected: "at least one stage".into(),
            },
        );
    }
}
