//! Terminal styling: colour only on a terminal, never when piped or with `NO_COLOR`.
//!
//! Output goes through `anstream`, which strips styles when the stream is not a terminal
//! or `NO_COLOR` is set (and keeps them with `CLICOLOR_FORCE`). Machine formats
//! (`--json`, `--path`, csv) are written without styles at all.

use anstyle::{AnsiColor, Style};

pub const ERROR: Style = AnsiColor::Red.on_default().bold();
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
pub const FRESH: Style = AnsiColor::Green.on_default();
pub const STALE: Style = AnsiColor::Yellow.on_default();
pub const MISSING: Style = AnsiColor::Red.on_default();
pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();

/// `text` wrapped in `style`'s escape codes (stripped later where colour is off).
pub fn paint(style: Style, text: &str) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

pub fn error_label() -> String {
    paint(ERROR, "error")
}

pub fn warning_label() -> String {
    paint(WARNING, "warning")
}

/// Whether stderr shows colour.
pub fn stderr_has_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}
