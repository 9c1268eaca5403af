//! LiteFS's cluster ID on the etcd lease (LiteFS has none; litefs-rs keeps
//! `<key>/clusterid` as on Consul): the first primary stores its ID there,
//! a replica adopts it from the primary's stream, and a node from another
//! cluster is kept out with what to do. The Consul side, against LiteFS,
//! is in interop_lease.rs.

use std::time::Duration;

mod common;

use common::etcd::EtcdServer;
use common::litefs_go::{cluster_id, sql, wait_pos};
use common::node::{Config, Node};

const WAIT: Duration = Duration::from_secs(60);

fn etcd_node(host: u8, etcd: &EtcdServer) -> Node {
    let n = Node::on_host(host, WAIT);
    n.config(
        Config::new(true)
            .lease(&format!(
                "type: etcd, candidate: true, hostname: \"node-{host}\", advertise-url: \"{}\", \
                 reconnect-delay: \"100ms\", etcd: {{ endpoints: [\"{}\"], key: \"litefs/cid\", ttl: \"5s\" }}",
                n.url(),
                etcd.url
            ))
            .skip_sync(),
    );
    n
}

#[test]
fn etcd_lease_keeps_a_node_of_another_cluster_out() {
    let etcd = EtcdServer::start();
    let mut a = etcd_node(1, &etcd);
    a.start();
    let log = a.log_path();
    a.wait_until("node-1 to be primary, its cluster ID in etcd", || {
        let l = std::fs::read_to_string(&log).unwrap();
        l.contains("set cluster id on etcd lease") && l.contains("primary lease acquired")
    });
    sql(&a, "t.db", "CREATE TABLE t (v INTEGER)");

    // A new node adopts it from the primary's stream.
    let mut b = etcd_node(2, &etcd);
    b.start();
    wait_pos(&a, &mut b, "t.db");
    assert_eq!(cluster_id(&b), cluster_id(&a));

    // One with another cluster's ID is refused and exits, saying what to do.
    let mut c = etcd_node(3, &etcd);
    std::fs::create_dir_all(c.data()).unwrap();
    std::fs::write(c.data().join("clusterid"), "LFSC00000000000000EF\n").unwrap();
    c.spawn(&[]);
    assert_eq!(c.wait_exit().code(), Some(1), "{}", c.log());
    let log = c.log();
    assert!(
        log.contains("\"etcd\" lease already initialized with different ID")
            && log.contains(cluster_id(&a).unwrap().as_str())
            && log.contains("lease.etcd.key")
            && log.contains("remove"),
        "{log}"
    );
}
