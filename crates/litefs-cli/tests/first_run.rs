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

fn mount_once(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(LITEFS)
        .arg("mount")
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn startup_log_names_the_file_dirs_address_and_lease_and_warns_of_unset_variables() {
    let n = Node::on_host(1, WAIT);
    let cfg = n.file("litefs.yml");
    fs::write(
        &cfg,
        format!(
            "fuse: {{ dir: \"{}\" }}\ndata: {{ dir: \"{}\" }}\nhttp: {{ addr: \"{}\" }}\n\
             lease: {{ type: static, candidate: true,\n  hostname: \"n${{LITEFS_RS_FIRST_RUN_UNSET}}\" }}\n",
            n.mnt().display(),
            n.data().display(),
            n.addr()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let (code, log) = mount_once(&["-config", cfg, "--", "true"]);
    detach(&n.mnt());
    assert_eq!(code, Some(0), "{log}");
    let start = log.lines().find(|l| l.contains("starting")).expect(&log);
    for want in [
        cfg.to_string(),
        format!("fuse_dir={}", n.mnt().display()),
        format!("data_dir={}", n.data().display()),
        format!("http_addr={}", n.addr()),
        "static, candidate: true, hostname: n".to_string(),
    ] {
        assert!(start.contains(&want), "{want} missing from {start}");
    }
    let warn = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("LITEFS_RS_FIRST_RUN_UNSET"))
        .expect(&log);
    assert!(warn.contains("line=5"), "{warn}");

    // -strict-env refuses the file instead, naming the variable and line.
    let (code, out) = mount_once(&["-strict-env", "-config", cfg, "--", "true"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("line 5: ${LITEFS_RS_FIRST_RUN_UNSET} is not set"),
        "{out}"
    );
    assert!(
        !out.contains("starting"),
        "strict-env started anyway: {out}"
    );
}

#[test]
fn missing_dirs_are_errors_and_os_errors_are_said_once_with_their_path() {
    let n = Node::on_host(1, WAIT);
    let cfg = n.file("litefs.yml");
    let cfg_s = cfg.to_str().unwrap();
    let lease = "lease: { type: static, candidate: true }\n";
    fs::write(
        &cfg,
        format!("fuse: {{ dir: \"{}\" }}\n{lease}", n.mnt().display()),
    )
    .unwrap();
    let (code, out) = mount_once(&["-config", cfg_s]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("data directory required (data.dir)"), "{out}");
    fs::write(
        &cfg,
        format!("data: {{ dir: \"{}\" }}\n{lease}", n.data().display()),
    )
    .unwrap();
    let (code, out) = mount_once(&["-config", cfg_s]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("fuse directory required (fuse.dir)"), "{out}");

    // A data dir that cannot be created: a regular file is in the way.
    let file = n.file("a-file");
    fs::write(&file, "").unwrap();
    let data = file.join("data");
    fs::write(
        &cfg,
        format!(
            "fuse: {{ dir: \"{}\" }}\ndata: {{ dir: \"{}\" }}\nhttp: {{ addr: \"{}\" }}\n{lease}",
            n.mnt().display(),
            data.display(),
            n.addr()
        ),
    )
    .unwrap();
    let (code, out) = mount_once(&["-config", cfg_s, "--", "true"]);
    detach(&n.mnt());
    assert_eq!(code, Some(1), "{out}");
    let err = out.lines().find(|l| l.starts_with("litefs: ")).expect(&out);
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    assert!(err.contains(&data.display().to_string()), "{err}");
}

/// LiteFS's `exit-on-error: false` (in its sample litefs.yml): a node that
/// cannot start stays up, saying why, until it is told to stop.
#[test]
fn exit_on_error_false_keeps_a_node_that_cannot_start_up_until_a_signal() {
    let n = Node::on_host(1, WAIT);
    let file = n.file("a-file");
    fs::write(&file, "").unwrap();
    let cfg = n.file("litefs.yml");
    fs::write(
        &cfg,
        format!(
            "exit-on-error: false\nfuse: {{ dir: \"{}\" }}\ndata: {{ dir: \"{}\" }}\n\
             http: {{ addr: \"{}\" }}\nlease: {{ type: static, candidate: true }}\n",
            n.mnt().display(),
            file.join("data").display(),
            n.addr()
        ),
    )
    .unwrap();
    let log = n.file("log");
    let mut child = Command::new(LITEFS)
        .args(["mount", "-config", cfg.to_str().unwrap()])
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = |what: &str| fs::read_to_string(&log).unwrap_or_default().contains(what);
    let deadline = std::time::Instant::now() + WAIT;
    while !said("exit-on-error is false") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        said("Not a directory"),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "litefs exited");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    detach(&n.mnt());
}

#[test]
fn version_names_the_commit_built_from() {
    let out = Command::new(LITEFS).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // What build.rs saw: this checkout's HEAD, or "unknown" outside git.
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    let commit = std::env::var("LITEFS_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or(head)
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        text,
        format!("litefs {} (commit {commit})\n", env!("CARGO_PKG_VERSION"))
    );
}
