//! The litefs.yml document exactly as written: every field optional, every
//! unknown field an error (serde_yaml reports it with its path and line).
//!
//! A field that is absent and a field that is present but null both mean
//! "use the default". LiteFS behaves that way (Go's yaml.v3 leaves the
//! default in place for a null), and it matters: `dir: ${LITEFS_DIR}` with
//! the variable unset expands to `dir:`, which LiteFS reads as the default.
//! Scalars are read as leniently as yaml.v3 reads them into Go types: any
//! scalar into a string, YAML 1.1 words (`yes`, `off`) into a bool.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::duration::parse_duration;
use super::{BackupType, LeaseType, LogFormat};

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of litefs.yml settings"
)]
pub(super) struct RawConfig {
    pub exit_on_error: Option<YBool>,
    pub skip_sync: Option<YBool>,
    pub strict_verify: Option<YBool>,
    pub exec: Option<RawExec>,
    pub data: Option<RawData>,
    pub fuse: Option<RawFuse>,
    pub http: Option<RawHttp>,
    pub proxy: Option<RawProxy>,
    pub lease: Option<RawLease>,
    pub backup: Option<RawBackup>,
    pub log: Option<RawLog>,
    pub tracing: Option<RawTracing>,
    pub zero_loss: Option<super::zero_loss::RawZeroLoss>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of data settings (dir, compress, retention, ...)"
)]
pub(super) struct RawData {
    pub dir: Option<YStr>,
    pub compress: Option<YBool>,
    pub retention: Option<GoDuration>,
    pub retention_monitor_interval: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of fuse settings (dir, allow-other, debug)"
)]
pub(super) struct RawFuse {
    pub dir: Option<YStr>,
    pub allow_other: Option<YBool>,
    pub debug: Option<YBool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of http settings (addr, snapshot-timeout)"
)]
pub(super) struct RawHttp {
    pub addr: Option<YStr>,
    pub snapshot_timeout: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of proxy settings (addr, target, db, ...)"
)]
pub(super) struct RawProxy {
    pub addr: Option<YStr>,
    pub target: Option<YStr>,
    pub db: Option<YStrOrList>,
    pub advertise_url: Option<YStr>,
    pub max_lag: Option<GoDuration>,
    pub debug: Option<YBool>,
    pub passthrough: Option<Vec<YStr>>,
    pub always_forward: Option<Vec<YStr>>,
    pub primary_redirect_timeout: Option<GoDuration>,
    pub read_timeout: Option<GoDuration>,
    pub read_header_timeout: Option<GoDuration>,
    pub write_timeout: Option<GoDuration>,
    pub idle_timeout: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of lease settings (type, candidate, consul, ...)"
)]
pub(super) struct RawLease {
    #[serde(rename = "type")]
    pub kind: Option<OptionalEnum<LeaseType>>,
    pub hostname: Option<YStr>,
    #[serde(rename = "advertise-url")]
    pub advertise_url: Option<YStr>,
    pub candidate: Option<YBool>,
    pub promote: Option<YBool>,
    pub reconnect_delay: Option<GoDuration>,
    pub demote_delay: Option<GoDuration>,
    pub databases: Option<Vec<YStr>>,
    pub consul: Option<RawConsul>,
    pub etcd: Option<RawEtcd>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of consul settings (url, key, ttl, lock-delay)"
)]
pub(super) struct RawConsul {
    pub url: Option<YStr>,
    pub key: Option<YStr>,
    pub ttl: Option<GoDuration>,
    pub lock_delay: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of etcd settings (endpoints, key, ttl)"
)]
pub(super) struct RawEtcd {
    pub endpoints: Option<Vec<YStr>>,
    pub key: Option<YStr>,
    pub ttl: Option<GoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of backup settings (type, path, url, ...)"
)]
pub(super) struct RawBackup {
    #[serde(rename = "type")]
    pub kind: Option<OptionalEnum<BackupType>>,
    pub path: Option<YStr>,
    pub url: Option<YStr>,
    pub cluster: Option<YStr>,
    pub auth_token: Option<YStr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of log settings (format, timestamp, debug)"
)]
pub(super) struct RawLog {
    pub format: Option<OptionalEnum<LogFormat>>,
    pub timestamp: Option<YBool>,
    pub debug: Option<YBool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of tracing settings (enabled, path, ...)"
)]
pub(super) struct RawTracing {
    pub enabled: Option<YBool>,
    pub path: Option<YStr>,
    pub max_size: Option<u64>,
    pub max_count: Option<u64>,
    pub compress: Option<YBool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "an exec entry with `cmd` and `if-candidate`"
)]
pub(super) struct RawExecEntry {
    pub cmd: Option<YStr>,
    pub if_candidate: Option<YBool>,
}

/// `exec:` is either one command line or a list of `{cmd, if-candidate}`.
#[derive(Debug, Default)]
pub(super) struct RawExec(pub Vec<RawExecEntry>);

impl<'de> Deserialize<'de> for RawExec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawExec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command line, or a list of entries with `cmd` and `if-candidate`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawExec, E> {
                Ok(RawExec(vec![RawExecEntry {
                    cmd: Some(YStr(v.to_string())),
                    if_candidate: None,
                }]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawExec, E> {
                Ok(RawExec::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawExec, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<RawExecEntry>()? {
                    entries.push(entry);
                }
                Ok(RawExec(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// One scalar or a list of them (`db: a.db` or `db: [a.db, b.db]`).
#[derive(Debug, Clone, Default)]
pub(super) struct YStrOrList(pub Vec<String>);

impl<'de> Deserialize<'de> for YStrOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = YStrOrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<YStrOrList, E> {
                Ok(YStrOrList(vec![v.to_string()]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<YStrOrList, E> {
                Ok(YStrOrList(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<YStrOrList, E> {
                Ok(YStrOrList(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<YStrOrList, E> {
                Ok(YStrOrList(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<YStrOrList, E> {
                Ok(YStrOrList(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YStrOrList, A::Error> {
                let mut out = Vec::new();
                while let Some(YStr(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(YStrOrList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any YAML scalar, as text (yaml.v3 puts `key: 1234` into a string field).
#[derive(Debug, Clone, Default)]
pub(super) struct YStr(pub String);

impl<'de> Deserialize<'de> for YStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = YStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<YStr, E> {
                Ok(YStr(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<YStr, E> {
                Ok(YStr(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<YStr, E> {
                Ok(YStr(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<YStr, E> {
                Ok(YStr(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<YStr, E> {
                Ok(YStr(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean, also from the YAML 1.1 words yaml.v3 still accepts for bool
/// fields, and from a quoted `"true"`/`"false"` (what a quoted
/// `"${A == B}"` expands to).
#[derive(Debug, Clone, Copy)]
pub(super) struct YBool(pub bool);

impl<'de> Deserialize<'de> for YBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = YBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean (true or false)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<YBool, E> {
                Ok(YBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<YBool, E> {
                match v {
                    "true" | "True" | "TRUE" | "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On"
                    | "ON" => Ok(YBool(true)),
                    "false" | "False" | "FALSE" | "n" | "N" | "no" | "No" | "NO" | "off"
                    | "Off" | "OFF" => Ok(YBool(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A Go duration string such as `"10s"`.
#[derive(Debug, Clone, Copy)]
pub(super) struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, such as \"10s\", \"1m30s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_duration(v).map(GoDuration).map_err(E::custom)
            }
            // A bare number has no unit; Go's yaml.v3 refuses it too,
            // except that zero is zero whatever the unit.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                if v == 0 {
                    return Ok(GoDuration(Duration::ZERO));
                }
                Err(E::custom(format!(
                    "invalid duration {v}: missing unit (write e.g. \"{v}s\" or \"{v}ms\")"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: missing unit (write e.g. \"{v}s\" or \"{v}ms\")"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A keyword field (`lease.type`, `log.format`, `backup.type`) where an
/// empty string, as `"${UNSET}"` expands to, means "not set".
#[derive(Debug, Clone, Copy)]
pub(super) struct OptionalEnum<T>(pub Option<T>);

/// The keywords of a [`OptionalEnum`] field.
pub(super) trait Keyword: Sized + Copy + 'static {
    /// What the field is called in error messages.
    const FIELD: &'static str;
    const ALL: &'static [(&'static str, Self)];
}

impl<'de, T: Keyword> Deserialize<'de> for OptionalEnum<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Checked inside the visitor so that serde_yaml blames the field
        // itself, not the mapping around it.
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: Keyword> Visitor<'_> for V<T> {
            type Value = OptionalEnum<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let names: Vec<String> = T::ALL.iter().map(|(n, _)| format!("'{n}'")).collect();
                write!(f, "a {}: one of {}", T::FIELD, names.join(", "))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OptionalEnum<T>, E> {
                if s.is_empty() {
                    return Ok(OptionalEnum(None));
                }
                match T::ALL.iter().find(|(name, _)| *name == s) {
                    Some((_, v)) => Ok(OptionalEnum(Some(*v))),
                    None => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
