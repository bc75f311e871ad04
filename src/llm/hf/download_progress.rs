//! Progress of a download on stderr: a line per file with its size, and on a terminal a
//! bar of bytes while it arrives. Files already in the cache print nothing, and `--quiet`
//! nothing at all. (Fetching happens deep inside a run, so `--quiet` is a process-wide
//! setting here rather than a parameter threaded through every caller.)

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Prints no download progress from now on when `quiet` (`accord --quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Progress of the downloads of one `hf:` source.
pub struct DownloadProgress {
    model: String,
    quiet: bool,
    bars: bool,
}

impl DownloadProgress {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            quiet: QUIET.load(Ordering::Relaxed),
            bars: std::io::stderr().is_terminal(),
        }
    }

    /// Announces that `file` (`size` bytes, when known) is downloaded from offset `from`.
    pub fn file(&self, file: &str, size: Option<u64>, from: u64) -> FileProgress {
        if self.quiet {
            return FileProgress { bar: None };
        }
        let size_text = match size {
            Some(size) => format!(" ({})", HumanBytes(size)),
            None => String::new(),
        };
        let resume = if from > 0 {
            format!(", resuming after {}", HumanBytes(from))
        } else {
            String::new()
        };
        anstream::eprintln!("{}: downloading `{file}`{size_text}{resume}", self.model);
        let bar = (self.bars && size.is_some_and(|s| s > 1 << 20)).then(|| {
            let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "  [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_position(from);
            bar
        });
        FileProgress { bar }
    }

    /// Says that an interrupted transfer of `file` is tried again.
    pub fn retry(&self, file: &str, cause: &str) {
        if self.quiet {
            return;
        }
        anstream::eprintln!(
            "{}: the transfer of `{file}` stopped ({cause}); resuming",
            self.model
        );
    }
}

/// Progress of one file.
pub struct FileProgress {
    bar: Option<ProgressBar>,
}

impl FileProgress {
    /// `n` more bytes arrived.
    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
}

impl Drop for FileProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
