//! `rollout`: negotiation dialogues between agents with opposing personas (self-play when
//! every agent runs the same model), `group_size` per (dilemma, persona pair) row.
//!
//! The protocol is in [`super::dialogue`]. Each dialogue is keyed by what it depends on —
//! its dilemma and personas, the agents' and agreement model's identities, the backend,
//! the sampling and protocol settings, the prompt templates and its own seed (from the
//! stage seed, its pair and its sample index) — and cached per row as soon as it ends, so
//! adding rows or resuming after an interruption holds only the missing dialogues.
//!
//! Output: one row per turn, then one `summary` row per dialogue, in input order.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Builder, Float64Array, ListBuilder, StringArray,
    UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::dialogue::{AgreementCheck, Context, Dialogue, Party, Protocol, Task};
use crate::llm::sampling::Sampling;
use crate::seed::SeededRng;
use crate::stage::{Input, Resource, Stage, StageContext, StageError, Upstream};
use crate::store::row_cache::row_key;
use crate::table;

/// Built-in prompt templates.
pub const PROTOCOL: &str = include_str!("../../data/prompts/negotiation_protocol.jinja");
pub const AGREEMENT: &str = include_str!("../../data/prompts/agreement_check.jinja");
pub const SUMMARY: &str = include_str!("../../data/prompts/closing_summary.jinja");

/// Negotiation dialogues.
pub struct Rollout;

/// How agreement is detected after each turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// Ask `agreement_model` whether the core solution is settled (the paper's check).
    #[default]
    Judge,
    /// Agreed when a turn contains `marker`, which the protocol asks agents to write.
    Marker,
}

/// How many past turns an agent sees: a number, or `all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ContextTurns {
    Last(usize),
    All(AllTurns),
}

/// The word `all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllTurns {
    All,
}

/// Parameters of `rollout` (and of `grpo`'s rollouts, under the same names).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The model both agents run (self-play). Give this or `agents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// One model per agent, two or more (different models: mixed play). Agent *i* takes
    /// the input's *i*-th party (`persona_a`, `persona_b`, then `more_personas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
    /// Dialogues per input row.
    #[serde(default = "default_group_size")]
    pub group_size: usize,
    /// The most turns a dialogue has (all agents together).
    #[serde(default = "default_max_turns")]
    pub max_turns: usize,
    /// Past turns an agent sees when it speaks: a number, or `all`.
    #[serde(default = "default_context_turns")]
    pub context_turns: ContextTurns,
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    /// The longest turn (and summary), in tokens.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// How agreement is detected after each turn.
    #[serde(default)]
    pub agreement: Agreement,
    /// The model that checks agreement (default: the first agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_model: Option<String>,
    /// `agreement: marker`: the phrase that signals acceptance.
    #[serde(default = "default_marker")]
    pub marker: String,
    /// Jinja templates replacing the built-in system prompt, agreement question and
    /// closing-summary request (`data/prompts/`), relative to the spec's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_file: Option<PathBuf>,
    /// Dialogues decoded in one batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_group_size() -> usize {
    4
}
pub(crate) fn default_max_turns() -> usize {
    7
}
pub(crate) fn default_context_turns() -> ContextTurns {
    ContextTurns::Last(2)
}
pub(crate) fn default_temperature() -> f32 {
    0.7
}
pub(crate) fn default_top_p() -> f32 {
    0.95
}
pub(crate) fn default_max_new_tokens() -> usize {
    128
}
pub(crate) fn default_marker() -> String {
    "[AGREED]".into()
}
pub(crate) fn default_batch_size() -> usize {
    16
}

impl Params {
    /// The model of each agent.
    pub fn agent_models(&self) -> Vec<String> {
        match (&self.agents, &self.model) {
            (Some(agents), _) => agents.clone(),
            (None, Some(model)) => vec![model.clone(), model.clone()],
            (None, None) => Vec::new(),
        }
    }

    /// The dialogue protocol these parameters describe, for `agents`.
    pub(crate) fn protocol(
        &self,
        agents: Vec<String>,
        ctx: &StageContext,
    ) -> Result<Protocol, StageError> {
        let system_prompt = super::read_template(ctx, &self.protocol_file, PROTOCOL)?;
        let summary_prompt = super::read_template(ctx, &self.summary_file, SUMMARY)?;
        let agreement = match self.agreement {
            Agreement::Judge => AgreementCheck::Judge {
                model: self.agreement_model().expect("checked: agents exist"),
                prompt: super::read_template(ctx, &self.agreement_file, AGREEMENT)?,
            },
            Agreement::Marker => AgreementCheck::Marker(self.marker.clone()),
        };
        Ok(Protocol {
            agents,
            max_turns: self.max_turns,
            context: match self.context_turns {
                ContextTurns::Last(n) => Context::Last(n),
                ContextTurns::All(_) => Context::All,
            },
            sampling: Sampling {
                temperature: self.temperature,
                top_k: 0,
                top_p: self.top_p,
            },
            max_new_tokens: self.max_new_tokens,
            agreement,
            system_prompt,
            summary_prompt,
            batch_size: self.batch_size,
        })
    }

    fn agreement_model(&self) -> Option<String> {
        self.agreement_model
            .clone()
            .or_else(|| self.agent_models().first().cloned())
    }
}

impl Stage for Rollout {
    type Params = Params;
    const KIND: &'static str = "rollout";
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "Negotiation dialogues between agents with opposing personas, with closing summaries.";

    fn output_schema(&self) -> SchemaRef {
        table::schema(vec![
            table::column(
                "dialogue_id",
                DataType::Utf8,
                "Dialogue id: the first 12 hex digits of the dialogue's row key.",
            ),
            table::column(
                "group_id",
                DataType::Utf8,
                "The input row's `pair_id`: the dialogues of one group share dilemma and personas.",
            ),
            table::column(
                "sample",
                DataType::UInt32,
                "The dialogue's index within its group (0 to `group_size` - 1).",
            ),
            table::column(
                "turn",
                DataType::UInt32,
                "The turn, from 0; the summary row has the number of turns.",
            ),
            table::column(
                "kind",
                DataType::Utf8,
                "`turn` (a negotiation turn) or `summary` (the first agent's closing summary).",
            ),
            table::column(
                "speaker",
                DataType::UInt32,
                "The agent speaking, from 0 (agent 0 opens and writes the summary).",
            ),
            table::column("model", DataType::Utf8, "The spec model the speaker runs."),
            table::column("persona", DataType::Utf8, "The speaker's persona id."),
            table::column("name", DataType::Utf8, "The speaker's persona name."),
            table::column("text", DataType::Utf8, "What the speaker said."),
            table::column(
                "prompt_ids",
                table::list_of(DataType::UInt32),
                "The whole prompt the speaker's model saw, as token ids.",
            ),
            table::column(
                "token_ids",
                table::list_of(DataType::UInt32),
                "The generated tokens (an end-of-turn token included when one ended it).",
            ),
            table::column(
                "logprobs",
                table::list_of(DataType::Float32),
                "The sampling log-prob of each generated token.",
            ),
            table::column(
                "p_agree",
                DataType::Float64,
                "After a turn: the agreement model's P(Yes) (`judge`) or 1/0 (`marker`); null where not checked.",
            )
            .with_nullable(true),
            table::column(
                "agreed",
                DataType::Boolean,
                "Whether the dialogue reached agreement (same on all its rows).",
            ),
            table::column(
                "turns",
                DataType::UInt32,
                "How many turns the dialogue took (same on all its rows).",
            ),
            table::column("dilemma_id", DataType::Utf8, "The dilemma's id."),
            table::column("dilemma", DataType::Utf8, "The dilemma's text."),
            table::column(
                "parties",
                table::list_of(DataType::Utf8),
                "Every party's persona name, in agent order (same on all the dialogue's rows).",
            ),
        ])
    }

    fn check_params(&self, params: &Params) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match (&params.model, &params.agents) {
            (None, None) => problems.push((
                "model".into(),
                "give `model` (self-play) or `agents` (one model per agent)".into(),
            )),
            (Some(_), Some(_)) => problems.push((
                "agents".into(),
                "give either `model` or `agents`, not both".into(),
            )),
            (None, Some(agents)) if agents.len() < 2 || agents.len() > 26 => {
                problems.push(("agents".into(), "a negotiation needs 2 to 26 agents".into()))
            }
            _ => {}
        }
        if params.group_size == 0 {
            problems.push(("group_size".into(), "must be at least 1".into()));
        }
        if params.max_turns < 2 {
            problems.push((
                "max_turns".into(),
                "a negotiation needs at least 2 turns".into(),
            ));
        }
        if params.context_turns == ContextTurns::Last(0) {
            problems.push((
                "context_turns".into(),
                "agents must see at least 1 turn (or `all`)".into(),
            ));
        }
        if params.temperature.is_nan() || params.temperature < 0.0 {
            problems.push(("temperature".into(), "must be 0 or more".into()));
        }
        if !(params.top_p > 0.0 && params.top_p <= 1.0) {
            problems.push(("top_p".into(), "must be in (0, 1]".into()));
        }
        if params.max_new_tokens == 0 {
            problems.push(("max_new_tokens".into(), "must be at least 1".into()));
        }
        if params.agreement == Agreement::Marker && params.marker.trim().is_empty() {
            problems.push(("marker".into(), "`agreement: marker` needs a marker".into()));
        }
        problems
    }

    fn check_inputs(&self, _params: &Params, inputs: &[Upstream]) -> Result<(), String> {
        if inputs.len() == 1 {
            Ok(())
        } else {
            Err("`rollout` reads one input: pairs from `persona_pairing`".into())
        }
    }

    fn resources(&self, params: &Params) -> Vec<Resource> {
        let mut resources = vec![
            super::template_resource(
                "protocol_file",
                &params.protocol_file,
                "negotiation protocol",
                PROTOCOL,
            ),
            super::template_resource(
                "summary_file",
                &params.summary_file,
                "closing summary",
                SUMMARY,
            ),
        ];
        if params.agreement == Agreement::Judge {
            resources.push(super::template_resource(
                "agreement_file",
                &params.agreement_file,
                "agreement check",
                AGREEMENT,
            ));
        }
        resources
    }

    fn models(&self, params: &Params) -> Vec<(&'static str, String)> {
        let field = if params.agents.is_some() {
            "agents"
        } else {
            "model"
        };
        let mut models: Vec<(&'static str, String)> = Vec::new();
        for name in params.agent_models() {
            if !models.iter().any(|(_, n)| *n == name) {
                models.push((field, name));
            }
        }
        if params.agreement == Agreement::Judge
            && let Some(name) = params.agreement_model()
            && !models.iter().any(|(_, n)| *n == name)
        {
            models.push(("agreement_model", name));
        }
        models
    }

    fn run(&self, params: &Params, ctx: &StageContext) -> Result<RecordBatch, StageError> {
        let [input] = ctx.inputs.as_slice() else {
            return Err(StageError::Failed(
                "`rollout` needs exactly one input".into(),
            ));
        };
        let agents = params.agent_models();
        let protocol = params.protocol(agents.clone(), ctx)?;
        for name in agents.iter().chain(match &protocol.agreement {
            AgreementCheck::Judge { model, .. } => Some(model),
            AgreementCheck::Marker(_) => None,
        }) {
            if !ctx.models.in_process(name) {
                return Err(StageError::Failed(format!(
                    "model `{name}` is an endpoint; `rollout` runs in-process models only for now"
                )));
            }
        }

        // The tasks: group_size dialogues per input row.
        let pair_ids = table::string_column(input, "pair_id")?;
        let dilemma_ids = table::string_column(input, "dilemma_id")?;
        let dilemmas = table::string_column(input, "dilemma")?;
        let backend = ctx
            .models
            .backend()
            .map_err(|e| StageError::Failed(e.to_string()))?
            .name;
        let identities: Vec<serde_json::Value> =
            agents.iter().map(|a| ctx.models.identity_seen(a)).collect();
        let agreement_identity = match &protocol.agreement {
            AgreementCheck::Judge { model, prompt } => {
                json!({"model": ctx.models.identity_seen(model), "prompt": prompt})
            }
            AgreementCheck::Marker(marker) => json!({ "marker": marker }),
        };
        struct Slot {
            row: usize,
            sample: usize,
            key: String,
            task: Task,
        }
        let all_parties = parties(input, agents.len())?;
        let mut slots = Vec::with_capacity(input.batch.num_rows() * params.group_size);
        for (row, parties) in all_parties.into_iter().enumerate() {
            for sample in 0..params.group_size {
                let seed = SeededRng::new(
                    ctx.seed,
                    &[
                        b"dialogue",
                        pair_ids.value(row).as_bytes(),
                        &(sample as u64).to_le_bytes(),
                    ],
                )
                .next_u64();
                let key = row_key(&json!({
                    "what": "rollout dialogue",
                    "version": Self::VERSION,
                    "dilemma": dilemmas.value(row),
                    "parties": parties.iter().map(|p| [&p.persona, &p.profile]).collect::<Vec<_>>(),
                    "agents": identities,
                    "agreement": agreement_identity,
                    "backend": backend,
                    "max_turns": protocol.max_turns,
                    "context_turns": params.context_turns,
                    "sampling": protocol.sampling,
                    "max_new_tokens": protocol.max_new_tokens,
                    "system_prompt": protocol.system_prompt,
                    "summary_prompt": protocol.summary_prompt,
                    "seed": seed,
                }));
                slots.push(Slot {
                    row,
                    sample,
                    key,
                    task: Task {
                        dilemma: dilemmas.value(row).to_string(),
                        parties: parties.clone(),
                        seed,
                    },
                });
            }
        }

        // Cached dialogues, then the rest, cached as each finishes.
        let mut done: Vec<Option<Dialogue>> = slots
            .iter()
            .map(|s| ctx.rows.get::<Dialogue>(&s.key))
            .collect();
        let cached = done.iter().flatten().count();
        for _ in 0..cached {
            ctx.rows.tally(true);
        }
        ctx.progress.set_total(slots.len() as u64);
        ctx.progress.advance(cached as u64);
        let missing: Vec<usize> = (0..slots.len()).filter(|&i| done[i].is_none()).collect();
        let tasks: Vec<Task> = missing.iter().map(|&i| slots[i].task.clone()).collect();
        protocol.run(&tasks, ctx.models, ctx, |t, dialogue| {
            let slot = missing[t];
            ctx.rows
                .put(&slots[slot].key, &dialogue)
                .map_err(|e| StageError::Failed(e.to_string()))?;
            ctx.rows.tally(false);
            ctx.progress.advance(1);
            done[slot] = Some(dialogue);
            Ok(())
        })?;

        // One row per turn and one per summary.
        let mut out = Columns::default();
        for (slot, dialogue) in slots.iter().zip(&done) {
            let dialogue = dialogue.as_ref().expect("every dialogue is done");
            let turns = dialogue.turns.len() as u32;
            let utterances = dialogue
                .turns
                .iter()
                .enumerate()
                .map(|(i, u)| (i as u32, "turn", u))
                .chain(std::iter::once((turns, "summary", &dialogue.summary)));
            for (turn, kind, u) in utterances {
                out.dialogue_id.push(slot.key[..12].to_string());
                out.group_id.push(pair_ids.value(slot.row).to_string());
                out.sample.push(slot.sample as u32);
                out.turn.push(turn);
                out.kind.push(kind);
                out.speaker.push(u.speaker as u32);
                out.model.push(agents[u.speaker].clone());
                out.persona
                    .push(slot.task.parties[u.speaker].persona.clone());
                out.name.push(slot.task.parties[u.speaker].name.clone());
                out.text.push(u.text.clone());
                out.prompt_ids
                    .append_value(u.prompt_ids.iter().map(|&x| Some(x)));
                out.token_ids
                    .append_value(u.token_ids.iter().map(|&x| Some(x)));
                out.logprobs
                    .append_value(u.logprobs.iter().map(|&x| Some(x)));
                out.p_agree.push(u.p_agree);
                out.agreed.push(dialogue.agreed);
                out.turns.push(turns);
                out.dilemma_id.push(dilemma_ids.value(slot.row).to_string());
                out.dilemma.push(dilemmas.value(slot.row).to_string());
                out.parties
                    .push(slot.task.parties.iter().map(|p| p.name.clone()).collect());
            }
        }
        let schema = Stage::output_schema(self);
        let columns: Vec<ArrayRef> = vec![
            table::strings(&out.dialogue_id),
            table::strings(&out.group_id),
            Arc::new(UInt32Array::from(out.sample)),
            Arc::new(UInt32Array::from(out.turn)),
            table::strings(&out.kind),
            Arc::new(UInt32Array::from(out.speaker)),
            table::strings(&out.model),
            table::strings(&out.persona),
            table::strings(&out.name),
            table::strings(&out.text),
            Arc::new(out.prompt_ids.finish()),
            Arc::new(out.token_ids.finish()),
            Arc::new(out.logprobs.finish()),
            Arc::new(Float64Array::from(out.p_agree)),
            Arc::new(BooleanArray::from(out.agreed)),
            Arc::new(UInt32Array::from(out.turns)),
            table::strings(&out.dilemma_id),
            Arc::new(StringArray::from(out.dilemma)),
            table::string_lists(out.parties.iter()),
        ];
        table::batch(&schema, columns)
    }
}

/// Each input row's parties, one per agent: the pair's two personas, then
/// `more_personas`.
pub(crate) fn parties(input: &Input, agents: usize) -> Result<Vec<Vec<Party>>, StageError> {
    let pair_personas = [
        (
            table::string_column(input, "persona_a")?,
            table::string_column(input, "persona_a_profile")?,
        ),
        (
            table::string_column(input, "persona_b")?,
            table::string_column(input, "persona_b_profile")?,
        ),
    ];
    let list = |name: &str| {
        input
            .batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::ListArray>())
            .cloned()
    };
    let (more_ids, more_profiles) = (list("more_personas"), list("more_profiles"));
    // Agent i's (persona id, profile) in row `row`: the pair, then `more_personas`.
    let persona = |row: usize, i: usize| -> Result<(String, String), StageError> {
        if let Some((ids, profiles)) = pair_personas.get(i) {
            return Ok((ids.value(row).to_string(), profiles.value(row).to_string()));
        }
        let missing = || {
            StageError::Failed(format!(
                "{agents} agents need {agents} parties per row, but `{}` has fewer; set `parties: {agents}` in its `persona_pairing`",
                input.name,
            ))
        };
        let (Some(ids), Some(profiles)) = (&more_ids, &more_profiles) else {
            return Err(missing());
        };
        let (ids, profiles) = (ids.value(row), profiles.value(row));
        let ids = ids
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(missing)?;
        let profiles = profiles
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(missing)?;
        if i - 2 >= ids.len() {
            return Err(missing());
        }
        Ok((
            ids.value(i - 2).to_string(),
            profiles.value(i - 2).to_string(),
        ))
    };
    (0..input.batch.num_rows())
        .map(|row| {
            (0..agents)
                .map(|i| {
                    let (persona, profile) = persona(row, i)?;
                    Ok(Party {
                        persona,
                        name: profile.split(". ").next().unwrap_or("").to_string(),
                        profile,
                    })
                })
                .collect()
        })
        .collect()
}

/// The output columns being built.
#[derive(Default)]
struct Columns {
    dialogue_id: Vec<String>,
    group_id: Vec<String>,
    sample: Vec<u32>,
    turn: Vec<u32>,
    kind: Vec<&'static str>,
    speaker: Vec<u32>,
    model: Vec<String>,
    persona: Vec<String>,
    name: Vec<String>,
    text: Vec<String>,
    prompt_ids: ListBuilder<UInt32Builder>,
    token_ids: ListBuilder<UInt32Builder>,
    logprobs: ListBuilder<Float32Builder>,
    p_agree: Vec<Option<f64>>,
    agreed: Vec<bool>,
    turns: Vec<u32>,
    dilemma_id: Vec<String>,
    dilemma: Vec<String>,
    parties: Vec<Vec<String>>,
}
