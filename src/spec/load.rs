//! Reading a spec file: parse, override, check everything, collect every error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::document::{self, Node, NodeValue};
use super::error::{Diagnostic, SpecError};
use super::location::Location;
use super::overrides;
use super::path::{FieldPath, Segment};
use super::{AblationAxis, Backend, Executor, ModelSpec, Resources, Spec, StageSpec};
use crate::registry::Registry;
use crate::stage::{Resolved, Resource, StageKind, Upstream};

/// How to read a spec.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `path=value` overrides, applied in order.
    pub overrides: Vec<String>,
}

/// A spec that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The file as named on the command line.
    pub file: PathBuf,
    /// The folder relative paths in the spec start from.
    pub dir: PathBuf,
    /// The file's text.
    pub text: String,
    /// The typed spec.
    pub spec: Spec,
    /// Each stage's parameters with defaults filled in, by stage name.
    pub params: IndexMap<String, Resolved>,
    /// blake3 of the canonical JSON of the spec after overrides (comments and layout excluded).
    pub digest: String,
}

/// Why a spec could not be loaded.
#[derive(Debug)]
pub enum LoadFailure {
    /// The file could not be read.
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    /// The spec has errors; all that were found.
    Invalid {
        file: PathBuf,
        text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl LoadFailure {
    /// Renders every error, as `accord validate` prints them.
    pub fn render(&self, color: bool) -> String {
        match self {
            LoadFailure::Read { file, error } => {
                format!("error: cannot read spec `{}`: {error}\n", file.display())
            }
            LoadFailure::Invalid {
                file,
                text,
                diagnostics,
            } => {
                let name = file.display().to_string();
                let mut out = String::new();
                for d in diagnostics {
                    out.push_str(&d.render(&name, text, color));
                    out.push('\n');
                }
                let n = diagnostics.len();
                out.push_str(&format!(
                    "{n} error{} in `{name}`\n",
                    if n == 1 { "" } else { "s" }
                ));
                out
            }
        }
    }
}

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
const STAGE_FIELDS: &[&str] = &["kind", "needs", "with", "resources"];
const RESOURCE_FIELDS: &[&str] = &["gpus", "cpus", "mem", "time", "partition", "extra"];

/// Reads, overrides and checks the spec at `file`.
pub fn load(
    file: &Path,
    options: &LoadOptions,
    registry: &Registry,
) -> Result<LoadedSpec, LoadFailure> {
    let text = std::fs::read_to_string(file).map_err(|error| LoadFailure::Read {
        file: file.to_path_buf(),
        error,
    })?;
    let dir = file
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    load_text(file, &dir, text, options, registry)
}

/// Checks spec `text` as if read from `file`, with relative paths starting at `dir`.
pub fn load_text(
    file: &Path,
    dir: &Path,
    text: String,
    options: &LoadOptions,
    registry: &Registry,
) -> Result<LoadedSpec, LoadFailure> {
    let invalid = |text: String, diagnostics| LoadFailure::Invalid {
        file: file.to_path_buf(),
        text,
        diagnostics,
    };
    let mut doc = match document::parse(&text) {
        Ok(doc) => doc,
        Err(e) => {
            let d = Diagnostic {
                error: SpecError::Syntax { message: e.message },
                path: FieldPath::root(),
                location: Some(e.location),
                width: 1,
            };
            return Err(invalid(text, vec![d]));
        }
    };
    let mut override_errors = Vec::new();
    for o in &options.overrides {
        if let Err(error) = overrides::apply(&mut doc, o) {
            override_errors.push(Diagnostic {
                error,
                path: FieldPath::root(),
                location: None,
                width: 1,
            });
        }
    }
    if !override_errors.is_empty() {
        return Err(invalid(text, override_errors));
    }
    let mut checker = Checker {
        doc: &doc,
        diagnostics: Vec::new(),
    };
    let checked = checker.check(registry, dir);
    let mut diagnostics = checker.diagnostics;
    diagnostics.sort_by_key(|d| {
        d.location.unwrap_or(Location {
            line: usize::MAX,
            column: 0,
        })
    });
    match checked {
        Some((spec, params)) if diagnostics.is_empty() => {
            let json = doc.to_json().unwrap_or(Value::Null);
            Ok(LoadedSpec {
                file: file.to_path_buf(),
                dir: dir.to_path_buf(),
                digest: crate::canonical::digest(&json),
                text,
                spec,
                params,
            })
        }
        _ => Err(invalid(text, diagnostics)),
    }
}

struct Checker<'a> {
    doc: &'a Node,
    diagnostics: Vec<Diagnostic>,
}

/// Where to point an error about a field.
enum Place {
    /// The value of the field.
    Value,
    /// The key naming the field (for unknown fields).
    Key,
}

impl Checker<'_> {
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
            width,
        });
    }

    /// Deserialises the node at `path` into `T`, reporting a located error on failure.
    fn typed<T: DeserializeOwned>(&mut self, path: &FieldPath) -> Option<T> {
        let node = self.doc.at(path)?;
        let json = match node.to_json() {
            Ok(json) => json,
            Err((_, message)) => {
                self.report(
                    path.clone(),
                    Place::Value,
                    SpecError::InvalidValue {
                        message,
                        expected: "a finite number".into(),
                    },
                );
                return None;
            }
        };
        match serde_path_to_error::deserialize::<_, T>(json) {
            Ok(value) => Some(value),
            Err(e) => {
                self.report_serde(path, e);
                None
            }
        }
    }

    /// Reports a deserialisation error found below `base`.
    fn report_serde(&mut self, base: &FieldPath, e: serde_path_to_error::Error<serde_json::Error>) {
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

    /// Reports an error in a stage's `with`; an unknown field lists every field the kind
    /// takes (serde cannot, for parameters that flatten shared settings in).
    fn report_params_error(
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
            self.report(
                path,
                Place::Key,
                SpecError::UnknownField {
                    field,
                    expected: kind.param_names(),
                },
            );
            return;
        }
        self.report_serde(with_path, e);
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

    fn check(
        &mut self,
        registry: &Registry,
        dir: &Path,
    ) -> Option<(Spec, IndexMap<String, Resolved>)> {
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
        let seed: u64 = self.typed(&root.key("seed")).unwrap_or(0);
        let backend: Backend = self.typed(&root.key("backend")).unwrap_or_default();
        let executor: Executor = self.typed(&root.key("executor")).unwrap_or_default();
        let resources = self.check_resources(&root.key("resources"));
        let models = self.check_models();
        let stages_path = root.key("stages");
        let mut stages: IndexMap<String, StageSpec> = IndexMap::new();
        let mut params: IndexMap<String, Resolved> = IndexMap::new();
        if self.expect_mapping(&stages_path, "a mapping of stage names to stages") {
            let entries = self
                .doc
                .at(&stages_path)
                .and_then(Node::as_mapping)
                .unwrap_or(&[])
                .to_vec();
            if entries.is_empty() {
                self.report(
                    stages_path.clone(),
                    Place::Value,
                    SpecError::InvalidValue {
                        message: "the spec has no stages".into(),
                        expected: "at least one stage".into(),
                    },
                );
            }
            for entry in &entries {
                if let Some((stage, resolved)) = self.check_stage(registry, &entry.key, dir) {
                    if let Some(resolved) = resolved {
                        params.insert(entry.key.clone(), resolved);
                    }
                    stages.insert(entry.key.clone(), stage);
                }
            }
        } else if self.doc.get("stages").is_some_and(is_null) {
            self.report(
                stages_path.clone(),
                Place::Value,
                SpecError::InvalidValue {
                    message: "the spec has no stages".into(),
                    expected: "at least one stage".into(),
                },
            );
        }
        self.check_needs(&stages);
        self.check_cycles(&stages);
        self.check_model_references(registry, &stages, &params, &models);
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
        Some((spec, params))
    }

    /// A `resources` mapping, with Slurm's spellings of memory and time checked.
    fn check_resources(&mut self, path: &FieldPath) -> Resources {
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

    fn check_models(&mut self) -> IndexMap<String, ModelSpec> {
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

    fn check_stage(
        &mut self,
        registry: &Registry,
        name: &str,
        dir: &Path,
    ) -> Option<(StageSpec, Option<Resolved>)> {
        let path = FieldPath::root().key("stages").key(name);
        if !is_stage_name(name) {
            self.report(
                path.clone(),
                Place::Key,
                SpecError::InvalidStageName { name: name.into() },
            );
        }
        if !self.expect_mapping(&path, "a mapping with `kind`, `needs` and `with`") {
            if self.doc.at(&path).is_some_and(is_null) {
                self.report(
                    path.key("kind"),
                    Place::Value,
                    SpecError::MissingField {
                        field: "kind".into(),
                    },
                );
            }
            return None;
        }
        self.unknown_keys(&path, STAGE_FIELDS);
        let kind_path = path.key("kind");
        let kind_name: Option<String> = if self.doc.at(&kind_path).is_none() {
            self.report(
                kind_path.clone(),
                Place::Value,
                SpecError::MissingField {
                    field: "kind".into(),
                },
            );
            None
        } else {
            self.typed(&kind_path)
        };
        let needs: Vec<String> = self.typed(&path.key("needs")).unwrap_or_default();
        let resources = self.check_resources(&path.key("resources"));
        let with_path = path.key("with");
        let with = match self.doc.at(&with_path) {
            None => Some(Value::Object(Default::default())),
            Some(node) if is_null(node) => Some(Value::Object(Default::default())),
            Some(_) if self.expect_mapping(&with_path, "a mapping of parameters") => {
                self.doc.at(&with_path).and_then(|n| n.to_json().ok())
            }
            Some(_) => None,
        };
        let kind = kind_name.as_deref().and_then(|k| match registry.get(k) {
            Some(kind) => Some(kind.clone()),
            None => {
                self.report(
                    kind_path.clone(),
                    Place::Value,
                    SpecError::UnknownStageKind {
                        kind: k.to_string(),
                        known: registry.names(),
                    },
                );
                None
            }
        });
        let mut resolved = None;
        if let (Some(kind), Some(with)) = (&kind, &with) {
            match kind.resolve(with.clone()) {
                Ok(params) => {
                    for (field, message) in kind.check_params(&params) {
                        self.report(
                            with_path.join(&FieldPath::parse(&field).unwrap_or_default()),
                            Place::Value,
                            SpecError::InvalidValue {
                                message,
                                expected: "a value this stage can use".into(),
                            },
                        );
                    }
                    for resource in kind.resources(&params) {
                        if let Resource::File { field, path: file } = resource
                            && !dir.join(&file).exists()
                        {
                            self.report(
                                with_path.join(&FieldPath::parse(&field).unwrap_or_default()),
                                Place::Value,
                                SpecError::MissingFile {
                                    path: file.display().to_string(),
                                },
                            );
                        }
                    }
                    resolved = Some(params);
                }
                Err(e) => self.report_params_error(kind.as_ref(), &with_path, with, e),
            }
        }
        let stage = StageSpec {
            kind: kind_name.unwrap_or_default(),
            needs,
            with: match with {
                Some(Value::Object(map)) => map,
                _ => Default::default(),
            },
            resources,
        };
        Some((stage, resolved))
    }

    fn check_needs(&mut self, stages: &IndexMap<String, StageSpec>) {
        for (name, stage) in stages {
            let mut seen = BTreeSet::new();
            for (i, need) in stage.needs.iter().enumerate() {
                let path = FieldPath::root()
                    .key("stages")
                    .key(name.clone())
                    .key("needs")
                    .index(i);
                if !seen.insert(need) {
                    self.report(
                        path,
                        Place::Value,
                        SpecError::DuplicateNeed { need: need.clone() },
                    );
                } else if !stages.contains_key(need) {
                    let known = stages.keys().filter(|k| *k != name).cloned().collect();
                    self.report(
                        path,
                        Place::Value,
                        SpecError::UnknownNeed {
                            need: need.clone(),
                            known,
                        },
                    );
                }
            }
        }
    }

    fn check_cycles(&mut self, stages: &IndexMap<String, StageSpec>) {
        let names: Vec<&String> = stages.keys().collect();
        let edges: Vec<Vec<usize>> = stages
            .values()
            .map(|s| {
                s.needs
                    .iter()
                    .filter_map(|n| stages.get_index_of(n))
                    .collect()
            })
            .collect();
        for cycle in crate::plan::find_cycles(&edges) {
            let first = cycle[0];
            let next = cycle.get(1).copied().unwrap_or(first);
            let need_index = stages[first]
                .needs
                .iter()
                .position(|n| n == names[next])
                .unwrap_or(0);
            let mut printed: Vec<String> = cycle.iter().map(|i| names[*i].clone()).collect();
            printed.push(names[first].clone());
            self.report(
                FieldPath::root()
                    .key("stages")
                    .key(names[first].clone())
                    .key("needs")
                    .index(need_index),
                Place::Value,
                SpecError::Cycle { cycle: printed },
            );
        }
    }

    fn check_model_references(
        &mut self,
        registry: &Registry,
        stages: &IndexMap<String, StageSpec>,
        params: &IndexMap<String, Resolved>,
        models: &IndexMap<String, ModelSpec>,
    ) {
        let known: Vec<String> = models.keys().cloned().collect();
        for (name, resolved) in params {
            let stage = &stages[name];
            let Some(kind) = registry.get(&stage.kind) else {
                continue;
            };
            let with_path = FieldPath::root()
                .key("stages")
                .key(name.clone())
                .key("with");
            for (field, model) in kind.models(resolved) {
                let Some(spec) = models.get(&model) else {
                    self.report(
                        with_path.key(field),
                        Place::Value,
                        SpecError::UnknownModel {
                            name: model,
                            known: known.clone(),
                        },
                    );
                    continue;
                };
                // A stage cannot use a checkpoint that it, or a stage after it, trains.
                if let Some(trainer) = spec.trained_by()
                    && stages.contains_key(trainer)
                    && (trainer == name.as_str() || needs_transitively(stages, trainer, name))
                {
                    self.report(
                        with_path.key(field),
                        Place::Value,
                        SpecError::InvalidModel {
                            message: format!(
                                "model `{model}` is the checkpoint of `{trainer}`, which {} `{name}`",
                                if trainer == name.as_str() { "is" } else { "runs after" }
                            ),
                            expected: "a model trained by an earlier stage, or a base model".into(),
                        },
                    );
                }
            }
            let upstream: Vec<Upstream> = stage
                .needs
                .iter()
                .filter_map(|n| {
                    stages.get(n).map(|s| Upstream {
                        name: n.clone(),
                        kind: s.kind.clone(),
                    })
                })
                .collect();
            if upstream.len() == stage.needs.len()
                && let Err(message) = kind.check_inputs(resolved, &upstream)
            {
                let needs_path = FieldPath::root()
                    .key("stages")
                    .key(name.clone())
                    .key("needs");
                let path = if self.doc.at(&needs_path).is_some() {
                    needs_path
                } else {
                    FieldPath::root().key("stages").key(name.clone())
                };
                self.report(path, Place::Key, SpecError::BadInputs { message });
            }
        }
        for (name, model) in models {
            if let Some(stage) = model
                .source
                .as_deref()
                .and_then(|s| s.strip_prefix("stage:"))
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

    fn check_ablations(
        &mut self,
        stages: &IndexMap<String, StageSpec>,
    ) -> IndexMap<String, AblationAxis> {
        let path = FieldPath::root().key("ablations");
        let mut axes = IndexMap::new();
        if !self.expect_mapping(&path, "a mapping of axis names to axes") {
            return axes;
        }
        let entries = self
            .doc
            .at(&path)
            .and_then(Node::as_mapping)
            .unwrap_or(&[])
            .to_vec();
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
                        .get(super::variants::NAME_KEY)
                        .or_else(|| fields.values().next());
                    if let Some(labels) = labels {
                        let distinct: BTreeSet<String> =
                            labels.iter().map(super::variants::label).collect();
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
                        if field == super::variants::NAME_KEY {
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

fn is_null(node: &Node) -> bool {
    matches!(&node.value, NodeValue::Scalar(s) if s.plain && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

fn is_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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

/// Turns a serde error message into a [`SpecError`] and where to point it.
fn classify(message: &str) -> (SpecError, Place) {
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

/// Whether stage `from` needs stage `to`, directly or through other stages.
fn needs_transitively(stages: &IndexMap<String, StageSpec>, from: &str, to: &str) -> bool {
    let mut pending = vec![from];
    let mut seen = std::collections::HashSet::new();
    while let Some(stage) = pending.pop() {
        if !seen.insert(stage) {
            continue;
        }
        for need in stages.get(stage).map_or(&[][..], |s| s.needs.as_slice()) {
            if need == to {
                return true;
            }
            pending.push(need);
        }
    }
    false
}

/// The field of `with` that `error` (from deserialising it for `kind`) is about, when
/// serde could not say.
///
/// serde reads settings flattened into a kind's parameters (the dialogue settings `rollout`,
/// `grpo` and `evaluate` share) from a buffer, which loses the field an error is about: it
/// is reported at `with` itself. The field is then found by leaving each one out in turn:
/// the first whose absence makes the error go away (or become another) is the one.
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
