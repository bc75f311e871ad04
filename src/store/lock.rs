//! Locks between `accord` processes sharing a store, on one host or many.
//!
//! A store may live on a shared filesystem (NFS, Lustre, GPFS) that cluster jobs on many
//! hosts write at once, where `flock` is unreliable or host-local. So a lock is a file,
//! created exclusively: its owner's record is written to a private file first and then
//! hard-linked into place, which succeeds for exactly one process even over NFS. The
//! record names the owner (host, pid, a random token); while it is held, a heartbeat
//! thread touches the file every few seconds. A lock is stale, and is broken, when its
//! owner is on this host and is no longer running (its pid gone, or taken by a process
//! that started later), or is on another host and its heartbeat is older than
//! [`stale_after`] (60 s; `ACCORD_LOCK_STALE_SECS`), which covers a node that crashed
//! (this assumes the hosts' clocks agree to well within that). Breakers take turns and
//! look again before removing, so none removes a lock that was just taken.
//!
//! Locks in use:
//! - `locks/<key>.lock`: two runs never compute the same key at once; the second waits,
//!   then finds the first one's artifact.
//! - `locks/runs/<token>.lease`: each run holds one; `accord gc` takes `locks/gc.lock` and
//!   gives up while any live lease exists, and a run waits while `gc.lock` is held, so
//!   garbage collection never removes what a live run is using.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, io_at};

/// How often a held lock's file is touched.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How often a waiting process looks again.
const POLL: Duration = Duration::from_millis(200);

/// A heartbeat older than this marks a lock as abandoned.
pub fn stale_after() -> Duration {
    std::env::var("ACCORD_LOCK_STALE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

/// Who holds a lock, as written in its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    pub token: String,
    /// When the lock was taken (RFC 3339).
    pub since: String,
    /// When the owning process started, to tell it from a later one with its pid.
    #[serde(default)]
    pub started: Option<u64>,
}

impl Owner {
    fn new() -> Owner {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = jiff::Timestamp::now();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token =
            blake3::hash(format!("{now:?}{}{n}{}", std::process::id(), host_name()).as_bytes())
                .to_hex()[..16]
                .to_string();
        Owner {
            host: host_name(),
            pid: std::process::id(),
            token,
            since: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            started: process_start(std::process::id()),
        }
    }
}

/// This host's name, as the kernel knows it.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "unknown-host".into(),
    }
}

/// Whether process `pid` exists on this host.
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The files this process holds, touched by one heartbeat thread.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HEARTBEAT_THREAD: Once = Once::new();

fn start_heartbeat() {
    HEARTBEAT_THREAD.call_once(|| {
        std::thread::Builder::new()
            .name("accord-lock-heartbeat".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(HEARTBEAT);
                    let held = HELD.lock().map(|h| h.clone()).unwrap_or_default();
                    for path in held {
                        touch(&path);
                    }
                }
            })
            .expect("threads can be spawned");
    });
}

fn touch(path: &Path) {
    if let Ok(file) = File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The run leases this process holds, by store root.
static LEASES: Mutex<Vec<(PathBuf, Weak<Lock>)>> = Mutex::new(Vec::new());

/// A run's lease on a store (see [`Store::lock_shared_for_run`]); released when the last
/// run of the process sharing it drops it.
#[derive(Debug, Clone)]
pub struct RunLease {
    _held: Arc<Lock>,
}

/// A held lock; its file is removed on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    token: String,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD.lock() {
            held.retain(|p| *p != self.path);
        }
        // Remove the file only if it is still ours (it may have been broken as stale).
        if read_owner(&self.path).is_some_and(|o| o.token == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_owner(path: &Path) -> Option<Owner> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// What a lock file says about its owner.
enum Holder {
    Free,
    Live,
    Stale,
}

fn holder(path: &Path) -> Holder {
    let Ok(meta) = std::fs::metadata(path) else {
        return Holder::Free;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    match read_owner(path) {
        // On this host the process table decides, however long the heartbeat has been
        // silent (a process stopped with Ctrl-Z still holds its locks).
        Some(owner) if owner.host == host_name() => {
            let same_process = process_alive(owner.pid)
                && owner
                    .started
                    .is_none_or(|started| process_start(owner.pid) == Some(started));
            if same_process {
                Holder::Live
            } else {
                Holder::Stale
            }
        }
        _ if age > stale_after() => Holder::Stale,
        // Readable or not (being written), a recent file is held.
        _ => Holder::Live,
    }
}

/// Removes the lock at `path` if it is still stale. Breakers take turns through a
/// `.break` file, so none can remove a lock that another breaker has just created.
fn break_stale(path: &Path) {
    let guard = path.with_extension("break");
    let taken = OpenOptions::new().write(true).create_new(true).open(&guard);
    if taken.is_err() {
        // Another process is breaking it; its guard lives for microseconds, unless that
        // process died holding it.
        let abandoned = std::fs::metadata(&guard)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > Duration::from_secs(10));
        if abandoned {
            let _ = std::fs::remove_file(&guard);
        }
        return;
    }
    if matches!(holder(path), Holder::Stale) {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(&guard);
}

/// When process `pid` started (clock ticks after boot), so that a recycled pid is not
/// taken for the lock's owner; `None` where `/proc` does not say.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Tries once to create `path` holding this process's record.
fn try_create(path: &Path) -> Result<Option<Lock>, StoreError> {
    let dir = path.parent().expect("lock paths have a parent");
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let owner = Owner::new();
    let private = dir.join(format!(
        ".{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("lock"),
        owner.token
    ));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&private)
            .map_err(io_at(&private))?;
        file.write_all(&serde_json::to_vec(&owner).expect("owners serialise"))
            .map_err(io_at(&private))?;
    }
    let linked = std::fs::hard_link(&private, path);
    // Over NFS a retried link() can report EEXIST for the link it made itself: the private
    // file's link count says whether the lock is ours.
    let ours = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&private).is_ok_and(|m| m.nlink() == 2)
    };
    let _ = std::fs::remove_file(&private);
    match linked {
        Ok(()) => {}
        Err(_) if ours => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        // Filesystems without hard links: exclusive creation (O_EXCL) instead.
        Err(_) => match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut file) => {
                file.write_all(&serde_json::to_vec(&owner).expect("owners serialise"))
                    .map_err(io_at(path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(io_at(path)(e)),
        },
    }
    start_heartbeat();
    if let Ok(mut held) = HELD.lock() {
        held.push(path.to_path_buf());
    }
    Ok(Some(Lock {
        path: path.to_path_buf(),
        token: owner.token,
    }))
}

/// Takes the lock at `path` if it is free or stale; `None` if a live process holds it.
pub fn try_lock(path: &Path) -> Result<Option<Lock>, StoreError> {
    for _ in 0..3 {
        match holder(path) {
            Holder::Live => return Ok(None),
            Holder::Stale => break_stale(path),
            Holder::Free => {}
        }
        if let Some(lock) = try_create(path)? {
            return Ok(Some(lock));
        }
    }
    Ok(None)
}

/// Takes the lock at `path`, calling `on_wait` once if it has to wait.
pub fn lock(path: &Path, on_wait: impl FnOnce()) -> Result<Lock, StoreError> {
    let mut on_wait = Some(on_wait);
    loop {
        if let Some(lock) = try_lock(path)? {
            return Ok(lock);
        }
        if let Some(f) = on_wait.take() {
            f();
        }
        std::thread::sleep(POLL);
    }
}

/// Whether a live process holds the lock file at `path`.
pub fn held(path: &Path) -> bool {
    matches!(holder(path), Holder::Live)
}

impl Store {
    fn key_lock_path(&self, key: &str) -> PathBuf {
        self.dir("locks").join(format!("{key}.lock"))
    }

    /// Takes the lock for `key`, calling `on_wait` first if another process holds it.
    pub fn lock_key(&self, key: &str, on_wait: impl FnOnce()) -> Result<Lock, StoreError> {
        lock(&self.key_lock_path(key), on_wait)
    }

    /// Whether some live process holds the lock for `key` right now.
    pub fn key_locked(&self, key: &str) -> bool {
        matches!(holder(&self.key_lock_path(key)), Holder::Live)
    }

    /// The lease a run holds so that `accord gc` waits for it; waits while gc runs. A
    /// process holds one lease per store, shared by its runs (the variants of one
    /// `accord run` take it once).
    pub fn lock_shared_for_run(&self) -> Result<RunLease, StoreError> {
        let mut leases = LEASES.lock().unwrap_or_else(PoisonError::into_inner);
        leases.retain(|(_, lease)| lease.strong_count() > 0);
        if let Some(lease) = leases
            .iter()
            .find(|(root, _)| *root == self.root)
            .and_then(|(_, lease)| lease.upgrade())
        {
            return Ok(RunLease { _held: lease });
        }
        let gc = self.dir("locks").join("gc.lock");
        let lease = loop {
            let lease = self
                .dir("locks")
                .join("runs")
                .join(format!("{}.lease", Owner::new().token));
            let lease = try_create(&lease)?.expect("lease names are unique");
            match holder(&gc) {
                Holder::Live => {
                    drop(lease);
                    std::thread::sleep(POLL);
                }
                _ => break Arc::new(lease),
            }
        };
        leases.push((self.root.clone(), Arc::downgrade(&lease)));
        Ok(RunLease { _held: lease })
    }

    /// The lock `accord gc` holds; `None` while a live run holds a lease.
    pub fn lock_exclusive_for_gc(&self) -> Result<Option<Lock>, StoreError> {
        let Some(lock) = try_lock(&self.dir("locks").join("gc.lock"))? else {
            return Ok(None);
        };
        let runs = self.dir("locks").join("runs");
        if let Ok(entries) = std::fs::read_dir(&runs) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "lease") {
                    continue;
                }
                match holder(&path) {
                    Holder::Live => return Ok(None),
                    Holder::Stale => break_stale(&path),
                    Holder::Free => {}
                }
            }
        }
        Ok(Some(lock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes the lock at `path` look silent for longer than the heartbeat limit.
    fn silence(path: &Path) {
        let old = SystemTime::now() - stale_after() - Duration::from_secs(5);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    fn write_owner(path: &Path, owner: &Owner) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec(owner).unwrap()).unwrap();
    }

    #[test]
    fn a_held_lock_excludes_others_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        let first = try_lock(&path).unwrap().expect("free");
        assert!(try_lock(&path).unwrap().is_none());
        let owner = read_owner(&path).unwrap();
        assert_eq!((owner.host, owner.pid), (host_name(), std::process::id()));
        drop(first);
        assert!(!path.exists());
        assert!(try_lock(&path).unwrap().is_some());
    }

    #[test]
    fn a_dead_local_owner_is_stale_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        // A child that has exited: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        write_owner(
            &path,
            &Owner {
                pid,
                ..Owner::new()
            },
        );
        assert!(try_lock(&path).unwrap().is_some());
    }

    #[test]
    fn another_hosts_lock_is_live_until_its_heartbeat_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        let remote = Owner {
            host: "node-17".into(),
            pid: 1,
            ..Owner::new()
        };
        write_owner(&path, &remote);
        assert!(
            try_lock(&path).unwrap().is_none(),
            "a fresh remote lock holds"
        );
        silence(&path);
        let lock = try_lock(&path)
            .unwrap()
            .expect("a silent remote lock is broken");
        assert_eq!(read_owner(&path).unwrap().token, lock.token);
    }

    #[test]
    fn a_stopped_local_owner_keeps_its_lock_but_a_recycled_pid_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        // This process, silent for longer than the heartbeat limit (as after Ctrl-Z).
        write_owner(&path, &Owner::new());
        silence(&path);
        assert!(try_lock(&path).unwrap().is_none());
        // The same pid, but a process that started at another time.
        write_owner(
            &path,
            &Owner {
                started: Some(0),
                ..Owner::new()
            },
        );
        assert!(try_lock(&path).unwrap().is_some());
    }

    #[test]
    fn gc_gives_way_to_a_live_run_and_runs_wait_for_gc() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let run = store.lock_shared_for_run().unwrap();
        assert!(store.lock_exclusive_for_gc().unwrap().is_none());
        drop(run);
        let gc = store.lock_exclusive_for_gc().unwrap().expect("no runs");
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = store.clone();
        std::thread::spawn(move || {
            let _lease = waiting.lock_shared_for_run().unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());
        drop(gc);
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
