//! FUSE adapter for the litefs-rs engine: mounts a directory whose files are
//! the store's databases (`<db>`, `-journal`, `-wal`, `-shm`) plus the files
//! LiteFS shows beside them (`<db>-pos`, `.primary`, `.lag`). Every file
//! operation is passed to `litefs::store`, which captures commits; this
//! crate only translates names, inodes and errors.

mod fs;
mod held;
mod node;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

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
    /// Shared with the store's role listener; emptied at unmount so the
    /// listener stops touching a dead session.
    notifier: Arc<Mutex<Option<fuser::Notifier>>>,
}

impl Mount {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unmounts and waits for the FUSE session thread to end. A mount some
    /// process still uses (EBUSY) is detached lazily, so nothing is left
    /// mounted; the session then ends when its last user lets go, which is
    /// why callers bound the wait.
    pub fn unmount(mut self) {
        self.notifier.lock().expect("notifier lock").take();
        detach(&self.dir);
        if let Some(s) = self.session.take() {
            s.join();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.notifier.lock().expect("notifier lock").take();
        if let Some(s) = self.session.take() {
            detach(&self.dir);
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
    let session = match fuser::spawn_mount2(LiteFs::new(store.clone()), dir, &options) {
        // Right after a kill -9 the dead mount may not answer ENOTCONN to
        // the check above yet, only to the mount itself: clear, retry once.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            force_unmount(dir)?;
            fuser::spawn_mount2(LiteFs::new(store.clone()), dir, &options)?
        }
        other => other?,
    };
    let notifier = Arc::new(Mutex::new(Some(session.notifier())));
    invalidate_on_role_change(&store, notifier.clone());
    checkpoint_on_demotion(&store, dir);
    {
        // Transactions applied from the primary change pages SQLite's
        // readers may have cached through the kernel.
        let notifier = notifier.clone();
        store.set_cache_invalidator(move |db| {
            if let Some(n) = notifier.lock().expect("notifier lock").clone() {
                drop_cached_pages(&n, db, "transaction applied");
            }
        });
    }
    tracing::info!(dir = %dir.display(), "mounted");
    Ok(Mount {
        session: Some(session),
        dir: dir.to_path_buf(),
        notifier,
    })
}

/// A replica shows each database header in rollback mode (see
/// `litefs::store::db::replica_header_view`) and the primary shows it as
/// it is. The kernel keeps database pages cached across opens, so without
/// this a connection would go on seeing the old role's header: after a
/// promotion it would write a WAL database in rollback mode (converting it),
/// after a demotion it would try to append to the WAL and get an I/O error
/// instead of SQLITE_READONLY. Runs on the thread that changes the role,
/// never on the FUSE thread (the kernel waits for in-flight reads).
fn invalidate_on_role_change(store: &Arc<Store>, notifier: Arc<Mutex<Option<fuser::Notifier>>>) {
    let weak = Arc::downgrade(store);
    store.on_role_change(move |primary| {
        let (Some(store), Some(n)) = (
            weak.upgrade(),
            notifier.lock().expect("notifier lock").clone(),
        ) else {
            return;
        };
        for db in store.dbs() {
            drop_cached_pages(&n, &db, if primary { "promoted" } else { "demoted" });
        }
    });
}

/// A demotion with connections holding a WAL open: folds the WAL in at
/// once (see `litefs::replication::checkpoint`), off the thread changing
/// the role (the checkpoint goes through this mount and may wait for
/// readers).
fn checkpoint_on_demotion(store: &Arc<Store>, dir: &Path) {
    let weak = Arc::downgrade(store);
    let dir = dir.to_path_buf();
    store.on_role_change(move |primary| {
        let Some(store) = weak.upgrade().filter(|_| !primary) else {
            return;
        };
        let dbs: Vec<_> = store
            .dbs()
            .into_iter()
            .filter(|db| db.has_wal_frames())
            .collect();
        if dbs.is_empty() {
            return;
        }
        let dir = dir.clone();
        std::thread::spawn(move || {
            for db in dbs {
                if let Err(e) = litefs::replication::checkpoint::checkpoint_wal(&store, &db, &dir) {
                    tracing::warn!(db = db.name(), "{e}");
                }
            }
        });
    });
}

fn drop_cached_pages(n: &fuser::Notifier, db: &litefs::store::Db, why: &str) {
    use litefs::store::FileKind;
    let ino = node::Node::File(db.id(), FileKind::Database).ino();
    // ENOENT: the kernel has nothing cached for it.
    let warn = |e: io::Error| {
        if e.raw_os_error() != Some(libc::ENOENT) {
            tracing::warn!(db = db.name(), why, error = %e, "cannot drop cached database pages");
        }
    };
    if let Err(e) = n.inval_inode(ino, 0, 0) {
        warn(e);
    }
    if db.is_dropped() {
        // Deleted: its names must stop resolving, and a database created
        // again under them (same inodes) must not show the old pages.
        for kind in FileKind::ALL {
            let name = format!("{}{}", db.name(), kind.mount_suffix());
            if let Err(e) = n.inval_entry(fuser::FUSE_ROOT_ID, std::ffi::OsStr::new(&name)) {
                warn(e);
            }
            if kind != FileKind::Database {
                if let Err(e) = n.inval_inode(node::Node::File(db.id(), kind).ino(), 0, 0) {
                    warn(e);
                }
            }
        }
    }
}

fn detach(dir: &Path) {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    for _ in 0..20 {
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return;
        }
        match io::Error::last_os_error().raw_os_error() {
            // A file was closed a moment ago and the kernel still holds it.
            Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(50)),
            // Not root: fusermount3 is setuid and may do it for us.
            Some(libc::EPERM) => break,
            _ => return,
        }
    }
    tracing::warn!(dir = %dir.display(), "mount still in use; detaching it lazily");
    // SAFETY: as above.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let _ = Command::new("fusermount3").arg("-uz").arg(dir).status();
    }
}

/// A FUSE mount whose process died answers every call with ENOTCONN;
/// unmount it lazily so the directory can be mounted again.
pub fn clear_stale_mount(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            tracing::warn!(dir = %dir.display(), "clearing a stale mount left by a crashed process");
            force_unmount(dir)?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir_all(dir),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// Lazily unmounts `dir` (fusermount3, or umount2 as root).
fn force_unmount(dir: &Path) -> io::Result<()> {
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
