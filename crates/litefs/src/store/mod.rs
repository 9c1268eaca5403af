//! The store: every database of this node in the data directory (LiteFS
//! 0.5's layout: `dbs/<db>/{database,journal,wal,shm,ltx/}`), the node ID,
//! and whether this node may write.
//!
//! Module map: `db` (files and state of one database), `journal` and `wal`
//! (commit capture per journal mode), `commit` (the LTX step),
//! `log_writer` (WAL-mode LTX files written off the commit path), `ltxlog`
//! (the LTX files), `dropdb` (deleting a database), `recovery` (startup),
//! `rebuild` (LTX files of WAL transactions a crash kept from the log),
//! `walscan` (a WAL as SQLite's recovery reads it), `pos` (positions),
//! `sqlite` (SQLite's on-disk headers).

pub mod cluster_id;
pub mod db;
pub mod error;
pub mod events;
pub mod ltxlog;
pub mod pos;
pub mod repair;
pub mod sqlite;

mod abort;
mod apply;
mod commit;
mod commit_wait;
mod dir_lock;
mod dir_sync;
mod diverged;
mod dropdb;
mod epoch;
mod journal;
mod log_writer;
mod rebuild;
mod recovery;
mod snapshot;
mod undo;
mod verify;
mod wal;
pub(crate) mod walscan;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

pub use db::{Db, FileKind};
pub use dir_lock::DataDirLock;
pub use diverged::PositionAt;
pub use error::{Result, StoreError};
pub use events::Event;
pub use pos::Pos;
pub use verify::Verified;

use error::IoContext;
use recovery::{PosHint, RecoverOptions};

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    /// LZ4-compress LTX page blocks (`data.compress`).
    pub compress: bool,
    /// Skip fsync (`skip-sync`): for tests and throwaway data only.
    pub no_fsync: bool,
    /// Checksum every database at startup even after a clean shutdown.
    pub strict_verify: bool,
    /// Keep LTX files this long (`data.retention`).
    pub retention: Duration,
    /// This node never becomes primary (a non-candidate). Transactions it
    /// applies are not fsynced: after a power loss it cannot lose anything
    /// the primary does not still have, so a database that no longer
    /// matches its log is resynced from the primary (a snapshot) instead of
    /// stopping startup. A process crash loses nothing either way.
    pub follower: bool,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            data_dir: data_dir.into(),
            compress: true,
            no_fsync: false,
            strict_verify: false,
            retention: Duration::from_secs(600),
            follower: false,
        }
    }
}

/// State every database of the store sees.
pub(crate) struct Shared {
    pub node_id: u64,
    pub compress: bool,
    pub no_fsync: bool,
    /// See [`StoreOptions::follower`].
    pub follower: bool,
    primary: AtomicBool,
    fatal: Mutex<Option<String>>,
    tx_count: AtomicU64,
    /// fsyncs SQLite asked for through the mount (`Db::sync`).
    pub(crate) sqlite_fsyncs: AtomicU64,
    primary_hostname: RwLock<Option<String>>,
    role_listeners: Mutex<Vec<RoleListener>>,
    /// Timestamp (ms) of the newest transaction or heartbeat from the
    /// primary: `.lag` is measured from it.
    primary_timestamp: AtomicI64,
    events: tokio::sync::broadcast::Sender<Event>,
    invalidator: Mutex<Option<Invalidator>>,
    /// Highest fencing epoch known (see `epoch.rs`).
    epoch: AtomicU64,
    /// This node held the term of `epoch`.
    own_term: AtomicBool,
    /// Bytes of LTX files written here (commits) or applied (replication).
    pub(crate) ltx_bytes: AtomicU64,
    /// Replication streams this primary is serving now.
    streams: std::sync::atomic::AtomicI64,
    /// Until when (see [`monotonic_ns`]) the lease is known to be held; 0
    /// when the lease does not expire (static).
    lease_until: AtomicU64,
}

/// Nanoseconds on the monotonic clock since the first call.
fn monotonic_ns() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    (std::time::Instant::now()
        .saturating_duration_since(base)
        .as_nanos() as u64)
        .max(1)
}

type Invalidator = Box<dyn Fn(&Db) + Send + Sync>;

/// Called with the new role whenever [`Store::set_primary`] changes it.
pub type RoleListener = Box<dyn Fn(bool) + Send + Sync>;

impl Shared {
    pub fn is_primary(&self) -> bool {
        self.primary.load(Ordering::SeqCst)
    }

    /// Primary, and the lease is known to be held right now: a write that
    /// reaches the store after the lease's confirmed time ran out (a process
    /// that was paused, say) is refused even before the lease task has
    /// stepped down.
    pub fn may_write(&self) -> bool {
        if !self.is_primary() {
            return false;
        }
        let until = self.lease_until.load(Ordering::SeqCst);
        until == 0 || monotonic_ns() < until
    }

    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().expect("fatal lock").clone()
    }

    pub fn set_fatal(&self, reason: String) {
        self.fatal.lock().expect("fatal lock").get_or_insert(reason);
    }

    pub fn committed(&self, db: &str, pos: Pos, pages: usize) {
        self.tx_count.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(db, %pos, pages, "transaction committed");
    }

    pub fn emit(&self, event: Event) {
        // No subscribers is fine: nobody is listening yet.
        let _ = self.events.send(event);
    }

    pub fn set_primary_timestamp(&self, ms: i64) {
        self.primary_timestamp.store(ms, Ordering::Relaxed);
    }
}

pub struct Store {
    /// Held until [`Store::close`].
    lock: Mutex<Option<DataDirLock>>,
    opts: StoreOptions,
    shared: Arc<Shared>,
    dbs: RwLock<Vec<Arc<Db>>>,
    /// Zero-loss mode's acknowledgements and waiting commits.
    zero_loss: Arc<crate::replication::acks::ZeroLoss>,
}

impl Store {
    /// Opens the data directory, creating it if needed, and recovers every
    /// database in it. The node starts as a replica; the lease decides.
    pub fn open(opts: StoreOptions) -> Result<Store> {
        let dbs_dir = opts.data_dir.join("dbs");
        ltxlog::create_dirs_durably(&dbs_dir)?;
        let lock = DataDirLock::acquire(&opts.data_dir)?;
        for tmp in ["id.tmp", "epoch.tmp"] {
            // Left by a crash inside `write_hint`; the original is intact.
            let path = opts.data_dir.join(tmp);
            if path.exists() {
                fs::remove_file(&path).at(&path)?;
            }
        }
        let node_id = load_node_id(&opts.data_dir)?;
        let shared = Arc::new(Shared {
            node_id,
            compress: opts.compress,
            no_fsync: opts.no_fsync,
            follower: opts.follower,
            primary: AtomicBool::new(false),
            fatal: Mutex::new(None),
            tx_count: AtomicU64::new(0),
            sqlite_fsyncs: AtomicU64::new(0),
            primary_hostname: RwLock::new(None),
            role_listeners: Mutex::new(Vec::new()),
            primary_timestamp: AtomicI64::new(0),
            events: tokio::sync::broadcast::channel(events::CAPACITY).0,
            invalidator: Mutex::new(None),
            epoch: AtomicU64::new(0),
            own_term: AtomicBool::new(false),
            ltx_bytes: AtomicU64::new(0),
            streams: std::sync::atomic::AtomicI64::new(0),
            lease_until: AtomicU64::new(0),
        });
        let e = epoch::load(&opts.data_dir)?;
        shared.epoch.store(e.epoch, Ordering::SeqCst);
        shared.own_term.store(e.own, Ordering::SeqCst);
        let fail = shared.clone();
        let store = Store {
            lock: Mutex::new(Some(lock)),
            opts,
            shared,
            dbs: RwLock::new(Vec::new()),
            zero_loss: crate::replication::acks::ZeroLoss::new(move |r| fail.set_fatal(r)),
        };
        let mut names: Vec<String> = fs::read_dir(&dbs_dir)
            .at(&dbs_dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            store.open_db(&name)?;
        }
        Ok(store)
    }

    fn open_db(&self, name: &str) -> Result<Arc<Db>> {
        let dir = self.opts.data_dir.join("dbs").join(name);
        let log = ltxlog::LtxLog::new(dir.join("ltx"));
        let rec = recovery::recover(
            name,
            &dir,
            &log,
            &RecoverOptions {
                strict_verify: self.opts.strict_verify,
                compress: self.opts.compress,
                node_id: self.shared.node_id,
                sync: !self.opts.no_fsync,
                follower: self.opts.follower,
            },
        )?;
        let mut dbs = self.dbs.write().expect("dbs lock");
        let db = Arc::new(Db::new(
            dbs.len() as u32,
            name.to_string(),
            dir,
            self.shared.clone(),
            rec,
        ));
        tracing::info!(db = name, pos = %db.pos(), "database opened");
        dbs.push(db.clone());
        Ok(db)
    }

    pub fn data_dir(&self) -> &Path {
        &self.opts.data_dir
    }

    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    /// Zero-loss mode (see `replication/acks.rs`).
    pub fn zero_loss(&self) -> &Arc<crate::replication::acks::ZeroLoss> {
        &self.zero_loss
    }

    /// This node may become primary (it is not a follower).
    pub fn is_candidate(&self) -> bool {
        !self.opts.follower
    }

    pub fn is_primary(&self) -> bool {
        self.shared.is_primary()
    }

    /// Promotes or demotes the node. Listeners run after the change, on
    /// the caller's thread, before this returns: the mount uses that to
    /// drop the kernel's cached view of the database headers (a replica
    /// shows them in rollback mode), so the very next read sees the role.
    pub fn set_primary(&self, primary: bool) {
        if !primary {
            // Whatever this node committed reaches its log before it can
            // start following another primary.
            for db in self.dbs() {
                if let Err(e) = db.flush_log() {
                    tracing::error!(db = db.name(), "{e}");
                }
            }
        }
        let was = self.shared.primary.swap(primary, Ordering::SeqCst);
        if was && !primary {
            self.zero_loss.step_down();
            self.abort_uncommitted();
        }
        if was != primary {
            for listener in self.shared.role_listeners.lock().expect("listeners").iter() {
                listener(primary);
            }
            self.shared.emit(Event::PrimaryChange {
                is_primary: primary,
                hostname: self.primary_hostname(),
            });
        }
    }

    /// Steps down in favour of the replica `node_id` without a gap: closes
    /// the write gate (after the log is flushed), then tells that replica's
    /// stream to send it `lease_id` after every transaction so far, then
    /// ends the streams.
    pub fn hand_off(&self, node_id: u64, lease_id: String) {
        for db in self.dbs() {
            if let Err(e) = db.flush_log() {
                tracing::error!(db = db.name(), "{e}");
            }
        }
        if !self.shared.primary.swap(false, Ordering::SeqCst) {
            return;
        }
        self.zero_loss.step_down();
        self.abort_uncommitted();
        for listener in self.shared.role_listeners.lock().expect("listeners").iter() {
            listener(false);
        }
        self.shared.emit(Event::Handoff { node_id, lease_id });
        self.shared.emit(Event::PrimaryChange {
            is_primary: false,
            hostname: self.primary_hostname(),
        });
    }

    /// After a demotion (writes now refused): rolls back any transaction
    /// the demotion cut off (see `abort.rs`).
    fn abort_uncommitted(&self) {
        for db in self.dbs() {
            if let Err(e) = db.abort_uncommitted() {
                tracing::error!(
                    db = db.name(),
                    "rolling back a transaction cut off by the demotion: {e}"
                );
            }
        }
    }

    /// A HANDOFF frame arrived from the primary: offers its lease to this
    /// node's lease task.
    pub fn offer_handoff(&self, lease_id: String) {
        self.shared.emit(Event::Handoff {
            node_id: self.node_id(),
            lease_id,
        });
    }

    /// The lease is known to be held until `until` (its last confirmed
    /// renewal plus the TTL, less a margin): writes are refused after it.
    pub fn set_lease_valid_until(&self, until: std::time::Instant) {
        let ns = monotonic_ns() as i128
            + (until
                .saturating_duration_since(std::time::Instant::now())
                .as_nanos() as i128);
        self.shared
            .lease_until
            .store(ns.clamp(1, u64::MAX as i128) as u64, Ordering::SeqCst);
    }

    /// Transactions and primary changes from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Milliseconds this replica is behind the primary: since the newest
    /// transaction or heartbeat it received. 0 on the primary.
    pub fn lag_ms(&self) -> i64 {
        let ts = self.shared.primary_timestamp.load(Ordering::Relaxed);
        if self.is_primary() || ts == 0 {
            return 0;
        }
        (ltxlog::now_ms() - ts).max(0)
    }

    pub fn set_primary_timestamp(&self, ms: i64) {
        self.shared.set_primary_timestamp(ms);
    }

    /// Registers how to drop cached pages of a database (the mount's
    /// kernel page cache) after the store changed it behind SQLite's back.
    pub fn set_cache_invalidator(&self, f: impl Fn(&Db) + Send + Sync + 'static) {
        *self.shared.invalidator.lock().expect("invalidator") = Some(Box::new(f));
    }

    pub fn invalidate_cache(&self, db: &Db) {
        if let Some(f) = self
            .shared
            .invalidator
            .lock()
            .expect("invalidator")
            .as_ref()
        {
            f(db);
        }
    }

    /// Registers `f` to run on every role change (see [`Store::set_primary`]).
    pub fn on_role_change(&self, f: impl Fn(bool) + Send + Sync + 'static) {
        self.shared
            .role_listeners
            .lock()
            .expect("listeners")
            .push(Box::new(f));
    }

    /// The primary this replica follows, shown as `.primary` in the mount.
    pub fn primary_hostname(&self) -> Option<String> {
        self.shared
            .primary_hostname
            .read()
            .expect("primary lock")
            .clone()
    }

    pub fn set_primary_hostname(&self, hostname: Option<String>) {
        let mut cur = self.shared.primary_hostname.write().expect("primary lock");
        if *cur != hostname {
            *cur = hostname.clone();
            drop(cur);
            self.shared.emit(Event::PrimaryChange {
                is_primary: self.is_primary(),
                hostname,
            });
        }
    }

    /// Why the store stopped taking writes, if it did: a commit that could
    /// not be captured. The CLI exits with code 99 on it.
    pub fn fatal(&self) -> Option<String> {
        self.shared.fatal()
    }

    /// Bytes of LTX files committed or applied since the store opened.
    pub fn ltx_bytes(&self) -> u64 {
        self.shared.ltx_bytes.load(Ordering::Relaxed)
    }

    /// Counts a replication stream for `/metrics` while the guard lives.
    pub fn stream_guard(&self) -> StreamGuard {
        self.shared.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.shared.clone())
    }

    pub fn streams(&self) -> i64 {
        self.shared.streams.load(Ordering::Relaxed)
    }

    /// Transactions committed since the store opened.
    pub fn tx_count(&self) -> u64 {
        self.shared.tx_count.load(Ordering::Relaxed)
    }

    /// fsyncs the store made to capture commits (LTX files and their
    /// directory), over every database, since the store opened.
    pub fn ltx_fsyncs(&self) -> u64 {
        self.dbs().iter().map(|d| d.ltx_log().fsyncs()).sum()
    }

    /// fsyncs SQLite asked for through the mount (and the store passed on
    /// to the data files), since the store opened.
    pub fn sqlite_fsyncs(&self) -> u64 {
        self.shared.sqlite_fsyncs.load(Ordering::Relaxed)
    }

    pub fn db(&self, name: &str) -> Option<Arc<Db>> {
        self.dbs
            .read()
            .expect("dbs lock")
            .iter()
            .find(|d| d.name() == name)
            .cloned()
    }

    pub fn db_by_id(&self, id: u32) -> Option<Arc<Db>> {
        self.dbs.read().expect("dbs lock").get(id as usize).cloned()
    }

    pub fn dbs(&self) -> Vec<Arc<Db>> {
        self.dbs.read().expect("dbs lock").clone()
    }

    /// Creates an empty database; only the primary may. A deleted one
    /// gets its file back, empty (it goes on at its next TXID).
    pub fn create_db(&self, name: &str) -> Result<Arc<Db>> {
        validate_name(name)?;
        if let Some(db) = self.db(name) {
            if db.is_dropped() {
                db.create(FileKind::Database)?;
            }
            return Ok(db);
        }
        if !self.is_primary() {
            return Err(StoreError::ReadOnly {
                db: name.to_string(),
                op: "create",
            });
        }
        let dir = self.opts.data_dir.join("dbs").join(name);
        ltxlog::create_dirs_durably(&dir.join("ltx"))?;
        self.open_db(name)
    }

    /// Creates an empty database for a transaction arriving from the
    /// primary: replicas may not create databases any other way.
    pub fn create_db_for_replication(&self, name: &str) -> Result<Arc<Db>> {
        validate_name(name)?;
        if let Some(db) = self.db(name) {
            return Ok(db);
        }
        let dir = self.opts.data_dir.join("dbs").join(name);
        ltxlog::create_dirs_durably(&dir.join("ltx"))?;
        self.open_db(name)
    }

    /// The highest fencing epoch this node knows: its own term's while
    /// primary, else the newest primary's it has followed.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::SeqCst)
    }

    /// Starts a new primary term: an epoch above every one seen, durable
    /// before any write of the term. Call before `set_primary(true)`.
    pub fn begin_term(&self) -> Result<u64> {
        self.begin_term_at(0)
    }

    /// Starts a new primary term whose epoch comes from the lease server
    /// (monotonic across the cluster): `from_lease`, or one above every
    /// epoch this node has seen if that is higher (a lease server that was
    /// reset must not take the epochs back).
    pub fn begin_term_at(&self, from_lease: u64) -> Result<u64> {
        let next = from_lease.max(self.epoch() + 1);
        if from_lease != 0 && next != from_lease {
            tracing::warn!(
                from_lease,
                known = self.epoch(),
                "the lease server's epoch is not above one this node has seen; using {next}"
            );
        }
        let e = epoch::Epoch {
            epoch: next,
            own: true,
        };
        epoch::store(&self.opts.data_dir, e, !self.opts.no_fsync)?;
        self.shared.epoch.store(next, Ordering::SeqCst);
        self.shared.own_term.store(true, Ordering::SeqCst);
        Ok(next)
    }

    /// For a lease that stays with this node across restarts (static): go
    /// on with this node's own term when the newest epoch it knows is its
    /// own, else begin a new one.
    pub fn resume_or_begin_term(&self) -> Result<u64> {
        if self.shared.own_term.load(Ordering::SeqCst) && self.epoch() > 0 {
            return Ok(self.epoch());
        }
        self.begin_term()
    }

    /// Records the epoch of a primary this replica follows. Refuses one
    /// older than what this node has already seen.
    pub fn observe_epoch(&self, epoch: u64) -> Result<(), StaleEpoch> {
        let known = self.epoch();
        if epoch < known {
            return Err(StaleEpoch { epoch, known });
        }
        if epoch > known || (epoch == known && self.shared.own_term.load(Ordering::SeqCst)) {
            let e = epoch::Epoch { epoch, own: false };
            if let Err(e) = epoch::store(&self.opts.data_dir, e, !self.opts.no_fsync) {
                tracing::warn!("recording epoch {epoch}: {e}");
            }
            self.shared.epoch.store(epoch, Ordering::SeqCst);
            self.shared.own_term.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Verifies every database's checksum against its position (see
    /// `verify.rs`). A replica's mismatching database is reset so the
    /// primary sends a snapshot; returns the names of those that failed.
    pub fn verify_all(&self) -> Vec<String> {
        let mut failed = Vec::new();
        for db in self.dbs() {
            match db.verify_checksum() {
                Ok(Verified::Ok(pos)) => {
                    tracing::info!(db = db.name(), %pos, "database checksum verified")
                }
                Ok(Verified::Busy) => tracing::info!(
                    db = db.name(),
                    "checksum not verified: transactions kept landing"
                ),
                Ok(Verified::Mismatch { pos, actual, pages }) => {
                    tracing::error!(
                        db = db.name(),
                        %pos,
                        actual = %format!("{actual:016x}"),
                        "database checksum mismatch in pages 1..={pages}: the file does not match TXID {}",
                        pos.txid
                    );
                    if !self.is_primary() {
                        tracing::warn!(
                            db = db.name(),
                            "dropping the position; the primary will send a snapshot"
                        );
                        db.reset_position();
                        self.shared.emit(Event::Resync {
                            db: db.name().to_string(),
                        });
                    }
                    failed.push(db.name().to_string());
                }
                Err(e) => tracing::error!(db = db.name(), "checksum verification failed: {e}"),
            }
        }
        failed
    }

    /// Deletes LTX files past the retention period; returns how many.
    pub fn enforce_retention(&self) -> Result<usize> {
        let now = SystemTime::now();
        let mut n = 0;
        for db in self.dbs() {
            n += db.ltx_log().enforce_retention(self.opts.retention, now)?;
        }
        Ok(n)
    }

    /// Records each position as clean so the next start can skip the full
    /// checksum. Call once nothing writes any more.
    pub fn close(&self) -> Result<()> {
        for db in self.dbs() {
            db.flush_log()?;
            db.close_files();
            let dirty_files = [FileKind::Journal, FileKind::Wal]
                .into_iter()
                .any(|k| db.len(k).ok().flatten().unwrap_or(0) > 0);
            PosHint::write(
                &db.dir().join("pos"),
                db.pos(),
                !dirty_files,
                !self.opts.no_fsync,
            )?;
        }
        // Positions are recorded: another process may have the directory.
        self.lock.lock().expect("data dir lock").take();
        Ok(())
    }
}

/// See [`Store::stream_guard`].
pub struct StreamGuard(Arc<Shared>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("primary's epoch {epoch} is older than epoch {known} this node already followed: refusing a stale primary")]
pub struct StaleEpoch {
    pub epoch: u64,
    pub known: u64,
}

/// Database names become directory names and mount file names; the side
/// file suffixes are reserved.
pub fn validate_name(name: &str) -> Result<()> {
    let reserved = ["-journal", "-wal", "-shm", "-pos", "-lock"];
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.contains(['/', '\0'])
        && !reserved.iter().any(|s| name.ends_with(s));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// The node ID lives in `<data>/id` as hex, created once.
fn load_node_id(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join("id");
    match fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16).map_err(|_| StoreError::Corrupt {
            db: "-".into(),
            reason: format!("{}: node ID is not hex: {:?}", path.display(), text.trim()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = random_u64() | 1;
            // A torn ID file would keep the node from starting: write it
            // whole or not at all.
            ltxlog::write_hint(&path, format!("{id:016X}\n").as_bytes(), true)?;
            Ok(id)
        }
        Err(e) => Err(e).at(path),
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ std::process::id() as u64
}
