//! Input the engine must refuse cleanly: writes to the database file that
//! are not page-aligned (EINVAL, nothing changes), and LTX files in the
//! data dir that are corrupt or truncated (startup fails naming the file,
//! and the way out the message gives works).

mod common;

use std::os::unix::fs::FileExt;

use common::{ltx_files, open_store, TestMount};
use litefs::store::{Store, StoreOptions};
use rusqlite::Connection;

fn make_db(t: &TestMount, name: &str, mode: &str, rows: usize) {
    let conn = Connection::open(t.path(name)).unwrap();
    conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))
        .unwrap();
    conn.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
    for i in 0..rows {
        conn.execute("INSERT INTO t VALUES (?1)", [format!("row {i}")])
            .unwrap();
    }
}

#[test]
fn misaligned_database_write_is_einval_and_changes_nothing() {
    let t = TestMount::new(true);
    for mode in ["DELETE", "WAL"] {
        let name = format!("{}.db", mode.to_lowercase());
        make_db(&t, &name, mode, 3);
        let before = std::fs::read(t.db_file(&name)).unwrap();
        let pos = t.store.db(&name).unwrap().pos();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(t.path(&name))
            .unwrap();
        for (offset, len) in [(100u64, 10usize), (0, 100), (4096, 4095), (1, 4096)] {
            let err = f.write_at(&vec![0xAB; len], offset).unwrap_err();
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EINVAL),
                "{mode}: write of {len} at {offset}: {err}"
            );
        }
        drop(f);
        assert_eq!(std::fs::read(t.db_file(&name)).unwrap(), before, "{mode}");
        assert_eq!(t.store.db(&name).unwrap().pos(), pos, "{mode}");
        // The database is still whole and writable.
        let conn = Connection::open(t.path(&name)).unwrap();
        conn.execute("INSERT INTO t VALUES ('after')", []).unwrap();
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        drop(conn);
        assert!(t.replay(&name) == std::fs::read(t.db_file(&name)).unwrap());
    }
}

fn try_open(data: &std::path::Path) -> Result<Store, String> {
    let mut opts = StoreOptions::new(data);
    opts.no_fsync = true;
    Store::open(opts).map_err(|e| e.to_string())
}

/// Breaks the newest LTX file with `damage`, checks that startup names it,
/// then follows the message's way out and checks the database is intact.
fn startup_names_broken_ltx(damage: impl Fn(&std::path::Path), what: &str) {
    let mut t = TestMount::new(true);
    make_db(&t, "app.db", "DELETE", 20);
    let rows_before = 21; // CREATE TABLE is a transaction too
    let last_txid = t.store.db("app.db").unwrap().pos().txid;
    assert_eq!(last_txid, rows_before);
    t.mount.take().unwrap().unmount();
    t.store.close().unwrap();

    let files = ltx_files(t.data.path(), "app.db");
    let newest = files.last().unwrap().clone();
    damage(&newest);
    let err = try_open(t.data.path())
        .err()
        .expect("startup accepted a broken LTX file");
    eprintln!("{what}: {err}");
    assert!(
        err.contains(&newest.display().to_string()),
        "{what}: error does not name the file: {err}"
    );
    assert!(
        err.contains(&format!(
            "move the directory {} aside",
            newest.parent().unwrap().display()
        )),
        "{what}: no way out given: {err}"
    );

    // The way out the message gives: move the log directory aside.
    let ltx_dir = newest.parent().unwrap();
    std::fs::rename(ltx_dir, t.data.path().join("ltx-aside")).unwrap();
    let store =
        try_open(t.data.path()).unwrap_or_else(|e| panic!("{what}: after the way out: {e}"));
    let db = store.db("app.db").unwrap();
    assert!(
        db.pos().txid >= last_txid,
        "{what}: TXID went back to {}",
        db.pos().txid
    );
    drop(store);
    // Mount again: every row is there and the new log replays to the file.
    t.store = std::sync::Arc::new(open_store(t.data.path()));
    t.store.set_primary(true);
    t.mount = Some(litefs_fuse::mount(t.store.clone(), t.dir.path(), &Default::default()).unwrap());
    let conn = Connection::open(t.path("app.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 20, "{what}");
    conn.execute("INSERT INTO t VALUES ('after')", []).unwrap();
    drop(conn);
    assert!(t.replay("app.db") == std::fs::read(t.db_file("app.db")).unwrap());
}

#[test]
fn corrupt_ltx_file_fails_startup_naming_it() {
    startup_names_broken_ltx(
        |p| {
            let mut b = std::fs::read(p).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 0xFF;
            std::fs::write(p, b).unwrap();
        },
        "corrupt",
    );
}

#[test]
fn truncated_ltx_file_fails_startup_naming_it() {
    startup_names_broken_ltx(
        |p| {
            let len = std::fs::metadata(p).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len - 20)
                .unwrap();
        },
        "truncated",
    );
}

#[test]
fn corrupt_header_magic_fails_startup_naming_it() {
    startup_names_broken_ltx(
        |p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_at(b"XXXX", 0).unwrap();
        },
        "bad magic",
    );
}

#[test]
fn a_follower_with_a_torn_ltx_file_resyncs_instead_of_refusing_to_start() {
    let mut t = TestMount::new(true);
    make_db(&t, "app.db", "DELETE", 5);
    t.mount.take().unwrap().unmount();
    t.store.close().unwrap();
    // What a power cut leaves of a follower's unsynced newest file.
    let newest = ltx_files(t.data.path(), "app.db").pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert!(try_open(t.data.path()).is_err(), "a candidate must refuse");
    let mut opts = StoreOptions::new(t.data.path());
    opts.no_fsync = true;
    opts.follower = true;
    let store = Store::open(opts).expect("a follower starts and resyncs");
    assert_eq!(
        store.db("app.db").unwrap().pos(),
        litefs::store::Pos::default(),
        "the follower must ask the primary for a snapshot"
    );
    let db_dir = t.data.path().join("dbs/app.db");
    let kept = std::fs::read_dir(&db_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("replaced-"))
        .expect("the damaged log is kept aside");
    assert!(kept
        .path()
        .join("ltx")
        .join(newest.file_name().unwrap())
        .exists());
}
