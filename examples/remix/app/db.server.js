// The counter's queries, on the database litefs replicates (../db.js).
import { openDatabase } from '../db.js'

export function getCount() {
  const db = openDatabase()
  if (!db) return null
  return db.prepare('SELECT value FROM counter WHERE id = 1').pluck().get() ?? null
}

export function addToCount(delta) {
  return openDatabase()
    .prepare('UPDATE counter SET value = value + ? WHERE id = 1 RETURNING value')
    .pluck()
    .get(delta)
}
