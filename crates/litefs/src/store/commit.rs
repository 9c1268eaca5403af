//! The step both journal modes end in: a transaction's pages become an LTX
//! file and the position moves. Rollback-journal commits write the file
//! before SQLite's commit point; WAL commits hand it to the log writer.

use crate::store::db::{Db, DbState};
use crate::store::error::{Result, StoreError};
use crate::store::log_writer::PendingTx;
use crate::store::ltxlog::now_ms;
use crate::store::pos::Pos;

/// (offset, size, salt1, salt2) of the frames a WAL commit came from.
pub(crate) type WalSpan = (u64, u64, u32, u32);

impl Db {
    /// Whether a transaction ending in `checksum`/`commit` is to be logged:
    /// an error once the store stopped, false for one that changed nothing.
    fn must_log(&self, st: &DbState, commit: u32, checksum: ltx::DbChecksum) -> Result<bool> {
        if let Some(reason) = self.shared.fatal() {
            return Err(StoreError::Capture {
                db: self.name().to_string(),
                reason: format!("store stopped after an earlier failure: {reason}"),
            });
        }
        // A rolled-back transaction restores every page it touched: nothing
        // happened, so nothing is logged.
        Ok(checksum.value() != st.checksum.value() || commit != st.commit)
    }

    /// A WAL transaction at its commit frame: moves the position and
    /// returns what the log writer needs, to be queued once the frame is in
    /// the WAL (see `log_writer.rs` for why the file may follow later).
    /// `frames` are (pgno, frame offset, page checksum) of the pages the
    /// transaction leaves in the database.
    pub(crate) fn defer_commit(
        &self,
        st: &mut DbState,
        frames: Vec<(u32, u64, u64)>,
        commit: u32,
        checksum: ltx::DbChecksum,
        wal: WalSpan,
    ) -> Result<Option<PendingTx>> {
        if !self.must_log(st, commit, checksum)? {
            return Ok(None);
        }
        let txid = st.pos.txid + 1;
        let tx = PendingTx {
            txid,
            pre_apply_checksum: if txid == 1 { 0 } else { st.checksum.value() },
            post_apply_checksum: checksum.value(),
            commit,
            page_size: st.page_size,
            frames,
            wal,
            timestamp: now_ms(),
        };
        st.pos = Pos::new(txid, checksum.value());
        st.commit = commit;
        st.checksum = checksum;
        self.shared.committed(self.name(), st.pos, tx.frames.len());
        Ok(Some(tx))
    }

    /// A rollback-journal transaction at its commit point: its LTX file is
    /// made durable before this returns.
    pub(crate) fn commit_tx(
        &self,
        st: &mut DbState,
        pages: Vec<(u32, Vec<u8>)>,
        commit: u32,
        checksum: ltx::DbChecksum,
    ) -> Result<()> {
        if !self.must_log(st, commit, checksum)? {
            return Ok(());
        }
        // WAL transactions before this one go first: the log stays in order.
        self.writer.drain()?;
        let txid = st.pos.txid + 1;
        let header = ltx::Header {
            flags: crate::store::ltxlog::header_flags(self.shared.compress),
            page_size: st.page_size,
            commit,
            min_txid: txid,
            max_txid: txid,
            timestamp: now_ms(),
            pre_apply_checksum: if txid == 1 { 0 } else { st.checksum.value() },
            node_id: self.shared.node_id,
            ..Default::default()
        };
        let written = self.log.write(
            &header,
            pages.iter().map(|(pgno, data)| (*pgno, data.as_slice())),
            checksum.value(),
            !self.shared.no_fsync,
        );
        if let Ok(path) = &written {
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            self.shared
                .ltx_bytes
                .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        }
        if let Err(e) = written {
            let reason = e.to_string();
            self.shared
                .set_fatal(format!("database {}: {reason}", self.name()));
            tracing::error!(
                db = self.name(),
                txid,
                "commit could not be captured: {reason}"
            );
            return Err(StoreError::Capture {
                db: self.name().to_string(),
                reason,
            });
        }
        st.pos = Pos::new(txid, checksum.value());
        st.commit = commit;
        st.checksum = checksum;
        self.writer.set_durable(st.pos);
        self.shared.committed(self.name(), st.pos, pages.len());
        self.shared.emit(crate::store::Event::Tx {
            db: self.name().to_string(),
            pos: st.pos,
            page_size: st.page_size,
            commit,
            timestamp: header.timestamp,
        });
        Ok(())
    }
}
