//! The HTTP proxy in front of the app (`proxy:` in litefs.yml): what LiteFS
//! 0.5's proxy does (read-your-writes with the `__txid` cookie, health,
//! passthrough, `fly-replay` on Fly.io) plus forwarding writes to the
//! primary's proxy off Fly.io and for bodies Fly cannot replay, WebSocket
//! tunnelling, and streaming with bounded memory.
//!
//! Owns the listener, request routing and the rules above; `upstream` owns
//! connections to the app and to the primary's proxy, `primary` finding the
//! latter, `txid` the cookie, `upgrade` tunnels, `conn` timeouts.

mod conn;
pub mod glob;
mod headers;
mod primary;
pub mod txid;
mod upgrade;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::config::ProxyConfig;
use crate::lease::{LeaseState, LeaseWatch, PrimaryInfo};
use crate::store::Store;

pub use headers::{FORWARDED_FROM, PROXIED_BY};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Fly.io's edge replays request bodies only up to this size.
const FLY_REPLAY_MAX_BODY: u64 = 1 << 20;
/// How long a read waits for the database to reach its cookie's TXID.
const TXID_WAIT: Duration = Duration::from_secs(5);
/// How long a refused connection to the app is retried (LiteFS: 30 s).
const TARGET_REFUSED_RETRY: Duration = Duration::from_secs(30);
const FLY_REPLAY: &str = "fly-replay";
/// Request bodies up to this size are read before forwarding (see
/// [`small_body_whole`]); it bounds what one request holds in memory.
const SMALL_BODY: u64 = 16 << 10;

/// The proxy's settings: litefs.yml's `proxy:` plus what the node knows.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The app's `host:port`.
    pub target: String,
    pub dbs: Vec<String>,
    pub passthrough: Vec<String>,
    pub always_forward: Vec<String>,
    pub max_lag: Duration,
    pub primary_redirect_timeout: Duration,
    pub read_timeout: Duration,
    pub read_header_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub debug: bool,
    /// This node's name, sent to the app in [`PROXIED_BY`].
    pub hostname: String,
    /// `FLY_APP_NAME`: on Fly.io, writes on a replica answer `fly-replay`.
    pub fly_app_name: Option<String>,
}

impl ProxyOptions {
    pub fn from_config(c: &ProxyConfig, hostname: &str, fly_app_name: Option<String>) -> Self {
        ProxyOptions {
            target: c.target.clone(),
            dbs: c.db.clone(),
            passthrough: c.passthrough.clone(),
            always_forward: c.always_forward.clone(),
            max_lag: c.max_lag,
            primary_redirect_timeout: c.primary_redirect_timeout,
            read_timeout: c.read_timeout,
            read_header_timeout: c.read_header_timeout,
            write_timeout: c.write_timeout,
            idle_timeout: c.idle_timeout,
            debug: c.debug,
            hostname: hostname.to_string(),
            fly_app_name: fly_app_name.filter(|s| !s.is_empty()),
        }
    }
}

/// The URL this node's proxy announces when `proxy.advertise-url` is empty:
/// the address it is bound to, or `node_host` when bound to every interface.
pub fn default_advertise_url(bound: SocketAddr, node_host: &str) -> String {
    if bound.ip().is_unspecified() && !node_host.is_empty() {
        let host = if node_host.contains(':') {
            format!("[{node_host}]")
        } else {
            node_host.to_string()
        };
        format!("http://{host}:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

pub struct Proxy {
    opts: ProxyOptions,
    store: Arc<Store>,
    lease: LeaseWatch,
    local: Arc<upstream::Upstream>,
    primary: primary::PrimaryProxy,
    /// The [`PROXIED_BY`] value.
    marker: HeaderValue,
}

impl Proxy {
    pub fn new(opts: ProxyOptions, store: Arc<Store>, lease: LeaseWatch) -> Arc<Proxy> {
        let local = upstream::Upstream::new(opts.target.clone(), TARGET_REFUSED_RETRY);
        let marker = HeaderValue::from_str(&opts.hostname)
            .unwrap_or_else(|_| HeaderValue::from_static("litefs-rs"));
        Arc::new(Proxy {
            marker,
            opts,
            store,
            lease,
            local,
            primary: primary::PrimaryProxy::default(),
        })
    }

    /// Serves clients until the task is aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: back off, keep serving.
                    tracing::warn!("proxy accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(self.clone().serve_conn(tcp, peer));
        }
    }

    async fn serve_conn(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let (io, clock) = conn::Activity::new(tcp);
        let idle = self.opts.idle_timeout;
        let header_timeout = Some(self.opts.read_header_timeout).filter(|d| !d.is_zero());
        let svc = hyper::service::service_fn(move |req| {
            let proxy = self.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        tokio::pin!(conn);
        let mut closing = idle.is_zero();
        loop {
            let deadline = clock.idle_deadline(idle);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "proxy connection: {e}");
                    }
                    return;
                }
                _ = tokio::time::sleep_until(deadline), if !closing => {
                    if clock.idle_deadline(idle) <= tokio::time::Instant::now() {
                        // Lets a request in flight finish, then closes.
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let resp = self.route(req, peer).await;
        if self.opts.debug {
            tracing::info!(%method, %path, status = resp.status().as_u16(), "proxy");
        }
        resp
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path();
        if headers::is_upgrade(req.headers()) {
            return upgrade::tunnel(self, req, peer).await;
        }
        if glob::any(&self.opts.passthrough, path) {
            return self.to_target(req, peer).await;
        }
        if req.method() == Method::GET && path == "/litefs/health" {
            return self.health();
        }
        let is_read = matches!(*req.method(), Method::GET | Method::HEAD)
            && !glob::any(&self.opts.always_forward, path);
        if is_read {
            self.read(req, peer).await
        } else {
            self.write(req, peer).await
        }
    }

    fn health(&self) -> Response<Body> {
        let state = self.lease.borrow().clone();
        if state.is_primary {
            return text(StatusCode::OK, "OK\n".into());
        }
        if state.primary.is_none() {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "No primary available\n".into(),
            );
        }
        let lag = Duration::from_millis(self.store.lag_ms().max(0) as u64);
        if !self.opts.max_lag.is_zero() && lag > self.opts.max_lag {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Replication lag exceeded\n".into(),
            );
        }
        text(StatusCode::OK, "OK\n".into())
    }

    async fn read(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let want = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(txid::parse_cookie_header);
        if let Some(want) = want {
            if !txid::wait(&self.store, &self.opts.dbs, &want, TXID_WAIT).await {
                return text(StatusCode::GATEWAY_TIMEOUT, "Proxy timeout\n".into());
            }
        }
        // Kept to replay the read on the primary when the app asks for it
        // with `fly-replay` (ensurePrimary) and no Fly.io edge will.
        let replayable = (self.opts.fly_app_name.is_none()
            && req.body().is_end_stream()
            && !self.lease.borrow().is_primary)
            .then(|| {
                (
                    req.method().clone(),
                    req.uri().clone(),
                    req.headers().clone(),
                )
            });
        let resp = self.to_target(req, peer).await;
        match replayable {
            Some((method, uri, hdrs)) if resp.headers().contains_key(FLY_REPLAY) => {
                let state = self.lease.borrow().clone();
                let asked = resp.headers()[FLY_REPLAY].to_str().unwrap_or_default();
                match (state.is_primary, &state.primary) {
                    (false, Some(p))
                        if !hdrs.contains_key(FORWARDED_FROM)
                            && replay_target(asked) == Some(p.hostname.as_str()) =>
                    {
                        let mut req = Request::new(empty());
                        *req.method_mut() = method;
                        *req.uri_mut() = uri;
                        *req.headers_mut() = hdrs;
                        self.to_primary(req, peer, p).await
                    }
                    _ => resp,
                }
            }
            _ => resp,
        }
    }

    async fn write(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let Some(state) = self.await_primary().await else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Proxy error: no primary available\n".into(),
            );
        };
        if state.is_primary {
            let mut resp = self.to_target(req, peer).await;
            let cookie = txid::set_cookie(&txid::positions(&self.store, &self.opts.dbs));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            return resp;
        }
        let primary = state.primary.expect("await_primary gives a primary");
        if req.headers().contains_key(FORWARDED_FROM) {
            // Forwarded to us as the primary, and we no longer are one:
            // sending it on could bounce between two stale views.
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Proxy error: this node is no longer the primary\n".into(),
            );
        }
        let small = req
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= FLY_REPLAY_MAX_BODY);
        if self.opts.fly_app_name.is_some() && small {
            return Response::builder()
                .status(StatusCode::OK)
                .header(FLY_REPLAY, format!("instance={}", primary.hostname))
                .body(empty())
                .expect("static response parts are valid");
        }
        let req = req.map(|b| b.map_err(BoxError::from).boxed());
        self.to_primary(req, peer, &primary).await
    }

    /// The lease state once a primary is known (this node or another),
    /// waiting up to `primary-redirect-timeout`.
    async fn await_primary(&self) -> Option<LeaseState> {
        let mut lease = self.lease.clone();
        let wait = async { lease.wait_for(primary_known).await.map(|s| s.clone()) };
        match tokio::time::timeout(self.opts.primary_redirect_timeout, wait).await {
            Ok(Ok(state)) => Some(state),
            _ => None,
        }
    }

    /// Sends the request to the app and relays its answer.
    async fn to_target(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = tokio::time::Instant::now();
        let (mut parts, body) = req.into_parts();
        strip_and_forward(&mut parts.headers, peer);
        self.mark(&mut parts.headers);
        parts.uri = origin_form(&parts.uri);
        let body = if self.opts.read_timeout.is_zero() {
            body.map_err(BoxError::from).boxed()
        } else {
            let at = started + self.opts.read_timeout;
            conn::Deadline::new(body, at, "read-timeout").boxed()
        };
        let body = match small_body_whole(body).await {
            Ok(b) => b,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("Proxy error: {e}\n")),
        };
        match self.local.send(Request::from_parts(parts, body)).await {
            Ok(resp) => self.relay(resp, started),
            Err(e) => {
                tracing::warn!(target = %self.local.addr(), "proxy: {e}");
                text(StatusCode::BAD_GATEWAY, format!("Proxy error: {e}\n"))
            }
        }
    }

    /// Sends a write to the primary's proxy and relays its answer (cookie
    /// included).
    async fn to_primary(
        &self,
        req: Request<Body>,
        peer: SocketAddr,
        p: &PrimaryInfo,
    ) -> Response<Body> {
        let started = tokio::time::Instant::now();
        let up = match self.primary.upstream(p).await {
            Ok(up) => up,
            Err(e) => {
                tracing::warn!(primary = %p.hostname, "proxy: {e}");
                return text(StatusCode::BAD_GATEWAY, format!("Proxy error: {e}\n"));
            }
        };
        let (mut parts, body) = req.into_parts();
        strip_and_forward(&mut parts.headers, peer);
        if let Ok(v) = HeaderValue::from_str(&self.opts.hostname) {
            parts.headers.insert(FORWARDED_FROM, v);
        }
        parts.uri = origin_form(&parts.uri);
        let body = match small_body_whole(body).await {
            Ok(b) => b,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("Proxy error: {e}\n")),
        };
        match up.send(Request::from_parts(parts, body)).await {
            Ok(resp) => self.relay(resp, started),
            Err(e) => {
                self.primary.forget();
                tracing::warn!(primary = %p.hostname, "proxy: {e}");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("Proxy error: primary proxy: {e}\n"),
                )
            }
        }
    }

    fn relay(&self, resp: Response<Body>, started: tokio::time::Instant) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        let body = if self.opts.write_timeout.is_zero() {
            body
        } else {
            let at = started + self.opts.write_timeout;
            conn::Deadline::new(body, at, "write-timeout").boxed()
        };
        Response::from_parts(parts, body)
    }

    fn mark(&self, h: &mut HeaderMap) {
        h.insert(HeaderName::from_static(PROXIED_BY), self.marker.clone());
    }
}

/// The instance a `fly-replay` value names (`instance=<name>`, possibly
/// among other `;`-separated fields).
fn replay_target(value: &str) -> Option<&str> {
    value
        .split(';')
        .filter_map(|f| f.trim().split_once('='))
        .find(|(k, _)| *k == "instance")
        .map(|(_, v)| v.trim())
}

fn primary_known(s: &LeaseState) -> bool {
    s.is_primary || s.primary.is_some()
}

/// A request body of known small size read whole first, so that it goes
/// out in one write with the head (one wake-up of the app instead of two);
/// larger or chunked bodies stream as they come.
async fn small_body_whole(body: Body) -> Result<Body, String> {
    match body.size_hint().exact() {
        Some(n) if n > 0 && n <= SMALL_BODY => {
            let bytes = body
                .collect()
                .await
                .map_err(|e| format!("reading the request body: {e}"))?
                .to_bytes();
            Ok(Full::new(bytes).map_err(|e| match e {}).boxed())
        }
        _ => Ok(body),
    }
}

fn strip_and_forward(h: &mut HeaderMap, peer: SocketAddr) {
    headers::strip_hop_by_hop(h);
    headers::add_forwarded(h, peer.ip());
}

/// `/path?query` of a request URI (a client may send an absolute URI).
fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query()
        .map(|pq| Uri::from(pq.clone()))
        .unwrap_or_else(|| Uri::from_static("/"))
}

fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|e| match e {}).boxed()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fly_replay_names_its_instance() {
        assert_eq!(replay_target("instance=node-a"), Some("node-a"));
        assert_eq!(replay_target("region=ams; instance=b "), Some("b"));
        assert_eq!(replay_target("region=ams"), None);
    }

    #[test]
    fn advertise_url_defaults_to_the_bound_address_or_the_node_host() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let one: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        assert_eq!(default_advertise_url(any, "node-a"), "http://node-a:8080");
        assert_eq!(
            default_advertise_url(any, "fd00::1"),
            "http://[fd00::1]:8080"
        );
        assert_eq!(default_advertise_url(one, "node-a"), "http://10.1.2.3:8080");
        assert_eq!(default_advertise_url(any, ""), "http://0.0.0.0:8080");
    }
}
