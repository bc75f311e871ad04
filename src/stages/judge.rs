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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Float64Builder, ListBuilder, UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::judge::openai::{self, Rating};
use crate::judge::reliability::reliability;
use crate::llm::chat::Message;
use crate::llm::choice::{answer_distribution, answer_tokens, next_token_logprobs};
use crate::llm::endpoint::Endpoint;
use crate::llm::generate::{Request, generate};
use crate::llm::sampling::Sampling;
use crate::seed::SeededRng;
use crate::stage::{Resource, Stage, StageContext, StageError, Upstream};
use crate::store::row_cache::row_key;
use crate::table;

pub const RUBRIC: &str = include_str!("../../data/rubrics/collective_agency.jinja");
pub const SATISFACTION: &str = include_str!("../../data/prompts/party_satisfaction.jinja");
pub const RATIONALE: &str = include_str!("../../data/prompts/judge_rationale.jinja");

pub(crate) const DIGITS: [&str; 6] = ["0", "1", "2", "3", "4", "5"];

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
    /// The CA score of a dialogue without agreement, given without asking the judge
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
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds one request may take (endpoint judge).
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Tries per request, the first included; failures back off exponentially.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_concurrency() -> usize {
    4
}
pub(crate) fn default_timeout_s() -> f64 {
    120.0
}
pub(crate) fn default_attempts() -> u32 {
    4
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
pub(crate) fn default_batch_size() -> usize {
    16
}

/// One party as the rubric sees it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Party {
    pub name: String,
    pub profile: String,
}

/// One dialogue, read back from the rollout table.
pub(crate) struct Case {
    pub dialogue_id: String,
    pub group_id: String,
    pub sample: u32,
    pub dilemma: String,
    pub parties: Vec<Party>,
    pub transcript: String,
    pub summary: String,
    pub agreed: bool,
}

impl Case {
    /// The rubric filled in for this dialogue.
    pub(crate) fn rubric_question(&self, rubric: &str) -> Result<String, StageError> {
        render(
            rubric,
            minijinja::context! {
                dilemma => self.dilemma.clone(),
                parties => minijinja::value::Serde(self.parties.clone()),
                transcript => self.transcript.clone(),
                summary => self.summary.clone(),
                agreed => self.agreed,
            },
        )
    }

    /// The satisfaction question for each party, in speaker order.
    fn satisfaction_questions(&self, template: &str) -> Result<Vec<String>, StageError> {
        self.parties
            .iter()
            .map(|party| {
                render(
                    template,
                    minijinja::context! {
                        dilemma => self.dilemma.clone(),
                        party => minijinja::value::Serde(party.clone()),
                        transcript => self.transcript.clone(),
                        summary => self.summary.clone(),
                    },
                )
            })
            .collect()
    }
}

/// Caches a new judgement under `key`, counts it and moves the progress bar.
fn record(ctx: &StageContext, key: &str, judgement: Judgement) -> Result<Judgement, StageError> {
    ctx.rows
        .put(key, &judgement)
        .map_err(|e| StageError::Failed(e.to_string()))?;
    ctx.rows.tally(false);
    ctx.progress.advance(1);
    Ok(judgement)
}

/// The conversation that asks for a rationale after the rating `rating` of `question`.
fn rationale_messages(question: &str, rating: f64) -> Result<Vec<Message>, StageError> {
    let ask = render(
        RATIONALE,
        minijinja::context! { rating => format!("{rating:.1}") },
    )?;
    let best = (rating.round() as usize).min(5);
    Ok(vec![
        Message::new("user", question),
        Message::new("assistant", DIGITS[best]),
        Message::new("user", &ask),
    ])
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

pub(crate) fn render(source: &str, context: minijinja::Value) -> Result<String, StageError> {
    let mut env = minijinja::Environment::new();
    env.add_template("t", source)
        .map_err(|e| StageError::Failed(format!("template: {e}")))?;
    Ok(env
        .get_template("t")
        .expect("just added")
        .render(context)
        .map_err(|e| StageError::Failed(format!("template: {e}")))?
        .trim()
        .to_string())
}

/// The expected rating under `distribution` (P(rating = k), k = 0, 1, …).
pub(crate) fn expectation(distribution: &[f64]) -> f64 {
    distribution
        .iter()
        .enumerate()
        .map(|(k, p)| k as f64 * p)
        .sum()
}

/// The dialogues of a rollout table, in order of first appearance.
pub(crate) fn cases(input: &crate::stage::Input) -> Result<Vec<Case>, StageError> {
    let ids = table::string_column(input, "dialogue_id")?;
    let groups = table::string_column(input, "group_id")?;
    let kinds = table::string_column(input, "kind")?;
    let names = table::string_column(input, "name")?;
    let personas = table::string_column(input, "persona")?;
    let texts = table::string_column(input, "text")?;
    let dilemmas = table::string_column(input, "dilemma")?;
    let speakers: &UInt32Array = table::typed_column(input, "speaker", "UInt32")?;
    let samples: &UInt32Array = table::typed_column(input, "sample", "UInt32")?;
    let agreed: &BooleanArray = table::typed_column(input, "agreed", "Boolean")?;
    let all_parties = input
        .batch
        .column_by_name("parties")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::ListArray>());
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, Case> = BTreeMap::new();
    for row in 0..input.batch.num_rows() {
        let id = ids.value(row).to_string();
        let case = by_id.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            Case {
                dialogue_id: id.clone(),
                group_id: groups.value(row).to_string(),
                sample: samples.value(row),
                dilemma: dilemmas.value(row).to_string(),
                parties: Vec::new(),
                transcript: String::new(),
                summary: String::new(),
                agreed: agreed.value(row),
            }
        });
        // All parties, those who never spoke included (older tables lack the column).
        if case.parties.is_empty()
            && let Some(all) = all_parties
        {
            let list = all.value(row);
            if let Some(party_names) = list.as_any().downcast_ref::<arrow::array::StringArray>() {
                case.parties = party_names
                    .iter()
                    .map(|name| Party {
                        name: name.unwrap_or_default().to_string(),
                        profile: name.unwrap_or_default().to_string(),
                    })
                    .collect();
            }
        }
        let speaker = speakers.value(row) as usize;
        if case.parties.len() <= speaker {
            case.parties.resize(
                speaker + 1,
                Party {
                    name: String::new(),
                    profile: String::new(),
                },
            );
        }
        case.parties[speaker] = Party {
            name: names.value(row).to_string(),
            profile: format!("{} ({})", names.value(row), personas.value(row)),
        };
        if kinds.value(row) == "summary" {
            case.summary = texts.value(row).to_string();
        } else {
            if !case.transcript.is_empty() {
                case.transcript.push('\n');
            }
            case.transcript
                .push_str(&format!("{}: {}", names.value(row), texts.value(row)));
        }
    }
    Ok(order
        .into_iter()
        .map(|id| by_id.remove(&id).expect("recorded"))
        .collect())
}

/// The endpoint of spec model `model`, with a per-request timeout and tries.
pub(crate) fn endpoint(
    ctx: &StageContext,
    model: &str,
    timeout_s: f64,
    attempts: u32,
) -> Result<Endpoint, StageError> {
    let spec = ctx
        .models
        .spec(model)
        .map_err(|e| StageError::Failed(e.to_string()))?;
    Endpoint::new(
        model,
        spec,
        std::time::Duration::from_secs_f64(timeout_s.max(0.001)),
        attempts,
    )
    .map_err(|e| StageError::Failed(e.to_string()))
}

/// Judges the dialogues at `missing` with an endpoint, `concurrency` requests at a time;
/// each judgement is cached as it completes, so a failure keeps the finished ones.
#[allow(clippy::too_many_arguments)]
fn judge_with_endpoint(
    endpoint: &Endpoint,
    params: &Params,
    ctx: &StageContext,
    cases: &[Case],
    keys: &[String],
    missing: &[usize],
    rubric: &str,
    satisfaction: &str,
) -> Result<Vec<(usize, Judgement)>, StageError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    let failure: Mutex<Option<StageError>> = Mutex::new(None);
    let judge_one = |i: usize| -> Result<Judgement, StageError> {
        let c = &cases[i];
        let failed = |e: crate::llm::endpoint::EndpointError| {
            StageError::Failed(format!("judge `{}`: {e}", params.model))
        };
        let question = c.rubric_question(rubric)?;
        let distribution =
            match openai::rate(endpoint, &[Message::new("user", &question)]).map_err(failed)? {
                Rating::Distribution(d) => d,
                Rating::Unparseable(reply) => {
                    return Ok(Judgement {
                        distribution: Vec::new(),
                        ca_score: None,
                        satisfaction: Vec::new(),
                        rationale: String::new(),
                        unparseable: Some(reply),
                    });
                }
            };
        let mut parties = Vec::new();
        for ask in c.satisfaction_questions(satisfaction)? {
            parties.push(
                match openai::rate(endpoint, &[Message::new("user", &ask)]).map_err(failed)? {
                    Rating::Distribution(d) => Some(expectation(&d)),
                    Rating::Unparseable(_) => None,
                },
            );
        }
        let rating = expectation(&distribution);
        let rationale = if params.rationale_tokens > 0 {
            openai::answer(
                endpoint,
                &rationale_messages(&question, rating)?,
                params.rationale_tokens,
            )
            .map_err(failed)?
        } else {
            String::new()
        };
        Ok(Judgement {
            ca_score: Some(rating),
            distribution,
            satisfaction: parties,
            rationale,
            unparseable: None,
        })
    };
    std::thread::scope(|scope| {
        for _ in 0..params.concurrency.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= missing.len()
                        || ctx.check_cancelled().is_err()
                        || failure.lock().map_or(true, |f| f.is_some())
                    {
                        return;
                    }
                    let i = missing[k];
                    let outcome = judge_one(i).and_then(|judgement| {
                        // A reply without a rating is not kept: the next run asks again.
                        if judgement.unparseable.is_none() {
                            ctx.rows
                                .put(&keys[i], &judgement)
                                .map_err(|e| StageError::Failed(e.to_string()))?;
                        }
                        Ok(judgement)
                    });
                    match outcome {
                        Ok(judgement) => {
                            ctx.rows.tally(false);
                            ctx.progress.advance(1);
                            done.lock().expect("no panics hold it").push((i, judgement));
                        }
                        Err(e) => {
                            let mut slot = failure.lock().expect("no panics hold it");
                            slot.get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    for notice in endpoint.take_notices() {
        ctx.progress.note(&format!("{}: {notice}", ctx.name));
    }
    ctx.check_cancelled()?;
    if let Some(e) = failure.into_inner().expect("threads are done") {
        return Err(e);
    }
    let done = done.into_inner().expect("threads are done");
    let unparseable = done.iter().filter(|(_, j)| j.unparseable.is_some()).count();
    if unparseable > 0 {
        ctx.progress.note(&format!(
            "{}: {unparseable} of {} judge replies held no rating (column `unparseable`; their `ca_score` is null)",
            ctx.name,
            done.len()
        ));
    }
    Ok(done)
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
        if !(params.timeout_s.is_finite() && params.timeout_s > 0.0 && params.timeout_s <= 86_400.0)
        {
            problems.push((
                "timeout_s".into(),
                "must be a number of seconds in (0, 86400]".into(),
            ));
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
            super::template_resource("rubric_file", &params.rubric_file, "CA rubric", RUBRIC),
            super::template_resource(
                "satisfaction_file",
                &params.satisfaction_file,
                "satisfaction question",
                SATISFACTION,
            ),
            Resource::Embedded {
                name: "rationale request",
                bytes: RATIONALE.as_bytes(),
            },
        ]
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        vec![("model", params.model.clone())]
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let [input] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed("`judge` needs exactly one input".into()));
        };
        let local = ctx.models.in_process(&params.model);
        let rubric = super::read_template(ctx, &params.rubric_file, RUBRIC)?;
        let satisfaction = super::read_template(ctx, &params.satisfaction_file, SATISFACTION)?;
        let cases = cases(input)?;
        let backend = ctx
            .models
            .backend_name_of(&params.model)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let identity = ctx.models.identity_seen(&params.model);
        let keys: Vec<String> = cases
            .iter()
            .map(|c| {
                row_key(&json!({
                    "what": "judge dialogue",
                    "version": Self::VERSION,
                    "judge": identity,
                    "backend": backend,
                    "rubric": rubric,
                    "satisfaction": satisfaction,
                    "rationale": RATIONALE,
                    "rationale_tokens": params.rationale_tokens,
                    "no_agreement_score": params.no_agreement_score,
                    "dilemma": c.dilemma,
                    "parties": c.parties,
                    "transcript": c.transcript,
                    "summary": c.summary,
                    "agreed": c.agreed,
                }))
            })
            .collect();
        let mut judgements: Vec<Option<Judgement>> = keys.iter().map(|k| ctx.rows.get(k)).collect();
        ctx.progress.set_total(cases.len() as u64);
        for _ in judgements.iter().flatten() {
            ctx.rows.tally(true);
            ctx.progress.advance(1);
        }
        // Dialogues without agreement take the fixed score when there is one.
        for (i, case) in cases.iter().enumerate() {
            if judgements[i].is_none()
                && !case.agreed
                && let Some(score) = params.no_agreement_score
            {
                let judgement = Judgement {
                    distribution: Vec::new(),
                    ca_score: Some(score),
                    satisfaction: Vec::new(),
                    rationale: "no agreement".into(),
                    unparseable: None,
                };
                judgements[i] = Some(record(ctx, &keys[i], judgement)?);
            }
        }
        let missing: Vec<usize> = (0..cases.len())
            .filter(|&i| judgements[i].is_none())
            .collect();
        if !missing.is_empty() && !local {
            let endpoint = endpoint(ctx, &params.model, params.timeout_s, params.attempts)?;
            let rated = judge_with_endpoint(
                &endpoint,
                params,
                ctx,
                &cases,
                &keys,
                &missing,
                &rubric,
                &satisfaction,
            )?;
            for (i, judgement) in rated {
                judgements[i] = Some(judgement);
            }
        } else if !missing.is_empty() {
            let failed = |e: crate::llm::LlmError| {
                StageError::Failed(format!("model `{}`: {e}", params.model))
            };
            let model = ctx.models.load(&params.model).map_err(failed)?;
            let digits = answer_tokens(&model.tokenizer, &DIGITS).map_err(failed)?;
            let encode = |messages: &[Message]| -> Result<Vec<u32>, StageError> {
                let text = model.chat_prompt(messages).map_err(failed)?;
                model.tokenizer.encode(&text).map_err(failed)
            };
            let distributions = |prompts: &[Vec<u32>]| -> Result<Vec<Vec<f64>>, StageError> {
                let logprobs = next_token_logprobs(&model.model, prompts).map_err(failed)?;
                Ok(logprobs
                    .iter()
                    .map(|row| answer_distribution(row, &digits, 1.0))
                    .collect())
            };
            for chunk in missing.chunks(params.batch_size.max(1)) {
                ctx.check_cancelled()?;
                let mut questions = Vec::new();
                let mut rubric_prompts = Vec::new();
                let mut party_prompts = Vec::new();
                for &i in chunk {
                    let question = cases[i].rubric_question(&rubric)?;
                    rubric_prompts.push(encode(&[Message::new("user", &question)])?);
                    questions.push(question);
                    for ask in cases[i].satisfaction_questions(&satisfaction)? {
                        party_prompts.push(encode(&[Message::new("user", &ask)])?);
                    }
                }
                let ca = distributions(&rubric_prompts)?;
                let mut parties = distributions(&party_prompts)?.into_iter();
                let rationales = if params.rationale_tokens > 0 {
                    let mut rationale_requests = Vec::new();
                    for (j, question) in questions.iter().enumerate() {
                        rationale_requests.push(Request {
                            prompt: encode(&rationale_messages(question, expectation(&ca[j]))?)?,
                            sampling: Sampling::greedy(),
                            max_new_tokens: params.rationale_tokens,
                            seed: 0,
                            stop_strings: vec!["\n\n".into()],
                            top_logprobs: 0,
                        });
                    }
                    generate(
                        &model.model,
                        &model.tokenizer,
                        &rationale_requests,
                        &model.stop_tokens,
                        |_, _| {},
                    )
                    .map_err(failed)?
                    .into_iter()
                    .map(|c| c.text.trim().to_string())
                    .collect()
                } else {
                    vec![String::new(); chunk.len()]
                };
                for ((j, &i), rationale) in chunk.iter().enumerate().zip(rationales) {
                    let satisfaction: Vec<Option<f64>> = (0..cases[i].parties.len())
                        .map(|_| Some(expectation(&parties.next().expect("one per party"))))
                        .collect();
                    let judgement = Judgement {
                        ca_score: Some(expectation(&ca[j])),
                        distribution: ca[j].clone(),
                        satisfaction,
                        rationale,
                        unparseable: None,
                    };
                    judgements[i] = Some(record(ctx, &keys[i], judgement)?);
                }
            }
        }
        let judgements: Vec<Judgement> = judgements
            .into_iter()
            .map(|j| j.expect("every dialogue is judged"))
            .collect();

        // Repeated ratings for the reliability check, sampled from the judge's distribution.
        let mut repeat_ratings: Vec<Vec<u32>> = vec![Vec::new(); cases.len()];
        let mut summary = None;
        if params.repeats >= 2 {
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
                let d = &judgements[i].distribution;
                // p^(1/T) renormalised, in log space so that a small T cannot underflow.
                let sharpened: Vec<f64> = {
                    let logs: Vec<f64> = d
                        .iter()
                        .map(|p| p.max(1e-300).ln() / params.repeat_temperature)
                        .collect();
                    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    weights.iter().map(|w| w / total).collect()
                };
                let mut stream =
                    SeededRng::new(ctx.seed, &[b"repeat", cases[i].dialogue_id.as_bytes()]);
                let ratings: Vec<u32> = (0..params.repeats)
                    .map(|_| stream.weighted(&sharpened) as u32)
                    .collect();
                sampled.push(ratings.clone());
                repeat_ratings[i] = ratings;
            }
            if let Some(r) = reliability(&sampled, 5) {
                ctx.progress.note(&format!(
                    "{}: judge self-agreement over {} dialogues x {} ratings: exact {:.2}, within ±1 {:.2}, weighted kappa {:.2}, Pearson r {:.2}",
                    ctx.name, r.dialogues, r.repeats, r.exact, r.within_one, r.weighted_kappa, r.pearson_r
                ));
                summary = Some(r);
            }
        }

        let mut distribution = ListBuilder::new(Float64Builder::new());
        let mut satisfaction = ListBuilder::new(Float64Builder::new());
        let mut repeats = ListBuilder::new(UInt32Builder::new());
        for (j, r) in judgements.iter().zip(&repeat_ratings) {
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
            Arc::new(arrow::array::StringArray::from_iter(
                judgements.iter().map(|j| j.unparseable.as_deref()),
            )),
        ];
        // The self-agreement statistics travel in the Parquet file's metadata.
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
