#!/usr/bin/env python3
"""Freshness benchmark: how long after a line is appended is it committed (visible to the API)?

Runs `logstats-ingest --follow` on a log that `logstats-generate` appends to at a fixed rate,
samples the file size every 50 ms, and reads the committed offset of the source from the SQLite
database; for every sample, the delay until the committed offset passes that size is the
freshness of the bytes appended by then. Prints p50/p99/max.

usage: freshness.py BIN_DIR [LINES_PER_SECOND] [SECONDS] [POSTGRES_URL]
(without POSTGRES_URL, a fresh SQLite file is used; with it, that empty database via psql;
FRESHNESS_INGEST_ARGS adds flags to logstats-ingest, e.g. --poll; FRESHNESS_CUSTOMERS sets the
number of customers the lines spread over, default 50; FRESHNESS_DAYS the days before the last
their timestamps spread over, default 30: 0 keeps them on one day, as a live log's are)
"""
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

bin_dir = sys.argv[1]
rate = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
interval_ms = 100
per_batch = rate * interval_ms // 1000

work = tempfile.mkdtemp(prefix="logstats-freshness-")
log = os.path.join(work, "api_requests.log")
db = os.path.join(work, "stats.db")
postgres = sys.argv[4] if len(sys.argv) > 4 else None
url = postgres or f"sqlite://{db}"
backend = "postgres" if postgres else "sqlite"
open(log, "w").close()
ingest = subprocess.Popen(
    [f"{bin_dir}/logstats-ingest", "--follow", "--json", "--database-url", url, log]
    + os.environ.get("FRESHNESS_INGEST_ARGS", "").split(),
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
# A source is known by its device and inode (see ingest/src/source.rs: source_key).
_stat = os.stat(log)
source = f"inode:{_stat.st_dev}:{_stat.st_ino}"

def committed():
    if postgres:
        out = subprocess.run(["psql", postgres, "-Atc",
                              f"select byte_offset from source_offsets where source = '{source}'"],
                             capture_output=True, text=True).stdout.strip()
        return int(out) if out.isdigit() else 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        row = con.execute("select byte_offset from source_offsets where source = ?", (source,)).fetchone()
        con.close()
        return row[0] if row else 0
    except sqlite3.Error:
        return 0

time.sleep(1.5)

generator = subprocess.Popen(
    [f"{bin_dir}/logstats-generate", "--rate", str(per_batch), "--interval-ms", str(interval_ms),
     "--max-lines", str(int(rate * seconds)), "--customers", os.environ.get("FRESHNESS_CUSTOMERS", "50"),
     "--days", os.environ.get("FRESHNESS_DAYS", "30"),
     "--output", log], stderr=subprocess.DEVNULL)
samples = []  # (time, size)
pending = []
delays = []
deadline = time.time() + seconds + 30
while generator.poll() is None or pending:
    now = time.time()
    if generator.poll() is None:
        samples.append((now, os.path.getsize(log)))
        pending.append(samples[-1])
    done = committed()
    still = []
    for (t, size) in pending:
        if done >= size:
            delays.append(now - t)
        else:
            still.append((t, size))
    pending = still
    if time.time() > deadline:
        ingest.kill()
        sys.exit(f"freshness ({backend}): {len(pending)} samples never committed 30 s after the "
                 f"last append (committed offset {done} of source {source})")
    time.sleep(0.05)

ingest.send_signal(signal.SIGTERM)
out, _ = ingest.communicate(timeout=30)
delays.sort()
pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] * 1000
print(f"| freshness | {backend} | {rate:,} lines/s appended for {seconds:.0f} s | p50 {pick(0.5):.0f} ms | "
      f"p99 {pick(0.99):.0f} ms | max {delays[-1] * 1000:.0f} ms | {len(delays)} samples |")
print(out.decode().strip(), file=sys.stderr)
