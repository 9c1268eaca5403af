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
}

impl Signal {
    pub fn wake(&self) {
        self.notify.notify_waiters();
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
    if let Some(source) = map.get(key).and_then(Weak::upgrade) {
        return Ok(source);
    }
    map.retain(|_, w| w.strong_count() > 0);
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
pub fn watch_dir(dir: &Path) -> io::Result<Arc<Source>> {
    let key = dir.to_string_lossy().into_owned();
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
                loop {
                    // SAFETY: buf is valid for buf.len() bytes and the fd is
                    // owned by `fd`, alive for this whole task.
                    let n =
                        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n > 0 {
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
                signal.wake();
            }
        }))
    })
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
