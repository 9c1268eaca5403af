//! `proxy`: requests/s and p50/p99 latency straight to an app and through
//! the litefs-rs proxy (and LiteFS v0.5.14's, given `--litefs-go`), in the
//! same run, at 1, 32 and 256 concurrent keep-alive connections, for a GET
//! without cookie, a GET with a satisfied `__txid` cookie, and a POST on
//! the primary (which adds the `Set-Cookie`).
//!
//! The app is a tiny hyper server in this process answering `ok`; each
//! proxy runs in a `litefs mount` process (static lease, primary) whose
//! database already has transactions, so the cookie is satisfied at once.
//! Needs root (FUSE). Run:
//!   cargo build --release -p litefs-cli -p litefs-bench
//!   target/release/proxy [--litefs-go target/litefs-go/litefs]

use std::convert::Infallible;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Parser, Debug)]
#[command(name = "proxy", about = "Proxy vs direct: requests/s and latency")]
struct Args {
    /// Seconds per measurement (one kind, one path, one concurrency).
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Concurrent connections, comma separated.
    #[arg(long, default_value = "1,32,256", value_delimiter = ',')]
    conns: Vec<usize>,
    /// The litefs-rs `litefs` binary; default: `litefs` beside this program.
    #[arg(long)]
    litefs: Option<PathBuf>,
    /// LiteFS v0.5.14's binary (../shared/litefs-go/build.sh) for a third column.
    #[arg(long)]
    litefs_go: Option<PathBuf>,
    /// Directory for the nodes' data and mounts; default $TMPDIR.
    #[arg(long)]
    dir: Option<PathBuf>,
}

const DB: &str = "bench.db";
const COOKIE: &str = "__txid=0000000000000001";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Get,
    GetCookie,
    Post,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Get => "GET",
            Kind::GetCookie => "GET+cookie",
            Kind::Post => "POST",
        }
    }

    fn request(self) -> Request<Full<Bytes>> {
        let b = Request::builder().header("host", "bench");
        match self {
            Kind::Get => b.uri("/").body(Full::default()),
            Kind::GetCookie => b.uri("/").header("cookie", COOKIE).body(Full::default()),
            Kind::Post => b
                .method("POST")
                .uri("/write")
                .body(Full::new(Bytes::from_static(b"x=1"))),
        }
        .expect("valid request")
    }
}

struct Stats {
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

/// One `litefs mount` with a proxy in front of the app.
struct Node {
    child: Child,
    proxy: SocketAddr,
    mnt: PathBuf,
}

impl Node {
    fn start(bin: &Path, root: &Path, app: SocketAddr) -> Result<Node> {
        fs::create_dir_all(root.join("mnt"))?;
        let http = free_addr()?;
        let proxy = free_addr()?;
        let yaml = format!(
            "fuse: {{ dir: \"{root}/mnt\" }}\ndata: {{ dir: \"{root}/data\" }}\n\
             http: {{ addr: \"{http}\" }}\n\
             proxy: {{ addr: \"{proxy}\", target: \"{app}\", db: \"{DB}\" }}\n\
             lease: {{ type: static, candidate: true, hostname: bench, advertise-url: \"http://{http}\" }}\n",
            root = root.display()
        );
        fs::write(root.join("litefs.yml"), yaml)?;
        let log = fs::File::create(root.join("litefs.log"))?;
        let child = Command::new(bin)
            .arg("mount")
            .arg("-config")
            .arg(root.join("litefs.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let node = Node {
            child,
            proxy,
            mnt: root.join("mnt"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(proxy).is_err() || fs::read_dir(&node.mnt).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "{} did not start; see {}/litefs.log",
                    bin.display(),
                    root.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // A few transactions so that the cookie (TXID 1) is already reached.
        let mut last = None;
        for _ in 0..50 {
            match rusqlite::Connection::open(node.mnt.join(DB)).and_then(|c| {
                c.execute_batch("CREATE TABLE IF NOT EXISTS t(x); INSERT INTO t VALUES (1);")
            }) {
                Ok(()) => return Ok(node),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("writing {DB} through {}: {last:?}", node.mnt.display())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = nix_term(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Normally litefs unmounted already; this is for a crash.
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status();
    }
}

fn nix_term(pid: u32) -> std::io::Result<()> {
    // SAFETY: kill(2) on our own child's pid.
    match unsafe { libc::kill(pid as i32, libc::SIGTERM) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?)
}

/// The app: `ok` to everything, request bodies read and dropped.
async fn serve_app(listener: tokio::net::TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// `conns` keep-alive connections sending `kind` back to back for `secs`.
async fn load(addr: SocketAddr, conns: usize, secs: f64, kind: Kind) -> Stats {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(connection(addr, deadline, kind)))
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Stats {
        rps: lat.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        errors,
    }
}

async fn connection(addr: SocketAddr, deadline: Instant, kind: Kind) -> (Vec<u64>, u64) {
    let (mut lat, mut errors) = (Vec::new(), 0u64);
    while Instant::now() < deadline {
        let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let Ok((mut tx, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            let t = Instant::now();
            let ok = match tx.send_request(kind.request()).await {
                Ok(resp) => {
                    let good = resp.status().is_success();
                    resp.into_body().collect().await.is_ok() && good
                }
                Err(_) => false,
            };
            if !ok {
                errors += 1;
                break;
            }
            lat.push(t.elapsed().as_micros() as u64);
            if tx.ready().await.is_err() {
                break;
            }
        }
    }
    (lat, errors)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let litefs = match args.litefs.clone() {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("litefs"),
    };
    let base = tempfile::Builder::new()
        .prefix("proxy-bench")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let app_listener = rt.block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
    let app = app_listener.local_addr()?;
    rt.spawn(serve_app(app_listener));

    let mut paths: Vec<(&str, SocketAddr, Option<Node>)> = vec![("direct", app, None)];
    let rs = Node::start(&litefs, &base.path().join("rs"), app)?;
    paths.push(("litefs-rs", rs.proxy, Some(rs)));
    if let Some(go) = &args.litefs_go {
        let node = Node::start(go, &base.path().join("go"), app)?;
        paths.push(("litefs-go", node.proxy, Some(node)));
    }

    println!(
        "{:<11} {:>5}  {:<10} {:>10} {:>8} {:>8} {:>6}  {:>9} {:>10}",
        "kind", "conns", "path", "req/s", "p50 us", "p99 us", "errors", "vs direct", "added p50"
    );
    for kind in [Kind::Get, Kind::GetCookie, Kind::Post] {
        for &conns in &args.conns {
            let mut direct: Option<Stats> = None;
            for (name, addr, _) in &paths {
                let s = rt.block_on(load(*addr, conns, args.secs, kind));
                let (ratio, added) = match &direct {
                    Some(d) => (
                        format!("{:.2}x", s.rps / d.rps),
                        format!("{:+.3} ms", (s.p50_us as f64 - d.p50_us as f64) / 1000.0),
                    ),
                    None => (String::new(), String::new()),
                };
                println!(
                    "{:<11} {:>5}  {:<10} {:>10.0} {:>8} {:>8} {:>6}  {:>9} {:>10}",
                    kind.label(),
                    conns,
                    name,
                    s.rps,
                    s.p50_us,
                    s.p99_us,
                    s.errors,
                    ratio,
                    added
                );
                if direct.is_none() {
                    direct = Some(s);
                }
            }
        }
    }
    // Peak memory of each proxy's whole litefs process over the run (256
    // connections included).
    for (name, _, node) in &paths {
        if let Some(node) = node {
            let status = fs::read_to_string(format!("/proc/{}/status", node.child.id()))?;
            let peak = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(str::trim)
                .unwrap_or("?");
            println!("{name}: peak RSS of the litefs process {peak}");
        }
    }
    drop(paths);
    Ok(())
}
