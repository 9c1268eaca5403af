//! The store: every database of this node in the data directory (LiteFS
//! 0.5's layout: `dbs/<db>/{database,journal,wal,shm,ltx/}`), the node ID,
//! and whether this node may write.
//!
//! Module map: `db` (files and state of one database), `journal` and `wal`
//! (commit capture per journal mode), `commit` (the LTX step), `ltxlog`
//! (the LTX files), `recovery` (startup), `pos` (positions), `sqlite`
//! (SQLite's on-disk headers).

pub mod db;
pub mod error;
pub mod ltxlog;
pub mod pos;
pub mod sqlite;

mod commit;
mod journal;
mod recovery;
mod wal;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

pub use db::{Db, FileKind};
pub use error::{Result, StoreError};
pub use pos::Pos;

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
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            data_dir: data_dir.into(),
            compress: true,
            no_fsync: false,
            strict_verify: false,
            retention: Duration::from_secs(600),
        }
    }
}

/// State every database of the store sees.
pub(crate) struct Shared {
    pub node_id: u64,
    pub compress: bool,
    pub no_fsync: bool,
    primary: AtomicBool,
    fatal: Mutex<Option<String>>,
    tx_count: AtomicU64,
    primary_hostname: RwLock<Option<String>>,
}

impl Shared {
    pub fn is_primary(&self) -> bool {
        self.primary.load(Ordering::SeqCst)
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
}

pub struct Store {
    opts: StoreOptions,
    shared: Arc<Shared>,
    dbs: RwLock<Vec<Arc<Db>>>,
}

impl Store {
    /// Opens the data directory, creating it if needed, and recovers every
    /// database in it. The node starts as a replica; the lease decides.
    pub fn open(opts: StoreOptions) -> Result<Store> {
        let dbs_dir = opts.data_dir.join("dbs");
        fs::create_dir_all(&dbs_dir).at(&dbs_dir)?;
        let node_id = load_node_id(&opts.data_dir)?;
        let shared = Arc::new(Shared {
            node_id,
            compress: opts.compress,
            no_fsync: opts.no_fsync,
            primary: AtomicBool::new(false),
            fatal: Mutex::new(None),
            tx_count: AtomicU64::new(0),
            primary_hostname: RwLock::new(None),
        });
        let store = Store {
            opts,
            shared,
            dbs: RwLock::new(Vec::new()),
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

    pub fn is_primary(&self) -> bool {
        self.shared.is_primary()
    }

    pub fn set_primary(&self, primary: bool) {
        self.shared.primary.store(primary, Ordering::SeqCst);
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
        *self.shared.primary_hostname.write().expect("primary lock") = hostname;
    }

    /// Why the store stopped taking writes, if it did: a commit that could
    /// not be captured. The CLI exits with code 99 on it.
    pub fn fatal(&self) -> Option<String> {
        self.shared.fatal()
    }

    /// Transactions committed since the store opened.
    pub fn tx_count(&self) -> u64 {
        self.shared.tx_count.load(Ordering::Relaxed)
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

    /// Creates an empty database; only the primary may.
    pub fn create_db(&self, name: &str) -> Result<Arc<Db>> {
        validate_name(name)?;
        if let Some(db) = self.db(name) {
            return Ok(db);
        }
        if !self.is_primary() {
            return Err(StoreError::ReadOnly {
                db: name.to_string(),
                op: "create",
            });
        }
        let dir = self.opts.data_dir.join("dbs").join(name);
        fs::create_dir_all(dir.join("ltx")).at(&dir)?;
        self.open_db(name)
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
        Ok(())
    }
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
            fs::write(&path, format!("{id:016X}\n")).at(&path)?;
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
