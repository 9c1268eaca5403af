//! Connections from the proxy to one upstream `host:port` (the app, or the
//! primary's proxy): a pool of HTTP/1.1 keep-alive connections, a dial that
//! keeps retrying a refused connection while the app is still starting,
//! and response bodies that hand their connection back when they end.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Body, BoxError};

/// Idle connections kept per upstream; more are closed when they finish.
const MAX_IDLE: usize = 512;
/// LiteFS's pause between dials refused by a target that is starting.
const REFUSED_RETRY_EVERY: Duration = Duration::from_millis(100);
/// How long a pooled connection may take to become ready for the next request.
const READY_WAIT: Duration = Duration::from_millis(50);
/// A dial that neither connects nor fails (a vanished host) gives up here.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {addr}: {source}")]
    Dial {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Http {
        addr: String,
        #[source]
        source: hyper::Error,
    },
}

pub struct Upstream {
    addr: String,
    /// How long a refused dial is retried (0: fail at once).
    refused_retry: Duration,
    idle: Mutex<Vec<SendRequest<Body>>>,
}

impl Upstream {
    pub fn new(addr: impl Into<String>, refused_retry: Duration) -> Arc<Upstream> {
        Arc::new(Upstream {
            addr: addr.into(),
            refused_retry,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` on a pooled connection (or a new one). A pooled
    /// connection the upstream closed meanwhile gives the request back
    /// unsent, and it goes out on a new connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, UpstreamError> {
        loop {
            let (mut sender, fresh) = match self.checkout() {
                // Checked in as its response ended: ready once its
                // connection task has caught up, a moment later.
                // A connection whose request body is still going out (the
                // upstream answered early) may stay busy: not waited for long.
                Some(mut s) if !s.is_ready() => {
                    match tokio::time::timeout(READY_WAIT, s.ready()).await {
                        Ok(Ok(())) => (s, false),
                        _ => continue,
                    }
                }
                Some(s) => (s, false),
                None => (self.dial(false).await?, true),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.returning(resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(self.http_err(e.into_error())),
                },
            }
        }
    }

    /// Sends a protocol-switching request on a connection of its own, which
    /// the caller then owns through `hyper::upgrade::on(response)`.
    pub async fn send_upgrade(
        &self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = self.dial(true).await?;
        sender.send_request(req).await.map_err(|e| self.http_err(e))
    }

    fn http_err(&self, source: hyper::Error) -> UpstreamError {
        UpstreamError::Http {
            addr: self.addr.clone(),
            source,
        }
    }

    /// The most recently returned connection still open (warm, and the
    /// older ones are the first the upstream's idle timeout closes).
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push(sender);
        }
    }

    async fn dial(&self, upgrades: bool) -> Result<SendRequest<Body>, UpstreamError> {
        let deadline = tokio::time::Instant::now() + self.refused_retry;
        let dial_err = |source| UpstreamError::Dial {
            addr: self.addr.clone(),
            source,
        };
        let tcp = loop {
            let attempt = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&self.addr)).await;
            match attempt {
                Ok(Ok(tcp)) => break tcp,
                Ok(Err(e))
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && tokio::time::Instant::now() + REFUSED_RETRY_EVERY <= deadline =>
                {
                    tokio::time::sleep(REFUSED_RETRY_EVERY).await;
                }
                Ok(Err(e)) => return Err(dial_err(e)),
                Err(_) => return Err(dial_err(std::io::ErrorKind::TimedOut.into())),
            }
        };
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| self.http_err(e))?;
        let addr = self.addr.clone();
        if upgrades {
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(%addr, "proxy upstream connection: {e}");
                }
            });
        } else {
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%addr, "proxy upstream connection: {e}");
                }
            });
        }
        sender.ready().await.map_err(|e| self.http_err(e))?;
        Ok(sender)
    }

    fn returning(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        sender: SendRequest<Body>,
    ) -> Response<Body> {
        let (parts, body) = resp.into_parts();
        if body.is_end_stream() {
            self.checkin(sender);
            return Response::from_parts(parts, body.map_err(BoxError::from).boxed());
        }
        let body = Returning {
            inner: body,
            back: Some((self.clone(), sender)),
        };
        Response::from_parts(parts, body.boxed())
    }
}

/// A response body that returns its connection to the pool once read to
/// the end; dropped early, the connection closes with it.
struct Returning {
    inner: Incoming,
    back: Option<(Arc<Upstream>, SendRequest<Body>)>,
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => {
                if let Some((pool, sender)) = self.back.take() {
                    pool.checkin(sender);
                }
            }
            Some(Err(_)) => self.back = None,
            // hyper stops polling a body that says it has ended.
            Some(Ok(_)) if self.inner.is_end_stream() => {
                if let Some((pool, sender)) = self.back.take() {
                    pool.checkin(sender);
                }
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame.map(|f| f.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
