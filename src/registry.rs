//! The registry of stage kinds a spec may name.
//!
//! [`Registry::builtin`] holds the kinds `accord` ships; a library user adds their own
//! with [`Registry::with`] and passes the registry to [`crate::spec::load`] — the core
//! never matches on kind names.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::stage::{Stage, StageKind};

/// Stage kinds by name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn StageKind>>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The kinds built into `accord`.
    pub fn builtin() -> Self {
        Self::empty()
            .with(crate::stages::prompt_synthesis::PromptSynthesis)
            .with(crate::stages::persona_pairing::PersonaPairing)
            .with(crate::stages::rollout::Rollout)
            .with(crate::stages::grpo::Grpo)
            .with(crate::stages::judge::Judge)
            .with(crate::stages::judge_pairwise::JudgePairwise)
            .with(crate::stages::evaluate::Evaluate)
    }

    /// Adds (or replaces) a kind.
    pub fn with(mut self, stage: impl Stage) -> Self {
        self.register(stage);
        self
    }

    /// Adds (or replaces) a kind.
    pub fn register(&mut self, stage: impl Stage) {
        let kind: Arc<dyn StageKind> = Arc::new(stage);
        self.kinds.insert(kind.kind(), kind);
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn StageKind>> {
        self.kinds.get(kind)
    }

    /// Kind names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.kinds.keys().map(|k| k.to_string()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn StageKind>> {
        self.kinds.values()
    }
}
