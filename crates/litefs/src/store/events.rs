//! What the store tells the rest of the node: each transaction (committed
//! here or applied from the primary) and each change of primary. The
//! replication server waits on these, `/events` streams them.

use crate::store::Pos;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Tx {
        db: String,
        pos: Pos,
        page_size: u32,
        commit: u32,
        /// Milliseconds since the epoch, from the LTX header.
        timestamp: i64,
    },
    PrimaryChange {
        is_primary: bool,
        hostname: Option<String>,
    },
    /// A replica's database no longer matches its position; its follower
    /// must reconnect so the primary sends a snapshot.
    Resync { db: String },
    /// The lease (`lease_id`: Consul session, etcd lease) is handed to the
    /// node `node_id`: on the primary, its stream to that node sends the
    /// HANDOFF frame; on that replica, its lease task takes the lease over.
    Handoff { node_id: u64, lease_id: String },
}

/// Broadcast capacity; a subscriber that falls further behind is told it
/// lagged and re-reads positions instead of events.
pub(crate) const CAPACITY: usize = 1024;
