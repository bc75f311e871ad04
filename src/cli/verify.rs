//! `accord verify`: re-hash every artifact and report the corrupt ones.

use std::time::Instant;

use super::gc::human_bytes;
use super::print;
use crate::store::Store;

pub fn verify(store: &Store) -> std::io::Result<i32> {
    if !store.exists() {
        return Ok(super::no_store(store, "verify"));
    }
    let started = Instant::now();
    let crate::store::artifact::VerifyReport {
        entries,
        bytes,
        corrupt,
    } = match store.verify_all() {
        Ok(result) => result,
        Err(e) => {
            anstream::eprintln!("{}: {e}", crate::output::error_label());
            return Ok(1);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    for (dir, reason) in &corrupt {
        anstream::eprintln!(
            "{}: `{}` is corrupt: {reason}",
            crate::output::error_label(),
            dir.display()
        );
    }
    print(&format!(
        "verified {} artifact{} ({}) in {seconds:.2}s ({:.2} GB/s); {} corrupt\n",
        entries - corrupt.len(),
        if entries - corrupt.len() == 1 {
            ""
        } else {
            "s"
        },
        human_bytes(bytes),
        bytes as f64 / seconds.max(1e-9) / 1e9,
        corrupt.len()
    ))?;
    if !corrupt.is_empty() {
        anstream::eprintln!(
            "  = hint: `accord run` recomputes corrupt artifacts when it next needs them"
        );
    }
    Ok(if corrupt.is_empty() { 0 } else { 1 })
}
