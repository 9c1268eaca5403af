//! Who is primary. Each backend (`static`, `consul`, `etcd`) says whether
//! this node holds the lease and who does when it does not.
//!
//! The node's current view is one [`LeaseState`] published on a
//! `tokio::sync::watch` channel by the lease task (see [`machine`]), which
//! alone decides the role; the proxy, the replication client and `/info`
//! observe that one value instead of keeping their own copy of "am I
//! primary". Backends with a lease server implement [`Backend`]; the
//! state machine drives them the same way.

mod base64;
mod cluster_gate;
pub mod consul;
pub mod etcd;
pub mod machine;
mod roles;
mod static_lease;

use std::future::Future;
use std::time::Duration;

pub use machine::{LeaseControl, LeaseHandle, LeaseOptions};
pub use roles::StoreRoles;
pub use static_lease::StaticLease;

/// The primary as other nodes see it: shown in `.primary` and used to
/// reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryInfo {
    pub hostname: String,
    pub advertise_url: String,
    /// Where the primary's HTTP proxy can be reached, when it announced one
    /// (replicas forward writes there). LiteFS nodes never announce it.
    pub proxy_url: Option<String>,
}

impl PrimaryInfo {
    /// The lease value LiteFS 0.5 writes (`{"hostname","advertise-url"}`),
    /// plus `proxy-url` when set: LiteFS ignores fields it does not know.
    pub fn to_value(&self) -> Vec<u8> {
        let mut v = serde_json::json!({
            "hostname": self.hostname,
            "advertise-url": self.advertise_url,
        });
        if let Some(p) = &self.proxy_url {
            v["proxy-url"] = serde_json::Value::String(p.clone());
        }
        serde_json::to_vec(&v).expect("serializable")
    }

    /// Reads a lease value; None for an empty one (no primary: LiteFS
    /// leaves the key empty on release).
    pub fn from_value(raw: &[u8]) -> Result<Option<PrimaryInfo>, LeaseError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        #[derive(serde::Deserialize)]
        struct Value {
            #[serde(default)]
            hostname: String,
            #[serde(default, rename = "advertise-url")]
            advertise_url: String,
            #[serde(default, rename = "proxy-url")]
            proxy_url: Option<String>,
        }
        let v: Value = serde_json::from_slice(raw).map_err(|e| {
            LeaseError::Protocol(format!(
                "lease value {:?} is not LiteFS's JSON: {e}",
                String::from_utf8_lossy(raw)
            ))
        })?;
        Ok(Some(PrimaryInfo {
            hostname: v.hostname,
            advertise_url: v.advertise_url,
            proxy_url: v.proxy_url.filter(|p| !p.is_empty()),
        }))
    }
}

/// What this node knows of the lease right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseState {
    /// This node holds the lease and may accept writes.
    pub is_primary: bool,
    /// The holder when it is another node; during an election, the last
    /// one known (None only before any primary was ever known).
    pub primary: Option<PrimaryInfo>,
    /// The fencing epoch of the current term, 0 when unknown.
    pub epoch: u64,
}

/// Receiving side of the lease state; cheap to clone.
pub type LeaseWatch = tokio::sync::watch::Receiver<LeaseState>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    /// The lease server says this node no longer holds the lease.
    #[error("lease lost: {0}")]
    Lost(String),
    /// The lease server could not be reached or answered an error: whether
    /// the lease is still held cannot be told.
    #[error("lease server unavailable: {0}")]
    Unavailable(String),
    /// The lease server answered something this client cannot read.
    #[error("unexpected answer from the lease server: {0}")]
    Protocol(String),
    /// This node must not join: its settings or data do not match the
    /// cluster's (LiteFS's "lease already initialized with different ID").
    #[error("{0}")]
    Fatal(String),
}

/// The result of one attempt to take the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// This node holds the lease; `epoch` is the backend's fencing number
    /// for the new term (Consul's ModifyIndex, etcd's revision).
    Won { epoch: u64 },
    /// Someone else holds it (`primary`), or nobody does yet but it cannot
    /// be taken (Consul's lock-delay): `primary` is None. `index` is where
    /// a watch for the next change starts.
    Held {
        primary: Option<PrimaryInfo>,
        index: u64,
    },
}

/// The holder as the lease server last said, and where to watch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub primary: Option<PrimaryInfo>,
    pub index: u64,
}

/// One lease server. Calls come from the lease task alone, one at a time.
pub trait Backend: Send + 'static {
    /// The lease's time to live: a holder that cannot renew within it
    /// must consider the lease lost.
    fn ttl(&self) -> Duration;

    /// Tries to take the lease with `value` as the key's content.
    fn acquire(
        &mut self,
        value: &PrimaryInfo,
    ) -> impl Future<Output = Result<Acquire, LeaseError>> + Send;

    /// Extends the held lease by its TTL from about now.
    fn renew(&mut self) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Gives the held lease up so another node can take it at once.
    fn release(&mut self) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// The held lease's ID (Consul session, etcd lease), for a handoff.
    fn lease_id(&self) -> Option<String>;

    /// Drops the held lease without releasing it: it was handed off.
    fn forget(&mut self);

    /// Takes over the lease `lease_id` another node handed to this one and
    /// puts `value` in the key; the new term's epoch.
    fn adopt(
        &mut self,
        lease_id: &str,
        value: &PrimaryInfo,
    ) -> impl Future<Output = Result<u64, LeaseError>> + Send;

    /// The holder; with `index` from an earlier answer, waits up to `wait`
    /// for a change after it (0: answers at once).
    fn observe(
        &mut self,
        index: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<Observed, LeaseError>> + Send;
}
