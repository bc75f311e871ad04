//! `judge_pairwise`: which of two rollouts' dialogues on the same task shows more
//! Collective Agency, judged in both orders.
//!
//! The two inputs (`needs: [a, b]`) are matched by group (their pair) and sample index. The
//! judge sees both outcomes and answers 1 or 2, once with A first and once with B first;
//! P(A preferred) is read from its next-token distribution (in-process) or its log-probs or
//! reply (endpoint). A wins only when it is preferred in both orders, B likewise; anything
//! else is `inconsistent` — the paper's rule, and its rate says how much the judge's
//! verdicts depend on position. Each verdict is cached per pair.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::judge::judge_model::{self, Asking};
use crate::judge::{Case, JudgeModel, Verdict, Winner, rubrics};
use crate::prompt::render;
use crate::stage::limits::{MAX_BATCH, MAX_REPEATS, at_most};
use crate::stage::{Resource, Stage, StageContext, StageError, Upstream};
use crate::store::row_cache::RowKey;
use crate::table;

/// Pairwise Collective Agency judging.
pub struct JudgePairwise;

/// Parameters of `judge_pairwise`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The judge: a spec model.
    pub model: String,
    /// A Jinja rubric replacing the built-in one (variables `dilemma`, `first`, `second`,
    /// each of the latter with `transcript` and `summary`); the reply must start with 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rubric_file: Option<PathBuf>,
    /// Pairs judged in one batch (in-process judge).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Seconds one request may take, and tries per request (endpoint judge).
    #[serde(default = "judge_model::default_timeout_s")]
    pub timeout_s: f64,
    #[serde(default = "judge_model::default_attempts")]
    pub attempts: u32,
}

fn default_batch_size() -> usize {
    16
}

impl Params {
    fn asking(&self) -> Asking {
        Asking {
            batch_size: self.batch_size,
            timeout_s: self.timeout_s,
            attempts: self.attempts,
            ..Asking::default()
        }
    }
}

/// What a verdict depends on: the judge, the rubric and both outcomes.
#[derive(Serialize)]
struct VerdictKey<'a> {
    version: u32,
    judge: &'a Value,
    backend: Option<&'a str>,
    rubric: &'a str,
    a: [&'a str; 3],
    b: [&'a str; 3],
}

impl RowKey for VerdictKey<'_> {
    const WHAT: &'static str = "pairwise verdict";
}

fn outcome(case: &Case) -> minijinja::Value {
    minijinja::context! { transcript => case.transcript.clone(), summary => case.summary.clone() }
}

impl Stage for JudgePairwise {
    type Params = Params;
    const KIND: &'static str = "judge_pairwise";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "Pairwise Collective Agency verdicts between two rollouts, judged in both orders.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![
            table::column(
                "group_id",
                DataType::Utf8,
                "The task (pair) both dialogues hold.",
            ),
            table::column(
                "sample",
                DataType::UInt32,
                "The sample index both dialogues share.",
            ),
            table::column("dialogue_a", DataType::Utf8, "The first input's dialogue."),
            table::column("dialogue_b", DataType::Utf8, "The second input's dialogue."),
            table::column(
                "p_a_first",
                DataType::Float64,
                "P(A preferred) with A shown first; null when the reply held no answer.",
            )
            .with_nullable(true),
            table::column(
                "p_a_second",
                DataType::Float64,
                "P(A preferred) with A shown second; null when the reply held no answer.",
            )
            .with_nullable(true),
            table::column(
                "winner",
                DataType::Utf8,
                "`a` or `b` when preferred in both orders, else `inconsistent` (or `unparseable`).",
            ),
        ])
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> = judge_model::timeout_problem(params.timeout_s)
            .map(|problem| ("timeout_s".to_string(), problem))
            .into_iter()
            .collect();
        if params.attempts == 0 {
            problems.push(("attempts".into(), "must be at least 1".into()));
        }
        problems.extend(
            [
                at_most("batch_size", params.batch_size, MAX_BATCH, "pairs"),
                at_most("attempts", params.attempts as usize, MAX_REPEATS, "tries"),
            ]
            .into_iter()
            .flatten(),
        );
        problems
    }

    fn check_inputs(&self, _params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        match inputs {
            [a, b] if a.kind == "rollout" && b.kind == "rollout" => Ok(()),
            _ => Err("`judge_pairwise` reads two inputs: the `rollout` stages to compare".into()),
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        vec![super::template_resource(
            "rubric_file",
            &params.rubric_file,
            "pairwise CA rubric",
            rubrics::PAIRWISE,
        )]
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        vec![("model", params.model.clone())]
    }

    fn endpoint_settings(&self, params: &Params) -> Vec<(String, &'static str)> {
        ["timeout_s", "attempts"]
            .map(|field| (params.model.clone(), field))
            .into()
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let [a, b] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed(
                "`judge_pairwise` needs two inputs".into(),
            ));
        };
        let rubric = super::read_template(ctx, &params.rubric_file, rubrics::PAIRWISE)?;
        let (a_cases, b_cases) = (Case::read_all(a)?, Case::read_all(b)?);
        let pairs: Vec<(&Case, &Case)> = a_cases
            .iter()
            .filter_map(|x| {
                b_cases
                    .iter()
                    .find(|y| y.group_id == x.group_id && y.sample == x.sample)
                    .map(|y| (x, y))
            })
            .collect();
        if pairs.is_empty() {
            return Err(StageError::Failed(format!(
                "`{}` and `{}` share no (group, sample): compare rollouts of the same pairs",
                a.name, b.name
            )));
        }
        let identity = ctx.models.identity_seen(&params.model);
        let backend = ctx
            .models
            .backend_name_of(&params.model)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let keys: Vec<VerdictKey> = pairs
            .iter()
            .map(|(x, y)| VerdictKey {
                version: Self::VERSION,
                judge: &identity,
                backend,
                rubric: &rubric,
                a: [&x.dilemma, &x.transcript, &x.summary],
                b: [&y.dilemma, &y.transcript, &y.summary],
            })
            .collect();
        ctx.progress.set_total(pairs.len() as u64);
        // Opened on the first missing verdict: a run whose verdicts are cached loads none.
        let judge = OnceCell::new();
        let verdicts = ctx.get_or_compute(&keys, params.batch_size, |chunk| {
            let judge = match judge.get() {
                Some(judge) => judge,
                None => judge.get_or_init(|| JudgeModel::open(ctx, &params.model, params.asking())),
            }
            .as_ref()
            .map_err(|e| StageError::Failed(e.to_string()))?;
            verdicts(judge, &rubric, chunk.iter().map(|&i| pairs[i]), ctx)
        })?;
        let share = |w: Winner| {
            verdicts.iter().filter(|v| v.winner() == w).count() as f64 / verdicts.len() as f64
        };
        ctx.progress.note(&format!(
            "{}: {} pairs: `{}` wins {:.0}%, `{}` wins {:.0}%, inconsistent {:.0}%",
            ctx.name,
            verdicts.len(),
            a.name,
            100.0 * share(Winner::A),
            b.name,
            100.0 * share(Winner::B),
            100.0 * share(Winner::Inconsistent)
        ));
        self.table(&pairs, &verdicts)
    }
}

impl JudgePairwise {
    /// One row per pair of dialogues.
    fn table(
        &self,
        pairs: &[(&Case, &Case)],
        verdicts: &[Verdict],
    ) -> Result<RecordBatch, StageError> {
        let columns: Vec<ArrayRef> = vec![
            table::strings(pairs.iter().map(|(x, _)| x.group_id.as_str())),
            Arc::new(UInt32Array::from_iter_values(
                pairs.iter().map(|(x, _)| x.sample),
            )),
            table::strings(pairs.iter().map(|(x, _)| x.dialogue_id.as_str())),
            table::strings(pairs.iter().map(|(_, y)| y.dialogue_id.as_str())),
            Arc::new(Float64Array::from_iter(verdicts.iter().map(|v| v.a_first))),
            Arc::new(Float64Array::from_iter(verdicts.iter().map(|v| v.a_second))),
            table::strings(verdicts.iter().map(|v| v.winner().name())),
        ];
        table::batch(&Stage::output_schema(self), columns)
    }
}

/// The verdicts of `judge` on `pairs`, each asked in both orders.
fn verdicts<'a>(
    judge: &JudgeModel,
    rubric: &str,
    pairs: impl Iterator<Item = (&'a Case, &'a Case)>,
    ctx: &StageContext,
) -> Result<Vec<Verdict>, StageError> {
    let question = |first: &Case, second: &Case| {
        render(
            rubric,
            minijinja::context! {
                dilemma => first.dilemma.clone(),
                first => outcome(first),
                second => outcome(second),
            },
        )
    };
    let mut questions = Vec::new();
    for (x, y) in pairs {
        questions.push(question(x, y)?);
        questions.push(question(y, x)?);
    }
    let ratings = judge.rate(&questions, &["1", "2"], ctx)?;
    let first_preferred = |k: usize| ratings[k].distribution().map(|d| d[0]);
    Ok((0..questions.len() / 2)
        .map(|k| Verdict::from_orders(first_preferred(2 * k), first_preferred(2 * k + 1)))
        .collect())
}
