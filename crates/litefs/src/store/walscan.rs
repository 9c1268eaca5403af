//! Reading a WAL file the way SQLite's recovery (`walIndexRecover` in
//! `wal.c`) reads it: which transactions a fresh connection would see as
//! committed. This module owns that decision for everything that looks at
//! a WAL after the fact (startup recovery, verification), so that nothing
//! counts a transaction SQLite would drop, or drops one SQLite would keep.
//!
//! The rules, all SQLite's: a header with a bad magic, page size, checksum
//! or version makes the whole WAL ignored. Frames are then taken in order
//! while each carries the header's salts, a non-zero page number and a
//! checksum that chains from the previous frame (the first one chains from
//! the header's). The first frame that fails, or a trailing partial frame,
//! ends the WAL; of the frames before it, only those up to the last commit
//! frame (a non-zero database size) count.

// Nothing outside the tests calls this yet; drop once recovery does.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::store::error::{IoContext, Result};
use crate::store::sqlite::{WalFrameHeader, WalHeader, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE};

/// `WAL_MAX_VERSION`: the only WAL format SQLite has ever written.
const WAL_FORMAT_VERSION: u32 = 3_007_000;

/// Big enough that scanning a large WAL takes about one read per
/// megabyte, small enough to not matter while the scan runs.
const READ_BUFFER: usize = 1 << 20;

/// One committed transaction of a WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalTx {
    /// Offset of the first frame of the transaction in the WAL file.
    pub start: u64,
    /// Offset just past its commit frame.
    pub end: u64,
    /// Database size in pages after the transaction (the commit frame's field).
    pub commit: u32,
    /// (pgno, offset of the frame header) of every frame of the transaction,
    /// in WAL order (a page can appear more than once; SQLite itself
    /// rewrites a page in place within a transaction, but nothing here
    /// relies on that).
    pub frames: Vec<(u32, u64)>,
}

/// What a fresh SQLite connection would find committed in a WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalScan {
    pub header: WalHeader,
    /// In WAL order; contiguous, the first starting right after the header.
    pub txs: Vec<WalTx>,
}

/// None when the file is missing, shorter than a header, or its header is
/// not valid (bad magic, unsupported version, bad page size, header
/// checksum mismatch): SQLite ignores such a WAL.
pub(crate) fn scan_wal(path: &Path) -> Result<Option<WalScan>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    // SQLite sizes the scan by the file length up front and ignores a
    // trailing partial frame; a file that shrinks under us just ends early.
    let len = file.metadata().at(path)?.len();
    if len < WAL_HEADER_SIZE {
        return Ok(None);
    }
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);

    let mut raw = [0u8; WAL_HEADER_SIZE as usize];
    if !read_or_eof(&mut reader, &mut raw).at(path)? {
        return Ok(None);
    }
    let Some((header, big_endian, mut sum)) = parse_header(&raw) else {
        return Ok(None);
    };

    let frame_size = header.frame_size();
    let frame_count = (len - WAL_HEADER_SIZE) / frame_size;
    let mut frame = vec![0u8; frame_size as usize];
    let hdr_len = WAL_FRAME_HEADER_SIZE as usize;
    let mut txs = Vec::new();
    let mut pending = Vec::new();
    let mut start = WAL_HEADER_SIZE;
    for i in 0..frame_count {
        let offset = WAL_HEADER_SIZE + i * frame_size;
        if !read_or_eof(&mut reader, &mut frame).at(path)? {
            break;
        }
        let fh = WalFrameHeader::parse(&frame[..hdr_len]);
        // Exact salts, not `WalFrameHeader::matches`: that one also takes
        // the zeroed salts of a transaction SQLite is still writing, which
        // recovery rejects (the checksums of those frames are not filled in
        // until after the commit frame).
        if fh.salt1 != header.salt1 || fh.salt2 != header.salt2 || fh.pgno == 0 {
            break;
        }
        sum = wal_checksum(big_endian, &frame[..8], sum);
        sum = wal_checksum(big_endian, &frame[hdr_len..], sum);
        if sum != [be32(&frame[16..20]), be32(&frame[20..24])] {
            break;
        }
        pending.push((fh.pgno, offset));
        if fh.commit != 0 {
            let end = offset + frame_size;
            txs.push(WalTx {
                start,
                end,
                commit: fh.commit,
                frames: std::mem::take(&mut pending),
            });
            start = end;
        }
    }
    Ok(Some(WalScan { header, txs }))
}

/// The header's fields, whether its checksums use big-endian words, and
/// the header checksum the first frame's checksum chains from. None where
/// SQLite would ignore the WAL.
fn parse_header(raw: &[u8; WAL_HEADER_SIZE as usize]) -> Option<(WalHeader, bool, [u32; 2])> {
    let header = WalHeader::parse(raw)?;
    // The low bit of the magic picks the word order, so a WAL written on
    // a machine of either endianness can be checked on any other.
    let big_endian = raw[3] & 1 == 1;
    let sum = wal_checksum(big_endian, &raw[..24], [0, 0]);
    if sum != [be32(&raw[24..28]), be32(&raw[28..32])] {
        return None;
    }
    // SQLite refuses to open the database at all on an unknown version
    // (SQLITE_CANTOPEN) rather than ignore the WAL; either way there is
    // nothing in it anyone could have read.
    if be32(&raw[4..8]) != WAL_FORMAT_VERSION {
        return None;
    }
    Some((header, big_endian, sum))
}

/// SQLite's WAL checksum (`walChecksumBytes`) over `data`, continuing from
/// `sum`. `data` must be a multiple of 8 bytes long, which every WAL header
/// prefix and page is.
pub(crate) fn wal_checksum(big_endian: bool, data: &[u8], sum: [u32; 2]) -> [u32; 2] {
    let word = |b: &[u8]| {
        let b = [b[0], b[1], b[2], b[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let [mut s1, mut s2] = sum;
    for pair in data.chunks_exact(8) {
        s1 = s1.wrapping_add(word(&pair[..4])).wrapping_add(s2);
        s2 = s2.wrapping_add(word(&pair[4..])).wrapping_add(s1);
    }
    [s1, s2]
}

/// Fills `buf`, or returns false if the file ends first.
fn read_or_eof(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use std::fs;
    use std::path::PathBuf;
    use tempfile::TempDir;

    /// A WAL-mode database that is never checkpointed, and the WAL length
    /// after each commit with the row count that commit left.
    struct Writer {
        _dir: TempDir,
        db: PathBuf,
        conn: Connection,
        commits: Vec<(u64, i64)>,
    }

    impl Writer {
        fn new() -> Writer {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("x.db");
            let conn = Connection::open(&db).unwrap();
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            conn.execute_batch(
                "PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);",
            )
            .unwrap();
            let mut w = Writer {
                _dir: dir,
                db,
                conn,
                commits: Vec::new(),
            };
            w.committed();
            w
        }

        fn wal(&self) -> PathBuf {
            wal_path(&self.db)
        }

        fn rows(&self) -> i64 {
            self.conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        }

        fn committed(&mut self) {
            let len = fs::metadata(self.wal()).unwrap().len();
            let rows = self.rows();
            self.commits.push((len, rows));
        }

        fn insert(&mut self, n: usize) {
            for _ in 0..n {
                self.conn
                    .execute("INSERT INTO t(v) VALUES (randomblob(100))", [])
                    .unwrap();
                self.committed();
            }
        }

        /// One transaction of 100 frames, so a cut or a flipped byte can
        /// fall on a frame boundary inside it as well as inside a frame.
        fn insert_many(&mut self) {
            self.conn
                .execute_batch(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
                       INSERT INTO t(v) SELECT randomblob(500) FROM n;",
                )
                .unwrap();
            self.committed();
        }

        /// The database and WAL as they are now, under SQLite's names in a
        /// directory of their own, so SQLite can be asked what it sees.
        fn snapshot(&self) -> Snapshot {
            let dir = tempfile::tempdir().unwrap();
            fs::copy(&self.db, dir.path().join("x.db")).unwrap();
            fs::copy(self.wal(), dir.path().join("x.db-wal")).unwrap();
            Snapshot { dir }
        }

        /// Rows committed as of a WAL ending at `end`; panics if no commit
        /// ended there, which would mean the scan invented a commit point.
        fn rows_at(&self, end: u64) -> i64 {
            self.commits
                .iter()
                .find(|(len, _)| *len == end)
                .unwrap_or_else(|| panic!("no commit ended at {end}: {:?}", self.commits))
                .1
        }
    }

    struct Snapshot {
        dir: TempDir,
    }

    impl Snapshot {
        fn wal(&self) -> PathBuf {
            self.dir.path().join("x.db-wal")
        }

        fn scan(&self) -> Option<WalScan> {
            scan_wal(&self.wal()).unwrap()
        }

        fn bytes(&self) -> Vec<u8> {
            fs::read(self.wal()).unwrap()
        }

        fn write(&self, b: &[u8]) {
            fs::write(self.wal(), b).unwrap();
        }

        /// What SQLite sees after its own recovery of this WAL. Consumes
        /// the snapshot: closing the connection checkpoints the WAL.
        fn sqlite_rows(self) -> rusqlite::Result<i64> {
            let conn = Connection::open(self.dir.path().join("x.db"))?;
            let has_table: i64 = conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 't'",
                [],
                |r| r.get(0),
            )?;
            if has_table == 0 {
                return Ok(0);
            }
            conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        }
    }

    fn wal_path(db: &Path) -> PathBuf {
        let mut s = db.as_os_str().to_owned();
        s.push("-wal");
        PathBuf::from(s)
    }

    /// Scans the snapshot and checks SQLite recovers exactly the rows the
    /// scan says are committed.
    fn scan_and_cross_check(w: &Writer, snap: Snapshot) -> Option<WalScan> {
        let scan = snap.scan();
        let expected = match scan.as_ref().and_then(|s| s.txs.last()) {
            Some(tx) => w.rows_at(tx.end),
            None => 0,
        };
        assert_eq!(snap.sqlite_rows().unwrap(), expected);
        scan
    }

    /// Each transaction's frames are back to back, start at `start`, end
    /// at `end`, and hold the page numbers the scan reports, with the
    /// commit size on the last one only.
    fn check_frames(wal: &[u8], scan: &WalScan) {
        let fs = scan.header.frame_size();
        let mut start = WAL_HEADER_SIZE;
        for tx in &scan.txs {
            assert_eq!(tx.start, start);
            assert!(tx.commit > 0);
            assert!(!tx.frames.is_empty());
            for (i, &(pgno, off)) in tx.frames.iter().enumerate() {
                assert_eq!(off, tx.start + i as u64 * fs);
                let fh = WalFrameHeader::parse(&wal[off as usize..]);
                assert_eq!(fh.pgno, pgno);
                let last = i + 1 == tx.frames.len();
                assert_eq!(fh.commit, if last { tx.commit } else { 0 });
            }
            assert_eq!(tx.end, tx.frames.last().unwrap().1 + fs);
            start = tx.end;
        }
    }

    /// Recomputes the header checksum and the chain of every whole frame's
    /// checksum, in the byte order the magic names: the WAL SQLite would
    /// have written had the edited bytes been what it wrote.
    fn reseal(wal: &mut [u8]) {
        let big_endian = wal[3] & 1 == 1;
        let mut sum = wal_checksum(big_endian, &wal[..24], [0, 0]);
        wal[24..28].copy_from_slice(&sum[0].to_be_bytes());
        wal[28..32].copy_from_slice(&sum[1].to_be_bytes());
        let fs = WAL_FRAME_HEADER_SIZE as usize + be32(&wal[8..12]) as usize;
        for f in wal[32..].chunks_exact_mut(fs) {
            sum = wal_checksum(big_endian, &f[..8], sum);
            sum = wal_checksum(big_endian, &f[24..], sum);
            f[16..20].copy_from_slice(&sum[0].to_be_bytes());
            f[20..24].copy_from_slice(&sum[1].to_be_bytes());
        }
    }

    #[test]
    fn autocommit_inserts_are_one_tx_each() {
        let mut w = Writer::new();
        w.insert(8);
        let snap = w.snapshot();
        let wal = snap.bytes();
        let scan = snap.scan().unwrap();

        // One transaction per commit made, no more, ending exactly where
        // the WAL ended after each.
        let ends: Vec<u64> = scan.txs.iter().map(|t| t.end).collect();
        let commits: Vec<u64> = w.commits.iter().map(|c| c.0).collect();
        assert_eq!(ends, commits);
        assert_eq!(scan.txs.len(), 9);
        assert_eq!(scan.txs[0].start, WAL_HEADER_SIZE);
        assert_eq!(scan.txs.last().unwrap().end, wal.len() as u64);
        check_frames(&wal, &scan);
        assert_eq!(scan_and_cross_check(&w, snap), Some(scan));
    }

    #[test]
    fn frames_rebuild_the_checkpointed_database() {
        let mut w = Writer::new();
        w.insert(20);
        let snap = w.snapshot();
        let wal = snap.bytes();
        let scan = snap.scan().unwrap();
        let ps = scan.header.page_size as usize;

        // Applying the frames the scan names, in order, must give the file
        // SQLite's own checkpoint of the same WAL writes.
        let mut db = fs::read(snap.dir.path().join("x.db")).unwrap();
        for tx in &scan.txs {
            db.resize(tx.commit as usize * ps, 0);
            for &(pgno, off) in &tx.frames {
                let page = off as usize + WAL_FRAME_HEADER_SIZE as usize;
                let at = (pgno as usize - 1) * ps;
                db[at..at + ps].copy_from_slice(&wal[page..page + ps]);
            }
        }
        let conn = Connection::open(snap.dir.path().join("x.db")).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        drop(conn);
        assert_eq!(fs::read(snap.dir.path().join("x.db")).unwrap(), db);
    }

    #[test]
    fn spilled_transaction_is_one_tx_after_commit() {
        let mut w = Writer::new();
        w.insert(3);
        let before = w.commits.len();
        w.conn
            .execute_batch(
                "PRAGMA cache_size=10;
                 BEGIN;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                   INSERT INTO t(v) SELECT randomblob(500) FROM n;
                 UPDATE t SET v = randomblob(500) WHERE id <= 200;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                   INSERT INTO t(v) SELECT randomblob(500) FROM n;",
            )
            .unwrap();

        // Mid-transaction: the pages SQLite spilled are in the WAL, and
        // once it rewrote a spilled page in place, the frames after it went
        // out with zeroed salts and checksums. None of it is committed.
        let mid = w.snapshot();
        let wal = mid.bytes();
        let committed_end = w.commits.last().unwrap().0;
        let fs = (WAL_FRAME_HEADER_SIZE + 4096) as usize;
        assert!(wal.len() as u64 > committed_end + 100 * fs as u64);
        let zeroed = wal[committed_end as usize..]
            .chunks_exact(fs)
            .filter(|f| f[8..24] == [0; 16])
            .count();
        assert!(zeroed > 0, "expected SQLite to zero salts after a rewrite");
        let scan = scan_and_cross_check(&w, mid).unwrap();
        assert_eq!(scan.txs.len(), before);

        w.conn.execute_batch("COMMIT").unwrap();
        w.committed();
        let snap = w.snapshot();
        let wal = snap.bytes();
        let scan = scan_and_cross_check(&w, snap).unwrap();
        assert_eq!(scan.txs.len(), before + 1);
        assert_eq!(scan.txs.last().unwrap().end, wal.len() as u64);
        assert!(scan.txs.last().unwrap().frames.len() > 100);
        check_frames(&wal, &scan);
        assert_eq!(w.rows_at(wal.len() as u64), 2503);
    }

    #[test]
    fn torn_tail_drops_last_tx() {
        let mut w = Writer::new();
        w.insert(4);
        w.insert_many();
        let full = w.snapshot().scan().unwrap();
        let last = full.txs.last().unwrap().clone();
        assert!(last.frames.len() > 2);
        let fs = full.header.frame_size();

        for cut in [
            last.end - 1,
            last.end - fs,
            last.end - fs / 2,
            last.start + fs,
            last.start + 7,
        ] {
            let snap = w.snapshot();
            let wal = snap.bytes();
            snap.write(&wal[..cut as usize]);
            let scan = scan_and_cross_check(&w, snap).unwrap();
            assert_eq!(scan.txs, full.txs[..full.txs.len() - 1], "cut at {cut}");
        }
    }

    #[test]
    fn corrupt_frame_stops_before_its_tx() {
        let mut w = Writer::new();
        w.insert(6);
        w.insert_many();
        w.insert(2);
        let full = w.snapshot().scan().unwrap();
        assert!(full.txs[7].frames.len() > 2);
        for (tx, frame) in [(3, 0), (1, 0), (6, 0), (7, 0), (7, 2), (9, 0)] {
            let snap = w.snapshot();
            let mut wal = snap.bytes();
            let off = full.txs[tx].frames[frame].1 + WAL_FRAME_HEADER_SIZE + 1000;
            wal[off as usize] ^= 0x40;
            snap.write(&wal);
            let scan = scan_and_cross_check(&w, snap).unwrap();
            assert_eq!(scan.txs, full.txs[..tx], "flip in tx {tx} frame {frame}");
        }
    }

    #[test]
    fn frame_header_rules() {
        let mut w = Writer::new();
        w.insert(6);
        let full = w.snapshot().scan().unwrap();
        let at = |tx: usize| full.txs[tx].frames[0].1 as usize;

        // The salts are outside the checksum: only the salt rule catches a
        // frame of another WAL generation whose checksum happens to chain.
        let snap = w.snapshot();
        let mut wal = snap.bytes();
        wal[at(3) + 9] ^= 0x01;
        snap.write(&wal);
        assert_eq!(scan_and_cross_check(&w, snap).unwrap().txs, full.txs[..3]);

        // Zeroed salts are what SQLite writes while a transaction that
        // rewrote a spilled page is still in progress; recovery rejects
        // them even under a checksum that chains.
        let snap = w.snapshot();
        let mut wal = snap.bytes();
        wal[at(3) + 8..at(3) + 16].fill(0);
        reseal(&mut wal);
        snap.write(&wal);
        assert_eq!(scan_and_cross_check(&w, snap).unwrap().txs, full.txs[..3]);

        // Page 0 is never valid, even with a checksum that matches.
        let snap = w.snapshot();
        let mut wal = snap.bytes();
        wal[at(3)..at(3) + 4].fill(0);
        reseal(&mut wal);
        snap.write(&wal);
        assert_eq!(scan_and_cross_check(&w, snap).unwrap().txs, full.txs[..3]);

        // Without its commit size, a commit frame is just a frame of the
        // next transaction: the two become one.
        let snap = w.snapshot();
        let mut wal = snap.bytes();
        let commit_frame = full.txs[3].frames.last().unwrap().1 as usize;
        wal[commit_frame + 4..commit_frame + 8].fill(0);
        reseal(&mut wal);
        snap.write(&wal);
        let scan = scan_and_cross_check(&w, snap).unwrap();
        assert_eq!(scan.txs.len(), full.txs.len() - 1);
        assert_eq!(scan.txs[..3], full.txs[..3]);
        assert_eq!(scan.txs[3].start, full.txs[3].start);
        assert_eq!(scan.txs[3].end, full.txs[4].end);
        let merged: Vec<_> = full.txs[3..5]
            .iter()
            .flat_map(|t| t.frames.clone())
            .collect();
        assert_eq!(scan.txs[3].frames, merged);
        assert_eq!(scan.txs[4..], full.txs[5..]);

        // Without any commit frame at the end, the tail is not committed.
        let snap = w.snapshot();
        let mut wal = snap.bytes();
        let last = full.txs.last().unwrap().frames.last().unwrap().1 as usize;
        wal[last + 4..last + 8].fill(0);
        reseal(&mut wal);
        snap.write(&wal);
        let scan = scan_and_cross_check(&w, snap).unwrap();
        assert_eq!(scan.txs, full.txs[..full.txs.len() - 1]);
    }

    #[test]
    fn corrupt_header_is_ignored() {
        let mut w = Writer::new();
        w.insert(3);
        for at in [0, 5, 9, 13, 17, 22, 25, 31] {
            let snap = w.snapshot();
            let mut wal = snap.bytes();
            wal[at] ^= 0x01;
            snap.write(&wal);
            assert!(snap.scan().is_none(), "flip at {at}");
            // Nothing was ever checkpointed, so SQLite sees an empty
            // database: not even the table.
            assert_eq!(snap.sqlite_rows().unwrap(), 0);
        }
    }

    #[test]
    fn unsupported_version_is_none_and_sqlite_refuses_it() {
        let mut w = Writer::new();
        w.insert(2);
        let snap = w.snapshot();
        let mut wal = snap.bytes();
        wal[4..8].copy_from_slice(&(WAL_FORMAT_VERSION + 1).to_be_bytes());
        let sum = wal_checksum(wal[3] & 1 == 1, &wal[..24], [0, 0]);
        wal[24..28].copy_from_slice(&sum[0].to_be_bytes());
        wal[28..32].copy_from_slice(&sum[1].to_be_bytes());
        snap.write(&wal);
        assert!(snap.scan().is_none());
        assert!(snap.sqlite_rows().is_err());
    }

    #[test]
    fn missing_or_short_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan_wal(&dir.path().join("nope")).unwrap().is_none());

        let mut w = Writer::new();
        w.insert(1);
        let wal = w.snapshot().bytes();
        let path = dir.path().join("short");
        for len in [0, 1, 31] {
            fs::write(&path, &wal[..len]).unwrap();
            assert!(scan_wal(&path).unwrap().is_none(), "len {len}");
        }
        // A valid header and no whole frame: a WAL with nothing in it.
        for len in [32, 33, 32 + 4096 + 23] {
            fs::write(&path, &wal[..len]).unwrap();
            let scan = scan_wal(&path).unwrap().unwrap();
            assert!(scan.txs.is_empty(), "len {len}");
        }
    }

    #[test]
    fn big_endian_checksums() {
        let mut w = Writer::new();
        w.insert(5);
        let snap = w.snapshot();
        let le = snap.scan().unwrap();
        let mut wal = snap.bytes();
        assert_eq!(wal[..4], 0x377f_0682u32.to_be_bytes());

        // Rewrite as a big-endian machine would have written it.
        wal[..4].copy_from_slice(&0x377f_0683u32.to_be_bytes());
        reseal(&mut wal);
        snap.write(&wal);
        // SQLite reading it back is what shows the big-endian checksum is
        // really SQLite's and not just this module agreeing with itself.
        let be = scan_and_cross_check(&w, snap).unwrap();
        assert_eq!(be, le);
        assert_eq!(be.txs.len(), 6);
    }

    #[test]
    fn restarted_wal_ignores_old_generation() {
        let mut w = Writer::new();
        w.insert(10);
        let old_len = w.commits.last().unwrap().0;
        // A full checkpoint without truncation, then a write: SQLite starts
        // the WAL over from the top with new salts, leaving the old frames
        // behind the new ones.
        w.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        w.insert(2);
        let snap = w.snapshot();
        let wal = snap.bytes();
        assert_eq!(wal.len() as u64, old_len);
        // The WAL length no longer tells commits apart, so the check
        // against SQLite is by hand: the old rows are in the database file.
        let scan = snap.scan().unwrap();
        assert_eq!(scan.txs.len(), 2);
        assert!(scan.txs[1].end < old_len);
        check_frames(&wal, &scan);
        assert_eq!(snap.sqlite_rows().unwrap(), 12);
    }

    #[test]
    fn every_truncation_agrees_with_sqlite() {
        let mut w = Writer::new();
        w.insert(5);
        let wal = w.snapshot().bytes();
        let full = w.snapshot().scan().unwrap();
        let fs = full.header.frame_size();
        let mut cuts: Vec<u64> = (0..=wal.len() as u64).step_by(512).collect();
        cuts.extend((0..=(wal.len() as u64 - 32) / fs).map(|i| 32 + i * fs));
        for cut in cuts {
            let snap = w.snapshot();
            snap.write(&wal[..cut as usize]);
            match scan_and_cross_check(&w, snap) {
                None => assert!(cut < WAL_HEADER_SIZE),
                Some(scan) => {
                    let n = full.txs.iter().take_while(|t| t.end <= cut).count();
                    assert_eq!(scan.txs, full.txs[..n], "cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        let mut w = Writer::new();
        w.insert(3);
        let real = w.snapshot().bytes();
        let full = scan_wal(&w.wal()).unwrap().unwrap();

        // A cheap deterministic generator is enough to hit every branch.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let mut b = real.clone();
            b.truncate((next() % (real.len() as u64 + 1)) as usize);
            for _ in 0..next() % 4 {
                if !b.is_empty() {
                    let i = (next() % b.len() as u64) as usize;
                    b[i] = next() as u8;
                }
            }
            fs::write(&path, &b).unwrap();
            if let Some(scan) = scan_wal(&path).unwrap() {
                // Damage only ever takes transactions away.
                assert!(full.txs.starts_with(&scan.txs) || scan.header != full.header);
            }
        }
        for len in [0usize, 8, 31, 32, 33, 100, 5000, 70000] {
            let b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            fs::write(&path, &b).unwrap();
            assert!(scan_wal(&path).unwrap().is_none());
        }
        // A valid header claiming 64 KiB pages over a short file.
        let mut h = real[..32].to_vec();
        h[8..12].copy_from_slice(&65536u32.to_be_bytes());
        let sum = wal_checksum(false, &h[..24], [0, 0]);
        h[24..28].copy_from_slice(&sum[0].to_be_bytes());
        h[28..32].copy_from_slice(&sum[1].to_be_bytes());
        h.extend_from_slice(&real[32..]);
        fs::write(&path, &h).unwrap();
        let scan = scan_wal(&path).unwrap().unwrap();
        assert_eq!(scan.header.page_size, 65536);
        assert!(scan.txs.is_empty());
    }
}
