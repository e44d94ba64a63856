#!/usr/bin/env bash
# `make bench-scale`: the row-count side of docs/SCALING.md, measured. Fills a fresh PostgreSQL
# database with SCALE_CUSTOMERS customers x SCALE_DAYS days of rows (default 10,000 x 365) from a
# generated log of SCALE_LINES lines (default 20,000,000: about 5.5 lines a (customer, day), so
# 99.6 % of the 3.65M possible rows exist), sorted in time order as a server writes its log, then
# measures on it (each row is shown on stderr as soon as it is measured):
#   - the ingest of the whole log (time, commit time, rows);
#   - one more day for every customer committed into the full database (SCALE_DAY_LINES lines,
#     default 200,000): the commit time a row once the table is large;
#   - the table's size, in bytes a row, indexes included;
#   - the API on random customers and random ranges inside the year (wrk, 64 connections);
#   - the fleet views (GET /stats, GET /customers) on random ranges of at most 31 days inside the
#     year, answer cache off, 2 connections; and each once over the whole year.
# With SCALE_SHAPE=skewed or uniform the log comes from ingest/scale-gen.py instead (a few
# customers carry most requests, or all the same share; time order with minutes of jitter), and
# ClickHouse (chdb, `pip install chdb`) loading the same log into a MergeTree table is measured
# beside the ingest (ingest/scale-clickhouse.py).
# With SCALE_BACKEND=sqlite the database is a fresh SQLite file instead of PostgreSQL (the size row
# then gives the file's size); with SCALE_BACKEND=mysql a fresh MySQL/MariaDB database at
# BENCH_MYSQL_URL (binaries built with FEATURES=mysql; needs the mysql client). The API runs with its defaults: its row copy is filled at start,
# and every API measurement waits for that fill (its time and size are a row of the table); the
# fleet views are then asked with the answer cache off, /customers once for every sort field
# over the whole year.
# SCALE_RANDOM_ORDER=0 leaves out the ingest (and ClickHouse load) of the same lines in random
# order, a seeded shuffle of the log, into a database of its own.
# Settings: SCALE_BACKEND (postgres, sqlite or mysql), SCALE_SHAPE, SCALE_CUSTOMERS, SCALE_DAYS, SCALE_LINES, SCALE_DAY_LINES, SCALE_DURATION (default
# 10s), BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# BENCH_POSTGRES_PARAMS (default ?sslmode=disable), BENCH_MYSQL_URL (default
# mysql://root@127.0.0.1:3306/mysql). It takes several minutes and about 2 GB of
# disk (log and database); the database is dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ingest/bench-lib.sh
. ingest/bench-lib.sh
bin=${CARGO_TARGET_DIR:-target}/release
customers=${SCALE_CUSTOMERS:-10000}
days=${SCALE_DAYS:-365}
lines=${SCALE_LINES:-20000000}
day_lines=${SCALE_DAY_LINES:-200000}
duration=${SCALE_DURATION:-10s}
pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pg_params=${BENCH_POSTGRES_PARAMS-?sslmode=disable}
my_admin=${BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}
to=2024-11-09
next=2024-11-10

backend=${SCALE_BACKEND:-postgres}
case "$backend" in postgres | sqlite | mysql) ;; *) echo "scale bench: SCALE_BACKEND is postgres, sqlite or mysql" >&2; exit 1 ;; esac
tools="wrk curl python3"
[ "$backend" = postgres ] && tools="$tools psql"
[ "$backend" = mysql ] && tools="$tools mysql"
for tool in $tools; do
  command -v "$tool" >/dev/null 2>&1 || { echo "scale bench: $tool is not installed" >&2; exit 1; }
done
for exe in logstats-api logstats-ingest logstats-generate; do
  [ -x "$bin/$exe" ] || { echo "scale bench: $bin/$exe is missing: run make build" >&2; exit 1; }
done
if [ "$backend" = postgres ]; then
  psql "$pg_admin" -qc 'select 1' >/dev/null 2>&1 ||
    { echo "scale bench: PostgreSQL is not reachable at $pg_admin" >&2; exit 1; }
fi
my() { # the mysql client on BENCH_MYSQL_URL's server (mysql://USER[:PASSWORD]@HOST:PORT/DB)
  python3 - "$my_admin" "$@" <<'PY'
import os, subprocess, sys
from urllib.parse import urlsplit, unquote
u = urlsplit(sys.argv[1])
args = ["mysql", "-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", unquote(u.username or "root"), "-N", "-B"]
env = dict(os.environ, MYSQL_PWD=unquote(u.password or ""))
sys.exit(subprocess.run(args + sys.argv[2:], env=env).returncode)
PY
}
if [ "$backend" = mysql ]; then
  my -e 'select 1' >/dev/null 2>&1 ||
    { echo "scale bench: MySQL/MariaDB is not reachable at BENCH_MYSQL_URL" >&2; exit 1; }
fi

mkdir -p data
shape=${SCALE_SHAPE:-}
log=data/bench-scale-$customers-$days-$lines-ordered.log
if [ -n "$shape" ]; then
  log=data/bench-scale-$customers-$days-$lines-$shape.log
  if [ ! -s "$log" ]; then
    echo "scale bench: generating $lines $shape lines over $customers customers and $days days into $log" >&2
    python3 ingest/scale-gen.py "$log" --shape "$shape" --customers "$customers" --lines "$lines" \
      --days "$days" --end "$to" >&2
  fi
fi
if [ ! -s "$log" ]; then
  echo "scale bench: generating $lines lines over $customers customers and $days days into $log" >&2
  "$bin/logstats-generate" --lines "$lines" --customers "$customers" --days "$((days - 1))" \
    --end "$to" --seed 11 --output "$log.unsorted" >&2
  # In time order, as a server writes its log: the generator scatters lines over the whole
  # window, and a year of lines in random order makes every epoch rewrite every row of the year
  # (measured: about 4 minutes an epoch of 128 MB, 2.6 GB of deltas in memory).
  LC_ALL=C sort -S 1G -k1,2 -o "$log" "$log.unsorted"
  rm -f "$log.unsorted"
fi
day_log=data/bench-scale-$customers-next-$day_lines.log
if [ ! -s "$day_log" ]; then
  "$bin/logstats-generate" --lines "$day_lines" --customers "$customers" --days 0 \
    --end "$next" --seed 12 --output "$day_log" >&2
fi
from=$(python3 -c 'import datetime, sys
print(datetime.date.fromisoformat(sys.argv[1]) - datetime.timedelta(int(sys.argv[2]) - 1))' "$to" "$days")

work=$(mktemp -d)
api_pid=
db=logstats_scale_$$
url="${pg_admin%/*}/$db$pg_params"
[ "$backend" = sqlite ] && url="sqlite://$work/scale.db"
[ "$backend" = mysql ] && url="${my_admin%/*}/$db"
cleanup() {
  if [ -n "$api_pid" ]; then
    kill -TERM "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  [ "$backend" = postgres ] &&
    psql "$pg_admin" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  [ "$backend" = postgres ] &&
    psql "$pg_admin" -qc "drop database if exists ${db}_random with (force)" >/dev/null 2>&1 || true
  [ "$backend" = mysql ] && my -e "drop database if exists $db; drop database if exists ${db}_random" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
[ "$backend" = postgres ] && psql "$pg_admin" -qc "create database $db" >/dev/null
[ "$backend" = mysql ] && my -e "create database $db"
sql() { # one query on the benchmark database, rows as space-separated values
  if [ "$backend" = postgres ]; then
    psql "$url" -qAt -F ' ' -c "$1"
  elif [ "$backend" = mysql ]; then
    my -D "$db" -e "$1" | tr '\t' ' '
  else
    python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):
    print(" ".join(str(v) for v in row))' "$work/scale.db" "$1"
  fi
}

rows=()
row() { # a table row: kept for the table at the end, and shown at once on stderr
  rows+=("$1")
  echo "$1" >&2
}
settle() { # before each timed load: the writes of the one before reach the disk first (the
  # kernel's dirty pages; on PostgreSQL a checkpoint of its WAL), so no load pays for another's
  sync
  [ "$backend" = postgres ] && psql "$pg_admin" -qc checkpoint >/dev/null 2>&1
  true
}
ingest() { # label log [database URL]
  echo "scale bench: ingesting $2" >&2
  settle
  # A year of unordered lines: none of them is late (the default lateness is 31 days).
  /usr/bin/time -f '%M' -o "$work/rss" "$bin/logstats-ingest" --database-url "${3:-$url}" --workers 2 \
    --allowed-lateness "$((days + 1))d" --json "$2" > "$work/ingest.json"
  row "$(python3 - "$work/ingest.json" "$work/rss" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
commit = s["stages"]["commit_seconds"]
rows = s["rows_written"]
if s["late"] or s["rejected"]:
    sys.exit(f"scale bench: {s['late']} late and {s['rejected']} rejected lines: the rows are incomplete")
print(f"| {sys.argv[3]} | {s['lines']:,} lines, {rows:,} rows written | {s['seconds']:.1f} s "
      f"({s['lines_per_second']:,.0f} lines/s) | commits {commit:.1f} s, "
      f"{commit / max(rows, 1) * 1e6:.1f} µs a row | {rss:.0f} MB |")
PY
)"
}
clickhouse() { # label log
  if python3 -c 'import chdb' >/dev/null 2>&1; then
    settle
    row "$(python3 ingest/scale-clickhouse.py "$2" | python3 -c 'import json, sys
c = json.load(sys.stdin)
n, seconds = c["rows"], c["seconds"]
print(f"| ClickHouse (chdb): {sys.argv[1]} | {n:,} lines | {seconds:.1f} s | | |")' "$1")"
  else
    echo "scale bench: chdb is not installed (pip install chdb): no ClickHouse row" >&2
  fi
}
ingest "ingest, whole year" "$log"
clickhouse "MergeTree load of the same log" "$log"
# The same lines in random order (a seeded shuffle), into a database of their own.
if [ "${SCALE_RANDOM_ORDER:-1}" != 0 ]; then
  shuffled=$log.shuffled
  [ -s "$shuffled" ] || shuf --random-source=<(yes) -o "$shuffled" "$log"
  random_url="${pg_admin%/*}/${db}_random$pg_params"
  [ "$backend" = sqlite ] && random_url="sqlite://$work/random.db"
  [ "$backend" = mysql ] && random_url="${my_admin%/*}/${db}_random"
  [ "$backend" = postgres ] && psql "$pg_admin" -qc "create database ${db}_random" >/dev/null
  [ "$backend" = mysql ] && my -e "create database ${db}_random"
  ingest "ingest, the same lines in random order" "$shuffled" "$random_url"
  clickhouse "MergeTree load of the lines in random order" "$shuffled"
  [ "$backend" = postgres ] &&
    psql "$pg_admin" -qc "drop database if exists ${db}_random with (force)" >/dev/null
  [ "$backend" = mysql ] && my -e "drop database if exists ${db}_random"
  rm -f "$work/random.db" "$work/random.db-wal" "$work/random.db-shm"
fi
[ "$backend" = postgres ] && sql 'vacuum analyze' >/dev/null
ingest "ingest, one more day into the full table" "$day_log"
if [ "$backend" = postgres ]; then
  sql 'vacuum analyze' >/dev/null
  sql 'checkpoint' >/dev/null 2>&1 || true
  row "$(sql "select count(*), pg_total_relation_size('daily_stats'),
    pg_relation_size('daily_stats'), pg_database_size(current_database()) from daily_stats" |
    python3 -c 'import sys
n, total, heap, database = map(int, sys.stdin.read().split())
print(f"| database | {n:,} rows | daily_stats {total / 1e6:,.0f} MB with indexes ({heap / 1e6:,.0f} MB heap) "
      f"| {total / n:,.0f} B a row with indexes | database {database / 1e6:,.0f} MB |")')"
elif [ "$backend" = mysql ]; then
  row "$(sql "select (select count(*) from daily_stats), data_length + index_length, data_length
    from information_schema.tables where table_schema = database() and table_name = 'daily_stats'" |
    python3 -c 'import sys
n, total, heap = map(int, sys.stdin.read().split())
print(f"| database | {n:,} rows | daily_stats {total / 1e6:,.0f} MB with indexes ({heap / 1e6:,.0f} MB data) "
      f"| {total / n:,.0f} B a row with indexes | |")')"
else
  rows_stored=$(sql 'select count(*) from daily_stats')
  row "$(python3 -c 'import os, sys
n = int(sys.argv[1]); size = sum(os.path.getsize(sys.argv[2] + s) for s in ("", "-wal") if os.path.exists(sys.argv[2] + s))
print(f"| database | {n:,} rows | SQLite file {size / 1e6:,.0f} MB | {size / n:,.0f} B a row with indexes | |")' "$rows_stored" "$work/scale.db")"
fi

start_api() { # extra flags...
  local port i
  port=$(free_port)
  base="http://127.0.0.1:$port"
  RUST_LOG=warn,logstats_api::startup=info "$bin/logstats-api" --bind "127.0.0.1:$port" \
    --database-url "$url" "$@" 2>"$work/api.err" &
  api_pid=$!
  for i in $(seq 100); do
    curl -fs "$base/health" >/dev/null 2>&1 && return 0
    kill -0 "$api_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "scale bench: the API did not come up" >&2
  cat "$work/api.err" >&2
  exit 1
}
wait_filled() { # until the row copy's fill at start is done; its time and size become a row
  local i bytes
  for i in $(seq 600); do
    grep -q 'copied the rows\|could not copy' "$work/api.err" && break
    sleep 0.5
  done
  bytes=$(curl -fsS "$base/metrics" | sed -n 's/^logstats_api_cache_bytes{cache="rows"} //p')
  row "| API row copy filled at start | $(sed -n 's/.*copied the rows of \([0-9]*\) customers.*/\1/p' "$work/api.err") customers | $(sed -n 's/.* in \([0-9.]*\) s$/\1 s/p' "$work/api.err") | | $((bytes / 1000000)) MB |"
}
stop_api() {
  kill -TERM "$api_pid" 2>/dev/null || true
  wait "$api_pid" 2>/dev/null || true
  api_pid=
}

# Day names of the year, for the Lua scripts.
python3 -c 'import datetime, sys
a = datetime.date.fromisoformat(sys.argv[1]); n = int(sys.argv[2])
print(",".join("\"%s\"" % (a + datetime.timedelta(i)) for i in range(n)))' "$from" "$days" > "$work/days"
lua() { # name path-expression max-span
  cat > "$work/$1.lua" <<LUA
local days = {$(cat "$work/days")}
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
  local b = math.min(#days, a + math.random(0, $3))
  return wrk.format("GET", $2 .. "from=" .. days[a] .. "&to=" .. days[b])
end
LUA
}
lua customer "\"/customers/cust_\" .. math.random($customers) .. \"/stats?\"" "$days"
lua fleet "\"/stats?\"" 30
lua list "\"/customers?sort=p99_latency&order=desc&limit=20&\"" 30

load() { # label lua connections
  local out=$work/wrk.txt
  wrk -t2 -c"$3" -d2s -s "$work/$2.lua" "$base" > /dev/null
  wrk -t2 -c"$3" -d"$duration" --timeout 60s --latency -s "$work/$2.lua" "$base" > "$out"
  row "$(python3 - "$out" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(value, unit):
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
total = int(re.search(r"(\d+) requests in", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
note = f", {bad.group(1)} non-2xx" if bad else ""
print(f"| {sys.argv[2]} | {total:,} requests{note} | {rate:,.1f} req/s | p50 {pct['50']:.1f} ms | p99 {pct['99']:.1f} ms |")
PY
)"
}
once() { # label path
  local seconds
  seconds=$(curl -fsS -o /dev/null -w '%{time_total}' "$base$2")
  row "| $1 | 1 request | | $(python3 -c "print(f'{float(\"$seconds\") * 1000:,.0f} ms')") | |"
}

start_api
wait_filled
# Correctness once: a customer's year total equals the stored rows' sum.
served=$(curl -fsS "$base/customers/cust_22/stats?from=$from&to=$next" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["total"]["total_requests"])')
stored=$(sql "select sum(successful + failed) from daily_stats where customer_id = 'cust_22'")
if [ "$served" != "$stored" ]; then
  echo "scale bench: WRONG ANSWER: cust_22 served $served, stored $stored" >&2
  exit 1
fi
load "API, random customer and range in the year, 64 connections" customer 64
row "| API peak RSS (VmHWM) | | | | $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$api_pid/status") |"
stop_api
start_api --answer-cache-bytes 0
wait_filled
load "GET /stats, random ranges of 1-31 days, 2 connections" fleet 2
load "GET /customers?sort=p99_latency&limit=20, random 1-31 days, 2 connections" list 2
once "GET /stats, the whole year" "/stats?from=$from&to=$to"
for sort in p99_latency median_latency failed_requests total_requests uptime average_latency customer_id; do
  once "GET /customers?sort=$sort&limit=20, the whole year" "/customers?from=$from&to=$to&sort=$sort&order=desc&limit=20"
done
sources=$(curl -fsS "$base/metrics" | sed -n 's/^logstats_api_customer_lists_total{source="\(.*\)"} \(.*\)/\1 \2/p' | tr '\n' ' ')
row "| GET /customers answers by source | $sources | | | |"
stop_api

echo
version=SQLite
[ "$backend" = postgres ] && version="PostgreSQL $(psql "$pg_admin" -qAtc 'show server_version')"
[ "$backend" = mysql ] && version="MySQL/MariaDB $(my -e 'select version()')"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $version; input: $log ($(($(stat -c %s "$log") / 1000000)) MB), $customers customers x $days days"
echo
echo "| what | size | time / rate | p50 / per row | p99 / memory |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
