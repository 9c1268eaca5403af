//! Power cuts at any moment of a replica's life: a primary on a real disk
//! with a writer committing through its mount, and a replica whose data dir
//! is on the power-cut file system (common/powercut), cut at a random
//! mutating operation of its first start (the snapshot it fetches and
//! applies, the stream's transactions, retention, its recovery), the
//! durable image kept by ext4's rules or POSIX's, and half the time a
//! second cut during the recovery of that image. After the last restart, on
//! a real disk, with the writer stopped: the replica comes back by itself
//! (a replica that is not a candidate does not fsync what it applies, so a
//! log that no longer matches its database is resynced from the primary,
//! never a stopped start), reaches the primary's exact position, passes
//! integrity_check, its log replays to its database and nothing of a
//! recovery is left behind.
//!
//! Bounded by POWER_CUT_SECS (default 24) for all modes and models;
//! POWER_CUT_SEED and POWER_CUT_MODELS as in power_cut.rs.

use std::fs;
use std::process::Child;
use std::time::Duration;

mod common;

use common::logcheck::assert_clean_log;
use common::node::{Config, Node};
use common::powercut::life::{
    cut_during_recovery, follow_model, kill, models, run_lives, spawn_writer, start,
    wait_cut_and_kill, wait_serving, DB, WAIT,
};
use common::powercut::{Model, Rng, SimFs};
use common::sqlite3;

const MODES: [&str; 2] = ["DELETE", "WAL"];
/// How long the calibration run follows; cuts land within as many ops.
const CALIBRATION: Duration = Duration::from_millis(1500);
const RETENTION: &str = "retention: \"1s\", retention-monitor-interval: \"1s\"";

/// A primary on 127.0.0.1 with a writer running, its database created.
fn primary(mode: &str, seed: u64) -> (Node, Child) {
    let mut p = Node::on_host(1, WAIT);
    let url = p.url();
    p.config(Config::new(true).primary("primary", &url).data(RETENTION));
    p.start();
    let w = spawn_writer(&p, mode, seed);
    let pos = pos_file(&p);
    p.wait_until("the primary's first transactions", || {
        read_pos(&pos)
            .and_then(|pos| u64::from_str_radix(pos.split('/').next()?, 16).ok())
            .is_some_and(|txid| txid >= 3)
    });
    (p, w)
}

fn pos_file(n: &Node) -> std::path::PathBuf {
    n.db(&format!("{DB}-pos"))
}

fn read_pos(path: &std::path::Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// A replica of `p` on 127.0.0.2 under `model`'s rules, not started, with
/// its data dir made.
fn replica(p: &Node, model: Model) -> Node {
    let mut r = Node::on_host(2, WAIT);
    follow_model(&mut r, model);
    r.config(
        Config::new(false)
            .primary("primary", &p.url())
            .reconnect_delay("100ms")
            .data(RETENTION),
    );
    fs::create_dir(r.data()).unwrap();
    r
}

fn stop_writer(mut w: Child) {
    let _ = w.kill();
    let _ = w.wait();
}

/// Mutating operations of a replica's first `CALIBRATION` of following.
fn calibrate(mode: &str) -> u64 {
    let (p, w) = primary(mode, 1);
    let mut r = replica(&p, Model::Ext4);
    let sim = SimFs::mount(&r.data(), Model::Ext4, false);
    start(&mut r);
    std::thread::sleep(CALIBRATION);
    let ops = sim.ops();
    kill(&mut r);
    stop_writer(w);
    assert!(ops > 0, "{mode}: the replica wrote nothing");
    ops
}

fn life(mode: &str, model: Model, seed: u64, budget: u64, story: &mut Vec<String>) {
    let mut rng = Rng::new(seed);
    let (mut p, w) = primary(mode, rng.next_u64());
    let mut r = replica(&p, model);
    let mut sim = SimFs::mount(&r.data(), model, false);
    sim.cut_at(1 + rng.below(budget));
    r.spawn(&[]);
    wait_serving(&mut r, &sim, 0);
    wait_cut_and_kill(&mut r, &sim, WAIT);
    story.push(format!("cut at {}", sim.cut().unwrap()));
    story.push(format!("kept {}", sim.materialize(rng.next_u64())));
    drop(sim);

    if rng.coin() {
        cut_during_recovery(&mut r, model, &mut rng, story);
    }

    start(&mut r);
    stop_writer(w);
    // The writer died inside a transaction, maybe: the next connection
    // rolls its hot journal back, as the app's restart would.
    let out = sqlite3(&p.db(DB), "SELECT count(*) FROM t;");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = p.pos(DB).expect("the primary's position");
    story.push(format!("primary at {want}"));
    let pos = pos_file(&r);
    let deadline = std::time::Instant::now() + WAIT;
    while read_pos(&pos).as_deref() != Some(want.as_str()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never reached the primary's position {want} (it is at {:?}); replica:\n{}\nprimary:\n{}",
            read_pos(&pos),
            r.log(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = sqlite3(&r.db(DB), "PRAGMA integrity_check;");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.stop();
    assert_clean_log(&r, DB, &want);
    p.stop();
}

#[test]
fn power_cut_at_any_moment_of_a_replica_resyncs_it_by_itself() {
    run_lives(
        &MODES,
        &models("ext4,posix"),
        Duration::from_secs(24),
        calibrate,
        life,
    );
}
