//! Replication: the wire format (`frame`), the primary's stream handler
//! (`server`), the replica's follower (`client`) and the SQLite lock the
//! replica applies under (`lock`), and zero-loss mode's acknowledgements
//! (`acks`).

pub mod acks;
pub mod client;
mod diverge;
pub mod frame;
pub mod lock;
pub mod server;
