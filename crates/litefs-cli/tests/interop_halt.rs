//! LiteFS's halt lock on a litefs-rs primary, against the real LiteFS
//! v0.5.14 (see common/litefs_go.rs): a LiteFS replica running `litefs run
//! -with-halt-lock-on` writes through a litefs-rs primary while local
//! writers wait; the endpoints answer and refuse as LiteFS's do, a held
//! lock is renewed, an abandoned one expires.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

mod common;

use common::litefs_go::{
    http, http_get, litefs_go, rs, run, sql, start, static_node, wait_pos, WAIT,
};
use common::node::Node;

fn values(path: &Path) -> Vec<i64> {
    let c = Connection::open(path).unwrap();
    let mut st = c.prepare("SELECT v FROM t ORDER BY rowid").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn halt_lock_lets_a_litefs_replica_write_through_a_litefs_rs_primary() {
    let mut p = static_node(1, &rs(), true, None);
    start(&mut p);
    sql(
        &p,
        "h.db",
        "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)",
    );
    sql(
        &p,
        "w.db",
        "PRAGMA journal_mode = wal; CREATE TABLE t (v INTEGER)",
    );
    let mut go = static_node(2, &litefs_go(), false, Some(&p.url()));
    let mut r = static_node(3, &rs(), false, Some(&p.url()));
    start(&mut go);
    r.start();
    for db in ["h.db", "w.db"] {
        wait_pos(&p, &mut go, db);
        wait_pos(&p, &mut r, db);
    }

    // The command writes on the LiteFS replica while it holds the halt
    // lock; a writer on the primary that starts meanwhile waits for the
    // lock to go.
    let hdb = go.db("h.db");
    let local = {
        let (db, log) = (p.db("h.db"), p.log_path());
        std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            while !std::fs::read_to_string(&log)
                .unwrap()
                .contains("halt lock acquired")
            {
                assert!(Instant::now() < deadline, "no halt lock taken");
                std::thread::sleep(Duration::from_millis(2));
            }
            let c = Connection::open(db).unwrap();
            c.busy_timeout(Duration::from_secs(20)).unwrap();
            c.execute("INSERT INTO t VALUES (43)", []).unwrap();
        })
    };
    // One process (LiteFS drops the halt lock as soon as any process
    // holding its descriptor closes it: a shell's child exiting would),
    // busy for a moment before it writes.
    let slow_insert = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                       WHERE x < 2000000) SELECT count(*) FROM c; INSERT INTO t VALUES (42);";
    let hdb_s = hdb.to_str().unwrap();
    let out = run(&[
        "-with-halt-lock-on",
        hdb_s,
        "--",
        "sqlite3",
        hdb_s,
        slow_insert,
    ]);
    assert!(out.status.success(), "{out:?}\n{}\n{}", go.log(), p.log());
    local.join().unwrap();
    assert_eq!(
        values(&p.db("h.db")),
        [1, 42, 43],
        "the replica's write applied on the primary, the local one after the halt"
    );
    wait_pos(&p, &mut go, "h.db");
    wait_pos(&p, &mut r, "h.db");
    assert_eq!(values(&go.db("h.db")), [1, 42, 43]);
    assert_eq!(values(&r.db("h.db")), [1, 42, 43]);

    // A WAL database cannot take a replica's transactions here yet: the
    // command does not run, the primary is unchanged.
    let wdb = go.db("w.db");
    let out = run(&["-with-halt-lock-on", wdb.to_str().unwrap(), "--", "true"]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(values(&p.db("w.db")), Vec::<i64>::new());
    sql(&p, "w.db", "INSERT INTO t VALUES (7)");
    assert_eq!(values(&p.db("w.db")), [7], "no halt lock left behind");
}

/// The endpoints a LiteFS replica calls, as LiteFS answers them, and the
/// renewal LiteFS lacks.
#[test]
fn halt_endpoints_answer_as_litefs_does_and_renew() {
    let mut p = static_node(1, &rs(), true, None);
    start(&mut p);
    sql(&p, "h.db", "CREATE TABLE t (v INTEGER)");
    sql(
        &p,
        "w.db",
        "PRAGMA journal_mode = wal; CREATE TABLE t (v INTEGER)",
    );
    let base = p.url();
    let other = "Litefs-Id: 00000000000000AA\r\n";

    let (st, body) = http(&base, "POST", "/halt?name=h.db&id=77", other);
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], 77);
    assert_eq!(
        format!(
            "{}/{}",
            v["pos"]["TXID"].as_str().unwrap(),
            v["pos"]["PostApplyChecksum"].as_str().unwrap()
        ),
        p.pos("h.db").unwrap()
    );
    let first = v["expires"].as_str().unwrap().to_string();

    // Held: a local writer waits; another replica's lock times out (10 s).
    let c = Connection::open(p.db("h.db")).unwrap();
    c.busy_timeout(Duration::from_millis(300)).unwrap();
    assert!(c.execute("INSERT INTO t VALUES (1)", []).is_err());
    let (st, body) = http(&base, "POST", "/halt?name=h.db&id=78", other);
    assert_eq!(st, 409, "{body}");
    let (st, _) = http(&base, "POST", "/tx?name=h.db&lockID=78", other);
    assert_eq!(st, 409);

    // The same id renews it.
    std::thread::sleep(Duration::from_millis(1100));
    let (st, body) = http(&base, "POST", "/halt?name=h.db&id=77", other);
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["expires"].as_str().unwrap() > first.as_str(),
        "{body} after {first}"
    );

    // LiteFS's refusals.
    let own = format!("Litefs-Id: {}\r\n", node_id(&p));
    assert_eq!(http(&base, "POST", "/halt?name=h.db&id=1", &own).0, 400);
    assert_eq!(http(&base, "POST", "/halt?name=h.db&id=x", other).0, 400);
    assert_eq!(http(&base, "POST", "/halt?name=w.db&id=5", other).0, 501);

    assert_eq!(http(&base, "DELETE", "/halt?name=h.db&id=77", other).0, 200);
    c.execute("INSERT INTO t VALUES (1)", []).unwrap();
    assert_eq!(http(&base, "DELETE", "/halt?name=h.db&id=77", other).0, 200);
}

fn node_id(n: &Node) -> String {
    let (_, info) = http_get(&n.url(), "/info");
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    v["nodeID"].as_str().unwrap().to_string()
}

/// A replica that takes the lock and goes away without releasing it does
/// not keep the primary's writers out for more than the lock's 30 s.
#[test]
fn an_abandoned_halt_lock_expires_after_30_seconds() {
    let mut p = static_node(1, &rs(), true, None);
    start(&mut p);
    sql(&p, "h.db", "CREATE TABLE t (v INTEGER)");
    let other = "Litefs-Id: 00000000000000AB\r\n";
    let (st, body) = http(&p.url(), "POST", "/halt?name=h.db&id=9", other);
    assert_eq!(st, 200, "{body}");
    let taken = Instant::now();

    let c = Connection::open(p.db("h.db")).unwrap();
    c.busy_timeout(Duration::from_millis(200)).unwrap();
    while c.execute("INSERT INTO t VALUES (1)", []).is_err() {
        assert!(
            taken.elapsed() < Duration::from_secs(45),
            "the halt lock never expired:\n{}",
            p.log()
        );
    }
    let held = taken.elapsed();
    assert!(held >= Duration::from_secs(29), "released after {held:?}");
    assert!(p.log().contains("halt lock expired"), "{}", p.log());
    // The replica's late transaction is refused.
    let (st, _) = http(&p.url(), "POST", "/tx?name=h.db&lockID=9", other);
    assert_eq!(st, 409);
}
