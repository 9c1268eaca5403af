//! The node's HTTP API over a real mount: /info, /metrics, /events,
//! /import and /export, spoken as plain HTTP/1.1 like curl would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{detach, free_port, is_mounted, LITEFS as BIN};

struct Primary {
    child: Child,
    root: tempfile::TempDir,
    addr: String,
}

impl Primary {
    fn start() -> Primary {
        let root = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let (mnt, data) = (root.path().join("mnt"), root.path().join("data"));
        std::fs::create_dir_all(&mnt).unwrap();
        let yml = format!(
            "fuse: {{ dir: {mnt:?} }}\ndata: {{ dir: {data:?} }}\nhttp: {{ addr: {addr:?} }}\n\
             lease: {{ type: static, candidate: true, hostname: node-a, advertise-url: \"http://{addr}\" }}\n"
        );
        std::fs::write(root.path().join("litefs.yml"), yml).unwrap();
        let child = Command::new(BIN)
            .args(["mount", "-config"])
            .arg(root.path().join("litefs.yml"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Primary { child, root, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&p.addr).is_err() || !is_mounted(&mnt) {
            assert!(Instant::now() < deadline, "litefs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn mnt(&self) -> std::path::PathBuf {
        self.root.path().join("mnt")
    }

    /// One HTTP/1.1 request; returns (status, body).
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut chunked = false;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            chunked |= h
                .to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked");
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                let mut n = String::new();
                r.read_line(&mut n).unwrap();
                let n = usize::from_str_radix(n.trim(), 16).unwrap();
                let mut chunk = vec![0u8; n + 2];
                r.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        } else {
            r.read_to_end(&mut out).unwrap();
        }
        (code, out)
    }
}

impl Drop for Primary {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        detach(&self.mnt());
    }
}

fn sqlite_file(dir: &Path, rows: usize) -> std::path::PathBuf {
    let path = dir.join("src.db");
    let out = Command::new("sqlite3")
        .arg(&path)
        .arg(format!(
            "CREATE TABLE q (a INTEGER); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < {rows}) INSERT INTO q SELECT i FROM c;"
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    path
}

#[test]
fn info_metrics_import_export_and_events() {
    let p = Primary::start();

    let (code, body) = p.request("GET", "/info", b"");
    assert_eq!(code, 200);
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["isPrimary"], true);
    assert_eq!(info["primary"]["hostname"], "node-a");
    assert_eq!(info["epoch"], 1);

    // Import a database made elsewhere: one transaction, one LTX file.
    let src = sqlite_file(p.root.path(), 1000);
    let (code, body) = p.request("POST", "/import?name=imp.db", &std::fs::read(&src).unwrap());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        String::from_utf8_lossy(&body),
        std::fs::read_to_string(p.mnt().join("imp.db-pos")).unwrap()
    );
    let ltx = std::fs::read_dir(p.root.path().join("data/dbs/imp.db/ltx"))
        .unwrap()
        .count();
    assert_eq!(ltx, 1);
    let (code, body) = p.request("POST", "/import?name=bad.db", b"not a database at all");
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("not a valid SQLite database"));

    // Export it back: same rows.
    let (code, bytes) = p.request("GET", "/export?name=imp.db", b"");
    assert_eq!(code, 200);
    let out = p.root.path().join("out.db");
    std::fs::write(&out, bytes).unwrap();
    let sum = Command::new("sqlite3")
        .arg(&out)
        .arg("SELECT count(*), sum(a) FROM q")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sum.stdout).trim(), "1000|500500");
    assert_eq!(p.request("GET", "/export?name=none.db", b"").0, 404);

    let (code, body) = p.request("GET", "/metrics", b"");
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("litefs_db_txid{db=\"imp.db\"} 1"), "{text}");
    assert!(
        text.contains("litefs_db_log_txid{db=\"imp.db\"} 1"),
        "{text}"
    );
    assert!(text.contains("litefs_is_primary 1"), "{text}");
    assert!(text.contains("litefs_replication_streams 0"), "{text}");
    assert!(
        text.contains("litefs_db_lag_milliseconds{db=\"imp.db\"} 0"),
        "{text}"
    );
    let bytes = text
        .lines()
        .find_map(|l| l.strip_prefix("litefs_ltx_bytes_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no LTX byte counter: {text}"));
    assert!(bytes > 1000, "{text}");

    // /events: the init line, then a line for a commit made after it.
    let mut s = TcpStream::connect(&p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut committed = false;
    while !seen.contains("\"type\":\"tx\"") {
        assert!(Instant::now() < deadline, "no tx event: {seen}");
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        seen.push_str(&line);
        if seen.contains("\"type\":\"init\"") && !committed {
            committed = true;
            let st = Command::new("sqlite3")
                .arg(p.mnt().join("imp.db"))
                .arg("INSERT INTO q VALUES (1)")
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    assert!(seen.contains("\"db\":\"imp.db\""), "{seen}");
    assert!(seen.contains("\"txID\":\"0000000000000002\""), "{seen}");
}
