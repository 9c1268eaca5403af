//! What every test that runs the `litefs` binary needs: free ports, mount
//! checks, cleanup that leaves nothing mounted, and (in [`node`]) a
//! `litefs mount` process harness.
#![allow(dead_code)]

pub mod consul;
pub mod etcd;
pub mod litefs_go;
pub mod logcheck;
pub mod node;
pub mod powercut;

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const LITEFS: &str = env!("CARGO_BIN_EXE_litefs");

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether /proc/mounts lists `dir` as a mount point.
pub fn is_mounted(dir: &Path) -> bool {
    let want = dir.to_str().unwrap().replace(' ', "\\040");
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

/// Lazily unmounts `dir` if anything is still mounted there (test cleanup).
pub fn detach(dir: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-uz")
        .arg(dir)
        .stderr(Stdio::null())
        .status();
}

/// `sqlite3 -bail DB SQL`, the command-line shell, waiting up to 5 s for
/// a lock as applications do (busy_timeout): the background checksum
/// verification after a start and a replica's apply hold SQLite's lock for
/// a moment.
pub fn sqlite3(db: &Path, sql: &str) -> Output {
    Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg("-bail")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap()
}
