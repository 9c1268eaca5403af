//! Text to [`Config`]: expansion, strict YAML, then defaults for whatever
//! the file leaves out.

use std::path::PathBuf;

use super::expand::{expand_env_reporting, EnvLookup, Undefined};
use super::raw::{GoDuration, OptionalEnum, RawConfig, RawExec, YBool, YStr};
use super::{Config, ConfigError, ExecEntry};

/// The name errors use when the text did not come from a file.
pub(super) const DEFAULT_LABEL: &str = "litefs.yml";

impl Config {
    /// Parses litefs.yml text, expanding `${VAR}` with `env`. Does not
    /// validate: see [`Config::validate`].
    pub fn from_str_with_env(text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        parse_labeled(text, Some(env), DEFAULT_LABEL)
    }

    /// Parses litefs.yml text as written, with no `${VAR}` expansion (the
    /// `-no-expand-env` flag). Does not validate.
    pub fn from_str_raw(text: &str) -> Result<Config, ConfigError> {
        parse_labeled(text, None, DEFAULT_LABEL)
    }
}

pub(super) fn parse_labeled(
    text: &str,
    env: Option<EnvLookup<'_>>,
    label: &str,
) -> Result<Config, ConfigError> {
    parse_reporting(text, env, label).map(|(config, _)| config)
}

/// [`parse_labeled`], also returning the unset variables the text used.
pub(super) fn parse_reporting(
    text: &str,
    env: Option<EnvLookup<'_>>,
    label: &str,
) -> Result<(Config, Vec<Undefined>), ConfigError> {
    let expanded;
    let mut undefined = Vec::new();
    let text = match env {
        Some(env) => {
            let (t, u) = expand_env_reporting(text, env).map_err(|source| ConfigError::Expand {
                file: label.to_string(),
                source,
            })?;
            (expanded, undefined) = (t, u);
            expanded.as_str()
        }
        None => text,
    };

    // A file of nothing but comments is a document with no value; LiteFS
    // takes it as all defaults.
    let raw: Option<RawConfig> = serde_yaml::from_str(text).map_err(|e| {
        let location = e.location();
        ConfigError::Parse {
            file: label.to_string(),
            message: e.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
        }
    })?;
    Ok((resolve(raw.unwrap_or_default()), undefined))
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn set_bool(slot: &mut bool, value: Option<YBool>) {
    set(slot, value.map(|v| v.0));
}

fn set_str(slot: &mut String, value: Option<YStr>) {
    set(slot, value.map(|v| v.0));
}

fn set_path(slot: &mut PathBuf, value: Option<YStr>) {
    set(slot, value.map(|v| PathBuf::from(v.0)));
}

fn set_dur(slot: &mut std::time::Duration, value: Option<GoDuration>) {
    set(slot, value.map(|v| v.0));
}

fn set_list(slot: &mut Vec<String>, value: Option<Vec<YStr>>) {
    set(slot, value.map(|v| v.into_iter().map(|s| s.0).collect()));
}

fn set_enum<T>(slot: &mut Option<T>, value: Option<OptionalEnum<T>>) {
    set(slot, value.map(|v| v.0));
}

fn resolve(raw: RawConfig) -> Config {
    let mut c = Config::default();
    set_bool(&mut c.exit_on_error, raw.exit_on_error);
    set_bool(&mut c.skip_sync, raw.skip_sync);
    set_bool(&mut c.strict_verify, raw.strict_verify);
    if let Some(RawExec(entries)) = raw.exec {
        c.exec = entries
            .into_iter()
            .map(|e| ExecEntry {
                cmd: e.cmd.map(|s| s.0).unwrap_or_default(),
                if_candidate: e.if_candidate.is_some_and(|b| b.0),
            })
            .collect();
    }

    if let Some(d) = raw.data {
        set_path(&mut c.data.dir, d.dir);
        set_bool(&mut c.data.compress, d.compress);
        set_dur(&mut c.data.retention, d.retention);
        set_dur(
            &mut c.data.retention_monitor_interval,
            d.retention_monitor_interval,
        );
    }
    if let Some(f) = raw.fuse {
        set_path(&mut c.fuse.dir, f.dir);
        set_bool(&mut c.fuse.allow_other, f.allow_other);
        set_bool(&mut c.fuse.debug, f.debug);
    }
    if let Some(h) = raw.http {
        set_str(&mut c.http.addr, h.addr);
        set_dur(&mut c.http.snapshot_timeout, h.snapshot_timeout);
    }
    if let Some(p) = raw.proxy {
        let o = &mut c.proxy;
        set_str(&mut o.addr, p.addr);
        set_str(&mut o.target, p.target);
        set(&mut o.db, p.db.map(|v| v.0));
        set_str(&mut o.advertise_url, p.advertise_url);
        set_dur(&mut o.max_lag, p.max_lag);
        set_bool(&mut o.debug, p.debug);
        set_list(&mut o.passthrough, p.passthrough);
        set_list(&mut o.always_forward, p.always_forward);
        set_dur(&mut o.primary_redirect_timeout, p.primary_redirect_timeout);
        set_dur(&mut o.read_timeout, p.read_timeout);
        set_dur(&mut o.read_header_timeout, p.read_header_timeout);
        set_dur(&mut o.write_timeout, p.write_timeout);
        set_dur(&mut o.idle_timeout, p.idle_timeout);
    }
    if let Some(l) = raw.lease {
        let o = &mut c.lease;
        set_enum(&mut o.kind, l.kind);
        set_str(&mut o.hostname, l.hostname);
        set_str(&mut o.advertise_url, l.advertise_url);
        set_bool(&mut o.candidate, l.candidate);
        set_bool(&mut o.promote, l.promote);
        set_dur(&mut o.reconnect_delay, l.reconnect_delay);
        set_dur(&mut o.demote_delay, l.demote_delay);
        set_list(&mut o.databases, l.databases);
        if let Some(k) = l.consul {
            set_str(&mut o.consul.url, k.url);
            set_str(&mut o.consul.key, k.key);
            set_dur(&mut o.consul.ttl, k.ttl);
            set_dur(&mut o.consul.lock_delay, k.lock_delay);
        }
        if let Some(e) = l.etcd {
            set_list(&mut o.etcd.endpoints, e.endpoints);
            set_str(&mut o.etcd.key, e.key);
            set_dur(&mut o.etcd.ttl, e.ttl);
        }
    }
    if let Some(b) = raw.backup {
        set_enum(&mut c.backup.kind, b.kind);
        set_path(&mut c.backup.path, b.path);
        set_str(&mut c.backup.url, b.url);
        set_str(&mut c.backup.cluster, b.cluster);
        set_str(&mut c.backup.auth_token, b.auth_token);
    }
    if let Some(l) = raw.log {
        if let Some(OptionalEnum(Some(format))) = l.format {
            c.log.format = format;
        }
        set_bool(&mut c.log.timestamp, l.timestamp);
        set_bool(&mut c.log.debug, l.debug);
    }
    if let Some(t) = raw.tracing {
        set_bool(&mut c.tracing.enabled, t.enabled);
        set_path(&mut c.tracing.path, t.path);
        set(&mut c.tracing.max_size, t.max_size);
        set(&mut c.tracing.max_count, t.max_count);
        set_bool(&mut c.tracing.compress, t.compress);
    }
    if let Some(z) = raw.zero_loss {
        c.zero_loss.resolve(z);
    }
    c
}
