//! A node killed at any moment starts again on its own, with the database
//! exactly the bytes its LTX log describes (the position unchanged, the log
//! replaying to the file), and nothing left behind:
//!
//! * killed inside a rollback-journal transaction that reused free-list
//!   pages, which SQLite does not journal (DELETE, TRUNCATE, PERSIST);
//! * killed again while its startup recovery was letting SQLite roll back
//!   the journal or checkpoint the WAL the first kill left, at several
//!   moments of it, and in the state right after recovery renamed the files
//!   for SQLite.
//!
//! The reproductions of ../shared/crash-repro (2026-11-30) as tests.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

mod common;

use common::node::{Config, Node};
use common::{logcheck, sqlite3};

const WAIT: Duration = Duration::from_secs(30);
const DB: &str = "app.db";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn db_dir(n: &Node) -> PathBuf {
    logcheck::db_dir(n, DB)
}

/// After a restart: the node runs, the database is intact, the log replays
/// to it byte for byte and nothing of a recovery is left in the data dir.
fn assert_recovered(n: &mut Node, what: &str, want_pos: Option<&str>) {
    let out = sqlite3(&n.db(DB), "PRAGMA integrity_check;");
    assert_eq!(
        text(&out.stdout).trim(),
        "ok",
        "{what}: {}\n{}",
        text(&out.stderr),
        n.log()
    );
    if let Some(want) = want_pos {
        assert_eq!(n.pos(DB).as_deref(), Some(want), "{what}: position moved");
    }
    let pos = n.pos(DB).unwrap();
    n.signal(Signal::SIGTERM);
    assert_eq!(n.wait_exit().code(), Some(0), "{what}: {}", n.log());
    logcheck::assert_clean_log(n, DB, &pos);
}

/// A `sqlite3` shell fed line by line, for a transaction left open.
struct Shell {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Shell {
    fn open(db: &Path) -> Shell {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Shell { child, out }
    }

    /// Sends `sql` followed by a marker query and waits for the marker.
    fn run(&mut self, sql: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}\nSELECT 'done-marker';").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "sqlite3 exited");
            if line.trim() == "done-marker" {
                return;
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Free-list pages, then a transaction that reuses them and spills into
/// the database file (cache_size 10), left open while the node is killed.
/// Returns the position before it.
fn crash_in_freelist_transaction(n: &mut Node, mode: &str) -> String {
    let out = sqlite3(
        &n.db(DB),
        &format!(
            "PRAGMA journal_mode={mode}; CREATE TABLE t(x);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<2000)
               INSERT INTO t SELECT randomblob(1000) FROM c;
             DELETE FROM t WHERE rowid > 200;"
        ),
    );
    assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
    let pos = n.pos(DB).unwrap();
    let mut shell = Shell::open(&n.db(DB));
    shell.run(&format!(
        "PRAGMA journal_mode={mode}; PRAGMA cache_size=10; BEGIN;
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)
           INSERT INTO t SELECT randomblob(1000) FROM c;"
    ));
    let journal = db_dir(n).join("journal");
    assert!(
        fs::metadata(&journal).map(|m| m.len()).unwrap_or(0) > 0,
        "{mode}: no journal while the transaction is open"
    );
    n.kill9().unwrap();
    drop(shell);
    pos
}

#[test]
fn killed_in_a_transaction_that_reused_free_pages_restarts_at_the_same_position() {
    for mode in ["DELETE", "TRUNCATE", "PERSIST"] {
        let mut n = Node::new(WAIT);
        n.config(Config::new(true));
        n.start();
        let pos = crash_in_freelist_transaction(&mut n, mode);
        n.start();
        assert!(
            n.log()
                .contains("restored pages SQLite's rollback leaves changed"),
            "{mode}: the crash did not leave unjournaled pages to restore:\n{}",
            n.log()
        );
        assert_recovered(&mut n, mode, Some(&pos));
    }
}

#[test]
fn killed_while_recovery_rolls_back_a_journal_with_reused_free_pages() {
    let mut n = Node::new(WAIT);
    n.config(Config::new(true));
    n.start();
    let pos = crash_in_freelist_transaction(&mut n, "DELETE");
    // Killed right after recovery handed the journal to SQLite, before
    // SQLite touched it; then again at once inside SQLite's rollback.
    let dir = db_dir(&n);
    fs::rename(dir.join("journal"), dir.join("database-journal")).unwrap();
    n.start();
    assert!(n
        .log()
        .contains("resuming a recovery interrupted by a crash"));
    assert_recovered(&mut n, "journal renamed for SQLite", Some(&pos));
}

/// A WAL of several MB that the killed node's log already holds, with the
/// acknowledged row count; the connection stays open so nothing is
/// checkpointed before the kill.
fn crash_with_a_large_wal(n: &mut Node) -> i64 {
    let mut shell = Shell::open(&n.db(DB));
    shell.run(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB);",
    );
    let mut rows = 0;
    while fs::metadata(db_dir(n).join("wal")).unwrap().len() < 8 << 20 {
        shell.run(
            "BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<50)
               INSERT INTO t(payload) SELECT randomblob(1000) FROM c;
             UPDATE t SET payload = randomblob(900) WHERE id % 97 = 3; COMMIT;",
        );
        rows += 50;
    }
    // Let the log writer finish, as after any acknowledged commit.
    std::thread::sleep(Duration::from_millis(300));
    n.kill9().unwrap();
    drop(shell);
    rows
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn killed_during_wal_recovery_at_any_moment_restarts() {
    let mut n = Node::new(WAIT);
    n.config(Config::new(true));
    n.start();
    let rows = crash_with_a_large_wal(&mut n);
    let pristine = n.file("pristine");
    copy_dir(&n.data(), &pristine);

    let check = |n: &mut Node, what: &str| {
        let out = sqlite3(&n.db(DB), "SELECT count(*) FROM t;");
        assert_eq!(
            text(&out.stdout).trim(),
            rows.to_string(),
            "{what}: acknowledged rows missing ({})\n{}",
            text(&out.stderr),
            n.log()
        );
        assert_recovered(n, what, None);
    };

    // The state right after recovery renamed the WAL for SQLite.
    copy_dir(&pristine, &n.data());
    let dir = db_dir(&n);
    fs::rename(dir.join("wal"), dir.join("database-wal")).unwrap();
    n.start();
    check(&mut n, "wal renamed for SQLite");

    // Killed at moments inside SQLite's checkpoint of an 8 MB WAL.
    for delay_ms in [0, 2, 5, 10, 20, 40] {
        copy_dir(&pristine, &n.data());
        let before = recoveries(&n);
        n.spawn(&[]);
        let deadline = Instant::now() + WAIT;
        while recoveries(&n) == before {
            assert!(Instant::now() < deadline, "no recovery:\n{}", n.log());
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        n.kill9().unwrap();
        n.start();
        check(&mut n, &format!("killed {delay_ms} ms into recovery"));
    }
}

/// How often the node's log says recovery handed files to SQLite.
fn recoveries(n: &Node) -> usize {
    n.log()
        .matches("recovering journal/WAL left by an unclean shutdown")
        .count()
}

fn litefs(args: &[&str]) -> std::process::Output {
    Command::new(common::LITEFS).args(args).output().unwrap()
}

fn recover(n: &Node, how: &[&str]) -> std::process::Output {
    let data = n.data();
    let mut args = vec![
        "recover",
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        DB,
    ];
    args.extend_from_slice(how);
    litefs(&args)
}

/// Starts the node expecting startup to fail; returns its log.
fn start_fails(n: &mut Node) -> String {
    n.spawn(&[]);
    let st = n.wait_exit();
    assert!(!st.success(), "litefs started on a mismatched database");
    n.log()
}

#[test]
fn a_real_mismatch_names_the_safe_way_out_and_recover_takes_it() {
    let mut n = Node::new(WAIT);
    // After a clean stop the full checksum runs in the background; strict
    // verification makes startup itself find the change.
    n.config(Config::new(true).extra("strict-verify: true\n"));
    n.start();
    let out = sqlite3(
        &n.db(DB),
        "CREATE TABLE t(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<500)
           INSERT INTO t SELECT printf('row %d', i) FROM c; UPDATE t SET x = x || '!' WHERE rowid % 3 = 0;",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pos = n.pos(DB).unwrap();
    // While the node runs, recover refuses to touch its data dir.
    let busy = recover(&n, &["--from-log"]);
    assert!(!busy.status.success());
    assert!(
        text(&busy.stderr).contains("in use by another litefs process"),
        "{}",
        text(&busy.stderr)
    );
    n.signal(Signal::SIGTERM);
    assert!(n.wait_exit().success());
    let database = db_dir(&n).join("database");
    let good_copy = n.file("good-copy.db");
    fs::copy(&database, &good_copy).unwrap();

    // A torn page: integrity_check fails, so the log must not restart from
    // the file; the log starts with a snapshot, so it can rebuild it.
    let mut bytes = fs::read(&database).unwrap();
    let ps = 4096;
    bytes[ps..ps + 12].fill(0xAB);
    fs::write(&database, &bytes).unwrap();
    let log = start_fails(&mut n);
    assert!(log.contains("FAILS PRAGMA integrity_check"), "{log}");
    assert!(
        log.contains("--from-log") && !log.contains("--keep-file"),
        "{log}"
    );
    let keep = recover(&n, &["--keep-file"]);
    assert!(
        !keep.status.success(),
        "restarted the log from a corrupt file"
    );
    assert!(
        text(&keep.stderr).contains("integrity_check"),
        "{}",
        text(&keep.stderr)
    );
    let rebuilt = recover(&n, &["--from-log"]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt.stderr));
    n.start();
    assert_eq!(
        n.pos(DB).as_deref(),
        Some(pos.as_str()),
        "rebuilt to another position"
    );
    let rows = sqlite3(&n.db(DB), "SELECT count(*) FROM t WHERE x LIKE '%!';");
    assert_eq!(text(&rows.stdout).trim(), "166");
    n.signal(Signal::SIGTERM);
    assert!(n.wait_exit().success());
    assert!(fs::read_dir(db_dir(&n)).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("replaced-")));

    // A sound database changed behind litefs's back: it may be kept, and
    // the log restarts from it above every TXID it had.
    let out = sqlite3(&database, "UPDATE t SET x = 'outside' WHERE rowid = 1;");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = start_fails(&mut n);
    assert!(
        log.contains("passes PRAGMA integrity_check") && log.contains("--keep-file"),
        "{log}"
    );
    let kept = recover(&n, &["--keep-file"]);
    assert!(kept.status.success(), "{}", text(&kept.stderr));
    n.start();
    let txid = |p: &str| u64::from_str_radix(p.split('/').next().unwrap(), 16).unwrap();
    assert!(txid(&n.pos(DB).unwrap()) > txid(&pos));
    let one = sqlite3(&n.db(DB), "SELECT x FROM t WHERE rowid = 1;");
    assert_eq!(text(&one.stdout).trim(), "outside");
    assert_recovered(&mut n, "log restarted from the kept file", None);

    // A copy from elsewhere (here: the one taken before) replaces it.
    let from = recover(&n, &["--from-file", good_copy.to_str().unwrap()]);
    assert!(from.status.success(), "{}", text(&from.stderr));
    n.start();
    let one = sqlite3(&n.db(DB), "SELECT x FROM t WHERE rowid = 1;");
    assert_eq!(text(&one.stdout).trim(), "row 1");
    assert_recovered(&mut n, "log restarted from a copy", None);
}
