'use strict'
// The `litefs-rs` entry point: litefs-js's API under the same names, with the
// same environment variables, defaults and result shapes, backed by the
// native addon for reading and waiting on the mount. Where litefs-js is
// wrong (see README.md of crates/litefs-node) this deliberately differs.

const os = require('node:os')
const dns = require('node:dns')
const cookie = require('./cookie.cjs')
const PREFIX = 'litefs-rs:'
const native = loadNative()

/**
 * The addon, or an error that says how to get it: installed from source, it
 * exists only if npm ran the package's install script.
 */
function loadNative() {
  try {
    return require('./native.cjs')
  } catch (error) {
    error.message =
      `${PREFIX} the native addon is not built for this machine. Installed from a ` +
      'checkout, git URL or tarball it is compiled by the install script: run ' +
      '`npm rebuild litefs-rs --foreground-scripts` with Rust (cargo) on PATH, and allow the ' +
      'script if npm skipped it (`npm install-scripts approve litefs-rs`).\n' +
      error.message
    throw error
  }
}
const TXID_NUM_COOKIE_NAME = 'txnum'
const DEFAULT_HTTP_URL = 'http://localhost:20202'

function litefsDirOf(litefsDir, fn) {
  // Only `undefined` takes the default, as with litefs-js's default parameter.
  const dir = litefsDir === undefined ? process.env.LITEFS_DIR : litefsDir
  if (!dir) {
    throw new Error(
      `${PREFIX} LITEFS_DIR is not defined. You must either set the LITEFS_DIR environment variable or pass the litefsDir argument to ${fn}`,
    )
  }
  return dir
}

function databaseFilenameOf(databaseFilename, fn) {
  const db = databaseFilename === undefined ? process.env.DATABASE_FILENAME : databaseFilename
  if (!db) {
    throw new Error(
      `${PREFIX} DATABASE_FILENAME is not defined. You must either set the DATABASE_FILENAME environment variable or pass the databaseFilename argument to ${fn}`,
    )
  }
  return db
}

/**
 * The sidecar's HTTP API, used only when asked for: a URL in the option or
 * LITEFS_HTTP_URL, or `true` for the sidecar's default address.
 */
function httpUrlOf(httpUrl) {
  const url = httpUrl === undefined ? process.env.LITEFS_HTTP_URL : httpUrl
  if (!url) return null
  if (url === true || url === '1' || url === 'true') return DEFAULT_HTTP_URL
  return String(url).replace(/\/+$/, '')
}

/**
 * This instance's name: LITEFS_HOSTNAME, which litefs sets for the commands
 * it runs (several nodes on one machine share the OS hostname), else the OS
 * hostname as litefs-js uses. `undefined` lets the addon ask the OS itself.
 */
function currentInstanceName() {
  return process.env.LITEFS_HOSTNAME || undefined
}

function appPort() {
  return process.env.INTERNAL_PORT ?? process.env.PORT
}

/**
 * Where the primary's app can be reached for forwarding a request: Fly's
 * internal domain on Fly, `http://<hostname>:<port>` elsewhere (or
 * LITEFS_PRIMARY_URL_TEMPLATE with `{hostname}`), null without a port.
 */
function primaryUrlFor(primaryInstance) {
  const template = process.env.LITEFS_PRIMARY_URL_TEMPLATE
  if (template) return template.split('{hostname}').join(primaryInstance)
  const port = appPort()
  if (port === undefined) return null
  return getInternalInstanceDomain(primaryInstance, port)
}

function withPrimaryUrl(info) {
  return {
    primaryInstance: info.primaryInstance,
    currentInstance: info.currentInstance,
    currentIsPrimary: info.currentIsPrimary,
    primaryUrl: primaryUrlFor(info.primaryInstance),
  }
}

// Concurrent reads of the same files share one read. On a FUSE mount every
// open/read/close is a round trip to the LiteFS daemon, so 32 requests each
// reading `-pos` cost 32 times what one read does, for the same answer. A
// call never gets a result older than itself: with no read of its key under
// way it starts one; otherwise it joins the *next* read, which starts when
// the current one settles, i.e. after this call was made. So a commit that
// finished before the call is always seen (read-your-writes for the txnum
// cookie holds), and at most one read per key is in the thread pool at once.
const instanceInfoReads = new Map()
const txNumberReads = new Map()

function sharedRead(reads, key, read) {
  const slot = reads.get(key)
  if (slot === undefined) {
    const fresh = { next: null }
    reads.set(key, fresh)
    return startRead(reads, key, fresh, read)
  }
  if (slot.next === null) {
    let resolve, reject
    const promise = new Promise((res, rej) => {
      resolve = res
      reject = rej
    })
    slot.next = { promise, resolve, reject, read }
  }
  return slot.next.promise
}

function readTxNumberShared(dir, db) {
  return sharedRead(txNumberReads, `${dir}\0${db}`, () => native.readTxNumber(dir, db))
}

function startRead(reads, key, slot, read) {
  let promise
  try {
    promise = read()
  } catch (err) {
    promise = Promise.reject(err)
  }
  // Registered before any caller's await, so the next read is under way
  // before the callers of this one run again (and they then queue behind it).
  const settled = () => {
    const next = slot.next
    if (next === null) {
      reads.delete(key)
      return
    }
    slot.next = null
    startRead(reads, key, slot, next.read).then(next.resolve, next.reject)
  }
  promise.then(settled, settled)
  return promise
}

/**
 * Who is primary. No `.primary` file means this instance is the primary;
 * otherwise the file names the primary's hostname. Read off the JS thread.
 */
async function getInstanceInfo(litefsDir) {
  const dir = litefsDirOf(litefsDir, 'getInstanceInfo')
  const current = currentInstanceName()
  return withPrimaryUrl(
    await sharedRead(instanceInfoReads, `${dir}\0${current ?? ''}`, () =>
      native.readInstanceInfo(dir, current),
    ),
  )
}

function getInstanceInfoSync(litefsDir) {
  const dir = litefsDirOf(litefsDir, 'getInstanceInfoSync')
  return withPrimaryUrl(native.readInstanceInfoSync(dir, currentInstanceName()))
}

/** The local TXID of the database, 0 when its `-pos` file does not exist. */
async function getTxNumber(litefsDir, databaseFilename) {
  const dir = litefsDirOf(litefsDir, 'getTxNumber')
  const db = databaseFilenameOf(databaseFilename, 'getTxNumber')
  return readTxNumberShared(dir, db)
}

function getTxNumberSync(litefsDir, databaseFilename) {
  const dir = litefsDirOf(litefsDir, 'getTxNumberSync')
  const db = databaseFilenameOf(databaseFilename, 'getTxNumberSync')
  return native.readTxNumberSync(dir, db)
}

function checkTxNumber(value, name) {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${PREFIX} ${name} must be a finite number, got ${String(value)}`)
  }
}

function checkMs(value, name) {
  if (typeof value !== 'number' || !(value >= 0)) {
    throw new TypeError(`${PREFIX} ${name} must be a non-negative number, got ${String(value)}`)
  }
}

/**
 * Resolves true once the local TXID reaches `clientTxNumber`, false when
 * `timeoutMs` passes first. Woken by inotify or the sidecar's `/events`,
 * re-checked every `intervalMs` as a backstop.
 */
async function waitForUpToDateTxNumber(
  clientTxNumber,
  { litefsDir, databaseFilename, timeoutMs = 500, intervalMs = 30, httpUrl } = {},
) {
  checkTxNumber(clientTxNumber, 'clientTxNumber')
  checkMs(timeoutMs, 'timeoutMs')
  checkMs(intervalMs, 'intervalMs')
  const dir = litefsDirOf(litefsDir, 'waitForUpToDateTxNumber')
  const db = databaseFilenameOf(databaseFilename, 'waitForUpToDateTxNumber')
  if ((await readTxNumberShared(dir, db)) >= clientTxNumber) return true
  const reached = await native.waitForTxNumber(
    dir,
    db,
    clientTxNumber,
    timeoutMs,
    intervalMs,
    httpUrlOf(httpUrl),
  )
  if (reached !== null) return true
  console.error(`${PREFIX} Timed out waiting for tx number 🚨`)
  return false
}

function getTxSetCookieHeader(value, options) {
  return cookie.serialize(TXID_NUM_COOKIE_NAME, String(value), {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: true,
    ...options,
  })
}

function deleteCookieHeader() {
  return getTxSetCookieHeader(0, { expires: new Date(0) })
}

/**
 * Decides what to do with a request's `txnum` cookie: `ok` (no cookie),
 * `delete-cookie` (this instance has caught up, or is the primary), or
 * `replay` (still behind after waiting: send it to the primary).
 */
async function checkCookieForTransactionalConsistency(cookieHeader) {
  const cookies = cookieHeader ? cookie.parse(cookieHeader) : {}
  const txCookieValue = cookies[TXID_NUM_COOKIE_NAME]
  const txCookieNumber = Number(txCookieValue)
  if (!Number.isFinite(txCookieNumber)) {
    if (txCookieValue) {
      console.error(`${PREFIX} Invalid tx number in cookie: ${txCookieValue}. Deleting cookie.`)
      return { type: 'delete-cookie', setCookieHeader: deleteCookieHeader() }
    }
    return { type: 'ok' }
  }
  const { primaryInstance, currentIsPrimary } = await getInstanceInfo()
  if (currentIsPrimary) {
    const currentTxNumber = await getTxNumber()
    if (txCookieNumber > currentTxNumber) {
      console.error(
        `${PREFIX} User somehow had a newer tx number (${txCookieNumber}) than the primary instance (${currentTxNumber}). Deleting cookie.`,
      )
    }
    return { type: 'delete-cookie', setCookieHeader: deleteCookieHeader() }
  }
  if (await waitForUpToDateTxNumber(txCookieNumber)) {
    return { type: 'delete-cookie', setCookieHeader: deleteCookieHeader() }
  }
  return {
    type: 'replay',
    flyReplayHeader: `instance=${primaryInstance}`,
    instance: primaryInstance,
  }
}

/**
 * The base URL of an instance's app: Fly's `<instance>.vm.<app>.internal`
 * on Fly, the hostname itself elsewhere (litefs-js would put "undefined"
 * into the domain there).
 */
function getInternalInstanceDomain(instance, port = appPort()) {
  if (port === undefined) {
    throw new Error(`${PREFIX} INTERNAL_PORT or PORT must be set or a port must be supplied`)
  }
  const app = process.env.FLY_APP_NAME
  if (!app) return `http://${instance}:${port}`
  return `http://${instance}.vm.${app}.internal:${port}`
}

function parseVmsTxt(records) {
  const instances = {}
  for (const entry of records.flat().flatMap(r => r.split(','))) {
    const [instanceId, region] = entry.split(' ')
    if (instanceId && region) instances[instanceId] = region
  }
  return instances
}

/** This node and its primary as the mount shows them. */
function instancesFromMount() {
  const instances = { [currentInstanceName() ?? os.hostname()]: 'local' }
  const dir = process.env.LITEFS_DIR
  if (dir) {
    try {
      const { primaryInstance } = native.readInstanceInfoSync(dir, currentInstanceName())
      if (!(primaryInstance in instances)) instances[primaryInstance] = 'local'
    } catch (error) {
      console.error(`${PREFIX} Error reading the primary from ${dir}`, error)
    }
  }
  return instances
}

async function instancesFromSidecar(url) {
  const res = await fetch(`${url}/info`, { signal: AbortSignal.timeout(2000) })
  if (!res.ok) throw new Error(`${PREFIX} GET ${url}/info answered ${res.status}`)
  const info = await res.json()
  if (Array.isArray(info.nodes)) {
    const instances = {}
    for (const node of info.nodes) {
      if (node && node.hostname) instances[node.hostname] = node.region || 'local'
    }
    return instances
  }
  const instances = { [info.hostname || currentInstanceName() || os.hostname()]: 'local' }
  if (!info.isPrimary) {
    for (const name of Object.keys(instancesFromMount())) instances[name] ??= 'local'
  }
  return instances
}

/**
 * Instance ids mapped to their region. On Fly from the `vms.<app>.internal`
 * TXT record; elsewhere from the sidecar's `/info` (when LITEFS_HTTP_URL is
 * set) or the mount: this node plus the primary named in `.primary`.
 */
async function getAllInstances({ httpUrl } = {}) {
  const app = process.env.FLY_APP_NAME
  if (!app) {
    const url = httpUrlOf(httpUrl)
    if (url) {
      try {
        return await instancesFromSidecar(url)
      } catch (error) {
        console.error(`${PREFIX} Error getting all instances from ${url}`, error)
      }
    }
    return instancesFromMount()
  }
  try {
    return parseVmsTxt(await dns.promises.resolveTxt(`vms.${app}.internal`))
  } catch (error) {
    console.error(`${PREFIX} Error getting all instances`, error)
    return { [currentInstanceName() ?? os.hostname()]: process.env.FLY_REGION ?? 'local' }
  }
}

let nextWaitId = 1
function newWaitId() {
  const id = nextWaitId
  nextWaitId = nextWaitId >= 0xffffffff ? 1 : nextWaitId + 1
  return id
}

function abortError(signal) {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError')
}

/**
 * Resolves with the local TXID once it reaches `txNumber`. Rejects on
 * `timeoutMs` (code ETIMEDOUT) or when `signal` aborts. Without a timeout it
 * waits as long as it takes.
 */
async function onTxNumber(
  txNumber,
  { litefsDir, databaseFilename, timeoutMs, intervalMs, httpUrl, signal } = {},
) {
  checkTxNumber(txNumber, 'txNumber')
  if (timeoutMs !== undefined) checkMs(timeoutMs, 'timeoutMs')
  const dir = litefsDirOf(litefsDir, 'onTxNumber')
  const db = databaseFilenameOf(databaseFilename, 'onTxNumber')
  const url = httpUrlOf(httpUrl)
  if (intervalMs === undefined) intervalMs = url ? 1000 : 30
  checkMs(intervalMs, 'intervalMs')
  if (signal?.aborted) throw abortError(signal)
  const current = await native.readTxNumber(dir, db)
  if (current >= txNumber) return current
  const id = newWaitId()
  const onAbort = () => native.cancelWait(id)
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const reached = await native.waitForTxNumber(
      dir,
      db,
      txNumber,
      timeoutMs ?? null,
      intervalMs,
      url,
      id,
    )
    if (reached !== null) return reached
    if (signal?.aborted) throw abortError(signal)
    const error = new Error(
      `${PREFIX} timed out after ${timeoutMs} ms waiting for tx number ${txNumber}`,
    )
    error.code = 'ETIMEDOUT'
    throw error
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * Calls `callback(info)` each time the primary changes, until `close()`.
 * Read errors go to `onError` (default: logged) and the watch carries on.
 */
function watchPrimary(callback, { litefsDir, intervalMs, httpUrl, onError } = {}) {
  if (typeof callback !== 'function') {
    throw new TypeError(`${PREFIX} watchPrimary needs a callback function`)
  }
  const dir = litefsDirOf(litefsDir, 'watchPrimary')
  const url = httpUrlOf(httpUrl)
  if (intervalMs === undefined) intervalMs = url ? 1000 : 30
  checkMs(intervalMs, 'intervalMs')
  const report = onError ?? (error => console.error(`${PREFIX} watchPrimary:`, error))
  const id = newWaitId()
  let closed = false
  let waiting = false
  let known = null

  const loop = async () => {
    while (!closed) {
      try {
        const current = currentInstanceName()
        if (known === null) known = (await native.readInstanceInfo(dir, current)).primaryInstance
        waiting = true
        const info = await native.waitForPrimaryChange(
          dir,
          known,
          null,
          intervalMs,
          url,
          id,
          current,
        )
        waiting = false
        if (closed || info === null) return
        known = info.primaryInstance
        callback(withPrimaryUrl(info))
      } catch (error) {
        waiting = false
        if (closed) return
        report(error)
        await new Promise(resolve => setTimeout(resolve, Math.max(intervalMs, 10)))
      }
    }
  }
  const done = loop()

  const close = () => {
    if (closed) return done
    closed = true
    if (waiting) native.cancelWait(id)
    return done
  }
  const watcher = { close }
  if (Symbol.dispose) watcher[Symbol.dispose] = close
  return watcher
}

/** Parses the text of a `-pos` file (`%016x/%016x`, padding optional). */
function parsePos(text) {
  return native.parsePos(String(text))
}

module.exports = {
  TXID_NUM_COOKIE_NAME,
  getInstanceInfo,
  getInstanceInfoSync,
  getTxNumber,
  getTxNumberSync,
  waitForUpToDateTxNumber,
  getTxSetCookieHeader,
  checkCookieForTransactionalConsistency,
  getInternalInstanceDomain,
  getAllInstances,
  onTxNumber,
  watchPrimary,
  parsePos,
}
