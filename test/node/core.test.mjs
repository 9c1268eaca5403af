// Every export of `litefs-rs` against directories laid out like a mount.

import assert from 'node:assert/strict'
import dns from 'node:dns'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, it } from 'node:test'

import * as litefs from '../../js/index.mjs'
import {
  hostname,
  makeMount,
  quietly,
  startFakeDns,
  startFakeSidecar,
  withEnv,
  writePos,
} from './helpers.mjs'

const db = 'sqlite.db'

describe('getInstanceInfo / getInstanceInfoSync', () => {
  it('no .primary file means this instance is primary', async () => {
    const dir = makeMount()
    const want = {
      primaryInstance: hostname,
      currentInstance: hostname,
      currentIsPrimary: true,
      primaryUrl: null,
    }
    assert.deepEqual(await litefs.getInstanceInfo(dir), want)
    assert.deepEqual(litefs.getInstanceInfoSync(dir), want)
    await withEnv({ LITEFS_DIR: dir }, async () => {
      assert.deepEqual(await litefs.getInstanceInfo(), want)
      assert.deepEqual(litefs.getInstanceInfoSync(), want)
    })
  })

  it('.primary names the primary, with or without a trailing newline', async () => {
    for (const content of ['primary-host\n', 'primary-host']) {
      const dir = makeMount({ primary: content })
      const info = await litefs.getInstanceInfo(dir)
      assert.equal(info.primaryInstance, 'primary-host')
      assert.equal(info.currentIsPrimary, false)
      assert.deepEqual(litefs.getInstanceInfoSync(dir), info)
    }
  })

  it('LITEFS_HOSTNAME names this instance: nodes sharing a hostname tell themselves apart', async () => {
    // A replica on the primary's machine: `.primary` holds the OS hostname.
    const replica = makeMount({ primary: `${hostname}\n` })
    const primary = makeMount()
    await withEnv({ LITEFS_DIR: replica, LITEFS_HOSTNAME: 'node-b' }, async () => {
      const want = {
        primaryInstance: hostname,
        currentInstance: 'node-b',
        currentIsPrimary: false,
        primaryUrl: null,
      }
      assert.deepEqual(await litefs.getInstanceInfo(), want)
      assert.deepEqual(litefs.getInstanceInfoSync(), want)
      assert.deepEqual(await litefs.getAllInstances(), { 'node-b': 'local', [hostname]: 'local' })
    })
    await withEnv({ LITEFS_DIR: primary, LITEFS_HOSTNAME: 'node-a' }, async () => {
      const want = {
        primaryInstance: 'node-a',
        currentInstance: 'node-a',
        currentIsPrimary: true,
        primaryUrl: null,
      }
      assert.deepEqual(await litefs.getInstanceInfo(), want)
      assert.deepEqual(litefs.getInstanceInfoSync(), want)
    })
    // Empty counts as unset: the OS hostname, as litefs-js uses.
    await withEnv({ LITEFS_DIR: replica, LITEFS_HOSTNAME: '' }, async () => {
      assert.equal(litefs.getInstanceInfoSync().currentIsPrimary, true)
      assert.equal((await litefs.getInstanceInfo()).currentInstance, hostname)
    })
  })

  it('primaryUrl: Fly internal domain on Fly, host:port elsewhere, template override', async () => {
    const dir = makeMount({ primary: 'p1\n' })
    await withEnv({ LITEFS_DIR: dir, PORT: '8080' }, async () => {
      assert.equal((await litefs.getInstanceInfo()).primaryUrl, 'http://p1:8080')
    })
    await withEnv(
      { LITEFS_DIR: dir, INTERNAL_PORT: '8081', PORT: '3000', FLY_APP_NAME: 'app' },
      () => {
        assert.equal(litefs.getInstanceInfoSync().primaryUrl, 'http://p1.vm.app.internal:8081')
      },
    )
    await withEnv(
      { LITEFS_DIR: dir, LITEFS_PRIMARY_URL_TEMPLATE: 'https://{hostname}.lan' },
      () => {
        assert.equal(litefs.getInstanceInfoSync().primaryUrl, 'https://p1.lan')
      },
    )
  })

  it('errors without LITEFS_DIR, as Error objects naming the function', async () => {
    await withEnv({}, async () => {
      await assert.rejects(litefs.getInstanceInfo(), {
        name: 'Error',
        message: /^litefs-rs: LITEFS_DIR is not defined.*getInstanceInfo$/,
      })
      assert.throws(() => litefs.getInstanceInfoSync(), /argument to getInstanceInfoSync$/)
    })
  })

  it('an unreadable .primary is an error, not "I am primary"', async () => {
    const dir = makeMount()
    fs.mkdirSync(path.join(dir, '.primary'))
    await assert.rejects(litefs.getInstanceInfo(dir), /\.primary/)
    assert.throws(() => litefs.getInstanceInfoSync(dir), /\.primary/)
  })
})

describe('getTxNumber / getTxNumberSync / parsePos', () => {
  it('reads padded and unpadded positions, with or without newline', async () => {
    for (const [pos, want] of [
      ['000000000000002a/80000000000000ff\n', 42],
      ['000000000000002a/80000000000000ff', 42],
      ['2a/ff\n', 42],
      ['0000000000000000/0000000000000000\n', 0],
      ['1fffffffffffff/0\n', Number.MAX_SAFE_INTEGER],
    ]) {
      const dir = makeMount({ pos })
      assert.equal(await litefs.getTxNumber(dir, db), want, pos)
      assert.equal(litefs.getTxNumberSync(dir, db), want, pos)
      await withEnv({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, async () => {
        assert.equal(await litefs.getTxNumber(), want)
      })
    }
  })

  it('a missing -pos reads as 0', async () => {
    assert.equal(await litefs.getTxNumber(makeMount(), db), 0)
  })

  it('a present but unparsable -pos is an Error naming the file', async () => {
    for (const pos of ['garbage\n', '', 'zz/00', '-1/0', '20000000000000/0']) {
      const dir = makeMount({ pos })
      await assert.rejects(litefs.getTxNumber(dir, db), err => {
        assert.ok(err instanceof Error)
        assert.match(err.message, /^litefs-rs: /)
        assert.ok(err.message.includes(path.join(dir, `${db}-pos`)), err.message)
        return true
      })
      assert.throws(() => litefs.getTxNumberSync(dir, db), /sqlite\.db-pos/)
    }
  })

  it('errors without LITEFS_DIR or DATABASE_FILENAME', async () => {
    await withEnv({ LITEFS_DIR: '/x' }, async () => {
      await assert.rejects(litefs.getTxNumber(), /DATABASE_FILENAME is not defined/)
    })
    await withEnv({}, async () => {
      await assert.rejects(litefs.getTxNumber(), /LITEFS_DIR is not defined/)
    })
  })

  it('parsePos gives TXID, canonical hex and checksum', () => {
    assert.deepEqual(litefs.parsePos('2a/ff\n'), {
      txNumber: 42,
      txid: '000000000000002a',
      checksum: '00000000000000ff',
    })
    assert.throws(() => litefs.parsePos('nope'), /cannot parse position/)
  })
})

describe('waitForUpToDateTxNumber', () => {
  it('true at once when already there', async () => {
    const dir = makeMount({ txid: 5 })
    assert.equal(
      await litefs.waitForUpToDateTxNumber(5, { litefsDir: dir, databaseFilename: db }),
      true,
    )
  })

  it('really waits for a TXID that arrives before the timeout', async () => {
    const dir = makeMount({ txid: 1 })
    setTimeout(() => writePos(dir, db, 7), 100)
    const started = Date.now()
    const ok = await litefs.waitForUpToDateTxNumber(7, {
      litefsDir: dir,
      databaseFilename: db,
      timeoutMs: 3000,
    })
    assert.equal(ok, true)
    assert.ok(Date.now() - started < 2000)
  })

  it('false after the timeout, having waited for it', async () => {
    const dir = makeMount({ txid: 1 })
    const started = Date.now()
    const { value, lines } = await quietly(() =>
      litefs.waitForUpToDateTxNumber(9, { litefsDir: dir, databaseFilename: db, timeoutMs: 150 }),
    )
    assert.equal(value, false)
    assert.ok(Date.now() - started >= 140)
    assert.match(lines.join('\n'), /Timed out waiting for tx number/)
  })

  it('uses the env defaults and rejects a non-number target', async () => {
    const dir = makeMount({ txid: 3 })
    await withEnv({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, async () => {
      assert.equal(await litefs.waitForUpToDateTxNumber(2), true)
      await assert.rejects(litefs.waitForUpToDateTxNumber(NaN), TypeError)
    })
  })
})

describe('cookies', () => {
  it('TXID_NUM_COOKIE_NAME and getTxSetCookieHeader', () => {
    assert.equal(litefs.TXID_NUM_COOKIE_NAME, 'txnum')
    assert.equal(
      litefs.getTxSetCookieHeader(12),
      'txnum=12; Path=/; HttpOnly; Secure; SameSite=Lax',
    )
    assert.equal(
      litefs.getTxSetCookieHeader(0, { expires: new Date(0), secure: false }),
      'txnum=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax',
    )
  })

  it('checkCookieForTransactionalConsistency covers ok, delete-cookie and replay', async () => {
    const deleted =
      'txnum=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax'
    const primary = makeMount({ txid: 10 })
    await withEnv({ LITEFS_DIR: primary, DATABASE_FILENAME: db }, async () => {
      assert.deepEqual(await litefs.checkCookieForTransactionalConsistency(undefined), {
        type: 'ok',
      })
      assert.deepEqual(await litefs.checkCookieForTransactionalConsistency('a=b'), { type: 'ok' })
      assert.deepEqual(await litefs.checkCookieForTransactionalConsistency('txnum=4'), {
        type: 'delete-cookie',
        setCookieHeader: deleted,
      })
      const { value } = await quietly(() =>
        litefs.checkCookieForTransactionalConsistency('txnum=x'),
      )
      assert.deepEqual(value, { type: 'delete-cookie', setCookieHeader: deleted })
    })
    const replica = makeMount({ txid: 10, primary: 'the-primary\n' })
    await withEnv({ LITEFS_DIR: replica, DATABASE_FILENAME: db }, async () => {
      assert.deepEqual(await litefs.checkCookieForTransactionalConsistency('txnum=10'), {
        type: 'delete-cookie',
        setCookieHeader: deleted,
      })
      const { value } = await quietly(() =>
        litefs.checkCookieForTransactionalConsistency('txnum=11'),
      )
      assert.deepEqual(value, {
        type: 'replay',
        flyReplayHeader: 'instance=the-primary',
        instance: 'the-primary',
      })
    })
  })
})

describe('instances', () => {
  it('getInternalInstanceDomain on and off Fly', async () => {
    await withEnv({ FLY_APP_NAME: 'app', INTERNAL_PORT: '8081' }, () => {
      assert.equal(litefs.getInternalInstanceDomain('abc'), 'http://abc.vm.app.internal:8081')
      assert.equal(litefs.getInternalInstanceDomain('abc', '9'), 'http://abc.vm.app.internal:9')
    })
    await withEnv({ PORT: '3000' }, () => {
      assert.equal(litefs.getInternalInstanceDomain('abc'), 'http://abc:3000')
    })
    await withEnv({}, () => {
      assert.throws(() => litefs.getInternalInstanceDomain('abc'), {
        name: 'Error',
        message: 'litefs-rs: INTERNAL_PORT or PORT must be set or a port must be supplied',
      })
    })
  })

  it('getAllInstances off Fly from the mount', async () => {
    await withEnv({}, async () => {
      assert.deepEqual(await litefs.getAllInstances(), { [hostname]: 'local' })
    })
    const dir = makeMount({ primary: 'p1\n' })
    await withEnv({ LITEFS_DIR: dir }, async () => {
      assert.deepEqual(await litefs.getAllInstances(), { [hostname]: 'local', p1: 'local' })
    })
  })

  it("getAllInstances off Fly from the sidecar's /info", async () => {
    const sidecar = await startFakeSidecar({
      nodeID: '1',
      hostname: 'n1',
      isPrimary: true,
      primaryURL: null,
      advertiseURL: 'http://n1:20202',
      databases: {},
      nodes: [
        { hostname: 'n1', region: 'ams' },
        { hostname: 'n2', region: 'sjc' },
      ],
    })
    try {
      await withEnv({ LITEFS_HTTP_URL: sidecar.url }, async () => {
        assert.deepEqual(await litefs.getAllInstances(), { n1: 'ams', n2: 'sjc' })
      })
    } finally {
      await sidecar.close()
    }
    const plain = await startFakeSidecar({ hostname: 'n3', isPrimary: true, databases: {} })
    try {
      assert.deepEqual(await litefs.getAllInstances({ httpUrl: plain.url }), { n3: 'local' })
    } finally {
      await plain.close()
    }
  })

  it('getAllInstances on Fly from the vms TXT record', async () => {
    const fake = await startFakeDns(['abc123 ams,def456 sjc'])
    const servers = dns.promises.getServers()
    dns.promises.setServers([fake.server])
    try {
      await withEnv({ FLY_APP_NAME: 'app' }, async () => {
        assert.deepEqual(await litefs.getAllInstances(), { abc123: 'ams', def456: 'sjc' })
      })
    } finally {
      dns.promises.setServers(servers)
      await fake.close()
    }
  })
})

describe('onTxNumber', () => {
  it('resolves when the TXID is reached, woken by inotify not by the timer', async () => {
    const dir = makeMount({ txid: 1 })
    setTimeout(() => writePos(dir, db, 3), 50)
    const started = Date.now()
    const n = await litefs.onTxNumber(3, {
      litefsDir: dir,
      databaseFilename: db,
      intervalMs: 60_000,
    })
    assert.equal(n, 3)
    assert.ok(Date.now() - started < 5000)
  })

  it('rejects with ETIMEDOUT and on abort', async () => {
    const dir = makeMount({ txid: 1 })
    await assert.rejects(
      litefs.onTxNumber(2, { litefsDir: dir, databaseFilename: db, timeoutMs: 50 }),
      { code: 'ETIMEDOUT' },
    )
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 30)
    await assert.rejects(
      litefs.onTxNumber(2, { litefsDir: dir, databaseFilename: db, signal: ac.signal }),
      { name: 'AbortError' },
    )
  })

  it("wakes on the sidecar's /events when the file change raises no inotify event", async () => {
    const dir = makeMount({ txid: 1 })
    // A write through a hard link in another directory changes the file but
    // raises no event on the watched directory, like a replica's position
    // applied by the sidecar behind the FUSE mount.
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-rs-other-'))
    fs.linkSync(path.join(dir, `${db}-pos`), path.join(other, 'pos'))
    const sidecar = await startFakeSidecar({})
    try {
      const waiting = litefs.onTxNumber(4, {
        litefsDir: dir,
        databaseFilename: db,
        intervalMs: 60_000,
        httpUrl: sidecar.url,
        timeoutMs: 10_000,
      })
      while (sidecar.connected() === 0) await new Promise(r => setTimeout(r, 5))
      await new Promise(r => setTimeout(r, 50))
      fs.writeFileSync(path.join(other, 'pos'), '0000000000000004/0000000000000000\n')
      const started = Date.now()
      sidecar.send({ type: 'tx', db, data: { txid: '0000000000000004' } })
      assert.equal(await waiting, 4)
      assert.ok(Date.now() - started < 5000)
    } finally {
      await sidecar.close()
    }
  })
})

describe('watchPrimary', () => {
  it('calls back on each change of primary and stops on close', async () => {
    const dir = makeMount({ primary: 'a\n' })
    const seen = []
    let notify
    const watcher = litefs.watchPrimary(
      info => {
        seen.push(info)
        notify?.()
      },
      { litefsDir: dir, intervalMs: 60_000 },
    )
    const next = () => new Promise(resolve => (notify = resolve))
    await new Promise(r => setTimeout(r, 50))
    let changed = next()
    // The mount swaps `.primary` whole; a truncate-then-write here would
    // show an empty file in between, which no mount ever does.
    fs.writeFileSync(path.join(dir, '.primary.tmp'), 'b\n')
    fs.renameSync(path.join(dir, '.primary.tmp'), path.join(dir, '.primary'))
    await changed
    changed = next()
    fs.rmSync(path.join(dir, '.primary'))
    await changed
    await watcher.close()
    fs.writeFileSync(path.join(dir, '.primary'), 'c\n')
    await new Promise(r => setTimeout(r, 50))
    assert.deepEqual(
      seen.map(i => [i.primaryInstance, i.currentIsPrimary]),
      [
        ['b', false],
        [hostname, true],
      ],
    )
  })
})

describe('shared reads under concurrency', () => {
  // Concurrent calls share one read of the mount's files; a call must
  // still see every commit that finished before it was made (a stale
  // txnum cookie would break read-your-writes).
  it('a call made after a commit sees it even while older reads are in flight', async () => {
    const dir = makeMount({ txid: 1 })
    let stale = 0
    for (let i = 2; i < 300; i++) {
      const before = Array.from({ length: 8 }, () => litefs.getTxNumber(dir, db))
      writePos(dir, db, i)
      if ((await litefs.getTxNumber(dir, db)) !== i) stale++
      await Promise.all(before)
    }
    assert.equal(stale, 0)
  })

  it('every caller sharing a failed read gets the error', async () => {
    const dir = makeMount({ pos: 'not a position\n' })
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => litefs.getTxNumber(dir, db)),
    )
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      assert.ok(r.reason instanceof Error)
      assert.match(r.reason.message, /-pos/)
    }
  })
})
