// The same inputs through litefs-js 1.x (a devDependency) and litefs-rs give
// the same results, except where litefs-js is wrong; those tests say so in
// their names ("litefs-js bug: ...") and assert both behaviours.
// Also covers every export of the /http, /remix and /express entry points.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, it } from 'node:test'

import { hostname, makeMount, quietly, roundTrip, withEnv, writePos } from './helpers.mjs'

const require = createRequire(import.meta.url)
const db = 'sqlite.db'
const js = {
  index: require('litefs-js'),
  http: require('litefs-js/http'),
  remix: require('litefs-js/remix'),
  express: require('litefs-js/express'),
}
const rs = {
  index: require('litefs-rs'),
  http: require('litefs-rs/http'),
  remix: require('litefs-rs/remix'),
  express: require('litefs-rs/express'),
}

const withoutPrimaryUrl = ({ primaryUrl, ...rest }) => rest
const unprefix = message => String(message).replace(/^litefs-(js|rs): /, '')

/** Runs `fn(lib)` for both libraries with the same environment. */
async function both(env, fn) {
  const out = {}
  for (const [name, lib] of Object.entries({ js, rs })) {
    out[name] = (await quietly(() => withEnv(env, () => fn(lib)))).value
  }
  return out
}

async function outcome(fn) {
  try {
    return { value: await fn() }
  } catch (error) {
    return { error: unprefix(error?.message ?? error), isError: error instanceof Error }
  }
}

describe('differential: litefs-js vs litefs-rs', () => {
  it('exports every name litefs-js exports, from every entry point', () => {
    for (const entry of Object.keys(js)) {
      for (const name of Object.keys(js[entry])) {
        assert.equal(typeof rs[entry][name], typeof js[entry][name], `${entry}.${name}`)
      }
    }
    assert.equal(rs.index.TXID_NUM_COOKIE_NAME, js.index.TXID_NUM_COOKIE_NAME)
  })

  it('instance info for primary, replica, and .primary without newline', async () => {
    for (const primary of [undefined, 'other\n', 'other', `${hostname}\n`]) {
      const dir = makeMount({ primary })
      const r = await both({ LITEFS_DIR: dir }, async lib => [
        await lib.index.getInstanceInfo(),
        lib.index.getInstanceInfoSync(),
        await lib.index.getInstanceInfo(dir),
      ])
      assert.deepEqual(r.rs.map(withoutPrimaryUrl), r.js, String(primary))
    }
  })

  it('tx numbers: padded, unpadded, with and without newline, missing', async () => {
    for (const pos of ['000000000000002a/80000000000000ff\n', '2a/ff', 'ff/0\n', undefined]) {
      const dir = makeMount({ pos })
      const r = await both({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, async lib => [
        await lib.index.getTxNumber(),
        await lib.index.getTxNumber(dir, db),
      ])
      assert.deepEqual(r.rs, r.js, String(pos))
    }
  })

  it('litefs-js bug: an unparsable -pos gives NaN; litefs-rs throws an Error naming the file', async () => {
    const dir = makeMount({ pos: 'garbage\n' })
    const r = await both({}, lib => outcome(() => lib.index.getTxNumber(dir, db)))
    assert.ok(Number.isNaN(r.js.value))
    assert.equal(r.rs.isError, true)
    assert.match(r.rs.error, /sqlite\.db-pos/)
  })

  it('litefs-js bug: waitForUpToDateTxNumber gives up after one interval instead of waiting', async () => {
    const run = async lib => {
      const dir = makeMount({ txid: 1 })
      setTimeout(() => writePos(dir, db, 2), 150)
      return withEnv({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, () =>
        lib.index.waitForUpToDateTxNumber(2, { timeoutMs: 2000 }),
      )
    }
    const r = await both({}, run)
    assert.equal(r.js, false, 'litefs-js returns false although the TXID arrived in time')
    assert.equal(r.rs, true)
  })

  it('litefs-js bug: waitForUpToDateTxNumber drops its litefsDir/databaseFilename options after the first read', async () => {
    const run = lib =>
      outcome(() =>
        lib.index.waitForUpToDateTxNumber(2, {
          litefsDir: makeMount({ txid: 1 }),
          databaseFilename: db,
          timeoutMs: 50,
        }),
      )
    const r = await both({}, run)
    assert.match(r.js.error, /LITEFS_DIR is not defined/)
    assert.deepEqual(r.rs, { value: false })
  })

  it('the same missing-variable messages, as Errors', async () => {
    const cases = [
      [{}, lib => lib.index.getInstanceInfo()],
      [{}, lib => lib.index.getTxNumber()],
      [{ LITEFS_DIR: '/x' }, lib => lib.index.getTxNumber()],
    ]
    for (const [env, fn] of cases) {
      const r = await both(env, lib => outcome(() => fn(lib)))
      assert.deepEqual(r.rs, r.js)
    }
  })

  it('litefs-js bug: getInstanceInfoSync names getInstanceInfo in its error', async () => {
    const r = await both({}, lib => outcome(() => lib.index.getInstanceInfoSync()))
    assert.match(r.js.error, /argument to getInstanceInfo$/)
    assert.match(r.rs.error, /argument to getInstanceInfoSync$/)
  })

  it('cookie headers', async () => {
    const r = await both({}, lib => [
      lib.index.getTxSetCookieHeader(5),
      lib.index.getTxSetCookieHeader(0, { expires: new Date(0) }),
      lib.index.getTxSetCookieHeader(9, { maxAge: 60, sameSite: 'strict', domain: 'a.b' }),
      lib.remix.getTxSetCookieHeader(3),
    ])
    assert.deepEqual(r.rs, r.js)
  })

  it('checkCookieForTransactionalConsistency on primary and caught-up replica', async () => {
    const cookies = [
      undefined,
      null,
      '',
      'x=1',
      'txnum=3',
      'txnum=99',
      'txnum=abc',
      'txnum=',
      'a=1; txnum=2',
    ]
    for (const primary of [undefined, 'p\n']) {
      const dir = makeMount({ txid: 5, primary })
      for (const c of cookies) {
        if (primary && c === 'txnum=99') continue // the replica case below
        const r = await both({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, lib =>
          lib.index.checkCookieForTransactionalConsistency(c),
        )
        assert.deepEqual(r.rs, r.js, `${primary} ${c}`)
      }
    }
    const replica = makeMount({ txid: 5, primary: 'p\n' })
    const r = await both({ LITEFS_DIR: replica, DATABASE_FILENAME: db }, lib =>
      lib.index.checkCookieForTransactionalConsistency('txnum=99'),
    )
    assert.deepEqual(r.rs, r.js)
    assert.equal(r.rs.type, 'replay')
  })

  it('getInternalInstanceDomain on Fly', async () => {
    const r = await both({ FLY_APP_NAME: 'app', INTERNAL_PORT: '8081', PORT: '3000' }, lib => [
      lib.index.getInternalInstanceDomain('i1'),
      lib.index.getInternalInstanceDomain('i1', '9999'),
    ])
    assert.deepEqual(r.rs, r.js)
  })

  it('litefs-js bug: getInternalInstanceDomain off Fly puts "undefined" in the domain and throws a string', async () => {
    const r = await both({ PORT: '3000' }, lib => lib.index.getInternalInstanceDomain('i1'))
    assert.equal(r.js, 'http://i1.vm.undefined.internal:3000')
    assert.equal(r.rs, 'http://i1:3000')
    const e = await both({}, lib => outcome(() => lib.index.getInternalInstanceDomain('i1')))
    assert.equal(e.js.isError, false)
    assert.equal(e.rs.isError, true)
    assert.equal(e.rs.error, e.js.error)
  })

  it('getAllInstances off Fly without a mount; litefs-js ignores the primary named in .primary', async () => {
    const r = await both({}, lib => lib.index.getAllInstances())
    assert.deepEqual(r.rs, r.js)
    const dir = makeMount({ primary: 'p\n' })
    const m = await both({ LITEFS_DIR: dir }, lib => lib.index.getAllInstances())
    assert.deepEqual(m.js, { [hostname]: 'local' })
    assert.deepEqual(m.rs, { [hostname]: 'local', p: 'local' })
  })

  it('/http ensurePrimary: false on primary, 409 + fly-replay on replica', async () => {
    for (const primary of [undefined, 'p\n']) {
      const dir = makeMount({ primary })
      const r = await both({ LITEFS_DIR: dir }, lib =>
        roundTrip(async (req, res) => {
          if (!(await lib.http.ensurePrimary(res))) res.end('handled here')
        }),
      )
      assert.deepEqual(r.rs, r.js)
    }
  })

  it('/http setTxCookie, deleteTxCookie, appendHeader, handleTransactionalConsistency', async () => {
    for (const primary of [undefined, 'p\n']) {
      const dir = makeMount({ txid: 7, primary })
      for (const cookie of [undefined, 'txnum=7', 'txnum=junk', 'txnum=8']) {
        if (primary && cookie === 'txnum=8') continue // timing: see the wait test above
        const r = await both({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, lib =>
          roundTrip(
            async (req, res) => {
              lib.http.appendHeader(res, 'Set-Cookie', 'a=1')
              await lib.http.setTxCookie(res)
              if (await lib.http.handleTransactionalConsistency(req, res)) return
              await lib.http.deleteTxCookie(res)
              res.end('ok')
            },
            { headers: cookie ? { cookie } : {} },
          ),
        )
        assert.deepEqual(r.rs, r.js, `${primary} ${cookie}`)
      }
    }
  })

  it('/remix: 302 + fly-replay responses, consistency and the tx cookie', async () => {
    for (const primary of [undefined, 'p\n']) {
      const dir = makeMount({ txid: 7, primary })
      const r = await both({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, async lib => {
        const asResponse = async fn => {
          try {
            return { value: await fn() }
          } catch (thrown) {
            assert.ok(thrown instanceof Response)
            return {
              status: thrown.status,
              location: thrown.headers.get('location'),
              flyReplay: thrown.headers.get('fly-replay'),
            }
          }
        }
        const headers = new Headers()
        await lib.remix.appendTxNumberCookie(new Request('http://x/', { method: 'POST' }), headers)
        await lib.remix.appendTxNumberCookie(new Request('http://x/'), headers)
        return [
          await asResponse(() => lib.remix.ensurePrimary()),
          await asResponse(() => lib.remix.ensureInstance(hostname)),
          await asResponse(() => lib.remix.ensureInstance('elsewhere')),
          await asResponse(() => {
            throw lib.remix.getReplayResponse('i9')
          }),
          await asResponse(() =>
            lib.remix.handleTransactionalConsistency(
              new Request('http://x/', { headers: { cookie: 'txnum=6' } }),
            ),
          ),
          await asResponse(() =>
            lib.remix.handleTransactionalConsistency(new Request('http://x/')),
          ),
          headers.getSetCookie(),
        ]
      })
      assert.deepEqual(r.rs, r.js, String(primary))
    }
  })

  it('/express getEnsurePrimaryMiddleware and getTransactionalConsistencyMiddleware', async () => {
    for (const primary of [undefined, 'p\n']) {
      const dir = makeMount({ txid: 7, primary })
      for (const method of ['GET', 'POST', 'DELETE']) {
        const r = await both({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, lib =>
          roundTrip(
            (req, res) =>
              lib.express.getTransactionalConsistencyMiddleware()(req, res, () =>
                lib.express.getEnsurePrimaryMiddleware()(req, res, () => res.end('route')),
              ),
            { method, headers: { cookie: 'txnum=7' } },
          ),
        )
        assert.deepEqual(r.rs, r.js, `${primary} ${method}`)
      }
    }
  })

  it('litefs-js bug: getSetTxNumberMiddleware sets the TXID from before the route wrote', async () => {
    const r = await both({}, async lib => {
      const dir = makeMount({ txid: 7 })
      return withEnv({ LITEFS_DIR: dir, DATABASE_FILENAME: db }, () =>
        roundTrip(
          (req, res) =>
            lib.express.getSetTxNumberMiddleware()(req, res, () => {
              writePos(dir, db, 8) // the route's write
              res.end('written')
            }),
          { method: 'POST' },
        ),
      )
    })
    assert.match(r.js.setCookie[0], /^txnum=7;/)
    assert.match(r.rs.setCookie[0], /^txnum=8;/)
    assert.deepEqual({ ...r.rs, setCookie: [] }, { ...r.js, setCookie: [] })
  })

  it('litefs-js bug: a middleware failure is an unhandled rejection; litefs-rs passes it to next()', async () => {
    const dir = makeMount()
    fs.mkdirSync(path.join(dir, '.primary')) // unreadable: EISDIR
    const passed = await withEnv(
      { LITEFS_DIR: dir },
      () =>
        new Promise(resolve => {
          const res = { writeHead() {}, end() {} }
          rs.express.getEnsurePrimaryMiddleware()({ method: 'POST' }, res, resolve)
        }),
    )
    assert.ok(passed instanceof Error)
    assert.match(passed.message, /\.primary/)
  })
})
