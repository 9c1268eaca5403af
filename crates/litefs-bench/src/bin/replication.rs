//! `replication`: replication figures of `litefs mount` processes on
//! loopback (a primary on 127.0.0.1, replicas on 127.0.0.2/3), in one run:
//!
//! 1. lag: one INSERT transaction at a steady rate on the primary; each
//!    replica's `GET /events` stream is read and every `tx` line is
//!    timestamped on arrival; lag = arrival - return of COMMIT (p50/p99/max);
//! 2. catch-up: a replica stopped, `--behind` transactions written, the
//!    replica started: time from its start until its `-pos` equals the
//!    primary's (polled every 1 ms), as tx/s;
//! 3. snapshot: a database of `--snapshot-mb` MB on the primary, an empty
//!    replica started: MB/s until its `-pos` matches;
//! 4. restart: that primary stopped cleanly and restarted (position and
//!    checksum persisted), after kill -9, and with `strict-verify: true`
//!    (every page checksummed): time until the mount answers.
//!
//! Needs root (FUSE) and the release `litefs` binary (default: beside this
//! program). Run:
//!   cargo build --release -p litefs-cli -p litefs-bench
//!   target/release/replication

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rusqlite::{params, Connection};

#[derive(Parser, Debug)]
#[command(
    name = "replication",
    about = "Replication lag, catch-up, snapshot and restart figures on loopback"
)]
struct Args {
    /// Transactions per second on the primary for the lag measurement.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Seconds of steady writes for the lag measurement.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Transactions a stopped replica is behind for the catch-up measurement.
    #[arg(long, default_value_t = 10_000)]
    behind: u64,
    /// Size of the database for the snapshot and restart measurements (MB).
    #[arg(long, default_value_t = 200)]
    snapshot_mb: u64,
    /// Journal mode of the databases.
    #[arg(long, default_value = "WAL")]
    mode: String,
    /// The `litefs` binary; default: `litefs` beside this program.
    #[arg(long)]
    litefs: Option<PathBuf>,
    /// Directory for the nodes' data and mounts; default $TMPDIR.
    #[arg(long)]
    dir: Option<PathBuf>,
}

const WAIT: Duration = Duration::from_secs(120);

struct Node {
    name: &'static str,
    root: PathBuf,
    addr: SocketAddr,
    litefs: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(base: &Path, name: &'static str, host: u8, litefs: &Path) -> Result<Node> {
        let root = base.join(name);
        fs::create_dir_all(root.join("mnt"))?;
        let addr = TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), 0))?.local_addr()?;
        Ok(Node {
            name,
            root,
            addr,
            litefs: litefs.to_path_buf(),
            child: None,
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn mnt(&self) -> PathBuf {
        self.root.join("mnt")
    }
    fn db(&self, db: &str) -> PathBuf {
        self.mnt().join(db)
    }

    fn config(&self, primary: Option<&str>, extra: &str) -> Result<()> {
        let lease = match primary {
            None => format!(
                "lease: {{ type: static, candidate: true, hostname: \"bench-primary\", advertise-url: \"{}\" }}\n",
                self.url()
            ),
            Some(u) => format!(
                "lease: {{ type: static, candidate: false, hostname: \"bench-primary\", advertise-url: \"{u}\", reconnect-delay: \"100ms\" }}\nskip-sync: true\n"
            ),
        };
        fs::write(
            self.root.join("litefs.yml"),
            format!(
                "fuse: {{ dir: \"{}\" }}\ndata: {{ dir: \"{}\" }}\nhttp: {{ addr: \"{}\" }}\n{lease}{extra}",
                self.mnt().display(),
                self.root.join("data").display(),
                self.addr
            ),
        )?;
        Ok(())
    }

    /// Starts the node; returns the time until its mount answers.
    fn start(&mut self) -> Result<Duration> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("litefs.log"))?;
        let t0 = Instant::now();
        self.child = Some(
            Command::new(&self.litefs)
                .arg("mount")
                .arg("-config")
                .arg(self.root.join("litefs.yml"))
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", self.litefs.display()))?,
        );
        let mnt = self.mnt();
        self.wait(&format!("{} to mount", self.name), || {
            is_mounted(&mnt) && fs::read_dir(&mnt).is_ok()
        })?;
        Ok(t0.elapsed())
    }

    fn wait(&mut self, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while !f() {
            if let Some(c) = &mut self.child {
                if let Some(st) = c.try_wait()? {
                    bail!(
                        "{} exited ({st}) waiting for {what}; see {}",
                        self.name,
                        self.root.join("litefs.log").display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            c.wait()?;
        }
        Ok(())
    }

    fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
            // The kernel lets go of the dead mount a moment later.
            let mnt = self.mnt();
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::metadata(&mnt).err().and_then(|e| e.raw_os_error()) != Some(libc::ENOTCONN)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    fn pos(&self, db: &str) -> String {
        fs::read_to_string(self.mnt().join(format!("{db}-pos")))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Waits until this node's `-pos` is `want`; returns when it got there.
    fn wait_pos(&mut self, db: &str, want: &str) -> Result<Instant> {
        let path = self.mnt().join(format!("{db}-pos"));
        self.wait(&format!("{db}-pos = {want}"), || {
            fs::read_to_string(&path).is_ok_and(|s| s.trim() == want)
        })?;
        Ok(Instant::now())
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
            .arg(self.mnt())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_mounted(dir: &Path) -> bool {
    let want = dir.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

fn txid_of(pos: &str) -> u64 {
    u64::from_str_radix(pos.split('/').next().unwrap_or("0"), 16).unwrap_or(0)
}

fn open(path: &Path) -> Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(10))?;
    Ok(c)
}

/// Follows `GET /events` (HTTP/1.1, chunked NDJSON) and records the arrival
/// time of each `tx` line's TXID. Returns once the init line arrived.
fn subscribe(addr: SocketAddr, seen: Arc<Mutex<HashMap<u64, Instant>>>) -> Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: application/x-ndjson\r\n\r\n"
    )?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let mut ready = Some(ready_tx);
        let key = b"\"txID\":\"";
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let now = Instant::now();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(r) = &ready {
                if buf.windows(6).any(|w| w == b"\"init\"") {
                    let _ = r.send(());
                    ready = None;
                }
            }
            // Every complete line in the buffer (chunk-size lines are noise).
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                if let Some(i) = line.windows(key.len()).position(|w| w == key) {
                    let hex = &line[i + key.len()..];
                    if let Some(end) = hex.iter().position(|&b| b == b'"') {
                        if let Ok(t) =
                            u64::from_str_radix(&String::from_utf8_lossy(&hex[..end]), 16)
                        {
                            seen.lock().unwrap().entry(t).or_insert(now);
                        }
                    }
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("no init line on /events")?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn insert_one(c: &Connection, i: u64) -> Result<()> {
    c.execute(
        "INSERT INTO t (v, pad) VALUES (?1, randomblob(100))",
        params![i as i64],
    )?;
    Ok(())
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
    let base = tmp.path();
    let mut rows: Vec<(String, String)> = Vec::new();
    let db = "bench.db";

    let mut p = Node::new(base, "primary", 1, &litefs)?;
    p.config(None, "")?;
    p.start()?;
    let mut r1 = Node::new(base, "replica1", 2, &litefs)?;
    let mut r2 = Node::new(base, "replica2", 3, &litefs)?;
    for r in [&mut r1, &mut r2] {
        r.config(Some(&p.url()), "")?;
        r.start()?;
    }
    let conn = open(&p.db(db))?;
    conn.query_row(&format!("PRAGMA journal_mode = {}", args.mode), [], |_| {
        Ok(())
    })?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad BLOB)")?;
    let created = p.pos(db);
    r1.wait_pos(db, &created)?;
    r2.wait_pos(db, &created)?;

    // 1. Lag at a steady rate.
    let seen: Vec<Arc<Mutex<HashMap<u64, Instant>>>> = (0..2).map(|_| Arc::default()).collect();
    subscribe(r1.addr, seen[0].clone())?;
    subscribe(r2.addr, seen[1].clone())?;
    let n = (args.rate as f64 * args.secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let base_txid = txid_of(&p.pos(db));
    let mut committed = Vec::with_capacity(n as usize);
    let start = Instant::now();
    let mut late = 0u64;
    for i in 0..n {
        let due = start + interval * i as u32;
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else if now - due > interval {
            late += 1;
        }
        insert_one(&conn, i)?;
        committed.push(Instant::now());
    }
    let write_secs = start.elapsed().as_secs_f64();
    let last = p.pos(db);
    if txid_of(&last) != base_txid + n {
        bail!("expected TXID {} on the primary, got {last}", base_txid + n);
    }
    for r in [&mut r1, &mut r2] {
        r.wait_pos(db, &last)?;
    }
    std::thread::sleep(Duration::from_millis(200));
    rows.push((
        format!(
            "lag: {} tx at {} tx/s ({:.0} tx/s achieved, {late} late)",
            n,
            args.rate,
            n as f64 / write_secs
        ),
        String::new(),
    ));
    for (k, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        // A replica has a transaction once it reports that TXID or a later
        // one: a group-commit file arrives as one line for its last TXID.
        let mut lines: Vec<(u64, Instant)> = s.iter().map(|(t, at)| (*t, *at)).collect();
        lines.sort();
        let mut lags = Vec::with_capacity(n as usize);
        let mut earliest: Option<Instant> = None;
        for i in (0..n).rev() {
            while lines.last().is_some_and(|l| l.0 > base_txid + i) {
                let (_, at) = lines.pop().expect("checked");
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
            if let Some(at) = earliest {
                lags.push(at.saturating_duration_since(committed[i as usize]));
            }
        }
        let missing = n as usize - lags.len();
        lags.sort();
        rows.push((
            format!("  replica{} commit -> /events tx line", k + 1),
            format!(
                "p50 {}  p99 {}  max {}{}",
                ms(percentile(&lags, 0.5)),
                ms(percentile(&lags, 0.99)),
                ms(*lags.last().unwrap_or(&Duration::ZERO)),
                if missing > 0 {
                    format!("  ({missing} tx lines not seen)")
                } else {
                    String::new()
                }
            ),
        ));
    }

    // 2. Catch-up of a replica `behind` transactions behind.
    r2.stop()?;
    let t = Instant::now();
    // One transaction per INSERT, as an app would.
    for i in 0..args.behind {
        insert_one(&conn, n + i)?;
    }
    let primary_rate = args.behind as f64 / t.elapsed().as_secs_f64();
    let want = p.pos(db);
    let t0 = Instant::now();
    let mount_time = r2.start()?;
    let done = r2.wait_pos(db, &want)?;
    let total = done - t0;
    let applying = total.saturating_sub(mount_time);
    rows.push((
        format!(
            "catch-up: replica {} tx behind (primary wrote them at {:.0} tx/s)",
            args.behind, primary_rate
        ),
        format!(
            "{:.2} s from start ({} to mount) = {:.0} tx/s; {:.0} tx/s after mount",
            total.as_secs_f64(),
            ms(mount_time),
            args.behind as f64 / total.as_secs_f64(),
            args.behind as f64 / applying.as_secs_f64().max(1e-9)
        ),
    ));
    drop(conn);

    // 3. Snapshot of a large database to an empty replica.
    r1.stop()?;
    r2.stop()?;
    let big = "big.db";
    let t = Instant::now();
    {
        let c = open(&p.db(big))?;
        c.query_row(&format!("PRAGMA journal_mode = {}", args.mode), [], |_| {
            Ok(())
        })?;
        c.execute_batch("CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB)")?;
        // 4 MB per transaction.
        for _ in 0..args.snapshot_mb.div_ceil(4) {
            c.execute_batch(
                "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64)
                 INSERT INTO b (data) SELECT randomblob(65536) FROM n; COMMIT;",
            )?;
        }
        if args.mode.eq_ignore_ascii_case("wal") {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
    }
    let load_secs = t.elapsed().as_secs_f64();
    let big_bytes = fs::metadata(p.db(big))?.len();
    let mb = big_bytes as f64 / 1e6;
    rows.push((
        format!(
            "load: {:.0} MB written on the primary in 4 MB transactions",
            mb
        ),
        format!("{:.2} s = {:.0} MB/s", load_secs, mb / load_secs),
    ));
    let want = p.pos(big);
    let mut r3 = Node::new(base, "replica3", 4, &litefs)?;
    r3.config(Some(&p.url()), "")?;
    let t0 = Instant::now();
    let mount_time = r3.start()?;
    let done = r3.wait_pos(big, &want)?;
    let total = done - t0;
    let snap_bytes = fs::read_to_string(p.root.join("litefs.log"))?
        .lines()
        .rfind(|l| l.contains("sending snapshot") && l.contains("big.db"))
        .and_then(|l| l.split("bytes=").nth(1))
        .and_then(|b| b.split_whitespace().next()?.parse::<u64>().ok());
    rows.push((
        format!("snapshot: empty replica, {:.0} MB database", mb),
        format!(
            "{:.2} s from start ({} to mount) = {:.0} MB/s{}",
            total.as_secs_f64(),
            ms(mount_time),
            mb / total.as_secs_f64(),
            snap_bytes
                .map(|b| format!(" (LTX sent: {:.0} MB)", b as f64 / 1e6))
                .unwrap_or_default()
        ),
    ));
    r3.stop()?;

    // 4. Restart of the primary with that database.
    let pos_before = p.pos(big);
    p.stop()?;
    let clean = p.start()?;
    rows.push((
        "restart: clean stop, default (persisted checksum)".into(),
        ms(clean),
    ));
    p.kill9()?;
    let crashed = p.start()?;
    rows.push(("restart: after kill -9, default".into(), ms(crashed)));
    p.stop()?;
    p.config(None, "strict-verify: true\n")?;
    let strict = p.start()?;
    rows.push((
        format!(
            "restart: clean stop, strict-verify: true ({:.0} MB checksummed)",
            mb
        ),
        ms(strict),
    ));
    if p.pos(big) != pos_before {
        bail!(
            "position changed across restarts: {pos_before} -> {}",
            p.pos(big)
        );
    }
    rows.push((
        "restart: strict-verify / default".into(),
        format!("{:.1}x", strict.as_secs_f64() / clean.as_secs_f64()),
    ));
    p.stop()?;

    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!(
        "litefs replication benchmark ({} journal mode, loopback, {})",
        args.mode,
        litefs.display()
    );
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
    Ok(())
}
