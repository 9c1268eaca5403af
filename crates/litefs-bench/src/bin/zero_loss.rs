//! `zero_loss`: what zero-loss mode costs. Two candidates (`litefs mount`
//! on 127.0.0.1 and 127.0.0.2) on an etcd lease (Debian's etcd-server),
//! once asynchronous (`zero-loss` off) and once with `candidates: 1`, in
//! the same run on the same disk. Each: `--writers` connections (default 1
//! and 8) commit one-row INSERT transactions on the primary for `--secs`
//! seconds (WAL, synchronous=FULL); printed: commits/s, commit latency
//! p50/p99, and zero-loss over asynchronous as a ratio.
//!
//! Needs root (FUSE), `etcd` on PATH and the release `litefs` binary
//! (default: beside this program). Run:
//!   cargo build --release -p litefs-cli -p litefs-bench
//!   target/release/zero_loss

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rusqlite::Connection;

#[derive(Parser, Debug)]
#[command(
    name = "zero_loss",
    about = "Commit throughput and latency, zero-loss mode against asynchronous replication"
)]
struct Args {
    /// Seconds of writes per measurement.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Writer connection counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    writers: Vec<usize>,
    /// The `litefs` binary; default: `litefs` beside this program.
    #[arg(long)]
    litefs: Option<PathBuf>,
    /// Directory for the nodes' data and mounts; default $TMPDIR.
    #[arg(long)]
    dir: Option<PathBuf>,
}

const WAIT: Duration = Duration::from_secs(60);
const DB: &str = "bench.db";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A single-member etcd, killed on drop.
struct Etcd {
    url: String,
    child: Child,
}

impl Etcd {
    fn start(dir: &Path) -> Result<Etcd> {
        let (client, peer) = (free_port()?, free_port()?);
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = fs::File::create(dir.join("etcd.log"))?;
        let child = Command::new("etcd")
            .args(["--name", "b", "--data-dir"])
            .arg(dir.join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("b={peer_url}")])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?;
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", client)).is_err() {
            if Instant::now() > deadline {
                bail!("etcd did not answer");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Etcd { url, child })
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Node {
    root: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Node {
    fn start(base: &Path, name: &str, host: u8, litefs: &Path, extra: &str) -> Result<Node> {
        let root = base.join(name);
        fs::create_dir_all(root.join("mnt"))?;
        let addr = TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), 0))?.local_addr()?;
        fs::write(
            root.join("litefs.yml"),
            format!(
                "fuse: {{ dir: \"{}\" }}\ndata: {{ dir: \"{}\" }}\nhttp: {{ addr: \"{addr}\" }}\n\
                 skip-sync: true\n{extra}",
                root.join("mnt").display(),
                root.join("data").display(),
            )
            .replace("ADVERTISE", &format!("http://{addr}"))
            .replace("HOST", name),
        )?;
        let log = fs::File::create(root.join("litefs.log"))?;
        let child = Command::new(litefs)
            .arg("mount")
            .arg("-config")
            .arg(root.join("litefs.yml"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", litefs.display()))?;
        let node = Node {
            root,
            addr,
            child: Some(child),
        };
        let mnt = node.root.join("mnt");
        wait(&format!("{name} to mount"), || {
            is_mounted(&mnt) && fs::read_dir(&mnt).is_ok()
        })?;
        Ok(node)
    }

    fn db(&self) -> PathBuf {
        self.root.join("mnt").join(DB)
    }

    fn info(&self) -> Option<String> {
        let mut s = TcpStream::connect(self.addr).ok()?;
        write!(
            s,
            "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(self.root.join("mnt"))
            .stderr(Stdio::null())
            .status();
    }
}

fn wait(what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn is_mounted(dir: &Path) -> bool {
    let want = dir.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

struct Figures {
    tx_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `writers` connections committing for `secs`.
fn measure(db: &Path, writers: usize, secs: f64) -> Result<Figures> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..writers {
        let (db, stop) = (db.to_path_buf(), stop.clone());
        threads.push(std::thread::spawn(move || -> Result<Vec<Duration>> {
            let c = Connection::open(&db)?;
            c.busy_timeout(Duration::from_secs(30))?;
            c.pragma_update(None, "synchronous", "FULL")?;
            let mut lat = Vec::new();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.execute("INSERT INTO t (w, i) VALUES (?1, ?2)", [w as i64, i])?;
                lat.push(t.elapsed());
                i += 1;
            }
            Ok(lat)
        }));
    }
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().expect("writer thread")?);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Ok(Figures {
        tx_per_s: lat.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// A fresh two-candidate cluster with `zero_loss` (YAML), measured for
/// every writer count.
fn cluster(base: &Path, litefs: &Path, zero_loss: &str, args: &Args) -> Result<Vec<Figures>> {
    let etcd = Etcd::start(base)?;
    let lease = format!(
        "lease: {{ type: etcd, candidate: true, hostname: \"HOST\", advertise-url: \"ADVERTISE\", \
         reconnect-delay: \"100ms\", etcd: {{ endpoints: [\"{}\"], key: \"litefs/bench\", ttl: \"5s\" }} }}\n{zero_loss}",
        etcd.url
    );
    let primary = Node::start(base, "node-1", 1, litefs, &lease)?;
    wait("node-1 to become primary", || {
        primary
            .info()
            .is_some_and(|i| i.contains("\"isPrimary\": true"))
    })?;
    let replica = Node::start(base, "node-2", 2, litefs, &lease)?;
    let c = Connection::open(primary.db())?;
    c.busy_timeout(Duration::from_secs(30))?;
    c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, w INTEGER, i INTEGER)")?;
    let pos = |db: &Path| fs::read_to_string(format!("{}-pos", db.display())).unwrap_or_default();
    let want = pos(&primary.db());
    wait("node-2 to catch up", || pos(&replica.db()) == want)?;
    if !zero_loss.is_empty() {
        // One commit that waits for node-2 tells it is acknowledging.
        c.execute("INSERT INTO t (w, i) VALUES (-1, -1)", [])?;
        wait("node-2 in sync", || {
            primary
                .info()
                .is_some_and(|i| i.contains("\"state\": \"in-sync\""))
        })?;
    }
    let mut out = Vec::new();
    for &w in &args.writers {
        out.push(measure(&primary.db(), w, args.secs)?);
    }
    if !zero_loss.is_empty() {
        let info = primary.info().unwrap_or_default();
        if info.contains("\"degrades\": 0") {
            eprintln!("zero-loss: no degrade during the run (every commit waited for node-2)");
        } else {
            bail!("zero-loss mode degraded during the run; figures would be asynchronous:\n{info}");
        }
    }
    drop(c);
    drop(replica);
    drop(primary);
    Ok(out)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let litefs = match &args.litefs {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("litefs"),
    };
    if !litefs.exists() {
        bail!(
            "{} not found: cargo build --release -p litefs-cli, or pass --litefs",
            litefs.display()
        );
    }
    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let (a, z) = (tmp.path().join("async"), tmp.path().join("zero-loss"));
    fs::create_dir_all(&a)?;
    fs::create_dir_all(&z)?;
    let asynchronous = cluster(&a, &litefs, "", &args)?;
    let zero_loss = cluster(
        &z,
        &litefs,
        "zero-loss: { candidates: 1, timeout: \"10s\" }\n",
        &args,
    )?;
    println!(
        "{:<10} {:>8} {:>12} {:>10} {:>10}",
        "mode", "writers", "commits/s", "p50 ms", "p99 ms"
    );
    for (label, figs) in [("async", &asynchronous), ("zero-loss", &zero_loss)] {
        for (w, f) in args.writers.iter().zip(figs.iter()) {
            println!(
                "{label:<10} {w:>8} {:>12.0} {:>10.3} {:>10.3}",
                f.tx_per_s, f.p50_ms, f.p99_ms
            );
        }
    }
    for (w, (a, z)) in args
        .writers
        .iter()
        .zip(asynchronous.iter().zip(zero_loss.iter()))
    {
        println!(
            "writers {w}: zero-loss/async throughput {:.2}x, p99 {:.3} ms vs {:.3} ms",
            z.tx_per_s / a.tx_per_s,
            z.p99_ms,
            a.p99_ms
        );
    }
    Ok(())
}
