//! Judging: rubrics, the judged dialogue, asking a judge model, ratings, the pairwise
//! rule and how much a judge agrees with itself.
//!
//! Every stage that judges — `judge`, `judge_pairwise`, `grpo`'s rewards and `evaluate` —
//! asks through [`JudgeModel`]. With an in-process model a rating is read from the
//! next-token distribution over the offered answers (its expectation is the score, so a
//! score always exists); an endpoint judge ([`openai`]) gives the same distribution when
//! it offers log-probs, and a parsed answer otherwise. This module does not cache or know
//! any stage: stages key and cache their rows.

pub mod case;
pub mod judge_model;
pub mod openai;
pub mod rating;
pub mod reliability;
pub mod rubrics;
pub mod verdict;

pub use case::{Case, Party};
pub use judge_model::{Asking, JudgeModel};
pub use rating::{DIGITS, Rating, expectation};
pub use verdict::{Verdict, Winner};
