//! The negotiation protocol: agents with personas take turns on a dilemma until they agree
//! or run out of turns, then the first agent writes a closing summary.
//!
//! Agent *i* speaks at turns *i*, *i + n*, … Each turn is generated from the agent's
//! system prompt (its persona, the dilemma and the protocol) and the last
//! `context_turns` turns seen from its side: its own turns as `assistant`, the others'
//! as `user` (named when there are more than two agents). After every turn from the second
//! on, agreement is checked: by the agreement model's probability of answering "Yes" to
//! the agreement question (`judge`), or by the protocol's marker in the turn (`marker`).
//!
//! Dialogues run in waves of `batch_size`; within a wave all unfinished dialogues advance
//! together: each step builds every dialogue's next request (a turn or a closing summary)
//! and decodes them in one batch per model. Each dialogue samples from its own seeded
//! streams, so its draws do not depend on which dialogues share its batch (the logits of
//! differently shaped batches can still differ in their last bits, as in any batched
//! engine). A dialogue is handed to `on_done` as soon as its summary is written, so a
//! caller can cache it before the others finish.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::llm::LlmError;
use crate::llm::chat::Message;
use crate::llm::choice::{answer_distribution, answer_tokens, next_token_logprobs};
use crate::llm::generate::{Request, generate};
use crate::llm::hub::ModelHub;
use crate::llm::loaded::LoadedModel;
use crate::llm::sampling::Sampling;
use crate::seed::SeededRng;
use crate::stage::{StageContext, StageError};

/// How many past turns an agent sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Last(usize),
    All,
}

/// How agreement is detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgreementCheck {
    /// The agreement model answers the agreement question; agreed when P(Yes) ≥ 0.5.
    Judge { model: String, prompt: String },
    /// Agreed when a turn contains this phrase.
    Marker(String),
}

/// What every dialogue of a stage shares.
pub struct Protocol {
    /// The model of each agent (self-play: the same name twice).
    pub agents: Vec<String>,
    pub max_turns: usize,
    pub context: Context,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    pub agreement: AgreementCheck,
    /// Jinja sources of the system prompt and the closing-summary request.
    pub system_prompt: String,
    pub summary_prompt: String,
    /// Dialogues decoded in one batch.
    pub batch_size: usize,
}

/// One party of a dialogue.
#[derive(Debug, Clone)]
pub struct Party {
    pub persona: String,
    pub name: String,
    pub profile: String,
}

/// One dialogue to hold.
#[derive(Debug, Clone)]
pub struct Task {
    pub dilemma: String,
    /// One party per agent.
    pub parties: Vec<Party>,
    /// Seeds the dialogue's sampling streams.
    pub seed: u64,
}

/// One generated message: a turn or the closing summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    pub speaker: usize,
    pub text: String,
    /// The whole prompt the speaker's model saw, as tokens.
    pub prompt_ids: Vec<u32>,
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// After a turn: the agreement model's P(Yes) (`judge`), or 1/0 (`marker`); `None`
    /// where agreement was not checked.
    pub p_agree: Option<f64>,
}

/// A finished dialogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dialogue {
    pub turns: Vec<Utterance>,
    pub agreed: bool,
    pub summary: Utterance,
}

/// A dialogue in progress.
struct Live {
    task: usize,
    turns: Vec<Utterance>,
    agreed: bool,
    /// The negotiation is over; the summary comes next.
    closing: bool,
}

fn llm(e: LlmError) -> StageError {
    StageError::Failed(e.to_string())
}

fn render(source: &str, context: minijinja::Value) -> Result<String, StageError> {
    let mut env = minijinja::Environment::new();
    env.add_template("t", source)
        .map_err(|e| StageError::Failed(format!("prompt template: {e}")))?;
    let text = env
        .get_template("t")
        .expect("just added")
        .render(context)
        .map_err(|e| StageError::Failed(format!("prompt template: {e}")))?;
    Ok(text.trim().to_string())
}

/// The dialogue so far as `Name: text` lines.
pub(crate) fn transcript(task: &Task, turns: &[Utterance]) -> String {
    turns
        .iter()
        .map(|t| format!("{}: {}", task.parties[t.speaker].name, t.text))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Protocol {
    fn system(&self, task: &Task, agent: usize) -> Result<String, StageError> {
        let (marker, agreement) = match &self.agreement {
            AgreementCheck::Marker(m) => (m.as_str(), "marker"),
            AgreementCheck::Judge { .. } => ("", "judge"),
        };
        let party = &task.parties[agent];
        let others: Vec<String> = task
            .parties
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != agent)
            .map(|(_, p)| p.name.clone())
            .collect();
        render(
            &self.system_prompt,
            minijinja::context! {
                persona => party.profile.clone(),
                persona_name => party.name.clone(),
                others => others,
                dilemma => task.dilemma.clone(),
                max_turns => self.max_turns,
                agreement => agreement,
                marker => marker,
            },
        )
    }

    /// The messages agent `agent` answers at the next turn.
    fn turn_messages(
        &self,
        task: &Task,
        turns: &[Utterance],
        agent: usize,
    ) -> Result<Vec<Message>, StageError> {
        let mut messages = vec![Message::new("system", &self.system(task, agent)?)];
        let window = match self.context {
            Context::All => turns,
            Context::Last(n) => &turns[turns.len().saturating_sub(n)..],
        };
        let named = task.parties.len() > 2;
        let mut history: Vec<Message> = Vec::new();
        for turn in window {
            let (role, content) = if turn.speaker == agent {
                ("assistant", turn.text.clone())
            } else if named {
                (
                    "user",
                    format!("{}: {}", task.parties[turn.speaker].name, turn.text),
                )
            } else {
                ("user", turn.text.clone())
            };
            match history.last_mut() {
                Some(last) if last.role == role => {
                    last.content.push_str("\n\n");
                    last.content.push_str(&content);
                }
                _ => history.push(Message::new(role, &content)),
            }
        }
        if history.first().is_none_or(|m| m.role == "assistant") {
            let cue = if turns.is_empty() {
                "Open the negotiation: say what matters to you and propose a solution."
            } else {
                "Continue the negotiation."
            };
            history.insert(0, Message::new("user", cue));
        }
        messages.extend(history);
        Ok(messages)
    }

    fn summary_messages(
        &self,
        task: &Task,
        turns: &[Utterance],
        agreed: bool,
    ) -> Result<Vec<Message>, StageError> {
        let names: Vec<String> = task.parties.iter().map(|p| p.name.clone()).collect();
        let request = render(
            &self.summary_prompt,
            minijinja::context! {
                dilemma => task.dilemma.clone(),
                personas => names,
                transcript => transcript(task, turns),
                agreed => agreed,
            },
        )?;
        Ok(vec![
            Message::new("system", &self.system(task, 0)?),
            Message::new("user", &request),
        ])
    }

    /// Holds every dialogue of `tasks` with the spec's models; `on_done(i, dialogue)` sees
    /// each as it finishes.
    pub fn run(
        &self,
        tasks: &[Task],
        models: &ModelHub,
        ctx: &StageContext,
        on_done: impl FnMut(usize, Dialogue) -> Result<(), StageError>,
    ) -> Result<(), StageError> {
        let mut loaded: Vec<(String, Arc<LoadedModel>)> = Vec::new();
        let model = |name: &str| -> Result<Arc<LoadedModel>, StageError> {
            if let Some((_, m)) = loaded.iter().find(|(n, _)| n == name) {
                return Ok(m.clone());
            }
            let m = models
                .load(name)
                .map_err(|e| StageError::Failed(format!("model `{name}`: {e}")))?;
            loaded.push((name.to_string(), m.clone()));
            Ok(m)
        };
        self.run_with(tasks, model, ctx, on_done)
    }

    /// [`run`](Self::run) with `model(name)` giving the model of each agent name (training
    /// passes the policy it is updating).
    pub fn run_with(
        &self,
        tasks: &[Task],
        mut model: impl FnMut(&str) -> Result<Arc<LoadedModel>, StageError>,
        ctx: &StageContext,
        mut on_done: impl FnMut(usize, Dialogue) -> Result<(), StageError>,
    ) -> Result<(), StageError> {
        if tasks.is_empty() {
            return Ok(());
        }
        // Waves of `batch_size` dialogues: each wave is cached before the next starts, so an
        // interruption loses at most one wave, and memory stays bounded.
        let wave = self.batch_size.max(1);
        for start in (0..tasks.len()).step_by(wave) {
            let live = (start..tasks.len().min(start + wave))
                .map(|task| Live {
                    task,
                    turns: Vec::new(),
                    agreed: false,
                    closing: false,
                })
                .collect();
            self.run_wave(tasks, live, ctx, &mut model, &mut on_done)?;
        }
        Ok(())
    }

    /// Holds the dialogues of `live` together until all are done.
    fn run_wave(
        &self,
        tasks: &[Task],
        mut live: Vec<Live>,
        ctx: &StageContext,
        model: &mut impl FnMut(&str) -> Result<Arc<LoadedModel>, StageError>,
        on_done: &mut impl FnMut(usize, Dialogue) -> Result<(), StageError>,
    ) -> Result<(), StageError> {
        while !live.is_empty() {
            ctx.check_cancelled()?;
            // Every live dialogue's next request, grouped by the model that answers it.
            let mut by_model: Vec<(String, Vec<(usize, Request)>)> = Vec::new();
            for (slot, dialogue) in live.iter().enumerate() {
                let task = &tasks[dialogue.task];
                let (speaker, messages, stream) = if dialogue.closing {
                    (
                        0,
                        self.summary_messages(task, &dialogue.turns, dialogue.agreed)?,
                        u64::MAX,
                    )
                } else {
                    let turn = dialogue.turns.len();
                    let speaker = turn % self.agents.len();
                    (
                        speaker,
                        self.turn_messages(task, &dialogue.turns, speaker)?,
                        turn as u64,
                    )
                };
                let name = &self.agents[speaker];
                let m = model(name)?;
                let text = m.chat_prompt(&messages).map_err(llm)?;
                let stop_strings = task
                    .parties
                    .iter()
                    .map(|p| format!("\n{}:", p.name))
                    .collect();
                let request = Request {
                    prompt: m.tokenizer.encode(&text).map_err(llm)?,
                    sampling: self.sampling,
                    max_new_tokens: self.max_new_tokens,
                    seed: SeededRng::new(task.seed, &[b"utterance", &stream.to_le_bytes()])
                        .next_u64(),
                    stop_strings,
                    top_logprobs: 0,
                };
                match by_model.iter_mut().find(|(n, _)| n == name) {
                    Some((_, requests)) => requests.push((slot, request)),
                    None => by_model.push((name.clone(), vec![(slot, request)])),
                }
            }
            let mut replies: Vec<Option<Utterance>> = vec![None; live.len()];
            for (name, requests) in &by_model {
                let m = model(name)?;
                for chunk in requests.chunks(self.batch_size.max(1)) {
                    ctx.check_cancelled()?;
                    let batch: Vec<Request> = chunk.iter().map(|(_, r)| r.clone()).collect();
                    let completions =
                        generate(&m.model, &m.tokenizer, &batch, &m.stop_tokens, |_, _| {})
                            .map_err(llm)?;
                    for ((slot, request), completion) in chunk.iter().zip(completions) {
                        let dialogue = &live[*slot];
                        let speaker = if dialogue.closing {
                            0
                        } else {
                            dialogue.turns.len() % self.agents.len()
                        };
                        replies[*slot] = Some(Utterance {
                            speaker,
                            text: completion.text.trim().to_string(),
                            prompt_ids: request.prompt.clone(),
                            token_ids: completion.tokens,
                            logprobs: completion.logprobs,
                            p_agree: None,
                        });
                    }
                }
            }
            // Closed dialogues are done; the others take their new turn.
            let mut next = Vec::with_capacity(live.len());
            let mut to_check = Vec::new();
            for (mut dialogue, reply) in live.into_iter().zip(replies) {
                let reply = reply.expect("every live dialogue got a reply");
                if dialogue.closing {
                    on_done(
                        dialogue.task,
                        Dialogue {
                            turns: dialogue.turns,
                            agreed: dialogue.agreed,
                            summary: reply,
                        },
                    )?;
                    continue;
                }
                dialogue.turns.push(reply);
                if dialogue.turns.len() >= 2 {
                    to_check.push(next.len());
                }
                next.push(dialogue);
            }
            self.check_agreement(tasks, &mut next, &to_check, model)?;
            for dialogue in &mut next {
                if dialogue.agreed || dialogue.turns.len() >= self.max_turns {
                    dialogue.closing = true;
                }
            }
            live = next;
        }
        Ok(())
    }

    /// Sets `p_agree` on the last turn of the dialogues at `which`, and `agreed`.
    fn check_agreement(
        &self,
        tasks: &[Task],
        live: &mut [Live],
        which: &[usize],
        model: &mut impl FnMut(&str) -> Result<Arc<LoadedModel>, StageError>,
    ) -> Result<(), StageError> {
        match &self.agreement {
            AgreementCheck::Marker(marker) => {
                for &i in which {
                    let last = live[i]
                        .turns
                        .last_mut()
                        .expect("checked dialogues have turns");
                    let agreed = last.text.contains(marker.as_str());
                    last.p_agree = Some(if agreed { 1.0 } else { 0.0 });
                    live[i].agreed = agreed;
                }
            }
            AgreementCheck::Judge {
                model: name,
                prompt,
            } => {
                let m = model(name)?;
                let answers = answer_tokens(&m.tokenizer, &["Yes", "No"]).map_err(llm)?;
                for chunk in which.chunks(self.batch_size.max(1)) {
                    let mut prompts = Vec::with_capacity(chunk.len());
                    for &i in chunk {
                        let task = &tasks[live[i].task];
                        let question = render(
                            prompt,
                            minijinja::context! {
                                dilemma => task.dilemma.clone(),
                                transcript => transcript(task, &live[i].turns),
                            },
                        )?;
                        let text = m
                            .chat_prompt(&[Message::new("user", &question)])
                            .map_err(llm)?;
                        prompts.push(m.tokenizer.encode(&text).map_err(llm)?);
                    }
                    let logprobs = next_token_logprobs(&m.model, &prompts).map_err(llm)?;
                    for (&i, row) in chunk.iter().zip(&logprobs) {
                        let p_yes = answer_distribution(row, &answers, 1.0)[0];
                        live[i].turns.last_mut().expect("has turns").p_agree = Some(p_yes);
                        live[i].agreed = p_yes >= 0.5;
                    }
                }
            }
        }
        Ok(())
    }
}
