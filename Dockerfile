# syntax=docker/dockerfile:1
# One image with the three logstats binaries; compose.yaml runs the ingest job and the API from it.
# libpq with OpenSSL (pq-sys bundled, openssl-sys vendored) and SQLite (libsqlite3-sys, bundled)
# are compiled from source by cargo (OpenSSL's build needs perl and make, both in the rust image),
# so neither stage needs -dev packages.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock diesel.toml ./
# The ingest allocator's settings (JEMALLOC_SYS_WITH_MALLOC_CONF), read when jemalloc is built.
COPY .cargo ./.cargo
COPY shared ./shared
COPY ingest ./ingest
COPY api ./api
COPY migrations ./migrations
# The cache mounts keep the registry and compiled dependencies between builds; the binaries are
# copied out of the mounted target directory because it is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p logstats-ingest -p logstats-api \
    && mkdir -p /out \
    && cp target/release/logstats-ingest target/release/logstats-generate \
          target/release/logstats-api /out/

FROM debian:bookworm-slim AS runtime
# curl serves the compose healthcheck of the API.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin logstats \
    && mkdir -p /app/data \
    && chown -R logstats:logstats /app
COPY --from=builder /out/ /usr/local/bin/
USER logstats
WORKDIR /app
ENV RUST_LOG=info
EXPOSE 8000
CMD ["logstats-api", "--bind", "0.0.0.0:8000"]
