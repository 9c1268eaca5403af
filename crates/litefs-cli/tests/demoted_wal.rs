//! A primary handed off while an application keeps a WAL-mode connection
//! open on it (two candidates on the in-repo Consul test server): its WAL
//! is checkpointed and removed, a connection opened after the handoff gets
//! "attempt to write a readonly database", the node logs that the old
//! connection holds up replication, and once the application closes it the
//! node applies the new primary's transactions
//! (before, they failed with a checksum mismatch under the WAL frames it
//! kept); when the lease comes back the replica's connection writes.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

mod common;

use common::consul::ConsulServer;
use common::node::{Config, Node};

const WAIT: Duration = Duration::from_secs(60);

fn member(host: u8, consul: &ConsulServer) -> Node {
    let mut n = Node::on_host(host, WAIT);
    n.config(
        Config::new(true)
            .lease(&format!(
                "type: consul, consul: {{ url: \"http://{}\", key: \"litefs/demoted-wal\", ttl: \"10s\", \
                 lock-delay: \"1s\" }}, candidate: true, hostname: \"node-{host}\", \
                 advertise-url: \"{}\", reconnect-delay: \"100ms\"",
                consul.addr,
                n.url()
            ))
            .skip_sync(),
    );
    n.start();
    n
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hand_off_to(n: &Node) {
    let out = std::process::Command::new(common::LITEFS)
        .args(["handoff", "--to", &n.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "litefs handoff: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn old_primary_with_an_open_wal_connection_follows_the_new_one() {
    let consul = ConsulServer::start();
    let a = member(1, &consul);
    wait_for("node-1 to acquire", || {
        a.log().contains("primary lease acquired")
    });
    let b = member(2, &consul);
    let live = Connection::open(a.db("w.db")).unwrap();
    live.busy_timeout(Duration::from_secs(10)).unwrap();
    live.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
        .unwrap();
    for i in 0..20 {
        live.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
    }
    wait_for("node-2 to catch up", || b.pos("w.db") == a.pos("w.db"));

    hand_off_to(&b);
    // The WAL is checkpointed into the database and removed at once.
    let wal = a.data().join("dbs/w.db/wal");
    wait_for("node-1's WAL to be checkpointed", || !wal.exists());
    assert_eq!(count(&live), 20, "the open connection still reads");
    assert!(live.execute("INSERT INTO t VALUES (-1)", []).is_err());
    let fresh = Connection::open(a.db("w.db")).unwrap();
    fresh.busy_timeout(Duration::from_secs(10)).unwrap();
    let err = fresh.execute("INSERT INTO t VALUES (-1)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly), "{err}");
    assert_eq!(count(&fresh), 20);

    let writer = Connection::open(b.db("w.db")).unwrap();
    writer.busy_timeout(Duration::from_secs(10)).unwrap();
    for i in 20..30 {
        writer.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
    }
    // A WAL-mode connection holds SQLite's SHARED lock on the database for
    // as long as it is open, which keeps the apply out (and is logged);
    // the application closes it (reconnects), as after any failover.
    wait_for("node-1 to log why it waits", || {
        a.log().contains("waiting for SQLite connections")
    });
    drop(live);
    let deadline = Instant::now() + WAIT;
    while a.pos("w.db") != b.pos("w.db") {
        assert!(
            Instant::now() < deadline,
            "node-1 never applied node-2's transactions ({:?} vs {:?}):\n{}",
            a.pos("w.db"),
            b.pos("w.db"),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(&fresh), 30);

    // The lease comes back: the connection opened on the replica writes.
    drop(writer);
    hand_off_to(&a);
    wait_for("node-1 to take writes", || {
        fresh.execute("INSERT INTO t VALUES (30)", []).is_ok()
    });
    assert_eq!(count(&fresh), 31);
    wait_for("node-2 to follow", || b.pos("w.db") == a.pos("w.db"));
}
