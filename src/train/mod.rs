//! Training a policy with GRPO on the dialogue tokens it generated.
//!
//! The `grpo` stage ([`crate::stages::grpo`]) drives the loop: roll out groups of
//! dialogues with the current policy, reward them, turn rewards into group-relative
//! [`advantage`]s, score the trained agent's turns ([`sequences`], [`logprobs`]) and
//! step the optimiser on the [`objective`].

pub mod advantage;
pub mod checkpoint;
pub mod logprobs;
pub mod lora;
pub mod objective;
pub mod sequences;
