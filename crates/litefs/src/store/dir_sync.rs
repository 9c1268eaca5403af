//! Whether a new or renamed file's name needs its directory fsynced to
//! survive a power cut, on the file system holding a given path.
//!
//! POSIX says yes, always. Linux's ext4 (with or without a journal), xfs
//! and btrfs also make the name durable when the file itself is fsynced
//! after its creation or rename (ext4 syncs the parent of a new entry or
//! commits it in the same journal transaction; xfs and btrfs log the name
//! with the inode), and there the directory fsync costs a disk cache flush
//! per commit for nothing: about a third of a DELETE-mode commit's time on
//! the test machine. So litefs skips it on those three and fsyncs the
//! directory everywhere else (including FUSE, NFS, ZFS and unknown file
//! systems).
//!
//! `LITEFS_DIR_SYNC=always` forces the directory fsyncs everywhere;
//! `LITEFS_DIR_SYNC=never` trusts the file system as on ext4 (the power-cut
//! tests use it to run the ext4 rules on their simulated file system).

use std::path::Path;

const EXT4_SUPER_MAGIC: i64 = 0xEF53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

/// Whether a file's own fsync makes its name durable on the file system of
/// `path` (an existing file or directory), so no directory fsync is needed.
pub(crate) fn names_durable_with_file_sync(path: &Path) -> bool {
    match std::env::var("LITEFS_DIR_SYNC").as_deref() {
        Ok("always") => return false,
        Ok("never") => return true,
        _ => {}
    }
    // The nearest existing ancestor: a directory not made yet will be on
    // its file system.
    path.ancestors()
        .find_map(fs_type)
        .is_some_and(|t| matches!(t, EXT4_SUPER_MAGIC | XFS_SUPER_MAGIC | BTRFS_SUPER_MAGIC))
}

fn fs_type(path: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_systems_are_told_apart() {
        if std::env::var("LITEFS_DIR_SYNC").is_ok() {
            return;
        }
        // procfs is neither ext4, xfs nor btrfs.
        assert!(!names_durable_with_file_sync(Path::new("/proc/self")));
        assert_eq!(fs_type(Path::new("/proc")), Some(0x9fa0));
        // A path not made yet is judged by its nearest existing ancestor.
        assert_eq!(
            names_durable_with_file_sync(Path::new("/proc/no/such/dir")),
            names_durable_with_file_sync(Path::new("/proc"))
        );
    }
}
