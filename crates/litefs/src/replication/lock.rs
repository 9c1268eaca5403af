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
        for (start, len) in [(PENDING_BYTE, 1), (RESERVED_BYTE, 1)] {
            set_lock(&file, libc::F_WRLCK, start, len)?;
        }
        // With PENDING held no new reader starts, so this ends once the
        // readers in a transaction finish, except for a WAL-mode
        // connection (opened while this node was primary), which holds
        // SHARED for as long as it is open: say so rather than stall
        // without a word.
        let started = std::time::Instant::now();
        let mut warned = false;
        while !try_lock(&file, libc::F_WRLCK, SHARED_FIRST, SHARED_SIZE)? {
            if !warned && started.elapsed() > STALL_WARNING {
                tracing::warn!(
                    db = %path.display(),
                    "waiting for SQLite connections to let go of the database before applying \
                     transactions: a WAL-mode connection opened while this node was primary \
                     holds it until it is closed"
                );
                warned = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if warned {
            tracing::info!(db = %path.display(), "database free again; applying");
        }
        Ok(ExclusiveLock { _file: file })
    }
}

const STALL_WARNING: std::time::Duration = std::time::Duration::from_secs(5);

/// A non-blocking lock attempt: false when another process holds a
/// conflicting lock.
fn try_lock(file: &File, kind: i32, start: i64, len: i64) -> io::Result<bool> {
    // SAFETY: flock is a plain struct; zeroed is a valid starting value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    loop {
        // SAFETY: valid fd and a pointer to a live flock.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) => return Ok(false),
            _ => return Err(err),
        }
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
