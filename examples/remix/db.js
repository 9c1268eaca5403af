// The counter's database: `${LITEFS_DIR}/${DATABASE_FILENAME}` in the litefs
// mount, opened once and kept open (a replica's connection writes once its
// node is promoted, so nothing reopens it after a failover).
import path from 'node:path'
import Database from 'better-sqlite3'

export function databasePath() {
  const dir = process.env.LITEFS_DIR
  const file = process.env.DATABASE_FILENAME
  if (!dir || !file) {
    throw new Error(
      'LITEFS_DIR and DATABASE_FILENAME must be set (litefs sets LITEFS_DIR for the app it runs)',
    )
  }
  return path.join(dir, file)
}

let db = null

/**
 * The open database, or null while it does not exist yet (a replica that
 * has not received the primary's first transaction: only the primary
 * creates it).
 */
export function openDatabase({ create = false } = {}) {
  if (db) return db
  try {
    // busy timeout: a replica applying a transaction holds SQLite's lock
    // for a moment, and readers wait instead of failing.
    db = new Database(databasePath(), { fileMustExist: !create, timeout: 5000 })
  } catch (e) {
    if (!create && e.code === 'SQLITE_CANTOPEN') return null
    throw e
  }
  return db
}
