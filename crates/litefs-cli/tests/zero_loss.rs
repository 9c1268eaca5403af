//! Zero-loss mode (`zero-loss.candidates`) on a real etcd lease (TTL 2s):
//! two candidates and a non-candidate on 127.0.0.1-3, a writer committing
//! as fast as it can and recording every commit that returned.
//!
//! * kill -9 of the primary the instant a commit returns, again and again
//!   with restarts: with `candidates: 1` no acknowledged write is ever
//!   missing on the new primary; the same loop asynchronous counts what it
//!   loses (printed, not asserted: it is whatever the timing gives);
//! * the only other candidate stopped (SIGSTOP): a commit waits the
//!   timeout, then the primary degrades with a warning and a metric, and
//!   recovers once the candidate is back and has caught up.
//!
//! `ZERO_LOSS_RUNS` sets the kills per loop (default 20 with zero loss, 8
//! without).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod common;

use common::etcd::EtcdServer;
use common::node::{Config, Node};
use common::sqlite3;

const WAIT: Duration = Duration::from_secs(60);

fn member(host: u8, candidate: bool, backend: &str, zero_loss: &str) -> Node {
    let node = Node::on_host(host, WAIT);
    node.config(
        Config::new(candidate)
            .lease(&format!(
                "{backend}, candidate: {candidate}, hostname: \"node-{host}\", \
                 advertise-url: \"{}\", reconnect-delay: \"100ms\"",
                node.url()
            ))
            .skip_sync()
            .extra(zero_loss),
    );
    node
}

/// `GET path` on the node's HTTP API; the body, or None if it is down.
fn http_get(node: &Node, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(node.addr()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn info(node: &Node) -> Option<serde_json::Value> {
    http_get(node, "/info").and_then(|b| serde_json::from_str(&b).ok())
}

fn is_primary(node: &Node) -> bool {
    info(node).is_some_and(|i| i["isPrimary"] == true)
}

/// The primary waits for candidates again (not degraded) and one holds
/// everything it committed.
fn in_sync(node: &Node) -> bool {
    info(node).is_some_and(|i| {
        i["zeroLoss"]["state"] == "in-sync"
            && i["zeroLoss"]["inSync"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    })
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Commits one row per transaction into whichever mount `target` names,
/// recording each id whose commit returned. With `kill` set, the writer
/// itself kill -9s that process right after the next commit returns.
struct Writer {
    stop: Arc<AtomicBool>,
    target: Arc<Mutex<PathBuf>>,
    kill: Arc<Mutex<Option<i32>>>,
    acked: Arc<Mutex<Vec<i64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(target: PathBuf) -> Writer {
        let mut w = Writer {
            stop: Arc::new(AtomicBool::new(false)),
            target: Arc::new(Mutex::new(target)),
            kill: Arc::new(Mutex::new(None)),
            acked: Arc::new(Mutex::new(Vec::new())),
            thread: None,
        };
        let (stop, target, killer, acked) = (
            w.stop.clone(),
            w.target.clone(),
            w.kill.clone(),
            w.acked.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut conn: Option<(PathBuf, rusqlite::Connection)> = None;
            let mut id = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let want = target.lock().unwrap().clone();
                if conn.as_ref().is_none_or(|(p, _)| *p != want) {
                    conn = rusqlite::Connection::open(&want).ok().and_then(|c| {
                        c.busy_timeout(Duration::from_secs(5)).ok()?;
                        c.pragma_update(None, "synchronous", "FULL").ok()?;
                        Some((want, c))
                    });
                }
                let Some((_, c)) = &conn else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                id += 1;
                match c.execute("INSERT INTO x VALUES (?1)", [id]) {
                    Ok(_) => {
                        if let Some(pid) = killer.lock().unwrap().take() {
                            kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
                        }
                        acked.lock().unwrap().push(id);
                    }
                    Err(_) => {
                        conn = None;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        });
        w.thread = Some(thread);
        w
    }

    fn acked(&self) -> Vec<i64> {
        self.acked.lock().unwrap().clone()
    }

    fn retarget(&self, to: PathBuf) {
        *self.target.lock().unwrap() = to;
    }

    /// Has the writer kill -9 `node` right after its next commit returns;
    /// returns once it did.
    fn kill_after_next_commit(&self, node: &Node) {
        *self.kill.lock().unwrap() = Some(node.pid().as_raw());
        wait_for("the writer to kill the primary", || {
            self.kill.lock().unwrap().is_none()
        });
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ids in `t.db` on `node`, read through its mount.
fn ids_on(node: &Node) -> std::collections::HashSet<i64> {
    let c = rusqlite::Connection::open(node.db("t.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut q = c.prepare("SELECT v FROM x").unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// The TXID in the node's `t.db-pos`, 0 without one.
fn txid(node: &Node) -> u64 {
    node.pos("t.db")
        .and_then(|p| u64::from_str_radix(p.split('/').next()?, 16).ok())
        .unwrap_or(0)
}

fn diverged_files(node: &Node) -> usize {
    std::fs::read_dir(node.data().join("diverged").join("t.db"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The kill loop; returns the acknowledged writes the new primaries
/// lacked, summed over every failover.
fn kill_loop(zero_loss: &str, runs: usize, label: &str) -> usize {
    let etcd = EtcdServer::start();
    let backend = format!(
        "type: etcd, etcd: {{ endpoints: [\"{}\"], key: \"litefs/zl\", ttl: \"2s\" }}",
        etcd.url
    );
    let mut m = [
        member(1, true, &backend, zero_loss),
        member(2, true, &backend, zero_loss),
        member(3, false, &backend, zero_loss),
    ];
    m[0].start();
    wait_for("node-1 to acquire", || is_primary(&m[0]));
    m[1].start();
    m[2].start();
    let out = sqlite3(
        &m[0].db("t.db"),
        "PRAGMA journal_mode=WAL; CREATE TABLE x (v INTEGER PRIMARY KEY)",
    );
    assert!(out.status.success(), "{out:?}");
    let writer = Writer::start(m[0].db("t.db"));
    let sync = !zero_loss.is_empty();
    let mut primary = 0;
    let mut lost_ids = std::collections::HashSet::new();
    for run in 1..=runs {
        let before = writer.acked().len();
        wait_for("writes under load", || writer.acked().len() >= before + 30);
        // The other candidate has caught up with the restart: what is
        // lost below is the replication window, not a restart's lag.
        let target = txid(&m[primary]);
        wait_for("the other candidate to catch up", || {
            txid(&m[1 - primary]) >= target
        });
        if sync {
            let deadline = Instant::now() + WAIT;
            while !in_sync(&m[primary]) {
                assert!(
                    Instant::now() < deadline,
                    "no candidate in sync: {:?}\n{}\n{}",
                    info(&m[primary]),
                    m[primary].log(),
                    m[1 - primary].log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        writer.kill_after_next_commit(&m[primary]);
        let acked = writer.acked();
        let killed_at = Instant::now();
        m[primary].kill9().unwrap();
        let next = 1 - primary;
        wait_for("the other candidate to take over", || is_primary(&m[next]));
        writer.retarget(m[next].db("t.db"));
        let n = acked.len();
        wait_for("a write on the new primary", || writer.acked().len() > n);
        let took = killed_at.elapsed();
        let have = ids_on(&m[next]);
        let lost: Vec<i64> = acked
            .iter()
            .copied()
            .filter(|v| !have.contains(v) && !lost_ids.contains(v))
            .collect();
        eprintln!(
            "{label} run {run}: {} acknowledged so far, {} more missing on node-{} (failover {:.1} s)",
            acked.len(),
            lost.len(),
            next + 1,
            took.as_secs_f64()
        );
        if sync {
            assert!(
                lost.is_empty(),
                "acknowledged writes {lost:?} missing on the new primary\n{}\n{}",
                m[primary].log(),
                m[next].log()
            );
        }
        lost_ids.extend(lost);
        m[primary].start();
        primary = next;
    }
    drop(writer);
    let lost_total = lost_ids.len();
    let diverged: usize = m.iter().map(diverged_files).sum();
    eprintln!(
        "{label}: {runs} kill -9 of the primary right after a commit returned: \
         {lost_total} acknowledged writes lost, {diverged} LTX files in diverged/"
    );
    if sync {
        let log = m[primary].log();
        assert!(log.contains("zero-loss mode"), "{log}");
    }
    lost_total
}

fn runs(default: usize) -> usize {
    std::env::var("ZERO_LOSS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_9_of_the_primary_loses_no_acknowledged_write() {
    kill_loop(
        "zero-loss: { candidates: 1, timeout: \"2s\" }\n",
        runs(20),
        "zero-loss",
    );
}

#[test]
fn asynchronous_replication_under_the_same_kills() {
    kill_loop("", runs(8), "asynchronous");
}

#[test]
fn a_stopped_candidate_degrades_commits_after_the_timeout_then_recovers() {
    let etcd = EtcdServer::start();
    let backend = format!(
        "type: etcd, etcd: {{ endpoints: [\"{}\"], key: \"litefs/zl\", ttl: \"2s\" }}",
        etcd.url
    );
    let zl = "zero-loss: { candidates: 1, timeout: \"1s\" }\n";
    let mut m = [
        member(1, true, &backend, zl),
        member(2, true, &backend, zl),
        member(3, false, &backend, zl),
    ];
    m[0].start();
    wait_for("node-1 to acquire", || is_primary(&m[0]));
    m[1].start();
    m[2].start();
    let out = sqlite3(&m[0].db("t.db"), "CREATE TABLE x (v INTEGER PRIMARY KEY)");
    assert!(out.status.success(), "{out:?}");
    wait_for("node-2 in sync", || in_sync(&m[0]));
    let node2 = format!("{:016X}", {
        let i = info(&m[1]).unwrap();
        u64::from_str_radix(i["nodeID"].as_str().unwrap(), 16).unwrap()
    });
    assert_eq!(
        info(&m[0]).unwrap()["zeroLoss"]["inSync"],
        serde_json::json!([node2]),
        "only the other candidate acknowledges, not the non-candidate"
    );

    kill(m[1].pid(), Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let out = sqlite3(&m[0].db("t.db"), "INSERT INTO x VALUES (1)");
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took >= Duration::from_millis(900),
        "the commit did not wait for the candidate ({took:?})"
    );
    wait_for("the degrade log line", || {
        m[0].log()
            .contains("zero-loss: degraded to asynchronous replication")
    });
    let metrics = http_get(&m[0], "/metrics").unwrap();
    assert!(
        metrics.contains("litefs_zero_loss_degrades_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("litefs_zero_loss_degraded 1"), "{metrics}");
    assert_eq!(info(&m[0]).unwrap()["zeroLoss"]["state"], "degraded");
    // Degraded: commits no longer wait.
    let started = Instant::now();
    let out = sqlite3(&m[0].db("t.db"), "INSERT INTO x VALUES (2)");
    assert!(out.status.success(), "{out:?}");
    eprintln!(
        "commit while the candidate is stopped: {:.2} s (timeout 1s); degraded: {:.3} s",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    kill(m[1].pid(), Signal::SIGCONT).unwrap();
    wait_for("recovery once node-2 caught up", || in_sync(&m[0]));
    assert!(m[0].log().contains("zero-loss: recovered"));
    let out = sqlite3(&m[0].db("t.db"), "INSERT INTO x VALUES (3)");
    assert!(out.status.success(), "{out:?}");
    wait_for("node-2 to have every row", || {
        m[1].pos("t.db") == m[0].pos("t.db")
    });
    assert_eq!(ids_on(&m[1]).len(), 3);
}

/// The LiteFS binary (see interop.rs): `LITEFS_GO`, else
/// target/litefs-go/litefs, which ./scripts/test builds when missing.
fn litefs_go() -> PathBuf {
    let path = match std::env::var_os("LITEFS_GO") {
        Some(p) => PathBuf::from(p),
        None => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/litefs-go/litefs")
        }
    };
    assert!(
        path.is_file(),
        "LiteFS binary not found at {} (set LITEFS_GO, or build it with \
         `bash ../shared/litefs-go/build.sh $PWD/target/litefs-go/litefs`)",
        path.display()
    );
    path
}

/// A LiteFS 0.5.14 replica of a zero-loss primary replicates as ever but
/// never acknowledges: commits degrade after the timeout, and only a
/// litefs-rs candidate brings the primary back in sync.
#[test]
fn a_litefs_replica_never_counts_as_an_acknowledgement() {
    let etcd = EtcdServer::start();
    let backend = format!(
        "type: etcd, etcd: {{ endpoints: [\"{}\"], key: \"litefs/zl\", ttl: \"2s\" }}",
        etcd.url
    );
    let zl = "zero-loss: { candidates: 1, timeout: \"1s\" }\n";
    let mut p = member(1, true, &backend, zl);
    p.start();
    wait_for("node-1 to acquire", || is_primary(&p));
    let mut go = Node::on_host(2, WAIT);
    go.set_bin(&litefs_go());
    go.config(
        Config::new(false)
            .primary("node-1", &p.url())
            .reconnect_delay("200ms")
            .skip_sync(),
    );
    go.start();
    wait_for("the LiteFS replica to connect", || {
        p.log().matches("stream connected").count() >= 1
    });

    let started = Instant::now();
    let out = sqlite3(
        &p.db("t.db"),
        "CREATE TABLE x (v INTEGER PRIMARY KEY); INSERT INTO x VALUES (1)",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "a commit returned before the timeout with no candidate to hold it"
    );
    let i = info(&p).unwrap();
    assert_eq!(i["zeroLoss"]["state"], "degraded", "{i}");
    assert_eq!(i["zeroLoss"]["inSync"], serde_json::json!([]), "{i}");
    wait_for("the LiteFS replica to have the rows", || {
        go.pos("t.db").is_some() && go.pos("t.db") == p.pos("t.db")
    });
    let rows = sqlite3(&go.db("t.db"), "SELECT count(*) FROM x");
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "1");

    // A litefs-rs candidate joins: it acknowledges, the LiteFS one still not.
    let mut c = member(3, true, &backend, zl);
    c.start();
    wait_for("recovery through the litefs-rs candidate", || in_sync(&p));
    let out = sqlite3(&p.db("t.db"), "INSERT INTO x VALUES (2)");
    assert!(out.status.success(), "{out:?}");
    let c_id = info(&c).unwrap()["nodeID"].clone();
    assert_eq!(
        info(&p).unwrap()["zeroLoss"]["inSync"],
        serde_json::json!([c_id])
    );
    wait_for("the LiteFS replica to keep up", || {
        go.pos("t.db") == p.pos("t.db")
    });
}

/// `on-timeout: fail`: the commit that waited in vain gets an I/O error,
/// and the node stops as after any commit it could not capture (it cannot
/// know whether SQLite kept that transaction), so that the lease moves.
#[test]
fn on_timeout_fail_fails_the_commit_and_stops_the_node() {
    let etcd = EtcdServer::start();
    let backend = format!(
        "type: etcd, etcd: {{ endpoints: [\"{}\"], key: \"litefs/zl\", ttl: \"2s\" }}",
        etcd.url
    );
    let zl = "zero-loss: { candidates: 1, timeout: \"500ms\", on-timeout: fail }\n";
    let mut m = [member(1, true, &backend, zl), member(2, true, &backend, zl)];
    m[0].start();
    wait_for("node-1 to acquire", || is_primary(&m[0]));
    m[1].start();
    let out = sqlite3(
        &m[0].db("t.db"),
        "PRAGMA journal_mode=WAL; CREATE TABLE x (v INTEGER PRIMARY KEY)",
    );
    assert!(out.status.success(), "{out:?}");
    wait_for("node-2 in sync", || in_sync(&m[0]));

    kill(m[1].pid(), Signal::SIGSTOP).unwrap();
    let out = sqlite3(&m[0].db("t.db"), "INSERT INTO x VALUES (1)");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the commit returned without a candidate"
    );
    assert!(err.contains("disk I/O error"), "{err}");
    assert!(m[0].log().contains("zero-loss: commit failed"));
    let st = m[0].wait_exit();
    assert!(!st.success(), "{st}");
    assert!(m[0]
        .log()
        .contains("stopping reason=a commit could not be captured: zero-loss"));
    kill(m[1].pid(), Signal::SIGCONT).unwrap();
}
