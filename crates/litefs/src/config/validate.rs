//! Whether a parsed config can run a node. Messages are LiteFS's where it
//! has one, so that searches for them still find answers.

use super::parse::DEFAULT_LABEL;
use std::time::Duration;

use super::{BackupType, Config, ConfigError, LeaseType, DEFAULT_DATA_DIR, DEFAULT_FUSE_DIR};

/// LiteFS fields that parse but whose behaviour litefs-rs does not have:
/// set to anything but their default, they stop startup, never silently
/// do nothing.
fn not_built(field: &str, what: &str) -> String {
    format!("{field} is not supported by litefs-rs yet ({what}); remove it from litefs.yml")
}

impl Config {
    fn check_built(&self) -> Result<(), String> {
        let d = Config::default();
        if self.http.snapshot_timeout != d.http.snapshot_timeout {
            return Err(not_built(
                "http.snapshot-timeout",
                "sending a snapshot has no time limit",
            ));
        }
        if !self.lease.databases.is_empty() {
            return Err(not_built(
                "lease.databases",
                "a replica replicates every database",
            ));
        }
        if self.backup.kind.is_some() {
            return Err(not_built(
                "backup",
                "LiteFS Cloud is gone and file backups are not built; copy `litefs export` output instead",
            ));
        }
        if self.tracing.enabled && !self.tracing.path.as_os_str().is_empty() {
            return Err(not_built(
                "tracing",
                "LiteFS's rolling trace file; use log.debug or RUST_LOG=trace",
            ));
        }
        Ok(())
    }

    /// Checks that the settings can work together, as `litefs mount` needs
    /// them. [`Config::load`] already calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_labeled(DEFAULT_LABEL)
    }

    pub(super) fn validate_labeled(&self, label: &str) -> Result<(), ConfigError> {
        self.check().map_err(|message| ConfigError::Invalid {
            file: label.to_string(),
            message,
        })
    }

    fn check(&self) -> Result<(), String> {
        // LiteFS falls back to /litefs and /var/lib/litefs; we ask instead,
        // since an unset `${VAR}` in the path lands here too.
        if self.fuse.dir.as_os_str().is_empty() {
            return Err(format!(
                "fuse directory required (fuse.dir): not set, or empty (an unset ${{VAR}}?); \
                 set it, e.g. `fuse: {{ dir: \"{DEFAULT_FUSE_DIR}\" }}` (LiteFS's default)"
            ));
        }
        if self.data.dir.as_os_str().is_empty() {
            return Err(format!(
                "data directory required (data.dir): not set, or empty (an unset ${{VAR}}?); \
                 set it, e.g. `data: {{ dir: \"{DEFAULT_DATA_DIR}\" }}` (LiteFS's default)"
            ));
        }
        if self.fuse.dir == self.data.dir {
            return Err("fuse directory and data directory cannot be the same path".into());
        }
        if self.data.retention_monitor_interval.is_zero() {
            return Err("data.retention-monitor-interval must be greater than zero".into());
        }

        let lease = &self.lease;
        let Some(kind) = lease.kind else {
            return Err(
                "lease type required (lease.type): must be 'static', 'consul' or 'etcd'".into(),
            );
        };
        if lease.candidate && !lease.databases.is_empty() {
            return Err(
                "cannot specify a database replication filter on candidate nodes \
                 (lease.databases is for non-candidates)"
                    .into(),
            );
        }
        let defaults = Config::default().lease;
        let (consul_set, etcd_set) = (lease.consul != defaults.consul, lease.etcd != defaults.etcd);
        if consul_set && etcd_set {
            return Err(
                "lease.consul and lease.etcd are both set: configure only the one \
                 lease.type names"
                    .into(),
            );
        }
        match (kind, consul_set, etcd_set) {
            (LeaseType::Consul, _, true) => {
                return Err("lease.etcd is set but lease.type is 'consul'".into())
            }
            (LeaseType::Etcd, true, _) => {
                return Err("lease.consul is set but lease.type is 'etcd'".into())
            }
            _ => {}
        }
        match kind {
            LeaseType::Static => {
                if !lease.candidate && lease.advertise_url.is_empty() {
                    return Err("lease.advertise-url required: a non-candidate node of a \
                         static lease replicates from the primary at this URL"
                        .into());
                }
            }
            LeaseType::Consul => {
                let consul = &lease.consul;
                if consul.url.is_empty() {
                    return Err("consul url required (lease.consul.url)".into());
                }
                if !is_http_url(&consul.url) {
                    return Err(format!(
                        "lease.consul.url must be an http:// or https:// URL, got {:?}",
                        consul.url
                    ));
                }
                if consul.key.is_empty() {
                    return Err("must specify a consul key (lease.consul.key)".into());
                }
                // Consul refuses session TTLs outside 10s..24h and lock
                // delays above 60s; say so at startup, naming the field.
                if consul.ttl < Duration::from_secs(10) || consul.ttl > Duration::from_secs(86400) {
                    return Err(format!(
                        "lease.consul.ttl must be between 10s and 24h (Consul's limits), got {}",
                        super::format_duration(consul.ttl)
                    ));
                }
                if consul.lock_delay > Duration::from_secs(60) {
                    return Err(format!(
                        "lease.consul.lock-delay must be at most 60s (Consul's limit), got {}",
                        super::format_duration(consul.lock_delay)
                    ));
                }
            }
            LeaseType::Etcd => {
                let etcd = &lease.etcd;
                if etcd.endpoints.is_empty() {
                    return Err("etcd endpoints required (lease.etcd.endpoints)".into());
                }
                if let Some(bad) = etcd.endpoints.iter().find(|e| !is_http_url(e)) {
                    return Err(format!(
                        "lease.etcd.endpoints must be http:// or https:// URLs, got {bad:?}"
                    ));
                }
                if etcd.key.is_empty() {
                    return Err("must specify an etcd key (lease.etcd.key)".into());
                }
                if etcd.ttl.is_zero() {
                    return Err("lease.etcd.ttl must be greater than zero".into());
                }
            }
        }

        if !self.proxy.target.is_empty() {
            if self.proxy.db.is_empty() {
                return Err("proxy database name required (proxy.db)".into());
            }
            if self.proxy.addr.is_empty() {
                return Err("proxy bind address required (proxy.addr)".into());
            }
            if let Some(bad) = self.proxy.db.iter().find(|d| d.is_empty()) {
                return Err(format!("proxy.db lists an empty database name: {bad:?}"));
            }
            let url = &self.proxy.advertise_url;
            if !url.is_empty() && !url.starts_with("http://") {
                return Err(format!(
                    "proxy.advertise-url must be an http:// URL, got {url:?}"
                ));
            }
        }

        if self.backup.kind == Some(BackupType::File) && self.backup.path.as_os_str().is_empty() {
            return Err("backup path required for the file backup type (backup.path)".into());
        }

        self.zero_loss.check(self.lease.kind)?;

        for (i, entry) in self.exec.iter().enumerate() {
            if let Err(e) = entry.argv() {
                return Err(format!(
                    "cannot parse exec command[{i}] {:?}: {e}",
                    entry.cmd
                ));
            }
        }
        self.check_built()
    }
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty())
}
