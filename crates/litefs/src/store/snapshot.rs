//! A whole database as one snapshot LTX file (TXIDs 1..=current), for a
//! replica that is new, too far behind, or diverged. Built under the
//! database's state lock from committed content only: WAL frames that are
//! committed but not checkpointed are read from the WAL, and a rollback
//! transaction in flight (whose pages are already in the file) is waited out.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::store::db::Db;
use crate::store::error::{Result, StoreError};
use crate::store::ltxlog::now_ms;

const IDLE_WAIT: Duration = Duration::from_secs(10);

impl Db {
    /// Writes the snapshot to `w`; returns its header and trailer.
    pub fn write_snapshot(&self, w: impl Write) -> Result<(ltx::Header, ltx::Trailer)> {
        let start = Instant::now();
        let mut st = loop {
            let st = self.lock();
            if !st.journal_active {
                break st;
            }
            drop(st);
            if start.elapsed() > IDLE_WAIT {
                return Err(StoreError::Capture {
                    db: self.name().to_string(),
                    reason: "a write transaction stayed open too long to take a snapshot".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        // Only what is durable in the log leaves the node.
        self.writer.drain()?;
        if st.pos.txid == 0 {
            return Err(StoreError::Corrupt {
                db: self.name().to_string(),
                reason: "cannot snapshot a database with no transactions".into(),
            });
        }
        let header = ltx::Header {
            flags: crate::store::ltxlog::header_flags(self.shared.compress),
            // A deleted database has no pages and so no page size of its
            // own; the header still needs a valid one.
            page_size: if st.commit == 0 && st.page_size == 0 {
                4096
            } else {
                st.page_size
            },
            commit: st.commit,
            min_txid: 1,
            max_txid: st.pos.txid,
            timestamp: now_ms(),
            node_id: self.shared.node_id,
            ..Default::default()
        };
        let ltx_err = |source| StoreError::Ltx {
            path: self.dir().to_path_buf(),
            source,
        };
        let mut enc = ltx::Encoder::new(w, &header).map_err(ltx_err)?;
        let lock = ltx::lock_pgno(header.page_size);
        for pgno in 1..=st.commit {
            if pgno == lock {
                continue;
            }
            let page = self
                .committed_page(&mut st, pgno)?
                .ok_or_else(|| StoreError::Corrupt {
                    db: self.name().to_string(),
                    reason: format!(
                        "page {pgno} of {} is missing from the database file",
                        st.commit
                    ),
                })?;
            enc.encode_page(pgno, &page).map_err(ltx_err)?;
        }
        let (_, trailer) = enc.finish(st.pos.post_apply_checksum).map_err(ltx_err)?;
        Ok((header, trailer))
    }
}
