//! The replica's side: connect to the primary's `/stream` (HTTP/2 without
//! TLS, as LiteFS does), send this node's positions, and apply what comes
//! back, one transaction at a time, each under SQLite's exclusive lock taken
//! through the mount. Reconnects after `reconnect-delay` when the stream
//! breaks; `.primary` is shown only while connected.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::replication::acks::HEADER_ACK;
use crate::replication::frame::{self, Frame, FrameError};
use crate::replication::lock::ExclusiveLock;
use crate::store::{Pos, Store, StoreError};

/// Largest LTX file accepted from a primary (a snapshot of a big database).
const MAX_LTX_BYTES: u64 = 1 << 40;
pub const HEADER_NODE_ID: &str = "Litefs-Id";
/// The fencing epoch: the primary's term on a stream response, the newest
/// the replica has followed on its request. LiteFS peers ignore it.
pub const HEADER_EPOCH: &str = "Litefs-Epoch";

#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The primary's advertised URL (`http://host:20202`).
    pub primary_url: String,
    /// The primary's hostname, shown in `.primary`.
    pub primary_hostname: String,
    pub reconnect_delay: Duration,
    /// The mount, to take SQLite's lock through; None in tests without one.
    pub mount_dir: Option<PathBuf>,
    /// Notified (one permit) each time the replica has caught up after
    /// connecting; `exec` waits for it unless `skip-sync` is set.
    pub ready: Arc<tokio::sync::Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid primary URL {0:?}")]
    Url(String),
    #[error("connect to {url}: {source}")]
    Connect { url: String, source: io::Error },
    #[error("HTTP/2 to {url}: {source}")]
    Http { url: String, source: hyper::Error },
    #[error("primary answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad stream from primary: {0}")]
    Frame(#[from] FrameError),
    #[error("applying transaction: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    StaleEpoch(#[from] crate::store::StaleEpoch),
    #[error("{0}")]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    ClusterId(#[from] crate::store::cluster_id::ClusterIdError),
}

/// Follows the primary until the task is aborted.
///
/// `.primary` names the primary from the start, connected or not: with no
/// `.primary` the Node helpers (like litefs-js) would take a replica that
/// lost its primary for the primary, and run migrations or skip
/// `ensurePrimary` on a node where every write fails.
pub async fn run(store: Arc<Store>, opts: ReplicaOptions) {
    let (_keep, stop) = tokio::sync::watch::channel(false);
    run_until(store, opts, stop).await
}

/// Follows the primary until `stop` turns true; then returns once every
/// transaction received whole has been applied (a node about to become
/// primary must not be applying a former primary's stream).
pub async fn run_until(
    store: Arc<Store>,
    opts: ReplicaOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    store.set_primary_hostname(Some(opts.primary_hostname.clone()));
    // The same failure every reconnect-delay (a primary that is down) is
    // logged once at warn, then at debug until something changes.
    let mut last_error = String::new();
    loop {
        if *stop.borrow() {
            return;
        }
        match stream_once_until(&store, &opts, &mut stop).await {
            Ok(()) => {
                last_error.clear();
                tracing::info!(primary = %opts.primary_url, "replication stream ended");
            }
            Err(e) => {
                let msg = e.to_string();
                if msg == last_error {
                    tracing::debug!(primary = %opts.primary_url, "replication stream: {msg}");
                } else {
                    tracing::warn!(primary = %opts.primary_url, "replication stream: {msg}");
                    last_error = msg;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.reconnect_delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn host_port(url: &str) -> Result<String, ClientError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::Url(url.to_string()))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(ClientError::Url(url.to_string()));
    }
    Ok(if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    })
}

/// One connection: returns when the stream ends or fails.
pub async fn stream_once(store: &Arc<Store>, opts: &ReplicaOptions) -> Result<(), ClientError> {
    let (_keep, mut stop) = tokio::sync::watch::channel(false);
    stream_once_until(store, opts, &mut stop).await
}

/// One connection, ended early (after applying what arrived whole) when
/// `stop` turns true.
async fn stream_once_until(
    store: &Arc<Store>,
    opts: &ReplicaOptions,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let connect = connect(store, opts);
    let (resp, conn, sender) = tokio::select! {
        r = connect => r?,
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    let applied = follow_stream(store, opts, resp, sender, stop).await;
    conn.abort();
    applied
}

/// The stream's response, the connection's task, and its sender (kept so
/// the connection lives as long as the stream).
type Connected = (
    hyper::Response<hyper::body::Incoming>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
);

/// Connects, checks this node's history against the primary's and opens
/// the stream.
async fn connect(store: &Arc<Store>, opts: &ReplicaOptions) -> Result<Connected, ClientError> {
    let addr = host_port(&opts.primary_url)?;
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|source| ClientError::Connect {
            url: opts.primary_url.clone(),
            source,
        })?;
    tcp.set_nodelay(true)?;
    let http_err = |source| ClientError::Http {
        url: opts.primary_url.clone(),
        source,
    };
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(http_err)?;
    let conn = tokio::spawn(conn);

    super::diverge::check(&mut sender, &addr, store).await?;
    let positions: BTreeMap<String, Pos> = store
        .dbs()
        .iter()
        .map(|d| (d.name().to_string(), d.pos()))
        .collect();
    let mut body = Vec::new();
    frame::write_pos_map(&mut body, &positions)?;
    let req = Request::post(format!("http://{addr}/stream"))
        .header(HEADER_NODE_ID, format!("{:016X}", store.node_id()))
        .header(HEADER_EPOCH, store.epoch().to_string())
        .body(Full::new(Bytes::from(body)))
        .expect("static request parts are valid");
    let resp = sender.send_request(req).await.map_err(http_err)?;
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    // LiteFS's rule: adopt the primary's cluster ID, or refuse another one.
    let cluster = resp
        .headers()
        .get(crate::store::cluster_id::HEADER_CLUSTER_ID)
        .and_then(|v| v.to_str().ok());
    crate::store::cluster_id::follow(store.data_dir(), cluster)?;
    // A primary that does not announce an epoch (LiteFS) is taken as is.
    if let Some(epoch) = resp
        .headers()
        .get(HEADER_EPOCH)
        .and_then(|v| v.to_str().ok())
    {
        let epoch: u64 = epoch.parse().map_err(|_| ClientError::Status {
            status: 200,
            body: format!("invalid {HEADER_EPOCH} header {epoch:?}"),
        })?;
        store.observe_epoch(epoch)?;
    }
    tracing::info!(primary = %opts.primary_url, epoch = store.epoch(), "connected to primary");
    Ok((resp, conn, sender))
}

/// Applies the stream until it ends, fails, or `stop` turns true.
async fn follow_stream(
    store: &Arc<Store>,
    opts: &ReplicaOptions,
    resp: hyper::Response<hyper::body::Incoming>,
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let http_err = |source| ClientError::Http {
        url: opts.primary_url.clone(),
        source,
    };
    // Zero-loss mode: a candidate tells the primary what it holds, when
    // asked to (a LiteFS primary never asks).
    let wants_acks = store.is_candidate() && resp.headers().contains_key(HEADER_ACK);
    let (ack_tx, acker) = if wants_acks {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = host_port(&opts.primary_url)?;
        let task = tokio::spawn(send_acks(store.clone(), addr, sender, rx));
        (Some(tx), Some(task))
    } else {
        drop(sender);
        (None, None)
    };
    // Frames are applied on a blocking thread: file I/O and lock waits.
    let (tx, rx) = std_mpsc::sync_channel::<Bytes>(64);
    let applier = {
        let store = store.clone();
        let mount = opts.mount_dir.clone();
        let ready = opts.ready.clone();
        tokio::task::spawn_blocking(move || {
            apply_frames(&store, mount, &ready, ChannelReader::new(rx), ack_tx)
        })
    };
    let mut body = resp.into_body();
    let mut events = store.subscribe();
    let resync = async {
        loop {
            match events.recv().await {
                Ok(crate::store::Event::Resync { db }) => return db,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await
                }
                _ => {}
            }
        }
    };
    let pump = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(http_err)?;
            if let Ok(data) = frame.into_data() {
                if tx.send(data).is_err() {
                    break;
                }
            }
        }
        Ok::<(), ClientError>(())
    };
    let pumped = tokio::select! {
        res = pump => res,
        db = resync => {
            tracing::info!(%db, "reconnecting to ask the primary for a snapshot");
            Ok(())
        }
        _ = stop.wait_for(|s| *s) => {
            tracing::info!(primary = %opts.primary_url, "no longer following this primary");
            Ok(())
        }
    };
    drop(tx);
    let applied = applier.await.map_err(|e| io::Error::other(e.to_string()));
    if let Some(task) = acker {
        task.abort();
    }
    applied?.and(pumped)
}

/// Sends what the applier reports held to the primary, on the stream's
/// connection. Positions that arrive while one acknowledgement is in
/// flight go together in the next one.
async fn send_acks(
    store: Arc<Store>,
    addr: String,
    mut sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(String, Pos)>,
) {
    while let Some((name, pos)) = rx.recv().await {
        let mut held = BTreeMap::new();
        held.insert(name, pos);
        while let Ok((name, pos)) = rx.try_recv() {
            held.insert(name, pos);
        }
        let mut body = Vec::new();
        if frame::write_pos_map(&mut body, &held).is_err() || sender.ready().await.is_err() {
            return;
        }
        let req = Request::post(format!("http://{addr}/ack"))
            .header(HEADER_NODE_ID, format!("{:016X}", store.node_id()))
            .header(HEADER_EPOCH, store.epoch().to_string())
            .body(Full::new(Bytes::from(body)))
            .expect("static request parts are valid");
        match sender.send_request(req).await {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => tracing::debug!(status = %resp.status(), "acknowledgement refused"),
            Err(e) => {
                tracing::debug!("acknowledgement not sent: {e}");
                return;
            }
        }
    }
}

fn apply_frames(
    store: &Store,
    mount: Option<PathBuf>,
    ready: &tokio::sync::Notify,
    mut r: ChannelReader,
    acks: Option<tokio::sync::mpsc::UnboundedSender<(String, Pos)>>,
) -> Result<(), ClientError> {
    let mut batch = Batch::default();
    // What an acknowledgement says: durable here (a candidate fsyncs
    // what it receives), whatever happens to this process next.
    let ack = |name: String, pos: Pos| {
        if let Some(tx) = &acks {
            let _ = tx.send((name, pos));
        }
    };
    let mut caught_up = false;
    let result = (|| {
        while let Some(frame) = Frame::read_from(&mut r)? {
            if let Frame::Ltx { name, .. } = &frame {
                let db = store.create_db_for_replication(name)?;
                let tmp = db.ltx_log().dir().join(format!(
                    "recv-{}-{}.ltx.tmp",
                    std::process::id(),
                    batch.files.len()
                ));
                batch.files.push((db, tmp.clone(), None));
                let checked = receive(&mut r, &tmp)?;
                if let Some(last) = batch.files.last_mut() {
                    last.2 = Some(checked);
                }
            }
            // Until READY the primary is catching us up: apply what it sends
            // together, under one lock, with one fsync and one cache drop.
            // After it, whatever has arrived as soon as the stream pauses.
            // The high-water mark after each LTX file is no reason to stop.
            if matches!(frame, Frame::Ltx { .. } | Frame::Hwm { .. }) {
                let full = batch.files.len() >= MAX_BATCH;
                if full || (caught_up && !r.has_buffered()) {
                    batch.apply(store, mount.as_deref(), &ack)?;
                }
                continue;
            }
            batch.apply(store, mount.as_deref(), &ack)?;
            match frame {
                Frame::Ltx { .. } => unreachable!("handled above"),
                Frame::Ready => {
                    caught_up = true;
                    // What this node already held counts too.
                    for d in store.dbs() {
                        ack(d.name().to_string(), d.pos());
                    }
                    tracing::info!("caught up with the primary");
                    ready.notify_one();
                }
                Frame::Heartbeat { timestamp } => store.set_primary_timestamp(timestamp),
                Frame::Hwm { .. } => {}
                Frame::End => return Ok(()),
                Frame::DropDb { name } => {
                    tracing::warn!(db = %name, "primary no longer has this database; keeping it")
                }
                Frame::Handoff { lease_id } => {
                    tracing::info!("the primary hands its lease to this node");
                    store.offer_handoff(lease_id);
                }
            }
        }
        batch.apply(store, mount.as_deref(), &ack)
    })();
    batch.discard();
    result
}

/// Most LTX files applied under one lock while catching up.
const MAX_BATCH: usize = 256;

/// Received LTX files waiting to be applied, in stream order, each with
/// its header and trailer once it arrived whole and verified.
#[derive(Default)]
struct Batch {
    files: Vec<(Arc<crate::store::Db>, PathBuf, Option<Verified>)>,
}

type Verified = (ltx::Header, ltx::Trailer);

impl Batch {
    /// Applies every file; returns the position each database reached.
    /// Applies every file; `held` gets each database's new position once
    /// it is durable here (before the database is written when the files
    /// are fsynced, else after).
    fn apply(
        &mut self,
        store: &Store,
        mount: Option<&std::path::Path>,
        held: &dyn Fn(String, Pos),
    ) -> Result<(), ClientError> {
        let mut i = 0;
        while i < self.files.len() {
            // A run of files for one database shares one lock.
            let db = self.files[i].0.clone();
            let run = self.files[i..]
                .iter()
                .take_while(|(d, _, _)| Arc::ptr_eq(d, &db))
                .count();
            // Readers are kept out from the first page written until their
            // cached pages are gone. A deleted database has no file to lock
            // and no readers (the mount shows no file).
            if let (Some(dir), true) = (mount, db.has_wal_frames()) {
                super::checkpoint::checkpoint_wal(store, &db, dir)?;
            }
            let _lock = match mount {
                Some(dir) if !db.is_dropped() => {
                    Some(ExclusiveLock::acquire(&dir.join(db.name()))?)
                }
                _ => None,
            };
            let run_files = &self.files[i..i + run];
            let paths: Vec<PathBuf> = run_files.iter().map(|(_, p, _)| p.clone()).collect();
            let checked: Option<Vec<Verified>> = run_files.iter().map(|(_, _, v)| *v).collect();
            let mut told = false;
            let applied = match checked {
                Some(headers) => db.apply_verified_batch_then(&paths, &headers, &mut |pos| {
                    told = true;
                    held(db.name().to_string(), pos)
                }),
                None => db.apply_ltx_batch(&paths),
            };
            if let Ok(pos) = &applied {
                tracing::debug!(db = db.name(), %pos, files = run, "transactions applied");
            }
            store.invalidate_cache(&db);
            let pos = applied?;
            if !told {
                held(db.name().to_string(), pos);
            }
            i += run;
        }
        self.files.clear();
        Ok(())
    }

    /// Removes files never applied (the stream broke or one failed).
    fn discard(&mut self) {
        for (_, tmp, _) in self.files.drain(..) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Receives one chunked LTX file into `tmp` and checks it before anything
/// is locked or written: a bad file from a peer never holds readers up.
fn receive(r: &mut ChannelReader, tmp: &std::path::Path) -> Result<Verified, ClientError> {
    let mut w = Progress {
        inner: BufWriter::new(File::create(tmp)?),
        written: 0,
    };
    frame::read_chunked(r, &mut w, MAX_LTX_BYTES)?;
    w.inner.into_inner().map_err(|e| e.into_error())?;
    let f = std::io::BufReader::new(File::open(tmp)?);
    Ok(ltx::verify(f).map_err(|source| StoreError::Ltx {
        path: tmp.to_path_buf(),
        source,
    })?)
}

/// Logs how far a large transfer (a snapshot) has come.
struct Progress<W> {
    inner: W,
    written: u64,
}

impl<W: std::io::Write> std::io::Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let every = super::server::PROGRESS_EVERY;
        if (self.written + n as u64) / every != self.written / every {
            tracing::info!(
                received_mb = (self.written + n as u64) >> 20,
                "receiving LTX file"
            );
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` over byte chunks arriving on a channel.
struct ChannelReader {
    rx: std_mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChannelReader {
    fn new(rx: std_mpsc::Receiver<Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl ChannelReader {
    /// Whether more stream bytes are already here (no wait needed).
    fn has_buffered(&mut self) -> bool {
        if !self.cur.is_empty() {
            return true;
        }
        match self.rx.try_recv() {
            Ok(b) => {
                self.cur = b;
                true
            }
            Err(_) => false,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}
