//! Commit capture in the rollback journal modes (DELETE, TRUNCATE, PERSIST).
//!
//! SQLite writes a journal header with a magic number, copies original
//! pages into the journal, writes the new pages into the database, and then
//! commits by finalizing the journal: deleting it (DELETE), truncating it to
//! zero (TRUNCATE) or zeroing its header (PERSIST). Database writes while a
//! journal is live are the transaction's pages; the finalizing operation is
//! the commit point, so the LTX file is made durable just before it.

use ltx::page_checksum;

use crate::store::db::{Db, DbState, FileKind};
use crate::store::error::{Result, StoreError};
use crate::store::sqlite::{db_header_is_wal, db_header_page_size, JOURNAL_MAGIC};

impl Db {
    pub(crate) fn write_database(&self, st: &mut DbState, offset: u64, data: &[u8]) -> Result<()> {
        if offset == 0 {
            if let Some(ps) = db_header_page_size(data) {
                if st.page_size != 0 && st.commit > 0 && ps != st.page_size {
                    return Err(StoreError::PageSizeChange {
                        db: self.name().to_string(),
                        from: st.page_size,
                        to: ps,
                    });
                }
                st.page_size = ps;
            }
        }
        let ps = st.page_size as u64;
        if ps == 0 || offset % ps != 0 || data.is_empty() || data.len() as u64 % ps != 0 {
            let err = StoreError::Misaligned {
                db: self.name().to_string(),
                offset,
                len: data.len(),
                page_size: st.page_size,
            };
            tracing::warn!(db = self.name(), "{err}");
            return Err(err);
        }
        if st.journal_active {
            let first = (offset / ps) as u32 + 1;
            for pgno in first..first + (data.len() as u64 / ps) as u32 {
                self.mark_dirty(st, pgno, true)?;
            }
        } else if !self.in_wal_mode(st)? {
            return Err(StoreError::Unjournaled {
                db: self.name().to_string(),
            });
        }
        // Outside a journal in WAL mode this is a checkpoint copying
        // committed frames back: the content is already in the log.
        st.write_raw(self.dir(), FileKind::Database, offset, data)
    }

    pub(crate) fn truncate_database(&self, st: &mut DbState, size: u64) -> Result<()> {
        let ps = st.page_size as u64;
        // SQLite re-truncates to the current size when a transaction ends.
        // SQLite re-truncates to the current size, and trims the file to the
        // committed image once the journal is finalized (after a VACUUM).
        if st.db_len(self.dir())? == size || (!st.journal_active && size == st.commit as u64 * ps) {
            return st.set_len_raw(self.dir(), FileKind::Database, size);
        }
        if st.journal_active {
            if ps == 0 || size % ps != 0 {
                return Err(StoreError::Misaligned {
                    db: self.name().to_string(),
                    offset: size,
                    len: 0,
                    page_size: st.page_size,
                });
            }
            let cur = (st.db_len(self.dir())? / ps) as u32;
            let new = (size / ps) as u32;
            // Shrinking loses the old pages: checksum them while they exist.
            for pgno in (new + 1..=cur).chain(cur + 1..=new) {
                self.mark_dirty(st, pgno, true)?;
            }
        } else if !self.in_wal_mode(st)? {
            return Err(StoreError::Unjournaled {
                db: self.name().to_string(),
            });
        }
        st.set_len_raw(self.dir(), FileKind::Database, size)
    }

    /// Records page `pgno`'s checksum before the transaction changes it;
    /// with `overwrite` the page is about to change in the file, and its
    /// bytes are saved first when SQLite did not journal them (`undo.rs`).
    fn mark_dirty(&self, st: &mut DbState, pgno: u32, overwrite: bool) -> Result<()> {
        if st.dirty.contains_key(&pgno) {
            return Ok(());
        }
        // Past the committed size a page is new even where the file already
        // has bytes: writing page n+5 first leaves a hole at n+1..n+4 that
        // reads as zeros but was never part of the database.
        let old = if pgno > st.commit {
            None
        } else {
            match st.read_db_page(self.dir(), pgno)? {
                Some(page) => {
                    if overwrite {
                        let base = (st.pos.txid, st.checksum.value());
                        st.undo
                            .before_overwrite(pgno, &page, base, !self.shared.no_fsync)?;
                    }
                    Some(page_checksum(pgno, &page))
                }
                None => None,
            }
        };
        st.dirty.insert(pgno, old);
        Ok(())
    }

    /// WAL mode: the WAL is live, or the database header says so.
    pub(crate) fn in_wal_mode(&self, st: &mut DbState) -> Result<bool> {
        if st.wal.header.is_some() {
            return Ok(true);
        }
        let mut hdr = [0u8; 20];
        let path = self.path(FileKind::Database);
        let f = st
            .file(self.dir(), FileKind::Database, true)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        let n = crate::store::db::read_full_at(f, 0, &mut hdr)
            .map_err(|source| StoreError::Io { path, source })?;
        Ok(n == hdr.len() && db_header_is_wal(&hdr))
    }

    pub(crate) fn write_journal(&self, st: &mut DbState, offset: u64, data: &[u8]) -> Result<()> {
        if offset == 0 && data.len() >= JOURNAL_MAGIC.len() {
            if data[..JOURNAL_MAGIC.len()] == JOURNAL_MAGIC {
                if !st.journal_active {
                    st.undo.begin(&self.path(FileKind::Journal));
                }
                st.journal_active = true;
            } else if st.journal_active && data.iter().take(28).all(|&b| b == 0) {
                self.commit_journal(st)?;
            }
        }
        st.write_raw(self.dir(), FileKind::Journal, offset, data)
    }

    pub(crate) fn truncate_journal(&self, st: &mut DbState, size: u64) -> Result<()> {
        if size == 0 && st.journal_active {
            self.commit_journal(st)?;
        }
        st.set_len_raw(self.dir(), FileKind::Journal, size)
    }

    pub(crate) fn unlink_journal(&self, st: &mut DbState) -> Result<()> {
        if st.journal_active {
            self.commit_journal(st)?;
        }
        st.unlink_raw(self.dir(), FileKind::Journal)
    }

    /// The database size in pages as SQLite committed it: the in-header
    /// size (bytes 28..32) when the header vouches for it (change counter
    /// equal to version-valid-for), else the file's length.
    fn image_size(&self, st: &mut DbState) -> Result<u32> {
        let file_pages = (st.db_len(self.dir())? / st.page_size as u64) as u32;
        let Some(page1) = st.read_db_page(self.dir(), 1)? else {
            return Ok(file_pages);
        };
        let in_header = u32::from_be_bytes([page1[28], page1[29], page1[30], page1[31]]);
        if in_header > 0 && page1[24..28] == page1[92..96] && in_header <= file_pages {
            Ok(in_header)
        } else {
            Ok(file_pages)
        }
    }

    /// Turns the pages written under the live journal into one LTX file.
    fn commit_journal(&self, st: &mut DbState) -> Result<()> {
        let ps = st.page_size as u64;
        let commit = if ps == 0 { 0 } else { self.image_size(st)? };
        // Pages that appeared without being written still change the file.
        for pgno in st.commit + 1..=commit {
            st.dirty.entry(pgno).or_insert(None);
        }
        // Pages past the new image leave it, written or not; SQLite trims
        // the file only after the journal is gone.
        for pgno in commit + 1..=st.commit {
            self.mark_dirty(st, pgno, false)?;
        }
        let lock = if ps == 0 {
            0
        } else {
            ltx::lock_pgno(st.page_size)
        };
        let mut checksum = st.checksum;
        let mut pages = Vec::new();
        let dirty = std::mem::take(&mut st.dirty);
        for (&pgno, old) in &dirty {
            if pgno == lock {
                continue;
            }
            if let Some(old) = old {
                checksum.xor(*old);
            }
            if pgno <= commit {
                let data =
                    st.read_db_page(self.dir(), pgno)?
                        .ok_or_else(|| StoreError::Capture {
                            db: self.name().to_string(),
                            reason: format!("page {pgno} vanished during commit"),
                        })?;
                checksum.xor(page_checksum(pgno, &data));
                pages.push((pgno, data));
            }
        }
        st.journal_active = false;
        self.commit_tx(st, pages, commit, checksum)?;
        st.undo.reset()
    }
}
