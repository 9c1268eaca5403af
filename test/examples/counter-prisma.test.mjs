// examples/counter-prisma on a two-node cluster (the Consul test server, a
// candidate and a replica, the debug build): migrations run on the primary
// only, through `prisma migrate deploy` where its schema engine can be had
// and the example's own fallback where it cannot (here: Prisma downloads the
// engine from outside the npm registry); the replica skips them; Prisma
// queries through the better-sqlite3 adapter read and write on the mount,
// and writes sent to the replica's proxy land on the primary.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import { Cluster, repoRoot } from '../../scripts/lib/cluster.mjs'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-prisma-'))
const cluster = new Cluster({
  dir,
  app: 'counter-prisma',
  nodes: 2,
  candidates: 1,
  profile: 'debug',
})

after(async () => {
  await cluster.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** A client that keeps the proxy's cookies, as a browser would. */
function client(base) {
  let cookie = ''
  return async (method, p) => {
    const res = await fetch(new URL(p, base), {
      method,
      headers: { accept: 'application/json', cookie },
      signal: AbortSignal.timeout(10000),
    })
    const set = res.headers.get('set-cookie')
    if (set) cookie = set.split(';')[0]
    assert.equal(res.status, 200, `${method} ${p}: ${res.status} ${await res.clone().text()}`)
    return res.json()
  }
}

test('Prisma counter: migrations on the primary only, writes through a replica', async () => {
  await cluster.start()
  const [primary, replica] = cluster.nodes
  const primaryLog = fs.readFileSync(cluster.logPath(primary), 'utf8')
  const replicaLog = fs.readFileSync(cluster.logPath(replica), 'utf8')
  assert.match(primaryLog, /Instance \(node-1\) in sjc is primary, deploying migrations\./)
  // Either the real `prisma migrate deploy` or, without its engine, the fallback.
  assert.match(
    primaryLog,
    /All migrations have been successfully applied|applied migration 20261130000000_counter/,
  )
  if (/cannot run here/.test(primaryLog)) {
    console.log(
      '# prisma migrate deploy could not get its schema engine: the fallback applied the migration',
    )
  }
  assert.match(
    replicaLog,
    /Instance \(node-2\) in ams is not primary, skipping migrations \(the primary is node-1\)\./,
  )
  assert.doesNotMatch(replicaLog, /deploying migrations/)

  const onReplica = client(cluster.url(replica))
  for (let i = 1; i <= 3; i++) {
    const r = await onReplica('POST', '/increment')
    assert.equal(r.count, i)
    // The write ran on the primary's app.
    assert.equal(r.instance, 'node-1')
  }
  await onReplica('POST', '/decrement')
  // With the proxy's cookie the replica answers only once it has the writes.
  const seen = await onReplica('GET', '/count')
  assert.deepEqual(seen, { count: 2, instance: 'node-2', primary: 'node-1' })
  assert.equal((await client(cluster.url(primary))('GET', '/count')).count, 2)

  // The bookkeeping `prisma migrate deploy` reads, replicated like the rest.
  const migration = path.join(
    repoRoot,
    'examples/counter-prisma/prisma/migrations/20261130000000_counter/migration.sql',
  )
  const checksum = crypto.createHash('sha256').update(fs.readFileSync(migration)).digest('hex')
  const rows = execFileSync(
    'sqlite3',
    [
      '-readonly',
      path.join(replica.root, 'mnt', 'counter.db'),
      'SELECT migration_name, checksum, finished_at IS NOT NULL FROM _prisma_migrations',
    ],
    { encoding: 'utf8' },
  )
  assert.equal(rows.trim(), `20261130000000_counter|${checksum}|1`)
})
