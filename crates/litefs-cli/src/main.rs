//! The `litefs` binary. Flags are accepted LiteFS-style (`-config PATH`) as
//! well as `--config PATH`.

mod exec;
mod identity;
mod logging;
mod ltx_cmd;
mod mount;
mod recover;
mod run_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use litefs::config::Expansion;

/// The version and the commit built from (see build.rs), as `litefs
/// version` and `litefs --version` print them.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LITEFS_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "litefs",
    about = "SQLite replication: FUSE mount, LTX capture, lease, proxy",
    version = VERSION
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the version and the git commit it was built from.
    Version,
    /// Mount the databases, take the lease, run the exec command.
    Mount {
        /// Path to litefs.yml (default: ./litefs.yml, ~/litefs.yml, /etc/litefs.yml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not expand ${VAR} in the config file.
        #[arg(long)]
        no_expand_env: bool,
        /// Refuse a config file that uses an unset ${VAR} (by default it
        /// expands to an empty string, as in LiteFS, with a warning).
        #[arg(long, conflicts_with = "no_expand_env")]
        strict_env: bool,
        /// Command to run instead of the config's exec.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Run a command as LiteFS's `litefs run` does: only on a candidate,
    /// after a promotion, or holding a database's halt lock.
    Run(run_cmd::RunArgs),
    /// Import a SQLite database file into the running mount, as one transaction.
    Import(TransferArgs),
    /// Export a database from the running mount into a SQLite file.
    Export(TransferArgs),
    /// Repair a database whose file and LTX log disagree (litefs stopped).
    Recover(recover::RecoverArgs),
    /// Move the primary role without a gap: the node at --to (default:
    /// this node, from the config's http.addr) asks the primary to hand it
    /// the lease (its POST /promote) and returns once it holds it.
    Handoff {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The node to make primary: HOST:PORT or http://HOST:PORT.
        #[arg(long)]
        to: Option<String>,
    },
    /// Inspect LTX files.
    Ltx {
        #[command(subcommand)]
        cmd: LtxCmd,
    },
}

/// Where a whole database goes in or out: a database of the running mount
/// and a SQLite file.
#[derive(clap::Args)]
struct TransferArgs {
    #[arg(long)]
    config: Option<PathBuf>,
    /// Mount directory (default: fuse.dir from the config).
    #[arg(long)]
    mount: Option<PathBuf>,
    /// Database name in the mount.
    #[arg(long)]
    name: String,
    file: PathBuf,
}

#[derive(Subcommand)]
enum LtxCmd {
    /// Check each file completely; exit non-zero if any is invalid.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a file's header, pages (number and checksum) and trailer.
    Dump {
        #[arg(long)]
        json: bool,
        file: PathBuf,
    },
}

/// Go's flag package takes `-config`; clap wants `--config`. Single-dash
/// words before `--` get a second dash; `-h`, `-V` and values stay.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for a in args {
        if a == "--" {
            passthrough = true;
        }
        let go_flag = !passthrough
            && a.len() > 2
            && a.starts_with('-')
            && !a.starts_with("--")
            && a.as_bytes()[1].is_ascii_alphabetic();
        out.push(if go_flag { format!("-{a}") } else { a });
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("litefs: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each said once. Many error types show their
/// source in their own message *and* return it from `source()` (the store's
/// `"{path}: {source}"`), so anyhow's `{:#}` would print an OS error twice:
/// "x: Not a directory (os error 20): Not a directory (os error 20)".
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Version => {
            println!("litefs {VERSION}");
            Ok(0)
        }
        Cmd::Ltx {
            cmd: LtxCmd::Verify { files },
        } => {
            let ok = ltx_cmd::verify(&files, &mut std::io::stdout())?;
            Ok(if ok { 0 } else { 1 })
        }
        Cmd::Ltx {
            cmd: LtxCmd::Dump { json, file },
        } => {
            ltx_cmd::dump(&file, json, &mut std::io::stdout().lock())?;
            Ok(0)
        }
        Cmd::Mount {
            config,
            no_expand_env,
            strict_env,
            cmd,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting runtime")?;
            let expansion = match (no_expand_env, strict_env) {
                (true, _) => Expansion::Off,
                (false, true) => Expansion::Strict,
                (false, false) => Expansion::Lenient,
            };
            rt.block_on(mount::run(mount::MountArgs {
                config,
                expansion,
                cmd,
            }))
        }
        Cmd::Run(a) => run_cmd::run(a),
        Cmd::Recover(a) => {
            logging::init_default();
            recover::run(a)
        }
        Cmd::Handoff { config, to } => {
            let url = match to {
                Some(t) if t.starts_with("http://") => t,
                Some(t) => format!("http://{t}"),
                None => {
                    let c =
                        litefs::config::Config::load(config.as_deref(), Expansion::Lenient)?.config;
                    let addr =
                        litefs::http::parse_addr(&c.http.addr).map_err(anyhow::Error::msg)?;
                    let host = if addr.ip().is_unspecified() {
                        "127.0.0.1".to_string()
                    } else {
                        addr.ip().to_string()
                    };
                    format!("http://{host}:{}", addr.port())
                }
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting runtime")?;
            let target = format!("{}/promote", url.trim_end_matches('/'));
            let (status, body) = rt
                .block_on(litefs::http::post(&target))
                .map_err(anyhow::Error::msg)?;
            if status != 200 {
                anyhow::bail!("{target}: {status}: {}", body.trim());
            }
            println!("{url} is primary ({})", body.trim());
            Ok(0)
        }
        Cmd::Import(a) => {
            logging::init_default();
            let dir = mount_dir(a.config, a.mount)?;
            litefs::transfer::import_file(&dir, &a.name, &a.file)
                .with_context(|| format!("importing {} into {}", a.file.display(), a.name))?;
            let pos = read_pos(&dir, &a.name)?;
            println!(
                "imported {} into {}: position {pos}",
                a.file.display(),
                a.name
            );
            Ok(0)
        }
        Cmd::Export(a) => {
            logging::init_default();
            let dir = mount_dir(a.config, a.mount)?;
            let pos = read_pos(&dir, &a.name)?;
            litefs::transfer::export_file(&dir, &a.name, &a.file)
                .with_context(|| format!("exporting {} to {}", a.name, a.file.display()))?;
            println!(
                "exported {} at position {pos} to {}",
                a.name,
                a.file.display()
            );
            Ok(0)
        }
    }
}

fn read_pos(mount: &std::path::Path, name: &str) -> Result<String> {
    let path = mount.join(format!("{name}-pos"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(text.trim().to_string())
}

fn mount_dir(config: Option<PathBuf>, mount: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(m) = mount {
        return Ok(m);
    }
    let loaded = litefs::config::Config::load(config.as_deref(), Expansion::Lenient)?;
    for u in &loaded.undefined {
        tracing::warn!(file = %loaded.path.display(), line = u.line, var = %u.name, "variable is not set; expanded to an empty string");
    }
    Ok(loaded.config.fuse.dir)
}

#[cfg(test)]
mod tests {
    use super::{error_chain, normalize_args};

    #[test]
    fn an_os_error_shown_by_its_wrapper_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{path}: {source}")]
        struct AtPath {
            path: String,
            #[source]
            source: std::io::Error,
        }
        let e = anyhow::Error::new(AtPath {
            path: "/d/dbs".into(),
            source: std::io::Error::from_raw_os_error(20),
        })
        .context("opening data directory /d");
        let msg = error_chain(&e);
        assert_eq!(msg.matches("os error 20").count(), 1, "{msg}");
        assert!(
            msg.starts_with("opening data directory /d: /d/dbs: "),
            "{msg}"
        );
        // A cause its wrapper does not show is still printed.
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(2)).context("reading x");
        assert!(
            error_chain(&e).starts_with("reading x: No such file"),
            "{}",
            error_chain(&e)
        );
    }

    #[test]
    fn go_style_flags_become_long_flags() {
        let args = [
            "litefs", "mount", "-config", "x.yml", "--", "node", "-e", "-foo",
        ]
        .map(String::from);
        assert_eq!(
            normalize_args(args.into_iter()),
            ["litefs", "mount", "--config", "x.yml", "--", "node", "-e", "-foo"]
        );
    }
}
