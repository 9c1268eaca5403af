//! The primary's side of `POST /stream`: catch the replica up (missing LTX
//! files, or a snapshot when its position is unknown, past retention or
//! diverged), say READY, then send each new transaction as it commits and a
//! heartbeat every second while idle. Ends the stream the moment this node
//! stops being primary.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::replication::frame::Frame;
use crate::store::ltxlog::LtxEntry;
use crate::store::{Db, Event, Pos, Store};

pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const SEND_CHUNK: usize = 64 * 1024 - 1;
/// Large transfers (snapshots) log their progress this often.
pub const PROGRESS_EVERY: u64 = 64 << 20;

/// Why a stream stopped early; logged by the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("replica disconnected")]
    Disconnected,
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

type Tx = mpsc::Sender<Bytes>;

/// Runs one replica's stream until it disconnects or this node is no
/// longer primary. `out` carries the response body.
pub async fn stream(
    store: Arc<Store>,
    peer: Option<u64>,
    mut positions: BTreeMap<String, Pos>,
    out: Tx,
) -> Result<(), StreamError> {
    let mut events = store.subscribe();
    let mut dirty: BTreeSet<String> = positions.keys().cloned().collect();
    dirty.extend(store.dbs().iter().map(|d| d.name().to_string()));
    let mut ready_sent = false;
    let result = async {
        loop {
            // Later, a step-down is seen as its event, after the
            // transactions (and a handoff) before it.
            if !ready_sent && !store.is_primary() {
                return Ok(());
            }
            for name in std::mem::take(&mut dirty) {
                let Some(db) = store.db(&name) else { continue };
                let from = positions.get(&name).copied().unwrap_or_default();
                let to = catch_up(db, from, out.clone()).await?;
                positions.insert(name, to);
            }
            if !ready_sent {
                send(&out, frame_bytes(&Frame::Ready)).await?;
                send(&out, heartbeat()).await?;
                ready_sent = true;
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(Event::Tx { db, .. }) => { dirty.insert(db); }
                    Ok(Event::PrimaryChange { is_primary: false, .. }) => return Ok(()),
                    Ok(Event::Handoff { node_id, lease_id }) if Some(node_id) == peer => {
                        // Every transaction before the handoff has been sent:
                        // the replica is caught up when it reads this.
                        tracing::info!(node = %format!("{node_id:016X}"), "handing the lease to this replica");
                        send(&out, frame_bytes(&Frame::Handoff { lease_id })).await?;
                    }
                    Ok(Event::PrimaryChange { .. } | Event::Resync { .. } | Event::Handoff { .. }) => {}
                    Err(RecvError::Lagged(_)) => {
                        if !store.is_primary() {
                            return Ok(());
                        }
                        dirty.extend(store.dbs().iter().map(|d| d.name().to_string()))
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => send(&out, heartbeat()).await?,
            }
        }
    }
    .await;
    // Best effort: a replica that reads END reconnects at once.
    let _ = out.send(frame_bytes(&Frame::End)).await;
    result
}

async fn send(out: &Tx, b: Bytes) -> Result<(), StreamError> {
    out.send(b).await.map_err(|_| StreamError::Disconnected)
}

fn frame_bytes(f: &Frame) -> Bytes {
    let mut b = Vec::new();
    f.write_to(&mut b).expect("writing to a Vec cannot fail");
    Bytes::from(b)
}

fn heartbeat() -> Bytes {
    frame_bytes(&Frame::Heartbeat {
        timestamp: crate::store::ltxlog::now_ms(),
    })
}

/// Sends whatever takes the replica from `from` to this database's
/// position; returns the position it then has.
async fn catch_up(db: Arc<Db>, from: Pos, out: Tx) -> Result<Pos, StreamError> {
    tokio::task::spawn_blocking(move || catch_up_blocking(&db, from, &out))
        .await
        .map_err(|e| StreamError::Io(std::io::Error::other(e)))?
}

fn catch_up_blocking(db: &Db, mut client: Pos, out: &Tx) -> Result<Pos, StreamError> {
    if client.txid == 0 && db.commit_pages() == 0 {
        // Deleted (see `store/dropdb.rs`): a replica that never had it
        // has nothing to forget.
        return Ok(client);
    }
    let mut listing = None;
    loop {
        let pos = db.log_pos();
        if client.txid > pos.txid || (client.txid == pos.txid && client != pos) {
            tracing::info!(db = db.name(), replica = %client, primary = %pos, "replica diverged from this primary; sending a snapshot");
            client = Pos::default();
        }
        if client.txid >= pos.txid {
            return Ok(client);
        }
        client = match next_file(db, client, &mut listing)? {
            Some((path, h, post)) => {
                send_ltx(out, db.name(), File::open(&path)?)?;
                Pos::new(h.max_txid, post)
            }
            None => send_snapshot(db, out)?,
        };
        let hwm = Frame::Hwm {
            txid: client.txid,
            name: db.name().to_string(),
        };
        out.blocking_send(frame_bytes(&hwm))
            .map_err(|_| StreamError::Disconnected)?;
    }
}

/// The LTX file that follows `client`, if the log still has it and it
/// chains onto the replica's checksum. `listing` caches the log's file
/// list between calls of one catch-up.
fn next_file(
    db: &Db,
    client: Pos,
    listing: &mut Option<Vec<LtxEntry>>,
) -> Result<Option<(std::path::PathBuf, ltx::Header, u64)>, StreamError> {
    if client.txid == 0 {
        return Ok(None);
    }
    // Most transactions are one file each: open it by name. Group commits
    // write multi-transaction files; those are found in a listing, made
    // once per catch-up and again only when it is out of date (listing per
    // file made catch-up slow down with the size of the log).
    let next = client.txid + 1;
    let direct = db.ltx_log().path_for(next, next);
    let find = |l: &Vec<LtxEntry>| l.iter().find(|e| e.min_txid == next).cloned();
    let entry = if direct.exists() {
        Some(LtxEntry {
            min_txid: next,
            max_txid: next,
            path: direct,
        })
    } else {
        match listing.as_ref().and_then(find) {
            Some(e) if e.path.exists() => Some(e),
            _ => {
                let fresh = db.ltx_log().list()?;
                let found = find(&fresh);
                *listing = Some(fresh);
                found
            }
        }
    };
    let Some(entry) = entry else {
        tracing::info!(
            db = db.name(),
            txid = client.txid + 1,
            "transaction no longer in the log; sending a snapshot"
        );
        return Ok(None);
    };
    let f = File::open(&entry.path)?;
    let (h, t) =
        ltx::verify(BufReader::new(f)).map_err(|source| crate::store::StoreError::Ltx {
            path: entry.path.clone(),
            source,
        })?;
    if h.pre_apply_checksum != client.post_apply_checksum {
        tracing::info!(
            db = db.name(),
            txid = client.txid,
            "replica checksum differs from this primary's; sending a snapshot"
        );
        return Ok(None);
    }
    Ok(Some((entry.path, h, t.post_apply_checksum)))
}

fn send_snapshot(db: &Db, out: &Tx) -> Result<Pos, StreamError> {
    let mut tmp = tempfile_in(db)?;
    let (h, t) = db.write_snapshot(std::io::BufWriter::new(&mut tmp))?;
    tmp.seek(SeekFrom::Start(0))?;
    tracing::info!(
        db = db.name(),
        txid = h.max_txid,
        bytes = tmp.metadata()?.len(),
        "sending snapshot"
    );
    send_ltx(out, db.name(), tmp)?;
    Ok(Pos::new(h.max_txid, t.post_apply_checksum))
}

/// An unnamed temp file beside the database (same disk, gone on close).
fn tempfile_in(db: &Db) -> std::io::Result<File> {
    let path = db
        .dir()
        .join(format!(".snapshot-{}.tmp", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

/// An LTX frame, then the file as LiteFS's chunked stream.
fn send_ltx(out: &Tx, name: &str, mut f: File) -> Result<(), StreamError> {
    let frame = Frame::Ltx {
        size: 0,
        name: name.to_string(),
    };
    out.blocking_send(frame_bytes(&frame))
        .map_err(|_| StreamError::Disconnected)?;
    let mut buf = vec![0u8; SEND_CHUNK];
    let total = f.metadata()?.len();
    let mut sent = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        sent += n as u64;
        if total >= PROGRESS_EVERY && sent / PROGRESS_EVERY != (sent - n as u64) / PROGRESS_EVERY {
            tracing::info!(
                db = name,
                sent_mb = sent >> 20,
                total_mb = total >> 20,
                "sending LTX file"
            );
        }
        let mut chunk = Vec::with_capacity(n + 2);
        chunk.extend_from_slice(&(n as u16).to_be_bytes());
        chunk.extend_from_slice(&buf[..n]);
        out.blocking_send(Bytes::from(chunk))
            .map_err(|_| StreamError::Disconnected)?;
        if n < buf.len() {
            break;
        }
    }
    out.blocking_send(Bytes::from_static(&[0, 0]))
        .map_err(|_| StreamError::Disconnected)
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
