//! The litefs-rs node engine: configuration, the store (databases, positions,
//! the LTX log, recovery, apply), leases, replication, the HTTP API and the
//! HTTP proxy in front of the app.
//! Nothing in here knows about FUSE; `litefs-fuse` is one adapter over it.

pub mod config;
pub mod halt;
pub mod http;
pub mod lease;
pub mod proxy;
pub mod replication;
pub mod store;
pub mod transfer;
