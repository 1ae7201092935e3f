#!/usr/bin/env bash
# Stops the server tests/pg/start.sh started on PORT and removes its DIR.
#
#   tests/pg/stop.sh PORT [DIR]
#
# Idempotent: nothing running and no DIR is fine. Waits at most
# PG_STOP_TIMEOUT seconds (default 30) for a fast shutdown, then kills the
# postmaster of DIR (by its pid file) as a last resort.
set -uo pipefail

port="${1:-}"
case "$port" in
    '' | *[!0-9]*) echo "usage: $0 PORT [DIR]" >&2; exit 2 ;;
esac
dir="${2:-${TMPDIR:-/tmp}/maskline-pg-$port}"
timeout_secs="${PG_STOP_TIMEOUT:-30}"

bin="${PG_BIN:-}"
if [ -z "$bin" ]; then
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
fi

as_owner() {
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

if [ -f "$dir/data/postmaster.pid" ] && [ -n "$bin" ]; then
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t "$timeout_secs" stop >/dev/null 2>&1; then
        pid="$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
        case "$pid" in
            '' | *[!0-9]*) ;;
            *) kill -9 "$pid" 2>/dev/null || true ;;
        esac
    fi
fi
rm -rf "$dir"
exit 0
