//! Replication: the wire format (`frame`), the primary's stream handler
//! (`server`), the replica's follower (`client`), the SQLite lock the
//! replica applies under (`lock`), the checkpoint of the WAL a demoted
//! primary leaves (`checkpoint`), and zero-loss mode's acknowledgements
//! (`acks`).

pub mod acks;
pub mod checkpoint;
pub mod client;
mod diverge;
pub mod frame;
pub mod lock;
pub mod server;
