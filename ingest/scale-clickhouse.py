#!/usr/bin/env python3
"""ClickHouse (chdb) loading a log the way `make bench-scale` compares against.

Usage: scale-clickhouse.py LOG
Creates (day Date, customer String, status UInt16, duration Float64) ENGINE=MergeTree ORDER BY
(customer, day) in a fresh chdb session, inserts the log from file() and runs OPTIMIZE TABLE ...
FINAL; prints the seconds of those three statements and the rows loaded as JSON.
"""
import json
import sys
import tempfile
import time

from chdb import session


def main():
    log = sys.argv[1]
    with tempfile.TemporaryDirectory() as path:
        s = session.Session(path)
        started = time.perf_counter()
        s.query("CREATE TABLE logs (day Date, customer String, status UInt16, duration Float64) "
                "ENGINE = MergeTree ORDER BY (customer, day)")
        s.query(
            "INSERT INTO logs SELECT toDate(c1), c3, c5, c6 FROM file('%s', 'CSV', "
            "'c1 String, c2 String, c3 String, c4 String, c5 UInt16, c6 Float64') "
            "SETTINGS format_csv_delimiter = ' ', "
            "input_format_csv_allow_whitespace_or_tab_as_delimiter = 1, "
            "input_format_csv_detect_header = 0"
            % log.replace("'", "\\'"))
        s.query("OPTIMIZE TABLE logs FINAL")
        seconds = time.perf_counter() - started
        rows = int(str(s.query("SELECT count() FROM logs", "CSV")).strip())
        s.close()
    print(json.dumps({"seconds": seconds, "rows": rows}))


if __name__ == "__main__":
    main()
