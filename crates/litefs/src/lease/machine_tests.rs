//! The state machine against an in-memory lease server, in paused time:
//! who acquires, who follows, and when a holder that cannot renew stops.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::*;
use crate::lease::Observed;

const TTL: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Server {
    holder: Option<(u32, PrimaryInfo, Instant)>,
    index: u64,
    down: bool,
    /// Each node's stream from the primary, for HANDOFF.
    offers: std::collections::HashMap<u64, tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Server {
    fn expire(&mut self, now: Instant) {
        if self.holder.as_ref().is_some_and(|h| h.2 <= now) {
            self.holder = None;
            self.index += 1;
        }
    }
}

#[derive(Clone)]
struct Fake {
    id: u32,
    server: Arc<Mutex<Server>>,
    changed: Arc<Notify>,
}

impl Fake {
    fn check(&self) -> Result<std::sync::MutexGuard<'_, Server>, LeaseError> {
        let mut s = self.server.lock().unwrap();
        s.expire(Instant::now());
        if s.down {
            return Err(LeaseError::Unavailable("down".into()));
        }
        Ok(s)
    }
}

impl Backend for Fake {
    fn ttl(&self) -> Duration {
        TTL
    }

    async fn acquire(&mut self, value: &PrimaryInfo) -> Result<Acquire, LeaseError> {
        let mut s = self.check()?;
        if let Some(h) = &s.holder {
            return Ok(Acquire::Held {
                primary: Some(h.1.clone()),
                index: s.index,
            });
        }
        s.index += 1;
        s.holder = Some((self.id, value.clone(), Instant::now() + TTL));
        self.changed.notify_waiters();
        Ok(Acquire::Won { epoch: s.index })
    }

    async fn renew(&mut self) -> Result<(), LeaseError> {
        let mut s = self.check()?;
        match &mut s.holder {
            Some(h) if h.0 == self.id => {
                h.2 = Instant::now() + TTL;
                Ok(())
            }
            _ => Err(LeaseError::Lost("not held".into())),
        }
    }

    async fn release(&mut self) -> Result<(), LeaseError> {
        let mut s = self.check()?;
        if s.holder.as_ref().is_some_and(|h| h.0 == self.id) {
            s.holder = None;
            s.index += 1;
            self.changed.notify_waiters();
        }
        Ok(())
    }

    fn lease_id(&self) -> Option<String> {
        let s = self.server.lock().unwrap();
        s.holder
            .as_ref()
            .filter(|h| h.0 == self.id)
            .map(|h| format!("lease-{}", h.0))
    }

    fn forget(&mut self) {}

    async fn adopt(&mut self, lease_id: &str, value: &PrimaryInfo) -> Result<u64, LeaseError> {
        let mut s = self.check()?;
        match &mut s.holder {
            Some(h) if format!("lease-{}", h.0) == lease_id => {
                *h = (self.id, value.clone(), Instant::now() + TTL);
            }
            _ => return Err(LeaseError::Lost("no such lease".into())),
        }
        s.index += 1;
        self.changed.notify_waiters();
        Ok(s.index)
    }

    async fn observe(&mut self, index: u64, wait: Duration) -> Result<Observed, LeaseError> {
        let end = Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            let until = {
                let s = self.check()?;
                if s.index != index || Instant::now() >= end {
                    return Ok(Observed {
                        primary: s.holder.as_ref().map(|h| h.1.clone()),
                        index: s.index,
                    });
                }
                s.holder.as_ref().map_or(end, |h| h.2.min(end))
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

/// Records what the machine asked of the node, with when; hands off
/// through `Offers`, and receives this node's offers on the receiver.
#[derive(Default)]
struct Log(
    Arc<Mutex<Vec<(Instant, String)>>>,
    Arc<Mutex<Server>>,
    Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
);

impl Clone for Log {
    fn clone(&self) -> Log {
        Log(self.0.clone(), self.1.clone(), None)
    }
}

impl Log {
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|e| e.1.clone()).collect()
    }
    fn when(&self, what: &str) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.1 == what)
            .map(|e| e.0)
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push((Instant::now(), s));
    }
}

impl Roles for Log {
    async fn step_up(&mut self, epoch: u64) -> Result<u64, String> {
        self.push(format!("up {epoch}"));
        Ok(epoch)
    }
    fn lease_valid_until(&mut self, _: std::time::Instant) {}
    async fn step_down(&mut self) {
        self.push("down".into());
    }
    async fn follow(&mut self, p: &PrimaryInfo) {
        self.push(format!("follow {}", p.hostname));
    }
    async fn hand_off(&mut self, node_id: u64, lease_id: String) {
        self.push(format!("hand off {lease_id} to n{node_id}"));
        let offers = self.1.lock().unwrap().offers.get(&node_id).cloned();
        if let Some(tx) = offers {
            let _ = tx.send(lease_id);
        }
    }
    async fn handoff_offered(&mut self) -> String {
        // Cancel-safe: the machine drops this future whenever another
        // branch of its select wins.
        if let Some(rx) = self.2.as_mut() {
            if let Some(id) = rx.recv().await {
                return id;
            }
        }
        std::future::pending().await
    }
}

fn info(name: &str) -> PrimaryInfo {
    PrimaryInfo {
        hostname: name.into(),
        advertise_url: format!("http://{name}:20202"),
        proxy_url: None,
    }
}

struct Node {
    handle: LeaseHandle,
    log: Log,
    backend: Fake,
}

fn node(id: u32, candidate: bool, server: &Arc<Mutex<Server>>, changed: &Arc<Notify>) -> Node {
    let backend = Fake {
        id,
        server: server.clone(),
        changed: changed.clone(),
    };
    let (offer, offers) = tokio::sync::mpsc::unbounded_channel();
    server.lock().unwrap().offers.insert(id as u64, offer);
    let log = Log(Arc::default(), server.clone(), None);
    let roles = Log(log.0.clone(), server.clone(), Some(offers));
    let (tx, _) = watch::channel(LeaseState::default());
    let opts = LeaseOptions {
        candidate,
        me: info(&format!("n{id}")),
        retry_delay: Duration::from_secs(1),
        demote_delay: Duration::from_secs(10),
    };
    Node {
        handle: spawn(backend.clone(), roles, opts, tx),
        log,
        backend,
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(start_paused = true)]
async fn one_candidate_holds_and_the_others_follow_it() {
    let (server, changed) = (Arc::default(), Arc::new(Notify::new()));
    let a = node(1, true, &server, &changed);
    settle().await;
    let b = node(2, true, &server, &changed);
    let c = node(3, false, &server, &changed);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(a.log.events(), ["up 1"]);
    assert_eq!(b.log.events(), ["follow n1"]);
    assert_eq!(c.log.events(), ["follow n1"]);
    let s = a.handle.watch().borrow().clone();
    assert!(s.is_primary && s.primary.is_none() && s.epoch == 1, "{s:?}");
    let s = c.handle.watch().borrow().clone();
    assert_eq!((s.is_primary, s.primary), (false, Some(info("n1"))));

    // A clean shutdown frees the key: the other candidate takes it at once,
    // the non-candidate follows it and never acquires.
    let before = Instant::now();
    a.handle.shutdown().await;
    settle().await;
    assert_eq!(a.log.events(), ["up 1", "down"]);
    let up = b.log.when("up 3").expect("b takes over");
    assert!(
        up - before < Duration::from_millis(200),
        "{:?}",
        up - before
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.log.events(), ["follow n1", "follow n2"]);
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_dies_is_replaced_after_its_ttl_with_a_higher_epoch() {
    let (server, changed) = (Arc::default(), Arc::new(Notify::new()));
    let a = node(1, true, &server, &changed);
    settle().await;
    let b = node(2, true, &server, &changed);
    settle().await;
    let killed = Instant::now();
    a.handle.task.abort(); // like kill -9: no release
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The server's index moved twice: the expiry, then b's acquisition.
    let up = b.log.when("up 3").expect("b takes over");
    assert!(up - killed <= TTL + FREE_RETRY, "{:?}", up - killed);
    assert!(b.handle.watch().borrow().is_primary);
    assert_eq!(b.handle.watch().borrow().epoch, 3);
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_cannot_renew_steps_down_before_its_ttl_runs_out() {
    let (server, changed) = (Arc::default(), Arc::new(Notify::new()));
    let a = node(1, true, &server, &changed);
    let r = node(2, false, &server, &changed);
    tokio::time::sleep(Duration::from_secs(12)).await; // renewed at ~5 s and ~10 s
    server.lock().unwrap().down = true;
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let down = a.log.when("down").expect("a steps down");
    // The last renewal was at ~10 s, confirmed for a TTL from then.
    let last_renewal = cut - Duration::from_secs(2);
    assert!(
        down < last_renewal + TTL,
        "stepped down {:?} after the cut",
        down - cut
    );
    assert!(!a.handle.watch().borrow().is_primary);
    // Back up: a holds the lease again; the replica never took it.
    server.lock().unwrap().down = false;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(a.handle.watch().borrow().is_primary);
    assert!(r.log.events().iter().all(|e| e.starts_with("follow")));
    drop(r.backend);
}

#[tokio::test(start_paused = true)]
async fn a_lease_taken_away_is_noticed_at_the_next_renewal() {
    let (server, changed) = (Arc::default(), Arc::new(Notify::new()));
    let a = node(1, true, &server, &changed);
    settle().await;
    // Another holder appears behind a's back (its session was invalidated).
    {
        let mut s = server.lock().unwrap();
        s.holder = Some((9, info("n9"), Instant::now() + Duration::from_secs(3600)));
        s.index += 1;
    }
    changed.notify_waiters();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(a.log.events(), ["up 1", "down", "follow n9"]);
    let s = a.handle.watch().borrow().clone();
    assert_eq!((s.is_primary, s.primary), (false, Some(info("n9"))));
}

#[tokio::test(start_paused = true)]
async fn a_handoff_moves_the_lease_at_once_and_the_old_holder_waits() {
    let (server, changed) = (Arc::default(), Arc::new(Notify::new()));
    let a = node(1, true, &server, &changed);
    settle().await;
    let b = node(2, true, &server, &changed);
    settle().await;
    assert_eq!(
        b.handle.control().handoff(1).await,
        Err("this node is not the primary".into())
    );
    let before = Instant::now();
    a.handle.control().handoff(2).await.unwrap();
    settle().await;
    let up = b.log.when("up 2").unwrap_or_else(|| {
        panic!(
            "b takes the lease over: {:?} / {:?}",
            b.log.events(),
            a.log.events()
        )
    });
    assert!(
        up - before < Duration::from_millis(100),
        "{:?}",
        up - before
    );
    assert_eq!(
        a.log.events(),
        ["up 1", "hand off lease-1 to n2", "follow n2"]
    );
    // a holds back for demote-delay and never takes the lease from b.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        a.log.events(),
        ["up 1", "hand off lease-1 to n2", "follow n2"]
    );
    assert!(b.handle.watch().borrow().is_primary);
}
