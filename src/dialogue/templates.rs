//! The built-in prompt templates of a negotiation (Jinja, in `data/prompts/`): each
//! agent's system prompt, the agreement question and the closing-summary request, and
//! the request a single agent answers alone.

/// Each agent's system prompt (variables: `persona`, `persona_name`, `others`, `dilemma`,
/// `max_turns`, `agreement`, `marker`).
pub const PROTOCOL: &str = include_str!("../../data/prompts/negotiation_protocol.jinja");
/// The question the agreement model answers Yes or No (`dilemma`, `transcript`).
pub const AGREEMENT: &str = include_str!("../../data/prompts/agreement_check.jinja");
/// The first agent's closing-summary request (`dilemma`, `personas`, `transcript`,
/// `agreed`).
pub const SUMMARY: &str = include_str!("../../data/prompts/closing_summary.jinja");
/// One agent answering a dilemma alone (`dilemma`, `personas`): the single-agent baseline.
pub const SINGLE_AGENT: &str = include_str!("../../data/prompts/single_agent.jinja");

/// The template sources a protocol renders.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    pub system: String,
    pub agreement: String,
    pub summary: String,
}

impl Templates {
    /// The built-in templates.
    pub fn builtin() -> Self {
        Self {
            system: PROTOCOL.into(),
            agreement: AGREEMENT.into(),
            summary: SUMMARY.into(),
        }
    }
}
