//! Waiting for the mount to reach a state: re-read the files whenever a
//! source signals, and on a timer as a backstop for changes no source
//! reports (see `signal::watch_dir`). Waits can be cancelled by id from JS,
//! which is how a closed watcher stops its pending wait.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::files::FileError;
use crate::signal::sources_for;

pub struct WaitOptions<'a> {
    pub dir: &'a Path,
    pub events_url: Option<&'a str>,
    /// Backstop re-read interval.
    pub poll: Duration,
    pub timeout: Option<Duration>,
    pub cancel_id: Option<u32>,
}

static CANCELS: OnceLock<Mutex<HashMap<u32, Arc<Notify>>>> = OnceLock::new();

fn cancel_token(id: u32) -> Arc<Notify> {
    CANCELS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id)
        .or_default()
        .clone()
}

fn forget_cancel_token(id: u32) {
    if let Some(map) = CANCELS.get() {
        map.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

/// Cancels the wait registered under `id`, or the one about to be: the
/// token keeps a permit, so a cancel that races ahead of the wait's start is
/// not lost.
pub fn cancel(id: u32) {
    cancel_token(id).notify_one();
}

/// Polls `check` until it yields a value (`Ok(Some)`), the timeout passes or
/// the wait is cancelled (`Ok(None)`), or it fails.
pub async fn wait_for<T>(
    opts: WaitOptions<'_>,
    mut check: impl FnMut() -> Result<Option<T>, FileError>,
) -> Result<Option<T>, FileError> {
    let result = async {
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let cancel = opts.cancel_id.map(cancel_token);
        loop {
            // Asked for again on every round: a remount at the same path
            // needs a new inotify watch (see `signal::watch_dir`).
            let sources = sources_for(opts.dir, opts.events_url);
            // Interest is registered before the read, so a change that lands
            // between reading and sleeping still wakes us.
            let mut wakers: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
            for source in &sources {
                let mut n = Box::pin(source.signal.notified());
                n.as_mut().enable();
                wakers.push(n);
            }
            if let Some(cancel) = &cancel {
                wakers.push(Box::pin(cancel.notified()));
            }
            if let Some(value) = check()? {
                return Ok(Some(value));
            }
            let now = Instant::now();
            let mut nap = opts.poll;
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return Ok(None);
                }
                nap = nap.min(deadline - now);
            }
            let sleep = tokio::time::sleep(nap);
            tokio::pin!(sleep);
            let cancel_index = cancel.as_ref().map(|_| wakers.len() - 1);
            let woke = poll_fn(|cx| {
                for (i, w) in wakers.iter_mut().enumerate() {
                    if w.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(i));
                    }
                }
                sleep.as_mut().poll(cx).map(|_| None)
            })
            .await;
            if woke.is_some() && woke == cancel_index {
                return Ok(None);
            }
        }
    }
    .await;
    if let Some(id) = opts.cancel_id {
        forget_cancel_token(id);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::read_tx_number;

    fn opts(dir: &Path, timeout_ms: u64, cancel_id: Option<u32>) -> WaitOptions<'_> {
        WaitOptions {
            dir,
            events_url: None,
            // Long enough that only inotify can explain a fast wake-up.
            poll: Duration::from_secs(10),
            timeout: Some(Duration::from_millis(timeout_ms)),
            cancel_id,
        }
    }

    #[tokio::test]
    async fn inotify_wakes_a_waiter_long_before_its_timer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::write(path.join("db-pos"), "0000000000000005/0000000000000000\n").unwrap();
        });
        let started = std::time::Instant::now();
        let got = wait_for(opts(dir.path(), 5000, None), || {
            let n = read_tx_number(dir.path(), "db")?;
            Ok((n >= 5).then_some(n))
        })
        .await
        .unwrap();
        writer.await.unwrap();
        assert_eq!(got, Some(5));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_waiter_follows_its_directory_being_replaced() {
        // Like litefs unmounting and mounting again at the same path: the
        // first watch dies with the directory, the waiter must get a new one.
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let first = crate::signal::watch_dir(&dir).unwrap();
        let path = dir.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::remove_dir(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::write(path.join("db-pos"), "0000000000000003/0000000000000000\n").unwrap();
        });
        let started = std::time::Instant::now();
        let got = wait_for(opts(&dir, 5000, None), || {
            Ok(match read_tx_number(&dir, "db") {
                Ok(n) => (n >= 3).then_some(n),
                Err(_) => None,
            })
        })
        .await
        .unwrap();
        writer.await.unwrap();
        assert_eq!(got, Some(3));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken by the timeout, not the write"
        );
        assert!(first.signal.is_dead());
        let second = crate::signal::watch_dir(&dir).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[tokio::test]
    async fn times_out_with_none() {
        let dir = tempfile::tempdir().unwrap();
        let got = wait_for(opts(dir.path(), 30, None), || Ok(None::<()>)).await;
        assert_eq!(got.unwrap(), None);
    }

    #[tokio::test]
    async fn cancel_before_start_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        cancel(7);
        let got = wait_for(opts(dir.path(), 5000, Some(7)), || Ok(None::<()>)).await;
        assert_eq!(got.unwrap(), None);
    }

    #[tokio::test]
    async fn errors_end_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db-pos"), "garbage").unwrap();
        let got = wait_for(opts(dir.path(), 5000, None), || {
            read_tx_number(dir.path(), "db").map(Some)
        })
        .await;
        assert!(got.is_err());
    }
}
