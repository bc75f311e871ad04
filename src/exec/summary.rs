//! What a local run hands back: each stage's result and the run's record.
//!
//! Printing is the caller's: [`RunSummary::line`] is the `2 ran, 4 cached` line, and
//! [`RunSummary::tally`] the counts `accord run` sums over variants.

use super::outcome::Tally;
use crate::store::{Meta, RunRecord, StageOutcome};

/// One stage's result.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub name: String,
    pub key: Option<String>,
    pub meta: Option<Box<Meta>>,
    pub outcome: StageOutcome,
    pub seconds: f64,
}

/// The results of a run, in plan order, and the record saved for it.
#[derive(Debug)]
pub struct RunSummary {
    pub results: Vec<StageResult>,
    pub record: RunRecord,
}

impl RunSummary {
    /// How many stages ended each way.
    pub fn tally(&self) -> Tally {
        Tally::of(self.results.iter().map(|r| &r.outcome))
    }

    /// Whether every stage ran or was cached.
    pub fn succeeded(&self) -> bool {
        self.results.iter().all(|r| r.outcome.succeeded())
    }

    pub fn interrupted(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.outcome == StageOutcome::Interrupted)
    }

    /// `2 ran, 4 cached` (and failures, skips, interruptions when there are any).
    pub fn line(&self) -> String {
        self.tally().to_string()
    }
}
