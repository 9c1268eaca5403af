//! SQLite's own write lock, taken through the mount as any SQLite client
//! would take it, so applying a transaction on a replica excludes readers
//! without the mount handling a single lock call (the kernel holds them).
//! Byte offsets are SQLite's (os_unix.c): PENDING 0x40000000, RESERVED +1,
//! SHARED +2..+512.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

const PENDING_BYTE: i64 = 0x4000_0000;
const RESERVED_BYTE: i64 = PENDING_BYTE + 1;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;

/// Holds SQLite's EXCLUSIVE lock on one database file until dropped.
pub struct ExclusiveLock {
    // Closing the file releases every lock this process holds on it.
    _file: File,
}

impl ExclusiveLock {
    /// Blocks until every reader has finished; new readers see PENDING
    /// and back off (SQLITE_BUSY, retried by their busy handler).
    pub fn acquire(path: &Path) -> io::Result<ExclusiveLock> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        for (start, len) in [
            (PENDING_BYTE, 1),
            (RESERVED_BYTE, 1),
            (SHARED_FIRST, SHARED_SIZE),
        ] {
            set_lock(&file, libc::F_WRLCK, start, len)?;
        }
        Ok(ExclusiveLock { _file: file })
    }
}

fn set_lock(file: &File, kind: i32, start: i64, len: i64) -> io::Result<()> {
    // SAFETY: flock is a plain struct; zeroed is a valid starting value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    loop {
        // SAFETY: valid fd and a pointer to a live flock.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &fl) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
