//! Which dialogues `accord show --transcript` and `accord report` read: a `rollout`
//! stage's artifact, with the verdicts of the `judge` stages of the same plan that need
//! it and are fresh in the store; and which of them `--transcript [DIALOGUE_ID]` prints.
//!
//! This is where the spec's graph meets the artifacts; reading and rendering a transcript
//! is [`crate::report::transcript`]'s. A judge that is stale or missing adds nothing (its
//! scores would be of other dialogues, or none); it is not an error.

use std::path::{Path, PathBuf};

use polars::prelude::PolarsError;

use crate::plan::Plan;
use crate::report::html::Extremes;
use crate::report::transcript::{
    Transcript, add_verdicts, best_and_worst, read_transcripts, read_verdicts, render_text,
};
use crate::status::{StageStatus, State, status};
use crate::store::Store;

/// Why transcripts could not be read or chosen.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    #[error("cannot read `{path}`: {source}")]
    Unreadable { path: PathBuf, source: PolarsError },
    #[error(
        "`--transcript` shows the dialogues of a `rollout` stage; `{stage}` is a `{kind}` stage\n  = hint: {}",
        match rollouts.as_slice() {
            [] => "this spec has no `rollout` stage".to_string(),
            names => format!("`rollout` stages in this spec: {}", names.join(", ")),
        }
    )]
    NotARollout {
        stage: String,
        kind: String,
        rollouts: Vec<String>,
    },
    #[error(
        "stage `{stage}` has no dialogue `{prefix}`\n  = hint: its dialogues: {}{}; `--transcript` without an id prints them",
        some.join(", "),
        if *count > some.len() { ", …" } else { "" }
    )]
    NoSuchDialogue {
        stage: String,
        prefix: String,
        /// The first few dialogue ids.
        some: Vec<String>,
        count: usize,
    },
    #[error("`{prefix}` starts {count} dialogue ids of stage `{stage}`; give more of it")]
    AmbiguousDialogue {
        stage: String,
        prefix: String,
        count: usize,
    },
}

/// Which dialogues `--transcript` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// The first N, in artifact order.
    First(usize),
    /// The one whose id starts with this.
    Dialogue(String),
}

/// A judge's view of one rollout: its dialogues, each with that judge's verdict.
pub struct JudgedRollout {
    pub judge: String,
    pub rollout: String,
    pub transcripts: Vec<Transcript>,
}

/// The error for a file that did not read as the artifact it should be.
fn unreadable(path: &Path) -> impl FnOnce(PolarsError) -> TranscriptError {
    let path = path.to_path_buf();
    move |source| TranscriptError::Unreadable { path, source }
}

/// The store path of stage `index`'s artifact, when the stage is fresh.
fn fresh_data(states: &[StageStatus], store: &Store, index: usize) -> Option<PathBuf> {
    match (&states[index].state, &states[index].key) {
        (State::Fresh, Some(key)) => Some(store.data_path(key)),
        _ => None,
    }
}

/// The fresh `judge` stages of `plan` that need stage `rollout`, with their artifacts.
fn judges_of(
    plan: &Plan,
    states: &[StageStatus],
    store: &Store,
    rollout: usize,
) -> Vec<(String, PathBuf)> {
    plan.stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind.kind() == "judge" && s.needs.contains(&rollout))
        .filter_map(|(i, s)| Some((s.name.clone(), fresh_data(states, store, i)?)))
        .collect()
}

/// The dialogues of rollout stage `rollout` (fresh, per `states`), each with the verdict
/// of every fresh judge that scored it, in plan order.
pub fn transcripts(
    plan: &Plan,
    states: &[StageStatus],
    store: &Store,
    rollout: usize,
) -> Result<Vec<Transcript>, TranscriptError> {
    let Some(path) = fresh_data(states, store, rollout) else {
        return Ok(Vec::new());
    };
    let mut transcripts = read_transcripts(&path).map_err(unreadable(&path))?;
    for (judge, path) in judges_of(plan, states, store, rollout) {
        let verdicts = read_verdicts(&path, &judge).map_err(unreadable(&path))?;
        add_verdicts(&mut transcripts, &verdicts);
    }
    Ok(transcripts)
}

/// The transcripts of rollout stage `index` that `chosen` picks, as text `width` columns
/// wide: one dialogue, or the first N and `N of M dialogues`.
pub fn text(
    plan: &Plan,
    states: &[StageStatus],
    store: &Store,
    index: usize,
    chosen: &Chosen,
    width: usize,
) -> Result<String, TranscriptError> {
    let stage = &plan.stages[index];
    if stage.kind.kind() != "rollout" {
        return Err(TranscriptError::NotARollout {
            stage: stage.name.clone(),
            kind: stage.kind.kind().to_string(),
            rollouts: plan
                .stages
                .iter()
                .filter(|s| s.kind.kind() == "rollout")
                .map(|s| s.name.clone())
                .collect(),
        });
    }
    let all = transcripts(plan, states, store, index)?;
    let prefix = match chosen {
        Chosen::First(n) => {
            let shown: Vec<String> = all.iter().take(*n).map(|t| render_text(t, width)).collect();
            let mut text = shown.join("\n");
            text.push_str(&format!("\n{} of {} dialogues\n", shown.len(), all.len()));
            return Ok(text);
        }
        Chosen::Dialogue(prefix) => prefix,
    };
    let matching: Vec<&Transcript> = all
        .iter()
        .filter(|t| t.dialogue_id.starts_with(prefix.as_str()))
        .collect();
    match matching.as_slice() {
        [one] => Ok(render_text(one, width)),
        [] => Err(TranscriptError::NoSuchDialogue {
            stage: stage.name.clone(),
            prefix: prefix.clone(),
            some: all.iter().take(5).map(|t| t.dialogue_id.clone()).collect(),
            count: all.len(),
        }),
        many => Err(TranscriptError::AmbiguousDialogue {
            stage: stage.name.clone(),
            prefix: prefix.clone(),
            count: many.len(),
        }),
    }
}

/// Every (fresh judge, fresh rollout it needs) of `plan`, the rollout's dialogues carrying
/// that judge's verdicts only.
pub fn judged_rollouts(
    plan: &Plan,
    states: &[StageStatus],
    store: &Store,
) -> Result<Vec<JudgedRollout>, TranscriptError> {
    let mut out = Vec::new();
    for (r, rollout) in plan.stages.iter().enumerate() {
        if rollout.kind.kind() != "rollout" {
            continue;
        }
        let Some(path) = fresh_data(states, store, r) else {
            continue;
        };
        for (judge, judge_path) in judges_of(plan, states, store, r) {
            let mut transcripts = read_transcripts(&path).map_err(unreadable(&path))?;
            let verdicts = read_verdicts(&judge_path, &judge).map_err(unreadable(&judge_path))?;
            add_verdicts(&mut transcripts, &verdicts);
            out.push(JudgedRollout {
                judge,
                rollout: rollout.name.clone(),
                transcripts,
            });
        }
    }
    Ok(out)
}

/// For each plan (variant) and each of its judges over a rollout, the best- and
/// worst-scored dialogues; nothing for a plan without a fresh judge.
pub fn extremes(plans: &[Plan], store: &Store) -> Result<Vec<Extremes>, TranscriptError> {
    let mut out = Vec::new();
    for plan in plans {
        let variant = plan
            .variant
            .clone()
            .unwrap_or_else(|| plan.loaded.spec.name.clone());
        let states = status(plan, store);
        for judged in judged_rollouts(plan, &states, store)? {
            let Some((best, worst)) = best_and_worst(&judged.transcripts) else {
                continue;
            };
            out.push(Extremes {
                variant: variant.clone(),
                judge: judged.judge,
                rollout: judged.rollout,
                best: judged.transcripts[best].clone(),
                worst: (worst != best).then(|| judged.transcripts[worst].clone()),
            });
        }
    }
    Ok(out)
}
