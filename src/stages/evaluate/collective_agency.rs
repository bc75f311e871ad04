//! The `collective_agency` suite: every model answers each held-out dilemma (with its
//! parties' names) and each open-ended question alone; the judge rates each answer 0–5
//! and compares it with the baseline's answer to the same item and repeat in both orders.

use std::collections::{BTreeMap, HashSet};

use super::evaluation::Evaluation;
use super::rows::Rows;
use super::{QUESTION_PROMPT, QUESTIONS, Suite, lines};
use crate::dialogue::{parties, templates::SINGLE_AGENT};
use crate::judge::{DIGITS, expectation, rubrics};
use crate::prompt::render;
use crate::stage::{Input, StageError};
use crate::table;

/// A held-out dilemma answered alone, or an open-ended question.
struct Item {
    id: String,
    /// The request the evaluated model gets.
    prompt: String,
    /// What the judge sees as the question, and the parties' names (none for a question).
    question: String,
    parties: Vec<String>,
}

impl Evaluation<'_, '_> {
    pub fn collective_agency(&self, pairs: &Input, rows: &mut Rows) -> Result<(), StageError> {
        let params = self.params;
        let items = self.answer_items(pairs)?;
        let suite = Suite::CollectiveAgency;
        let baseline = &params.baseline;
        // answers[model][repeat][item]
        let mut answers: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        let prompts: Vec<String> = items.iter().map(|i| i.prompt.clone()).collect();
        for model in params.evaluated() {
            let mut by_repeat = Vec::new();
            for repeat in 0..params.repeats {
                let seeds: Vec<u64> = items
                    .iter()
                    .map(|i| self.seed(b"evaluate answer", &i.id, repeat))
                    .collect();
                by_repeat.push(self.answers(&model, &prompts, &seeds)?);
            }
            answers.insert(model, by_repeat);
        }
        let rate = |item: &Item, answer: &str| {
            render(
                rubrics::ANSWER,
                minijinja::context! {
                    question => item.question.clone(), parties => item.parties.clone(),
                    answer => answer,
                },
            )
        };
        let compare = |item: &Item, first: &str, second: &str| {
            render(
                rubrics::PAIRWISE_ANSWER,
                minijinja::context! {
                    question => item.question.clone(), parties => item.parties.clone(),
                    first => first, second => second,
                },
            )
        };
        for model in params.evaluated() {
            for (repeat, ours) in answers[&model].iter().enumerate() {
                let questions = items
                    .iter()
                    .zip(ours)
                    .map(|(item, answer)| rate(item, answer))
                    .collect::<Result<Vec<_>, _>>()?;
                let ratings = self.ask_judge(&questions, &DIGITS)?;
                for (item, rating) in items.iter().zip(&ratings) {
                    let score = rating.as_deref().map(expectation);
                    rows.push(&model, suite, "ca_score", &item.id, repeat, score);
                }
                if &model == baseline {
                    continue;
                }
                let theirs = &answers[baseline][repeat];
                let mut ours_first = Vec::new();
                let mut theirs_first = Vec::new();
                for ((item, a), b) in items.iter().zip(ours).zip(theirs) {
                    ours_first.push(compare(item, a, b)?);
                    theirs_first.push(compare(item, b, a)?);
                }
                for (item, (win, loss)) in
                    items.iter().zip(self.pairwise(&ours_first, &theirs_first)?)
                {
                    rows.push(&model, suite, "ca_win_rate", &item.id, repeat, win);
                    rows.push(&model, suite, "ca_loss_rate", &item.id, repeat, loss);
                }
            }
        }
        Ok(())
    }

    /// The held-out dilemmas (the first pair of each, with its parties' names), then the
    /// open-ended questions; each list capped at `items`.
    fn answer_items(&self, pairs: &Input) -> Result<Vec<Item>, StageError> {
        let cap = self.params.items.unwrap_or(usize::MAX);
        let dilemma_ids = table::string_column(pairs, "dilemma_id")?;
        let dilemmas = table::string_column(pairs, "dilemma")?;
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for (row, parties) in parties(pairs, 2)?.iter().enumerate() {
            if items.len() == cap {
                break;
            }
            if !seen.insert(dilemma_ids.value(row)) {
                continue;
            }
            let names: Vec<String> = parties.iter().map(|p| p.name.clone()).collect();
            items.push(Item {
                id: dilemma_ids.value(row).to_string(),
                prompt: render(
                    SINGLE_AGENT,
                    minijinja::context! { dilemma => dilemmas.value(row), personas => names.clone() },
                )?,
                question: dilemmas.value(row).to_string(),
                parties: names,
            });
        }
        let questions =
            super::super::read_template(self.ctx, &self.params.questions_file, QUESTIONS)?;
        for (n, question) in lines(&questions).into_iter().take(cap).enumerate() {
            items.push(Item {
                id: format!("q{}", n + 1),
                prompt: render(
                    QUESTION_PROMPT,
                    minijinja::context! { question => question },
                )?,
                question: question.to_string(),
                parties: Vec::new(),
            });
        }
        Ok(items)
    }
}
