//! Run records (`runs/<id>.json`) and each spec's latest keys (`heads/<name>.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::outcome::{RunOutcome, StageOutcome};
use super::{Store, StoreError, io_at, write_atomic};

/// What one `accord run` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// The spec file as named on the command line.
    pub spec: String,
    pub spec_name: String,
    /// blake3 of the spec's canonical JSON after overrides.
    pub spec_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub overrides: Vec<String>,
    pub started_at: String,
    pub seconds: f64,
    pub outcome: RunOutcome,
    pub accord_version: String,
    #[serde(default)]
    pub commit: Option<String>,
    /// The backend in-process models ran on, if any ran.
    #[serde(default)]
    pub backend: Option<String>,
    /// The GPU adapter wgpu used, if any.
    #[serde(default)]
    pub adapter: Option<String>,
    pub threads: usize,
    pub stages: Vec<StageRecord>,
}

/// What happened to one stage in a run.
#[derive(Debug, Clone)]
pub struct StageRecord {
    pub name: String,
    pub kind: String,
    pub key: Option<String>,
    pub digest: Option<String>,
    /// Written as `state` and, for a failure or a skip, `error` (see [`StageOutcome`]).
    pub outcome: StageOutcome,
    pub seconds: f64,
}

/// A [`StageRecord`] as its JSON has it (the field order is the file's).
#[derive(Serialize)]
struct StageRecordOut<'a> {
    name: &'a str,
    kind: &'a str,
    key: Option<&'a str>,
    digest: Option<&'a str>,
    state: &'a str,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// A [`StageRecord`] as read from a file.
#[derive(Deserialize)]
struct StageRecordIn {
    name: String,
    kind: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    state: String,
    seconds: f64,
    #[serde(default)]
    error: Option<String>,
}

impl Serialize for StageRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StageRecordOut {
            name: &self.name,
            kind: &self.kind,
            key: self.key.as_deref(),
            digest: self.digest.as_deref(),
            state: self.outcome.name(),
            seconds: self.seconds,
            error: self.outcome.detail(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StageRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let read = StageRecordIn::deserialize(deserializer)?;
        let outcome = StageOutcome::from_record(&read.state, read.error).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown stage state `{}`", read.state))
        })?;
        Ok(StageRecord {
            name: read.name,
            kind: read.kind,
            key: read.key,
            digest: read.digest,
            outcome,
            seconds: read.seconds,
        })
    }
}

/// The keys of a spec's latest run, for explaining staleness.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Head {
    /// The run that last changed a key.
    pub run: String,
    pub keys: BTreeMap<String, String>,
}

/// A file name for a spec name (and variant).
fn head_file(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ',') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{safe}-{}.json",
        &blake3::hash(name.as_bytes()).to_hex()[..8]
    )
}

impl Store {
    /// Saves a run record and makes it the head of its spec.
    pub fn save_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        let path = self.dir("runs").join(format!("{}.json", record.id));
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(record).expect("records serialise"),
            false,
        )?;
        let old = self.head(&record.spec_name, record.variant.as_deref());
        let mut head = old.clone().unwrap_or_default();
        for stage in &record.stages {
            if let Some(key) = &stage.key
                && stage.outcome.succeeded()
            {
                head.keys.insert(stage.name.clone(), key.clone());
            }
        }
        // A run that changed no key (a no-op run) leaves the head as it is.
        if old.is_some_and(|old| old.keys == head.keys) {
            return Ok(());
        }
        head.run = record.id.clone();
        let name = head_name(&record.spec_name, record.variant.as_deref());
        write_atomic(
            &self.dir("heads").join(head_file(&name)),
            &serde_json::to_vec_pretty(&head).expect("heads serialise"),
            false,
        )
    }

    /// The latest keys of spec `name` (and variant).
    pub fn head(&self, name: &str, variant: Option<&str>) -> Option<Head> {
        let path = self.dir("heads").join(head_file(&head_name(name, variant)));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// All run records, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let dir = self.dir("runs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut runs = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_at(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(record) = serde_json::from_slice::<RunRecord>(
                    &std::fs::read(&path).map_err(io_at(&path))?,
                )
            {
                runs.push(record);
            }
        }
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(runs)
    }
}

fn head_name(name: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{name}@{v}"),
        None => name.to_string(),
    }
}

/// A new run id: UTC time and a random suffix, so ids sort by start time.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let suffix = blake3::hash(format!("{now:?}{}", std::process::id()).as_bytes()).to_hex();
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%S%.3fZ"), &suffix[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stage records as every accord so far has written them.
    const WRITTEN: [&str; 5] = [
        r#"{"name":"a","kind":"prompt_synthesis","key":"k","digest":"d","state":"ran","seconds":1.5}"#,
        r#"{"name":"a","kind":"prompt_synthesis","key":"k","digest":"d","state":"cached","seconds":0.0}"#,
        r#"{"name":"b","kind":"persona_pairing","key":"k","digest":null,"state":"failed","seconds":0.2,"error":"no disk"}"#,
        r#"{"name":"c","kind":"rollout","key":null,"digest":null,"state":"skipped","seconds":0.0,"error":"it needs `b`, which did not finish"}"#,
        r#"{"name":"d","kind":"judge","key":null,"digest":null,"state":"interrupted","seconds":0.0}"#,
    ];

    #[test]
    fn stage_records_read_back_and_write_the_same_json() {
        for json in WRITTEN {
            let record: StageRecord = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&record).unwrap(), json);
        }
        let failed: StageRecord = serde_json::from_str(WRITTEN[2]).unwrap();
        assert_eq!(failed.outcome, StageOutcome::Failed("no disk".into()));
    }

    #[test]
    fn an_unknown_stage_state_is_an_error_not_a_guess() {
        let json = WRITTEN[0].replace("\"ran\"", "\"fresh\"");
        let error = serde_json::from_str::<StageRecord>(&json).unwrap_err();
        assert!(
            error.to_string().contains("unknown stage state `fresh`"),
            "{error}"
        );
    }
}
