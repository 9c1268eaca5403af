//! The step both journal modes end in: one transaction's pages become one
//! durable LTX file, and the position moves.

use crate::store::db::{Db, DbState};
use crate::store::error::{Result, StoreError};
use crate::store::ltxlog::now_ms;
use crate::store::pos::Pos;

/// (offset, size, salt1, salt2) of the frames a WAL commit came from.
pub(crate) type WalSpan = (u64, u64, u32, u32);

impl Db {
    pub(crate) fn commit_tx(
        &self,
        st: &mut DbState,
        pages: Vec<(u32, Vec<u8>)>,
        commit: u32,
        checksum: ltx::DbChecksum,
        wal: Option<WalSpan>,
    ) -> Result<()> {
        if let Some(reason) = self.shared.fatal() {
            return Err(StoreError::Capture {
                db: self.name().to_string(),
                reason: format!("store stopped after an earlier failure: {reason}"),
            });
        }
        // A rolled-back transaction restores every page it touched: nothing
        // happened, so nothing is logged.
        if checksum.value() == st.checksum.value() && commit == st.commit {
            return Ok(());
        }
        let txid = st.pos.txid + 1;
        let (wal_offset, wal_size, wal_salt1, wal_salt2) = wal.unwrap_or_default();
        let header = ltx::Header {
            flags: if self.shared.compress {
                ltx::HEADER_FLAG_COMPRESS_LZ4
            } else {
                0
            },
            page_size: st.page_size,
            commit,
            min_txid: txid,
            max_txid: txid,
            timestamp: now_ms(),
            pre_apply_checksum: if txid == 1 { 0 } else { st.checksum.value() },
            wal_offset: wal_offset as i64,
            wal_size: wal_size as i64,
            wal_salt1,
            wal_salt2,
            node_id: self.shared.node_id,
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
