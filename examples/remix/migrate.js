// Applies migrations/*.sql in name order, each in one transaction with
// `PRAGMA user_version` recording how many ran. Only the primary may run
// this (start.js checks): on a replica the first write fails with
// "attempt to write a readonly database".
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { openDatabase } from './db.js'

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations')

export function migrate() {
  const db = openDatabase({ create: true })
  const files = fs
    .readdirSync(dir)
    .filter(f => f.endsWith('.sql'))
    .sort()
  const done = db.pragma('user_version', { simple: true })
  for (const [i, file] of files.entries()) {
    if (i < done) continue
    const sql = fs.readFileSync(path.join(dir, file), 'utf8')
    db.transaction(() => {
      db.exec(sql)
      db.pragma(`user_version = ${i + 1}`)
    })()
    console.log(`applied migration ${file}`)
  }
  return files.length - done
}
