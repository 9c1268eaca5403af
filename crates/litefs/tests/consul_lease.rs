//! The Consul backend against the in-repo Consul test server: acquire,
//! held by another, release seen at once by a blocking watch, epochs from
//! ModifyIndex, a lost session, the cluster ID and the ACL token.

use std::time::{Duration, Instant};

use litefs::lease::consul::{Consul, ConsulOptions};
use litefs::lease::{Acquire, Backend, LeaseError, PrimaryInfo};

async fn server(token: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = consul_test_server::Options {
        addr: addr.to_string(),
        token: token.map(String::from),
    };
    tokio::spawn(consul_test_server::serve(listener, opts));
    addr.to_string()
}

fn node(url: &str, dir: &tempfile::TempDir) -> Consul {
    Consul::new(ConsulOptions {
        url: url.to_string(),
        key: "litefs/t".into(),
        ttl: Duration::from_secs(10),
        lock_delay: Duration::from_secs(1),
        data_dir: dir.path().to_path_buf(),
    })
    .unwrap()
}

fn me(name: &str) -> PrimaryInfo {
    PrimaryInfo {
        hostname: name.into(),
        advertise_url: format!("http://{name}:20202"),
        proxy_url: None,
    }
}

#[tokio::test]
async fn acquire_watch_release_and_epochs() {
    let addr = server(None).await;
    let url = format!("http://{addr}/app-prefix/");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, mut b) = (node(&url, &da), node(&url, &db));
    assert_eq!(a.key(), "app-prefix/litefs/t");

    let Acquire::Won { epoch: e1 } = a.acquire(&me("a")).await.unwrap() else {
        panic!("a should win a free key")
    };
    let Acquire::Held { primary, index } = b.acquire(&me("b")).await.unwrap() else {
        panic!("b should find a holding the key")
    };
    assert_eq!(primary, Some(me("a")));
    a.renew().await.unwrap();
    // a created the cluster ID; b, as LiteFS, takes it from a's stream
    // (not from the lease), so it has none yet.
    let id = std::fs::read_to_string(da.path().join("clusterid")).unwrap();
    assert!(id.starts_with("LFSC") && id.trim().len() == 20, "{id:?}");
    let o = b.observe(0, Duration::ZERO).await.unwrap();
    assert_eq!(o.primary, Some(me("a")));
    assert!(!db.path().join("clusterid").exists());

    // A blocking watch wakes as soon as a releases.
    let watcher = tokio::spawn(async move {
        let t = Instant::now();
        let o = b.observe(index, Duration::from_secs(30)).await.unwrap();
        (b, o, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.release().await.unwrap();
    let (mut b, o, waited) = watcher.await.unwrap();
    assert_eq!(o.primary, None);
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // Without the cluster's ID, b may not take over its data, as in LiteFS.
    assert_eq!(
        b.acquire(&me("b")).await.unwrap(),
        Acquire::Held {
            primary: None,
            index: o.index
        }
    );
    // Once it has it (a replica adopts it from its primary's stream):
    // no lock-delay after an explicit release; a higher epoch.
    std::fs::write(db.path().join("clusterid"), &id).unwrap();
    let Acquire::Won { epoch: e2 } = b.acquire(&me("b")).await.unwrap() else {
        panic!("b should take the released key at once")
    };
    assert!(e2 > e1, "{e2} > {e1}");
    // a's session is gone: renewing it is a lost lease, not an error.
    assert!(matches!(a.renew().await, Err(LeaseError::Lost(_))));
}

#[tokio::test]
async fn another_clusters_id_keeps_a_node_out() {
    let addr = server(None).await;
    let url = format!("http://{addr}");
    let (da, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(&url, &da);
    assert!(matches!(
        a.acquire(&me("a")).await.unwrap(),
        Acquire::Won { .. }
    ));
    std::fs::write(dc.path().join("clusterid"), "LFSC0000000000000001\n").unwrap();
    let mut c = node(&url, &dc);
    match c.acquire(&me("c")).await {
        Err(LeaseError::Fatal(m)) => {
            assert!(
                m.contains("lease already initialized with different ID"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_acl_token_comes_from_the_url() {
    let addr = server(Some("s3cret")).await;
    let d = tempfile::tempdir().unwrap();
    let mut without = node(&format!("http://{addr}"), &d);
    match without.acquire(&me("a")).await {
        Err(LeaseError::Unavailable(m)) => assert!(m.contains("403"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut with = node(&format!("http://:s3cret@{addr}"), &d);
    assert!(matches!(
        with.acquire(&me("a")).await.unwrap(),
        Acquire::Won { .. }
    ));
}
