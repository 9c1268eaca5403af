//! The lease task: the one owner of this node's role under a lease server
//! (Consul, etcd). It acquires when it may, renews early and steps down
//! before its TTL can run out when it cannot confirm the lease, watches who
//! holds the lease otherwise, and publishes every change as one
//! [`LeaseState`] on a watch channel. [`Roles`] carries each change out on
//! the node (write gate, term, replication client) in the order that keeps
//! two nodes from ever both accepting writes.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::roles::Roles;
use super::{Acquire, Backend, LeaseError, LeaseState, LeaseWatch, PrimaryInfo};

/// How long one watch for a change of holder waits on the server.
pub const WATCH_WAIT: Duration = Duration::from_secs(30);
/// Retry delay while the key is free but cannot be taken yet (Consul's
/// lock-delay after a holder's session was invalidated).
pub const FREE_RETRY: Duration = Duration::from_millis(100);
/// Retry delay of a failed renewal while the lease may still be valid.
const RENEW_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// May this node hold the lease (`lease.candidate`).
    pub candidate: bool,
    /// This node as others should see it while it is primary (the value
    /// written to the lease key).
    pub me: PrimaryInfo,
    /// How long to wait before asking an unreachable lease server again.
    pub retry_delay: Duration,
    /// After handing the lease off, how long before trying to take it
    /// again (`lease.demote-delay`).
    pub demote_delay: Duration,
}

/// How long either side of a handoff tries before giving up (LiteFS's).
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);

enum Command {
    /// Step down if primary, release the lease, end the task.
    Shutdown(oneshot::Sender<()>),
    /// Hand the lease to the connected replica `node_id`.
    Handoff {
        node_id: u64,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Asks the lease task to act; cheap to clone (the HTTP API holds one).
#[derive(Clone, Debug)]
pub struct LeaseControl {
    cmds: mpsc::Sender<Command>,
}

impl LeaseControl {
    /// Hands the lease to the replica `node_id`, which must be connected
    /// to this primary; returns once this node has stepped down.
    pub async fn handoff(&self, node_id: u64) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Command::Handoff { node_id, reply })
            .await
            .map_err(|_| "the lease task has stopped".to_string())?;
        rx.await
            .map_err(|_| "the lease task has stopped".to_string())?
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Shutdown(_) => f.write_str("Shutdown"),
            Command::Handoff { node_id, .. } => write!(f, "Handoff({node_id:016X})"),
        }
    }
}

/// The running lease task: its state and a way to end it.
pub struct LeaseHandle {
    watch: LeaseWatch,
    cmds: mpsc::Sender<Command>,
    task: JoinHandle<Result<(), String>>,
}

impl LeaseHandle {
    pub fn watch(&self) -> LeaseWatch {
        self.watch.clone()
    }

    pub fn control(&self) -> LeaseControl {
        LeaseControl {
            cmds: self.cmds.clone(),
        }
    }

    /// Steps down (when primary) and releases the lease so another node can
    /// take it at once; returns when done.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.task.abort();
    }

    /// Resolves if the lease task ends by itself, which it does only when
    /// this node must not go on (the reason).
    pub async fn failed(&mut self) -> String {
        match (&mut self.task).await {
            Ok(Ok(())) => "lease task ended".into(),
            Ok(Err(reason)) => reason,
            Err(e) => format!("lease task failed: {e}"),
        }
    }
}

/// Starts the lease task. It owns `state` and publishes on it.
pub fn spawn<B: Backend, R: Roles>(
    backend: B,
    roles: R,
    opts: LeaseOptions,
    state: watch::Sender<LeaseState>,
) -> LeaseHandle {
    let (cmds, rx) = mpsc::channel(4);
    let watch = state.subscribe();
    let m = Machine {
        backend,
        roles,
        opts,
        state,
        cmds: rx,
        last_error: String::new(),
    };
    LeaseHandle {
        watch,
        cmds,
        task: tokio::spawn(m.run()),
    }
}

struct Machine<B, R> {
    backend: B,
    roles: R,
    opts: LeaseOptions,
    state: watch::Sender<LeaseState>,
    cmds: mpsc::Receiver<Command>,
    /// The last lease-server error logged at warn: repeats go to debug.
    last_error: String,
}

/// How a term as primary ended.
enum Held {
    Lost,
    HandedOff,
    Shutdown(Option<oneshot::Sender<()>>),
}

impl<B: Backend, R: Roles> Machine<B, R> {
    async fn run(mut self) -> Result<(), String> {
        let mut index = 0;
        // After a handoff this node lets the new holder settle in.
        let mut no_acquire_until = Instant::now();
        loop {
            let mut won = None;
            if self.opts.candidate && Instant::now() >= no_acquire_until {
                let started = Instant::now();
                match self.backend.acquire(&self.opts.me).await {
                    Ok(Acquire::Won { epoch }) => {
                        self.clear_error();
                        won = Some((epoch, started));
                    }
                    Ok(Acquire::Held { primary, index: i }) => {
                        self.clear_error();
                        index = i;
                        match primary.filter(|p| *p != self.opts.me) {
                            Some(p) => self.follow(p).await,
                            None => {
                                // Free, but not ours to take yet.
                                if let Some(done) = self.pause(FREE_RETRY).await {
                                    return self.finish(done);
                                }
                                continue;
                            }
                        }
                    }
                    Err(LeaseError::Fatal(reason)) => return Err(reason),
                    Err(e) => {
                        self.server_error(&e);
                        if let Some(done) = self.pause(self.opts.retry_delay).await {
                            return self.finish(done);
                        }
                        continue;
                    }
                }
            }
            if won.is_none() {
                let wait = if self.opts.candidate && no_acquire_until > Instant::now() {
                    no_acquire_until - Instant::now()
                } else {
                    WATCH_WAIT
                };
                tokio::select! {
                    observed = self.backend.observe(index, wait) => match observed {
                        Ok(o) => {
                            self.clear_error();
                            index = o.index;
                            if let Some(p) = o.primary.filter(|p| *p != self.opts.me) {
                                self.follow(p).await;
                            }
                        }
                        Err(LeaseError::Fatal(reason)) => return Err(reason),
                        Err(e) => {
                            self.server_error(&e);
                            index = 0;
                            if let Some(done) = self.pause(self.opts.retry_delay).await {
                                return self.finish(done);
                            }
                        }
                    },
                    lease_id = self.roles.handoff_offered() => {
                        won = self.adopt(lease_id).await;
                    }
                    c = self.cmds.recv() => {
                        if let Some(done) = not_primary(c) {
                            return self.finish(done);
                        }
                    }
                }
            }
            if let Some((epoch, started)) = won {
                match self.hold(epoch, started).await {
                    Held::Lost => index = 0,
                    Held::HandedOff => {
                        index = 0;
                        no_acquire_until = Instant::now() + self.opts.demote_delay;
                    }
                    Held::Shutdown(done) => return self.finish(done),
                }
            }
        }
    }

    /// Takes over a lease the primary handed to this node; the epoch and
    /// when, or None (logged) if it could not within the handoff timeout.
    async fn adopt(&mut self, lease_id: String) -> Option<(u64, Instant)> {
        if !self.opts.candidate {
            tracing::warn!("offered the lease, but this node is not a candidate");
            return None;
        }
        let started = Instant::now();
        match tokio::time::timeout(
            HANDOFF_TIMEOUT,
            self.backend.adopt(&lease_id, &self.opts.me),
        )
        .await
        {
            Ok(Ok(epoch)) => Some((epoch, started)),
            Ok(Err(e)) => {
                tracing::warn!("could not take over the handed-off lease: {e}");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "could not take over the handed-off lease within {HANDOFF_TIMEOUT:?}"
                );
                None
            }
        }
    }

    /// Primary until the lease is lost or the node shuts down. Renews every
    /// TTL/2; when renewals fail it steps down before the last confirmed
    /// renewal (counted from when it was sent) plus the TTL, less a margin,
    /// so that it stops writing before any other node can take the lease.
    async fn hold(&mut self, backend_epoch: u64, acquired_at: Instant) -> Held {
        let ttl = self.backend.ttl();
        let margin = (ttl / 10).clamp(Duration::from_millis(500), ttl / 2);
        self.roles
            .lease_valid_until((acquired_at + ttl - margin).into_std());
        let epoch = match self.roles.step_up(backend_epoch).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("cannot become primary: {e}");
                let _ = self.backend.release().await;
                self.roles.step_down().await;
                return Held::Lost;
            }
        };
        tracing::info!(epoch, "primary lease acquired");
        self.publish(LeaseState {
            is_primary: true,
            primary: None,
            epoch,
        });
        let mut confirmed = acquired_at;
        let mut next = confirmed + ttl / 2;
        loop {
            let deadline = confirmed + ttl - margin;
            tokio::select! {
                _ = tokio::time::sleep_until(next.min(deadline)) => {}
                c = self.cmds.recv() => match c {
                    Some(Command::Handoff { node_id, reply }) => {
                        match self.hand_off(node_id, margin).await {
                            Ok(()) => {
                                self.demoted(epoch);
                                let _ = reply.send(Ok(()));
                                return Held::HandedOff;
                            }
                            Err(e) => {
                                tracing::warn!(node = %format!("{node_id:016X}"), "handoff refused: {e}");
                                let _ = reply.send(Err(e));
                                continue;
                            }
                        }
                    }
                    c => {
                        self.roles.step_down().await;
                        if let Err(e) = self.backend.release().await {
                            tracing::warn!("releasing the lease: {e}");
                        }
                        self.demoted(epoch);
                        return Held::Shutdown(c.and_then(|c| match c {
                            Command::Shutdown(done) => Some(done),
                            Command::Handoff { .. } => None,
                        }));
                    }
                }
            }
            let now = Instant::now();
            let reason = if now >= deadline {
                "could not renew it within its TTL".to_string()
            } else {
                match tokio::time::timeout(deadline - now, self.backend.renew()).await {
                    Ok(Ok(())) => {
                        if !self.last_error.is_empty() {
                            tracing::info!("primary lease renewed again");
                            self.clear_error();
                        }
                        confirmed = now;
                        next = now + ttl / 2;
                        self.roles
                            .lease_valid_until((now + ttl - margin).into_std());
                        continue;
                    }
                    Ok(Err(LeaseError::Lost(m))) => m,
                    Ok(Err(e)) => {
                        self.server_error(&e);
                        next = Instant::now() + RENEW_RETRY;
                        continue;
                    }
                    Err(_) => "renewal did not answer within the lease's TTL".to_string(),
                }
            };
            tracing::warn!(epoch, %reason, "primary lease lost");
            self.roles.step_down().await;
            self.demoted(epoch);
            // The lease may still be ours on the server (it only stopped
            // answering): free it so another node need not wait for the TTL.
            let _ = tokio::time::timeout(margin, self.backend.release()).await;
            return Held::Lost;
        }
    }

    /// Renews once more (the new holder gets a whole TTL), then steps down
    /// in favour of `node_id` and forgets the lease, which is now theirs.
    async fn hand_off(&mut self, node_id: u64, margin: Duration) -> Result<(), String> {
        match tokio::time::timeout(margin, self.backend.renew()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("renewing before the handoff: {e}")),
            Err(_) => return Err("renewing before the handoff timed out".into()),
        }
        let lease_id = self
            .backend
            .lease_id()
            .ok_or_else(|| "no lease to hand off".to_string())?;
        self.roles.hand_off(node_id, lease_id).await;
        self.backend.forget();
        tracing::info!(node = %format!("{node_id:016X}"), "primary lease handed off");
        Ok(())
    }

    async fn follow(&mut self, p: PrimaryInfo) {
        let cur = self.state.borrow().clone();
        if !cur.is_primary && cur.primary.as_ref() == Some(&p) {
            return;
        }
        tracing::info!(hostname = %p.hostname, url = %p.advertise_url, "existing primary found");
        self.roles.follow(&p).await;
        self.publish(LeaseState {
            is_primary: false,
            primary: Some(p),
            epoch: 0,
        });
    }

    /// After a step-down: no primary is known until the server names one.
    fn demoted(&mut self, epoch: u64) {
        self.publish(LeaseState {
            is_primary: false,
            primary: None,
            epoch,
        });
    }

    fn publish(&self, s: LeaseState) {
        self.state.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
    }

    /// Waits `d` unless a shutdown comes first (returned).
    async fn pause(&mut self, d: Duration) -> Option<Option<oneshot::Sender<()>>> {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return None,
                c = self.cmds.recv() => {
                    if let Some(done) = not_primary(c) {
                        return Some(done);
                    }
                }
            }
        }
    }

    fn finish(&mut self, done: Option<oneshot::Sender<()>>) -> Result<(), String> {
        if let Some(done) = done {
            let _ = done.send(());
        }
        Ok(())
    }

    fn server_error(&mut self, e: &LeaseError) {
        let msg = e.to_string();
        if msg == self.last_error {
            tracing::debug!("{msg}");
        } else {
            tracing::warn!("{msg}; retrying");
            self.last_error = msg;
        }
    }

    fn clear_error(&mut self) {
        self.last_error.clear();
    }
}

/// A command while not primary: a handoff is refused at once; a shutdown
/// (or the handle gone) ends the task (Some).
fn not_primary(c: Option<Command>) -> Option<Option<oneshot::Sender<()>>> {
    match c {
        None => Some(None),
        Some(Command::Shutdown(done)) => Some(Some(done)),
        Some(Command::Handoff { reply, .. }) => {
            let _ = reply.send(Err("this node is not the primary".into()));
            None
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
