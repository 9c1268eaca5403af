//! A bare HTTP/1.1 client for the proxy tests: one connection per request,
//! answers read whole (they are small), and raw sockets for the tests that
//! speak broken HTTP on purpose.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::app::Body;

/// Sends `req` to `addr` on a new connection; the answer's head and its
/// still unread body.
pub async fn send(addr: SocketAddr, req: Request<Body>) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    sender.send_request(req).await.unwrap()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The `__txid=...` pair of `Set-Cookie`, ready for a `Cookie:` header.
    pub fn txid_cookie(&self) -> String {
        let set = self.header("set-cookie");
        assert!(set.starts_with("__txid="), "no __txid cookie: {set:?}");
        set.split(';').next().unwrap().to_string()
    }
}

/// `method path` with `headers` and `body`; the whole answer.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = http_body_util::Full::new(body.into())
        .map_err(|e| match e {})
        .boxed();
    let resp = send(addr, b.body(body).unwrap()).await;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}
