//! Requests to the hub: what it says about a file, and a file's bytes.
//!
//! Redirects are followed here, not by the HTTP client, so that each hop decides for
//! itself whether the token goes with it ([`HubAccess::may_authorize`]: only to the
//! endpoint's origin). Asking about a file follows relative redirects (a renamed
//! repository) and stops at the first answer that names a commit: for an LFS file that
//! is a redirect whose `Location` is where the bytes are. Responses are never
//! decompressed (`Accept-Encoding: identity`), so byte offsets for `Range` are offsets
//! into the file.

use std::time::Duration;

use ureq::http::{Response, StatusCode};

use super::file_meta::FileMeta;
use super::hf_error::HfError;
use super::hub_access::{HubAccess, join_location};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;

/// What the hub says about a file.
#[derive(Debug)]
pub enum Probe {
    Found(FileMeta),
    /// 404: the revision has no such file (`reason`: the hub's `X-Error-Message`).
    Missing {
        reason: Option<String>,
    },
}

/// An HTTP client for one `hf:` source.
pub struct HubClient {
    agent: ureq::Agent,
    access: HubAccess,
    /// The source as written, for messages.
    model: String,
}

impl HubClient {
    pub fn new(access: HubAccess, model: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .accept_encoding("identity")
            .user_agent(concat!("accord/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            access,
            model: model.to_string(),
        }
    }

    /// The source as written (`hf:org/name@revision`).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// What the hub says about `file` of `repo` at `revision`.
    pub fn probe(&self, repo: &str, revision: &str, file: &str) -> Result<Probe, HfError> {
        let mut url = self.access.file_url(repo, revision, file);
        for _ in 0..MAX_REDIRECTS {
            let response = self.send("HEAD", &url, None)?;
            let status = response.status();
            if status.is_redirection() {
                let location = self.location(&response, &url)?;
                let absolute = location.contains("://") || location.starts_with("//");
                let target = join_location(&url, &location);
                if absolute
                    && let Ok(meta) = FileMeta::from_headers(response.headers(), target.clone())
                {
                    return Ok(Probe::Found(meta));
                }
                url = target;
                continue;
            }
            if status.is_success() {
                return FileMeta::from_headers(response.headers(), url.clone())
                    .map(Probe::Found)
                    .map_err(|problem| self.not_a_hub(&url, problem.to_string()));
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(Probe::Missing {
                    reason: error_message(&response),
                });
            }
            return Err(self.refusal(&response, &url, file));
        }
        Err(self.not_a_hub(&url, format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// The bytes at `url` from offset `from` on (`Range: bytes=FROM-` when `from > 0`),
    /// after following redirects. The answer's status is the caller's to judge (200:
    /// the whole file, 206: the range).
    pub fn get(&self, url: &str, from: u64, file: &str) -> Result<Response<ureq::Body>, HfError> {
        let mut url = url.to_string();
        let range = (from > 0).then(|| format!("bytes={from}-"));
        for _ in 0..MAX_REDIRECTS {
            let response = self.send("GET", &url, range.as_deref())?;
            let status = response.status();
            if status.is_redirection() {
                url = join_location(&url, &self.location(&response, &url)?);
                continue;
            }
            if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
                return Ok(response);
            }
            return Err(self.refusal(&response, &url, file));
        }
        Err(self.not_a_hub(&url, format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// One request, with the token only when `url` is the endpoint's origin.
    fn send(
        &self,
        method: &str,
        url: &str,
        range: Option<&str>,
    ) -> Result<Response<ureq::Body>, HfError> {
        let mut request = match method {
            "HEAD" => self.agent.head(url),
            _ => self.agent.get(url),
        };
        if let Some(token) = &self.access.token
            && self.access.may_authorize(url)
        {
            request = request.header("Authorization", token.bearer());
        }
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let response = request
            .call()
            .map_err(|e| self.unreachable(url, e.to_string()))?;
        if response.status().is_server_error() {
            return Err(self.unreachable(url, format!("HTTP {}", response.status().as_u16())));
        }
        Ok(response)
    }

    fn location(&self, response: &Response<ureq::Body>, url: &str) -> Result<String, HfError> {
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| self.not_a_hub(url, "a redirect without a `Location`".into()))
    }

    /// The error for a 4xx answer (other than 404 when asking about a file).
    fn refusal(&self, response: &Response<ureq::Body>, url: &str, file: &str) -> HfError {
        let status = response.status().as_u16();
        let (model, file) = (self.model.clone(), file.to_string());
        match status {
            401 | 403 if self.access.token.is_none() => HfError::NoToken {
                model,
                file,
                status,
            },
            401 | 403 => HfError::TokenRefused {
                model,
                file,
                status,
            },
            404 => HfError::MissingFile {
                model,
                file,
                reason: error_message(response),
            },
            _ => HfError::Status {
                model,
                url: shown(url),
                status,
                reason: error_message(response),
            },
        }
    }

    fn unreachable(&self, url: &str, cause: String) -> HfError {
        HfError::Unreachable {
            model: self.model.clone(),
            url: shown(url),
            cause,
        }
    }

    fn not_a_hub(&self, url: &str, problem: String) -> HfError {
        HfError::NotAHub {
            model: self.model.clone(),
            url: shown(url),
            problem,
        }
    }
}

/// `url` as messages show it: without its query, which for a storage host is a signed,
/// short-lived credential.
fn shown(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_string()
}

/// The hub's reason for an error answer (`X-Error-Message`), if it gave one.
fn error_message(response: &Response<ureq::Body>) -> Option<String> {
    response
        .headers()
        .get("x-error-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
}
