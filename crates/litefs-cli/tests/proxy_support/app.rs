//! The app behind the proxy in the proxy tests: a small hyper server in
//! the test process that writes to and reads from SQLite through its
//! node's mount, streams uploads without keeping them, serves server-sent
//! events one at a time as the test releases them, and echoes bytes on an
//! upgraded connection. Every answer names the node it ran on
//! (`x-app-node`), so a test sees where a request went.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub struct App {
    pub addr: SocketAddr,
    /// One permit releases one server-sent event.
    pub sse_gate: Arc<Semaphore>,
}

struct Ctx {
    name: String,
    db: PathBuf,
    is_primary: bool,
    primary_name: String,
    sse_gate: Arc<Semaphore>,
}

/// Starts the app on `addr` (port 0 allowed) in `rt`.
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    name: &str,
    db: PathBuf,
    is_primary: bool,
) -> App {
    let listener = rt.block_on(TcpListener::bind(addr)).unwrap();
    let addr = listener.local_addr().unwrap();
    let sse_gate = Arc::new(Semaphore::new(0));
    let ctx = Arc::new(Ctx {
        name: name.to_string(),
        db,
        is_primary,
        primary_name: "node-a".into(),
        sse_gate: sse_gate.clone(),
    });
    rt.spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(handle(req, ctx).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    App { addr, sse_gate }
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>) -> Response<Body> {
    let mut resp = route(req, &ctx).await;
    resp.headers_mut()
        .insert("x-app-node", ctx.name.parse().unwrap());
    resp
}

async fn route(mut req: Request<Incoming>, ctx: &Arc<Ctx>) -> Response<Body> {
    if req.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(up) = upgrade.await else { return };
            let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .body(full(""))
            .unwrap();
    }
    let seen_by = req
        .headers()
        .get(litefs::proxy::PROXIED_BY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match (req.method().clone(), req.uri().path()) {
        (Method::POST, "/write") => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let v = String::from_utf8_lossy(&body).to_string();
            let db = ctx.db.clone();
            let res = tokio::task::spawn_blocking(move || {
                let c = rusqlite::Connection::open(db)?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c.execute("INSERT INTO t(v) VALUES (?1)", [v])
            })
            .await
            .unwrap();
            match res {
                Ok(_) => text(StatusCode::OK, "ok".into()),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        (Method::GET, "/count") | (Method::GET, "/admin/count") => {
            let db = ctx.db.clone();
            let n = tokio::task::spawn_blocking(move || {
                let c = rusqlite::Connection::open(db).unwrap();
                c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .unwrap()
            })
            .await
            .unwrap();
            text(StatusCode::OK, n.to_string())
        }
        (Method::POST, "/upload") => {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(f) = body.frame().await {
                match f {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
                }
            }
            text(StatusCode::OK, n.to_string())
        }
        (Method::GET, "/sse") => {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            let gate = ctx.sse_gate.clone();
            tokio::spawn(async move {
                for i in 1..=3 {
                    gate.acquire().await.unwrap().forget();
                    if tx.send(format!("data: {i}\n\n").into()).await.is_err() {
                        return;
                    }
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(ChannelBody(rx).boxed())
                .unwrap()
        }
        // What ensurePrimary does on a replica: ask for a replay on the primary.
        (Method::GET, "/needs-primary") if !ctx.is_primary => Response::builder()
            .header("fly-replay", format!("instance={}", ctx.primary_name))
            .body(full(""))
            .unwrap(),
        (Method::GET, "/needs-primary") => text(StatusCode::OK, "on the primary".into()),
        (Method::GET, "/proxied-by") => text(StatusCode::OK, seen_by),
        (_, path) if path.starts_with("/static/") => text(StatusCode::OK, "static".into()),
        _ => text(StatusCode::NOT_FOUND, "not found".into()),
    }
}

/// A response body fed by a channel, one frame per message.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

pub fn full(s: &'static str) -> Body {
    Full::new(Bytes::from_static(s.as_bytes()))
        .map_err(|e| match e {})
        .boxed()
}

fn text(status: StatusCode, s: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed())
        .unwrap()
}
