//! `hf:org/name[@revision]` sources: a Hugging Face repository, downloaded over the hub's
//! file API into the model cache and used from there.
//!
//! **Where from.** Every file is `GET {endpoint}/{org}/{name}/resolve/{revision}/{file}`.
//! The endpoint is `HF_ENDPOINT`, else the `hf-hub` crate's default; the token is
//! `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`, or the file `huggingface-cli login` writes),
//! sent as `Authorization: Bearer …`. The hub answers large (LFS) files with a redirect
//! to a storage host: redirects are followed by hand, and the token goes only to the
//! endpoint's own origin (scheme, host and port), never to another host. The token is a
//! [`hub_access::HubToken`], which cannot be printed: no error, log line, key or file
//! ever holds it.
//!
//! **Which files.** `config.json`, `tokenizer.json` and `tokenizer_config.json` (required);
//! `generation_config.json`, `chat_template.jinja` and `special_tokens_map.json` when the
//! repository has them; and `model.safetensors`, or `model.safetensors.index.json` with
//! every shard its `weight_map` names. `config.json` is asked for at the revision given;
//! its `X-Repo-Commit` names the commit, and every other file is asked for at that
//! commit, so a branch that moves during a download cannot mix two commits.
//!
//! **The cache** is the hub's own layout, under `$ACCORD_CACHE/models/hf/`:
//! `models--org--name/blobs/<etag>` holds each file once, `snapshots/<commit>/<file>` links
//! to it, `refs/<revision>` names the commit a branch or tag was at, and
//! `.no_exist/<commit>/<file>` records an optional file the commit lacks. A blob is
//! downloaded into `blobs/<etag>.incomplete` (under a lock, so two processes never write
//! it at once), resumed with `Range: bytes=N-` after an interrupted transfer (in the same
//! run, up to [`blob_download::ATTEMPTS`] times, or in a later one), checked against the
//! size the hub announced and, for LFS files, whose etag is their sha256, against that
//! digest; only then is it renamed into place and linked. So a file in a snapshot is
//! always complete and verified, and an interrupted or corrupted download never looks
//! like one.
//!
//! **The network.** A revision that is a commit (40 hex digits) whose snapshot has every
//! file is used without any request: a commit never changes. A branch or tag (`main`, the
//! default) costs one request, for `config.json`, to learn its commit; files that commit's
//! snapshot has are not fetched again. When the hub cannot be reached (a connection
//! error or a 5xx answer), the commit `refs/<revision>` last named is used if its
//! snapshot is complete, with a warning that it may be behind; `HF_HUB_OFFLINE=1` uses
//! the cache without trying the network. Refusals (401, 403, 404) are errors, never
//! hidden behind the cache.
//!
//! **A `sha256:` pin** of an `hf:` source is the [`manifest`] digest of the snapshot: the
//! sha256 of the sorted lines `"<sha256 of file>  <file name>\n"`, one per fetched file
//! (what `sha256sum` prints). `accord models fetch hf:…` prints it.

pub mod blob_download;
pub mod download_progress;
pub mod fetch_repo;
pub mod file_meta;
pub mod hf_error;
pub mod hub_access;
pub mod hub_client;
pub mod manifest;
pub mod repo_cache;
pub mod repo_files;

pub use fetch_repo::fetch_repo;
pub use hf_error::HfError;
pub use manifest::{check_pin, manifest_digest};
