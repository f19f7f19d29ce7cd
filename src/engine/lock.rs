//! One actor per database (SPEC §3.1). The lock is an exclusive `flock` on the database file
//! itself, so it follows the inode: a symlink, a hard link, a relative path or another spelling
//! of the same file meet the same lock, and there is no side file to delete. `flock` locks are
//! independent of the POSIX record locks SQLite uses, so the two never interfere.
//!
//! The lock only keeps honest processes apart; the epoch (`Store::claim_epoch`) fences the
//! write-ahead itself, so a process that lost the database cannot open a new attempt.
//!
//! One rule follows from SQLite's POSIX locks: closing *any* descriptor of the database file
//! drops every POSIX lock the process holds on it. So the lock is taken before the store is
//! opened and released only after the store is closed ([`crate::engine::Engine::close`]).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another ddh-renewd is already acting on {db}; only one may run at a time (the lock is on the database file itself)"
    )]
    Held { db: PathBuf },
    #[error("cannot open the database file {path} to lock it: {message}")]
    Io { path: PathBuf, message: String },
}

/// Held while alive; the OS (or PostgreSQL, for its session lock) releases it when the process
/// exits, however it exits.
#[derive(Debug)]
pub enum ActorLock {
    File(File),
    /// On PostgreSQL: a session-level advisory lock (see `store::SessionLock`).
    Session(crate::store::SessionLock),
}

impl ActorLock {
    /// False once the lock may have been lost (a PostgreSQL session that failed its probe):
    /// nothing more may be sent.
    pub fn held(&self) -> bool {
        match self {
            Self::File(_) => true,
            Self::Session(s) => !s.lost(),
        }
    }

    /// Resolves when the lock is lost: never for a file's lock (the process holds it until it
    /// exits), when its session fails for PostgreSQL's.
    pub async fn lost(&self) {
        match self {
            Self::File(_) => std::future::pending().await,
            Self::Session(s) => s.wait_lost().await,
        }
    }

    /// Locks the database file at `db` (creating an empty one if none exists: SQLite takes an
    /// empty file as a new database).
    pub fn acquire(db: &Path) -> Result<Self, LockError> {
        let io = |e: std::io::Error| LockError::Io {
            path: db.to_owned(),
            message: e.to_string(),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(db)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self::File(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held { db: db.to_owned() }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_follows_the_file_not_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = ActorLock::acquire(&db).unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        let hard = dir.path().join("hard.db");
        std::fs::hard_link(&db, &hard).unwrap();
        let dotted = dir.path().join(".").join("x.db");
        for other in [&db, &link, &hard, &dotted] {
            let e = ActorLock::acquire(other).unwrap_err();
            assert!(e.to_string().contains("only one"), "{other:?}: {e}");
        }
        drop(first);
        assert!(ActorLock::acquire(&link).is_ok());
    }
}
