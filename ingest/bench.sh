#!/usr/bin/env bash
# `make bench`: generates the benchmark inputs (once), ingests them into a fresh SQLite file and,
# when reachable, a fresh PostgreSQL database and (with `make bench FEATURES=mysql`) a fresh
# MySQL/MariaDB database, and prints lines/s, MB/s and peak RSS as a table.
# Each backend is measured BENCH_RUNS times (default 3): the row shows the median and the range.
# On SQLite it also runs the job as a cluster of BENCH_CLUSTER_PROCESSES local processes (default
# 2; 0 skips it) of BENCH_WORKERS / BENCH_CLUSTER_PROCESSES workers each, to compare with the one
# process of BENCH_WORKERS workers (the `sqlite` row).
# Settings: BENCH_LINES (default 10000000), BENCH_WORKERS (default 2),
# BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_POSTGRES_PARAMS
# (appended to the benchmark database's URL; default ?sslmode=disable: the engine, not TLS, is
# measured; set it to empty to measure with libpq's default, TLS when the server offers it),
# BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/mysql; used when FEATURES has mysql).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ingest/bench-lib.sh
. ingest/bench-lib.sh
bin=${CARGO_TARGET_DIR:-target}/release
lines=${BENCH_LINES:-10000000}
workers=${BENCH_WORKERS:-2}
cluster_processes=${BENCH_CLUSTER_PROCESSES:-2}
pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
my_admin=${BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}
log=data/bench-${lines}.log
mkdir -p data

if [ ! -s "$log" ]; then
  echo "generating $lines lines into $log" >&2
  "$bin/logstats-generate" --lines "$lines" --seed 7 --end 2024-11-09 --output "$log"
fi
bytes=$(stat -c %s "$log")
cat "$log" > /dev/null # read from the page cache, as the comparison engines did

rows=()
stages=()
runs=${BENCH_RUNS:-3}
# Runs the ingest `runs` times into a fresh database each time (made by `fresh`); the row
# shows the median run, the fastest and slowest, and the largest peak RSS.
run() { # backend fresh-command url [processes]
  local backend=$1 fresh=$2 url=$3 processes=${4:-1} out i
  out=$(mktemp -d)
  for i in $(seq "$runs"); do
    $fresh
    if [ "$processes" -gt 1 ]; then
      run_cluster "$url" "$out" "$i" "$processes"
    else
      /usr/bin/time -f '%M' -o "$out/rss-$i" \
        "$bin/logstats-ingest" --database-url "$url" --workers "$workers" --json "$log" > "$out/run-$i.json"
    fi
  done
  rows+=("$(python3 - "$out" "$runs" "$bytes" "$backend" <<'PY'
import json, statistics, sys
out, runs, size, backend = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
summaries = [json.load(open(f"{out}/run-{i}.json")) for i in range(1, runs + 1)]
rss_kb = max(int(open(f"{out}/rss-{i}").read().split()[-1]) for i in range(1, runs + 1))
seconds = sorted(s["seconds"] for s in summaries)
median = statistics.median(seconds)
lines = summaries[0]["lines"]
spread = f" ({seconds[0]:.2f}-{seconds[-1]:.2f})" if runs > 1 else ""
print(f"| ingest | {backend} | {lines:,} | {median:.2f} s{spread} | {lines / median:,.0f} lines/s "
      f"| {size / 1e6 / median:,.0f} MB/s | {rss_kb / 1024:.0f} MB |")
middle = min(summaries, key=lambda s: abs(s["seconds"] - median))["stages"]
with open(f"{out}/stages", "w") as f:
    f.write(f"- {backend}, median run: each worker spent {middle['read_seconds_per_worker']:.2f} s "
            f"reading its shares; the committer spent {middle['commit_seconds']:.2f} s in "
            f"commits, overlapping the reading\n")
PY
)")
  stages+=("$(cat "$out/stages")")
  rm -rf "$out"
}

# One run as a cluster of `processes` local processes (hostfile on free ports, a fresh secret
# file), each with workers / processes threads: process 0's summary in run-I.json, the largest
# peak RSS of any process in rss-I.
run_cluster() { # url out i processes
  local url=$1 out=$2 i=$3 processes=$4 p pids=()
  local per_process=$(( workers / processes > 0 ? workers / processes : 1 ))
  python3 -c '
import socket, sys
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(f"127.0.0.1:{s.getsockname()[1]}"); s.close()
' "$processes" > "$out/hosts"
  head -c 32 /dev/urandom | base64 > "$out/cluster.secret"
  for p in $(seq $((processes - 1)) -1 1); do
    /usr/bin/time -f '%M' -o "$out/rss-$i-$p" \
      "$bin/logstats-ingest" --database-url "$url" --workers "$per_process" \
      --processes "$processes" --process "$p" --hostfile "$out/hosts" \
      --cluster-secret-file "$out/cluster.secret" "$log" 2> "$out/err-$p" &
    pids+=($!)
  done
  /usr/bin/time -f '%M' -o "$out/rss-$i-0" \
    "$bin/logstats-ingest" --database-url "$url" --workers "$per_process" \
    --processes "$processes" --process 0 --hostfile "$out/hosts" \
    --cluster-secret-file "$out/cluster.secret" --json "$log" > "$out/run-$i.json"
  for p in "${pids[@]}"; do wait "$p"; done
  cat "$out"/rss-"$i"-* | grep -E '^[0-9]+$' | sort -n | tail -1 > "$out/rss-$i"
}

db=data/bench-$$.db
fresh_sqlite() { rm -f "$db"*; }
run sqlite fresh_sqlite "sqlite://$db"
if [ "$cluster_processes" -gt 1 ]; then
  per_process=$(( workers / cluster_processes > 0 ? workers / cluster_processes : 1 ))
  plural=$([ "$per_process" -gt 1 ] && echo s || true)
  run "sqlite, $cluster_processes processes x $per_process worker$plural" fresh_sqlite "sqlite://$db" "$cluster_processes"
fi
rm -f "$db"*

if command -v psql >/dev/null 2>&1 && psql "$pg_admin" -qc 'select 1' >/dev/null 2>&1; then
  name=logstats_bench_$$
  fresh_postgres() {
    psql "$pg_admin" -qc "drop database if exists $name with (force)" -qc "create database $name" >/dev/null
  }
  run postgres fresh_postgres "${pg_admin%/*}/$name${BENCH_POSTGRES_PARAMS-?sslmode=disable}"
  psql "$pg_admin" -qc "drop database $name with (force)" >/dev/null
else
  echo "PostgreSQL not reachable at $pg_admin: skipping the PostgreSQL ingest benchmark" >&2
fi

if mysql_wanted; then
  mysql_client_args "$my_admin"
  if mysql "${my_args[@]}" -e 'select 1' >/dev/null 2>&1; then
    name=logstats_bench_$$
    fresh_mysql() {
      mysql "${my_args[@]}" -e "drop database if exists $name; create database $name"
    }
    run mysql fresh_mysql "${my_admin%/*}/$name"
    mysql "${my_args[@]}" -e "drop database $name"
  else
    echo "MySQL not reachable at $my_host:$my_port: skipping the MySQL ingest benchmark" >&2
  fi
fi

# Pushed batches (--listen): 8 clients, 10,000-line batches, plain and gzip, of the log's first
# 1M lines in time order (a shipper's live lines) and as generated (scattered over 30 days).
push_db=data/bench-push-$$.db
rm -f "$push_db"*
for order in time scattered; do
  rm -f "$push_db"*
  rows+=("$(python3 ingest/push-bench.py "$bin" "sqlite://$push_db" sqlite "$log" 10 "$order")")
done
rm -f "$push_db"*
if command -v psql >/dev/null 2>&1 && psql "$pg_admin" -qc 'select 1' >/dev/null 2>&1; then
  name=logstats_push_$$
  for order in time scattered; do
    psql "$pg_admin" -qc "drop database if exists $name with (force)" -qc "create database $name" >/dev/null
    rows+=("$(python3 ingest/push-bench.py "$bin" "${pg_admin%/*}/$name${BENCH_POSTGRES_PARAMS-?sslmode=disable}" postgres "$log" 10 "$order")")
  done
  psql "$pg_admin" -qc "drop database $name with (force)" >/dev/null
fi

# Freshness: 100,000 lines/s appended while --follow runs; delay until committed (visible).
fresh_rate=${BENCH_FRESHNESS_RATE:-100000}
rows+=("$(python3 ingest/freshness.py "$bin" "$fresh_rate" 10 2>/dev/null)")
if command -v psql >/dev/null 2>&1 && psql "$pg_admin" -qc 'select 1' >/dev/null 2>&1; then
  name=logstats_fresh_$$
  psql "$pg_admin" -qc "create database $name" >/dev/null
  rows+=("$(python3 ingest/freshness.py "$bin" "$fresh_rate" 10 "${pg_admin%/*}/$name" 2>/dev/null)")
  psql "$pg_admin" -qc "drop database $name with (force)" >/dev/null
fi

echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; input: $log ($((bytes / 1000000)) MB); workers: $workers in one process (the cluster row: in all its processes, peak RSS of the largest); ingest: median of $runs runs (fastest-slowest)"
echo
echo "| what | backend | input | time / p50 | throughput / p99 | MB/s / max | peak RSS / samples |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Stages of the ingest runs (see \"stages\" in logstats-ingest --json):"
printf '%s\n' "${stages[@]}"
