#!/usr/bin/env python3
"""`make bench-compare`: the same job as the ingest benchmark, run by other engines.

Usage: compare.py LOG [ENGINE ...] [--bytewax-lines N] [--check-group CUSTOMER DAY]

ENGINE is any of duckdb, chdb, bytewax (default: all three). For each engine, on the log
LOG (lines `2024-10-31 17:13:44 cust_14 /api/v1/resource4 500 1.983`): per customer and
UTC day, the count of successes (status < 400) and failures (status >= 400), the average,
median and p99 duration, read end to end from the file by the engine's own CSV reader
(space delimiter, no header, explicit column types).

- duckdb: read_csv + approx_quantile.
- chdb (ClickHouse in process): file(..., 'CSV') + quantileTDigest, with
  input_format_csv_allow_whitespace_or_tab_as_delimiter = 1 (else the CSV reader refuses ' ').
- bytewax: CSVSource -> key by customer -> daily tumbling windows (event time) -> fold,
  exact quantiles. It is slow, so it reads only the first --bytewax-lines lines (default
  100,000; copied to a temporary file before timing) and its label says so.

Each engine runs in its own subprocess (this script with --worker), so its peak RSS
(getrusage ru_maxrss) is its own; that includes the interpreter and the engine's import.
The file is read once with `cat` first, so it is in the page cache. The time is that of the
query alone (reading the file, aggregating, fetching the groups), measured after the engine
is imported and connected. Each engine uses its default thread count (all cores).

Sanity checks, failing loudly: each engine's total request count must equal the number of
lines it was given; engines that read the same lines must agree exactly on every group's
counts and within 1e-9 on its average. --check-group also recomputes one group's counts
and average with a plain Python pass over the file and compares. The number of
(customer, day) groups goes to stderr; the table goes to stdout.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

ENGINES = ("duckdb", "chdb", "bytewax")
FIELDS = ("day", "tm", "customer", "path", "status", "duration")


def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# ---------------------------------------------------------------------------- engines
# Each returns (label, groups); groups: [customer, day 'YYYY-MM-DD', ok, failed, avg, p50, p99].
# `timed(fn)` runs the query and records its wall time; imports and connects happen before.


def run_duckdb(path, timed):
    import duckdb

    con = duckdb.connect()  # in-memory
    sql = """
        SELECT customer, day,
               count(*) FILTER (WHERE status < 400),
               count(*) FILTER (WHERE status >= 400),
               avg(duration),
               approx_quantile(duration, 0.5),
               approx_quantile(duration, 0.99)
        FROM read_csv(?, delim = ' ', header = false, auto_detect = false,
                      quote = '', escape = '',
                      columns = {'day': 'DATE', 'tm': 'VARCHAR', 'customer': 'VARCHAR',
                                 'path': 'VARCHAR', 'status': 'INTEGER', 'duration': 'DOUBLE'})
        GROUP BY customer, day
        ORDER BY customer, day
    """
    rows = timed(lambda: con.execute(sql, [path]).fetchall())
    groups = [[c, d.isoformat(), ok, bad, avg, p50, p99] for c, d, ok, bad, avg, p50, p99 in rows]
    return f"duckdb {duckdb.__version__} (approx_quantile)", groups


def run_chdb(path, timed):
    import chdb

    con = chdb.connect(":memory:")
    quoted = "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
    # ClickHouse's CSV reader refuses ' ' as a delimiter unless told it is meant; its
    # CustomSeparated format takes ' ' without that setting but parses on one thread only.
    sql = f"""
        SELECT customer, day,
               countIf(status < 400), countIf(status >= 400),
               avg(duration),
               quantileTDigest(0.5)(duration), quantileTDigest(0.99)(duration)
        FROM file({quoted}, 'CSV',
                  'day Date, tm String, customer String, path String, status Int32, duration Float64')
        GROUP BY customer, day
        ORDER BY customer, day
        SETTINGS format_csv_delimiter = ' ',
                 input_format_csv_allow_whitespace_or_tab_as_delimiter = 1,
                 input_format_csv_detect_header = 0
    """
    out = timed(lambda: con.query(sql, "TabSeparated").bytes())
    groups = []
    for line in out.decode().splitlines():
        c, d, ok, bad, avg, p50, p99 = line.split("\t")
        groups.append([c, d, int(ok), int(bad), float(avg), float(p50), float(p99)])
    con.close()
    return f"clickhouse {chdb.engine_version} via chdb {chdb.__version__} (quantileTDigest)", groups


def run_bytewax(path, timed, limit):
    from datetime import datetime, timedelta, timezone
    from importlib.metadata import version

    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.connectors.files import CSVSource
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, run_main

    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    out, late = [], []

    def parse(r):
        ts = datetime.fromisoformat(f"{r['day']}T{r['tm']}+00:00")
        return r["customer"], ts, int(r["status"]), float(r["duration"])

    def fold(acc, r):
        if r[2] < 400:
            acc[0] += 1
        else:
            acc[1] += 1
        acc[2].append(r[3])
        return acc

    def merge(a, b):
        return [a[0] + b[0], a[1] + b[1], a[2] + b[2]]

    def finish(item):
        customer, (window_id, (ok, bad, durations)) = item
        durations.sort()
        n = len(durations)
        day = (epoch + timedelta(days=window_id)).date().isoformat()
        return [customer, day, ok, bad, math.fsum(durations) / n,
                nearest_rank(durations, 0.5), nearest_rank(durations, 0.99)]

    flow = Dataflow("logstats_compare")
    rows = op.input("read", flow, CSVSource(path, fieldnames=list(FIELDS), delimiter=" "))
    keyed = op.key_on("by_customer", op.map("parse", rows, parse), lambda r: r[0])
    # The log is not in time order: wait ten years of event time, so that windows close
    # only at the end of the input and no line is late.
    clock = win.EventClock(lambda r: r[1], wait_for_system_duration=timedelta(days=3650))
    daily = win.TumblingWindower(length=timedelta(days=1), align_to=epoch)
    windows = win.fold_window("daily", keyed, clock, daily, lambda: [0, 0, []], fold, merge,
                              ordered=False)
    op.output("out", op.map("finish", windows.down, finish), TestingSink(out))
    op.output("late", windows.late, TestingSink(late))

    timed(lambda: run_main(flow))
    if late:
        raise SystemExit(f"bytewax: {len(late)} lines were late for their window")
    out.sort(key=lambda g: (g[0], g[1]))
    label = f"bytewax {version('bytewax')} (daily tumbling windows, exact quantiles"
    label += f", first {limit:,} lines)" if limit else ")"
    return label, out


def nearest_rank(sorted_values, q):
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def worker(engine, path, out_path, limit):
    timing = {}

    def timed(fn):
        timing["rss_start_kb"] = rss_kb()
        start = time.perf_counter()
        result = fn()
        timing["seconds"] = time.perf_counter() - start
        return result

    if engine == "duckdb":
        label, groups = run_duckdb(path, timed)
    elif engine == "chdb":
        label, groups = run_chdb(path, timed)
    elif engine == "bytewax":
        label, groups = run_bytewax(path, timed, limit)
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    with open(out_path, "w") as f:
        json.dump({"label": label, "seconds": timing["seconds"], "groups": groups,
                   "rss_kb": rss_kb(), "rss_start_kb": timing["rss_start_kb"]}, f)


# ---------------------------------------------------------------------------- driver


def count_lines(path):
    """Lines as the engines see them: newlines, plus an unterminated last line."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        n += 1
    return n


def head(path, lines, dest):
    with open(path, "rb") as src, open(dest, "wb") as out:
        for i, line in enumerate(src):
            if i == lines:
                break
            out.write(line if line.endswith(b"\n") else line + b"\n")


def reference_group(path, customer, day, lines=None):
    """A plain Python pass: (ok, failed, avg) of one group over the first `lines` lines."""
    ok = bad = 0
    durations = []
    with open(path) as f:
        for i, line in enumerate(f):
            if i == lines:
                break
            d, _tm, c, _path, status, duration = line.split(" ")
            if c == customer and d == day:
                if int(status) < 400:
                    ok += 1
                else:
                    bad += 1
                durations.append(float(duration))
    return ok, bad, (math.fsum(durations) / len(durations) if durations else None)


def fail(msg):
    print(f"compare.py: FAILED: {msg}", file=sys.stderr)
    return False


def check(engine, result, expected_lines):
    groups = result["groups"]
    total = sum(g[2] + g[3] for g in groups)
    if total != expected_lines:
        return fail(f"{engine}: counted {total:,} requests, but the input has "
                    f"{expected_lines:,} lines: the engine's parsing or grouping is wrong")
    keys = {(g[0], g[1]) for g in groups}
    if len(keys) != len(groups):
        return fail(f"{engine}: {len(groups)} rows for {len(keys)} distinct (customer, day)")
    return True


def agree(a_name, a, b_name, b):
    """Counts must be equal and averages within 1e-9; quantile differences are reported."""
    ga = {(g[0], g[1]): g for g in a["groups"]}
    gb = {(g[0], g[1]): g for g in b["groups"]}
    if ga.keys() != gb.keys():
        return fail(f"{a_name} and {b_name} found different (customer, day) groups: "
                    f"{len(ga.keys() ^ gb.keys())} differ")
    worst = [0.0, 0.0]
    for key, x in ga.items():
        y = gb[key]
        if x[2:4] != y[2:4] or abs(x[4] - y[4]) > 1e-9:
            return fail(f"{a_name} and {b_name} disagree on {key}: {x[2:5]} vs {y[2:5]}")
        worst = [max(worst[0], abs(x[5] - y[5])), max(worst[1], abs(x[6] - y[6]))]
    print(f"{a_name} and {b_name} agree on all {len(ga):,} groups' counts and averages; "
          f"largest difference of their approximate median {worst[0]:.3f} s, "
          f"p99 {worst[1]:.3f} s", file=sys.stderr)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("engines", nargs="*", metavar="ENGINE",
                        help=f"any of {', '.join(ENGINES)} (default: all)")
    parser.add_argument("--bytewax-lines", type=int, default=100_000,
                        help="bytewax reads only this many first lines (default 100000)")
    parser.add_argument("--check-group", nargs=2, metavar=("CUSTOMER", "DAY"),
                        help="also recompute this group with plain Python and compare")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker(args.worker, args.log, args.out, args.limit)
        return 0

    engines = args.engines or list(ENGINES)
    for e in engines:
        if e not in ENGINES:
            parser.error(f"unknown engine {e!r}; choose from {', '.join(ENGINES)}")
    path = os.path.abspath(args.log)
    if not os.path.isfile(path):
        parser.error(f"{args.log}: no such file")

    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # page cache
    file_lines = count_lines(path)
    file_bytes = os.path.getsize(path)
    print(f"{args.log}: {file_lines:,} lines, {file_bytes / 1e6:,.1f} MB (in page cache)",
          file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="logstats-compare-")
    ok, results, rows = True, {}, []
    try:
        for engine in engines:
            engine_path, lines, size, limit = path, file_lines, file_bytes, 0
            if engine == "bytewax" and args.bytewax_lines < file_lines:
                engine_path = os.path.join(tmp, "head.log")
                head(path, args.bytewax_lines, engine_path)
                lines = limit = args.bytewax_lines
                size = os.path.getsize(engine_path)
            out = os.path.join(tmp, f"{engine}.json")
            print(f"running {engine} on {lines:,} lines ...", file=sys.stderr)
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), engine_path,
                                   "--worker", engine, "--out", out, "--limit", str(limit)])
            if proc.returncode != 0 or not os.path.exists(out):
                ok = fail(f"{engine}: its subprocess exited with status {proc.returncode}")
                continue
            with open(out) as f:
                result = json.load(f)
            result["lines"] = lines
            print(f"{engine}: {len(result['groups']):,} (customer, day) groups; "
                  f"RSS after import and connect {result['rss_start_kb'] / 1024:,.0f} MB",
                  file=sys.stderr)
            if not check(engine, result, lines):
                ok = False
                continue
            results[engine] = result
            secs = result["seconds"]
            rows.append(f"| ingest | {result['label']} | {lines:,} | {secs:.2f} s | "
                        f"{lines / secs:,.0f} lines/s | {size / 1e6 / secs:,.0f} MB/s | "
                        f"{result['rss_kb'] / 1024:,.0f} MB |")
    finally:
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        os.rmdir(tmp)

    full = [e for e in results if results[e]["lines"] == file_lines]
    for other in full[1:]:
        ok = agree(full[0], results[full[0]], other, results[other]) and ok

    if args.check_group:
        customer, day = args.check_group
        refs = {}
        for engine, result in results.items():
            lines = result["lines"]
            if lines not in refs:
                refs[lines] = reference_group(path, customer, day, lines)
            want = refs[lines]
            got = next((tuple(g[2:5]) for g in result["groups"]
                        if g[0] == customer and g[1] == day), (0, 0, None))
            same = (got[:2] == want[:2]
                    and (got[2] == want[2] or (None not in (got[2], want[2])
                                               and abs(got[2] - want[2]) <= 1e-9)))
            print(f"check {customer} {day} over {lines:,} lines: python ok={want[0]} "
                  f"failed={want[1]} avg={want[2]!r}; {engine} ok={got[0]} failed={got[1]} "
                  f"avg={got[2]!r}: {'same' if same else 'DIFFERENT'}", file=sys.stderr)
            if not same:
                ok = fail(f"{engine} disagrees with plain Python on {customer} {day}")

    print(f"machine: {os.cpu_count()} cores; input: {args.log} ({file_bytes / 1e6:,.0f} MB, "
          f"{file_lines:,} lines), read once first so it is in the page cache")
    print("time: the query alone (read the file, aggregate, fetch the groups), after the "
          "engine is imported and connected; each engine uses its default threads (all cores)")
    print("peak RSS: ru_maxrss of the engine's own subprocess (interpreter and import included)")
    print()
    print("| what | engine | input lines | seconds | lines/s | MB/s | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    sys.stdout.flush()
    if not ok:
        print("compare.py: some engines failed, see the messages above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
