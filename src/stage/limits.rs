//! Upper bounds on the counts in stage parameters, so a slip (`count: 1000000000000`)
//! is a validation error instead of hours of work, an allocation that aborts, or a loop
//! that cannot be stopped.
//!
//! The bounds are far above anything the method needs (the paper: 1,100 dilemmas, groups
//! of 8, 7 turns, 1,900 steps) and each message states its bound. A count is checked by
//! its kind's `check_params` with [`at_most`]; counts with a tighter meaning (personas in
//! a library, agents in a dialogue) are checked there against that meaning instead.

/// Rows a stage makes or reads at most: dilemmas, items, sampled dialogues, steps.
pub const MAX_ROWS: usize = 1_000_000;
/// Things handled at once at most: batch and group sizes, requests in flight.
pub const MAX_BATCH: usize = 4_096;
/// Tokens one reply may take at most.
pub const MAX_TOKENS: usize = 131_072;
/// Repeats, tries, turns and inner rounds at most.
pub const MAX_REPEATS: usize = 1_000;

/// `(field, problem)` when `value` is above `max` (`unit` says what is counted).
pub fn at_most(field: &str, value: usize, max: usize, unit: &str) -> Option<(String, String)> {
    (value > max).then(|| {
        (
            field.to_string(),
            format!("{value} is more than {max} {unit}, the most this field takes"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_the_bound() {
        assert_eq!(at_most("count", 10, 10, "dilemmas"), None);
        assert_eq!(
            at_most("count", 11, 10, "dilemmas").unwrap().1,
            "11 is more than 10 dilemmas, the most this field takes"
        );
    }
}
