// `prisma migrate deploy`, and what start.js does when it cannot run.
//
// Prisma 7's migrate commands need its schema engine, a native binary the
// CLI downloads from binaries.prisma.sh: not part of any npm package. On a
// machine that reaches only the npm registry (this project's CI) the download
// fails, and applyWithoutEngine() applies prisma/migrations itself, recording
// each one in `_prisma_migrations` as the engine does (name, SHA-256 of
// migration.sql, times in Unix milliseconds), so `prisma migrate deploy` on a
// machine with the engine sees them as applied. It applies, in order, the
// migrations not yet recorded, each in one transaction; it does none of the
// engine's other checks (a modified or failed migration is an error here).
import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { databasePath } from './db.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const migrationsDir = path.join(here, 'prisma', 'migrations')

/** Runs `prisma migrate deploy`; { ok, engineMissing, output }. */
export function migrateDeploy() {
  // The CLI wherever npm put it (hoisted in a workspace).
  const cli = createRequire(import.meta.url).resolve('prisma/build/index.js')
  const r = spawnSync(process.execPath, [cli, 'migrate', 'deploy'], {
    cwd: here,
    encoding: 'utf8',
  })
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`
  const engineMissing =
    /binaries\.prisma\.sh/.test(output) || /no Prisma schema engine here/.test(output)
  return { ok: r.status === 0, engineMissing, output }
}

export function applyWithoutEngine() {
  const db = new Database(databasePath(), { timeout: 5000 })
  try {
    db.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" TEXT PRIMARY KEY NOT NULL,
      "checksum" TEXT NOT NULL,
      "finished_at" DATETIME,
      "migration_name" TEXT NOT NULL,
      "logs" TEXT,
      "rolled_back_at" DATETIME,
      "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
      "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
    )`)
    const recorded = new Map(
      db
        .prepare(
          'SELECT migration_name, checksum, finished_at FROM _prisma_migrations WHERE rolled_back_at IS NULL',
        )
        .all()
        .map(r => [r.migration_name, r]),
    )
    const names = fs
      .readdirSync(migrationsDir, { withFileTypes: true })
      .filter(d => d.isDirectory())
      .map(d => d.name)
      .sort()
    let applied = 0
    for (const name of names) {
      const sql = fs.readFileSync(path.join(migrationsDir, name, 'migration.sql'))
      const checksum = crypto.createHash('sha256').update(sql).digest('hex')
      const prev = recorded.get(name)
      if (prev) {
        if (prev.finished_at === null)
          throw new Error(
            `migration ${name} failed earlier: resolve it with prisma migrate resolve`,
          )
        if (prev.checksum !== checksum)
          throw new Error(`migration ${name} was modified after it was applied`)
        continue
      }
      const started = Date.now()
      db.transaction(() => {
        db.exec(sql.toString('utf8'))
        db.prepare(
          `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES (?, ?, ?, ?, ?, 1)`,
        ).run(crypto.randomUUID(), checksum, Date.now(), name, started)
      })()
      console.log(`applied migration ${name}`)
      applied++
    }
    return applied
  } finally {
    db.close()
  }
}
