//! Deleting a database through the mount, as LiteFS 0.5 records it: the
//! primary logs one more transaction whose LTX file has `commit = 0` (no
//! pages, post-apply checksum of an empty database), then removes the
//! database and its side files. The file replicates like any other, so a
//! replica that was offline, restarts, or is a LiteFS node learns the drop
//! from the log; a replica applying it removes its own files. The database
//! keeps its place in the store and its LTX history (until retention), and
//! a later database of the same name starts empty at the next TXID.
//!
//! Also owns what a restart does with a log whose newest file is a drop.

use std::fs;
use std::path::Path;

use crate::store::db::{Db, DbState, FileKind, Recovered};
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::events::Event;
use crate::store::ltxlog::{now_ms, sync_dir, LtxLog};
use crate::store::pos::Pos;

impl Db {
    /// The primary's `rm` of the database (the caller checked the gate).
    pub(crate) fn drop_database(&self, st: &mut DbState) -> Result<()> {
        if st.journal_active {
            return Err(StoreError::Busy {
                db: self.name().to_string(),
                reason: "a write transaction is open on it".into(),
            });
        }
        if let Some(reason) = self.shared.fatal() {
            return Err(StoreError::Capture {
                db: self.name().to_string(),
                reason: format!("store stopped after an earlier failure: {reason}"),
            });
        }
        // Every committed WAL transaction is logged before the drop.
        self.writer.drain()?;
        let sync = !self.shared.no_fsync;
        let empty = ltx::DbChecksum::new().value();
        // A database that never committed a page (new, or already dropped
        // and created again empty) has nothing replicas must forget.
        let logged = st.commit > 0 && st.pos.txid > 0;
        let mut timestamp = now_ms();
        if logged {
            let txid = st.pos.txid + 1;
            let header = ltx::Header {
                flags: crate::store::ltxlog::header_flags(self.shared.compress),
                page_size: st.page_size,
                commit: 0,
                min_txid: txid,
                max_txid: txid,
                timestamp,
                pre_apply_checksum: st.checksum.value(),
                node_id: self.shared.node_id,
                ..Default::default()
            };
            let path = self.log.write(&header, std::iter::empty(), empty, sync)?;
            if sync {
                // The drop must be durable before the files go: a restart
                // then finishes it (see `recover_dropped`).
                sync_dir(self.log.dir())?;
            }
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            self.shared
                .ltx_bytes
                .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            st.pos = Pos::new(txid, empty);
            timestamp = header.timestamp;
        }
        self.remove_data_files(st)?;
        if sync {
            sync_dir(self.dir())?;
        }
        self.writer.set_durable(st.pos);
        tracing::info!(db = self.name(), pos = %st.pos, "database deleted");
        if logged {
            self.shared.committed(self.name(), st.pos, 0);
            self.shared.emit(Event::Tx {
                db: self.name().to_string(),
                pos: st.pos,
                page_size: 0,
                commit: 0,
                timestamp,
            });
        }
        Ok(())
    }

    /// Removes the database and its side files and forgets what commit
    /// capture tracked about them; the position stays.
    pub(crate) fn remove_data_files(&self, st: &mut DbState) -> Result<()> {
        st.close_all();
        for kind in FileKind::ALL {
            st.unlink_raw(self.dir(), kind)?;
        }
        st.undo.reset()?;
        st.undo.remove_if_finished()?;
        st.commit = 0;
        st.page_size = 0;
        st.checksum = ltx::DbChecksum::new();
        st.dirty.clear();
        st.journal_active = false;
        st.wal.reset();
        Ok(())
    }

    /// Whether the database was deleted (or never had a file): the mount
    /// shows no file for it.
    pub fn is_dropped(&self) -> bool {
        !self.exists(FileKind::Database)
    }
}

/// The position a log ends at when its newest file is a drop, else None.
pub(crate) fn dropped_at(log: &LtxLog) -> Result<Option<Pos>> {
    let Some(last) = log.last()? else {
        return Ok(None);
    };
    let (h, t) = log.read_file(&last)?;
    Ok((h.commit == 0).then(|| Pos::new(h.max_txid, t.post_apply_checksum)))
}

/// Startup of a database whose log ends in a drop: whatever files a crash
/// left (the drop's removals cut short, or a database created again but
/// with no transaction committed) are removed, as the drop would have.
pub(crate) fn recover_dropped(name: &str, dir: &Path, pos: Pos, sync: bool) -> Result<Recovered> {
    let mut removed = false;
    for file in FileKind::ALL
        .iter()
        .map(|k| k.data_file_name())
        .chain([
            crate::store::undo::UNDO_FILE,
            "database-journal",
            "database-wal",
        ])
        .chain([crate::store::apply::APPLYING_MARKER, "database-shm"])
    {
        let path = dir.join(file);
        match fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(path),
        }
    }
    if removed && sync {
        sync_dir(dir)?;
    }
    tracing::info!(db = name, %pos, "database was deleted");
    Ok(Recovered {
        pos,
        commit: 0,
        page_size: 0,
        checksum: ltx::DbChecksum::from_value(pos.post_apply_checksum),
    })
}
