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
//! Every turn is seen without its `<think>…</think>` reasoning (see
//! [`super::thinking`]): by the other agents, by the speaker itself at its next turns (as
//! Qwen3's own template drops the reasoning of earlier turns), by the agreement check and
//! the marker, and in the summary's transcript. The recorded turn keeps it.
//!
//! Dialogues run in waves of `batch_size`; within a wave all unfinished dialogues advance
//! together: each step builds every dialogue's next request (a turn or a closing summary)
//! and decodes them in one batch per model. Each dialogue samples from its own seeded
//! streams, so its draws do not depend on which dialogues share its batch (the logits of
//! differently shaped batches can still differ in their last bits, as in any batched
//! engine). A dialogue is handed to `on_done` as soon as its summary is written, so a
//! caller can cache it before the others finish.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::transcript::{Dialogue, Task, Utterance, transcript};
use crate::llm::LlmError;
use crate::llm::chat::Message;
use crate::llm::generate::Request;
use crate::llm::hub::ModelHub;
use crate::llm::loaded::LoadedModel;
use crate::llm::sampling::Sampling;
use crate::prompt::render;
use crate::seed::SeededRng;
use crate::stage::{StageContext, StageError};

/// How many past turns an agent sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Last(usize),
    All,
}

/// As the spec writes it (`context_turns`): a number, or `all`.
impl Serialize for Context {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Context::Last(n) => serializer.serialize_u64(*n as u64),
            Context::All => serializer.serialize_str("all"),
        }
    }
}

/// How agreement is detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgreementCheck {
    /// The agreement model answers the agreement question; agreed when P(Yes) ≥ 0.5.
    Judge { model: String, prompt: String },
    /// Agreed when a turn contains this phrase.
    Marker(String),
}

/// What an agreement check depends on, as row keys record it: the agreement model's
/// identity and question, or the marker.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AgreementKey<'a> {
    Judge { model: Value, prompt: &'a str },
    Marker { marker: &'a str },
}

impl AgreementCheck {
    /// What this check depends on, with `identity` giving a model's identity.
    pub fn key(&self, identity: impl Fn(&str) -> Value) -> AgreementKey<'_> {
        match self {
            AgreementCheck::Judge { model, prompt } => AgreementKey::Judge {
                model: identity(model),
                prompt,
            },
            AgreementCheck::Marker(marker) => AgreementKey::Marker { marker },
        }
    }
}

/// What a dialogue depends on besides its models, as row keys record it: its task (dilemma,
/// parties, seed) and the protocol's settings and prompts. Row keys flatten it in beside
/// the models' identities.
#[derive(Debug, Clone, Serialize)]
pub struct DialogueKeyParts<'a> {
    dilemma: &'a str,
    /// Each party's persona id and profile.
    parties: Vec<[&'a str; 2]>,
    max_turns: usize,
    context_turns: Context,
    sampling: Sampling,
    max_new_tokens: usize,
    system_prompt: &'a str,
    summary_prompt: &'a str,
    seed: u64,
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

/// A dialogue in progress.
struct Live {
    task: usize,
    turns: Vec<Utterance>,
    agreed: bool,
    /// The negotiation is over; the summary comes next.
    closing: bool,
}

impl Protocol {
    /// What a dialogue on `task` depends on besides its models.
    pub fn key_parts<'a>(&'a self, task: &'a Task) -> DialogueKeyParts<'a> {
        DialogueKeyParts {
            dilemma: &task.dilemma,
            parties: task
                .parties
                .iter()
                .map(|p| [p.persona.as_str(), p.profile.as_str()])
                .collect(),
            max_turns: self.max_turns,
            context_turns: self.context,
            sampling: self.sampling,
            max_new_tokens: self.max_new_tokens,
            system_prompt: &self.system_prompt,
            summary_prompt: &self.summary_prompt,
            seed: task.seed,
        }
    }

    /// Holds every dialogue of `tasks` with `model(name)` giving each agent's model, and
    /// returns them in order (see [`run_with`](Self::run_with)).
    pub fn hold_all(
        &self,
        tasks: &[Task],
        model: impl FnMut(&str) -> Result<Arc<LoadedModel>, StageError>,
        ctx: &StageContext,
    ) -> Result<Vec<Dialogue>, StageError> {
        let mut held: Vec<Option<Dialogue>> = vec![None; tasks.len()];
        self.run_with(tasks, model, ctx, |i, dialogue| {
            held[i] = Some(dialogue);
            Ok(())
        })?;
        Ok(held
            .into_iter()
            .map(|d| d.expect("every dialogue ran"))
            .collect())
    }

    /// Every model the protocol runs, each once: the agents', then the agreement model's.
    pub fn models(&self) -> Vec<&str> {
        let mut models: Vec<&str> = Vec::new();
        let agreement = match &self.agreement {
            AgreementCheck::Judge { model, .. } => Some(model.as_str()),
            AgreementCheck::Marker(_) => None,
        };
        for name in self.agents.iter().map(String::as_str).chain(agreement) {
            if !models.contains(&name) {
                models.push(name);
            }
        }
        models
    }

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
            let text = turn.visible_text();
            let (role, content) = if turn.speaker == agent {
                ("assistant", text.into_owned())
            } else if named {
                (
                    "user",
                    format!("{}: {text}", task.parties[turn.speaker].name),
                )
            } else {
                ("user", text.into_owned())
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
            let m = models.load(name).map_err(|e| failed(name, e))?;
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

    /// Holds the dialogues of `live` together until all are done: each step answers
    /// every live dialogue's next request, then checks agreement after the new turns.
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
            let replies = self.reply_all(tasks, &live, ctx, model)?;
            // Closed dialogues are done; the others take their new turn.
            let mut next = Vec::with_capacity(live.len());
            let mut to_check = Vec::new();
            for (mut dialogue, reply) in live.into_iter().zip(replies) {
                if dialogue.closing {
                    let done = Dialogue {
                        turns: dialogue.turns,
                        agreed: dialogue.agreed,
                        summary: reply,
                    };
                    on_done(dialogue.task, done)?;
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
                dialogue.closing = dialogue.agreed || dialogue.turns.len() >= self.max_turns;
            }
            live = next;
        }
        Ok(())
    }

    /// Who writes a live dialogue's next message: the agent whose turn it is, or the
    /// first agent for the summary.
    fn next_speaker(&self, dialogue: &Live) -> usize {
        if dialogue.closing {
            0
        } else {
            dialogue.turns.len() % self.agents.len()
        }
    }

    /// The request for a live dialogue's next message (a turn, or the summary), for the
    /// speaker's model `m`.
    fn next_request(
        &self,
        task: &Task,
        dialogue: &Live,
        m: &LoadedModel,
    ) -> Result<Request, StageError> {
        let speaker = self.next_speaker(dialogue);
        let (messages, stream) = if dialogue.closing {
            let summary = self.summary_messages(task, &dialogue.turns, dialogue.agreed)?;
            (summary, u64::MAX)
        } else {
            let turn = self.turn_messages(task, &dialogue.turns, speaker)?;
            (turn, dialogue.turns.len() as u64)
        };
        Ok(Request {
            prompt: m
                .encode_chat(&messages)
                .map_err(|e| failed(&self.agents[speaker], e))?,
            sampling: self.sampling,
            max_new_tokens: self.max_new_tokens,
            seed: SeededRng::new(task.seed, &[b"utterance", &stream.to_le_bytes()]).next_u64(),
            stop_strings: task
                .parties
                .iter()
                .map(|p| format!("\n{}:", p.name))
                .collect(),
            top_logprobs: 0,
        })
    }

    /// Every live dialogue's next message, decoded in batches of `batch_size` per model.
    fn reply_all(
        &self,
        tasks: &[Task],
        live: &[Live],
        ctx: &StageContext,
        model: &mut impl FnMut(&str) -> Result<Arc<LoadedModel>, StageError>,
    ) -> Result<Vec<Utterance>, StageError> {
        let mut by_model: Vec<(&str, Vec<(usize, Request)>)> = Vec::new();
        for (slot, dialogue) in live.iter().enumerate() {
            let name = self.agents[self.next_speaker(dialogue)].as_str();
            let request = self.next_request(&tasks[dialogue.task], dialogue, &*model(name)?)?;
            match by_model.iter_mut().find(|(n, _)| *n == name) {
                Some((_, requests)) => requests.push((slot, request)),
                None => by_model.push((name, vec![(slot, request)])),
            }
        }
        let mut replies: Vec<Option<Utterance>> = vec![None; live.len()];
        for (name, requests) in by_model {
            let m = model(name)?;
            for chunk in requests.chunks(self.batch_size.max(1)) {
                ctx.check_cancelled()?;
                let batch: Vec<Request> = chunk.iter().map(|(_, r)| r.clone()).collect();
                let completions = m
                    .generate_while(&batch, || !ctx.is_cancelled())
                    .map_err(|e| failed(name, e))?;
                ctx.check_cancelled()?;
                for ((slot, request), completion) in chunk.iter().zip(completions) {
                    replies[*slot] = Some(Utterance {
                        speaker: self.next_speaker(&live[*slot]),
                        text: completion.text.trim().to_string(),
                        prompt_ids: request.prompt.clone(),
                        token_ids: completion.tokens,
                        logprobs: completion.logprobs,
                        p_agree: None,
                    });
                }
            }
        }
        Ok(replies
            .into_iter()
            .map(|r| r.expect("every live dialogue got a reply"))
            .collect())
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
                    let agreed = last.visible_text().contains(marker.as_str());
                    last.p_agree = Some(if agreed { 1.0 } else { 0.0 });
                    live[i].agreed = agreed;
                }
            }
            AgreementCheck::Judge {
                model: name,
                prompt,
            } => {
                let m = model(name)?;
                for chunk in which.chunks(self.batch_size.max(1)) {
                    let questions = chunk
                        .iter()
                        .map(|&i| {
                            let task = &tasks[live[i].task];
                            render(
                                prompt,
                                minijinja::context! {
                                    dilemma => task.dilemma.clone(),
                                    transcript => transcript(task, &live[i].turns),
                                },
                            )
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let distributions = m
                        .answer_distributions(&questions, &["Yes", "No"])
                        .map_err(|e| failed(name, e))?;
                    for (&i, distribution) in chunk.iter().zip(distributions) {
                        let p_yes = distribution[0];
                        live[i].turns.last_mut().expect("has turns").p_agree = Some(p_yes);
                        live[i].agreed = p_yes >= 0.5;
                    }
                }
            }
        }
        Ok(())
    }
}

/// An engine error of model `name`, as a stage failure.
fn failed(name: &str, e: LlmError) -> StageError {
    StageError::Failed(format!("model `{name}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::Party;

    fn protocol() -> Protocol {
        Protocol {
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
            system_prompt: "You are {{ persona_name }}.".into(),
            summary_prompt: "Summarise:\n{{ transcript }}".into(),
            batch_size: 4,
        }
    }

    fn task() -> Task {
        let party = |name: &str| Party {
            persona: name.to_lowercase(),
            name: name.into(),
            profile: format!("{name}. Cares."),
        };
        Task {
            dilemma: "Split a budget.".into(),
            parties: vec![party("Ada"), party("Ben")],
            seed: 1,
        }
    }

    fn turn(speaker: usize, text: &str) -> Utterance {
        Utterance::said(speaker, text)
    }

    /// A thinking model's reasoning stays in the turn it wrote, and out of every prompt:
    /// the other agent's, its own next one, and the summary request (the judge's view is
    /// tested in `judge::case`).
    #[test]
    fn reasoning_is_kept_in_the_turn_and_seen_by_no_one() {
        let protocol = protocol();
        let task = task();
        let turns = vec![
            turn(
                0,
                "<think>\nBen is weak on cost. [AGREED]\n</think>\n\nI propose 60/40.",
            ),
            turn(1, "<think>Ada bluffs.</think>50/50, roof first."),
            turn(0, "Fine by me. <think>stopped mid-thou"),
        ];
        let seen = |messages: &[Message]| {
            messages
                .iter()
                .map(|m| format!("{}: {}", m.role, m.content))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let ben = seen(&protocol.turn_messages(&task, &turns[..1], 1).unwrap());
        assert_eq!(ben, "system: You are Ben.\nuser: I propose 60/40.");
        let ada = seen(&protocol.turn_messages(&task, &turns[..2], 0).unwrap());
        assert_eq!(
            ada,
            "system: You are Ada.\nuser: Continue the negotiation.\n\
             assistant: I propose 60/40.\nuser: 50/50, roof first."
        );
        let summary = seen(&protocol.summary_messages(&task, &turns, true).unwrap());
        assert!(
            summary.ends_with(
                "user: Summarise:\nAda: I propose 60/40.\nBen: 50/50, roof first.\nAda: Fine by me."
            ),
            "{summary}"
        );
        // The turns, which become the rollout's rows, keep every word.
        assert!(turns[0].text.contains("Ben is weak on cost."));
        assert!(turns[2].text.ends_with("<think>stopped mid-thou"));
    }

    /// An agreement marker the model only thought about does not end the negotiation.
    #[test]
    fn a_marker_in_reasoning_is_not_agreement() {
        let protocol = protocol();
        let tasks = [task()];
        let mut live = vec![Live {
            task: 0,
            turns: vec![
                turn(0, "Deal?"),
                turn(1, "<think>I could say [AGREED]</think>Not yet."),
            ],
            agreed: false,
            closing: false,
        }];
        let mut no_model = |name: &str| -> Result<Arc<LoadedModel>, StageError> {
            panic!("a marker check loads no model ({name})")
        };
        protocol
            .check_agreement(&tasks, &mut live, &[0], &mut no_model)
            .unwrap();
        assert!(!live[0].agreed);
        assert_eq!(live[0].turns[1].p_agree, Some(0.0));
    }
}
