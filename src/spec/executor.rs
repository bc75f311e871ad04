//! Where stale stages run: `executor: local` (this process) or `slurm` (batch jobs).
//!
//! The executor is not part of any stage key: the same stage computed on a laptop or on a
//! cluster node is the same artifact.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How `accord run` runs the stale stages.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// In this process, up to `--jobs` stages at once.
    #[default]
    Local,
    /// Each stale stage as a Slurm batch job (`sbatch`), with `--dependency=afterok` edges.
    Slurm,
}
