//! Progress of running stages on stderr.
//!
//! On a terminal, one indicatif bar per running stage with items/s and ETA; otherwise
//! (a log file, CI) plain lines: when a stage starts, every 10 seconds while it runs, and
//! when it ends. `--quiet` prints neither. Results go to stdout and are not affected.

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
        "  {prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {per_sec} ETA {eta} {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ")
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
            let rate = state.done as f64 / elapsed.max(1e-9);
            let line = match state.total {
                Some(total) if rate > 0.0 => {
                    let eta = (total.saturating_sub(state.done)) as f64 / rate;
                    format!(
                        "{}: {}/{total} ({rate:.1}/s, ETA {eta:.0}s)",
                        self.name, state.done
                    )
                }
                _ => format!("{}: {} done ({rate:.1}/s)", self.name, state.done),
            };
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
