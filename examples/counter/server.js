// The counter app: a page with a number and +/- buttons, plain node:http.
// GET / and GET /count read the local database (any node); POST /increment
// and /decrement write it, which litefs's proxy sends to the primary.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { getInstanceInfo } from 'litefs-rs'
import { ensurePrimary } from 'litefs-rs/http'
import { openDatabase } from './db.js'

const port = Number(process.env.PORT ?? 8081)
const here = path.dirname(fileURLToPath(import.meta.url))
const page = fs.readFileSync(path.join(here, 'public', 'index.html'), 'utf8')

function readCount() {
  const db = openDatabase()
  if (!db) return null
  try {
    return db.prepare('SELECT value FROM counter WHERE id = 1').pluck().get() ?? null
  } catch (e) {
    // The primary's migration has not reached this node yet.
    if (/no such table/.test(e.message)) return null
    throw e
  }
}

async function state() {
  const { currentInstance, primaryInstance } = await getInstanceInfo()
  return { count: readCount(), instance: currentInstance, primary: primaryInstance }
}

function escape(s) {
  return String(s).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
  res.end(body)
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://app')
  if (req.method === 'GET' && url.pathname === '/') {
    const s = await state()
    const html = page
      .replace('{{count}}', escape(s.count ?? '…'))
      .replace('{{instance}}', escape(s.instance))
      .replace('{{primary}}', escape(s.primary))
    return send(res, 200, 'text/html; charset=utf-8', html)
  }
  if (req.method === 'GET' && url.pathname === '/count') {
    return send(res, 200, 'application/json', JSON.stringify(await state()))
  }
  if (req.method === 'POST' && (url.pathname === '/increment' || url.pathname === '/decrement')) {
    // Behind litefs's proxy a POST only reaches the primary's app; without
    // the proxy (or on Fly.io) this answers with fly-replay instead.
    if (await ensurePrimary(res)) return
    req.resume()
    const delta = url.pathname === '/increment' ? 1 : -1
    const db = openDatabase()
    const count = db
      .prepare('UPDATE counter SET value = value + ? WHERE id = 1 RETURNING value')
      .pluck()
      .get(delta)
    const { currentInstance } = await getInstanceInfo()
    // A plain form post (no JavaScript) goes back to the page, whose GET the
    // proxy holds until this node's write has reached the node serving it.
    if (!(req.headers.accept ?? '').includes('application/json')) {
      res.writeHead(303, { location: '/' })
      return res.end()
    }
    return send(res, 200, 'application/json', JSON.stringify({ count, instance: currentInstance }))
  }
  send(res, 404, 'text/plain', 'not found\n')
}

http
  .createServer((req, res) => {
    handle(req, res).catch(e => {
      console.error(`${req.method} ${req.url}: ${e.stack ?? e}`)
      if (!res.headersSent) send(res, 500, 'text/plain', `${e.message}\n`)
      else res.destroy()
    })
  })
  .listen(port, '127.0.0.1', () => console.log(`counter app listening on http://127.0.0.1:${port}`))
