//! Any value in any field of a spec: `validate`, `status` and `dag` never panic or hang,
//! exit 0 or 1, and locate every error they print.
//!
//! A deterministic fuzz sweep. The fields are every property of
//! `schemas/pipeline.schema.json` (what `accord schema` prints, generated from the stage
//! kinds' parameters; a test elsewhere keeps it current), walked along a base spec that
//! uses every built-in kind: top-level fields, each model's fields, each stage's `kind`,
//! `needs`, `resources` and every parameter of its kind (nested ones and list items
//! included), and the ablation axes. Each field is given values of every class — floats
//! (non-finite and overflowing ones too), integers past every width, strings (empty, long,
//! unicode, `../..`, NUL, template syntax, YAML's `~`/`null`/`yes`), paths (missing, a
//! folder, devices, a FIFO, a socket, absolute), structures where scalars belong and the
//! other way round, and YAML's own oddities (tags, anchors, duplicate keys, deep nesting) —
//! written into the spec file, and a sample of them again with `--set PATH=VALUE`. Which
//! values a field gets is drawn from [`SeededRng`] with a fixed seed: every value of the
//! field's own class and a few of each other class (`ACCORD_FUZZ_ALL=1` tries them all).
//! A spec that validates is also given to `status` (against a store where the data stages
//! have run, so that downstream keys are computed and referenced files hashed) and `dag`.
//!
//! "Located" is what `accord validate` prints for spec errors (see
//! `tests/snapshots/validate_errors__*.snap`): every line that reports an error starts with
//! `FILE:LINE:COLUMN: error:`, LINE a line of the file, or with `` `--set ARG`: error: ``
//! for an argument that was given; and an error about the fuzzed field (or inside it)
//! points at the line its value is on, or at its `--set` argument. A failure is reported
//! with the field, the value, how it was given and which command misbehaved.

mod common;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use accord::seed::SeededRng;
use common::{Workspace, accord_bin};
use serde_json::Value as Json;

/// The root seed of the sample.
const SEED: u64 = 15;

/// Values of each class every field gets, besides all of its own class.
const PER_OTHER_CLASS: usize = 2;

/// How long one command may take before it counts as hung (a debug build, a busy machine).
const HANG: Duration = Duration::from_secs(20);

/// A spec that validates without any model file and uses every built-in stage kind. Two
/// rollouts, because `judge_pairwise` compares two; `trained` is `train`'s checkpoint.
const BASE: &str = "\
version: 1
name: fuzz
seed: 7
backend: flex
executor: local
resources: {cpus: 2}
models:
  policy: {source: 'path:policy.gguf', dtype: f32}
  judge: {endpoint: 'http://127.0.0.1:9/v1', model: judge-model, concurrency: 2}
  trained: {source: 'stage:train'}
stages:
  dilemmas:
    kind: prompt_synthesis
    with: {count: 4, tiers: [professional, everyday], split: train}
  pairs:
    kind: persona_pairing
    needs: [dilemmas]
    with: {pairs_per_dilemma: 1}
  talk:
    kind: rollout
    needs: [pairs]
    with: {model: policy, max_turns: 3}
  other:
    kind: rollout
    needs: [pairs]
    with: {agents: [policy, policy]}
  score:
    kind: judge
    needs: [talk]
    with: {model: judge}
  versus:
    kind: judge_pairwise
    needs: [talk, other]
    with: {model: judge}
  train:
    kind: grpo
    needs: [pairs]
    resources: {gpus: 1, mem: 16G}
    with: {policy: policy, judge: judge, lr: 1.0e-5, lora: {rank: 4}}
  eval:
    kind: evaluate
    needs: [pairs]
    with: {models: [trained], baseline: policy, judge: judge, suites: [general]}
ablations:
  lr: {stages.train.with.lr: [1.0e-5, 2.0e-5]}
  seeds: [1, 2]
";

// ---------------------------------------------------------------------------------------
// The spec as a tree that can be changed at a path and written back as YAML.

/// A step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A field path, shown as accord shows it: `stages.train.with.lora.rank`, `needs[0]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FieldPath(Vec<Seg>);

impl FieldPath {
    fn key(&self, key: &str) -> FieldPath {
        let mut next = self.clone();
        next.0.push(Seg::Key(key.to_string()));
        next
    }

    fn index(&self, index: usize) -> FieldPath {
        let mut next = self.clone();
        next.0.push(Seg::Index(index));
        next
    }

    /// Whether `--set` can name this path (its keys hold no `.`, `[`, `=` or spaces).
    fn settable(&self) -> bool {
        self.0.iter().all(|s| match s {
            Seg::Key(k) => k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            Seg::Index(_) => true,
        })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A YAML document: scalars kept as the YAML text that writes them.
#[derive(Debug, Clone)]
enum Tree {
    Leaf(String),
    List(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

impl Tree {
    fn parse(text: &str) -> Tree {
        Tree::from_yaml(&serde_yaml::from_str(text).expect("the base spec is YAML"))
    }

    fn from_yaml(value: &serde_yaml::Value) -> Tree {
        match value {
            serde_yaml::Value::Sequence(items) => {
                Tree::List(items.iter().map(Tree::from_yaml).collect())
            }
            serde_yaml::Value::Mapping(map) => Tree::Map(
                map.iter()
                    .map(|(k, v)| {
                        let key = k.as_str().expect("string keys").to_string();
                        (key, Tree::from_yaml(v))
                    })
                    .collect(),
            ),
            serde_yaml::Value::String(s) => Tree::Leaf(serde_json::to_string(s).unwrap()),
            serde_yaml::Value::Number(n) => Tree::Leaf(n.to_string()),
            serde_yaml::Value::Bool(b) => Tree::Leaf(b.to_string()),
            _ => Tree::Leaf("~".into()),
        }
    }

    fn get(&self, path: &[Seg]) -> Option<&Tree> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match (self, first) {
            (Tree::Map(entries), Seg::Key(k)) => {
                entries.iter().find(|(key, _)| key == k)?.1.get(rest)
            }
            (Tree::List(items), Seg::Index(i)) => items.get(*i)?.get(rest),
            _ => None,
        }
    }

    /// Puts `value` at `path`, making the mappings and lists on the way.
    fn set(&mut self, path: &[Seg], value: Tree) {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return;
        };
        match first {
            Seg::Key(k) => {
                if !matches!(self, Tree::Map(_)) {
                    *self = Tree::Map(Vec::new());
                }
                let Tree::Map(entries) = self else {
                    unreachable!()
                };
                let i = match entries.iter().position(|(key, _)| key == k) {
                    Some(i) => i,
                    None => {
                        entries.push((k.clone(), Tree::Map(Vec::new())));
                        entries.len() - 1
                    }
                };
                entries[i].1.set(rest, value);
            }
            Seg::Index(n) => {
                if !matches!(self, Tree::List(_)) {
                    *self = Tree::List(Vec::new());
                }
                let Tree::List(items) = self else {
                    unreachable!()
                };
                while items.len() <= *n {
                    items.push(Tree::Leaf("~".into()));
                }
                items[*n].set(rest, value);
            }
        }
    }

    /// The document as block YAML, and the line (1-based) the value at `target` is on.
    fn to_yaml(&self, target: &[Seg]) -> (String, usize) {
        let mut out = String::new();
        let mut line = 0;
        self.block(&mut Vec::new(), target, 0, &mut out, &mut line);
        (out, line)
    }

    fn block(
        &self,
        at: &mut Vec<Seg>,
        target: &[Seg],
        indent: usize,
        out: &mut String,
        line: &mut usize,
    ) {
        let Tree::Map(entries) = self else {
            unreachable!("the document is a mapping")
        };
        for (key, value) in entries {
            at.push(Seg::Key(key.clone()));
            let key_text = if key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                key.clone()
            } else {
                serde_json::to_string(key).unwrap()
            };
            match value {
                Tree::Map(inner) if !inner.is_empty() && at.as_slice() != target => {
                    let _ = writeln!(out, "{:indent$}{key_text}:", "");
                    value.block(at, target, indent + 2, out, line);
                }
                _ => {
                    if target.starts_with(at) {
                        *line = out.lines().count() + 1;
                    }
                    let _ = writeln!(out, "{:indent$}{key_text}: {}", "", value.flow());
                }
            }
            at.pop();
        }
    }

    fn flow(&self) -> String {
        match self {
            Tree::Leaf(text) => text.clone(),
            Tree::List(items) => {
                let items: Vec<String> = items.iter().map(Tree::flow).collect();
                format!("[{}]", items.join(", "))
            }
            Tree::Map(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap(), v.flow()))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The fields: the schema walked along the base spec.

/// What kind of value a field holds, and so which values are "its own".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Float,
    Integer,
    Text,
    Path,
    Structure,
    Odd,
}

const CLASSES: [Class; 6] = [
    Class::Float,
    Class::Integer,
    Class::Text,
    Class::Path,
    Class::Structure,
    Class::Odd,
];

#[derive(Debug, Clone)]
struct Field {
    path: FieldPath,
    /// The class of the values it takes; `None` when any value is its own (ablation values).
    own: Option<Class>,
    /// A model's `source`: paths are given as `path:…`.
    source: bool,
}

struct Walker<'a> {
    definitions: &'a serde_json::Map<String, Json>,
    base: &'a Tree,
    fields: Vec<Field>,
    /// Stage kinds whose parameters were walked already (once per kind is enough).
    kinds_seen: Vec<String>,
}

impl<'a> Walker<'a> {
    fn resolve(&self, schema: &'a Json) -> &'a Json {
        match schema.get("$ref").and_then(Json::as_str) {
            Some(r) => {
                let definitions: &'a serde_json::Map<String, Json> = self.definitions;
                self.resolve(&definitions[r.trim_start_matches("#/definitions/")])
            }
            None => schema,
        }
    }

    /// The alternatives a field's schema allows (`allOf` of one, `anyOf`, `oneOf`, `$ref`).
    fn alternatives(&self, schema: &'a Json) -> Vec<&'a Json> {
        let schema = self.resolve(schema);
        for combinator in ["anyOf", "oneOf"] {
            if let Some(list) = schema.get(combinator).and_then(Json::as_array) {
                return list.iter().flat_map(|s| self.alternatives(s)).collect();
            }
        }
        if let Some(list) = schema.get("allOf").and_then(Json::as_array)
            && list.len() == 1
            && schema.get("properties").is_none()
        {
            return self.alternatives(&list[0]);
        }
        vec![schema]
    }

    fn types(schema: &Json) -> Vec<String> {
        match schema.get("type") {
            Some(Json::String(t)) => vec![t.clone()],
            Some(Json::Array(ts)) => ts
                .iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
            _ if schema.get("const").is_some() || schema.get("enum").is_some() => {
                vec!["string".into()]
            }
            _ => Vec::new(),
        }
    }

    /// The field at `path` with `schema`, then everything inside it.
    fn field(&mut self, path: FieldPath, schema: &'a Json) {
        let alternatives = self.alternatives(schema);
        let types: Vec<String> = alternatives.iter().flat_map(|a| Self::types(a)).collect();
        let name = match path.0.last() {
            Some(Seg::Key(k)) => k.clone(),
            _ => String::new(),
        };
        let has = |t: &str| types.iter().any(|x| x == t);
        let source = name == "source";
        let own = if alternatives.iter().any(|a| a.as_bool() == Some(true)) {
            None
        } else if has("object") || has("array") {
            Some(Class::Structure)
        } else if has("number") {
            Some(Class::Float)
        } else if has("integer") {
            Some(Class::Integer)
        } else if name.ends_with("_file") || name == "library" || source {
            Some(Class::Path)
        } else if has("string") {
            Some(Class::Text)
        } else {
            Some(Class::Odd)
        };
        self.fields.push(Field {
            path: path.clone(),
            own,
            source,
        });
        self.inside(path, &alternatives);
    }

    /// The fields inside a field whose schema has these alternatives.
    fn inside(&mut self, path: FieldPath, alternatives: &[&'a Json]) {
        let base: &'a Tree = self.base;
        let here = base.get(&path.0);
        for alternative in alternatives {
            if let Some(properties) = alternative.get("properties").and_then(Json::as_object) {
                // A stage: its kind's parameters are under `with` (`if kind … then with`).
                if let Some(kind) = stage_kind(alternative, here) {
                    let first = !self.kinds_seen.contains(&kind);
                    self.kinds_seen.push(kind.clone());
                    for key in ["kind", "needs"] {
                        self.field(path.key(key), &properties[key]);
                    }
                    if first {
                        self.field(path.key("with"), with_schema(alternative, &kind));
                        self.field(path.key("resources"), &properties["resources"]);
                    }
                    continue;
                }
                for (key, schema) in properties {
                    self.field(path.key(key), schema);
                }
            }
            if let Some(entry) = alternative.get("additionalProperties")
                && entry.is_object()
                && let Some(Tree::Map(entries)) = here
            {
                for (key, _) in entries {
                    self.field(path.key(key), entry);
                }
            }
            if let Some(items) = alternative.get("items")
                && (items.is_object() || items.as_bool() == Some(true))
            {
                self.field(path.index(0), items);
            }
        }
    }
}

/// The kind of the stage `base` when `schema` is a stage's (with `if kind … then`).
fn stage_kind(schema: &Json, base: Option<&Tree>) -> Option<String> {
    schema.get("allOf")?.as_array()?.first()?.get("if")?;
    let Some(Tree::Map(entries)) = base else {
        return None;
    };
    let (_, Tree::Leaf(kind)) = entries.iter().find(|(k, _)| k == "kind")? else {
        return None;
    };
    serde_json::from_str(kind).ok()
}

/// The schema of the parameters of `kind`, from a stage's schema.
fn with_schema<'a>(stage: &'a Json, kind: &str) -> &'a Json {
    stage["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|branch| branch["if"]["properties"]["kind"]["const"] == kind)
        .map(|branch| &branch["then"]["properties"]["with"])
        .unwrap_or_else(|| panic!("the schema has no parameters for kind `{kind}`"))
}

/// Every field of the base spec's schema, outermost first.
fn fields(base: &Tree) -> Vec<Field> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/pipeline.schema.json"),
    )
    .unwrap();
    let schema: Json = serde_json::from_str(&text).unwrap();
    let mut walker = Walker {
        definitions: schema["definitions"].as_object().unwrap(),
        base,
        fields: Vec::new(),
        kinds_seen: Vec::new(),
    };
    walker.inside(FieldPath(Vec::new()), &[&schema]);
    let kinds = &schema["definitions"]["StageSpec"]["properties"]["kind"]["enum"];
    for kind in kinds.as_array().unwrap() {
        let kind = kind.as_str().unwrap();
        assert!(
            walker.kinds_seen.iter().any(|k| k == kind),
            "the base spec has no `{kind}` stage, so its parameters go unfuzzed: add one to BASE"
        );
    }
    walker.fields
}

// ---------------------------------------------------------------------------------------
// The values.

#[derive(Debug, Clone)]
struct Sample {
    class: Class,
    /// How it is written in YAML (one line).
    yaml: String,
}

impl Sample {
    /// How a report shows it: long values cut.
    fn label(&self) -> String {
        let chars: Vec<char> = self.yaml.chars().collect();
        if chars.len() > 40 {
            format!(
                "{}…({} chars)",
                chars[..30].iter().collect::<String>(),
                chars.len()
            )
        } else {
            self.yaml.clone()
        }
    }

    /// Written for `field`: a model source's paths are `path:` sources.
    fn for_field(&self, field: &Field) -> String {
        match (self.class, field.source) {
            (Class::Path, true) => format!("'path:{}'", self.yaml.trim_matches('\'')),
            _ => self.yaml.clone(),
        }
    }
}

/// Every value tried; `dir` is the workspace (for absolute paths, a FIFO and a socket).
fn samples(dir: &Path) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut add = |class: Class, values: &[&str]| {
        out.extend(values.iter().map(|v| Sample {
            class,
            yaml: v.to_string(),
        }))
    };
    add(
        Class::Float,
        &[
            "0", "-1", "0.5", "1e39", "-1e-45", ".nan", ".inf", "-.inf", "1e308", "1e309", "-0.0",
            "5e-324", "-1.5",
        ],
    );
    add(
        Class::Integer,
        &[
            "18446744073709551616",
            "18446744073709551615",
            "-1",
            "-9223372036854775809",
            "4294967296",
            "1000000000000",
            "0",
            "1",
            "0x10",
            "0o17",
        ],
    );
    let long = format!("'{}'", "x".repeat(20_000));
    add(
        Class::Text,
        &[
            "''",
            &long,
            "\"négociation 🤝 交渉\"",
            "'../..'",
            "'/'",
            "\"a\\0b\"",
            "\"\\u0000\"",
            "\"{{ x }}\"",
            "\"{% for x in %}\"",
            "~",
            "null",
            "yes",
            "'no'",
            "\"\\u202e\\t \"",
            "' '",
            "x",
            "'a=b,c'",
        ],
    );
    let abs = dir.display().to_string();
    let paths = [
        "'missing/file.txt'".to_string(),
        "'.'".to_string(),
        "'/dev/null'".to_string(),
        "'/dev/zero'".to_string(),
        "'/'".to_string(),
        "'../../..'".to_string(),
        format!("'{abs}/notes.txt'"),
        format!("'{abs}/fifo'"),
        format!("'{abs}/socket'"),
        format!("'{abs}/loop'"),
        "'notes.txt'".to_string(),
    ];
    add(
        Class::Path,
        &paths.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let deep = format!("{}{}", "[".repeat(400), "]".repeat(400));
    add(
        Class::Structure,
        &[
            "[]",
            "[1, 2]",
            "{}",
            "{a: 1}",
            "[[[]]]",
            "{x: {y: [.nan]}}",
            "[x, x]",
            "{contains: ''}",
            &deep,
            "{a: 1, a: 2}",
            "{[1]: x}",
        ],
    );
    add(
        Class::Odd,
        &[
            "true",
            "false",
            "\"\"",
            "!!binary aGk=",
            "!custom x",
            "&anchor 3",
            "*nowhere",
            "@reserved",
            "'''",
            "[unclosed",
        ],
    );
    out
}

/// The values `field` gets, drawn with a seed of its own: every listed value of its own
/// class and `PER_OTHER_CLASS` of every other (all of them when `ACCORD_FUZZ_ALL` is set),
/// and for each class one value made up at random ([`random`]).
fn choose(field: &Field, all: &[Sample], everything: bool) -> Vec<Sample> {
    let label = field.path.to_string();
    let mut rng = SeededRng::new(SEED, &[label.as_bytes()]);
    let mut chosen = Vec::new();
    for class in CLASSES {
        let mut of_class: Vec<&Sample> = all.iter().filter(|s| s.class == class).collect();
        if everything || field.own.is_none_or(|own| own == class) {
            chosen.extend(of_class.into_iter().cloned());
        } else {
            for _ in 0..PER_OTHER_CLASS.min(of_class.len()) {
                chosen.push(of_class.remove(rng.below(of_class.len())).clone());
            }
        }
        if let Some(yaml) = random(class, &mut rng) {
            chosen.push(Sample { class, yaml });
        }
    }
    chosen
}

/// A value of `class` made up from `rng` (YAML, one line): a float of any magnitude, an
/// integer of up to 30 digits, a string of characters YAML and templates care about
/// (quoted, so that it stays a string), a path of odd segments.
fn random(class: Class, rng: &mut SeededRng) -> Option<String> {
    Some(match class {
        Class::Float => {
            let sign = pick(rng, &["", "-"]);
            let (whole, fraction) = (rng.next_u64() % 1000, rng.next_u64() % 1000);
            let exponent = rng.below(801) as i64 - 400;
            format!("{sign}{whole}.{fraction:03}e{exponent}")
        }
        Class::Integer => {
            let digits: String = (0..1 + rng.below(30))
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect();
            format!("{}{digits}", pick(rng, &["", "-", "+"]))
        }
        Class::Text => {
            let text: String = (0..rng.below(40))
                .map(|_| {
                    pick(
                        rng,
                        &[
                            "a", " ", ":", "#", "{", "}", "[", "]", ",", "'", "\"", "\\", "\0",
                            "\n", "%", "=", ".", "é", "🤝", "*", "&", "!", "|", ">", "{{", "}}",
                            "~",
                        ],
                    )
                })
                .collect();
            serde_json::to_string(&text).unwrap()
        }
        Class::Path => {
            let segments: Vec<String> = (0..1 + rng.below(5))
                .map(|_| {
                    pick(
                        rng,
                        &[
                            ".",
                            "..",
                            "x",
                            "",
                            "dev",
                            "null",
                            "~",
                            "a b",
                            "notes.txt",
                            "%",
                        ],
                    )
                })
                .collect();
            format!("'{}{}'", pick(rng, &["", "/"]), segments.join("/"))
        }
        Class::Structure | Class::Odd => return None,
    })
}

fn pick(rng: &mut SeededRng, items: &[&str]) -> String {
    items[rng.below(items.len())].to_string()
}

// ---------------------------------------------------------------------------------------
// Running the binary and judging what it printed.

/// How a value reaches accord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    File,
    Set,
}

struct Case {
    field: FieldPath,
    value: String,
    via: Via,
    /// The spec's text, and the line the fuzzed value is on (for `Via::File`).
    text: String,
    line: usize,
    /// The `--set` argument (for `Via::Set`).
    set: Option<String>,
}

struct Failure {
    field: FieldPath,
    value: String,
    via: Via,
    command: &'static str,
    problem: String,
}

/// What a command did.
struct Ran {
    code: Option<i32>,
    hung: bool,
    stderr: String,
}

/// Runs `accord ARGS` in `dir`, its output going to files (a full pipe would stall it),
/// and kills it when it is still running after [`HANG`].
fn run(dir: &Path, worker: usize, args: &[&str]) -> Ran {
    let out_path = dir.join(format!("out-{worker}"));
    let err_path = dir.join(format!("err-{worker}"));
    let mut child = Command::new(accord_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("ACCORD_STORE")
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let (code, hung) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status.code(), false);
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    Ran { code, hung, stderr }
}

/// What is wrong with how a command ended and what it printed, if anything.
fn judge(ran: &Ran, file: &str, text: &str, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    if ran.hung {
        return vec![format!("still running after {}s", HANG.as_secs())];
    }
    let stderr: Vec<&str> = ran.stderr.lines().collect();
    if let Some(i) = stderr.iter().position(|l| l.contains("panicked at ")) {
        // `thread 'main' (PID) panicked at FILE:LINE:COLUMN:`, then the message.
        let at = stderr[i].split("panicked at ").nth(1).unwrap_or_default();
        let message = stderr.get(i + 1).copied().unwrap_or_default();
        problems.push(format!("panicked at {at} {}", cut(message)));
    } else {
        match ran.code {
            Some(0 | 1) => {}
            Some(code) => problems.push(format!("exit code {code}")),
            None => problems.push("killed by a signal".into()),
        }
    }
    let lines = text.lines().count();
    let mut errors = 0;
    for line in ran.stderr.lines() {
        let excerpt = line.starts_with(char::is_whitespace)
            || line
                .split_once(" |")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if excerpt || !line.contains("error:") {
            continue;
        }
        errors += 1;
        let (place, rest) = match line.split_once(": error: ") {
            Some(split) => split,
            None => {
                problems.push(format!("unlocated error: {}", cut(line)));
                continue;
            }
        };
        let field = rest
            .strip_prefix('`')
            .and_then(|r| r.split_once("`: "))
            .map(|(f, _)| f.to_string());
        let about_target = field.as_deref().is_some_and(|f| {
            let target = case.field.to_string();
            f == target
                || f.starts_with(&format!("{target}."))
                || f.starts_with(&format!("{target}["))
        });
        let file_line = place.strip_prefix(&format!("{file}:")).and_then(|at| {
            let (l, c) = at.split_once(':')?;
            Some((l.parse::<usize>().ok()?, c.parse::<usize>().ok()?))
        });
        let set = place
            .strip_prefix("`--set ")
            .and_then(|s| s.strip_suffix('`'));
        match (file_line, set) {
            (Some((l, c)), _) if (1..=lines).contains(&l) && c >= 1 => {
                if about_target && case.via == Via::File && l != case.line {
                    problems.push(format!(
                        "error about the fuzzed field at line {l}, but its value is on line {}: {}",
                        case.line,
                        cut(line)
                    ));
                }
                if about_target && case.via == Via::Set {
                    problems.push(format!(
                        "error about the `--set` field located in the file: {}",
                        cut(line)
                    ));
                }
            }
            (None, Some(arg)) if case.set.as_deref() == Some(arg) => {}
            _ => problems.push(format!("unlocated error: {}", cut(line))),
        }
    }
    if ran.code == Some(1) && errors == 0 {
        problems.push(format!(
            "exit code 1 without an error: {}",
            cut(ran.stderr.lines().next().unwrap_or("(no output)"))
        ));
    }
    if ran.code == Some(0) && errors > 0 {
        problems.push("exit code 0 with errors".into());
    }
    problems
}

fn cut(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() > 160 {
        format!("{}…", chars[..160].iter().collect::<String>())
    } else {
        line.to_string()
    }
}

/// Runs `validate` on one case, and `status` and `dag` when it is valid.
fn try_case(dir: &Path, worker: usize, case: &Case) -> (Vec<Failure>, bool) {
    let file = format!("spec-{worker}.yaml");
    std::fs::write(dir.join(&file), &case.text).unwrap();
    let mut failures = Vec::new();
    let mut valid = false;
    for command in ["validate", "status", "dag"] {
        let mut args = vec![command, file.as_str()];
        if let Some(set) = &case.set {
            args.extend(["--set", set.as_str()]);
        }
        let ran = run(dir, worker, &args);
        for problem in judge(&ran, &file, &case.text, case) {
            failures.push(Failure {
                field: case.field.clone(),
                value: case.value.clone(),
                via: case.via,
                command,
                problem,
            });
        }
        if command == "validate" {
            valid = ran.code == Some(0);
            if !valid {
                break;
            }
        }
    }
    (failures, valid)
}

/// The workspace: the base spec's data stages run (so `status` keys what follows them),
/// a stand-in model file, a text file, a FIFO, a socket and a symlink loop.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("spec.yaml", BASE);
    // The data stages are not reseeded by variants: the spec without its ablations keys
    // them the same.
    ws.write("data.yaml", BASE.split("ablations:").next().unwrap());
    ws.write("policy.gguf", "not really a model: only its digest is read");
    ws.write("notes.txt", "{{ dilemma }} and some text\n");
    let dir = ws.path();
    let fifo = std::ffi::CString::new(dir.join("fifo").display().to_string()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
    std::os::unix::fs::symlink(dir.join("loop"), dir.join("loop")).unwrap();
    for args in [
        &["validate", "spec.yaml"][..],
        &["run", "data.yaml", "--stage", "dilemmas"],
        &["run", "data.yaml", "--stage", "pairs"],
    ] {
        let out = ws.accord(args);
        assert_eq!(out.code, 0, "accord {args:?}: {}{}", out.stdout, out.stderr);
    }
    let status = ws.accord(&["status", "spec.yaml", "--variant", "lr=0.00001,seed=1"]);
    assert!(
        status.stdout.contains("pairs     fresh"),
        "the data stages are stored: {}",
        status.stdout
    );
    ws
}

#[test]
fn any_value_in_any_field_is_accepted_or_a_located_error() {
    let ws = workspace();
    let dir = ws.path().to_path_buf();
    let base = Tree::parse(BASE);
    let fields = fields(&base);
    let all = samples(&dir);
    let everything = std::env::var_os("ACCORD_FUZZ_ALL").is_some();

    let mut cases = Vec::new();
    let mut set_rng = SeededRng::new(SEED, &[b"--set"]);
    for field in &fields {
        for sample in choose(field, &all, everything) {
            let yaml = sample.for_field(field);
            let mut tree = base.clone();
            tree.set(&field.path.0, Tree::Leaf(yaml.clone()));
            let (text, line) = tree.to_yaml(&field.path.0);
            cases.push(Case {
                field: field.path.clone(),
                value: sample.label(),
                via: Via::File,
                text,
                line,
                set: None,
            });
        }
        // The same field with `--set`: one value of each class.
        if !field.path.settable() {
            continue;
        }
        for class in CLASSES {
            let of_class: Vec<&Sample> = all.iter().filter(|s| s.class == class).collect();
            let sample = of_class[set_rng.below(of_class.len())];
            cases.push(Case {
                field: field.path.clone(),
                value: sample.label(),
                via: Via::Set,
                text: BASE.to_string(),
                line: 0,
                set: Some(format!("{}={}", field.path, sample.for_field(field))),
            });
        }
    }

    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let valid = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let (cases, next, failures, valid, dir) = (&cases, &next, &failures, &valid, &dir);
            scope.spawn(move || {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (found, ok) = try_case(dir, worker, case);
                    if ok {
                        valid.fetch_add(1, Ordering::Relaxed);
                    }
                    failures.lock().unwrap().extend(found);
                }
            });
        }
    });

    let failures = failures.into_inner().unwrap();
    let in_file = cases.iter().filter(|c| c.via == Via::File).count();
    let mut summary = format!(
        "fuzzed {} fields with {} variants ({in_file} in the file, {} with --set); {} valid \
         (also given to status and dag); {} failures\n",
        fields.len(),
        cases.len(),
        cases.len() - in_file,
        valid.load(Ordering::Relaxed),
        failures.len()
    );
    // By field, then by what went wrong, with the values that made it go wrong.
    type Problems<'f> = BTreeMap<(&'static str, &'f str), Vec<String>>;
    let mut by_field: BTreeMap<String, Problems> = BTreeMap::new();
    for f in &failures {
        let via = match f.via {
            Via::File => "",
            Via::Set => " (--set)",
        };
        by_field
            .entry(f.field.to_string())
            .or_default()
            .entry((f.command, &f.problem))
            .or_default()
            .push(format!("{}{via}", f.value));
    }
    for (field, problems) in &by_field {
        let _ = writeln!(summary, "  `{field}`:");
        for ((command, problem), values) in problems {
            let _ = writeln!(
                summary,
                "    accord {command}: {problem}\n      with {}",
                values.join(", ")
            );
        }
    }
    println!("{summary}");
    assert!(failures.is_empty(), "{summary}");
}
