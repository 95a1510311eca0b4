#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the tests and prints its DSN as
# the last line of stdout. Progress and errors go to stderr.
#
# Order:
#   1. TEST_DATABASE_URL, when set (it must answer; nothing is started for it).
#   2. postgres://postgres@127.0.0.1:5432/postgres (a local server, trust auth).
#   3. A throwaway cluster in .testpg/ that an earlier run started.
#   4. The Debian cluster of the installed version (pg_ctlcluster).
#   5. A fresh throwaway cluster: initdb in .testpg/, trust auth, port 55432
#      (or the next free one), listening on 127.0.0.1 only.
# Safe to run again and again, and from several processes at once: when a
# server already answers it only checks and prints.
#
# Environment: TEST_DATABASE_URL, TEST_PG_PORT (first port tried for the
# throwaway cluster, default 55432).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pgdir="$root/.testpg"
default_dsn='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'

log() { echo "test-postgres: $*" >&2; }

# answers DSN: true when a server accepts a connection and runs a query.
answers() {
	local dsn="$1"
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -t 3 -d "$dsn" >/dev/null 2>&1 || return 1
	fi
	if command -v psql >/dev/null 2>&1; then
		PGCONNECT_TIMEOUT=3 psql -X -q -At -d "$dsn" -c 'SELECT 1' >/dev/null 2>&1 || return 1
	elif ! command -v pg_isready >/dev/null 2>&1; then
		# Neither client is installed: a bare TCP check is the best we can do.
		local hostport="${dsn#*@}"
		hostport="${hostport%%/*}"
		(exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null || return 1
	fi
}

# wait_answers DSN SECONDS
wait_answers() {
	local dsn="$1" i
	for ((i = 0; i < $2 * 5; i++)); do
		answers "$dsn" && return 0
		sleep 0.2
	done
	return 1
}

found() {
	echo "$1"
	exit 0
}

local_dsn() { echo "postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"; }

# as_postgres CMD...: runs CMD as the postgres user when we are root
# (PostgreSQL refuses to run as root).
as_postgres() {
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	else
		su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
	fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 1. An explicit server.
if [ -n "${TEST_DATABASE_URL:-}" ]; then
	if wait_answers "$TEST_DATABASE_URL" 5; then
		found "$TEST_DATABASE_URL"
	fi
	log "TEST_DATABASE_URL is set but the server does not answer: $TEST_DATABASE_URL"
	exit 1
fi

# 2. The usual local server.
answers "$default_dsn" && found "$default_dsn"

# 3. A throwaway cluster from an earlier run that still runs.
if [ -f "$pgdir/port" ]; then
	dsn="$(local_dsn "$(cat "$pgdir/port")")"
	answers "$dsn" && found "$dsn"
fi

# From here on we may start a server: one process at a time.
mkdir -p "$pgdir"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$pgdir/lock"
	flock -w 120 9 || { log "timed out waiting for $pgdir/lock"; exit 1; }
	# Another process may have started one while we waited.
	answers "$default_dsn" && found "$default_dsn"
	if [ -f "$pgdir/port" ]; then
		dsn="$(local_dsn "$(cat "$pgdir/port")")"
		answers "$dsn" && found "$dsn"
	fi
fi

# 4. The Debian cluster of the installed version.
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
	for conf in $(ls -d /etc/postgresql/*/main 2>/dev/null | sort -t/ -k4 -rn); do
		ver="$(basename "$(dirname "$conf")")"
		log "starting the Debian cluster $ver/main"
		# It fails when the cluster already runs; what counts is whether it answers.
		pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 2>&1 || true
		port="$(awk -F'[ \t=#]+' '$1 == "port" {print $2; exit}' "$conf/postgresql.conf" 2>/dev/null || true)"
		dsn="$(local_dsn "${port:-5432}")"
		wait_answers "$dsn" 10 && found "$dsn"
		log "cluster $ver/main does not accept $dsn (not running, or no trust auth on 127.0.0.1)"
	done
fi

# 5. A throwaway cluster in .testpg/.
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -rn | head -n1 || true)"
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
	if command -v initdb >/dev/null 2>&1; then
		bindir="$(dirname "$(command -v initdb)")"
	else
		log "no PostgreSQL server answers and none can be started: install PostgreSQL (Debian: apt-get install postgresql) or set TEST_DATABASE_URL"
		exit 1
	fi
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
	log "running as root and there is no postgres user to run a throwaway cluster as; set TEST_DATABASE_URL"
	exit 1
fi

data="$pgdir/data"
if [ ! -f "$data/PG_VERSION" ]; then
	log "initdb $data ($bindir)"
	rm -rf "$data"
	mkdir -p "$data"
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$pgdir"; fi
	as_postgres "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$pgdir/initdb.log" 2>&1 || {
		log "initdb failed:"
		cat "$pgdir/initdb.log" >&2
		exit 1
	}
fi
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$pgdir"; fi

port="${TEST_PG_PORT:-55432}"
for ((i = 0; i < 20; i++)); do
	port_in_use "$port" || break
	port=$((port + 1))
done
# Unix socket paths are limited to about 100 bytes.
sockdir="$pgdir"
if [ "${#pgdir}" -gt 80 ]; then sockdir=/tmp; fi

log "starting a throwaway cluster on 127.0.0.1:$port"
# fsync is off: the data is disposable and the tests run much faster.
if ! as_postgres "$bindir/pg_ctl" -D "$data" -l "$pgdir/server.log" -w -t 60 \
	-o "-p $port -c listen_addresses=127.0.0.1 -k '$sockdir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
	start >&2; then
	log "pg_ctl start failed; server log:"
	tail -n 30 "$pgdir/server.log" >&2 || true
	exit 1
fi
echo "$port" >"$pgdir/port"
dsn="$(local_dsn "$port")"
wait_answers "$dsn" 30 && found "$dsn"
log "the throwaway cluster started but does not answer at $dsn; server log:"
tail -n 30 "$pgdir/server.log" >&2 || true
exit 1
