//! What a dialogue earns: the judge's expected Collective Agency rating (0 without
//! agreement, as in the paper) or a programmatic reward, plus DAPO's soft penalty for
//! trained turns that run into `max_new_tokens`.

use super::params::{Mode, OverlongPenalty, Params, Reward};
use crate::dialogue::{Dialogue, Task};
use crate::judge::{Case, DIGITS, JudgeModel};
use crate::stage::{StageContext, StageError};
use crate::stats;
use crate::train::sequences::TrainAgents;

/// One reward per dialogue of `tasks`; `judge` is the judge of `reward: judge`.
pub fn rewards(
    params: &Params,
    tasks: &[Task],
    dialogues: &[Dialogue],
    judge: Option<&JudgeModel>,
    ctx: &StageContext,
) -> Result<Vec<f64>, StageError> {
    let trained = |d: &Dialogue| -> Vec<usize> {
        (0..d.turns.len())
            .filter(|&t| params.train_agents == TrainAgents::All || d.turns[t].speaker == 0)
            .collect()
    };
    let scores: Vec<f64> = match (&params.reward, judge) {
        (Reward::Contains(text), _) => dialogues
            .iter()
            .map(|d| {
                let turns = trained(d);
                let hits: usize = turns
                    .iter()
                    .map(|&t| d.turns[t].visible_text().matches(text.as_str()).count())
                    .sum();
                hits as f64 / turns.len().max(1) as f64
            })
            .collect(),
        (Reward::Judge, Some(judge)) => {
            let single_agent = params.mode == Mode::SingleAgent;
            let questions = tasks
                .iter()
                .zip(dialogues)
                .map(|(task, d)| {
                    Case::from_dialogue(task, d, single_agent)
                        .rubric_question(crate::judge::rubrics::COLLECTIVE_AGENCY)
                })
                .collect::<Result<Vec<_>, _>>()?;
            // A reply without a rating (an endpoint's) earns nothing.
            judge
                .rate(&questions, &DIGITS, ctx)?
                .iter()
                .map(|rating| rating.expectation().unwrap_or(0.0))
                .collect()
        }
        (Reward::Judge, None) => {
            return Err(StageError::Failed(
                "`reward: judge` needs a `judge` model".into(),
            ));
        }
    };
    let overlong = |d: &Dialogue| -> f64 {
        let Some(OverlongPenalty { cache }) = &params.overlong_penalty else {
            return 0.0;
        };
        let limit = params.dialogue.max_new_tokens as f64;
        let cache = (*cache).max(1) as f64;
        let penalties: Vec<f64> = trained(d)
            .into_iter()
            .map(|t| overlong_penalty(d.turns[t].token_ids.len(), limit, cache))
            .collect();
        if penalties.is_empty() {
            0.0
        } else {
            stats::mean(&penalties)
        }
    };
    Ok(scores
        .into_iter()
        .zip(dialogues)
        .map(|(score, d)| {
            let earned = if d.agreed || params.reward != Reward::Judge {
                score
            } else {
                params.no_agreement_reward
            };
            earned + overlong(d)
        })
        .collect())
}

/// DAPO's soft overlong punishment of a turn of `tokens` tokens: 0 up to `limit - cache`,
/// then falling linearly to -1 at `limit`.
fn overlong_penalty(tokens: usize, limit: f64, cache: f64) -> f64 {
    ((limit - cache - tokens as f64) / cache).clamp(-1.0, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_turns_lose_reward_linearly_over_the_cache() {
        assert_eq!(overlong_penalty(10, 64.0, 16.0), 0.0);
        assert_eq!(overlong_penalty(48, 64.0, 16.0), 0.0);
        assert_eq!(overlong_penalty(56, 64.0, 16.0), -0.5);
        assert_eq!(overlong_penalty(64, 64.0, 16.0), -1.0);
    }
}
