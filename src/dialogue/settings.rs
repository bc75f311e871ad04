//! The dialogue settings `rollout`, `grpo` and `evaluate` share: declared, defaulted,
//! documented and checked here once, and flattened into each stage's `with:` under the
//! same names (`max_turns`, `context_turns`, `temperature`, `top_p`, `max_new_tokens`,
//! `agreement`, `agreement_model`, `marker`, `batch_size`).
//!
//! Which model checks agreement by default is the one thing the stages decide themselves
//! (`rollout`: the first agent's, `grpo`: the policy's base weights, `evaluate`: the
//! baseline), so [`DialogueSettings::protocol`] takes it as an argument.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::protocol::{AgreementCheck, Context, Protocol};
use super::templates::Templates;
use crate::llm::sampling::{self, Sampling};
use crate::stage::limits::{MAX_BATCH, MAX_REPEATS, MAX_TOKENS, at_most};

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

/// How dialogues are held: turns, context, sampling, the agreement check and batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DialogueSettings {
    /// The most turns a dialogue has (all agents together).
    #[serde(default = "default_max_turns")]
    pub max_turns: usize,
    /// Past turns an agent sees when it speaks: a number, or `all`.
    #[serde(default = "default_context_turns")]
    pub context_turns: ContextTurns,
    /// Sampling temperature of turns and summaries (0: greedy).
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Nucleus sampling: the smallest set of tokens holding this much probability.
    #[serde(default = "default_top_p")]
    pub top_p: f32,
    /// The longest turn (and summary), in tokens.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// How agreement is detected after each turn: `judge` or `marker`.
    #[serde(default)]
    pub agreement: Agreement,
    /// The model that checks agreement (default: `rollout`, the first agent's; `grpo`,
    /// the policy's base weights; `evaluate`, the baseline, so that every evaluated model
    /// is held to the same check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_model: Option<String>,
    /// `agreement: marker`: the phrase that signals acceptance.
    #[serde(default = "default_marker")]
    pub marker: String,
    /// Dialogues decoded in one batch (`evaluate`: also answers and judge questions).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_max_turns() -> usize {
    7
}
fn default_context_turns() -> ContextTurns {
    ContextTurns::Last(2)
}
fn default_temperature() -> f32 {
    0.7
}
fn default_top_p() -> f32 {
    0.95
}
fn default_max_new_tokens() -> usize {
    128
}
fn default_marker() -> String {
    "[AGREED]".into()
}
fn default_batch_size() -> usize {
    16
}

impl Default for DialogueSettings {
    fn default() -> Self {
        Self {
            max_turns: default_max_turns(),
            context_turns: default_context_turns(),
            temperature: default_temperature(),
            top_p: default_top_p(),
            max_new_tokens: default_max_new_tokens(),
            agreement: Agreement::default(),
            agreement_model: None,
            marker: default_marker(),
            batch_size: default_batch_size(),
        }
    }
}

impl DialogueSettings {
    /// Values the fields' types allow but a dialogue cannot use: `(field, problem)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, text: &str| problems.push((field.into(), text.into()));
        if self.max_turns < 2 {
            problem("max_turns", "a negotiation needs at least 2 turns");
        }
        if self.context_turns == ContextTurns::Last(0) {
            problem(
                "context_turns",
                "agents must see at least 1 turn (or `all`)",
            );
        }
        if let Some(text) = sampling::temperature_problem(self.temperature) {
            problem("temperature", text);
        }
        if let Some(text) = sampling::top_p_problem(self.top_p) {
            problem("top_p", text);
        }
        if self.max_new_tokens == 0 {
            problem("max_new_tokens", "must be at least 1");
        }
        if self.agreement == Agreement::Marker && self.marker.trim().is_empty() {
            problem("marker", "`agreement: marker` needs a marker");
        }
        problems.extend(
            [
                at_most("max_turns", self.max_turns, MAX_REPEATS, "turns"),
                at_most("max_new_tokens", self.max_new_tokens, MAX_TOKENS, "tokens"),
                at_most("batch_size", self.batch_size, MAX_BATCH, "dialogues"),
            ]
            .into_iter()
            .flatten(),
        );
        problems
    }

    /// How turns and summaries are sampled.
    pub fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_k: 0,
            top_p: self.top_p,
        }
    }

    /// The agreement model named in the spec, when agreement is asked of a model.
    pub fn named_agreement_model(&self) -> Option<&str> {
        match self.agreement {
            Agreement::Judge => self.agreement_model.as_deref(),
            Agreement::Marker => None,
        }
    }

    /// The protocol these settings describe, for `agents` (one model name per agent),
    /// with `default_judge` checking agreement unless `agreement_model` names another.
    pub fn protocol(
        &self,
        agents: Vec<String>,
        default_judge: &str,
        templates: Templates,
    ) -> Protocol {
        let agreement = match self.agreement {
            Agreement::Judge => AgreementCheck::Judge {
                model: self
                    .agreement_model
                    .clone()
                    .unwrap_or_else(|| default_judge.to_string()),
                prompt: templates.agreement,
            },
            Agreement::Marker => AgreementCheck::Marker(self.marker.clone()),
        };
        Protocol {
            agents,
            max_turns: self.max_turns,
            context: match self.context_turns {
                ContextTurns::Last(n) => Context::Last(n),
                ContextTurns::All(_) => Context::All,
            },
            sampling: self.sampling(),
            max_new_tokens: self.max_new_tokens,
            agreement,
            system_prompt: templates.system,
            summary_prompt: templates.summary,
            batch_size: self.batch_size.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_mapping_gives_the_documented_defaults() {
        let settings: DialogueSettings = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(settings, DialogueSettings::default());
        assert_eq!(settings.max_turns, 7);
        assert_eq!(settings.context_turns, ContextTurns::Last(2));
        assert!(settings.problems().is_empty());
    }

    #[test]
    fn every_unusable_value_is_named_with_its_field() {
        let settings: DialogueSettings = serde_json::from_value(serde_json::json!({
            "max_turns": 1, "context_turns": 0, "temperature": -1.0, "top_p": 0.0,
            "max_new_tokens": 0, "agreement": "marker", "marker": " "
        }))
        .unwrap();
        let fields: Vec<String> = settings.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "max_turns",
                "context_turns",
                "temperature",
                "top_p",
                "max_new_tokens",
                "marker"
            ]
        );
    }

    #[test]
    fn all_is_the_only_word_context_turns_takes() {
        let all: DialogueSettings =
            serde_json::from_value(serde_json::json!({"context_turns": "all"})).unwrap();
        assert_eq!(all.context_turns, ContextTurns::All(AllTurns::All));
        assert!(
            serde_json::from_value::<DialogueSettings>(
                serde_json::json!({"context_turns": "some"})
            )
            .is_err()
        );
    }
}
