//! Deleting a database through the mount (`rm`, Node's `fs.rmSync`,
//! Python's `os.remove`) on one node: the primary logs the drop as an LTX
//! file with `commit = 0` (LiteFS's record), the files go from the mount
//! and the data dir, the history stays in the log, a restart keeps it
//! deleted, and a database created again under the name starts empty at
//! the next TXID. A replica refuses the delete. (Replication of the drop to
//! other nodes: litefs-cli's tests/drop.rs.)

mod common;

use std::path::Path;
use std::process::Command;

use common::{ltx_files, python, replay_log, TestMount};
use rusqlite::Connection;

fn create(t: &TestMount, name: &str, mode: &str, rows: i64) {
    let conn = Connection::open(t.path(name)).unwrap();
    let got: String = conn
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .unwrap();
    assert_eq!(got.to_uppercase(), mode);
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        .unwrap();
    for i in 0..rows {
        conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
    }
}

fn txid(t: &TestMount, name: &str) -> u64 {
    t.store.db(name).unwrap().pos().txid
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Header of the newest LTX file of `name`.
fn last_header(t: &TestMount, name: &str) -> ltx::Header {
    let last = ltx_files(t.data.path(), name).pop().unwrap();
    let f = std::io::BufReader::new(std::fs::File::open(last).unwrap());
    ltx::verify(f).unwrap().0
}

/// What a deleted database must look like, in the mount and the data dir.
fn assert_deleted(t: &TestMount, name: &str, at: u64) {
    let names = listing(t.dir.path());
    assert!(
        !names.iter().any(|n| n.starts_with(name)),
        "{name} still listed: {names:?}"
    );
    assert!(!t.path(name).exists(), "{name} still resolves in the mount");
    let data_dir = t.data.path().join("dbs").join(name);
    for f in ["database", "journal", "wal", "shm"] {
        assert!(!data_dir.join(f).exists(), "{name}: data dir still has {f}");
    }
    let h = last_header(t, name);
    assert_eq!((h.min_txid, h.max_txid, h.commit), (at, at, 0), "{name}");
    assert_eq!(txid(t, name), at);
}

#[test]
fn rm_on_primary_logs_a_drop_and_a_new_database_starts_empty() {
    let mut t = TestMount::new(true);
    for (name, mode) in [("delete.db", "DELETE"), ("wal.db", "WAL")] {
        create(&t, name, mode, 3);
        let before = txid(&t, name);
        let files = ltx_files(t.data.path(), name).len();

        let out = Command::new("rm").arg(t.path(name)).output().unwrap();
        assert!(
            out.status.success(),
            "{mode}: rm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // WAL mode: the -wal and -shm went with it.
        assert_deleted(&t, name, before + 1);
        assert_eq!(ltx_files(t.data.path(), name).len(), files + 1, "{mode}");

        // The same name again: an empty database, TXIDs going on.
        let conn = Connection::open(t.path(name)).unwrap();
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "{mode}: the new database is not empty");
        drop(conn);
        create(&t, name, mode, 2);
        assert!(txid(&t, name) > before + 1);
        let db = t.store.db(name).unwrap();
        db.flush_log().unwrap();
        // The log, drop included, replays into exactly the new database.
        let replayed = replay_log(&db);
        let conn = Connection::open(t.path(name)).unwrap();
        if mode == "WAL" {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        drop(conn);
        assert_eq!(replayed, std::fs::read(t.db_file(name)).unwrap(), "{mode}");
    }

    // A restart keeps a deleted database deleted and its position, and
    // finishes a drop a crash cut short (its file back in the data dir).
    let old = std::fs::read(t.db_file("wal.db")).unwrap();
    let out = Command::new("rm").arg(t.path("wal.db")).output().unwrap();
    assert!(out.status.success());
    let at = txid(&t, "wal.db");
    t.mount.take().unwrap().unmount();
    std::fs::write(t.db_file("wal.db"), old).unwrap();
    t.remount_unmounted(true);
    assert_deleted(&t, "wal.db", at);
    let n: i64 = Connection::open(t.path("delete.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    create(&t, "wal.db", "WAL", 1);
    assert!(txid(&t, "wal.db") > at);
    let n: i64 = Connection::open(t.path("wal.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn node_and_python_deletes_work_and_create_drop_create_cycles() {
    let t = TestMount::new(true);
    let name = "cycle.db";
    let mut expected_txid = 0;
    for round in 0..3 {
        create(&t, name, if round % 2 == 0 { "WAL" } else { "DELETE" }, 2);
        let before = txid(&t, name);
        assert!(before > expected_txid, "round {round}");
        let path = t.path(name);
        let (ok, _, err) = if round == 1 {
            python(
                "import os, sys; os.remove(sys.argv[1])",
                &[path.to_str().unwrap()],
            )
        } else {
            let out = Command::new("node")
                .args(["-e", "require('fs').rmSync(process.argv[1])"])
                .arg(&path)
                .output()
                .expect("run node");
            (
                out.status.success(),
                String::new(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        assert!(ok, "round {round}: delete failed: {err}");
        assert_deleted(&t, name, before + 1);
        expected_txid = before + 1;
    }
    // Deleting what is already gone is ENOENT, as anywhere.
    let err = std::fs::remove_file(t.path(name)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn rm_on_replica_is_refused_and_changes_nothing() {
    let mut t = TestMount::new(true);
    create(&t, "r.db", "WAL", 2);
    t.remount(false);
    let before = (txid(&t, "r.db"), ltx_files(t.data.path(), "r.db").len());
    let err = std::fs::remove_file(t.path("r.db")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let (ok, out, _) = python(
        "import os, sys\ntry:\n    os.remove(sys.argv[1])\nexcept OSError as e:\n    print(type(e).__name__)",
        &[t.path("r.db").to_str().unwrap()],
    );
    assert!(ok);
    assert_eq!(out.trim(), "PermissionError");
    assert_eq!(
        before,
        (txid(&t, "r.db"), ltx_files(t.data.path(), "r.db").len())
    );
    assert!(t.db_file("r.db").exists());
    let n: i64 = Connection::open(t.path("r.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}
