//! Crashes between SQLite's WAL commit and the LTX file of the transaction.
//!
//! In WAL mode the LTX file is written after the commit frame reaches the
//! WAL (`litefs/src/store/log_writer.rs`). A crash can leave the WAL ahead
//! of the log (rebuilt from the WAL at startup) or, after a power loss that
//! took WAL frames SQLite had not synced, the log ahead of the WAL (rolled
//! forward, also from the middle of a group-commit file). Each case is a
//! copy of a live data dir, taken while the connection is open and the WAL
//! unchecked-pointed, with the crash's effect applied to the copy.

mod common;

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use common::{open_store, replay_log, TestMount};
use rusqlite::Connection;

const NAME: &str = "app.db";

/// A WAL database with 40-odd transactions of every shape capture handles:
/// inserts, updates, a transaction larger than the page cache (SQLite
/// spills and rewrites frames), deletes that shrink the file (auto_vacuum).
/// The connection stays open so nothing is checkpointed.
fn workload(t: &TestMount) -> Connection {
    let conn = Connection::open(t.path(NAME)).unwrap();
    conn.execute_batch(
        "PRAGMA auto_vacuum = FULL; PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         PRAGMA cache_size = 20; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    for i in 0..30 {
        conn.execute(
            "INSERT INTO t (v) VALUES (?1)",
            [format!("{i} {}", "x".repeat(i * 37 % 900))],
        )
        .unwrap();
    }
    conn.execute_batch(
        "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
         INSERT INTO t (v) SELECT printf('%.300c', 'b') FROM n;
         UPDATE t SET v = v || 'u' WHERE id < 100; COMMIT;",
    )
    .unwrap();
    for i in 0..5 {
        conn.execute(
            "UPDATE t SET v = ?1 WHERE id % 7 = ?2",
            rusqlite::params!["upd", i],
        )
        .unwrap();
    }
    conn.execute("DELETE FROM t WHERE id > 200", []).unwrap();
    conn.execute("DELETE FROM t WHERE id > 50", []).unwrap();
    conn
}

/// The workload with every LTX file written; the position and rows the
/// open connection sees.
fn logged_workload() -> (TestMount, Connection, litefs::store::Pos, (i64, String)) {
    let t = TestMount::new(true);
    let conn = workload(&t);
    let db = t.store.db(NAME).unwrap();
    db.flush_log().unwrap();
    let (pos, want) = (db.pos(), rows(&conn));
    (t, conn, pos, want)
}

fn rows(conn: &Connection) -> (i64, String) {
    conn.query_row("SELECT count(*), group_concat(v) FROM t", [], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        ))
    })
    .unwrap()
}

/// What a crash at this moment leaves on disk: a copy of the data dir.
fn crash_copy(t: &TestMount) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(t.data.path(), copy.path());
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn db_dir(data: &Path) -> PathBuf {
    data.join("dbs").join(NAME)
}

fn header(path: &Path) -> ltx::Header {
    ltx::verify(BufReader::new(File::open(path).unwrap()))
        .unwrap()
        .0
}

/// Opens the store on `data` (recovery runs) and checks what a user would:
/// the position the original had, the log replays to the database bytes,
/// and SQLite reads the rows the original connection reads.
fn recover_and_check(data: &Path, want_pos: litefs::store::Pos, want_rows: &(i64, String)) {
    let store = open_store(data);
    let db = store.db(NAME).unwrap();
    assert_eq!(db.pos(), want_pos);
    let replayed = replay_log(&db);
    let db_file = db_dir(data).join("database");
    assert_eq!(
        replayed,
        fs::read(&db_file).unwrap(),
        "log replay != database"
    );
    store.close().unwrap();
    drop(store);
    let check = tempfile::tempdir().unwrap();
    let copy = check.path().join("x.db");
    fs::copy(&db_file, &copy).unwrap();
    let conn = Connection::open(&copy).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(&rows(&conn), want_rows);
}

#[test]
fn wal_transactions_without_ltx_files_are_rebuilt_at_startup() {
    let (t, conn, pos, want) = logged_workload();
    let copy = crash_copy(&t);
    // The log writer had not written the last files (one may be a group
    // commit of several transactions); a torn temp file of the next one.
    let files = common::ltx_files(copy.path(), NAME);
    let first_lost = header(&files[files.len() - 3]).min_txid;
    for f in &files[files.len() - 3..] {
        fs::remove_file(f).unwrap();
    }
    let torn = files[files.len() - 1].with_extension("ltx.tmp");
    fs::write(&torn, b"LTX1 torn").unwrap();
    assert!(first_lost < pos.txid);

    recover_and_check(copy.path(), pos, &want);
    // The rebuilt files carry the WAL span they came from.
    let rebuilt: Vec<_> = common::ltx_files(copy.path(), NAME)
        .iter()
        .map(|f| header(f))
        .filter(|h| h.min_txid >= first_lost)
        .collect();
    assert_eq!(rebuilt.len() as u64, pos.txid - first_lost + 1);
    assert!(rebuilt
        .iter()
        .all(|h| h.wal_size > 0 && h.min_txid == h.max_txid));
    assert!(!torn.exists());
    drop(conn);
}

#[test]
fn log_ahead_of_a_wal_that_lost_frames_is_rolled_forward() {
    let (t, conn, pos, want) = logged_workload();
    let copy = crash_copy(&t);
    // A power loss took the WAL frames of the last three files' commits
    // (synchronous=NORMAL syncs the WAL only at checkpoints).
    let files = common::ltx_files(copy.path(), NAME);
    let cut = header(&files[files.len() - 3]).wal_offset as u64;
    File::options()
        .write(true)
        .open(db_dir(copy.path()).join("wal"))
        .unwrap()
        .set_len(cut)
        .unwrap();

    recover_and_check(copy.path(), pos, &want);
    drop(conn);
}

#[test]
fn wal_ending_inside_a_group_commit_file_is_rolled_forward() {
    let t = TestMount::new(true);
    let conn = workload(&t);
    let db = t.store.db(NAME).unwrap();
    // Three more transactions, each in its own file.
    db.flush_log().unwrap();
    let mut spans = Vec::new();
    for i in 0..3 {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("late {i}")])
            .unwrap();
        db.flush_log().unwrap();
        let last = db.ltx_log().last().unwrap().unwrap();
        let h = header(&last.path);
        assert_eq!((h.min_txid, h.max_txid), (db.pos().txid, db.pos().txid));
        spans.push((last.path, h));
    }
    let (pos, want) = (db.pos(), rows(&conn));

    let copy = crash_copy(&t);
    // The writer had put the three into one file (group commit), and the
    // WAL lost the frames of the last one: the database ends up inside the
    // file's range, at a state no file starts from.
    let log_dir = db_dir(copy.path()).join("ltx");
    let in_copy: Vec<PathBuf> = spans
        .iter()
        .map(|(p, _)| log_dir.join(p.file_name().unwrap()))
        .collect();
    merge(&in_copy);
    let (_, second) = &spans[1];
    File::options()
        .write(true)
        .open(db_dir(copy.path()).join("wal"))
        .unwrap()
        .set_len((second.wal_offset + second.wal_size) as u64)
        .unwrap();

    recover_and_check(copy.path(), pos, &want);
    drop(conn);
}

/// Replaces consecutive single-transaction files with one file holding the
/// newest version of each page, as the log writer writes a group commit.
fn merge(files: &[PathBuf]) {
    let mut pages = std::collections::BTreeMap::new();
    let mut headers = Vec::new();
    let mut post = 0;
    for f in files {
        let mut dec = ltx::Decoder::new(BufReader::new(File::open(f).unwrap())).unwrap();
        let h = *dec.header();
        let mut buf = vec![0u8; h.page_size as usize];
        while let Some(pgno) = dec.next_page(&mut buf).unwrap() {
            pages.insert(pgno, buf.clone());
        }
        post = dec.finish().unwrap().post_apply_checksum;
        pages.retain(|&p, _| p <= h.commit);
        headers.push(h);
        fs::remove_file(f).unwrap();
    }
    let (first, last) = (headers[0], headers[headers.len() - 1]);
    let header = ltx::Header {
        min_txid: first.min_txid,
        max_txid: last.max_txid,
        pre_apply_checksum: first.pre_apply_checksum,
        commit: last.commit,
        wal_offset: first.wal_offset,
        wal_size: last.wal_offset + last.wal_size - first.wal_offset,
        ..last
    };
    let path = files[0]
        .parent()
        .unwrap()
        .join(ltx::format_filename(header.min_txid, header.max_txid));
    let mut enc = ltx::Encoder::new(File::create(&path).unwrap(), &header).unwrap();
    for (pgno, data) in &pages {
        enc.encode_page(*pgno, data).unwrap();
    }
    enc.finish(post).unwrap();
}

#[test]
fn commits_in_a_burst_share_files_and_the_log_is_still_the_database() {
    let t = TestMount::new(true);
    let conn = Connection::open(t.path(NAME)).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    for i in 0..500 {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("burst {i}")])
            .unwrap();
    }
    // A checkpoint copies frames into the database file only once their
    // transactions are in the log (what makes rebuilding from the WAL exact).
    let db = t.store.db(NAME).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    assert_eq!(db.log_pos(), db.pos(), "checkpoint ran ahead of the log");

    let replayed = t.replay(NAME);
    let files = db.ltx_log().list().unwrap();
    assert!(
        files.iter().any(|e| e.min_txid < e.max_txid),
        "500 commits in a burst gave {} files, none holding several transactions",
        files.len()
    );
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    assert_eq!(replayed, fs::read(t.db_file(NAME)).unwrap());
}

#[test]
fn a_failed_ltx_write_stops_writes_and_the_wal_keeps_the_commit() {
    let t = TestMount::new(true);
    let conn = workload(&t);
    let db = t.store.db(NAME).unwrap();
    db.flush_log().unwrap();
    let log_dir = db_dir(t.data.path()).join("ltx");
    let aside = db_dir(t.data.path()).join("ltx-aside");
    // The log directory becomes unusable (a file where it was).
    fs::rename(&log_dir, &aside).unwrap();
    fs::write(&log_dir, b"not a directory").unwrap();

    conn.execute(
        "INSERT INTO t (v) VALUES ('committed, log write fails')",
        [],
    )
    .unwrap();
    let err = db.flush_log().unwrap_err().to_string();
    assert!(err.contains("could not be written"), "{err}");
    let fatal = t.store.fatal().expect("the store stops taking writes");
    assert!(fatal.contains(NAME), "{fatal}");
    let refused = conn.execute("INSERT INTO t (v) VALUES ('refused')", []);
    assert!(refused.is_err(), "a commit after the failure must fail");
    let (pos, want) = (db.pos(), rows(&conn));
    assert_eq!(
        want.0, 51,
        "the committed row is there, the refused one not"
    );

    // Restart once the directory is back: the commit is logged from the WAL.
    let copy = crash_copy(&t);
    let copy_log = db_dir(copy.path()).join("ltx");
    fs::remove_file(&copy_log).unwrap();
    fs::rename(db_dir(copy.path()).join("ltx-aside"), &copy_log).unwrap();
    recover_and_check(copy.path(), pos, &want);
    drop(conn);
}
