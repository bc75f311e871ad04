//! Reading a spec file: parse, override, check everything, collect every error.
//!
//! [`load`] and [`load_text`] are the entry points: the text is parsed into a spanned
//! document, `--set` overrides are applied, and the checker (`super::check`) reports
//! every problem it finds, sorted by where they are in the file. A spec without errors
//! becomes a [`LoadedSpec`]: the typed spec, each stage's resolved parameters, and the
//! stage graph with the order the stages run in. This module does not check anything
//! itself, and does not plan or run.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value;

use super::Spec;
use super::check::{Checked, Checker};
use super::document;
use super::error::{Diagnostic, SpecError};
use super::graph::StageDag;
use super::location::Location;
use super::overrides;
use super::path::FieldPath;
use crate::registry::Registry;
use crate::stage::Resolved;

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
    /// What each stage waits for (`needs` and the checkpoints its models are), by index
    /// in `spec.stages`, and the order the stages run in.
    pub graph: StageDag,
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

impl LoadFailure {
    /// Points the errors about overrides whose values are written in the spec itself at
    /// those values, instead of at a `--set` argument nobody typed. `overrides` are an
    /// ablation variant's settings, then the command line's: `overrides[i]` for `i` below
    /// `written_at.len()` comes from the value at `written_at[i]` (under `ablations`). An
    /// override that cannot be applied at all is pointed at its field path's key; when the
    /// ablations themselves were given with `--set`, at that argument.
    pub fn locate_overrides(&mut self, overrides: &[String], written_at: &[FieldPath]) {
        let LoadFailure::Invalid {
            text, diagnostics, ..
        } = self
        else {
            return;
        };
        let Ok(mut doc) = document::parse(text) else {
            return;
        };
        let command_line = &overrides[written_at.len().min(overrides.len())..];
        for o in command_line {
            // Only to erase the places of what the command line replaced; its errors
            // were reported already.
            let _ = overrides::apply(&mut doc, o);
        }
        for d in diagnostics.iter_mut().filter(|d| d.location.is_none()) {
            let Some(i) = d
                .set
                .as_ref()
                .and_then(|set| overrides.iter().rposition(|o| o == set))
            else {
                continue;
            };
            let Some(at) = written_at.get(i) else {
                continue;
            };
            let span = match d.error {
                SpecError::BadOverride { .. } => doc.key_span(&at.parent()),
                _ => doc.at(at).map(|node| node.span),
            };
            let Some(span) = span.filter(|s| s.start.line > 0) else {
                d.set = overrides::source_of(command_line, at).or(d.set.take());
                continue;
            };
            if let SpecError::BadOverride { message, .. } = &d.error {
                d.path = at.parent();
                d.error = SpecError::InvalidValue {
                    message: message.clone(),
                    expected: "a path such as `stages.train.with.lr`".into(),
                };
            }
            d.location = Some(span.start);
            d.set = None;
            d.width = if span.end.line == span.start.line {
                span.end.column.saturating_sub(span.start.column).max(1)
            } else {
                1
            };
        }
        diagnostics.sort_by_key(|d| {
            d.location.unwrap_or(Location {
                line: usize::MAX,
                column: 0,
            })
        });
    }
}

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
                set: None,
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
                set: Some(o.clone()),
                width: 1,
            });
        }
    }
    if !override_errors.is_empty() {
        return Err(invalid(text, override_errors));
    }
    let mut checker = Checker::new(&doc);
    let checked = checker.check(registry, dir);
    let mut diagnostics = checker.into_diagnostics();
    for d in diagnostics.iter_mut().filter(|d| d.location.is_none()) {
        d.set = overrides::source_of(&options.overrides, &d.path);
    }
    diagnostics.sort_by_key(|d| {
        d.location.unwrap_or(Location {
            line: usize::MAX,
            column: 0,
        })
    });
    match checked {
        Some(Checked {
            spec,
            params,
            graph,
        }) if diagnostics.is_empty() => {
            let json = doc.to_json().unwrap_or(Value::Null);
            Ok(LoadedSpec {
                file: file.to_path_buf(),
                dir: dir.to_path_buf(),
                digest: crate::canonical::digest(&json),
                text,
                spec,
                params,
                graph,
            })
        }
        _ => Err(invalid(text, diagnostics)),
    }
}
