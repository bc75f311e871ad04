//! The built-in rubrics and judge prompts (Jinja, in `data/rubrics/` and `data/prompts/`),
//! written for accord; a spec may replace the dialogue rubrics with its own files.

/// Collective Agency of a dialogue, 0–5 (`dilemma`, `parties`, `transcript`, `summary`,
/// `agreed`).
pub const COLLECTIVE_AGENCY: &str = include_str!("../../data/rubrics/collective_agency.jinja");
/// One party's satisfaction with a dialogue's outcome, 0–5 (`dilemma`, `party`,
/// `transcript`, `summary`).
pub const SATISFACTION: &str = include_str!("../../data/prompts/party_satisfaction.jinja");
/// The request for a short rationale after a rating (`rating`).
pub const RATIONALE: &str = include_str!("../../data/prompts/judge_rationale.jinja");
/// Which of two dialogues shows more Collective Agency, 1 or 2 (`dilemma`, `first`,
/// `second`, each with `transcript` and `summary`).
pub const PAIRWISE: &str = include_str!("../../data/rubrics/pairwise_collective_agency.jinja");
/// Collective Agency of a single answer, 0–5 (`question`, `parties`, `answer`).
pub const ANSWER: &str = include_str!("../../data/rubrics/collective_agency_answer.jinja");
/// Which of two answers shows more Collective Agency, 1 or 2 (`question`, `parties`,
/// `first`, `second`).
pub const PAIRWISE_ANSWER: &str =
    include_str!("../../data/rubrics/pairwise_collective_agency_answer.jinja");
/// Which of two negotiations resolved the conflict better, 1 or 2 (`dilemma`, `first`,
/// `second`, each with `transcript` and `summary`).
pub const PAIRWISE_RESOLUTION: &str =
    include_str!("../../data/rubrics/pairwise_conflict_resolution.jinja");
