//! A judged dialogue as a rubric sees it: the dilemma, each party's name and profile, the
//! transcript, the summary and whether the parties agreed; read back from a `rollout`
//! table, or made from a dialogue just held (training rewards). Turns and summary are
//! rated as the other agents saw them: without `<think>…</think>` reasoning, which the
//! rollout's rows keep (see [`crate::dialogue::thinking`]).

use std::collections::BTreeMap;

use arrow::array::{Array, BooleanArray, ListArray, StringArray, UInt32Array};
use serde::Serialize;

use super::rating::DIGITS;
use super::rubrics;
use crate::dialogue::{Dialogue, Task, thinking, transcript};
use crate::llm::chat::Message;
use crate::prompt::render;
use crate::stage::{Input, StageError};
use crate::table;

/// One party as the rubric sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Party {
    pub name: String,
    pub profile: String,
}

/// One dialogue, read back from the rollout table.
pub struct Case {
    pub dialogue_id: String,
    pub group_id: String,
    pub sample: u32,
    pub dilemma: String,
    pub parties: Vec<Party>,
    pub transcript: String,
    pub summary: String,
    pub agreed: bool,
}

impl Case {
    /// The rubric filled in for this dialogue.
    pub fn rubric_question(&self, rubric: &str) -> Result<String, StageError> {
        render(
            rubric,
            minijinja::context! {
                dilemma => self.dilemma.clone(),
                parties => minijinja::value::Serde(self.parties.clone()),
                transcript => self.transcript.clone(),
                summary => self.summary.clone(),
                agreed => self.agreed,
            },
        )
    }

    /// The satisfaction question for each party, in speaker order.
    pub fn satisfaction_questions(&self, template: &str) -> Result<Vec<String>, StageError> {
        self.parties
            .iter()
            .map(|party| {
                render(
                    template,
                    minijinja::context! {
                        dilemma => self.dilemma.clone(),
                        party => minijinja::value::Serde(party.clone()),
                        transcript => self.transcript.clone(),
                        summary => self.summary.clone(),
                    },
                )
            })
            .collect()
    }

    /// A dialogue just held on `task`; `single_agent` when its one turn is an answer given
    /// alone (the transcript is then that answer).
    pub fn from_dialogue(task: &Task, dialogue: &Dialogue, single_agent: bool) -> Self {
        Case {
            dialogue_id: String::new(),
            group_id: String::new(),
            sample: 0,
            dilemma: task.dilemma.clone(),
            parties: task
                .parties
                .iter()
                .map(|p| Party {
                    name: p.name.clone(),
                    profile: format!("{} ({})", p.name, p.persona),
                })
                .collect(),
            transcript: if single_agent {
                dialogue.turns[0].visible_text().into_owned()
            } else {
                transcript(task, &dialogue.turns)
            },
            summary: dialogue.summary.visible_text().into_owned(),
            agreed: dialogue.agreed,
        }
    }
}

impl Case {
    /// The dialogues of a rollout table, in order of first appearance.
    pub fn read_all(input: &Input) -> Result<Vec<Case>, StageError> {
        let ids = table::string_column(input, "dialogue_id")?;
        let groups = table::string_column(input, "group_id")?;
        let kinds = table::string_column(input, "kind")?;
        let names = table::string_column(input, "name")?;
        let personas = table::string_column(input, "persona")?;
        let texts = table::string_column(input, "text")?;
        let dilemmas = table::string_column(input, "dilemma")?;
        let speakers: &UInt32Array = table::typed_column(input, "speaker", "UInt32")?;
        let samples: &UInt32Array = table::typed_column(input, "sample", "UInt32")?;
        let agreed: &BooleanArray = table::typed_column(input, "agreed", "Boolean")?;
        let all_parties = input
            .batch
            .column_by_name("parties")
            .and_then(|c| c.as_any().downcast_ref::<ListArray>());
        let mut order: Vec<String> = Vec::new();
        let mut by_id: BTreeMap<String, Case> = BTreeMap::new();
        for row in 0..input.batch.num_rows() {
            let id = ids.value(row).to_string();
            let case = by_id.entry(id.clone()).or_insert_with(|| {
                order.push(id.clone());
                Case {
                    dialogue_id: id.clone(),
                    group_id: groups.value(row).to_string(),
                    sample: samples.value(row),
                    dilemma: dilemmas.value(row).to_string(),
                    parties: Vec::new(),
                    transcript: String::new(),
                    summary: String::new(),
                    agreed: agreed.value(row),
                }
            });
            // All parties, those who never spoke included (older tables lack the column).
            if case.parties.is_empty()
                && let Some(all) = all_parties
            {
                let list = all.value(row);
                if let Some(party_names) = list.as_any().downcast_ref::<StringArray>() {
                    case.parties = party_names
                        .iter()
                        .map(|name| Party {
                            name: name.unwrap_or_default().to_string(),
                            profile: name.unwrap_or_default().to_string(),
                        })
                        .collect();
                }
            }
            let speaker = speakers.value(row) as usize;
            if case.parties.len() <= speaker {
                case.parties.resize(
                    speaker + 1,
                    Party {
                        name: String::new(),
                        profile: String::new(),
                    },
                );
            }
            case.parties[speaker] = Party {
                name: names.value(row).to_string(),
                profile: format!("{} ({})", names.value(row), personas.value(row)),
            };
            let text = thinking::visible(texts.value(row));
            if kinds.value(row) == "summary" {
                case.summary = text.into_owned();
            } else {
                if !case.transcript.is_empty() {
                    case.transcript.push('\n');
                }
                case.transcript
                    .push_str(&format!("{}: {text}", names.value(row)));
            }
        }
        Ok(order
            .into_iter()
            .map(|id| by_id.remove(&id).expect("recorded"))
            .collect())
    }
}

/// The conversation that asks for a rationale after the rating `rating` of `question`.
pub fn rationale_messages(question: &str, rating: f64) -> Result<Vec<Message>, StageError> {
    let ask = render(
        rubrics::RATIONALE,
        minijinja::context! { rating => format!("{rating:.1}") },
    )?;
    let best = (rating.round() as usize).min(5);
    Ok(vec![
        Message::new("user", question),
        Message::new("assistant", DIGITS[best]),
        Message::new("user", &ask),
    ])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, StringArray, UInt32Array};
    use arrow::record_batch::RecordBatch;

    use super::*;
    use crate::dialogue::{Party as Speaker, Utterance};

    fn utterance(speaker: usize, text: &str) -> Utterance {
        Utterance::said(speaker, text)
    }

    const TURNS: [(u32, &str, &str); 3] = [
        (
            0,
            "turn",
            "<think>\nBen is weak on cost.\n</think>\n\nI propose 60/40.",
        ),
        (1, "turn", "<think>Ada bluffs.</think>50/50, roof first."),
        (
            0,
            "summary",
            "<think>keep it short</think>\nWe split 50/50.",
        ),
    ];
    const TRANSCRIPT: &str = "Ada: I propose 60/40.\nBen: 50/50, roof first.";

    /// A dialogue just held (training rewards) is judged without its reasoning.
    #[test]
    fn a_held_dialogue_is_judged_without_reasoning() {
        let party = |name: &str| Speaker {
            persona: name.to_lowercase(),
            name: name.into(),
            profile: format!("{name}. Cares."),
        };
        let task = Task {
            dilemma: "Split a budget.".into(),
            parties: vec![party("Ada"), party("Ben")],
            seed: 1,
        };
        let dialogue = Dialogue {
            turns: vec![utterance(0, TURNS[0].2), utterance(1, TURNS[1].2)],
            agreed: true,
            summary: utterance(0, TURNS[2].2),
        };
        let case = Case::from_dialogue(&task, &dialogue, false);
        assert_eq!(case.transcript, TRANSCRIPT);
        assert_eq!(case.summary, "We split 50/50.");
        let alone = Case::from_dialogue(
            &task,
            &Dialogue::single_answer(utterance(0, TURNS[0].2)),
            true,
        );
        assert_eq!(alone.transcript, "I propose 60/40.");
        assert_eq!(alone.summary, "I propose 60/40.");
    }

    /// A rollout table keeps the reasoning in its `text`; the judge reads past it.
    #[test]
    fn a_rollout_table_is_judged_without_reasoning() {
        let strings = |values: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let n = TURNS.len();
        let batch = RecordBatch::try_from_iter([
            ("dialogue_id", strings(vec!["d"; n])),
            ("group_id", strings(vec!["g"; n])),
            ("kind", strings(TURNS.iter().map(|t| t.1).collect())),
            (
                "name",
                strings(TURNS.iter().map(|t| ["Ada", "Ben"][t.0 as usize]).collect()),
            ),
            (
                "persona",
                strings(TURNS.iter().map(|t| ["ada", "ben"][t.0 as usize]).collect()),
            ),
            ("text", strings(TURNS.iter().map(|t| t.2).collect())),
            ("dilemma", strings(vec!["Split a budget."; n])),
            (
                "speaker",
                Arc::new(UInt32Array::from(
                    TURNS.iter().map(|t| t.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "sample",
                Arc::new(UInt32Array::from(vec![0; n])) as ArrayRef,
            ),
            (
                "agreed",
                Arc::new(BooleanArray::from(vec![true; n])) as ArrayRef,
            ),
        ])
        .unwrap();
        let input = Input {
            name: "dialogues".into(),
            kind: "rollout".into(),
            batch,
        };
        let cases = Case::read_all(&input).unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].transcript, TRANSCRIPT);
        assert_eq!(cases[0].summary, "We split 50/50.");
    }
}
