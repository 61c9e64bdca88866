#!/usr/bin/env bash
# Throwaway PostgreSQL server for tests: `source scripts/pg.sh; pg_start; ...; pg_stop`.
# Sets PODWRANGLER_TEST_DATABASE_URL. Needs the PostgreSQL server binaries (Debian:
# postgresql-15) and, as root, the `postgres` user (initdb refuses to run as root).

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_start() {
  local bin port dir as
  bin=$(pg_bin) || { echo "pg.sh: no PostgreSQL server binaries (apt-get install postgresql)" >&2; return 1; }
  port=${PODWRANGLER_PG_PORT:-54329}
  dir=$(mktemp -d /tmp/podwrangler-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$dir"
    as=(runuser -u postgres --)
  else
    as=()
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
    || { cat "$dir/log" >&2; return 1; }
  PODWRANGLER_PG_DIR=$dir
  PODWRANGLER_PG_BIN=$bin
  export PODWRANGLER_PG_DIR PODWRANGLER_PG_BIN
  export PODWRANGLER_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "pg.sh: PostgreSQL on 127.0.0.1:$port (data in $dir)" >&2
}

pg_stop() {
  [ -n "${PODWRANGLER_PG_DIR:-}" ] || return 0
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$PODWRANGLER_PG_BIN/pg_ctl" -D "$PODWRANGLER_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  else
    "$PODWRANGLER_PG_BIN/pg_ctl" -D "$PODWRANGLER_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PODWRANGLER_PG_DIR"
  unset PODWRANGLER_PG_DIR
}
