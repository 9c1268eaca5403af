//! The lease server goes away: the primary stops accepting writes before
//! its TTL (10 s) runs out, replicas keep serving reads, and writes resume
//! once a lease server answers again.

use std::time::{Duration, Instant};

mod common;

use common::node::{Config, Node};
use common::sqlite3;

const WAIT: Duration = Duration::from_secs(60);

fn serve(addr: &str) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    let opts = consul_test_server::Options {
        addr: addr.to_string(),
        token: None,
    };
    rt.spawn(consul_test_server::serve(listener, opts));
    rt
}

fn node(host: u8, addr: &str) -> Node {
    let mut n = Node::on_host(host, WAIT);
    n.config(
        Config::new(true)
            .lease(&format!(
                "type: consul, hostname: \"node-{host}\", advertise-url: \"{}\", reconnect-delay: \"100ms\", \
                 consul: {{ url: \"http://{addr}\", key: \"litefs/down\", ttl: \"10s\", lock-delay: \"1s\" }}",
                n.url()
            ))
            .skip_sync(),
    );
    n.start();
    n
}

fn write(n: &Node, v: i64) -> bool {
    sqlite3(&n.db("t.db"), &format!("INSERT INTO x VALUES ({v})"))
        .status
        .success()
}

#[test]
fn primary_stops_writing_within_its_ttl_when_the_lease_server_is_gone() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let server = serve(&addr);
    let mut a = node(1, &addr);
    let log = a.log_path();
    a.wait_until("node-1 to acquire", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("primary lease acquired")
    });
    let b = node(2, &addr);
    assert!(sqlite3(&a.db("t.db"), "CREATE TABLE x (v INTEGER)")
        .status
        .success());
    assert!(write(&a, 1));
    let deadline = Instant::now() + WAIT;
    while b.pos("t.db") != a.pos("t.db") {
        assert!(Instant::now() < deadline, "node-2 never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }

    server.shutdown_background();
    let gone = Instant::now();
    let mut v = 2;
    while write(&a, v) {
        v += 1;
        assert!(gone.elapsed() < WAIT, "the primary kept writing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused_after = gone.elapsed();
    eprintln!(
        "lease server gone: the primary refused writes after {:.2} s",
        refused_after.as_secs_f64()
    );
    // The TTL counts from the last renewal, which came before the stop.
    assert!(refused_after < Duration::from_secs(10), "{refused_after:?}");
    // The write gate closes on the lease's confirmed time; the lease task
    // says so a moment later.
    let log = a.log_path();
    a.wait_until("node-1 to log the loss", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("primary lease lost")
    });
    for n in [&a, &b] {
        let out = sqlite3(&n.db("t.db"), "SELECT count(*) FROM x");
        assert!(out.status.success(), "reads stopped: {out:?}");
    }

    let _server = serve(&addr);
    let back = Instant::now();
    while !(write(&a, 1000) || write(&b, 1000)) {
        assert!(back.elapsed() < WAIT, "writes never resumed:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "lease server back: writes resumed after {:.2} s",
        back.elapsed().as_secs_f64()
    );
}
