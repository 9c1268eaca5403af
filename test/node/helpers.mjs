// Shared fixtures: directories laid out like a LiteFS mount, environment
// swaps, a fake sidecar HTTP API and a fake DNS server for Fly's TXT record.

import dgram from 'node:dgram'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'

export const hostname = os.hostname()
export const root = path.resolve(
  import.meta.dirname ?? new URL('.', import.meta.url).pathname,
  '../..',
)

/** A temp dir like a mount: `<db>-pos` when `txid` is given, `.primary` when `primary` is. */
export function makeMount({ db = 'sqlite.db', txid, pos, primary } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-rs-mount-'))
  if (pos !== undefined) fs.writeFileSync(path.join(dir, `${db}-pos`), pos)
  else if (txid !== undefined) writePos(dir, db, txid)
  if (primary !== undefined) fs.writeFileSync(path.join(dir, '.primary'), primary)
  return dir
}

export function writePos(dir, db, txid, checksum = 0x8000000000000abcn) {
  const hex = n => BigInt(n).toString(16).padStart(16, '0')
  // Write-then-rename, as readers must never see a half-written position.
  const tmp = path.join(dir, `.${db}-pos.tmp`)
  fs.writeFileSync(tmp, `${hex(txid)}/${hex(checksum)}\n`)
  fs.renameSync(tmp, path.join(dir, `${db}-pos`))
}

const ENV_KEYS = [
  'LITEFS_DIR',
  'LITEFS_HOSTNAME',
  'DATABASE_FILENAME',
  'INTERNAL_PORT',
  'PORT',
  'FLY_APP_NAME',
  'FLY_REGION',
  'LITEFS_HTTP_URL',
  'LITEFS_PRIMARY_URL_TEMPLATE',
]

/** Runs `fn` with exactly `env` set among the variables both libraries read. */
export async function withEnv(env, fn) {
  const saved = Object.fromEntries(ENV_KEYS.map(k => [k, process.env[k]]))
  for (const k of ENV_KEYS) delete process.env[k]
  Object.assign(process.env, env)
  try {
    return await fn()
  } finally {
    for (const k of ENV_KEYS) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  }
}

/** Silences console.error (both libraries log on expected paths) and returns the lines. */
export async function quietly(fn) {
  const lines = []
  const original = console.error
  console.error = (...args) => lines.push(args.map(String).join(' '))
  try {
    return { value: await fn(), lines }
  } finally {
    console.error = original
  }
}

/**
 * A stand-in for the sidecar's HTTP API: `GET /info` answers `info`,
 * `GET /events` streams NDJSON; `send(event)` writes to every open stream.
 */
export async function startFakeSidecar(info) {
  const streams = new Set()
  const server = http.createServer((req, res) => {
    if (req.url === '/info') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(info))
    } else if (req.url === '/events') {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      res.write(JSON.stringify({ type: 'init', db: 'sqlite.db', data: {} }) + '\n')
      streams.add(res)
      req.on('close', () => streams.delete(res))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${server.address().port}`
  return {
    url,
    connected: () => streams.size,
    send(event) {
      for (const res of streams) res.write(JSON.stringify(event) + '\n')
    },
    async close() {
      for (const res of streams) res.destroy()
      server.closeAllConnections?.()
      await new Promise(resolve => server.close(resolve))
    },
  }
}

/** A DNS server on 127.0.0.1 answering every TXT query with `strings`. */
export async function startFakeDns(strings) {
  const socket = dgram.createSocket('udp4')
  socket.on('message', (query, rinfo) => {
    // Question: from byte 12 to the end of the QNAME plus QTYPE and QCLASS.
    let i = 12
    while (query[i] !== 0) i += query[i] + 1
    const question = query.subarray(12, i + 5)
    const header = Buffer.alloc(12)
    query.copy(header, 0, 0, 2)
    header.writeUInt16BE(0x8180, 2)
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(1, 6)
    const rdata = Buffer.concat(
      strings.map(s => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)])),
    )
    const answer = Buffer.alloc(12)
    answer.writeUInt16BE(0xc00c, 0)
    answer.writeUInt16BE(16, 2)
    answer.writeUInt16BE(1, 4)
    answer.writeUInt32BE(60, 6)
    answer.writeUInt16BE(rdata.length, 10)
    socket.send(Buffer.concat([header, question, answer, rdata]), rinfo.port, rinfo.address)
  })
  await new Promise(resolve => socket.bind(0, '127.0.0.1', resolve))
  return {
    server: `127.0.0.1:${socket.address().port}`,
    close: () => new Promise(resolve => socket.close(resolve)),
  }
}

/** Starts an http server running `handler`, makes one request, returns status, headers, body. */
export async function roundTrip(handler, { method = 'GET', headers = {} } = {}) {
  const server = http.createServer(async (req, res) => {
    try {
      await handler(req, res)
    } catch (error) {
      res.writeHead(500).end(String(error?.message ?? error))
    }
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  try {
    const res = await fetch(`http://127.0.0.1:${server.address().port}/`, {
      method,
      headers,
      redirect: 'manual',
    })
    return {
      status: res.status,
      flyReplay: res.headers.get('fly-replay'),
      setCookie: res.headers.getSetCookie(),
      body: await res.text(),
    }
  } finally {
    server.closeAllConnections?.()
    await new Promise(resolve => server.close(resolve))
  }
}
