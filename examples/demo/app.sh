#!/usr/bin/env bash
# The demo's "app": writes through the mount in WAL mode, as any SQLite
# client would, and shows the position litefs keeps for the database.
set -euo pipefail
MNT=$1
db="$MNT/demo.db"
sqlite3 "$db" "PRAGMA journal_mode=WAL;" >/dev/null
sqlite3 "$db" "CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, at TEXT);"
for i in 1 2 3 4 5; do
  sqlite3 "$db" "INSERT INTO visits (at) VALUES (datetime('now'));"
  echo "commit $i -> $(basename "$db")-pos = $(cat "$db-pos")"
done
echo "rows: $(sqlite3 "$db" 'SELECT count(*) FROM visits;')   integrity: $(sqlite3 "$db" 'PRAGMA integrity_check;')"
ls -la "$MNT"
