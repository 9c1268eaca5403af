//! The node's HTTP API on `http.addr` (default `:20202`): `POST /stream`
//! (replication, HTTP/2 cleartext), `GET /info`, `GET /events` (NDJSON),
//! `GET /metrics` (Prometheus text), LiteFS's halt lock (`/halt`, `/tx`),
//! zero-loss acknowledgements (`POST /ack`).
//! HTTP/1.1 and HTTP/2 are both served on the one port, as LiteFS does.

mod ack;
mod halt;
mod handoff;
mod info;
mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::replication::{client::HEADER_EPOCH, client::HEADER_NODE_ID, frame, server};
use crate::store::{cluster_id, PositionAt, Store};
use crate::transfer;

pub use handoff::{get, post, Peers};
pub use info::NodeInfo;

type Body = BoxBody<Bytes, Infallible>;

/// Largest `POST /stream` request body (a position map) accepted.
const MAX_POS_MAP_BYTES: usize = 16 << 20;

/// What the API says about this node beyond the store's state.
#[derive(Debug, Clone, Default)]
pub struct NodeMeta {
    pub hostname: String,
    pub advertise_url: String,
    pub candidate: bool,
    pub primary_url: Option<String>,
    /// This node's proxy as other nodes reach it, when it runs one (shown
    /// as `proxyURL`; replicas forward writes there when this node is primary).
    pub proxy_url: Option<String>,
    /// The lease state, when it can change at runtime: `/info` reports the
    /// primary it names rather than `primary_url`.
    pub lease: Option<crate::lease::LeaseWatch>,
    /// Hands the lease off (`POST /handoff`), with Consul and etcd.
    pub lease_control: Option<crate::lease::LeaseControl>,
    /// Replicas streaming from this node.
    pub peers: Peers,
    /// The mount, for `/import` and `/export`; None without one.
    pub mount_dir: Option<std::path::PathBuf>,
    /// Halt locks held for replicas (`/halt`, `/tx`).
    pub halts: crate::halt::Halts,
}

/// Parses LiteFS's listen addresses: `:20202` means every interface.
pub fn parse_addr(addr: &str) -> Result<SocketAddr, String> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    full.parse()
        .map_err(|e| format!("invalid listen address {addr:?}: {e}"))
}

pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let sa =
        parse_addr(addr).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    TcpListener::bind(sa).await
}

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, store: Arc<Store>, meta: NodeMeta) {
    let meta = Arc::new(meta);
    // Halt locks expire, and go with the primary role, even when no
    // replica calls again; the ticker ends with this task.
    let _expiry = AbortOnDrop(tokio::spawn({
        let (store, halts) = (store.clone(), meta.halts.clone());
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                halts.expire_if_idle(&store);
            }
        }
    }));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("http accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (store, meta) = (store.clone(), meta.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (store, meta) = (store.clone(), meta.clone());
                async move { Ok::<_, Infallible>(route(req, store, meta, peer).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tcp), svc).await {
                tracing::debug!(%peer, "http connection: {e}");
            }
        });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn route(
    req: Request<Incoming>,
    store: Arc<Store>,
    meta: Arc<NodeMeta>,
    peer: SocketAddr,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/stream") => stream(req, store, peer, &meta.peers).await,
        (&Method::POST, "/ack") => ack::ack(req, &store).await,
        (&Method::GET, "/info") => json(StatusCode::OK, &info::node_info(&store, &meta)),
        (&Method::GET, "/events") => events(store, &meta),
        (&Method::GET, "/metrics") => text(StatusCode::OK, metrics::render(&store)),
        (&Method::GET, "/pos") => position_at(&req, &store),
        (&Method::POST, "/handoff") => handoff::handoff(&req, &store, &meta).await,
        (&Method::POST, "/promote") => handoff::promote(&store, &meta).await,
        (&Method::POST, "/import") => import(req, store, meta).await,
        (&Method::GET, "/export") => export(&req, store, meta).await,
        (&Method::POST, "/halt") => halt::acquire(&req, store, meta).await,
        (&Method::DELETE, "/halt") => halt::release(&req, &store, meta).await,
        (&Method::POST, "/tx") => halt::tx(req, store, meta).await,
        (
            _,
            "/stream" | "/ack" | "/info" | "/events" | "/metrics" | "/pos" | "/import" | "/export"
            | "/handoff" | "/promote" | "/halt" | "/tx",
        ) => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts are valid")
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(v).expect("serializable");
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts are valid")
}

fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_stream(rx);
    StreamBody::new(stream).boxed()
}

fn futures_stream(
    mut rx: mpsc::Receiver<Bytes>,
) -> impl futures_core::Stream<Item = Result<BodyFrame<Bytes>, Infallible>> + Send + Sync + 'static
{
    async_stream(move |cx| rx.poll_recv(cx).map(|o| o.map(|b| Ok(BodyFrame::data(b)))))
}

/// A `Stream` from a poll function, without pulling in a stream crate.
fn async_stream<T, F>(f: F) -> PollFnStream<F>
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<T>>,
{
    PollFnStream(f)
}

struct PollFnStream<F>(F);

impl<T, F> futures_core::Stream for PollFnStream<F>
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<T>> + Unpin,
{
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        (self.0)(cx)
    }
}

async fn stream(
    req: Request<Incoming>,
    store: Arc<Store>,
    peer: SocketAddr,
    peers: &Peers,
) -> Response<Body> {
    if req.version() != Version::HTTP_2 {
        return text(
            StatusCode::UPGRADE_REQUIRED,
            "Upgrade to HTTP/2 required\n".into(),
        );
    }
    let peer_id = req
        .headers()
        .get(HEADER_NODE_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if u64::from_str_radix(&peer_id, 16).ok() == Some(store.node_id()) {
        return text(StatusCode::BAD_REQUEST, "cannot connect to self\n".into());
    }
    if !store.is_primary() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is not the primary\n".into(),
        );
    }
    let replica_epoch = req
        .headers()
        .get(HEADER_EPOCH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(e) = replica_epoch.filter(|&e| e > store.epoch()) {
        tracing::error!(%peer, replica_epoch = e, epoch = store.epoch(),
            "a replica has followed a newer primary: this node's term is stale");
        return text(
            StatusCode::CONFLICT,
            format!(
                "stale primary: epoch {} is older than the replica's {e}\n",
                store.epoch()
            ),
        );
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_POS_MAP_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("reading position map: {e}\n"),
            )
        }
    };
    let positions = match frame::read_pos_map(&mut &body[..]) {
        Ok(p) => p,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("invalid position map: {e}\n"),
            )
        }
    };
    tracing::info!(%peer, node = %peer_id, "stream connected");
    let (tx, rx) = mpsc::channel(64);
    let epoch = store.epoch();
    let required = store.zero_loss().required();
    // A data dir taken over from LiteFS keeps its cluster ID; LiteFS
    // replicas refuse a stream without it.
    let cluster = cluster_id::read(store.data_dir());
    let peers = peers.clone();
    tokio::spawn(async move {
        let _counted = store.stream_guard();
        let peer_node = u64::from_str_radix(&peer_id, 16).ok();
        let _connected = peer_node.map(|n| peers.connect(n));
        match server::stream(store.clone(), peer_node, positions, tx).await {
            Ok(()) | Err(server::StreamError::Disconnected) => {
                tracing::info!(%peer, "stream disconnected")
            }
            Err(e) => tracing::warn!(%peer, "stream ended: {e}"),
        }
    });
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(HEADER_EPOCH, epoch.to_string());
    if let Some(id) = cluster {
        resp = resp.header(cluster_id::HEADER_CLUSTER_ID, id);
    }
    if required > 0 {
        resp = resp.header(crate::replication::acks::HEADER_ACK, required.to_string());
    }
    resp.body(channel_body(rx))
        .expect("static response parts are valid")
}

fn query_param<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// Largest database accepted by `POST /import`.
const MAX_IMPORT_BYTES: usize = 4 << 30;

async fn import(req: Request<Incoming>, store: Arc<Store>, meta: Arc<NodeMeta>) -> Response<Body> {
    use transfer::TransferError as E;
    let name = query_param(&req, "name").unwrap_or("").to_string();
    let res: Result<(), E> = async {
        if name.is_empty() {
            return Err(E::NoName);
        }
        if !store.is_primary() {
            return Err(E::NotPrimary);
        }
        let mount = meta.mount_dir.clone().ok_or(E::NoMount)?;
        let body = http_body_util::Limited::new(req.into_body(), MAX_IMPORT_BYTES)
            .collect()
            .await
            .map_err(|e| E::Io(std::io::Error::other(e.to_string())))?
            .to_bytes();
        let data = store.data_dir().to_path_buf();
        let n = name.clone();
        tokio::task::spawn_blocking(move || transfer::import(&data, &mount, &n, &body))
            .await
            .map_err(|e| E::Io(std::io::Error::other(e.to_string())))?
    }
    .await;
    match res {
        Ok(()) => {
            let pos = store
                .db(&name)
                .map(|d| d.pos().to_string())
                .unwrap_or_default();
            tracing::info!(db = %name, %pos, "database imported");
            text(StatusCode::OK, format!("{pos}\n"))
        }
        Err(e @ (E::NoName | E::Name(_) | E::Invalid(_))) => {
            text(StatusCode::BAD_REQUEST, format!("{e}\n"))
        }
        Err(e @ E::NotPrimary) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("import: {e}\n")),
    }
}

async fn export(req: &Request<Incoming>, store: Arc<Store>, meta: Arc<NodeMeta>) -> Response<Body> {
    use transfer::TransferError as E;
    let name = query_param(req, "name").unwrap_or("").to_string();
    let res = match (name.is_empty(), meta.mount_dir.clone()) {
        (true, _) => Err(E::NoName),
        (_, None) => Err(E::NoMount),
        (false, Some(mount)) => {
            let data = store.data_dir().to_path_buf();
            tokio::task::spawn_blocking(move || transfer::export(&data, &mount, &name))
                .await
                .unwrap_or_else(|e| Err(E::Io(std::io::Error::other(e.to_string()))))
        }
    };
    match res {
        Ok(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.sqlite3")
            .body(Full::new(Bytes::from(bytes)).boxed())
            .expect("static response parts are valid"),
        Err(e @ (E::NoName | E::Name(_))) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Err(e @ E::NoDatabase(_)) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("export: {e}\n")),
    }
}

/// `GET /pos?db=NAME&txid=N`: this node's position right after TXID N,
/// from its log (litefs-rs only). A returning former primary uses it to find
/// where its history and the new primary's part.
fn position_at(req: &Request<Incoming>, store: &Store) -> Response<Body> {
    let (Some(name), Some(txid)) = (
        query_param(req, "db"),
        query_param(req, "txid").and_then(|t| u64::from_str_radix(t, 16).ok()),
    ) else {
        return text(
            StatusCode::BAD_REQUEST,
            "db and txid (hex) required\n".into(),
        );
    };
    let Some(db) = store.db(name) else {
        return text(StatusCode::NOT_FOUND, format!("no database {name}\n"));
    };
    match db.position_at(txid) {
        Ok(PositionAt::At(pos)) => text(StatusCode::OK, pos.to_pos_file()),
        Ok(PositionAt::Inside { min_txid, max_txid }) => text(
            StatusCode::NOT_FOUND,
            format!(
                "TXID {txid:016x} is inside group-commit file {}; current {}\n",
                ltx::format_filename(min_txid, max_txid),
                db.log_pos()
            ),
        ),
        Ok(PositionAt::Unknown) => text(
            StatusCode::NOT_FOUND,
            format!(
                "TXID {txid:016x} is not in the log; current {}\n",
                db.log_pos()
            ),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// `GET /events`: an `init` line, then one line per transaction and per
/// change of primary, as LiteFS writes them.
fn events(store: Arc<Store>, meta: &NodeMeta) -> Response<Body> {
    let (tx, rx) = mpsc::channel(256);
    let mut sub = store.subscribe();
    let init = info::init_event(&store, meta);
    tokio::spawn(async move {
        if tx.send(init).await.is_err() {
            return;
        }
        loop {
            let line = match sub.recv().await {
                Ok(ev) => info::event_line(&ev),
                // Too slow a reader: LiteFS disconnects it; so do we.
                Err(_) => return,
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-ndjson")
        .body(channel_body(rx))
        .expect("static response parts are valid")
}
