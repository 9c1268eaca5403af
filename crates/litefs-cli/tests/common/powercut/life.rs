//! What a power-cut test does around the simulated file system: the
//! writer that records each acknowledged id, starting a node and waiting
//! for its mount, waiting for the cut and killing the node the way the
//! power does, and the time-bounded loop over journal modes and durability
//! models that repeats lives with seeds a failure report names.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Model, Rng, SimFs};
use crate::common::is_mounted;
use crate::common::node::Node;

/// How long any wait of a power-cut test may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// The database every power-cut test writes.
pub const DB: &str = "app.db";

/// Commits unique ids (synchronous=FULL) and appends each acknowledged one
/// to the ack file; now and then a large spilling transaction, a delete
/// that frees pages for later transactions to reuse, and in WAL mode a
/// checkpoint. Stops at the first error (the power is gone).
pub const WRITER: &str = r#"
import os, random, sqlite3, sys
path, ack, mode, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rnd = random.Random(seed)
fd = os.open(ack, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
try:
    c = sqlite3.connect(path, isolation_level=None, timeout=10)
    c.execute("PRAGMA journal_mode=" + mode).fetchall()
    c.execute("PRAGMA synchronous=FULL")
    c.execute("PRAGMA cache_size=16")
    c.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad BLOB)")
    c.execute("CREATE TABLE IF NOT EXISTS junk (pad BLOB)")
    i = 0
    while True:
        r = rnd.random()
        if r < 0.05:
            ids = list(range(i + 1, i + 101))
            c.execute("BEGIN")
            c.executemany("INSERT INTO t VALUES (?, randomblob(1200))", [(j,) for j in ids])
            c.execute("INSERT INTO junk SELECT randomblob(1500) FROM t WHERE id > ?", (i,))
            c.execute("COMMIT")
        elif r < 0.10:
            c.execute("DELETE FROM junk WHERE rowid IN (SELECT rowid FROM junk ORDER BY random() LIMIT 60)")
            continue
        elif r < 0.12 and mode == "WAL":
            c.execute("PRAGMA wal_checkpoint(%s)" % rnd.choice(["PASSIVE", "TRUNCATE"])).fetchall()
            continue
        else:
            ids = [i + 1]
            c.execute("INSERT INTO t VALUES (?, randomblob(300))", (i + 1,))
        i = ids[-1]
        os.write(fd, "".join("%d\n" % j for j in ids).encode())
except Exception:
    sys.exit(0)
"#;

pub fn spawn_writer(n: &Node, mode: &str, seed: u64) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(WRITER)
        .arg(n.db(DB))
        .arg(n.file("acked"))
        .arg(mode)
        .arg(seed.to_string())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for the writer, which stops on the dead mount; the ids
/// it acknowledged.
pub fn stop_writer(mut w: Child, n: &Node) -> Vec<u64> {
    let deadline = Instant::now() + WAIT;
    while w.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = w.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    fs::read_to_string(n.file("acked"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Whether the node's mount answers.
pub fn serving(n: &Node) -> bool {
    is_mounted(&n.mnt()) && fs::read_dir(n.mnt()).is_ok()
}

/// How many times the node's log says its mount came up.
pub fn mounts(n: &Node) -> usize {
    n.log().matches("litefs_fuse: mounted").count()
}

/// Starts the node and waits until this start's mount answers (a stale
/// mount left by a kill must not pass for it).
pub fn start(n: &mut Node) {
    let before = mounts(n);
    n.spawn(&[]);
    let (log, mnt) = (n.log_path(), n.mnt());
    n.wait_until("the mount", || {
        let up = fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("litefs_fuse: mounted")
            .count();
        up > before && is_mounted(&mnt) && fs::read_dir(&mnt).is_ok()
    });
}

/// Waits until the mount answers (true) or the power is cut or litefs
/// exits (false).
pub fn wait_serving(n: &mut Node, sim: &SimFs, before: usize) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if sim.cut().is_some() || !n.is_running() {
            return false;
        }
        if mounts(n) > before && serving(n) {
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "litefs never served:\n{}",
            n.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (bounded) for the cut, then kills litefs the way the power does.
pub fn wait_cut_and_kill(n: &mut Node, sim: &SimFs, limit: Duration) {
    let deadline = Instant::now() + limit;
    while sim.cut().is_none() && n.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    sim.cut_now();
    kill(n);
}

pub fn kill(n: &mut Node) {
    if !n.is_running() {
        n.wait_exit();
    } else if is_mounted(&n.mnt()) {
        n.kill9().unwrap();
    } else {
        n.signal(Signal::SIGKILL);
        n.wait_exit();
    }
}

/// A second cut, during the recovery of the image the first left: a dry
/// run measures recovery's ops on this image, the real run cuts the power
/// somewhere inside them, and the image it leaves replaces the first.
pub fn cut_during_recovery(n: &mut Node, model: Model, rng: &mut Rng, story: &mut Vec<String>) {
    let dry = SimFs::mount(&n.data(), model, true);
    start(n);
    let ops = dry.ops();
    kill(n);
    drop(dry);
    let mut sim = SimFs::mount(&n.data(), model, true);
    sim.cut_at(1 + rng.below(ops.max(1)));
    let before = mounts(n);
    n.spawn(&[]);
    wait_serving(n, &sim, before);
    wait_cut_and_kill(n, &sim, Duration::from_millis(200));
    story.push(format!(
        "recovery of {ops} ops cut at {}",
        sim.cut().unwrap()
    ));
    story.push(format!("kept {}", sim.materialize(rng.next_u64())));
}

/// Runs the model's rules in litefs too: on the simulated file system (a
/// FUSE mount, where litefs would fsync every directory) the ext4 model
/// makes it skip the directory fsyncs, as it does on a real ext4.
pub fn follow_model(n: &mut Node, model: Model) {
    let dir_sync = match model {
        Model::Ext4 => "never",
        Model::Posix => "always",
    };
    n.env("LITEFS_DIR_SYNC", dir_sync);
}

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The models to run: POWER_CUT_MODELS (`ext4`, `posix` or both, comma
/// separated), else `default`.
pub fn models(default: &str) -> Vec<Model> {
    std::env::var("POWER_CUT_MODELS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|m| match m {
            "ext4" => Model::Ext4,
            "posix" => Model::Posix,
            _ => panic!("POWER_CUT_MODELS: {m:?} is neither ext4 nor posix"),
        })
        .collect()
}

/// Runs lives for `total` (POWER_CUT_SECS overrides it), split evenly over
/// `modes` and `models`, at least one each; `calibrate` gives a mode's op
/// budget, `life` runs one life, pushing what was cut and kept to its
/// story. Panics with every failed life's story and seed.
pub fn run_lives(
    modes: &[&str],
    models: &[Model],
    total: Duration,
    calibrate: impl Fn(&str) -> u64,
    life: impl Fn(&str, Model, u64, u64, &mut Vec<String>),
) {
    let total = env_u64("POWER_CUT_SECS").map_or(total, Duration::from_secs);
    let base = env_u64("POWER_CUT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("power cut: POWER_CUT_SEED={base}, {total:?}");
    let slot = total / (modes.len() * models.len()) as u32;
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for (mi, &mode) in modes.iter().enumerate() {
        let start = Instant::now();
        let budget = calibrate(mode);
        for (m, &model) in models.iter().enumerate() {
            let end = start + slot * (m as u32 + 1);
            let mut lives = 0;
            let mut recovery_cuts = 0;
            while lives == 0 || Instant::now() < end {
                let seed =
                    Rng::new(base.wrapping_add(((mi * 2 + m) as u64) << 32 | lives)).next_u64();
                let mut story = Vec::new();
                let r = catch_unwind(AssertUnwindSafe(|| {
                    life(mode, model, seed, budget, &mut story)
                }));
                lives += 1;
                recovery_cuts += story.iter().filter(|s| s.starts_with("recovery")).count();
                if let Err(e) = r {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!(
                        "{mode} {model:?} seed {seed}: {}\n  => {msg}",
                        story.join("; ")
                    ));
                }
            }
            summary.push(format!(
                "{mode} {model:?}: {lives} power cuts, {recovery_cuts} more during recovery \
                 (cuts within {budget} ops)"
            ));
        }
    }
    for s in &summary {
        eprintln!("{s}");
    }
    assert!(
        failures.is_empty(),
        "POWER_CUT_SEED={base}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
