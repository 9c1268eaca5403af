//! What a change of lease state does to the node: the store's write gate
//! and term, and the replication client towards whoever holds the lease.
//! The lease task calls these in order (close the gate before anything
//! else on a step-down; stop following before a step-up), so no other
//! part of the node decides the role.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::PrimaryInfo;
use crate::replication::client::{self, ReplicaOptions};
use crate::store::Store;

/// The node side of the lease state machine.
pub trait Roles: Send + 'static {
    /// This node now holds the lease: stop following, take a term at or
    /// above `epoch`, open the write gate. Returns the term's epoch.
    fn step_up(&mut self, epoch: u64) -> impl Future<Output = Result<u64, String>> + Send;

    /// The lease is confirmed until `until`: no write may be accepted
    /// after it unless confirmed again.
    fn lease_valid_until(&mut self, until: std::time::Instant);

    /// This node no longer holds the lease: close the write gate at once
    /// (its streams end with it).
    fn step_down(&mut self) -> impl Future<Output = ()> + Send;

    /// Follow `primary` (another node) as a replica.
    fn follow(&mut self, primary: &PrimaryInfo) -> impl Future<Output = ()> + Send;

    /// Step down in favour of the replica `node_id`, passing it `lease_id`
    /// after every transaction so far.
    fn hand_off(&mut self, node_id: u64, lease_id: String) -> impl Future<Output = ()> + Send;

    /// Resolves when the primary hands its lease to this node (the lease
    /// ID it sent).
    fn handoff_offered(&mut self) -> impl Future<Output = String> + Send;
}

/// [`Roles`] over the store and the replication client.
pub struct StoreRoles {
    store: Arc<Store>,
    /// This node's hostname, shown in `.primary` after it steps down until
    /// another primary is known.
    hostname: String,
    reconnect_delay: Duration,
    mount_dir: Option<std::path::PathBuf>,
    /// Notified each time the replica has caught up with a primary.
    ready: Arc<tokio::sync::Notify>,
    client: Option<Follower>,
    /// The store's events, for handoffs offered to this node.
    events: tokio::sync::broadcast::Receiver<crate::store::Event>,
}

struct Follower {
    url: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl StoreRoles {
    pub fn new(
        store: Arc<Store>,
        hostname: String,
        reconnect_delay: Duration,
        mount_dir: Option<std::path::PathBuf>,
        ready: Arc<tokio::sync::Notify>,
    ) -> StoreRoles {
        StoreRoles {
            events: store.subscribe(),
            store,
            hostname,
            reconnect_delay,
            mount_dir,
            ready,
            client: None,
        }
    }

    /// Stops the replication client and waits until whatever it received
    /// whole is applied.
    async fn stop_following(&mut self) {
        if let Some(f) = self.client.take() {
            let _ = f.stop.send(true);
            if let Err(e) = f.task.await {
                tracing::warn!(primary = %f.url, "replication client ended badly: {e}");
            }
        }
    }
}

impl Roles for StoreRoles {
    async fn step_up(&mut self, epoch: u64) -> Result<u64, String> {
        self.stop_following().await;
        let store = self.store.clone();
        let epoch = tokio::task::spawn_blocking(move || {
            // Before any replica can connect: a LiteFS replica refuses a
            // primary without a cluster ID.
            crate::store::cluster_id::ensure(store.data_dir()).map_err(|e| e.to_string())?;
            store.begin_term_at(epoch).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("starting a primary term: {e}"))?;
        self.store.set_primary(true);
        Ok(epoch)
    }

    fn lease_valid_until(&mut self, until: std::time::Instant) {
        self.store.set_lease_valid_until(until);
    }

    async fn step_down(&mut self) {
        // A missing `.primary` reads as "this node is primary" to litefs-js:
        // until the lease names another node, name the last one known.
        if self.store.primary_hostname().is_none() {
            self.store.set_primary_hostname(Some(self.hostname.clone()));
        }
        let store = self.store.clone();
        // set_primary flushes the log writer: off the async threads.
        if let Err(e) = tokio::task::spawn_blocking(move || store.set_primary(false)).await {
            tracing::error!("demoting: {e}");
        }
    }

    async fn hand_off(&mut self, node_id: u64, lease_id: String) {
        let store = self.store.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || store.hand_off(node_id, lease_id)).await
        {
            tracing::error!("handing off: {e}");
        }
    }

    async fn handoff_offered(&mut self) -> String {
        self.next_offer().await
    }

    async fn follow(&mut self, primary: &PrimaryInfo) {
        if self
            .client
            .as_ref()
            .is_some_and(|f| f.url == primary.advertise_url && !f.task.is_finished())
        {
            self.store
                .set_primary_hostname(Some(primary.hostname.clone()));
            return;
        }
        self.stop_following().await;
        let opts = ReplicaOptions {
            primary_url: primary.advertise_url.clone(),
            primary_hostname: primary.hostname.clone(),
            reconnect_delay: self.reconnect_delay,
            mount_dir: self.mount_dir.clone(),
            ready: self.ready.clone(),
        };
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(client::run_until(self.store.clone(), opts, stop_rx));
        self.client = Some(Follower {
            url: primary.advertise_url.clone(),
            stop,
            task,
        });
    }
}

impl StoreRoles {
    async fn next_offer(&mut self) -> String {
        use tokio::sync::broadcast::error::RecvError;
        let me = self.store.node_id();
        loop {
            match self.events.recv().await {
                Ok(crate::store::Event::Handoff { node_id, lease_id }) if node_id == me => {
                    return lease_id
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Drop for StoreRoles {
    fn drop(&mut self) {
        if let Some(f) = self.client.take() {
            let _ = f.stop.send(true);
        }
    }
}
