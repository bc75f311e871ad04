//! Text fitted to a terminal: how wide text shows ([`width`]), a cell cut to a width with
//! `…` ([`cut`]), prose wrapped at word boundaries ([`wrap`]), and how wide the output
//! may be ([`output_width`]).
//!
//! Widths are display columns (`unicode-width`), so a wide character counts two and a
//! combining mark none. This module neither aligns columns (that is
//! [`super::text_table`]) nor styles text (that is [`crate::output`]).

use std::io::IsTerminal;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The width tables use when stdout is no terminal and `COLUMNS` is unset: readable in a
/// log or a pager, and the same on every machine (snapshot tests rely on it).
pub const PIPED_WIDTH: usize = 100;

/// The narrowest width anything is fitted to, whatever the terminal says.
const NARROWEST: usize = 40;

/// How many columns the output may use: `COLUMNS` when set to a number, else the width
/// of the terminal stdout is, else [`PIPED_WIDTH`].
pub fn output_width() -> usize {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok());
    let terminal = || {
        let stdout = std::io::stdout();
        if !stdout.is_terminal() {
            return None;
        }
        terminal_size::terminal_size_of(stdout).map(|(w, _)| usize::from(w.0))
    };
    columns
        .or_else(terminal)
        .unwrap_or(PIPED_WIDTH)
        .max(NARROWEST)
}

/// The display width of `text`.
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` on one line: line breaks and tabs become spaces, other control characters go.
pub fn one_line(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// `text` cut to at most `max` columns, ending in `…` (after no space) when anything was
/// cut.
pub fn cut(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// `text` padded with spaces to `columns` wide, on the right (`right: false`) or the left.
pub fn pad(text: &str, columns: usize, right_aligned: bool) -> String {
    let fill = " ".repeat(columns.saturating_sub(width(text)));
    if right_aligned {
        format!("{fill}{text}")
    } else {
        format!("{text}{fill}")
    }
}

/// `text` wrapped into lines of at most `max` columns, breaking at spaces; a word longer
/// than a line is split. Line breaks in `text` are kept (an empty line stays empty).
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let paragraph = one_line(paragraph.trim_end());
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            let needed = if line.is_empty() {
                width(word)
            } else {
                width(&line) + 1 + width(word)
            };
            if needed <= max {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than a line is split into line-wide pieces.
            let mut rest = word;
            while width(rest) > max {
                let mut taken = 0;
                let split = rest
                    .char_indices()
                    .find(|(_, c)| {
                        taken += c.width().unwrap_or(0);
                        taken > max
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let split = if split == 0 {
                    rest.chars().next().map_or(rest.len(), char::len_utf8)
                } else {
                    split
                };
                lines.push(rest[..split].to_string());
                rest = &rest[split..];
            }
            line.push_str(rest);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_text_ends_in_an_ellipsis_and_keeps_its_width() {
        assert_eq!(cut("negotiation", 20), "negotiation");
        assert_eq!(cut("negotiation", 6), "negot…");
        assert_eq!(width(&cut("négociation", 6)), 6);
        // A wide character is never split across the limit.
        assert_eq!(cut("合意に達した", 5), "合意…");
        assert_eq!(cut("abc", 0), "");
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_keeps_paragraphs() {
        assert_eq!(
            wrap("we agree to share the cost\n\nfairly", 10),
            vec!["we agree", "to share", "the cost", "", "fairly"]
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 10), vec![""]);
    }

    #[test]
    fn one_line_replaces_breaks_and_drops_control_characters() {
        assert_eq!(one_line("a\nb\tc\u{7}"), "a b c");
    }

    #[test]
    fn padding_aligns_either_side() {
        assert_eq!(pad("1.5", 5, true), "  1.5");
        assert_eq!(pad("ab", 4, false), "ab  ");
        assert_eq!(pad("toolong", 3, false), "toolong");
    }
}
