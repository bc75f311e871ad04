//! Checking one stage: its name, its fields, its kind, and its parameters as the kind
//! reads them.
//!
//! The kind (from the [`Registry`]) resolves `with:` into typed parameters with defaults
//! filled in, checks their values and the files they name, and says whether it can use
//! the outputs of the stages in `needs`. It deliberately does not look at other stages'
//! parameters or at the order stages run in: `needs` and the stage graph are checked in
//! `dependencies`.

use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Checker, Place, is_null};
use crate::file_kind::not_regular;
use crate::registry::Registry;
use crate::spec::StageSpec;
use crate::spec::error::SpecError;
use crate::spec::path::FieldPath;
use crate::stage::{Resolved, StageKind, Upstream};

/// The fields of a stage.
const STAGE_FIELDS: &[&str] = &["kind", "needs", "with", "resources"];

impl Checker<'_> {
    /// One entry of `stages`: its name, fields, kind, resources and parameters (resolved
    /// by the kind, with defaults filled in, and checked by it).
    pub(super) fn check_stage(
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
            // A number JSON cannot hold was reported where it is (see `numbers`).
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
                        let path = with_path.join(&FieldPath::parse(&field).unwrap_or_default());
                        // A field left out holds its default: the fix is to write one.
                        let error = if self.doc.at(&path).is_none() {
                            SpecError::UnusableDefault { field, message }
                        } else {
                            SpecError::InvalidValue {
                                message,
                                expected: "a value this stage can use".into(),
                            }
                        };
                        self.report(path, Place::Value, error);
                    }
                    for resource in kind.resources(&params) {
                        let Some((field, file)) = resource.file() else {
                            continue;
                        };
                        let path = file.display().to_string();
                        let error = match std::fs::metadata(dir.join(file)) {
                            Err(_) => SpecError::MissingFile { path },
                            Ok(meta) => match not_regular(&meta) {
                                Some(found) => SpecError::NotAFile { path, found },
                                None => continue,
                            },
                        };
                        self.report(
                            with_path.join(&FieldPath::parse(field).unwrap_or_default()),
                            Place::Value,
                            error,
                        );
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

    /// Stage `name`'s kind can use the outputs of the stages it `needs` (checked only when
    /// every one of them exists).
    pub(super) fn check_stage_inputs(
        &mut self,
        name: &str,
        kind: &dyn StageKind,
        resolved: &Resolved,
        stages: &IndexMap<String, StageSpec>,
    ) {
        let Some(stage) = stages.get(name) else {
            return;
        };
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
            let needs_path = FieldPath::root().key("stages").key(name).key("needs");
            let path = if self.doc.at(&needs_path).is_some() {
                needs_path
            } else {
                FieldPath::root().key("stages").key(name)
            };
            self.report(path, Place::Key, SpecError::BadInputs { message });
        }
    }
}

fn is_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
