//! One actor per database (SPEC §3.1): an exclusive OS lock on `<database>.lock`, held for the
//! life of the process. A second daemon (or `tick`, `renew`) on the same database exits with a
//! message naming the holder.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another ddh-renewd (pid {pid}) is already acting on {db}; only one may run at a time (lock file {lock})"
    )]
    Held {
        pid: String,
        db: String,
        lock: String,
    },
    #[error("cannot open the lock file {path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// Held while alive; the OS releases it when the process exits, however it exits.
#[derive(Debug)]
pub struct ActorLock {
    _file: File,
}

impl ActorLock {
    pub fn acquire(db: &Path) -> Result<Self, LockError> {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(LockError::Held {
                    pid: if pid.trim().is_empty() {
                        "unknown".into()
                    } else {
                        pid.trim().to_owned()
                    },
                    db: db.display().to_string(),
                    lock: path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = ActorLock::acquire(&db).unwrap();
        let e = ActorLock::acquire(&db).unwrap_err().to_string();
        assert!(
            e.contains(&std::process::id().to_string()) && e.contains("only one"),
            "{e}"
        );
        drop(first);
        assert!(ActorLock::acquire(&db).is_ok());
    }
}
