//! What a running stage sees: its inputs, seed, models, row cache, progress bar and the
//! cancellation flag, and where it may keep files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StageError;
use crate::llm::hub::ModelHub;
use crate::progress::StageProgress;
use crate::store::row_cache::{RowCache, RowKey};

/// One input table: an upstream stage's output.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub kind: String,
    pub batch: RecordBatch,
}

/// What a running stage can see and do.
pub struct StageContext<'a> {
    /// The stage's name in the spec.
    pub name: &'a str,
    /// The stage's seed, derived from the spec's seed and the stage name.
    pub seed: u64,
    /// The folder relative paths in `with` start from.
    pub spec_dir: &'a Path,
    /// Outputs of the stages in `needs`, in that order.
    pub inputs: Vec<Input>,
    /// What the stage's trained models (`source: stage:NAME`) learnt from: the outputs of
    /// their training stages' `needs`, so an evaluation can check that its held-out rows
    /// are held out.
    pub trained_on: Vec<Input>,
    /// A folder for checkpoints in progress, kept across interruptions.
    pub work_dir: PathBuf,
    /// Finished rows under their own keys (see [`crate::store::row_cache`]).
    pub rows: &'a RowCache,
    /// The spec's models, loaded on first use.
    pub models: &'a ModelHub,
    pub progress: &'a StageProgress,
    pub cancel: &'a AtomicBool,
}

/// The folder below a stage's work folder whose files the store keeps in the stage's
/// entry beside `data.parquet` (see [`StageContext::output_dir`]).
pub fn output_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("output")
}

impl StageContext<'_> {
    /// Where a stage puts files that belong in its store entry beside the table (a
    /// checkpoint): they move there when the stage succeeds.
    pub fn output_dir(&self) -> PathBuf {
        output_dir(&self.work_dir)
    }

    /// Whether the user has interrupted the run.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Fails with [`StageError::Cancelled`] once the user has interrupted the run.
    pub fn check_cancelled(&self) -> Result<(), StageError> {
        if self.is_cancelled() {
            Err(StageError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The single input produced by a stage of `kind`.
    pub fn input_of_kind(&self, kind: &str) -> Result<&Input, StageError> {
        let mut matching = self.inputs.iter().filter(|i| i.kind == kind);
        match (matching.next(), matching.next()) {
            (Some(input), None) => Ok(input),
            _ => Err(StageError::Failed(format!(
                "stage `{}` needs exactly one `{kind}` stage",
                self.name
            ))),
        }
    }

    /// A path from `with`, resolved against the spec's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.spec_dir.join(path)
    }

    /// The rows under `keys`, from the row cache or computed: `compute(positions)` gets
    /// the missing positions `chunk` at a time and returns their rows in order, which are
    /// stored as each chunk returns (so an interruption loses at most one chunk). The
    /// progress bar counts the rows.
    pub fn get_or_compute<K: RowKey, T: Serialize + DeserializeOwned>(
        &self,
        keys: &[K],
        chunk: usize,
        mut compute: impl FnMut(&[usize]) -> Result<Vec<T>, StageError>,
    ) -> Result<Vec<T>, StageError> {
        let mut rows = self.rows.open(keys);
        self.progress.advance(rows.cached() as u64);
        for positions in rows.missing().chunks(chunk.max(1)) {
            self.check_cancelled()?;
            let computed = compute(positions)?;
            if computed.len() != positions.len() {
                return Err(StageError::Failed(format!(
                    "stage `{}` computed {} rows for {} keys",
                    self.name,
                    computed.len(),
                    positions.len()
                )));
            }
            for (&i, row) in positions.iter().zip(computed) {
                rows.insert(i, row)?;
            }
            self.progress.advance(positions.len() as u64);
        }
        Ok(rows.finish())
    }
}
