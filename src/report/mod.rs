//! Comparing runs: variants × metrics with confidence intervals ([`compare`]), printed
//! as tables ([`table`]), drawn ([`plots`]) and gathered into one HTML file ([`html`]).

pub mod compare;
pub mod html;
pub mod plots;
pub mod table;
