// A local litefs cluster for the demo and the browser test: a lease server
// (the in-repo Consul test server, or etcd), and nodes on 127.0.0.x, each a
// `litefs mount` process with its own data dir, mount, proxy and app (one of
// examples/, the counter by default, started by litefs through `exec`). Every
// node runs from that app's one litefs.yml, told apart by its environment.

import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

const sleep = ms => new Promise(r => setTimeout(r, ms))

/** A TCP port nothing listens on at `host`, as the kernel hands one out. */
export function freePort(host) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** GET `url` with a deadline; the parsed JSON body, or throws. */
export async function getJson(url, timeoutMs = 1000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  if (!res.ok) throw new Error(`${url}: ${res.status}`)
  return res.json()
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v) return v
    } catch (e) {
      last = e
    }
    await sleep(100)
  }
  throw new Error(
    `timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${last.message}` : ''}`,
  )
}

function binary(name, profile) {
  const dir = process.env.CARGO_TARGET_DIR
    ? path.resolve(process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target')
  const p = path.join(dir, profile, name)
  if (!fs.existsSync(p))
    throw new Error(
      `${p} not found: build it first (cargo build --${profile} -p ${name === 'litefs' ? 'litefs-cli' : name})`,
    )
  return p
}

/** Lazily unmounts `dir` if something (a killed node's FUSE mount) is mounted there. */
function unmount(dir) {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8')
  if (mounts.split('\n').some(l => l.split(' ')[1] === dir)) {
    spawnSync('fusermount3', ['-uz', dir], { stdio: 'ignore' })
  }
}

/** The counter's litefs.yml with its Consul lease swapped for etcd's. */
function etcdConfig(yml, endpoint, ttl, file) {
  const swapped = yml
    .replace(/type: "consul"/, 'type: "etcd"')
    .replace(
      /  consul:\n    url: "\$\{CONSUL_URL\}"\n    key: "([^"]+)"\n/,
      `  etcd:\n    endpoints: ["${endpoint}"]\n    key: "$1"\n    ttl: "${ttl}"\n`,
    )
  if (swapped === yml || !swapped.includes('etcd:')) {
    throw new Error(`${file} no longer has the consul lease block the demo rewrites for etcd`)
  }
  return swapped
}

/** The counter apps' readiness: /count answers with the migrated count. */
async function countReady(url) {
  return (await getJson(`${url}count`)).count !== null
}

export class Cluster {
  /**
   * @param {object} o
   * @param {string} o.dir where everything goes (data dirs, mounts, logs)
   * @param {string} [o.app] the directory under examples/ with the app and its litefs.yml
   * @param {'consul'|'etcd'} [o.lease]
   * @param {number} [o.nodes] how many (the first `candidates` are candidates)
   * @param {number} [o.candidates]
   * @param {'release'|'debug'} [o.profile] which cargo build's binaries to run
   * @param {string} [o.etcdTtl] the etcd lease's TTL
   * @param {(url: string) => Promise<boolean>} [o.ready] whether the app behind
   *   a node's proxy URL is serving (default: its /count has a count)
   */
  constructor({
    dir,
    app = 'counter',
    lease = 'consul',
    nodes = 3,
    candidates = 2,
    profile = 'release',
    etcdTtl = '5s',
    ready = countReady,
  }) {
    this.dir = dir
    this.appDir = path.join(repoRoot, 'examples', app)
    this.lease = lease
    this.count = nodes
    this.candidates = candidates
    this.profile = profile
    this.etcdTtl = etcdTtl
    this.ready = ready
    this.nodes = []
    this.server = null
    this.stopping = false
  }

  /** Starts the lease server, then the nodes, the first candidate first. */
  async start(progress = () => {}) {
    fs.mkdirSync(this.dir, { recursive: true })
    await this.#startLeaseServer(progress)
    let yml = fs.readFileSync(path.join(this.appDir, 'litefs.yml'), 'utf8')
    if (this.lease === 'etcd')
      yml = etcdConfig(yml, this.leaseUrl, this.etcdTtl, path.join(this.appDir, 'litefs.yml'))
    this.configPath = path.join(this.dir, 'litefs.yml')
    fs.writeFileSync(this.configPath, yml)

    for (let i = 1; i <= this.count; i++) {
      const ip = `127.0.0.${i}`
      this.nodes.push({
        name: `node-${i}`,
        ip,
        candidate: i <= this.candidates,
        httpPort: await freePort(ip),
        proxyPort: await freePort('0.0.0.0'),
        appPort: await freePort('127.0.0.1'),
        root: path.join(this.dir, `node-${i}`),
        proc: null,
        exited: null,
      })
    }
    // The first node alone, so that it is the one that creates the database
    // and runs the migrations; the others then join as replicas.
    const [first, ...rest] = this.nodes
    progress(`starting ${first.name} (candidate) and waiting for it to become primary`)
    this.startNode(first)
    await this.waitReady(first, 60000)
    await waitFor(
      `${first.name} to hold the lease`,
      async () => (await this.info(first))?.isPrimary,
      30000,
    )
    for (const n of rest) {
      progress(`starting ${n.name} (${n.candidate ? 'candidate' : 'not a candidate'})`)
      this.startNode(n)
    }
    await Promise.all(rest.map(n => this.waitReady(n, 60000)))
  }

  async #startLeaseServer(progress) {
    const port = await freePort('127.0.0.1')
    const log = fs.openSync(path.join(this.dir, `${this.lease}.log`), 'a')
    if (this.lease === 'consul') {
      progress(`starting the Consul test server on 127.0.0.1:${port}`)
      this.server = spawn(
        binary('consul-test-server', this.profile),
        ['--addr', `127.0.0.1:${port}`],
        {
          stdio: ['ignore', log, log],
        },
      )
      this.leaseUrl = `http://127.0.0.1:${port}`
    } else if (this.lease === 'etcd') {
      const peer = await freePort('127.0.0.1')
      progress(`starting etcd on 127.0.0.1:${port}`)
      const url = `http://127.0.0.1:${port}`
      const peerUrl = `http://127.0.0.1:${peer}`
      this.server = spawn(
        'etcd',
        [
          '--name',
          'demo',
          '--data-dir',
          path.join(this.dir, 'etcd'),
          '--listen-client-urls',
          url,
          '--advertise-client-urls',
          url,
          '--listen-peer-urls',
          peerUrl,
          '--initial-advertise-peer-urls',
          peerUrl,
          '--initial-cluster',
          `demo=${peerUrl}`,
        ],
        { stdio: ['ignore', log, log] },
      )
      this.leaseUrl = url
    } else {
      throw new Error(`unknown lease ${this.lease}: consul or etcd`)
    }
    fs.closeSync(log)
    const server = this.server
    server.once('error', e => progress(`${this.lease} failed to start: ${e.message}`))
    await waitFor(
      `the ${this.lease} server`,
      () =>
        new Promise((resolve, reject) => {
          if (server.exitCode !== null)
            return reject(
              new Error(`it exited (${server.exitCode}); see ${this.dir}/${this.lease}.log`),
            )
          const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)))
          s.once('error', () => resolve(false))
        }),
      15000,
    )
  }

  /** Starts (or restarts) one node's `litefs mount`, in its own process group. */
  startNode(n) {
    const mnt = path.join(n.root, 'mnt')
    unmount(mnt)
    fs.mkdirSync(mnt, { recursive: true })
    fs.mkdirSync(path.join(n.root, 'data'), { recursive: true })
    const log = fs.openSync(path.join(n.root, 'litefs.log'), 'a')
    n.proc = spawn(binary('litefs', this.profile), ['mount', '-config', this.configPath], {
      cwd: this.appDir,
      detached: true,
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        LITEFS_DIR: mnt,
        LITEFS_DATA: path.join(n.root, 'data'),
        LITEFS_HTTP: `${n.ip}:${n.httpPort}`,
        LITEFS_HOSTNAME: n.name,
        INTERNAL_PORT: String(n.proxyPort),
        PORT: String(n.appPort),
        DATABASE_FILENAME: 'counter.db',
        FLY_REGION: n.candidate ? 'sjc' : 'ams',
        CONSUL_URL: this.leaseUrl,
      },
    })
    fs.closeSync(log)
    n.exited = null
    n.proc.once('exit', (code, signal) => {
      n.exited = { code, signal }
    })
  }

  /** The URL browsers open for node `n`: its proxy. */
  url(n) {
    return `http://${n.ip}:${n.proxyPort}/`
  }

  logPath(n) {
    return path.join(n.root, 'litefs.log')
  }

  alive(n) {
    return n.proc !== null && n.exited === null
  }

  /** Waits until the node's proxy serves the app's /count. */
  async waitReady(n, timeoutMs) {
    await waitFor(
      `${n.name}'s app behind its proxy (${this.url(n)})`,
      async () => {
        if (n.exited) {
          throw new Error(`${n.name} exited (${JSON.stringify(n.exited)}); see ${this.logPath(n)}`)
        }
        return this.ready(this.url(n))
      },
      timeoutMs,
    )
  }

  /** The node's `GET /info`, or null when it does not answer. */
  async info(n) {
    if (!this.alive(n)) return null
    try {
      return await getJson(`http://${n.ip}:${n.httpPort}/info`, 1000)
    } catch {
      return null
    }
  }

  /** The node's `.lag` in milliseconds (null on the primary or when unreadable). */
  lag(n) {
    try {
      return parseInt(fs.readFileSync(path.join(n.root, 'mnt', '.lag'), 'utf8'), 10)
    } catch {
      return null
    }
  }

  /** Every live node's info with its TXID as a number. */
  async status() {
    return Promise.all(
      this.nodes.map(async n => {
        const info = await this.info(n)
        const db = info?.databases?.['counter.db']
        return {
          node: n,
          alive: this.alive(n),
          info,
          isPrimary: info?.isPrimary ?? false,
          txid: db ? parseInt(db.txid, 16) : null,
          lag: info && !info.isPrimary ? this.lag(n) : null,
        }
      }),
    )
  }

  async primary() {
    return (await this.status()).find(s => s.isPrimary)?.node ?? null
  }

  /** kill -9 of the node's litefs and its app (a crash), then clears its dead mount. */
  async kill(n) {
    if (!this.alive(n)) return
    const exited = new Promise(r => n.proc.once('exit', r))
    try {
      process.kill(-n.proc.pid, 'SIGKILL')
    } catch {}
    await exited
    unmount(path.join(n.root, 'mnt'))
  }

  /** Stops one node cleanly: TERM to litefs, which stops the app, unmounts and releases the lease. */
  async stopNode(n, timeoutMs = 15000) {
    if (!this.alive(n)) return
    const exited = new Promise(r => n.proc.once('exit', r))
    n.proc.kill('SIGTERM')
    const done = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)])
    if (!done) await this.kill(n)
    unmount(path.join(n.root, 'mnt'))
  }

  /** Stops every node, then the lease server. Safe to call twice. */
  async stop() {
    if (this.stopping) return
    this.stopping = true
    await Promise.all(this.nodes.map(n => this.stopNode(n)))
    if (this.server && this.server.exitCode === null) {
      const exited = new Promise(r => this.server.once('exit', r))
      this.server.kill('SIGTERM')
      await Promise.race([exited, sleep(5000)])
      if (this.server.exitCode === null) this.server.kill('SIGKILL')
    }
  }
}
