//! Held-out rows must not be rows an evaluated model was trained on: the held-out
//! dilemmas are compared with the inputs of the evaluated checkpoints' training stages.

use std::collections::HashSet;

use crate::stage::{Input, StageError};
use crate::table;

/// Fails when a held-out dilemma is one an evaluated model was trained on.
pub fn check_held_out(heldout: &Input, trained_on: &[Input]) -> Result<(), StageError> {
    let texts = |input: &Input| -> Option<Vec<String>> {
        let column = ["dilemma", "text"]
            .into_iter()
            .find_map(|name| table::string_column(input, name).ok())?;
        Some(column.iter().flatten().map(normalise).collect())
    };
    let Some(ours) = texts(heldout) else {
        return Ok(());
    };
    for training in trained_on {
        let Some(theirs) = texts(training) else {
            continue;
        };
        let theirs: HashSet<String> = theirs.into_iter().collect();
        let shared: Vec<&String> = ours.iter().filter(|t| theirs.contains(*t)).collect();
        if let Some(first) = shared.first() {
            let distinct: HashSet<&&String> = shared.iter().collect();
            return Err(StageError::Failed(format!(
                "{} held-out dilemma(s) of `{}` are also in `{}`, which an evaluated model was trained on (first: \"{}\"); synthesise held-out dilemmas in their own stage with `split: heldout` (and the training ones with `split: train`)",
                distinct.len(),
                heldout.name,
                training.name,
                first.chars().take(80).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Text compared for overlap: whitespace collapsed, case folded.
fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
