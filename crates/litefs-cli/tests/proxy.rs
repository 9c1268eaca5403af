//! The HTTP proxy on static-lease clusters of `litefs mount` processes on
//! 127.0.0.x, with a real app (tests/proxy_support/app.rs) writing to
//! SQLite through each node's mount:
//!
//! * a write on a replica runs on the primary, its answer and `__txid`
//!   cookie reach the client, and a read with that cookie on the replica
//!   sees it; a read whose cookie is ahead waits until the write that
//!   reaches it arrives; a cookie nobody reaches times out with 504;
//! * passthrough and always-forward globs; an app's `fly-replay` answer to
//!   a read on a replica (ensurePrimary) is replayed on the primary;
//! * with `FLY_APP_NAME`, writes on a replica answer `fly-replay`, bodies
//!   above 1 MB are forwarded instead;
//! * WebSocket tunnel, server-sent events flushed one by one, garbage and a
//!   half-sent request, a 100 MB upload through a replica with the proxies'
//!   peak memory measured, and health turning 503 when the primary is gone.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Request, StatusCode};
use rusqlite::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "proxy_support/app.rs"]
mod app;
#[path = "proxy_support/client.rs"]
mod client;
mod common;

use client::call;
use common::node::{Config, Node};

const WAIT: Duration = Duration::from_secs(20);
const DB: &str = "app.db";

struct Member {
    node: Node,
    app: app::App,
    proxy: SocketAddr,
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    members: Vec<Member>,
}

fn free_addr(ip: Ipv4Addr) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// A primary (`node-a` on 127.0.0.1) and `replicas` replicas, each with its
/// app and its proxy; `fly` sets FLY_APP_NAME on the replicas.
fn cluster(replicas: u8, fly: bool) -> Cluster {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut members: Vec<Member> = Vec::new();
    let mut primary_url = String::new();
    for i in 0..=replicas {
        let ip = Ipv4Addr::new(127, 0, 0, 1 + i);
        let mut node = Node::on_host(1 + i, WAIT);
        if i == 0 {
            primary_url = node.url();
        }
        let name = if i == 0 {
            "node-a".to_string()
        } else {
            format!("replica-{i}")
        };
        let app = app::spawn(&rt, free_addr(ip), &name, node.db(DB), i == 0);
        let proxy = free_addr(ip);
        let yaml = format!(
            "proxy: {{ addr: \"{proxy}\", target: \"{}\", db: \"{DB}\", max-lag: \"1s\", \
             read-header-timeout: \"1s\", passthrough: [\"/static/*\"], \
             always-forward: [\"/admin/*\"] }}\n",
            app.addr
        );
        let config = if i == 0 {
            Config::new(true).primary("node-a", &primary_url)
        } else {
            Config::new(false)
                .primary("node-a", &primary_url)
                .reconnect_delay("200ms")
                .skip_sync()
        };
        node.config(config.extra(&yaml));
        if fly && i > 0 {
            node.env("FLY_APP_NAME", "proxy-test");
        }
        node.start();
        members.push(Member { node, app, proxy });
    }
    let c = Connection::open(members[0].node.db(DB)).unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    drop(c);
    let want = members[0].node.pos(DB).unwrap();
    for m in &mut members[1..] {
        let mnt = m.node.mnt();
        m.node.wait_until("the table to replicate", || {
            std::fs::read_to_string(mnt.join(format!("{DB}-pos"))).is_ok_and(|p| p.trim() == want)
        });
    }
    Cluster { rt, members }
}

impl Cluster {
    fn call(
        &self,
        member: usize,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> client::Answer {
        let addr = self.members[member].proxy;
        self.rt.block_on(call(addr, method, path, headers, body))
    }
}

#[test]
fn writes_on_replicas_reach_the_primary_and_cookies_read_them_back() {
    let c = cluster(2, false);
    let mut writes = 0;
    for r in [1, 2, 1] {
        let a = c.call(r, "POST", "/write", &[], "hello");
        assert_eq!(
            (a.status, a.body.as_str()),
            (StatusCode::OK, "ok"),
            "{}",
            c.members[r].node.log()
        );
        assert_eq!(
            a.header("x-app-node"),
            "node-a",
            "the write ran on the primary"
        );
        let cookie = a.txid_cookie();
        assert!(a
            .header("set-cookie")
            .ends_with("; Path=/; Max-Age=300; HttpOnly; SameSite=Lax"));
        writes += 1;
        let read = c.call(r, "GET", "/count", &[("cookie", &cookie)], "");
        assert_eq!(read.header("x-app-node"), format!("replica-{r}"));
        assert_eq!(
            read.body,
            writes.to_string(),
            "read-your-writes on replica-{r}"
        );
    }
    // On the primary itself: the cookie carries the position after the write.
    let a = c.call(0, "POST", "/write", &[], "on primary");
    let txid = u64::from_str_radix(&a.txid_cookie()["__txid=".len()..], 16).unwrap();
    let pos = c.members[0].node.pos(DB).unwrap();
    assert_eq!(format!("{txid:016x}"), pos.split('/').next().unwrap());

    // Globs: passthrough stays local whatever the method; always-forward
    // goes to the primary even for a GET.
    let a = c.call(1, "POST", "/static/x.png", &[], "");
    assert_eq!(
        (a.body.as_str(), a.header("x-app-node")),
        ("static", "replica-1")
    );
    let a = c.call(1, "GET", "/admin/count", &[], "");
    assert_eq!(a.header("x-app-node"), "node-a");
    // ensurePrimary's fly-replay on a replica's read is replayed on the primary.
    let a = c.call(2, "GET", "/needs-primary", &[], "");
    assert_eq!(
        (a.body.as_str(), a.header("x-app-node")),
        ("on the primary", "node-a")
    );
    // The app learns a litefs-rs proxy stands in front of it.
    assert!(!c.call(1, "GET", "/proxied-by", &[], "").body.is_empty());

    // A read asking for the next transaction waits for it: it is answered
    // once the write (made afterwards) reaches the replica, and sees it.
    let next = u64::from_str_radix(pos.split('/').next().unwrap(), 16).unwrap() + 1;
    let ahead = format!("__txid={next:016x}");
    let replica = c.members[1].proxy;
    let waiting = c.rt.spawn(async move {
        call(replica, "GET", "/count", &[("cookie", ahead.as_str())], "").await
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiting.is_finished(),
        "a read ahead of the replica was answered at once"
    );
    c.call(0, "POST", "/write", &[], "later");
    let a = c.rt.block_on(waiting).unwrap();
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, (writes + 2).to_string().as_str())
    );

    // A cookie no node has reached: 504 after LiteFS's 5 s.
    let a = c.call(
        1,
        "GET",
        "/count",
        &[("cookie", "__txid=00000000ffffffff")],
        "",
    );
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "Proxy timeout\n")
    );
    // A malformed cookie is ignored, as LiteFS ignores it.
    let a = c.call(1, "GET", "/count", &[("cookie", "__txid=zz")], "");
    assert_eq!(a.status, StatusCode::OK);
}

#[test]
fn on_fly_writes_on_a_replica_answer_fly_replay_and_large_bodies_are_forwarded() {
    let c = cluster(1, true);
    let a = c.call(1, "POST", "/write", &[], "small");
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("fly-replay"), "instance=node-a");
    assert_eq!((a.body.as_str(), a.header("x-app-node")), ("", ""));
    let big = vec![b'x'; (1 << 20) + 1];
    let a = c.call(1, "POST", "/upload", &[], big);
    assert_eq!(a.header("fly-replay"), "");
    assert_eq!(
        (a.body.as_str(), a.header("x-app-node")),
        ("1048577", "node-a")
    );
    a.txid_cookie();
}

#[test]
fn tunnels_streams_and_bad_clients_then_health_without_a_primary() {
    let mut c = cluster(1, false);
    let replica = c.members[1].proxy;

    // WebSocket: the upgrade is tunnelled to the replica's own app.
    c.rt.block_on(async {
        let req = Request::get("/ws")
            .header("host", "app.test")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(app::full(""))
            .unwrap();
        let mut resp = client::send(replica, req).await;
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers()["x-app-node"], "replica-1");
        let up = hyper::upgrade::on(&mut resp).await.unwrap();
        let mut io = hyper_util::rt::TokioIo::new(up);
        for msg in [&b"\x81\x05hello"[..], b"\x81\x05again"] {
            io.write_all(msg).await.unwrap();
            let mut back = vec![0; msg.len()];
            io.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
    });

    // Server-sent events: each reaches the client while the app holds the
    // next one back, so nothing waits for the end of the response.
    let gate = c.members[1].app.sse_gate.clone();
    c.rt.block_on(async {
        let req = Request::get("/sse")
            .header("host", "app.test")
            .body(app::full(""))
            .unwrap();
        let mut body = client::send(replica, req).await.into_body();
        for i in 1..=3 {
            gate.add_permits(1);
            let frame = tokio::time::timeout(WAIT, body.frame())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(frame.into_data().unwrap(), format!("data: {i}\n\n"));
        }
    });

    // Garbage gets 400; a half-sent request ties up only its own socket
    // and is dropped after read-header-timeout (1 s here).
    let mut garbage = std::net::TcpStream::connect(replica).unwrap();
    garbage
        .write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    garbage.set_read_timeout(Some(WAIT)).unwrap();
    let _ = garbage.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let mut half = std::net::TcpStream::connect(replica).unwrap();
    half.write_all(b"POST /write HTTP/1.1\r\nHost: app.test\r\nContent-Le")
        .unwrap();
    assert_eq!(c.call(1, "GET", "/count", &[], "").status, StatusCode::OK);
    half.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let n = half.read_to_end(&mut rest);
    assert!(n.is_ok(), "the half-sent request was not closed: {n:?}");

    // 100 MB streamed through the replica's proxy to the primary's app.
    let before: Vec<u64> = c.members.iter().map(|m| peak_rss_kb(&m.node)).collect();
    const TOTAL: u64 = 100 << 20;
    let a = c.rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![7u8; 256 << 10]);
            for _ in 0..TOTAL / chunk.len() as u64 {
                tx.send(chunk.clone()).await.unwrap();
            }
        });
        let body = ReceiverStream(rx).boxed();
        let req = Request::post("/upload")
            .header("host", "app.test")
            .body(body)
            .unwrap();
        let resp = client::send(replica, req).await;
        let node = resp.headers()["x-app-node"].to_str().unwrap().to_string();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (node, String::from_utf8(body.to_vec()).unwrap())
    });
    assert_eq!(a, ("node-a".to_string(), TOTAL.to_string()));
    let after: Vec<u64> = c.members.iter().map(|m| peak_rss_kb(&m.node)).collect();
    println!(
        "100 MB upload through the replica: peak RSS (VmHWM) primary {} -> {} KiB, replica {} -> {} KiB",
        before[0], after[0], before[1], after[1]
    );
    for (b, a) in before.iter().zip(&after) {
        assert!(
            a - b < 64 * 1024,
            "proxy memory grew by {} KiB during the upload",
            a - b
        );
    }

    // Health: OK while the primary streams; 503 once it is gone for longer
    // than max-lag (1 s).
    assert_eq!(c.call(1, "GET", "/litefs/health", &[], "").body, "OK\n");
    c.members[0].node.stop();
    let deadline = Instant::now() + WAIT;
    loop {
        let a = c.call(1, "GET", "/litefs/health", &[], "");
        if a.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(a.body, "Replication lag exceeded\n");
            break;
        }
        assert!(Instant::now() < deadline, "health stayed {}", a.status);
        std::thread::sleep(Duration::from_millis(100));
    }
    // A write has nowhere to go: a clear 502, not a hang.
    let a = c.call(1, "POST", "/write", &[], "x");
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);
    assert!(a.body.starts_with("Proxy error:"), "{}", a.body);
}

/// The peak resident set of a node's process, in KiB.
fn peak_rss_kb(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A request body fed by a channel.
struct ReceiverStream(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ReceiverStream {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
