//! A follower's way out of any failed recovery: its log and side files set
//! aside, a snapshot asked of the primary.

use std::fs::{self, File};
use std::path::Path;

use super::read_page_size;
use crate::store::db::{FileKind, Recovered};
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::ltxlog::LtxLog;
use crate::store::pos::Pos;

/// A follower fsyncs nothing it applies (see StoreOptions::follower), so
/// after a power cut any of its files may be torn: whatever stopped its
/// recovery, everything but the database file is moved aside and the
/// primary is asked for a snapshot, which replaces the database whole.
pub(super) fn resync_follower(
    name: &str,
    dir: &Path,
    log: &LtxLog,
    e: &StoreError,
) -> Result<Recovered> {
    let moved = crate::store::repair::move_aside(
        dir,
        &[
            "ltx",
            "pos",
            "applying",
            "journal",
            "wal",
            "shm",
            "undo",
            "database-journal",
            "database-wal",
            "database-shm",
        ],
    )?;
    tracing::warn!(
        db = name,
        moved = %moved.display(),
        "this replica's log or database is damaged ({e}); asking the primary for a snapshot"
    );
    crate::store::ltxlog::create_dirs_durably(log.dir())?;
    let db_path = dir.join(FileKind::Database.data_file_name());
    if !db_path.exists() {
        File::create(&db_path).at(&db_path)?;
    }
    let db_len = fs::metadata(&db_path).at(&db_path)?.len();
    let page_size = read_page_size(&db_path).unwrap_or(0);
    Ok(Recovered {
        pos: Pos::default(),
        commit: if page_size == 0 {
            0
        } else {
            (db_len / page_size as u64) as u32
        },
        page_size,
        checksum: ltx::DbChecksum::new(),
    })
}
