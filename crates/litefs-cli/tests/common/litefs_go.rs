//! The real LiteFS (v0.5.14, built from source by ../shared/litefs-go/build.sh
//! into target/litefs-go/litefs, or the binary named by `LITEFS_GO`) for
//! the interop tests, and what running it beside litefs-rs needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::node::{Config, Node};
use super::{sqlite3, LITEFS};

/// How long any wait of an interop node may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// The LiteFS binary. Missing is a failure (the interop suite is the
/// compatibility guarantee), saying how to get it.
pub fn litefs_go() -> PathBuf {
    let path = match std::env::var_os("LITEFS_GO") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/litefs-go/litefs"),
    };
    assert!(
        path.is_file(),
        "LiteFS binary not found at {} (set LITEFS_GO, or build it with \
         `bash ../shared/litefs-go/build.sh $PWD/target/litefs-go/litefs`, \
         which ./scripts/test does when it is missing)",
        path.display()
    );
    path
}

/// This crate's `litefs`.
pub fn rs() -> PathBuf {
    PathBuf::from(LITEFS)
}

/// Starts `n` and, when it runs LiteFS, waits until it says it is part of
/// the cluster (or, with skip-sync, that it no longer waits to): LiteFS mounts before it has become primary or connected,
/// litefs-rs once it has.
pub fn start(n: &mut Node) {
    let from = n.log().len();
    n.start();
    if n.log()[from..].contains("LiteFS v") {
        let path = n.log_path();
        n.wait_until("LiteFS to be ready", || {
            std::fs::read_to_string(&path).is_ok_and(|l| {
                let l = l.get(from..).unwrap_or("");
                // "skipping cluster sync" with skip-sync.
                l.contains("connected to cluster, ready") || l.contains("skipping cluster sync")
            })
        });
    }
}

/// `GET path` over HTTP/1.0 (no chunking, the body ends at close) from
/// `base` (`http://host:port`): the status and body.
pub fn http_get(base: &str, path: &str) -> (u16, String) {
    http(base, "GET", path, "")
}

/// One HTTP/1.0 request with an empty body and `headers` (`"K: v\r\n"`
/// lines): the status and body.
pub fn http(base: &str, method: &str, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n{headers}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The first `n` lines of `GET /events` from `base`, with `during` run
/// once the stream is open (to make a transaction happen, say).
pub fn events(base: &str, n: usize, during: impl FnOnce()) -> Vec<String> {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET /events HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut lines = Vec::new();
    let mut during = Some(during);
    while lines.len() < n {
        line.clear();
        let got = r.read_line(&mut line).unwrap();
        assert!(got > 0, "/events of {base} ended after {lines:?}");
        if !line.trim().is_empty() {
            lines.push(line.trim().to_string());
        }
        if let Some(f) = during.take() {
            f();
        }
    }
    lines
}

/// A node of a static-lease cluster whose primary is at `primary_url`
/// (the node itself when None); `lease.hostname` is `node-<host>`.
pub fn static_node(host: u8, bin: &Path, candidate: bool, primary_url: Option<&str>) -> Node {
    let mut n = Node::on_host(host, WAIT);
    n.set_bin(bin);
    let url = primary_url.map_or_else(|| n.url(), String::from);
    let c = Config::new(candidate)
        .primary(&format!("node-{host}"), &url)
        .reconnect_delay("200ms");
    // A LiteFS primary with skip-sync says it is ready before it takes
    // writes; without, `start` waits until it does.
    n.config(if candidate { c } else { c.skip_sync() });
    n
}

/// Runs `q` with the sqlite3 CLI on `db` in `n`'s mount; it must succeed.
pub fn sql(n: &Node, db: &str, q: &str) {
    let out = sqlite3(&n.db(db), q);
    assert!(out.status.success(), "{q} on {}: {out:?}", n.url());
}

/// Waits until `n`'s position of `db` is `want`'s now.
pub fn wait_pos(want: &Node, n: &mut Node, db: &str) {
    let target = want.pos(db).unwrap();
    let other = want.log();
    let path = n.db(&format!("{db}-pos"));
    n.wait_until(&format!("{db} at {target}; primary:\n{other}"), || {
        read_trim(&path).as_deref() == Some(target.as_str())
    });
}

pub fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `n`'s `data/clusterid`, trimmed.
pub fn cluster_id(n: &Node) -> Option<String> {
    std::fs::read_to_string(n.data().join("clusterid"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// `litefs run ARGS` (this crate's binary), its output.
pub fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(LITEFS)
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}
