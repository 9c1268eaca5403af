//! Power cuts at any moment of a primary's life: its data dir on the
//! power-cut file system (common/powercut.rs), a writer committing through
//! the mount, the power cut at a random mutating operation (during commit
//! capture, the WAL log writer, retention or startup), the durable image
//! kept by POSIX's rules or ext4's, and half the time a second cut during
//! the recovery of that image. After the last restart, on a real disk:
//! every acknowledged id present, integrity ok, the LTX log replaying to
//! the database byte for byte, `-pos` naming the last LTX file, nothing of
//! a recovery left behind.
//!
//! Bounded by POWER_CUT_SECS (default 64) for all modes and models;
//! POWER_CUT_SEED repeats a run's choices (the op counts depend on timing,
//! so a repeat lands near, not exactly on, the same operations).
//!
//! POWER_CUT_MODELS picks the durability rules: `ext4` (metadata durable
//! in order at the next fsync of anything), `posix` (a name durable only at
//! an fsync of its directory) or both, the default.

use std::collections::HashSet;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

mod common;

use common::logcheck::assert_clean_log;
use common::node::{Config, Node};
use common::powercut::life::{
    cut_during_recovery, follow_model, kill, models, run_lives, spawn_writer, start, stop_writer,
    wait_cut_and_kill, wait_serving, DB, WAIT,
};
use common::powercut::{Model, Rng, SimFs};
use common::sqlite3;

const MODES: [&str; 4] = ["DELETE", "TRUNCATE", "PERSIST", "WAL"];
/// How long the calibration run writes; cuts land within as many ops.
const CALIBRATION: Duration = Duration::from_millis(1500);

fn config() -> Config {
    Config::new(true).data("retention: \"1s\", retention-monitor-interval: \"1s\"")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Mutating operations of a node's first `CALIBRATION` of writing.
fn calibrate(mode: &str) -> u64 {
    let mut n = Node::new(WAIT);
    follow_model(&mut n, Model::Ext4);
    n.config(config());
    fs::create_dir(n.data()).unwrap();
    let sim = SimFs::mount(&n.data(), Model::Ext4, false);
    n.start();
    let w = spawn_writer(&n, mode, 1);
    std::thread::sleep(CALIBRATION);
    let ops = sim.ops();
    kill(&mut n);
    let acked = stop_writer(w, &n);
    assert!(!acked.is_empty(), "{mode}: calibration wrote nothing");
    ops
}

/// One life: cut at a random op of the first `budget` ops, maybe a second
/// cut during recovery, a restart on real disk and the checks. What was
/// cut and kept goes to `story` as it happens.
fn life(mode: &str, model: Model, seed: u64, budget: u64, story: &mut Vec<String>) {
    let mut rng = Rng::new(seed);
    let mut n = Node::new(WAIT);
    follow_model(&mut n, model);
    n.config(config());
    fs::create_dir(n.data()).unwrap();
    let mut sim = SimFs::mount(&n.data(), model, false);
    let k = 1 + rng.below(budget);
    sim.cut_at(k);
    n.spawn(&[]);
    let writer = wait_serving(&mut n, &sim, 0).then(|| spawn_writer(&n, mode, rng.next_u64()));
    wait_cut_and_kill(&mut n, &sim, WAIT);
    let acked = writer.map(|w| stop_writer(w, &n)).unwrap_or_default();
    story.push(format!("cut at {}", sim.cut().unwrap()));
    story.push(format!("kept {}", sim.materialize(rng.next_u64())));
    drop(sim);

    if rng.coin() {
        cut_during_recovery(&mut n, model, &mut rng, story);
    }

    start(&mut n);
    check(&mut n, &acked, story);
}

/// The restarted node holds every acknowledged id, intact, its log
/// replaying to it, at the right position, with nothing left behind.
fn check(n: &mut Node, acked: &[u64], story: &mut Vec<String>) {
    story.push(format!("{} acknowledged", acked.len()));
    if !n.db(DB).exists() {
        assert!(acked.is_empty(), "the database is gone:\n{}", n.log());
        n.stop();
        return;
    }
    let out = sqlite3(&n.db(DB), "PRAGMA integrity_check;");
    assert_eq!(text(&out.stdout).trim(), "ok", "{}", text(&out.stderr));
    if !acked.is_empty() {
        let out = sqlite3(&n.db(DB), "SELECT id FROM t;");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let present: HashSet<u64> = text(&out.stdout)
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let lost: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|i| !present.contains(i))
            .collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged ids lost: {lost:?}",
            lost.len()
        );
    }
    let pos = n.pos(DB).expect("no -pos");
    n.stop();
    assert_clean_log(n, DB, &pos);
}

#[test]
fn power_cut_at_any_moment_loses_no_acknowledged_transaction() {
    run_lives(
        &MODES,
        &models("ext4,posix"),
        Duration::from_secs(64),
        calibrate,
        life,
    );
}

/// A fresh node's first start writes its identity and creates its
/// directories; a power cut at any of those operations must leave a data
/// dir the next start accepts (a cut once left an empty `id` that stopped
/// every later start).
#[test]
fn power_cut_at_every_step_of_a_first_start_leaves_a_node_that_starts() {
    for model in [Model::Ext4, Model::Posix] {
        let ops = {
            let mut n = Node::new(WAIT);
            follow_model(&mut n, model);
            n.config(config());
            fs::create_dir(n.data()).unwrap();
            let sim = SimFs::mount(&n.data(), model, false);
            start(&mut n);
            let ops = sim.ops();
            kill(&mut n);
            ops
        };
        assert!(ops > 0, "{model:?}: a first start wrote nothing");
        for k in 1..=ops {
            let mut n = Node::new(WAIT);
            follow_model(&mut n, model);
            n.config(config());
            fs::create_dir(n.data()).unwrap();
            let mut sim = SimFs::mount(&n.data(), model, false);
            sim.cut_at(k);
            n.spawn(&[]);
            wait_serving(&mut n, &sim, 0);
            wait_cut_and_kill(&mut n, &sim, Duration::from_millis(200));
            let at = sim.cut().unwrap();
            let kept = sim.materialize(k);
            drop(sim);
            let restarted = catch_unwind(AssertUnwindSafe(|| start(&mut n)));
            assert!(
                restarted.is_ok(),
                "{model:?}: cut at {at}, kept {kept}: the next start failed (its log above)"
            );
            n.stop();
        }
        eprintln!("{model:?}: a cut at each of the {ops} operations of a first start");
    }
}
