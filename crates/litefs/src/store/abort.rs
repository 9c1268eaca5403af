//! A rollback-journal transaction cut off by a demotion. Once the node is
//! no longer primary its commit (finalizing the journal) and SQLite's own
//! rollback (writing the original pages back) are both refused, which would
//! leave the transaction's pages in the database file under a position
//! that does not include them, and the next transaction from the new
//! primary would not apply. The store rolls it back itself, from the
//! journal, as SQLite's hot-journal rollback would.

use std::os::unix::fs::FileExt;

use crate::store::db::{Db, DbState, FileKind};
use crate::store::error::{IoContext, Result};
use crate::store::sqlite::JOURNAL_MAGIC;

impl Db {
    /// Rolls back an open rollback-journal transaction, if any; whether
    /// there was one. Call once writes are refused (after a demotion).
    pub fn abort_uncommitted(&self) -> Result<bool> {
        let mut st = self.lock();
        if !st.journal_active {
            return Ok(false);
        }
        let restored = self.restore_from_journal(&mut st)?;
        // Pages SQLite overwrote without journaling them: their saved
        // bytes make the rollback exact (see `undo.rs`).
        let dpath = self.path(FileKind::Database);
        if let Some(undo) = crate::store::undo::UndoFile::read(self.dir())? {
            if (undo.base_txid, undo.base_checksum) == (st.pos.txid, st.checksum.value()) {
                let f = st.file(self.dir(), FileKind::Database, true).at(&dpath)?;
                undo.apply(f, &dpath)?;
            }
        }
        st.undo.reset()?;
        st.dirty.clear();
        st.journal_active = false;
        st.unlink_raw(self.dir(), FileKind::Journal)?;
        tracing::warn!(
            db = self.name(),
            pages = restored,
            "demoted in the middle of a transaction: rolled it back"
        );
        Ok(true)
    }

    /// Writes the journal's original pages back (first record of each page
    /// wins, a record whose checksum fails ends a segment, as in SQLite)
    /// and truncates the database to its size before the transaction.
    fn restore_from_journal(&self, st: &mut DbState) -> Result<usize> {
        let dir = self.dir().to_path_buf();
        let jpath = dir.join(FileKind::Journal.data_file_name());
        let journal = std::fs::read(&jpath).at(&jpath)?;
        let be = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut off = 0usize;
        let mut restored = std::collections::BTreeSet::new();
        let mut orig_pages = None;
        while off + 28 <= journal.len() && journal[off..off + 8] == JOURNAL_MAGIC {
            let n_rec = be(&journal, off + 8);
            let cksum_init = be(&journal, off + 12);
            let db_pages = be(&journal, off + 16);
            let sector = be(&journal, off + 20) as usize;
            let ps = be(&journal, off + 24) as usize;
            if sector < 28 || ps < 512 || !ps.is_power_of_two() {
                break;
            }
            orig_pages.get_or_insert(db_pages);
            let rec = ps + 8;
            let start = off + sector;
            let n = if n_rec == 0 || n_rec == u32::MAX {
                journal.len().saturating_sub(start) / rec
            } else {
                n_rec as usize
            };
            let mut at = start;
            for _ in 0..n {
                if at + rec > journal.len() {
                    break;
                }
                let pgno = be(&journal, at);
                let data = &journal[at + 4..at + 4 + ps];
                let sum = crate::store::undo::record_checksum(cksum_init, data);
                if sum != be(&journal, at + 4 + ps) || pgno == 0 {
                    break;
                }
                if restored.insert(pgno) && pgno <= db_pages {
                    let dpath = dir.join(FileKind::Database.data_file_name());
                    st.file(&dir, FileKind::Database, true)
                        .at(&dpath)?
                        .write_all_at(data, (pgno as u64 - 1) * ps as u64)
                        .at(&dpath)?;
                }
                at += rec;
            }
            // The next segment's header starts on a sector boundary.
            off = at.div_ceil(sector) * sector;
            if n == 0 {
                break;
            }
        }
        if let (Some(pages), true) = (orig_pages, st.page_size > 0) {
            let size = pages as u64 * st.page_size as u64;
            let dpath = dir.join(FileKind::Database.data_file_name());
            let f = st.file(&dir, FileKind::Database, true).at(&dpath)?;
            if f.metadata().at(&dpath)?.len() > size && pages > 0 {
                f.set_len(size).at(&dpath)?;
            }
            f.sync_all().at(&dpath)?;
        }
        Ok(restored.len())
    }
}
