//! Clusters of `litefs mount` processes on 127.0.0.x with real mounts and
//! a static lease: one primary (candidate) and replicas following it.
//!
//! * a random multi-writer workload in every journal mode replicates to
//!   two replicas: same `-pos`, same rows, `integrity_check` ok;
//! * a reader on a replica never sees a broken invariant while the primary
//!   writes (and does see many different transactions);
//! * replica kill -9 / restart, a replica started empty, a primary restart
//!   (clean and kill -9): positions survive and replicas keep following;
//! * a replica behind the primary's retention gets a snapshot;
//! * a peer sending garbage or a truncated LTX frame is dropped with a clear
//!   log line and the replica's data is untouched;
//! * a write on a replica fails with "attempt to write a readonly database".

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

mod common;

use common::node::{Config, Node};
use common::sqlite3;
const WAIT: Duration = Duration::from_secs(20);
const PRIMARY_HOST: &str = "node-a";

// ---------------------------------------------------------------- nodes

impl Node {
    fn txid(&self, db: &str) -> u64 {
        txid_of(&self.pos(db).unwrap_or_default())
    }

    /// The raw database file in the data directory.
    fn raw_db(&self, db: &str) -> Vec<u8> {
        fs::read(self.data().join("dbs").join(db).join("database")).unwrap()
    }
}

/// A replica following the primary at `url`.
fn replica_of(url: &str) -> Config {
    Config::new(false)
        .primary(PRIMARY_HOST, url)
        .reconnect_delay("200ms")
        .skip_sync()
}

fn txid_of(pos: &str) -> u64 {
    pos.split('/')
        .next()
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .unwrap_or(0)
}

/// A primary on 127.0.0.1 and `n` replicas on 127.0.0.2.. following it.
/// `primary_data`: more fields of the primary's `data:` map.
fn cluster(n: u8, primary_data: &str) -> (Node, Vec<Node>) {
    let mut p = Node::on_host(1, WAIT);
    p.config(
        Config::new(true)
            .primary(PRIMARY_HOST, &p.url())
            .data(primary_data),
    );
    p.start();
    let replicas = (0..n)
        .map(|i| {
            let mut r = Node::on_host(2 + i, WAIT);
            r.config(replica_of(&p.url()));
            r.start();
            r
        })
        .collect();
    (p, replicas)
}

/// Waits until `r`'s `-pos` for `db` equals the primary's (TXID and
/// checksum); returns it.
fn wait_caught_up(p: &Node, r: &mut Node, db: &str) -> String {
    let want = p.pos(db).expect("primary has the database");
    let path = r.mnt().join(format!("{db}-pos"));
    r.wait_until(&format!("{db}-pos to reach {want}"), || {
        fs::read_to_string(&path).is_ok_and(|s| s.trim() == want)
    });
    want
}

// ---------------------------------------------------------------- sqlite helpers

fn open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// Schema plus every row of every table in rowid order, as text.
fn dump(path: &Path) -> Vec<String> {
    let c = open(path);
    let mut out = Vec::new();
    let tables: Vec<(String, String)> = c
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (name, sql) in tables {
        out.push(sql);
        let mut st = c
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
            .unwrap();
        let cols = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let vals: Vec<String> = (0..cols)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            out.push(vals.join("|"));
        }
    }
    out
}

fn integrity(path: &Path) -> String {
    open(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// xorshift64*: a small deterministic generator per writer thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Creates `name` in `mode` with table t(id, v, b).
fn create_db(p: &Node, name: &str, mode: &str) {
    let c = open(&p.db(name));
    let got: String = c
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .unwrap();
    assert_eq!(got.to_uppercase(), mode);
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, b BLOB)")
        .unwrap();
}

/// `n` random transactions (insert / update / delete, blobs of up to
/// three pages) on `path`.
fn random_writes(path: &Path, seed: u64, n: usize) {
    let mut c = open(path);
    let mut rng = Rng(seed | 1);
    for _ in 0..n {
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        for _ in 0..1 + rng.below(3) {
            let id = rng.below(200) as i64;
            match rng.below(10) {
                0..=4 => {
                    let len = rng.below(10_000) as usize;
                    let blob = vec![(rng.next() & 0xff) as u8; len];
                    tx.execute(
                        "INSERT OR REPLACE INTO t (id, v, b) VALUES (?1, ?2, ?3)",
                        rusqlite::params![id, rng.next() as i64, blob],
                    )
                    .unwrap();
                }
                5..=7 => {
                    tx.execute(
                        "UPDATE t SET v = v + 1 WHERE id >= ?1 AND id < ?1 + 20",
                        [id],
                    )
                    .unwrap();
                }
                _ => {
                    tx.execute("DELETE FROM t WHERE id >= ?1 AND id < ?1 + 5", [id])
                        .unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
}

const MODES: [&str; 4] = ["DELETE", "TRUNCATE", "PERSIST", "WAL"];

fn mode_db(mode: &str) -> String {
    format!("{}.db", mode.to_lowercase())
}

/// Every replica has the primary's position, rows and a sound database.
fn assert_replicated(p: &Node, replicas: &mut [Node], db: &str) {
    let want = dump(&p.db(db));
    for r in replicas.iter_mut() {
        let pos = wait_caught_up(p, r, db);
        assert_eq!(dump(&r.db(db)), want, "{db} differs on a replica at {pos}");
        assert_eq!(integrity(&r.db(db)), "ok", "{db} on a replica");
    }
}

// ---------------------------------------------------------------- tests

/// Two or three writers per database, one database per journal mode, all
/// concurrently on the primary; both replicas end at the same position
/// with the same rows, and pass integrity_check.
#[test]
fn random_workload_in_every_journal_mode_replicates() {
    let (p, mut replicas) = cluster(2, "");
    for mode in MODES {
        create_db(&p, &mode_db(mode), mode);
    }
    std::thread::scope(|s| {
        for (i, mode) in MODES.iter().enumerate() {
            let writers = if i % 2 == 0 { 2 } else { 3 };
            for w in 0..writers {
                let path = p.db(&mode_db(mode));
                s.spawn(move || random_writes(&path, (i * 10 + w + 1) as u64 * 7919, 40));
            }
        }
    });
    for mode in MODES {
        let db = mode_db(mode);
        assert_eq!(integrity(&p.db(&db)), "ok", "{db} on the primary");
        // A transaction whose statements change nothing writes no page and
        // gets no TXID; most of the 80+ do.
        assert!(p.txid(&db) > 40, "{db}: {:?}", p.pos(&db));
        assert_replicated(&p, &mut replicas, &db);
    }
}

/// Ten accounts always summing to 1000; the primary moves money between
/// them while a reader on a replica checks the sum in every read
/// transaction. It must never see a broken sum, and must have read at
/// many different positions (it really read during replication).
#[test]
fn replica_reader_never_sees_a_partial_transaction() {
    let (p, mut replicas) = cluster(1, "");
    let r = &mut replicas[0];
    let dbs = ["accounts-delete.db", "accounts-wal.db"];
    for (db, mode) in dbs.iter().zip(["DELETE", "WAL"]) {
        let c = open(&p.db(db));
        c.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))
            .unwrap();
        c.execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9)
             INSERT INTO accounts SELECT i, 100 FROM n;",
        )
        .unwrap();
        wait_caught_up(&p, r, db);
    }

    let done = AtomicBool::new(false);
    let results = std::thread::scope(|s| {
        let writers: Vec<_> = dbs
            .iter()
            .enumerate()
            .map(|(i, db)| {
                let path = p.db(db);
                s.spawn(move || {
                    let mut c = open(&path);
                    let mut rng = Rng(0x9e37_79b9 + i as u64);
                    for _ in 0..300 {
                        let (a, b) = (rng.below(10), rng.below(10));
                        let amt = rng.below(50) as i64;
                        let tx = c
                            .transaction_with_behavior(TransactionBehavior::Immediate)
                            .unwrap();
                        tx.execute(
                            "UPDATE accounts SET balance = balance - ?2 WHERE id = ?1",
                            rusqlite::params![a, amt],
                        )
                        .unwrap();
                        // Spread the two halves in time: a reader that could
                        // see half a transaction gets every chance to.
                        std::thread::sleep(Duration::from_micros(200));
                        tx.execute(
                            "UPDATE accounts SET balance = balance + ?2 WHERE id = ?1",
                            rusqlite::params![b, amt],
                        )
                        .unwrap();
                        tx.commit().unwrap();
                    }
                })
            })
            .collect();
        let readers: Vec<_> = dbs
            .iter()
            .map(|db| {
                let path = r.db(db);
                let pos_path = r.mnt().join(format!("{db}-pos"));
                let done = &done;
                s.spawn(move || {
                    let mut c = open(&path);
                    let mut txids = BTreeSet::new();
                    let mut reads = 0u64;
                    let mut violations = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        let tx = c.transaction().unwrap();
                        let (sum, n): (i64, i64) = tx
                            .query_row("SELECT sum(balance), count(*) FROM accounts", [], |r| {
                                Ok((r.get(0)?, r.get(1)?))
                            })
                            .unwrap();
                        let txid = txid_of(&fs::read_to_string(&pos_path).unwrap());
                        tx.commit().unwrap();
                        reads += 1;
                        txids.insert(txid);
                        if sum != 1000 || n != 10 {
                            violations.push((txid, sum, n));
                        }
                    }
                    (reads, txids.len(), violations)
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        // Let the replica finish applying, then stop the readers.
        for db in dbs {
            wait_caught_up(&p, r, db);
        }
        done.store(true, Ordering::Relaxed);
        readers
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (db, (reads, distinct, violations)) in dbs.iter().zip(results) {
        assert!(
            violations.is_empty(),
            "{db}: broken invariant seen {violations:?}"
        );
        assert!(
            distinct >= 10,
            "{db}: the reader saw only {distinct} positions in {reads} reads"
        );
        assert_eq!(dump(&r.db(db)), dump(&p.db(db)));
    }
}

/// kill -9 of a replica while the primary writes, restart on the same
/// data: it catches up. A replica started empty gets a snapshot. The
/// primary restarted (clean, then kill -9) keeps its position and the
/// replicas reconnect and keep following.
#[test]
fn restarts_keep_positions_and_replicas_follow() {
    let db = "r.db";
    let (mut p, mut replicas) = cluster(1, "");
    create_db(&p, db, "WAL");
    random_writes(&p.db(db), 11, 30);
    wait_caught_up(&p, &mut replicas[0], db);

    // Problems that do not stop the rest of the test; asserted at the end.
    let mut problems = Vec::new();

    // Replica kill -9 in the middle of a stream of writes.
    std::thread::scope(|s| {
        let path = p.db(db);
        let w = s.spawn(move || random_writes(&path, 12, 60));
        std::thread::sleep(Duration::from_millis(100));
        if let Err(e) = replicas[0].kill9() {
            problems.push(format!("replica kill -9: {e}"));
        }
        w.join().unwrap();
    });
    let before = replicas[0].txid(db);
    assert!(
        before < p.txid(db),
        "the replica was down; it cannot be at the primary's TXID"
    );
    replicas[0].start();
    assert_replicated(&p, &mut replicas, db);

    // A new, empty replica: the whole database as a snapshot.
    let mut empty = Node::on_host(4, WAIT);
    empty.config(replica_of(&p.url()));
    empty.start();
    replicas.push(empty);
    assert_replicated(&p, &mut replicas, db);
    assert!(p.log().contains("sending snapshot"), "{}", p.log());

    // Primary: clean restart, then kill -9; the position survives both.
    for crash in [false, true] {
        let pos = p.pos(db).unwrap();
        if crash {
            if let Err(e) = p.kill9() {
                problems.push(format!("primary kill -9: {e}"));
            }
        } else {
            p.stop();
        }
        p.start();
        assert_eq!(
            p.pos(db).unwrap(),
            pos,
            "primary position after restart (crash: {crash})"
        );
        assert_eq!(integrity(&p.db(db)), "ok");
        random_writes(&p.db(db), 13 + crash as u64, 20);
        assert!(
            p.txid(db) > txid_of(&pos),
            "the primary did not commit after restart"
        );
        assert_replicated(&p, &mut replicas, db);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A replica whose next transaction the primary no longer has (deleted
/// by retention) is sent a snapshot and catches up.
#[test]
fn replica_behind_retention_gets_a_snapshot() {
    let db = "ret.db";
    let (p, mut replicas) = cluster(1, "retention: \"1s\", retention-monitor-interval: \"1s\"");
    create_db(&p, db, "DELETE");
    random_writes(&p.db(db), 21, 10);
    wait_caught_up(&p, &mut replicas[0], db);
    replicas[0].stop();
    let stopped_at = replicas[0].txid(db);
    random_writes(&p.db(db), 22, 50);

    // Wait (bounded) until retention has removed the replica's next file.
    let ltx_dir = p.data().join("dbs").join(db).join("ltx");
    let next = format!("{:016x}-", stopped_at + 1);
    let deadline = Instant::now() + WAIT;
    while fs::read_dir(&ltx_dir)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(&next))
    {
        assert!(Instant::now() < deadline, "retention never removed {next}*");
        std::thread::sleep(Duration::from_millis(100));
    }
    let snapshots_before = p.log().matches("sending snapshot").count();
    replicas[0].start();
    assert_replicated(&p, &mut replicas, db);
    assert!(
        p.log().matches("sending snapshot").count() > snapshots_before,
        "no snapshot was sent:\n{}",
        p.log()
    );
    assert!(replicas[0].is_running());
}

/// A fake primary (HTTP/2) that answers POST /stream with 200 and, per
/// connection, the body `mode` picks; any other request (the replica's
/// `GET /pos` history check) gets `pos`, as a primary that agrees would;
/// each answer names the real primary's `cluster` ID, without which the
/// replica would not follow it.
fn fake_primary(
    addr: SocketAddr,
    mode: Arc<AtomicUsize>,
    bodies: Vec<Vec<u8>>,
    pos: String,
    cluster: String,
) {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bodies = Arc::new(bodies);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (mode, bodies, pos) = (mode.clone(), bodies.clone(), pos.clone());
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = if req.uri().path() == "/stream" {
                        bodies[mode.load(Ordering::SeqCst)].clone()
                    } else {
                        format!("{pos}\n").into_bytes()
                    };
                    let resp = Response::builder()
                        .header("Litefs-Cluster-Id", cluster.clone())
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
}

/// A peer that sends garbage, a truncated LTX frame, or a well-framed LTX
/// file that is not LTX, is disconnected with a log line naming the
/// problem; the replica stays up with its position and data unchanged,
/// and follows the real primary again once it is back.
#[test]
fn garbage_from_the_primary_is_refused_and_changes_nothing() {
    use litefs::replication::frame::{write_chunked, Frame};

    let db = "g.db";
    let (mut p, mut replicas) = cluster(1, "");
    create_db(&p, db, "DELETE");
    random_writes(&p.db(db), 31, 20);
    let r = &mut replicas[0];
    wait_caught_up(&p, r, db);
    p.stop();
    let (pos, rows, raw) = (r.pos(db).unwrap(), dump(&r.db(db)), r.raw_db(db));

    let mut truncated = Vec::new();
    Frame::Ltx {
        size: 0,
        name: db.into(),
    }
    .write_to(&mut truncated)
    .unwrap();
    truncated.extend_from_slice(&[0x10, 0x00]); // a 4096-byte chunk...
    truncated.extend_from_slice(&[0xAB; 100]); // ...of which 100 arrive
    let mut not_ltx = Vec::new();
    Frame::Ltx {
        size: 0,
        name: db.into(),
    }
    .write_to(&mut not_ltx)
    .unwrap();
    write_chunked(&mut not_ltx, &[0x5A; 5000]).unwrap();
    let cases: [(&[u8], &str); 3] = [
        (
            b"\x00\x00\x00\x63this is not a litefs stream",
            "unknown stream frame type 99",
        ),
        (&truncated, "stream ended in the middle of a frame"),
        (&not_ltx, "applying transaction"),
    ];

    let mode = Arc::new(AtomicUsize::new(0));
    {
        let (addr, mode, pos) = (p.addr(), mode.clone(), pos.clone());
        let bodies = cases.iter().map(|(b, _)| b.to_vec()).collect();
        let cluster = fs::read_to_string(p.data().join("clusterid")).unwrap();
        let cluster = cluster.trim().to_string();
        std::thread::spawn(move || fake_primary(addr, mode, bodies, pos, cluster));
    }
    for (i, (_, want)) in cases.iter().enumerate() {
        mode.store(i, Ordering::SeqCst);
        let log = r.log_path();
        r.wait_until(&format!("a log line with {want:?}"), || {
            fs::read_to_string(&log).unwrap().contains(want)
        });
        assert!(r.is_running());
        assert_eq!(r.pos(db).unwrap(), pos, "after {want:?}");
        assert_eq!(r.raw_db(db), raw, "after {want:?}");
        assert_eq!(dump(&r.db(db)), rows, "after {want:?}");
    }
    let line = r
        .log()
        .lines()
        .find(|l| l.contains("unknown stream frame type"))
        .unwrap()
        .to_string();
    assert!(line.contains("WARN") && line.contains(&p.url()), "{line}");
    for l in r.log().lines().filter(|l| l.contains("replication stream")) {
        eprintln!("replica log: {l}");
    }
    assert_eq!(integrity(&r.db(db)), "ok");
}

/// A write on a replica fails as SQLite's read-only error and changes
/// neither the position nor the rows, in every journal mode.
#[test]
fn write_on_a_replica_is_refused() {
    let (p, mut replicas) = cluster(1, "");
    let r = &mut replicas[0];
    for mode in MODES {
        let db = mode_db(mode);
        create_db(&p, &db, mode);
        random_writes(&p.db(&db), 41, 5);
        let pos = wait_caught_up(&p, r, &db);
        let rows = dump(&r.db(&db));
        let out = sqlite3(&r.db(&db), "INSERT INTO t (id, v) VALUES (1000, 1);");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{db}: the write succeeded on a replica"
        );
        assert!(
            err.contains("attempt to write a readonly database"),
            "{db}: {err}"
        );
        assert_eq!(r.pos(&db).unwrap(), pos, "{db}");
        assert_eq!(dump(&r.db(&db)), rows, "{db}");
        assert_eq!(p.pos(&db).unwrap(), pos, "{db}: the primary changed");
    }
}
