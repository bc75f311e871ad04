//! Progress of running stages on stderr.
//!
//! On a terminal, one indicatif bar per running stage with its pace and ETA; otherwise
//! (a log file, CI) plain lines: when a stage starts, every 10 seconds while it runs, and
//! when it ends. `--quiet` prints neither. Results go to stdout and are not affected.
//!
//! The pace reads as items per second for fast items (`12.5/s`) and as seconds per item
//! for slow ones (`42.0 s/item`, not `0.0/s`): a dialogue or a training step takes
//! seconds to minutes.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
enum Mode {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

/// Where progress goes for a whole run.
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
}

impl Progress {
    /// Bars on a terminal, lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Self { mode }
    }

    /// No output at all.
    pub fn quiet() -> Self {
        Self { mode: Mode::Quiet }
    }

    /// Prints a line (a warning, a stage result) without garbling the bars.
    pub fn println(&self, line: &str) {
        match &self.mode {
            Mode::Bars(multi) => {
                let _ = multi.println(line);
            }
            Mode::Lines => anstream::eprintln!("{line}"),
            Mode::Quiet => {}
        }
    }

    /// Progress for one stage that has started.
    pub fn stage(&self, name: &str) -> StageProgress {
        let bar = match &self.mode {
            Mode::Bars(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Mode::Lines => {
                anstream::eprintln!("{name}: running");
                None
            }
            Mode::Quiet => None,
        };
        StageProgress {
            name: name.to_string(),
            lines: matches!(self.mode, Mode::Lines),
            bar,
            state: Mutex::new(Counts {
                done: 0,
                total: None,
                started: Instant::now(),
                last_line: Instant::now(),
            }),
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg}").expect("valid template")
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "  {prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {pace} ETA {eta} {msg}",
    )
    .expect("valid template")
    .with_key(
        "pace",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&pace(state.per_sec()).unwrap_or_else(|| "-".into()));
        },
    )
    .progress_chars("=> ")
}

/// How fast items go at `rate` items per second: `12.5/s` at one a second or more,
/// `42.0 s/item` below; `None` before any item is done.
pub fn pace(rate: f64) -> Option<String> {
    if !rate.is_finite() || rate <= 0.0 {
        None
    } else if rate >= 1.0 {
        Some(format!("{rate:.1}/s"))
    } else {
        Some(format!("{:.1} s/item", 1.0 / rate))
    }
}

/// The plain line for a stage `name` that has done `done` of `total` items in `elapsed`
/// seconds: `rollout: 3/40 (12.3 s/item, ETA 455s)`.
fn progress_line(name: &str, done: u64, total: Option<u64>, elapsed: f64) -> String {
    let rate = done as f64 / elapsed.max(1e-9);
    match (total, pace(rate)) {
        (Some(total), Some(pace)) => {
            let eta = total.saturating_sub(done) as f64 / rate;
            format!("{name}: {done}/{total} ({pace}, ETA {eta:.0}s)")
        }
        (Some(total), None) => format!("{name}: {done}/{total}"),
        (None, Some(pace)) => format!("{name}: {done} done ({pace})"),
        (None, None) => format!("{name}: {done} done"),
    }
}

struct Counts {
    done: u64,
    total: Option<u64>,
    started: Instant,
    last_line: Instant,
}

/// Progress of one running stage.
pub struct StageProgress {
    name: String,
    lines: bool,
    bar: Option<ProgressBar>,
    state: Mutex<Counts>,
}

impl StageProgress {
    /// A stage that reports nowhere (for tests and library use).
    pub fn hidden(name: &str) -> Self {
        Progress::quiet().stage(name)
    }

    /// Sets how many items (rows, steps) the stage will process.
    pub fn set_total(&self, total: u64) {
        self.state.lock().expect("progress lock").total = Some(total);
        if let Some(bar) = &self.bar {
            bar.set_style(bar_style());
            bar.set_length(total);
            bar.reset_eta();
        }
    }

    /// Marks `n` more items done.
    pub fn advance(&self, n: u64) {
        let mut state = self.state.lock().expect("progress lock");
        state.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        if self.lines && state.last_line.elapsed() >= Duration::from_secs(10) {
            state.last_line = Instant::now();
            let elapsed = state.started.elapsed().as_secs_f64();
            let line = progress_line(&self.name, state.done, state.total, elapsed);
            anstream::eprintln!("{line}");
        }
    }

    /// Sets a short status message (e.g. "waiting for another process").
    pub fn message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        } else if self.lines {
            anstream::eprintln!("{}: {message}", self.name);
        }
    }

    /// Prints a line that stays (a result worth reading, such as a judge's self-agreement).
    pub fn note(&self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.println(line);
        } else if self.lines {
            anstream::eprintln!("{line}");
        }
    }

    /// Removes the bar; the caller prints the outcome.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_items_read_as_seconds_per_item() {
        assert_eq!(pace(2.5).as_deref(), Some("2.5/s"));
        assert_eq!(pace(1.0).as_deref(), Some("1.0/s"));
        assert_eq!(pace(0.25).as_deref(), Some("4.0 s/item"));
        assert_eq!(pace(1.0 / 123.0).as_deref(), Some("123.0 s/item"));
        assert_eq!(pace(0.0), None);
        assert_eq!(pace(f64::NAN), None);
    }

    #[test]
    fn the_bar_template_with_its_pace_key_is_valid() {
        // `bar_style` expects its template to parse; a typo would panic on a terminal only.
        let bar = ProgressBar::with_draw_target(Some(4), ProgressDrawTarget::hidden());
        bar.set_style(bar_style());
        bar.inc(1);
    }

    #[test]
    fn progress_lines_give_the_pace_and_eta_or_only_the_count() {
        assert_eq!(
            progress_line("dialogues", 3, Some(40), 36.9),
            "dialogues: 3/40 (12.3 s/item, ETA 455s)"
        );
        assert_eq!(
            progress_line("pairs", 50, Some(100), 10.0),
            "pairs: 50/100 (5.0/s, ETA 10s)"
        );
        assert_eq!(progress_line("train", 0, Some(40), 12.0), "train: 0/40");
        assert_eq!(
            progress_line("train", 2, None, 30.0),
            "train: 2 done (15.0 s/item)"
        );
    }
}
