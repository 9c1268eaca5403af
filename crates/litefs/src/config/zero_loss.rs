//! The `zero-loss` section (litefs-rs only): commits return once other
//! candidates hold them (see `replication/acks.rs`).
//!
//! ```yaml
//! zero-loss:
//!   candidates: 1        # other candidates holding each commit; 0 = off
//!   timeout: "2s"        # longest a commit waits for them
//!   on-timeout: degrade  # or fail
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::raw::{GoDuration, YStr};
use super::LeaseType;
use crate::replication::acks::{OnTimeout, ZeroLossOptions};

/// More than this many acknowledgements per commit is a mistake, not a
/// cluster.
pub const MAX_CANDIDATES: u64 = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct ZeroLossConfig {
    pub candidates: u64,
    pub timeout: Duration,
    /// `degrade` or `fail`, checked by `validate`.
    pub on_timeout: String,
}

impl Default for ZeroLossConfig {
    fn default() -> Self {
        let d = ZeroLossOptions::default();
        ZeroLossConfig {
            candidates: d.candidates as u64,
            timeout: d.timeout,
            on_timeout: d.on_timeout.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    expecting = "a mapping of zero-loss settings (candidates, timeout, on-timeout)"
)]
pub(super) struct RawZeroLoss {
    pub candidates: Option<u64>,
    pub timeout: Option<GoDuration>,
    pub on_timeout: Option<YStr>,
}

impl ZeroLossConfig {
    pub(super) fn resolve(&mut self, raw: RawZeroLoss) {
        if let Some(n) = raw.candidates {
            self.candidates = n;
        }
        if let Some(t) = raw.timeout {
            self.timeout = t.0;
        }
        if let Some(s) = raw.on_timeout {
            self.on_timeout = s.0;
        }
    }

    pub(super) fn check(&self, lease: Option<LeaseType>) -> Result<(), String> {
        self.on_timeout
            .parse::<OnTimeout>()
            .map_err(|e| format!("zero-loss.on-timeout {e}"))?;
        if self.candidates > MAX_CANDIDATES {
            return Err(format!(
                "zero-loss.candidates must be at most {MAX_CANDIDATES}, got {}",
                self.candidates
            ));
        }
        if self.candidates > 0 && self.timeout.is_zero() {
            return Err("zero-loss.timeout must be greater than zero".into());
        }
        if self.candidates > 0 && lease == Some(LeaseType::Static) {
            return Err(
                "zero-loss.candidates needs a consul or etcd lease: with a static \
                 lease no other node can become primary, so none can hold commits for it"
                    .into(),
            );
        }
        Ok(())
    }

    /// The tracker's options; the config must have passed `validate`.
    pub fn options(&self) -> ZeroLossOptions {
        ZeroLossOptions {
            candidates: self.candidates as usize,
            timeout: self.timeout,
            on_timeout: self.on_timeout.parse().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(extra: &str) -> Result<Config, String> {
        let text = format!(
            "fuse: {{ dir: /m }}\ndata: {{ dir: /d }}\n\
             lease: {{ type: etcd, etcd: {{ endpoints: [\"http://127.0.0.1:2379\"] }} }}\n{extra}"
        );
        let c = Config::from_str_raw(&text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn off_by_default_and_set_from_yaml() {
        let c = parse("").unwrap();
        assert_eq!(c.zero_loss.options(), ZeroLossOptions::default());
        assert_eq!(c.zero_loss.options().candidates, 0);
        let c = parse("zero-loss: { candidates: 1, timeout: 500ms, on-timeout: fail }").unwrap();
        assert_eq!(
            c.zero_loss.options(),
            ZeroLossOptions {
                candidates: 1,
                timeout: Duration::from_millis(500),
                on_timeout: OnTimeout::Fail,
            }
        );
    }

    #[test]
    fn invalid_values_are_named() {
        let err = |y: &str| parse(y).unwrap_err();
        assert!(err("zero-loss: { on-timeout: wait }").contains("zero-loss.on-timeout must be"));
        assert!(err("zero-loss: { candidates: 99 }").contains("at most 16"));
        assert!(err("zero-loss: { candidates: 1, timeout: 0s }").contains("greater than zero"));
        assert!(err("zero-loss: { candidates: -1 }").contains("candidates"));
        assert!(err("zero-loss: { replicas: 1 }").contains("replicas"));
        let e = Config::from_str_raw(
            "fuse: { dir: /m }\ndata: { dir: /d }\nlease: { type: static }\n\
             zero-loss: { candidates: 1 }",
        )
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a consul or etcd lease"), "{e}");
    }
}
