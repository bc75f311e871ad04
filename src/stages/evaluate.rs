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

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::dialogue::{Dialogue, Task, transcript};
use super::judge::{DIGITS, expectation};
use super::judge_pairwise::Verdict;
use super::rollout::{self, Agreement, ContextTurns};
use crate::judge::asker::Asker;
use crate::llm::chat::Message;
use crate::llm::choice::{answer_distribution, answer_tokens, next_token_logprobs};
use crate::llm::generate::{Request, generate};
use crate::llm::loaded::LoadedModel;
use crate::llm::sampling::Sampling;
use crate::seed::SeededRng;
use crate::stage::{Input, Resource, Stage, StageContext, StageError, Upstream};
use crate::stats::{self, Summary};
use crate::store::row_cache::row_key;
use crate::table;

pub const QUESTIONS: &str = include_str!("../../data/eval/questions.txt");
pub const HELDOUT_TEXT: &str = include_str!("../../data/eval/heldout_text.txt");
pub const MULTIPLE_CHOICE: &str = include_str!("../../data/eval/multiple_choice.jsonl");
pub const ANSWER_PROMPT: &str = include_str!("../../data/prompts/single_agent.jinja");
pub const QUESTION_PROMPT: &str = include_str!("../../data/prompts/open_question.jinja");
pub const ANSWER_RUBRIC: &str = include_str!("../../data/rubrics/collective_agency_answer.jinja");
pub const PAIRWISE_ANSWER_RUBRIC: &str =
    include_str!("../../data/rubrics/pairwise_collective_agency_answer.jinja");
pub const PAIRWISE_RESOLUTION_RUBRIC: &str =
    include_str!("../../data/rubrics/pairwise_conflict_resolution.jinja");

/// The Parquet metadata key holding the summaries (a JSON list of [`MetricSummary`]).
pub const SUMMARY_KEY: &str = "accord.evaluation";

const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

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
    fn name(self) -> &'static str {
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
    /// The judge (default: the baseline model). Never one of the evaluated checkpoints.
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
    /// Bootstrap resamples for the confidence intervals.
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// Seconds one judge request may take, and tries per request (endpoint judge).
    #[serde(default = "super::judge::default_timeout_s")]
    pub timeout_s: f64,
    #[serde(default = "super::judge::default_attempts")]
    pub attempts: u32,
    #[serde(default = "rollout::default_max_turns")]
    pub max_turns: usize,
    #[serde(default = "rollout::default_context_turns")]
    pub context_turns: ContextTurns,
    #[serde(default = "rollout::default_temperature")]
    pub temperature: f32,
    #[serde(default = "rollout::default_top_p")]
    pub top_p: f32,
    #[serde(default = "rollout::default_max_new_tokens")]
    pub max_new_tokens: usize,
    #[serde(default)]
    pub agreement: Agreement,
    /// The model that checks agreement for every evaluated model (default: the baseline),
    /// so all are held to the same check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_model: Option<String>,
    #[serde(default = "rollout::default_marker")]
    pub marker: String,
    /// Answers, dialogues and judge questions in one batch.
    #[serde(default = "rollout::default_batch_size")]
    pub batch_size: usize,
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

    /// Self-play with `model` under the rollout protocol.
    fn rollout(&self, model: &str) -> rollout::Params {
        rollout::Params {
            model: Some(model.into()),
            agents: None,
            group_size: 1,
            max_turns: self.max_turns,
            context_turns: self.context_turns.clone(),
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            agreement: self.agreement,
            agreement_model: Some(
                self.agreement_model
                    .clone()
                    .unwrap_or(self.baseline.clone()),
            ),
            marker: self.marker.clone(),
            protocol_file: None,
            agreement_file: None,
            summary_file: None,
            batch_size: self.batch_size,
        }
    }

    fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_k: 0,
            top_p: self.top_p,
        }
    }
}

/// One metric of one model, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub model: String,
    pub suite: String,
    pub metric: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// repeat → item → value.
type ByRepeat = BTreeMap<u32, BTreeMap<String, Option<f64>>>;

/// Per item: 1/0 for a win and for a loss against the baseline (`None`: a reply held no
/// verdict).
type WinLoss = (Option<f64>, Option<f64>);

/// The output rows being built.
#[derive(Default)]
struct Rows {
    model: Vec<String>,
    suite: Vec<&'static str>,
    metric: Vec<&'static str>,
    item: Vec<String>,
    repeat: Vec<u32>,
    value: Vec<Option<f64>>,
}

impl Rows {
    fn push(
        &mut self,
        model: &str,
        suite: Suite,
        metric: &'static str,
        item: &str,
        repeat: usize,
        value: Option<f64>,
    ) {
        self.model.push(model.to_string());
        self.suite.push(suite.name());
        self.metric.push(metric);
        self.item.push(item.to_string());
        self.repeat.push(repeat as u32);
        self.value.push(value);
    }

    /// Mean ± SD over repeats and a bootstrap interval over items, per (model, metric),
    /// in order of first appearance.
    fn summaries(&self, resamples: usize, seed: u64) -> Vec<MetricSummary> {
        let mut order: Vec<(String, &'static str, &'static str)> = Vec::new();
        // (model, metric) → repeat → item → value
        let mut grid: BTreeMap<(String, &str), ByRepeat> = BTreeMap::new();
        for i in 0..self.model.len() {
            let id = (self.model[i].clone(), self.metric[i]);
            if !grid.contains_key(&id) {
                order.push((self.model[i].clone(), self.suite[i], self.metric[i]));
            }
            grid.entry(id)
                .or_default()
                .entry(self.repeat[i])
                .or_default()
                .insert(self.item[i].clone(), self.value[i]);
        }
        order
            .into_iter()
            .map(|(model, suite, metric)| {
                let repeats = &grid[&(model.clone(), metric)];
                let items: Vec<&String> = repeats
                    .values()
                    .flat_map(BTreeMap::keys)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let values: Vec<Vec<Option<f64>>> = repeats
                    .values()
                    .map(|by_item| {
                        items
                            .iter()
                            .map(|item| by_item.get(*item).copied().flatten())
                            .collect()
                    })
                    .collect();
                let seed = SeededRng::new(seed, &[model.as_bytes(), metric.as_bytes()]).next_u64();
                MetricSummary {
                    summary: stats::summarise(&values, resamples, seed),
                    model,
                    suite: suite.into(),
                    metric: metric.into(),
                }
            })
            .collect()
    }
}

/// A held-out dilemma answered alone, or an open-ended question.
struct Item {
    id: String,
    /// The request the evaluated model gets.
    prompt: String,
    /// What the judge sees as the question, and the parties' names (none for a question).
    question: String,
    parties: Vec<String>,
}

/// One held-out pair negotiated in self-play.
struct Negotiation {
    id: String,
    task: Task,
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
        if params
            .models
            .iter()
            .any(|m| Some(m) == params.judge.as_ref())
        {
            problems.push((
                "judge".into(),
                "the judge is one of the evaluated models; judge with a model that is not being evaluated".into(),
            ));
        }
        if !(params.top_p > 0.0 && params.top_p <= 1.0) {
            problems.push(("top_p".into(), "must be in (0, 1]".into()));
        }
        if params.temperature.is_nan() || params.temperature < 0.0 {
            problems.push(("temperature".into(), "must be 0 or more".into()));
        }
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
                ("answer prompt", ANSWER_PROMPT),
                ("question prompt", QUESTION_PROMPT),
                ("answer rubric", ANSWER_RUBRIC),
                ("pairwise answer rubric", PAIRWISE_ANSWER_RUBRIC),
                ("pairwise resolution rubric", PAIRWISE_RESOLUTION_RUBRIC),
                ("negotiation protocol", rollout::PROTOCOL),
                ("agreement check", rollout::AGREEMENT),
                ("closing summary", rollout::SUMMARY),
            ]
            .map(|(name, text)| Resource::Embedded {
                name,
                bytes: text.as_bytes(),
            }),
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
            && params.agreement == Agreement::Judge
            && let Some(model) = &params.agreement_model
        {
            models.push(("agreement_model", model.clone()));
        }
        models
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
            check_held_out(pairs, &ctx.trained_on)?;
        }
        let mut rows = Rows::default();
        let judge = Asker::open(
            ctx,
            params.judge(),
            params.batch_size,
            params.timeout_s,
            params.attempts,
        )?;
        let evaluate = Evaluation { params, ctx, judge };
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
                    let pairs = pairs.expect("checked: the suite has its input");
                    evaluate.collective_agency(pairs, &mut rows)?
                }
                Suite::ConflictResolution => {
                    let pairs = pairs.expect("checked: the suite has its input");
                    evaluate.conflict_resolution(pairs, &mut rows)?
                }
                Suite::General => evaluate.general(&mut rows)?,
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
                None => "no item has a value".into(),
            };
            ctx.progress
                .note(&format!("{}: {} {}: {value}", ctx.name, s.model, s.metric));
        }
        let columns: Vec<ArrayRef> = vec![
            table::strings(&rows.model),
            table::strings(&rows.suite),
            table::strings(&rows.metric),
            table::strings(&rows.item),
            Arc::new(UInt32Array::from(rows.repeat)),
            Arc::new(Float64Array::from(rows.value)),
        ];
        let batch = table::batch(&Stage::output_schema(self), columns)?;
        let mut metadata = batch.schema().metadata().clone();
        metadata.insert(
            SUMMARY_KEY.to_string(),
            serde_json::to_string(&summaries).expect("summaries serialise"),
        );
        let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
        Ok(batch.with_schema(schema)?)
    }
}

/// Fails when a held-out dilemma is one an evaluated model was trained on.
fn check_held_out(heldout: &Input, trained_on: &[Input]) -> Result<(), StageError> {
    let texts = |input: &Input| -> Option<Vec<String>> {
        let column = ["dilemma", "text"]
            .into_iter()
            .find_map(|name| table::string_column(input, name).ok())?;
        Some(column.iter().flatten().map(normalise).collect())
    };
    let Some(ours) = texts(heldout) else {
        return Ok(());
    };
    for training in trained_on {
        let Some(theirs) = texts(training) else {
            continue;
        };
        let theirs: HashSet<String> = theirs.into_iter().collect();
        let shared: Vec<&String> = ours.iter().filter(|t| theirs.contains(*t)).collect();
        if let Some(first) = shared.first() {
            let distinct: HashSet<&&String> = shared.iter().collect();
            return Err(StageError::Failed(format!(
                "{} held-out dilemma(s) of `{}` are also in `{}`, which an evaluated model was trained on (first: \"{}\"); synthesise held-out dilemmas in their own stage with `split: heldout` (and the training ones with `split: train`)",
                distinct.len(),
                heldout.name,
                training.name,
                first.chars().take(80).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Text compared for overlap: whitespace collapsed, case folded.
fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// What the suites share while they run.
struct Evaluation<'a, 'c> {
    params: &'a Params,
    ctx: &'a StageContext<'c>,
    judge: Asker,
}

impl Evaluation<'_, '_> {
    fn load(&self, name: &str) -> Result<Arc<LoadedModel>, StageError> {
        self.ctx
            .models
            .load(name)
            .map_err(|e| StageError::Failed(format!("model `{name}`: {e}")))
    }

    /// The values of `keys` from the row cache, computing the missing ones with
    /// `compute(indices)` (in order) and caching them as they come.
    fn cached<T: Serialize + DeserializeOwned + Clone>(
        &self,
        keys: &[String],
        mut compute: impl FnMut(&[usize]) -> Result<Vec<T>, StageError>,
    ) -> Result<Vec<T>, StageError> {
        let rows = self.ctx.rows;
        let mut values: Vec<Option<T>> = keys.iter().map(|k| rows.get(k)).collect();
        for _ in values.iter().flatten() {
            rows.tally(true);
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        for chunk in missing.chunks(self.params.batch_size.max(1)) {
            self.ctx.check_cancelled()?;
            for (&i, value) in chunk.iter().zip(compute(chunk)?) {
                rows.put(&keys[i], &value)
                    .map_err(|e| StageError::Failed(e.to_string()))?;
                rows.tally(false);
                values[i] = Some(value);
            }
        }
        Ok(values.into_iter().map(|v| v.expect("computed")).collect())
    }

    /// The identity of a model in row keys: its weights and the backend it runs on.
    fn identity(&self, name: &str) -> serde_json::Value {
        let backend = self.ctx.models.backend_name_of(name).ok().flatten();
        json!({"model": self.ctx.models.identity_seen(name), "backend": backend})
    }

    /// The seed of item `item` in repeat `repeat` (shared by every model: their samples
    /// differ only by the model).
    fn seed(&self, what: &[u8], item: &str, repeat: usize) -> u64 {
        SeededRng::new(
            self.ctx.seed,
            &[what, item.as_bytes(), &(repeat as u64).to_le_bytes()],
        )
        .next_u64()
    }

    /// Distributions over `digits` for `questions`, cached per question.
    fn ask_judge(
        &self,
        questions: &[String],
        digits: &[&str],
    ) -> Result<Vec<Option<Vec<f64>>>, StageError> {
        let identity = self.identity(self.params.judge());
        let keys: Vec<String> = questions
            .iter()
            .map(|q| row_key(&json!({"what": "evaluate judge question", "judge": identity, "question": q, "digits": digits})))
            .collect();
        self.cached(&keys, |indices| {
            let asked: Vec<String> = indices.iter().map(|&i| questions[i].clone()).collect();
            self.judge.ask(&asked, digits, self.ctx)
        })
    }

    /// Win and loss against the baseline for each (ours, baseline's) question pair: the
    /// judge is asked with ours first and with ours second.
    fn pairwise(
        &self,
        first_ours: &[String],
        first_theirs: &[String],
    ) -> Result<Vec<WinLoss>, StageError> {
        let questions: Vec<String> = first_ours.iter().chain(first_theirs).cloned().collect();
        let answers = self.ask_judge(&questions, &["1", "2"])?;
        let n = first_ours.len();
        // `judge_pairwise`'s rule: a win or a loss only when both orders agree.
        Ok((0..n)
            .map(|i| {
                let verdict = Verdict {
                    a_first: answers[i].as_ref().map(|d| d[0]),
                    a_second: answers[n + i].as_ref().map(|d| d[1]),
                };
                match verdict.winner() {
                    "a" => (Some(1.0), Some(0.0)),
                    "b" => (Some(0.0), Some(1.0)),
                    "inconsistent" => (Some(0.0), Some(0.0)),
                    _ => (None, None),
                }
            })
            .collect())
    }

    /// Answers of `model` to `prompts` (chat user messages) with `seeds`, cached per row.
    fn answers(
        &self,
        model: &str,
        prompts: &[String],
        seeds: &[u64],
    ) -> Result<Vec<String>, StageError> {
        let identity = self.identity(model);
        let sampling = self.params.sampling();
        let keys: Vec<String> = prompts
            .iter()
            .zip(seeds)
            .map(|(prompt, seed)| {
                row_key(&json!({
                    "what": "evaluate answer", "version": Evaluate::VERSION, "model": identity,
                    "prompt": prompt, "sampling": sampling,
                    "max_new_tokens": self.params.max_new_tokens, "seed": seed,
                }))
            })
            .collect();
        self.cached(&keys, |indices| {
            let policy = self.load(model)?;
            let failed =
                |e: crate::llm::LlmError| StageError::Failed(format!("model `{model}`: {e}"));
            let mut requests = Vec::with_capacity(indices.len());
            for &i in indices {
                let text = policy
                    .chat_prompt(&[Message::new("user", &prompts[i])])
                    .map_err(failed)?;
                requests.push(Request {
                    prompt: policy.tokenizer.encode(&text).map_err(failed)?,
                    sampling,
                    max_new_tokens: self.params.max_new_tokens,
                    seed: seeds[i],
                    stop_strings: Vec::new(),
                    top_logprobs: 0,
                });
            }
            let done = generate(
                &policy.model,
                &policy.tokenizer,
                &requests,
                &policy.stop_tokens,
                |_, _| {},
            )
            .map_err(failed)?;
            Ok(done
                .into_iter()
                .map(|c| c.text.trim().to_string())
                .collect())
        })
    }

    fn collective_agency(&self, pairs: &Input, rows: &mut Rows) -> Result<(), StageError> {
        let params = self.params;
        let items = self.answer_items(pairs)?;
        let suite = Suite::CollectiveAgency;
        let baseline = &params.baseline;
        // answers[model][repeat][item]
        let mut answers: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for model in params.evaluated() {
            let mut by_repeat = Vec::new();
            for repeat in 0..params.repeats {
                let prompts: Vec<String> = items.iter().map(|i| i.prompt.clone()).collect();
                let seeds: Vec<u64> = items
                    .iter()
                    .map(|i| self.seed(b"evaluate answer", &i.id, repeat))
                    .collect();
                by_repeat.push(self.answers(&model, &prompts, &seeds)?);
            }
            answers.insert(model, by_repeat);
        }
        let rate = |question: &str, parties: &[String], answer: &str| {
            super::judge::render(
                ANSWER_RUBRIC,
                minijinja::context! { question => question, parties => parties.to_vec(), answer => answer },
            )
        };
        let compare = |item: &Item, first: &str, second: &str| {
            super::judge::render(
                PAIRWISE_ANSWER_RUBRIC,
                minijinja::context! {
                    question => item.question.clone(), parties => item.parties.clone(),
                    first => first, second => second,
                },
            )
        };
        for model in params.evaluated() {
            for (repeat, ours) in answers[&model].iter().enumerate() {
                let questions = items
                    .iter()
                    .zip(ours)
                    .map(|(item, answer)| rate(&item.question, &item.parties, answer))
                    .collect::<Result<Vec<_>, _>>()?;
                let ratings = self.ask_judge(&questions, &DIGITS)?;
                for (item, rating) in items.iter().zip(&ratings) {
                    let score = rating.as_ref().map(|d| expectation(d));
                    rows.push(&model, suite, "ca_score", &item.id, repeat, score);
                }
                if &model == baseline {
                    continue;
                }
                let theirs = &answers[baseline][repeat];
                let mut ours_first = Vec::new();
                let mut theirs_first = Vec::new();
                for ((item, a), b) in items.iter().zip(ours).zip(theirs) {
                    ours_first.push(compare(item, a, b)?);
                    theirs_first.push(compare(item, b, a)?);
                }
                for (item, (win, loss)) in
                    items.iter().zip(self.pairwise(&ours_first, &theirs_first)?)
                {
                    rows.push(&model, suite, "ca_win_rate", &item.id, repeat, win);
                    rows.push(&model, suite, "ca_loss_rate", &item.id, repeat, loss);
                }
            }
            self.ctx.progress.advance(1);
        }
        Ok(())
    }

    /// The held-out dilemmas (the first pair of each, with its parties' names), then the
    /// open-ended questions; each list capped at `items`.
    fn answer_items(&self, pairs: &Input) -> Result<Vec<Item>, StageError> {
        let cap = self.params.items.unwrap_or(usize::MAX);
        let dilemma_ids = table::string_column(pairs, "dilemma_id")?;
        let dilemmas = table::string_column(pairs, "dilemma")?;
        let parties = rollout::parties(pairs, 2)?;
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for (row, parties) in parties.iter().enumerate() {
            if items.len() == cap {
                break;
            }
            if !seen.insert(dilemma_ids.value(row)) {
                continue;
            }
            let names: Vec<String> = parties.iter().map(|p| p.name.clone()).collect();
            items.push(Item {
                id: dilemma_ids.value(row).to_string(),
                prompt: super::judge::render(
                    ANSWER_PROMPT,
                    minijinja::context! { dilemma => dilemmas.value(row), personas => names.clone() },
                )?,
                question: dilemmas.value(row).to_string(),
                parties: names,
            });
        }
        let questions = super::read_template(self.ctx, &self.params.questions_file, QUESTIONS)?;
        for (n, question) in lines(&questions).into_iter().take(cap).enumerate() {
            items.push(Item {
                id: format!("q{}", n + 1),
                prompt: super::judge::render(
                    QUESTION_PROMPT,
                    minijinja::context! { question => question },
                )?,
                question: question.to_string(),
                parties: Vec::new(),
            });
        }
        Ok(items)
    }

    fn conflict_resolution(&self, pairs: &Input, rows: &mut Rows) -> Result<(), StageError> {
        let params = self.params;
        let suite = Suite::ConflictResolution;
        let cap = params.items.unwrap_or(usize::MAX);
        let pair_ids = table::string_column(pairs, "pair_id")?;
        let dilemmas = table::string_column(pairs, "dilemma")?;
        let all_parties = rollout::parties(pairs, 2)?;
        // The held-out pairs as tasks; each repeat seeds them anew.
        let tasks: Vec<Task> = (0..pairs.batch.num_rows().min(cap))
            .map(|row| Task {
                dilemma: dilemmas.value(row).to_string(),
                parties: all_parties[row].clone(),
                seed: 0,
            })
            .collect();
        // dialogues[model][repeat][pair]
        let mut dialogues: BTreeMap<String, Vec<Vec<Dialogue>>> = BTreeMap::new();
        for model in params.evaluated() {
            let settings = params.rollout(&model);
            let protocol = settings.protocol(settings.agent_models(), self.ctx)?;
            let agreement = match &protocol.agreement {
                super::dialogue::AgreementCheck::Judge { model, prompt } => {
                    json!({"model": self.identity(model), "prompt": prompt})
                }
                super::dialogue::AgreementCheck::Marker(marker) => json!({ "marker": marker }),
            };
            let identity = self.identity(&model);
            let mut by_repeat = Vec::new();
            for repeat in 0..params.repeats {
                let negotiations: Vec<Negotiation> = tasks
                    .iter()
                    .enumerate()
                    .map(|(row, task)| Negotiation {
                        id: pair_ids.value(row).to_string(),
                        task: Task {
                            seed: self.seed(b"evaluate dialogue", pair_ids.value(row), repeat),
                            ..task.clone()
                        },
                    })
                    .collect();
                let keys: Vec<String> = negotiations
                    .iter()
                    .map(|n| {
                        row_key(&json!({
                            "what": "evaluate dialogue", "version": Evaluate::VERSION,
                            "model": identity, "agreement": agreement,
                            "dilemma": n.task.dilemma,
                            "parties": n.task.parties.iter().map(|p| [&p.persona, &p.profile]).collect::<Vec<_>>(),
                            "max_turns": protocol.max_turns, "context_turns": params.context_turns,
                            "sampling": protocol.sampling, "max_new_tokens": protocol.max_new_tokens,
                            "system_prompt": protocol.system_prompt, "summary_prompt": protocol.summary_prompt,
                            "seed": n.task.seed,
                        }))
                    })
                    .collect();
                let held = self.cached(&keys, |indices| {
                    let tasks: Vec<Task> = indices
                        .iter()
                        .map(|&i| negotiations[i].task.clone())
                        .collect();
                    let mut out: Vec<Option<Dialogue>> = vec![None; tasks.len()];
                    protocol.run(&tasks, self.ctx.models, self.ctx, |i, dialogue| {
                        out[i] = Some(dialogue);
                        Ok(())
                    })?;
                    Ok(out
                        .into_iter()
                        .map(|d| d.expect("every dialogue ran"))
                        .collect())
                })?;
                for (n, dialogue) in negotiations.iter().zip(&held) {
                    rows.push(
                        &model,
                        suite,
                        "agreement_rate",
                        &n.id,
                        repeat,
                        Some(f64::from(u8::from(dialogue.agreed))),
                    );
                    let rounds = dialogue.agreed.then_some(dialogue.turns.len() as f64);
                    rows.push(&model, suite, "rounds_to_agreement", &n.id, repeat, rounds);
                }
                by_repeat.push(held);
            }
            dialogues.insert(model, by_repeat);
            self.ctx.progress.advance(1);
        }
        let baseline = &params.baseline;
        let outcome = |task: &Task, d: &Dialogue| {
            minijinja::context! { transcript => transcript(task, &d.turns), summary => d.summary.text.clone() }
        };
        for model in params.models.iter().filter(|m| *m != baseline) {
            let pairs_of_repeats = dialogues[model].iter().zip(&dialogues[baseline]);
            for (repeat, (ours, theirs)) in pairs_of_repeats.enumerate() {
                let mut ours_first = Vec::new();
                let mut theirs_first = Vec::new();
                for ((task, a), b) in tasks.iter().zip(ours).zip(theirs) {
                    let ask = |first: &Dialogue, second: &Dialogue| {
                        super::judge::render(
                            PAIRWISE_RESOLUTION_RUBRIC,
                            minijinja::context! {
                                dilemma => task.dilemma.clone(),
                                first => outcome(task, first), second => outcome(task, second),
                            },
                        )
                    };
                    ours_first.push(ask(a, b)?);
                    theirs_first.push(ask(b, a)?);
                }
                for (row, (win, loss)) in self
                    .pairwise(&ours_first, &theirs_first)?
                    .into_iter()
                    .enumerate()
                {
                    rows.push(
                        model,
                        suite,
                        "cr_win_rate",
                        pair_ids.value(row),
                        repeat,
                        win,
                    );
                    rows.push(
                        model,
                        suite,
                        "cr_loss_rate",
                        pair_ids.value(row),
                        repeat,
                        loss,
                    );
                }
            }
        }
        Ok(())
    }

    fn general(&self, rows: &mut Rows) -> Result<(), StageError> {
        let suite = Suite::General;
        let text = super::read_template(self.ctx, &self.params.text_file, HELDOUT_TEXT)?;
        let paragraphs = paragraphs(&text);
        let choices = super::read_template(self.ctx, &self.params.choices_file, MULTIPLE_CHOICE)?;
        let path = self
            .params
            .choices_file
            .clone()
            .unwrap_or_else(|| "data/eval/multiple_choice.jsonl".into());
        let questions =
            multiple_choice(&choices).map_err(|message| StageError::BadFile { path, message })?;
        for model in self.params.evaluated() {
            let identity = self.identity(&model);
            let keys: Vec<String> = paragraphs
                .iter()
                .map(|p| {
                    row_key(&json!({"what": "evaluate perplexity", "model": identity, "text": p}))
                })
                .collect();
            let perplexities: Vec<f64> = self.cached(&keys, |indices| {
                let loaded = self.load(&model)?;
                let failed =
                    |e: crate::llm::LlmError| StageError::Failed(format!("model `{model}`: {e}"));
                let mut out = Vec::new();
                for &i in indices {
                    let mut ids = loaded.tokenizer.encode(&paragraphs[i]).map_err(failed)?;
                    ids.truncate(loaded.model.config.max_positions);
                    let logprobs = loaded.model.score(&[ids], &[1]).remove(0);
                    let nll = -logprobs.iter().map(|&l| f64::from(l)).sum::<f64>()
                        / logprobs.len().max(1) as f64;
                    out.push(nll.exp());
                }
                Ok(out)
            })?;
            for (n, ppl) in perplexities.into_iter().enumerate() {
                rows.push(
                    &model,
                    suite,
                    "perplexity",
                    &format!("text{}", n + 1),
                    0,
                    Some(ppl),
                );
            }
            let keys: Vec<String> = questions
                .iter()
                .map(|q| row_key(&json!({"what": "evaluate multiple choice", "model": identity, "item": q.prompt})))
                .collect();
            let picks: Vec<usize> = self.cached(&keys, |indices| {
                let loaded = self.load(&model)?;
                let failed =
                    |e: crate::llm::LlmError| StageError::Failed(format!("model `{model}`: {e}"));
                let letters = answer_tokens(&loaded.tokenizer, &LETTERS).map_err(failed)?;
                let mut prompts = Vec::new();
                for &i in indices {
                    let text = loaded
                        .chat_prompt(&[Message::new("user", &questions[i].prompt)])
                        .map_err(failed)?;
                    prompts.push(loaded.tokenizer.encode(&text).map_err(failed)?);
                }
                Ok(next_token_logprobs(&loaded.model, &prompts)
                    .map_err(failed)?
                    .iter()
                    .map(|row| {
                        let p = answer_distribution(row, &letters, 1.0);
                        (0..p.len())
                            .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
                            .unwrap_or(0)
                    })
                    .collect())
            })?;
            for (n, (question, pick)) in questions.iter().zip(picks).enumerate() {
                let right = f64::from(u8::from(pick == question.answer));
                rows.push(
                    &model,
                    suite,
                    "mc_accuracy",
                    &format!("mc{}", n + 1),
                    0,
                    Some(right),
                );
            }
            self.ctx.progress.advance(1);
        }
        Ok(())
    }
}

/// The non-empty lines of `text` that are not `#` comments.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The paragraphs of `text` (blank-line separated), comment lines dropped.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        if line.is_empty() {
            if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

/// A multiple-choice item as the model sees it, and the index of the right choice.
struct Choice {
    prompt: String,
    answer: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChoiceLine {
    question: String,
    choices: Vec<String>,
    answer: usize,
}

/// Parses JSON-lines multiple-choice items; errors name the line.
fn multiple_choice(text: &str) -> Result<Vec<Choice>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let item: ChoiceLine =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            if item.choices.len() != LETTERS.len() || item.answer >= LETTERS.len() {
                return Err(format!(
                    "line {}: expected 4 `choices` and an `answer` from 0 to 3",
                    n + 1
                ));
            }
            let mut prompt = format!("{}\n", item.question);
            for (letter, choice) in LETTERS.iter().zip(&item.choices) {
                prompt.push_str(&format!("{letter}. {choice}\n"));
            }
            prompt.push_str("Answer with the letter of the right choice only.");
            Ok(Choice {
                prompt,
                answer: item.answer,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_data_parses() {
        assert_eq!(lines(QUESTIONS).len(), 20);
        assert_eq!(paragraphs(HELDOUT_TEXT).len(), 8);
        let items = multiple_choice(MULTIPLE_CHOICE).unwrap();
        assert_eq!(items.len(), 30);
        assert!(items[0].prompt.contains("B. Dolphin"));
        assert_eq!(items[0].answer, 1);
        let bad = multiple_choice("{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 0}");
        assert_eq!(
            bad.err().unwrap(),
            "line 1: expected 4 `choices` and an `answer` from 0 to 3"
        );
    }

    /// Summaries group by model and metric, spread over repeats, in order of appearance.
    #[test]
    fn rows_summarise_per_model_and_metric() {
        let mut rows = Rows::default();
        for (repeat, values) in [[4.0, 2.0], [5.0, 3.0]].iter().enumerate() {
            for (item, v) in ["d1", "d2"].iter().zip(values) {
                rows.push(
                    "trained",
                    Suite::CollectiveAgency,
                    "ca_score",
                    item,
                    repeat,
                    Some(*v),
                );
            }
        }
        rows.push(
            "trained",
            Suite::General,
            "mc_accuracy",
            "mc1",
            0,
            Some(1.0),
        );
        let summaries = rows.summaries(100, 1);
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[0].metric, "ca_score");
        assert_eq!(summaries[0].summary.mean, 3.5);
        assert!((summaries[0].summary.std_dev - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(summaries[1].summary.repeats, 1);
    }
}
