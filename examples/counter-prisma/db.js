// The Prisma client over `${LITEFS_DIR}/${DATABASE_FILENAME}`, through
// Prisma 7's better-sqlite3 driver adapter (no query engine binary).
import path from 'node:path'
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3'
import { PrismaClient } from '@prisma/client'

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

export const prisma = new PrismaClient({
  adapter: new PrismaBetterSqlite3({ url: `file:${databasePath()}` }),
})
