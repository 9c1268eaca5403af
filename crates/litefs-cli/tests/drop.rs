//! Deleting a database through the primary's mount replicates as a drop
//! (LiteFS's LTX file with `commit = 0`), on 3-node clusters of `litefs
//! mount` processes on 127.0.0.x with a static lease:
//!
//! * `rm` (WAL database) and Python's `os.remove` (DELETE database) on the
//!   primary: the files go on the primary and on a live replica, a replica
//!   that was down learns the drop when it restarts, a replica started
//!   empty never sees the database; a replica refuses `rm` with a
//!   read-only error; create/drop/create: every node ends with the new
//!   database's rows, the primary's history kept in its log;
//! * a LiteFS v0.5.14 replica (../shared/litefs-go) follows a litefs-rs
//!   primary through a drop and a re-creation, and its stream keeps going.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rusqlite::Connection;

mod common;

use common::node::{Config, Node};

const WAIT: Duration = Duration::from_secs(30);
const PRIMARY_HOST: &str = "node-a";

fn primary(bin: Option<&Path>) -> Node {
    let mut p = Node::on_host(1, WAIT);
    if let Some(bin) = bin {
        p.set_bin(bin);
    }
    p.config(Config::new(true).primary(PRIMARY_HOST, &p.url()));
    p.start();
    p
}

fn replica(host: u8, primary_url: &str, bin: Option<&Path>) -> Node {
    let mut r = Node::on_host(host, WAIT);
    if let Some(bin) = bin {
        r.set_bin(bin);
    }
    r.config(
        Config::new(false)
            .primary(PRIMARY_HOST, primary_url)
            .reconnect_delay("200ms")
            .skip_sync(),
    );
    r.start();
    r
}

fn open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// A database in `mode` with table t holding `rows` rows tagged `tag`.
fn create(p: &Node, db: &str, mode: &str, tag: &str, rows: usize) {
    let c = open(&p.db(db));
    let got: String = c
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .unwrap();
    assert_eq!(got.to_uppercase(), mode);
    c.execute_batch("CREATE TABLE t (v TEXT NOT NULL)").unwrap();
    for i in 0..rows {
        c.execute("INSERT INTO t VALUES (?1)", [format!("{tag}-{i}")])
            .unwrap();
    }
}

fn rows(path: &Path) -> Vec<String> {
    let c = open(path);
    let mut st = c.prepare("SELECT v FROM t ORDER BY rowid").unwrap();
    let v = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    v
}

fn data_file(n: &Node, db: &str) -> PathBuf {
    n.data().join("dbs").join(db).join("database")
}

/// Waits until `r` shows `db` at the primary's position.
fn wait_pos(p: &Node, r: &mut Node, db: &str) {
    let want = p.pos(db).expect("primary has the database");
    let path = r.db(&format!("{db}-pos"));
    r.wait_until(&format!("{db} to reach {want}"), || {
        fs::read_to_string(&path).is_ok_and(|s| s.trim() == want)
    });
}

/// Waits until `db` is gone from `r`'s mount and data dir.
fn wait_gone(r: &mut Node, db: &str) {
    let (mnt, data) = (r.db(db), data_file(r, db));
    r.wait_until(&format!("{db} to be deleted"), || {
        !mnt.exists() && !data.exists()
    });
    let listed = fs::read_dir(r.mnt())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .any(|n| n.starts_with(db));
    assert!(!listed, "{db} still listed in {}", r.mnt().display());
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn python_remove(path: &Path) -> (bool, String) {
    run(Command::new("python3")
        .arg("-c")
        .arg("import os, sys; os.remove(sys.argv[1])")
        .arg(path))
}

#[test]
fn drop_replicates_to_live_restarted_and_new_replicas() {
    let mut p = primary(None);
    let mut r1 = replica(2, &p.url(), None);
    let mut r2 = replica(3, &p.url(), None);
    create(&p, "wal.db", "WAL", "old", 20);
    create(&p, "del.db", "DELETE", "old", 5);
    create(&p, "keep.db", "DELETE", "keep", 3);
    for r in [&mut r1, &mut r2] {
        for db in ["wal.db", "del.db", "keep.db"] {
            wait_pos(&p, r, db);
        }
    }

    // A replica refuses: read-only, nothing changes.
    let (ok, out) = run(Command::new("rm").arg(r1.db("wal.db")));
    assert!(
        !ok && out.contains("Permission denied"),
        "rm on a replica: {out}"
    );
    let (ok, out) = python_remove(&r1.db("del.db"));
    assert!(!ok && out.contains("PermissionError"), "{out}");
    assert_eq!(rows(&r1.db("wal.db")).len(), 20);

    // r2 is down through the drops.
    r2.stop();
    let (ok, out) = run(Command::new("rm").arg(p.db("wal.db")));
    assert!(ok, "rm on the primary: {out}");
    let (ok, out) = python_remove(&p.db("del.db"));
    assert!(ok, "os.remove on the primary: {out}");
    for db in ["wal.db", "del.db"] {
        wait_gone(&mut p, db);
        wait_gone(&mut r1, db);
        wait_pos(&p, &mut r1, db);
    }

    // The same name again: a new database, replicated from its first page.
    create(&p, "wal.db", "WAL", "new", 4);
    wait_pos(&p, &mut r1, "wal.db");
    assert_eq!(rows(&r1.db("wal.db")), rows(&p.db("wal.db")));
    assert!(rows(&r1.db("wal.db")).iter().all(|v| v.starts_with("new-")));

    // The replica that was down learns both: del.db deleted, wal.db new.
    r2.start();
    wait_pos(&p, &mut r2, "wal.db");
    wait_pos(&p, &mut r2, "del.db");
    wait_gone(&mut r2, "del.db");
    assert_eq!(rows(&r2.db("wal.db")), rows(&p.db("wal.db")));

    // A replica started empty gets the live databases and nothing of the
    // deleted one.
    r1.stop();
    fs::remove_dir_all(r1.data()).unwrap();
    r1.start();
    wait_pos(&p, &mut r1, "wal.db");
    wait_pos(&p, &mut r1, "keep.db");
    assert_eq!(rows(&r1.db("wal.db")), rows(&p.db("wal.db")));
    assert!(!r1.data().join("dbs/del.db").exists());
    assert!(!r1.db("del.db").exists());

    // The primary keeps the drop in its history and across a restart.
    p.stop();
    p.start();
    assert!(!p.db("del.db").exists());
    assert_eq!(rows(&p.db("wal.db")).len(), 4);
    for r in [&r1, &r2] {
        assert_eq!(rows(&r.db("keep.db")).len(), 3);
    }
}

#[test]
fn create_drop_create_cycle_on_three_nodes() {
    let p = primary(None);
    let mut rs = [replica(2, &p.url(), None), replica(3, &p.url(), None)];
    for round in 0..3 {
        let mode = if round % 2 == 0 { "WAL" } else { "DELETE" };
        create(&p, "cycle.db", mode, &format!("r{round}"), 3 + round);
        for r in rs.iter_mut() {
            wait_pos(&p, r, "cycle.db");
            assert_eq!(
                rows(&r.db("cycle.db")),
                rows(&p.db("cycle.db")),
                "round {round}"
            );
        }
        let (ok, out) = run(Command::new("rm").arg(p.db("cycle.db")));
        assert!(ok, "round {round}: {out}");
        for r in rs.iter_mut() {
            wait_gone(r, "cycle.db");
        }
    }
    create(&p, "cycle.db", "WAL", "last", 2);
    for r in rs.iter_mut() {
        wait_pos(&p, r, "cycle.db");
        assert_eq!(rows(&r.db("cycle.db")), vec!["last-0", "last-1"]);
        let ok: String = open(&r.db("cycle.db"))
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}

/// The LiteFS binary: `LITEFS_GO`, else target/litefs-go/litefs (built by
/// ./scripts/test; see interop.rs).
fn litefs_go() -> PathBuf {
    let path = match std::env::var_os("LITEFS_GO") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/litefs-go/litefs"),
    };
    assert!(
        path.is_file(),
        "LiteFS binary not found at {} (set LITEFS_GO, or build it with \
         `bash ../shared/litefs-go/build.sh $PWD/target/litefs-go/litefs`)",
        path.display()
    );
    path
}

#[test]
fn litefs_replica_follows_a_drop_and_keeps_streaming() {
    let go = litefs_go();
    let p = primary(None);
    let mut rs = replica(2, &p.url(), None);
    let mut go_r = replica(3, &p.url(), Some(&go));
    create(&p, "gone.db", "WAL", "old", 10);
    create(&p, "live.db", "DELETE", "live", 2);
    for r in [&mut rs, &mut go_r] {
        wait_pos(&p, r, "gone.db");
        wait_pos(&p, r, "live.db");
    }

    let (ok, out) = run(Command::new("rm").arg(p.db("gone.db")));
    assert!(ok, "{out}");
    wait_gone(&mut rs, "gone.db");
    // LiteFS applies the drop (it may keep a file; its position moves).
    wait_pos(&p, &mut go_r, "gone.db");

    // Its stream goes on: transactions on another database, then the
    // deleted one created again.
    open(&p.db("live.db"))
        .execute("INSERT INTO t VALUES ('after-drop')", [])
        .unwrap();
    wait_pos(&p, &mut go_r, "live.db");
    assert_eq!(rows(&go_r.db("live.db")), rows(&p.db("live.db")));
    create(&p, "gone.db", "DELETE", "new", 3);
    for r in [&mut rs, &mut go_r] {
        wait_pos(&p, r, "gone.db");
        assert_eq!(rows(&r.db("gone.db")), vec!["new-0", "new-1", "new-2"]);
    }
    assert!(
        !go_r.log().contains("disconnected from primary") && go_r.is_running(),
        "LiteFS replica:\n{}",
        go_r.log()
    );
}
