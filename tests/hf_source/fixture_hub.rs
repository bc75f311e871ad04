//! A local stand-in for the Hugging Face hub: it serves a fixture repository over the
//! paths and headers the hub uses, so `hf:` sources can be tested without the network.
//!
//! Two listeners play two hosts. The hub (`endpoint()`) answers
//! `HEAD|GET /{org}/{name}/resolve/{revision}/{file}` with `X-Repo-Commit` and an `ETag`;
//! a `.safetensors` file (an LFS file on the hub) is a 302 to the storage host, with
//! `X-Linked-Etag` (its sha256) and `X-Linked-Size`. The storage host serves bytes and
//! honours `Range: bytes=N-`. Every request is recorded with its `Authorization` and
//! `Range` headers, so tests can check what each host saw.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// A repository: its commit and its files.
#[derive(Clone)]
pub struct FixtureRepo {
    /// `org/name`.
    pub repo: String,
    pub commit: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// How the fixture hub misbehaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// The token every hub request must present (401 without it).
    pub token: Option<String>,
    /// The first transfer of each LFS file stops after half its bytes.
    pub interrupt_first_transfer: bool,
    /// LFS files are served with one byte changed.
    pub corrupt_lfs: bool,
}

/// One request as a host saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `hub` or `storage`.
    pub host: &'static str,
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
}

struct Shared {
    repo: FixtureRepo,
    behaviour: Behaviour,
    storage_port: u16,
    seen: Mutex<Vec<Seen>>,
    /// Transfers started per LFS sha256.
    transfers: Mutex<BTreeMap<String, usize>>,
    stopping: AtomicBool,
}

/// A running fixture hub; stopped when dropped.
pub struct FixtureHub {
    shared: Arc<Shared>,
    hub_port: u16,
    threads: Vec<JoinHandle<()>>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn is_lfs(file: &str) -> bool {
    file.ends_with(".safetensors")
}

impl FixtureHub {
    pub fn start(repo: FixtureRepo, behaviour: Behaviour) -> Self {
        let hub = TcpListener::bind("127.0.0.1:0").unwrap();
        let storage = TcpListener::bind("127.0.0.1:0").unwrap();
        let shared = Arc::new(Shared {
            repo,
            behaviour,
            storage_port: storage.local_addr().unwrap().port(),
            seen: Mutex::new(Vec::new()),
            transfers: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
        });
        let hub_port = hub.local_addr().unwrap().port();
        let threads = vec![
            serve(hub, shared.clone(), "hub"),
            serve(storage, shared.clone(), "storage"),
        ];
        Self {
            shared,
            hub_port,
            threads,
        }
    }

    /// The value for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.hub_port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Stops both hosts: later connections are refused.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for port in [self.hub_port, self.shared.storage_port] {
            let _ = TcpStream::connect(("127.0.0.1", port));
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for FixtureHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>, host: &'static str) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let shared = shared.clone();
            std::thread::spawn(move || {
                let _ = answer(stream, &shared, host);
            });
        }
    })
}

/// The request line and lowercased headers of one request.
fn read_request(stream: &TcpStream) -> std::io::Result<(String, String, BTreeMap<String, String>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    Ok((method, path, headers))
}

struct Answer {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection after this many body bytes.
    cut_after: Option<usize>,
}

impl Answer {
    fn new(status: &'static str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn answer(mut stream: TcpStream, shared: &Shared, host: &'static str) -> std::io::Result<()> {
    let (method, path, headers) = read_request(&stream)?;
    shared.seen.lock().unwrap().push(Seen {
        host,
        method: method.clone(),
        path: path.clone(),
        authorization: headers.get("authorization").cloned(),
        range: headers.get("range").cloned(),
    });
    let answer = match host {
        "hub" => hub_answer(shared, &path, &headers),
        _ => storage_answer(shared, &path, &headers),
    };
    let length = answer.body.len();
    let mut head = format!("HTTP/1.1 {}\r\n", answer.status);
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ));
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        let end = answer.cut_after.unwrap_or(length).min(length);
        stream.write_all(&answer.body[..end])?;
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

fn hub_answer(shared: &Shared, path: &str, headers: &BTreeMap<String, String>) -> Answer {
    let repo = &shared.repo;
    if let Some(token) = &shared.behaviour.token
        && headers.get("authorization") != Some(&format!("Bearer {token}"))
    {
        return Answer::new("401 Unauthorized")
            .header("X-Error-Code", "GatedRepo")
            .header("X-Error-Message", "Access to this model is restricted.");
    }
    let prefix = format!("/{}/resolve/", repo.repo);
    let Some(rest) = path.strip_prefix(&prefix) else {
        return Answer::new("404 Not Found").header("X-Error-Code", "RepoNotFound");
    };
    let (revision, file) = rest.split_once('/').unwrap_or((rest, ""));
    if revision != "main" && revision != repo.commit {
        return Answer::new("404 Not Found")
            .header("X-Error-Code", "RevisionNotFound")
            .header("X-Error-Message", "Invalid rev id");
    }
    let Some(bytes) = repo.files.get(file) else {
        return Answer::new("404 Not Found")
            .header("X-Error-Code", "EntryNotFound")
            .header("X-Error-Message", "Entry not found");
    };
    let sha = sha256_hex(bytes);
    let answer = if is_lfs(file) {
        let location = format!(
            "http://127.0.0.1:{}/lfs/{sha}?expires=1&signature=not-a-secret",
            shared.storage_port
        );
        Answer::new("302 Found")
            .header("Location", location)
            .header("ETag", "\"0123456789abcdef0123456789abcdef01234567\"")
            .header("X-Linked-Etag", format!("\"{sha}\""))
            .header("X-Linked-Size", bytes.len().to_string())
    } else {
        let mut answer = Answer::new("200 OK").header("ETag", format!("\"{}\"", &sha[..40]));
        answer.body = bytes.clone();
        answer
    };
    answer.header("X-Repo-Commit", repo.commit.clone())
}

fn storage_answer(shared: &Shared, path: &str, headers: &BTreeMap<String, String>) -> Answer {
    let sha = path
        .strip_prefix("/lfs/")
        .and_then(|p| p.split('?').next())
        .unwrap_or_default();
    let Some(bytes) = shared
        .repo
        .files
        .values()
        .find(|b| sha256_hex(b) == sha)
        .cloned()
    else {
        return Answer::new("404 Not Found");
    };
    let mut bytes = bytes;
    if shared.behaviour.corrupt_lfs {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    let transfer = {
        let mut transfers = shared.transfers.lock().unwrap();
        let count = transfers.entry(sha.to_string()).or_default();
        *count += 1;
        *count
    };
    let from: usize = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let total = bytes.len();
    let mut answer = if from > 0 {
        let mut answer = Answer::new("206 Partial Content").header(
            "Content-Range",
            format!("bytes {from}-{}/{total}", total - 1),
        );
        answer.body = bytes[from..].to_vec();
        answer
    } else {
        let mut answer = Answer::new("200 OK");
        answer.body = bytes;
        answer
    };
    if shared.behaviour.interrupt_first_transfer && transfer == 1 {
        answer.cut_after = Some(total / 2);
    }
    answer.header("Accept-Ranges", "bytes")
}
