//! `judge_pairwise`: which of two rollouts' dialogues on the same task shows more
//! Collective Agency, judged in both orders.
//!
//! The two inputs (`needs: [a, b]`) are matched by group (their pair) and sample index. The
//! judge sees both outcomes and answers 1 or 2, once with A first and once with B first;
//! P(A preferred) is read from its next-token distribution (in-process) or its log-probs or
//! reply (endpoint). A wins only when it is preferred in both orders, B likewise; anything
//! else is `inconsistent` — the paper's rule, and its rate says how much the judge's
//! verdicts depend on position. Each verdict is cached per pair.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::judge::{Case, cases, render};
use crate::judge::openai::{self, Rating};
use crate::llm::chat::Message;
use crate::llm::choice::{answer_distribution, answer_tokens, next_token_logprobs};
use crate::stage::{Resource, Stage, StageContext, StageError, Upstream};
use crate::store::row_cache::row_key;
use crate::table;

pub const RUBRIC: &str = include_str!("../../data/rubrics/pairwise_collective_agency.jinja");

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
    #[serde(default = "super::judge::default_batch_size")]
    pub batch_size: usize,
    /// Seconds one request may take, and tries per request (endpoint judge).
    #[serde(default = "super::judge::default_timeout_s")]
    pub timeout_s: f64,
    #[serde(default = "super::judge::default_attempts")]
    pub attempts: u32,
}

/// One cached verdict: P(A preferred) with A shown first and with A shown second (`None`
/// when the reply held no answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Verdict {
    pub a_first: Option<f64>,
    pub a_second: Option<f64>,
}

impl Verdict {
    /// `a` or `b` when preferred in both orders, else `inconsistent` (or `unparseable`).
    pub(crate) fn winner(&self) -> &'static str {
        match (self.a_first, self.a_second) {
            (Some(x), Some(y)) if x > 0.5 && y > 0.5 => "a",
            (Some(x), Some(y)) if x < 0.5 && y < 0.5 => "b",
            (Some(_), Some(_)) => "inconsistent",
            _ => "unparseable",
        }
    }
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
        if params.timeout_s.is_finite() && params.timeout_s > 0.0 && params.timeout_s <= 86_400.0 {
            Vec::new()
        } else {
            vec![(
                "timeout_s".into(),
                "must be a number of seconds in (0, 86400]".into(),
            )]
        }
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
            RUBRIC,
        )]
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        vec![("model", params.model.clone())]
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let [a, b] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed(
                "`judge_pairwise` needs two inputs".into(),
            ));
        };
        let rubric = super::read_template(ctx, &params.rubric_file, RUBRIC)?;
        let (a_cases, b_cases) = (cases(a)?, cases(b)?);
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
        let local = ctx.models.in_process(&params.model);
        let backend = ctx
            .models
            .backend_name_of(&params.model)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let identity = ctx.models.identity_seen(&params.model);
        let prompt = |first: &Case, second: &Case| {
            render(
                &rubric,
                minijinja::context! {
                    dilemma => first.dilemma.clone(),
                    first => outcome(first),
                    second => outcome(second),
                },
            )
        };
        let keys: Vec<String> = pairs
            .iter()
            .map(|(x, y)| {
                row_key(&json!({
                    "what": "pairwise verdict", "version": Self::VERSION,
                    "judge": identity, "backend": backend, "rubric": rubric,
                    "a": [x.dilemma, x.transcript, x.summary],
                    "b": [y.dilemma, y.transcript, y.summary],
                }))
            })
            .collect();
        let mut verdicts: Vec<Option<Verdict>> = keys.iter().map(|k| ctx.rows.get(k)).collect();
        ctx.progress.set_total(pairs.len() as u64);
        for _ in verdicts.iter().flatten() {
            ctx.rows.tally(true);
            ctx.progress.advance(1);
        }
        let missing: Vec<usize> = (0..pairs.len())
            .filter(|&i| verdicts[i].is_none())
            .collect();
        // P(first shown preferred) for each (first, second) question.
        let ask = |questions: Vec<String>| -> Result<Vec<Option<f64>>, StageError> {
            if local {
                let failed = |e: crate::llm::LlmError| {
                    StageError::Failed(format!("model `{}`: {e}", params.model))
                };
                let model = ctx.models.load(&params.model).map_err(failed)?;
                let answers = answer_tokens(&model.tokenizer, &["1", "2"]).map_err(failed)?;
                let mut out = Vec::new();
                for chunk in questions.chunks(params.batch_size.max(1)) {
                    ctx.check_cancelled()?;
                    let mut prompts = Vec::new();
                    for q in chunk {
                        let text = model
                            .chat_prompt(&[Message::new("user", q)])
                            .map_err(failed)?;
                        prompts.push(model.tokenizer.encode(&text).map_err(failed)?);
                    }
                    for row in next_token_logprobs(&model.model, &prompts).map_err(failed)? {
                        out.push(Some(answer_distribution(&row, &answers, 1.0)[0]));
                    }
                }
                Ok(out)
            } else {
                let endpoint =
                    super::judge::endpoint(ctx, &params.model, params.timeout_s, params.attempts)?;
                questions
                    .iter()
                    .map(|q| {
                        ctx.check_cancelled()?;
                        let rating =
                            openai::rate(&endpoint, &[Message::new("user", q)]).map_err(|e| {
                                StageError::Failed(format!("judge `{}`: {e}", params.model))
                            })?;
                        Ok(match rating {
                            Rating::Distribution(d) if d[1] + d[2] > 0.0 => {
                                Some(d[1] / (d[1] + d[2]))
                            }
                            _ => None,
                        })
                    })
                    .collect()
            }
        };
        for chunk in missing.chunks(params.batch_size.max(1)) {
            let mut questions = Vec::new();
            for &i in chunk {
                let (x, y) = pairs[i];
                questions.push(prompt(x, y)?);
                questions.push(prompt(y, x)?);
            }
            let answers = ask(questions)?;
            for (k, &i) in chunk.iter().enumerate() {
                let verdict = Verdict {
                    a_first: answers[2 * k],
                    a_second: answers[2 * k + 1].map(|p| 1.0 - p),
                };
                ctx.rows
                    .put(&keys[i], &verdict)
                    .map_err(|e| StageError::Failed(e.to_string()))?;
                ctx.rows.tally(false);
                ctx.progress.advance(1);
                verdicts[i] = Some(verdict);
            }
        }
        let verdicts: Vec<Verdict> = verdicts.into_iter().map(|v| v.expect("judged")).collect();
        let share = |w: &str| {
            verdicts.iter().filter(|v| v.winner() == w).count() as f64 / verdicts.len() as f64
        };
        ctx.progress.note(&format!(
            "{}: {} pairs: `{}` wins {:.0}%, `{}` wins {:.0}%, inconsistent {:.0}%",
            ctx.name,
            verdicts.len(),
            a.name,
            100.0 * share("a"),
            b.name,
            100.0 * share("b"),
            100.0 * share("inconsistent")
        ));
        let columns: Vec<ArrayRef> = vec![
            table::strings(pairs.iter().map(|(x, _)| x.group_id.as_str())),
            Arc::new(UInt32Array::from_iter_values(
                pairs.iter().map(|(x, _)| x.sample),
            )),
            table::strings(pairs.iter().map(|(x, _)| x.dialogue_id.as_str())),
            table::strings(pairs.iter().map(|(_, y)| y.dialogue_id.as_str())),
            Arc::new(Float64Array::from_iter(verdicts.iter().map(|v| v.a_first))),
            Arc::new(Float64Array::from_iter(verdicts.iter().map(|v| v.a_second))),
            table::strings(verdicts.iter().map(Verdict::winner)),
        ];
        table::batch(&Stage::output_schema(self), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict;

    #[test]
    fn a_win_needs_both_orders() {
        let v = |a_first, a_second| Verdict {
            a_first: Some(a_first),
            a_second: Some(a_second),
        };
        assert_eq!(v(0.8, 0.7).winner(), "a");
        assert_eq!(v(0.2, 0.1).winner(), "b");
        assert_eq!(v(0.8, 0.3).winner(), "inconsistent");
        let missing = Verdict {
            a_first: None,
            a_second: Some(0.9),
        };
        assert_eq!(missing.winner(), "unparseable");
    }
}
