//! kill -9 of the real `litefs mount` process, again and again, under
//! three concurrent writers (single-row commits and large spilling
//! transactions) and a maintenance writer (deletes that free pages,
//! checkpoints, VACUUM), in every journal mode. After each restart: every
//! acknowledged id present, integrity ok, `-pos` the last LTX file, the
//! log replaying to the database byte for byte, nothing left behind.
//!
//! Bounded by KILL9_SECS (default 28) for all four modes.

use std::collections::HashSet;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::logcheck::assert_clean_log;
use common::node::Node;
use common::powercut::Rng;
use common::{is_mounted, sqlite3};

const WAIT: Duration = Duration::from_secs(20);
const DB: &str = "app.db";
const WRITERS: u64 = 3;

/// Commits ids from `base` up and appends each acknowledged one to the
/// ack file; 1 in 20 commits is 50 rows large enough to spill the small
/// page cache into the database file mid-transaction. Waits out locks,
/// stops at any other error (the mount died).
const WRITER: &str = r#"
import os, random, sqlite3, sys
path, ack, mode, base, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
fd = os.open(ack, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
def busy(e):
    return "locked" in str(e) or "busy" in str(e)
i = base
c = None
while True:
    try:
        if c is None:
            c = sqlite3.connect(path, isolation_level=None, timeout=10)
            c.execute("PRAGMA cache_size=16")
            c.execute("PRAGMA journal_mode=" + mode).fetchall()
            c.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad BLOB)")
            c.execute("CREATE TABLE IF NOT EXISTS junk (pad BLOB)")
        if rnd.random() < 0.05:
            ids = list(range(i + 1, i + 51))
            c.execute("BEGIN IMMEDIATE")
            c.executemany("INSERT INTO t VALUES (?, randomblob(2000))", [(j,) for j in ids])
            c.execute("INSERT INTO junk SELECT randomblob(1500) FROM t WHERE id > ? AND id <= ?", (i, ids[-1]))
            c.execute("COMMIT")
        else:
            ids = [i + 1]
            c.execute("INSERT INTO t VALUES (?, randomblob(200))", (i + 1,))
    except sqlite3.Error as e:
        if not busy(e):
            sys.exit(0)
        try:
            c.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        continue
    i = ids[-1]
    os.write(fd, "".join("%d\n" % j for j in ids).encode())
"#;

/// Frees pages (deletes), checkpoints in WAL mode, now and then VACUUM.
const MAINTENANCE: &str = r#"
import random, sqlite3, sys, time
path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
c = None
while True:
    time.sleep(rnd.uniform(0.02, 0.1))
    try:
        if c is None:
            c = sqlite3.connect(path, isolation_level=None, timeout=10)
            c.execute("PRAGMA cache_size=16")
        r = rnd.random()
        if r < 0.5:
            c.execute("DELETE FROM junk WHERE rowid IN (SELECT rowid FROM junk ORDER BY random() LIMIT 40)")
        elif r < 0.8 and mode == "WAL":
            c.execute("PRAGMA wal_checkpoint(%s)" % rnd.choice(["PASSIVE", "RESTART", "TRUNCATE"])).fetchall()
        elif r < 0.9:
            c.execute("VACUUM")
    except sqlite3.Error as e:
        if "locked" in str(e) or "busy" in str(e) or "no such table" in str(e):
            continue
        sys.exit(0)
"#;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Starts the node and waits until this start's mount answers (a stale
/// mount left by the kill must not pass for it).
fn start(n: &mut Node) {
    let mounted = |log: &str| log.matches("litefs_fuse: mounted").count();
    let before = mounted(&n.log());
    n.spawn(&[]);
    let (log, mnt) = (n.log_path(), n.mnt());
    n.wait_until("the mount", || {
        mounted(&fs::read_to_string(&log).unwrap_or_default()) > before
            && is_mounted(&mnt)
            && fs::read_dir(&mnt).is_ok()
    });
}

/// Waits (bounded) for a client that stops on the dead mount.
fn reap(mut c: Child) {
    let deadline = Instant::now() + WAIT;
    while c.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = c.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn acked(n: &Node, w: u64) -> Vec<u64> {
    fs::read_to_string(n.file(&format!("acked-{w}")))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// One journal mode for `slot`: kill, restart, check, again. Returns
/// (kills, acknowledged ids).
fn run_mode(mode: &str, slot: Duration, rng: &mut Rng) -> (u64, usize) {
    let mut n = Node::new(WAIT);
    n.config(common::node::Config::new(true));
    start(&mut n);
    let out = sqlite3(
        &n.db(DB),
        &format!(
            "PRAGMA journal_mode={mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB); \
             CREATE TABLE junk (pad BLOB);"
        ),
    );
    assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
    n.stop();
    let end = Instant::now() + slot;
    let mut kills = 0;
    while kills == 0 || Instant::now() < end {
        start(&mut n);
        let mut clients: Vec<Child> = (0..WRITERS)
            .map(|w| {
                Command::new("python3")
                    .arg("-c")
                    .arg(WRITER)
                    .arg(n.db(DB))
                    .arg(n.file(&format!("acked-{w}")))
                    .arg(mode)
                    .arg(((kills * WRITERS + w + 1) * 10_000_000).to_string())
                    .arg(rng.next_u64().to_string())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap()
            })
            .collect();
        clients.push(
            Command::new("python3")
                .arg("-c")
                .arg(MAINTENANCE)
                .arg(n.db(DB))
                .arg(mode)
                .arg(rng.next_u64().to_string())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(300 + rng.below(900)));
        n.kill9().unwrap();
        kills += 1;
        clients.into_iter().for_each(reap);

        start(&mut n);
        let what = format!("{mode} after kill {kills}");
        let out = sqlite3(&n.db(DB), "PRAGMA integrity_check; SELECT id FROM t;");
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some("ok"), "{what}: integrity");
        let present: HashSet<u64> = lines.map(|l| l.parse().unwrap()).collect();
        let all: Vec<u64> = (0..WRITERS).flat_map(|w| acked(&n, w)).collect();
        let lost: Vec<u64> = all
            .iter()
            .copied()
            .filter(|i| !present.contains(i))
            .collect();
        assert!(lost.is_empty(), "{what}: acknowledged ids lost: {lost:?}");
        let pos = n.pos(DB).expect("no -pos");
        n.stop();
        assert_clean_log(&n, DB, &pos);
    }
    let total = (0..WRITERS).map(|w| acked(&n, w).len()).sum();
    (kills, total)
}

#[test]
fn kill9_loop_under_concurrent_writers_in_every_journal_mode() {
    let total = Duration::from_secs(
        std::env::var("KILL9_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(28),
    );
    let seed = std::env::var("KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill -9 loop: KILL9_SEED={seed}, {total:?}");
    let mut rng = Rng::new(seed);
    for mode in ["DELETE", "TRUNCATE", "PERSIST", "WAL"] {
        let (kills, acked) = run_mode(mode, total / 4, &mut rng);
        eprintln!("{mode}: {kills} kills, {acked} acknowledged ids, all present");
    }
}
