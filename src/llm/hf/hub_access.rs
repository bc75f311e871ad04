//! Where the hub is and who we are to it: its endpoint and our token.
//!
//! The endpoint is `HF_ENDPOINT` when set (a mirror, or a local server in tests), else
//! the `hf-hub` crate's default, taken from the URL it builds for a file so that this
//! code names no host. The token is `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the
//! token file `huggingface-cli login` writes (under `HF_HOME`).
//!
//! The token is a [`HubToken`]: it has no `Display`, its `Debug` prints `***`, and its
//! only use is [`HubToken::bearer`], the value of an `Authorization` header. So it cannot
//! reach an error message, a log line, a key or an artifact by accident.

use std::fmt;

/// A hub access token, printable only as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct HubToken(String);

impl HubToken {
    /// The value of the `Authorization` header that presents the token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for HubToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HubToken(***)")
    }
}

/// The hub's endpoint and the token to present to it.
#[derive(Debug, Clone)]
pub struct HubAccess {
    /// `scheme://host[:port][/prefix]`, without a trailing `/`.
    pub endpoint: String,
    pub token: Option<HubToken>,
}

impl HubAccess {
    /// The endpoint and token the environment sets.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(default_endpoint);
        Self {
            endpoint,
            token: token_from_env(),
        }
    }

    /// The URL of `file` of repository `repo` at `revision` (a branch, tag or commit).
    pub fn file_url(&self, repo: &str, revision: &str, file: &str) -> String {
        // As the hub's own clients do: a `/` in a revision (`refs/pr/1`) is escaped.
        let revision = revision.replace('/', "%2F");
        format!("{}/{repo}/resolve/{revision}/{file}", self.endpoint)
    }

    /// Whether a request to `url` may carry the token: only to the endpoint's own origin.
    pub fn may_authorize(&self, url: &str) -> bool {
        same_origin(url, &self.endpoint)
    }
}

/// The `hf-hub` crate's endpoint: the start of the URL it builds for a file.
fn default_endpoint() -> String {
    let built = hf_hub::api::sync::ApiBuilder::new()
        .with_token(None)
        .with_progress(false)
        .build();
    match built {
        Ok(api) => {
            let url = api.model("org/name".into()).url("file");
            url.trim_end_matches("/org/name/resolve/main/file")
                .to_string()
        }
        // Building the client sets up nothing that can fail without TLS options; if it
        // ever does, requests fail with a message naming `HF_ENDPOINT`.
        Err(_) => String::new(),
    }
}

fn token_from_env() -> Option<HubToken> {
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Ok(token) = std::env::var(var) {
            let token = token.trim();
            if !token.is_empty() {
                return Some(HubToken(token.to_string()));
            }
        }
    }
    hf_hub::Cache::from_env().token().map(HubToken)
}

/// Whether `a` and `b` share scheme, host and port (compared as written, so
/// `http://h` and `http://h:80` differ: when unsure, the token stays home).
pub fn same_origin(a: &str, b: &str) -> bool {
    match (origin(a), origin(b)) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(&b),
        _ => false,
    }
}

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Some(format!("{scheme}://{authority}"))
}

/// `location` (a redirect's `Location`) made absolute against `base`, the URL that
/// answered with it.
pub fn join_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin = origin(base).unwrap_or_default();
    if location.starts_with("//") {
        let scheme = base.split_once("://").map(|(s, _)| s).unwrap_or("https");
        return format!("{scheme}:{location}");
    }
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    // Relative to the base's folder.
    let path_end = base.find(['?', '#']).unwrap_or(base.len());
    let folder = match base[..path_end].rfind('/') {
        Some(slash) if slash + 1 > origin.len() => &base[..=slash],
        _ => return format!("{origin}/{location}"),
    };
    format!("{folder}{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_the_endpoints_origin() {
        let access = HubAccess {
            endpoint: "http://127.0.0.1:8000".into(),
            token: None,
        };
        assert!(access.may_authorize("http://127.0.0.1:8000/org/name/resolve/main/x"));
        assert!(!access.may_authorize("http://127.0.0.1:8001/blob"));
        assert!(!access.may_authorize("https://127.0.0.1:8000/blob"));
        assert!(!access.may_authorize("http://storage.example/blob"));
        assert!(!access.may_authorize("/relative"));
    }

    #[test]
    fn a_token_prints_as_stars() {
        let token = HubToken("hf_secret".into());
        assert_eq!(format!("{token:?}"), "HubToken(***)");
        let access = HubAccess {
            endpoint: "http://h".into(),
            token: Some(token),
        };
        assert!(!format!("{access:?}").contains("hf_secret"));
    }

    #[test]
    fn redirect_locations_are_made_absolute() {
        let base = "http://h:1/org/name/resolve/main/model.safetensors";
        assert_eq!(join_location(base, "http://cdn/x"), "http://cdn/x");
        assert_eq!(join_location(base, "/api/x"), "http://h:1/api/x");
        assert_eq!(join_location(base, "//cdn/x"), "http://cdn/x");
        assert_eq!(
            join_location(base, "other.bin"),
            "http://h:1/org/name/resolve/main/other.bin"
        );
    }

    #[test]
    fn the_default_endpoint_is_hf_hubs() {
        let endpoint = default_endpoint();
        assert!(endpoint.starts_with("https://"), "{endpoint}");
        assert!(!endpoint.ends_with('/'), "{endpoint}");
    }

    #[test]
    fn revisions_with_a_slash_are_escaped() {
        let access = HubAccess {
            endpoint: "http://h".into(),
            token: None,
        };
        assert_eq!(
            access.file_url("org/name", "refs/pr/1", "config.json"),
            "http://h/org/name/resolve/refs%2Fpr%2F1/config.json"
        );
    }
}
