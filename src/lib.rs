//! `accord` runs declarative experiment pipelines for language models that negotiate.
//!
//! A YAML spec describes a DAG of stages ([`spec`]); it is resolved into a [`plan::Plan`]
//! whose every stage has a content key ([`store::StageKey`]); [`exec`] runs only the stages
//! whose key has no artifact in the [`store::Store`] yet. Stage kinds implement
//! [`stage::Stage`] and are looked up in a [`registry::Registry`], so a library user can add
//! a kind without touching the core (see `examples/custom_kind.rs`).

pub mod canonical;
pub mod caught_panic;
pub mod cli;
pub mod dialogue;
pub mod exec;
pub mod file_kind;
pub mod judge;
pub mod llm;
pub mod output;
pub mod plan;
pub mod progress;
pub mod prompt;
pub mod registry;
pub mod report;
pub mod seed;
pub mod spec;
pub mod stage;
pub mod stages;
pub mod stats;
pub mod status;
pub mod store;
pub mod table;
pub mod train;

pub use exec::{ExecOptions, OnError, RunSummary};
pub use plan::Plan;
pub use registry::Registry;
pub use spec::{LoadOptions, Spec};
pub use stage::{Stage, StageContext, StageError};
pub use store::Store;

/// The version of this build, recorded in every artifact and run record.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this build came from, when it was built from a checkout.
pub const COMMIT: Option<&str> = option_env!("ACCORD_GIT_COMMIT");
