//! Who is primary. Each backend (static now; Consul and etcd to come) says
//! whether this node holds the lease and who does when it does not.

mod static_lease;

pub use static_lease::StaticLease;

/// The primary as other nodes see it: shown in `.primary` and used to
/// reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryInfo {
    pub hostname: String,
    pub advertise_url: String,
}
