//! One `litefs mount` process for a test: its own directories, address,
//! litefs.yml and log, helpers to start, wait for, signal and stop it, and
//! a `Drop` that stops it (TERM, then KILL) and lazily unmounts whatever
//! the test did.
//!
//! ```ignore
//! let mut p = Node::on_host(1, WAIT);
//! p.config(Config::new(true).primary("node-a", &p.url()));
//! p.start(); // waits until the mount answers
//! let mut r = Node::on_host(2, WAIT);
//! r.config(Config::new(false).primary("node-a", &p.url()).skip_sync());
//! r.start();
//! ```

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{detach, is_mounted, LITEFS};

/// What a node's litefs.yml says besides its directories and `http.addr`:
/// a static lease, candidate or not, and whatever more a test needs.
#[derive(Clone, Debug, Default)]
pub struct Config {
    candidate: bool,
    primary: Option<(String, String)>,
    reconnect_delay: Option<String>,
    skip_sync: bool,
    data: String,
    extra: String,
    /// The whole `lease:` map (flow style), replacing the static lease.
    lease: Option<String>,
}

impl Config {
    /// A static lease, `candidate: true` (the primary) or not.
    pub fn new(candidate: bool) -> Config {
        Config {
            candidate,
            ..Config::default()
        }
    }

    /// The lease's `hostname` and `advertise-url`: the primary's (the
    /// node's own for the candidate).
    pub fn primary(mut self, hostname: &str, url: &str) -> Config {
        self.primary = Some((hostname.to_string(), url.to_string()));
        self
    }

    /// The lease's `reconnect-delay` ("200ms").
    pub fn reconnect_delay(mut self, d: &str) -> Config {
        self.reconnect_delay = Some(d.to_string());
        self
    }

    /// `skip-sync: true`: a replica's exec does not wait to catch up.
    pub fn skip_sync(mut self) -> Config {
        self.skip_sync = true;
        self
    }

    /// More fields of the `data:` map, flow style
    /// (`retention: "1s", retention-monitor-interval: "1s"`).
    pub fn data(mut self, fields: &str) -> Config {
        self.data = fields.to_string();
        self
    }

    /// The `lease:` map's fields, flow style, instead of the static lease
    /// (`type: consul, candidate: true, consul: { ... }`).
    pub fn lease(mut self, fields: &str) -> Config {
        self.lease = Some(fields.to_string());
        self
    }

    /// More top-level YAML (an `exec:` section, say), appended as is.
    pub fn extra(mut self, yaml: &str) -> Config {
        self.extra = yaml.to_string();
        self
    }

    fn yaml(&self, mnt: &Path, data: &Path, addr: SocketAddr) -> String {
        let data_extra = if self.data.is_empty() {
            String::new()
        } else {
            format!(", {}", self.data)
        };
        let mut lease = match &self.lease {
            Some(fields) => fields.clone(),
            None => format!("type: static, candidate: {}", self.candidate),
        };
        if let Some((host, url)) = &self.primary {
            lease += &format!(", hostname: \"{host}\", advertise-url: \"{url}\"");
        }
        if let Some(d) = &self.reconnect_delay {
            lease += &format!(", reconnect-delay: \"{d}\"");
        }
        let skip_sync = if self.skip_sync {
            "skip-sync: true\n"
        } else {
            ""
        };
        format!(
            "fuse: {{ dir: \"{}\" }}\ndata: {{ dir: \"{}\"{data_extra} }}\nhttp: {{ addr: \"{addr}\" }}\n\
             {skip_sync}lease: {{ {lease} }}\n{}",
            mnt.display(),
            data.display(),
            self.extra,
        )
    }
}

/// One `litefs mount` process with its own directories and address. On
/// drop the process is stopped (TERM, then KILL) and the mount lazily
/// unmounted, whatever the test did.
pub struct Node {
    root: tempfile::TempDir,
    addr: SocketAddr,
    /// How long any wait of this node may take.
    wait: Duration,
    child: Option<Child>,
    /// The FUSE connection of the running mount (`/sys/fs/fuse/connections/N`).
    fuse_conn: Option<String>,
    /// The program `spawn` runs: this crate's `litefs` unless a test swaps
    /// in another (LiteFS itself, for the interop tests).
    bin: PathBuf,
    /// More environment for the process (`FLY_APP_NAME`, say).
    env: Vec<(String, String)>,
}

impl Node {
    /// A node on 127.0.0.1 whose waits give up after `wait`.
    pub fn new(wait: Duration) -> Node {
        Node::on_host(1, wait)
    }

    /// A node listening on 127.0.0.`host` (a free port there) whose waits
    /// give up after `wait`.
    pub fn on_host(host: u8, wait: Duration) -> Node {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("mnt")).unwrap();
        let ip = Ipv4Addr::new(127, 0, 0, host);
        let addr = TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap();
        Node {
            root,
            addr,
            wait,
            child: None,
            fuse_conn: None,
            bin: PathBuf::from(LITEFS),
            env: Vec::new(),
        }
    }

    /// Sets an environment variable for the next starts of the process.
    pub fn env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs `bin` (which takes `mount -config FILE` as litefs does) from
    /// the next start on, on the same directories and address.
    pub fn set_bin(&mut self, bin: &Path) {
        self.bin = bin.to_path_buf();
    }

    /// `http.addr`, the same for every start of this node.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A file in the node's own directory (next to mnt/ and data/).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    pub fn mnt(&self) -> PathBuf {
        self.file("mnt")
    }

    /// A database (or other file) in the mount.
    pub fn db(&self, name: &str) -> PathBuf {
        self.mnt().join(name)
    }

    pub fn data(&self) -> PathBuf {
        self.file("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.file("litefs.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Writes litefs.yml (the directories, `http.addr` and `config`);
    /// returns its path.
    pub fn config(&self, config: Config) -> PathBuf {
        let path = self.file("litefs.yml");
        fs::write(&path, config.yaml(&self.mnt(), &self.data(), self.addr)).unwrap();
        path
    }

    /// Starts `litefs mount -config litefs.yml [-- cmd...]`, logging to
    /// litefs.log, and returns at once.
    pub fn spawn(&mut self, cmd: &[&str]) {
        assert!(self.child.is_none(), "node already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut c = Command::new(&self.bin);
        c.arg("mount")
            .arg("-config")
            .arg(self.file("litefs.yml"))
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if !cmd.is_empty() {
            c.arg("--").args(cmd);
        }
        self.child = Some(c.spawn().unwrap());
    }

    /// Starts the node (no command) and waits until its mount answers.
    pub fn start(&mut self) {
        self.spawn(&[]);
        let mnt = self.mnt();
        self.wait_until("the mount to appear", || {
            is_mounted(&mnt) && fs::read_dir(&mnt).is_ok()
        });
        self.fuse_conn = fuse_conn(&mnt);
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("node not running").id() as i32)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// Waits (bounded) for litefs to exit; returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("node not running");
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "litefs did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and a bounded wait for the exit; its status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit()
    }

    /// SIGTERM and a bounded wait for a clean exit (code 0).
    pub fn stop(&mut self) {
        let st = self.terminate();
        assert!(st.success(), "litefs exited with {st}:\n{}", self.log());
    }

    /// kill -9; the stale mount is left behind, as after a crash. A
    /// process that cannot finish exiting within 5 s (stuck in a request
    /// to its own, now unserved, FUSE mount) is reported as an error after
    /// its FUSE connection is aborted so that it can exit.
    pub fn kill9(&mut self) -> Result<(), String> {
        let mut child = self.child.take().expect("node not running");
        child.kill().unwrap();
        if wait_bounded(&mut child, Duration::from_secs(5)) {
            // The kernel releases a dead process's /dev/fuse a moment after
            // it is reaped (delayed fput); until then the mount does not yet
            // answer ENOTCONN and looks alive. A restart in that window
            // fails with "Transport endpoint is not connected" (see the
            // report); wait (bounded) for the crash to be complete.
            let mnt = self.mnt();
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::metadata(&mnt).err().and_then(|e| e.raw_os_error()) != Some(libc::ENOTCONN)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok(());
        }
        let stuck = task_states(child.id());
        self.abort_fuse();
        let exited = wait_bounded(&mut child, Duration::from_secs(5));
        Err(format!(
            "litefs (pid {}) did not exit within 5 s of SIGKILL (threads: {stuck}); \
             exited after aborting its FUSE connection: {exited}",
            child.id()
        ))
    }

    /// Aborts this node's FUSE connection (only while its mount is still
    /// the one recorded at start).
    pub fn abort_fuse(&mut self) {
        if let Some(conn) = self.fuse_conn.take() {
            if fuse_conn(&self.mnt()).as_deref() == Some(conn.as_str()) {
                abort_fuse_conn(&conn);
            }
        }
    }

    /// Polls `f` until it holds; panics with this node's log if litefs
    /// exits first or the wait runs out.
    pub fn wait_until(&mut self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + self.wait;
        loop {
            if f() {
                return;
            }
            if let Some(c) = &mut self.child {
                if let Some(st) = c.try_wait().unwrap() {
                    panic!(
                        "litefs exited ({st}) while waiting for {what}:\n{}",
                        self.log()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The `-pos` file's content, trimmed, if the database exists here.
    pub fn pos(&self, db: &str) -> Option<String> {
        fs::read_to_string(self.db(&format!("{db}-pos")))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            if !wait_bounded(&mut c, Duration::from_secs(3)) {
                let _ = c.kill();
                if !wait_bounded(&mut c, Duration::from_secs(3)) {
                    // Stuck on its own mount: never leave a D-state zombie.
                    self.abort_fuse();
                    wait_bounded(&mut c, Duration::from_secs(3));
                }
            }
        }
        detach(&self.mnt());
    }
}

/// Waits at most `d` for `c` to exit; whether it did.
fn wait_bounded(c: &mut Child, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if c.try_wait().ok().flatten().is_some() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// "tid:state:wchan" of each thread of `pid`, for a report.
fn task_states(pid: u32) -> String {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return String::new();
    };
    rd.filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            let stat = fs::read_to_string(p.join("stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string();
            let wchan = fs::read_to_string(p.join("wchan")).unwrap_or_default();
            format!("{}:{state}:{wchan}", e.file_name().to_string_lossy())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The FUSE connection number (the device minor) of the mount at `dir`.
fn fuse_conn(dir: &Path) -> Option<String> {
    let want = dir.to_str().unwrap().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(4) == Some(&want.as_str()))
                .then(|| f.get(2)?.split(':').nth(1).map(String::from))?
        })
        .next_back()
}

/// Writes to /sys/fs/fuse/connections/N/abort (mounting fusectl if needed).
fn abort_fuse_conn(conn: &str) {
    let dir = Path::new("/sys/fs/fuse/connections");
    if !dir.join(conn).exists() {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(dir)
            .stderr(Stdio::null())
            .status();
    }
    let _ = fs::write(dir.join(conn).join("abort"), "1");
}
