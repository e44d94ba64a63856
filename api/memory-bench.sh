#!/usr/bin/env bash
# The API's memory and liveness under each request mix (`make bench-memory`, after the release
# build): a year of 2,000 customers ingested into a fresh SQLite file, then one fresh
# `logstats-api` (default budgets) loaded by wrk for BENCH_MEMORY_DURATION (default 60s) with each
# mix in turn:
#   unknown      a new random customer id every request (`c_` + 20 random characters)
#   random       a random customer and a random range inside the year
#   percentiles  the same with `percentiles=` of 1-3 random values
#   fleet        GET /stats and GET /customers (random sort field and order) over random ranges
# While wrk runs and for 5 s after it, a sampler reads the API's VmRSS, VmHWM, RssAnon and RssFile
# every 100 ms and times GET /health and GET /ready. Last, SIGTERM is sent 3 s into a random-mix
# load and the time until the process has exited is measured. Prints one table row per mix.
# Settings: BENCH_MEMORY_DURATION (default 60s), BENCH_MEMORY_CUSTOMERS (2000),
# BENCH_MEMORY_LINES (2000000), BENCH_API_CONNECTIONS (32), BENCH_API_THREADS (2),
# BENCH_MEMORY_ARGS (extra flags for logstats-api). Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ingest/bench-lib.sh
. ingest/bench-lib.sh
bin=${CARGO_TARGET_DIR:-target}/release
duration=${BENCH_MEMORY_DURATION:-60s}
customers=${BENCH_MEMORY_CUSTOMERS:-2000}
lines=${BENCH_MEMORY_LINES:-2000000}
connections=${BENCH_API_CONNECTIONS:-32}
threads=${BENCH_API_THREADS:-2}
end=2024-11-09
first=2023-11-10

for tool in wrk curl python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "memory bench: skipped: $tool is not installed (apt-get install -y $tool)"
    exit 0
  fi
done
for exe in logstats-api logstats-ingest logstats-generate; do
  if [ ! -x "$bin/$exe" ]; then
    echo "memory bench: $bin/$exe is missing: run make build" >&2
    exit 1
  fi
done

mkdir -p data
log=data/bench-memory-$customers-$lines.log
if [ ! -s "$log" ]; then
  echo "memory bench: generating $lines lines of $customers customers over a year into $log" >&2
  "$bin/logstats-generate" --lines "$lines" --customers "$customers" --days 364 --seed 11 \
    --end "$end" --output "$log" >&2
fi

work=$(mktemp -d)
api_pid=
db="data/bench-memory-$$.db"
cleanup() {
  if [ -n "$api_pid" ]; then
    kill -TERM "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  rm -f "$db"*
  rm -rf "$work"
}
trap cleanup EXIT

echo "memory bench: ingesting $log into $db" >&2
"$bin/logstats-ingest" --database-url "sqlite://$db" "$log" >/dev/null 2>"$work/ingest.err" ||
  { cat "$work/ingest.err" >&2; exit 1; }

days=$(python3 -c 'import datetime, sys
a = datetime.date.fromisoformat(sys.argv[1]); b = datetime.date.fromisoformat(sys.argv[2])
print(",".join("\"%s\"" % (a + datetime.timedelta(i)) for i in range((b - a).days + 1)))' "$first" "$end")
common="
local days = {$days}
local thread_seed = 0
setup = function(thread)
  thread_seed = thread_seed + 1
  thread:set(\"seed\", thread_seed)
end
init = function()
  math.randomseed(7919 * (seed or 1))
end
local range = function()
  local a = math.random(#days)
  local b = math.random(#days)
  if a > b then a, b = b, a end
  return \"from=\" .. days[a] .. \"&to=\" .. days[b]
end
"
cat > "$work/unknown.lua" <<LUA
$common
local chars = "abcdefghijklmnopqrstuvwxyz0123456789"
request = function()
  local id = {}
  for i = 1, 20 do
    local k = math.random(#chars)
    id[i] = chars:sub(k, k)
  end
  return wrk.format("GET", "/customers/c_" .. table.concat(id) .. "/stats?from=2024-01-01")
end
LUA
cat > "$work/random.lua" <<LUA
$common
request = function()
  return wrk.format("GET", "/customers/cust_" .. math.random($customers) .. "/stats?" .. range())
end
LUA
cat > "$work/percentiles.lua" <<LUA
$common
request = function()
  local ps = {}
  for i = 1, math.random(3) do
    ps[i] = string.format("%.1f", math.random(0, 1000) / 10)
  end
  return wrk.format("GET", "/customers/cust_" .. math.random($customers) .. "/stats?" .. range()
    .. "&percentiles=" .. table.concat(ps, ","))
end
LUA
cat > "$work/fleet.lua" <<LUA
$common
local sorts = {"customer_id", "total_requests", "successful_requests", "failed_requests",
  "uptime", "average_latency", "median_latency", "p99_latency"}
request = function()
  if math.random(2) == 1 then
    return wrk.format("GET", "/stats?" .. range())
  end
  local order = math.random(2) == 1 and "asc" or "desc"
  return wrk.format("GET", "/customers?" .. range() .. "&sort=" .. sorts[math.random(#sorts)]
    .. "&order=" .. order .. "&limit=20")
end
LUA

# Samples the API process and its probes until $work/stop exists, then 5 s more; prints JSON.
cat > "$work/sample.py" <<'PY'
import json, os, sys, time, urllib.request
pid, base, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def status():
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields
def probe(path):
    started = time.monotonic()
    try:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            r.read()
            ok = r.status == 200
    except Exception:
        ok = False
    return time.monotonic() - started, ok
peak = {}
worst = {"during": [0.0, 0.0], "after": [0.0, 0.0]}
failed = 0
stopped_at = None
while True:
    phase = "during" if stopped_at is None else "after"
    for key, value in status().items():
        peak[key] = max(peak.get(key, 0), value)
    for i, path in enumerate(("/health", "/ready")):
        seconds, ok = probe(path)
        worst[phase][i] = max(worst[phase][i], seconds)
        failed += not ok
    if stopped_at is None and os.path.exists(stop):
        stopped_at = time.monotonic()
    if stopped_at is not None and time.monotonic() - stopped_at > 5:
        break
    time.sleep(0.1)
print(json.dumps({"peak": peak, "worst": worst, "failed": failed}))
PY

port=$(free_port)
base="http://127.0.0.1:$port"
# shellcheck disable=SC2086 # BENCH_MEMORY_ARGS is a list of flags
RUST_LOG=warn "$bin/logstats-api" --bind "127.0.0.1:$port" --database-url "sqlite://$db" \
  ${BENCH_MEMORY_ARGS:-} 2>"$work/api.err" &
api_pid=$!
for i in $(seq 100); do
  curl -fs "$base/health" >/dev/null 2>&1 && break
  if ! kill -0 "$api_pid" 2>/dev/null || [ "$i" = 100 ]; then
    echo "memory bench: the API did not come up" >&2
    cat "$work/api.err" >&2
    exit 1
  fi
  sleep 0.1
done

echo "| mix | req/s | non-2xx | peak RSS (VmHWM) | RssAnon peak | RssFile peak | rows / answers cache | worst /health, /ready during | after |"
echo "|---|---|---|---|---|---|---|---|---|"
for mix in unknown random percentiles fleet; do
  rm -f "$work/stop"
  python3 "$work/sample.py" "$api_pid" "$base" "$work/stop" > "$work/sample-$mix.json" &
  sampler=$!
  wrk -t"$threads" -c"$connections" -d"$duration" --timeout 30s -s "$work/$mix.lua" "$base" \
    > "$work/wrk-$mix.txt"
  touch "$work/stop"
  wait "$sampler"
  curl -fsS "$base/metrics" > "$work/metrics-$mix.txt"
  python3 - "$work/wrk-$mix.txt" "$work/sample-$mix.json" "$work/metrics-$mix.txt" "$mix" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
sample = json.load(open(sys.argv[2]))
metrics = open(sys.argv[3]).read()
mix = sys.argv[4]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
total = int(re.search(r"(\d+) requests in", text).group(1))
def gauge(cache):
    return int(float(re.search(r'logstats_api_cache_bytes\{cache="%s"\} (\S+)' % cache, metrics).group(1)))
mb = lambda b: f"{b / 1e6:.0f} MB"
ms = lambda s: f"{s * 1e3:.0f} ms"
peak, worst = sample["peak"], sample["worst"]
print(f"| {mix} | {rate:,.0f} | {int(bad.group(1)) if bad else 0} of {total:,} | {mb(peak['VmHWM'])} "
      f"| {mb(peak['RssAnon'])} | {mb(peak['RssFile'])} | {mb(gauge('rows'))} / {mb(gauge('answers'))} "
      f"| {ms(worst['during'][0])}, {ms(worst['during'][1])} | {ms(worst['after'][0])}, {ms(worst['after'][1])} |")
if sample["failed"]:
    print(f"memory bench: {sample['failed']} probe(s) failed or timed out during {mix}", file=sys.stderr)
PY
done

# SIGTERM under load: how long until the process is gone.
wrk -t"$threads" -c"$connections" -d10s -s "$work/random.lua" "$base" >/dev/null 2>&1 &
load=$!
sleep 3
started=$(date +%s.%N)
kill -TERM "$api_pid"
wait "$api_pid" 2>/dev/null || true
ended=$(date +%s.%N)
api_pid=
wait "$load" 2>/dev/null || true
python3 -c 'import sys; print(f"memory bench: SIGTERM 3 s into a random-range load: exited after {float(sys.argv[2]) - float(sys.argv[1]):.2f} s")' "$started" "$ended"
