//! Training a policy with GRPO on the dialogue tokens it generated.
//!
//! The `grpo` stage drives the loop: roll out groups of dialogues with the current
//! policy, reward them, turn rewards into group-relative [`advantage`]s, score the trained
//! agent's turns ([`sequences`], [`logprobs`]) and [`update`] the policy on the
//! [`objective`]. Nothing here rolls out, judges or knows a stage.

pub mod advantage;
pub mod checkpoint;
pub mod divergence;
pub mod gradients;
pub mod logprobs;
pub mod lora;
pub mod objective;
pub mod sequences;
pub mod update;
