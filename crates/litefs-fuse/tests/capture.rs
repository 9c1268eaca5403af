//! The core invariant through a real mount: whatever SQLite clients do, in
//! every journal mode, replaying the LTX log gives exactly the database.

mod common;

use common::TestMount;
use rusqlite::Connection;

const MODES: [&str; 4] = ["DELETE", "TRUNCATE", "PERSIST", "WAL"];

fn workload(conn: &Connection) {
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
        .unwrap();
    for i in 0..30 {
        let tx = conn.unchecked_transaction().unwrap();
        for j in 0..20 {
            tx.execute(
                "INSERT INTO t (v, n) VALUES (?1, ?2)",
                (format!("row {i}-{j} {}", "x".repeat(j * 37)), i * j),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    conn.execute("UPDATE t SET v = v || '!' WHERE n % 3 = 0", [])
        .unwrap();
    conn.execute("DELETE FROM t WHERE n % 5 = 1", []).unwrap();
    // A rolled-back transaction must leave no trace in the log.
    let tx = conn.unchecked_transaction().unwrap();
    tx.execute("DELETE FROM t", []).unwrap();
    tx.rollback().unwrap();
    conn.execute_batch("CREATE INDEX t_n ON t (n); VACUUM;")
        .unwrap();
    // A transaction larger than the page cache spills pages to the WAL
    // before it commits and then rewrites some of them: SQLite writes such
    // frames with zeroed salts and fixes them after the commit frame.
    conn.execute_batch(
        "PRAGMA cache_size = 10;
         BEGIN;
         UPDATE t SET v = v || 'spill';
         UPDATE t SET v = substr(v, 1, 40) WHERE n % 2 = 0;
         INSERT INTO t (v, n) SELECT v, n + 1000 FROM t;
         COMMIT;
         PRAGMA cache_size = -2000;",
    )
    .unwrap();
}

#[test]
fn ltx_log_is_the_database_in_every_journal_mode() {
    let t = TestMount::new(true);
    for mode in MODES {
        let name = format!("{}.db", mode.to_lowercase());
        {
            let conn = Connection::open(t.path(&name)).unwrap();
            let got: String = conn
                .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(got.to_uppercase(), mode);
            workload(&conn);
            let ok: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
            let count: i64 = conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert!(count > 400, "{mode}: {count} rows");
        }
        // Closing the last connection checkpoints a WAL into the file.
        let replayed = t.replay(&name);
        let file = std::fs::read(t.db_file(&name)).unwrap();
        assert_eq!(replayed.len(), file.len(), "{mode}: size");
        assert!(
            replayed == file,
            "{mode}: replayed log differs from the database"
        );
        let pos = std::fs::read_to_string(t.path(&format!("{name}-pos"))).unwrap();
        assert_eq!(pos, t.store.db(&name).unwrap().pos().to_pos_file());
        assert!(t.store.db(&name).unwrap().pos().txid > 30, "{mode}: {pos}");
    }
}
