//! One database: its files in the data directory and the capture of its
//! commits. The mount (or a test) calls the file operations here exactly as
//! SQLite issues them; the rollback journal and WAL rules live in
//! `journal.rs` and `wal.rs`, the shared commit step in `commit.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::error::{IoContext, Result, StoreError};
use crate::store::log_writer::LogWriter;
use crate::store::ltxlog::LtxLog;
use crate::store::pos::Pos;
use crate::store::sqlite::WalHeader;
use crate::store::undo::UndoLog;
use crate::store::Shared;

/// The four files SQLite keeps per database, as named in the data dir
/// (LiteFS 0.5's layout) and as suffixes in the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Database,
    Journal,
    Wal,
    Shm,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [
        FileKind::Database,
        FileKind::Journal,
        FileKind::Wal,
        FileKind::Shm,
    ];

    pub fn data_file_name(self) -> &'static str {
        match self {
            FileKind::Database => "database",
            FileKind::Journal => "journal",
            FileKind::Wal => "wal",
            FileKind::Shm => "shm",
        }
    }

    pub fn mount_suffix(self) -> &'static str {
        match self {
            FileKind::Database => "",
            FileKind::Journal => "-journal",
            FileKind::Wal => "-wal",
            FileKind::Shm => "-shm",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub struct Db {
    id: u32,
    name: String,
    dir: PathBuf,
    pub(crate) log: LtxLog,
    pub(crate) shared: Arc<Shared>,
    /// Writes the LTX files of WAL transactions (see `log_writer.rs`).
    pub(crate) writer: LogWriter,
    state: Mutex<DbState>,
}

/// Everything commit capture tracks between SQLite's file operations.
pub(crate) struct DbState {
    pub pos: Pos,
    /// Database size in pages at `pos`.
    pub commit: u32,
    /// 0 until the database has its first page.
    pub page_size: u32,
    pub checksum: ltx::DbChecksum,
    files: [Option<File>; 4],
    /// A rollback journal with a live header exists: database writes
    /// belong to a transaction.
    pub journal_active: bool,
    /// Pages touched by the open rollback-journal transaction, with their
    /// checksum before it (None: the page did not exist).
    pub dirty: BTreeMap<u32, Option<u64>>,
    pub wal: WalTracker,
    /// Pre-images of pages the open transaction overwrites unjournaled.
    pub undo: UndoLog,
}

#[derive(Default)]
pub(crate) struct WalTracker {
    pub header: Option<WalHeader>,
    /// Offset where the frames of the next transaction start.
    pub tx_start: u64,
    /// Latest committed frame offset of each page in the current WAL.
    pub index: HashMap<u32, u64>,
}

impl WalTracker {
    pub fn reset(&mut self) {
        self.header = None;
        self.tx_start = crate::store::sqlite::WAL_HEADER_SIZE;
        self.index.clear();
    }
}

/// What recovery established about a database before the mount opens it.
pub(crate) struct Recovered {
    pub pos: Pos,
    pub commit: u32,
    pub page_size: u32,
    pub checksum: ltx::DbChecksum,
}

impl Db {
    pub(crate) fn new(
        id: u32,
        name: String,
        dir: PathBuf,
        shared: Arc<Shared>,
        rec: Recovered,
    ) -> Db {
        let log = LtxLog::new(dir.join("ltx"));
        let undo = UndoLog::new(&dir);
        let mut wal = WalTracker::default();
        wal.reset();
        let writer = LogWriter::new(
            name.clone(),
            log.clone(),
            dir.join(FileKind::Wal.data_file_name()),
            shared.clone(),
            rec.pos,
        );
        Db {
            id,
            name,
            dir,
            log,
            shared,
            writer,
            state: Mutex::new(DbState {
                pos: rec.pos,
                commit: rec.commit,
                page_size: rec.page_size,
                checksum: rec.checksum,
                files: Default::default(),
                journal_active: false,
                dirty: BTreeMap::new(),
                wal,
                undo,
            }),
        }
    }

    /// Stable for the life of the process; the mount derives inodes from it.
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, kind: FileKind) -> PathBuf {
        self.dir.join(kind.data_file_name())
    }

    pub fn ltx_log(&self) -> &LtxLog {
        &self.log
    }

    /// The position of what SQLite has committed (shown as `-pos`). In WAL
    /// mode its LTX file may still be on its way into the log: see
    /// [`Db::log_pos`].
    pub fn pos(&self) -> Pos {
        self.lock().pos
    }

    /// The newest position whose LTX file is durable in the log: what may
    /// be sent to replicas.
    pub fn log_pos(&self) -> Pos {
        self.writer.durable()
    }

    /// Waits until every committed transaction's LTX file is durable.
    pub fn flush_log(&self) -> Result<()> {
        self.writer.drain()
    }

    /// Database size in pages at the current position.
    pub fn commit_pages(&self) -> u32 {
        self.lock().commit
    }

    pub fn page_size(&self) -> u32 {
        self.lock().page_size
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, DbState> {
        // A panic while holding the lock leaves capture state that may not
        // match the files; continuing would risk a wrong LTX, so propagate.
        self.state.lock().expect("database state lock poisoned")
    }

    pub fn exists(&self, kind: FileKind) -> bool {
        self.path(kind).exists()
    }

    /// Size of one of the files, None when it does not exist.
    pub fn len(&self, kind: FileKind) -> Result<Option<u64>> {
        let path = self.path(kind);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(path),
        }
    }

    pub fn read_at(&self, kind: FileKind, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let primary = self.shared.is_primary();
        let mut st = self.lock();
        let path = self.path(kind);
        let f = st.file(&self.dir, kind, false).at(&path)?;
        let n = read_full_at(f, offset, buf).at(path)?;
        if kind == FileKind::Database && !primary && offset < 100 {
            replica_header_view(&mut buf[..n], offset, st.pos.txid);
        }
        Ok(n)
    }

    /// Creates the file if it is missing (SQLite's O_CREAT).
    pub fn create(&self, kind: FileKind) -> Result<()> {
        let primary = self.shared.may_write();
        let mut st = self.lock();
        let path = self.path(kind);
        if !path.exists() {
            match kind {
                // Readers in WAL mode create the -wal and -shm themselves;
                // an empty file changes nothing, so replicas allow it.
                FileKind::Wal | FileKind::Shm => {}
                _ if !primary => return Err(self.read_only("create")),
                _ => {}
            }
        }
        st.file(&self.dir, kind, true).at(&path)?;
        Ok(())
    }

    pub fn write_at(&self, kind: FileKind, offset: u64, data: &[u8]) -> Result<()> {
        let primary = self.shared.may_write();
        let mut st = self.lock();
        if kind == FileKind::Database && !st.journal_active {
            // A checkpoint: see `log_writer.rs`.
            self.writer.drain()?;
        }
        match kind {
            FileKind::Shm => st.write_raw(&self.dir, kind, offset, data),
            FileKind::Database
                if !primary && self.is_checkpoint_write(&mut st, offset, data)? =>
            {
                st.write_raw(&self.dir, kind, offset, data)
            }
            _ if !primary => Err(self.read_only("write")),
            FileKind::Database => self.write_database(&mut st, offset, data),
            FileKind::Journal => self.write_journal(&mut st, offset, data),
            FileKind::Wal => self.write_wal(&mut st, offset, data),
        }
    }

    pub fn set_len(&self, kind: FileKind, size: u64) -> Result<()> {
        let primary = self.shared.may_write();
        let mut st = self.lock();
        if kind == FileKind::Database && !st.journal_active {
            self.writer.drain()?;
        }
        match kind {
            FileKind::Shm => st.set_len_raw(&self.dir, kind, size),
            FileKind::Database if !primary && self.is_checkpoint_truncate(&st, size) => {
                st.set_len_raw(&self.dir, kind, size)
            }
            // After a checkpoint (see `wal.rs`): every frame is in the
            // database and in the log.
            FileKind::Wal if !primary && size == 0 && !st.journal_active => {
                self.truncate_wal(&mut st, size)
            }
            _ if !primary => Err(self.read_only("truncate")),
            FileKind::Database => self.truncate_database(&mut st, size),
            FileKind::Journal => self.truncate_journal(&mut st, size),
            FileKind::Wal => self.truncate_wal(&mut st, size),
        }
    }

    pub fn unlink(&self, kind: FileKind) -> Result<()> {
        let primary = self.shared.may_write();
        let mut st = self.lock();
        match kind {
            FileKind::Shm => st.unlink_raw(&self.dir, kind),
            // A WAL with nothing the database file lacks.
            FileKind::Wal if !primary && st.wal.index.is_empty() => {
                self.writer.drain()?;
                st.wal.reset();
                st.unlink_raw(&self.dir, kind)
            }
            _ if !primary => Err(self.read_only("delete")),
            FileKind::Database => self.drop_database(&mut st),
            FileKind::Journal => self.unlink_journal(&mut st),
            FileKind::Wal => {
                self.writer.drain()?;
                st.wal.reset();
                st.unlink_raw(&self.dir, kind)
            }
        }
    }

    pub fn sync(&self, kind: FileKind) -> Result<()> {
        if self.shared.no_fsync {
            return Ok(());
        }
        let mut st = self.lock();
        let path = self.path(kind);
        if !path.exists() {
            return Ok(());
        }
        self.shared
            .sqlite_fsyncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        st.file(&self.dir, kind, false)
            .at(&path)?
            .sync_data()
            .at(path)
    }

    /// Makes the names in the database's data directory durable (SQLite's
    /// directory sync after it creates or deletes a journal or WAL).
    /// On ext4, xfs and btrfs the file's own fsync already did
    /// (`dir_sync.rs`).
    pub fn sync_dir(&self) -> Result<()> {
        if self.shared.no_fsync || !self.log.needs_dir_sync() {
            return Ok(());
        }
        crate::store::ltxlog::sync_dir(&self.dir)
    }

    fn read_only(&self, op: &'static str) -> StoreError {
        StoreError::ReadOnly {
            db: self.name.clone(),
            op,
        }
    }

    /// Releases file handles so the files can be replaced (recovery, import).
    pub fn close_files(&self) {
        let mut st = self.lock();
        // A failure is already fatal for the store and logged; the files
        // can be closed either way.
        let _ = self.writer.drain();
        st.close_all();
        if !st.journal_active {
            if let Err(e) = st.undo.remove_if_finished() {
                tracing::warn!(db = %self.name, "{e}");
            }
        }
    }
}

impl DbState {
    pub(crate) fn close_all(&mut self) {
        self.files = Default::default();
    }

    /// The open handle for a file, opened (and with `create`, created) on
    /// first use. One handle per file serves every FUSE open: all I/O is
    /// positional, so they cannot disturb each other.
    pub(crate) fn file(&mut self, dir: &Path, kind: FileKind, create: bool) -> io::Result<&File> {
        let slot = &mut self.files[kind.index()];
        if slot.is_none() {
            let path = dir.join(kind.data_file_name());
            let new_database = create && kind == FileKind::Database && !path.exists();
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false)
                .open(&path)?;
            if new_database {
                // The database file's name must survive a power cut like
                // its pages do (POSIX: only a directory fsync makes it).
                File::open(dir)?.sync_all()?;
            }
            *slot = Some(f);
        }
        Ok(slot.as_ref().expect("just opened"))
    }

    pub(crate) fn write_raw(
        &mut self,
        dir: &Path,
        kind: FileKind,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        let path = dir.join(kind.data_file_name());
        self.file(dir, kind, true)
            .at(&path)?
            .write_all_at(data, offset)
            .at(path)
    }

    pub(crate) fn set_len_raw(&mut self, dir: &Path, kind: FileKind, size: u64) -> Result<()> {
        let path = dir.join(kind.data_file_name());
        self.file(dir, kind, true).at(&path)?.set_len(size).at(path)
    }

    pub(crate) fn unlink_raw(&mut self, dir: &Path, kind: FileKind) -> Result<()> {
        self.files[kind.index()] = None;
        let path = dir.join(kind.data_file_name());
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at(path),
            _ => Ok(()),
        }
    }

    /// One page of the database file, None past its end.
    pub(crate) fn read_db_page(&mut self, dir: &Path, pgno: u32) -> Result<Option<Vec<u8>>> {
        let ps = self.page_size as u64;
        let path = dir.join(FileKind::Database.data_file_name());
        let f = self.file(dir, FileKind::Database, true).at(&path)?;
        let len = f.metadata().at(&path)?.len();
        let off = (pgno as u64 - 1) * ps;
        if off + ps > len {
            return Ok(None);
        }
        let mut buf = vec![0u8; ps as usize];
        read_full_at(f, off, &mut buf).at(path)?;
        Ok(Some(buf))
    }

    pub(crate) fn db_len(&mut self, dir: &Path) -> Result<u64> {
        let path = dir.join(FileKind::Database.data_file_name());
        let f = self.file(dir, FileKind::Database, true).at(&path)?;
        f.metadata().map(|m| m.len()).at(path)
    }
}

/// How a replica shows the database header to SQLite clients.
///
/// A replica's database file is always complete (transactions are applied
/// to it, never left in a WAL), so it is shown in rollback-journal mode
/// (header bytes 18/19 = 1): a write then has to create a journal, which
/// the mount refuses with EACCES, and SQLite reports "attempt to write a
/// readonly database" for that one transaction. In WAL mode no per
/// transaction file open exists that could fail the same way. Once the node
/// is promoted the true header (WAL) is shown again and SQLite switches the
/// same connection back to WAL at its next transaction.
///
/// The change counter (24..28) is set to the TXID so readers drop their page
/// cache whenever a transaction has been applied; version-valid-for
/// (92..96) follows it only where it matched, keeping the in-header size
/// exactly as trustworthy as the primary's.
pub fn replica_header_view(buf: &mut [u8], offset: u64, txid: u64) {
    fn patch(buf: &mut [u8], offset: u64, at: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let pos = at + i as u64;
            if pos >= offset && pos < offset + buf.len() as u64 {
                buf[(pos - offset) as usize] = *b;
            }
        }
    }
    let byte = |buf: &[u8], at: u64| -> Option<u8> {
        at.checked_sub(offset)
            .and_then(|i| buf.get(i as usize).copied())
    };
    for at in [18, 19] {
        if byte(buf, at) == Some(2) {
            patch(buf, offset, at, &[1]);
        }
    }
    let counter_matches = (0..4).all(|i| byte(buf, 24 + i) == byte(buf, 92 + i));
    let counter = (txid as u32).to_be_bytes();
    if counter_matches {
        patch(buf, offset, 92, &counter);
    }
    patch(buf, offset, 24, &counter);
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_full_at(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
