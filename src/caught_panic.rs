//! A panic in stage code, caught and turned into that stage's failure.
//!
//! A panic is a bug (in accord, a crate it uses, or a custom kind), never the user's
//! fault, but it must not take the run down with it: an uncaught panic on a worker thread
//! used to leave `accord run` waiting forever for a stage that would never report. [`catching`] runs a
//! closure under `catch_unwind` and returns the panic's message and source location, which
//! the executor reports as the stage's failure (dependents are skipped as usual, the run
//! exits 1).
//!
//! The message and location come from a panic hook installed once per process: on a thread
//! inside [`catching`] it records them instead of printing Rust's "thread … panicked at"
//! banner (the stage failure says the same thing, once, in accord's voice); on any other
//! thread it defers to the hook it replaced. Threads a stage spawns (scoped threads, rayon)
//! print the banner as before, and their panic reaches the stage's thread when it is joined.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

/// A caught panic: what it said and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaughtPanic {
    pub message: String,
    /// `file:line:column` in accord's (or a dependency's) source.
    pub location: Option<String>,
}

impl std::fmt::Display for CaughtPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "internal error: {}", self.message)?;
        if let Some(location) = &self.location {
            write!(f, " (at {location})")?;
        }
        write!(
            f,
            "\nhint: a panic is a bug in the code at that location (accord's, or a custom \
             kind's); please report it with the spec and the files that caused it"
        )
    }
}

thread_local! {
    /// Whether this thread is inside [`catching`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// What the hook saw of the last panic on this thread.
    static LAST: RefCell<Option<CaughtPanic>> = const { RefCell::new(None) };
}

/// Runs `work`; a panic inside it comes back as `Err` instead of unwinding further.
pub fn catching<T>(work: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    install_hook();
    let outer = CATCHING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(work));
    CATCHING.with(|c| c.set(outer));
    result.map_err(|payload| {
        LAST.with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| CaughtPanic {
                message: payload_message(payload.as_ref()),
                location: None,
            })
    })
}

fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if CATCHING.with(Cell::get) {
                let caught = CaughtPanic {
                    message: payload_message(info.payload()),
                    location: info
                        .location()
                        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
                };
                LAST.with(|last| *last.borrow_mut() = Some(caught));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_location() {
        let divisor = std::hint::black_box(0usize);
        let caught = catching(|| 7 / divisor).unwrap_err();
        assert!(caught.message.contains("divide by zero"), "{caught:?}");
        let location = caught.location.unwrap();
        assert!(location.starts_with("src/caught_panic.rs:"), "{location}");
    }

    #[test]
    fn a_value_passes_through() {
        assert_eq!(catching(|| 42), Ok(42));
    }

    #[test]
    fn a_formatted_message_is_kept() {
        let caught = catching(|| panic!("tensor {} is {}", "x", 3)).unwrap_err();
        assert_eq!(caught.message, "tensor x is 3");
    }

    #[test]
    fn nested_catching_restores_the_outer_state() {
        let outer = catching(|| {
            let inner = catching(|| panic!("inner"));
            assert_eq!(inner.unwrap_err().message, "inner");
            panic!("outer")
        });
        assert_eq!(outer.unwrap_err().message, "outer");
    }
}
