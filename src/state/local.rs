//! The local backend: `state/<env>.state.json` written atomically (temp file, fsync, rename,
//! directory fsync) under an OS lock on `state/<env>.lock` that names its holder.

use super::model::State;
use super::{LockInfo, StateError};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// State kept in a file on this machine.
pub struct LocalBackend {
    env: String,
    state_path: PathBuf,
    lock_path: PathBuf,
    lock_file: Option<File>,
    /// The (lineage, serial) this run last read or wrote, to refuse overwriting a newer state;
    /// `None` until read, `Some(None)` when there was no file.
    expected: std::sync::Mutex<Option<Option<(String, u64)>>>,
}

impl LocalBackend {
    /// Creates a backend for `env` whose state file is `state_path`.
    pub fn new(env: &str, state_path: PathBuf) -> Self {
        let lock_path = state_path.with_file_name(format!("{env}.lock"));
        Self {
            env: env.to_string(),
            state_path,
            lock_path,
            lock_file: None,
            expected: std::sync::Mutex::default(),
        }
    }

    /// Returns the state file's path, for messages.
    pub fn location(&self) -> String {
        self.state_path.display().to_string()
    }

    fn read_file(&self) -> Result<Option<State>, StateError> {
        match fs::read(&self.state_path) {
            Ok(bytes) => Ok(Some(State::from_bytes(
                &bytes,
                &self.location(),
                &self.env,
            )?)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StateError::Io {
                location: self.location(),
                source: error,
            }),
        }
    }

    fn remember(&self, state: Option<&State>) {
        *self
            .expected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some(state.map(|state| (state.lineage.clone(), state.serial)));
    }

    /// Reads the state; an absent file is an empty state.
    pub fn read(&self) -> Result<Option<State>, StateError> {
        let state = self.read_file()?;
        self.remember(state.as_ref());
        Ok(state)
    }

    /// Writes the state atomically, refusing when the file changed since this run read it.
    pub fn write(&self, state: &State) -> Result<(), StateError> {
        let expected = self
            .expected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let Some(expected) = expected else {
            return Err(StateError::Stale {
                location: self.location(),
                message: "the state was never read by this run".into(),
            });
        };
        let on_disk = self
            .read_file()?
            .map(|current| (current.lineage, current.serial));
        if on_disk != expected {
            return Err(StateError::Stale {
                location: self.location(),
                message: "another writer replaced the state since it was read".into(),
            });
        }
        write_atomically(&self.state_path, &state.to_bytes()).map_err(|source| StateError::Io {
            location: self.location(),
            source,
        })?;
        self.remember(Some(state));
        Ok(())
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
            .open(&self.lock_path)
            .map_err(io_error)?;
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

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let temporary = directory.join(format!(".{file_name}.{}.tmp", std::process::id()));
    {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    File::open(directory)?.sync_all()
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

    #[test]
    fn write_then_read() {
        let directory = tempfile::tempdir().expect("tempdir");
        let backend = LocalBackend::new("dev", directory.path().join("dev.state.json"));
        assert!(backend.read().expect("reads").is_none());
        let state = State::new("dev");
        backend.write(&state).expect("writes");
        assert_eq!(
            backend.read().expect("reads"),
            Some(State {
                checksum: backend.read().expect("r").expect("s").checksum,
                ..state
            })
        );
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
