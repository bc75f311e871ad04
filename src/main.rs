//! The `accord` binary; everything lives in the library (`accord::cli`).

fn main() {
    std::process::exit(accord::cli::main());
}
