//! Startup: bring a database directory to a known position before anything
//! reads it, whatever moment a crash (or a power cut) interrupted, including
//! an earlier run of this recovery. Each step below either changes nothing
//! until its last rename, or can be repeated over its own partial result;
//! the line after each says what the next start does if killed inside it.
//!
//! 1. Remove `pos.tmp`, `applying.tmp`, `database.*.tmp` (small files
//!    written as temp + rename; the originals are intact) and unfinished
//!    `ltx/*.tmp` (complete ones that chain on are promoted, see `ltxlog`),
//!    the newest LTX file set aside as `.torn` if a power cut tore it
//!    between its rename and its fdatasync (removed at step 10 once the
//!    database matches the log without it), and LTX files before a
//!    break in the TXID chain (retention's removals that a power cut kept
//!    only in part). -> the same removals again.
//! 2. Give `database-journal` / `database-wal`, left by a start killed
//!    inside step 5, their data-dir names back; remove `database-shm`;
//!    create an empty `database` if there is none. -> the renames are done
//!    or not; step 5 runs again from the start. A log that ends in a drop
//!    (`dropdb.rs`) instead has whatever files are left removed, here or
//!    once steps 3-8 have run. -> the same removals again.
//! 3. Verify the newest LTX file (read only). -> nothing to redo.
//! 4. Log committed WAL transactions the log lacks (`rebuild.rs`: temp file,
//!    fsync, rename). -> temps removed by step 1; files already renamed are
//!    in the log and not rebuilt twice.
//! 5. Hot journal or WAL: rename to SQLite's names, let SQLite roll back /
//!    checkpoint, remove its files, fsync the database. -> step 2 renames
//!    back; SQLite's rollback and checkpoint are idempotent and it removes
//!    its journal / truncates its WAL only once done.
//! 6. Remove empty or non-hot `journal`, `wal`, `shm`. -> same.
//! 7. Write back the pre-images in `undo` (pages SQLite overwrote without
//!    journaling them, `undo.rs`) when that gives exactly the checksum the
//!    transaction started from; fsync; remove `undo`. -> applying again is a
//!    no-op (the pages already match), then the file is removed.
//! 8. Finish an apply named by the `applying` marker (a replica's batch, or
//!    step 10's roll-forward): apply the files again, fsync, remove the
//!    marker. -> the marker is still there: the same files applied again
//!    over a partly applied state give exactly their result.
//!    A follower (a replica that is not a candidate) after an unclean
//!    stop then removes every LTX file but the newest: it syncs nothing it
//!    applies, so any of them may be torn. -> the same removals again.
//! 9. Fast path after a clean shutdown: rewrite the `pos` hint without its
//!    clean mark (temp + fsync + rename). -> the hint is old or new, both
//!    valid; without the mark the next start checksums in full.
//! 10. Full checksum, then: equal to the log -> done; behind the log (a
//!     crash between the LTX file and SQLite's commit point, or a power loss
//!     that took WAL frames SQLite had not synced) -> write the `applying`
//!     marker (fsynced), roll forward, remove it (-> step 8); no log -> write
//!     a snapshot (temp, fsync, rename; -> step 1); anything else is a real
//!     mismatch: an error that runs integrity_check and names the safe way
//!     out (`litefs recover`, `repair.rs`), changing nothing.
//!
//! The full database checksum is skipped when the previous shutdown was
//! clean and nothing was left behind (see `PosHint`).
//!
//! A follower whose recovery fails at any step (a torn file, a database
//! that matches no state of its log, no log at all) moves its log and side
//! files into `replaced-<time>/` and starts at position 0, so the primary
//! sends a snapshot (`follower.rs`). -> a start killed inside the move finds
//! part of them moved: `ltx/` is made again at step 1 and the same failure
//! (or an empty log) leads to the same resync.

use std::fs::{self, File};
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::store::db::{FileKind, Recovered};
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::ltxlog::{now_ms, sync_dir, LtxEntry, LtxLog};
use crate::store::pos::Pos;
use crate::store::rebuild::{rebuild_from_wal, WalEnd};

mod advice;
mod follower;
mod sqlite;

use crate::store::sqlite::db_header_page_size;
use advice::{mismatch_advice, verify_ltx};
use follower::resync_follower;
use sqlite::{restore_unjournaled_pages, resume_sqlite_recovery, sqlite_recover};

/// `dbs/<db>/pos`: the position at the last clean shutdown. A hint only:
/// it lets startup skip the full checksum when it matches the log, and it
/// is rewritten without the clean mark as soon as the database opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PosHint {
    pub pos: Pos,
    pub clean: bool,
}

impl PosHint {
    pub fn read(path: &Path) -> Option<PosHint> {
        let text = fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let pos = Pos::parse(lines.next()?).ok()?;
        Some(PosHint {
            pos,
            clean: lines.next() == Some("clean"),
        })
    }

    pub fn write(path: &Path, pos: Pos, clean: bool, sync: bool) -> Result<()> {
        let body = format!("{pos}\n{}", if clean { "clean\n" } else { "" });
        crate::store::ltxlog::write_hint(path, body.as_bytes(), sync)
    }
}

pub(crate) struct RecoverOptions {
    pub strict_verify: bool,
    pub compress: bool,
    pub node_id: u64,
    pub sync: bool,
    pub follower: bool,
}

pub(crate) fn recover(
    name: &str,
    dir: &Path,
    log: &LtxLog,
    opts: &RecoverOptions,
) -> Result<Recovered> {
    match recover_log(name, dir, log, opts) {
        Err(e) if opts.follower => resync_follower(name, dir, log, &e),
        r => r,
    }
}

fn recover_log(name: &str, dir: &Path, log: &LtxLog, opts: &RecoverOptions) -> Result<Recovered> {
    let corrupt = |reason: String| StoreError::Corrupt {
        db: name.to_string(),
        reason,
    };
    // A follower's resync may have moved it aside (and been cut short).
    crate::store::ltxlog::create_dirs_durably(log.dir())?;
    let removed = log.remove_temp_files()?;
    if removed > 0 {
        tracing::info!(
            db = name,
            removed,
            "removed unfinished LTX files left by a crash"
        );
    }
    // The newest file torn between its rename and its fdatasync (see
    // `ltxlog`): only after an unclean stop, and not on a follower, whose
    // torn files are not this moment's alone (it syncs nothing it applies:
    // they fail verification below and it resyncs). Set aside, not
    // removed, until the database proves it never committed.
    // Nothing below rewrites the hint before step 9, which reads it too.
    let hint_path = dir.join("pos");
    let hint = PosHint::read(&hint_path);
    let unclean = !hint.is_some_and(|h| h.clean);
    let torn = if unclean && !opts.follower {
        log.set_aside_torn_newest()?
    } else {
        None
    };
    if let Some(torn) = &torn {
        tracing::warn!(
            db = name,
            path = %torn.display(),
            "set the newest LTX file aside: it is torn, as a power cut leaves a transaction that never committed"
        );
    }
    let removed = log.remove_before_gap()?;
    if removed > 0 {
        tracing::info!(
            db = name,
            removed,
            "removed old LTX files that a crash cut off from the log (an interrupted retention)"
        );
    }
    // Half-written small files of an earlier run (hint, marker, a
    // `litefs recover` cut short): the originals are intact beside them.
    for tmp in [
        "pos.tmp",
        "applying.tmp",
        "database.rebuild.tmp",
        "database.restart.tmp",
    ] {
        remove_if_exists(&dir.join(tmp))?;
    }
    resume_sqlite_recovery(name, dir)?;
    let db_path = dir.join(FileKind::Database.data_file_name());
    if !db_path.exists() {
        // A deleted database stays deleted (a damaged newest file is left
        // to the checks below).
        if let Ok(Some(pos)) = crate::store::dropdb::dropped_at(log) {
            return finish_dropped(name, dir, pos, opts);
        }
        File::create(&db_path).at(&db_path)?;
        // Its name must outlive a power cut like the pages SQLite will
        // fsync into it (POSIX: only a directory fsync makes it durable).
        sync_dir(dir)?;
    }

    let mut last = match log.last()? {
        Some(entry) => Some(verify_ltx(name, &entry)?),
        None => None,
    };

    // Before SQLite folds the WAL into the database: log the WAL
    // transactions whose LTX files a crash kept from the log.
    let rebuilt = rebuild_from_wal(
        name,
        dir,
        log,
        last.as_ref().map(|(_, h, t)| (h, t.post_apply_checksum)),
        opts.node_id,
        opts.compress,
        opts.sync,
    )?;
    if rebuilt.count > 0 {
        last = match log.last()? {
            Some(entry) => Some(verify_ltx(name, &entry)?),
            None => None,
        };
    }

    let leftovers = [FileKind::Journal, FileKind::Wal].into_iter().any(|k| {
        fs::metadata(dir.join(k.data_file_name()))
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    });
    if leftovers {
        tracing::info!(
            db = name,
            "recovering journal/WAL left by an unclean shutdown"
        );
        sqlite_recover(name, dir)?;
    }
    remove_if_exists(&dir.join(FileKind::Shm.data_file_name()))?;
    for k in [FileKind::Journal, FileKind::Wal] {
        // Empty or non-hot leftovers carry nothing.
        remove_if_exists(&dir.join(k.data_file_name()))?;
    }
    let undone = restore_unjournaled_pages(name, dir, &db_path)?;

    // A replica crashed while applying the newest LTX file: applying it
    // again over the partly written database gives its exact result.
    let marker = dir.join(crate::store::apply::APPLYING_MARKER);
    let mut interrupted_apply = false;
    if marker.exists() {
        let names = fs::read_to_string(&marker).at(&marker)?;
        for file in names.lines().filter(|n| !n.is_empty()) {
            let path = log.dir().join(file);
            if !path.exists() {
                continue;
            }
            let f = File::open(&path).at(&path)?;
            let (h, _) = ltx::verify(BufReader::new(f))
                .map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
            tracing::info!(
                db = name,
                txid = h.max_txid,
                "finishing an apply interrupted by a crash"
            );
            apply_file(&path, &db_path, &h)?;
            interrupted_apply = true;
        }
        fs::remove_file(&marker).at(&marker)?;
    }
    // The newest file may have changed: the batch renamed files into the
    // log before the crash.
    let last = if interrupted_apply {
        match log.last()? {
            Some(entry) => Some(verify_ltx(name, &entry)?),
            None => None,
        }
    } else {
        last
    };
    if let Some((_, h, t)) = last.as_ref().filter(|(_, h, _)| h.commit == 0) {
        tracing::debug!(
            db = name,
            txid = h.max_txid,
            "the newest transaction is a drop"
        );
        return finish_dropped(name, dir, Pos::new(h.max_txid, t.post_apply_checksum), opts);
    }

    if opts.follower && unclean {
        // After an unclean stop any file of a follower's log may be torn
        // (it syncs nothing it applies) and only the newest is verified:
        // the older ones go, once an interrupted apply is finished (the
        // primary keeps its own log, and a follower serves none).
        let removed = log.remove_all_but_newest()?;
        if removed > 0 {
            tracing::info!(
                db = name,
                removed,
                "removed this replica's older LTX files after an unclean stop"
            );
        }
    }

    let db_len = fs::metadata(&db_path).at(&db_path)?.len();
    let page_size = read_page_size(&db_path)?;

    if let (Some((_, h, t)), Some(hint), false, false) = (
        &last,
        hint,
        leftovers || interrupted_apply || undone || rebuilt.count > 0,
        opts.strict_verify,
    ) {
        let fits = hint.clean
            && hint.pos == Pos::new(h.max_txid, t.post_apply_checksum)
            && db_len == h.commit as u64 * h.page_size as u64;
        if fits {
            PosHint::write(&hint_path, hint.pos, false, opts.sync)?;
            return Ok(Recovered {
                pos: hint.pos,
                commit: h.commit,
                page_size: h.page_size,
                checksum: ltx::DbChecksum::from_value(t.post_apply_checksum),
            });
        }
    }

    if db_len > 0 {
        tracing::info!(db = name, bytes = db_len, "verifying database checksum");
    }
    let checksum = full_checksum(&db_path, page_size)?;
    let roll_from = match &last {
        Some((_, _, t)) if checksum != t.post_apply_checksum => {
            roll_forward_start(log, checksum, rebuilt.wal_end)?
        }
        _ => None,
    };
    let rec = match (&last, roll_from) {
        (None, _) if db_len == 0 => Recovered {
            pos: Pos::default(),
            commit: 0,
            page_size,
            checksum: ltx::DbChecksum::new(),
        },
        (None, _) if opts.follower => {
            // A follower's log is the primary's to give: whatever this
            // database is, the primary's snapshot replaces it.
            tracing::warn!(
                db = name,
                "database has no LTX files after an unclean stop; asking the primary for a snapshot"
            );
            Recovered {
                pos: Pos::default(),
                commit: (db_len / page_size.max(1) as u64) as u32,
                page_size,
                checksum: ltx::DbChecksum::new(),
            }
        }
        (None, _) => {
            // A database without a log (imported by hand, or its ltx/
            // directory removed as the documented way out of a corrupt
            // file): start the log with a snapshot, keeping TXIDs rising.
            let txid = hint.map(|h| h.pos.txid).unwrap_or(0).max(1);
            write_snapshot(&db_path, log, page_size, txid, opts)?;
            tracing::warn!(
                db = name,
                txid,
                "database had no LTX files; wrote a snapshot to start the log"
            );
            Recovered {
                pos: Pos::new(txid, checksum),
                commit: (db_len / page_size as u64) as u32,
                page_size,
                checksum: ltx::DbChecksum::from_value(checksum),
            }
        }
        (Some((_, h, t)), _) if checksum == t.post_apply_checksum => Recovered {
            pos: Pos::new(h.max_txid, t.post_apply_checksum),
            commit: h.commit,
            page_size: h.page_size,
            checksum: ltx::DbChecksum::from_value(checksum),
        },
        (Some((entry, h, t)), Some(from)) => {
            tracing::info!(
                db = name,
                from,
                to = h.max_txid,
                "rolling forward transactions logged before the crash"
            );
            let files: Vec<LtxEntry> = log
                .list()?
                .into_iter()
                .filter(|e| e.max_txid >= from)
                .collect();
            // A crash part-way leaves a database no file starts from: the
            // marker makes the next start apply the same files again (over
            // a partly applied state that gives exactly their result).
            write_marker(dir, &files, opts.sync)?;
            for e in &files {
                let (fh, _) = log.read_file(e)?;
                apply_file(&e.path, &db_path, &fh)?;
            }
            remove_if_exists(&dir.join(crate::store::apply::APPLYING_MARKER))?;
            let after = full_checksum(&db_path, h.page_size)?;
            if after != t.post_apply_checksum {
                return Err(corrupt(format!(
                    "rolling forward to {} gave checksum {after:016x}, expected {:016x}",
                    entry.path.display(),
                    t.post_apply_checksum
                )));
            }
            Recovered {
                pos: Pos::new(h.max_txid, after),
                commit: h.commit,
                page_size: h.page_size,
                checksum: ltx::DbChecksum::from_value(after),
            }
        }
        (Some((_, h, _)), None) if opts.follower => {
            tracing::warn!(
                db = name,
                txid = h.max_txid,
                "database does not match its log after an unclean stop; asking the primary for a snapshot"
            );
            Recovered {
                pos: Pos::default(),
                commit: (db_len / page_size.max(1) as u64) as u32,
                page_size,
                checksum: ltx::DbChecksum::new(),
            }
        }
        (Some((entry, h, t)), None) => {
            return Err(corrupt(mismatch_advice(
                name, &db_path, log, checksum, entry, h, t,
            )?))
        }
    };
    PosHint::write(&hint_path, rec.pos, false, opts.sync)?;
    if let Some(torn) = torn {
        // The database is at a state of the log without it.
        fs::remove_file(&torn).at(&torn)?;
    }
    Ok(rec)
}

/// See `dropdb::recover_dropped`; the hint is rewritten as for any start.
fn finish_dropped(name: &str, dir: &Path, pos: Pos, opts: &RecoverOptions) -> Result<Recovered> {
    let rec = crate::store::dropdb::recover_dropped(name, dir, pos, opts.sync)?;
    PosHint::write(&dir.join("pos"), rec.pos, false, opts.sync)?;
    Ok(rec)
}

/// The first TXID to apply again when the database (checksum `db`) is
/// behind its log: the file that starts at the database's state, or, after
/// a group commit, the multi-transaction file whose WAL span the committed
/// WAL ends inside (applying all of it over a state inside it gives exactly
/// its end state). None when no file fits.
fn roll_forward_start(log: &LtxLog, db: u64, wal_end: Option<WalEnd>) -> Result<Option<u64>> {
    for e in log.list()?.into_iter().rev() {
        let h = read_header(&e.path)?;
        if h.is_snapshot() {
            return Ok(None);
        }
        if h.pre_apply_checksum == db {
            return Ok(Some(h.min_txid));
        }
        let inside = wal_end.is_some_and(|w| {
            (h.wal_salt1, h.wal_salt2) == (w.salt1, w.salt2)
                && (h.wal_offset as u64) < w.end
                && w.end < (h.wal_offset + h.wal_size) as u64
        });
        if inside && h.min_txid < h.max_txid {
            return Ok(Some(h.min_txid));
        }
    }
    Ok(None)
}

fn read_header(path: &Path) -> Result<ltx::Header> {
    let f = File::open(path).at(path)?;
    let mut b = [0u8; ltx::HEADER_SIZE];
    f.read_exact_at(&mut b, 0).at(path)?;
    ltx::Header::from_bytes(&b).map_err(|source| StoreError::Ltx {
        path: path.to_path_buf(),
        source,
    })
}

fn read_page_size(db_path: &Path) -> Result<u32> {
    let f = File::open(db_path).at(db_path)?;
    let mut hdr = [0u8; 100];
    let n = crate::store::db::read_full_at(&f, 0, &mut hdr).at(db_path)?;
    if n == 0 {
        return Ok(0);
    }
    db_header_page_size(&hdr[..n]).ok_or_else(|| StoreError::Corrupt {
        db: db_path.display().to_string(),
        reason: "not a SQLite database: its header has no valid page size".into(),
    })
}

fn full_checksum(db_path: &Path, page_size: u32) -> Result<u64> {
    if page_size == 0 {
        return Ok(ltx::DbChecksum::new().value());
    }
    let f = File::open(db_path).at(db_path)?;
    ltx::database_checksum(BufReader::with_capacity(1 << 20, f), page_size).map_err(|source| {
        StoreError::Ltx {
            path: db_path.to_path_buf(),
            source,
        }
    })
}

fn apply_file(ltx_path: &Path, db_path: &Path, h: &ltx::Header) -> Result<()> {
    let src = File::open(ltx_path).at(ltx_path)?;
    let mut dec = ltx::Decoder::new(BufReader::new(src)).map_err(|source| StoreError::Ltx {
        path: ltx_path.to_path_buf(),
        source,
    })?;
    let db = fs::OpenOptions::new()
        .write(true)
        .open(db_path)
        .at(db_path)?;
    let ps = h.page_size as u64;
    let mut buf = vec![0u8; h.page_size as usize];
    loop {
        let next = dec.next_page(&mut buf).map_err(|source| StoreError::Ltx {
            path: ltx_path.to_path_buf(),
            source,
        })?;
        let Some(pgno) = next else { break };
        db.write_all_at(&buf, (pgno as u64 - 1) * ps).at(db_path)?;
    }
    dec.finish().map_err(|source| StoreError::Ltx {
        path: ltx_path.to_path_buf(),
        source,
    })?;
    db.set_len(h.commit as u64 * ps).at(db_path)?;
    db.sync_all().at(db_path)
}

fn write_snapshot(
    db_path: &Path,
    log: &LtxLog,
    page_size: u32,
    txid: u64,
    opts: &RecoverOptions,
) -> Result<()> {
    fs::create_dir_all(log.dir()).at(log.dir())?;
    let path = log.path_for(1, txid);
    let tmp = path.with_extension("ltx.tmp");
    let src = File::open(db_path).at(db_path)?;
    let out = File::create(&tmp).at(&tmp)?;
    ltx::encode_snapshot(
        BufReader::with_capacity(1 << 20, src),
        std::io::BufWriter::with_capacity(1 << 20, &out),
        page_size,
        txid,
        now_ms(),
        opts.node_id,
        opts.compress,
    )
    .map_err(|source| StoreError::Ltx {
        path: tmp.clone(),
        source,
    })?;
    out.sync_all().at(&tmp)?;
    fs::rename(&tmp, &path).at(&path)?;
    sync_dir(log.dir())
}

/// Names the files about to be applied in the `applying` marker, durably.
fn write_marker(dir: &Path, files: &[LtxEntry], sync: bool) -> Result<()> {
    let marker = dir.join(crate::store::apply::APPLYING_MARKER);
    let body: String = files
        .iter()
        .filter_map(|e| e.path.file_name()?.to_str().map(|n| format!("{n}\n")))
        .collect();
    let tmp = marker.with_extension("tmp");
    fs::write(&tmp, body).at(&tmp)?;
    if sync {
        File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp)?;
    }
    fs::rename(&tmp, &marker).at(&marker)?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}
