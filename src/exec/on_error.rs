//! The failure policy (`--on-error`): what an executor does once a stage fails.
//!
//! Both executors follow it: the local one by starting no new stage, the Slurm one by
//! cancelling the jobs still queued. Either way the stages that could not run are named
//! with a [`super::outcome::SkipReason`]. A failed stage's dependents never run, whatever
//! the policy: their inputs do not exist.

/// What to do when a stage fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Start no new stage; report the ones that did not run.
    #[default]
    Fail,
    /// Run every stage that does not depend on the failed one.
    KeepGoing,
}
