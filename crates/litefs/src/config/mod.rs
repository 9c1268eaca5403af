//! litefs.yml: the settings of one node, read the way LiteFS 0.5 reads them.
//!
//! Owns finding the file (`-config PATH`, `./litefs.yml`, `~/litefs.yml`,
//! `/etc/litefs.yml`), `${VAR}` expansion, strict parsing (an unknown field
//! is an error naming it and its line), LiteFS's defaults, and validation.
//! Every field LiteFS 0.5 accepts is accepted here with the same meaning,
//! plus `lease.etcd`.

mod duration;
mod expand;
mod load;
mod parse;
mod raw;
mod shellwords;
mod validate;
mod zero_loss;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use duration::{format_duration, parse_duration, ParseDurationError};
pub use expand::{expand_env, expand_env_reporting, EnvLookup, ExpandError, Undefined};
pub use load::{search_paths, Expansion, Loaded};
pub use shellwords::SplitError;
pub use zero_loss::ZeroLossConfig;

/// LiteFS's default data directory. Not ours: a node without `data.dir`
/// does not start (the error suggests this path), since silently keeping
/// databases somewhere the user never chose is how they get lost.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/litefs";
/// LiteFS's default mount directory; not ours either, as for data.dir.
pub const DEFAULT_FUSE_DIR: &str = "/litefs";
/// The node API's default bind address.
pub const DEFAULT_HTTP_ADDR: &str = ":20202";
/// The default lease key, for Consul and etcd alike.
pub const DEFAULT_LEASE_KEY: &str = "litefs/primary";

/// Everything that can go wrong finding, reading, parsing or checking
/// litefs.yml. `file` is the path the text came from (or `litefs.yml` when
/// parsed from a string).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file not found: {} (given with -config)", path.display())]
    NotFound { path: PathBuf },
    #[error("config file not found; searched {}", display_paths(searched))]
    NoneFound { searched: Vec<PathBuf> },
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Expand {
        file: String,
        #[source]
        source: ExpandError,
    },
    /// The YAML is malformed, has an unknown field or a value of the wrong
    /// type. `message` names the field's path and, when known, its line.
    #[error("{file}: {message}")]
    Parse {
        file: String,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// `-strict-env`: the file uses variables the environment does not set.
    #[error(
        "{file}: {}; -strict-env refuses unset variables (set them, even to an empty string)",
        display_undefined(undefined)
    )]
    Undefined {
        file: String,
        undefined: Vec<Undefined>,
    },
    /// The file parsed but the settings cannot work together.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

fn display_undefined(undefined: &[Undefined]) -> String {
    let shown: Vec<String> = undefined.iter().map(Undefined::to_string).collect();
    shown.join(", ")
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

/// A node's whole configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Exit when startup fails; `false` keeps the process up for debugging.
    pub exit_on_error: bool,
    /// Start the app without waiting to become primary or reach the primary.
    pub skip_sync: bool,
    /// Verify every database checksum at startup.
    pub strict_verify: bool,
    /// Commands to run once the node is ready; the last one is the app.
    pub exec: Vec<ExecEntry>,
    pub data: DataConfig,
    pub fuse: FuseConfig,
    pub http: HttpConfig,
    pub proxy: ProxyConfig,
    pub lease: LeaseConfig,
    pub backup: BackupConfig,
    pub log: LogConfig,
    pub tracing: TracingConfig,
    /// Commits wait for other candidates (litefs-rs only).
    pub zero_loss: ZeroLossConfig,
}

/// One `exec` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEntry {
    /// The command line, split with shell quoting rules by [`ExecEntry::argv`].
    pub cmd: String,
    /// Run only on a node that may become primary (e.g. migrations).
    pub if_candidate: bool,
}

impl ExecEntry {
    pub fn new(cmd: impl Into<String>) -> Self {
        ExecEntry {
            cmd: cmd.into(),
            if_candidate: false,
        }
    }

    /// The entry for `litefs mount -- CMD ARGS...`. The arguments are quoted
    /// so that [`argv`](Self::argv) gives them back unchanged; LiteFS joins
    /// them with spaces, which splits an argument such as `"a b"` in two.
    pub fn from_argv(args: &[String]) -> Self {
        ExecEntry::new(shellwords::join(args))
    }

    /// The program and its arguments, split as a POSIX shell would split
    /// them (quotes, backslashes), without running a shell.
    pub fn argv(&self) -> Result<Vec<String>, SplitError> {
        shellwords::split(&self.cmd)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    /// Where databases and LTX files live; not for the app to touch.
    pub dir: PathBuf,
    /// LZ4-compress LTX files.
    pub compress: bool,
    /// How long LTX files are kept (the newest is always kept).
    pub retention: Duration,
    pub retention_monitor_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FuseConfig {
    /// The mount point the app opens its databases under.
    pub dir: PathBuf,
    /// Let other users use the mount (needs `user_allow_other` in /etc/fuse.conf).
    pub allow_other: bool,
    pub debug: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// The node API's bind address, e.g. `:20202`.
    pub addr: String,
    /// How long a snapshot may take to send; zero means no limit.
    pub snapshot_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// The proxy's bind address; the proxy runs only when `target` is set.
    pub addr: String,
    /// The app's `host:port`.
    pub target: String,
    /// The databases whose TXIDs the `__txid` cookie tracks (`db: x.db`
    /// or a list); LiteFS takes exactly one.
    pub db: Vec<String>,
    /// Where other nodes reach this node's proxy when it is primary (ours;
    /// LiteFS has none). Empty: this node's address from `lease.advertise-url`
    /// (or `lease.hostname`) with the port of `addr`.
    pub advertise_url: String,
    /// Replicas lagging more than this fail `/litefs/health`.
    pub max_lag: Duration,
    pub debug: bool,
    /// Paths (globs, `*` the only wildcard) sent to the app untouched.
    pub passthrough: Vec<String>,
    /// Paths (globs) always forwarded to the primary, whatever the method.
    pub always_forward: Vec<String>,
    /// How long a write on a replica waits for a primary to redirect to.
    pub primary_redirect_timeout: Duration,
    pub read_timeout: Duration,
    pub read_header_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How the primary is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseType {
    /// The one candidate is primary for ever; the others replicate from it.
    Static,
    Consul,
    Etcd,
}

impl LeaseType {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseType::Static => "static",
            LeaseType::Consul => "consul",
            LeaseType::Etcd => "etcd",
        }
    }
}

impl raw::Keyword for LeaseType {
    const FIELD: &'static str = "lease type";
    const ALL: &'static [(&'static str, Self)] = &[
        ("static", LeaseType::Static),
        ("consul", LeaseType::Consul),
        ("etcd", LeaseType::Etcd),
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseConfig {
    /// Required; `None` only until [`Config::validate`] refuses it.
    pub kind: Option<LeaseType>,
    /// This node's name for others; empty means the OS hostname.
    pub hostname: String,
    /// This node's API URL for other nodes; on a static replica, the
    /// primary's. Empty on a Consul/etcd node means `http://<hostname>:<port>`.
    pub advertise_url: String,
    /// May this node become primary.
    pub candidate: bool,
    /// Take over as primary once synced, if a candidate.
    pub promote: bool,
    pub reconnect_delay: Duration,
    /// How long after a forced demotion before trying to become primary again.
    pub demote_delay: Duration,
    /// Replicate only these databases (replicas only); empty means all.
    pub databases: Vec<String>,
    pub consul: ConsulConfig,
    pub etcd: EtcdConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsulConfig {
    /// `http(s)://[token@]host:port[/key-prefix]`.
    pub url: String,
    pub key: String,
    pub ttl: Duration,
    pub lock_delay: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub key: String,
    pub ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupType {
    /// LTX files copied to a local directory (`backup.path`).
    File,
    /// LiteFS Cloud (`backup.url`, `cluster`, `auth-token`).
    LitefsCloud,
}

impl raw::Keyword for BackupType {
    const FIELD: &'static str = "backup type";
    const ALL: &'static [(&'static str, Self)] = &[
        ("file", BackupType::File),
        ("litefs-cloud", BackupType::LitefsCloud),
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    /// `None`: no backup.
    pub kind: Option<BackupType>,
    pub path: PathBuf,
    pub url: String,
    pub cluster: String,
    pub auth_token: String,
    /// Not settable from the file, as in LiteFS.
    pub delay: Duration,
    /// Not settable from the file, as in LiteFS.
    pub full_sync_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl raw::Keyword for LogFormat {
    const FIELD: &'static str = "log format";
    const ALL: &'static [(&'static str, Self)] =
        &[("text", LogFormat::Text), ("json", LogFormat::Json)];
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Include timestamps (off by default: the platform adds its own).
    pub timestamp: bool,
    pub debug: bool,
}

/// LiteFS's rolling on-disk trace log of every file operation.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Tracing happens only when this is set and `path` is not empty.
    pub enabled: bool,
    pub path: PathBuf,
    /// Megabytes per file before rolling.
    pub max_size: u64,
    /// Rolled files kept.
    pub max_count: u64,
    pub compress: bool,
}

impl Default for Config {
    /// LiteFS 0.5's defaults (`NewConfig` in cmd/litefs/config.go), except
    /// `fuse.dir` and `data.dir`, which are empty: litefs.yml must set them.
    fn default() -> Self {
        let s = Duration::from_secs;
        Config {
            exit_on_error: true,
            skip_sync: false,
            strict_verify: false,
            exec: Vec::new(),
            data: DataConfig {
                dir: PathBuf::new(),
                compress: true,
                retention: s(600),
                retention_monitor_interval: s(60),
            },
            fuse: FuseConfig {
                dir: PathBuf::new(),
                allow_other: false,
                debug: false,
            },
            http: HttpConfig {
                addr: DEFAULT_HTTP_ADDR.into(),
                snapshot_timeout: Duration::ZERO,
            },
            proxy: ProxyConfig {
                addr: String::new(),
                target: String::new(),
                db: Vec::new(),
                advertise_url: String::new(),
                max_lag: s(10),
                debug: false,
                passthrough: Vec::new(),
                always_forward: Vec::new(),
                primary_redirect_timeout: s(5),
                read_timeout: Duration::ZERO,
                read_header_timeout: s(10),
                write_timeout: Duration::ZERO,
                idle_timeout: s(30),
            },
            lease: LeaseConfig {
                kind: None,
                hostname: String::new(),
                advertise_url: String::new(),
                candidate: true,
                promote: false,
                reconnect_delay: s(1),
                demote_delay: s(10),
                databases: Vec::new(),
                consul: ConsulConfig {
                    url: String::new(),
                    key: DEFAULT_LEASE_KEY.into(),
                    ttl: s(10),
                    lock_delay: s(1),
                },
                etcd: EtcdConfig {
                    endpoints: Vec::new(),
                    key: DEFAULT_LEASE_KEY.into(),
                    ttl: s(10),
                },
            },
            backup: BackupConfig {
                kind: None,
                path: PathBuf::new(),
                url: String::new(),
                cluster: String::new(),
                auth_token: String::new(),
                delay: s(1),
                full_sync_interval: s(10),
            },
            log: LogConfig {
                format: LogFormat::Text,
                timestamp: false,
                debug: false,
            },
            tracing: TracingConfig {
                enabled: true,
                path: PathBuf::new(),
                max_size: 64,
                max_count: 8,
                compress: true,
            },
            zero_loss: ZeroLossConfig::default(),
        }
    }
}
