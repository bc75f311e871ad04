//! What the executors say about stage outcomes: why a stage was skipped, the line that
//! reports a failure, and the `2 ran, 4 cached` tally.
//!
//! The local and Slurm executors both report through these, so a skipped stage reads the
//! same whichever ran it. The outcome itself is [`StageOutcome`], which run records keep;
//! this module only renders it. It does not decide *whether* a stage is skipped: that is
//! each executor's failure policy ([`super::OnError`]).

use std::fmt;

use crate::store::StageOutcome;

/// Why a stage did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Another stage failed and `--on-error fail` stopped the run before this one started.
    EarlierFailure,
    /// A stage this one waits for failed or was skipped.
    InputDidNotFinish {
        /// The stage (or, on Slurm, the job's label) that did not finish.
        input: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::EarlierFailure => {
                f.write_str("an earlier stage failed (`--on-error keep-going` runs the rest)")
            }
            SkipReason::InputDidNotFinish { input } => {
                write!(f, "it needs `{input}`, which did not finish")
            }
        }
    }
}

impl From<SkipReason> for StageOutcome {
    fn from(reason: SkipReason) -> StageOutcome {
        StageOutcome::Skipped(reason.to_string())
    }
}

/// `STAGE: skipped: REASON`, the line each skipped stage gets once a run is over.
pub fn skipped_line(stage: &str, reason: &str) -> String {
    format!("{stage}: skipped: {reason}")
}

/// Reports on stderr, as it happens, that `stage` failed: ``error: stage `x` failed: …``.
pub fn report_failure(stage: &str, message: &str) {
    anstream::eprintln!(
        "{}: stage `{stage}` failed: {message}",
        crate::output::error_label()
    );
}

/// How many stages ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub ran: usize,
    pub cached: usize,
    pub failed: usize,
    pub skipped: usize,
    pub interrupted: usize,
}

impl Tally {
    /// The tally of `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a StageOutcome>) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            match outcome {
                StageOutcome::Ran => tally.ran += 1,
                StageOutcome::Cached => tally.cached += 1,
                StageOutcome::Failed(_) => tally.failed += 1,
                StageOutcome::Skipped(_) => tally.skipped += 1,
                StageOutcome::Interrupted => tally.interrupted += 1,
            }
        }
        tally
    }

    /// `4 ran, 2 cached over 2 variants`: the last line of a run with several variants,
    /// whose tallies this one sums.
    pub fn over_variants(&self, variants: usize) -> String {
        format!(
            "{} ran, {} cached over {variants} variants",
            self.ran, self.cached
        )
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.ran += other.ran;
        self.cached += other.cached;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.interrupted += other.interrupted;
    }
}

/// `2 ran, 4 cached`, then the failures, skips and interruptions there are:
/// `0 ran, 0 cached, 1 failed, 2 skipped`.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ran, {} cached", self.ran, self.cached)?;
        for (n, word) in [
            (self.failed, "failed"),
            (self.skipped, "skipped"),
            (self.interrupted, "interrupted"),
        ] {
            if n > 0 {
                write!(f, ", {n} {word}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_skip_reasons_read_as_sentences() {
        assert_eq!(
            SkipReason::InputDidNotFinish {
                input: "pairs".into()
            }
            .to_string(),
            "it needs `pairs`, which did not finish"
        );
        assert_eq!(
            StageOutcome::from(SkipReason::EarlierFailure),
            StageOutcome::Skipped(
                "an earlier stage failed (`--on-error keep-going` runs the rest)".into()
            )
        );
    }

    #[test]
    fn the_tally_names_only_the_unusual_outcomes_it_saw() {
        let quiet = Tally::of(&[
            StageOutcome::Ran,
            StageOutcome::Cached,
            StageOutcome::Cached,
        ]);
        assert_eq!(quiet.to_string(), "1 ran, 2 cached");
        let mut loud = Tally::of(&[
            StageOutcome::Failed("x".into()),
            SkipReason::EarlierFailure.into(),
            StageOutcome::Interrupted,
        ]);
        assert_eq!(
            loud.to_string(),
            "0 ran, 0 cached, 1 failed, 1 skipped, 1 interrupted"
        );
        loud += quiet;
        assert_eq!(loud.over_variants(2), "1 ran, 2 cached over 2 variants");
    }
}
