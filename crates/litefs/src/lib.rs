//! The litefs-rs node engine: configuration, the store (databases, positions,
//! the LTX log, recovery, apply), leases, replication and the HTTP API (the
//! proxy is still to come).
//! Nothing in here knows about FUSE; `litefs-fuse` is one adapter over it.

pub mod config;
pub mod http;
pub mod lease;
pub mod replication;
pub mod store;
pub mod transfer;
