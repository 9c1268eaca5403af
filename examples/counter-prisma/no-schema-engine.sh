#!/bin/sh
# Stands in for Prisma's schema engine during `prisma generate`, which never
# runs the engine but makes the CLI download it first from
# binaries.prisma.sh (not the npm registry): with this path in
# PRISMA_SCHEMA_ENGINE_BINARY, generate works offline. Anything that does
# need the engine gets this message instead.
echo "no Prisma schema engine here (PRISMA_SCHEMA_ENGINE_BINARY points at $0)" >&2
exit 1
