// The README's first command, driven the way a person would: ./scripts/demo
// (on the debug build `cargo test` left), then Debian's chromium through
// playwright-core on two replicas' pages. Clicks on one replica show at once
// there and soon on the other; after a kill -9 of the primary, clicks on a
// survivor all land once a new primary is elected, and every node ends on
// the same count. Screenshots go to target/test-output/examples/.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const outDir = path.join(root, 'target', 'test-output', 'examples')
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'

/** The demo process and everything it printed so far. */
class Demo {
  constructor() {
    this.out = ''
    this.waiters = []
    this.proc = spawn(path.join(root, 'scripts', 'demo'), ['--debug', '--no-build'], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const take = chunk => {
      this.out += chunk
      for (const w of [...this.waiters]) w()
    }
    this.proc.stdout.setEncoding('utf8').on('data', take)
    this.proc.stderr.setEncoding('utf8').on('data', take)
    this.exit = new Promise(resolve =>
      this.proc.once('exit', (code, signal) => resolve({ code, signal })),
    )
    this.proc.once('exit', () => {
      for (const w of [...this.waiters]) w()
    })
  }

  /** Resolves the first match of `re` in the output after `from`, or throws after `timeoutMs`. */
  waitFor(re, timeoutMs, from = 0) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.out.slice(from))
        if (m) {
          done()
          resolve(m)
        } else if (this.proc.exitCode !== null) {
          done()
          reject(
            new Error(
              `the demo exited (${this.proc.exitCode}) before printing ${re}:\n${this.out}`,
            ),
          )
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(
          new Error(`timed out after ${timeoutMs / 1000} s waiting for ${re} in:\n${this.out}`),
        )
      }, timeoutMs)
      const done = () => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter(w => w !== check)
      }
      this.waiters.push(check)
      check()
    })
  }

  key(k) {
    this.proc.stdin.write(k)
  }
}

let demo
let browser
let dir

before(async () => {
  fs.mkdirSync(outDir, { recursive: true })
  demo = new Demo()
  await demo.waitFor(/^Keys: /m, 180000)
  dir = (await demo.waitFor(/cluster files in (\S+)/, 1000))[1]
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Chromium's own background connections would only be refused on a
    // machine without Internet access; --no-sandbox because tests run as root.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
})

after(async () => {
  await browser?.close()
  if (demo && demo.proc.exitCode === null) {
    demo.key('q')
    const stopped = await Promise.race([
      demo.exit,
      new Promise(r => setTimeout(() => r(null), 30000)),
    ])
    if (!stopped) demo.proc.kill('SIGKILL')
  }
  if (dir) {
    // The nodes' logs beside the screenshots, for a failure's post-mortem.
    for (const n of ['node-1', 'node-2', 'node-3']) {
      const log = path.join(dir, n, 'litefs.log')
      if (fs.existsSync(log)) fs.copyFileSync(log, path.join(outDir, `${n}.log`))
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

function urlOf(name) {
  const m = new RegExp(`^  ${name}  (http://\\S+)`, 'm').exec(demo.out)
  assert.ok(m, `no URL for ${name} in:\n${demo.out}`)
  return m[1]
}

async function countOn(url) {
  const res = await fetch(new URL('/count', url), { signal: AbortSignal.timeout(5000) })
  return (await res.json()).count
}

/** Waits until the page's number reads `n`; how long it took, in ms. */
async function waitForCount(page, n, timeoutMs) {
  const started = Date.now()
  await page.waitForFunction(
    want => document.getElementById('count').textContent === String(want),
    n,
    {
      timeout: timeoutMs,
      polling: 50,
    },
  )
  return Date.now() - started
}

/** Retries `check` (errors count as false) until true; ms taken, or throws after `timeoutMs`. */
async function until(check, timeoutMs) {
  const started = Date.now()
  for (;;) {
    try {
      if (await check()) return Date.now() - started
    } catch {}
    if (Date.now() - started > timeoutMs) {
      throw new Error(`not true after ${timeoutMs / 1000} s: ${check}\n${demo.out}`)
    }
    await new Promise(r => setTimeout(r, 100))
  }
}

test('clicks on any node show on all of them, through a kill -9 of the primary', async () => {
  // node-1 starts first and becomes primary; node-2 is the other candidate,
  // node-3 never is one.
  await demo.waitFor(/node-1 is primary/, 15000)
  const [u1, u2, u3] = ['node-1', 'node-2', 'node-3'].map(urlOf)

  const a = await (await browser.newContext()).newPage()
  const b = await (await browser.newContext()).newPage()
  await a.goto(u3)
  await b.goto(u2)
  assert.equal(await a.textContent('#count'), '0')
  assert.equal(await a.textContent('#instance'), 'node-3')
  assert.equal(await a.textContent('#primary'), 'node-1')

  // Three clicks on a replica: each POST goes through node-3's proxy to the
  // primary, and the page shows each answer at once.
  for (let i = 1; i <= 3; i++) {
    await a.click('#increment')
    await waitForCount(a, i, 10000)
  }
  // Read-your-writes: a reload is a GET on node-3 carrying the proxy's
  // __txid cookie, so it is served only once node-3 has the third click.
  await a.reload()
  assert.equal(await a.textContent('#count'), '3')
  const seenOnOther = await waitForCount(b, 3, 5000)
  console.log(`# the other replica's page showed the clicks ${seenOnOther} ms after they landed`)
  await a.screenshot({ path: path.join(outDir, '1-replica-after-3-clicks.png') })
  await b.screenshot({ path: path.join(outDir, '2-other-replica.png') })

  // A crash of the primary: litefs and its app killed with SIGKILL.
  const mark = demo.out.length
  const killed = Date.now()
  demo.key('k')
  await demo.waitFor(/kill -9 of the primary, node-1/, 10000, mark)
  // Keep clicking on the survivor: each click waits (the page retries on
  // the proxy's 502/503) until a new primary takes it.
  for (let i = 0; i < 3; i++) await a.click('#increment')
  await a.screenshot({ path: path.join(outDir, '3-during-failover.png') })
  await waitForCount(a, 6, 90000)
  const landed = (Date.now() - killed) / 1000
  const failover = await demo.waitFor(
    /(node-\d) is primary (\d+\.\d) s after the kill/,
    30000,
    mark,
  )
  console.log(
    `# failover: ${failover[1]} primary ${failover[2]} s after the kill (demo); the clicks made after the kill had all landed ${landed.toFixed(1)} s after it`,
  )
  assert.equal(failover[1], 'node-2', 'node-3 is not a candidate')
  assert.equal(await a.textContent('#status'), '')

  // The same count everywhere, the killed node included once it restarts.
  await waitForCount(b, 6, 10000)
  assert.equal(await countOn(u2), 6)
  // node-3 without a cookie reads its own copy, which follows node-2 once
  // its stream to the new primary is up.
  const caughtUp = await until(async () => (await countOn(u3)) === 6, 20000)
  console.log(`# node-3's own copy (read without a cookie) had the count ${caughtUp} ms later`)
  demo.key('r')
  await demo.waitFor(/restarting node-1/, 10000, mark)
  await until(async () => (await countOn(u1)) === 6, 60000)
  const c = await (await browser.newContext()).newPage()
  await c.goto(u1)
  assert.equal(await c.textContent('#count'), '6')
  assert.equal(await c.textContent('#primary'), 'node-2')
  await a.reload()
  await a.screenshot({ path: path.join(outDir, '4-after-failover.png') })
  await c.screenshot({ path: path.join(outDir, '5-restarted-node.png') })

  // q stops every node: the demo exits 0 and leaves no mount behind.
  demo.key('q')
  const { code } = await demo.exit
  assert.equal(code, 0, demo.out)
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8')
  assert.ok(!mounts.includes(dir), `mounts left under ${dir}:\n${mounts}`)
  assert.match(demo.out, /stopped\. Logs and data are in/)
})
