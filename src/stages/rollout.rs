//! `rollout`: negotiation dialogues between agents with opposing personas (self-play when
//! every agent runs the same model), `group_size` per (dilemma, persona pair) row.
//!
//! The protocol is in [`crate::dialogue`]. Each dialogue is keyed by what it depends on —
//! its dilemma and personas, the agents' and agreement model's identities, the backend,
//! the sampling and protocol settings, the prompt templates and its own seed (from the
//! stage seed, its pair and its sample index) — and cached per row as soon as it ends, so
//! adding rows or resuming after an interruption holds only the missing dialogues.
//!
//! Output: one row per turn, then one `summary` row per dialogue, in input order.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Builder, Float64Array, ListBuilder, StringArray, UInt32Array,
    UInt32Builder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dialogue::templates::{AGREEMENT, PROTOCOL, SUMMARY};
use crate::dialogue::{
    Agreement, AgreementKey, Dialogue, DialogueKeyParts, DialogueSettings, MAX_PARTIES, Party,
    Task, Templates, parties,
};
use crate::seed::SeededRng;
use crate::stage::limits::{MAX_BATCH, at_most};
use crate::stage::{Input, Resource, Stage, StageContext, StageError, Upstream};
use crate::store::row_cache::RowKey;
use crate::table;

/// Negotiation dialogues.
pub struct Rollout;

/// Parameters of `rollout`.
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
    #[serde(flatten)]
    pub dialogue: DialogueSettings,
    /// Jinja templates replacing the built-in system prompt, agreement question and
    /// closing-summary request (`data/prompts/`), relative to the spec's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_file: Option<PathBuf>,
}

fn default_group_size() -> usize {
    4
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

    /// The templates, from the spec's files where it names them.
    fn templates(&self, ctx: &StageContext) -> Result<Templates, StageError> {
        Ok(Templates {
            system: super::read_template(ctx, &self.protocol_file, PROTOCOL)?,
            // Read only when asked: a marker check never uses it.
            agreement: match self.dialogue.agreement {
                Agreement::Judge => super::read_template(ctx, &self.agreement_file, AGREEMENT)?,
                Agreement::Marker => String::new(),
            },
            summary: super::read_template(ctx, &self.summary_file, SUMMARY)?,
        })
    }
}

/// What a dialogue depends on.
#[derive(Serialize)]
struct DialogueKey<'a> {
    version: u32,
    agents: &'a [Value],
    agreement: &'a AgreementKey<'a>,
    backend: &'a str,
    #[serde(flatten)]
    dialogue: DialogueKeyParts<'a>,
}

impl RowKey for DialogueKey<'_> {
    const WHAT: &'static str = "rollout dialogue";
}

/// One dialogue of the output: input row `row`'s sample `sample`.
struct Slot {
    row: usize,
    sample: usize,
    task: Task,
}

/// `group_size` dialogues of `agents` agents per input row, each seeded by the stage
/// seed, its pair and its sample index.
fn slots(
    input: &Input,
    agents: usize,
    group_size: usize,
    seed: u64,
) -> Result<Vec<Slot>, StageError> {
    let pair_ids = table::string_column(input, "pair_id")?;
    let dilemmas = table::string_column(input, "dilemma")?;
    let mut slots = Vec::with_capacity(input.batch.num_rows() * group_size);
    for (row, parties) in parties(input, agents)?.into_iter().enumerate() {
        for sample in 0..group_size {
            let labels: [&[u8]; 3] = [
                b"dialogue",
                pair_ids.value(row).as_bytes(),
                &(sample as u64).to_le_bytes(),
            ];
            let task = Task {
                dilemma: dilemmas.value(row).to_string(),
                parties: parties.clone(),
                seed: SeededRng::new(seed, &labels).next_u64(),
            };
            slots.push(Slot { row, sample, task });
        }
    }
    Ok(slots)
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
            table::column(
                "text",
                DataType::Utf8,
                "What the speaker wrote, any `<think>…</think>` reasoning included (the other agents and judges see it without).",
            ),
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
            (None, Some(agents)) if agents.len() < 2 || agents.len() > MAX_PARTIES => problems
                .push((
                    "agents".into(),
                    format!("a negotiation needs 2 to {MAX_PARTIES} agents"),
                )),
            _ => {}
        }
        if params.group_size == 0 {
            problems.push(("group_size".into(), "must be at least 1".into()));
        }
        problems.extend(at_most(
            "group_size",
            params.group_size,
            MAX_BATCH,
            "dialogues per pair",
        ));
        problems.extend(params.dialogue.problems());
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
        if params.dialogue.agreement == Agreement::Judge {
            resources.push(super::template_resource(
                "agreement_file",
                &params.agreement_file,
                "agreement check",
                AGREEMENT,
            ));
        }
        resources
    }

    /// An `agreement_model` naming the first agent's model is the default.
    fn spelled_defaults(&self, params: &Params) -> Vec<&'static str> {
        let first = params.agent_models().into_iter().next();
        if first.is_some() && params.dialogue.agreement_model == first {
            vec!["agreement_model"]
        } else {
            Vec::new()
        }
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
        if let Some(name) = params.dialogue.named_agreement_model()
            && !models.iter().any(|(_, n)| n == name)
        {
            models.push(("agreement_model", name.to_string()));
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
        let first_agent = agents.first().map_or("", String::as_str);
        let protocol =
            params
                .dialogue
                .protocol(agents.clone(), first_agent, params.templates(ctx)?);
        for name in protocol.models() {
            if !ctx.models.in_process(name) {
                return Err(StageError::Failed(format!(
                    "model `{name}` is an endpoint; `rollout` runs in-process models only for now"
                )));
            }
        }

        let slots = slots(input, agents.len(), params.group_size, ctx.seed)?;
        let backend = ctx
            .models
            .backend()
            .map_err(|e| StageError::Failed(e.to_string()))?
            .name;
        let identities: Vec<Value> = agents.iter().map(|a| ctx.models.identity_seen(a)).collect();
        let agreement = protocol
            .agreement
            .key(|model| ctx.models.identity_seen(model));
        let keys: Vec<DialogueKey> = slots
            .iter()
            .map(|slot| DialogueKey {
                version: Self::VERSION,
                agents: &identities,
                agreement: &agreement,
                backend,
                dialogue: protocol.key_parts(&slot.task),
            })
            .collect();

        // Cached dialogues, then the rest, cached as each finishes.
        let mut rows = ctx.rows.open::<_, Dialogue>(&keys);
        ctx.progress.set_total(slots.len() as u64);
        ctx.progress.advance(rows.cached() as u64);
        let missing = rows.missing();
        let tasks: Vec<Task> = missing.iter().map(|&i| slots[i].task.clone()).collect();
        protocol.run(&tasks, ctx.models, ctx, |t, dialogue| {
            rows.insert(missing[t], dialogue)?;
            ctx.progress.advance(1);
            Ok(())
        })?;
        let ids: Vec<String> = (0..slots.len())
            .map(|i| rows.digest(i)[..12].to_string())
            .collect();
        let dialogues = rows.finish();
        self.table(input, &agents, &slots, &ids, &dialogues)
    }
}

impl Rollout {
    /// One row per turn and one per summary.
    fn table(
        &self,
        input: &Input,
        agents: &[String],
        slots: &[Slot],
        ids: &[String],
        dialogues: &[Dialogue],
    ) -> Result<RecordBatch, StageError> {
        let pair_ids = table::string_column(input, "pair_id")?;
        let dilemma_ids = table::string_column(input, "dilemma_id")?;
        let dilemmas = table::string_column(input, "dilemma")?;
        let mut out = Columns::default();
        for ((slot, id), dialogue) in slots.iter().zip(ids).zip(dialogues) {
            let turns = dialogue.turns.len() as u32;
            let utterances = dialogue
                .turns
                .iter()
                .enumerate()
                .map(|(i, u)| (i as u32, "turn", u))
                .chain(std::iter::once((turns, "summary", &dialogue.summary)));
            for (turn, kind, u) in utterances {
                let party: &Party = &slot.task.parties[u.speaker];
                out.dialogue_id.push(id.clone());
                out.group_id.push(pair_ids.value(slot.row).to_string());
                out.sample.push(slot.sample as u32);
                out.turn.push(turn);
                out.kind.push(kind);
                out.speaker.push(u.speaker as u32);
                out.model.push(agents[u.speaker].clone());
                out.persona.push(party.persona.clone());
                out.name.push(party.name.clone());
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
        table::batch(&Stage::output_schema(self), columns)
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dialogue::{AgreementCheck, Context, Protocol};
    use crate::llm::sampling::Sampling;

    /// Row keys are typed now, but they must hash as the JSON they replaced, or every
    /// cached dialogue of an earlier version would be computed again.
    #[test]
    fn a_dialogue_key_hashes_as_before() {
        let protocol = Protocol {
            agents: vec!["m".into(), "m".into()],
            max_turns: 4,
            context: Context::All,
            sampling: Sampling {
                temperature: 0.7,
                top_k: 0,
                top_p: 0.95,
            },
            max_new_tokens: 64,
            agreement: AgreementCheck::Marker("[AGREED]".into()),
            system_prompt: "system".into(),
            summary_prompt: "summary".into(),
            batch_size: 16,
        };
        let task = Task {
            dilemma: "d".into(),
            parties: vec![Party {
                persona: "p".into(),
                name: "n".into(),
                profile: "n. profile".into(),
            }],
            seed: 9,
        };
        let agents = [json!("identity")];
        let agreement = protocol.agreement.key(|m| json!(m));
        let key = DialogueKey {
            version: 2,
            agents: &agents,
            agreement: &agreement,
            backend: "flex",
            dialogue: protocol.key_parts(&task),
        };
        let before = json!({
            "what": "rollout dialogue", "version": 2, "dilemma": "d",
            "parties": [["p", "n. profile"]], "agents": ["identity"],
            "agreement": {"marker": "[AGREED]"}, "backend": "flex", "max_turns": 4,
            "context_turns": "all",
            "sampling": {"temperature": 0.7f32, "top_k": 0, "top_p": 0.95f32},
            "max_new_tokens": 64, "system_prompt": "system", "summary_prompt": "summary",
            "seed": 9,
        });
        assert_eq!(key.digest(), crate::canonical::digest(&before));
    }
}
