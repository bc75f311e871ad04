//! Negotiations as a person reads them: each dialogue of a `rollout` artifact as a
//! transcript — the dilemma, the parties, every turn with its speaker, the agreement
//! verdict and the closing summary — with the verdicts of the `judge` artifacts that
//! scored it. `accord show SPEC STAGE --transcript` prints them ([`render_text`]);
//! `accord report` shows the best- and worst-scored ([`best_and_worst`]).
//!
//! Both artifacts are read by column name (their columns are documented in
//! `schemas/artifacts.md`), never through the stage code that writes them: this module
//! depends on the artifact's shape only. Which judge artifacts belong to which rollout
//! is the caller's knowledge of the spec, not this module's; the HTML form lives with the
//! rest of the report in [`super::html`].

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use super::columns::{bools, floats, strings, u32s};

use super::terminal_text::wrap;
use crate::output::{BOLD, DIM, paint};

/// A party of a dialogue: an agent with its persona.
#[derive(Debug, Clone, PartialEq)]
pub struct Party {
    /// The persona's display name.
    pub name: String,
    /// The persona's id (empty when the party never spoke).
    pub persona: String,
    /// The spec model the agent runs (empty when the party never spoke).
    pub model: String,
}

/// One message: a negotiation turn or the closing summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// The agent speaking, an index into [`Transcript::parties`].
    pub speaker: usize,
    pub text: String,
    /// After a turn, the agreement check's P(yes) (1/0 for the marker protocol).
    pub p_agree: Option<f64>,
}

/// What a judge made of a dialogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The `judge` stage that scored it.
    pub stage: String,
    /// Collective Agency, 0–5; `None` when the judge's reply held no rating.
    pub ca_score: Option<f64>,
    /// Each party's expected satisfaction, in speaker order (empty when not asked).
    pub satisfaction: Vec<Option<f64>>,
    /// Whether the judge was asked (false: scored as a dialogue without agreement).
    pub judged: bool,
    pub rationale: String,
}

/// One dialogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub dialogue_id: String,
    /// The persona pair the dialogue's group shares.
    pub group_id: String,
    /// The dialogue's index within its group.
    pub sample: u32,
    pub dilemma: String,
    pub parties: Vec<Party>,
    pub turns: Vec<Utterance>,
    pub agreed: bool,
    /// The first agent's closing summary.
    pub summary: Option<Utterance>,
    /// The verdicts of the judges that scored it, in the order they were added.
    pub verdicts: Vec<Verdict>,
}

impl Transcript {
    /// The party who spoke `utterance`, by name.
    fn speaker(&self, utterance: &Utterance) -> &str {
        self.parties
            .get(utterance.speaker)
            .map_or("?", |p| p.name.as_str())
    }

    /// The first verdict's score, the one [`best_and_worst`] ranks by.
    pub fn score(&self) -> Option<f64> {
        self.verdicts.first().and_then(|v| v.ca_score)
    }
}

/// The columns `names` of the Parquet file at `path`.
fn read_columns(path: &Path, names: &[&str]) -> PolarsResult<DataFrame> {
    ParquetReader::new(std::fs::File::open(path)?)
        .with_columns(Some(names.iter().map(|n| n.to_string()).collect()))
        .finish()
}

/// Every dialogue of the `rollout` artifact at `path`, in artifact order, without
/// verdicts.
pub fn read_transcripts(path: &Path) -> PolarsResult<Vec<Transcript>> {
    let df = read_columns(
        path,
        &[
            "dialogue_id",
            "group_id",
            "sample",
            "kind",
            "speaker",
            "model",
            "persona",
            "name",
            "text",
            "p_agree",
            "agreed",
            "dilemma",
            "parties",
        ],
    )?;
    let (ids, groups, samples) = (
        strings(&df, "dialogue_id")?,
        strings(&df, "group_id")?,
        u32s(&df, "sample")?,
    );
    let (kinds, speakers) = (strings(&df, "kind")?, u32s(&df, "speaker")?);
    let (models, personas, names) = (
        strings(&df, "model")?,
        strings(&df, "persona")?,
        strings(&df, "name")?,
    );
    let (texts, p_agree, agreed) = (
        strings(&df, "text")?,
        floats(&df, "p_agree")?,
        bools(&df, "agreed")?,
    );
    let dilemmas = strings(&df, "dilemma")?;
    let parties = df
        .column("parties")?
        .as_materialized_series()
        .list()?
        .clone();
    let mut transcripts: Vec<Transcript> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in 0..df.height() {
        let at = *index.entry(ids[row].clone()).or_insert_with(|| {
            let names: Vec<String> = parties
                .get_as_series(row)
                .and_then(|s| {
                    s.str().ok().map(|s| {
                        s.iter()
                            .map(|n| n.unwrap_or_default().to_string())
                            .collect()
                    })
                })
                .unwrap_or_default();
            transcripts.push(Transcript {
                dialogue_id: ids[row].clone(),
                group_id: groups[row].clone(),
                sample: samples[row],
                dilemma: dilemmas[row].clone(),
                parties: names
                    .into_iter()
                    .map(|name| Party {
                        name,
                        persona: String::new(),
                        model: String::new(),
                    })
                    .collect(),
                turns: Vec::new(),
                agreed: agreed[row],
                summary: None,
                verdicts: Vec::new(),
            });
            transcripts.len() - 1
        });
        let transcript = &mut transcripts[at];
        let speaker = speakers[row] as usize;
        if transcript.parties.len() <= speaker {
            transcript.parties.resize(
                speaker + 1,
                Party {
                    name: String::new(),
                    persona: String::new(),
                    model: String::new(),
                },
            );
        }
        let party = &mut transcript.parties[speaker];
        if party.name.is_empty() {
            party.name = names[row].clone();
        }
        party.persona = personas[row].clone();
        party.model = models[row].clone();
        let utterance = Utterance {
            speaker,
            text: texts[row].clone(),
            p_agree: p_agree[row],
        };
        if kinds[row] == "summary" {
            transcript.summary = Some(utterance);
        } else {
            transcript.turns.push(utterance);
        }
    }
    Ok(transcripts)
}

/// The verdicts of the `judge` artifact at `path` (written by stage `stage`), by
/// dialogue id.
pub fn read_verdicts(path: &Path, stage: &str) -> PolarsResult<HashMap<String, Verdict>> {
    let df = read_columns(
        path,
        &[
            "dialogue_id",
            "ca_score",
            "satisfaction",
            "judged",
            "rationale",
        ],
    )?;
    let (ids, scores) = (strings(&df, "dialogue_id")?, floats(&df, "ca_score")?);
    let (judged, rationales) = (bools(&df, "judged")?, strings(&df, "rationale")?);
    let satisfaction = df
        .column("satisfaction")?
        .as_materialized_series()
        .list()?
        .clone();
    let mut verdicts = HashMap::new();
    for row in 0..df.height() {
        let satisfaction = satisfaction
            .get_as_series(row)
            .and_then(|s| s.f64().ok().map(|s| s.iter().collect()))
            .unwrap_or_default();
        verdicts.insert(
            ids[row].clone(),
            Verdict {
                stage: stage.to_string(),
                ca_score: scores[row],
                satisfaction,
                judged: judged[row],
                rationale: rationales[row].clone(),
            },
        );
    }
    Ok(verdicts)
}

/// Adds each dialogue's verdict from `verdicts` (one judge's) to `transcripts`.
pub fn add_verdicts(transcripts: &mut [Transcript], verdicts: &HashMap<String, Verdict>) {
    for transcript in transcripts {
        if let Some(verdict) = verdicts.get(&transcript.dialogue_id) {
            transcript.verdicts.push(verdict.clone());
        }
    }
}

/// The indices of the best- and the worst-scored dialogue (by their first verdict's
/// score), or `None` when no dialogue has a score. The earliest of the best and the last
/// of the worst are taken, so two dialogues are shown whenever two have a score, even
/// when every score ties.
pub fn best_and_worst(transcripts: &[Transcript]) -> Option<(usize, usize)> {
    let scored: Vec<(usize, f64)> = transcripts
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.score().map(|s| (i, s)))
        .collect();
    let mut best = *scored.first()?;
    let mut worst = best;
    for &(i, score) in &scored[1..] {
        if score > best.1 {
            best = (i, score);
        }
        if score <= worst.1 {
            worst = (i, score);
        }
    }
    Some((best.0, worst.0))
}

/// A score out of five, `3.42 of 5`, or why there is none.
pub fn score_text(verdict: &Verdict) -> String {
    let score = match verdict.ca_score {
        Some(s) => format!("{s:.2} of 5"),
        None => "no rating (the judge's reply held none)".into(),
    };
    if verdict.judged {
        score
    } else {
        format!("{score}, not asked: the dialogue reached no agreement")
    }
}

/// Each party's satisfaction, `Autonomy Advocate 3.10, Liberty Champion 2.90`.
pub fn satisfaction_text(transcript: &Transcript, verdict: &Verdict) -> Option<String> {
    if verdict.satisfaction.is_empty() {
        return None;
    }
    Some(
        verdict
            .satisfaction
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let name = transcript.parties.get(i).map_or("?", |p| p.name.as_str());
                match s {
                    Some(s) => format!("{name} {s:.2}"),
                    None => format!("{name} -"),
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// A party as `Autonomy Advocate (persona autonomy, model policy)`.
pub fn party_text(party: &Party) -> String {
    let mut about = Vec::new();
    if !party.persona.is_empty() {
        about.push(format!("persona {}", party.persona));
    }
    if !party.model.is_empty() {
        about.push(format!("model {}", party.model));
    }
    if about.is_empty() {
        party.name.clone()
    } else {
        format!("{} ({})", party.name, about.join(", "))
    }
}

/// The agreement verdict, `reached after 3 turns` or `not reached in 7 turns`.
pub fn agreement_text(transcript: &Transcript) -> String {
    let turns = transcript.turns.len();
    let plural = if turns == 1 { "" } else { "s" };
    if transcript.agreed {
        format!("reached after {turns} turn{plural}")
    } else {
        format!("not reached in {turns} turn{plural}")
    }
}

/// `text` wrapped to `width` and indented by two spaces.
fn indented(text: &str, width: usize) -> String {
    let text = if text.trim().is_empty() {
        "(nothing)"
    } else {
        text.trim()
    };
    wrap(text, width.saturating_sub(2))
        .iter()
        .map(|line| {
            if line.is_empty() {
                "\n".to_string()
            } else {
                format!("  {line}\n")
            }
        })
        .collect()
}

/// `text` wrapped to `width`, its continuation lines indented by two spaces.
fn hanging(text: &str, width: usize) -> String {
    wrap(text, width.saturating_sub(2))
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                format!("{line}\n")
            } else {
                format!("  {line}\n")
            }
        })
        .collect()
}

/// `transcript` as text for a terminal `width` columns wide: every word of every turn,
/// wrapped, nothing cut.
pub fn render_text(transcript: &Transcript, width: usize) -> String {
    let mut out = paint(
        BOLD,
        &format!(
            "dialogue {} (pair {}, sample {})",
            transcript.dialogue_id, transcript.group_id, transcript.sample
        ),
    );
    out.push('\n');
    out.push_str("dilemma:\n");
    out.push_str(&indented(&transcript.dilemma, width));
    out.push_str("parties:\n");
    for party in &transcript.parties {
        out.push_str(&indented(&party_text(party), width));
    }
    for (i, turn) in transcript.turns.iter().enumerate() {
        let check = turn
            .p_agree
            .map(|p| paint(DIM, &format!(" (P(agree) {p:.2})")))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n{}, turn {}{check}:\n",
            paint(BOLD, transcript.speaker(turn)),
            i + 1
        ));
        out.push_str(&indented(&turn.text, width));
    }
    out.push('\n');
    out.push_str(&hanging(
        &format!("agreement: {}", agreement_text(transcript)),
        width,
    ));
    if let Some(summary) = &transcript.summary {
        out.push_str(&hanging(
            &format!("summary by {}:", transcript.speaker(summary)),
            width,
        ));
        out.push_str(&indented(&summary.text, width));
    }
    for verdict in &transcript.verdicts {
        out.push_str(&hanging(
            &format!(
                "judge `{}`: Collective Agency {}",
                verdict.stage,
                score_text(verdict)
            ),
            width,
        ));
        if let Some(satisfaction) = satisfaction_text(transcript, verdict) {
            out.push_str(&indented(&format!("satisfaction: {satisfaction}"), width));
        }
        if !verdict.rationale.trim().is_empty() {
            out.push_str(&indented(
                &format!("rationale: {}", verdict.rationale.trim()),
                width,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(name: &str, persona: &str) -> Party {
        Party {
            name: name.into(),
            persona: persona.into(),
            model: "policy".into(),
        }
    }

    fn said(speaker: usize, text: &str, p_agree: Option<f64>) -> Utterance {
        Utterance {
            speaker,
            text: text.into(),
            p_agree,
        }
    }

    fn transcript(id: &str, score: Option<f64>) -> Transcript {
        Transcript {
            dialogue_id: id.into(),
            group_id: "9a8b7c6d5e4f".into(),
            sample: 1,
            dilemma: "A clinic has one donated scanner and two departments that need it. \
                      Who should get it first?"
                .into(),
            parties: vec![
                party("Autonomy Advocate", "autonomy"),
                party("Care Guardian", "care"),
            ],
            turns: vec![
                said(
                    0,
                    "Each department should book the scanner for itself.",
                    None,
                ),
                said(
                    1,
                    "Patients in pain come first; the booking can follow urgency.",
                    Some(0.31),
                ),
                said(
                    0,
                    "Urgent cases first, the rest by booking. Agreed.",
                    Some(0.92),
                ),
            ],
            agreed: true,
            summary: Some(said(
                0,
                "Urgent scans go first; other slots are booked by each department.",
                None,
            )),
            verdicts: score
                .map(|s| Verdict {
                    stage: "scores".into(),
                    ca_score: Some(s),
                    satisfaction: vec![Some(3.1), Some(3.9)],
                    judged: true,
                    rationale: "Both concerns shaped the outcome.".into(),
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_transcript_shows_every_turn_the_verdict_the_summary_and_the_judge() {
        let text = render_text(&transcript("3f2a9c1b0d4e", Some(3.42)), 60);
        let plain = anstream::adapter::strip_str(&text).to_string();
        assert!(plain.lines().all(|l| l.chars().count() <= 60), "{plain}");
        insta::assert_snapshot!(plain);
    }

    #[test]
    fn best_and_worst_rank_by_score_and_skip_unscored_dialogues() {
        let all = [
            transcript("a", Some(2.0)),
            transcript("b", None),
            transcript("c", Some(4.5)),
            transcript("d", Some(1.0)),
            transcript("e", Some(4.5)),
        ];
        assert_eq!(best_and_worst(&all), Some((2, 3)));
        assert_eq!(best_and_worst(&all[1..2]), None);
        assert_eq!(best_and_worst(&all[..1]), Some((0, 0)));
        // Every score tying: the first and the last.
        let tied = [
            transcript("a", Some(0.0)),
            transcript("b", Some(0.0)),
            transcript("c", Some(0.0)),
        ];
        assert_eq!(best_and_worst(&tied), Some((0, 2)));
    }

    #[test]
    fn a_dialogue_without_agreement_says_so() {
        let mut t = transcript("x", None);
        t.agreed = false;
        t.turns.truncate(1);
        assert_eq!(agreement_text(&t), "not reached in 1 turn");
        let verdict = Verdict {
            stage: "scores".into(),
            ca_score: Some(0.0),
            satisfaction: Vec::new(),
            judged: false,
            rationale: String::new(),
        };
        assert_eq!(
            score_text(&verdict),
            "0.00 of 5, not asked: the dialogue reached no agreement"
        );
    }
}
