#!/usr/bin/env bash
# Fleet views benchmark (run by `make bench`): the cost of `GET /stats` and `GET /customers` at
# 50 and at 10,000 customers. For each count it generates BENCH_FLEET_LINES lines (default
# 1000000, seed 7, 31 days ending 2024-11-09) over that many customers, ingests them into a fresh
# SQLite file and, when reachable, a fresh PostgreSQL database, and loads the API with wrk: every
# request a random range inside the 31 days (496 different ranges). The API runs with
# --answer-cache-bytes 0, so that every request is computed from the rows (with the cache on, a
# repeated range costs what a cache hit costs until the next commit).
# Settings: BENCH_FLEET_LINES, BENCH_FLEET_CUSTOMERS (default "50 10000"), BENCH_FLEET_DURATION
# (default 10s), BENCH_FLEET_CONNECTIONS (default 2: one request per core; more only queue), BENCH_POSTGRES_URL, BENCH_POSTGRES_PARAMS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ingest/bench-lib.sh
. ingest/bench-lib.sh
bin=${CARGO_TARGET_DIR:-target}/release
lines=${BENCH_FLEET_LINES:-1000000}
counts=${BENCH_FLEET_CUSTOMERS:-50 10000}
duration=${BENCH_FLEET_DURATION:-10s}
connections=${BENCH_FLEET_CONNECTIONS:-2}
pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pg_params=${BENCH_POSTGRES_PARAMS-?sslmode=disable}
from=2024-10-10
to=2024-11-09

for tool in wrk curl python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fleet bench: skipped: $tool is not installed"
    exit 0
  fi
done
for exe in logstats-api logstats-ingest logstats-generate; do
  if [ ! -x "$bin/$exe" ]; then
    echo "fleet bench: $bin/$exe is missing: run cargo build --release -p logstats-api -p logstats-ingest" >&2
    exit 1
  fi
done

work=$(mktemp -d)
api_pid=
pg_db=
cleanup() {
  if [ -n "$api_pid" ]; then
    kill -TERM "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  rm -f "data/bench-fleet-$$.db"*
  if [ -n "$pg_db" ]; then
    psql "$pg_admin" -qc "drop database if exists $pg_db with (force)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

days=$(python3 -c 'import datetime, sys
a = datetime.date.fromisoformat(sys.argv[1]); b = datetime.date.fromisoformat(sys.argv[2])
print(",".join("\"%s\"" % (a + datetime.timedelta(i)) for i in range((b - a).days + 1)))' "$from" "$to")
for endpoint in stats customers; do
  case $endpoint in
    stats) path='"/stats?from=" .. days[a] .. "&to=" .. days[b]' ;;
    customers) path='"/customers?sort=failed_requests&order=desc&from=" .. days[a] .. "&to=" .. days[b]' ;;
  esac
  cat > "$work/$endpoint.lua" <<LUA
local days = {$days}
local thread_seed = 0
setup = function(thread)
  thread_seed = thread_seed + 1
  thread:set("seed", thread_seed)
end
init = function()
  math.randomseed(7919 * (seed or 1))
end
request = function()
  local a = math.random(#days)
  local b = math.random(#days)
  if a > b then a, b = b, a end
  return wrk.format("GET", $path)
end
LUA
done

rows=()
bench() { # backend url customers log
  local backend=$1 url=$2 customers=$3 log=$4 port base i out body
  "$bin/logstats-ingest" --database-url "$url" --workers 2 "$log" 2>"$work/ingest.err" >/dev/null ||
    { cat "$work/ingest.err" >&2; return 1; }
  if [ "$backend" = postgres ]; then
    psql "$url" -qc 'vacuum analyze' >/dev/null
    psql "$url" -qc 'checkpoint' >/dev/null 2>&1 || true
  fi
  port=$(free_port)
  base="http://127.0.0.1:$port"
  RUST_LOG=warn "$bin/logstats-api" --bind "127.0.0.1:$port" --database-url "$url" \
    --answer-cache-bytes 0 2>"$work/api.err" &
  api_pid=$!
  for i in $(seq 100); do
    curl -fs "$base/health" >/dev/null 2>&1 && break
    if ! kill -0 "$api_pid" 2>/dev/null || [ "$i" = 100 ]; then
      cat "$work/api.err" >&2
      return 1
    fi
    sleep 0.1
  done
  # Correctness once: the fleet total equals the lines ingested, and /customers counts them all.
  body=$(curl -fsS "$base/stats?from=$from&to=$to")
  python3 -c 'import json, sys
body = json.loads(sys.argv[1]); lines = int(sys.argv[2])
assert body["total"]["total_requests"] == lines, (body["total"], lines)' "$body" "$lines"
  body=$(curl -fsS "$base/customers?from=$from&to=$to&limit=1")
  python3 -c 'import json, sys
body = json.loads(sys.argv[1]); customers = int(sys.argv[2])
assert body["count"] == customers, (body["count"], customers)' "$body" "$customers"
  for endpoint in stats customers; do
    out="$work/wrk-$backend-$customers-$endpoint.txt"
    wrk -t1 -c"$connections" -d"$duration" --timeout 60s --latency -s "$work/$endpoint.lua" "$base" > "$out"
    rows+=("$(python3 - "$out" "$backend" "$customers" "$endpoint" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
backend, customers, endpoint = sys.argv[2], int(sys.argv[3]), sys.argv[4]
def ms(value, unit):
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
total = int(re.search(r"(\d+) requests in", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
note = f"; {bad.group(1)} non-2xx" if bad else ""
print(f"| fleet | {backend} | {customers:,} customers | GET /{endpoint}, random range | {rate:,.1f} req/s | p50 {pct['50']:.1f} ms | p99 {pct['99']:.1f} ms | {total:,} requests{note} |")
PY
)")
  done
  echo "fleet bench ($backend, $customers customers): API peak RSS $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$api_pid/status")" >&2
  kill -TERM "$api_pid"
  wait "$api_pid" || true
  api_pid=
}

mkdir -p data
for customers in $counts; do
  log=data/bench-fleet-$lines-$customers.log
  if [ ! -s "$log" ]; then
    "$bin/logstats-generate" --lines "$lines" --seed 7 --end "$to" --customers "$customers" --output "$log" >&2
  fi
  db=data/bench-fleet-$$.db
  rm -f "$db"*
  echo "fleet bench (sqlite, $customers customers)" >&2
  bench sqlite "sqlite://$db" "$customers" "$log"
  rm -f "$db"*
  if command -v psql >/dev/null 2>&1 && psql "$pg_admin" -qAtc 'select 1' >/dev/null 2>&1; then
    pg_db=logstats_fleet_bench_$$
    psql "$pg_admin" -qc "drop database if exists $pg_db" >/dev/null
    psql "$pg_admin" -qc "create database $pg_db" >/dev/null
    echo "fleet bench (postgres, $customers customers)" >&2
    bench postgres "${pg_admin%/*}/$pg_db$pg_params" "$customers" "$log"
    psql "$pg_admin" -qc "drop database if exists $pg_db with (force)" >/dev/null
    pg_db=
  fi
done

echo
echo "| | backend | data | load | throughput | p50 | p99 | |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
