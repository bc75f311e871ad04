//! What a dialogue is made of: the task it holds, each generated message with the tokens
//! and log-probs training needs, and the finished dialogue.
//!
//! A message keeps what the model wrote, reasoning included; what the other agents see
//! and judges rate is its [visible text](Utterance::visible_text) (see [`super::thinking`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::party::Party;
use super::thinking;

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
    /// What the model wrote (trimmed), any `<think>…</think>` reasoning included.
    pub text: String,
    /// The whole prompt the speaker's model saw, as tokens.
    pub prompt_ids: Vec<u32>,
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// After a turn: the agreement model's P(Yes) (`judge`), or 1/0 (`marker`); `None`
    /// where agreement was not checked.
    pub p_agree: Option<f64>,
}

impl Utterance {
    /// A turn known only by its speaker and text (no tokens, no agreement check).
    pub fn said(speaker: usize, text: &str) -> Self {
        Self {
            speaker,
            text: text.into(),
            prompt_ids: Vec::new(),
            token_ids: Vec::new(),
            logprobs: Vec::new(),
            p_agree: None,
        }
    }

    /// The text without its reasoning: what the other agents see and judges rate.
    pub fn visible_text(&self) -> Cow<'_, str> {
        thinking::visible(&self.text)
    }
}

/// A finished dialogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dialogue {
    pub turns: Vec<Utterance>,
    pub agreed: bool,
    pub summary: Utterance,
}

impl Dialogue {
    /// A single agent's answer as a one-turn dialogue that counts as agreed (so a judge
    /// rates it), whose summary is the answer's text.
    pub fn single_answer(answer: Utterance) -> Self {
        Dialogue {
            summary: Utterance {
                text: answer.text.clone(),
                prompt_ids: Vec::new(),
                token_ids: Vec::new(),
                logprobs: Vec::new(),
                ..answer.clone()
            },
            turns: vec![answer],
            agreed: true,
        }
    }

    /// Tokens generated in the turns (the summary left out).
    pub fn turn_tokens(&self) -> usize {
        self.turns.iter().map(|t| t.token_ids.len()).sum()
    }
}

/// The dialogue so far as `Name: text` lines, reasoning left out.
pub fn transcript(task: &Task, turns: &[Utterance]) -> String {
    turns
        .iter()
        .map(|t| format!("{}: {}", task.parties[t.speaker].name, t.visible_text()))
        .collect::<Vec<_>>()
        .join("\n")
}
