//! SQLite's side of recovery: the journal or WAL a crash left, rolled back
//! or checkpointed by SQLite itself under its own file names (resumable if
//! cut short), and the pages its rollback leaves changed written back from
//! `undo`.

use std::fs::{self, File};
use std::path::Path;

use super::{full_checksum, read_page_size, remove_if_exists};
use crate::store::db::FileKind;
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::ltxlog::sync_dir;

/// A start killed while SQLite was recovering (`sqlite_recover`) left the
/// journal or WAL under SQLite's names: give them back their data-dir
/// names so this start runs the same recovery again from the beginning.
/// SQLite's hot-journal rollback and WAL checkpoint are both idempotent,
/// and the WAL is only truncated once its checkpoint is complete.
pub(super) fn resume_sqlite_recovery(name: &str, dir: &Path) -> Result<()> {
    let mut moved = false;
    for k in [FileKind::Journal, FileKind::Wal] {
        let ours = dir.join(k.data_file_name());
        let sqlites = dir.join(format!("database{}", k.mount_suffix()));
        if !sqlites.exists() {
            continue;
        }
        if ours.exists() {
            return Err(StoreError::Corrupt {
                db: name.to_string(),
                reason: format!(
                    "both {} and {} exist; litefs never leaves both, so one was placed here by hand. \
                     Remove the one that does not belong and start again",
                    ours.display(),
                    sqlites.display()
                ),
            });
        }
        fs::rename(&sqlites, &ours).at(&ours)?;
        moved = true;
    }
    remove_if_exists(&dir.join("database-shm"))?;
    if moved {
        sync_dir(dir)?;
        tracing::info!(db = name, "resuming a recovery interrupted by a crash");
    }
    Ok(())
}

/// Writes back the pages a crashed rollback-journal transaction overwrote
/// without journaling them (`undo.rs`), when that yields exactly the state
/// the transaction started from. Returns whether the database changed.
pub(super) fn restore_unjournaled_pages(name: &str, dir: &Path, db_path: &Path) -> Result<bool> {
    let undo_path = dir.join(crate::store::undo::UNDO_FILE);
    let Some(undo) = crate::store::undo::UndoFile::read(dir)? else {
        remove_if_exists(&undo_path)?;
        return Ok(false);
    };
    let mut applied = false;
    if !undo.pages.is_empty() {
        let page_size = read_page_size(db_path)?;
        let now = full_checksum(db_path, page_size)?;
        let db = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(db_path)
            .at(db_path)?;
        let after = undo.checksum_after(&db, now, db_path)?;
        if after == Some(undo.base_checksum) && now != undo.base_checksum {
            undo.apply(&db, db_path)?;
            tracing::info!(
                db = name,
                pages = undo.pages.len(),
                txid = undo.base_txid,
                "restored pages SQLite's rollback leaves changed (reused free-list pages)"
            );
            applied = true;
        }
    }
    // Applied, already in place, or stale (its transaction committed):
    // either way it has nothing more to give.
    remove_if_exists(&undo_path)?;
    Ok(applied)
}

/// Lets SQLite apply its own recovery (hot journal rollback, WAL replay and
/// checkpoint) on the data dir's files, under SQLite's file names.
pub(super) fn sqlite_recover(name: &str, dir: &Path) -> Result<()> {
    let db_path = dir.join(FileKind::Database.data_file_name());
    let sqlite_name = |suffix: &str| dir.join(format!("database{suffix}"));
    for k in [FileKind::Journal, FileKind::Wal] {
        let from = dir.join(k.data_file_name());
        if from.exists() {
            let to = sqlite_name(k.mount_suffix());
            fs::rename(&from, &to).at(&to)?;
        }
    }
    remove_if_exists(&sqlite_name("-shm"))?;
    let run = || -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open_with_flags(
            &db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )?;
        conn.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.close().map_err(|(_, e)| e)
    };
    run().map_err(|e| StoreError::Corrupt {
        db: name.to_string(),
        reason: format!("SQLite could not recover the journal/WAL left by a crash: {e}"),
    })?;
    for suffix in ["-journal", "-wal", "-shm"] {
        remove_if_exists(&sqlite_name(suffix))?;
    }
    File::open(&db_path).and_then(|f| f.sync_all()).at(&db_path)
}
