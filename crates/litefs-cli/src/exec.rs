//! Running the app: litefs.yml `exec` entries and `litefs mount -- CMD`.
//!
//! LiteFS's semantics: every entry but the last runs to completion, in
//! order, and a failure stops the sequence; the last entry is the app,
//! started as a child that litefs watches and whose exit status litefs
//! exits with. An entry marked `if-candidate` is skipped on a node that can
//! never become primary (the last one too: then there is no app).
//! SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to litefs are
//! passed on to whichever command is running.
//!
//! Async, on tokio: the children are `tokio::process` children and the
//! signals arrive through `tokio::signal`, so everything here must run
//! inside a tokio runtime. Children inherit stdio and the environment, plus
//! the [`AppEnv`] variables litefs's own environment does not set, and
//! are killed (SIGKILL) if their [`App`] is dropped before they exit, so a
//! cancelled future never leaves a migration running unsupervised.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use litefs::config::{ExecEntry, SplitError};
pub use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

/// The signals passed on to the running command, as LiteFS users expect
/// (graceful shutdown, log reopening, debugging dumps).
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Signals that ask litefs to stop: after one arrives while a pre-command
/// runs, the remaining commands are not started.
const STOPPING: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGQUIT];

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot parse exec command {cmd:?}: {source}")]
    Parse {
        cmd: String,
        #[source]
        source: SplitError,
    },
    #[error("cannot start exec command {cmd:?}: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for exec command {cmd:?}: {source}")]
    Wait {
        cmd: String,
        #[source]
        source: io::Error,
    },
    /// A command before the app exited unsuccessfully.
    #[error("exec command {cmd:?} failed: {status}")]
    Failed { cmd: String, status: ExitStatus },
    /// litefs was asked to stop while a command before the app ran.
    #[error("{signal} received while running exec command {cmd:?}; not starting the rest")]
    Interrupted { cmd: String, signal: Signal },
}

/// The exit code a shell would report: the code, or 128 + the signal that
/// killed the process.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// What litefs tells the commands it runs about the node, as environment
/// variables: `LITEFS_DIR` (the mount, which litefs-js and litefs-rs read)
/// and `LITEFS_HOSTNAME` (this node's name, which litefs-rs compares with
/// `.primary`). A variable already in litefs's environment is left as it
/// is, so a deployment that sets one keeps its value.
#[derive(Debug, Clone, Default)]
pub struct AppEnv {
    vars: Vec<(&'static str, OsString)>,
}

impl AppEnv {
    pub fn new(litefs_dir: &Path, hostname: &str) -> AppEnv {
        AppEnv {
            vars: vec![
                ("LITEFS_DIR", litefs_dir.as_os_str().to_owned()),
                ("LITEFS_HOSTNAME", hostname.into()),
            ],
        }
    }

    /// The variables to add, given litefs's own environment (`inherited`).
    fn added(
        &self,
        inherited: impl Fn(&str) -> Option<OsString>,
    ) -> impl Iterator<Item = &(&'static str, OsString)> {
        self.vars
            .iter()
            .filter(move |(k, _)| inherited(k).is_none())
    }
}

/// Whether `entry` runs on this node.
fn applies(entry: &ExecEntry, is_candidate: bool) -> bool {
    !entry.if_candidate || is_candidate
}

/// The app: the last entry, unless it is `if-candidate` and this node is
/// not a candidate.
pub fn app_entry(entries: &[ExecEntry], is_candidate: bool) -> Option<&ExecEntry> {
    entries.last().filter(|e| applies(e, is_candidate))
}

/// Runs every entry but the last, in order, each to completion, passing
/// `signals` on to it. Stops at the first that fails or when a stopping
/// signal (INT, TERM, QUIT) arrived during one.
pub async fn run_pre_commands(
    entries: &[ExecEntry],
    is_candidate: bool,
    env: &AppEnv,
    signals: &mut Signals,
) -> Result<(), ExecError> {
    let Some((_, pre)) = entries.split_last() else {
        return Ok(());
    };
    for entry in pre {
        if !applies(entry, is_candidate) {
            tracing::info!(cmd = %entry.cmd, "node is not a candidate, skipping command");
            continue;
        }
        tracing::info!(cmd = %entry.cmd, "executing command");
        let mut cmd = App::spawn(entry, env)?;
        let mut stop = None;
        let status = loop {
            tokio::select! {
                status = cmd.child.wait() => break status,
                sig = signals.recv() => {
                    cmd.forward(sig);
                    if STOPPING.contains(&sig) {
                        stop = Some(sig);
                    }
                }
            }
        };
        let status = status.map_err(|source| ExecError::Wait {
            cmd: entry.cmd.clone(),
            source,
        })?;
        if !status.success() {
            return Err(ExecError::Failed {
                cmd: entry.cmd.clone(),
                status,
            });
        }
        if let Some(signal) = stop {
            return Err(ExecError::Interrupted {
                cmd: entry.cmd.clone(),
                signal,
            });
        }
    }
    Ok(())
}

/// The signals litefs passes on, received through tokio.
pub struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Starts receiving the [`FORWARDED`] signals. Do this early: once
    /// installed, those signals no longer kill litefs by default, and one
    /// arriving before installation does. Other tokio listeners for the
    /// same signals (litefs's own shutdown) still get them.
    pub fn install() -> io::Result<Signals> {
        Signals::install_set(&FORWARDED)
    }

    /// Receives only `set`.
    pub fn install_set(set: &[Signal]) -> io::Result<Signals> {
        let streams = set
            .iter()
            .map(|&sig| Ok((sig, signal(SignalKind::from_raw(sig as i32))?)))
            .collect::<io::Result<_>>()?;
        Ok(Signals { streams })
    }

    /// Receives nothing: for running commands with no forwarding.
    #[cfg(test)]
    pub fn none() -> Signals {
        Signals {
            streams: Vec::new(),
        }
    }

    /// The next signal; never resolves for [`Signals::none`].
    pub async fn recv(&mut self) -> Signal {
        if self.streams.is_empty() {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            for (sig, stream) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*sig);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// A running command: the app, or a pre-command while it runs.
pub struct App {
    child: Child,
    cmd: String,
}

impl App {
    /// Starts `entry` (split into argv, no shell) with inherited stdio and
    /// environment, plus `env`.
    pub fn spawn(entry: &ExecEntry, env: &AppEnv) -> Result<App, ExecError> {
        let argv = entry.argv().map_err(|source| ExecError::Parse {
            cmd: entry.cmd.clone(),
            source,
        })?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.added(|k| std::env::var_os(k)).map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                cmd: entry.cmd.clone(),
                source,
            })?;
        Ok(App {
            child,
            cmd: entry.cmd.clone(),
        })
    }

    /// The command line as configured.
    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// The child's pid, until it has been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the child to exit; returns its [`exit_code`]. Cancel-safe,
    /// and returns the same code again once the child has exited.
    #[cfg(test)]
    pub async fn wait(&mut self) -> io::Result<i32> {
        self.child.wait().await.map(exit_code)
    }

    /// Waits for the child to exit, passing `signals` on to it meanwhile;
    /// a TERM therefore ends in the child's own exit code, which litefs
    /// then exits with. Cancel-safe.
    pub async fn wait_forwarding(&mut self, signals: &mut Signals) -> io::Result<i32> {
        loop {
            tokio::select! {
                status = self.child.wait() => return status.map(exit_code),
                sig = signals.recv() => {
                    tracing::info!(signal = %sig, "sending signal to exec process");
                    self.forward(sig);
                }
            }
        }
    }

    /// Sends `sig` to the child. Does nothing once the child has been
    /// reaped, since its pid may then belong to another process; until
    /// then the pid is ours even if the child has exited (a zombie).
    pub fn forward(&self, sig: Signal) {
        let Some(pid) = self.child.id() else { return };
        if let Err(e) = nix::sys::signal::kill(Pid::from_raw(pid as i32), sig) {
            tracing::warn!(signal = %sig, pid, error = %e, "cannot signal exec process");
        }
    }

    /// Stops the child for litefs's shutdown: SIGTERM, then SIGKILL if it
    /// has not exited within `grace`. Returns its [`exit_code`].
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<i32> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(exit_code(status));
        }
        self.forward(Signal::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.map(exit_code),
            Err(_) => {
                tracing::warn!(cmd = %self.cmd, ?grace, "exec process ignored SIGTERM, killing it");
                self.child.start_kill()?;
                self.child.wait().await.map(exit_code)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Instant;

    fn entry(cmd: &str, if_candidate: bool) -> ExecEntry {
        ExecEntry {
            cmd: cmd.into(),
            if_candidate,
        }
    }

    fn sh(script: &str) -> ExecEntry {
        ExecEntry::from_argv(&["sh".into(), "-c".into(), script.into()])
    }

    /// Polls for `path`, which the child creates once its traps are set,
    /// so that no signal is sent before the child is ready for it.
    async fn wait_for_file(path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(Instant::now() < deadline, "child never became ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn pre_commands_run_in_order_and_skip_by_candidacy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let log = log.to_str().unwrap();
        let entries = vec![
            sh(&format!("echo one >> {log}")),
            ExecEntry {
                if_candidate: true,
                ..sh(&format!("echo migrate >> {log}"))
            },
            sh(&format!("echo three >> {log}")),
            sh(&format!("echo app >> {log}")),
        ];

        run_pre_commands(&entries, true, &AppEnv::default(), &mut Signals::none())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(log).unwrap(),
            "one\nmigrate\nthree\n"
        );

        std::fs::remove_file(log).unwrap();
        run_pre_commands(&entries, false, &AppEnv::default(), &mut Signals::none())
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(log).unwrap(), "one\nthree\n");

        run_pre_commands(&[], true, &AppEnv::default(), &mut Signals::none())
            .await
            .unwrap();
        run_pre_commands(
            &entries[3..],
            true,
            &AppEnv::default(),
            &mut Signals::none(),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn commands_get_the_mount_and_node_name_unless_already_set() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let env = AppEnv::new(Path::new("/mnt/litefs"), "node-b");
        let script = format!("echo \"$LITEFS_DIR|$LITEFS_HOSTNAME\" > {}", out.display());
        let entries = [sh(&script), entry("app", false)];
        run_pre_commands(&entries, true, &env, &mut Signals::none())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "/mnt/litefs|node-b\n"
        );
        let mut app = App::spawn(&sh(&script), &env).unwrap();
        assert_eq!(app.wait().await.unwrap(), 0);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "/mnt/litefs|node-b\n"
        );

        // A value litefs itself was given wins.
        let inherited = |k: &str| (k == "LITEFS_HOSTNAME").then(|| OsString::from("mine"));
        let added: Vec<_> = env.added(inherited).map(|(k, _)| *k).collect();
        assert_eq!(added, ["LITEFS_DIR"]);
    }

    #[test]
    fn the_app_is_the_last_entry_if_it_applies() {
        let entries = vec![entry("a", false), entry("b", true)];
        assert_eq!(app_entry(&entries, true), Some(&entries[1]));
        assert_eq!(app_entry(&entries, false), None);
        assert_eq!(app_entry(&entries[..1], false), Some(&entries[0]));
        assert_eq!(app_entry(&[], true), None);
    }

    #[tokio::test]
    async fn a_failing_pre_command_stops_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let entries = vec![
            sh("exit 3"),
            sh(&format!("touch {}", marker.display())),
            entry("app", false),
        ];
        let err = run_pre_commands(&entries, true, &AppEnv::default(), &mut Signals::none())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("exit 3") && msg.contains("exit status: 3"),
            "{msg}"
        );
        assert!(matches!(err, ExecError::Failed { status, .. } if status.code() == Some(3)));
        assert!(!marker.exists());

        let missing = vec![
            entry("litefs-rs-no-such-program --x", false),
            entry("app", false),
        ];
        let err = run_pre_commands(&missing, true, &AppEnv::default(), &mut Signals::none())
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }));
        assert!(
            err.to_string().contains("litefs-rs-no-such-program"),
            "{err}"
        );

        let unparsable = vec![entry("echo 'oops", false), entry("app", false)];
        let err = run_pre_commands(&unparsable, true, &AppEnv::default(), &mut Signals::none())
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Parse { .. }), "{err}");
    }

    #[tokio::test]
    async fn app_exit_code_propagates() {
        let mut app = App::spawn(&sh("exit 7"), &AppEnv::default()).unwrap();
        assert_eq!(app.wait().await.unwrap(), 7);
        assert_eq!(app.wait().await.unwrap(), 7);
        assert_eq!(app.pid(), None);
        // Signalling a reaped child is a no-op, not a stray kill.
        app.forward(Signal::SIGTERM);

        let mut app = App::spawn(&sh("kill -KILL $$"), &AppEnv::default()).unwrap();
        assert_eq!(app.wait().await.unwrap(), 128 + 9);
    }

    #[tokio::test]
    async fn forwarded_signal_reaches_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'kill $! 2>/dev/null; exit 42' TERM; sleep 10 >/dev/null 2>&1 & touch {}; wait",
            ready.display()
        );
        let mut app = App::spawn(&sh(&script), &AppEnv::default()).unwrap();
        wait_for_file(&ready).await;
        app.forward(Signal::SIGTERM);
        assert_eq!(app.wait().await.unwrap(), 42);
    }

    #[tokio::test]
    async fn signals_sent_to_litefs_are_forwarded() {
        // SIGUSR2 only: the other tests never install a handler for it, so
        // raising it at this process touches no other test.
        let mut signals = Signals::install_set(&[Signal::SIGUSR2]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'kill $! 2>/dev/null; exit 43' USR2; sleep 10 >/dev/null 2>&1 & touch {}; wait",
            ready.display()
        );
        let mut app = App::spawn(&sh(&script), &AppEnv::default()).unwrap();
        wait_for_file(&ready).await;
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        let code = tokio::time::timeout(Duration::from_secs(5), app.wait_forwarding(&mut signals))
            .await
            .expect("signal was not forwarded")
            .unwrap();
        assert_eq!(code, 43);
    }

    #[tokio::test]
    async fn terminate_escalates_to_kill() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "trap '' TERM; touch {}; exec sleep 10 >/dev/null 2>&1",
            ready.display()
        );
        let mut app = App::spawn(&sh(&script), &AppEnv::default()).unwrap();
        wait_for_file(&ready).await;
        let started = Instant::now();
        assert_eq!(
            app.terminate(Duration::from_millis(200)).await.unwrap(),
            128 + 9
        );
        assert!(started.elapsed() >= Duration::from_millis(200));

        // A child that honours TERM is not killed.
        let mut app = App::spawn(&sh("exec sleep 10 >/dev/null 2>&1"), &AppEnv::default()).unwrap();
        assert_eq!(
            app.terminate(Duration::from_secs(5)).await.unwrap(),
            128 + 15
        );
        // Terminating an exited child just reports it.
        assert_eq!(
            app.terminate(Duration::from_secs(5)).await.unwrap(),
            128 + 15
        );
    }

    #[tokio::test]
    async fn stopping_signal_during_pre_commands_stops_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let marker = dir.path().join("ran");
        // The first command survives TERM (exit 0), but litefs was asked to
        // stop, so the second must not start.
        let entries = vec![
            sh(&format!(
                "trap 'kill $! 2>/dev/null; exit 0' QUIT; sleep 10 >/dev/null 2>&1 & touch {}; wait",
                ready.display()
            )),
            sh(&format!("touch {}", marker.display())),
            entry("app", false),
        ];
        let mut signals = Signals::install_set(&[Signal::SIGQUIT]).unwrap();
        let env = AppEnv::default();
        let run = run_pre_commands(&entries, true, &env, &mut signals);
        let raise = async {
            wait_for_file(&ready).await;
            nix::sys::signal::raise(Signal::SIGQUIT).unwrap();
            std::future::pending::<()>().await
        };
        let err = tokio::select! {
            r = run => r.unwrap_err(),
            _ = raise => unreachable!(),
        };
        assert!(
            matches!(
                err,
                ExecError::Interrupted {
                    signal: Signal::SIGQUIT,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!marker.exists());
    }
}
