//! `litefs mount`: open the store, take the lease, mount, run the app, and
//! on the way out stop the app, unmount and record a clean position.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use litefs::config::{Config, ExecEntry, Expansion, LeaseType};
use litefs::lease::consul::{Consul, ConsulOptions};
use litefs::lease::etcd::{Etcd, EtcdOptions};
use litefs::lease::machine as lease_machine;
use litefs::lease::{LeaseHandle, LeaseOptions, PrimaryInfo, StaticLease, StoreRoles};
use litefs::store::{Store, StoreOptions};
use tracing::{debug, error, info, warn};

use crate::exec::{self, App, AppEnv, Signals};
use crate::identity;
use crate::logging;

/// Exit code when a commit could not be captured (LiteFS's too).
pub const EXIT_CAPTURE_FAILED: i32 = 99;
/// Exit code when the lease refuses this node (cluster ID mismatch).
pub const EXIT_LEASE_FAILED: i32 = 1;
const APP_STOP_GRACE: Duration = Duration::from_secs(10);
const UNMOUNT_WAIT: Duration = Duration::from_secs(5);

/// The lease this node runs, as configured.
enum LeaseKind {
    Static(StaticLease),
    Consul(Box<Consul>),
    Etcd(Box<Etcd>),
}

pub struct MountArgs {
    pub config: Option<PathBuf>,
    pub expansion: Expansion,
    pub cmd: Vec<String>,
}

pub async fn run(args: MountArgs) -> Result<i32> {
    // Before anything slow: a TERM during startup must reach our handler.
    let mut signals = Signals::install().context("installing signal handlers")?;
    let loaded = Config::load(args.config.as_deref(), args.expansion)?;
    logging::init(&loaded.config.log, loaded.config.fuse.debug);
    let exit_on_error = loaded.config.exit_on_error;
    match serve(args, loaded, &mut signals).await {
        // LiteFS's `exit-on-error: false`: a node that cannot start stays
        // up (its machine is not restarted in a loop) so someone can look.
        Err(e) if !exit_on_error => {
            error!("{e:#}");
            warn!("exit-on-error is false: litefs stays up for debugging; send SIGTERM or SIGINT to stop it");
            let sig = signals.recv().await;
            info!(signal = %sig, "signal received, exiting");
            Ok(1)
        }
        r => r,
    }
}

async fn serve(
    args: MountArgs,
    loaded: litefs::config::Loaded,
    signals: &mut Signals,
) -> Result<i32> {
    let (config, path) = (loaded.config, loaded.path);
    info!(path = %path.display(), "config file read");
    for u in &loaded.undefined {
        warn!(file = %path.display(), line = u.line, var = %u.name,
            "variable is not set; expanded to an empty string (-strict-env makes this an error)");
    }
    info!(
        config = %path.display(),
        fuse_dir = %config.fuse.dir.display(),
        data_dir = %config.data.dir.display(),
        http_addr = %config.http.addr,
        lease = %describe_lease(&config),
        "starting"
    );
    let exec_entries = if args.cmd.is_empty() {
        config.exec.clone()
    } else {
        vec![ExecEntry::from_argv(&args.cmd)]
    };

    let lease = match config.lease.kind {
        Some(LeaseType::Static) if config.lease.promote => {
            bail!("lease.promote applies to the consul and etcd leases only (lease.type is static)")
        }
        Some(LeaseType::Static) => LeaseKind::Static(StaticLease::new(
            config.lease.candidate,
            &config.lease.hostname,
            &config.lease.advertise_url,
        )),
        Some(LeaseType::Consul) => {
            let c = &config.lease.consul;
            let consul = Consul::new(ConsulOptions {
                url: c.url.clone(),
                key: c.key.clone(),
                ttl: c.ttl,
                lock_delay: c.lock_delay,
                data_dir: config.data.dir.clone(),
            })
            .context("lease.consul.url")?;
            LeaseKind::Consul(Box::new(consul))
        }
        Some(LeaseType::Etcd) => {
            let e = &config.lease.etcd;
            let etcd = Etcd::new(EtcdOptions {
                endpoints: e.endpoints.clone(),
                key: e.key.clone(),
                ttl: e.ttl,
                data_dir: config.data.dir.clone(),
            })
            .context("lease.etcd")?;
            LeaseKind::Etcd(Box::new(etcd))
        }
        None => bail!("lease.type is required"),
    };
    let static_lease = match &lease {
        LeaseKind::Static(s) => Some(s.clone()),
        LeaseKind::Consul(_) | LeaseKind::Etcd(_) => None,
    };

    let listener = litefs::http::bind(&config.http.addr)
        .await
        .with_context(|| format!("listening on http.addr {:?}", config.http.addr))?;
    let listen = listener.local_addr()?;
    info!(addr = %listen, "http server listening");

    let mut opts = StoreOptions::new(&config.data.dir);
    opts.compress = config.data.compress;
    opts.strict_verify = config.strict_verify;
    opts.retention = config.data.retention;
    // A non-candidate is a replica for good, whatever the lease.
    opts.follower = !config.lease.candidate;
    // LiteFS refuses to start on a malformed cluster ID file; so do we.
    litefs::store::cluster_id::load(&config.data.dir)?;
    let store = tokio::task::spawn_blocking(move || Store::open(opts))
        .await?
        .with_context(|| format!("opening data directory {}", config.data.dir.display()))?;
    let store = Arc::new(store);
    store.zero_loss().configure(config.zero_loss.options());
    info!(node_id = %format!("{:016X}", store.node_id()), dbs = store.dbs().len(), "store opened");

    if static_lease.as_ref().is_some_and(|l| l.is_primary()) {
        // The static lease never moves on its own: a restart goes on with
        // this node's term unless it has followed another primary since.
        litefs::store::cluster_id::ensure(&config.data.dir)?;
        let epoch = store
            .resume_or_begin_term()
            .context("starting a primary term")?;
        store.set_primary(true);
        info!(epoch, "primary lease acquired (static)");
    }

    // The lease owns the state; everything else watches this one value.
    let initial = match &static_lease {
        Some(l) => l.state(store.epoch()),
        None => litefs::lease::LeaseState::default(),
    };
    let (lease_tx, lease_watch) = tokio::sync::watch::channel(initial);
    let mount = {
        let store = store.clone();
        let dir = config.fuse.dir.clone();
        let opts = litefs_fuse::MountOptions {
            allow_other: config.fuse.allow_other,
        };
        tokio::task::spawn_blocking(move || litefs_fuse::mount(store, &dir, &opts))
            .await?
            .with_context(|| format!("mounting {}", config.fuse.dir.display()))?
    };

    let static_primary = static_lease.as_ref().is_some_and(|l| l.is_primary());
    let env_hostname = std::env::var("LITEFS_HOSTNAME").ok();
    // With Consul and etcd, lease.hostname and lease.advertise-url describe
    // this node; with the static lease, the primary.
    let me = identity::resolve(&identity::Inputs {
        is_primary: static_lease.is_none() || static_primary,
        lease_hostname: &config.lease.hostname,
        lease_advertise_url: &config.lease.advertise_url,
        listen,
        os_hostname: &os_hostname(),
        env_hostname: env_hostname.as_deref(),
    });
    info!(hostname = %me.hostname, advertise_url = %me.advertise_url, "this node");
    let app_env = AppEnv::new(&config.fuse.dir, &me.hostname);
    // Before the lease task: the proxy's URL goes into the lease value.
    let proxy = start_proxy(&config, &store, &lease_watch, &me).await?;
    let proxy_url = proxy.as_ref().map(|(_, url)| url.clone());
    let (own_hostname, advertise_url) = (me.hostname.clone(), me.advertise_url.clone());
    let local_api = {
        let a = listener.local_addr()?;
        let ip = if a.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            a.ip().to_string()
        };
        format!("http://{ip}:{}", a.port())
    };
    let ready = Arc::new(tokio::sync::Notify::new());
    let mut replica = None;
    let mut lease_task = None;
    let mut static_tx = None;
    let dynamic = || {
        dynamic_lease(
            &config,
            &store,
            &own_hostname,
            &advertise_url,
            proxy_url.clone(),
            &ready,
        )
    };
    match lease {
        LeaseKind::Static(l) => {
            // Never changes, but kept open: watchers see no closed channel.
            static_tx = Some(lease_tx);
            replica = l.primary().map(|p| {
                info!(primary = %p.hostname, url = %p.advertise_url, "replica: following the static primary");
                let opts = litefs::replication::client::ReplicaOptions {
                    primary_url: p.advertise_url.clone(),
                    primary_hostname: p.hostname.clone(),
                    reconnect_delay: config.lease.reconnect_delay,
                    mount_dir: Some(config.fuse.dir.clone()),
                    ready: ready.clone(),
                };
                tokio::spawn(litefs::replication::client::run(store.clone(), opts))
            });
        }
        LeaseKind::Consul(consul) => {
            info!(
                key = consul.key(),
                candidate = config.lease.candidate,
                "consul lease"
            );
            let (roles, opts) = dynamic();
            lease_task = Some(lease_machine::spawn(*consul, roles, opts, lease_tx));
        }
        LeaseKind::Etcd(etcd) => {
            info!(
                key = etcd.key(),
                candidate = config.lease.candidate,
                "etcd lease"
            );
            let (roles, opts) = dynamic();
            lease_task = Some(lease_machine::spawn(*etcd, roles, opts, lease_tx));
        }
    }
    // Served once the lease task runs, so `/handoff` can reach it.
    let meta = litefs::http::NodeMeta {
        hostname: own_hostname.clone(),
        advertise_url: advertise_url.clone(),
        candidate: config.lease.candidate,
        primary_url: static_lease
            .as_ref()
            .and_then(|l| l.primary())
            .map(|p| p.advertise_url.clone()),
        lease: Some(lease_watch.clone()),
        lease_control: lease_task.as_ref().map(LeaseHandle::control),
        peers: Default::default(),
        proxy_url,
        mount_dir: Some(config.fuse.dir.clone()),
        halts: Default::default(),
    };
    let http = tokio::spawn(litefs::http::serve(listener, store.clone(), meta));
    if !config.strict_verify {
        // strict-verify checked every database before mounting; otherwise
        // the clean-shutdown fast path is confirmed here, off the startup path.
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.verify_all());
    }
    if !config.skip_sync && !lease_watch.borrow().is_primary {
        info!("waiting to become primary or catch up with the primary before running exec (skip-sync: false)");
        let mut w = lease_watch.clone();
        tokio::select! {
            _ = ready.notified() => {}
            _ = w.wait_for(|s| s.is_primary) => {}
            sig = signals.recv() => {
                info!(signal = %sig, "signal received before catching up; shutting down");
                http.abort();
                if let Some((p, _)) = &proxy { p.abort(); }
                if let Some(r) = &replica { r.abort(); }
                if let Some(l) = lease_task { l.shutdown().await; }
                tokio::task::spawn_blocking(move || mount.unmount()).await?;
                store.close().context("recording position at shutdown")?;
                return Ok(0);
            }
        }
    }

    let promoter = (config.lease.promote && config.lease.candidate && lease_task.is_some())
        .then(|| tokio::spawn(promote_when_synced(local_api, lease_watch.clone())));
    let background = spawn_background(store.clone(), config.data.retention_monitor_interval);
    let code = run_exec(
        &exec_entries,
        static_primary || config.lease.candidate,
        &app_env,
        &store,
        lease_task.as_mut(),
        signals,
    )
    .await;
    background.abort();
    if let Some(p) = promoter {
        p.abort();
    }
    http.abort();
    if let Some((p, _)) = &proxy {
        p.abort();
    }
    if let Some(r) = &replica {
        r.abort();
    }
    if let Some(l) = lease_task {
        // Hand the lease back so another candidate need not wait for the TTL.
        l.shutdown().await;
    }
    drop(static_tx);

    info!("unmounting");
    let unmounted = tokio::task::spawn_blocking(move || mount.unmount());
    if tokio::time::timeout(UNMOUNT_WAIT, unmounted).await.is_err() {
        // Detached already; the kernel ends the session when we exit.
        warn!("files in the mount are still open; exiting without waiting for them");
    }
    store.close().context("recording position at shutdown")?;
    let code = code?;
    info!(code, "exiting");
    Ok(code)
}

/// Runs the exec entries; without an app, waits for a signal. Returns the
/// code litefs exits with.
async fn run_exec(
    entries: &[ExecEntry],
    is_candidate: bool,
    env: &AppEnv,
    store: &Arc<Store>,
    lease: Option<&mut LeaseHandle>,
    signals: &mut Signals,
) -> Result<i32> {
    let fatal = wait_fatal(store.clone(), lease);
    tokio::pin!(fatal);
    let pre = exec::run_pre_commands(entries, is_candidate, env, signals);
    tokio::select! {
        res = pre => res?,
        (reason, code) = &mut fatal => {
            error!(%reason, "stopping");
            return Ok(code);
        }
    }
    let Some(entry) = exec::app_entry(entries, is_candidate) else {
        info!("no exec command; waiting for a signal");
        tokio::select! {
            sig = signals.recv() => info!(signal = %sig, "signal received, shutting down"),
            (reason, code) = &mut fatal => {
                error!(%reason, "stopping");
                return Ok(code);
            }
        }
        return Ok(0);
    };
    let mut app = App::spawn(entry, env)?;
    info!(cmd = %app.cmd(), pid = app.pid().unwrap_or(0), "app started");
    tokio::select! {
        code = app.wait_forwarding(signals) => {
            let code = code?;
            info!(code, "app exited");
            Ok(code)
        }
        (reason, code) = &mut fatal => {
            error!(%reason, "stopping the app");
            let _ = app.terminate(APP_STOP_GRACE).await;
            Ok(code)
        }
    }
}

/// Resolves once the node must stop: the store stopped taking writes (a
/// commit could not be captured), or the lease task gave up (this node may
/// not join the cluster). The reason and the exit code.
async fn wait_fatal(store: Arc<Store>, lease: Option<&mut LeaseHandle>) -> (String, i32) {
    let lease_failed = async {
        match lease {
            Some(l) => l.failed().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(lease_failed);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(reason) = store.fatal() {
                    return (format!("a commit could not be captured: {reason}"), EXIT_CAPTURE_FAILED);
                }
            }
            reason = &mut lease_failed => return (format!("lease: {reason}"), EXIT_LEASE_FAILED),
        }
    }
}

/// The lease as the startup log shows it: type, role and the primary.
fn describe_lease(config: &Config) -> String {
    let l = &config.lease;
    let kind = l.kind.map_or("none", |k| k.as_str());
    let mut s = format!("{kind}, candidate: {}", l.candidate);
    if !l.hostname.is_empty() {
        s += &format!(", hostname: {}", l.hostname);
    }
    if !l.advertise_url.is_empty() {
        s += &format!(", advertise-url: {}", l.advertise_url);
    }
    s
}

/// Starts the HTTP proxy when `proxy.target` is set; returns its task and
/// the URL it announces to other nodes (`proxy.advertise-url`, else its
/// bound address, with this node's host when bound to every interface).
async fn start_proxy(
    config: &Config,
    store: &Arc<Store>,
    lease: &litefs::lease::LeaseWatch,
    me: &identity::Identity,
) -> Result<Option<(tokio::task::JoinHandle<()>, String)>> {
    let pc = &config.proxy;
    if pc.target.is_empty() {
        return Ok(None);
    }
    let listener = litefs::http::bind(&pc.addr)
        .await
        .with_context(|| format!("listening on proxy.addr {:?}", pc.addr))?;
    let bound = listener.local_addr()?;
    let url = if !pc.advertise_url.is_empty() {
        pc.advertise_url.clone()
    } else {
        // Where others reach this node's HTTP API (its own, also on a
        // static replica) is where they reach its proxy, on another port.
        let host = url_host(&me.advertise_url).unwrap_or(&me.hostname);
        litefs::proxy::default_advertise_url(bound, host)
    };
    let opts = litefs::proxy::ProxyOptions::from_config(
        pc,
        &me.hostname,
        std::env::var("FLY_APP_NAME").ok(),
    );
    info!(addr = %bound, target = %pc.target, advertise = %url, "proxy listening");
    let proxy = litefs::proxy::Proxy::new(opts, store.clone(), lease.clone());
    Ok(Some((tokio::spawn(proxy.serve(listener)), url)))
}

/// The host of an `http(s)://host[:port][/...]` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let hostport = rest.split(['/', '?']).next()?;
    let host = match hostport.strip_prefix('[') {
        Some(v6) => return v6.split(']').next().filter(|h| !h.is_empty()),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

/// `lease.promote: true`: once this candidate follows a primary, ask it
/// (through this node's own `POST /promote`) to hand the lease over; again
/// every second until this node is primary. A node not yet connected or
/// caught up is refused by the primary and tries again.
async fn promote_when_synced(local_api: String, mut lease: litefs::lease::LeaseWatch) {
    let url = format!("{local_api}/promote");
    loop {
        if lease.borrow().is_primary {
            return;
        }
        if lease.borrow().primary.is_some() {
            match litefs::http::post(&url).await {
                Ok((200, _)) => {
                    info!("promoted: this node took the lease over (lease.promote)");
                    return;
                }
                Ok((status, body)) => {
                    debug!(status, body = body.trim(), "promotion not yet possible")
                }
                Err(e) => debug!("promotion not yet possible: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            changed = lease.changed() => {
                if changed.is_err() {
                    return; // the lease task has ended
                }
            }
        }
    }
}

/// What the lease task of a Consul or etcd lease needs from the node.
fn dynamic_lease(
    config: &Config,
    store: &Arc<Store>,
    hostname: &str,
    advertise_url: &str,
    proxy_url: Option<String>,
    ready: &Arc<tokio::sync::Notify>,
) -> (StoreRoles, LeaseOptions) {
    let roles = StoreRoles::new(
        store.clone(),
        hostname.to_string(),
        config.lease.reconnect_delay,
        Some(config.fuse.dir.clone()),
        ready.clone(),
    );
    let opts = LeaseOptions {
        candidate: config.lease.candidate,
        me: PrimaryInfo {
            hostname: hostname.to_string(),
            advertise_url: advertise_url.to_string(),
            // Replicas forward writes there (LiteFS nodes ignore the field).
            proxy_url,
        },
        retry_delay: config.lease.reconnect_delay,
        demote_delay: config.lease.demote_delay,
    };
    (roles, opts)
}

fn os_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Retention and the commit-rate log line.
fn spawn_background(
    store: Arc<Store>,
    retention_interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut second = tokio::time::interval(Duration::from_secs(1));
        let mut retention = tokio::time::interval(retention_interval.max(Duration::from_secs(1)));
        let mut last = store.tx_count();
        loop {
            tokio::select! {
                _ = second.tick() => {
                    let now = store.tx_count();
                    if now != last {
                        debug!(commits_per_sec = now - last, "commits");
                        last = now;
                    }
                }
                _ = retention.tick() => {
                    let s = store.clone();
                    match tokio::task::spawn_blocking(move || s.enforce_retention()).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => debug!(removed = n, "LTX files past retention removed"),
                        Ok(Err(e)) => warn!(error = %e, "retention failed"),
                        Err(e) => warn!(error = %e, "retention task failed"),
                    }
                }
            }
        }
    })
}
