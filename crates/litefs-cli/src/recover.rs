//! `litefs recover`: the ways out when a database file and its LTX log
//! disagree, run with litefs stopped (see `litefs::store::repair`). The
//! startup error for such a database names the command that fits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use litefs::store::repair;
use litefs::store::DataDirLock;

#[derive(clap::Args)]
pub struct RecoverArgs {
    /// Path to litefs.yml (for data.dir).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (default: data.dir from the config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database name (as in the mount).
    #[arg(long)]
    name: String,
    #[command(flatten)]
    how: How,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct How {
    /// Rebuild the database by replaying its LTX log from a snapshot
    /// (loses nothing; needs a log that starts with a snapshot).
    #[arg(long)]
    from_log: bool,
    /// Make FILE (a copy exported from a replica or the primary) the
    /// database and restart the log from it; FILE must pass integrity_check.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Keep the current database file and restart the log from it; the
    /// file must pass integrity_check.
    #[arg(long)]
    keep_file: bool,
}

pub fn run(a: RecoverArgs) -> Result<i32> {
    let data_dir = match a.data_dir {
        Some(d) => d,
        None => {
            let loaded = litefs::config::Config::load(
                a.config.as_deref(),
                litefs::config::Expansion::Lenient,
            )?;
            loaded.config.data.dir
        }
    };
    let _lock = DataDirLock::acquire(&data_dir)?;
    let done = if a.how.from_log {
        repair::rebuild_from_log(&data_dir, &a.name)
            .with_context(|| format!("rebuilding {} from its log", a.name))?
    } else {
        repair::restart_log_from_file(&data_dir, &a.name, a.how.from_file.as_deref())
            .with_context(|| format!("restarting the log of {}", a.name))?
    };
    if a.how.from_log {
        println!(
            "{}: rebuilt from the LTX log at position {}; the previous files are in {}",
            a.name,
            done.pos,
            done.moved_to.display()
        );
    } else {
        println!(
            "{}: the log restarts at TXID {} with a snapshot at the next start; the previous files are in {}",
            a.name,
            done.pos.txid,
            done.moved_to.display()
        );
    }
    Ok(0)
}
