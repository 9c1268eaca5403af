//! `GET /info` and the `/events` lines: every field LiteFS 0.5's have, with
//! its name and JSON type (`clusterID`, `isPrimary`, `candidate`, `path`,
//! `primary.hostname`; event `type`/`db`/`data`, a tx's `timestamp` as
//! RFC 3339), plus what litefs-rs's Node package reads (`nodeID`,
//! `primaryURL`, positions).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use super::NodeMeta;
use crate::store::{Event, Store};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// LiteFS's cluster ID (absent until there is one, as in LiteFS).
    #[serde(rename = "clusterID", skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(rename = "nodeID")]
    pub node_id: String,
    pub hostname: String,
    pub is_primary: bool,
    pub candidate: bool,
    pub path: String,
    pub primary: PrimaryView,
    #[serde(rename = "primaryURL")]
    pub primary_url: Option<String>,
    #[serde(rename = "advertiseURL")]
    pub advertise_url: String,
    /// This node's proxy for other nodes (litefs-rs only; absent without one).
    #[serde(rename = "proxyURL", skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// The fencing epoch: this node's term while primary, else the newest
    /// term it has followed.
    pub epoch: u64,
    pub databases: BTreeMap<String, DbView>,
    /// Zero-loss mode, when on (litefs-rs only).
    #[serde(rename = "zeroLoss", skip_serializing_if = "Option::is_none")]
    pub zero_loss: Option<ZeroLossView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZeroLossView {
    pub candidates: usize,
    pub timeout: String,
    pub on_timeout: String,
    /// `in-sync` (commits wait) or `degraded` (they do not, after a timeout).
    pub state: &'static str,
    /// Node IDs of the candidates holding everything committed this term.
    pub in_sync: Vec<String>,
    pub degrades: u64,
    pub recoveries: u64,
}

fn zero_loss_view(store: &Store) -> Option<ZeroLossView> {
    let s = store.zero_loss().status();
    (s.options.candidates > 0).then(|| ZeroLossView {
        candidates: s.options.candidates,
        timeout: crate::config::format_duration(s.options.timeout),
        on_timeout: s.options.on_timeout.to_string(),
        state: if s.degraded { "degraded" } else { "in-sync" },
        in_sync: s.in_sync.iter().map(|n| format!("{n:016X}")).collect(),
        degrades: s.degrades,
        recoveries: s.recoveries,
    })
}

#[derive(Debug, Serialize)]
pub struct PrimaryView {
    pub hostname: String,
}

#[derive(Debug, Serialize)]
pub struct DbView {
    pub txid: String,
    pub checksum: String,
}

pub fn node_info(store: &Store, meta: &NodeMeta) -> NodeInfo {
    let is_primary = store.is_primary();
    NodeInfo {
        cluster_id: crate::store::cluster_id::read(store.data_dir()),
        node_id: format!("{:016X}", store.node_id()),
        hostname: meta.hostname.clone(),
        is_primary,
        candidate: meta.candidate,
        path: store.data_dir().display().to_string(),
        primary: PrimaryView {
            hostname: if is_primary {
                meta.hostname.clone()
            } else {
                store.primary_hostname().unwrap_or_default()
            },
        },
        primary_url: if is_primary {
            None
        } else {
            match &meta.lease {
                Some(w) => w.borrow().primary.as_ref().map(|p| p.advertise_url.clone()),
                None => meta.primary_url.clone(),
            }
        },
        advertise_url: meta.advertise_url.clone(),
        proxy_url: meta.proxy_url.clone(),
        epoch: store.epoch(),
        databases: store
            .dbs()
            .iter()
            .map(|d| {
                let pos = d.pos();
                (
                    d.name().to_string(),
                    DbView {
                        txid: format!("{:016x}", pos.txid),
                        checksum: format!("{:016x}", pos.post_apply_checksum),
                    },
                )
            })
            .collect(),
        zero_loss: zero_loss_view(store),
    }
}

fn line(v: serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).expect("serializable");
    b.push(b'\n');
    Bytes::from(b)
}

pub fn init_event(store: &Store, meta: &NodeMeta) -> Bytes {
    let is_primary = store.is_primary();
    let hostname = if is_primary {
        meta.hostname.clone()
    } else {
        store.primary_hostname().unwrap_or_default()
    };
    line(
        serde_json::json!({"type": "init", "data": {"isPrimary": is_primary, "hostname": hostname}}),
    )
}

pub fn event_line(ev: &Event) -> Bytes {
    match ev {
        Event::Tx {
            db,
            pos,
            page_size,
            commit,
            timestamp,
        } => line(serde_json::json!({
            "type": "tx",
            "db": db,
            "data": {
                "txID": format!("{:016x}", pos.txid),
                "postApplyChecksum": format!("{:016x}", pos.post_apply_checksum),
                "pageSize": page_size,
                "commit": commit,
                "timestamp": rfc3339_ms(*timestamp),
                "timestampMs": timestamp,
            }
        })),
        Event::Resync { db } => line(serde_json::json!({"type": "resync", "db": db})),
        Event::Handoff { node_id, .. } => line(
            serde_json::json!({"type": "handoff", "data": {"nodeID": format!("{node_id:016X}")}}),
        ),
        Event::PrimaryChange {
            is_primary,
            hostname,
        } => line(serde_json::json!({
            "type": "primaryChange",
            "data": {"isPrimary": is_primary, "hostname": hostname.clone().unwrap_or_default()}
        })),
    }
}

/// Milliseconds since the Unix epoch as Go's `time.Time` marshals them in
/// UTC (RFC 3339, fraction without trailing zeros), so LiteFS's clients
/// parse the same `timestamp`.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut frac = String::new();
    if milli != 0 {
        frac = format!(".{milli:03}").trim_end_matches('0').to_string();
    }
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    #[test]
    fn timestamps_read_as_go_writes_them() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_796_074_692_120), "2026-11-30T21:38:12.12Z");
        assert_eq!(rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
