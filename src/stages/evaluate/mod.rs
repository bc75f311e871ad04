//! `evaluate`: trained models against a baseline on held-out data, each metric with its
//! spread over repeats and a bootstrap confidence interval.
//!
//! The suites (any of them, `suites:`):
//! - `collective_agency`: every model answers each held-out dilemma (with its parties'
//!   names) and each open-ended question alone; the judge rates each answer 0–5 (the
//!   expected rating) and compares it with the baseline's answer to the same item and
//!   repeat in both orders — a win or a loss only when both orders agree.
//! - `conflict_resolution`: each model negotiates every held-out pair in self-play (the
//!   rollout protocol); agreement rate, rounds (turns) to agreement, and a pairwise
//!   verdict on the quality of the resolution against the baseline's dialogue.
//! - `general`: perplexity on held-out text and accuracy on a multiple-choice set, both
//!   shipped with accord (written for it), to show that capabilities are not lost. These
//!   are deterministic, so they run once whatever `repeats` says.
//!
//! The output keeps one row per (model, metric, item, repeat), so comparisons can pair
//! items; the summaries (mean ± SD over repeats, 95% bootstrap interval over items) are
//! printed and stored in the table's metadata under [`SUMMARY_KEY`]. Answers, dialogues
//! and judgements are cached per row. Held-out rows must not be rows any evaluated model
//! was trained on: the stage checks the dilemmas against its models' training inputs.

mod collective_agency;
mod conflict_resolution;
mod evaluation;
mod general;
mod held_out;
mod rows;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dialogue::DialogueSettings;
use crate::dialogue::templates::{AGREEMENT, PROTOCOL, SINGLE_AGENT, SUMMARY};
use crate::judge::{judge_model, rubrics};
use crate::stage::limits::{MAX_REPEATS, MAX_ROWS, at_most};
use crate::stage::{Resource, Stage, StageContext, StageError, Upstream};
use crate::stats;
use crate::table;
use evaluation::Evaluation;
use rows::Rows;

pub use rows::MetricSummary;

pub const QUESTIONS: &str = include_str!("../../../data/eval/questions.txt");
pub const HELDOUT_TEXT: &str = include_str!("../../../data/eval/heldout_text.txt");
pub const MULTIPLE_CHOICE: &str = include_str!("../../../data/eval/multiple_choice.jsonl");
pub const QUESTION_PROMPT: &str = include_str!("../../../data/prompts/open_question.jinja");

/// The Parquet metadata key holding the summaries (a JSON list of [`MetricSummary`]).
pub const SUMMARY_KEY: &str = "accord.evaluation";

/// Evaluates models against a baseline.
pub struct Evaluate;

/// A group of metrics.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// Single-agent answers to held-out dilemmas and open-ended questions, rated and
    /// compared with the baseline's.
    CollectiveAgency,
    /// Self-play on held-out pairs: agreement, rounds to agreement, pairwise quality.
    ConflictResolution,
    /// Perplexity on held-out text and multiple-choice accuracy.
    General,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::CollectiveAgency => "collective_agency",
            Suite::ConflictResolution => "conflict_resolution",
            Suite::General => "general",
        }
    }
}

/// Parameters of `evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The models to evaluate: spec model names, typically checkpoints
    /// (`source: stage:train`).
    pub models: Vec<String>,
    /// The model every other one is compared with (usually the base model).
    pub baseline: String,
    /// The judge of the `collective_agency` and `conflict_resolution` suites, which
    /// they need: a model that is not evaluated, or the baseline itself (which then
    /// judges its own answers too, so the spec must say so). Never another of `models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    #[serde(default = "all_suites")]
    pub suites: Vec<Suite>,
    /// Evaluation runs of the sampled suites, each with its own seeds (the paper: 3).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Use only the first this many held-out pairs (and open-ended questions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
    /// Open-ended questions, one per line (`#` starts a comment), replacing the built-in
    /// ones; relative to the spec's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions_file: Option<PathBuf>,
    /// Held-out text for perplexity, paragraphs separated by blank lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_file: Option<PathBuf>,
    /// Multiple-choice items, one JSON object per line: `question`, four `choices`,
    /// `answer` (the index of the right one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices_file: Option<PathBuf>,
    /// Bootstrap resamples for the confidence intervals (at least 1).
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// Seconds one judge request may take, and tries per request (endpoint judge).
    #[serde(default = "judge_model::default_timeout_s")]
    pub timeout_s: f64,
    #[serde(default = "judge_model::default_attempts")]
    pub attempts: u32,
    #[serde(flatten)]
    pub dialogue: DialogueSettings,
}

fn all_suites() -> Vec<Suite> {
    vec![
        Suite::CollectiveAgency,
        Suite::ConflictResolution,
        Suite::General,
    ]
}
fn default_repeats() -> usize {
    3
}
fn default_resamples() -> usize {
    stats::RESAMPLES
}

impl Params {
    /// The judge; checked to be named when a suite asks it.
    fn judge(&self) -> &str {
        self.judge.as_deref().unwrap_or(&self.baseline)
    }

    /// The baseline, then the evaluated models (each once).
    fn evaluated(&self) -> Vec<String> {
        let mut all = vec![self.baseline.clone()];
        for model in &self.models {
            if !all.contains(model) {
                all.push(model.clone());
            }
        }
        all
    }

    fn has(&self, suite: Suite) -> bool {
        self.suites.contains(&suite)
    }
}

impl Stage for Evaluate {
    type Params = Params;
    const KIND: &'static str = "evaluate";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "Models against a baseline on held-out dilemmas, pairs, text and \
         multiple-choice items: per-item scores, with mean ± SD over repeats and bootstrap CIs.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![
            table::column(
                "model",
                DataType::Utf8,
                "The spec model evaluated (the baseline included).",
            ),
            table::column(
                "suite",
                DataType::Utf8,
                "`collective_agency`, `conflict_resolution` or `general`.",
            ),
            table::column(
                "metric",
                DataType::Utf8,
                "`ca_score` (expected judge rating 0–5), `ca_win_rate`/`ca_loss_rate` and \
                 `cr_win_rate`/`cr_loss_rate` (1 when the judge prefers this model's / the \
                 baseline's answer or dialogue in both orders, else 0; not for the baseline), \
                 `agreement_rate` (1 agreed, 0 not), `rounds_to_agreement` (turns; null when \
                 no agreement), `perplexity` (per paragraph), `mc_accuracy` (1 right, 0 wrong).",
            ),
            table::column(
                "item",
                DataType::Utf8,
                "The item scored: a dilemma id, `q<N>` for the N-th open-ended question, a \
                 pair id, `text<N>` or `mc<N>`.",
            ),
            table::column(
                "repeat",
                DataType::UInt32,
                "The evaluation run (deterministic metrics have only run 0).",
            ),
            table::column("value", DataType::Float64, "The item's value.").with_nullable(true),
        ])
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if params.models.is_empty() {
            problems.push((
                "models".into(),
                "name at least one model to evaluate".into(),
            ));
        }
        if params.suites.is_empty() {
            problems.push(("suites".into(), "name at least one suite".into()));
        }
        if params.repeats == 0 {
            problems.push(("repeats".into(), "must be at least 1".into()));
        }
        if params.items == Some(0) {
            problems.push(("items".into(), "must be at least 1".into()));
        }
        if params.attempts == 0 {
            problems.push(("attempts".into(), "must be at least 1".into()));
        }
        if let Some(problem) = judge_model::timeout_problem(params.timeout_s) {
            problems.push(("timeout_s".into(), problem));
        }
        problems.extend(
            [
                at_most("repeats", params.repeats, MAX_REPEATS, "runs"),
                at_most("items", params.items.unwrap_or(0), MAX_ROWS, "items"),
                at_most("attempts", params.attempts as usize, MAX_REPEATS, "tries"),
            ]
            .into_iter()
            .flatten(),
        );
        if params.resamples == 0 {
            problems.push((
                "resamples".into(),
                "must be at least 1: each confidence interval resamples the items this many times"
                    .into(),
            ));
        }
        let judged = params.has(Suite::CollectiveAgency) || params.has(Suite::ConflictResolution);
        if judged && params.judge.is_none() {
            problems.push((
                "judge".into(),
                format!(
                    "the default judge is the baseline `{0}`, which is evaluated too and would \
                     judge its own answers; write `judge: {0}` to let it, or name a model that \
                     is not evaluated",
                    params.baseline
                ),
            ));
        }
        // The baseline may judge when the spec names it, even if `models` lists it too.
        if params
            .models
            .iter()
            .any(|m| Some(m) == params.judge.as_ref() && *m != params.baseline)
        {
            problems.push((
                "judge".into(),
                "the judge is one of the evaluated models; judge with a model that is not being evaluated".into(),
            ));
        }
        problems.extend(params.dialogue.problems());
        problems
    }

    fn check_inputs(&self, params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        let pairs = inputs
            .iter()
            .filter(|i| i.kind == "persona_pairing")
            .count();
        let needs_pairs =
            params.has(Suite::CollectiveAgency) || params.has(Suite::ConflictResolution);
        match (pairs, needs_pairs) {
            (1, _) | (0, false) if inputs.len() == pairs => Ok(()),
            _ => Err("`evaluate` reads one input: the held-out `persona_pairing` stage (its own synthesis stage, never the one training reads)".into()),
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        [
            super::template_resource(
                "questions_file",
                &params.questions_file,
                "open-ended questions",
                QUESTIONS,
            ),
            super::template_resource(
                "text_file",
                &params.text_file,
                "held-out text",
                HELDOUT_TEXT,
            ),
            super::template_resource(
                "choices_file",
                &params.choices_file,
                "multiple-choice items",
                MULTIPLE_CHOICE,
            ),
        ]
        .into_iter()
        .chain(
            [
                ("answer prompt", SINGLE_AGENT),
                ("question prompt", QUESTION_PROMPT),
                ("answer rubric", rubrics::ANSWER),
                ("pairwise answer rubric", rubrics::PAIRWISE_ANSWER),
                ("pairwise resolution rubric", rubrics::PAIRWISE_RESOLUTION),
                ("negotiation protocol", PROTOCOL),
                ("agreement check", AGREEMENT),
                ("closing summary", SUMMARY),
            ]
            .map(|(name, text)| Resource::embedded(name, text)),
        )
        .collect()
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        let mut models: Vec<(&'static str, String)> = params
            .models
            .iter()
            .map(|m| ("models", m.clone()))
            .collect();
        models.push(("baseline", params.baseline.clone()));
        if let Some(judge) = &params.judge {
            models.push(("judge", judge.clone()));
        }
        if params.has(Suite::ConflictResolution)
            && let Some(model) = params.dialogue.named_agreement_model()
        {
            models.push(("agreement_model", model.to_string()));
        }
        models
    }

    /// A `judge` or `agreement_model` naming the baseline is what leaving it out means.
    fn spelled_defaults(&self, params: &Params) -> Vec<&'static str> {
        let baseline = Some(&params.baseline);
        let mut fields = Vec::new();
        if params.judge.as_ref() == baseline {
            fields.push("judge");
        }
        if params.dialogue.agreement_model.as_ref() == baseline {
            fields.push("agreement_model");
        }
        fields
    }

    fn endpoint_settings(&self, params: &Params) -> Vec<(String, &'static str)> {
        ["timeout_s", "attempts"]
            .map(|field| (params.judge().to_string(), field))
            .into()
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        for name in params.evaluated() {
            if !ctx.models.in_process(&name) {
                return Err(StageError::Failed(format!(
                    "model `{name}` is an endpoint; `evaluate` runs the models it evaluates in-process (the judge may be an endpoint)"
                )));
            }
        }
        let pairs = ctx.inputs.iter().find(|i| i.kind == "persona_pairing");
        if let Some(pairs) = pairs {
            held_out::check_held_out(pairs, &ctx.trained_on)?;
        }
        let missing_pairs =
            || StageError::Failed("`evaluate` needs its held-out `persona_pairing` input".into());
        let mut rows = Rows::default();
        let evaluation = Evaluation::new(params, ctx);
        for suite in [
            Suite::CollectiveAgency,
            Suite::ConflictResolution,
            Suite::General,
        ] {
            if !params.has(suite) {
                continue;
            }
            ctx.progress.message(suite.name());
            match suite {
                Suite::CollectiveAgency => {
                    evaluation.collective_agency(pairs.ok_or_else(missing_pairs)?, &mut rows)?
                }
                Suite::ConflictResolution => {
                    evaluation.conflict_resolution(pairs.ok_or_else(missing_pairs)?, &mut rows)?
                }
                Suite::General => evaluation.general(&mut rows)?,
            }
        }
        let summaries = rows.summaries(params.resamples, ctx.seed);
        for s in &summaries {
            let value = match s.summary.ci {
                Some(ci) => format!(
                    "{:.3} ± {:.3} [{:.3}, {:.3}] ({} items × {} repeats)",
                    s.summary.mean,
                    s.summary.std_dev,
                    ci.low,
                    ci.high,
                    s.summary.items,
                    s.summary.repeats
                ),
                None if s.summary.items == 0 => "no item has a value".into(),
                None => format!(
                    "{:.3} ± {:.3} ({} items × {} repeats)",
                    s.summary.mean, s.summary.std_dev, s.summary.items, s.summary.repeats
                ),
            };
            ctx.progress
                .note(&format!("{}: {} {}: {value}", ctx.name, s.model, s.metric));
        }
        // The summaries travel in the table's metadata.
        let batch = table::batch(&Stage::output_schema(self), rows.columns())?;
        let mut metadata = batch.schema().metadata().clone();
        metadata.insert(
            SUMMARY_KEY.to_string(),
            serde_json::to_string(&summaries).expect("summaries serialise"),
        );
        let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
        Ok(batch.with_schema(schema)?)
    }
}

/// The non-empty lines of `text` that are not `#` comments.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_questions_parse() {
        assert_eq!(lines(QUESTIONS).len(), 20);
    }
}
