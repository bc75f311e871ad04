//! Executors: running a plan's stale stages, here ([`local`]) or as Slurm jobs
//! ([`slurm`]), over one typed stage outcome ([`crate::store::StageOutcome`]).
//!
//! Both executors key stages the same way ([`keying`]), follow one failure policy
//! ([`OnError`]), say the same things about skipped and failed stages ([`outcome`]) and
//! write the same run record ([`record`]). What a stage computes is its kind's
//! ([`crate::stage`]); what the store keeps is the store's.

mod compute;
pub mod keying;
pub mod local;
mod on_error;
pub mod outcome;
mod record;
pub mod slurm;
mod summary;

pub use keying::stage_key;
pub use local::{ExecOptions, run};
pub use on_error::OnError;
pub use summary::{RunSummary, StageResult};

/// The threads this process may use (the cgroup's CPU quota counts), read once.
pub fn available_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
