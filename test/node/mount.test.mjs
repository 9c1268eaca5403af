// Every export that reads the mount, against a real `litefs mount` built from
// this workspace: first a primary (static lease, candidate), then a replica
// (candidate: false) started on a copy of the primary's data directory.
// Writes go through SQLite itself: better-sqlite3 in this process, and the
// sqlite3 CLI as a writer in another process.
//
// Needs root and /dev/fuse. Without them these tests fail, saying why,
// unless LITEFS_SKIP_MOUNT_TESTS=1 is set.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import Database from 'better-sqlite3'

import * as litefs from '../../js/index.mjs'
import { hostname, quietly, withEnv } from './helpers.mjs'
import {
  isMounted,
  litefsBinary,
  mountUnavailableReason,
  sqlite3Cli,
  startMount,
  until,
} from './mount-helpers.mjs'

const require = createRequire(import.meta.url)
const litefsJs = require('litefs-js')

const skip =
  process.env.LITEFS_SKIP_MOUNT_TESTS === '1' ? 'LITEFS_SKIP_MOUNT_TESTS=1 is set' : false
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const withoutPrimaryUrl = ({ primaryUrl, ...rest }) => rest
const POS = /^[0-9a-f]{16}\/[0-9a-f]{16}\n$/
// Not os.hostname(), so a replica's answers cannot be mistaken for a primary's.
const PRIMARY_HOST = 'litefs-rs-test-primary'
const db = 'app.db'

function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b)
  const q = p => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(3)
  return `n=${s.length} median=${q(0.5)} ms p90=${q(0.9)} ms max=${q(1)} ms`
}

describe('a real litefs mount', { skip }, () => {
  let primary
  let replica
  let primaryStopped
  let lastPrimaryTx
  let rowsOnPrimary
  let watcher
  const watched = []
  const watchErrors = []
  const open = []

  const connect = (mnt, name = db, options) => {
    const conn = new Database(path.join(mnt, name), options)
    open.push(conn)
    return conn
  }
  const closeAll = () => {
    for (const conn of open.splice(0)) if (conn.open) conn.close()
  }

  before(async () => {
    const why = mountUnavailableReason()
    if (why) {
      throw new Error(
        `the mount tests need a real FUSE mount and cannot run here: ${why}. ` +
          'Set LITEFS_SKIP_MOUNT_TESTS=1 to skip them explicitly.',
      )
    }
    litefsBinary()
    primary = await startMount({ candidate: true, hostname: PRIMARY_HOST })
  })

  after(async () => {
    closeAll()
    await watcher?.close()
    for (const m of [primary, replica]) {
      const result = await m?.stop()
      if (result && !result.unmounted) console.error(`had to detach ${m.mnt}:\n${m.log()}`)
    }
    if (primary) fs.rmSync(primary.dir, { recursive: true, force: true })
  })

  describe('primary (static lease, candidate: true)', () => {
    it('has no .primary, and every instance-info call says this instance is primary', async () => {
      const { mnt } = primary
      assert.equal(fs.existsSync(path.join(mnt, '.primary')), false)
      const want = {
        primaryInstance: hostname,
        currentInstance: hostname,
        currentIsPrimary: true,
        primaryUrl: null,
      }
      await withEnv({}, async () => {
        assert.deepEqual(await litefs.getInstanceInfo(mnt), want)
        assert.deepEqual(litefs.getInstanceInfoSync(mnt), want)
      })
      await withEnv({ LITEFS_DIR: mnt, PORT: '8080' }, async () => {
        const info = await litefs.getInstanceInfo()
        assert.deepEqual(info, { ...want, primaryUrl: `http://${hostname}:8080` })
        assert.deepEqual(litefs.getInstanceInfoSync(), info)
        assert.deepEqual(withoutPrimaryUrl(info), await litefsJs.getInstanceInfo())
        assert.deepEqual(await litefs.getAllInstances(), { [hostname]: 'local' })
      })
    })

    it('getTxNumber: 0 before the database exists, then +1 per commit, as -pos says', async () => {
      const { mnt } = primary
      assert.equal(await litefs.getTxNumber(mnt, db), 0)
      assert.equal(litefs.getTxNumberSync(mnt, db), 0)
      assert.equal(fs.existsSync(path.join(mnt, `${db}-pos`)), false)

      const conn = connect(mnt)
      conn.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
      const first = await litefs.getTxNumber(mnt, db)
      assert.ok(first >= 1, `TXID after CREATE TABLE: ${first}`)
      const pos = fs.readFileSync(path.join(mnt, `${db}-pos`), 'utf8')
      assert.match(pos, POS)
      assert.equal(litefs.parsePos(pos).txNumber, first)

      const insert = conn.prepare('INSERT INTO t (v) VALUES (?)')
      for (let i = 1; i <= 5; i++) {
        insert.run(`row ${i}`)
        assert.equal(await litefs.getTxNumber(mnt, db), first + i)
        assert.equal(litefs.getTxNumberSync(mnt, db), first + i)
        assert.equal(await litefsJs.getTxNumber(mnt, db), first + i)
      }
      // One transaction is one TXID, however many statements it has.
      conn.transaction(() => {
        for (let i = 0; i < 10; i++) insert.run('batch')
      })()
      assert.equal(await litefs.getTxNumber(mnt, db), first + 6)
      await withEnv({ LITEFS_DIR: mnt, DATABASE_FILENAME: db }, async () => {
        assert.equal(await litefs.getTxNumber(), first + 6)
        assert.equal(litefs.getTxNumberSync(), first + 6)
      })
      // A rolled-back transaction and a read are not commits.
      assert.throws(
        conn.transaction(() => {
          insert.run('rolled back')
          throw new Error('roll back')
        }),
        /roll back/,
      )
      conn.prepare('SELECT count(*) FROM t').pluck().get()
      assert.equal(await litefs.getTxNumber(mnt, db), first + 6)
    })

    it('waitForUpToDateTxNumber waits for a commit issued after the wait started', async () => {
      const { mnt } = primary
      const file = path.join(mnt, db)
      const opts = { litefsDir: mnt, databaseFilename: db }
      let tx = await litefs.getTxNumber(mnt, db)
      assert.equal(await litefs.waitForUpToDateTxNumber(tx, opts), true)

      // The commit comes from another process (the sqlite3 CLI).
      let settled = false
      let waiting = litefs
        .waitForUpToDateTxNumber(tx + 1, { ...opts, timeoutMs: 10_000 })
        .finally(() => (settled = true))
      await sleep(150)
      assert.equal(settled, false, 'resolved before any commit')
      await sqlite3Cli(file, "INSERT INTO t (v) VALUES ('from the sqlite3 CLI')")
      assert.equal(await waiting, true)
      assert.equal(await litefs.getTxNumber(mnt, db), ++tx)

      // From this process, with the backstop timer out of the way: only the
      // mount's own change can wake it.
      settled = false
      waiting = litefs
        .waitForUpToDateTxNumber(tx + 1, { ...opts, timeoutMs: 10_000, intervalMs: 60_000 })
        .finally(() => (settled = true))
      await sleep(150)
      assert.equal(settled, false, 'resolved before any commit')
      connect(mnt).prepare('INSERT INTO t (v) VALUES (?)').run('from better-sqlite3')
      const started = performance.now()
      assert.equal(await waiting, true)
      assert.ok(performance.now() - started < 5000)
      assert.equal(await litefs.getTxNumber(mnt, db), ++tx)

      // Nothing commits: false once the timeout has passed.
      const t0 = performance.now()
      const { value, lines } = await quietly(() =>
        litefs.waitForUpToDateTxNumber(tx + 1, { ...opts, timeoutMs: 200 }),
      )
      assert.equal(value, false)
      assert.ok(performance.now() - t0 >= 190)
      assert.match(lines.join('\n'), /Timed out waiting for tx number/)
    })

    for (const mode of ['delete', 'wal']) {
      it(`onTxNumber wakes after each real commit (journal_mode=${mode}); prints the latency`, async t => {
        const { mnt } = primary
        const name = `latency-${mode}.db`
        const conn = connect(mnt, name)
        assert.equal(conn.pragma(`journal_mode = ${mode}`, { simple: true }), mode)
        conn.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)')
        const insert = conn.prepare('INSERT INTO t (v) VALUES (?)')
        const opts = { litefsDir: mnt, databaseFilename: name }
        let tx = await litefs.getTxNumber(mnt, name)
        assert.equal(await litefs.onTxNumber(tx, opts), tx)

        const samples = []
        for (let i = 0; i < 30; i++) {
          const target = tx + 1
          // A minute's backstop: a wake-up within the timeout is the commit's.
          const waiting = litefs.onTxNumber(target, {
            ...opts,
            intervalMs: 60_000,
            timeoutMs: 5000,
          })
          // Long enough for the wait to be in place: this measures the
          // wake-up, not the wait's start.
          await sleep(20)
          insert.run(`commit ${i}`)
          const committed = performance.now()
          assert.equal(await waiting, target)
          samples.push(performance.now() - committed)
          tx = target
        }
        assert.equal(await litefs.getTxNumber(mnt, name), tx)
        t.diagnostic(`onTxNumber wake-up after a real commit (${mode}): ${summarize(samples)}`)
      })
    }

    it('onTxNumber rejects with ETIMEDOUT when no commit comes', async () => {
      const { mnt } = primary
      const tx = await litefs.getTxNumber(mnt, db)
      await assert.rejects(
        litefs.onTxNumber(tx + 1, { litefsDir: mnt, databaseFilename: db, timeoutMs: 100 }),
        { code: 'ETIMEDOUT' },
      )
    })

    it('watchPrimary calls nothing while the primary stays the same, through commits', async () => {
      const { mnt } = primary
      const seen = []
      const errors = []
      const w = litefs.watchPrimary(info => seen.push(info), {
        litefsDir: mnt,
        onError: error => errors.push(error),
      })
      await sleep(50)
      const insert = connect(mnt).prepare('INSERT INTO t (v) VALUES (?)')
      for (let i = 0; i < 5; i++) insert.run('watched')
      await sleep(200)
      await w.close()
      assert.deepEqual(seen, [])
      assert.deepEqual(errors, [])
    })

    it('cookies carry the real tx number; on the primary a cookie is always deleted', async () => {
      const { mnt } = primary
      await withEnv({ LITEFS_DIR: mnt, DATABASE_FILENAME: db }, async () => {
        const tx = await litefs.getTxNumber()
        const header = litefs.getTxSetCookieHeader(tx)
        assert.equal(header, `txnum=${tx}; Path=/; HttpOnly; Secure; SameSite=Lax`)
        assert.equal(header, litefsJs.getTxSetCookieHeader(tx))
        const cookie = header.split(';')[0]
        const deleted = {
          type: 'delete-cookie',
          setCookieHeader:
            'txnum=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax',
        }
        assert.deepEqual(await litefs.checkCookieForTransactionalConsistency(undefined), {
          type: 'ok',
        })
        assert.deepEqual(await litefs.checkCookieForTransactionalConsistency(cookie), deleted)
        assert.deepEqual(await litefsJs.checkCookieForTransactionalConsistency(cookie), deleted)
        const ahead = `txnum=${tx + 1}`
        const { value } = await quietly(() => litefs.checkCookieForTransactionalConsistency(ahead))
        assert.deepEqual(value, deleted)
      })
    })

    it('litefs restarted on the same dir: TXIDs carry on and commits wake new waiters', async () => {
      const { mnt, dir, dataDir } = primary
      // An app's wait held across the restart keeps the old mount's watch
      // alive; new waiters must still get one on the new mount.
      const ac = new AbortController()
      const held = litefs
        .onTxNumber(Number.MAX_SAFE_INTEGER, {
          litefsDir: mnt,
          databaseFilename: db,
          intervalMs: 60_000,
          signal: ac.signal,
        })
        .catch(error => error.name)
      try {
        // Closed well before the SIGTERM: litefs stopped right after a WAL
        // database's last close can fail its unmount with EBUSY and hang
        // (reported; not what this test is about).
        closeAll()
        await sleep(200)
        const tx = await litefs.getTxNumber(mnt, db)
        const stopped = await primary.stop()
        assert.deepEqual(stopped, { code: 0, signal: null, unmounted: true }, primary.log())
        primary = await startMount({ candidate: true, hostname: PRIMARY_HOST, dir, mnt, dataDir })
        assert.equal(fs.existsSync(path.join(mnt, '.primary')), false)
        assert.equal(await litefs.getTxNumber(mnt, db), tx)

        const waiting = litefs.onTxNumber(tx + 1, {
          litefsDir: mnt,
          databaseFilename: db,
          intervalMs: 60_000,
          timeoutMs: 5000,
        })
        await sleep(20)
        connect(mnt).prepare('INSERT INTO t (v) VALUES (?)').run('after the restart')
        const committed = performance.now()
        assert.equal(await waiting, tx + 1)
        const ms = performance.now() - committed
        assert.ok(ms < 2500, `woken ${ms.toFixed(1)} ms after the commit: by the timeout`)
      } finally {
        ac.abort()
        assert.equal(await held, 'AbortError')
      }
    })

    it('the primary stops on SIGTERM: exit 0, unmounted, and -pos survives in the data dir', async () => {
      // Leave something for the replica and for the watch across the restart.
      const conn = connect(primary.mnt)
      rowsOnPrimary = conn.prepare('SELECT count(*) FROM t').pluck().get()
      lastPrimaryTx = await litefs.getTxNumber(primary.mnt, db)
      closeAll()
      primaryStopped = await primary.stop()
      assert.deepEqual(primaryStopped, { code: 0, signal: null, unmounted: true }, primary.log())
      assert.equal(isMounted(primary.mnt), false)
    })
  })

  describe('replica (static lease, candidate: false) of a copy of the data dir', () => {
    before(async () => {
      assert.ok(primaryStopped, 'the primary must have stopped first')
      const { dir, mnt, dataDir } = primary
      const replicaData = path.join(dir, 'replica-data')
      fs.cpSync(dataDir, replicaData, { recursive: true })
      // Its own node ID: a copy of the primary's is refused by the primary
      // ("cannot connect to self") where litefs replicates.
      fs.rmSync(path.join(replicaData, 'id'), { force: true })
      // The primary back up, for a replica that follows it (where litefs
      // replicates) to connect to.
      primary = await startMount({ candidate: true, hostname: PRIMARY_HOST, dir, mnt, dataDir })
      // An app already watching the replica's mount dir before litefs mounts
      // it: it sees the primary change from "me" to PRIMARY_HOST.
      const replicaMnt = path.join(dir, 'replica-mnt')
      fs.mkdirSync(replicaMnt)
      watcher = litefs.watchPrimary(info => watched.push(info), {
        litefsDir: replicaMnt,
        intervalMs: 50,
        onError: error => watchErrors.push(error),
      })
      await sleep(50)
      replica = await startMount({
        candidate: false,
        hostname: PRIMARY_HOST,
        dir,
        mnt: replicaMnt,
        dataDir: replicaData,
        advertiseUrl: primary.httpUrl,
      })
      await until(
        () => fs.existsSync(path.join(replicaMnt, '.primary')),
        10_000,
        `for ${replicaMnt}/.primary`,
      ).catch(error => {
        error.message += `\nreplica output:\n${replica.log()}`
        throw error
      })
    })

    it('.primary names the configured primary', () => {
      assert.equal(fs.readFileSync(path.join(replica.mnt, '.primary'), 'utf8'), `${PRIMARY_HOST}\n`)
    })

    it('instance info says this instance is not primary, from both libraries', async () => {
      const { mnt } = replica
      const want = {
        primaryInstance: PRIMARY_HOST,
        currentInstance: hostname,
        currentIsPrimary: false,
        primaryUrl: null,
      }
      await withEnv({}, async () => {
        assert.deepEqual(await litefs.getInstanceInfo(mnt), want)
        assert.deepEqual(litefs.getInstanceInfoSync(mnt), want)
        assert.deepEqual(litefsJs.getInstanceInfoSync(mnt), withoutPrimaryUrl(want))
      })
      await withEnv({ LITEFS_DIR: mnt, PORT: '8080' }, async () => {
        assert.deepEqual(await litefs.getInstanceInfo(), {
          ...want,
          primaryUrl: `http://${PRIMARY_HOST}:8080`,
        })
        assert.deepEqual(await litefs.getAllInstances(), {
          [hostname]: 'local',
          [PRIMARY_HOST]: 'local',
        })
      })
    })

    it('watchPrimary saw the primary change when litefs mounted a replica under it', async () => {
      await until(() => watched.length > 0, 5000, 'for watchPrimary to call back')
      await watcher.close()
      watcher = undefined
      assert.deepEqual(
        watched.map(({ primaryInstance, currentIsPrimary }) => [primaryInstance, currentIsPrimary]),
        [[PRIMARY_HOST, false]],
      )
      assert.deepEqual(watchErrors, [])
    })

    it('has the data and the TXID the primary left', async () => {
      const { mnt } = replica
      assert.equal(await litefs.getTxNumber(mnt, db), lastPrimaryTx)
      assert.equal(litefs.getTxNumberSync(mnt, db), lastPrimaryTx)
      assert.equal(await litefsJs.getTxNumber(mnt, db), lastPrimaryTx)
      assert.match(fs.readFileSync(path.join(mnt, `${db}-pos`), 'utf8'), POS)
      const conn = connect(mnt, db, { readonly: true })
      assert.equal(conn.prepare('SELECT count(*) FROM t').pluck().get(), rowsOnPrimary)
      assert.equal(
        (await sqlite3Cli(path.join(mnt, db), 'SELECT count(*) FROM t;')).trim(),
        String(rowsOnPrimary),
      )
    })

    it('a write through SQLite fails with "attempt to write a readonly database"', async () => {
      const { mnt } = replica
      const conn = connect(mnt)
      assert.throws(() => conn.prepare('INSERT INTO t (v) VALUES (?)').run('on a replica'), {
        // SQLITE_READONLY_DIRECTORY here: SQLite cannot create the journal.
        code: /^SQLITE_READONLY/,
        message: /attempt to write a readonly database/,
      })
      await assert.rejects(sqlite3Cli(path.join(mnt, db), "INSERT INTO t (v) VALUES ('cli')"), {
        stderr: /attempt to write a readonly database/,
      })
      assert.equal(await litefs.getTxNumber(mnt, db), lastPrimaryTx)
    })

    it('waits time out on a replica nothing replicates to', async () => {
      const { mnt } = replica
      const opts = { litefsDir: mnt, databaseFilename: db }
      assert.equal(await litefs.waitForUpToDateTxNumber(lastPrimaryTx, opts), true)
      const { value } = await quietly(() =>
        litefs.waitForUpToDateTxNumber(lastPrimaryTx + 1, { ...opts, timeoutMs: 200 }),
      )
      assert.equal(value, false)
      assert.equal(await litefs.onTxNumber(lastPrimaryTx, opts), lastPrimaryTx)
      await assert.rejects(litefs.onTxNumber(lastPrimaryTx + 1, { ...opts, timeoutMs: 100 }), {
        code: 'ETIMEDOUT',
      })
    })

    it('cookies: caught up → delete-cookie, ahead → replay to the primary, like litefs-js', async () => {
      const { mnt } = replica
      const deleted = {
        type: 'delete-cookie',
        setCookieHeader:
          'txnum=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax',
      }
      const replay = {
        type: 'replay',
        flyReplayHeader: `instance=${PRIMARY_HOST}`,
        instance: PRIMARY_HOST,
      }
      await withEnv({ LITEFS_DIR: mnt, DATABASE_FILENAME: db }, async () => {
        for (const lib of [litefs, litefsJs]) {
          const caughtUp = `txnum=${lastPrimaryTx}`
          assert.deepEqual(await lib.checkCookieForTransactionalConsistency(caughtUp), deleted)
          const ahead = `txnum=${lastPrimaryTx + 1}`
          const { value } = await quietly(() => lib.checkCookieForTransactionalConsistency(ahead))
          assert.deepEqual(value, replay)
        }
      })
    })

    it('the replica stops on SIGTERM: exit 0, unmounted', async () => {
      closeAll()
      const stopped = await replica.stop()
      assert.deepEqual(stopped, { code: 0, signal: null, unmounted: true }, replica.log())
    })
  })
})
