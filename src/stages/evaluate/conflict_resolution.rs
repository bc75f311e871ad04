//! The `conflict_resolution` suite: each model negotiates every held-out pair in
//! self-play (the rollout protocol); agreement rate, rounds (turns) to agreement, and a
//! pairwise verdict on the quality of the resolution against the baseline's dialogue.

use std::collections::BTreeMap;

use serde::Serialize;

use super::evaluation::{Evaluation, ModelIdentity};
use super::rows::Rows;
use super::{Evaluate, Suite};
use crate::dialogue::{
    AgreementKey, Dialogue, DialogueKeyParts, Protocol, Task, Templates, parties, transcript,
};
use crate::judge::rubrics;
use crate::prompt::render;
use crate::stage::{Input, Stage, StageError};
use crate::store::row_cache::RowKey;
use crate::table;

/// What an evaluation dialogue depends on.
#[derive(Serialize)]
struct NegotiationKey<'a> {
    version: u32,
    model: &'a ModelIdentity,
    agreement: &'a AgreementKey<'a>,
    #[serde(flatten)]
    dialogue: DialogueKeyParts<'a>,
}

impl RowKey for NegotiationKey<'_> {
    const WHAT: &'static str = "evaluate dialogue";
}

impl Evaluation<'_, '_> {
    pub fn conflict_resolution(&self, pairs: &Input, rows: &mut Rows) -> Result<(), StageError> {
        let params = self.params;
        let suite = Suite::ConflictResolution;
        let cap = params.items.unwrap_or(usize::MAX);
        let pair_ids = table::string_column(pairs, "pair_id")?;
        let dilemmas = table::string_column(pairs, "dilemma")?;
        let all_parties = parties(pairs, 2)?;
        let held_out = pairs.batch.num_rows().min(cap);
        // dialogues[model][repeat][pair]
        let mut dialogues: BTreeMap<String, Vec<Vec<Dialogue>>> = BTreeMap::new();
        for model in params.evaluated() {
            let protocol = params.dialogue.protocol(
                vec![model.clone(), model.clone()],
                &params.baseline,
                Templates::builtin(),
            );
            let mut by_repeat = Vec::new();
            for repeat in 0..params.repeats {
                // The held-out pairs as tasks, seeded anew each repeat.
                let tasks: Vec<Task> = (0..held_out)
                    .map(|row| Task {
                        dilemma: dilemmas.value(row).to_string(),
                        parties: all_parties[row].clone(),
                        seed: self.seed(b"evaluate dialogue", pair_ids.value(row), repeat),
                    })
                    .collect();
                let held = self.negotiations(&model, &protocol, &tasks)?;
                for (row, dialogue) in held.iter().enumerate() {
                    let agreed = Some(f64::from(u8::from(dialogue.agreed)));
                    let rounds = dialogue.agreed.then_some(dialogue.turns.len() as f64);
                    let pair = pair_ids.value(row);
                    rows.push(&model, suite, "agreement_rate", pair, repeat, agreed);
                    rows.push(&model, suite, "rounds_to_agreement", pair, repeat, rounds);
                }
                by_repeat.push(held);
            }
            dialogues.insert(model, by_repeat);
        }
        let tasks: Vec<Task> = (0..held_out)
            .map(|row| Task {
                dilemma: dilemmas.value(row).to_string(),
                parties: all_parties[row].clone(),
                seed: 0,
            })
            .collect();
        let outcome = |task: &Task, d: &Dialogue| {
            minijinja::context! {
                transcript => transcript(task, &d.turns), summary => d.summary.text.clone(),
            }
        };
        let question = |task: &Task, first: &Dialogue, second: &Dialogue| {
            render(
                rubrics::PAIRWISE_RESOLUTION,
                minijinja::context! {
                    dilemma => task.dilemma.clone(),
                    first => outcome(task, first), second => outcome(task, second),
                },
            )
        };
        let baseline = &params.baseline;
        for model in params.models.iter().filter(|m| *m != baseline) {
            let pairs_of_repeats = dialogues[model].iter().zip(&dialogues[baseline]);
            for (repeat, (ours, theirs)) in pairs_of_repeats.enumerate() {
                let mut ours_first = Vec::new();
                let mut theirs_first = Vec::new();
                for ((task, a), b) in tasks.iter().zip(ours).zip(theirs) {
                    ours_first.push(question(task, a, b)?);
                    theirs_first.push(question(task, b, a)?);
                }
                let verdicts = self.pairwise(&ours_first, &theirs_first)?;
                for (row, (win, loss)) in verdicts.into_iter().enumerate() {
                    let pair = pair_ids.value(row);
                    rows.push(model, suite, "cr_win_rate", pair, repeat, win);
                    rows.push(model, suite, "cr_loss_rate", pair, repeat, loss);
                }
            }
        }
        Ok(())
    }

    /// `model`'s self-play dialogue on each task, cached per dialogue.
    fn negotiations(
        &self,
        model: &str,
        protocol: &Protocol,
        tasks: &[Task],
    ) -> Result<Vec<Dialogue>, StageError> {
        let identity = self.identity(model);
        let agreement = protocol
            .agreement
            .key(|m| serde_json::to_value(self.identity(m)).expect("identities serialise"));
        let keys: Vec<NegotiationKey> = tasks
            .iter()
            .map(|task| NegotiationKey {
                version: Evaluate::VERSION,
                model: &identity,
                agreement: &agreement,
                dialogue: protocol.key_parts(task),
            })
            .collect();
        self.ctx
            .get_or_compute(&keys, self.params.dialogue.batch_size, |positions| {
                let chunk: Vec<Task> = positions.iter().map(|&i| tasks[i].clone()).collect();
                protocol.hold_all(&chunk, |name| self.load(name), self.ctx)
            })
    }
}
