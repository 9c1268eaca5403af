//! What the proxy does per client connection beyond hyper's HTTP/1.1
//! server: `idle-timeout` (no bytes either way for that long closes a
//! connection between requests) and the `read-timeout`/`write-timeout`
//! deadlines on request and response bodies.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::BoxError;

/// A socket that records when it last moved a byte.
pub struct Activity<T> {
    inner: T,
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl<T> Activity<T> {
    pub fn new(inner: T) -> (Activity<T>, IdleClock) {
        let base = Instant::now();
        let last_ms = Arc::new(AtomicU64::new(0));
        let clock = IdleClock {
            base,
            last_ms: last_ms.clone(),
        };
        (
            Activity {
                inner,
                base,
                last_ms,
            },
            clock,
        )
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

/// The watchdog's view of an [`Activity`] socket.
pub struct IdleClock {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl IdleClock {
    /// When the connection becomes idle for `timeout` if nothing moves.
    pub fn idle_deadline(&self, timeout: Duration) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() {
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A body that fails once its deadline passes (`read-timeout` on request
/// bodies, `write-timeout` on responses), so a stalled peer frees its
/// request instead of holding it for ever.
pub struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    setting: &'static str,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, at: Instant, setting: &'static str) -> Deadline<B> {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(at)),
            setting,
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            let msg = format!("proxy.{} passed", self.setting);
            return Poll::Ready(Some(Err(msg.into())));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|o| o.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
