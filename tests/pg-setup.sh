#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests (the store's IndexDB suite runs against it)
# and prints its URL on stdout, nothing else. Idempotent: a running cluster is reused.
#
# Usage: KIZUNA_TEST_POSTGRES_URL=$(tests/pg-setup.sh)
# Env:   KIZUNA_PG_DIR  (default /tmp/kizuna-pg)   cluster folder
#        KIZUNA_PG_PORT (default 54329)            port on 127.0.0.1 (and the unix socket in the folder)
# Needs the Debian package `postgresql` (tests/apt-packages.txt; installed here when missing and root).
# Listens on 127.0.0.1 only, trust auth: a test cluster, never a production one.
set -euo pipefail
dir=${KIZUNA_PG_DIR:-/tmp/kizuna-pg}
port=${KIZUNA_PG_PORT:-54329}
log() { echo "pg-setup: $*" >&2; }

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL is not installed and installing needs root (apt-get install postgresql)"
    exit 2
  fi
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends postgresql >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

# initdb and postgres refuse to run as root: use the postgres account then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ ! -f "$dir/PG_VERSION" ]; then
  log "creating a cluster in $dir"
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  chmod 700 "$dir"
  as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >&2
fi
if ! as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  log "starting PostgreSQL on 127.0.0.1:$port"
  as_pg "$bin/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2
fi
for _ in $(seq 1 60); do
  if as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    exit 0
  fi
  sleep 0.5
done
log "PostgreSQL did not become ready; see $dir/server.log"
exit 1
