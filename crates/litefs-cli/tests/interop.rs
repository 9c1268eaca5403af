//! litefs-rs against the real LiteFS (v0.5.14, built from source by
//! ../shared/litefs-go/build.sh into target/litefs-go/litefs, or the binary
//! named by `LITEFS_GO`), static lease, DELETE and WAL databases side by
//! side in every cluster:
//!
//! * a LiteFS primary streams to a litefs-rs replica and a litefs-rs
//!   primary to a LiteFS replica: snapshot of a new replica, live
//!   transactions, catch-up from LTX files after a replica restart (no new
//!   snapshot), a primary restart, a replica kill -9 while the primary
//!   writes; positions, rows and integrity equal;
//! * a 3-node LiteFS cluster migrates to litefs-rs one node at a time on
//!   the same data dirs with a writer running: no acknowledged write lost,
//!   no node re-snapshotted, every node equal at the end;
//! * LiteFS opens data dirs written by litefs-rs (the downgrade) at the
//!   same positions, beside a `diverged/`, and keeps replicating.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

mod common;

use common::detach;
use common::litefs_go::{litefs_go, rs};
use common::node::{Config, Node};

const WAIT: Duration = Duration::from_secs(30);
const PRIMARY_HOST: &str = "node-a";
/// One database per journal mode the issue asks for, in every cluster.
const DBS: [(&str, &str); 2] = [("delete.db", "delete"), ("wal.db", "wal")];

// ---------------------------------------------------------------- nodes

fn primary_on(host: u8, bin: &Path) -> Node {
    let mut p = Node::on_host(host, WAIT);
    p.set_bin(bin);
    p.config(Config::new(true).primary(PRIMARY_HOST, &p.url()));
    p
}

fn replica_on(host: u8, bin: &Path, primary_url: &str) -> Node {
    let mut r = Node::on_host(host, WAIT);
    r.set_bin(bin);
    r.config(
        Config::new(false)
            .primary(PRIMARY_HOST, primary_url)
            .reconnect_delay("200ms")
            .skip_sync(),
    );
    r
}

/// Starts a primary and waits until it takes writes: LiteFS mounts before
/// it has become primary, litefs-rs once it is.
fn start_primary(p: &mut Node) {
    common::litefs_go::start(p);
}

/// Snapshots a primary has sent, from its log: LiteFS says `msg="writing
/// snapshot \"DB\" @ TXID"`, litefs-rs "sending snapshot"; the log spans
/// every binary the node has run.
fn snapshots_sent(p: &Node) -> usize {
    p.log()
        .lines()
        .filter(|l| l.contains("msg=\"writing snapshot") || l.contains("sending snapshot"))
        .count()
}

/// Waits until `r`'s `-pos` of every database equals `p`'s; a timeout
/// reports both logs (a stuck stream may be either side's doing).
fn wait_caught_up(p: &Node, r: &mut Node) {
    wait_replicated(p, r, |got, want| got == want);
}

/// With a writer running on `p`: waits until `r` has reached, or passed,
/// the TXID of every database `p` has now.
fn wait_passed(p: &Node, r: &mut Node) {
    wait_replicated(p, r, |got, want| txid(got) >= txid(want));
}

fn txid(pos: &str) -> u64 {
    u64::from_str_radix(pos.split('/').next().unwrap_or(""), 16).unwrap_or(0)
}

fn wait_replicated(p: &Node, r: &mut Node, done: impl Fn(&str, &str) -> bool) {
    for (db, _) in DBS {
        let want = p.pos(db).expect("primary has the database");
        let deadline = Instant::now() + WAIT;
        while !r.pos(db).is_some_and(|got| done(&got, &want)) {
            assert!(
                Instant::now() < deadline && r.is_running(),
                "{} did not reach {db} {want} (at {:?}):\n{}\n--- primary {}:\n{}",
                r.url(),
                r.pos(db),
                r.log(),
                p.url(),
                p.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Same position (TXID and checksum), same rows, integrity ok, on every node.
fn assert_equal(p: &Node, replicas: &[&Node]) {
    for (db, _) in DBS {
        let want_pos = p.pos(db).unwrap();
        let want = dump(&p.db(db));
        for r in replicas {
            assert_eq!(r.pos(db).as_deref(), Some(want_pos.as_str()), "{db} pos");
            assert_eq!(dump(&r.db(db)), want, "{db} rows on {}", r.url());
            assert_eq!(integrity(&r.db(db)), "ok", "{db} on {}", r.url());
        }
        assert_eq!(integrity(&p.db(db)), "ok", "{db} on the primary");
    }
}

// ---------------------------------------------------------------- sqlite

fn open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn create_dbs(p: &Node) {
    for (db, mode) in DBS {
        let c = open(&p.db(db));
        let got: String = c
            .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(got, mode);
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
    }
}

/// `n` transactions on every database, each a few rows large enough to
/// touch several pages, plus an update and a delete of earlier rows.
fn write(p: &Node, n: usize) {
    for (db, _) in DBS {
        let mut c = open(&p.db(db));
        for _ in 0..n {
            let tx = c.transaction().unwrap();
            for _ in 0..4 {
                tx.execute("INSERT INTO t (v) VALUES (hex(randomblob(300)))", [])
                    .unwrap();
            }
            tx.execute("UPDATE t SET v = 'u' || v WHERE id % 7 = 3", [])
                .unwrap();
            tx.execute("DELETE FROM t WHERE id % 11 = 5", []).unwrap();
            tx.commit().unwrap();
        }
    }
}

fn dump(path: &Path) -> Vec<String> {
    let c = open(path);
    let mut st = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    let rows = st
        .query_map([], |r| {
            Ok(format!(
                "{}|{}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn integrity(path: &Path) -> String {
    open(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

// ---------------------------------------------------------------- streaming

/// A `primary` binary streaming to a `replica` binary: snapshot of a new
/// replica, live transactions, LTX catch-up after a replica restart, a
/// primary restart, a replica killed mid-stream.
fn stream(primary: &Path, replica: &Path) {
    let mut p = primary_on(1, primary);
    start_primary(&mut p);
    create_dbs(&p);
    write(&p, 15);

    let mut r = replica_on(2, replica, &p.url());
    r.start();
    wait_caught_up(&p, &mut r);
    assert_equal(&p, &[&r]);
    assert_eq!(
        snapshots_sent(&p),
        DBS.len(),
        "a new replica gets a snapshot:\n{}",
        p.log()
    );

    // Live: each transaction follows.
    for _ in 0..5 {
        write(&p, 2);
        wait_caught_up(&p, &mut r);
    }
    assert_equal(&p, &[&r]);

    // Replica down while the primary writes: it comes back from LTX files.
    r.stop();
    write(&p, 10);
    r.start();
    wait_caught_up(&p, &mut r);
    assert_equal(&p, &[&r]);
    assert_eq!(
        snapshots_sent(&p),
        DBS.len(),
        "catch-up without a snapshot:\n{}",
        p.log()
    );

    // Primary restart: the replica reconnects and keeps following.
    p.stop();
    start_primary(&mut p);
    write(&p, 10);
    wait_caught_up(&p, &mut r);
    assert_equal(&p, &[&r]);
    assert_eq!(
        snapshots_sent(&p),
        DBS.len(),
        "reconnect without a snapshot:\n{}",
        p.log()
    );

    // Replica killed (-9) while the primary writes, restarted on the
    // stale mount's directory: it comes back to the same state.
    std::thread::scope(|s| {
        let writer = s.spawn(|| write(&p, 30));
        std::thread::sleep(Duration::from_millis(30));
        r.kill9().unwrap();
        writer.join().unwrap();
    });
    detach(&r.mnt());
    r.start();
    wait_caught_up(&p, &mut r);
    assert_equal(&p, &[&r]);

    // The replica of either kind refuses writes (LiteFS's WAL replica says
    // "disk I/O error", litefs-rs "attempt to write a readonly database")
    // and stays where it was.
    for (db, _) in DBS {
        let err = open(&r.db(db))
            .execute("INSERT INTO t (v) VALUES ('x')", [])
            .unwrap_err();
        if replica == rs() {
            assert!(err.to_string().contains("readonly"), "{db}: {err}");
        }
    }
    assert_equal(&p, &[&r]);
}

#[test]
fn litefs_primary_streams_to_a_litefs_rs_replica() {
    stream(&litefs_go(), &rs());
}

#[test]
fn litefs_rs_primary_streams_to_a_litefs_replica() {
    stream(&rs(), &litefs_go());
}

// ---------------------------------------------------------------- migration

/// A writer on the primary's databases: one row per transaction, ids
/// counting up, alternating databases; `acked` holds the ids whose commit
/// returned. `pause` asks it to close its connections (the primary is
/// about to stop: with a static lease there is no other primary to write
/// to, and a write into an unmounted mount dir would land on the disk
/// underneath); `paused` says it has.
struct Writer {
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(usize, i64)>>>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(p: &Node) -> Writer {
        let paths: Vec<PathBuf> = DBS.iter().map(|(db, _)| p.db(db)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, pa, pd, a) = (stop.clone(), pause.clone(), paused.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let mut conns: Option<Vec<Connection>> = None;
            let mut id = 1_000_000i64;
            while !s.load(Ordering::SeqCst) {
                if pa.load(Ordering::SeqCst) {
                    conns = None;
                    pd.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                pd.store(false, Ordering::SeqCst);
                let cs = conns.get_or_insert_with(|| paths.iter().map(|p| open(p)).collect());
                let i = (id % 2) as usize;
                let res = cs[i].execute(
                    "INSERT INTO t (id, v) VALUES (?1, hex(randomblob(200)))",
                    [id],
                );
                res.unwrap_or_else(|e| panic!("write {id} to {}: {e}", DBS[i].0));
                a.lock().unwrap().push((i, id));
                id += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Writer {
            stop,
            pause,
            paused,
            acked,
            handle: Some(handle),
        }
    }

    fn pause(&self, p: &mut Node) {
        self.pause.store(true, Ordering::SeqCst);
        let paused = self.paused.clone();
        p.wait_until("the writer to pause", || paused.load(Ordering::SeqCst));
    }

    fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops the writer (a panic in it fails the test); the acked ids.
    fn finish(mut self) -> Vec<(usize, i64)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().expect("writer failed");
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// Waits until the writer has acknowledged `n` more writes.
fn let_write(w: &Writer, p: &mut Node, n: usize) {
    let want = w.count() + n;
    p.wait_until(&format!("{n} more acknowledged writes"), || {
        w.count() >= want
    });
}

/// Stops `n`, swaps its binary to litefs-rs, starts it on the same data
/// dir.
fn swap_to_rs(n: &mut Node) {
    n.stop();
    n.set_bin(&rs());
    n.start();
}

#[test]
fn rolling_migration_from_litefs_loses_no_acknowledged_write() {
    let go = litefs_go();
    let mut p = primary_on(1, &go);
    start_primary(&mut p);
    create_dbs(&p);
    write(&p, 5);
    let mut r2 = replica_on(2, &go, &p.url());
    let mut r3 = replica_on(3, &go, &p.url());
    r2.start();
    r3.start();
    wait_caught_up(&p, &mut r2);
    wait_caught_up(&p, &mut r3);
    let snapshots = snapshots_sent(&p);
    assert_eq!(snapshots, 2 * DBS.len());

    let w = Writer::start(&p);
    let_write(&w, &mut p, 200);

    // A replica first: LiteFS primary -> litefs-rs replica on LiteFS's dir.
    swap_to_rs(&mut r2);
    let_write(&w, &mut p, 200);
    wait_passed(&p, &mut r2);

    // Then the primary: litefs-rs primary on LiteFS's dir, streaming to a
    // LiteFS replica and a litefs-rs one. Writes pause while it is down.
    w.pause(&mut p);
    swap_to_rs(&mut p);
    w.resume();
    let_write(&w, &mut p, 200);
    wait_passed(&p, &mut r3);
    wait_passed(&p, &mut r2);

    // The last LiteFS replica.
    swap_to_rs(&mut r3);
    let_write(&w, &mut p, 200);
    let acked = w.finish();

    wait_caught_up(&p, &mut r2);
    wait_caught_up(&p, &mut r3);
    assert_equal(&p, &[&r2, &r3]);
    assert_eq!(
        snapshots_sent(&p),
        snapshots,
        "no replica re-snapshotted by the upgrade:\n{}",
        p.log()
    );
    for (i, (db, _)) in DBS.iter().enumerate() {
        let c = open(&r3.db(db));
        let mut st = c.prepare("SELECT 1 FROM t WHERE id = ?1").unwrap();
        for (_, id) in acked.iter().filter(|(d, _)| *d == i) {
            assert!(
                st.exists([id]).unwrap(),
                "acknowledged write {id} to {db} lost"
            );
        }
    }
    for n in [&p, &r2, &r3] {
        assert!(!n.log().contains("ERROR"), "{}", n.log());
    }
}

// ---------------------------------------------------------------- downgrade

#[test]
fn litefs_opens_litefs_rs_data_dirs_at_the_same_positions() {
    let go = litefs_go();
    let mut p = primary_on(1, &rs());
    start_primary(&mut p);
    create_dbs(&p);
    write(&p, 10);
    let mut r = replica_on(2, &rs(), &p.url());
    r.start();
    write(&p, 10);
    wait_caught_up(&p, &mut r);
    let before: Vec<String> = DBS.iter().map(|(db, _)| p.pos(db).unwrap()).collect();

    r.stop();
    p.stop();
    // What a former primary keeps of transactions never replicated
    // (`diverged/<db>/`): LiteFS must start beside it and leave it alone.
    let kept = p.data().join("diverged/delete.db");
    fs::create_dir_all(&kept).unwrap();
    let ltx_dir = p.data().join("dbs/delete.db/ltx");
    let some = fs::read_dir(&ltx_dir).unwrap().next().unwrap().unwrap();
    fs::copy(some.path(), kept.join(some.file_name())).unwrap();
    p.set_bin(&go);
    r.set_bin(&go);
    start_primary(&mut p);
    r.start();
    let after: Vec<String> = DBS.iter().map(|(db, _)| p.pos(db).unwrap()).collect();
    assert_eq!(after, before, "LiteFS reads litefs-rs's positions");
    wait_caught_up(&p, &mut r);
    assert_equal(&p, &[&r]);

    write(&p, 10);
    wait_caught_up(&p, &mut r);
    assert_equal(&p, &[&r]);
    assert_eq!(
        snapshots_sent(&p),
        DBS.len(),
        "only the replica's first start took a snapshot:\n{}",
        p.log()
    );
    assert!(
        kept.join(some.file_name()).is_file(),
        "diverged/ left alone"
    );
}
