//! Checking models: the `models` mapping, and the model names stages use.
//!
//! Each model has exactly one of `source` (in-process weights, with a known scheme and an
//! optional sha256) or `endpoint` (with the `model` it serves); every model a stage's
//! parameters name is defined; every `stage:NAME` source names a stage. It deliberately
//! does not fetch or open anything (the model hub does that at run time), and
//! leaves checkpoints used too early to the stage graph, which reports them as cycles.

use indexmap::IndexMap;

use super::{Checker, Place};
use crate::spec::document::Node;
use crate::spec::error::SpecError;
use crate::spec::path::FieldPath;
use crate::spec::{ModelSpec, StageSpec};
use crate::stage::{Resolved, StageKind};

impl Checker<'_> {
    /// The `models` mapping, each model checked on its own.
    pub(super) fn check_models(&mut self) -> IndexMap<String, ModelSpec> {
        let path = FieldPath::root().key("models");
        let mut models = IndexMap::new();
        if !self.expect_mapping(&path, "a mapping of model names to models") {
            return models;
        }
        let names: Vec<String> = self
            .doc
            .at(&path)
            .and_then(Node::as_mapping)
            .unwrap_or(&[])
            .iter()
            .map(|e| e.key.clone())
            .collect();
        for name in names {
            let model_path = path.key(name.clone());
            let Some(model): Option<ModelSpec> = self.typed(&model_path) else {
                continue;
            };
            let problem = match (&model.source, &model.endpoint) {
                (Some(_), Some(_)) => Some("it has both `source` and `endpoint`"),
                (None, None) => Some("it has neither `source` nor `endpoint`"),
                _ => None,
            };
            if let Some(problem) = problem {
                self.report(
                    model_path.clone(),
                    Place::Key,
                    SpecError::InvalidModel {
                        message: problem.into(),
                        expected: "exactly one of `source` or `endpoint`".into(),
                    },
                );
            }
            if model.endpoint.as_ref().is_some_and(|e| e.urls().is_empty()) {
                self.report(
                    model_path.key("endpoint"),
                    Place::Value,
                    SpecError::InvalidValue {
                        message: "the list of endpoints is empty".into(),
                        expected: "a URL, or a list of at least one".into(),
                    },
                );
            }
            if model.concurrency == Some(0) {
                self.report(
                    model_path.key("concurrency"),
                    Place::Value,
                    SpecError::InvalidValue {
                        message: "no request could ever be sent".into(),
                        expected: "at least 1".into(),
                    },
                );
            }
            if model.endpoint.is_some() && model.model.is_none() {
                self.report(
                    model_path.key("model"),
                    Place::Value,
                    SpecError::MissingField {
                        field: "model".into(),
                    },
                );
            }
            if let Some(source) = &model.source {
                let known = ["path:", "pip:", "hf:", "stage:"];
                if !known.iter().any(|p| source.starts_with(p)) {
                    self.report(
                        model_path.key("source"),
                        Place::Value,
                        SpecError::InvalidValue {
                            message: format!("`{source}` has no known scheme"),
                            expected:
                                "`path:…`, `pip:PKG==VER#file`, `hf:org/name[@rev]` or `stage:NAME`"
                                    .into(),
                        },
                    );
                }
            }
            if let Some(sha) = &model.sha256
                && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                self.report(
                    model_path.key("sha256"),
                    Place::Value,
                    SpecError::InvalidValue {
                        message: format!("`{sha}` is not a sha256 digest"),
                        expected: "64 hexadecimal digits".into(),
                    },
                );
            }
            models.insert(name, model);
        }
        models
    }

    /// The models stage `name` uses are defined under `models:`. (A stage that uses its
    /// own checkpoint, or that of a stage waiting for it, is a cycle of the stage graph:
    /// see `check_graph`.)
    pub(super) fn check_stage_models(
        &mut self,
        name: &str,
        kind: &dyn StageKind,
        resolved: &Resolved,
        models: &IndexMap<String, ModelSpec>,
        known: &[String],
    ) {
        let with_path = FieldPath::root().key("stages").key(name).key("with");
        for (field, model) in kind.models(resolved) {
            if !models.contains_key(&model) {
                self.report(
                    with_path.key(field),
                    Place::Value,
                    SpecError::UnknownModel {
                        name: model,
                        known: known.to_vec(),
                    },
                );
            }
        }
    }

    /// Every `source: stage:NAME` names a stage of this spec.
    pub(super) fn check_model_sources(
        &mut self,
        models: &IndexMap<String, ModelSpec>,
        stages: &IndexMap<String, StageSpec>,
    ) {
        for (name, model) in models {
            if let Some(stage) = model.trained_by()
                && !stages.contains_key(stage)
            {
                self.report(
                    FieldPath::root()
                        .key("models")
                        .key(name.clone())
                        .key("source"),
                    Place::Value,
                    SpecError::UnknownNeed {
                        need: stage.to_string(),
                        known: stages.keys().cloned().collect(),
                    },
                );
            }
        }
    }
}
