//! Applying a transaction received from the primary: the replica side of
//! commit capture. The LTX file is verified, made durable in this node's
//! own log, and only then written into the database; an `applying` marker
//! lets recovery finish an apply that a crash interrupted (applying the
//! whole file again over a partly applied one gives exactly the result).
//!
//! The caller excludes SQLite readers (it holds SQLite's EXCLUSIVE lock
//! through the mount) and drops the kernel's cached pages afterwards.

use std::fs::{self, File, OpenOptions};
use std::io::BufReader;
use std::path::Path;

use crate::store::db::{Db, FileKind};
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::events::Event;
use crate::store::ltxlog::sync_dir;
use crate::store::pos::Pos;

pub(crate) const APPLYING_MARKER: &str = "applying";

impl Db {
    /// Applies the LTX file at `path` (which is moved into the log) and
    /// returns the new position. See [`Db::apply_ltx_batch`].
    pub fn apply_ltx(&self, path: &Path) -> Result<Pos> {
        self.apply_ltx_batch(&[path.to_path_buf()])
    }

    /// Applies consecutive LTX files (each moved into the log) and returns
    /// the new position. A snapshot replaces the database and the log
    /// before it; any other file must follow the position before it.
    ///
    /// The position moves once, after the database is durable; a catching
    /// up replica pays one database fsync per batch, not per transaction.
    pub fn apply_ltx_batch(&self, paths: &[std::path::PathBuf]) -> Result<Pos> {
        let mut headers = Vec::with_capacity(paths.len());
        for path in paths {
            let (h, t) =
                ltx::verify(BufReader::new(File::open(path).at(path)?)).map_err(|source| {
                    StoreError::Ltx {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
            headers.push((h, t));
        }
        self.apply_verified_batch(paths, &headers)
    }

    /// [`Db::apply_ltx_batch`] for files the caller verified (`ltx::verify`)
    /// since they were last written, with what that returned: the
    /// replication client checks each file as it arrives, before taking
    /// any lock, and need not read it a second time here. Pages are still
    /// checked as they are written.
    pub(crate) fn apply_verified_batch(
        &self,
        paths: &[std::path::PathBuf],
        headers: &[(ltx::Header, ltx::Trailer)],
    ) -> Result<Pos> {
        self.apply_verified_batch_then(paths, headers, &mut |_| {})
    }

    /// [`Db::apply_verified_batch`], calling `durable` with the position
    /// the batch leads to as soon as a crash can no longer lose it (its
    /// files and the applying marker are durable; recovery finishes the
    /// apply), before the database is written: what zero-loss mode's
    /// acknowledgements wait for. Not called where files are not fsynced.
    pub(crate) fn apply_verified_batch_then(
        &self,
        paths: &[std::path::PathBuf],
        headers: &[(ltx::Header, ltx::Trailer)],
        durable: &mut dyn FnMut(Pos),
    ) -> Result<Pos> {
        debug_assert_eq!(paths.len(), headers.len());
        let Some(&(last_h, last_t)) = headers.last() else {
            return Ok(self.pos());
        };
        // Only a replica's own log needs each file durable before it is
        // applied (the applying marker replays it after a power loss); a
        // follower re-fetches whatever a power loss takes from the primary
        // (see StoreOptions::follower). The database itself is always
        // synced before the position moves.
        let fsync = !self.shared.no_fsync;
        let sync_files = fsync && !self.shared.follower;

        let mut st = self.lock();
        if !st.wal.index.is_empty() {
            // Pages would be written under WAL frames that readers prefer
            // (see `wal.rs`, `replication/checkpoint.rs`).
            return Err(StoreError::Busy {
                db: self.name().to_string(),
                reason: "the WAL this node wrote as primary is not checkpointed yet".into(),
            });
        }
        let (mut txid, mut checksum) = (st.pos.txid, st.checksum.value());
        for (path, (h, t)) in paths.iter().zip(headers) {
            if !h.is_snapshot() && (h.min_txid != txid + 1 || h.pre_apply_checksum != checksum) {
                return Err(StoreError::Corrupt {
                    db: self.name().to_string(),
                    reason: format!(
                        "{}: LTX {:016x}-{:016x} (pre-apply checksum {:016x}) does not follow position {}",
                        path.display(),
                        h.min_txid,
                        h.max_txid,
                        h.pre_apply_checksum,
                        Pos::new(txid, checksum)
                    ),
                });
            }
            (txid, checksum) = (h.max_txid, t.post_apply_checksum);
        }

        fs::create_dir_all(self.log.dir()).at(self.log.dir())?;
        let dests: Vec<_> = headers
            .iter()
            .map(|(h, _)| self.log.path_for(h.min_txid, h.max_txid))
            .collect();
        // The marker names the batch's files: after a crash, applying all of
        // them again, in order, over the partly written database gives
        // exactly the state after the last one.
        let marker = self.dir().join(APPLYING_MARKER);
        let names: Vec<String> = dests
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        fs::write(&marker, names.join("\n")).at(&marker)?;
        if sync_files {
            File::open(&marker).and_then(|f| f.sync_all()).at(&marker)?;
        }
        for (path, dest) in paths.iter().zip(&dests) {
            let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            self.shared
                .ltx_bytes
                .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            if sync_files {
                File::open(path).and_then(|f| f.sync_all()).at(path)?;
            }
            fs::rename(path, dest).at(dest)?;
        }
        if sync_files {
            sync_dir(self.log.dir())?;
            sync_dir(self.dir())?;
            durable(Pos::new(last_h.max_txid, last_t.post_apply_checksum));
        }

        // Handles are dropped so the database is written through one fresh
        // handle; the mount reopens lazily.
        st.close_all();
        let db_path = self.path(FileKind::Database);
        // Absent after a drop: the file the next transaction creates needs
        // its name made durable too.
        let created = !db_path.exists();
        let mut db = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&db_path)
            .at(&db_path)?;
        let mut current = st.checksum.value();
        for dest in &dests {
            let src = BufReader::new(File::open(dest).at(dest)?);
            let (_, t) =
                ltx::apply_verified(src, &mut db, current).map_err(|source| StoreError::Ltx {
                    path: dest.clone(),
                    source,
                })?;
            current = t.post_apply_checksum;
        }
        if fsync {
            db.sync_all().at(&db_path)?;
            if created {
                sync_dir(self.dir())?;
            }
        }
        fs::remove_file(&marker).at(&marker)?;

        st.pos = Pos::new(last_h.max_txid, last_t.post_apply_checksum);
        self.writer.set_durable(st.pos);
        st.commit = last_h.commit;
        st.page_size = last_h.page_size;
        st.checksum = ltx::DbChecksum::from_value(last_t.post_apply_checksum);
        if last_h.commit == 0 {
            // The primary deleted the database (see `dropdb.rs`).
            self.remove_data_files(&mut st)?;
            if fsync {
                sync_dir(self.dir())?;
            }
            tracing::info!(db = self.name(), pos = %st.pos, "database deleted by the primary");
        }
        let pos = st.pos;
        drop(st);

        if let Some(i) = headers.iter().rposition(|(h, _)| h.is_snapshot()) {
            // History before a snapshot no longer chains onto this database.
            let keep = &dests[i..];
            for e in self.log.list()? {
                if !keep.contains(&e.path) {
                    fs::remove_file(&e.path).at(&e.path)?;
                }
            }
        }
        self.shared.set_primary_timestamp(last_h.timestamp);
        for (h, t) in headers {
            self.shared.emit(Event::Tx {
                db: self.name().to_string(),
                pos: Pos::new(h.max_txid, t.post_apply_checksum),
                page_size: h.page_size,
                commit: h.commit,
                timestamp: h.timestamp,
            });
        }
        Ok(pos)
    }
}
