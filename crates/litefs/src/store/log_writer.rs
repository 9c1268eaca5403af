//! The writer of WAL-mode LTX files: a thread per database that turns
//! captured WAL transactions into durable LTX files off SQLite's commit
//! path, so a commit through the mount costs SQLite's own WAL fsync and not
//! a second, sequential one for the LTX file (plus the creation of a new
//! file, which on some file systems costs as much as the fsync).
//!
//! Why this is safe: until its LTX file is durable, a WAL transaction is
//! still in the WAL, and SQLite only makes a commit durable by fsyncing the
//! WAL. Recovery rebuilds the LTX files of committed WAL transactions the
//! log does not have (`recovery/`, from `walscan`). What would break that
//! is a WAL frame leaving the WAL before its LTX file is durable, so the
//! store waits for this writer ([`LogWriter::drain`]) before each of those
//! moments: a checkpoint's first write into the database file (after it,
//! recovery could no longer read the pages as they were before a pending
//! transaction), a WAL restart, truncation or deletion, a rollback-journal
//! commit (the log stays in TXID order), a snapshot, and shutdown.
//!
//! Nothing leaves the node before it is durable: the replication server and
//! `/events` see a transaction once its file is in the log
//! ([`LogWriter::durable`]); `-pos` shows what SQLite committed.
//!
//! Group commit: while commits arrive faster than files are written, the
//! writer starts a file at most every `MIN_FILE_INTERVAL`, and the
//! transactions that wait meanwhile go into one multi-transaction LTX file
//! with one fsync; slower commits get a file each, at once. Measured on the
//! benchmark's disk (`litefs-bench`, WAL, synchronous=FULL), a file and
//! fsync per commit in this thread, concurrent with SQLite's, gave 0.5x
//! plain SQLite's commit rate; 1 ms apart 0.5x, 2 ms 0.6x, 3 ms 0.65x.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::commit::WalSpan;
use crate::store::db::read_full_at;
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::events::Event;
use crate::store::ltxlog::LtxLog;
use crate::store::pos::Pos;
use crate::store::sqlite::WAL_FRAME_HEADER_SIZE;
use crate::store::Shared;

/// Transactions that may wait for the writer before a commit blocks: bounds
/// memory and how far the log may trail SQLite.
const MAX_QUEUED: usize = 4096;

/// Least time between the starts of two LTX files while commits keep
/// coming: under load, what arrives in it shares one file and one fsync,
/// so the writer's fsyncs stop competing with every one of SQLite's. A
/// transaction after a quiet spell is written at once.
const MIN_FILE_INTERVAL: Duration = Duration::from_millis(3);

/// One WAL transaction captured at its commit frame, waiting for its LTX
/// file. Its pages are read back from the WAL by the writer.
#[derive(Debug, Clone)]
pub(crate) struct PendingTx {
    pub txid: u64,
    pub pre_apply_checksum: u64,
    pub post_apply_checksum: u64,
    pub commit: u32,
    pub page_size: u32,
    /// (pgno, offset of the frame in the WAL, checksum of the page as
    /// captured), one per page, lock page and pages past `commit` left out.
    pub frames: Vec<(u32, u64, u64)>,
    pub wal: WalSpan,
    pub timestamp: i64,
}

impl PendingTx {
    fn pos(&self) -> Pos {
        Pos::new(self.txid, self.post_apply_checksum)
    }
}

struct State {
    queue: VecDeque<PendingTx>,
    /// The writer holds a batch taken from the queue.
    busy: bool,
    /// Newest transaction whose LTX file is durable in the log.
    durable: Pos,
    failed: Option<String>,
    stop: bool,
    /// Callers waiting in `drain`: the writer does not linger for them.
    draining: usize,
    /// The writer waits out `MIN_FILE_INTERVAL` with work queued: a new
    /// transaction need not wake it.
    lingering: bool,
    /// A commit waits for this file (zero-loss mode): no lingering.
    urgent: bool,
    /// Tests hold the writer to see what waits for it: it then writes only
    /// for a `drain`.
    held: bool,
}

struct Inner {
    name: String,
    log: LtxLog,
    wal_path: PathBuf,
    shared: Arc<Shared>,
    state: Mutex<State>,
    cond: Condvar,
}

pub(crate) struct LogWriter {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LogWriter {
    pub fn new(
        name: String,
        log: LtxLog,
        wal_path: PathBuf,
        shared: Arc<Shared>,
        durable: Pos,
    ) -> LogWriter {
        LogWriter {
            inner: Arc::new(Inner {
                name,
                log,
                wal_path,
                shared,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    busy: false,
                    durable,
                    failed: None,
                    stop: false,
                    draining: 0,
                    lingering: false,
                    urgent: false,
                    held: false,
                }),
                cond: Condvar::new(),
            }),
            thread: Mutex::new(None),
        }
    }

    /// Newest transaction whose LTX file is durable in the log.
    pub fn durable(&self) -> Pos {
        self.inner.lock().durable
    }

    /// Sets the durable position where the log moved without this writer
    /// (a replica applying files, a reset); nothing may be queued.
    pub fn set_durable(&self, pos: Pos) {
        let mut st = self.inner.lock();
        debug_assert!(st.queue.is_empty() && !st.busy);
        st.durable = pos;
    }

    /// Queues a captured transaction; blocks while too many wait.
    pub fn push(&self, tx: PendingTx) -> Result<()> {
        let mut st = self.inner.lock();
        while st.queue.len() >= MAX_QUEUED && st.failed.is_none() {
            st = self.inner.wait(st);
        }
        if let Some(reason) = &st.failed {
            return Err(self.inner.failure(reason));
        }
        st.queue.push_back(tx);
        let wake = !st.lingering || st.queue.len() >= MAX_QUEUED;
        drop(st);
        if wake {
            self.inner.cond.notify_all();
        }
        let mut thread = self.thread.lock().expect("log writer thread lock");
        if thread.is_none() {
            let inner = self.inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ltx-writer-{}", self.inner.name))
                .spawn(move || inner.run())
                .map_err(|e| StoreError::Capture {
                    db: self.inner.name.clone(),
                    reason: format!("cannot start the LTX writer thread: {e}"),
                })?;
            *thread = Some(handle);
        }
        Ok(())
    }

    /// Has what is queued written now rather than after lingering: a
    /// commit waits for it to reach candidates.
    pub fn hurry(&self) {
        let mut st = self.inner.lock();
        if !st.queue.is_empty() && !st.urgent {
            st.urgent = true;
            drop(st);
            self.inner.cond.notify_all();
        }
    }

    #[cfg(test)]
    fn hold(&self, held: bool) {
        self.inner.lock().held = held;
        self.inner.cond.notify_all();
    }

    /// Waits until every queued transaction is durable in the log. The
    /// writer never takes the database state lock, so callers may hold it.
    pub fn drain(&self) -> Result<()> {
        let mut st = self.inner.lock();
        if !st.queue.is_empty() || st.busy {
            st.draining += 1;
            self.inner.cond.notify_all();
            while (!st.queue.is_empty() || st.busy) && st.failed.is_none() {
                st = self.inner.wait(st);
            }
            st.draining -= 1;
        }
        match &st.failed {
            Some(reason) => Err(self.inner.failure(reason)),
            None => Ok(()),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.inner.lock().stop = true;
        self.inner.cond.notify_all();
        if let Some(t) = self.thread.lock().expect("log writer thread lock").take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("log writer state lock poisoned")
    }

    fn wait<'a>(&self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cond.wait(st).expect("log writer state lock poisoned")
    }

    fn failure(&self, reason: &str) -> StoreError {
        StoreError::Capture {
            db: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    fn run(&self) {
        // Set when commits arrived while the last file was being written:
        // the writer is what keeps up with SQLite, so the next file waits
        // out MIN_FILE_INTERVAL to take more of them. Otherwise (commits
        // slower than files) the next one is written at once.
        let mut linger_from: Option<Instant> = None;
        loop {
            let (started, batch): (Instant, Vec<PendingTx>) = {
                let mut st = self.lock();
                while st.queue.is_empty() && !st.stop {
                    st = self.wait(st);
                }
                if st.queue.is_empty() {
                    return;
                }
                let due = linger_from.map(|t| t + MIN_FILE_INTERVAL);
                st.lingering = true;
                loop {
                    let now = Instant::now();
                    let early = due.is_some_and(|d| now < d);
                    if (!early && !st.held)
                        || st.draining > 0
                        || (st.urgent && !st.held)
                        || st.stop
                        || st.queue.len() >= MAX_QUEUED
                    {
                        break;
                    }
                    st = match due.filter(|_| early) {
                        Some(d) => {
                            self.cond
                                .wait_timeout(st, d - now)
                                .expect("log writer state lock poisoned")
                                .0
                        }
                        None => self.wait(st),
                    };
                }
                st.lingering = false;
                st.urgent = false;
                let started = Instant::now();
                if st.failed.is_some() {
                    // The log has a gap from here on: write nothing more.
                    // These transactions are in the WAL, and recovery
                    // rebuilds their files at the next start.
                    st.queue.clear();
                    drop(st);
                    self.cond.notify_all();
                    continue;
                }
                st.busy = true;
                (started, st.queue.drain(..).collect())
            };
            let written = self.write_batch(&batch);
            let mut st = self.lock();
            st.busy = false;
            linger_from = (!st.queue.is_empty()).then_some(started);
            match &written {
                Ok(_) => st.durable = batch.last().expect("batch is not empty").pos(),
                Err(e) => {
                    let reason = format!(
                        "LTX file for TXIDs {}..={} could not be written: {e}",
                        batch[0].txid,
                        batch[batch.len() - 1].txid
                    );
                    tracing::error!(db = %self.name, "commit could not be captured: {reason}");
                    self.shared
                        .set_fatal(format!("database {}: {reason}", self.name));
                    st.failed = Some(reason);
                }
            }
            drop(st);
            self.cond.notify_all();
            if let Ok(bytes) = written {
                self.shared.ltx_bytes.fetch_add(bytes, Ordering::Relaxed);
                for tx in &batch {
                    self.shared.emit(Event::Tx {
                        db: self.name.clone(),
                        pos: tx.pos(),
                        page_size: tx.page_size,
                        commit: tx.commit,
                        timestamp: tx.timestamp,
                    });
                }
            }
        }
    }

    /// Writes `batch` as few LTX files as possible: one per run of
    /// transactions that follow each other in one WAL generation (a WAL
    /// restart waits for the writer, so a batch is normally one run).
    /// Returns the bytes written.
    fn write_batch(&self, batch: &[PendingTx]) -> Result<u64> {
        let wal = File::open(&self.wal_path).at(&self.wal_path)?;
        let mut bytes = 0;
        let mut start = 0;
        for i in 1..=batch.len() {
            let splits = i == batch.len() || {
                let (a, b) = (&batch[i - 1], &batch[i]);
                let (a_off, a_len, a_s1, a_s2) = a.wal;
                let (b_off, _, b_s1, b_s2) = b.wal;
                (a_s1, a_s2) != (b_s1, b_s2) || a_off + a_len != b_off || a.page_size != b.page_size
            };
            if splits {
                bytes += self.write_run(&wal, &batch[start..i])?;
                start = i;
            }
        }
        Ok(bytes)
    }

    fn write_run(&self, wal: &File, run: &[PendingTx]) -> Result<u64> {
        let (first, last) = (&run[0], &run[run.len() - 1]);
        // The newest version of each page, and none a later transaction cut
        // off by shrinking the database.
        let mut latest: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for tx in run {
            latest.retain(|&pgno, _| pgno <= tx.commit);
            for &(pgno, off, sum) in &tx.frames {
                latest.insert(pgno, (off, sum));
            }
        }
        let ps = first.page_size as usize;
        let mut pages = Vec::with_capacity(latest.len());
        for (pgno, (off, sum)) in latest {
            let mut page = vec![0u8; ps];
            let n = read_full_at(wal, off + WAL_FRAME_HEADER_SIZE, &mut page).at(&self.wal_path)?;
            // The frame must still hold what was captured: a mismatch would
            // put a page into the log that the checksums do not describe.
            if n != ps || ltx::page_checksum(pgno, &page) != sum {
                return Err(StoreError::Capture {
                    db: self.name.clone(),
                    reason: format!(
                        "WAL frame of page {pgno} at offset {off} changed before its LTX file was written"
                    ),
                });
            }
            pages.push((pgno, page));
        }
        let (wal_offset, _, salt1, salt2) = first.wal;
        let end = last.wal.0 + last.wal.1;
        let header = ltx::Header {
            flags: crate::store::ltxlog::header_flags(self.shared.compress),
            page_size: first.page_size,
            commit: last.commit,
            min_txid: first.txid,
            max_txid: last.txid,
            timestamp: last.timestamp,
            pre_apply_checksum: first.pre_apply_checksum,
            wal_offset: wal_offset as i64,
            wal_size: (end - wal_offset) as i64,
            wal_salt1: salt1,
            wal_salt2: salt2,
            node_id: self.shared.node_id,
        };
        let path = self.log.write(
            &header,
            pages.iter().map(|(pgno, data)| (*pgno, data.as_slice())),
            last.post_apply_checksum,
            !self.shared.no_fsync,
        )?;
        Ok(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::db::FileKind;
    use crate::store::{Store, StoreOptions};

    const PS: usize = 512;

    /// A WAL header with the given salts (capture reads magic, page size
    /// and salts; SQLite's checksums do not matter to it).
    fn wal_header(salt: u32) -> Vec<u8> {
        let mut h = vec![0u8; 32];
        h[0..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
        h[4..8].copy_from_slice(&3_007_000u32.to_be_bytes());
        h[8..12].copy_from_slice(&(PS as u32).to_be_bytes());
        h[16..20].copy_from_slice(&salt.to_be_bytes());
        h[20..24].copy_from_slice(&salt.to_be_bytes());
        h
    }

    /// One-page commit frame for page 1 of a one-page database.
    fn commit_frame(salt: u32, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; 24 + PS];
        f[0..4].copy_from_slice(&1u32.to_be_bytes());
        f[4..8].copy_from_slice(&1u32.to_be_bytes());
        f[8..12].copy_from_slice(&salt.to_be_bytes());
        f[12..16].copy_from_slice(&salt.to_be_bytes());
        f
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = StoreOptions::new(dir.path());
        opts.no_fsync = true;
        let store = Store::open(opts).unwrap();
        store.set_primary(true);
        (dir, store)
    }

    /// Commits `n` one-page transactions into the WAL; returns the offset
    /// after them.
    fn commit_txs(db: &crate::store::Db, n: u8) -> u64 {
        db.create(FileKind::Wal).unwrap();
        db.write_at(FileKind::Wal, 0, &wal_header(7)).unwrap();
        commit_more(db, 0, n)
    }

    #[test]
    fn a_checkpoint_waits_for_the_log() {
        let (_dir, store) = store();
        let db = store.create_db("a.db").unwrap();
        db.writer.hold(true);
        commit_txs(&db, 3);
        assert_eq!(db.pos().txid, 3);
        assert_eq!(db.log_pos().txid, 0);
        // A checkpoint's first write into the database file.
        db.write_at(FileKind::Database, 0, &commit_frame(7, 3)[24..])
            .unwrap();
        assert_eq!(db.log_pos(), db.pos());
    }

    #[test]
    fn a_wal_restart_waits_for_the_log() {
        let (_dir, store) = store();
        let db = store.create_db("a.db").unwrap();
        db.writer.hold(true);
        commit_txs(&db, 3);
        assert_eq!(db.log_pos().txid, 0);
        db.write_at(FileKind::Wal, 0, &wal_header(8)).unwrap();
        assert_eq!(db.log_pos(), db.pos());
    }

    #[test]
    fn no_position_is_known_inside_a_group_commit_file() {
        use crate::store::PositionAt;
        let (_dir, store) = store();
        let db = store.create_db("a.db").unwrap();
        db.writer.hold(true);
        commit_txs(&db, 1);
        db.flush_log().unwrap();
        commit_more(&db, 1, 3);
        db.flush_log().unwrap();
        assert!(matches!(db.position_at(1).unwrap(), PositionAt::At(p) if p.txid == 1));
        assert_eq!(
            db.position_at(3).unwrap(),
            PositionAt::Inside {
                min_txid: 2,
                max_txid: 4
            }
        );
        assert_eq!(db.position_at(4).unwrap(), PositionAt::At(db.pos()));
        assert_eq!(db.position_at(9).unwrap(), PositionAt::Unknown);
    }

    /// `n` more one-page commits after `done` of them; returns the offset
    /// after them.
    fn commit_more(db: &crate::store::Db, done: u8, n: u8) -> u64 {
        let frame = (24 + PS) as u64;
        let mut off = 32 + done as u64 * frame;
        for i in done..done + n {
            let f = commit_frame(7, i + 1);
            db.write_at(FileKind::Wal, off, &f[..24]).unwrap();
            db.write_at(FileKind::Wal, off + 24, &f[24..]).unwrap();
            off += frame;
        }
        off
    }

    #[test]
    fn transactions_waiting_together_share_one_file() {
        let (_dir, store) = store();
        let db = store.create_db("a.db").unwrap();
        db.writer.hold(true);
        let end = commit_txs(&db, 5);
        db.flush_log().unwrap();
        let files = db.ltx_log().list().unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let last = db.ltx_log().read_file(files.last().unwrap()).unwrap().0;
        assert_eq!(last.max_txid, 5);
        assert_eq!((last.wal_offset + last.wal_size) as u64, end);
        let mut sum = ltx::DbChecksum::new();
        sum.xor(ltx::page_checksum(1, &vec![5u8; PS]));
        assert_eq!(db.log_pos(), crate::store::Pos::new(5, sum.value()));
    }
}
