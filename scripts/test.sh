#!/usr/bin/env bash
# Runs the whole test suite. Starts a PostgreSQL when none answers and
# installs Debian's Chromium for the browser tests when it is missing; with
# CI=true a missing database or browser fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
$GO vet ./...

echo "== test database"
if dsn=$(./scripts/test-postgres.sh); then
	export TEST_DATABASE_URL="$dsn"
	echo "using PostgreSQL at ${TEST_DATABASE_URL%%\?*}"
elif [ "${CI:-}" = "true" ]; then
	echo "no PostgreSQL could be had and CI=true: failing" >&2
	exit 1
else
	echo "no PostgreSQL: database tests will be skipped" >&2
fi

echo "== browser"
./scripts/install-chromium.sh || { [ "${CI:-}" = "true" ] && exit 1; echo "no Chromium: browser tests will be skipped" >&2; }

echo "== build"
make build

# Packages with concurrency run under the race detector; the rest plainly
# (the pure-Go SQLite driver is very slow under -race).
race_pkgs=$($GO list ./... | grep -E '/internal/(batcher|receiver|pluginhost|dispatch|store/postgres|gateway)$|/plugins$' || true)
plain_pkgs=$($GO list ./... | grep -v -x -F -f <(printf '%s\n' $race_pkgs) || true)

mkdir -p test-artifacts
echo "== go test -race ($(echo $race_pkgs | wc -w) packages)"
[ -z "$race_pkgs" ] || $GO test -race -count=1 -timeout 8m $race_pkgs
echo "== go test ($(echo $plain_pkgs | wc -w) packages)"
$GO test -count=1 -timeout 8m $plain_pkgs
