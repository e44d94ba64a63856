#!/usr/bin/env python3
"""A year of request logs over many customers, for `make bench-scale`.

Usage: scale-gen.py OUTPUT --customers N --lines N --days N --end YYYY-MM-DD
                    --shape skewed|uniform [--jitter-seconds S] [--shuffle] [--seed S]

Lines are in time order with up to --jitter-seconds of disorder (a server's log written by
several threads), or in random order with --shuffle. `skewed`: customer k (0-based, in a random
order of ids) gets a share proportional to 1/(k+1)^1.1, so a few customers carry most requests and
most have a few requests a day or none; `uniform`: every customer the same share. Status 5xx on
about 2 % of requests (some customers and days much more), durations log-normal in milliseconds
with 3 decimals. Independent of logstats-generate, so the benchmark does not only measure the
input that tool makes.
"""
import argparse
import datetime as dt

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("output")
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--lines", type=int, default=10_000_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--end", default="2024-11-09")
    p.add_argument("--shape", choices=["skewed", "uniform"], default="skewed")
    p.add_argument("--jitter-seconds", type=int, default=300)
    p.add_argument("--shuffle", action="store_true")
    p.add_argument("--seed", type=int, default=23)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    end = dt.datetime.fromisoformat(a.end).replace(tzinfo=dt.timezone.utc)
    last = int(end.timestamp()) + 86_399
    first = last + 1 - a.days * 86_400

    if a.shape == "skewed":
        weights = 1.0 / np.arange(1, a.customers + 1) ** 1.1
    else:
        weights = np.ones(a.customers)
    weights /= weights.sum()
    ids = rng.permutation(a.customers) + 1
    # A customer's own error rate: most near 1 %, a few far above.
    error_rate = np.minimum(0.5, rng.gamma(0.5, 0.04, a.customers))
    paths = np.array([f"/api/v1/resource{i}" for i in range(1, 21)] + ["/health", "/api/v2/items/search"])

    times = np.sort(rng.integers(first, last + 1, a.lines))
    if a.shuffle:
        rng.shuffle(times)
    elif a.jitter_seconds:
        times = np.clip(times + rng.integers(-a.jitter_seconds, a.jitter_seconds + 1, a.lines), first, last)

    chunk = 1_000_000
    with open(a.output, "w") as out:
        for start in range(0, a.lines, chunk):
            t = times[start:start + chunk]
            n = len(t)
            who = rng.choice(a.customers, n, p=weights)
            failed = rng.random(n) < error_rate[who]
            status = np.where(failed, rng.choice([500, 502, 503, 504], n),
                              rng.choice([200, 200, 200, 201, 204, 301, 400, 401, 404], n))
            ms = np.round(np.exp(rng.normal(np.log(80.0), 0.9, n)), 3)
            ms = np.clip(ms, 0.001, 30_000.0)
            stamps = np.array(t, dtype="datetime64[s]").astype(str)
            lines = [
                f"{s[:10]} {s[11:]} cust_{c} {pa} {st} {d / 1000:.6f}"
                for s, c, pa, st, d in zip(stamps, ids[who], paths[rng.integers(0, len(paths), n)], status, ms)
            ]
            out.write("\n".join(lines))
            out.write("\n")


if __name__ == "__main__":
    main()
