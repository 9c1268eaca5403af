// The demo's cluster and its screen (run by ./scripts/demo, which checks the
// machine and builds first): three nodes on 127.0.0.1-3 behind a lease, the
// counter app on each, a live status line, and keys to kill the primary,
// restart what was killed, and quit.
//
// node scripts/demo.mjs [--lease consul|etcd] [--kill-primary[=SECONDS]] [--debug]

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Cluster } from './lib/cluster.mjs'

const usage = `usage: scripts/demo [--lease consul|etcd] [--kill-primary[=SECONDS]] [--debug]
  --lease         the lease backend: the in-repo Consul test server (default) or etcd
  --kill-primary  kill -9 the primary SECONDS (default 10) after the cluster is up
  --debug         run the debug build instead of the release one`

function parseArgs(argv) {
  const o = { lease: 'consul', killAfter: null, profile: 'release' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--lease') o.lease = argv[++i]
    else if (a.startsWith('--lease=')) o.lease = a.slice('--lease='.length)
    else if (a === '--kill-primary') o.killAfter = 10
    else if (a.startsWith('--kill-primary='))
      o.killAfter = Number(a.slice('--kill-primary='.length))
    else if (a === '--debug') o.profile = 'debug'
    else if (a === '-h' || a === '--help') {
      console.log(usage)
      process.exit(0)
    } else {
      console.error(`unknown argument ${a}\n${usage}`)
      process.exit(2)
    }
  }
  if (!['consul', 'etcd'].includes(o.lease)) {
    console.error(`--lease must be consul or etcd, not ${o.lease ?? 'nothing'}`)
    process.exit(2)
  }
  if (o.killAfter !== null && !(o.killAfter >= 0)) {
    console.error('--kill-primary=SECONDS needs a number of seconds')
    process.exit(2)
  }
  return o
}

const opts = parseArgs(process.argv.slice(2))
const tty = process.stdout.isTTY && process.stdin.isTTY
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-demo-'))
const cluster = new Cluster({ dir, lease: opts.lease, profile: opts.profile })

let statusShown = false
/** Prints a line above the status line. */
function say(line) {
  if (statusShown && tty) process.stdout.write('\r\x1b[2K')
  process.stdout.write(`${line}\n`)
  statusShown = false
}

let quitting = false
async function quit(code = 0) {
  if (quitting) return
  quitting = true
  if (tty && process.stdin.isRaw) process.stdin.setRawMode(false)
  say('==> stopping every node (each unmounts and releases the lease) and the lease server')
  await cluster.stop()
  say(`==> stopped. Logs and data are in ${dir} (remove with: rm -rf ${dir})`)
  process.exit(code)
}
process.on('SIGINT', () => quit(0))
process.on('SIGTERM', () => quit(0))

// Failover bookkeeping: when the primary was killed, and who took over.
let killedAt = null
let lastPrimary = null

async function killPrimary() {
  const p = await cluster.primary()
  if (!p) {
    say('==> no primary right now: nothing to kill')
    return
  }
  killedAt = Date.now()
  say(
    `==> kill -9 of the primary, ${p.name} (its litefs and its app): a crash, the lease is not released`,
  )
  await cluster.kill(p)
  const wait =
    opts.lease === 'consul'
      ? "the Consul session has to expire first: between 10 and 20 s (TTL 10 s, Consul's 2xTTL), plus the 1 s lock-delay"
      : `etcd's lease has to expire first (TTL ${cluster.etcdTtl})`
  say(`    reads keep working on the other nodes; clicks wait for a new primary: ${wait}`)
}

async function restartKilled() {
  const dead = cluster.nodes.filter(n => !cluster.alive(n))
  if (dead.length === 0) return say('==> every node is running')
  for (const n of dead) {
    say(`==> restarting ${n.name} on its data dir: it rejoins as a replica and catches up`)
    cluster.startNode(n)
  }
}

function fmtStatus(all) {
  const primary = all.find(s => s.isPrimary)
  const top = primary?.txid ?? Math.max(0, ...all.map(s => s.txid ?? 0))
  const parts = all.map(s => {
    const n = s.node
    if (!s.alive) return `${n.name} down`
    if (!s.info) return `${n.name} starting`
    if (s.isPrimary) return `${n.name} PRIMARY tx ${s.txid ?? '-'}`
    const behind = s.txid === null ? '' : top - s.txid > 0 ? ` (${top - s.txid} behind)` : ''
    // .lag: time since the primary's last transaction or heartbeat (1 s).
    const lag = s.lag === null || Number.isNaN(s.lag) ? '' : ` lag ${(s.lag / 1000).toFixed(1)} s`
    return `${n.name} tx ${s.txid ?? '-'}${behind}${lag}`
  })
  return `${primary ? `primary ${primary.node.name}` : 'no primary (election under way)'} | ${parts.join(' | ')}`
}

async function statusLoop() {
  let lastPlain = 0
  while (!quitting) {
    const all = await cluster.status()
    const primary = all.find(s => s.isPrimary)?.node ?? null
    if (primary && primary !== lastPrimary) {
      const after = killedAt
        ? ` ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`
        : ''
      say(`==> ${primary.name} is primary${after}; open any URL above and keep clicking`)
      killedAt = null
    }
    if (primary) lastPrimary = primary
    if (quitting) break
    const line = fmtStatus(all)
    if (tty) {
      process.stdout.write(`\r\x1b[2K${line.slice(0, (process.stdout.columns || 200) - 1)}`)
      statusShown = true
    } else if (Date.now() - lastPlain > 5000) {
      say(line)
      lastPlain = Date.now()
    }
    await new Promise(r => setTimeout(r, 500))
  }
}

say(`==> cluster files in ${dir}`)
try {
  await cluster.start(msg => say(`==> ${msg}`))
} catch (e) {
  say(`demo failed to start: ${e.message}`)
  for (const n of cluster.nodes) say(`    ${n.name}'s log: ${cluster.logPath(n)}`)
  await quit(1)
}

say('')
say("The counter app on each node, behind that node's litefs proxy:")
for (const n of cluster.nodes) {
  say(
    `  ${n.name}  ${cluster.url(n).padEnd(26)} ${(n.candidate ? 'candidate' : 'replica only').padEnd(12)}  (litefs API http://${n.ip}:${n.httpPort}/info)`,
  )
}
say(`Lease: ${opts.lease} at ${cluster.leaseUrl}. Click + or - on any node: every node shows it.`)
say('Keys: k = kill -9 the primary, r = restart killed nodes, q or Ctrl-C = stop everything.')
say('')

// Keys: from the terminal in raw mode, or as characters written to a
// piped stdin (the browser test drives the demo that way).
if (tty) process.stdin.setRawMode(true)
process.stdin.setEncoding('utf8')
process.stdin.on('data', data => {
  for (const key of data) {
    if (key === 'k') killPrimary()
    else if (key === 'r') restartKilled()
    else if (key === 'q' || key === '\u0003') quit(0)
  }
})
process.stdin.on('error', () => {})
if (opts.killAfter !== null) {
  say(`==> the primary will be killed in ${opts.killAfter} s (--kill-primary)`)
  setTimeout(() => killPrimary(), opts.killAfter * 1000)
}
statusLoop()
