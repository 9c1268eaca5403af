//! Replication without a mount: a primary store served over HTTP/2 and a
//! replica store following it in the same process.

use std::sync::Arc;
use std::time::Duration;

use litefs::replication::client::{self, ReplicaOptions};
use litefs::store::{Store, StoreOptions};

fn open(dir: &std::path::Path) -> Arc<Store> {
    let mut o = StoreOptions::new(dir);
    o.no_fsync = true;
    Arc::new(Store::open(o).unwrap())
}

/// A database written by SQLite directly in the data dir: the store
/// starts its log from it with a snapshot.
fn seed(data: &std::path::Path, name: &str, rows: usize) {
    let dir = data.join("dbs").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let conn = rusqlite::Connection::open(dir.join("database")).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    for i in 0..rows {
        conn.execute(
            "INSERT INTO t (v) VALUES (?1)",
            [format!("row {i} {}", "x".repeat(i % 300))],
        )
        .unwrap();
    }
}

async fn start_primary(store: Arc<Store>) -> String {
    let listener = litefs::http::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(litefs::http::serve(listener, store, Default::default()));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_gets_a_snapshot_then_matches_byte_for_byte() {
    let (p, r) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    seed(p.path(), "a.db", 500);
    seed(p.path(), "b.db", 3);
    let primary = open(p.path());
    primary.begin_term().unwrap();
    primary.set_primary(true);
    let url = start_primary(primary.clone()).await;

    let replica = open(r.path());
    let opts = ReplicaOptions {
        primary_url: url,
        primary_hostname: "primary".into(),
        reconnect_delay: Duration::from_millis(50),
        mount_dir: None,
        ready: Arc::new(tokio::sync::Notify::new()),
    };
    let ready = opts.ready.clone();
    let follower = tokio::spawn(client::run(replica.clone(), opts));
    tokio::time::timeout(Duration::from_secs(10), ready.notified())
        .await
        .expect("replica never became ready");

    for name in ["a.db", "b.db"] {
        let (pd, rd) = (primary.db(name).unwrap(), replica.db(name).unwrap());
        assert_eq!(pd.pos(), rd.pos(), "{name}");
        let pf = std::fs::read(p.path().join("dbs").join(name).join("database")).unwrap();
        let rf = std::fs::read(r.path().join("dbs").join(name).join("database")).unwrap();
        assert!(pf == rf, "{name}: replica file differs");
    }
    assert_eq!(replica.primary_hostname().as_deref(), Some("primary"));
    assert_eq!(replica.epoch(), 1);
    follower.abort();
}

#[test]
fn epochs_rise_with_each_term_and_stale_ones_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    assert_eq!(s.epoch(), 0);
    assert_eq!(s.begin_term().unwrap(), 1);
    s.observe_epoch(4).unwrap();
    drop(s);
    let s = open(d.path());
    assert_eq!(s.epoch(), 4, "epoch is persisted");
    let err = s.observe_epoch(3).unwrap_err();
    assert!(
        err.to_string().contains("refusing a stale primary"),
        "{err}"
    );
    // Having followed term 4, a static primary starting here needs a new term.
    assert_eq!(s.resume_or_begin_term().unwrap(), 5);
    drop(s);
    // Restarted, it goes on with its own term 5: a restart is not a new term.
    let s = open(d.path());
    assert_eq!(s.resume_or_begin_term().unwrap(), 5);
    assert_eq!(s.epoch(), 5);
}

#[test]
fn a_follower_that_no_longer_matches_its_log_starts_over_instead_of_failing() {
    let d = tempfile::tempdir().unwrap();
    seed(d.path(), "a.db", 50);
    drop(open(d.path())); // writes the first LTX file (a snapshot)
    let file = d.path().join("dbs/a.db/database");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    // No clean-shutdown hint: the full check runs at open.
    std::fs::remove_file(d.path().join("dbs/a.db/pos")).unwrap();

    let mut o = StoreOptions::new(d.path());
    o.no_fsync = true;
    let err = Store::open(o.clone())
        .err()
        .expect("a primary-capable node must stop");
    assert!(err.to_string().contains("matches neither"), "{err}");

    o.follower = true;
    let s = Store::open(o).unwrap();
    assert_eq!(
        s.db("a.db").unwrap().pos().txid,
        0,
        "the primary will send a snapshot"
    );
}
