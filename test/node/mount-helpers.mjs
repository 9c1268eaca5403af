// A real `litefs mount` for the tests and the benchmark: the binary built
// from this workspace, a litefs.yml in a temp dir, started in the background
// with no exec command, always stopped (SIGTERM, wait, `fusermount3 -uz`).

import { execFile, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { root } from './helpers.mjs'

const READY_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 15_000

/**
 * Why mount tests cannot run here, or null when they can: `litefs mount`
 * needs root and /dev/fuse, and cleanup falls back to `fusermount3`.
 */
export function mountUnavailableReason() {
  const missing = []
  if (process.getuid?.() !== 0) missing.push(`not running as root (uid ${process.getuid?.()})`)
  try {
    fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK)
  } catch (error) {
    missing.push(`/dev/fuse is not usable (${error.code})`)
  }
  if (spawnSync('fusermount3', ['--version']).error) missing.push('fusermount3 is not installed')
  return missing.length ? missing.join('; ') : null
}

let binary
/**
 * The `litefs` binary: `LITEFS_BIN` if set, else `target/debug/litefs`,
 * (re)built with `cargo build -p litefs-cli` so it is never stale (a no-op
 * when ./scripts/test's cargo test has just built it).
 */
export function litefsBinary() {
  if (binary) return binary
  if (process.env.LITEFS_BIN) return (binary = process.env.LITEFS_BIN)
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target')
  const bin = path.join(target, 'debug', 'litefs')
  const cargo = spawnSync('cargo', ['build', '-p', 'litefs-cli', '--quiet'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 20 * 60_000,
  })
  if (cargo.error?.code === 'ENOENT' && fs.existsSync(bin)) return (binary = bin)
  if (cargo.error || cargo.status !== 0) {
    throw new Error(
      `cargo build -p litefs-cli failed (${cargo.error?.message ?? `exit ${cargo.status}`}):\n${cargo.stderr}`,
    )
  }
  if (!fs.existsSync(bin)) throw new Error(`cargo build -p litefs-cli left no ${bin}`)
  return (binary = bin)
}

/** Whether `dir` is a mount point right now, per /proc/mounts. */
export function isMounted(dir) {
  const unescape = s => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some(line => line.split(' ')[1] !== undefined && unescape(line.split(' ')[1]) === dir)
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `fn` every 10 ms until it returns truthy; throws `what` after `timeoutMs`. */
export async function until(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const value = fn()
    if (value) return value
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms ${what}`)
    await sleep(10)
  }
}

const live = new Set()
process.on('exit', () => {
  // Last resort when a test process dies without its after() hooks: no time
  // to wait here, so kill and detach the mount.
  for (const m of live) {
    m.proc.kill('SIGKILL')
    spawnSync('fusermount3', ['-uz', m.mnt])
  }
})

/**
 * Starts `litefs mount` in the background (no exec command) and resolves
 * once `mnt` shows up in /proc/mounts.
 *
 * - `candidate`: true for a primary, false for a replica whose `.primary`
 *   names `hostname`;
 * - `dir`: where litefs.yml, mnt/ and data/ go (a new temp dir by default);
 * - `dataDir`: an existing data directory to use instead of `<dir>/data`;
 * - `advertiseUrl`: lease.advertise-url, for a replica the primary's node API;
 * - `extraYaml`: more litefs.yml lines (a `proxy:` section, say).
 */
export async function startMount({
  candidate = true,
  hostname = 'litefs-rs-test-primary',
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-rs-real-')),
  mnt = path.join(dir, 'mnt'),
  dataDir = path.join(dir, 'data'),
  advertiseUrl = 'http://127.0.0.1:20202',
  extraYaml = '',
} = {}) {
  fs.mkdirSync(mnt, { recursive: true })
  fs.mkdirSync(dataDir, { recursive: true })
  if (isMounted(mnt)) throw new Error(`${mnt} is already a mount point`)
  // The node API (http.addr) on a free loopback port, not LiteFS's :20202,
  // which another litefs on this machine may hold.
  const httpPort = await freePort()
  const config = path.join(dir, candidate ? 'litefs.yml' : 'litefs-replica.yml')
  fs.writeFileSync(
    config,
    [
      `fuse: { dir: ${JSON.stringify(mnt)} }`,
      `data: { dir: ${JSON.stringify(dataDir)} }`,
      `http: { addr: "127.0.0.1:${httpPort}" }`,
      `lease: { type: "static", candidate: ${candidate}, hostname: ${JSON.stringify(hostname)}, advertise-url: ${JSON.stringify(advertiseUrl)} }`,
      extraYaml,
      '',
    ].join('\n'),
  )
  const proc = spawn(litefsBinary(), ['mount', '-config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  })
  let log = ''
  const keep = chunk => {
    log = (log + chunk).slice(-20_000)
  }
  proc.stdout.setEncoding('utf8').on('data', keep)
  proc.stderr.setEncoding('utf8').on('data', keep)
  let exit = null
  const exited = new Promise(resolve =>
    proc.on('exit', (code, signal) => resolve((exit = { code, signal }))),
  )
  proc.on('error', error => keep(`\nspawn error: ${error.message}\n`))

  const m = {
    httpUrl: `http://127.0.0.1:${httpPort}`,
    dir,
    mnt,
    dataDir,
    config,
    hostname,
    proc,
    log: () => log,
    /**
     * SIGTERM, wait for the exit (SIGKILL after STOP_TIMEOUT_MS), and
     * detach the mount if it is still there. Resolves with
     * `{ code, signal, unmounted }`, where `unmounted` says whether litefs
     * unmounted by itself.
     */
    async stop() {
      if (exit === null) {
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS)
        await exited
        clearTimeout(timer)
      }
      const unmounted = !isMounted(mnt)
      if (!unmounted) spawnSync('fusermount3', ['-uz', mnt])
      live.delete(m)
      return { ...exit, unmounted }
    },
  }
  live.add(m)
  try {
    await until(
      () => {
        if (exit !== null) throw new Error(`litefs mount exited early (${JSON.stringify(exit)})`)
        return isMounted(mnt)
      },
      READY_TIMEOUT_MS,
      `waiting for ${mnt} in /proc/mounts`,
    )
  } catch (error) {
    await m.stop()
    error.message += `\nlitefs output:\n${log}`
    throw error
  }
  return m
}

/** Runs `sql` with the `sqlite3` CLI: a writer in another process than the test's. */
export function sqlite3Cli(file, sql) {
  return new Promise((resolve, reject) =>
    execFile('sqlite3', [file, sql], { timeout: 10_000 }, (error, stdout, stderr) =>
      error ? reject(Object.assign(error, { stderr })) : resolve(stdout),
    ),
  )
}
