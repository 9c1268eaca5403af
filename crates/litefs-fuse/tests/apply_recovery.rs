//! A replica killed in the middle of applying a batch of transactions: the
//! files are in its log, the `applying` marker names them, and the
//! database is half written. Opening the store again must finish the
//! batch and end exactly at the primary's state.

mod common;

use std::os::unix::fs::FileExt;

use common::{ltx_files, TestMount};
use litefs::store::{Store, StoreOptions};

#[test]
fn interrupted_batch_apply_is_finished_at_startup() {
    // A primary's log: a snapshot-like first transaction, then several.
    let primary = TestMount::new(true);
    let conn = rusqlite::Connection::open(primary.path("t.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (v TEXT)").unwrap();
    for i in 0..6 {
        conn.execute(
            "INSERT INTO t VALUES (?1)",
            [format!("{i} {}", "z".repeat(3000))],
        )
        .unwrap();
    }
    drop(conn);
    let files = ltx_files(primary.data.path(), "t.db");
    assert!(files.len() >= 7, "{files:?}");
    let want = std::fs::read(primary.db_file("t.db")).unwrap();
    let want_pos = primary.store.db("t.db").unwrap().pos();

    // The replica applies the first two files normally.
    let data = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(data.path());
    opts.no_fsync = true;
    opts.follower = true;
    let replica = Store::open(opts.clone()).unwrap();
    let db = replica.create_db_for_replication("t.db").unwrap();
    let stage = |f: &std::path::Path| {
        let tmp = db.ltx_log().dir().join(format!(
            "{}.stage",
            f.file_name().unwrap().to_string_lossy()
        ));
        std::fs::copy(f, &tmp).unwrap();
        tmp
    };
    db.apply_ltx_batch(&[stage(&files[0]), stage(&files[1])])
        .unwrap();

    // The crash: the rest renamed into the log, the marker naming them,
    // and the database half way through the first of them.
    let rest = &files[2..];
    for f in rest {
        std::fs::copy(f, db.ltx_log().dir().join(f.file_name().unwrap())).unwrap();
    }
    let names: Vec<String> = rest
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    std::fs::write(db.dir().join("applying"), names.join("\n")).unwrap();
    let db_file = db.dir().join("database");
    drop(db);
    drop(replica);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&db_file)
        .unwrap();
    f.write_all_at(&[0xab; 4096], 4096).unwrap();
    drop(f);

    let replica = Store::open(opts).unwrap();
    assert_eq!(replica.db("t.db").unwrap().pos(), want_pos);
    assert!(
        std::fs::read(&db_file).unwrap() == want,
        "replica database differs after recovery"
    );
    assert!(!db_file.with_file_name("applying").exists());
}
