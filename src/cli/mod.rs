//! The `accord` command line: argument definitions and dispatch.
//!
//! Each command lives in its own file. Commands return an exit code; `main` prints
//! nothing itself. Exit codes: 0 success, 1 failure (an invalid spec, a failed stage),
//! 2 bad usage (from clap), 130 interrupted. A closed stdout (`accord show … | head`) is
//! not an error.

mod compare;
mod gc;
mod generate;
mod models;
mod run;
mod schema;
mod serve;
mod show;
mod status;
mod transcripts;
mod validate;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::Registry;
use crate::plan::{DagFormat, Plan};
use crate::spec::{LoadOptions, load};
use crate::store::Store;

/// Declarative experiment pipelines for training and evaluating language models that negotiate.
#[derive(Debug, Parser)]
#[command(name = "accord", version, about, max_term_width = 100)]
pub struct Cli {
    /// The store folder, or the environment variable `ACCORD_STORE` (an empty one counts
    /// as unset) [default: the nearest `.accord/` above the current directory].
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Print no progress; results and errors still print.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The spec a command works on.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The pipeline spec (YAML).
    pub spec: PathBuf,

    /// Override a spec field, e.g. `--set stages.train.with.lr=1e-5` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,

    /// Where in-process models run, overriding the spec's `backend:` (same as
    /// `--set backend=…`).
    #[arg(long, value_enum)]
    pub backend: Option<crate::spec::Backend>,

    /// Only this variant of the spec's `ablations` (e.g. `kl_beta=0.04,seed=2`).
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
}

impl SpecArgs {
    /// The `--set` overrides, `--backend` included.
    pub fn overrides(&self) -> Vec<String> {
        let mut sets = self.sets.clone();
        if let Some(backend) = self.backend {
            let name = clap::ValueEnum::to_possible_value(&backend)
                .expect("backends have names")
                .get_name()
                .to_string();
            sets.push(format!("backend={name}"));
        }
        sets
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every stage whose output is not in the store yet.
    Run {
        #[command(flatten)]
        spec: SpecArgs,
        /// Stages running at once [default: the number of CPU cores].
        #[arg(long, short, value_name = "N")]
        jobs: Option<usize>,
        /// What to do when a stage fails.
        #[arg(long, value_enum, default_value_t = crate::OnError::Fail)]
        on_error: crate::OnError,
        /// Where stale stages run, overriding the spec's `executor:`: here, or one Slurm
        /// batch job each.
        #[arg(long, value_enum)]
        executor: Option<crate::spec::Executor>,
        /// Compute only this stage; its inputs must already be in the store (what a
        /// Slurm job runs).
        #[arg(long, value_name = "STAGE", hide = true)]
        stage: Option<String>,
        /// With `--stage`: fail unless the stage is still the one submitted (its identity).
        #[arg(long, value_name = "ID", hide = true, requires = "stage")]
        identity: Option<String>,
    },
    /// Show whether each stage is fresh, stale (and why) or missing.
    Status {
        #[command(flatten)]
        spec: SpecArgs,
        /// Print one JSON array of `{stage, state, reason, key}` objects.
        #[arg(long)]
        json: bool,
    },
    /// Draw the stage graph.
    Dag {
        #[command(flatten)]
        spec: SpecArgs,
        #[arg(long, value_enum, default_value_t = DagFormat::Text)]
        format: DagFormat,
    },
    /// Print a stage's output table.
    Show {
        #[command(flatten)]
        spec: SpecArgs,
        /// The stage whose output to show.
        stage: String,
        /// How many rows (with `--transcript`: how many dialogues).
        #[arg(long, default_value_t = 10)]
        rows: usize,
        /// `table`: the columns a person reads, fitted to the terminal (`COLUMNS`, or 100
        /// when piped), long text cut with `…`; `csv` and `json`: every column, in full.
        #[arg(long, value_enum, default_value_t = show::ShowFormat::Table)]
        format: show::ShowFormat,
        /// For a `rollout` stage: print its dialogues as transcripts (dilemma, parties,
        /// turns, agreement, summary, and the verdicts of the fresh `judge` stages that
        /// score it); with a DIALOGUE_ID (or a unique prefix of one), only that dialogue.
        #[arg(
            long,
            value_name = "DIALOGUE_ID",
            num_args = 0..=1,
            conflicts_with_all = ["path", "checkpoint", "format"]
        )]
        transcript: Option<Option<String>>,
        /// Print only the path of the Parquet file.
        #[arg(long)]
        path: bool,
        /// Print only the path of the stage's checkpoint folder (a Hugging Face folder).
        #[arg(long, conflicts_with = "path")]
        checkpoint: bool,
    },
    /// Compare the evaluations of every variant: metrics with confidence intervals and,
    /// against a baseline variant, paired-bootstrap differences.
    Compare {
        #[command(flatten)]
        what: compare::ComparisonArgs,
        #[arg(long, value_enum, default_value_t = crate::report::table::CompareFormat::Table)]
        format: crate::report::table::CompareFormat,
        /// Also draw the plots (reward curves, metric bars with intervals) as SVG and
        /// PNG into this folder.
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
    },
    /// Write one self-contained HTML report: the comparison's table and plots inline.
    Report {
        #[command(flatten)]
        what: compare::ComparisonArgs,
        /// The HTML file [default: `NAME-report.html`, NAME the spec's name].
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a spec without running it; print every error found.
    Validate {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Remove artifacts that no kept run refers to.
    Gc {
        /// Keep this many of the latest runs of each spec.
        #[arg(long, default_value_t = 1, value_name = "N")]
        keep_runs: usize,
        /// Also remove the row caches of stages that never finished.
        #[arg(long)]
        work: bool,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every artifact in the store and report corrupt ones.
    Verify,
    /// Sample from a model, streaming the continuation to stdout.
    Generate(generate::GenerateArgs),
    /// Serve a model over an OpenAI-compatible HTTP API (`/v1/chat/completions`).
    Serve(serve::ServeArgs),
    /// Fetch and verify models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Print the JSON Schema of pipeline specs (or, with `--artifacts`, the artifact columns).
    Schema {
        /// Print the artifact schemas as Markdown instead.
        #[arg(long)]
        artifacts: bool,
    },
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn main() -> i32 {
    set_environment_defaults();
    let cli = Cli::parse();
    match dispatch(cli, &Registry::builtin()) {
        Ok(code) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            anstream::eprintln!("{}: {e}", crate::output::error_label());
            1
        }
    }
}

/// A default for the Vulkan loader (which complains on every probe without a runtime
/// folder), unless the user set one.
fn set_environment_defaults() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("accord-xdg-runtime");
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}

/// Runs `cli` with the stage kinds in `registry`; library users call this with their own.
pub fn dispatch(cli: Cli, registry: &Registry) -> std::io::Result<i32> {
    crate::llm::hf::download_progress::set_quiet(cli.quiet);
    let cwd = std::env::current_dir()?;
    let explicit = cli.store.clone().or_else(|| {
        std::env::var_os("ACCORD_STORE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let store = Store::locate(explicit.as_deref(), &cwd);
    match cli.command {
        Command::Run {
            spec,
            jobs,
            on_error,
            executor,
            stage,
            identity,
        } => run::run(
            &spec,
            registry,
            &store,
            run::RunArgs {
                jobs,
                on_error,
                executor,
                stage,
                identity,
            },
            cli.quiet,
        ),
        Command::Status { spec, json } => status::status(&spec, registry, &store, json),
        Command::Dag { spec, format } => {
            let Some(plans) = plans_or_report(&spec, registry)? else {
                return Ok(1);
            };
            let mut text = plans[0].render(format);
            // The variants share the graph; a text drawing lists them and what each sets.
            if format == DagFormat::Text && plans[0].variant.is_some() {
                let all = crate::spec::variants(&plans[0].loaded.spec);
                text.push_str(&format!("\nvariants ({}):\n", plans.len()));
                for variant in all
                    .iter()
                    .filter(|v| plans.iter().any(|p| p.variant.as_ref() == Some(&v.name)))
                {
                    let mut settings = variant.overrides.clone();
                    if let Some(seed) = variant.seed {
                        settings.push(format!("seed {seed} for the stages that sample"));
                    }
                    text.push_str(&format!("  {}  {}\n", variant.name, settings.join(", ")));
                }
            }
            print(&text)
        }
        Command::Show {
            spec,
            stage,
            rows,
            format,
            path,
            checkpoint,
            transcript,
        } => {
            let target = match (path, checkpoint, transcript) {
                (true, _, _) => show::ShowTarget::DataPath,
                (_, true, _) => show::ShowTarget::Checkpoint,
                (_, _, Some(dialogue)) => show::ShowTarget::Transcripts { rows, dialogue },
                _ => show::ShowTarget::Table { rows, format },
            };
            show::show(&spec, registry, &store, &stage, target)
        }
        Command::Compare {
            what,
            format,
            plots,
        } => compare::compare(&what, registry, &store, format, plots.as_deref()),
        Command::Report { what, output } => compare::report(&what, registry, &store, output),
        Command::Validate { spec } => validate::validate(&spec, registry),
        Command::Gc {
            keep_runs,
            work,
            dry_run,
        } => gc::gc(&store, keep_runs, work, dry_run),
        Command::Verify => verify::verify(&store),
        Command::Generate(args) => generate::generate(&args, cli.quiet),
        Command::Serve(args) => serve::serve(&args, cli.quiet),
        Command::Models(command) => models::models(&command),
        Command::Schema { artifacts } => schema::schema(registry, artifacts),
    }
}

/// Says that `store` does not exist, so there is nothing to `what` (never creating it),
/// and returns the exit code 1.
pub(crate) fn no_store(store: &Store, what: &str) -> i32 {
    anstream::eprintln!(
        "{}: there is no store at `{}`, so nothing to {what}\n  = hint: `accord run SPEC` creates one; `--store DIR` or `ACCORD_STORE` names another",
        crate::output::error_label(),
        store.root().display()
    );
    1
}

/// Loads and plans a spec, or prints its errors and returns `None`.
pub(crate) fn plan_or_report(
    spec: &SpecArgs,
    registry: &Registry,
) -> std::io::Result<Option<Plan>> {
    let options = LoadOptions {
        overrides: spec.overrides(),
    };
    match load(&spec.spec, &options, registry) {
        Ok(loaded) => match Plan::new(loaded, registry) {
            Ok(plan) => Ok(Some(plan)),
            Err(e) => {
                anstream::eprintln!("{}: {e}", crate::output::error_label());
                Ok(None)
            }
        },
        Err(failure) => {
            let mut stderr = anstream::stderr();
            write!(
                stderr,
                "{}",
                failure.render(crate::output::stderr_has_color())
            )?;
            Ok(None)
        }
    }
}

/// Plans every variant of the spec (or the one `--variant` names), or prints the errors
/// and returns `None`. A spec without `ablations` gives its one plan, with no variant.
pub(crate) fn plans_or_report(
    spec: &SpecArgs,
    registry: &Registry,
) -> std::io::Result<Option<Vec<Plan>>> {
    let Some(base) = plan_or_report(spec, registry)? else {
        return Ok(None);
    };
    let all = crate::spec::variants(&base.loaded.spec);
    let chosen: Vec<&crate::spec::Variant> = match (&spec.variant, all.is_empty()) {
        (None, true) => return Ok(Some(vec![base])),
        (None, false) => all.iter().collect(),
        (Some(name), _) => match all.iter().find(|v| &v.name == name) {
            Some(variant) => vec![variant],
            None => {
                let known: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
                let hint = if known.is_empty() {
                    "the spec has no `ablations`, so it has no variants".to_string()
                } else {
                    format!("its variants: {}", known.join(", "))
                };
                anstream::eprintln!(
                    "{}: `{}` has no variant `{name}`; {hint}",
                    crate::output::error_label(),
                    spec.spec.display()
                );
                return Ok(None);
            }
        },
    };
    let mut plans = Vec::with_capacity(chosen.len());
    for variant in chosen {
        // The variant's settings, then the command line's, which win.
        let options = LoadOptions {
            overrides: variant
                .overrides
                .iter()
                .cloned()
                .chain(spec.overrides())
                .collect(),
        };
        match load(&spec.spec, &options, registry) {
            Ok(loaded) => {
                let mut plan = match Plan::new(loaded, registry) {
                    Ok(plan) => plan,
                    Err(e) => {
                        anstream::eprintln!("{}: {e}", crate::output::error_label());
                        return Ok(None);
                    }
                };
                plan.variant = Some(variant.name.clone());
                if let Some(seed) = variant.seed {
                    plan.reseed(seed);
                }
                plans.push(plan);
            }
            Err(mut failure) => {
                failure.locate_overrides(&options.overrides, &variant.written_at);
                let mut stderr = anstream::stderr();
                writeln!(
                    stderr,
                    "in variant `{}`, whose settings come from `ablations`:",
                    variant.name
                )?;
                write!(
                    stderr,
                    "{}",
                    failure.render(crate::output::stderr_has_color())
                )?;
                return Ok(None);
            }
        }
    }
    Ok(Some(plans))
}

/// The one plan a command works on: the spec's, or with `ablations` the variant
/// `--variant` names (required then).
pub(crate) fn single_plan_or_report(
    spec: &SpecArgs,
    registry: &Registry,
) -> std::io::Result<Option<Plan>> {
    let Some(mut plans) = plans_or_report(spec, registry)? else {
        return Ok(None);
    };
    if plans.len() > 1 {
        let names: Vec<String> = plans.iter().filter_map(|p| p.variant.clone()).collect();
        anstream::eprintln!(
            "{}: `{}` has {} variants; pick one with `--variant` (one of: {})",
            crate::output::error_label(),
            spec.spec.display(),
            plans.len(),
            names.join(", ")
        );
        return Ok(None);
    }
    Ok(plans.pop())
}

/// Writes `text` to stdout (styles stripped when it is not a terminal).
pub(crate) fn print(text: &str) -> std::io::Result<i32> {
    let mut stdout = anstream::stdout();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(0)
}

/// A path shown relative to the current folder when it is below it.
pub(crate) fn display_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}
