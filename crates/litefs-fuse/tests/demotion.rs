//! A demotion in the middle of a rollback-journal transaction whose pages
//! SQLite already wrote into the database (a cache spill): the commit is
//! refused, and the store rolls the pages back from the journal so the
//! database matches its position again and the log still replays to it.

mod common;

use common::TestMount;
use litefs::store::Verified;
use rusqlite::Connection;

#[test]
fn transaction_cut_off_by_a_demotion_is_rolled_back() {
    let t = TestMount::new(true);
    let name = "spill.db";
    let conn = Connection::open(t.path(name)).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; CREATE TABLE t (x BLOB); INSERT INTO t VALUES (zeroblob(100));",
    )
    .unwrap();
    let before = t.store.db(name).unwrap().pos();
    let image = std::fs::read(t.db_file(name)).unwrap();
    // A tiny cache makes SQLite write pages into the database mid-transaction.
    conn.execute_batch("PRAGMA cache_size = 2; BEGIN;").unwrap();
    for _ in 0..200 {
        conn.execute("INSERT INTO t VALUES (randomblob(3000))", [])
            .unwrap();
    }
    assert!(
        std::fs::read(t.db_file(name)).unwrap() != image,
        "SQLite did not spill pages before the commit; the test proves nothing"
    );
    t.store.set_primary(false);
    assert!(
        conn.execute_batch("COMMIT").is_err(),
        "a demoted node committed"
    );
    drop(conn);

    let db = t.store.db(name).unwrap();
    assert_eq!(db.pos(), before);
    assert!(
        matches!(db.verify_checksum().unwrap(), Verified::Ok(p) if p == before),
        "the database does not match its position after the rollback"
    );
    assert_eq!(std::fs::read(t.db_file(name)).unwrap(), image);
    assert_eq!(t.replay(name), image);
}
