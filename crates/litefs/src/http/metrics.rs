//! `GET /metrics`: Prometheus text from the store's current state.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabel {
    db: String,
}

pub fn render(store: &Store) -> String {
    let mut reg = Registry::with_prefix("litefs");
    let txid = Family::<DbLabel, Gauge>::default();
    let log_txid = Family::<DbLabel, Gauge>::default();
    let commit = Family::<DbLabel, Gauge>::default();
    for db in store.dbs() {
        let label = DbLabel {
            db: db.name().to_string(),
        };
        txid.get_or_create(&label).set(db.pos().txid as i64);
        log_txid.get_or_create(&label).set(db.log_pos().txid as i64);
        commit.get_or_create(&label).set(db.commit_pages() as i64);
    }
    reg.register("db_txid", "TXID of the newest transaction", txid);
    // In WAL mode the LTX file follows the commit (log_writer.rs): a gap
    // that stays open means the writer is stuck or failed.
    reg.register(
        "db_log_txid",
        "TXID of the newest transaction whose LTX file is durable (what replicas can get)",
        log_txid,
    );
    reg.register("db_pages", "Database size in pages", commit);
    let db_lag = Family::<DbLabel, Gauge>::default();
    for db in store.dbs() {
        db_lag
            .get_or_create(&DbLabel {
                db: db.name().to_string(),
            })
            .set(store.lag_ms());
    }
    reg.register(
        "db_lag_milliseconds",
        "Milliseconds this database is behind the primary (time since the last transaction or heartbeat)",
        db_lag,
    );
    let bytes = prometheus_client::metrics::counter::Counter::<u64>::default();
    bytes.inc_by(store.ltx_bytes());
    reg.register(
        "ltx_bytes",
        "Bytes of LTX files committed or applied since start",
        bytes,
    );
    let streams = Gauge::<i64>::default();
    streams.set(store.streams());
    reg.register(
        "replication_streams",
        "Replicas this primary is streaming to now",
        streams,
    );
    let primary = Gauge::<i64>::default();
    primary.set(store.is_primary() as i64);
    reg.register("is_primary", "1 when this node is the primary", primary);
    let lag = Gauge::<i64>::default();
    lag.set(store.lag_ms());
    reg.register("lag_milliseconds", "Milliseconds behind the primary", lag);
    let tx = Gauge::<i64>::default();
    tx.set(store.tx_count() as i64);
    reg.register(
        "transactions",
        "Transactions committed on this node since start",
        tx,
    );
    zero_loss(&mut reg, store);
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String cannot fail");
    out
}

/// Zero-loss mode (`replication/acks.rs`); shown only when it is on.
fn zero_loss(reg: &mut Registry, store: &Store) {
    use prometheus_client::metrics::counter::Counter;
    let s = store.zero_loss().status();
    if s.options.candidates == 0 {
        return;
    }
    let gauge = |v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        g
    };
    let counter = |v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        c
    };
    reg.register(
        "zero_loss_candidates",
        "Other candidates that must hold each commit before it returns",
        gauge(s.options.candidates as i64),
    );
    reg.register(
        "zero_loss_degraded",
        "1 while commits return without waiting for candidates (after a timeout)",
        gauge(s.degraded as i64),
    );
    reg.register(
        "zero_loss_in_sync",
        "Candidates holding everything this primary committed in its term",
        gauge(s.in_sync.len() as i64),
    );
    reg.register(
        "zero_loss_waiting",
        "Commits waiting for acknowledgements now",
        gauge(s.waiting as i64),
    );
    reg.register(
        "zero_loss_waits",
        "Commits that had to wait for an acknowledgement",
        counter(s.waits),
    );
    reg.register(
        "zero_loss_degrades",
        "Times commits degraded to asynchronous replication",
        counter(s.degrades),
    );
    reg.register(
        "zero_loss_recoveries",
        "Times enough candidates caught up after a degrade",
        counter(s.recoveries),
    );
    reg.register(
        "zero_loss_failed_commits",
        "Commits failed because no acknowledgement came in time (on-timeout: fail)",
        counter(s.failed),
    );
}
