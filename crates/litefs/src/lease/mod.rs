//! Who is primary. Each backend (static now; Consul and etcd to come) says
//! whether this node holds the lease and who does when it does not.
//!
//! The node's current view is one [`LeaseState`] published on a
//! `tokio::sync::watch` channel by whoever owns the lease (the mount); the
//! proxy, the replication client and `/info` observe that one value instead
//! of keeping their own copy of "am I primary".

mod static_lease;

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
