#!/usr/bin/env python3
"""Pushed batches: `make bench` measures `logstats-ingest --listen` taking 10,000-line batches
from 8 clients over loopback (wrk, one batch in flight per connection, each with its own
Idempotency-Key), with and without gzip, and prints one table row per run.

    push-bench.py BIN_DIR DATABASE_URL LABEL LOG [SECONDS] [time|scattered]

The batches are the LOG's first 1,000,000 lines (100 batches of 10,000 lines, sent
round-robin), sorted by time (`time`, the default: what a shipper pushes from live logs) or as
the log has them (`scattered`: the generator scatters lines over 30 days, so every batch touches
every (customer, day) of the month). Every
answer is a 200 only after its batch was committed; the row reports lines committed per second
(answered batches x 10,000 / seconds), the answers' p50 and p99, and the job's peak RSS. The
job's summary must count at least the answered lines as committed (batches cut off by the
end of the run may add some: they were committed without a reader)."""

import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BATCH_LINES = 10_000
BATCHES = 100
CLIENTS = 8

LUA = r"""
local dir = os.getenv("PUSH_DIR")
local gz = os.getenv("PUSH_GZIP") == "1"
local n = tonumber(os.getenv("PUSH_BATCHES"))
local bodies = {}
for i = 0, n - 1 do
  local f = assert(io.open(dir .. "/batch-" .. i .. (gz and ".gz" or ".txt"), "rb"))
  bodies[i] = f:read("*a")
  f:close()
end
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local sent = 0
function request()
  sent = sent + 1
  local headers = {
    ["Content-Type"] = "text/plain",
    ["Idempotency-Key"] = os.getenv("PUSH_RUN") .. "-" .. tid .. "-" .. sent,
  }
  if gz then headers["Content-Encoding"] = "gzip" end
  return wrk.format("POST", "/v1/lines", headers, bodies[(sent * 13 + tid * 7) % n])
end
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main():
    bin_dir, url, label, log = sys.argv[1:5]
    seconds = int(sys.argv[5]) if len(sys.argv) > 5 else 15
    order = sys.argv[6] if len(sys.argv) > 6 else "time"
    if shutil.which("wrk") is None:
        print(f"| push | {label} | wrk is not installed (apt-get install wrk) | | | | |")
        return
    work = tempfile.mkdtemp(prefix="logstats-push-bench-")
    with open(log, "rb") as f:
        head = [f.readline() for _ in range(BATCHES * BATCH_LINES)]
    if order == "time":
        head.sort(key=lambda line: line[:19])
    for i in range(BATCHES):
        lines = b"".join(head[i * BATCH_LINES:(i + 1) * BATCH_LINES])
        with open(f"{work}/batch-{i}.txt", "wb") as out:
            out.write(lines)
        with open(f"{work}/batch-{i}.gz", "wb") as out:
            out.write(gzip.compress(lines, 6))
    with open(f"{work}/push.lua", "w") as f:
        f.write(LUA)
    rows = []
    for gz in (False, True):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        job = subprocess.Popen(
            [f"{bin_dir}/logstats-ingest", "--database-url", url, "--json",
             "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"})
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or job.poll() is not None:
                    sys.exit(f"the job did not listen on {port}")
                time.sleep(0.05)
        env = {**os.environ, "PUSH_DIR": work, "PUSH_GZIP": "1" if gz else "0",
               "PUSH_RUN": f"{'gzip' if gz else 'plain'}-{os.getpid()}-{time.time_ns()}",
               "PUSH_BATCHES": str(BATCHES)}
        wrk = subprocess.run(
            ["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{seconds}s", "--timeout", "60s",
             "--latency", "-s", f"{work}/push.lua", base],
            env=env, capture_output=True, text=True, check=True)
        out = wrk.stdout
        if os.environ.get("PUSH_BENCH_VERBOSE"):
            print(out, wrk.stderr, file=sys.stderr)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        elapsed = to_ms(re.search(r"requests in ([\d.]+(?:us|ms|s))", out).group(1)) / 1000
        refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        refused = int(refused.group(1)) if refused else 0
        p50 = to_ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))
        p99 = to_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
        answered = (requests - refused) * BATCH_LINES
        with open(f"/proc/{job.pid}/status") as status:
            rss_kb = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))
        job.terminate()
        summary, _ = job.communicate(timeout=120)
        committed = json.loads(summary)["accepted"]
        assert committed >= answered, f"{committed} lines committed, {answered} answered"
        form = "gzip" if gz else "plain"
        rows.append(
            f"| push, {CLIENTS} clients x {BATCH_LINES:,}-line batches, {order} order, {form} "
            f"| {label} "
            f"| {answered:,} lines answered ({refused} refused) | p50 {p50:.0f} ms "
            f"| {answered / elapsed:,.0f} lines/s | p99 {p99:.0f} ms | {rss_kb / 1024:.0f} MB |")
    shutil.rmtree(work)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
