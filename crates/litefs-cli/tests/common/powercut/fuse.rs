//! The FUSE side of the power-cut file system: each request locks the
//! shared state and answers from it; once the power is cut, every request
//! fails with EIO.

use std::ffi::{OsStr, OsString};
use std::os::raw::c_int;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use libc::{EEXIST, EINVAL, EIO, ENOENT, ENOTDIR};

use super::sim::{Change, Sim, ROOT};

const TTL: Duration = Duration::from_secs(1);

pub(super) struct Fs(pub(super) Arc<Mutex<Sim>>);

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
