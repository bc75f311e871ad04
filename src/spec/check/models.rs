//! Checking models: the `models` mapping, and the model names stages use.
//!
//! Each model has exactly one of `source` (in-process weights, parsed by the same
//! [`ModelSource::parse`] the run uses, with an optional sha256 where one file is pinned)
//! or `endpoint` (URLs a client can call, with the `model` it serves); its
//! `chat_template_kwargs` are named so a template can read them, and not as a variable the
//! chat renderer sets itself (`messages`, `bos_token`, …); every model a
//! stage's parameters name is defined; every `stage:NAME` source names a stage. A model
//! that has errors of its own is still declared: stages naming it are not reported again.
//! It deliberately does not fetch or open anything (the model hub does that at run time;
//! the one look at the disk is whether a pinned `path:` is a folder), and leaves
//! checkpoints used too early to the stage graph, which reports them as cycles.

use std::path::Path;

use indexmap::IndexMap;

use super::{Checker, Place};
use crate::llm::chat_template_kwargs::name_problem;
use crate::llm::endpoint_url::url_problem;
use crate::llm::source::{ModelSource, pin_problem};
use crate::llm::source_error::SourceError;
use crate::spec::EndpointUrls;
use crate::spec::document::Node;
use crate::spec::error::SpecError;
use crate::spec::path::FieldPath;
use crate::spec::{ModelSpec, StageSpec};
use crate::stage::limits::{MAX_BATCH, at_most};
use crate::stage::{Resolved, StageKind};

impl Checker<'_> {
    /// The `models` mapping, each model checked on its own: the models that could be
    /// read, and the names of all that are declared (a model with an error is declared
    /// but left out, so that stages naming it are not reported again as naming no model).
    /// Relative `path:` sources start at `dir`.
    pub(super) fn check_models(
        &mut self,
        dir: &Path,
    ) -> (IndexMap<String, ModelSpec>, Vec<String>) {
        let path = FieldPath::root().key("models");
        let mut models = IndexMap::new();
        if !self.expect_mapping(&path, "a mapping of model names to models") {
            return (models, Vec::new());
        }
        let names: Vec<String> = self
            .doc
            .at(&path)
            .and_then(Node::as_mapping)
            .unwrap_or(&[])
            .iter()
            .map(|e| e.key.clone())
            .collect();
        for name in &names {
            let model_path = path.key(name.clone());
            let Some(model): Option<ModelSpec> = self.typed(&model_path) else {
                continue;
            };
            self.check_model(&model_path, &model, dir);
            models.insert(name.clone(), model);
        }
        (models, names)
    }

    /// One model's fields: one of `source` or `endpoint`, a source of a known syntax, a
    /// `sha256` that can apply to it, endpoint URLs a client can call.
    fn check_model(&mut self, model_path: &FieldPath, model: &ModelSpec, dir: &Path) {
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
        if let Some(endpoint) = &model.endpoint {
            let urls = endpoint.urls();
            if urls.is_empty() {
                self.report(
                    model_path.key("endpoint"),
                    Place::Value,
                    SpecError::InvalidValue {
                        message: "the list of endpoints is empty".into(),
                        expected: "a URL, or a list of at least one".into(),
                    },
                );
            }
            let listed = matches!(endpoint, EndpointUrls::Many(_));
            for (i, url) in urls.into_iter().enumerate() {
                if let Some(message) = url_problem(url) {
                    let at = model_path.key("endpoint");
                    self.report(
                        if listed { at.index(i) } else { at },
                        Place::Value,
                        SpecError::BadEndpoint { message },
                    );
                }
            }
        }
        let concurrency = model.concurrency.unwrap_or(1);
        let message = match concurrency {
            0 => Some("no request could ever be sent".to_string()),
            _ => at_most("concurrency", concurrency, MAX_BATCH, "requests").map(|(_, m)| m),
        };
        if let Some(message) = message {
            self.report(
                model_path.key("concurrency"),
                Place::Value,
                SpecError::InvalidValue {
                    message,
                    expected: format!("1 to {MAX_BATCH}"),
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
        // In the order written (the typed mapping is sorted).
        let kwargs_path = model_path.key("chat_template_kwargs");
        let names: Vec<String> = self
            .doc
            .at(&kwargs_path)
            .and_then(Node::as_mapping)
            .unwrap_or(&[])
            .iter()
            .map(|e| e.key.clone())
            .collect();
        for name in names {
            if let Some(error) = name_problem(&name) {
                self.report(
                    kwargs_path.key(name),
                    Place::Key,
                    SpecError::BadTemplateVariable { error },
                );
            }
        }
        let source = match model.source.as_deref().map(ModelSource::parse) {
            Some(Ok(source)) => Some(source),
            Some(Err(error)) => {
                self.report(
                    model_path.key("source"),
                    Place::Value,
                    SpecError::BadSource { error },
                );
                None
            }
            None => None,
        };
        let Some(sha) = &model.sha256 else {
            return;
        };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.report(
                model_path.key("sha256"),
                Place::Value,
                SpecError::InvalidValue {
                    message: format!("`{sha}` is not a sha256 digest"),
                    expected: "64 hexadecimal digits".into(),
                },
            );
            return;
        }
        let error = match &source {
            Some(source) => pin_problem(source, dir),
            None if model.endpoint.is_some() => Some(SourceError::PinNotApplicable {
                reason: "an endpoint model has no weights file here".into(),
            }),
            None => None,
        };
        if let Some(error) = error {
            self.report(
                model_path.key("sha256"),
                Place::Key,
                SpecError::BadSource { error },
            );
        }
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
            // A declared model with errors of its own has been reported already.
            if !models.contains_key(&model) && !known.contains(&model) {
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
        declared_stages: &[String],
    ) {
        for (name, model) in models {
            if let Some(stage) = model.trained_by()
                && !stage.is_empty()
                && !declared_stages.iter().any(|s| s == stage)
            {
                self.report(
                    FieldPath::root()
                        .key("models")
                        .key(name.clone())
                        .key("source"),
                    Place::Value,
                    SpecError::UnknownCheckpoint {
                        stage: stage.to_string(),
                        known: stages.keys().cloned().collect(),
                    },
                );
            }
        }
    }
}
