// Serves the built app (build/ from `react-router build`): hashed assets
// from build/client, everything else through React Router's request handler.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequestListener } from '@react-router/node'

const here = path.dirname(fileURLToPath(import.meta.url))
const client = path.join(here, 'build', 'client')
const serverBuild = path.join(here, 'build', 'server', 'index.js')
if (!fs.existsSync(serverBuild)) {
  console.error(`${serverBuild} not found: run npm run build first`)
  process.exit(1)
}
const build = await import(serverBuild)
const handle = createRequestListener({ build, mode: 'production' })
const types = { '.js': 'text/javascript', '.css': 'text/css', '.ico': 'image/x-icon' }

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app')
  if ((req.method === 'GET' || req.method === 'HEAD') && url.pathname.startsWith('/assets/')) {
    const file = path.join(client, path.normalize(url.pathname))
    if (file.startsWith(client + path.sep) && fs.existsSync(file)) {
      res.writeHead(200, {
        'content-type': types[path.extname(file)] ?? 'application/octet-stream',
        'cache-control': 'public, max-age=31536000, immutable',
      })
      return fs.createReadStream(file).pipe(res)
    }
  }
  handle(req, res)
})
const port = Number(process.env.PORT ?? 3000)
server.listen(port, '127.0.0.1', () =>
  console.log(`React Router app listening on http://127.0.0.1:${port}`),
)
