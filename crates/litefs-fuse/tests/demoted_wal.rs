//! A primary demoted while a connection keeps its WAL open: the WAL is
//! checkpointed into the database through the mount by SQLite itself and
//! removed, so that connections opened after the demotion get "attempt to
//! write a readonly database", every connection keeps reading, the node can
//! apply the next primary's transactions, and after a promotion the same
//! connections write again. The connection that held the WAL open at the
//! demotion still gets "disk I/O error" on a write: SQLite decides a WAL
//! handle is read-only only when it opens it (see README "Writes on a
//! replica"). The apply here runs without the mount's lock, which that
//! connection's SHARED lock would hold off (litefs-cli tests/demoted_wal.rs
//! closes it first).

mod common;

use std::time::{Duration, Instant};

use common::{replay_log, sqlite3_cli, TestMount};
use rusqlite::{Connection, ErrorCode};

fn count(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// The newest committed version of page `pgno` in the data dir's WAL.
fn wal_page(wal: &[u8], page_size: usize, pgno: u32) -> Option<Vec<u8>> {
    let mut found = None;
    let mut off = 32;
    while off + 24 + page_size <= wal.len() {
        if u32::from_be_bytes(wal[off..off + 4].try_into().unwrap()) == pgno {
            found = Some(wal[off + 24..off + 24 + page_size].to_vec());
        }
        off += 24 + page_size;
    }
    found
}

#[test]
fn demotion_with_a_live_wal_connection() {
    let t = TestMount::new(true);
    let name = "w.db";
    let live = Connection::open(t.path(name)).unwrap();
    live.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);",
    )
    .unwrap();
    let wal_file = t.data.path().join("dbs").join(name).join("wal");
    let db = t.store.db(name).unwrap();
    let page_size = db.page_size() as usize;
    // The table's page as committed: in the WAL only, not yet in the file.
    let page2 = wal_page(&std::fs::read(&wal_file).unwrap(), page_size, 2).unwrap();
    let pos = db.pos();

    t.store.set_primary(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal_file.exists() {
        assert!(Instant::now() < deadline, "the WAL was never checkpointed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!db.has_wal_frames());
    assert_eq!(db.pos(), pos, "the checkpoint changed the position");

    // The open connection reads; its write fails and changes nothing.
    assert_eq!(count(&live), 2);
    let err = live.execute("INSERT INTO t VALUES (3)", []).unwrap_err();
    eprintln!("write on the connection open at the demotion: {err}");
    assert_eq!(db.pos(), pos);
    assert_eq!(count(&live), 2);

    // Connections opened since: read-only, reading the same rows.
    let fresh = Connection::open(t.path(name)).unwrap();
    let err = fresh.execute("INSERT INTO t VALUES (3)", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly), "{err}");
    assert_eq!(count(&fresh), 2);
    let (ok, _, stderr) = sqlite3_cli(&t.path(name), "INSERT INTO t VALUES (3);");
    assert!(
        !ok && stderr.contains("attempt to write a readonly database"),
        "{stderr}"
    );
    let (ok, out, _) = sqlite3_cli(&t.path(name), "SELECT count(*) FROM t;");
    assert!(ok && out.trim() == "2", "{out}");

    // The next primary's transaction applies: the database file holds the
    // committed pages (it rewrites page 2 with what the WAL had).
    let next = ltx::Header {
        page_size: page_size as u32,
        commit: db.commit_pages(),
        min_txid: pos.txid + 1,
        max_txid: pos.txid + 1,
        pre_apply_checksum: pos.post_apply_checksum,
        node_id: 7,
        ..Default::default()
    };
    let path = t.data.path().join("next.ltx");
    let mut enc = ltx::Encoder::new(std::fs::File::create(&path).unwrap(), &next).unwrap();
    enc.encode_page(2, &page2).unwrap();
    enc.finish(pos.post_apply_checksum).unwrap();
    db.apply_ltx(&path).unwrap();
    assert_eq!(db.pos().txid, pos.txid + 1);
    assert_eq!(count(&live), 2);

    // Promoted again: both connections write.
    t.store.set_primary(true);
    live.execute("INSERT INTO t VALUES (3)", []).unwrap();
    fresh.execute("INSERT INTO t VALUES (4)", []).unwrap();
    assert_eq!(count(&fresh), 4);
    drop((live, fresh));
    assert_eq!(
        replay_log(&db),
        std::fs::read(t.db_file(name)).unwrap(),
        "the log no longer replays to the database"
    );
}
