//! What a person can do, with litefs stopped, when a database file and its
//! LTX log disagree (`litefs recover`). Nothing here deletes anything:
//! whatever is replaced moves into `dbs/<db>/replaced-<unix time>/`.
//!
//! * [`rebuild_from_log`]: the log starts with a snapshot and every file
//!   after it chains on: replaying it gives the exact last committed state,
//!   whatever happened to the file. Loses nothing.
//! * [`restart_log_from_file`]: a database file that passes
//!   `PRAGMA integrity_check` (the current one, or a copy exported from a
//!   replica or the primary) becomes the database, and the log restarts
//!   from it: the next start writes a snapshot at a TXID above every TXID
//!   the old log used, so replicas resync from it.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::store::db::FileKind;
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::ltxlog::{sync_dir, LtxLog};
use crate::store::pos::Pos;
use crate::store::recovery::PosHint;

/// What a repair did, for the command to print.
#[derive(Debug)]
pub struct Repaired {
    /// Where the replaced files went.
    pub moved_to: PathBuf,
    /// The position the database is at now (rebuilt), or the TXID the next
    /// start's snapshot will take (restarted log).
    pub pos: Pos,
}

fn corrupt(name: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        db: name.to_string(),
        reason,
    }
}

fn db_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    crate::store::validate_name(name)?;
    let dir = data_dir.join("dbs").join(name);
    if !dir.is_dir() {
        return Err(corrupt(
            name,
            format!("no such database: {} does not exist", dir.display()),
        ));
    }
    Ok(dir)
}

/// `PRAGMA integrity_check` of a database file, opened read-only and
/// immutable (no journal or WAL is looked at): None when it is ok, else
/// its first complaints.
pub fn integrity_problem(path: &Path) -> Option<String> {
    let uri = format!("file:{}?immutable=1", path.display());
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let check = || -> rusqlite::Result<Vec<String>> {
        let conn = rusqlite::Connection::open_with_flags(&uri, flags)?;
        let mut stmt = conn.prepare("PRAGMA integrity_check(5)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    match check() {
        Ok(lines) if lines == ["ok"] => None,
        Ok(lines) => Some(lines.join("; ")),
        Err(e) => Some(e.to_string()),
    }
}

/// The files from the newest snapshot on, if the log holds one and every
/// file after it follows the one before (TXIDs without a gap).
pub fn replayable_log(log: &LtxLog) -> Result<Option<Vec<PathBuf>>> {
    let files = log.list()?;
    let Some(start) = files.iter().rposition(|e| e.min_txid == 1) else {
        return Ok(None);
    };
    let chain = &files[start..];
    if chain.windows(2).any(|w| w[1].min_txid != w[0].max_txid + 1) {
        return Ok(None);
    }
    Ok(Some(chain.iter().map(|e| e.path.clone()).collect()))
}

/// Moves `names` (those that exist) of `dir` into a new `replaced-<time>`
/// folder beside them and returns it.
pub(crate) fn move_aside(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut to = dir.join(format!("replaced-{secs}"));
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("replaced-{secs}-{n}"));
        n += 1;
    }
    fs::create_dir(&to).at(&to)?;
    for name in names {
        let from = dir.join(name);
        if from.exists() {
            fs::rename(&from, to.join(name)).at(&from)?;
        }
    }
    sync_dir(&to)?;
    sync_dir(dir)?;
    Ok(to)
}

/// The files SQLite and litefs keep beside a database file: they belong to
/// it and go wherever it goes.
const SIDE_FILES: [&str; 7] = [
    "journal",
    "wal",
    "shm",
    "undo",
    "applying",
    "database-journal",
    "database-wal",
];

/// Replays the log (from its newest snapshot) into a new database file and
/// puts it in place of the current one.
pub fn rebuild_from_log(data_dir: &Path, name: &str) -> Result<Repaired> {
    let dir = db_dir(data_dir, name)?;
    let log = LtxLog::new(dir.join("ltx"));
    let Some(files) = replayable_log(&log)? else {
        return Err(corrupt(
            name,
            format!(
                "the log in {} does not start with a snapshot (retention removed it), so it cannot \
                 rebuild the database alone; copy the database from a replica instead (see `litefs recover --help`)",
                log.dir().display()
            ),
        ));
    };
    let tmp = dir.join("database.rebuild.tmp");
    let mut out = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .at(&tmp)?;
    let mut pos = Pos::default();
    tracing::info!(db = name, files = files.len(), "replaying the LTX log");
    for (i, path) in files.iter().enumerate() {
        let r = BufReader::new(File::open(path).at(path)?);
        let (h, t) =
            ltx::apply_verified(r, &mut out, pos.post_apply_checksum).map_err(|source| {
                StoreError::Ltx {
                    path: path.clone(),
                    source,
                }
            })?;
        pos = Pos::new(h.max_txid, t.post_apply_checksum);
        if (i + 1) % 1000 == 0 {
            tracing::info!(
                db = name,
                done = i + 1,
                of = files.len(),
                "replaying the LTX log"
            );
        }
    }
    out.sync_all().at(&tmp)?;
    drop(out);
    let mut aside = vec!["database", "pos"];
    aside.extend(SIDE_FILES);
    let moved_to = move_aside(&dir, &aside)?;
    let db_path = dir.join(FileKind::Database.data_file_name());
    fs::rename(&tmp, &db_path).at(&db_path)?;
    sync_dir(&dir)?;
    Ok(Repaired { moved_to, pos })
}

/// Makes `file` (or, with None, the current database file) the database
/// and restarts the log from it. The file must pass integrity_check.
pub fn restart_log_from_file(data_dir: &Path, name: &str, file: Option<&Path>) -> Result<Repaired> {
    let dir = db_dir(data_dir, name)?;
    let db_path = dir.join(FileKind::Database.data_file_name());
    let source = file.unwrap_or(&db_path);
    if let Some(problem) = integrity_problem(source) {
        return Err(corrupt(
            name,
            format!(
                "{} fails PRAGMA integrity_check ({problem}); the log cannot restart from it",
                source.display()
            ),
        ));
    }
    let log = LtxLog::new(dir.join("ltx"));
    let last = log.list()?.last().map(|e| e.max_txid).unwrap_or(0);
    let hint = PosHint::read(&dir.join("pos"))
        .map(|h| h.pos.txid)
        .unwrap_or(0);
    let next = last.max(hint) + 1;

    let staged = dir.join("database.restart.tmp");
    if let Some(src) = file {
        fs::copy(src, &staged).at(&staged)?;
        File::open(&staged).and_then(|f| f.sync_all()).at(&staged)?;
    }
    let mut aside = vec!["ltx", "pos"];
    aside.extend(SIDE_FILES);
    if file.is_some() {
        aside.push("database");
    }
    let moved_to = move_aside(&dir, &aside)?;
    if file.is_some() {
        fs::rename(&staged, &db_path).at(&db_path)?;
    }
    // The next start writes its snapshot at this TXID: above every TXID of
    // the old log, so no replica mistakes its old position for the new one.
    PosHint::write(&dir.join("pos"), Pos::new(next, 0), false, true)?;
    sync_dir(&dir)?;
    Ok(Repaired {
        moved_to,
        pos: Pos::new(next, 0),
    })
}
