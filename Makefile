# logstats: `make ingest`, `make start`, `make test`, `make generate`, `make bench`.
# Settings come from the environment or the make command line, e.g.
#   make ingest DATABASE_URL=postgres://postgres@127.0.0.1:5432/logstats LOG=/var/log/api
DATABASE_URL ?= sqlite://data/logstats.db
BIND ?= 127.0.0.1:8000
LOG ?= data/api_requests.log
CARGO ?= cargo
# Optional cargo features, e.g. `make ingest FEATURES=mysql` for mysql:// URLs (it links the
# MySQL/MariaDB C client library: Debian's libmariadb-dev and pkg-config). None by default, so
# nothing but a Rust toolchain is needed.
FEATURES ?=
CARGO_FEATURES := $(if $(strip $(FEATURES)),--features '$(strip $(FEATURES))')
# `make test` and `make lint`: the test support and OpenAPI features, plus $(FEATURES) on every
# crate.
TEST_FEATURES := logstats-shared/testing logstats-shared/openapi $(foreach f,$(FEATURES),logstats-shared/$(f) logstats-ingest/$(f) logstats-api/$(f))
# Binaries land in $(CARGO_TARGET_DIR)/release when that is set, else target/release.
RELEASE := $(or $(CARGO_TARGET_DIR),target)/release
# `make bench-compare`: the log the other engines read, and their pinned versions.
COMPARE_LOG ?= data/bench-10000000.log
COMPARE_VENV := target/compare-venv
COMPARE_PACKAGES := duckdb==2.0.0 chdb==4.4.0 chdb-core==26.9.0 bytewax==0.21.1

.PHONY: all build ingest start test generate bench bench-memory bench-scale bench-micro bench-compare rank-error lint clean

all: build

build:
	$(CARGO) build --release -p logstats-ingest -p logstats-api $(CARGO_FEATURES)

ingest:
	$(CARGO) build --release -p logstats-ingest --bin logstats-ingest $(CARGO_FEATURES)
	$(RELEASE)/logstats-ingest --database-url '$(DATABASE_URL)' $(LOG)

start:
	$(CARGO) build --release -p logstats-api $(CARGO_FEATURES)
	$(RELEASE)/logstats-api --database-url '$(DATABASE_URL)' --bind '$(BIND)'

# PostgreSQL tests use TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# and create a fresh database per test; without PostgreSQL they are skipped loudly, unless
# CI=true, where they fail. With FEATURES=mysql the same tests run on MySQL/MariaDB too, at
# TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/mysql).
test:
	$(CARGO) test --workspace --features '$(TEST_FEATURES)'

generate:
	$(CARGO) build --release -p logstats-ingest --bin logstats-generate
	$(RELEASE)/logstats-generate --lines 10000 --seed 42 --end 2024-11-09 --output data/api_requests.log

bench:
	$(CARGO) build --release -p logstats-ingest -p logstats-api $(CARGO_FEATURES)
	./ingest/bench.sh
	./api/bench.sh
	./api/fleet-bench.sh

# The API's memory and probe latency under each request mix (unknown ids, random ranges,
# percentiles, fleet views; 60 s each), and its exit time on SIGTERM under load: docs/BENCHMARKS.md.
bench-memory:
	$(CARGO) build --release -p logstats-ingest -p logstats-api $(CARGO_FEATURES)
	./api/memory-bench.sh

# docs/SCALING.md's measurement: 10,000 customers x 365 days of rows in a fresh PostgreSQL database,
# the ingest's commit time on it, the API and the fleet views (takes several minutes, ~2 GB disk).
# SCALE_SHAPE=skewed or uniform: the log from ingest/scale-gen.py, with ClickHouse (chdb) loading
# the same log beside the ingest.
bench-scale:
	$(CARGO) build --release -p logstats-ingest -p logstats-api $(CARGO_FEATURES)
	./ingest/scale-bench.sh

# Criterion micro-benchmarks of the parser and the stats merge (not part of `make bench`).
bench-micro:
	$(CARGO) bench -p logstats-shared

# The rank error of the t-digest a day falls back to past 4,096 distinct latencies, as the table
# in docs/BENCHMARKS.md (four distributions x n, one day and 31-day ranges).
rank-error:
	$(CARGO) run --release -p logstats-shared --example rank_error

# The same per-customer daily stats computed by DuckDB, ClickHouse (chdb) and Bytewax from
# $(COMPARE_LOG), each engine installed in a venv under target/ (see ingest/compare.py).
bench-compare:
	@test -s '$(COMPARE_LOG)' || { echo "$(COMPARE_LOG) is missing: run \`make bench\` first, or generate it with $(RELEASE)/logstats-generate --lines 10000000 --seed 7 --end 2024-11-09 --output data/bench-10000000.log" >&2; exit 1; }
	test -x $(COMPARE_VENV)/bin/python || python3 -m venv $(COMPARE_VENV)
	$(COMPARE_VENV)/bin/pip install --disable-pip-version-check -q $(COMPARE_PACKAGES)
	$(COMPARE_VENV)/bin/python ingest/compare.py $(COMPARE_LOG)

lint:
	.ci/check-rust-version
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features '$(TEST_FEATURES)' -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --features '$(TEST_FEATURES)'

clean:
	rm -f data/logstats.db data/logstats.db-* data/bench-*
