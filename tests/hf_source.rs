//! `hf:org/name[@revision]` sources against a local stand-in for the hub (see
//! `hf_source/fixture_hub.rs`): a redirect to a storage host, an interrupted transfer
//! that resumes, a gated repository, offline use from the cache, `sha256:` pins, sharded
//! weights, and a token that never leaves the request headers.

mod common;
#[path = "hf_source/fixture_hub.rs"]
mod fixture_hub;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Output, Workspace, accord_bin, files_below, run};
use fixture_hub::{Behaviour, FixtureHub, FixtureRepo, sha256_hex};

const TOKEN: &str = "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";
const COMMIT: &str = "3c1f6b0e2d9a4c5b8e7f6a5d4c3b2a1f0e9d8c7b";
const REPO: &str = "org/tiny";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/qwen2-tied")
}

/// The tiny Qwen2 fixture as a hub repository with one weights file (and no
/// `special_tokens_map.json`, which the hub then answers with a 404).
fn tiny_repo() -> FixtureRepo {
    let mut files = BTreeMap::new();
    for name in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "chat_template.jinja",
        "model.safetensors",
    ] {
        files.insert(
            name.to_string(),
            std::fs::read(fixture_dir().join(name)).unwrap(),
        );
    }
    FixtureRepo {
        repo: REPO.into(),
        commit: COMMIT.into(),
        files,
    }
}

/// The same model with its weights in two shards and an index.
fn sharded_repo() -> FixtureRepo {
    let mut repo = tiny_repo();
    let weights = repo.files.remove("model.safetensors").unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let mut all = tensors.tensors();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let half = all.len() / 2;
    let mut weight_map = serde_json::Map::new();
    for (i, part) in [&all[..half], &all[half..]].into_iter().enumerate() {
        let name = format!("model-0000{}-of-00002.safetensors", i + 1);
        for (tensor, _) in part {
            weight_map.insert(tensor.clone(), name.clone().into());
        }
        let bytes = safetensors::serialize(part.iter().map(|(n, v)| (n, v)), None).unwrap();
        repo.files.insert(name, bytes);
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    repo.files.insert(
        "model.safetensors.index.json".into(),
        serde_json::to_vec_pretty(&index).unwrap(),
    );
    repo.repo = "org/sharded".into();
    repo
}

/// `accord ARGS` against `hub` (none: a hub that is not there), with a cache and
/// `HF_HOME` inside the workspace and `token` as `HF_TOKEN`.
fn accord(ws: &Workspace, hub: Option<&str>, token: Option<&str>, args: &[&str]) -> Output {
    accord_with(ws, hub, token, args, &[])
}

fn accord_with(
    ws: &Workspace,
    hub: Option<&str>,
    token: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = ws.command(&accord_bin(), args);
    cmd.env("ACCORD_CACHE", ws.path().join("cache"))
        .env("HF_HOME", ws.path().join("hf-home"))
        // A port nothing listens on when there is no hub.
        .env("HF_ENDPOINT", hub.unwrap_or("http://127.0.0.1:9"));
    for var in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    if let Some(token) = token {
        cmd.env("HF_TOKEN", token);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    run(cmd)
}

/// The manifest digest of `files`, computed here from its definition: the sha256 of the
/// sorted lines `"<sha256>  <name>\n"`.
fn manifest(files: &BTreeMap<String, Vec<u8>>) -> String {
    let lines: String = files
        .iter()
        .map(|(name, bytes)| format!("{}  {name}\n", sha256_hex(bytes)))
        .collect();
    sha256_hex(lines.as_bytes())
}

/// Asserts that no file below the workspace (cache, store, specs) holds `secret`.
fn assert_nowhere_on_disk(ws: &Workspace, secret: &str) {
    for path in files_below(ws.path()) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let found = bytes
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(!found, "{} holds the token", path.display());
    }
}

fn assert_snapshot_has(folder: &Path, repo: &FixtureRepo) {
    for (name, bytes) in &repo.files {
        let got = std::fs::read(folder.join(name)).unwrap_or_default();
        assert!(&got == bytes, "`{name}` differs from the repository's");
    }
    let mut names: Vec<String> = files_below(folder)
        .iter()
        .map(|p| {
            p.strip_prefix(folder)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let expected: Vec<&String> = repo.files.keys().collect();
    assert_eq!(names.iter().collect::<Vec<_>>(), expected);
}

#[test]
fn a_repository_arrives_through_a_redirect_and_an_interrupted_transfer_resumes() {
    let ws = Workspace::new();
    let repo = tiny_repo();
    let hub = FixtureHub::start(
        repo.clone(),
        Behaviour {
            token: Some(TOKEN.into()),
            interrupt_first_transfer: true,
            ..Behaviour::default()
        },
    );
    let out = accord(
        &ws,
        Some(&hub.endpoint()),
        Some(TOKEN),
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let folder = PathBuf::from(out.stdout.trim());
    assert!(
        folder.ends_with(format!("hf/models--org--tiny/snapshots/{COMMIT}")),
        "{}",
        folder.display()
    );
    assert_snapshot_has(&folder, &repo);
    assert_eq!(
        std::fs::read_to_string(
            ws.path()
                .join("cache/models/hf/models--org--tiny/refs/main")
        )
        .unwrap(),
        COMMIT
    );

    let weights = repo.files["model.safetensors"].len();
    let seen = hub.seen();
    let storage: Vec<_> = seen.iter().filter(|s| s.host == "storage").collect();
    assert_eq!(
        storage.len(),
        2,
        "one cut transfer and one resumed: {seen:#?}"
    );
    assert!(storage.iter().all(|s| s.method == "GET"));
    assert_eq!(storage[0].range, None);
    assert_eq!(
        storage[1].range.as_deref(),
        Some(format!("bytes={}-", weights / 2).as_str()),
        "the retry resumes after the bytes that arrived"
    );
    assert!(
        storage.iter().all(|s| s.authorization.is_none()),
        "the token went to the storage host: {storage:#?}"
    );
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        seen.iter()
            .filter(|s| s.host == "hub")
            .all(|s| s.authorization.as_deref() == Some(bearer.as_str()))
    );
    assert!(
        out.stderr
            .contains("downloading `model.safetensors` (226.27 KiB)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("resuming"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("sha256: {}", manifest(&repo.files))),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(TOKEN) && !out.stdout.contains(TOKEN));
    assert_nowhere_on_disk(&ws, TOKEN);
    let leftovers: Vec<_> = files_below(&ws.path().join("cache"))
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".incomplete") || name.ends_with(".lock") || name.ends_with(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Fetching again asks the hub for `config.json` only, to learn the commit.
    let before = hub.seen().len();
    let again = accord(
        &ws,
        Some(&hub.endpoint()),
        Some(TOKEN),
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, out.stdout);
    let asked: Vec<String> = hub.seen()[before..]
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(asked, ["/org/tiny/resolve/main/config.json"]);
    assert!(!again.stderr.contains("downloading"), "{}", again.stderr);
}

#[test]
fn once_fetched_a_repository_is_used_offline() {
    let ws = Workspace::new();
    let hub = FixtureHub::start(tiny_repo(), Behaviour::default());
    let endpoint = hub.endpoint();
    let first = accord(
        &ws,
        Some(&endpoint),
        None,
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    hub.stop();

    // A branch falls back to the commit it was at, and says so.
    let branch = accord(
        &ws,
        Some(&endpoint),
        None,
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(branch.code, 0, "{}", branch.stderr);
    assert_eq!(branch.stdout, first.stdout);
    assert!(
        branch
            .stderr
            .contains("warning: the hub is unreachable (`http://127.0.0.1:")
            && branch.stderr.contains(&format!(
                "so `hf:org/tiny@main` is its cached commit `{COMMIT}`, which may be behind"
            )),
        "{}",
        branch.stderr
    );

    // A commit needs no network at all, and neither does `HF_HUB_OFFLINE`.
    let at_commit = format!("hf:org/tiny@{COMMIT}");
    let commit = accord(&ws, Some(&endpoint), None, &["models", "fetch", &at_commit]);
    assert_eq!(commit.code, 0, "{}", commit.stderr);
    assert_eq!(commit.stdout, first.stdout);
    assert!(!commit.stderr.contains("warning"), "{}", commit.stderr);
    let offline = accord_with(
        &ws,
        Some(&endpoint),
        None,
        &["models", "fetch", "hf:org/tiny"],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert!(!offline.stderr.contains("warning"), "{}", offline.stderr);

    // The cached snapshot is a model the engine loads.
    let generated = accord(
        &ws,
        Some(&endpoint),
        None,
        &[
            "--quiet",
            "generate",
            "--model",
            &at_commit,
            "--prompt",
            "Hello",
            "--temperature",
            "0",
            "--max-new-tokens",
            "4",
            "--backend",
            "flex",
        ],
    );
    assert_eq!(generated.code, 0, "{}", generated.stderr);

    // What was never fetched is an error naming the way out.
    let unknown = accord(
        &ws,
        Some(&endpoint),
        None,
        &["models", "fetch", "hf:org/other"],
    );
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("`hf:org/other@main`: cannot reach the hub at"),
        "{}",
        unknown.stderr
    );
    let unknown_offline = accord_with(
        &ws,
        None,
        None,
        &["models", "fetch", "hf:org/other"],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(unknown_offline.code, 1);
    assert!(
        unknown_offline.stderr.contains(
            "`hf:org/other@main` is not in the cache, and `HF_HUB_OFFLINE` forbids the network"
        ),
        "{}",
        unknown_offline.stderr
    );
}

#[test]
fn a_pin_is_the_digest_of_the_repositorys_files() {
    let ws = Workspace::new();
    let repo = tiny_repo();
    let hub = FixtureHub::start(repo.clone(), Behaviour::default());
    let digest = manifest(&repo.files);
    let right = accord(
        &ws,
        Some(&hub.endpoint()),
        None,
        &["models", "fetch", "hf:org/tiny", "--sha256", &digest],
    );
    assert_eq!(right.code, 0, "{}", right.stderr);

    let wrong_pin = "0".repeat(64);
    let wrong = accord(
        &ws,
        Some(&hub.endpoint()),
        None,
        &["models", "fetch", "hf:org/tiny", "--sha256", &wrong_pin],
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains(&format!(
            "`hf:org/tiny@main`: the sha256 of its files is {digest}, but the spec pins {wrong_pin}"
        )),
        "{}",
        wrong.stderr
    );

    // The README's way to check a pin without accord gives the same digest.
    let folder = right.stdout.trim();
    let shell = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -type f -o -type l | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum")
        .current_dir(folder)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&shell.stdout);
    assert!(printed.starts_with(&digest), "{printed}");
}

#[test]
fn a_gated_repository_needs_the_token() {
    let ws = Workspace::new();
    let hub = FixtureHub::start(
        tiny_repo(),
        Behaviour {
            token: Some(TOKEN.into()),
            ..Behaviour::default()
        },
    );
    let without = accord(
        &ws,
        Some(&hub.endpoint()),
        None,
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(without.code, 1);
    assert!(
        without.stderr.contains(
            "`hf:org/tiny@main`: the hub refused `config.json` (HTTP 401) and no token is set"
        ),
        "{}",
        without.stderr
    );
    assert!(
        without.stderr.contains("set `HF_TOKEN`"),
        "{}",
        without.stderr
    );

    let wrong_token = "hf_wrongTokenAlsoNeverWritten";
    let wrong = accord(
        &ws,
        Some(&hub.endpoint()),
        Some(wrong_token),
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong
            .stderr
            .contains("the hub refused `config.json` (HTTP 401) with the token set"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains(wrong_token), "{}", wrong.stderr);
    assert_nowhere_on_disk(&ws, wrong_token);
}

#[test]
fn a_sharded_repository_brings_every_shard_its_index_lists() {
    let ws = Workspace::new();
    let repo = sharded_repo();
    let hub = FixtureHub::start(repo.clone(), Behaviour::default());
    let out = accord(
        &ws,
        Some(&hub.endpoint()),
        None,
        &["models", "fetch", "hf:org/sharded"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_snapshot_has(Path::new(out.stdout.trim()), &repo);

    // The shards load as the one file they were cut from.
    let generate = |model: &str| {
        accord(
            &ws,
            Some(&hub.endpoint()),
            None,
            &[
                "--quiet",
                "generate",
                "--model",
                model,
                "--prompt",
                "Hello",
                "--temperature",
                "0",
                "--max-new-tokens",
                "6",
                "--backend",
                "flex",
            ],
        )
    };
    let sharded = generate("hf:org/sharded");
    let whole = generate(&format!("path:{}", fixture_dir().display()));
    assert_eq!(sharded.code, 0, "{}", sharded.stderr);
    assert_eq!(sharded.stdout, whole.stdout);
}

#[test]
fn a_corrupted_download_is_discarded_and_never_used() {
    let ws = Workspace::new();
    let repo = tiny_repo();
    let corrupt = FixtureHub::start(
        repo.clone(),
        Behaviour {
            corrupt_lfs: true,
            ..Behaviour::default()
        },
    );
    let out = accord(
        &ws,
        Some(&corrupt.endpoint()),
        None,
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(out.code, 1);
    let sha = sha256_hex(&repo.files["model.safetensors"]);
    assert!(
        out.stderr
            .contains("`model.safetensors` arrived with sha256 ")
            && out.stderr.contains(&format!(
                "but the hub announced {sha}; the download was discarded"
            )),
        "{}",
        out.stderr
    );
    let cache = ws.path().join("cache/models/hf/models--org--tiny");
    let kept: Vec<_> = files_below(&cache.join("blobs"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&sha))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
    assert!(
        !cache
            .join("snapshots")
            .join(COMMIT)
            .join("model.safetensors")
            .exists()
    );
    corrupt.stop();

    let good = FixtureHub::start(repo.clone(), Behaviour::default());
    let again = accord(
        &ws,
        Some(&good.endpoint()),
        None,
        &["models", "fetch", "hf:org/tiny"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_snapshot_has(Path::new(again.stdout.trim()), &repo);
}

#[test]
fn a_spec_using_an_hf_model_runs_and_reruns_offline_without_the_token_anywhere() {
    let ws = Workspace::new();
    let mut repo = tiny_repo();
    // Long enough for a dialogue's prompt (as `common::tiny_long_context`).
    let config = String::from_utf8(repo.files["config.json"].clone()).unwrap();
    let config = config.replace(
        "\"max_position_embeddings\": 256",
        "\"max_position_embeddings\": 4096",
    );
    repo.files.insert("config.json".into(), config.into_bytes());
    let pin = manifest(&repo.files);
    let hub = FixtureHub::start(
        repo,
        Behaviour {
            token: Some(TOKEN.into()),
            ..Behaviour::default()
        },
    );
    let endpoint = hub.endpoint();
    ws.write(
        "spec.yaml",
        &format!(
            "version: 1\nname: hub\nseed: 5\nmodels:\n  policy:\n    source: hf:org/tiny\n    \
             sha256: {pin}\nstages:\n  \
             dilemmas:\n    kind: prompt_synthesis\n    with: {{count: 1}}\n  \
             pairs:\n    kind: persona_pairing\n    needs: [dilemmas]\n  \
             dialogues:\n    kind: rollout\n    needs: [pairs]\n    with: {{model: policy, \
             group_size: 2, max_turns: 2, max_new_tokens: 4}}\n"
        ),
    );
    let validate = accord(
        &ws,
        Some(&endpoint),
        Some(TOKEN),
        &["validate", "spec.yaml"],
    );
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    let first = accord(
        &ws,
        Some(&endpoint),
        Some(TOKEN),
        &["run", "spec.yaml", "--backend", "flex"],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(!first.stderr.contains(TOKEN) && !first.stdout.contains(TOKEN));
    hub.stop();

    let again = accord(
        &ws,
        Some(&endpoint),
        Some(TOKEN),
        &["run", "spec.yaml", "--backend", "flex"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("the hub is unreachable"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("dialogues: cached") && !again.stderr.contains("computed"),
        "nothing re-ran: {}",
        again.stderr
    );
    assert_nowhere_on_disk(&ws, TOKEN);
}
