//! Changing primaries by hand with the static lease: a former primary that
//! comes back as a replica keeps the transactions nobody received (under
//! `diverged/`) and then matches the new primary; a replica refuses a
//! primary whose fencing epoch is older than one it already followed.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::node::{Config, Node};
use common::LITEFS as BIN;
const WAIT: Duration = Duration::from_secs(20);

impl Node {
    /// Starts `litefs mount` with the static lease naming `primary_host`
    /// at `primary_url`; waits for the mount.
    fn start_as(&mut self, candidate: bool, primary_host: &str, primary_url: &str) {
        self.config(
            Config::new(candidate)
                .primary(primary_host, primary_url)
                .reconnect_delay("100ms")
                .skip_sync(),
        );
        self.start();
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        // A replica holds SQLite's lock while it applies a transaction, and
        // may publish the position a moment before it lets go: wait for
        // the lock as any real client (busy_timeout) does.
        let out = Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(self.db(db))
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn former_primary_keeps_unreplicated_transactions_and_rejoins() {
    let mut a = Node::new(WAIT);
    let mut b = Node::new(WAIT);
    let (url_a, url_b) = (a.url(), b.url());

    a.start_as(true, "node-a", &url_a);
    b.start_as(false, "node-a", &url_a);
    a.sql("t.db", "CREATE TABLE x (v INTEGER)");
    for v in 1..=3 {
        a.sql("t.db", &format!("INSERT INTO x VALUES ({v})"));
    }
    wait_for("b to follow a", || {
        b.pos("t.db") == a.pos("t.db") && !a.pos("t.db").unwrap_or_default().is_empty()
    });
    b.terminate();

    // Two transactions only a ever sees.
    a.sql("t.db", "INSERT INTO x VALUES (4)");
    a.sql("t.db", "INSERT INTO x VALUES (5)");
    a.terminate();

    // b takes over and goes its own way.
    b.start_as(true, "node-b", &url_b);
    for v in [40, 50, 60] {
        b.sql("t.db", &format!("INSERT INTO x VALUES ({v})"));
    }
    a.start_as(false, "node-b", &url_b);
    wait_for("a to match b", || a.pos("t.db") == b.pos("t.db"));
    assert_eq!(
        a.sql("t.db", "SELECT group_concat(v) FROM x"),
        "1,2,3,40,50,60"
    );

    let kept = a.data().join("diverged/t.db");
    let mut files: Vec<_> = std::fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let out = Command::new(BIN)
        .args(["ltx", "verify"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        a.log().contains("transactions the primary never received"),
        "{}",
        a.log()
    );
    assert!(
        a.log().contains("epoch=2"),
        "a follows b's term 2: {}",
        a.log()
    );
}

#[test]
fn replica_refuses_a_primary_with_an_older_epoch() {
    let mut a = Node::new(WAIT);
    let mut b = Node::new(WAIT);
    let url_a = a.url();
    // b has followed a primary of term 5 before; a starts its first term.
    std::fs::create_dir_all(b.data()).unwrap();
    std::fs::write(b.data().join("epoch"), "5\n").unwrap();
    a.start_as(true, "node-a", &url_a);
    a.sql("t.db", "CREATE TABLE x (v INTEGER)");
    b.start_as(false, "node-a", &url_a);
    wait_for("b to refuse a", || b.log().contains("stale primary"));
    assert!(
        !b.mnt().join("t.db").exists(),
        "b took data from a stale primary"
    );
    assert!(
        a.log().contains("a replica has followed a newer primary"),
        "{}",
        a.log()
    );
}

#[test]
fn tampered_replica_is_detected_and_resnapshotted() {
    let mut a = Node::new(WAIT);
    let mut b = Node::new(WAIT);
    let url_a = a.url();
    a.start_as(true, "node-a", &url_a);
    b.start_as(false, "node-a", &url_a);
    a.sql("t.db", "CREATE TABLE x (v TEXT)");
    for i in 0..50 {
        a.sql(
            "t.db",
            &format!("INSERT INTO x VALUES ('row {i} {}')", "y".repeat(100)),
        );
    }
    wait_for("b to follow a", || b.pos("t.db") == a.pos("t.db"));
    b.terminate();

    // Change one byte of a table page behind litefs's back; the clean
    // shutdown lets the next start skip the full checksum, so only the
    // background verification can notice.
    let file = b.data().join("dbs/t.db/database");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[4096 + 2000] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    b.start_as(false, "node-a", &url_a);
    wait_for("b to report the mismatch", || {
        b.log().contains("checksum mismatch")
    });
    let primary_file = a.data().join("dbs/t.db/database");
    wait_for("b to be resnapshotted", || {
        b.pos("t.db") == a.pos("t.db")
            && std::fs::read(&file).unwrap() == std::fs::read(&primary_file).unwrap()
    });
    assert!(
        b.log().contains("the primary will send a snapshot"),
        "{}",
        b.log()
    );
    assert_eq!(b.sql("t.db", "PRAGMA integrity_check"), "ok");
}
