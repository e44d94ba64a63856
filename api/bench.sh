#!/usr/bin/env bash
# API load benchmark (run by `make bench` after the release build): ingests a generated log into a
# fresh SQLite file, when reachable a fresh PostgreSQL database and (with FEATURES containing
# mysql, as `make bench FEATURES=mysql` sets it) a fresh MySQL/MariaDB database, checks one answer
# against the stored rows, then loads `logstats-api` with wrk twice and prints req/s, p50 and p99 as table rows:
# "random ranges" (every request a random customer of 50 and a random range inside the 31 days:
# 24,800 different URLs, so answers are rarely repeated) and "same range" (the 50 customers in
# turn over the full 31 days: 50 URLs asked again and again).
# Settings: BENCH_API_LINES (default 1000000), BENCH_API_CONNECTIONS (default 64),
# BENCH_API_DURATION (default 10s), BENCH_API_THREADS (default 2), BENCH_API_ARGS (extra flags for
# logstats-api, e.g. "--pool-size 4"), BENCH_API_TOKEN (sent by every request as
# `Authorization: Bearer $BENCH_API_TOKEN`, for an API given `--tokens` in BENCH_API_ARGS),
# BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_POSTGRES_PARAMS
# (appended to the benchmark database's URL; default ?sslmode=disable), BENCH_MYSQL_URL (default
# mysql://root@127.0.0.1:3306/mysql; needs the mysql client). Everything runs on
# 127.0.0.1; nothing is installed.
# Tokens on vs off (send the header in both runs, so that wrk, which shares the cores, does the
# same work; the open API ignores it), e.g.:
#   "$CARGO_TARGET_DIR/release/logstats-api" new-token --customers '*' > /tmp/new-token
#   tail -n 1 /tmp/new-token > /tmp/tokens
#   BENCH_API_ARGS="--tokens /tmp/tokens" \
#     BENCH_API_TOKEN="$(sed -n 's/^token: //p' /tmp/new-token)" ./api/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ingest/bench-lib.sh
. ingest/bench-lib.sh
bin=${CARGO_TARGET_DIR:-target}/release
lines=${BENCH_API_LINES:-1000000}
connections=${BENCH_API_CONNECTIONS:-64}
duration=${BENCH_API_DURATION:-10s}
threads=${BENCH_API_THREADS:-2}
pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
my_admin=${BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}
from=2024-10-10
to=2024-11-09

if ! command -v wrk >/dev/null 2>&1; then
  echo "api bench: skipped: wrk is not installed (install it with: apt-get install -y wrk)"
  exit 0
fi
for tool in curl python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "api bench: skipped: $tool is not installed"
    exit 0
  fi
done
for exe in logstats-api logstats-ingest logstats-generate; do
  if [ ! -x "$bin/$exe" ]; then
    echo "api bench: $bin/$exe is missing: run cargo build --release -p logstats-api -p logstats-ingest" >&2
    exit 1
  fi
done

mkdir -p data
log=data/bench-api-$lines.log
if [ ! -s "$log" ]; then
  echo "generating $lines lines into $log" >&2
  "$bin/logstats-generate" --lines "$lines" --seed 7 --end "$to" --output "$log" >&2
fi

# With BENCH_API_TOKEN, every request of curl and of wrk's scripts carries it.
curl_auth=()
wrk_auth=
if [ -n "${BENCH_API_TOKEN:-}" ]; then
  case $BENCH_API_TOKEN in
    *[!A-Za-z0-9._~+/=-]*) echo "api bench: BENCH_API_TOKEN holds characters a token cannot" >&2; exit 1 ;;
  esac
  curl_auth=(-H "Authorization: Bearer $BENCH_API_TOKEN")
  wrk_auth="wrk.headers[\"Authorization\"] = \"Bearer $BENCH_API_TOKEN\""
fi

work=$(mktemp -d)
api_pid=
pg_db=
cleanup() {
  if [ -n "$api_pid" ]; then
    kill -TERM "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  rm -f "data/bench-api-$$.db"*
  if [ -n "$pg_db" ]; then
    psql "$pg_admin" -qc "drop database if exists $pg_db with (force)" >/dev/null 2>&1 || true
  fi
  if [ -n "${my_db:-}" ]; then
    mysql "${my_args[@]}" -e "drop database if exists $my_db" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Same range: wrk rotates over the 50 generated customers, one request each in turn.
cat > "$work/same.lua" <<LUA
$wrk_auth
local n = 0
request = function()
  n = n % 50 + 1
  return wrk.format("GET", "/customers/cust_" .. n .. "/stats?from=$from&to=$to")
end
LUA
# Random ranges: a random customer and a random range of the 31 days (from <= to) per request.
days=$(python3 -c 'import datetime, sys
a = datetime.date.fromisoformat(sys.argv[1]); b = datetime.date.fromisoformat(sys.argv[2])
print(",".join("\"%s\"" % (a + datetime.timedelta(i)) for i in range((b - a).days + 1)))' "$from" "$to")
cat > "$work/random.lua" <<LUA
$wrk_auth
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
  return wrk.format("GET", "/customers/cust_" .. math.random(50) .. "/stats?from=" .. days[a] .. "&to=" .. days[b])
end
LUA

# The stored total of a customer over the range, straight from the database.
stored_total() { # backend url customer
  local sql="select coalesce(sum(successful + failed), 0) from daily_stats
             where customer_id = '$3' and day between '$from' and '$to'"
  case $1 in
    sqlite)
      if command -v sqlite3 >/dev/null 2>&1; then
        sqlite3 "${2#sqlite://}" "$sql"
      else
        python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
          "${2#sqlite://}" "$sql"
      fi ;;
    postgres) psql "$2" -qAtc "$sql" ;;
    mysql) mysql "${my_args[@]}" -N -e "$sql" "${2##*/}" ;;
  esac
}

rows=()
bench() { # backend url
  local backend=$1 url=$2 port base i body served stored out
  echo "api bench ($backend): ingesting $log" >&2
  "$bin/logstats-ingest" --database-url "$url" --workers 2 "$log" 2>"$work/ingest.err" >/dev/null ||
    { cat "$work/ingest.err" >&2; return 1; }
  if [ "$backend" = postgres ]; then
    # Let PostgreSQL settle after the bulk load, as autovacuum and the checkpointer would within
    # a minute or so anyway; otherwise they run during the measurement.
    # CHECKPOINT needs a superuser (or pg_checkpoint): without one, measure anyway and say so.
    psql "$url" -qc 'vacuum analyze' >/dev/null
    psql "$url" -qc 'checkpoint' >/dev/null 2>&1 ||
      echo "api bench ($backend): CHECKPOINT not allowed for this user; measuring without it" >&2
  fi

  port=$(free_port)
  base="http://127.0.0.1:$port"
  # shellcheck disable=SC2086 # BENCH_API_ARGS is a list of flags
  RUST_LOG=warn "$bin/logstats-api" --bind "127.0.0.1:$port" --database-url "$url" \
    ${BENCH_API_ARGS:-} 2>"$work/api.err" &
  api_pid=$!
  for i in $(seq 100); do
    curl -fs ${curl_auth[@]+"${curl_auth[@]}"} "$base/health" >/dev/null 2>&1 && break
    if ! kill -0 "$api_pid" 2>/dev/null || [ "$i" = 100 ]; then
      echo "api bench ($backend): the API did not come up" >&2
      cat "$work/api.err" >&2
      return 1
    fi
    sleep 0.1
  done

  # Correctness once before loading: the answer's total equals the stored rows' sum.
  body=$(curl -fsS ${curl_auth[@]+"${curl_auth[@]}"} "$base/customers/cust_22/stats?from=$from&to=$to")
  served=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["total"]["total_requests"])' "$body")
  stored=$(stored_total "$backend" "$url" cust_22)
  if [ "$served" != "$stored" ] || [ "$stored" = 0 ]; then
    echo "api bench ($backend): WRONG ANSWER: cust_22 total_requests $served, stored rows sum $stored" >&2
    return 1
  fi
  echo "api bench ($backend): cust_22 total_requests $served = stored sum; loading for $duration" >&2

  for load in random same; do
    out="$work/wrk-$backend-$load.txt"
    case $load in
      random) label="$connections connections, random customer and range" ;;
      same) label="$connections connections, 50 customers, same 31-day range" ;;
    esac
    # Two unmeasured seconds first: the copy of the rows fills on first use (see docs/BENCHMARKS.md).
    wrk -t"$threads" -c"$connections" -d2s -s "$work/$load.lua" "$base" > /dev/null
    wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$work/$load.lua" "$base" > "$out"
    rows+=("$(python3 - "$out" "$backend" "$label" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
backend, label = sys.argv[2], sys.argv[3]
def ms(value, unit):
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
total = int(re.search(r"(\d+) requests in", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
note = []
if bad:
    note.append(f"{bad.group(1)} non-2xx")
if errors:
    note.append("socket errors: " + errors.group(1).strip())
print(f"| api | {backend} | {label} | {rate:,.0f} req/s | p50 {pct['50']:.2f} ms | p99 {pct['99']:.2f} ms |"
      f" {total:,} requests{'; ' + '; '.join(note) if note else ''} |")
PY
)")
    cat "$out" >&2
  done
  echo "api bench ($backend): API peak RSS $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$api_pid/status")" >&2

  kill -TERM "$api_pid"
  wait "$api_pid" || true
  api_pid=
}

db=data/bench-api-$$.db
rm -f "$db"*
bench sqlite "sqlite://$db"
rm -f "$db"*

# Memory: one customer with ten years of days (~645 requests a day), asked for 1,023 different
# `to` values, as in the report that found the answer cache unbounded in bytes. Prints the API's
# peak RSS (VmHWM) before and after.
years_log=data/bench-api-years.log
if [ ! -s "$years_log" ]; then
  echo "generating $years_log (one customer, 3,650 days)" >&2
  python3 - "$years_log" <<'PY'
import datetime, random, sys
random.seed(3650)
first = datetime.date(2015, 1, 1)
with open(sys.argv[1], "w") as out:
    for d in range(3650):
        day = first + datetime.timedelta(d)
        for _ in range(645):
            out.write(f"{day} {random.randrange(24):02}:{random.randrange(60):02}:00 cust_long "
                      f"/api/v1/r {random.choice((200, 200, 200, 404, 500))} "
                      f"{random.randrange(100, 2001) / 1000:.3f}\n")
PY
fi
years_db=data/bench-api-years-$$.db
rm -f "$years_db"*
"$bin/logstats-ingest" --database-url "sqlite://$years_db" --allowed-lateness 4000d "$years_log" \
  2>"$work/ingest.err" >/dev/null || { cat "$work/ingest.err" >&2; exit 1; }
port=$(free_port)
RUST_LOG=warn "$bin/logstats-api" --bind "127.0.0.1:$port" --database-url "sqlite://$years_db" \
  2>"$work/api.err" &
api_pid=$!
for i in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
start_rss=$(awk '/VmHWM/ {print $2}' "/proc/$api_pid/status")
python3 - "$port" <<'PY'
import datetime, json, sys, urllib.request
first = datetime.date(2015, 1, 1)
for k in range(1023):
    to = first + datetime.timedelta(3649 - k * 3)
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/customers/cust_long/stats?from={first}&to={to}") as r:
        body = json.load(r)
        assert body["total"]["total_requests"] > 0
PY
peak_rss=$(awk '/VmHWM/ {print $2}' "/proc/$api_pid/status")
kill -TERM "$api_pid"; wait "$api_pid" || true; api_pid=
rm -f "$years_db"*
memory_row="| api memory | sqlite | 1 customer x 3,650 days, 1,023 different \`to\` values | peak RSS $((peak_rss / 1024)) MB (at start $((start_rss / 1024)) MB) |"

if command -v psql >/dev/null 2>&1 && psql "$pg_admin" -qc 'select 1' >/dev/null 2>&1; then
  pg_db=logstats_apibench_$$
  psql "$pg_admin" -qc "create database $pg_db" >/dev/null
  bench postgres "${pg_admin%/*}/$pg_db${BENCH_POSTGRES_PARAMS-?sslmode=disable}"
  psql "$pg_admin" -qc "drop database $pg_db with (force)" >/dev/null
  pg_db=
else
  echo "api bench: PostgreSQL not reachable at $pg_admin: skipping the PostgreSQL API benchmark" >&2
fi

if mysql_wanted; then
  mysql_client_args "$my_admin"
  if mysql "${my_args[@]}" -e 'select 1' >/dev/null 2>&1; then
    my_db=logstats_apibench_$$
    mysql "${my_args[@]}" -e "drop database if exists $my_db; create database $my_db"
    bench mysql "${my_admin%/*}/$my_db"
    mysql "${my_args[@]}" -e "drop database $my_db"
    my_db=
  else
    echo "api bench: MySQL not reachable at $my_host:$my_port: skipping the MySQL API benchmark" >&2
  fi
fi

echo
echo "machine: $(nproc) cores; API input: $log ($lines lines); wrk -t$threads -c$connections -d$duration, client on the same machine"
echo
echo "| what | backend | load | req/s | p50 | p99 | requests |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "| what | backend | load | memory |"
echo "|---|---|---|---|"
echo "$memory_row"
