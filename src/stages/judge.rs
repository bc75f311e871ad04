//! `judge`: scores each dialogue of a `rollout` for Collective Agency (CA), 0–5.
//!
//! With an in-process model the judge is asked the rubric (built in:
//! `data/rubrics/collective_agency.jinja`; or `with.rubric_file`) and the score is the
//! expectation of its next-token distribution over the digits 0–5, so every dialogue gets a
//! valid score; each party's satisfaction is read the same way, and a short rationale is
//! generated after the rating. Dialogues without agreement get `no_agreement_score`
//! (default 0, as in the paper) without asking the judge, unless it is `null`.
//!
//! `repeats: k` samples k ratings from the judge's distribution (at `repeat_temperature`)
//! for a seeded sample of dialogues and reports how much they agree
//! ([`crate::judge::reliability`]): in the run's output and in the artifact's Parquet
//! metadata under [`RELIABILITY_KEY`]. Each dialogue's judgement is cached per row.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Float64Builder, ListBuilder, StringArray, UInt32Builder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::judge::case::rationale_messages;
use crate::judge::judge_model::{self, Asking};
use crate::judge::reliability::{Reliability, at_temperature, reliability};
use crate::judge::{Case, DIGITS, JudgeModel, Party, Rating, expectation, rubrics};
use crate::seed::SeededRng;
use crate::stage::limits::{MAX_BATCH, MAX_REPEATS, MAX_ROWS, MAX_TOKENS, at_most};
use crate::stage::{Resource, Stage, StageContext, StageError, Upstream};
use crate::store::row_cache::RowKey;
use crate::table;

/// The Parquet metadata key of the judge's self-agreement statistics (JSON: `dialogues`,
/// `repeats`, `exact`, `within_one`, `weighted_kappa`, `pearson_r`).
pub const RELIABILITY_KEY: &str = "accord.judge_reliability";

/// Collective Agency judging.
pub struct Judge;

/// Parameters of `judge`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The judge: a spec model.
    pub model: String,
    /// A Jinja rubric replacing the built-in Collective Agency one (variables `dilemma`,
    /// `parties`, `transcript`, `summary`, `agreed`); the reply must start with a digit 0–5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rubric_file: Option<PathBuf>,
    /// A Jinja question replacing the built-in per-party satisfaction one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfaction_file: Option<PathBuf>,
    /// The CA score (0–5) of a dialogue without agreement, given without asking the judge
    /// (the paper: 0); `null` asks the judge anyway.
    #[serde(default = "default_no_agreement_score")]
    pub no_agreement_score: Option<f64>,
    /// The longest rationale, in tokens (0: none).
    #[serde(default = "default_rationale_tokens")]
    pub rationale_tokens: usize,
    /// Ratings sampled per dialogue to measure the judge's self-agreement (0: none).
    #[serde(default)]
    pub repeats: usize,
    /// Temperature of the sampled ratings.
    #[serde(default = "default_repeat_temperature")]
    pub repeat_temperature: f64,
    /// How many dialogues (a seeded sample) get repeated ratings.
    #[serde(default = "default_repeat_sample")]
    pub repeat_sample: usize,
    /// Dialogues judged in one batch (in-process judge).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Requests in flight at once over all the judge's endpoint URLs (endpoint judge; each
    /// URL also takes at most the model's `concurrency`).
    #[serde(default = "judge_model::default_concurrency")]
    pub concurrency: usize,
    /// Seconds one request may take (endpoint judge).
    #[serde(default = "judge_model::default_timeout_s")]
    pub timeout_s: f64,
    /// Tries per request, the first included; failures back off exponentially.
    #[serde(default = "judge_model::default_attempts")]
    pub attempts: u32,
}

fn default_no_agreement_score() -> Option<f64> {
    Some(0.0)
}
fn default_rationale_tokens() -> usize {
    64
}
fn default_repeat_temperature() -> f64 {
    1.0
}
fn default_repeat_sample() -> usize {
    32
}
fn default_batch_size() -> usize {
    16
}

impl Params {
    fn asking(&self) -> Asking {
        Asking {
            batch_size: self.batch_size,
            concurrency: self.concurrency,
            timeout_s: self.timeout_s,
            attempts: self.attempts,
        }
    }
}

/// What the row cache keeps of one judgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Judgement {
    /// P(rating = k), k = 0..=5; empty when the judge was not asked or gave no rating.
    distribution: Vec<f64>,
    /// `None` when the judge's reply held no rating.
    ca_score: Option<f64>,
    /// `None` for a party whose rating the judge's reply did not hold.
    satisfaction: Vec<Option<f64>>,
    rationale: String,
    /// The reply, when it held no rating.
    #[serde(default)]
    unparseable: Option<String>,
}

impl Judgement {
    /// A dialogue without agreement, given `score` without asking the judge.
    fn fixed(score: f64) -> Self {
        Judgement {
            distribution: Vec::new(),
            ca_score: Some(score),
            satisfaction: Vec::new(),
            rationale: "no agreement".into(),
            unparseable: None,
        }
    }
}

/// What a judgement depends on.
#[derive(Serialize)]
struct JudgementKey<'a> {
    version: u32,
    judge: &'a Value,
    backend: Option<&'a str>,
    rubric: &'a str,
    satisfaction: &'a str,
    rationale: &'a str,
    rationale_tokens: usize,
    no_agreement_score: Option<f64>,
    dilemma: &'a str,
    parties: &'a [Party],
    transcript: &'a str,
    summary: &'a str,
    agreed: bool,
}

impl RowKey for JudgementKey<'_> {
    const WHAT: &'static str = "judge dialogue";
}

impl Stage for Judge {
    type Params = Params;
    const KIND: &'static str = "judge";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "Collective Agency scores (0-5) of rollout dialogues, with per-party satisfaction.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![
            table::column("dialogue_id", DataType::Utf8, "The dialogue judged."),
            table::column(
                "group_id",
                DataType::Utf8,
                "The dialogue's group (its pair).",
            ),
            table::column(
                "ca_score",
                DataType::Float64,
                "Collective Agency, 0-5: the expected rating under the judge's distribution, or `no_agreement_score`; null when the judge's reply held no rating.",
            )
            .with_nullable(true),
            table::column(
                "ca_distribution",
                table::list_of(DataType::Float64),
                "P(rating = 0..5) from the judge; empty when the judge was not asked.",
            ),
            table::column(
                "satisfaction",
                table::list_of(DataType::Float64),
                "Each party's expected satisfaction, 0-5, in speaker order (null where the reply held no rating); empty when not asked.",
            ),
            table::column(
                "agreed",
                DataType::Boolean,
                "Whether the dialogue reached agreement (from the rollout).",
            ),
            table::column(
                "judged",
                DataType::Boolean,
                "Whether the judge was asked (false: scored `no_agreement_score`).",
            ),
            table::column(
                "rationale",
                DataType::Utf8,
                "The judge's short explanation.",
            ),
            table::column(
                "repeat_ratings",
                table::list_of(DataType::UInt32),
                "Ratings sampled for the reliability check; empty for dialogues outside the sample.",
            ),
            table::column(
                "unparseable",
                DataType::Utf8,
                "The judge's reply when it held no rating (an endpoint judge); null otherwise.",
            )
            .with_nullable(true),
        ])
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if params.concurrency == 0 {
            problems.push(("concurrency".into(), "must be at least 1".into()));
        }
        if let Some(problem) = judge_model::timeout_problem(params.timeout_s) {
            problems.push(("timeout_s".into(), problem));
        }
        if params.repeats == 1 {
            problems.push((
                "repeats".into(),
                "agreement needs at least 2 repeats (0 turns the check off)".into(),
            ));
        }
        if params.repeat_temperature.is_nan() || params.repeat_temperature <= 0.0 {
            problems.push(("repeat_temperature".into(), "must be above 0".into()));
        }
        if let Some(score) = params.no_agreement_score
            && !(0.0..=5.0).contains(&score)
        {
            problems.push((
                "no_agreement_score".into(),
                format!("{score} is not a Collective Agency score: scores are 0 to 5"),
            ));
        }
        if params.attempts == 0 {
            problems.push(("attempts".into(), "must be at least 1".into()));
        }
        problems.extend(
            [
                at_most(
                    "rationale_tokens",
                    params.rationale_tokens,
                    MAX_TOKENS,
                    "tokens",
                ),
                at_most("repeats", params.repeats, MAX_REPEATS, "ratings"),
                at_most("repeat_sample", params.repeat_sample, MAX_ROWS, "dialogues"),
                at_most("batch_size", params.batch_size, MAX_BATCH, "dialogues"),
                at_most("concurrency", params.concurrency, MAX_BATCH, "requests"),
                at_most("attempts", params.attempts as usize, MAX_REPEATS, "tries"),
            ]
            .into_iter()
            .flatten(),
        );
        problems
    }

    fn check_inputs(&self, _params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        match inputs {
            [one] if one.kind == "rollout" => Ok(()),
            _ => Err("`judge` reads one input: the dialogues of a `rollout` stage".into()),
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        vec![
            super::template_resource(
                "rubric_file",
                &params.rubric_file,
                "CA rubric",
                rubrics::COLLECTIVE_AGENCY,
            ),
            super::template_resource(
                "satisfaction_file",
                &params.satisfaction_file,
                "satisfaction question",
                rubrics::SATISFACTION,
            ),
            Resource::embedded("rationale request", rubrics::RATIONALE),
        ]
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        vec![("model", params.model.clone())]
    }

    fn endpoint_settings(&self, params: &Params) -> Vec<(String, &'static str)> {
        ["timeout_s", "concurrency", "attempts"]
            .map(|field| (params.model.clone(), field))
            .into()
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let [input] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed("`judge` needs exactly one input".into()));
        };
        let rubric = super::read_template(ctx, &params.rubric_file, rubrics::COLLECTIVE_AGENCY)?;
        let satisfaction =
            super::read_template(ctx, &params.satisfaction_file, rubrics::SATISFACTION)?;
        let cases = Case::read_all(input)?;
        let identity = ctx.models.identity_seen(&params.model);
        let backend = ctx
            .models
            .backend_name_of(&params.model)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let keys: Vec<JudgementKey> = cases
            .iter()
            .map(|c| JudgementKey {
                version: Self::VERSION,
                judge: &identity,
                backend,
                rubric: &rubric,
                satisfaction: &satisfaction,
                rationale: rubrics::RATIONALE,
                rationale_tokens: params.rationale_tokens,
                no_agreement_score: params.no_agreement_score,
                dilemma: &c.dilemma,
                parties: &c.parties,
                transcript: &c.transcript,
                summary: &c.summary,
                agreed: c.agreed,
            })
            .collect();
        let mut rows = ctx.rows.open::<_, Judgement>(&keys);
        ctx.progress.set_total(cases.len() as u64);
        ctx.progress.advance(rows.cached() as u64);
        // Dialogues without agreement take the fixed score when there is one.
        if let Some(score) = params.no_agreement_score {
            for i in rows.missing().into_iter().filter(|&i| !cases[i].agreed) {
                rows.insert(i, Judgement::fixed(score))?;
                ctx.progress.advance(1);
            }
        }
        let missing = rows.missing();
        if !missing.is_empty() {
            let judge = JudgeModel::open(ctx, &params.model, params.asking())?;
            let mut unparseable = 0;
            for chunk in missing.chunks(judge.batch()) {
                ctx.check_cancelled()?;
                let judged =
                    judge_chunk(&judge, params, chunk, &cases, &rubric, &satisfaction, ctx)?;
                for (&i, judgement) in chunk.iter().zip(judged) {
                    // A reply without a rating is not kept: the next run asks again.
                    if judgement.unparseable.is_some() {
                        unparseable += 1;
                        rows.keep(i, judgement);
                    } else {
                        rows.insert(i, judgement)?;
                    }
                    ctx.progress.advance(1);
                }
            }
            if unparseable > 0 {
                ctx.progress.note(&format!(
                    "{}: {unparseable} of {} judge replies held no rating (column `unparseable`; their `ca_score` is null)",
                    ctx.name,
                    missing.len()
                ));
            }
        }
        let judgements = rows.finish();
        let (repeat_ratings, summary) = repeat_ratings(params, &cases, &judgements, ctx);
        self.table(&cases, &judgements, &repeat_ratings, summary)
    }
}

/// Judges the dialogues at `chunk`: the rating of each, then each party's satisfaction
/// and a rationale for those whose reply held a rating.
fn judge_chunk(
    judge: &JudgeModel,
    params: &Params,
    chunk: &[usize],
    cases: &[Case],
    rubric: &str,
    satisfaction: &str,
    ctx: &StageContext,
) -> Result<Vec<Judgement>, StageError> {
    let questions = chunk
        .iter()
        .map(|&i| cases[i].rubric_question(rubric))
        .collect::<Result<Vec<_>, _>>()?;
    let ratings = judge.rate(&questions, &DIGITS, ctx)?;
    let rated: Vec<usize> = (0..chunk.len())
        .filter(|&k| ratings[k].distribution().is_some())
        .collect();
    // Every rated dialogue's parties, asked together.
    let mut party_questions = Vec::new();
    for &k in &rated {
        party_questions.extend(cases[chunk[k]].satisfaction_questions(satisfaction)?);
    }
    let mut party_ratings = judge.rate(&party_questions, &DIGITS, ctx)?.into_iter();
    let rationales = if params.rationale_tokens > 0 {
        let asks = rated
            .iter()
            .map(|&k| rationale_messages(&questions[k], ratings[k].expectation().unwrap_or(0.0)))
            .collect::<Result<Vec<_>, _>>()?;
        judge.explain(&asks, params.rationale_tokens, ctx)?
    } else {
        vec![String::new(); rated.len()]
    };
    let mut rationales = rationales.into_iter();
    Ok(ratings
        .into_iter()
        .zip(chunk)
        .map(|(rating, &i)| match rating {
            Rating::Distribution(distribution) => Judgement {
                ca_score: Some(expectation(&distribution)),
                distribution,
                satisfaction: (0..cases[i].parties.len())
                    .map(|_| party_ratings.next().and_then(|r| r.expectation()))
                    .collect(),
                rationale: rationales.next().unwrap_or_default(),
                unparseable: None,
            },
            Rating::Unparseable(reply) => Judgement {
                distribution: Vec::new(),
                ca_score: None,
                satisfaction: Vec::new(),
                rationale: String::new(),
                unparseable: Some(reply),
            },
        })
        .collect())
}

/// Repeated ratings for the reliability check, sampled from the judge's distribution
/// for a seeded sample of the judged dialogues, and how much they agree.
fn repeat_ratings(
    params: &Params,
    cases: &[Case],
    judgements: &[Judgement],
    ctx: &StageContext,
) -> (Vec<Vec<u32>>, Option<Reliability>) {
    let mut repeat_ratings: Vec<Vec<u32>> = vec![Vec::new(); cases.len()];
    if params.repeats < 2 {
        return (repeat_ratings, None);
    }
    let mut judged: Vec<usize> = (0..cases.len())
        .filter(|&i| !judgements[i].distribution.is_empty())
        .collect();
    let mut rng = SeededRng::new(ctx.seed, &[b"repeat-sample"]);
    // A seeded partial shuffle picks the sample.
    let take = params.repeat_sample.min(judged.len());
    for k in 0..take {
        let j = k + rng.below(judged.len() - k);
        judged.swap(k, j);
    }
    let mut sampled = Vec::new();
    for &i in &judged[..take] {
        let sharpened = at_temperature(&judgements[i].distribution, params.repeat_temperature);
        let mut stream = SeededRng::new(ctx.seed, &[b"repeat", cases[i].dialogue_id.as_bytes()]);
        let ratings: Vec<u32> = (0..params.repeats)
            .map(|_| stream.weighted(&sharpened) as u32)
            .collect();
        sampled.push(ratings.clone());
        repeat_ratings[i] = ratings;
    }
    let summary = reliability(&sampled, 5);
    if let Some(r) = &summary {
        ctx.progress.note(&format!(
            "{}: judge self-agreement over {} dialogues x {} ratings: exact {:.2}, within ±1 {:.2}, weighted kappa {:.2}, Pearson r {:.2}",
            ctx.name, r.dialogues, r.repeats, r.exact, r.within_one, r.weighted_kappa, r.pearson_r
        ));
    }
    (repeat_ratings, summary)
}

impl Judge {
    /// The output table; the self-agreement statistics travel in its Parquet metadata.
    fn table(
        &self,
        cases: &[Case],
        judgements: &[Judgement],
        repeat_ratings: &[Vec<u32>],
        summary: Option<Reliability>,
    ) -> Result<RecordBatch, StageError> {
        let mut distribution = ListBuilder::new(Float64Builder::new());
        let mut satisfaction = ListBuilder::new(Float64Builder::new());
        let mut repeats = ListBuilder::new(UInt32Builder::new());
        for (j, r) in judgements.iter().zip(repeat_ratings) {
            distribution.append_value(j.distribution.iter().map(|&x| Some(x)));
            satisfaction.append_value(j.satisfaction.iter().copied());
            repeats.append_value(r.iter().map(|&x| Some(x)));
        }
        let columns: Vec<ArrayRef> = vec![
            table::strings(cases.iter().map(|c| c.dialogue_id.as_str())),
            table::strings(cases.iter().map(|c| c.group_id.as_str())),
            Arc::new(Float64Array::from_iter(
                judgements.iter().map(|j| j.ca_score),
            )),
            Arc::new(distribution.finish()),
            Arc::new(satisfaction.finish()),
            Arc::new(BooleanArray::from_iter(
                cases.iter().map(|c| Some(c.agreed)),
            )),
            Arc::new(BooleanArray::from_iter(
                judgements.iter().map(|j| Some(!j.distribution.is_empty())),
            )),
            table::strings(judgements.iter().map(|j| j.rationale.as_str())),
            Arc::new(repeats.finish()),
            Arc::new(StringArray::from_iter(
                judgements.iter().map(|j| j.unparseable.as_deref()),
            )),
        ];
        let schema = Stage::output_schema(self);
        let schema = match summary {
            Some(r) => Arc::new(schema.as_ref().clone().with_metadata(
                std::collections::HashMap::from([(
                    RELIABILITY_KEY.to_string(),
                    serde_json::to_string(&r).expect("statistics serialise"),
                )]),
            )),
            None => schema,
        };
        table::batch(&schema, columns)
    }
}
