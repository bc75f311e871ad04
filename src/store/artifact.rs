//! Artifacts: a stage's output table as `data.parquet` plus `meta.json`, and any files
//! the stage wrote beside it (a training checkpoint).
//!
//! Every file of an entry is trusted on the same terms: on the no-op path by its size and
//! mtime as recorded when it was last hashed, otherwise by its blake3 digest. A file that
//! is missing or whose digest changed makes the whole entry corrupt, so the stage is
//! reported stale and recomputed; [`Store::verify_files`] re-hashes a checkpoint before
//! it is loaded, whatever its stamp says.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::key::StageKey;
use super::{Store, StoreError, io_at, sync_dir, write_atomic};

/// What `meta.json` records about an artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub key: String,
    pub stage: String,
    pub kind: String,
    /// blake3 of `data.parquet`.
    pub digest: String,
    pub rows: u64,
    pub bytes: u64,
    pub schema: Vec<Column>,
    pub key_parts: StageKey,
    /// When the artifact was written (RFC 3339, UTC).
    pub created_at: String,
    /// How long the stage took to compute it.
    pub seconds: f64,
    pub accord_version: String,
    /// Size and mtime of `data.parquet` when its digest was last checked.
    pub verified: Stamp,
    /// Files the stage wrote beside its table (a training checkpoint), relative to the
    /// entry's folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<StoredFile>,
}

/// One file of an entry besides `data.parquet`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredFile {
    /// `/`-separated, relative to the entry's folder.
    pub path: String,
    pub bytes: u64,
    /// blake3 of the file.
    pub digest: String,
    /// Size and mtime when the digest was last checked (absent in entries written before
    /// accord recorded it: the first lookup hashes the file and records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Stamp>,
}

/// One column of an artifact's schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A file's size and modification time, to tell whether it changed since it was checked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: u128,
}

impl Stamp {
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let meta = std::fs::metadata(path)?;
        let mtime = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Ok(Stamp {
            size: meta.len(),
            mtime_ns: mtime.as_nanos(),
        })
    }
}

/// The result of looking a key up.
#[derive(Debug)]
pub enum Lookup {
    Hit(Box<Meta>),
    Missing,
    /// The entry exists but cannot be trusted; it should be removed and recomputed.
    Corrupt(String),
}

/// A writer that hashes what passes through it.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// blake3 of a file, memory-mapped and hashed on all cores for large files.
pub fn digest_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap_rayon(path)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// What `accord verify` found.
#[derive(Debug)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: usize,
    /// Bytes of the entries that verified.
    pub bytes: u64,
    /// Corrupt entries and why.
    pub corrupt: Vec<(PathBuf, String)>,
}

/// What a stage hands to [`Store::publish`].
pub struct NewArtifact<'a> {
    pub key: &'a str,
    pub stage: &'a str,
    pub parts: &'a StageKey,
    pub batch: &'a RecordBatch,
    pub seconds: f64,
    /// A folder whose contents move into the entry beside `data.parquet`.
    pub files: Option<&'a Path>,
}

/// Moves every file below `from` into `to` (same relative paths), fsynced, and
/// returns them with their digests, sorted by path.
fn move_files_into(from: &Path, to: &Path) -> Result<Vec<StoredFile>, StoreError> {
    let mut files = Vec::new();
    let mut pending = vec![from.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_at(&dir))? {
            let path = entry.map_err(io_at(&dir))?.path();
            let relative = path.strip_prefix(from).expect("below `from`").to_path_buf();
            let dest = to.join(&relative);
            if path.is_dir() {
                std::fs::create_dir_all(&dest).map_err(io_at(&dest))?;
                pending.push(path);
                continue;
            }
            std::fs::rename(&path, &dest).map_err(io_at(&path))?;
            std::fs::File::open(&dest)
                .and_then(|f| f.sync_all())
                .map_err(io_at(&dest))?;
            files.push(StoredFile {
                path: relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
                bytes: std::fs::metadata(&dest).map_err(io_at(&dest))?.len(),
                digest: digest_file(&dest).map_err(io_at(&dest))?,
                verified: Some(Stamp::of(&dest).map_err(io_at(&dest))?),
            });
            if let Some(parent) = dest.parent() {
                sync_dir(parent)?;
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

impl Store {
    /// Looks `key` up, checking the data file against its recorded stamp or digest.
    pub fn lookup(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        let meta_path = dir.join("meta.json");
        let bytes = match std::fs::read(&meta_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if dir.exists() {
                    Lookup::Corrupt("`meta.json` is missing".into())
                } else {
                    Lookup::Missing
                };
            }
            Err(e) => return Lookup::Corrupt(format!("cannot read `meta.json`: {e}")),
        };
        let mut meta: Meta = match serde_json::from_slice(&bytes) {
            Ok(meta) => meta,
            Err(e) => return Lookup::Corrupt(format!("`meta.json` is not valid: {e}")),
        };
        let mut restamped = false;
        let data = dir.join("data.parquet");
        match checked(&data, "data.parquet", &meta.digest, Some(meta.verified)) {
            Ok(Checked::Unchanged) => {}
            Ok(Checked::Rehashed(stamp)) => {
                meta.verified = stamp;
                restamped = true;
            }
            Err(reason) => return Lookup::Corrupt(reason),
        }
        for file in &mut meta.files {
            match checked(
                &dir.join(&file.path),
                &file.path,
                &file.digest,
                file.verified,
            ) {
                Ok(Checked::Unchanged) => {}
                Ok(Checked::Rehashed(stamp)) => {
                    file.verified = Some(stamp);
                    restamped = true;
                }
                Err(reason) => return Lookup::Corrupt(reason),
            }
        }
        if restamped {
            // Remember the check; failing to is harmless (the next lookup re-hashes).
            let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
            let _ = write_atomic(&meta_path, &json, false);
        }
        Lookup::Hit(Box::new(meta))
    }

    /// Checks every file the entry for `key` holds besides `data.parquet` (a checkpoint)
    /// against its recorded digest, whatever its stamp says: for files about to be loaded.
    pub fn verify_files(&self, key: &str) -> Result<(), StoreError> {
        let dir = self.entry_dir(key);
        let meta = read_meta(&dir)?;
        for file in &meta.files {
            let path = dir.join(&file.path);
            checked(&path, &file.path, &file.digest, None)
                .map_err(|reason| StoreError::Corrupt { path, reason })?;
        }
        Ok(())
    }

    /// Removes the entry for `key`, e.g. after finding it corrupt.
    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Ok(());
        }
        // Move it out of the way first so that no reader sees a half-deleted entry.
        let trash = self.dir("tmp").join(format!("{}removed", tmp_prefix(key)));
        std::fs::create_dir_all(self.dir("tmp")).map_err(io_at(&trash))?;
        std::fs::rename(&dir, &trash).map_err(io_at(&dir))?;
        std::fs::remove_dir_all(&trash).map_err(io_at(&trash))
    }

    /// Writes `artifact` to a temporary folder, fsyncs it and renames it into the store.
    pub fn publish(&self, artifact: NewArtifact) -> Result<Meta, StoreError> {
        let tmp_root = self.dir("tmp");
        std::fs::create_dir_all(&tmp_root).map_err(io_at(&tmp_root))?;
        let tmp = tempfile::Builder::new()
            .prefix(&tmp_prefix(artifact.key))
            .tempdir_in(&tmp_root)
            .map_err(io_at(&tmp_root))?;
        let data_path = tmp.path().join("data.parquet");
        let file = std::fs::File::create(&data_path).map_err(io_at(&data_path))?;
        let writer = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        // A stage's table-level metadata becomes the file's key-value metadata too, so
        // readers that ignore Arrow's schema (DuckDB, say) see it.
        let mut extra: Vec<parquet::file::metadata::KeyValue> = artifact
            .batch
            .schema()
            .metadata()
            .iter()
            .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.clone(), v.clone()))
            .collect();
        extra.sort_by(|a, b| a.key.cmp(&b.key));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by(format!("accord {}", crate::VERSION))
            .set_key_value_metadata((!extra.is_empty()).then_some(extra))
            .build();
        let mut parquet = ArrowWriter::try_new(writer, artifact.batch.schema(), Some(props))?;
        parquet.write(artifact.batch)?;
        let mut writer = parquet.into_inner()?;
        writer.flush().map_err(io_at(&data_path))?;
        let digest = writer.hasher.finalize().to_hex().to_string();
        let bytes = writer.bytes;
        let file = writer
            .inner
            .into_inner()
            .map_err(|e| io_at(&data_path)(e.into_error()))?;
        file.sync_all().map_err(io_at(&data_path))?;
        drop(file);
        let schema = artifact.batch.schema();
        let meta = Meta {
            key: artifact.key.to_string(),
            stage: artifact.stage.to_string(),
            kind: artifact.parts.kind.clone(),
            digest,
            rows: artifact.batch.num_rows() as u64,
            bytes,
            schema: schema
                .fields()
                .iter()
                .map(|f| Column {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                    description: f.metadata().get("description").cloned().unwrap_or_default(),
                })
                .collect(),
            key_parts: artifact.parts.clone(),
            created_at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or(jiff::Timestamp::now())
                .to_string(),
            seconds: artifact.seconds,
            accord_version: crate::VERSION.to_string(),
            verified: Stamp::of(&data_path).map_err(io_at(&data_path))?,
            files: Vec::new(),
        };
        let files = match artifact.files.filter(|dir| dir.is_dir()) {
            Some(dir) => move_files_into(dir, tmp.path())?,
            None => Vec::new(),
        };
        let meta = Meta { files, ..meta };
        let meta_path = tmp.path().join("meta.json");
        {
            let mut f = std::fs::File::create(&meta_path).map_err(io_at(&meta_path))?;
            f.write_all(&serde_json::to_vec_pretty(&meta).expect("meta serialises"))
                .map_err(io_at(&meta_path))?;
            f.sync_all().map_err(io_at(&meta_path))?;
        }
        sync_dir(tmp.path())?;
        let dest = self.entry_dir(artifact.key);
        let parent = dest.parent().expect("entries have a parent");
        std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        let tmp_path = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp_path, &dest) {
            let _ = std::fs::remove_dir_all(&tmp_path);
            if dest.join("meta.json").exists() {
                // Another process published the same key first; same inputs, same bytes.
                return match self.lookup(artifact.key) {
                    Lookup::Hit(meta) => Ok(*meta),
                    _ => Err(io_at(&dest)(e)),
                };
            }
            return Err(io_at(&dest)(e));
        }
        sync_dir(parent)?;
        Ok(meta)
    }

    /// Reads the artifact for `key`, verifying its digest against `meta.json`.
    pub fn read(&self, key: &str) -> Result<(Meta, RecordBatch), StoreError> {
        let dir = self.entry_dir(key);
        let meta = read_meta(&dir)?;
        let data_path = dir.join("data.parquet");
        let bytes = std::fs::read(&data_path).map_err(io_at(&data_path))?;
        let digest = blake3::hash(&bytes).to_hex().to_string();
        if digest != meta.digest {
            return Err(StoreError::Corrupt {
                path: data_path,
                reason: format!(
                    "digest {} but {} was recorded",
                    &digest[..12],
                    &meta.digest[..12]
                ),
            });
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?
            .with_batch_size(64 * 1024)
            .build()?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt {
                path: data_path.clone(),
                reason: e.to_string(),
            })?;
        let batch =
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| StoreError::Corrupt {
                path: data_path,
                reason: e.to_string(),
            })?;
        Ok((meta, batch))
    }

    /// Re-hashes every artifact.
    pub fn verify_all(&self) -> Result<VerifyReport, StoreError> {
        let mut entries = 0;
        let mut bytes = 0;
        let mut corrupt = Vec::new();
        for dir in self.entry_dirs()? {
            entries += 1;
            let meta: Result<Meta, String> = std::fs::read(dir.join("meta.json"))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
            let data = dir.join("data.parquet");
            match meta {
                Err(e) => corrupt.push((dir.clone(), format!("`meta.json`: {e}"))),
                Ok(meta) => match digest_file(&data) {
                    Ok(digest) if digest == meta.digest => {
                        bytes += meta.bytes;
                        for file in &meta.files {
                            match digest_file(&dir.join(&file.path)) {
                                Ok(digest) if digest == file.digest => bytes += file.bytes,
                                Ok(_) => corrupt.push((
                                    dir.clone(),
                                    format!("`{}`: digest mismatch", file.path),
                                )),
                                Err(e) => {
                                    corrupt.push((dir.clone(), format!("`{}`: {e}", file.path)))
                                }
                            }
                        }
                    }
                    Ok(_) => corrupt.push((dir.clone(), "digest mismatch".into())),
                    Err(e) => corrupt.push((dir.clone(), e.to_string())),
                },
            }
        }
        Ok(VerifyReport {
            entries,
            bytes,
            corrupt,
        })
    }

    /// Removes temporary folders left by processes that died while writing (`kill -9`):
    /// this host's whose process is gone, and any older than a day (another host's
    /// process cannot be checked from here).
    pub fn clean_abandoned_writes(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir("tmp")) else {
            return;
        };
        let here = host_tag();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut parts = name.splitn(3, '-');
            let pid = parts.nth(1).and_then(|p| p.parse::<u32>().ok());
            let host = parts
                .next()
                .and_then(|rest| rest.split_once('~'))
                .map(|(h, _)| h);
            let local = host.is_none_or(|h| h == here);
            let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            let old = modified(&entry.path())
                .elapsed()
                .is_ok_and(|age| age > Duration::from_secs(24 * 3600));
            if pid.is_some() && ((local && !alive) || old) && cfg!(target_os = "linux") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Every entry folder in the store.
    pub(crate) fn entry_dirs(&self) -> Result<Vec<PathBuf>, StoreError> {
        let root = self.dir("store");
        let mut dirs = Vec::new();
        let Ok(shards) = std::fs::read_dir(&root) else {
            return Ok(dirs);
        };
        for shard in shards {
            let shard = shard.map_err(io_at(&root))?.path();
            for entry in std::fs::read_dir(&shard).map_err(io_at(&shard))? {
                dirs.push(entry.map_err(io_at(&shard))?.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }
}

/// The `meta.json` of the entry folder `dir`.
fn read_meta(dir: &Path) -> Result<Meta, StoreError> {
    let path = dir.join("meta.json");
    let bytes = std::fs::read(&path).map_err(io_at(&path))?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Json { path, source })
}

/// How a stored file compared with what `meta.json` recorded.
enum Checked {
    /// Its size and mtime are the ones recorded when it was last hashed.
    Unchanged,
    /// It was hashed again and matched; the new stamp.
    Rehashed(Stamp),
}

/// Checks the file at `path` (`name` in messages) against `digest`: by its stamp when it
/// equals `verified`, by hashing it otherwise; why it cannot be trusted when it fails.
fn checked(
    path: &Path,
    name: &str,
    digest: &str,
    verified: Option<Stamp>,
) -> Result<Checked, String> {
    let stamp = match Stamp::of(path) {
        Ok(stamp) => stamp,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("`{name}` is missing"));
        }
        Err(e) => return Err(format!("cannot read `{name}`: {e}")),
    };
    if verified == Some(stamp) {
        return Ok(Checked::Unchanged);
    }
    match digest_file(path) {
        Ok(found) if found == digest => Ok(Checked::Rehashed(stamp)),
        Ok(found) => Err(format!(
            "`{name}` has digest {} but {} was recorded",
            &found[..12],
            digest.get(..12).unwrap_or(digest)
        )),
        Err(e) => Err(format!("cannot read `{name}`: {e}")),
    }
}

/// This host's name as temporary folder names carry it (no `-` or `~`).
fn host_tag() -> String {
    super::lock::host_name().replace(['-', '~', '/'], "_")
}

/// `KEY16-PID-HOST~`: whose temporary folder it is, for [`Store::clean_abandoned_writes`].
fn tmp_prefix(key: &str) -> String {
    format!("{}-{}-{}~", &key[..16], std::process::id(), host_tag())
}

/// The modification time of a path as seconds since the epoch, for sorting.
pub(crate) fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH)
}
