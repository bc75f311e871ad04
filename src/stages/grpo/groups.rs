//! A step's groups: `group_size` dialogues for each of `batch_prompts` sampled pairs,
//! held by the current policy (the first agent) against its opponent — or answered by the
//! policy alone in `single_agent` mode — and rewarded. Groups whose rewards all tie teach
//! nothing, so with `filter_zero_std` new pairs replace them (DAPO's dynamic sampling).

use std::sync::Arc;

use arrow::array::StringArray;

use super::params::{Mode, Params};
use super::reward::rewards;
use crate::dialogue::templates::SINGLE_AGENT;
use crate::dialogue::{Answering, Dialogue, Party, Protocol, Task, answer_alone};
use crate::judge::JudgeModel;
use crate::llm::loaded::LoadedModel;
use crate::prompt::render;
use crate::seed::SeededRng;
use crate::stage::{StageContext, StageError};
use crate::train::advantage;

/// The agent names the protocol uses for the policy being trained and its opponent.
pub const POLICY: &str = "\u{0}policy";
pub const OPPONENT: &str = "\u{0}opponent";

/// Rolled-out groups: `group_size` consecutive tasks, dialogues and rewards each.
pub struct Groups {
    pub tasks: Vec<Task>,
    pub dialogues: Vec<Dialogue>,
    pub rewards: Vec<f64>,
    /// Groups whose rewards all tied before any resampling.
    pub tied_first: usize,
    /// Turn tokens generated, resampled groups included.
    pub generated: usize,
}

/// What rolling out needs besides the models of the step.
pub struct Rollouts<'a> {
    pub params: &'a Params,
    pub protocol: &'a Protocol,
    /// Each pair's parties and dilemma.
    pub parties: &'a [Vec<Party>],
    pub dilemmas: &'a StringArray,
    pub judge: Option<&'a JudgeModel>,
    pub ctx: &'a StageContext<'a>,
}

impl Rollouts<'_> {
    /// The groups of step `step` (from 0), with `policy` against `opponent`.
    pub fn step(
        &self,
        step: usize,
        policy: &Arc<LoadedModel>,
        opponent: &Arc<LoadedModel>,
    ) -> Result<Groups, StageError> {
        let params = self.params;
        let g = params.group_size;
        let mut rng = SeededRng::new(
            self.ctx.seed,
            &[b"grpo batch", &(step as u64).to_le_bytes()],
        );
        let rows: Vec<(usize, usize)> = (0..params.batch_prompts)
            .map(|slot| (slot, rng.below(self.parties.len())))
            .collect();
        let mut groups = self.roll_out(step, &rows, 0, policy, opponent)?;
        groups.tied_first = tied(&groups.rewards, g).len();
        if !params.filter_zero_std {
            return Ok(groups);
        }
        for attempt in 1..=params.max_resamples as u64 {
            let tied = tied(&groups.rewards, g);
            if tied.is_empty() {
                break;
            }
            let again: Vec<(usize, usize)> = tied
                .iter()
                .map(|&group| (group, rng.below(self.parties.len())))
                .collect();
            let fresh = self.roll_out(step, &again, attempt, policy, opponent)?;
            for (k, &group) in tied.iter().enumerate() {
                let (to, from) = (group * g..(group + 1) * g, k * g..(k + 1) * g);
                groups.tasks[to.clone()].clone_from_slice(&fresh.tasks[from.clone()]);
                groups.dialogues[to.clone()].clone_from_slice(&fresh.dialogues[from.clone()]);
                groups.rewards[to].copy_from_slice(&fresh.rewards[from]);
            }
            groups.generated += fresh.generated;
        }
        Ok(groups)
    }

    /// The groups of `rows` (slot, pair row), attempt `attempt`.
    fn roll_out(
        &self,
        step: usize,
        rows: &[(usize, usize)],
        attempt: u64,
        policy: &Arc<LoadedModel>,
        opponent: &Arc<LoadedModel>,
    ) -> Result<Groups, StageError> {
        let tasks: Vec<Task> = rows
            .iter()
            .flat_map(|&(slot, row)| {
                (0..self.params.group_size).map(move |sample| Task {
                    dilemma: self.dilemmas.value(row).to_string(),
                    parties: self.parties[row].clone(),
                    seed: task_seed(self.ctx.seed, step, slot, sample, attempt),
                })
            })
            .collect();
        let dialogues = match self.params.mode {
            Mode::SelfPlay => self.negotiate(&tasks, policy, opponent)?,
            Mode::SingleAgent => self.answer(&tasks, policy)?,
        };
        let generated = dialogues.iter().map(Dialogue::turn_tokens).sum();
        let rewards = rewards(self.params, &tasks, &dialogues, self.judge, self.ctx)?;
        Ok(Groups {
            tasks,
            dialogues,
            rewards,
            tied_first: 0,
            generated,
        })
    }

    fn negotiate(
        &self,
        tasks: &[Task],
        policy: &Arc<LoadedModel>,
        opponent: &Arc<LoadedModel>,
    ) -> Result<Vec<Dialogue>, StageError> {
        let models = self.ctx.models;
        let resolve = |name: &str| -> Result<Arc<LoadedModel>, StageError> {
            match name {
                POLICY => Ok(policy.clone()),
                OPPONENT => Ok(opponent.clone()),
                other => models
                    .load(other)
                    .map_err(|e| StageError::Failed(format!("model `{other}`: {e}"))),
            }
        };
        self.protocol.hold_all(tasks, resolve, self.ctx)
    }

    /// Each task's single-agent answer, as a one-turn dialogue that counts as agreed.
    fn answer(&self, tasks: &[Task], policy: &LoadedModel) -> Result<Vec<Dialogue>, StageError> {
        let prompts = tasks
            .iter()
            .map(|task| {
                let personas: Vec<String> = task.parties.iter().map(|p| p.name.clone()).collect();
                render(
                    SINGLE_AGENT,
                    minijinja::context! { dilemma => task.dilemma.clone(), personas => personas },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let seeds: Vec<u64> = tasks
            .iter()
            .map(|task| SeededRng::new(task.seed, &[b"answer"]).next_u64())
            .collect();
        let how = Answering {
            sampling: self.protocol.sampling,
            max_new_tokens: self.protocol.max_new_tokens,
            batch_size: self.protocol.batch_size,
        };
        Ok(
            answer_alone(policy, "policy", &prompts, &seeds, how, self.ctx)?
                .into_iter()
                .map(Dialogue::single_answer)
                .collect(),
        )
    }
}

/// The seed of sample `sample` of slot `slot` at step `step`, attempt `attempt` (0: the
/// first roll-out).
fn task_seed(seed: u64, step: usize, slot: usize, sample: usize, attempt: u64) -> u64 {
    let (step, slot, sample) = (
        (step as u64).to_le_bytes(),
        (slot as u64).to_le_bytes(),
        (sample as u64).to_le_bytes(),
    );
    let attempt = attempt.to_le_bytes();
    let mut labels: Vec<&[u8]> = vec![b"grpo dialogue", &step, &slot, &sample];
    if attempt != [0; 8] {
        labels.push(&attempt);
    }
    SeededRng::new(seed, &labels).next_u64()
}

/// The groups (of `g` rewards each) whose rewards all tie.
fn tied(rewards: &[f64], g: usize) -> Vec<usize> {
    rewards
        .chunks(g)
        .enumerate()
        .filter(|(_, group)| advantage::group_ties(group))
        .map(|(group, _)| group)
        .collect()
}
