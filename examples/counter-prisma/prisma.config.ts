// Prisma 7's configuration: the database is the one litefs mounts.
import path from 'node:path'
import { defineConfig } from 'prisma/config'

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: {
    url: `file:${path.join(process.env.LITEFS_DIR ?? '', process.env.DATABASE_FILENAME ?? 'counter.db')}`,
  },
})
