//! Judging dialogues: rubrics, rating providers and judge reliability.
//!
//! The `judge` stage ([`crate::stages::judge`]) rates each dialogue with a rubric. With an
//! in-process model the rating is read from the next-token distribution over the digits
//! 0–5 (its expectation is the score, so a score always exists); the distribution also lets
//! the stage sample repeated ratings to measure how much the judge agrees with itself.
//! An endpoint judge ([`openai`]) gives the same distribution when it offers log-probs,
//! and a parsed rating otherwise.

pub mod asker;
pub mod openai;
pub mod reliability;
