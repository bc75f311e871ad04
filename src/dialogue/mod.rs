//! Negotiation dialogues: the protocol agents follow, the parties they speak for, what a
//! dialogue records, what of a reply the others see, and the settings every stage that
//! holds dialogues shares.
//!
//! `rollout` holds dialogues to keep them, `grpo` to train on them and `evaluate` to
//! measure them; all three go through [`Protocol`], configured by [`DialogueSettings`]
//! under the same field names. This module generates and records; it does not judge
//! dialogues ([`crate::judge`]), cache them (the stages key and cache their rows) or know
//! any stage.

pub mod answer;
pub mod party;
pub mod protocol;
pub mod settings;
pub mod templates;
pub mod thinking;
pub mod transcript;

pub use answer::{Answering, answer_alone};
pub use party::{MAX_PARTIES, Party, parties};
pub use protocol::{AgreementCheck, AgreementKey, Context, DialogueKeyParts, Protocol};
pub use settings::{Agreement, AllTurns, ContextTurns, DialogueSettings};
pub use templates::Templates;
pub use transcript::{Dialogue, Task, Utterance, transcript};
