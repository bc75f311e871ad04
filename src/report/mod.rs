//! Comparing runs: variants × metrics with confidence intervals ([`compare`]), printed
//! as tables ([`table`]).

pub mod compare;
pub mod table;
