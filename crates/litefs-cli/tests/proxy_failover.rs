//! The proxy across a failover: three nodes on a real etcd lease, each with
//! its app (tests/proxy_support/app.rs) behind its proxy. Writes sent to any
//! node's proxy run on the primary; after a kill -9 of the primary, writes
//! sent to the surviving replica's proxy reach the new primary (whose proxy
//! URL arrives in the lease value), with nothing restarted, and the
//! replica's reads with the cookie see them.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use hyper::StatusCode;

#[path = "proxy_support/app.rs"]
#[allow(dead_code)] // the SSE gate serves the other proxy tests
mod app;
#[path = "proxy_support/client.rs"]
mod client;
mod common;

use common::etcd::EtcdServer;
use common::node::{Config, Node};

const WAIT: Duration = Duration::from_secs(60);
const DB: &str = "app.db";

struct Member {
    node: Node,
    _app: app::App,
    proxy: SocketAddr,
}

fn free_addr(ip: Ipv4Addr) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

#[test]
fn after_a_failover_writes_through_every_proxy_reach_the_new_primary() {
    let etcd = EtcdServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut m: Vec<Member> = (1..=3u8)
        .map(|host| {
            let ip = Ipv4Addr::new(127, 0, 0, host);
            let node = Node::on_host(host, WAIT);
            let name = format!("node-{host}");
            let app = app::spawn(&rt, free_addr(ip), &name, node.db(DB), false);
            let proxy = free_addr(ip);
            node.config(
                Config::new(host < 3)
                    .lease(&format!(
                        "type: etcd, etcd: {{ endpoints: [\"{}\"], key: \"litefs/proxy\", ttl: \"5s\" }}, \
                         candidate: {}, hostname: \"{name}\", advertise-url: \"{}\", reconnect-delay: \"100ms\"",
                        etcd.url,
                        host < 3,
                        node.url()
                    ))
                    .skip_sync()
                    .extra(&format!(
                        "proxy: {{ addr: \"{proxy}\", target: \"{}\", db: \"{DB}\" }}\n",
                        app.addr
                    )),
            );
            Member {
                node,
                _app: app,
                proxy,
            }
        })
        .collect();
    m[0].node.start();
    let log0 = m[0].node.log_path();
    m[0].node.wait_until("node-1 to take the lease", || {
        std::fs::read_to_string(&log0).is_ok_and(|l| l.contains("primary lease acquired"))
    });
    m[1].node.start();
    m[2].node.start();
    let c = rusqlite::Connection::open(m[0].node.db(DB)).unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    drop(c);

    let write =
        |member: &Member| rt.block_on(client::call(member.proxy, "POST", "/write", &[], "v"));
    // Before: every proxy sends its writes to node-1.
    for x in &m {
        let deadline = Instant::now() + WAIT;
        loop {
            let a = write(x);
            if a.status == StatusCode::OK {
                assert_eq!(a.header("x-app-node"), "node-1", "{}", x.node.log());
                break;
            }
            // A replica still catching up with the table answers 5xx.
            assert!(
                Instant::now() < deadline,
                "{} {}\n{}",
                a.status,
                a.body,
                x.node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Replication is asynchronous (a write the primary acknowledged but had
    // not streamed yet would be lost with it, kept in its diverged/): let
    // node-2 catch up first, this test is about the proxy.
    let want = m[0].node.pos(DB);
    let (n2_db, deadline) = (m[1].node.db(&format!("{DB}-pos")), Instant::now() + WAIT);
    while std::fs::read_to_string(&n2_db)
        .ok()
        .map(|p| p.trim().to_string())
        != want
    {
        assert!(Instant::now() < deadline, "node-2 did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    m[0].node.kill9().unwrap();
    let killed = Instant::now();
    // The replica's proxy: errors while there is no primary, then the
    // write runs on node-2, found through the lease.
    let answer = loop {
        let a = write(&m[2]);
        if a.status == StatusCode::OK {
            break a;
        }
        assert!(
            killed.elapsed() < WAIT,
            "no write reached a new primary: {} {}\n{}",
            a.status,
            a.body,
            m[2].node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer.header("x-app-node"), "node-2");
    eprintln!(
        "kill -9 of node-1 to the first write through node-3's proxy on node-2: {:.2} s",
        killed.elapsed().as_secs_f64()
    );
    let direct = write(&m[1]);
    assert_eq!(
        (direct.status, direct.header("x-app-node")),
        (StatusCode::OK, "node-2")
    );
    // The replica's read with the new primary's cookie sees every write.
    let cookie = direct.txid_cookie();
    let read = rt.block_on(client::call(
        m[2].proxy,
        "GET",
        "/count",
        &[("cookie", &cookie)],
        "",
    ));
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.header("x-app-node"), "node-3");
    assert_eq!(read.body, "5", "3 writes before the failover and 2 after");
    m.truncate(2);
}
