//! FUSE adapter for the litefs-rs engine: mounts a directory whose files are
//! the store's databases (`<db>`, `-journal`, `-wal`, `-shm`) plus the files
//! LiteFS shows beside them (`<db>-pos`, `.primary`, `.lag`). Every file
//! operation is passed to `litefs::store`, which captures commits; this
//! crate only translates names, inodes and errors.

mod fs;
mod node;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use fuser::MountOption;
use litefs::store::Store;

pub use fs::LiteFs;

#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// `fuse.allow-other`: let users other than the mounting one in.
    pub allow_other: bool,
}

/// A live mount; dropping it unmounts.
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    dir: PathBuf,
}

impl Mount {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unmounts and waits for the FUSE session thread to end.
    pub fn unmount(mut self) {
        if let Some(s) = self.session.take() {
            s.join();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            s.join();
        }
    }
}

/// Mounts `store` at `dir`, which must exist. A stale mount left there by a
/// crashed process is cleared first.
pub fn mount(store: Arc<Store>, dir: &Path, opts: &MountOptions) -> io::Result<Mount> {
    clear_stale_mount(dir)?;
    let mut options = vec![
        MountOption::FSName("litefs".into()),
        MountOption::Subtype("litefs".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.allow_other {
        options.push(MountOption::AllowOther);
    }
    let session = fuser::spawn_mount2(LiteFs::new(store), dir, &options)?;
    tracing::info!(dir = %dir.display(), "mounted");
    Ok(Mount {
        session: Some(session),
        dir: dir.to_path_buf(),
    })
}

/// A FUSE mount whose process died answers every call with ENOTCONN;
/// unmount it lazily so the directory can be mounted again.
pub fn clear_stale_mount(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            tracing::warn!(dir = %dir.display(), "clearing a stale mount left by a crashed process");
            let ok = Command::new("fusermount3")
                .arg("-uz")
                .arg(dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                // SAFETY: c is a valid NUL-terminated path.
                if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir_all(dir),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}
