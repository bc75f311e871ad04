//! The `general` suite: perplexity on held-out text and accuracy on a multiple-choice
//! set, both shipped with accord (written for it), to show that capabilities are not
//! lost. Both are deterministic, so they run once whatever `repeats` says.

use serde::{Deserialize, Serialize};

use super::evaluation::{Evaluation, ModelIdentity};
use super::rows::Rows;
use super::{HELDOUT_TEXT, MULTIPLE_CHOICE, Suite};
use crate::llm::LlmError;
use crate::stage::StageError;
use crate::store::row_cache::RowKey;

const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

/// What a paragraph's perplexity depends on.
#[derive(Serialize)]
struct PerplexityKey<'a> {
    model: &'a ModelIdentity,
    text: &'a str,
}

impl RowKey for PerplexityKey<'_> {
    const WHAT: &'static str = "evaluate perplexity";
}

/// What a multiple-choice pick depends on.
#[derive(Serialize)]
struct ChoiceKey<'a> {
    model: &'a ModelIdentity,
    item: &'a str,
}

impl RowKey for ChoiceKey<'_> {
    const WHAT: &'static str = "evaluate multiple choice";
}

impl Evaluation<'_, '_> {
    pub fn general(&self, rows: &mut Rows) -> Result<(), StageError> {
        let suite = Suite::General;
        let read = |file, builtin| super::super::read_template(self.ctx, file, builtin);
        let paragraphs = paragraphs(&read(&self.params.text_file, HELDOUT_TEXT)?);
        let choices = read(&self.params.choices_file, MULTIPLE_CHOICE)?;
        let path = self
            .params
            .choices_file
            .clone()
            .unwrap_or_else(|| "data/eval/multiple_choice.jsonl".into());
        let questions =
            multiple_choice(&choices).map_err(|message| StageError::BadFile { path, message })?;
        for model in self.params.evaluated() {
            for (n, ppl) in self
                .perplexities(&model, &paragraphs)?
                .into_iter()
                .enumerate()
            {
                let item = format!("text{}", n + 1);
                rows.push(&model, suite, "perplexity", &item, 0, Some(ppl));
            }
            let picks = self.picks(&model, &questions)?;
            for (n, (question, pick)) in questions.iter().zip(picks).enumerate() {
                let right = f64::from(u8::from(pick == question.answer));
                let item = format!("mc{}", n + 1);
                rows.push(&model, suite, "mc_accuracy", &item, 0, Some(right));
            }
        }
        Ok(())
    }

    /// `model`'s perplexity on each paragraph, cached per paragraph.
    fn perplexities(&self, model: &str, paragraphs: &[String]) -> Result<Vec<f64>, StageError> {
        let identity = self.identity(model);
        let keys: Vec<PerplexityKey> = paragraphs
            .iter()
            .map(|text| PerplexityKey {
                model: &identity,
                text,
            })
            .collect();
        self.ctx
            .get_or_compute(&keys, self.params.dialogue.batch_size, |positions| {
                let loaded = self.load(model)?;
                let mut out = Vec::with_capacity(positions.len());
                for &i in positions {
                    let mut ids = loaded
                        .tokenizer
                        .encode(&paragraphs[i])
                        .map_err(|e| StageError::Failed(format!("model `{model}`: {e}")))?;
                    ids.truncate(loaded.model.config.max_positions);
                    let logprobs = loaded.model.score(&[ids], &[1]).remove(0);
                    let nll = -logprobs.iter().map(|&l| f64::from(l)).sum::<f64>()
                        / logprobs.len().max(1) as f64;
                    if !nll.is_finite() {
                        let error = LlmError::NonFinite {
                            what: "log-probability",
                            value: -nll,
                        };
                        return Err(StageError::Failed(format!("model `{model}`: {error}")));
                    }
                    out.push(nll.exp());
                }
                Ok(out)
            })
    }

    /// The choice `model` finds likeliest for each item, cached per item.
    fn picks(&self, model: &str, questions: &[Choice]) -> Result<Vec<usize>, StageError> {
        let identity = self.identity(model);
        let keys: Vec<ChoiceKey> = questions
            .iter()
            .map(|q| ChoiceKey {
                model: &identity,
                item: &q.prompt,
            })
            .collect();
        self.ctx
            .get_or_compute(&keys, self.params.dialogue.batch_size, |positions| {
                let loaded = self.load(model)?;
                let asked: Vec<String> = positions
                    .iter()
                    .map(|&i| questions[i].prompt.clone())
                    .collect();
                let distributions = loaded
                    .answer_distributions(&asked, &LETTERS)
                    .map_err(|e| StageError::Failed(format!("model `{model}`: {e}")))?;
                Ok(distributions
                    .iter()
                    .map(|p| {
                        (0..p.len())
                            .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
                            .unwrap_or(0)
                    })
                    .collect())
            })
    }
}

/// The paragraphs of `text` (blank-line separated), comment lines dropped.
pub fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        if line.is_empty() {
            if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

/// A multiple-choice item as the model sees it, and the index of the right choice.
pub struct Choice {
    prompt: String,
    answer: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChoiceLine {
    question: String,
    choices: Vec<String>,
    answer: usize,
}

/// Parses JSON-lines multiple-choice items; errors name the line.
pub fn multiple_choice(text: &str) -> Result<Vec<Choice>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let item: ChoiceLine =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            if item.choices.len() != LETTERS.len() || item.answer >= LETTERS.len() {
                return Err(format!(
                    "line {}: expected 4 `choices` and an `answer` from 0 to 3",
                    n + 1
                ));
            }
            let mut prompt = format!("{}\n", item.question);
            for (letter, choice) in LETTERS.iter().zip(&item.choices) {
                prompt.push_str(&format!("{letter}. {choice}\n"));
            }
            prompt.push_str("Answer with the letter of the right choice only.");
            Ok(Choice {
                prompt,
                answer: item.answer,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_data_parses() {
        assert_eq!(paragraphs(HELDOUT_TEXT).len(), 8);
        let items = multiple_choice(MULTIPLE_CHOICE).unwrap();
        assert_eq!(items.len(), 30);
        assert!(items[0].prompt.contains("B. Dolphin"));
        assert_eq!(items[0].answer, 1);
        let bad = multiple_choice("{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 0}");
        assert_eq!(
            bad.err().unwrap(),
            "line 1: expected 4 `choices` and an `answer` from 0 to 3"
        );
    }
}
