//! Reading a job's log while it runs and after it ends: its last progress line, and its
//! last lines for a failure report. Only the end of a log is read (a training job's log
//! grows for days, and it is read every poll).

use std::path::Path;

/// The last 16 KiB of a log (a training job's log grows for days; it is read every poll).
fn read_end(log: &Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(16 * 1024)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `n` lines of a log, or a note that it cannot be read.
pub(super) fn log_tail(log: &Path, n: usize) -> String {
    match read_end(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| format!("    {l}\n"))
                .collect()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "    (no log: the job never started)\n".into()
        }
        Err(e) => format!("    (cannot read `{}`: {e})\n", log.display()),
    }
}

/// The last progress line a running job's log holds about `stage` (`12/40 (9.8/s, ETA
/// 3s)`), without the stage's name.
pub(super) fn last_progress(log: &Path, stage: &str) -> Option<String> {
    let text = read_end(log).ok()?;
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.strip_prefix(&format!("{stage}: ")).unwrap_or(line);
    (line != "running").then(|| line.chars().take(120).collect())
}
