//! The parties of a dialogue, one per agent, as a `persona_pairing` table gives them.

use arrow::array::{Array, StringArray};

use crate::stage::{Input, StageError};
use crate::table;

/// One party of a dialogue.
#[derive(Debug, Clone)]
pub struct Party {
    pub persona: String,
    pub name: String,
    pub profile: String,
}

/// The most parties a dialogue has: the bound on `rollout`'s `agents` and on the
/// `parties` of `persona_pairing` and `grpo`.
pub const MAX_PARTIES: usize = 26;

/// Each input row's parties, one per agent: the pair's two personas, then
/// `more_personas`.
pub fn parties(input: &Input, agents: usize) -> Result<Vec<Vec<Party>>, StageError> {
    let pair_personas = [
        (
            table::string_column(input, "persona_a")?,
            table::string_column(input, "persona_a_profile")?,
        ),
        (
            table::string_column(input, "persona_b")?,
            table::string_column(input, "persona_b_profile")?,
        ),
    ];
    let list = |name: &str| {
        input
            .batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::ListArray>())
            .cloned()
    };
    let (more_ids, more_profiles) = (list("more_personas"), list("more_profiles"));
    // Agent i's (persona id, profile) in row `row`: the pair, then `more_personas`.
    let persona = |row: usize, i: usize| -> Result<(String, String), StageError> {
        if let Some((ids, profiles)) = pair_personas.get(i) {
            return Ok((ids.value(row).to_string(), profiles.value(row).to_string()));
        }
        let missing = || {
            StageError::Failed(format!(
                "{agents} agents need {agents} parties per row, but `{}` has fewer; set `parties: {agents}` in its `persona_pairing`",
                input.name,
            ))
        };
        let (Some(ids), Some(profiles)) = (&more_ids, &more_profiles) else {
            return Err(missing());
        };
        let (ids, profiles) = (ids.value(row), profiles.value(row));
        let ids = ids
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(missing)?;
        let profiles = profiles
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(missing)?;
        if i - 2 >= ids.len() {
            return Err(missing());
        }
        Ok((
            ids.value(i - 2).to_string(),
            profiles.value(i - 2).to_string(),
        ))
    };
    (0..input.batch.num_rows())
        .map(|row| {
            (0..agents)
                .map(|i| {
                    let (persona, profile) = persona(row, i)?;
                    Ok(Party {
                        persona,
                        name: profile.split(". ").next().unwrap_or("").to_string(),
                        profile,
                    })
                })
                .collect()
        })
        .collect()
}
