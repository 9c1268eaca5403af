// Calls/s of litefs-rs vs litefs-js on the same mount-like directory in one
// run, and how soon onTxNumber wakes after a position changes.
// Run: npm run bench   (node bench/node-api.mjs [seconds-per-case])
//      node bench/node-api.mjs --mount [seconds-per-case]: the same against a
//      real `litefs mount` (primary; needs root and /dev/fuse), with real
//      SQLite commits (better-sqlite3) instead of rewritten -pos files.

import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'

import { makeMount, startFakeSidecar, writePos } from '../test/node/helpers.mjs'

const require = createRequire(import.meta.url)
const litefsJs = require('litefs-js')
const litefsRs = require('litefs-rs')

const args = process.argv.slice(2)
const onMount = args.includes('--mount')
const seconds = Number(args.find(a => !a.startsWith('--')) ?? 1)
const db = 'sqlite.db'
let mount
let conn
let dir
if (onMount) {
  const { startMount } = await import('../test/node/mount-helpers.mjs')
  const { default: Database } = await import('better-sqlite3')
  mount = await startMount({ candidate: true })
  dir = mount.mnt
  conn = new Database(path.join(dir, db))
  conn.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
  console.log(`real litefs mount at ${dir} (primary), TXID ${litefsRs.getTxNumberSync(dir, db)}`)
} else {
  dir = makeMount({ txid: 123456, primary: 'some-primary\n' })
}
process.env.LITEFS_DIR = dir
process.env.DATABASE_FILENAME = db

async function rate(fn, { concurrency = 1 } = {}) {
  for (let i = 0; i < 200; i++) await fn() // warm up
  let calls = 0
  const end = performance.now() + seconds * 1000
  const worker = async () => {
    while (performance.now() < end) {
      await fn()
      calls++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  return calls / ((performance.now() - started) / 1000)
}

const quiet = console.error
const rows = []
for (const [name, concurrency] of [
  ['getInstanceInfo', 1],
  ['getInstanceInfo', 32],
  ['getInstanceInfoSync', 1],
  ['getTxNumber', 1],
  ['getTxNumber', 32],
]) {
  const js = await rate(() => litefsJs[name](), { concurrency })
  const rs = await rate(() => litefsRs[name](), { concurrency })
  rows.push({
    call: name,
    inFlight: concurrency,
    'litefs-js/s': Math.round(js),
    'litefs-rs/s': Math.round(rs),
    ratio: +(rs / js).toFixed(2),
  })
}
console.error = quiet
console.table(rows)

function summarize(label, samples) {
  samples.sort((a, b) => a - b)
  const q = p => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))].toFixed(3)
  console.log(
    `${label}: n=${samples.length} median=${q(0.5)} ms p90=${q(0.9)} ms p99=${q(0.99)} ms max=${q(1)} ms`,
  )
}

// onTxNumber woken by inotify: the timer backstop is set to a minute, so
// every wake-up here is the change itself.
if (onMount) {
  // A real commit; the clock starts when SQLite has returned from it, and
  // the wait has had time to be in place.
  const insert = conn.prepare('INSERT INTO t (v) VALUES (?)')
  for (const mode of ['delete', 'wal']) {
    conn.pragma(`journal_mode = ${mode}`)
    const samples = []
    let tx = litefsRs.getTxNumberSync(dir, db)
    for (let i = 0; i < 200; i++) {
      const target = ++tx
      const waiting = litefsRs.onTxNumber(target, { intervalMs: 60_000, timeoutMs: 5000 })
      await new Promise(r => setTimeout(r, 20))
      insert.run('bench')
      const t0 = performance.now()
      await waiting
      samples.push(performance.now() - t0)
    }
    summarize(`onTxNumber wake-up after a real commit (journal_mode=${mode})`, samples)
  }
  conn.close()
  const stopped = await mount.stop()
  if (stopped.code !== 0 || !stopped.unmounted) console.error('litefs stop:', stopped, mount.log())
  process.exit(0)
}

{
  const samples = []
  let tx = 123456
  for (let i = 0; i < 200; i++) {
    const target = ++tx
    const waiting = litefsRs.onTxNumber(target, { intervalMs: 60_000 })
    await new Promise(r => setImmediate(r))
    const t0 = performance.now()
    writePos(dir, db, target)
    await waiting
    samples.push(performance.now() - t0)
  }
  summarize('onTxNumber wake-up after a -pos change (inotify)', samples)
}

// onTxNumber woken by the sidecar's /events: the file is changed through a
// hard link elsewhere (no inotify event, like a replica applying LTX behind
// FUSE), then the event is sent.
{
  const sidecar = await startFakeSidecar({})
  const other = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-rs-bench-'))
  fs.rmSync(path.join(dir, `${db}-pos`))
  fs.writeFileSync(path.join(dir, `${db}-pos`), '0/0\n')
  fs.linkSync(path.join(dir, `${db}-pos`), path.join(other, 'pos'))
  const samples = []
  for (let target = 1; target <= 200; target++) {
    const waiting = litefsRs.onTxNumber(target, { intervalMs: 60_000, httpUrl: sidecar.url })
    while (sidecar.connected() === 0) await new Promise(r => setTimeout(r, 20))
    await new Promise(r => setTimeout(r, 1))
    fs.writeFileSync(
      path.join(other, 'pos'),
      `${target.toString(16).padStart(16, '0')}/0000000000000000\n`,
    )
    const t0 = performance.now()
    sidecar.send({ type: 'tx', db, data: { txid: target.toString(16).padStart(16, '0') } })
    await waiting
    samples.push(performance.now() - t0)
  }
  summarize('onTxNumber wake-up after an /events line', samples)
  await sidecar.close()
}
