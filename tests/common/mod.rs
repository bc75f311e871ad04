//! Helpers for integration tests: a temporary workspace and the real binaries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `accord` binary under test.
pub fn accord_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_accord"))
}

/// `examples/custom_kind.rs`: `accord` plus a slow `word_count` kind (built by `cargo test`).
pub fn custom_kind_bin() -> PathBuf {
    let bin = accord_bin();
    let path = bin.parent().unwrap().join("examples").join("custom_kind");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds examples",
        path.display()
    );
    path
}

/// A command's exit code and output.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A temporary folder holding specs and a store.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }

    pub fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("ACCORD_STORE")
            .env_remove("CLICOLOR_FORCE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `accord ARGS` in the workspace.
    pub fn accord(&self, args: &[&str]) -> Output {
        run(self.command(&accord_bin(), args))
    }

    /// Runs the custom-kind example with `ARGS` in the workspace.
    pub fn custom(&self, args: &[&str]) -> Output {
        run(self.command(&custom_kind_bin(), args))
    }

    /// Starts the custom-kind example with piped output.
    pub fn spawn_custom(&self, args: &[&str]) -> Child {
        self.command(&custom_kind_bin(), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The artifact folders in the store.
    pub fn entries(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let store = self.dir.path().join(".accord/store");
        for shard in std::fs::read_dir(store).into_iter().flatten().flatten() {
            for entry in std::fs::read_dir(shard.path()).unwrap().flatten() {
                out.push(entry.path());
            }
        }
        out.sort();
        out
    }
}

pub fn run(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The two-stage pipeline most tests use.
pub const PIPELINE: &str = "\
# A test pipeline.
version: 1
name: test
seed: 7
stages:
  dilemmas:
    kind: prompt_synthesis
    with:
      count: 12
      tiers: [professional, interpersonal, everyday]
  pairs:
    kind: persona_pairing
    needs: [dilemmas]
    with:
      pairs_per_dilemma: 2
      temperature: 0.00001
";

/// `insta` settings that hide volatile values: temp paths, keys, digests, timings.
pub fn redacted() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    settings.add_filter(r"[0-9a-f]{64}", "[KEY]");
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[HASH]");
    settings.add_filter(r"\d+\.\d+s\b", "[TIME]");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

/// Reads a Parquet file into rows of (column → string value) using arrow.
pub fn read_parquet(path: &Path) -> arrow::record_batch::RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

/// The value under `key` in a Parquet file's key-value metadata.
pub fn parquet_metadata(path: &Path, key: &str) -> Option<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
}

/// The string column `name` of `batch`.
pub fn strings(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<String> {
    let column = batch.column_by_name(name).unwrap();
    let array = column
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    array.iter().map(|v| v.unwrap().to_string()).collect()
}

/// The tiny Qwen2 fixture, copied into `ws` with a context long enough for negotiation
/// prompts (its 256 positions are too few; the rotary embeddings need no change). Returns
/// its model source, `path:tiny`.
pub fn tiny_long_context(ws: &Workspace) -> String {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/qwen2-tied");
    let to = ws.path().join("tiny");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let config = std::fs::read_to_string(to.join("config.json")).unwrap();
    let config = config.replace(
        "\"max_position_embeddings\": 256",
        "\"max_position_embeddings\": 4096",
    );
    std::fs::write(to.join("config.json"), config).unwrap();
    "path:tiny".into()
}

/// Every file below `dir`, at any depth (none when it does not exist).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}
