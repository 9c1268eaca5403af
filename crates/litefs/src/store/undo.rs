//! The pages a rollback-journal transaction overwrites without journaling
//! them, saved so that a crash mid-transaction rolls back byte for byte.
//!
//! SQLite copies a page into the rollback journal before it overwrites the
//! page in the database file, with one exception: a page it takes from the
//! free list holds nothing SQLite needs (pager "no content" pages), so it
//! is written without a journal copy. After a crash, SQLite's hot-journal
//! rollback restores every journaled page and leaves such pages with the
//! aborted transaction's bytes. The database is logically the last
//! committed state, but not the bytes the LTX log says it is, and litefs
//! would refuse to start on a checksum mismatch (LiteFS only recomputes the
//! checksum, so its replicas silently differ from the primary after that).
//!
//! So before such a page reaches the database file, its current bytes are
//! appended to `dbs/<db>/undo` (and fsynced, as SQLite fsyncs its journal
//! before it overwrites a page). Recovery writes them back after SQLite's
//! rollback, but only when that gives exactly the checksum of the state the
//! transaction started from: a stale file (a crash between the commit and
//! its reset) is never applied over a newer state.
//!
//! Which pages are journaled is read from the journal itself, incrementally,
//! record by record, each record checked with the journal header's nonce as
//! SQLite's playback checks it (stale records of a PERSIST journal fail it).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::store::db::read_full_at;
use crate::store::error::{IoContext, Result};
use crate::store::sqlite::JOURNAL_MAGIC;

pub(crate) const UNDO_FILE: &str = "undo";
const UNDO_MAGIC: &[u8; 8] = b"LFSUNDO1";
/// magic, base TXID, base checksum, page size.
const UNDO_HEADER: u64 = 8 + 8 + 8 + 4;

/// The undo file of one database and what is known of the live journal.
pub(crate) struct UndoLog {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the file (0: nothing, no header).
    len: u64,
    /// The position the file's pre-images restore.
    base: (u64, u64),
    /// The file holds a finished transaction's pre-images, kept until the
    /// next transaction needs the file (see `reset`).
    finished: bool,
    scan: JournalScan,
}

impl UndoLog {
    pub fn new(dir: &Path) -> UndoLog {
        UndoLog {
            path: dir.join(UNDO_FILE),
            file: None,
            len: 0,
            base: (0, 0),
            finished: false,
            scan: JournalScan::default(),
        }
    }

    /// A new journal header: a new transaction starts.
    pub fn begin(&mut self, st_journal: &Path) {
        self.scan = JournalScan::default();
        self.scan.journal = st_journal.to_path_buf();
    }

    /// Saves page `pgno`'s current bytes if the live journal has no copy of
    /// it, before the caller lets SQLite overwrite it. `base` is the
    /// position the transaction started from.
    pub fn before_overwrite(
        &mut self,
        pgno: u32,
        page: &[u8],
        base: (u64, u64),
        sync: bool,
    ) -> Result<()> {
        if self.scan.contains(pgno, page.len() as u32)? {
            return Ok(());
        }
        self.open(sync)?;
        if self.finished || (self.len > 0 && base != self.base) {
            self.discard_finished(sync)?;
        }
        let mut buf = Vec::with_capacity(UNDO_HEADER as usize + 12 + page.len());
        if self.len == 0 {
            buf.extend_from_slice(UNDO_MAGIC);
            buf.extend_from_slice(&base.0.to_be_bytes());
            buf.extend_from_slice(&base.1.to_be_bytes());
            buf.extend_from_slice(&(page.len() as u32).to_be_bytes());
        }
        buf.extend_from_slice(&pgno.to_be_bytes());
        buf.extend_from_slice(page);
        buf.extend_from_slice(&ltx::page_checksum(pgno, page).to_be_bytes());
        let f = self.file.as_ref().expect("opened above");
        f.write_all_at(&buf, self.len).at(&self.path)?;
        if sync {
            f.sync_data().at(&self.path)?;
        }
        self.len += buf.len() as u64;
        self.base = base;
        Ok(())
    }

    /// The transaction ended (committed or rolled back): its pre-images
    /// are of no further use once SQLite's finalization of its journal is
    /// durable, which this moment does not tell: a deleted journal's
    /// unlink, for one, reaches the disk at the next directory sync or
    /// journal commit, and emptying or removing the file before that
    /// could, after a power cut, leave a hot journal whose rollback needs
    /// the pre-images that are gone. So the file stays as it is until the
    /// next transaction that needs it (`discard_finished`). A stale file
    /// is harmless: recovery proves a file applies before it applies it.
    pub fn reset(&mut self) -> Result<()> {
        self.scan = JournalScan::default();
        if self.len > 0 {
            self.finished = true;
        }
        Ok(())
    }

    /// A newer transaction needs the file: make the earlier transaction's
    /// end durable (its journal's removal or rewrite is in the database's
    /// directory and file, synced by SQLite's new journal or here), then
    /// empty the file.
    fn discard_finished(&mut self, sync: bool) -> Result<()> {
        if sync {
            self.sync_dir()?;
        }
        let f = self.file.as_ref().expect("opened by the caller");
        f.set_len(0).at(&self.path)?;
        self.len = 0;
        self.finished = false;
        Ok(())
    }

    /// At a clean close (every transaction ended and SQLite's files are
    /// closed, so its journal's end is as durable as it will be made):
    /// the file goes.
    pub fn remove_if_finished(&mut self) -> Result<()> {
        self.file = None;
        match std::fs::metadata(&self.path) {
            Ok(m) if m.len() == 0 || self.finished => {
                if self.finished {
                    self.sync_dir()?;
                }
                self.finished = false;
                self.len = 0;
                std::fs::remove_file(&self.path).at(&self.path)
            }
            _ => Ok(()),
        }
    }

    fn sync_dir(&self) -> Result<()> {
        match self.path.parent() {
            Some(dir) => crate::store::ltxlog::sync_dir(dir),
            None => Ok(()),
        }
    }

    /// Opens or creates the file; a new file's name is made durable before
    /// any pre-image is trusted to it (POSIX: only a directory fsync does).
    fn open(&mut self, sync: bool) -> Result<()> {
        if self.file.is_none() {
            let created = !self.path.exists();
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .at(&self.path)?;
            self.len = f.metadata().at(&self.path)?.len();
            self.file = Some(f);
            if created && sync {
                self.sync_dir()?;
            }
        }
        Ok(())
    }
}

/// Which pages the live rollback journal holds, learned by reading it.
#[derive(Default)]
struct JournalScan {
    journal: PathBuf,
    pgnos: HashSet<u32>,
    /// Offset of the header of the segment being read (SQLite starts a new
    /// header, sector-aligned, each time it syncs a journal mid-transaction).
    segment: u64,
    /// The segment's header: (nonce, sector size), once read.
    header: Option<(u32, u64)>,
    /// Offset of the next record to read and records read in the segment.
    next: u64,
    count: u32,
}

impl JournalScan {
    fn contains(&mut self, pgno: u32, page_size: u32) -> Result<bool> {
        if !self.pgnos.contains(&pgno) && !self.journal.as_os_str().is_empty() {
            self.read_new_records(page_size)?;
        }
        Ok(self.pgnos.contains(&pgno))
    }

    fn read_new_records(&mut self, page_size: u32) -> Result<()> {
        let f = match File::open(&self.journal) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).at(&self.journal),
        };
        let rec_len = page_size as u64 + 8;
        let mut rec = vec![0u8; rec_len as usize];
        loop {
            let mut hdr = [0u8; 28];
            let n = read_full_at(&f, self.segment, &mut hdr).at(&self.journal)?;
            if n < hdr.len() || hdr[..8] != JOURNAL_MAGIC {
                return Ok(());
            }
            let n_rec = u32::from_be_bytes(hdr[8..12].try_into().expect("4 bytes"));
            if self.header.is_none() {
                let nonce = u32::from_be_bytes(hdr[12..16].try_into().expect("4 bytes"));
                let sector = u32::from_be_bytes(hdr[20..24].try_into().expect("4 bytes")) as u64;
                if !(sector.is_power_of_two() && (32..=65536).contains(&sector)) {
                    return Ok(());
                }
                self.header = Some((nonce, sector));
                self.next = self.segment + sector;
                self.count = 0;
            }
            let (nonce, sector) = self.header.expect("set above");
            if n_rec != 0 && n_rec != u32::MAX && self.count >= n_rec {
                // Synced and complete: the next header follows at a sector
                // boundary.
                self.segment = self.next.div_ceil(sector) * sector;
                self.header = None;
                continue;
            }
            if read_full_at(&f, self.next, &mut rec).at(&self.journal)? < rec.len() {
                return Ok(());
            }
            let pgno = u32::from_be_bytes(rec[..4].try_into().expect("4 bytes"));
            let data = &rec[4..4 + page_size as usize];
            let stored = u32::from_be_bytes(rec[4 + page_size as usize..].try_into().expect("4"));
            if pgno == 0 || stored != record_checksum(nonce, data) {
                // Not written yet (or a PERSIST journal's stale bytes):
                // read again on the next call.
                return Ok(());
            }
            self.pgnos.insert(pgno);
            self.next += rec_len;
            self.count += 1;
        }
    }
}

/// SQLite's journal record checksum (pager_cksum): the nonce plus every
/// 200th byte, from the end.
pub(crate) fn record_checksum(nonce: u32, data: &[u8]) -> u32 {
    let mut sum = nonce;
    let mut i = data.len() as i64 - 200;
    while i > 0 {
        sum = sum.wrapping_add(data[i as usize] as u32);
        i -= 200;
    }
    sum
}

/// An undo file as recovery reads it: the state it restores and the
/// pre-images whose records are whole (a torn last record was never
/// followed by its database write).
pub(crate) struct UndoFile {
    pub base_txid: u64,
    pub base_checksum: u64,
    pub pages: Vec<(u32, Vec<u8>)>,
}

impl UndoFile {
    /// None when the file is missing, empty or not an undo file.
    pub fn read(dir: &Path) -> Result<Option<UndoFile>> {
        let path = dir.join(UNDO_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(&path),
        };
        if bytes.len() < UNDO_HEADER as usize || &bytes[..8] != UNDO_MAGIC {
            return Ok(None);
        }
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let page_size = u32::from_be_bytes(bytes[24..28].try_into().expect("4 bytes")) as usize;
        let mut undo = UndoFile {
            base_txid: u64_at(8),
            base_checksum: u64_at(16),
            pages: Vec::new(),
        };
        let mut at = UNDO_HEADER as usize;
        while at + 12 + page_size <= bytes.len() {
            let pgno = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
            let data = &bytes[at + 4..at + 4 + page_size];
            if pgno == 0 || u64_at(at + 4 + page_size) != ltx::page_checksum(pgno, data) {
                break;
            }
            undo.pages.push((pgno, data.to_vec()));
            at += 12 + page_size;
        }
        Ok(Some(undo))
    }

    /// The database checksum after writing the pre-images over `db`,
    /// computed without writing: `checksum` is the file's checksum now.
    /// None when a page lies past the end of the file.
    pub fn checksum_after(&self, db: &File, checksum: u64, path: &Path) -> Result<Option<u64>> {
        let mut sum = ltx::DbChecksum::from_value(checksum);
        let mut cur = Vec::new();
        for (pgno, data) in self.first_images() {
            cur.resize(data.len(), 0);
            let off = (*pgno as u64 - 1) * data.len() as u64;
            if read_full_at(db, off, &mut cur).at(path)? < cur.len() {
                return Ok(None);
            }
            if ltx::lock_pgno(data.len() as u32) == *pgno {
                continue;
            }
            sum.xor(ltx::page_checksum(*pgno, &cur));
            sum.xor(ltx::page_checksum(*pgno, data));
        }
        Ok(Some(sum.value()))
    }

    /// Writes the pre-images back and syncs the database.
    pub fn apply(&self, db: &File, path: &Path) -> Result<()> {
        for (pgno, data) in self.first_images() {
            db.write_all_at(data, (*pgno as u64 - 1) * data.len() as u64)
                .at(path)?;
        }
        db.sync_all().at(path)
    }

    /// Each page once: the first record of a page is its state before the
    /// transaction.
    fn first_images(&self) -> Vec<&(u32, Vec<u8>)> {
        let mut seen = HashSet::new();
        self.pages.iter().filter(|(p, _)| seen.insert(*p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(b: u8) -> Vec<u8> {
        vec![b; 512]
    }

    /// A finished transaction's pre-images stay until the next one needs
    /// the file: a power cut may still bring its hot journal back.
    #[test]
    fn pre_images_outlive_the_transaction_until_the_next_one_needs_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = UndoLog::new(dir.path());
        log.begin(&dir.path().join("journal"));
        log.before_overwrite(3, &page(1), (7, 70), true).unwrap();
        log.before_overwrite(4, &page(2), (7, 70), true).unwrap();
        log.reset().unwrap();
        let kept = UndoFile::read(dir.path()).unwrap().expect("undo file");
        assert_eq!((kept.base_txid, kept.base_checksum), (7, 70));
        assert_eq!(kept.pages, vec![(3, page(1)), (4, page(2))]);

        log.begin(&dir.path().join("journal"));
        log.before_overwrite(5, &page(3), (8, 80), true).unwrap();
        let next = UndoFile::read(dir.path()).unwrap().expect("undo file");
        assert_eq!((next.base_txid, next.base_checksum), (8, 80));
        assert_eq!(next.pages, vec![(5, page(3))]);

        log.reset().unwrap();
        log.remove_if_finished().unwrap();
        assert!(!dir.path().join(UNDO_FILE).exists());
    }
}
