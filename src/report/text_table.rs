//! An aligned plain-text table for the terminal, as `accord compare` and `accord show`
//! print it: a header line, then one line per row, columns two spaces apart, numbers
//! right-aligned, no rules and no type row.
//!
//! Fitting to a width: columns of free text ([`Column::text`]) give way, the widest
//! first, with what no longer fits cut with `…` — prose (cells with spaces) first, down to
//! [`PROSE_FLOOR`], then identifiers too, down to [`WORD_FLOOR`]; if the table is still
//! too wide, whole columns are left out from the right (never the first) and named in
//! [`Fitted::left_out`]. Numbers ([`Column::number`]) and labels ([`Column::fixed`]) are
//! never cut: a cut number reads as a different number. Cells are shown on one line (line
//! breaks become spaces). This module does not colour anything but the header, and knows
//! nothing of what the cells mean.

use super::terminal_text::{cut, one_line, pad, width};
use crate::output::{BOLD, paint};

/// Columns are this far apart.
const GAP: &str = "  ";

/// Prose shrinks to this width before any identifier is cut.
pub const PROSE_FLOOR: usize = 20;

/// No text column shrinks narrower than this (or its widest cell, if narrower): a
/// 12-digit id stays whole.
pub const WORD_FLOOR: usize = 12;

/// One column: a header and a cell per row.
#[derive(Debug, Clone)]
pub struct Column {
    pub header: String,
    pub cells: Vec<String>,
    right_aligned: bool,
    shrinks: bool,
    /// Whether any cell has a space: prose, which is cut before identifiers.
    prose: bool,
}

impl Column {
    /// Free text, left-aligned, cut with `…` when the table must fit.
    pub fn text(header: impl Into<String>, cells: Vec<String>) -> Self {
        Self::new(header, cells, false, true)
    }

    /// Identifiers and labels, left-aligned, never cut.
    pub fn fixed(header: impl Into<String>, cells: Vec<String>) -> Self {
        Self::new(header, cells, false, false)
    }

    /// Numbers, right-aligned, never cut.
    pub fn number(header: impl Into<String>, cells: Vec<String>) -> Self {
        Self::new(header, cells, true, false)
    }

    fn new(
        header: impl Into<String>,
        cells: Vec<String>,
        right_aligned: bool,
        shrinks: bool,
    ) -> Self {
        let cells: Vec<String> = cells.iter().map(|c| one_line(c)).collect();
        Self {
            header: one_line(&header.into()),
            prose: cells.iter().any(|c| c.trim().contains(' ')),
            cells,
            right_aligned,
            shrinks,
        }
    }

    /// The width the column needs to show everything.
    fn natural_width(&self) -> usize {
        self.cells
            .iter()
            .map(|c| width(c))
            .chain(std::iter::once(width(&self.header)))
            .max()
            .unwrap_or(0)
    }

    /// The narrowest the column may become while prose gives way (`prose_only`) and
    /// after; `None` when it does not shrink then.
    fn floor(&self, prose_only: bool) -> Option<usize> {
        let floor = match (self.shrinks, self.prose, prose_only) {
            (false, _, _) | (true, false, true) => return None,
            (true, true, true) => PROSE_FLOOR,
            (true, _, false) => WORD_FLOOR,
        };
        Some(self.natural_width().min(floor))
    }
}

/// A table as text, and the headers of the columns that did not fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub text: String,
    pub left_out: Vec<String>,
}

/// The table of `columns` (all with the same number of cells) in at most `max_width`
/// columns (`None`: as wide as it needs).
pub fn render(columns: &[Column], max_width: Option<usize>) -> Fitted {
    let mut widths: Vec<usize> = columns.iter().map(Column::natural_width).collect();
    let mut shown = columns.len();
    if let Some(max) = max_width {
        let total = |widths: &[usize], shown: usize| {
            widths[..shown].iter().sum::<usize>() + GAP.len() * shown.saturating_sub(1)
        };
        // No text column is wider than the whole table may be.
        for (w, column) in widths.iter_mut().zip(columns) {
            if column.shrinks {
                *w = (*w).min(max);
            }
        }
        // Prose gives way first, then identifiers, the widest column first; then whole
        // columns go, from the right.
        for prose_only in [true, false] {
            while total(&widths, shown) > max {
                let widest = (0..shown)
                    .filter(|&i| columns[i].floor(prose_only).is_some_and(|f| widths[i] > f))
                    .max_by_key(|&i| (widths[i], std::cmp::Reverse(i)));
                let Some(i) = widest else { break };
                widths[i] -= 1;
            }
        }
        while total(&widths, shown) > max && shown > 1 {
            shown -= 1;
        }
    }
    let rows = columns.first().map_or(0, |c| c.cells.len());
    let line = |cells: Vec<String>| {
        let mut text = cells.join(GAP);
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut text = line(
        (0..shown)
            .map(|i| {
                // Painted inside the padding, so a line still ends in no spaces.
                let header = cut(&columns[i].header, widths[i]);
                let fill = " ".repeat(widths[i] - width(&header));
                if header.is_empty() {
                    fill
                } else if columns[i].right_aligned {
                    format!("{fill}{}", paint(BOLD, &header))
                } else {
                    format!("{}{fill}", paint(BOLD, &header))
                }
            })
            .collect(),
    );
    for row in 0..rows {
        text.push_str(&line(
            (0..shown)
                .map(|i| {
                    let cell = cut(&columns[i].cells[row], widths[i]);
                    pad(&cell, widths[i], columns[i].right_aligned)
                })
                .collect(),
        ));
    }
    Fitted {
        text,
        left_out: columns[shown..].iter().map(|c| c.header.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    fn table() -> Vec<Column> {
        vec![
            Column::fixed("id", strings(&["a1", "b2"])),
            Column::number("score", strings(&["3.5", "12.25"])),
            Column::text(
                "text",
                strings(&["we share the cost fairly", "no\nagreement"]),
            ),
        ]
    }

    #[test]
    fn numbers_align_right_and_text_left_with_nothing_else() {
        let fitted = render(&table(), None);
        // Headers are bold only where colour is on; strip the codes for the comparison.
        let plain: String = anstream::adapter::strip_str(&fitted.text).to_string();
        assert_eq!(
            plain,
            "id  score  text\n\
             a1    3.5  we share the cost fairly\n\
             b2  12.25  no agreement\n"
        );
        assert!(fitted.left_out.is_empty());
    }

    #[test]
    fn text_gives_way_before_columns_are_left_out() {
        let fitted = render(&table(), Some(30));
        let plain = anstream::adapter::strip_str(&fitted.text).to_string();
        assert!(plain.lines().all(|l| width(l) <= 30), "{plain}");
        assert!(plain.contains("we share the cost…"), "{plain}");
        assert!(fitted.left_out.is_empty());
        // Narrower than the numbers and the floor of the text: the text column goes.
        let fitted = render(&table(), Some(14));
        assert_eq!(fitted.left_out, vec!["text"]);
        let plain = anstream::adapter::strip_str(&fitted.text).to_string();
        assert_eq!(plain.lines().next(), Some("id  score"));
    }
}
