// The counter app with Prisma: the same page and routes as examples/counter
// (GET / and /count read on any node; POST /increment and /decrement write,
// which litefs's proxy runs on the primary).
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { getInstanceInfo } from 'litefs-rs'
import { ensurePrimary } from 'litefs-rs/http'
import { prisma } from './db.js'

const port = Number(process.env.PORT ?? 8081)
const here = path.dirname(fileURLToPath(import.meta.url))
const page = fs.readFileSync(path.join(here, 'public', 'index.html'), 'utf8')

async function readCount() {
  try {
    return (await prisma.counter.findUnique({ where: { id: 1 } }))?.value ?? null
  } catch (e) {
    // The primary's migration (or the database itself) has not reached
    // this node yet.
    if (/no such table|unable to open|does not exist/i.test(e.message)) return null
    throw e
  }
}

async function state() {
  const { currentInstance, primaryInstance } = await getInstanceInfo()
  return { count: await readCount(), instance: currentInstance, primary: primaryInstance }
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
    if (await ensurePrimary(res)) return
    req.resume()
    const delta = url.pathname === '/increment' ? 1 : -1
    const { value: count } = await prisma.counter.update({
      where: { id: 1 },
      data: { value: { increment: delta } },
    })
    const { currentInstance } = await getInstanceInfo()
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
  .listen(port, '127.0.0.1', () =>
    console.log(`counter (Prisma) listening on http://127.0.0.1:${port}`),
  )
