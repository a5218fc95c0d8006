#!/usr/bin/env bash
# bench/run.sh — every measure of issue 16 (and the OSCI receive of issue 13) in one run, each beside its
# baseline, then the report: bench/report.md and bench/report.svg from the
# JSON figures in bench/results/. `make bench` runs it.
#
#   bash bench/run.sh                 # the full run (23–31 minutes on the 2 shared cores)
#   BENCH_QUICK=1 bash bench/run.sh   # a smoke run with small counts (5–10 minutes); report in $BENCH_OUT (a temporary directory)
#   BENCH_RENDER=1 bash bench/run.sh  # no harness: render bench/report.md and .svg again from bench/results and bench/notes.md
#
# Every harness runs under the peers lock (/tmp/poststelle-peers.lock), one
# at a time, so that no other helper's peers run beside it; the lock is
# released between harnesses. A harness that fails leaves its measure
# "not measured" in the report, and the script exits 1 at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
lock=/tmp/poststelle-peers.lock
# Brokers of their own (ports and data), so that a broker another worktree
# left running on the integration tests' ports is neither used nor in the way.
work="$root/test/integration/.work"
export KAFKA_PORT="${KAFKA_PORT:-19592}" KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19593}"
export KAFKA_WORK="${KAFKA_WORK:-$work/kafka-bench}"
export KAFKA_CLUSTER_BASE="${KAFKA_CLUSTER_BASE:-19500}" KAFKA_CLUSTER_WORK="${KAFKA_CLUSTER_WORK:-$work/kafka-cluster-bench}"

if [[ -n ${BENCH_RENDER:-} ]]; then
  exec go run ./bench/report -in bench/results -md bench/report.md -svg bench/report.svg -notes bench/notes.md
fi
if [[ -n ${BENCH_QUICK:-} ]]; then
  mode=quick
  out="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/poststelle-bench-quick.XXXXXX")}"
  md="$out/report.md" svg="$out/report.svg"
  events=2000 sqlite_rounds=1 osci_n=32 smtp_n=300 smtp_rounds=1 sse_n=500 sse_rates=400 kafka_records=20000 kafka_seconds=2 scale_n=150 scale_rounds=1
  rs_messages=800 rs_rounds=1 rs_read=2s
else
  mode=full
  out="${BENCH_OUT:-$root/bench/results}"
  md="$root/bench/report.md" svg="$root/bench/report.svg"
  events=20000 sqlite_rounds=3 osci_n=256 smtp_n=4000 smtp_rounds=3 sse_n=3000 sse_rates=200,400,700 kafka_records=200000 kafka_seconds=10 scale_n=1500 scale_rounds=2
  rs_messages=2000 rs_rounds=2 rs_read=5s
fi
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then commit="$commit (with uncommitted changes)"; fi
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt
# What the report says about the run, beside the figures, so that it can be
# rendered again without running the harnesses.
echo "$commit" >"$out/commit.txt"
echo "$mode" >"$out/mode.txt"
{ grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; } >"$out/cpu.txt" || true
date -u '+%Y-%m-%d %H:%M UTC' >"$out/date.txt"
uptime >"$out/load-before.txt"
failed=()
step() { # step NAME COMMAND... — one harness under the lock
  local name=$1; shift
  echo "== bench: $name ($(date -u +%H:%M:%S))" >&2
  if ! flock "$lock" "$@"; then
    echo "== bench: $name FAILED" >&2
    failed+=("$name")
  fi
}
step sqlite go run ./cmd/poststelle bench --events "$events" --rounds "$sqlite_rounds" -json "$out/sqlite.json"
step smtp go run ./test/integration/mail/bench -n "$smtp_n" -rounds "$smtp_rounds" -senders 16 -json "$out/smtp.json"
# OSCI receive (issue 13): 1 MiB encrypted, signed deliveries from 64 dialogs,
# and the Java library decrypting the same messages (bench.sh builds its peer;
# the step holds the lock already).
step osci env OSCI_BENCH_LOCKED=1 bash test/integration/osci/bench/bench.sh -n "$osci_n" -dialogs 64 -json "$out/osci.json"
# Open-loop at the goal's 1,000/s, and a sweep of lower rates on fresh gateways.
step sse go run ./office/officeapi/bench -n "$sse_n" -rate 1000 -rates "$sse_rates" -json "$out/sse.json"
# Fresh broker data each run (jars stay): the benchmark topics of earlier
# runs would only fill the disk, about 1.4 GB a run.
bash test/integration/kafka/broker.sh reset >/dev/null 2>&1 || true
step kafka env BENCH_OUT="$out" RECORDS="$kafka_records" SECONDS_EACH="$kafka_seconds" bash test/integration/kafka/bench/run.sh
step scaling env BENCH_OUT="$out" N="$scale_n" ROUNDS="$scale_rounds" bash test/integration/kafka/scaling/run.sh
# The read store (issue 16, item 2): per-node SQLite against a shared
# PostgreSQL, about 2.5 minutes. Not a goal row of the report: the figures go
# to readstore.json beside the others, the reading to docs/architecture.md.
# pg.sh installs the server under the lock itself when it is missing, so it
# starts outside the step.
export PG_PORT="${PG_PORT:-15441}"
if pg_dsn="$(bash test/integration/postgres/pg.sh start)"; then
  step readstore go run ./bench/readstore -pg "$pg_dsn" -pgpid "$(bash test/integration/postgres/pg.sh pid)" \
    -messages "$rs_messages" -rounds "$rs_rounds" -read-for "$rs_read" -json "$out/readstore.json"
  bash test/integration/postgres/pg.sh stop || true
else
  echo "== bench: readstore FAILED (PostgreSQL did not start)" >&2
  failed+=(readstore)
fi
uptime >"$out/load-after.txt"
notes=()
if [[ $mode == full && -f bench/notes.md ]]; then notes=(-notes bench/notes.md); fi
go run ./bench/report -in "$out" -md "$md" -svg "$svg" "${notes[@]}"
echo "== bench: report in $md" >&2
if ((${#failed[@]})); then
  echo "== bench: failed: ${failed[*]}" >&2
  exit 1
fi
