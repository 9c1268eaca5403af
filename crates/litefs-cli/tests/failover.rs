//! Changing primaries by hand with the static lease: a former primary that
//! comes back as a replica keeps the transactions nobody received (under
//! `diverged/`) and then matches the new primary; a replica refuses a
//! primary whose fencing epoch is older than one it already followed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{detach, free_port, is_mounted, LITEFS as BIN};

struct Node {
    root: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(root: &Path, name: &str) -> Node {
        let root = root.join(name);
        std::fs::create_dir_all(root.join("mnt")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        Node { root, child: None }
    }

    fn mnt(&self) -> PathBuf {
        self.root.join("mnt")
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("log")).unwrap_or_default()
    }

    /// Starts `litefs mount` with the static lease; waits for the mount.
    fn start(&mut self, addr: &str, candidate: bool, primary_host: &str, primary_url: &str) {
        let yml = format!(
            "fuse: {{ dir: {:?} }}\ndata: {{ dir: {:?} }}\nhttp: {{ addr: {addr:?} }}\nskip-sync: true\n\
             lease: {{ type: static, candidate: {candidate}, hostname: {primary_host:?}, advertise-url: {primary_url:?}, reconnect-delay: 100ms }}\n",
            self.mnt(),
            self.data()
        );
        let cfg = self.root.join("litefs.yml");
        std::fs::write(&cfg, yml).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("log"))
            .unwrap();
        let child = Command::new(BIN)
            .args(["mount", "-config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let mnt = self.mnt();
        wait_for("mount", || is_mounted(&mnt));
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    fn pos(&self, db: &str) -> String {
        std::fs::read_to_string(self.mnt().join(format!("{db}-pos"))).unwrap_or_default()
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(self.mnt().join(db))
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

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        detach(&self.mnt());
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn former_primary_keeps_unreplicated_transactions_and_rejoins() {
    let tmp = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let (url_a, url_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let mut a = Node::new(tmp.path(), "a");
    let mut b = Node::new(tmp.path(), "b");

    a.start(&addr_a, true, "node-a", &url_a);
    b.start(&addr_b, false, "node-a", &url_a);
    a.sql("t.db", "CREATE TABLE x (v INTEGER)");
    for v in 1..=3 {
        a.sql("t.db", &format!("INSERT INTO x VALUES ({v})"));
    }
    wait_for("b to follow a", || {
        b.pos("t.db") == a.pos("t.db") && !a.pos("t.db").is_empty()
    });
    b.stop();

    // Two transactions only a ever sees.
    a.sql("t.db", "INSERT INTO x VALUES (4)");
    a.sql("t.db", "INSERT INTO x VALUES (5)");
    a.stop();

    // b takes over and goes its own way.
    b.start(&addr_b, true, "node-b", &url_b);
    for v in [40, 50, 60] {
        b.sql("t.db", &format!("INSERT INTO x VALUES ({v})"));
    }
    a.start(&addr_a, false, "node-b", &url_b);
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
    let tmp = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let url_a = format!("http://{addr_a}");
    let mut a = Node::new(tmp.path(), "a");
    let mut b = Node::new(tmp.path(), "b");
    // b has followed a primary of term 5 before; a starts its first term.
    std::fs::write(b.data().join("epoch"), "5\n").unwrap();
    a.start(&addr_a, true, "node-a", &url_a);
    a.sql("t.db", "CREATE TABLE x (v INTEGER)");
    b.start(&addr_b, false, "node-a", &url_a);
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
    let tmp = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let (addr_a, addr_b) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let url_a = format!("http://{addr_a}");
    let mut a = Node::new(tmp.path(), "a");
    let mut b = Node::new(tmp.path(), "b");
    a.start(&addr_a, true, "node-a", &url_a);
    b.start(&addr_b, false, "node-a", &url_a);
    a.sql("t.db", "CREATE TABLE x (v TEXT)");
    for i in 0..50 {
        a.sql(
            "t.db",
            &format!("INSERT INTO x VALUES ('row {i} {}')", "y".repeat(100)),
        );
    }
    wait_for("b to follow a", || b.pos("t.db") == a.pos("t.db"));
    b.stop();

    // Change one byte of a table page behind litefs's back; the clean
    // shutdown lets the next start skip the full checksum, so only the
    // background verification can notice.
    let file = b.data().join("dbs/t.db/database");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[4096 + 2000] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    b.start(&addr_b, false, "node-a", &url_a);
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
