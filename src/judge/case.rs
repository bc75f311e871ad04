//! A judged dialogue as a rubric sees it: the dilemma, each party's name and profile, the
//! transcript, the summary and whether the parties agreed; read back from a `rollout`
//! table, or made from a dialogue just held (training rewards).

use std::collections::BTreeMap;

use arrow::array::{Array, BooleanArray, ListArray, StringArray, UInt32Array};
use serde::Serialize;

use super::rating::DIGITS;
use super::rubrics;
use crate::dialogue::{Dialogue, Task, transcript};
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
                dialogue.turns[0].text.clone()
            } else {
                transcript(task, &dialogue.turns)
            },
            summary: dialogue.summary.text.clone(),
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
            if kinds.value(row) == "summary" {
                case.summary = texts.value(row).to_string();
            } else {
                if !case.transcript.is_empty() {
                    case.transcript.push('\n');
                }
                case.transcript
                    .push_str(&format!("{}: {}", names.value(row), texts.value(row)));
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
