//! N-API surface of the `litefs-rs` npm package. The JS in `js/` owns the
//! public API (names, defaults, environment variables, litefs-js
//! compatibility); this addon owns reading the mount and waiting on it:
//! file reads run on libuv's thread pool (async) or inline (sync), and waits
//! run on napi-rs's Tokio runtime, woken by inotify or the sidecar's
//! `/events`.

use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

pub mod events;
pub mod files;
pub mod signal;
pub mod wait;

fn to_napi(e: files::FileError) -> Error {
    Error::from_reason(format!("litefs-rs: {e}"))
}

#[napi(object)]
pub struct InstanceInfo {
    pub primary_instance: String,
    pub current_instance: String,
    pub current_is_primary: bool,
}

impl From<files::InstanceInfo> for InstanceInfo {
    fn from(i: files::InstanceInfo) -> Self {
        InstanceInfo {
            primary_instance: i.primary_instance,
            current_instance: i.current_instance,
            current_is_primary: i.current_is_primary,
        }
    }
}

pub struct ReadInstanceInfo {
    dir: PathBuf,
    current: Option<String>,
}

impl Task for ReadInstanceInfo {
    type Output = files::InstanceInfo;
    type JsValue = InstanceInfo;

    fn compute(&mut self) -> Result<Self::Output> {
        files::read_instance_info(&self.dir, self.current.as_deref()).map_err(to_napi)
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output.into())
    }
}

/// Who is primary, read from `<litefsDir>/.primary` off the JS thread.
/// `currentInstance` names this instance (the OS hostname when absent).
#[napi(ts_return_type = "Promise<InstanceInfo>")]
pub fn read_instance_info(
    litefs_dir: String,
    current_instance: Option<String>,
) -> AsyncTask<ReadInstanceInfo> {
    AsyncTask::new(ReadInstanceInfo {
        dir: litefs_dir.into(),
        current: current_instance,
    })
}

#[napi]
pub fn read_instance_info_sync(
    litefs_dir: String,
    current_instance: Option<String>,
) -> Result<InstanceInfo> {
    files::read_instance_info(litefs_dir.as_ref(), current_instance.as_deref())
        .map(Into::into)
        .map_err(to_napi)
}

pub struct ReadTxNumber {
    dir: PathBuf,
    db: String,
}

impl Task for ReadTxNumber {
    type Output = u64;
    type JsValue = f64;

    fn compute(&mut self) -> Result<Self::Output> {
        files::read_tx_number(&self.dir, &self.db).map_err(to_napi)
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        // Exact: read_tx_number refuses values past 2^53 - 1.
        Ok(output as f64)
    }
}

/// The TXID in `<litefsDir>/<db>-pos`, 0 when the file does not exist.
#[napi(ts_return_type = "Promise<number>")]
pub fn read_tx_number(litefs_dir: String, database_filename: String) -> AsyncTask<ReadTxNumber> {
    AsyncTask::new(ReadTxNumber {
        dir: litefs_dir.into(),
        db: database_filename,
    })
}

#[napi]
pub fn read_tx_number_sync(litefs_dir: String, database_filename: String) -> Result<f64> {
    files::read_tx_number(litefs_dir.as_ref(), &database_filename)
        .map(|n| n as f64)
        .map_err(to_napi)
}

#[napi(object)]
pub struct Position {
    pub tx_number: f64,
    /// TXID as LiteFS prints it: 16 lower-case hex digits.
    pub txid: String,
    pub checksum: String,
}

/// Parses the text of a `-pos` file; throws on anything LiteFS never wrote.
#[napi]
pub fn parse_pos(text: String) -> Result<Position> {
    let pos = files::parse_pos(&text).ok_or_else(|| {
        Error::from_reason(format!(
            "litefs-rs: cannot parse position {text:?}: expected \"<txid hex>/<checksum hex>\""
        ))
    })?;
    if pos.txid > files::MAX_SAFE_INTEGER {
        return Err(Error::from_reason(format!(
            "litefs-rs: TXID {} is larger than Number.MAX_SAFE_INTEGER",
            pos.txid
        )));
    }
    Ok(Position {
        tx_number: pos.txid as f64,
        txid: format!("{:016x}", pos.txid),
        checksum: format!("{:016x}", pos.checksum),
    })
}

fn duration_ms(ms: f64, what: &str) -> Result<Duration> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(Error::from_reason(format!(
            "litefs-rs: {what} must be a non-negative number of milliseconds, got {ms}"
        )));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// The options both waits take from JS, validated.
fn wait_options<'a>(
    dir: &'a std::path::Path,
    events_url: Option<&'a str>,
    timeout_ms: Option<f64>,
    poll_ms: f64,
    wait_id: Option<u32>,
) -> Result<wait::WaitOptions<'a>> {
    Ok(wait::WaitOptions {
        dir,
        events_url,
        poll: duration_ms(poll_ms, "intervalMs")?.max(Duration::from_millis(1)),
        timeout: timeout_ms
            .map(|t| duration_ms(t, "timeoutMs"))
            .transpose()?,
        cancel_id: wait_id,
    })
}

/// Resolves with the TXID once `<db>-pos` reaches `target`, or `null` when
/// `timeoutMs` passes or the wait is cancelled with `cancelWait(waitId)`.
#[napi]
pub async fn wait_for_tx_number(
    litefs_dir: String,
    database_filename: String,
    target: f64,
    timeout_ms: Option<f64>,
    poll_ms: f64,
    events_url: Option<String>,
    wait_id: Option<u32>,
) -> Result<Option<f64>> {
    let dir = PathBuf::from(litefs_dir);
    let opts = wait_options(&dir, events_url.as_deref(), timeout_ms, poll_ms, wait_id)?;
    wait::wait_for(opts, || {
        match files::read_tx_number(&dir, &database_filename) {
            Ok(n) => Ok((n as f64 >= target).then_some(n as f64)),
            // A writer that truncates before writing (anything but LiteFS, whose
            // -pos is served whole) is caught mid-write: look again on the next
            // wake-up rather than failing the wait.
            Err(files::FileError::Parse { content, .. }) if content.trim().is_empty() => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(to_napi)
}

/// Resolves with the instance info once `.primary` names someone other than
/// `knownPrimary`, or `null` on timeout or cancellation.
#[napi]
pub async fn wait_for_primary_change(
    litefs_dir: String,
    known_primary: String,
    timeout_ms: Option<f64>,
    poll_ms: f64,
    events_url: Option<String>,
    wait_id: Option<u32>,
    current_instance: Option<String>,
) -> Result<Option<InstanceInfo>> {
    let dir = PathBuf::from(litefs_dir);
    let opts = wait_options(&dir, events_url.as_deref(), timeout_ms, poll_ms, wait_id)?;
    wait::wait_for(opts, || {
        let info = files::read_instance_info(&dir, current_instance.as_deref())?;
        Ok((info.primary_instance != known_primary).then(|| info.into()))
    })
    .await
    .map_err(to_napi)
}

/// Ends the wait started with `waitId`, which then resolves with `null`.
#[napi]
pub fn cancel_wait(wait_id: u32) {
    wait::cancel(wait_id);
}
