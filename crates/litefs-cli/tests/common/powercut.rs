//! A power-cut simulating file system: an in-memory FUSE file system for a
//! node's data dir, so that the real `litefs` binary (commit capture, the
//! WAL log writer, retention, recovery, SQLite's own recovery inside it)
//! does its real I/O through it unchanged, and the test can cut the power
//! at any mutating operation and keep only what a disk would have kept.
//!
//! What survives a cut:
//! * file data: a file's content at its last fsync/fdatasync, plus a random
//!   subset of the page-sized pieces of the writes and truncates made since
//!   (the kernel writes dirty pages back whenever it likes);
//! * names: [`Model::Posix`] makes a directory's entries durable only at an
//!   fsync of that directory, and keeps a random subset of the later
//!   namespace operations that still apply; [`Model::Ext4`] (data=ordered,
//!   journaled metadata) makes every namespace operation durable, in order,
//!   at the next fsync of any file or directory (a journal commit), keeps a
//!   random prefix of the later ones, and makes a file renamed over another
//!   durable at the rename (auto_da_alloc).
//!
//! Not modelled: hard links, symlinks, xattrs, fallocate, file metadata
//! other than size and mode, and torn writes inside a page.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow,
};
use libc::{EEXIST, EINVAL, EIO, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY};

const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = fuser::FUSE_ROOT_ID;
const PAGE: u64 = 4096;

/// When namespace operations become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Posix,
    Ext4,
}

/// splitmix64: a seeded generator so that a failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

enum Change {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

struct Inode {
    dir: bool,
    mode: u16,
    data: Vec<u8>,
    /// What a cut keeps for sure: the content at the last fsync.
    durable: Vec<u8>,
    /// Changes since that fsync, in order.
    unsynced: Vec<Change>,
    entries: BTreeMap<OsString, u64>,
    /// The name it was last given, for reports.
    path: String,
}

impl Inode {
    fn new(dir: bool, mode: u16, path: String) -> Inode {
        Inode {
            dir,
            mode,
            data: Vec::new(),
            durable: Vec::new(),
            unsynced: Vec::new(),
            entries: BTreeMap::new(),
            path,
        }
    }

    fn sync(&mut self) {
        for c in self.unsynced.drain(..) {
            apply_change(&mut self.durable, &c);
        }
    }

    fn change(&mut self, c: Change) {
        apply_change(&mut self.data, &c);
        self.unsynced.push(c);
    }
}

fn apply_change(buf: &mut Vec<u8>, c: &Change) {
    match c {
        Change::Write(off, d) => write_at(buf, *off, d),
        Change::Truncate(n) => buf.resize(*n as usize, 0),
    }
}

fn write_at(buf: &mut Vec<u8>, off: u64, d: &[u8]) {
    let end = off as usize + d.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[off as usize..end].copy_from_slice(d);
}

#[derive(Clone)]
enum NsOp {
    Link {
        parent: u64,
        name: OsString,
        ino: u64,
    },
    Unlink {
        parent: u64,
        name: OsString,
        ino: u64,
    },
    Rename {
        from: u64,
        name: OsString,
        to: u64,
        newname: OsString,
        ino: u64,
    },
}

type Entries = BTreeMap<OsString, u64>;

struct Sim {
    model: Model,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    /// The durable namespace: each directory's durable entries.
    durable_dirs: HashMap<u64, Entries>,
    /// Namespace operations not yet known durable, with their sequence
    /// number (ext4: since the last journal commit; POSIX: all of them,
    /// filtered by `dir_synced` when a cut is materialized).
    pending: Vec<(u64, NsOp)>,
    /// POSIX: the sequence number at each directory's last fsync.
    dir_synced: HashMap<u64, u64>,
    seq: u64,
    ops: u64,
    cut_at: Option<u64>,
    cut: Option<String>,
    time: SystemTime,
}

impl Sim {
    fn new(model: Model) -> Sim {
        let mut inodes = HashMap::new();
        inodes.insert(ROOT, Inode::new(true, 0o755, String::new()));
        Sim {
            model,
            inodes,
            next_ino: ROOT + 1,
            durable_dirs: HashMap::new(),
            pending: Vec::new(),
            dir_synced: HashMap::new(),
            seq: 0,
            ops: 0,
            cut_at: None,
            cut: None,
            time: SystemTime::now(),
        }
    }

    /// Loads `dir` as content that is all durable.
    fn preload(&mut self, dir: &Path, ino: u64) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let is_dir = e.file_type().unwrap().is_dir();
            let name = e.file_name();
            let child = self.add(ino, &name, is_dir, if is_dir { 0o755 } else { 0o644 });
            if is_dir {
                self.preload(&e.path(), child);
            } else {
                let data = fs::read(e.path()).unwrap();
                let n = self.inodes.get_mut(&child).unwrap();
                n.durable = data.clone();
                n.data = data;
            }
        }
        let entries = self.inodes[&ino].entries.clone();
        self.durable_dirs.insert(ino, entries);
    }

    fn add(&mut self, parent: u64, name: &OsStr, dir: bool, mode: u16) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let path = format!("{}/{}", self.inodes[&parent].path, name.to_string_lossy());
        self.inodes.insert(ino, Inode::new(dir, mode, path));
        self.dir_mut(parent).entries.insert(name.to_owned(), ino);
        ino
    }

    fn dir_mut(&mut self, ino: u64) -> &mut Inode {
        self.inodes.get_mut(&ino).expect("inode")
    }

    fn alive(&self) -> Result<(), c_int> {
        if self.cut.is_some() {
            Err(EIO)
        } else {
            Ok(())
        }
    }

    /// Counts a mutating operation; at the chosen one the power goes and
    /// it and everything after it fail.
    fn tick(&mut self, what: impl FnOnce(&Sim) -> String) -> Result<(), c_int> {
        self.alive()?;
        self.ops += 1;
        if self.cut_at == Some(self.ops) {
            let d = what(self);
            self.cut = Some(format!("op {}: {d}", self.ops));
            return Err(EIO);
        }
        Ok(())
    }

    fn record(&mut self, op: NsOp) {
        self.seq += 1;
        self.pending.push((self.seq, op));
    }

    /// ext4's journal commit: every pending namespace operation, in order.
    fn journal_commit(&mut self) {
        if self.model == Model::Ext4 {
            for (_, op) in std::mem::take(&mut self.pending) {
                apply_ns(&mut self.durable_dirs, &op);
            }
        }
    }

    fn node(&self, ino: u64) -> Result<&Inode, c_int> {
        self.inodes.get(&ino).ok_or(ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, c_int> {
        let p = self.node(parent)?;
        if !p.dir {
            return Err(ENOTDIR);
        }
        p.entries.get(name).copied().ok_or(ENOENT)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, c_int> {
        let n = self.node(ino)?;
        let size = n.data.len() as u64;
        Ok(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            crtime: self.time,
            kind: if n.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: n.mode,
            nlink: if n.dir { 2 } else { 1 },
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn truncate(&mut self, ino: u64, size: u64) -> Result<(), c_int> {
        if self.node(ino)?.dir {
            return Err(EISDIR);
        }
        self.tick(|s| format!("truncate {} to {size}", s.inodes[&ino].path))?;
        self.dir_mut(ino).change(Change::Truncate(size));
        Ok(())
    }

    fn make(&mut self, parent: u64, name: &OsStr, dir: bool, mode: u32) -> Result<u64, c_int> {
        if self.child(parent, name).is_ok() {
            return Err(EEXIST);
        }
        let shown = name.to_string_lossy().into_owned();
        self.tick(|s| {
            let what = if dir { "mkdir" } else { "create" };
            format!("{what} {}/{shown}", s.inodes[&parent].path)
        })?;
        let ino = self.add(parent, name, dir, (mode & 0o7777) as u16);
        self.record(NsOp::Link {
            parent,
            name: name.to_owned(),
            ino,
        });
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), c_int> {
        let ino = self.child(parent, name)?;
        let n = self.node(ino)?;
        match (dir, n.dir) {
            (false, true) => return Err(EISDIR),
            (true, false) => return Err(ENOTDIR),
            (true, true) if !n.entries.is_empty() => return Err(ENOTEMPTY),
            _ => {}
        }
        self.tick(|s| format!("unlink {}", s.inodes[&ino].path))?;
        self.dir_mut(parent).entries.remove(name);
        self.record(NsOp::Unlink {
            parent,
            name: name.to_owned(),
            ino,
        });
        Ok(())
    }

    fn rename(
        &mut self,
        from: u64,
        name: &OsStr,
        to: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<(), c_int> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(EINVAL);
        }
        let ino = self.child(from, name)?;
        let old = self.child(to, newname).ok();
        if old == Some(ino) {
            return Ok(());
        }
        if let Some(o) = old {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(EEXIST);
            }
            let (src_dir, dst) = (self.inodes[&ino].dir, &self.inodes[&o]);
            match (src_dir, dst.dir) {
                (false, true) => return Err(EISDIR),
                (true, false) => return Err(ENOTDIR),
                (true, true) if !dst.entries.is_empty() => return Err(ENOTEMPTY),
                _ => {}
            }
        }
        let shown = newname.to_string_lossy().into_owned();
        self.tick(|s| {
            format!(
                "rename {} to {}/{shown}",
                s.inodes[&ino].path, s.inodes[&to].path
            )
        })?;
        self.dir_mut(from).entries.remove(name);
        self.dir_mut(to).entries.insert(newname.to_owned(), ino);
        let path = format!("{}/{shown}", self.inodes[&to].path);
        let ext4 = self.model == Model::Ext4;
        let n = self.dir_mut(ino);
        n.path = path;
        if old.is_some() && !n.dir && ext4 {
            // auto_da_alloc: ext4 flushes a file renamed over another.
            n.sync();
        }
        self.record(NsOp::Rename {
            from,
            name: name.to_owned(),
            to,
            newname: newname.to_owned(),
            ino,
        });
        Ok(())
    }

    fn fsync(&mut self, ino: u64) -> Result<(), c_int> {
        self.tick(|s| format!("fsync {}", s.inodes[&ino].path))?;
        self.journal_commit();
        let n = self.inodes.get_mut(&ino).ok_or(ENOENT)?;
        if n.dir {
            if self.model == Model::Posix {
                let entries = n.entries.clone();
                self.durable_dirs.insert(ino, entries);
                self.dir_synced.insert(ino, self.seq);
            }
        } else {
            n.sync();
        }
        Ok(())
    }

    /// A durable image after a cut: see the module doc for what is kept.
    /// Returns a summary of what the random choices kept.
    fn materialize(&self, rng: &mut Rng, to: &Path) -> String {
        let mut dirs = self.durable_dirs.clone();
        let mut kept = 0;
        match self.model {
            Model::Ext4 => {
                kept = rng.below(self.pending.len() as u64 + 1) as usize;
                for (_, op) in &self.pending[..kept] {
                    apply_ns(&mut dirs, op);
                }
            }
            Model::Posix => {
                for (seq, op) in &self.pending {
                    let unsynced = |d: &u64| self.dir_synced.get(d).copied().unwrap_or(0) < *seq;
                    if rng.coin() && apply_posix(&mut dirs, op, unsynced) {
                        kept += 1;
                    }
                }
            }
        }
        let mut pages = (0, 0);
        let mut files = HashMap::new();
        self.write_tree(&dirs, ROOT, to, rng, &mut files, &mut pages);
        format!(
            "{kept} of {} pending namespace ops, {} of {} unsynced page writes kept",
            self.pending.len(),
            pages.0,
            pages.1
        )
    }

    fn write_tree(
        &self,
        dirs: &HashMap<u64, Entries>,
        ino: u64,
        to: &Path,
        rng: &mut Rng,
        files: &mut HashMap<u64, Vec<u8>>,
        pages: &mut (usize, usize),
    ) {
        let Some(entries) = dirs.get(&ino) else {
            return;
        };
        for (name, child) in entries {
            let path = to.join(name);
            let n = &self.inodes[child];
            if n.dir {
                fs::create_dir(&path).unwrap();
                self.write_tree(dirs, *child, &path, rng, files, pages);
                continue;
            }
            let content = files
                .entry(*child)
                .or_insert_with(|| durable_content(n, rng, pages));
            fs::write(&path, content).unwrap();
        }
    }
}

/// A file's durable content plus a random subset of the page-sized pieces
/// of its unsynced changes, applied in order.
fn durable_content(n: &Inode, rng: &mut Rng, pages: &mut (usize, usize)) -> Vec<u8> {
    let mut c = n.durable.clone();
    for ch in &n.unsynced {
        match ch {
            Change::Write(off, d) => {
                let end = off + d.len() as u64;
                let mut p = *off;
                while p < end {
                    let next = end.min((p / PAGE + 1) * PAGE);
                    pages.1 += 1;
                    if rng.coin() {
                        pages.0 += 1;
                        write_at(&mut c, p, &d[(p - off) as usize..(next - off) as usize]);
                    }
                    p = next;
                }
            }
            Change::Truncate(_) => {
                pages.1 += 1;
                if rng.coin() {
                    pages.0 += 1;
                    apply_change(&mut c, ch);
                }
            }
        }
    }
    c
}

fn apply_ns(dirs: &mut HashMap<u64, Entries>, op: &NsOp) {
    match op {
        NsOp::Link { parent, name, ino } => {
            dirs.entry(*parent).or_default().insert(name.clone(), *ino);
        }
        NsOp::Unlink { parent, name, .. } => {
            dirs.entry(*parent).or_default().remove(name);
        }
        NsOp::Rename {
            from,
            name,
            to,
            newname,
            ino,
        } => {
            dirs.entry(*from).or_default().remove(name);
            dirs.entry(*to).or_default().insert(newname.clone(), *ino);
        }
    }
}

/// One POSIX namespace operation on the durable directories, for the
/// directories not fsynced since it, if it still applies (its source is
/// there, its new name free); whether it was applied.
fn apply_posix(
    dirs: &mut HashMap<u64, Entries>,
    op: &NsOp,
    unsynced: impl Fn(&u64) -> bool,
) -> bool {
    match op {
        NsOp::Link { parent, name, ino } => {
            let d = dirs.entry(*parent).or_default();
            if !unsynced(parent) || d.contains_key(name) {
                return false;
            }
            d.insert(name.clone(), *ino);
        }
        NsOp::Unlink { parent, name, ino } => {
            let d = dirs.entry(*parent).or_default();
            if !unsynced(parent) || d.get(name) != Some(ino) {
                return false;
            }
            d.remove(name);
        }
        NsOp::Rename {
            from,
            name,
            to,
            newname,
            ino,
        } => {
            let src = unsynced(from);
            if src {
                let d = dirs.entry(*from).or_default();
                if d.get(name) != Some(ino) {
                    return false;
                }
                d.remove(name);
            }
            if unsynced(to) {
                dirs.entry(*to).or_default().insert(newname.clone(), *ino);
            }
        }
    }
    true
}

/// The FUSE side: every request locks the shared state.
struct Fs(Arc<Mutex<Sim>>);

impl Fs {
    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.0.lock().unwrap()
    }
}

fn entry(reply: ReplyEntry, r: Result<FileAttr, c_int>) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, 0),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), c_int>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Fs {
    fn lookup(&mut self, _: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let s = self.sim();
        entry(
            reply,
            s.alive().and_then(|_| s.attr(s.child(parent, name)?)),
        );
    }

    fn getattr(&mut self, _: &Request<'_>, ino: u64, _: Option<u64>, reply: ReplyAttr) {
        let s = self.sim();
        match s.alive().and_then(|_| s.attr(ino)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
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
        let mut s = self.sim();
        let r = (|| {
            s.alive()?;
            if let Some(size) = size {
                s.truncate(ino, size)?;
            }
            if let Some(m) = mode {
                s.inodes.get_mut(&ino).ok_or(ENOENT)?.mode = (m & 0o7777) as u16;
            }
            s.attr(ino)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &mut self,
        _: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(EINVAL);
        }
        let mut s = self.sim();
        entry(
            reply,
            s.make(parent, name, false, mode).and_then(|i| s.attr(i)),
        );
    }

    fn mkdir(
        &mut self,
        _: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.sim();
        entry(
            reply,
            s.make(parent, name, true, mode).and_then(|i| s.attr(i)),
        );
    }

    fn unlink(&mut self, _: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.sim().remove(parent, name, false));
    }

    fn rmdir(&mut self, _: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.sim().remove(parent, name, true));
    }

    fn rename(
        &mut self,
        _: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        empty(
            reply,
            self.sim().rename(parent, name, newparent, newname, flags),
        );
    }

    fn open(&mut self, _: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let mut s = self.sim();
        let r = (|| {
            s.alive()?;
            let len = s.node(ino)?.data.len();
            if flags & libc::O_TRUNC != 0 && len > 0 {
                s.truncate(ino, 0)?;
            }
            Ok(())
        })();
        match r {
            Ok(()) => reply.opened(ino, 0),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        _: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.sim();
        let r = (|| {
            s.alive()?;
            let ino = match s.child(parent, name) {
                Ok(_) if flags & libc::O_EXCL != 0 => return Err(EEXIST),
                Ok(ino) => {
                    if flags & libc::O_TRUNC != 0 {
                        s.truncate(ino, 0)?;
                    }
                    ino
                }
                Err(_) => s.make(parent, name, false, mode)?,
            };
            s.attr(ino)
        })();
        match r {
            Ok(a) => reply.created(&TTL, &a, 0, a.ino, 0),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let s = self.sim();
        match s.alive().and_then(|_| s.node(ino)) {
            Ok(n) => {
                let start = (offset as usize).min(n.data.len());
                let end = (start + size as usize).min(n.data.len());
                reply.data(&n.data[start..end]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &mut self,
        _: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyWrite,
    ) {
        let mut s = self.sim();
        let len = data.len();
        let r = (|| {
            s.node(ino)?;
            s.tick(|s| format!("write {} at {offset}+{len}", s.inodes[&ino].path))?;
            s.dir_mut(ino)
                .change(Change::Write(offset as u64, data.to_vec()));
            Ok(())
        })();
        match r {
            Ok(()) => reply.written(len as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&mut self, _: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        empty(reply, self.sim().alive());
    }

    fn fsync(&mut self, _: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        empty(reply, self.sim().fsync(ino));
    }

    fn opendir(&mut self, _: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let s = self.sim();
        match s.alive().and_then(|_| s.node(ino)) {
            Ok(n) if n.dir => reply.opened(ino, 0),
            Ok(_) => reply.error(ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let s = self.sim();
        let n = match s.alive().and_then(|_| s.node(ino)) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let mut all = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (ROOT, FileType::Directory, OsString::from("..")),
        ];
        for (name, child) in &n.entries {
            let kind = if s.inodes[child].dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            all.push((*child, kind, name.clone()));
        }
        for (i, (ino, kind, name)) in all.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, i as i64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &mut self,
        _: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.sim().fsync(ino));
    }

    fn statfs(&mut self, _: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        if self.sim().alive().is_err() {
            return reply.error(EIO);
        }
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }
}

/// A mounted power-cut file system. Dropping it unmounts it.
pub struct SimFs {
    sim: Arc<Mutex<Sim>>,
    dir: PathBuf,
    session: Option<BackgroundSession>,
}

impl SimFs {
    /// Mounts an empty file system at `dir`, or with `preload` one holding
    /// `dir`'s current content as all durable (the underlying directory is
    /// left as it is, hidden by the mount).
    pub fn mount(dir: &Path, model: Model, preload: bool) -> SimFs {
        let mut sim = Sim::new(model);
        if preload {
            sim.preload(dir, ROOT);
        }
        let sim = Arc::new(Mutex::new(sim));
        let options = [MountOption::FSName("powercut".into())];
        let session = fuser::spawn_mount2(Fs(sim.clone()), dir, &options)
            .unwrap_or_else(|e| panic!("mounting the power-cut fs at {}: {e}", dir.display()));
        SimFs {
            sim,
            dir: dir.to_path_buf(),
            session: Some(session),
        }
    }

    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap()
    }

    /// Mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.sim().ops
    }

    /// Cuts the power at mutating operation `k` (counted from 1).
    pub fn cut_at(&self, k: u64) {
        self.sim().cut_at = Some(k);
    }

    /// Cuts the power now, if it is still on.
    pub fn cut_now(&self) {
        let mut s = self.sim();
        if s.cut.is_none() {
            s.cut = Some(format!("after op {} (forced)", s.ops));
        }
    }

    /// Where the power was cut, if it was.
    pub fn cut(&self) -> Option<String> {
        self.sim().cut.clone()
    }

    /// Unmounts (lazily: a dead process's files may still be let go of).
    pub fn unmount(&mut self) {
        if let Some(s) = self.session.take() {
            super::detach(&self.dir);
            drop(s);
        }
    }

    /// Unmounts, empties the directory underneath and writes the durable
    /// image there, choosing what unsynced state survives with `seed`.
    /// Returns a summary of what was kept.
    pub fn materialize(&mut self, seed: u64) -> String {
        self.unmount();
        let _ = fs::remove_dir_all(&self.dir);
        fs::create_dir(&self.dir).unwrap();
        self.sim().materialize(&mut Rng::new(seed), &self.dir)
    }
}

impl Drop for SimFs {
    fn drop(&mut self) {
        self.unmount();
    }
}
