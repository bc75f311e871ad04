//! What a person reads of the results: variants × metrics with confidence intervals
//! ([`compare`]), printed as tables ([`table`]), drawn ([`plots`]) and gathered into one
//! HTML file ([`html`]); artifacts as tables ([`artifact_table`]) and dialogues as
//! transcripts ([`transcript`]), fitted to a terminal ([`text_table`], [`terminal_text`]);
//! artifacts' [`columns`] read with polars.

pub mod artifact_table;
pub mod columns;
pub mod compare;
pub mod html;
pub mod plots;
pub mod table;
pub mod terminal_text;
pub mod text_table;
pub mod transcript;
