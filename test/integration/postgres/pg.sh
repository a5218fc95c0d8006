#!/usr/bin/env bash
# test/integration/postgres/pg.sh — a throwaway PostgreSQL cluster on
# 127.0.0.1 for the read-store measurement (bench/readstore). Not used by
# `make test`.
#
#   bash test/integration/postgres/pg.sh start   # prints the DSN on stdout
#   bash test/integration/postgres/pg.sh stop
#
# The server comes from Debian's `postgresql` package (installed under the
# peers lock when missing). It runs as the user `postgres` because the server
# refuses root, with fsync and synchronous_commit on, so that a commit is on
# the disk when it returns — the stricter end of the comparison; the harness
# also measures synchronous_commit=off, which matches the SQLite state
# database's synchronous=NORMAL (a power cut may undo the newest commits).
set -euo pipefail
lock=/tmp/poststelle-peers.lock
port="${PG_PORT:-15439}"
work="${PG_WORK:-/tmp/poststelle-pg-$port}"

bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [[ -z $d ]]; then
    flock "$lock" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null' >&2
    d="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  fi
  echo "$d"
}

as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin; bin="$(bindir)"
  stop # a cluster an earlier run left on this port
  mkdir -p "$work"
  [[ $(id -u) == 0 ]] && chown postgres: "$work"
  as_pg "$bin/initdb" -D "$work/data" -U bench --auth=trust -E UTF8 --no-locale >"$work/initdb.log" 2>&1
  as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w start -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$work -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c shared_buffers=128MB -c max_connections=64" >/dev/null
  echo "postgres://bench@127.0.0.1:$port/postgres?sslmode=disable"
}

stop() {
  local bin; bin="$(bindir)"
  if [[ -d $work/data ]]; then as_pg "$bin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null || true; fi
  rm -rf "$work"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  pid) head -1 "$work/data/postmaster.pid" ;;
  *) echo "usage: $0 start|stop|pid" >&2; exit 2 ;;
esac
