//! The halt lock (LiteFS's remote write lock), primary side: on behalf of
//! a replica that wants to write (`litefs run -with-halt-lock-on`), the
//! primary holds SQLite's RESERVED lock on the database through its own
//! mount, so local writers wait (SQLITE_BUSY to their busy handler) while
//! readers go on; the replica's transactions arrive as LTX files and are
//! applied under SQLite's EXCLUSIVE lock, as on a replica, then streamed
//! to every replica (the sender skips its own by the node ID in the
//! header, as LiteFS does). A lock not renewed within [`TTL`] expires; a
//! node that stops being primary drops every one. Beyond LiteFS: taking
//! the lock again with the same ID, or each transaction sent under it,
//! renews it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::store::{FileKind, Pos, Store, StoreError};

/// How long a halt lock lives without renewal (LiteFS's `HaltLockTTL`).
pub const TTL: Duration = Duration::from_secs(30);
/// How long taking it may wait for a local writer, or for another halt
/// lock to go (LiteFS's `HaltAcquireTimeout`).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

// SQLite's lock bytes (os_unix.c).
const PENDING_BYTE: i64 = 0x4000_0000;
const RESERVED_BYTE: i64 = PENDING_BYTE + 1;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;

/// What `POST /halt` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltLock {
    pub id: i64,
    /// The primary's position when the lock was taken.
    pub pos: Pos,
    pub expires: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum HaltError {
    #[error("this node is not the primary")]
    NotPrimary,
    #[error("database not found: {0:?}")]
    NoDatabase(String),
    #[error("this node has no mount to take SQLite's locks through")]
    NoMount,
    #[error("database {0:?} is in WAL mode: litefs-rs cannot apply a replica's transactions to a WAL database on the primary yet; run the command on the primary")]
    Wal(String),
    #[error("database {db:?}: could not take the write lock within {ACQUIRE_TIMEOUT:?} ({what})")]
    Timeout { db: String, what: &'static str },
    #[error("database {db:?}: halt lock {id} is not held (released or expired)")]
    NotHeld { db: String, id: i64 },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

struct Held {
    id: i64,
    pos: Pos,
    until: Instant,
    expires: SystemTime,
    /// The database through the mount, holding RESERVED. Closing it
    /// releases every lock this process holds on the file: nothing else
    /// in the process opens it through the mount while a halt is held.
    file: File,
}

/// The halt locks of this node, one at most per database.
#[derive(Clone, Default)]
pub struct Halts {
    held: Arc<Mutex<HashMap<String, Held>>>,
    /// One acquisition at a time: waits happen outside `held`.
    acquiring: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Halts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.held.lock().expect("halts");
        f.debug_struct("Halts")
            .field("held", &held.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Halts {
    /// Takes (or renews, with the same `id`) the halt lock on `name`.
    /// Blocks up to [`ACQUIRE_TIMEOUT`].
    pub fn acquire(
        &self,
        store: &Store,
        mount: Option<&Path>,
        name: &str,
        id: i64,
    ) -> Result<HaltLock, HaltError> {
        let _one = self.acquiring.lock().expect("halts");
        if !store.is_primary() {
            return Err(HaltError::NotPrimary);
        }
        let mount = mount.ok_or(HaltError::NoMount)?;
        let db = store
            .db(name)
            .ok_or_else(|| HaltError::NoDatabase(name.to_string()))?;
        let deadline = Instant::now() + ACQUIRE_TIMEOUT;
        loop {
            self.expire(store);
            let mut held = self.held.lock().expect("halts");
            match held.get_mut(name) {
                Some(h) if h.id == id => {
                    renew(h);
                    return Ok(h.lock());
                }
                Some(_) if Instant::now() < deadline => {}
                Some(_) => {
                    return Err(HaltError::Timeout {
                        db: name.to_string(),
                        what: "another replica holds the halt lock",
                    })
                }
                None => break,
            }
            drop(held);
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_wal(&db.path(FileKind::Database))? {
            return Err(HaltError::Wal(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(mount.join(name))?;
        poll_lock(&file, libc::F_WRLCK, RESERVED_BYTE, 1, deadline).map_err(|e| match e {
            None => HaltError::Timeout {
                db: name.to_string(),
                what: "a local transaction is still writing",
            },
            Some(e) => HaltError::Io(e),
        })?;
        // With RESERVED held no local commit is under way: this is where
        // the replica must be before it writes.
        let mut h = Held {
            id,
            pos: db.pos(),
            until: Instant::now(),
            expires: SystemTime::now(),
            file,
        };
        renew(&mut h);
        let lock = h.lock();
        self.held.lock().expect("halts").insert(name.to_string(), h);
        tracing::info!(db = name, id, pos = %lock.pos, "halt lock acquired for a replica");
        Ok(lock)
    }

    /// Releases `name`'s halt lock if `id` holds it.
    pub fn release(&self, name: &str, id: i64) -> bool {
        let mut held = self.held.lock().expect("halts");
        if held.get(name).is_some_and(|h| h.id == id) {
            held.remove(name);
            tracing::info!(db = name, id, "halt lock released");
            return true;
        }
        false
    }

    /// Applies the replica's transaction in the LTX file at `path` under
    /// halt lock `id`; the new position. Renews the lock.
    pub fn apply(&self, store: &Store, name: &str, id: i64, path: &Path) -> Result<Pos, HaltError> {
        self.expire(store);
        let mut held = self.held.lock().expect("halts");
        let h = match held.get_mut(name) {
            Some(h) if h.id == id => h,
            _ => {
                return Err(HaltError::NotHeld {
                    db: name.to_string(),
                    id,
                })
            }
        };
        let db = store
            .db(name)
            .ok_or_else(|| HaltError::NoDatabase(name.to_string()))?;
        // Readers out while pages change: PENDING keeps new ones off,
        // then every SHARED lock must go.
        let deadline = Instant::now() + ACQUIRE_TIMEOUT;
        let exclusive = poll_lock(&h.file, libc::F_WRLCK, PENDING_BYTE, 1, deadline)
            .and_then(|()| poll_lock(&h.file, libc::F_WRLCK, SHARED_FIRST, SHARED_SIZE, deadline));
        let applied = match exclusive {
            Ok(()) => db.apply_ltx(path).map_err(HaltError::from),
            Err(None) => Err(HaltError::Timeout {
                db: name.to_string(),
                what: "readers did not finish",
            }),
            Err(Some(e)) => Err(HaltError::Io(e)),
        };
        store.invalidate_cache(&db);
        for (start, len) in [(PENDING_BYTE, 1), (SHARED_FIRST, SHARED_SIZE)] {
            if let Err(e) = set_lock(&h.file, libc::F_UNLCK, start, len, libc::F_SETLK) {
                tracing::warn!(
                    db = name,
                    "releasing the exclusive lock after a halt apply: {e}"
                );
            }
        }
        if applied.is_ok() {
            renew(h);
        }
        let pos = applied?;
        tracing::info!(db = name, id, %pos, "transaction from a replica applied under its halt lock");
        Ok(pos)
    }

    /// [`Halts::expire`] unless a transaction is being applied under a
    /// halt lock right now (never waits: for async callers).
    pub fn expire_if_idle(&self, store: &Store) {
        if let Ok(mut held) = self.held.try_lock() {
            expire(&mut held, store);
        }
    }

    /// Drops the locks past their time, and all of them once this node is
    /// no longer primary.
    pub fn expire(&self, store: &Store) {
        expire(&mut self.held.lock().expect("halts"), store);
    }
}

fn expire(held: &mut HashMap<String, Held>, store: &Store) {
    let now = Instant::now();
    let primary = store.is_primary();
    held.retain(|name, h| {
        let keep = primary && h.until > now;
        if !keep {
            tracing::warn!(db = %name, id = h.id, primary, "halt lock expired");
        }
        keep
    });
}

impl Held {
    fn lock(&self) -> HaltLock {
        HaltLock {
            id: self.id,
            pos: self.pos,
            expires: self.expires,
        }
    }
}

fn renew(h: &mut Held) {
    h.until = Instant::now() + TTL;
    h.expires = SystemTime::now() + TTL;
}

/// Whether the database file's header says WAL (bytes 18 and 19 are 2).
fn is_wal(path: &Path) -> io::Result<bool> {
    let mut hdr = [0u8; 20];
    match std::fs::File::open(path).and_then(|mut f| io::Read::read_exact(&mut f, &mut hdr)) {
        Ok(()) => Ok(hdr[18] == 2 && hdr[19] == 2),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes a lock, retrying until `deadline`: Err(None) when it ran out.
fn poll_lock(
    f: &File,
    kind: i32,
    start: i64,
    len: i64,
    deadline: Instant,
) -> Result<(), Option<io::Error>> {
    loop {
        match set_lock(f, kind, start, len, libc::F_SETLK) {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES))
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
                return Err(None)
            }
            Err(e) => return Err(Some(e)),
        }
    }
}

fn set_lock(f: &File, kind: i32, start: i64, len: i64, cmd: i32) -> io::Result<()> {
    // SAFETY: flock is a plain struct; zeroed is a valid starting value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    loop {
        // SAFETY: a valid descriptor and a pointer to a live flock.
        if unsafe { libc::fcntl(f.as_raw_fd(), cmd, &fl) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
