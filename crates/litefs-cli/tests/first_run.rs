//! What a new user meets first, end to end through the `litefs` binary:
//! the environment the app is started with (`LITEFS_DIR`,
//! `LITEFS_HOSTNAME`), who a node says it is in `/info`, the startup log,
//! the config errors and `litefs version`.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

mod common;

use common::node::{Config, Node};
use common::{detach, LITEFS};

const WAIT: Duration = Duration::from_secs(15);

fn os_hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

/// An exec command that records what the app was given.
fn record_env(n: &Node) -> String {
    format!(
        "echo \"$LITEFS_DIR|$LITEFS_HOSTNAME\" > {}",
        n.file("env").display()
    )
}

/// `GET path` over HTTP/1.1; the body.
fn get(n: &Node, path: &str) -> String {
    let mut s = TcpStream::connect(n.addr()).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[test]
fn the_app_gets_the_mount_and_its_own_name_on_primary_and_replica() {
    // Both nodes on this machine, the primary named after it: the case where
    // the OS hostname cannot tell them apart.
    let me = os_hostname();
    let mut p = Node::on_host(1, WAIT);
    p.config(Config::new(true).primary(&me, &p.url()));
    p.spawn(&["sh", "-c", &record_env(&p)]);
    assert_eq!(p.wait_exit().code(), Some(0), "{}", p.log());
    assert_eq!(
        fs::read_to_string(p.file("env")).unwrap(),
        format!("{}|{me}\n", p.mnt().display())
    );

    let mut r = Node::on_host(2, WAIT);
    r.config(Config::new(false).primary(&me, &p.url()).skip_sync());
    r.spawn(&["sh", "-c", &record_env(&r)]);
    assert_eq!(r.wait_exit().code(), Some(0), "{}", r.log());
    let port = r.addr().port();
    assert_eq!(
        fs::read_to_string(r.file("env")).unwrap(),
        format!("{}|{me}-{port}\n", r.mnt().display())
    );
    assert!(r.log().contains(&format!("{me}-{port}")), "{}", r.log());

    // `/info` on the replica: its own name and URL, the primary's apart.
    r.start();
    let info: serde_json::Value = serde_json::from_str(&get(&r, "/info")).unwrap();
    assert_eq!(info["hostname"], format!("{me}-{port}"));
    assert_eq!(info["advertiseURL"], r.url());
    assert_eq!(info["primaryURL"], p.url());
    assert_eq!(info["primary"]["hostname"], me);
    assert_eq!(info["isPrimary"], false);
}

#[test]
fn litefs_dir_and_hostname_already_set_are_kept() {
    let n = Node::on_host(1, WAIT);
    let cfg = n.config(Config::new(true).primary("node-a", &n.url()));
    let out = Command::new(LITEFS)
        .args(["mount", "-config"])
        .arg(&cfg)
        .args(["--", "sh", "-c", &record_env(&n)])
        .env("LITEFS_DIR", "/elsewhere")
        .env("LITEFS_HOSTNAME", "preset")
        .output()
        .unwrap();
    detach(&n.mnt());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(n.file("env")).unwrap(),
        "/elsewhere|preset\n"
    );
}
