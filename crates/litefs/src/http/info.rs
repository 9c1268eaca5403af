//! `GET /info` and the `/events` lines: LiteFS's fields (`isPrimary`,
//! `candidate`, `path`, `primary.hostname`, event `type`/`db`/`data`) plus
//! what litefs-rs's Node package reads (`nodeID`, `primaryURL`, positions).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use super::NodeMeta;
use crate::store::{Event, Store};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
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
                "timestamp": timestamp,
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
