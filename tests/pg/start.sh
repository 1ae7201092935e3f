#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the test suite on 127.0.0.1:PORT
# and prints its URL (postgres://postgres@127.0.0.1:PORT/postgres) on stdout.
#
#   tests/pg/start.sh PORT [DIR]
#   export MASKLINE_TEST_PG_URL="$(tests/pg/start.sh 55432)"
#
# DIR (default ${TMPDIR:-/tmp}/maskline-pg-PORT) holds the cluster (DIR/data),
# the unix socket (DIR/sock) and the server log (DIR/server.log). Trust auth,
# loopback only, no fsync (test data is disposable). Idempotent: a server
# already running from DIR is reused. PostgreSQL refuses to run as root, so
# as root it runs as the `postgres` user (created by Debian's package).
# Binaries: $PG_BIN, else the newest /usr/lib/postgresql/*/bin. Every wait
# is bounded (PG_START_TIMEOUT seconds, default 60). Stop with stop.sh.
set -euo pipefail

port="${1:-}"
case "$port" in
    '' | *[!0-9]*) echo "usage: $0 PORT [DIR]" >&2; exit 2 ;;
esac
dir="${2:-${TMPDIR:-/tmp}/maskline-pg-$port}"
timeout_secs="${PG_START_TIMEOUT:-60}"
url="postgres://postgres@127.0.0.1:$port/postgres"

bin="${PG_BIN:-}"
if [ -z "$bin" ]; then
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "pg/start.sh: no PostgreSQL server binaries (apt-get install postgresql, or set PG_BIN)" >&2
    exit 1
fi

# Run a command as the server's user: ourselves, or `postgres` when root.
as_owner() {
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "pg/start.sh: running as root but there is no postgres user to run the server as" >&2
    exit 1
fi

ready() {
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U postgres
}

if [ -f "$dir/data/postmaster.pid" ] && ready; then
    echo "$url"
    exit 0
fi

mkdir -p "$dir/sock"
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$dir"
    if ! as_owner test -w "$dir/sock"; then
        echo "pg/start.sh: the postgres user cannot reach $dir; pass a DIR it can (e.g. under /tmp)" >&2
        exit 1
    fi
fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
fi

# -w waits for the server; the pg_isready loop below is the bounded check.
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$timeout_secs" \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c max_connections=400 \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c shared_buffers=64MB" \
    start >/dev/null || {
    echo "pg/start.sh: server did not start; log tail:" >&2
    tail -n 30 "$dir/server.log" >&2 || true
    exit 1
}

deadline=$((SECONDS + timeout_secs))
until ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "pg/start.sh: not ready on 127.0.0.1:$port after ${timeout_secs}s" >&2
        tail -n 30 "$dir/server.log" >&2 || true
        exit 1
    fi
    sleep 0.2
done
echo "$url"
