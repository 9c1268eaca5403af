//! A primary demoted while SQLite connections kept its WAL open leaves
//! committed frames in the WAL that its database file lacks: transactions
//! from the new primary cannot be applied under them (readers would go on
//! preferring the old frames), and every connection opened meanwhile finds
//! the `-wal` and writes into it ("disk I/O error") instead of seeing the
//! replica's read-only view. SQLite itself folds the WAL in, through the
//! mount, with `PRAGMA wal_checkpoint(TRUNCATE)` (the store lets a node
//! that is not primary write exactly the committed pages, see
//! `store/wal.rs`), which also resets the shared-memory index so the open
//! connections read the database file from then on; the emptied `-wal` is
//! then removed, so new connections get SQLITE_READONLY on writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::{Db, Store};

/// How long the checkpoint waits for readers in a transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpointing the WAL of {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("checkpointing the WAL of {}: readers kept it busy for {BUSY_TIMEOUT:?}", path.display())]
    Busy { path: PathBuf },
    #[error("removing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checkpoints the WAL of `database` into the database through the mount
/// at `mount_dir` and removes the emptied `-wal`.
pub fn checkpoint_wal(
    store: &Store,
    database: &Db,
    mount_dir: &Path,
) -> Result<(), CheckpointError> {
    let db = &mount_dir.join(database.name());
    let sqlite = |source| CheckpointError::Sqlite {
        path: db.to_path_buf(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(sqlite)?;
    conn.close().map_err(|(_, e)| sqlite(e))?;
    if busy != 0 {
        return Err(CheckpointError::Busy {
            path: db.to_path_buf(),
        });
    }
    // The checkpoint's writes left the primary's header in the kernel's
    // cache; a connection opened from now on must see the replica's.
    store.invalidate_cache(database);
    // SQLite removes it when the last connection closes; others may hold
    // it open (with nothing in it now).
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    match std::fs::remove_file(&wal) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CheckpointError::Io {
            path: wal,
            source: e,
        }),
        _ => {
            tracing::info!(db = %db.display(), "checkpointed the WAL left by the demotion");
            Ok(())
        }
    }
}
