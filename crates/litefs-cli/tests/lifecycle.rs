//! The `litefs` binary end to end: `litefs mount -config X -- CMD` with a
//! real litefs.yml, exec and `if-candidate`, exit codes, SIGTERM, kill -9
//! and the stale mount it leaves (the kill -9 loop under writers is in
//! kill9_loop.rs), import/export, `ltx verify`/`ltx dump`, and
//! the errors for a broken config, a corrupt LTX file and a misaligned
//! write.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

mod common;

use common::node::{Config, Node};
use common::{is_mounted, sqlite3, LITEFS};
const WAIT: Duration = Duration::from_secs(15);

/// A node of these tests: one at a time, each in its own directory.
fn node() -> Node {
    Node::new(WAIT)
}

/// A replica's config. No primary runs in these tests: skip-sync lets exec
/// start without first catching up with it.
fn replica() -> Config {
    Config::new(false)
        .primary("primary-host", "http://127.0.0.1:1")
        .skip_sync()
}

impl Node {
    fn ltx_files(&self, db: &str) -> Vec<PathBuf> {
        let dir = self.data().join("dbs").join(db).join("ltx");
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "ltx"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn litefs(args: &[&str]) -> Output {
    Command::new(LITEFS).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wait_for(path: &Path, what: &str, node: &Node) {
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what}:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ltx_max_txid(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_str().unwrap();
    ltx::parse_filename(name).unwrap().1
}

#[test]
fn exec_exit_code_becomes_litefs_exit_code_and_mount_goes_away() {
    let mut n = node();
    n.config(Config::new(true));
    let db = n.mnt().join("app.db");
    let script = format!(
        "sqlite3 {db} 'PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);' >/dev/null \
         && test -f {mnt}/app.db-pos && exit 7",
        db = db.display(),
        mnt = n.mnt().display()
    );
    n.spawn(&["sh", "-c", &script]);
    let st = n.wait_exit();
    assert_eq!(st.code(), Some(7), "{}", n.log());
    assert!(!is_mounted(&n.mnt()), "mount left behind");
    let files = n.ltx_files("app.db");
    assert!(files.len() >= 2, "{files:?}");

    // `ltx verify` accepts every file the mount wrote.
    let mut args = vec!["ltx", "verify"];
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = litefs(&args);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout).matches(": ok (").count(), files.len());
}

#[test]
fn if_candidate_is_honoured_and_replica_refuses_writes() {
    let exec = |n: &Node| {
        format!(
            "exec:\n  - cmd: \"touch {m}\"\n    if-candidate: true\n  - cmd: \"sh -c 'echo app > {a}; exit 3'\"\n",
            m = n.file("migrated").display(),
            a = n.file("app-ran").display()
        )
    };
    // Candidate: the migration runs, then the app.
    let mut n = node();
    n.config(Config::new(true).extra(&exec(&n)));
    n.spawn(&[]);
    assert_eq!(n.wait_exit().code(), Some(3), "{}", n.log());
    assert!(n.file("migrated").exists());
    assert!(n.file("app-ran").exists());
    assert!(!is_mounted(&n.mnt()));

    // Populate a database as primary, then come back as a replica.
    n.config(Config::new(true));
    n.start();
    let db = n.mnt().join("app.db");
    for mode in ["DELETE", "WAL"] {
        let out = sqlite3(
            &db,
            &format!("PRAGMA journal_mode={mode}; CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1);"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    n.signal(Signal::SIGTERM);
    assert_eq!(n.wait_exit().code(), Some(0), "{}", n.log());
    fs::remove_file(n.file("migrated")).unwrap();
    fs::remove_file(n.file("app-ran")).unwrap();

    n.config(replica().extra(&exec(&n)));
    n.spawn(&[]);
    assert_eq!(n.wait_exit().code(), Some(3), "{}", n.log());
    assert!(
        !n.file("migrated").exists(),
        "if-candidate ran on a replica"
    );
    assert!(n.file("app-ran").exists());

    // A replica with no app: writes are refused, reads work, .primary names
    // the primary.
    n.config(replica());
    n.start();
    assert_eq!(
        fs::read_to_string(n.mnt().join(".primary")).unwrap(),
        "primary-host\n"
    );
    let ltx_before = n.ltx_files("app.db").len();
    let out = sqlite3(&db, "INSERT INTO t VALUES (2);");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("attempt to write a readonly database"),
        "replica write said: {err}"
    );
    let out = sqlite3(&db, "SELECT count(*) FROM t;");
    assert_eq!(text(&out.stdout).trim(), "2", "{}", text(&out.stderr));
    assert_eq!(n.ltx_files("app.db").len(), ltx_before);
    n.signal(Signal::SIGTERM);
    assert_eq!(n.wait_exit().code(), Some(0), "{}", n.log());
    assert!(!is_mounted(&n.mnt()));
}

#[test]
fn sigterm_stops_the_app_and_unmounts() {
    let mut n = node();
    n.config(Config::new(true));
    let script = format!(
        "trap 'touch {got}; exit 0' TERM; touch {ready}; while :; do sleep 0.05; done",
        got = n.file("got-term").display(),
        ready = n.file("ready").display()
    );
    n.spawn(&["sh", "-c", &script]);
    wait_for(&n.file("ready"), "app never started", &n);
    assert!(is_mounted(&n.mnt()));
    n.signal(Signal::SIGTERM);
    let st = n.wait_exit();
    assert_eq!(st.code(), Some(0), "{}", n.log());
    assert!(n.file("got-term").exists(), "the app did not get SIGTERM");
    assert!(!is_mounted(&n.mnt()), "mount left behind after SIGTERM");
}

#[test]
fn stale_mount_from_kill9_is_cleared_at_next_start() {
    let mut n = node();
    n.config(Config::new(true));
    n.start();
    let db = n.mnt().join("app.db");
    let out = sqlite3(&db, "CREATE TABLE t (x); INSERT INTO t VALUES (42);");
    assert!(out.status.success(), "{}", text(&out.stderr));
    n.signal(Signal::SIGKILL);
    n.wait_exit();
    assert!(
        is_mounted(&n.mnt()),
        "kill -9 should leave the mount behind"
    );
    let err = fs::metadata(n.mnt().join("app.db")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOTCONN), "{err}");

    let script = format!(
        "sqlite3 {} 'SELECT x FROM t' > {}",
        db.display(),
        n.file("out").display()
    );
    n.spawn(&["sh", "-c", &script]);
    assert_eq!(n.wait_exit().code(), Some(0), "{}", n.log());
    assert_eq!(fs::read_to_string(n.file("out")).unwrap(), "42\n");
    assert!(n.log().contains("stale mount"), "{}", n.log());
    assert!(!is_mounted(&n.mnt()));
}

#[test]
fn import_and_export_round_trip_as_one_transaction() {
    let mut n = node();
    let cfg = n.config(Config::new(true));
    let cfg = cfg.to_str().unwrap().to_string();
    let src = n.file("src.db");
    let out = sqlite3(
        &src,
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
           INSERT INTO a (v) SELECT printf('value %d', i) FROM c;
         CREATE TABLE b (x); INSERT INTO b VALUES ('hello'); CREATE INDEX a_v ON a (v);",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    n.start();

    // Into a new database: exactly one LTX file.
    let out = litefs(&[
        "import",
        "-config",
        &cfg,
        "-name",
        "app.db",
        src.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        n.ltx_files("app.db").len(),
        1,
        "{:?}",
        n.ltx_files("app.db")
    );
    // Over an existing database: one more.
    let out = sqlite3(&n.mnt().join("app.db"), "INSERT INTO b VALUES ('extra');");
    assert!(out.status.success());
    let before = n.ltx_files("app.db").len();
    let out = litefs(&[
        "import",
        "-config",
        &cfg,
        "-name",
        "app.db",
        src.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(n.ltx_files("app.db").len(), before + 1);

    let dst = n.file("exported.db");
    let out = litefs(&[
        "export",
        "-config",
        &cfg,
        "-name",
        "app.db",
        dst.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dump = |p: &Path| text(&sqlite3(p, ".dump").stdout);
    assert_eq!(dump(&dst), dump(&src));
    let out = sqlite3(&dst, "PRAGMA integrity_check;");
    assert_eq!(text(&out.stdout), "ok\n");

    // Bad input to import: not a database.
    let junk = n.file("junk.db");
    fs::write(&junk, vec![7u8; 8192]).unwrap();
    let out = litefs(&[
        "import",
        "-config",
        &cfg,
        "-name",
        "app.db",
        junk.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("junk.db"),
        "{}",
        text(&out.stderr)
    );
    n.signal(Signal::SIGTERM);
    assert_eq!(n.wait_exit().code(), Some(0), "{}", n.log());
}

/// Runs `sql` on `app.db` as the primary's exec command; litefs exits 0
/// once it is done.
fn write_once(n: &mut Node, sql: &str) {
    n.config(Config::new(true));
    let db = n.mnt().join("app.db");
    n.spawn(&["sqlite3", db.to_str().unwrap(), sql]);
    assert_eq!(n.wait_exit().code(), Some(0), "{}", n.log());
}

#[test]
fn ltx_verify_rejects_corruption_and_dump_json_parses() {
    let mut n = node();
    write_once(
        &mut n,
        "CREATE TABLE t (x); INSERT INTO t VALUES (randomblob(5000)); INSERT INTO t VALUES (1);",
    );
    let files = n.ltx_files("app.db");
    let last = files.last().unwrap();

    let out = litefs(&["ltx", "dump", "--json", last.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["header"]["max_txid"].as_str().unwrap(),
        format!("{:016x}", ltx_max_txid(last))
    );
    assert!(!v["pages"].as_array().unwrap().is_empty());
    assert!(v["trailer"]["post_apply_checksum"].is_string());
    let out = litefs(&["ltx", "dump", last.to_str().unwrap()]);
    assert!(out.status.success());

    // A corrupted copy: one flipped byte in the page block, and a
    // truncated one; the original still verifies beside them.
    let bad = n.file("bad.ltx");
    let mut bytes = fs::read(last).unwrap();
    let mid = 100 + (bytes.len() - 116) / 2;
    bytes[mid] ^= 0x01;
    fs::write(&bad, &bytes).unwrap();
    let short = n.file("short.ltx");
    let orig = fs::read(last).unwrap();
    fs::write(&short, &orig[..orig.len() - 10]).unwrap();
    let out = litefs(&[
        "ltx",
        "verify",
        last.to_str().unwrap(),
        bad.to_str().unwrap(),
        short.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    eprintln!("{stdout}");
    let line = |p: &Path| {
        stdout
            .lines()
            .find(|l| l.starts_with(&p.display().to_string()))
            .unwrap_or_else(|| panic!("no line for {}: {stdout}", p.display()))
            .to_string()
    };
    assert!(line(last).contains(": ok ("), "{stdout}");
    assert!(line(&bad).contains("invalid: "), "{stdout}");
    assert!(line(&short).contains("invalid: "), "{stdout}");
    let out = litefs(&["ltx", "dump", "--json", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bad.ltx"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn broken_config_names_the_field() {
    let n = node();
    let cases = [
        ("lease:\n  type: static\n  candidat: true\n", "candidat"),
        (
            "lease:\n  type: static\n  candidate: maybe\n",
            "lease.candidate",
        ),
        ("lease:\n  candidate: true\n", "lease.type"),
        (
            "lease:\n  type: static\n  candidate: true\nexec: [{cmd: 1, if-candidate: []}]\n",
            "if-candidate",
        ),
        ("lease: [\n", "litefs.yml"),
    ];
    for (extra, field) in cases {
        let yml = format!(
            "fuse:\n  dir: \"{}\"\ndata:\n  dir: \"{}\"\n{extra}",
            n.mnt().display(),
            n.data().display()
        );
        let path = n.file("litefs.yml");
        fs::write(&path, yml).unwrap();
        let out = litefs(&["mount", "-config", path.to_str().unwrap(), "--", "true"]);
        let err = text(&out.stderr);
        eprintln!("{field}: {}", err.trim());
        assert_eq!(out.status.code(), Some(1), "{field}: {err}");
        assert!(err.contains(field), "error does not name {field}: {err}");
        assert!(!is_mounted(&n.mnt()));
    }
}

#[test]
fn corrupt_ltx_file_fails_startup_naming_it() {
    let mut n = node();
    write_once(&mut n, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    let last = n.ltx_files("app.db").pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let i = bytes.len() - 3;
    bytes[i] ^= 0xFF;
    fs::write(&last, bytes).unwrap();

    n.spawn(&["true"]);
    let st = n.wait_exit();
    assert_ne!(st.code(), Some(0));
    let log = n.log();
    let err = log
        .lines()
        .rev()
        .find(|l| l.starts_with("litefs:"))
        .unwrap_or("");
    eprintln!("{err}");
    assert!(err.contains(&last.display().to_string()), "{log}");
    assert!(err.contains("aside"), "{log}");
    assert!(!is_mounted(&n.mnt()));
}

#[test]
fn misaligned_write_is_einval_and_logged() {
    let mut n = node();
    n.config(Config::new(true));
    n.start();
    let db = n.mnt().join("app.db");
    let out = sqlite3(&db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    assert!(out.status.success());
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\ntry:\n    os.pwrite(fd, b'x' * 10, 100)\n    print('WROTE')\nexcept OSError as e:\n    print(e.errno, e.strerror)",
        )
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{} Invalid argument", nix::libc::EINVAL),
        "{}",
        text(&out.stderr)
    );
    let out = sqlite3(&db, "PRAGMA integrity_check; SELECT x FROM t;");
    assert_eq!(text(&out.stdout), "ok\n1\n");
    n.signal(Signal::SIGTERM);
    assert_eq!(n.wait_exit().code(), Some(0), "{}", n.log());
    let log = n.log();
    let line = log
        .lines()
        .find(|l| l.contains("not aligned"))
        .unwrap_or_else(|| panic!("misaligned write not logged:\n{log}"));
    eprintln!("{line}");
    assert!(
        line.contains("app.db") && line.contains("offset 100"),
        "{line}"
    );
}
