//! Wake-ups for waiters: "something in the mount may have changed, read it
//! again". Two sources feed a [`Signal`]: inotify on the mount directory and
//! the sidecar's `/events` stream (see `events.rs`). One source is shared by
//! every waiter on the same directory or URL, so a thousand requests waiting
//! for a TXID cost one inotify instance (Linux allows 128 per user by
//! default), not a thousand.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Wakes every task waiting on it. Carries no data: the files are the truth,
/// the signal only says when to look.
#[derive(Default)]
pub struct Signal {
    notify: Notify,
    /// Set when the source behind it can never fire again.
    dead: AtomicBool,
}

impl Signal {
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Marks the source dead, so it is no longer handed out, and wakes
    /// every waiter so they ask for a new one.
    pub fn die(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.wake();
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// A running source of wake-ups; stops when the last user drops it.
pub struct Source {
    pub signal: Arc<Signal>,
    task: JoinHandle<()>,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub type Registry = Mutex<HashMap<String, Weak<Source>>>;

/// Returns the live source registered under `key`, or starts one with
/// `start` (which must be called inside the Tokio runtime).
pub fn shared_source(
    registry: &'static OnceLock<Registry>,
    key: &str,
    start: impl FnOnce(Arc<Signal>) -> io::Result<JoinHandle<()>>,
) -> io::Result<Arc<Source>> {
    let mut map = registry
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(source) = map
        .get(key)
        .and_then(Weak::upgrade)
        .filter(|s| !s.signal.is_dead())
    {
        return Ok(source);
    }
    map.retain(|_, w| w.upgrade().is_some_and(|s| !s.signal.is_dead()));
    let signal = Arc::new(Signal::default());
    let task = start(signal.clone())?;
    let source = Arc::new(Source { signal, task });
    map.insert(key.to_owned(), Arc::downgrade(&source));
    Ok(source)
}

static DIRS: OnceLock<Registry> = OnceLock::new();

/// Inotify on `dir`: wakes on any entry created, written, renamed or removed.
///
/// On a FUSE mount the kernel reports only changes made through the mount
/// itself (a commit on this node); positions the sidecar applies from
/// replication do not pass through the VFS and raise no event, so waiters
/// still re-read on a timer, and the sidecar's `/events` is the push source
/// for replicas.
///
/// A watch is on the directory the path names *now*: when litefs unmounts
/// and mounts again at the same path, the old watch is dropped by the kernel
/// (IN_IGNORED) and never fires again. So sources are shared per path *and*
/// (st_dev, st_ino), and waiters ask for theirs again on every wake-up
/// (`wait::wait_for`): after a remount they get a watch on the new mount.
pub fn watch_dir(dir: &Path) -> io::Result<Arc<Source>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    // A new mount at the same path may well get the same st_dev and root
    // inode back: the dead flag, not the key, retires the old watch then;
    // the key tells a mount from the directory it covers.
    let key = format!("{}\0{}:{}", dir.to_string_lossy(), meta.dev(), meta.ino());
    shared_source(&DIRS, &key, |signal| {
        let fd = inotify_on(dir)?;
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, so it stays open
        // and keeps its number for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok(mut guard) = fd.readable().await else {
                    return;
                };
                let mut gone = false;
                loop {
                    // SAFETY: buf is valid for buf.len() bytes and the fd is
                    // owned by `fd`, alive for this whole task.
                    let n =
                        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n > 0 {
                        gone |= watch_removed(&buf[..n as usize]);
                        continue;
                    }
                    if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                        guard.clear_ready();
                        break;
                    }
                    // EOF or a hard error: the watch is gone (e.g. the
                    // directory was unmounted). Waiters fall back to their
                    // timer.
                    return;
                }
                if gone {
                    // Unmounted or removed: this watch will never fire
                    // again. Waiters, woken, ask for a new source.
                    signal.die();
                    return;
                }
                signal.wake();
            }
        }))
    })
}

/// Whether a buffer of inotify events holds IN_IGNORED: the kernel removed
/// the watch (the directory was unmounted or deleted).
fn watch_removed(events: &[u8]) -> bool {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    let mut at = 0;
    while at + HEADER <= events.len() {
        // SAFETY: at + HEADER is within the buffer; read_unaligned copes
        // with any alignment of the byte buffer.
        let ev: libc::inotify_event =
            unsafe { std::ptr::read_unaligned(events[at..].as_ptr().cast()) };
        if ev.mask & (libc::IN_IGNORED | libc::IN_UNMOUNT) != 0 {
            return true;
        }
        at += HEADER + ev.len as usize;
    }
    false
}

fn inotify_on(dir: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: plain syscalls; the returned fd is checked and owned below.
    let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mask = libc::IN_MODIFY
        | libc::IN_CLOSE_WRITE
        | libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_ATTRIB;
    // SAFETY: path is NUL-terminated and outlives the call.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The sources a waiter on `dir` listens to: inotify when the directory can
/// be watched (it may not exist yet), plus `/events` when a URL is given.
pub fn sources_for(dir: &Path, events_url: Option<&str>) -> Vec<Arc<Source>> {
    let mut sources = Vec::new();
    if let Ok(s) = watch_dir(dir) {
        sources.push(s);
    }
    if let Some(url) = events_url {
        if let Ok(s) = crate::events::watch_events(url) {
            sources.push(s);
        }
    }
    sources
}
