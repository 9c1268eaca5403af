//! The etcd v3 lease, over etcd's JSON gateway (`/v3/...`) with the hyper
//! client the node already has: a lease granted with the TTL, kept alive
//! every TTL/2, a transaction that puts the key with that lease only if it
//! does not exist (`create_revision == 0`), a watch from the last revision
//! seen to learn at once that the key is gone, and a revoke on a clean
//! shutdown (the key goes with its lease). The fencing epoch is the
//! revision of the put that took the key: etcd's revisions only grow.
//! LiteFS's cluster ID is kept under `<key>/clusterid` with the Consul
//! lease's rules (see `store::cluster_id`).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::base64;
use super::cluster_gate::ClusterGate;
use super::{Acquire, Backend, LeaseError, Observed, PrimaryInfo};
use crate::store::cluster_id;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `http://host:port` of each member (`lease.etcd.endpoints`).
    pub endpoints: Vec<String>,
    pub key: String,
    pub ttl: Duration,
    /// Where this node keeps its copy of the cluster ID.
    pub data_dir: PathBuf,
}

pub struct Etcd {
    endpoints: Vec<String>,
    /// The endpoint in use; the next one is tried after a failure.
    current: usize,
    key: String,
    ttl: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The lease holding the key while primary.
    lease: Option<String>,
    data_dir: PathBuf,
    cluster: ClusterGate,
}

impl Etcd {
    pub fn new(opts: EtcdOptions) -> Result<Etcd, LeaseError> {
        if let Some(bad) = opts.endpoints.iter().find(|e| !e.starts_with("http://")) {
            return Err(LeaseError::Fatal(format!(
                "lease.etcd.endpoints {bad:?}: only http:// endpoints are supported by this build"
            )));
        }
        if opts.endpoints.is_empty() {
            return Err(LeaseError::Fatal("lease.etcd.endpoints is empty".into()));
        }
        if opts.ttl < Duration::from_secs(1) {
            return Err(LeaseError::Fatal(
                "lease.etcd.ttl must be at least 1s (etcd leases count whole seconds)".into(),
            ));
        }
        Ok(Etcd {
            endpoints: opts
                .endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            current: 0,
            key: opts.key,
            ttl: opts.ttl,
            client: Client::builder(TokioExecutor::new()).build_http(),
            lease: None,
            data_dir: opts.data_dir,
            cluster: ClusterGate::default(),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    fn b64_key(&self) -> String {
        base64::encode(self.key.as_bytes())
    }

    /// POSTs `body` to `path` and reads the whole answer as JSON.
    async fn call(&mut self, path: &str, body: Value) -> Result<Value, LeaseError> {
        let endpoint = self.endpoints[self.current].clone();
        let res = self.call_at(&endpoint, path, body).await;
        if matches!(res, Err(LeaseError::Unavailable(_))) {
            self.current = (self.current + 1) % self.endpoints.len();
        }
        res
    }

    async fn call_at(&self, endpoint: &str, path: &str, body: Value) -> Result<Value, LeaseError> {
        let unavailable =
            |e: String| LeaseError::Unavailable(format!("etcd {endpoint}{path}: {e}"));
        let req = Request::post(format!("{endpoint}{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| LeaseError::Protocol(e.to_string()))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| unavailable(format!("no answer in {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| unavailable(e.to_string()))?;
        let status = resp.status();
        let bytes = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| unavailable("body timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(unavailable(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )));
        }
        // The stream endpoints (keepalive) answer one JSON object per line.
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        serde_json::from_slice(first).map_err(|e| {
            LeaseError::Protocol(format!("{path}: {e}: {:?}", String::from_utf8_lossy(first)))
        })
    }

    /// The cluster ID stored under `<key>/clusterid`, if any.
    async fn lease_cluster_id(&mut self) -> Result<Option<String>, LeaseError> {
        let key = base64::encode(format!("{}/clusterid", self.key).as_bytes());
        let v = self.call("/v3/kv/range", json!({"key": key})).await?;
        let Some(kv) = v["kvs"].as_array().and_then(|k| k.first()) else {
            return Ok(None);
        };
        let raw = kv["value"].as_str().unwrap_or("");
        let id = base64::decode(raw)
            .ok_or_else(|| LeaseError::Protocol(format!("etcd value {raw:?} is not base64")))?;
        let id = String::from_utf8_lossy(&id).trim().to_string();
        Ok((!id.is_empty()).then_some(id))
    }

    /// Whether this node may take the lease (see `cluster_id::may_take_lease`).
    async fn check_cluster_id(&mut self) -> Result<bool, LeaseError> {
        if self.cluster.checked {
            return Ok(true);
        }
        let theirs = self.lease_cluster_id().await?;
        self.cluster
            .admit(&self.data_dir, "etcd", &self.key, theirs.as_deref())
    }

    /// After winning: store this node's cluster ID under the key if none is
    /// there yet (never over another's; one set by another node in
    /// between keeps this one out).
    async fn publish_cluster_id(&mut self) -> Result<(), LeaseError> {
        if self.cluster.checked {
            return Ok(());
        }
        let id =
            cluster_id::ensure(&self.data_dir).map_err(|e| LeaseError::Fatal(e.to_string()))?;
        let key = base64::encode(format!("{}/clusterid", self.key).as_bytes());
        let txn = json!({
            "compare": [{"key": key, "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": base64::encode(id.as_bytes())}}],
        });
        self.call("/v3/kv/txn", txn).await?;
        match self.lease_cluster_id().await? {
            Some(t) if t == id => {
                tracing::info!(cluster_id = %id, key = %self.key, "set cluster id on etcd lease");
                self.cluster.checked = true;
                Ok(())
            }
            other => Err(LeaseError::Fatal(format!(
                "etcd lease {} was initialized with cluster ID {} while this node ({id}) took it",
                self.key,
                other.as_deref().unwrap_or("none")
            ))),
        }
    }

    /// The key's holder and the store's revision.
    async fn range(&mut self) -> Result<Observed, LeaseError> {
        let v = self
            .call("/v3/kv/range", json!({"key": self.b64_key()}))
            .await?;
        observed(&v)
    }

    /// Waits up to `wait` for an event on the key after `revision`.
    async fn watch(&mut self, revision: u64, wait: Duration) -> Result<(), LeaseError> {
        let endpoint = self.endpoints[self.current].clone();
        let body = json!({"create_request": {"key": self.b64_key(), "start_revision": (revision + 1).to_string()}});
        let req = Request::post(format!("{endpoint}/v3/watch"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| LeaseError::Protocol(e.to_string()))?;
        let unavailable =
            |e: String| LeaseError::Unavailable(format!("etcd {endpoint}/v3/watch: {e}"));
        let watch = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            if resp.status() != StatusCode::OK {
                return Err(unavailable(resp.status().to_string()));
            }
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| unavailable(e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let msg: Value = match serde_json::from_slice(&line) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    let r = &msg["result"];
                    // Anything but the creation notice (events, a
                    // compaction, a cancel) means: look again.
                    if r["created"] != json!(true) || r.get("events").is_some() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        };
        match tokio::time::timeout(wait, watch).await {
            Ok(res) => res,
            Err(_) => Ok(()),
        }
    }
}

fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn observed(v: &Value) -> Result<Observed, LeaseError> {
    let index = num(&v["header"]["revision"]);
    let primary = match v["kvs"].as_array().and_then(|k| k.first()) {
        None => None,
        Some(kv) => {
            let raw = kv["value"].as_str().unwrap_or("");
            let value = base64::decode(raw)
                .ok_or_else(|| LeaseError::Protocol(format!("etcd value {raw:?} is not base64")))?;
            PrimaryInfo::from_value(&value)?
        }
    };
    Ok(Observed { primary, index })
}

impl Backend for Etcd {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn acquire(&mut self, value: &PrimaryInfo) -> Result<Acquire, LeaseError> {
        if !self.check_cluster_id().await? {
            let o = self.range().await?;
            return Ok(Acquire::Held {
                primary: o.primary,
                index: o.index,
            });
        }
        let granted = self
            .call("/v3/lease/grant", json!({"TTL": self.ttl.as_secs()}))
            .await?;
        let id = match &granted["ID"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(LeaseError::Protocol(format!("lease grant: {granted}"))),
        };
        let key = self.b64_key();
        let txn = json!({
            "compare": [{"key": key, "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": base64::encode(&value.to_value()), "lease": id}}],
            "failure": [{"request_range": {"key": key}}],
        });
        let res = match self.call("/v3/kv/txn", txn).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.call("/v3/lease/revoke", json!({"ID": id})).await;
                return Err(e);
            }
        };
        if res["succeeded"] == json!(true) {
            self.lease = Some(id);
            if let Err(e) = self.publish_cluster_id().await {
                let _ = self.release().await;
                return Err(e);
            }
            return Ok(Acquire::Won {
                epoch: num(&res["header"]["revision"]),
            });
        }
        let _ = self.call("/v3/lease/revoke", json!({"ID": id})).await;
        let range = &res["responses"][0]["response_range"];
        let mut o = observed(range)?;
        o.index = num(&res["header"]["revision"]);
        Ok(Acquire::Held {
            primary: o.primary,
            index: o.index,
        })
    }

    async fn renew(&mut self) -> Result<(), LeaseError> {
        let Some(id) = self.lease.clone() else {
            return Err(LeaseError::Lost("no lease".into()));
        };
        let v = self.call("/v3/lease/keepalive", json!({"ID": id})).await?;
        // An expired or unknown lease comes back without a TTL.
        if num(&v["result"]["TTL"]) == 0 {
            self.lease = None;
            return Err(LeaseError::Lost(format!("etcd lease {id} expired")));
        }
        Ok(())
    }

    async fn release(&mut self) -> Result<(), LeaseError> {
        let Some(id) = self.lease.take() else {
            return Ok(());
        };
        // The key is attached to the lease: revoking deletes it.
        self.call("/v3/lease/revoke", json!({"ID": id}))
            .await
            .map(|_| ())
    }

    fn lease_id(&self) -> Option<String> {
        self.lease.clone()
    }

    fn forget(&mut self) {
        self.lease = None;
    }

    /// Keeps the handed-off lease alive, then puts this node's value in
    /// the key while the key is still attached to that lease.
    async fn adopt(&mut self, lease_id: &str, value: &PrimaryInfo) -> Result<u64, LeaseError> {
        let v = self
            .call("/v3/lease/keepalive", json!({"ID": lease_id}))
            .await?;
        if num(&v["result"]["TTL"]) == 0 {
            return Err(LeaseError::Lost(format!("etcd lease {lease_id} expired")));
        }
        let key = self.b64_key();
        let txn = json!({
            "compare": [{"key": key, "target": "LEASE", "lease": lease_id}],
            "success": [{"request_put": {"key": key, "value": base64::encode(&value.to_value()), "lease": lease_id}}],
        });
        let res = self.call("/v3/kv/txn", txn).await?;
        if res["succeeded"] != json!(true) {
            return Err(LeaseError::Lost(
                "the key is no longer attached to the handed-off lease".into(),
            ));
        }
        self.lease = Some(lease_id.to_string());
        Ok(num(&res["header"]["revision"]))
    }

    async fn observe(&mut self, index: u64, wait: Duration) -> Result<Observed, LeaseError> {
        self.check_cluster_id().await?;
        if index > 0 {
            self.watch(index, wait).await?;
        }
        self.range().await
    }
}
