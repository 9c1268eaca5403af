//! Zero-loss mode, the primary's side: which candidates hold which
//! transactions (their acknowledgements), and the commits waiting for them.
//!
//! A commit point (a FUSE call after which SQLite takes its transaction as
//! durable) is answered only once `candidates` other candidates acknowledged
//! a position at or past it. Acknowledgements are positions, so one covers
//! every transaction before it: commits waiting together are released by
//! one round trip (group commit). A commit that waits longer than `timeout`
//! either degrades the node to asynchronous replication (every waiter is
//! released, a warning is logged, a counter moves) or fails. The node
//! leaves degraded mode as soon as enough candidates hold everything it
//! committed again.
//!
//! Acknowledgements count only in the epoch they were sent in: a node that
//! becomes primary again starts from none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Response header of `POST /stream`: the primary asks candidates to
/// acknowledge (`POST /ack`) what they hold. Absent from LiteFS, whose
/// replicas never acknowledge.
pub const HEADER_ACK: &str = "Litefs-Ack";

/// What a commit that waited `timeout` in vain does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// Return it, and every later commit, without waiting until enough
    /// candidates hold everything again.
    #[default]
    Degrade,
    /// Fail it with an I/O error; the store then stops as after a commit
    /// it could not capture (SQLite may or may not keep a commit whose
    /// last step failed, so capture can no longer be sure to match it),
    /// which stops the node.
    Fail,
}

impl std::str::FromStr for OnTimeout {
    type Err = String;
    fn from_str(s: &str) -> Result<OnTimeout, String> {
        match s {
            "degrade" => Ok(OnTimeout::Degrade),
            "fail" => Ok(OnTimeout::Fail),
            other => Err(format!("must be 'degrade' or 'fail', got {other:?}")),
        }
    }
}

impl std::fmt::Display for OnTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnTimeout::Degrade => "degrade",
            OnTimeout::Fail => "fail",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroLossOptions {
    /// Other candidates that must hold a transaction before its commit
    /// returns; 0 is asynchronous replication.
    pub candidates: usize,
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
}

impl Default for ZeroLossOptions {
    fn default() -> Self {
        ZeroLossOptions {
            candidates: 0,
            timeout: Duration::from_secs(2),
            on_timeout: OnTimeout::Degrade,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AckError {
    #[error("no {needed} candidate(s) acknowledged TXID {txid} of {db} within {timeout:?}")]
    Timeout {
        db: String,
        txid: u64,
        needed: usize,
        timeout: Duration,
    },
    #[error("this node stopped being primary before TXID {txid} of {db} was acknowledged")]
    SteppedDown { db: String, txid: u64 },
}

/// Called once with the outcome of a wait.
pub type Done = Box<dyn FnOnce(Result<(), AckError>) + Send>;

struct Waiter {
    db: String,
    txid: u64,
    deadline: Instant,
    done: Done,
}

#[derive(Default)]
struct State {
    epoch: u64,
    /// Per candidate node, per database: the TXID it acknowledged.
    acks: BTreeMap<u64, BTreeMap<String, u64>>,
    /// Per database: the newest TXID a commit point asked about.
    latest: BTreeMap<String, u64>,
    waiters: Vec<Waiter>,
    /// While degraded: what candidates must hold to end it, the newest
    /// TXID per database when it began. Not everything since: under load
    /// the newest moves on faster than any acknowledgement, and once
    /// commits wait again, each one waits for everything before it.
    degraded: Option<BTreeMap<String, u64>>,
    timer_started: bool,
}

impl State {
    fn reset_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.acks.clear();
            self.latest.clear();
            // A new term starts waiting again: what was committed while
            // degraded in the old one is that term's.
            self.degraded = None;
        }
    }

    fn holders(&self, db: &str, txid: u64) -> usize {
        self.acks
            .values()
            .filter(|m| m.get(db).is_some_and(|&t| t >= txid))
            .count()
    }

    /// Candidates that hold everything a commit point asked about.
    fn in_sync(&self) -> Vec<u64> {
        self.holding(&self.latest)
    }

    /// Candidates holding at least `txids` of every database named.
    fn holding(&self, txids: &BTreeMap<String, u64>) -> Vec<u64> {
        self.acks
            .iter()
            .filter(|(_, m)| {
                txids
                    .iter()
                    .all(|(db, &t)| m.get(db).is_some_and(|&a| a >= t))
            })
            .map(|(&n, _)| n)
            .collect()
    }
}

/// What `/info` and `/metrics` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroLossStatus {
    pub options: ZeroLossOptions,
    pub degraded: bool,
    /// Candidates (node IDs) holding everything committed in this term.
    pub in_sync: Vec<u64>,
    pub waiting: usize,
    pub degrades: u64,
    pub recoveries: u64,
    pub failed: u64,
    pub waits: u64,
}

pub struct ZeroLoss {
    candidates: AtomicUsize,
    options: Mutex<ZeroLossOptions>,
    state: Mutex<State>,
    cond: Condvar,
    /// Called with a reason when a commit fails for good (`on-timeout:
    /// fail`): the store stops taking writes.
    on_fail: Box<dyn Fn(String) + Send + Sync>,
    degrades: AtomicU64,
    recoveries: AtomicU64,
    failed: AtomicU64,
    waits: AtomicU64,
}

impl ZeroLoss {
    pub fn new(on_fail: impl Fn(String) + Send + Sync + 'static) -> Arc<ZeroLoss> {
        Arc::new(ZeroLoss {
            candidates: AtomicUsize::new(0),
            options: Mutex::new(ZeroLossOptions::default()),
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            on_fail: Box::new(on_fail),
            degrades: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        })
    }

    pub fn configure(&self, opts: ZeroLossOptions) {
        *self.options.lock().expect("zero-loss options") = opts;
        self.candidates.store(opts.candidates, Ordering::SeqCst);
        if opts.candidates > 0 {
            tracing::info!(
                candidates = opts.candidates,
                timeout = ?opts.timeout,
                on_timeout = %opts.on_timeout,
                "zero-loss mode: a commit returns once other candidates hold it"
            );
        }
    }

    pub fn options(&self) -> ZeroLossOptions {
        *self.options.lock().expect("zero-loss options")
    }

    /// Candidates that must acknowledge each commit; 0 when off.
    pub fn required(&self) -> usize {
        self.candidates.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("zero-loss state lock poisoned")
    }

    /// Calls `done` once `required()` candidates hold `db` up to `txid` in
    /// `epoch` (at once when none are required, or while degraded).
    pub fn after_acks(self: &Arc<Self>, epoch: u64, db: &str, txid: u64, done: Done) {
        let needed = self.required();
        if needed == 0 || txid == 0 {
            return done(Ok(()));
        }
        let mut st = self.lock();
        st.reset_epoch(epoch);
        let latest = st.latest.entry(db.to_string()).or_insert(0);
        *latest = (*latest).max(txid);
        if st.degraded.is_some() || st.holders(db, txid) >= needed {
            drop(st);
            return done(Ok(()));
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        let timeout = self.options().timeout;
        st.waiters.push(Waiter {
            db: db.to_string(),
            txid,
            deadline: Instant::now() + timeout,
            done,
        });
        if !st.timer_started {
            st.timer_started = true;
            let weak = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("zero-loss-timer".into())
                .spawn(move || timer(weak));
            if let Err(e) = spawned {
                // Without a timer a wait could last forever: degrade now.
                tracing::error!("zero-loss: cannot start the timer thread: {e}");
                st.timer_started = false;
                self.expire(st, true);
                return;
            }
        }
        drop(st);
        self.cond.notify_all();
    }

    /// Records that `node` holds `db` up to `txid`, and releases the
    /// commits that now have enough holders.
    pub fn ack(&self, epoch: u64, node: u64, db: &str, txid: u64) {
        let needed = self.required();
        let mut st = self.lock();
        st.reset_epoch(epoch);
        let slot = st
            .acks
            .entry(node)
            .or_default()
            .entry(db.to_string())
            .or_insert(0);
        *slot = (*slot).max(txid);
        let mut ready = Vec::new();
        let mut i = 0;
        while i < st.waiters.len() {
            let w = &st.waiters[i];
            if st.holders(&w.db, w.txid) >= needed {
                ready.push(st.waiters.swap_remove(i));
            } else {
                i += 1;
            }
        }
        let recovered = st
            .degraded
            .as_ref()
            .is_some_and(|t| needed > 0 && st.holding(t).len() >= needed);
        if recovered {
            let in_sync = node_list(&st.holding(st.degraded.as_ref().expect("degraded")));
            st.degraded = None;
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%in_sync, "zero-loss: recovered; commits wait for candidates again");
        }
        drop(st);
        for w in ready {
            (w.done)(Ok(()));
        }
    }

    /// This node is no longer primary: nothing it waits for can come.
    pub fn step_down(&self) {
        let mut st = self.lock();
        let waiters = std::mem::take(&mut st.waiters);
        st.acks.clear();
        st.latest.clear();
        st.degraded = None;
        drop(st);
        for w in waiters {
            (w.done)(Err(AckError::SteppedDown {
                db: w.db,
                txid: w.txid,
            }));
        }
    }

    pub fn status(&self) -> ZeroLossStatus {
        let st = self.lock();
        ZeroLossStatus {
            options: self.options(),
            degraded: st.degraded.is_some(),
            in_sync: st.in_sync(),
            waiting: st.waiters.len(),
            degrades: self.degrades.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
        }
    }

    /// Handles waiters past their deadline (all of them with `all`).
    fn expire(&self, mut st: MutexGuard<'_, State>, all: bool) {
        let now = Instant::now();
        if !all && !st.waiters.iter().any(|w| w.deadline <= now) {
            return;
        }
        let opts = self.options();
        let (expired, kept): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut st.waiters)
            .into_iter()
            .partition(|w| all || w.deadline <= now);
        st.waiters = kept;
        let first = expired.first().map(|w| (w.db.clone(), w.txid));
        let Some((db, txid)) = first else { return };
        match opts.on_timeout {
            OnTimeout::Degrade => {
                // Everything waiting goes, not only the expired: the node
                // no longer waits for anyone until candidates catch up.
                let rest = std::mem::take(&mut st.waiters);
                st.degraded = Some(st.latest.clone());
                let in_sync = node_list(&st.in_sync());
                drop(st);
                self.degrades.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    db = %db,
                    txid,
                    needed = opts.candidates,
                    timeout = ?opts.timeout,
                    %in_sync,
                    "zero-loss: degraded to asynchronous replication: not enough candidates acknowledged in time"
                );
                for w in expired.into_iter().chain(rest) {
                    (w.done)(Ok(()));
                }
            }
            OnTimeout::Fail => {
                drop(st);
                for w in expired {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    let err = AckError::Timeout {
                        db: w.db,
                        txid: w.txid,
                        needed: opts.candidates,
                        timeout: opts.timeout,
                    };
                    tracing::error!(
                        "zero-loss: commit failed: {err}; refusing writes until restart"
                    );
                    (self.on_fail)(format!("zero-loss: {err}"));
                    (w.done)(Err(err));
                }
            }
        }
    }
}

fn node_list(nodes: &[u64]) -> String {
    let set: BTreeSet<String> = nodes.iter().map(|n| format!("{n:016X}")).collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// Expires waiters at their deadline; ends when the tracker is gone.
fn timer(weak: Weak<ZeroLoss>) {
    loop {
        let Some(zl) = weak.upgrade() else { return };
        let st = zl.lock();
        let next = st.waiters.iter().map(|w| w.deadline).min();
        // Woken by a new waiter, else at the next deadline; at most a
        // second, to notice the tracker was dropped.
        let wait = next
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let st = if wait.is_zero() {
            st
        } else {
            zl.cond
                .wait_timeout(st, wait)
                .expect("zero-loss state lock poisoned")
                .0
        };
        zl.expire(st, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn tracker(candidates: usize, timeout_ms: u64, on_timeout: OnTimeout) -> Arc<ZeroLoss> {
        let zl = ZeroLoss::new(|_| {});
        zl.configure(ZeroLossOptions {
            candidates,
            timeout: Duration::from_millis(timeout_ms),
            on_timeout,
        });
        zl
    }

    fn wait(zl: &Arc<ZeroLoss>, epoch: u64, txid: u64) -> mpsc::Receiver<Result<(), AckError>> {
        let (tx, rx) = mpsc::channel();
        zl.after_acks(
            epoch,
            "db",
            txid,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx
    }

    #[test]
    fn off_returns_at_once() {
        let zl = tracker(0, 10, OnTimeout::Degrade);
        assert_eq!(wait(&zl, 1, 5).try_recv().unwrap(), Ok(()));
    }

    #[test]
    fn one_ack_releases_every_commit_up_to_it() {
        let zl = tracker(2, 60_000, OnTimeout::Degrade);
        let a = wait(&zl, 1, 3);
        let b = wait(&zl, 1, 4);
        let c = wait(&zl, 1, 6);
        zl.ack(1, 0xA, "db", 5);
        assert!(a.try_recv().is_err(), "one candidate is not two");
        zl.ack(1, 0xB, "db", 4);
        assert_eq!(a.try_recv().unwrap(), Ok(()));
        assert_eq!(b.try_recv().unwrap(), Ok(()));
        assert!(c.try_recv().is_err());
        // An ack from another term does not count, and resets the old ones.
        zl.ack(2, 0xB, "db", 9);
        assert_eq!(zl.status().waiting, 1);
        assert_eq!(zl.status().in_sync, vec![0xB]);
        zl.step_down();
        assert!(matches!(
            c.try_recv().unwrap(),
            Err(AckError::SteppedDown { txid: 6, .. })
        ));
    }

    #[test]
    fn timeout_degrades_then_an_ack_of_what_was_committed_recovers() {
        let zl = tracker(1, 50, OnTimeout::Degrade);
        let a = wait(&zl, 1, 1);
        let b = wait(&zl, 1, 2);
        for w in [a, b] {
            assert_eq!(
                w.recv_timeout(Duration::from_secs(5)).unwrap(),
                Ok(()),
                "released by the timeout"
            );
        }
        let s = zl.status();
        assert!(s.degraded);
        assert_eq!(s.degrades, 1);
        // Degraded: no waiting.
        assert_eq!(wait(&zl, 1, 3).try_recv().unwrap(), Ok(()));
        zl.ack(1, 7, "db", 1);
        assert!(zl.status().degraded, "the candidate is still behind");
        // Holding what was committed when the node degraded is enough: the
        // next commit waits for everything before it.
        zl.ack(1, 7, "db", 2);
        let s = zl.status();
        assert!(!s.degraded);
        assert_eq!((s.recoveries, s.in_sync), (1, vec![]));
        let d = wait(&zl, 1, 4);
        assert!(d.try_recv().is_err(), "waits again");
        zl.ack(1, 7, "db", 4);
        assert_eq!(d.try_recv().unwrap(), Ok(()));
        assert_eq!(zl.status().in_sync, vec![7]);
    }

    #[test]
    fn timeout_fails_when_asked_to() {
        let failed = Arc::new(Mutex::new(None));
        let f = failed.clone();
        let zl = ZeroLoss::new(move |r| *f.lock().unwrap() = Some(r));
        zl.configure(ZeroLossOptions {
            candidates: 1,
            timeout: Duration::from_millis(30),
            on_timeout: OnTimeout::Fail,
        });
        let a = wait(&zl, 1, 1);
        assert!(matches!(
            a.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err(AckError::Timeout { txid: 1, .. })
        ));
        assert!(failed.lock().unwrap().is_some());
        assert_eq!(zl.status().failed, 1);
        assert!(!zl.status().degraded);
    }

    #[test]
    fn on_timeout_parses_and_rejects_garbage() {
        assert_eq!("fail".parse::<OnTimeout>(), Ok(OnTimeout::Fail));
        assert_eq!("degrade".parse::<OnTimeout>(), Ok(OnTimeout::Degrade));
        assert!("wait"
            .parse::<OnTimeout>()
            .unwrap_err()
            .contains("'degrade' or 'fail'"));
    }
}
