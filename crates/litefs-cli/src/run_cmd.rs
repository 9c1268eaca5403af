//! `litefs run [-url URL] [-promote] [-if-candidate] [-with-halt-lock-on
//! DB] -- CMD [ARG...]`, as LiteFS 0.5 has it: run a command once the
//! node's API (`-url`, default `http://localhost:20202`) says this node is
//! a candidate, after promoting it, or while holding the halt lock of a
//! database in the mount (an fcntl write lock on byte 72 of `<DB>-lock`).
//! Unlike LiteFS, the command's exit code is litefs's.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// LiteFS's `LockTypeHalt`: the byte of `<db>-lock` the halt lock is on.
const HALT_BYTE: i64 = 72;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The node's API.
    #[arg(long, default_value = "http://localhost:20202")]
    url: String,
    /// Promote this node to primary (a handoff from the current one) first.
    #[arg(long)]
    promote: bool,
    /// Run the command only if this node is a candidate (exit 0 otherwise).
    #[arg(long)]
    if_candidate: bool,
    /// Full path of a database in the mount to hold the halt lock on while
    /// the command runs.
    #[arg(long, value_name = "DB")]
    with_halt_lock_on: Option<PathBuf>,
    /// Log what happens.
    #[arg(short = 'v')]
    verbose: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

/// LiteFS's `/info` fields `run` needs.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    is_primary: bool,
    candidate: bool,
}

pub fn run(a: RunArgs) -> Result<i32> {
    if a.promote && a.with_halt_lock_on.is_some() {
        bail!("cannot specify both -promote & -with-halt-lock-on");
    }
    let say = |msg: &str| {
        if a.verbose {
            eprintln!("litefs run: {msg}");
        }
    };
    let base = a.url.trim_end_matches('/').to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting runtime")?;
    if a.if_candidate || a.promote {
        say("fetching node metadata");
        let url = format!("{base}/info");
        let (status, body) = rt
            .block_on(litefs::http::get(&url))
            .map_err(anyhow::Error::msg)?;
        if status != 200 {
            bail!("{url}: {status}: {}", body.trim());
        }
        let info: Info = serde_json::from_str(&body)
            .with_context(|| format!("{url}: not a LiteFS node's /info: {}", body.trim()))?;
        if a.if_candidate && !info.candidate {
            eprintln!("node is not a candidate, skipping execution");
            return Ok(0);
        }
        if a.promote {
            if info.is_primary {
                say("node is already primary, skipping promotion");
            } else {
                say("promoting node to primary");
                let url = format!("{base}/promote");
                let (status, body) = rt
                    .block_on(litefs::http::post(&url))
                    .map_err(anyhow::Error::msg)?;
                if status != 200 {
                    bail!("promotion failed: {url}: {status}: {}", body.trim());
                }
                say("promotion successful");
            }
        }
    }
    drop(rt);

    let lock = match &a.with_halt_lock_on {
        Some(db) => {
            say("acquiring halt lock");
            let f = halt(db)?;
            say("halt lock acquired");
            Some(f)
        }
        None => None,
    };
    let status = std::process::Command::new(&a.cmd[0])
        .args(&a.cmd[1..])
        .status()
        .with_context(|| format!("running {:?}", a.cmd[0]))?;
    if let Some(f) = lock {
        say("releasing halt lock");
        set_lock(&f, nix::libc::F_UNLCK).context("releasing the halt lock")?;
        say("halt lock released");
    }
    Ok(crate::exec::exit_code(status))
}

/// Takes the halt lock on `db`: LiteFS's node asks the primary for it and
/// returns once this node has caught up with the primary's position.
fn halt(db: &Path) -> Result<File> {
    std::fs::metadata(db).with_context(|| format!("database does not exist: {}", db.display()))?;
    let mut lock_path = db.as_os_str().to_owned();
    lock_path.push("-lock");
    let f = match OpenOptions::new().read(true).write(true).open(&lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "lock file not available, are you sure {:?} is a LiteFS mount? \
             (a litefs-rs mount has no halt lock: run the command on the primary, \
             or with -promote on a candidate)",
            db.parent().unwrap_or(Path::new("/"))
        ),
        Err(e) => return Err(e).with_context(|| format!("opening {lock_path:?}")),
    };
    set_lock(&f, nix::libc::F_WRLCK)
        .with_context(|| format!("acquiring the halt lock on {}", db.display()))?;
    // The command inherits the descriptor, as LiteFS's `run` passes it: a
    // descriptor closed at exec would make the mount drop the lock (FUSE
    // flush) before the command has run.
    // SAFETY: F_SETFD on a descriptor this function owns.
    if unsafe { nix::libc::fcntl(f.as_raw_fd(), nix::libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("keeping the halt lock open for the command");
    }
    Ok(f)
}

fn set_lock(f: &File, kind: i32) -> std::io::Result<()> {
    // SAFETY: flock is a plain struct; zeroed is a valid starting value.
    let mut fl: nix::libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as nix::libc::c_short;
    fl.l_whence = nix::libc::SEEK_SET as nix::libc::c_short;
    fl.l_start = HALT_BYTE;
    fl.l_len = 1;
    let cmd = if kind == nix::libc::F_UNLCK {
        nix::libc::F_SETLK
    } else {
        nix::libc::F_SETLKW
    };
    loop {
        // SAFETY: a valid descriptor and a pointer to a live flock.
        if unsafe { nix::libc::fcntl(f.as_raw_fd(), cmd, &fl) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
