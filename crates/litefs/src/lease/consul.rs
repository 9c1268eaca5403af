//! The Consul lease, wire-compatible with LiteFS 0.5 so LiteFS and
//! litefs-rs nodes can share one key: a session (`Name: litefs`,
//! `Behavior: delete`, the TTL and lock-delay from the config, no checks)
//! that acquires `<prefix>/<key>` with LiteFS's JSON value, renewed every
//! TTL/2, released then destroyed on a clean shutdown; the cluster ID at
//! `<key>/clusterid`. Beyond LiteFS: the fencing epoch is the key's
//! ModifyIndex at acquisition, and the key is watched with blocking queries
//! so a free key is seen at once.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::base64::decode as base64_decode;
use super::cluster_gate::ClusterGate;
use super::{Acquire, Backend, LeaseError, Observed, PrimaryInfo};
use crate::store::cluster_id;

/// One request to the agent, blocking queries aside.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The cluster ID key's suffix (the file in the data dir has that name too).
const CLUSTER_ID: &str = "clusterid";

#[derive(Debug, Clone)]
pub struct ConsulOptions {
    /// `http://[:token@]host:port[/key-prefix]` (`lease.consul.url`).
    pub url: String,
    pub key: String,
    pub ttl: Duration,
    pub lock_delay: Duration,
    /// Where this node keeps its copy of the cluster ID.
    pub data_dir: PathBuf,
}

pub struct Consul {
    /// `http://host:port`.
    base: String,
    token: Option<String>,
    /// The node sessions are created on (with a key prefix only).
    node: Option<String>,
    key: String,
    ttl: Duration,
    lock_delay: Duration,
    data_dir: PathBuf,
    client: Client<HttpConnector, Full<Bytes>>,
    registered: bool,
    cluster: ClusterGate,
    /// The session holding the key while primary.
    session: Option<String>,
    /// A session kept between attempts on a free key that could not be
    /// taken yet (lock-delay), with when it was created or renewed.
    spare: Option<(String, Instant)>,
}

/// The parts of `lease.consul.url` LiteFS uses.
#[derive(Debug, PartialEq, Eq)]
struct ParsedUrl {
    base: String,
    token: Option<String>,
    prefix: String,
}

fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    if url.starts_with("https://") {
        return Err(format!(
            "lease.consul.url {url:?}: https is not supported by this build (no TLS client); \
             use an http:// agent address"
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("lease.consul.url {url:?} must start with http://"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(format!("lease.consul.url {url:?} has no host"));
    }
    let token = userinfo
        .and_then(|u| u.split_once(':').map(|(_, p)| p))
        .filter(|p| !p.is_empty())
        .map(String::from);
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok(ParsedUrl {
        base: format!("http://{host}"),
        token,
        prefix: path.trim_matches('/').to_string(),
    })
}

impl Consul {
    /// Checks the URL; nothing is asked of the agent yet (an unreachable
    /// one is retried by the lease task).
    pub fn new(opts: ConsulOptions) -> Result<Consul, LeaseError> {
        let u = parse_url(&opts.url).map_err(LeaseError::Fatal)?;
        let key = if u.prefix.is_empty() {
            opts.key.clone()
        } else {
            format!("{}/{}", u.prefix, opts.key.trim_start_matches('/'))
        };
        Ok(Consul {
            base: u.base,
            token: u.token,
            node: (!u.prefix.is_empty()).then(|| format!("{}/litefs", u.prefix)),
            key,
            ttl: opts.ttl,
            lock_delay: opts.lock_delay,
            data_dir: opts.data_dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
            registered: false,
            cluster: ClusterGate::default(),
            session: None,
            spare: None,
        })
    }

    /// The full key, prefix included.
    pub fn key(&self) -> &str {
        &self.key
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(StatusCode, Option<u64>, Bytes), LeaseError> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("X-Consul-Token", t);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| LeaseError::Protocol(format!("{method} {path}: {e}")))?;
        let unavailable = |e: String| LeaseError::Unavailable(format!("consul {}: {e}", self.base));
        let resp = tokio::time::timeout(timeout, self.client.request(req))
            .await
            .map_err(|_| unavailable(format!("{method} {path}: no answer in {timeout:?}")))?
            .map_err(|e| unavailable(format!("{method} {path}: {e}")))?;
        let status = resp.status();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = tokio::time::timeout(timeout, resp.into_body().collect())
            .await
            .map_err(|_| unavailable(format!("{method} {path}: body timed out")))?
            .map_err(|e| unavailable(format!("{method} {path}: {e}")))?
            .to_bytes();
        Ok((status, index, body))
    }

    /// A call that must answer 200; its body.
    async fn ok(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Bytes, LeaseError> {
        let (status, _, body) = self
            .call(method.clone(), path, body, REQUEST_TIMEOUT)
            .await?;
        if status != StatusCode::OK {
            return Err(LeaseError::Unavailable(format!(
                "consul {method} {path}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        Ok(body)
    }

    async fn kv_get(
        &self,
        key: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Option<KvEntry>, u64), LeaseError> {
        let (path, timeout) = if index > 0 {
            let secs = wait.as_secs().max(1);
            (
                format!("/v1/kv/{key}?index={index}&wait={secs}s"),
                // Consul adds up to wait/16 of jitter.
                wait + wait / 16 + REQUEST_TIMEOUT,
            )
        } else {
            (format!("/v1/kv/{key}"), REQUEST_TIMEOUT)
        };
        let (status, idx, body) = self.call(Method::GET, &path, Vec::new(), timeout).await?;
        let idx = idx.unwrap_or(0);
        match status {
            StatusCode::NOT_FOUND => Ok((None, idx)),
            StatusCode::OK => {
                let mut entries: Vec<KvEntry> = serde_json::from_slice(&body)
                    .map_err(|e| LeaseError::Protocol(format!("GET /v1/kv/{key}: {e}")))?;
                Ok((entries.pop(), idx))
            }
            s => Err(LeaseError::Unavailable(format!(
                "consul GET /v1/kv/{key}: {s}: {}",
                String::from_utf8_lossy(&body).trim()
            ))),
        }
    }

    async fn register(&mut self) -> Result<(), LeaseError> {
        if let (Some(node), false) = (&self.node, self.registered) {
            let body = serde_json::json!({"Node": node, "Address": "localhost"});
            self.ok(
                Method::PUT,
                "/v1/catalog/register",
                body.to_string().into_bytes(),
            )
            .await?;
            self.registered = true;
        }
        Ok(())
    }

    async fn create_session(&mut self) -> Result<String, LeaseError> {
        self.register().await?;
        let mut body = serde_json::json!({
            "Checks": [],
            "Name": "litefs",
            "LockDelay": format!("{}ms", self.lock_delay.as_millis()),
            "Behavior": "delete",
            "TTL": format!("{}s", self.ttl.as_secs()),
        });
        if let Some(node) = &self.node {
            body["Node"] = serde_json::Value::String(node.clone());
        }
        let out = self
            .ok(
                Method::PUT,
                "/v1/session/create",
                body.to_string().into_bytes(),
            )
            .await?;
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: String,
        }
        let c: Created = serde_json::from_slice(&out)
            .map_err(|e| LeaseError::Protocol(format!("session create: {e}")))?;
        Ok(c.id)
    }

    async fn destroy_session(&self, id: &str) {
        let path = format!("/v1/session/destroy/{id}");
        if let Err(e) = self.ok(Method::PUT, &path, Vec::new()).await {
            tracing::debug!("destroying consul session: {e}");
        }
    }

    /// The cluster ID stored under `<key>/clusterid`, if any.
    async fn lease_cluster_id(&self) -> Result<Option<String>, LeaseError> {
        let key = format!("{}/{CLUSTER_ID}", self.key);
        let (entry, _) = self.kv_get(&key, 0, Duration::ZERO).await?;
        Ok(entry
            .map(|e| e.value())
            .transpose()?
            .map(|v| String::from_utf8_lossy(&v).trim().to_string())
            .filter(|v| !v.is_empty()))
    }

    /// LiteFS's check before each attempt: a node whose cluster ID is not
    /// the lease's must not join. Whether this node may take the lease: not
    /// while it has no ID and the lease has one (it adopts the ID from the
    /// primary's stream first, so an empty node never takes over a
    /// cluster's data).
    async fn check_cluster_id(&mut self) -> Result<bool, LeaseError> {
        if self.cluster.checked {
            return Ok(true);
        }
        let theirs = self.lease_cluster_id().await?;
        self.cluster
            .admit(&self.data_dir, "consul", &self.key, theirs.as_deref())
    }

    /// After winning: store this node's cluster ID under the key if none is
    /// there yet, as LiteFS does (`cas=0`: never overwrite another's; an ID
    /// set by another node in between keeps this one out).
    async fn publish_cluster_id(&mut self) -> Result<(), LeaseError> {
        if self.cluster.checked {
            return Ok(());
        }
        let id =
            cluster_id::ensure(&self.data_dir).map_err(|e| LeaseError::Fatal(e.to_string()))?;
        let path = format!("/v1/kv/{}/{CLUSTER_ID}?cas=0", self.key);
        self.ok(Method::PUT, &path, id.clone().into_bytes()).await?;
        match self.lease_cluster_id().await? {
            Some(t) if t == id => {
                tracing::info!(cluster_id = %id, key = %self.key, "set cluster id on consul lease");
                self.cluster.checked = true;
                Ok(())
            }
            other => Err(LeaseError::Fatal(format!(
                "consul lease {} was initialized with cluster ID {} while this node ({id}) took it",
                self.key,
                other.as_deref().unwrap_or("none")
            ))),
        }
    }

    /// Who the key names, and the index to watch from.
    async fn holder(&self, index: u64, wait: Duration) -> Result<Observed, LeaseError> {
        let (entry, idx) = self.kv_get(&self.key, index, wait).await?;
        let primary = match entry {
            Some(e) if !e.session.as_deref().unwrap_or("").is_empty() => {
                PrimaryInfo::from_value(&e.value()?)?
            }
            _ => None,
        };
        Ok(Observed {
            primary,
            index: idx,
        })
    }
}

#[derive(Debug, serde::Deserialize)]
struct KvEntry {
    #[serde(rename = "ModifyIndex")]
    modify_index: u64,
    #[serde(rename = "Value")]
    value: Option<String>,
    #[serde(rename = "Session", default)]
    session: Option<String>,
}

impl KvEntry {
    fn value(&self) -> Result<Vec<u8>, LeaseError> {
        match &self.value {
            None => Ok(Vec::new()),
            Some(v) => base64_decode(v)
                .ok_or_else(|| LeaseError::Protocol(format!("KV value {v:?} is not base64"))),
        }
    }
}

impl Backend for Consul {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn acquire(&mut self, value: &PrimaryInfo) -> Result<Acquire, LeaseError> {
        if !self.check_cluster_id().await? {
            let now = self.holder(0, Duration::ZERO).await?;
            return Ok(Acquire::Held {
                primary: now.primary,
                index: now.index,
            });
        }
        let id = match self.spare.take() {
            Some((id, at)) if at.elapsed() < self.ttl / 2 => id,
            Some((id, _)) => {
                self.destroy_session(&id).await;
                self.create_session().await?
            }
            None => self.create_session().await?,
        };
        let path = format!("/v1/kv/{}?acquire={id}", self.key);
        let won = match self
            .call(Method::PUT, &path, value.to_value(), REQUEST_TIMEOUT)
            .await
        {
            Ok((StatusCode::OK, _, body)) => body.as_ref().trim_ascii() == b"true",
            Ok((status, _, body)) => {
                // Consul answers 500 for a session it no longer knows.
                self.destroy_session(&id).await;
                return Err(LeaseError::Unavailable(format!(
                    "consul PUT /v1/kv/{}?acquire: {status}: {}",
                    self.key,
                    String::from_utf8_lossy(&body).trim()
                )));
            }
            Err(e) => {
                self.destroy_session(&id).await;
                return Err(e);
            }
        };
        if won {
            self.session = Some(id);
            // The epoch must come from the server: without it, give the
            // lease back rather than start a term nobody else can order.
            let entry = match self.kv_get(&self.key, 0, Duration::ZERO).await {
                Ok((Some(e), _)) => e,
                Ok((None, _)) => {
                    return Err(LeaseError::Protocol(format!(
                        "key {} missing right after it was acquired",
                        self.key
                    )))
                }
                Err(e) => {
                    let _ = self.release().await;
                    return Err(e);
                }
            };
            if let Err(e) = self.publish_cluster_id().await {
                let _ = self.release().await;
                return Err(e);
            }
            return Ok(Acquire::Won {
                epoch: entry.modify_index,
            });
        }
        let now = match self.holder(0, Duration::ZERO).await {
            Ok(now) => now,
            Err(e) => {
                self.destroy_session(&id).await;
                return Err(e);
            }
        };
        if now.primary.is_none() {
            // Free but in its lock-delay: keep the session for the retry.
            self.spare = Some((id, Instant::now()));
        } else {
            self.destroy_session(&id).await;
        }
        Ok(Acquire::Held {
            primary: now.primary,
            index: now.index,
        })
    }

    async fn renew(&mut self) -> Result<(), LeaseError> {
        let Some(id) = self.session.clone() else {
            return Err(LeaseError::Lost("no session".into()));
        };
        let path = format!("/v1/session/renew/{id}");
        let (status, _, body) = self
            .call(Method::PUT, &path, Vec::new(), REQUEST_TIMEOUT)
            .await?;
        match status {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => {
                self.session = None;
                Err(LeaseError::Lost(format!(
                    "consul session {id} expired: {}",
                    String::from_utf8_lossy(&body).trim()
                )))
            }
            s => Err(LeaseError::Unavailable(format!(
                "consul PUT {path}: {s}: {}",
                String::from_utf8_lossy(&body).trim()
            ))),
        }
    }

    async fn release(&mut self) -> Result<(), LeaseError> {
        let Some(id) = self.session.take() else {
            return Ok(());
        };
        // An empty value, as LiteFS leaves it: others see no primary at once.
        let path = format!("/v1/kv/{}?release={id}", self.key);
        let released = self.ok(Method::PUT, &path, Vec::new()).await;
        self.destroy_session(&id).await;
        released.map(|_| ())
    }

    fn lease_id(&self) -> Option<String> {
        self.session.clone()
    }

    fn forget(&mut self) {
        self.session = None;
    }

    /// LiteFS's handoff: renew the session the primary sent, then
    /// re-acquire the key with it and this node's value (the same session
    /// may; its LockIndex stays).
    async fn adopt(&mut self, lease_id: &str, value: &PrimaryInfo) -> Result<u64, LeaseError> {
        let path = format!("/v1/session/renew/{lease_id}");
        let (status, _, body) = self
            .call(Method::PUT, &path, Vec::new(), REQUEST_TIMEOUT)
            .await?;
        if status != StatusCode::OK {
            return Err(LeaseError::Lost(format!(
                "renewing the handed-off session: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        let path = format!("/v1/kv/{}?acquire={lease_id}", self.key);
        let body = self.ok(Method::PUT, &path, value.to_value()).await?;
        if body.as_ref().trim_ascii() != b"true" {
            return Err(LeaseError::Lost(
                "the key is no longer held by the handed-off session".into(),
            ));
        }
        self.session = Some(lease_id.to_string());
        match self.kv_get(&self.key, 0, Duration::ZERO).await? {
            (Some(e), _) => Ok(e.modify_index),
            (None, _) => Err(LeaseError::Protocol(format!(
                "key {} missing right after it was acquired",
                self.key
            ))),
        }
    }

    async fn observe(&mut self, index: u64, wait: Duration) -> Result<Observed, LeaseError> {
        self.check_cluster_id().await?;
        let mut o = self.holder(index, wait).await?;
        if o.index < index {
            // Consul's rule for an index that went backwards: start over.
            o.index = 0;
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_gives_agent_token_and_prefix() {
        let u = parse_url("http://:s3cret@consul.internal:8500/my-app-123/").unwrap();
        assert_eq!(
            u,
            ParsedUrl {
                base: "http://consul.internal:8500".into(),
                token: Some("s3cret".into()),
                prefix: "my-app-123".into(),
            }
        );
        let u = parse_url("http://127.0.0.1:8500").unwrap();
        assert_eq!((u.token, u.prefix.as_str()), (None, ""));
        assert_eq!(
            parse_url("http://localhost").unwrap().base,
            "http://localhost:80"
        );
        let e = parse_url("https://:t@consul-iad.fly-shared.net/app/").unwrap_err();
        assert!(e.contains("https is not supported"), "{e}");
        assert!(parse_url("consul:8500").is_err());
    }

    #[test]
    fn lease_value_is_litefs_json() {
        let p = PrimaryInfo {
            hostname: "a".into(),
            advertise_url: "http://a:20202".into(),
            proxy_url: None,
        };
        let v = p.to_value();
        assert_eq!(v, br#"{"advertise-url":"http://a:20202","hostname":"a"}"#);
        assert_eq!(PrimaryInfo::from_value(&v).unwrap(), Some(p.clone()));
        let with = PrimaryInfo {
            proxy_url: Some("http://a:8080".into()),
            ..p
        };
        assert_eq!(
            PrimaryInfo::from_value(&with.to_value()).unwrap(),
            Some(with)
        );
        assert_eq!(PrimaryInfo::from_value(b"").unwrap(), None);
        assert!(PrimaryInfo::from_value(b"nope").is_err());
    }
}
