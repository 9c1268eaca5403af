//! litefs-rs against the real LiteFS v0.5.14 (see common/litefs_go.rs)
//! beyond the static-lease streams of interop.rs (and the halt lock of
//! interop_halt.rs):
//!
//! * a rolling migration of a 3-node cluster on one Consul key (the
//!   in-repo Consul test server) with a writer running: a litefs-rs node
//!   follows a LiteFS primary found through LiteFS's lease value, a LiteFS
//!   replica follows a litefs-rs primary found through ours, the cluster
//!   ID LiteFS stored under the key is kept; then `litefs run -promote`;
//! * the cluster ID: created by a primary, adopted by replicas of either
//!   kind, a node of another cluster refused by either kind (stream) and
//!   by the Consul lease, with what to do;
//! * `litefs run` (`-if-candidate`, `-promote`, `-with-halt-lock-on` on a
//!   LiteFS mount, the exit code);
//! * `/info` and `/events` lines carry every field LiteFS's do, with the
//!   same JSON types.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

mod common;

use common::consul::ConsulServer;
use common::litefs_go::{
    cluster_id, events, http_get, litefs_go, read_trim, rs, run, sql, start, static_node, wait_pos,
    WAIT,
};
use common::node::{Config, Node};

// ---------------------------------------------------------------- /info, /events

/// The JSON type of every field, as `a.b: type` lines.
fn shape(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_json::Value::Object(m) = v {
        for (k, v) in m {
            let path = format!("{prefix}{k}");
            let ty = match v {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "bool",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Array(_) => "array",
                serde_json::Value::Object(_) => "object",
            };
            out.push(format!("{path}: {ty}"));
            shape(v, &format!("{path}."), out);
        }
    }
}

fn missing_fields(litefs: &str, ours: &str) -> Vec<String> {
    let (mut want, mut got) = (Vec::new(), Vec::new());
    shape(&serde_json::from_str(litefs).unwrap(), "", &mut want);
    shape(&serde_json::from_str(ours).unwrap(), "", &mut got);
    want.retain(|f| !got.contains(f));
    want
}

/// `/info`, then `/events`' init line and a tx line, of a primary.
fn api_of(n: &Node) -> (String, String, String) {
    let (status, info) = http_get(&n.url(), "/info");
    assert_eq!(status, 200, "{info}");
    let lines = events(&n.url(), 2, || sql(n, "t.db", "INSERT INTO t VALUES (2)"));
    (info, lines[0].clone(), lines[1].clone())
}

#[test]
fn info_and_events_carry_every_litefs_field_with_its_type() {
    let mut go = static_node(1, &litefs_go(), true, None);
    let mut ours = static_node(2, &rs(), true, None);
    start(&mut go);
    start(&mut ours);
    for n in [&go, &ours] {
        sql(
            n,
            "t.db",
            "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)",
        );
    }
    let (go_info, go_init, go_tx) = api_of(&go);
    let (info, init, tx) = api_of(&ours);
    for (what, theirs, mine) in [
        ("/info", &go_info, &info),
        ("init event", &go_init, &init),
        ("tx event", &go_tx, &tx),
    ] {
        let missing = missing_fields(theirs, mine);
        assert!(
            missing.is_empty(),
            "{what}: fields LiteFS has and litefs-rs lacks: {missing:?}\nLiteFS: {theirs}\nours: {mine}"
        );
    }
    // The values that can be compared across two clusters.
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["clusterID"].as_str(), cluster_id(&ours).as_deref());
    assert_eq!(v["isPrimary"], true);
    let t: serde_json::Value = serde_json::from_str(&tx).unwrap();
    assert_eq!(t["db"], "t.db");
    assert_eq!(t["data"]["txID"], "0000000000000003", "{tx}");
    let ts = t["data"]["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() >= 20, "{ts}");
}

// ---------------------------------------------------------------- cluster ID

#[test]
fn cluster_id_is_created_adopted_and_keeps_other_clusters_out() {
    let mut p = static_node(1, &rs(), true, None);
    start(&mut p);
    sql(
        &p,
        "t.db",
        "PRAGMA journal_mode = wal; CREATE TABLE t (v INTEGER)",
    );
    let id = cluster_id(&p).expect("a primary creates its cluster ID");
    assert!(id.len() == 20 && id.starts_with("LFSC"), "{id}");

    // Replicas of either kind adopt it from the stream.
    let mut go = static_node(2, &litefs_go(), false, Some(&p.url()));
    let mut r = static_node(3, &rs(), false, Some(&p.url()));
    start(&mut go);
    r.start();
    sql(&p, "t.db", "INSERT INTO t VALUES (1)");
    wait_pos(&p, &mut go, "t.db");
    wait_pos(&p, &mut r, "t.db");
    assert_eq!(cluster_id(&go).as_deref(), Some(id.as_str()));
    assert_eq!(cluster_id(&r).as_deref(), Some(id.as_str()));

    // Nodes of another cluster: each refuses the stream and stays put.
    for n in [&mut go, &mut r] {
        n.stop();
        std::fs::write(n.data().join("clusterid"), "LFSC00000000000000AB\n").unwrap();
    }
    go.start();
    r.start();
    sql(&p, "t.db", "INSERT INTO t VALUES (2)");
    let target = p.pos("t.db").unwrap();
    let (lp, lr) = (go.log_path(), r.log_path());
    go.wait_until("LiteFS to refuse litefs-rs's stream", || {
        std::fs::read_to_string(&lp)
            .unwrap()
            .contains("cannot stream from primary with a different cluster id")
    });
    r.wait_until("litefs-rs to refuse the stream", || {
        std::fs::read_to_string(&lr)
            .unwrap()
            .contains("cannot stream from primary with a different cluster id")
    });
    assert!(r.log().contains("remove"), "says what to do:\n{}", r.log());
    for n in [&go, &r] {
        assert_ne!(n.pos("t.db").as_deref(), Some(target.as_str()));
        assert_eq!(cluster_id(n).as_deref(), Some("LFSC00000000000000AB"));
    }

    // A malformed file stops litefs-rs at startup, naming it, as LiteFS.
    r.stop();
    std::fs::write(r.data().join("clusterid"), "nonsense\n").unwrap();
    r.spawn(&[]);
    assert!(!r.wait_exit().success());
    assert!(r.log().contains("invalid cluster ID"), "{}", r.log());
}

#[test]
fn consul_lease_keeps_a_node_of_another_cluster_out() {
    let consul = ConsulServer::start();
    let lease = |host: u8, n: &Node| {
        format!(
            "type: consul, candidate: true, hostname: \"node-{host}\", advertise-url: \"{}\", \
             reconnect-delay: \"100ms\", consul: {{ url: \"http://{}\", key: \"litefs/cid\", lock-delay: \"1s\" }}",
            n.url(),
            consul.addr
        )
    };
    let mut a = Node::on_host(1, WAIT);
    a.config(Config::new(true).lease(&lease(1, &a)).skip_sync());
    a.start();
    a.wait_until("node-1 to take the lease", || {
        consul.get("litefs/cid/clusterid").is_some()
    });
    assert_eq!(consul.get("litefs/cid/clusterid"), cluster_id(&a));

    let mut b = Node::on_host(2, WAIT);
    b.config(Config::new(true).lease(&lease(2, &b)).skip_sync());
    std::fs::create_dir_all(b.data()).unwrap();
    std::fs::write(b.data().join("clusterid"), "LFSC00000000000000CD\n").unwrap();
    b.spawn(&[]);
    let st = b.wait_exit();
    assert_eq!(st.code(), Some(1), "{}", b.log());
    let log = b.log();
    assert!(
        log.contains("lease already initialized with different ID")
            && log.contains("remove")
            && log.contains("lease.consul.key"),
        "{log}"
    );
}

// ---------------------------------------------------------------- litefs run

#[test]
fn litefs_run_as_litefs_has_it() {
    let mut p = static_node(1, &rs(), true, None);
    start(&mut p);
    let mut r = static_node(2, &rs(), false, Some(&p.url()));
    r.start();
    sql(&p, "t.db", "CREATE TABLE t (v INTEGER)");
    wait_pos(&p, &mut r, "t.db");
    let mark = p.file("ran");

    let out = run(&[
        "-url",
        &r.url(),
        "-if-candidate",
        "--",
        "touch",
        mark.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("node is not a candidate, skipping execution"));
    assert!(!mark.exists());
    let out = run(&[
        "-url",
        &p.url(),
        "-if-candidate",
        "--",
        "touch",
        mark.to_str().unwrap(),
    ]);
    assert!(out.status.success() && mark.exists(), "{out:?}");
    let out = run(&["--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));

    let db = r.db("t.db");
    let out = run(&[
        "-promote",
        "-with-halt-lock-on",
        db.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot specify both"),
        "{out:?}"
    );
    let out = run(&["-with-halt-lock-on", db.to_str().unwrap(), "--", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lock file not available"),
        "{out:?}"
    );

    // On a LiteFS replica, the halt lock lets the command write there; the
    // write reaches the LiteFS primary.
    let mut gp = static_node(3, &litefs_go(), true, None);
    start(&mut gp);
    sql(&gp, "h.db", "CREATE TABLE t (v INTEGER)");
    let mut gr = static_node(4, &litefs_go(), false, Some(&gp.url()));
    start(&mut gr);
    wait_pos(&gp, &mut gr, "h.db");
    let hdb = gr.db("h.db");
    let out = run(&[
        "-with-halt-lock-on",
        hdb.to_str().unwrap(),
        "--",
        "sqlite3",
        hdb.to_str().unwrap(),
        "INSERT INTO t VALUES (42)",
    ]);
    assert!(out.status.success(), "{out:?}\n{}\n{}", gr.log(), gp.log());
    let c = Connection::open(gp.db("h.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM t WHERE v = 42", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

// ---------------------------------------------------------------- consul migration

/// One row per transaction into `t.db` of whichever node `target` names,
/// ids counting up; `acked` holds those whose commit returned. Paused
/// (connections closed) while the primary moves.
struct Writer {
    target: Arc<Mutex<Option<std::path::PathBuf>>>,
    idle: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(db: std::path::PathBuf) -> Writer {
        let target = Arc::new(Mutex::new(Some(db)));
        let (idle, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (t, i, s, a) = (target.clone(), idle.clone(), stop.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let mut conn: Option<(std::path::PathBuf, Connection)> = None;
            let mut id = 1i64;
            while !s.load(Ordering::SeqCst) {
                let want = t.lock().unwrap().clone();
                let Some(want) = want else {
                    conn = None;
                    i.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                i.store(false, Ordering::SeqCst);
                if conn.as_ref().is_none_or(|(p, _)| *p != want) {
                    let c = Connection::open(&want).unwrap();
                    c.busy_timeout(Duration::from_secs(10)).unwrap();
                    conn = Some((want.clone(), c));
                }
                let c = &conn.as_ref().unwrap().1;
                c.execute(
                    "INSERT INTO t (id, v) VALUES (?1, hex(randomblob(100)))",
                    [id],
                )
                .unwrap_or_else(|e| panic!("write {id} to {}: {e}", want.display()));
                a.lock().unwrap().push(id);
                id += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Writer {
            target,
            idle,
            stop,
            acked,
            handle: Some(handle),
        }
    }

    fn pause(&self) {
        *self.target.lock().unwrap() = None;
        let deadline = Instant::now() + WAIT;
        while !self.idle.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "writer did not pause");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn resume(&self, db: std::path::PathBuf) {
        *self.target.lock().unwrap() = Some(db);
    }

    fn let_write(&self, n: usize) {
        let want = self.acked.lock().unwrap().len() + n;
        let deadline = Instant::now() + WAIT;
        while self.acked.lock().unwrap().len() < want {
            assert!(Instant::now() < deadline, "the writer is stuck");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) -> Vec<i64> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().expect("writer failed");
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

fn consul_node(host: u8, bin: &Path, candidate: bool, consul: &ConsulServer) -> Node {
    let mut n = Node::on_host(host, WAIT);
    n.set_bin(bin);
    let c = Config::new(candidate).lease(&format!(
        "type: consul, candidate: {candidate}, hostname: \"node-{host}\", advertise-url: \"{}\", \
         reconnect-delay: \"100ms\", consul: {{ url: \"http://{}\", key: \"litefs/mixed\", lock-delay: \"1s\" }}",
        n.url(),
        consul.addr
    ));
    // Without skip-sync a LiteFS candidate says it is ready only once it
    // takes writes (or has caught up), which `start` waits for.
    n.config(if candidate { c } else { c.skip_sync() });
    n
}

fn holder(consul: &ConsulServer) -> String {
    let v = consul.get("litefs/mixed").unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&v)
        .ok()
        .and_then(|v| v["hostname"].as_str().map(String::from))
        .unwrap_or_default()
}

fn wait_holder(consul: &ConsulServer, n: &mut Node, host: &str) {
    n.wait_until(&format!("{host} to hold the consul key"), || {
        holder(consul) == host
    });
}

#[test]
fn consul_rolling_migration_from_litefs_shares_one_key() {
    let consul = ConsulServer::start();
    let go = litefs_go();
    // node-2 is no candidate: when node-1 goes, the litefs-rs node-3 must
    // take the lease and the LiteFS node-2 follow it.
    let mut n1 = consul_node(1, &go, true, &consul);
    let mut n2 = consul_node(2, &go, false, &consul);
    let mut n3 = consul_node(3, &go, true, &consul);
    start(&mut n1);
    wait_holder(&consul, &mut n1, "node-1");
    sql(
        &n1,
        "t.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
    );
    start(&mut n2);
    start(&mut n3);
    wait_pos(&n1, &mut n2, "t.db");
    wait_pos(&n1, &mut n3, "t.db");
    let cid = consul
        .get("litefs/mixed/clusterid")
        .expect("LiteFS sets the cluster ID");

    let w = Writer::start(n1.db("t.db"));
    w.let_write(100);

    // litefs-rs replica of a LiteFS primary it found through LiteFS's value.
    n3.stop();
    n3.set_bin(&rs());
    n3.start();
    w.let_write(100);
    wait_pos_passed(&n1, &mut n3);

    // The LiteFS primary goes: litefs-rs takes the key, LiteFS follows it.
    w.pause();
    n1.stop();
    wait_holder(&consul, &mut n3, "node-3");
    let dot_primary = n3.db(".primary");
    n3.wait_until("node-3 to be primary", || !dot_primary.exists());
    w.resume(n3.db("t.db"));
    w.let_write(100);
    wait_pos_passed(&n3, &mut n2);

    // The rest swap binaries; node-1 comes back as a replica.
    n1.set_bin(&rs());
    n1.start();
    n2.stop();
    n2.set_bin(&rs());
    n2.start();
    w.let_write(100);

    // And `litefs run -promote` hands the lease back to node-1.
    w.pause();
    wait_pos(&n3, &mut n1, "t.db");
    let out = run(&["-url", &n1.url(), "-promote", "--", "true"]);
    assert!(out.status.success(), "{out:?}\n{}", n1.log());
    wait_holder(&consul, &mut n1, "node-1");
    w.resume(n1.db("t.db"));
    w.let_write(50);
    let acked = w.finish();

    for n in [&mut n2, &mut n3] {
        wait_pos(&n1, n, "t.db");
    }
    let rows = |n: &Node| -> Vec<i64> {
        let c = Connection::open(n.db("t.db")).unwrap();
        let mut st = c.prepare("SELECT id FROM t ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let want = rows(&n1);
    for id in &acked {
        assert!(
            want.binary_search(id).is_ok(),
            "acknowledged write {id} lost"
        );
    }
    assert_eq!(rows(&n2), want);
    assert_eq!(rows(&n3), want);
    assert_eq!(
        consul.get("litefs/mixed/clusterid").as_deref(),
        Some(cid.as_str())
    );
    for n in [&n1, &n2, &n3] {
        assert_eq!(cluster_id(n).as_deref(), Some(cid.as_str()));
    }
}

/// With the writer running on `p`: waits until `r` has reached `p`'s TXID
/// of now.
fn wait_pos_passed(p: &Node, r: &mut Node) {
    let txid = |s: &str| u64::from_str_radix(s.split('/').next().unwrap_or(""), 16).unwrap_or(0);
    let want = txid(&p.pos("t.db").unwrap());
    let log = p.log();
    let path = r.db("t.db-pos");
    r.wait_until(&format!("TXID {want:x}; primary:\n{log}"), || {
        read_trim(&path).is_some_and(|t| txid(&t) >= want)
    });
}
