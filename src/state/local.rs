//! The local backend: `state/<env>.state.json` written atomically (temp file, fsync, rename,
//! directory fsync) under an OS lock on `state/<env>.lock` that names its holder.

use super::model::State;
use super::{LockInfo, StateError};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The mode of every file `infra` writes beside the state: state, backup, lock, plan, temp.
/// States hold resource names, fingerprints and outputs: nothing for other users to read.
pub const PRIVATE_MODE: u32 = 0o600;

/// State kept in a file on this machine.
pub struct LocalBackend {
    env: String,
    state_path: PathBuf,
    backup_path: PathBuf,
    lock_path: PathBuf,
    lock_file: Option<File>,
    /// The file this run last read or wrote, to refuse overwriting someone else's write;
    /// `None` until read.
    expected: std::sync::Mutex<Option<Expected>>,
}

/// What a write expects to find on disk.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Expected {
    /// The state file as last read or written (`None`: there was none).
    file: Option<FileIdentity>,
    /// Whether this run already kept the state it found as the backup.
    backed_up: bool,
}

/// Tells one version of a file from another without reading it: a write replaces the file by
/// a rename (a new inode), an edit in place changes its length or modification time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    length: u64,
    modified: Option<SystemTime>,
}

impl FileIdentity {
    fn of(metadata: &fs::Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            length: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }

    fn of_path(path: &Path) -> std::io::Result<Option<Self>> {
        match fs::metadata(path) {
            Ok(metadata) => Ok(Some(Self::of(&metadata))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl LocalBackend {
    /// Creates a backend for `env` whose state file is `state_path`.
    pub fn new(env: &str, state_path: PathBuf) -> Self {
        let lock_path = state_path.with_file_name(format!("{env}.lock"));
        let mut backup_name = state_path.file_name().unwrap_or_default().to_os_string();
        backup_name.push(".backup");
        let backup_path = state_path.with_file_name(backup_name);
        Self {
            env: env.to_string(),
            state_path,
            backup_path,
            lock_path,
            lock_file: None,
            expected: std::sync::Mutex::default(),
        }
    }

    /// Returns the state file's path, for messages.
    pub fn location(&self) -> String {
        self.state_path.display().to_string()
    }

    /// Returns the path of the backup: the state as this run found it, kept at its first write.
    pub fn backup_location(&self) -> String {
        self.backup_path.display().to_string()
    }

    fn io_error(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            location: self.location(),
            source,
        }
    }

    fn expected(&self) -> std::sync::MutexGuard<'_, Option<Expected>> {
        self.expected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the state; an absent file is an empty state. The file's identity is remembered
    /// even when its contents are refused, so `state push --force` can replace a damaged file.
    pub async fn read(&self) -> Result<Option<State>, StateError> {
        let path = self.state_path.clone();
        let read = tokio::task::spawn_blocking(move || read_with_identity(&path))
            .await
            .map_err(|error| self.io_error(std::io::Error::other(error)))?;
        let (bytes, identity) = match read {
            Ok(Some((bytes, identity))) => (Some(bytes), Some(identity)),
            Ok(None) => (None, None),
            Err(error) if error.kind() == std::io::ErrorKind::IsADirectory => {
                return Err(self.io_error(std::io::Error::new(
                    error.kind(),
                    "a directory stands where the state file should be; move it aside",
                )));
            }
            Err(error) => return Err(self.io_error(error)),
        };
        *self.expected() = Some(Expected {
            file: identity,
            backed_up: false,
        });
        match bytes {
            Some(bytes) => Ok(Some(State::from_bytes(
                &bytes,
                &self.location(),
                &self.env,
            )?)),
            None => Ok(None),
        }
    }

    /// Writes the state atomically, refusing when the file changed since this run read or
    /// wrote it. The check compares the file's identity (no re-read); the first write of a run
    /// keeps the state it found as `<state file>.backup`.
    pub async fn write(&self, state: &State) -> Result<(), StateError> {
        self.write_bytes(state.to_bytes()).await
    }

    /// Writes a state serialized by `State::to_bytes` (or `to_bytes_around`), like `write`.
    pub async fn write_bytes(&self, bytes: Vec<u8>) -> Result<(), StateError> {
        let Some(expected) = *self.expected() else {
            return Err(StateError::Stale {
                location: self.location(),
                message: "the state was never read by this run".into(),
            });
        };
        let state_path = self.state_path.clone();
        let backup_path = self.backup_path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<WriteOutcome> {
            if FileIdentity::of_path(&state_path)? != expected.file {
                return Ok(WriteOutcome::Stale);
            }
            if !expected.backed_up && expected.file.is_some() {
                write_atomically(&backup_path, &fs::read(&state_path)?)?;
            }
            Ok(WriteOutcome::Written(write_atomically_identified(
                &state_path,
                &bytes,
            )?))
        })
        .await
        .map_err(|error| self.io_error(std::io::Error::other(error)))?
        .map_err(|error| self.io_error(error))?;
        match written {
            WriteOutcome::Stale => Err(StateError::Stale {
                location: self.location(),
                message: "another writer replaced the state since it was read".into(),
            }),
            WriteOutcome::Written(identity) => {
                *self.expected() = Some(Expected {
                    file: Some(identity),
                    backed_up: true,
                });
                Ok(())
            }
        }
    }

    /// Returns who holds the lock, when a live process holds it.
    pub fn holder(&self) -> Result<Option<LockInfo>, StateError> {
        let Ok(mut file) = File::open(&self.lock_path) else {
            return Ok(None);
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(None)
            }
            Err(_) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Ok(serde_json::from_str(&text).ok())
            }
        }
    }

    /// A local lock is an OS lock: it ends with its process. Clears a stale record, refuses to
    /// touch a lock a live process holds.
    pub fn force_unlock(&self, id: &str) -> Result<(), StateError> {
        if let Some(holder) = self.holder()? {
            return Err(StateError::LockMismatch {
                location: self.lock_path.display().to_string(),
                message: format!(
                    "held by a running process, {} (id {}); stop that process — the OS releases its lock when it exits",
                    holder.who, holder.id
                ),
            });
        }
        let text = fs::read_to_string(&self.lock_path).unwrap_or_default();
        match serde_json::from_str::<LockInfo>(&text) {
            Ok(info) if info.id == id => {
                fs::write(&self.lock_path, b"").map_err(|source| StateError::Io {
                    location: self.lock_path.display().to_string(),
                    source,
                })
            }
            _ => Err(StateError::LockMismatch {
                location: self.lock_path.display().to_string(),
                message: "the state is not locked".into(),
            }),
        }
    }

    /// Takes the lock, waiting up to `timeout` with backoff while another process holds it.
    pub fn lock(&mut self, info: &LockInfo, timeout: Duration) -> Result<(), StateError> {
        let io_error = |source| StateError::Io {
            location: self.lock_path.display().to_string(),
            source,
        };
        if let Some(parent) = self.lock_path.parent() {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_MODE)
            .open(&self.lock_path)
            .map_err(io_error)?;
        // A lock file made by an older build (or by hand) is tightened like every file we write.
        if let Err(error) = file.set_permissions(fs::Permissions::from_mode(PRIVATE_MODE)) {
            tracing::warn!(
                "{}: cannot make it private: {error}",
                self.lock_path.display()
            );
        }
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() >= timeout {
                        let mut text = String::new();
                        let _ = file.read_to_string(&mut text);
                        let holder = serde_json::from_str::<LockInfo>(&text).ok().map(Box::new);
                        return Err(StateError::Locked {
                            location: self.lock_path.display().to_string(),
                            holder,
                            env: self.env.clone(),
                        });
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(std::fs::TryLockError::Error(error)) => return Err(io_error(error)),
            }
        }
        let text = serde_json::to_vec_pretty(info).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(&text))
            .and_then(|()| file.sync_all())
            .map_err(io_error)?;
        self.lock_file = Some(file);
        // Only now, holding the lock, is no other run of this state writing a temporary file.
        for path in [&self.state_path, &self.backup_path] {
            remove_stale_temporaries(path);
        }
        Ok(())
    }

    /// Releases the lock (also released by the OS when the process dies).
    pub fn unlock(&mut self) {
        if let Some(file) = self.lock_file.take() {
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }
}

enum WriteOutcome {
    Stale,
    Written(FileIdentity),
}

fn read_with_identity(path: &Path) -> std::io::Result<Option<(Vec<u8>, FileIdentity)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(std::io::Error::from(std::io::ErrorKind::IsADirectory));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or_default());
    file.read_to_end(&mut bytes)?;
    Ok(Some((bytes, FileIdentity::of(&metadata))))
}

/// Returns the temporary file a write of `path` by process `pid` uses.
fn temporary_path(path: &Path, pid: u32) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{file_name}.{pid}.tmp"))
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a mix: a
/// fresh temporary file (mode 0600), fsync, rename, directory fsync. The file replaced takes
/// the temporary's mode, so whatever mode it had, it is 0600 afterwards.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically_identified(path, bytes).map(|_| ())
}

/// Writes like [`write_atomically`] and returns the new file's identity.
fn write_atomically_identified(path: &Path, bytes: &[u8]) -> std::io::Result<FileIdentity> {
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let temporary = temporary_path(path, std::process::id());
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_MODE)
            .open(&temporary)
    };
    let mut file = match open() {
        // Left by an earlier process with our pid, or by a write of ours that failed midway.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::remove_file(&temporary)?;
            open()?
        }
        other => other?,
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| file.metadata());
    drop(file);
    let metadata = match written.and_then(|metadata| {
        fs::rename(&temporary, path)?;
        Ok(metadata)
    }) {
        Ok(metadata) => metadata,
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
    };
    File::open(directory)?.sync_all()?;
    Ok(FileIdentity::of(&metadata))
}

/// Removes the temporary files that writes of `path` by processes now dead left behind (a run
/// killed mid-write). A live process's temporary file is never touched: its pid is checked.
/// Returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> usize {
    let Some(file_name) = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
    else {
        return 0;
    };
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = fs::read_dir(directory) else {
        return 0;
    };
    let prefix = format!(".{file_name}.");
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if is_alive(pid) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::info!(
                    "removed {}, left by a run that died",
                    entry.path().display()
                );
                removed += 1;
            }
            Err(error) => tracing::warn!("cannot remove {}: {error}", entry.path().display()),
        }
    }
    removed
}

/// Returns whether process `pid` exists (signal 0 probes without sending anything). A pid that
/// cannot be probed for lack of permission belongs to a live process.
fn is_alive(pid: i32) -> bool {
    if u32::try_from(pid).ok() == Some(std::process::id()) {
        return true;
    }
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Writes the state a failed final write could not persist to `<env>.errored.state.json` in
/// the working directory (mode 0600), as Terraform writes `errored.tfstate`; returns its path.
pub fn write_errored_state(state: &State) -> std::io::Result<PathBuf> {
    let path = PathBuf::from(format!("{}.errored.state.json", state.env));
    write_atomically(&path, &state.to_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(who: &str) -> LockInfo {
        LockInfo {
            id: "1".into(),
            operation: "apply".into(),
            who: who.into(),
            created: "2026-11-23T00:00:00Z".into(),
            version: "t".into(),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn write_then_read() {
        let directory = tempfile::tempdir().expect("tempdir");
        let backend = LocalBackend::new("dev", directory.path().join("dev.state.json"));
        assert!(backend.read().await.expect("reads").is_none());
        let state = State::new("dev");
        backend.write(&state).await.expect("writes");
        let back = backend.read().await.expect("reads").expect("a state");
        assert_eq!(
            back,
            State {
                checksum: back.checksum.clone(),
                ..state
            }
        );
    }

    #[tokio::test]
    async fn files_are_private_and_the_first_write_keeps_a_backup() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("dev.state.json");
        let mut backend = LocalBackend::new("dev", path.clone());
        backend.lock(&info("me"), Duration::ZERO).expect("lock");
        assert!(backend.read().await.expect("reads").is_none());
        let mut state = State::new("dev");
        state.serial = 1;
        backend.write(&state).await.expect("first");
        assert!(!directory.path().join("dev.state.json.backup").exists());
        backend.unlock();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");

        let mut second = LocalBackend::new("dev", path.clone());
        second.lock(&info("me"), Duration::ZERO).expect("lock");
        let mut state = second.read().await.expect("reads").expect("state");
        for serial in 2..=4 {
            state.serial = serial;
            second.write(&state).await.expect("write");
        }
        let backup = directory.path().join("dev.state.json.backup");
        let kept = State::from_bytes(&fs::read(&backup).expect("backup"), "b", "dev")
            .expect("a valid state");
        assert_eq!(kept.serial, 1, "the backup is the state this run found");
        for file in [&path, &backup, &directory.path().join("dev.lock")] {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
    }

    #[tokio::test]
    async fn a_write_over_a_file_someone_else_replaced_is_stale() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("dev.state.json");
        let backend = LocalBackend::new("dev", path.clone());
        backend.read().await.expect("reads");
        backend.write(&State::new("dev")).await.expect("writes");
        let mut other = State::new("dev");
        other.serial = 7;
        write_atomically(&path, &other.to_bytes()).expect("someone else");
        let error = backend.write(&State::new("dev")).await.expect_err("stale");
        assert!(matches!(error, StateError::Stale { .. }), "{error}");
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("dev.state.json");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("reaped");
        let dead_temporary = temporary_path(&path, dead);
        let live_temporary = temporary_path(&path, std::process::id());
        let parent_temporary = temporary_path(&path, std::os::unix::process::parent_id());
        for file in [&dead_temporary, &live_temporary, &parent_temporary] {
            fs::write(file, b"partial").expect("write");
        }
        assert_eq!(remove_stale_temporaries(&path), 1);
        assert!(!dead_temporary.exists());
        assert!(live_temporary.exists() && parent_temporary.exists());
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut first = LocalBackend::new("dev", directory.path().join("dev.state.json"));
        first
            .lock(&info("ci@runner-7"), Duration::ZERO)
            .expect("first lock");
        let mut second = LocalBackend::new("dev", directory.path().join("dev.state.json"));
        let error = second
            .lock(&info("me"), Duration::from_millis(120))
            .expect_err("held");
        assert!(error.to_string().contains("ci@runner-7"), "{error}");
        first.unlock();
        second
            .lock(&info("me"), Duration::ZERO)
            .expect("free after unlock");
    }
}
