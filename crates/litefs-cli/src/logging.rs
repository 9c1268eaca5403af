//! Log setup: human-readable by default, JSON with `log.format: json`,
//! debug with `log.debug: true`, FUSE requests traced with `fuse.debug:
//! true`; RUST_LOG overrides both.

use litefs::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogConfig, fuse_debug: bool) {
    let level = if cfg.debug { "debug" } else { "info" };
    // litefs-fuse unmounts (with retries, then a lazy detach) before fuser
    // does; fuser's own second attempt then fails with EINVAL and would log
    // an ERROR on every clean shutdown.
    let mut default = format!("{level},fuser::mnt=off");
    if fuse_debug {
        default += ",litefs_fuse=trace,fuser=debug";
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only on a terminal: logs usually go to a file or a
    // container log, where escape sequences are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let res = match (cfg.format, cfg.timestamp) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.try_init(),
        (LogFormat::Text, false) => builder.without_time().try_init(),
    };
    // Already initialized (tests calling twice) is fine.
    let _ = res;
}

/// For commands that run before or without a config file.
pub fn init_default() {
    init(
        &LogConfig {
            format: LogFormat::Text,
            timestamp: false,
            debug: false,
        },
        false,
    );
}
