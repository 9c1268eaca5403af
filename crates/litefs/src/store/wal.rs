//! Commit capture in WAL mode.
//!
//! SQLite appends frames (a 24-byte header, then the page) after a 32-byte
//! WAL header; the last frame of a transaction carries the database size in
//! pages, and the write that completes that frame is the commit point. The
//! transaction is captured there (its position and checksum move) and its
//! LTX file is written by the log writer once the frame is in the WAL: until
//! the file is durable the WAL holds the transaction, and recovery rebuilds
//! the file from it (see `log_writer.rs`). Checkpoints (WAL -> database
//! copies) and WAL restarts are not commits; before either, the log writer
//! is drained so no frame leaves the WAL before its LTX file is durable.

use std::collections::BTreeMap;

use ltx::page_checksum;

use crate::store::db::{read_full_at, Db, DbState, FileKind};
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::log_writer::PendingTx;
use crate::store::sqlite::{WalFrameHeader, WalHeader, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE};

/// Takes out of `checksum` the old version of every page a WAL transaction
/// replaces: the pages it `written` and those it cuts off by shrinking the
/// database from `prev_commit` to `commit` pages. `old_page` gives a page
/// as it was before the transaction (None: absent); pages past
/// `prev_commit` did not exist then and are not asked for. Capture and the
/// rebuild from the WAL at startup both compute checksums with this.
pub(crate) fn remove_replaced_pages(
    checksum: &mut ltx::DbChecksum,
    written: impl IntoIterator<Item = u32>,
    prev_commit: u32,
    commit: u32,
    lock: u32,
    mut old_page: impl FnMut(u32) -> Result<Option<Vec<u8>>>,
) -> Result<()> {
    for pgno in written.into_iter().chain(commit + 1..=prev_commit) {
        if pgno == lock || pgno > prev_commit {
            continue;
        }
        if let Some(old) = old_page(pgno)? {
            checksum.xor(page_checksum(pgno, &old));
        }
    }
    Ok(())
}

impl Db {
    pub(crate) fn write_wal(&self, st: &mut DbState, offset: u64, data: &[u8]) -> Result<()> {
        if offset < WAL_HEADER_SIZE {
            tracing::trace!(db = self.name(), offset, len = data.len(), hdr = ?WalHeader::parse(data), "wal header write");
        }
        if offset == 0 {
            // A new header restarts the WAL over frames the log writer may
            // still have to read.
            self.writer.drain()?;
            if let Some(hdr) = WalHeader::parse(data) {
                self.start_wal(st, hdr)?;
            }
        }
        let mut captured = None;
        if let Some(hdr) = st.wal.header {
            let fs = hdr.frame_size();
            let end = offset + data.len() as u64;
            let frame_aligned = end >= WAL_HEADER_SIZE + fs && (end - WAL_HEADER_SIZE) % fs == 0;
            if frame_aligned {
                let last =
                    self.overlay(st, end - fs, WAL_FRAME_HEADER_SIZE as usize, offset, data)?;
                let fh = WalFrameHeader::parse(&last);
                let in_tx = end - fs >= st.wal.tx_start && offset >= st.wal.tx_start;
                tracing::trace!(db = self.name(), offset, len = data.len(), commit = fh.commit, in_tx, tx_start = st.wal.tx_start, salt_ok = fh.matches(&hdr), salts = ?(fh.salt1, fh.salt2), "wal frame end");
                if in_tx && fh.commit != 0 && fh.matches(&hdr) {
                    captured = self.commit_wal(st, hdr, end, offset, data)?;
                }
            }
        }
        let written = st.write_raw(self.dir(), FileKind::Wal, offset, data);
        if let Some(tx) = captured {
            if let Err(e) = &written {
                // The position already moved past a commit SQLite now sees
                // fail: capture and SQLite disagree, so stop taking writes
                // (recovery sorts out from the WAL what really committed).
                self.shared.set_fatal(format!(
                    "database {}: commit frame could not be written: {e}",
                    self.name()
                ));
            } else {
                self.writer.push(tx)?;
            }
        }
        written
    }

    pub(crate) fn truncate_wal(&self, st: &mut DbState, size: u64) -> Result<()> {
        self.writer.drain()?;
        // SQLite only shrinks the WAL once every frame is checkpointed, so
        // the database file holds everything the index pointed at.
        if size < st.wal.tx_start {
            st.wal.reset();
        }
        st.set_len_raw(self.dir(), FileKind::Wal, size)
    }

    /// A new WAL header: a restart after a full checkpoint, or the first
    /// write of a WAL.
    fn start_wal(&self, st: &mut DbState, hdr: WalHeader) -> Result<()> {
        if st.page_size != 0 && st.commit > 0 && hdr.page_size != st.page_size {
            return Err(StoreError::PageSizeChange {
                db: self.name().to_string(),
                from: st.page_size,
                to: hdr.page_size,
            });
        }
        if st.wal.header != Some(hdr) {
            st.wal.reset();
            st.wal.header = Some(hdr);
        }
        st.page_size = hdr.page_size;
        Ok(())
    }

    /// Bytes [start, start+len) of the WAL as they will be once `data`
    /// (at `offset`) is written.
    fn overlay(
        &self,
        st: &mut DbState,
        start: u64,
        len: usize,
        offset: u64,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let path = self.path(FileKind::Wal);
        let f = st.file(self.dir(), FileKind::Wal, true).at(&path)?;
        read_full_at(f, start, &mut buf).at(path)?;
        let end = start + len as u64;
        let (lo, hi) = (offset.max(start), (offset + data.len() as u64).min(end));
        if lo < hi {
            buf[(lo - start) as usize..(hi - start) as usize]
                .copy_from_slice(&data[(lo - offset) as usize..(hi - offset) as usize]);
        }
        Ok(buf)
    }

    fn commit_wal(
        &self,
        st: &mut DbState,
        hdr: WalHeader,
        end: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<Option<PendingTx>> {
        let fs = hdr.frame_size();
        let tx_start = st.wal.tx_start;
        let buf = self.overlay(st, tx_start, (end - tx_start) as usize, offset, data)?;
        let ps = hdr.page_size as usize;
        let mut frames: BTreeMap<u32, (u64, &[u8])> = BTreeMap::new();
        let mut commit = 0;
        for (i, frame) in buf.chunks_exact(fs as usize).enumerate() {
            let fh = WalFrameHeader::parse(frame);
            if !fh.matches(&hdr) || fh.pgno == 0 {
                return Err(StoreError::Capture {
                    db: self.name().to_string(),
                    reason: format!(
                        "WAL frame at offset {} does not belong to this WAL",
                        tx_start + i as u64 * fs
                    ),
                });
            }
            frames.insert(
                fh.pgno,
                (
                    tx_start + i as u64 * fs,
                    &frame[WAL_FRAME_HEADER_SIZE as usize..][..ps],
                ),
            );
            commit = fh.commit;
        }

        let lock = ltx::lock_pgno(hdr.page_size);
        let mut checksum = st.checksum;
        remove_replaced_pages(
            &mut checksum,
            frames.keys().copied(),
            st.commit,
            commit,
            lock,
            |pgno| self.committed_page(st, pgno),
        )?;
        let mut pages = Vec::with_capacity(frames.len());
        for (&pgno, &(frame_off, page)) in frames.range(..=commit) {
            if pgno != lock {
                let sum = page_checksum(pgno, page);
                checksum.xor(sum);
                pages.push((pgno, frame_off, sum));
            }
        }
        let wal = (tx_start, end - tx_start, hdr.salt1, hdr.salt2);
        let captured = self.defer_commit(st, pages, commit, checksum, wal)?;
        for (pgno, (frame_off, _)) in frames {
            st.wal.index.insert(pgno, frame_off);
        }
        st.wal.tx_start = end;
        Ok(captured)
    }

    /// A page as of the last commit: its newest committed WAL frame, else
    /// the database file.
    pub(crate) fn committed_page(&self, st: &mut DbState, pgno: u32) -> Result<Option<Vec<u8>>> {
        // First: a page past the committed size is not in the database, even
        // if an older transaction's frame for it is still in the WAL (a
        // VACUUM or other shrink cut it off).
        if pgno > st.commit {
            return Ok(None);
        }
        if let Some(&frame_off) = st.wal.index.get(&pgno) {
            let mut buf = vec![0u8; st.page_size as usize];
            let path = self.path(FileKind::Wal);
            let f = st.file(self.dir(), FileKind::Wal, false).at(&path)?;
            read_full_at(f, frame_off + WAL_FRAME_HEADER_SIZE, &mut buf).at(path)?;
            return Ok(Some(buf));
        }
        st.read_db_page(self.dir(), pgno)
    }
}

/// A node demoted while a connection kept the WAL open still has committed
/// frames in it that the database file lacks. SQLite folds them in itself
/// (see `replication/checkpoint.rs`); these say which of its writes a node
/// that is not primary lets through: exactly the committed pages, the
/// committed size, and an emptied WAL. Nothing new can be committed that way.
impl Db {
    /// Whether the WAL holds committed frames (captured while primary)
    /// that may not be in the database file yet.
    pub fn has_wal_frames(&self) -> bool {
        !self.lock().wal.index.is_empty()
    }

    /// A checkpoint's write: every page equals its committed content.
    pub(crate) fn is_checkpoint_write(
        &self,
        st: &mut DbState,
        offset: u64,
        data: &[u8],
    ) -> Result<bool> {
        let ps = st.page_size as u64;
        if st.journal_active
            || st.wal.index.is_empty()
            || ps == 0
            || offset % ps != 0
            || data.is_empty()
            || data.len() as u64 % ps != 0
        {
            return Ok(false);
        }
        let first = (offset / ps) as u32 + 1;
        for (i, page) in data.chunks(ps as usize).enumerate() {
            if self.committed_page(st, first + i as u32)?.as_deref() != Some(page) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A checkpoint's truncation of the database to its committed size.
    pub(crate) fn is_checkpoint_truncate(&self, st: &DbState, size: u64) -> bool {
        !st.journal_active && st.page_size != 0 && size == st.commit as u64 * st.page_size as u64
    }
}
