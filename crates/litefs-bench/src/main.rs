//! `litefs-bench`: small write transactions and point reads through a
//! litefs mount against plain SQLite on the same disk, in the same run.
//!
//! For each journal mode (DELETE, WAL; `synchronous=FULL`) it creates one
//! table of `--rows` rows on each side, then times `--writes` transactions of
//! one INSERT each and `--read-secs` of random point reads by primary key,
//! each read in its own implicit transaction (so every read pays SQLite's
//! per-transaction lock calls and, in DELETE mode, its hot-journal check).
//! Plain and mount runs alternate in two halves so drift in the machine's
//! load hits both sides alike. It prints tx/s, the ratio, and fsyncs per
//! commit: the mount's from the store's counters (fsyncs SQLite asked for
//! through the mount, and the store's own for LTX files), plain SQLite's
//! from `strace -c` of a child process doing the same writes ("n/a" when
//! strace is missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use litefs::store::{Store, StoreOptions};
use rusqlite::{params, Connection};

#[derive(Parser, Debug)]
#[command(
    name = "litefs-bench",
    about = "Writes and point reads through a litefs mount vs plain SQLite on the same disk"
)]
struct Args {
    /// Write transactions (one INSERT each) per journal mode and side.
    #[arg(long, default_value_t = 2000)]
    writes: u64,
    /// Seconds of point reads per journal mode and side.
    #[arg(long, default_value_t = 2.0)]
    read_secs: f64,
    /// Rows in the table before the run.
    #[arg(long, default_value_t = 10_000)]
    rows: u64,
    /// Journal modes to run, comma separated: delete, truncate, persist, wal.
    #[arg(long, default_value = "delete,wal", value_delimiter = ',')]
    modes: Vec<String>,
    /// Write transactions of plain SQLite run under strace to count its
    /// fsyncs (0: skip).
    #[arg(long, default_value_t = 500)]
    strace_writes: u64,
    /// Directory for the temp files (plain databases, store data dir and
    /// mount point all go under it, so on the same disk); default $TMPDIR.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A tiny run (< 5 s) that checks the program still works.
    #[arg(long)]
    smoke: bool,
    /// Diagnostic: the store skips every fsync (its own and SQLite's), to
    /// show what the mount costs besides them. Not durable.
    #[arg(long)]
    store_no_fsync: bool,
    /// Internal: run `--child-count` INSERTs on this existing database and
    /// exit (what the strace child does).
    #[arg(long, hide = true)]
    child_db: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 0)]
    child_count: u64,
    #[arg(long, hide = true, default_value = "wal")]
    child_mode: String,
}

/// One measured row of the table.
struct Row {
    mode: String,
    op: &'static str,
    plain: f64,
    litefs: f64,
    fsyncs: Option<Fsyncs>,
}

struct Fsyncs {
    /// Plain SQLite's fsync + fdatasync per commit (strace), if measured.
    plain: Option<f64>,
    /// Per commit through the mount: the ones SQLite asked for, the store's.
    sqlite: f64,
    ltx: f64,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if let Some(db) = &args.child_db {
        let conn = open(db, &args.child_mode)?;
        insert_many(&conn, args.child_count)?;
        return Ok(());
    }
    if args.smoke {
        args.writes = args.writes.min(40);
        args.read_secs = args.read_secs.min(0.2);
        args.rows = args.rows.min(500);
        args.strace_writes = args.strace_writes.min(10);
    }
    for m in &args.modes {
        journal_mode_pragma(m)?;
    }

    let base = match &args.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("creating the temp dir")?;
    let plain_dir = base.path().join("plain");
    let data_dir = base.path().join("data");
    let mnt_dir = base.path().join("mnt");
    for d in [&plain_dir, &data_dir, &mnt_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }

    println!(
        "litefs-bench: {} writes and {:.1}s of point reads per mode and side, {} rows, synchronous=FULL",
        args.writes, args.read_secs, args.rows
    );
    println!(
        "dir {} ({}); load average at start: {}",
        base.path().display(),
        fs_type(base.path()),
        loadavg()
    );

    let mut opts = StoreOptions::new(&data_dir);
    opts.no_fsync = args.store_no_fsync;
    if opts.no_fsync {
        println!("--store-no-fsync: the store skips every fsync (diagnostic, not durable)");
    }
    let store = Arc::new(Store::open(opts).context("opening the store")?);
    store.set_primary(true);
    let mount = litefs_fuse::mount(
        store.clone(),
        &mnt_dir,
        &litefs_fuse::MountOptions::default(),
    )
    .context("mounting (needs /dev/fuse and root or fusermount3)")?;

    let mut rows = Vec::new();
    let result = (|| -> Result<()> {
        for mode in &args.modes {
            let name = format!("bench-{mode}.db");
            rows.extend(run_mode(
                &args,
                mode,
                &plain_dir.join(&name),
                &mnt_dir.join(&name),
                &store,
            )?);
        }
        Ok(())
    })();
    mount.unmount();
    store.close().context("closing the store")?;
    result?;

    print_table(&rows);
    println!("load average at end: {}", loadavg());
    Ok(())
}

fn run_mode(
    args: &Args,
    mode: &str,
    plain: &Path,
    mounted: &Path,
    store: &Store,
) -> Result<Vec<Row>> {
    let plain_conn = setup(plain, mode, args.rows)?;
    let mount_conn = setup(mounted, mode, args.rows)?;

    // Writes: two halves each side, alternating.
    let half = args.writes / 2;
    let halves = [half, args.writes - half];
    let (mut t_plain, mut t_mount) = (Duration::ZERO, Duration::ZERO);
    let before = (store.tx_count(), store.sqlite_fsyncs(), store.ltx_fsyncs());
    for n in halves {
        t_plain += timed(|| insert_many(&plain_conn, n))?;
        t_mount += timed(|| insert_many(&mount_conn, n))?;
    }
    let commits = store.tx_count() - before.0;
    if commits != args.writes {
        bail!(
            "{mode}: the store captured {commits} commits for {} writes",
            args.writes
        );
    }
    let per = |x: u64| x as f64 / commits.max(1) as f64;
    let fsyncs = Fsyncs {
        plain: plain_fsyncs(args, plain, mode)?,
        sqlite: per(store.sqlite_fsyncs() - before.1),
        ltx: per(store.ltx_fsyncs() - before.2),
    };
    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
    let write_row = Row {
        mode: mode.to_uppercase(),
        op: "write",
        plain: rate(args.writes, t_plain),
        litefs: rate(args.writes, t_mount),
        fsyncs: Some(fsyncs),
    };

    // Churn: each transaction frees pages (it deletes the row the one
    // before inserted) and the next reuses them from the free list, which
    // SQLite writes without journaling them: in the rollback modes the
    // mount saves them first (litefs/src/store/undo.rs). Same count as the
    // writes, alternating halves.
    let (mut t_plain, mut t_mount) = (Duration::ZERO, Duration::ZERO);
    for n in halves {
        t_plain += timed(|| churn(&plain_conn, n))?;
        t_mount += timed(|| churn(&mount_conn, n))?;
    }
    let churn_row = Row {
        mode: mode.to_uppercase(),
        op: "churn",
        plain: rate(args.writes, t_plain),
        litefs: rate(args.writes, t_mount),
        fsyncs: None,
    };

    // Reads: ids 1..=rows exist on both sides.
    let secs = args.read_secs / 2.0;
    let (mut n_plain, mut n_mount) = (0, 0);
    let (mut t_plain, mut t_mount) = (Duration::ZERO, Duration::ZERO);
    for round in 0..2u64 {
        let (n, t) = point_reads(&plain_conn, args.rows, secs, round)?;
        n_plain += n;
        t_plain += t;
        let (n, t) = point_reads(&mount_conn, args.rows, secs, round)?;
        n_mount += n;
        t_mount += t;
    }
    let read_row = Row {
        mode: mode.to_uppercase(),
        op: "read",
        plain: rate(n_plain, t_plain),
        litefs: rate(n_mount, t_mount),
        fsyncs: None,
    };
    Ok(vec![write_row, churn_row, read_row])
}

fn journal_mode_pragma(mode: &str) -> Result<&'static str> {
    Ok(match mode.to_ascii_lowercase().as_str() {
        "delete" => "DELETE",
        "truncate" => "TRUNCATE",
        "persist" => "PERSIST",
        "wal" => "WAL",
        other => bail!("unknown journal mode {other:?} (delete, truncate, persist, wal)"),
    })
}

fn open(path: &Path, mode: &str) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    let want = journal_mode_pragma(mode)?;
    let got: String = conn.query_row(&format!("PRAGMA journal_mode={want}"), [], |r| r.get(0))?;
    if !got.eq_ignore_ascii_case(want) {
        bail!("{}: journal_mode is {got}, wanted {want}", path.display());
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")?;
    Ok(conn)
}

fn setup(path: &Path, mode: &str, rows: u64) -> Result<Connection> {
    let mut conn = open(path, mode)?;
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
    let tx = conn.transaction()?;
    {
        let mut ins = tx.prepare("INSERT INTO t(id, v) VALUES (?1, ?2)")?;
        for id in 1..=rows {
            ins.execute(params![id as i64, value(id)])?;
        }
    }
    tx.commit()?;
    Ok(conn)
}

/// About 100 bytes per row: a few rows per page, like a small app table.
fn value(i: u64) -> String {
    format!("{i:016x}-{}", "x".repeat(80))
}

/// `n` transactions of one INSERT each (autocommit).
fn insert_many(conn: &Connection, n: u64) -> Result<()> {
    let mut ins = conn.prepare_cached("INSERT INTO t(v) VALUES (?1)")?;
    for i in 0..n {
        ins.execute([value(i)])?;
    }
    Ok(())
}

/// `n` transactions that each insert an 8 KB row (two overflow pages) and
/// delete the one inserted before it.
fn churn(conn: &Connection, n: u64) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS churn(id INTEGER PRIMARY KEY, v BLOB)")?;
    let mut ins = conn.prepare_cached("INSERT INTO churn(v) VALUES (zeroblob(8000))")?;
    let mut del = conn.prepare_cached("DELETE FROM churn WHERE id < ?1")?;
    for _ in 0..n {
        conn.execute_batch("BEGIN")?;
        ins.execute([])?;
        del.execute([conn.last_insert_rowid()])?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(())
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// Random point reads for `secs`; returns (reads, elapsed).
fn point_reads(conn: &Connection, rows: u64, secs: f64, seed: u64) -> Result<(u64, Duration)> {
    let mut sel = conn.prepare_cached("SELECT v FROM t WHERE id = ?1")?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (seed + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let limit = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let (mut n, mut bytes) = (0u64, 0usize);
    loop {
        for _ in 0..256 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let id = (rng % rows) as i64 + 1;
            let v: String = sel.query_row([id], |r| r.get(0))?;
            bytes += v.len();
            n += 1;
        }
        if start.elapsed() >= limit {
            break;
        }
    }
    if bytes == 0 {
        bail!("point reads returned nothing");
    }
    Ok((n, start.elapsed()))
}

/// Plain SQLite's fsync + fdatasync calls per commit, from strace on a
/// child doing the same writes (minus a child doing none, which leaves
/// what opening and closing cost). None when strace is unavailable.
fn plain_fsyncs(args: &Args, db: &Path, mode: &str) -> Result<Option<f64>> {
    if args.strace_writes == 0 {
        return Ok(None);
    }
    let count = |n: u64| -> Result<Option<u64>> {
        let out = tempfile::NamedTempFile::new()?;
        let exe = std::env::current_exe()?;
        let status = Command::new("strace")
            .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
            .arg(out.path())
            .arg(&exe)
            .arg("--child-db")
            .arg(db)
            .arg("--child-mode")
            .arg(mode)
            .arg("--child-count")
            .arg(n.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            // strace missing or not permitted (ptrace): report n/a.
            _ => return Ok(None),
        }
        let text = std::fs::read_to_string(out.path())?;
        Ok(Some(parse_strace_calls(&text, &["fsync", "fdatasync"])))
    };
    let (Some(with), Some(without)) = (count(args.strace_writes)?, count(0)?) else {
        return Ok(None);
    };
    Ok(Some(
        with.saturating_sub(without) as f64 / args.strace_writes as f64,
    ))
}

/// Sums the `calls` column of `strace -c` for the named syscalls.
fn parse_strace_calls(text: &str, names: &[&str]) -> u64 {
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let name = *cols.last()?;
            if cols.len() >= 5 && names.contains(&name) {
                cols[3].parse::<u64>().ok()
            } else {
                None
            }
        })
        .sum()
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<9} {:<6} {:>12} {:>12} {:>7}   {:>14} {:>24}",
        "mode",
        "op",
        "plain tx/s",
        "litefs tx/s",
        "ratio",
        "fsyncs/commit:",
        "litefs (sqlite + ltx)"
    );
    println!(
        "{:<9} {:<6} {:>12} {:>12} {:>7}   {:>14}",
        "", "", "", "", "", "plain"
    );
    for r in rows {
        let fs = match &r.fsyncs {
            None => String::new(),
            Some(f) => {
                let plain = f
                    .plain
                    .map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "n/a".into());
                let ours = format!("{:.2} ({:.2} + {:.2})", f.sqlite + f.ltx, f.sqlite, f.ltx);
                format!("{plain:>14} {ours:>24}")
            }
        };
        println!(
            "{:<9} {:<6} {:>12.0} {:>12.0} {:>6.2}x   {}",
            r.mode,
            r.op,
            r.plain,
            r.litefs,
            r.litefs / r.plain,
            fs
        );
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// The file system type under `path`, for the header line.
fn fs_type(path: &Path) -> String {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return "?".into();
    };
    // SAFETY: statfs writes into the zeroed struct we own; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?".into();
    }
    match st.f_type as u64 {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        t => format!("fs type {t:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_summary() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
------ ----------- ----------- --------- --------- ----------------\n\
 90.00    0.009000          45       200           fdatasync\n\
 10.00    0.001000          10       100         1 fsync\n\
------ ----------- ----------- --------- --------- ----------------\n\
100.00    0.010000          33       300         1 total\n";
        assert_eq!(parse_strace_calls(text, &["fsync", "fdatasync"]), 300);
    }
}
