//! Real SQLite clients other than rusqlite (the `sqlite3` CLI and Python's
//! sqlite3, both on the system's libsqlite3) through a mount, in every
//! journal mode: the database passes `integrity_check`, every LTX file
//! verifies, and replaying the log gives exactly the database file. Then
//! several reader processes against one writer: no reader ever sees half a
//! transaction.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ltx_files, python, sqlite3_cli, TestMount};
use rusqlite::Connection;

const MODES: [&str; 4] = ["DELETE", "TRUNCATE", "PERSIST", "WAL"];

/// Verifies each LTX file, then replays the log and compares it with the
/// database file byte for byte.
fn check_log_is_database(t: &TestMount, name: &str, what: &str) {
    let files = ltx_files(t.data.path(), name);
    assert!(!files.is_empty(), "{what}: no LTX files");
    for f in &files {
        let r = std::io::BufReader::new(std::fs::File::open(f).unwrap());
        if let Err(e) = ltx::verify(r) {
            panic!("{what}: {} does not verify: {e}", f.display());
        }
    }
    let replayed = t.replay(name);
    let file = std::fs::read(t.db_file(name)).unwrap();
    assert_eq!(replayed.len(), file.len(), "{what}: size");
    assert!(
        replayed == file,
        "{what}: replayed log differs from the database"
    );
    let pos = std::fs::read_to_string(t.path(&format!("{name}-pos"))).unwrap();
    assert_eq!(pos, t.store.db(name).unwrap().pos().to_pos_file(), "{what}");
}

fn integrity_ok(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "{}", path.display());
}

#[test]
fn sqlite3_cli_in_every_journal_mode() {
    let t = TestMount::new(true);
    for mode in MODES {
        let name = format!("cli-{}.db", mode.to_lowercase());
        let db = t.path(&name);
        let (ok, out, err) = sqlite3_cli(
            &db,
            &format!(
                "PRAGMA journal_mode = {mode};
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER);"
            ),
        );
        assert!(ok, "{mode}: {err}");
        assert_eq!(out.trim().to_uppercase(), mode);
        // Each invocation is a new process with several transactions.
        for round in 0..4 {
            let (ok, _, err) = sqlite3_cli(
                &db,
                &format!(
                    "BEGIN;
                     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 150)
                       INSERT INTO t (v, n) SELECT printf('r{round} %d %s', i, hex(randomblob(i % 97))), i FROM c;
                     COMMIT;
                     UPDATE t SET v = v || '!' WHERE n % 7 = {round};
                     DELETE FROM t WHERE n % 11 = {round};
                     BEGIN; DELETE FROM t; ROLLBACK;"
                ),
            );
            assert!(ok, "{mode} round {round}: {err}");
        }
        let (ok, out, err) = sqlite3_cli(
            &db,
            "CREATE INDEX t_n ON t (n); VACUUM; PRAGMA integrity_check; SELECT count(*) FROM t;",
        );
        assert!(ok, "{mode}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ok", "{mode}: {out}");
        assert!(lines[1].parse::<u32>().unwrap() > 400, "{mode}: {out}");
        integrity_ok(&db);
        check_log_is_database(&t, &name, &format!("sqlite3 CLI {mode}"));
    }
}

#[test]
fn python_sqlite3_in_every_journal_mode() {
    let script = r#"
import sqlite3, sys
path, mode = sys.argv[1], sys.argv[2]
c = sqlite3.connect(path, isolation_level=None)
got = c.execute("PRAGMA journal_mode = " + mode).fetchone()[0]
assert got.upper() == mode, got
c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER)")
for i in range(25):
    c.execute("BEGIN")
    c.executemany("INSERT INTO t (v, n) VALUES (?, ?)",
                  [(bytes([j % 251]) * (j * 31 % 3000), i * j) for j in range(20)])
    c.execute("COMMIT")
c.execute("UPDATE t SET v = zeroblob(5000) WHERE n % 4 = 0")
c.execute("DELETE FROM t WHERE n % 3 = 1")
c.execute("BEGIN"); c.execute("DELETE FROM t"); c.execute("ROLLBACK")
c.execute("CREATE INDEX t_n ON t (n)")
c.execute("VACUUM")
print(c.execute("PRAGMA integrity_check").fetchone()[0])
print(c.execute("SELECT count(*) FROM t").fetchone()[0])
c.close()
"#;
    let t = TestMount::new(true);
    for mode in MODES {
        let name = format!("py-{}.db", mode.to_lowercase());
        let (ok, out, err) = python(script, &[t.path(&name).to_str().unwrap(), mode]);
        assert!(ok, "{mode}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ok", "{mode}: {out}");
        assert!(lines[1].parse::<u32>().unwrap() > 250, "{mode}: {out}");
        integrity_ok(&t.path(&name));
        check_log_is_database(&t, &name, &format!("python {mode}"));
        assert!(t.store.db(&name).unwrap().pos().txid > 25, "{mode}");
    }
}

/// Rows of `acct` always sum to TOTAL; every transaction moves an amount
/// between two rows and bumps `gen` on both, writing several pages.
const TOTAL: i64 = 100_000;
const ACCOUNTS: i64 = 200;

const READER: &str = r#"
import sqlite3, sys, os, time
path, stop, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(path, isolation_level=None, timeout=10)
reads, gens = 0, set()
deadline = time.time() + 30
def check():
    s, n, g = c.execute("SELECT sum(bal), count(*), sum(gen) FROM acct").fetchone()
    if s != total or n != 200 or g % 2 != 0:
        print("TORN sum=%d count=%d gen=%d" % (s, n, g))
        sys.exit(1)
    gens.add(g)
check()
open("%s.ready.%d" % (stop, os.getpid()), "w").close()
while not os.path.exists(stop) and time.time() < deadline:
    try:
        check()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            continue
        raise
    reads += 1
check()
print(reads, len(gens))
"#;

fn spawn_reader(db: &Path, stop: &Path) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(READER)
        .arg(db)
        .arg(stop)
        .arg(TOTAL.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ready_count(dir: &Path, mode: &str) -> usize {
    let prefix = format!("stop-{mode}.ready.");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
        .count()
}

#[test]
fn readers_never_see_half_a_transaction() {
    let t = TestMount::new(true);
    for mode in ["DELETE", "WAL"] {
        let name = format!("acct-{}.db", mode.to_lowercase());
        let db = t.path(&name);
        let conn = Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))
            .unwrap();
        // Wide rows spread the accounts over many pages, so one transaction
        // writes several pages and a torn view would show in the sum.
        conn.execute_batch(&format!(
            "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER, gen INTEGER, pad BLOB);
             WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {last})
               INSERT INTO acct SELECT i, {each}, 0, zeroblob(600) FROM c;",
            last = ACCOUNTS - 1,
            each = TOTAL / ACCOUNTS
        ))
        .unwrap();

        let stop = t.data.path().join(format!("stop-{mode}"));
        let readers: Vec<Child> = (0..3).map(|_| spawn_reader(&db, &stop)).collect();
        // Start writing once every reader has read once (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(20);
        while ready_count(t.data.path(), mode) < readers.len() {
            assert!(Instant::now() < deadline, "{mode}: readers did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let started = Instant::now();
        let mut txs = 0;
        while txs < 400 && started.elapsed() < Duration::from_secs(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let from = (seed % ACCOUNTS as u64) as i64;
            let to = ((seed >> 20) % ACCOUNTS as u64) as i64;
            let amount = ((seed >> 40) % 50) as i64;
            let tx = conn.unchecked_transaction().unwrap();
            tx.execute(
                "UPDATE acct SET bal = bal - ?1, gen = gen + 1 WHERE id = ?2",
                (amount, from),
            )
            .unwrap();
            tx.execute(
                "UPDATE acct SET bal = bal + ?1, gen = gen + 1 WHERE id = ?2",
                (amount, to),
            )
            .unwrap();
            tx.commit().unwrap();
            txs += 1;
        }
        std::fs::write(&stop, b"").unwrap();
        for r in readers {
            let out = r.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{mode}: reader failed: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let seen: Vec<u64> = stdout
                .split_whitespace()
                .map(|w| w.parse().unwrap())
                .collect();
            // At least the state before and the state after the writes.
            assert!(seen[1] >= 2, "{mode}: a reader saw no commit: {stdout}");
            eprintln!(
                "{mode}: reader: {} reads, {} states; writer {txs} tx",
                seen[0], seen[1]
            );
        }
        let sum: i64 = conn
            .query_row("SELECT sum(bal) FROM acct", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, TOTAL);
        drop(conn);
        integrity_ok(&db);
        check_log_is_database(&t, &name, &format!("readers {mode}"));
        assert!(t.store.db(&name).unwrap().pos().txid >= txs, "{mode}");
    }
}
