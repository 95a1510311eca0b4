#!/usr/bin/env bash
# Benchmarks: end-to-end gateway vs raw PostgreSQL COPY (same run, same
# tables), then the Go micro-benchmarks of the hot path.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

dsn=$(./scripts/test-postgres.sh)
export TEST_DATABASE_URL="$dsn"
make build
$GO build -o bin/gatewaybench ./cmd/gatewaybench

echo "== end to end: OTLP/HTTP protobuf → PostgreSQL, vs raw COPY"
./bin/gatewaybench -dsn "$dsn" -gateway bin/gateway ${BENCH_FLAGS:-}

echo "== Go benchmarks"
$GO test -run '^$' -bench . -benchtime 2s ./internal/convert/ ./internal/store/postgres/
