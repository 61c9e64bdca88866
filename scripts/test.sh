#!/usr/bin/env bash
# Runs PodWrangler's whole test suite: unit tests, and integration tests against real podsim,
# podwranglerd and PostgreSQL processes. Starts a throwaway PostgreSQL server unless
# PODWRANGLER_TEST_DATABASE_URL already points at one. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh

started_pg=0
if [ -z "${PODWRANGLER_TEST_DATABASE_URL:-}" ]; then
  if pg_start; then
    started_pg=1
  else
    echo "test.sh: WARNING: no PostgreSQL server; the PostgreSQL tests will be skipped" >&2
  fi
fi
cleanup() { [ "$started_pg" = 1 ] && pg_stop; true; }
trap cleanup EXIT

# Integration tests start real processes; build every binary first so they can find each other.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast "$@"
