//! One litefs process per data directory. Two processes capturing into one
//! log would interleave TXIDs and corrupt it, and `litefs recover` must
//! not replace files under a running node. An flock on `<data.dir>/lock`
//! is held for the life of the store; the kernel drops it when the process
//! dies, so a crash never leaves the directory locked.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::store::error::{IoContext, Result, StoreError};

pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock, or fails at once naming the directory when another
    /// process holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock> {
        let path = data_dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StoreError::InUse {
                    dir: data_dir.to_path_buf(),
                    lock: path,
                });
            }
            return Err(err).at(&path);
        }
        Ok(DataDirLock { _file: file })
    }
}
