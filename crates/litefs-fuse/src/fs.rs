//! The fuser `Filesystem`: each operation becomes a store call on the
//! database file it names. Locks are deliberately not implemented: without
//! FUSE_POSIX_LOCKS the kernel keeps SQLite's fcntl locks itself, which is
//! both correct (every client goes through this one mount) and an order of
//! magnitude cheaper than a round trip per lock.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::consts::{FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE};
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use libc::{c_int, EACCES, EINVAL, EIO, ENOENT, EPERM};
use litefs::store::{Db, FileKind, Store, StoreError};

use crate::held::answer_when_held;
use crate::node::{parse_name, pos_name, Name, Node, LAG_NAME, PRIMARY_NAME};

/// Attributes of files whose every change passes through the kernel can be
/// cached; the generated files (`-pos`, `.primary`) change behind its back.
const TTL: Duration = Duration::from_secs(1);
const NO_TTL: Duration = Duration::ZERO;

pub struct LiteFs {
    store: Arc<Store>,
    uid: u32,
    gid: u32,
}

impl LiteFs {
    pub fn new(store: Arc<Store>) -> LiteFs {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        LiteFs { store, uid, gid }
    }

    fn attr(&self, node: Node) -> Result<FileAttr, c_int> {
        let (kind, perm, size) = match node {
            Node::Root => (FileType::Directory, 0o755, 0),
            Node::Primary => match self.primary_file() {
                Some(body) => (FileType::RegularFile, 0o444, body.len() as u64),
                None => return Err(ENOENT),
            },
            Node::Lag => (FileType::RegularFile, 0o444, lag_file(0).len() as u64),
            Node::Pos(id) => {
                let db = self.db(id)?;
                (
                    FileType::RegularFile,
                    0o444,
                    db.pos().to_pos_file().len() as u64,
                )
            }
            Node::File(id, kind) => {
                let db = self.db(id)?;
                match db.len(kind) {
                    Ok(Some(len)) => (FileType::RegularFile, 0o644, len),
                    Ok(None) => return Err(ENOENT),
                    Err(e) => return Err(errno(&e)),
                }
            }
        };
        let now = SystemTime::now();
        Ok(FileAttr {
            ino: node.ino(),
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn db(&self, id: u32) -> Result<Arc<Db>, c_int> {
        self.store.db_by_id(id).ok_or(ENOENT)
    }

    fn primary_file(&self) -> Option<String> {
        if self.store.is_primary() {
            return None;
        }
        self.store.primary_hostname().map(|h| format!("{h}\n"))
    }

    fn lookup_name(&self, name: &str) -> Result<Node, c_int> {
        Ok(match parse_name(name) {
            Name::Primary => Node::Primary,
            Name::Lag => Node::Lag,
            Name::Pos(db) => Node::Pos(self.store.db(db).ok_or(ENOENT)?.id()),
            Name::File(db, kind) => Node::File(self.store.db(db).ok_or(ENOENT)?.id(), kind),
        })
    }

    /// Contents of the generated files.
    fn generated(&self, node: Node) -> Result<Vec<u8>, c_int> {
        match node {
            Node::Primary => self.primary_file().map(String::into_bytes).ok_or(ENOENT),
            Node::Lag => Ok(lag_file(self.store.lag_ms()).into_bytes()),
            Node::Pos(id) => Ok(self.db(id)?.pos().to_pos_file().into_bytes()),
            _ => Err(EINVAL),
        }
    }
}

/// `%+010d\n`, as LiteFS writes `.lag`.
fn lag_file(ms: i64) -> String {
    format!("{ms:+010}\n")
}

/// The errno SQLite turns into the right error (see DESIGN.md: EACCES on a
/// refused journal gives SQLITE_READONLY).
fn errno(e: &StoreError) -> c_int {
    match e {
        StoreError::ReadOnly { .. } => EACCES,
        StoreError::Busy { .. } => libc::EBUSY,
        StoreError::Misaligned { .. }
        | StoreError::PageSizeChange { .. }
        | StoreError::Unjournaled { .. }
        | StoreError::InvalidName(_) => EINVAL,
        StoreError::Io { source, .. } => source.raw_os_error().unwrap_or(EIO),
        StoreError::Ltx { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Capture { .. }
        | StoreError::InUse { .. } => EIO,
    }
}

fn report(op: &str, e: &StoreError) -> c_int {
    match e {
        StoreError::ReadOnly { .. } => tracing::debug!("{op}: {e}"),
        _ => tracing::warn!("{op}: {e}"),
    }
    errno(e)
}

impl Filesystem for LiteFs {
    fn init(&mut self, _req: &Request<'_>, _config: &mut KernelConfig) -> Result<(), c_int> {
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if parent != fuser::FUSE_ROOT_ID {
            return reply.error(ENOENT);
        }
        let Some(name) = name.to_str() else {
            return reply.error(ENOENT);
        };
        let node = self.lookup_name(name);
        match node.and_then(|n| self.attr(n)) {
            Ok(attr) => reply.entry(&ttl_for(Node::from_ino(attr.ino)), &attr, 0),
            // A missing side file of a known database (`-journal` above
            // all: SQLite looks for a hot journal at the start of every
            // read transaction in the rollback modes) is cached as a
            // negative entry (inode 0 with a timeout): side files only
            // appear through this mount's create, which replaces the
            // negative entry. Missing databases are not cached: the
            // store can gain one behind the kernel's back (replication).
            Err(ENOENT) if matches!(node, Ok(Node::File(_, k)) if k != FileKind::Database) => {
                reply.entry(&TTL, &negative_attr(), 0)
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let node = Node::from_ino(ino).ok_or(ENOENT);
        match node.and_then(|n| self.attr(n)) {
            Ok(attr) => reply.attr(&ttl_for(Node::from_ino(ino)), &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let Some(node) = Node::from_ino(ino) else {
            return reply.error(ENOENT);
        };
        if let Some(size) = size {
            tracing::trace!(?node, size, "truncate");
            let Node::File(id, kind) = node else {
                return reply.error(EACCES);
            };
            let res = self.db(id).and_then(|db| {
                db.set_len(kind, size)
                    .map_err(|e| report("truncate", &e))
                    .map(|()| db)
            });
            let db = match res {
                Ok(db) => db,
                Err(e) => return reply.error(e),
            };
            let attr = self.attr(node);
            return answer_when_held(&self.store, &db, move |r| match r.and(attr) {
                Ok(attr) => reply.attr(&ttl_for(Some(node)), &attr),
                Err(e) => reply.error(e),
            });
        }
        match self.attr(node) {
            Ok(attr) => reply.attr(&ttl_for(Some(node)), &attr),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        if parent != fuser::FUSE_ROOT_ID {
            return reply.error(ENOENT);
        }
        let node = name
            .to_str()
            .ok_or(ENOENT)
            .and_then(|n| self.lookup_name(n));
        tracing::trace!(?node, "unlink");
        match node {
            Ok(Node::File(id, kind)) => match self.db(id).and_then(|db| {
                db.unlink(kind)
                    .map_err(|e| report("unlink", &e))
                    .map(|()| db)
            }) {
                Ok(db) => {
                    let store = self.store.clone();
                    let dropped = db.clone();
                    answer_when_held(&self.store, &db, move |r| match r {
                        Ok(()) => {
                            reply.ok();
                            if kind == FileKind::Database {
                                // The side files went too, and a database
                                // created again gets the same inodes: the
                                // kernel forgets both. Not on this thread:
                                // the kernel holds the directory until the
                                // reply is processed.
                                std::thread::spawn(move || store.invalidate_cache(&dropped));
                            }
                        }
                        Err(e) => reply.error(e),
                    })
                }
                Err(e) => reply.error(e),
            },
            Ok(_) => reply.error(EPERM),
            Err(e) => reply.error(e),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY;
        match Node::from_ino(ino) {
            Some(Node::File(id, kind)) => match self.db(id) {
                // Every change to these files passes through this mount, so
                // the kernel's page cache stays right across opens.
                Ok(db) if db.len(kind).ok().flatten().is_some() => {
                    reply.opened(0, FOPEN_KEEP_CACHE)
                }
                Ok(_) => reply.error(ENOENT),
                Err(e) => reply.error(e),
            },
            Some(Node::Root) => reply.opened(0, 0),
            Some(_) if writing => reply.error(EACCES),
            // Generated files: always ask us, their contents move on their own.
            Some(_) => reply.opened(0, FOPEN_DIRECT_IO),
            None => reply.error(ENOENT),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if parent != fuser::FUSE_ROOT_ID {
            return reply.error(ENOENT);
        }
        let Some(name) = name.to_str() else {
            return reply.error(EINVAL);
        };
        let created = match parse_name(name) {
            Name::File(db, FileKind::Database) => self
                .store
                .create_db(db)
                .map(|d| Node::File(d.id(), FileKind::Database)),
            Name::File(db, kind) => match self.store.db(db) {
                Some(d) => d.create(kind).map(|()| Node::File(d.id(), kind)),
                None => return reply.error(ENOENT),
            },
            Name::Pos(_) | Name::Primary | Name::Lag => return reply.error(EACCES),
        };
        match created
            .map_err(|e| report("create", &e))
            .and_then(|n| self.attr(n))
        {
            Ok(attr) => reply.created(&TTL, &attr, 0, 0, FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let offset = offset.max(0) as u64;
        match Node::from_ino(ino) {
            Some(Node::File(id, kind)) => {
                let db = match self.db(id) {
                    Ok(db) => db,
                    Err(e) => return reply.error(e),
                };
                let mut buf = vec![0u8; size as usize];
                match db.read_at(kind, offset, &mut buf) {
                    Ok(n) => reply.data(&buf[..n]),
                    Err(e) => reply.error(report("read", &e)),
                }
            }
            Some(node) => match self.generated(node) {
                Ok(body) => {
                    let start = (offset as usize).min(body.len());
                    let end = (start + size as usize).min(body.len());
                    reply.data(&body[start..end])
                }
                Err(e) => reply.error(e),
            },
            None => reply.error(ENOENT),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Some(Node::File(id, kind)) = Node::from_ino(ino) else {
            return reply.error(EACCES);
        };
        tracing::trace!(?kind, offset, len = data.len(), "write");
        let res = self.db(id).and_then(|db| {
            db.write_at(kind, offset.max(0) as u64, data)
                .map_err(|e| report("write", &e))
                .map(|()| db)
        });
        let n = data.len() as u32;
        match res {
            Ok(db) => answer_when_held(&self.store, &db, move |r| match r {
                Ok(()) => reply.written(n),
                Err(e) => reply.error(e),
            }),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match Node::from_ino(ino) {
            Some(Node::File(id, kind)) => match self
                .db(id)
                .and_then(|db| db.sync(kind).map_err(|e| report("fsync", &e)).map(|()| db))
            {
                Ok(db) => answer_when_held(&self.store, &db, move |r| match r {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(e),
                }),
                Err(e) => reply.error(e),
            },
            _ => reply.ok(),
        }
    }

    /// SQLite syncs the directory of a journal or WAL it has just created
    /// (and, with synchronous=EXTRA, after deleting a journal): the names
    /// of those files live in each database's data directory, so that is
    /// what is synced. Answering ENOSYS, fuser's default, would make the
    /// kernel report success for every later directory sync without asking.
    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if ino != fuser::FUSE_ROOT_ID {
            return reply.error(ENOENT);
        }
        for db in self.store.dbs() {
            if let Err(e) = db.sync_dir() {
                return reply.error(report("fsyncdir", &e));
            }
        }
        reply.ok();
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _lock_owner: u64,
        reply: ReplyEmpty,
    ) {
        // Nothing to do at close; ENOSYS makes the kernel stop sending
        // FLUSH (fc->no_flush), so a process killed while it has a file
        // open on its own mount (the replica's apply lock) is not stuck
        // forever flushing it to its own, dead, FUSE thread.
        reply.error(libc::ENOSYS);
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        match Node::from_ino(ino).ok_or(ENOENT).and_then(|n| self.attr(n)) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if ino != fuser::FUSE_ROOT_ID {
            return reply.error(ENOENT);
        }
        let mut entries: Vec<(u64, FileType, String)> = vec![
            (Node::Root.ino(), FileType::Directory, ".".into()),
            (Node::Root.ino(), FileType::Directory, "..".into()),
        ];
        if self.primary_file().is_some() {
            entries.push((
                Node::Primary.ino(),
                FileType::RegularFile,
                PRIMARY_NAME.into(),
            ));
        }
        entries.push((Node::Lag.ino(), FileType::RegularFile, LAG_NAME.into()));
        for db in self.store.dbs() {
            for kind in FileKind::ALL {
                if db.len(kind).ok().flatten().is_some() {
                    let name = format!("{}{}", db.name(), kind.mount_suffix());
                    entries.push((Node::File(db.id(), kind).ino(), FileType::RegularFile, name));
                }
            }
            if db.is_dropped() {
                continue;
            }
            entries.push((
                Node::Pos(db.id()).ino(),
                FileType::RegularFile,
                pos_name(db.name()),
            ));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(ino, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let path = std::ffi::CString::new(self.store.data_dir().as_os_str().as_encoded_bytes())
            .unwrap_or_default();
        // SAFETY: statvfs writes into the zeroed struct we own; path is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return reply.error(EIO);
        }
        reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        );
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        _parent: u64,
        _name: &OsStr,
        _newparent: u64,
        _newname: &OsStr,
        _flags: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(EPERM);
    }
}

fn ttl_for(node: Option<Node>) -> Duration {
    match node {
        Some(Node::File(..)) | Some(Node::Root) => TTL,
        _ => NO_TTL,
    }
}

/// The attributes of a negative lookup reply: inode 0 tells the kernel
/// "no such file" while letting it cache that for the entry timeout.
fn negative_attr() -> FileAttr {
    FileAttr {
        ino: 0,
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}
