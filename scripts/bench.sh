#!/usr/bin/env bash
# Benchmarks: the gateway against what users would run instead, in one run
# on this machine (cmd/gatewaybench): ingest vs a raw PostgreSQL COPY of the
# same spans, fan-out vs an OpenTelemetry Collector (built from the Go
# module proxy by the Collector's builder the first time, then cached), in
# alternating rounds with medians and CPU per span. Then the Go
# micro-benchmarks of the hot path; with SOAK=1 also the ten-minute soak
# run (cmd/soak).
#
# BENCH_FLAGS go to gatewaybench (`bin/gatewaybench -h`), e.g.
#   BENCH_FLAGS="-rounds 5" make bench            # more rounds
#   BENCH_FLAGS="-parts ingest" make bench        # only ingest vs COPY
#   BENCH_FLAGS="-collector /path/to/otelcol" make bench
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

dsn=$(./scripts/test-postgres.sh)
export TEST_DATABASE_URL="$dsn"
make build
$GO build -o bin/gatewaybench ./cmd/gatewaybench

echo "== the gateway vs a raw COPY (ingest) and vs the OpenTelemetry Collector (fan-out)"
./bin/gatewaybench -dsn "$dsn" -gateway bin/gateway ${BENCH_FLAGS:-}

echo "== stored attributes vs what the sender sent, bytes per span on the bench workload (target <= 1.15)"
$GO test -run '^$' -bench 'StoredAttributeBytes' -benchtime 1x ./internal/convert/ | grep -E 'Benchmark|stored/sent'

echo "== Go benchmarks (pluginhost: one destination's path through a plugin process)"
$GO test -run '^$' -bench . -benchtime 2s ./internal/convert/ ./internal/store/postgres/ ./internal/pluginhost/

echo "== trace API: list over 1,000,000 traces (index plans asserted), a 2,000-span tree, and the 24 h summary over 10,000,000 spans"
$GO test -run '^$' -bench 'ListTraces1M|TraceTree2000|Summary10MSpans' -benchtime 1x ./internal/api/

# The soak test takes ten minutes: only with SOAK=1. SOAK_DURATION,
# SOAK_RATE (agent runs/s) and SOAK_FLAGS (e.g. "-storage postgres -dsn ...")
# tune it; `bin/soak -h` lists the flags.
if [ "${SOAK:-0}" = 1 ]; then
  echo "== soak: steady load for ${SOAK_DURATION:-10m}; memory and goroutines should stay flat"
  ./bin/soak -gateway bin/gateway -duration "${SOAK_DURATION:-10m}" -rate "${SOAK_RATE:-200}" ${SOAK_FLAGS:-}
fi
