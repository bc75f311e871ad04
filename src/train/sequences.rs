//! Which tokens of a dialogue carry gradient.
//!
//! A dialogue is a series of turns, each generated from its own prompt (the speaker's
//! system prompt and its view of the dialogue so far). Training scores each of the
//! trained agent's turns as its own row: the prompt, the other agents' words inside it
//! and the closing summary are context, and only the tokens the trained agent generated
//! count. With `train_agents: all` every agent is the policy and every turn counts.

use serde::{Deserialize, Serialize};

use super::logprobs::Scored;
use crate::dialogue::Dialogue;

/// Whose turns are trained.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TrainAgents {
    /// The first agent's turns (the others are the opponent).
    #[default]
    First,
    /// Every agent's turns (all agents are the policy).
    All,
}

impl TrainAgents {
    fn trains(self, speaker: usize) -> bool {
        match self {
            TrainAgents::First => speaker == 0,
            TrainAgents::All => true,
        }
    }
}

/// One trained turn of sample `sample`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRow {
    pub sample: usize,
    /// The turn's index in its dialogue.
    pub turn: usize,
    pub scored: Scored,
    /// The log-probs the turn was sampled with (at the sampling temperature).
    pub sampled_logprobs: Vec<f32>,
}

/// The trained turns of `dialogue`, which is sample `sample` of the batch. Turns that
/// generated no tokens are skipped; the summary never trains.
pub fn training_rows(dialogue: &Dialogue, sample: usize, train: TrainAgents) -> Vec<TrainingRow> {
    dialogue
        .turns
        .iter()
        .enumerate()
        .filter(|(_, turn)| train.trains(turn.speaker) && !turn.token_ids.is_empty())
        .map(|(index, turn)| TrainingRow {
            sample,
            turn: index,
            scored: Scored {
                prompt: turn.prompt_ids.clone(),
                completion: turn.token_ids.clone(),
            },
            sampled_logprobs: turn.logprobs.clone(),
        })
        .collect()
}

/// The whole dialogue as one token stream, each token marked with whether it carries
/// gradient: every turn's prompt then its tokens, then the summary's. This is how a
/// reader checks the mask token by token; training uses [`training_rows`].
pub fn token_mask(dialogue: &Dialogue, train: TrainAgents) -> Vec<(u32, bool)> {
    let mut stream = Vec::new();
    for turn in &dialogue.turns {
        stream.extend(turn.prompt_ids.iter().map(|&id| (id, false)));
        let trained = train.trains(turn.speaker);
        stream.extend(turn.token_ids.iter().map(|&id| (id, trained)));
    }
    let summary = &dialogue.summary;
    stream.extend(
        summary
            .prompt_ids
            .iter()
            .chain(&summary.token_ids)
            .map(|&id| (id, false)),
    );
    stream
}
