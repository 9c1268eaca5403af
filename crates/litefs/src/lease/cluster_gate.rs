//! The cluster-ID check a Consul or etcd lease makes before this node may
//! take it (`cluster_id::may_take_lease`), remembered once both sides hold
//! the same ID, with its "no ID yet" line said once.

use std::path::Path;

use super::LeaseError;
use crate::store::cluster_id;

#[derive(Default)]
pub(crate) struct ClusterGate {
    /// This node's cluster ID is the one under the key: it cannot change.
    pub checked: bool,
    /// Said once that this node may not take the lease without an ID.
    told_no_id: bool,
}

impl ClusterGate {
    /// Whether this node may take the `kind` lease at `key`, whose stored
    /// cluster ID is `theirs`.
    pub fn admit(
        &mut self,
        data_dir: &Path,
        kind: &'static str,
        key: &str,
        theirs: Option<&str>,
    ) -> Result<bool, LeaseError> {
        let may = cluster_id::may_take_lease(data_dir, kind, key, theirs)
            .map_err(|e| LeaseError::Fatal(e.to_string()))?;
        if !may && !self.told_no_id {
            self.told_no_id = true;
            tracing::info!(lease_cluster_id = theirs.unwrap_or(""),
                "this node has no cluster ID and the lease has one: it follows the primary (and adopts the ID) before it may become primary");
        }
        self.checked = may && theirs.is_some();
        Ok(may)
    }
}
