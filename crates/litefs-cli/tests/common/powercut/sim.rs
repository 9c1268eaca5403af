//! The file system's state: inodes with their volatile and durable
//! content, the durable namespace and the namespace operations not yet
//! durable, the power switch, and the durable image a cut leaves.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::raw::c_int;
use std::path::Path;
use std::time::SystemTime;

use fuser::{FileAttr, FileType};
use libc::{EEXIST, EINVAL, EIO, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY};

use super::{Model, Rng};

pub(super) const ROOT: u64 = fuser::FUSE_ROOT_ID;
const PAGE: u64 = 4096;

pub(super) enum Change {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

pub(super) struct Inode {
    pub(super) dir: bool,
    pub(super) mode: u16,
    pub(super) data: Vec<u8>,
    /// What a cut keeps for sure: the content at the last fsync.
    pub(super) durable: Vec<u8>,
    /// Changes since that fsync, in order.
    pub(super) unsynced: Vec<Change>,
    pub(super) entries: BTreeMap<OsString, u64>,
    /// The name it was last given, for reports.
    pub(super) path: String,
}

impl Inode {
    pub(super) fn new(dir: bool, mode: u16, path: String) -> Inode {
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

    pub(super) fn sync(&mut self) {
        for c in self.unsynced.drain(..) {
            apply_change(&mut self.durable, &c);
        }
    }

    pub(super) fn change(&mut self, c: Change) {
        apply_change(&mut self.data, &c);
        self.unsynced.push(c);
    }
}

/// A child's path for reports (the root is "/").
fn join(parent: &str, name: &OsStr) -> String {
    format!(
        "{}/{}",
        parent.trim_end_matches('/'),
        name.to_string_lossy()
    )
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

pub(super) struct Sim {
    pub(super) model: Model,
    pub(super) inodes: HashMap<u64, Inode>,
    pub(super) next_ino: u64,
    /// The durable namespace: each directory's durable entries.
    pub(super) durable_dirs: HashMap<u64, Entries>,
    /// Namespace operations not yet known durable, with their sequence
    /// number (ext4: since the last journal commit; POSIX: all of them,
    /// filtered by `dir_synced` when a cut is materialized).
    pending: Vec<(u64, NsOp)>,
    /// POSIX: the sequence number at each directory's last fsync.
    pub(super) dir_synced: HashMap<u64, u64>,
    pub(super) seq: u64,
    pub(super) ops: u64,
    pub(super) cut_at: Option<u64>,
    pub(super) cut: Option<String>,
    pub(super) time: SystemTime,
}

impl Sim {
    pub(super) fn new(model: Model) -> Sim {
        let mut inodes = HashMap::new();
        inodes.insert(ROOT, Inode::new(true, 0o755, "/".into()));
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
    pub(super) fn preload(&mut self, dir: &Path, ino: u64) {
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

    pub(super) fn add(&mut self, parent: u64, name: &OsStr, dir: bool, mode: u16) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let path = join(&self.inodes[&parent].path, name);
        self.inodes.insert(ino, Inode::new(dir, mode, path));
        self.dir_mut(parent).entries.insert(name.to_owned(), ino);
        ino
    }

    pub(super) fn dir_mut(&mut self, ino: u64) -> &mut Inode {
        self.inodes.get_mut(&ino).expect("inode")
    }

    pub(super) fn alive(&self) -> Result<(), c_int> {
        if self.cut.is_some() {
            Err(EIO)
        } else {
            Ok(())
        }
    }

    /// Counts a mutating operation; at the chosen one the power goes and
    /// it and everything after it fail.
    pub(super) fn tick(&mut self, what: impl FnOnce(&Sim) -> String) -> Result<(), c_int> {
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
    pub(super) fn journal_commit(&mut self) {
        if self.model == Model::Ext4 {
            for (_, op) in std::mem::take(&mut self.pending) {
                apply_ns(&mut self.durable_dirs, &op);
            }
        }
    }

    pub(super) fn node(&self, ino: u64) -> Result<&Inode, c_int> {
        self.inodes.get(&ino).ok_or(ENOENT)
    }

    pub(super) fn child(&self, parent: u64, name: &OsStr) -> Result<u64, c_int> {
        let p = self.node(parent)?;
        if !p.dir {
            return Err(ENOTDIR);
        }
        p.entries.get(name).copied().ok_or(ENOENT)
    }

    pub(super) fn attr(&self, ino: u64) -> Result<FileAttr, c_int> {
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

    pub(super) fn truncate(&mut self, ino: u64, size: u64) -> Result<(), c_int> {
        if self.node(ino)?.dir {
            return Err(EISDIR);
        }
        self.tick(|s| format!("truncate {} to {size}", s.inodes[&ino].path))?;
        self.dir_mut(ino).change(Change::Truncate(size));
        Ok(())
    }

    pub(super) fn make(
        &mut self,
        parent: u64,
        name: &OsStr,
        dir: bool,
        mode: u32,
    ) -> Result<u64, c_int> {
        if self.child(parent, name).is_ok() {
            return Err(EEXIST);
        }
        let shown = name.to_owned();
        self.tick(|s| {
            let what = if dir { "mkdir" } else { "create" };
            format!("{what} {}", join(&s.inodes[&parent].path, &shown))
        })?;
        let ino = self.add(parent, name, dir, (mode & 0o7777) as u16);
        self.record(NsOp::Link {
            parent,
            name: name.to_owned(),
            ino,
        });
        Ok(ino)
    }

    pub(super) fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), c_int> {
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

    pub(super) fn rename(
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
        let shown = newname.to_owned();
        self.tick(|s| {
            format!(
                "rename {} to {}",
                s.inodes[&ino].path,
                join(&s.inodes[&to].path, &shown)
            )
        })?;
        self.dir_mut(from).entries.remove(name);
        self.dir_mut(to).entries.insert(newname.to_owned(), ino);
        let path = join(&self.inodes[&to].path, newname);
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

    pub(super) fn fsync(&mut self, ino: u64) -> Result<(), c_int> {
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
    pub(super) fn materialize(&self, rng: &mut Rng, to: &Path) -> String {
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

    pub(super) fn write_tree(
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
