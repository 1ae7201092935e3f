#!/usr/bin/env bash
# Compare two builds of the `maskline` binary under the same SIPp B2BUA
# load, in alternating runs, so that both see the same machine noise.
#
#   benches/ab-signalling.sh A_DIR B_DIR [CALLS_PER_SEC] [RUNS] [SECS]
#
# A_DIR and B_DIR each hold a release `maskline` binary (copy
# target/release/maskline aside before rebuilding). The `api-load` of this
# checkout creates the sessions. Defaults: 2000 calls/s, 3 runs of each,
# 10 s per run. Per run it prints the calls completed and failed, the
# process's CPU per completed call and each thread's share (from
# /proc/<pid>/task/*/stat, in µs per call). Loopback ports 27060/27080
# (maskline) and 27090/27100 (SIPp). Needs sipp (Debian sip-tester) and
# curl; run it on a quiet machine. Nothing here is a test: it only prints.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/benches/maskline.sh"
A="${1:?usage: ab-signalling.sh A_DIR B_DIR [CALLS_PER_SEC] [RUNS] [SECS]}"
B="${2:?usage: ab-signalling.sh A_DIR B_DIR [CALLS_PER_SEC] [RUNS] [SECS]}"
RATE="${3:-2000}"
RUNS="${4:-3}"
SECS="${5:-10}"
API_LOAD="${CARGO_TARGET_DIR:-$ROOT/target}/release/api-load"
KEY=bench-key-0123456789abcdef
TICK_US=$((1000000 / $(getconf CLK_TCK)))

for dir in "$A" "$B"; do
    [ -x "$dir/maskline" ] || { echo "ab-signalling: no maskline binary in $dir" >&2; exit 2; }
done
command -v sipp >/dev/null || { echo "ab-signalling: sipp is missing (apt-get install sip-tester)" >&2; exit 2; }
[ -x "$API_LOAD" ] || (cd "$ROOT" && cargo build --release -q -p maskline-benches --bin api-load) || exit 2
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# Per-thread CPU ticks of process $1, summed by thread name: "name=ticks …".
threads() {
    for t in /proc/"$1"/task/*; do
        echo "$(cat "$t/comm" 2>/dev/null | tr ' ' '_') $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null)"
    done | awk '$2 != "" {a[$1] += $2} END {for (k in a) printf "%s=%d ", k, a[k]}'
}

one_run() { # label dir
    local label=$1 bin=$2 work pid uas t0 t1 th0 th1 ok failed
    work=$(mktemp -d)
    maskline_toml "$work/maskline.toml" 27060 27080 27090 30000 49999 "$KEY" $((RATE * SECS / 5 + 1000))
    "$bin/maskline" serve --config "$work/maskline.toml" >"$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -sf http://127.0.0.1:27080/healthz >/dev/null && break; sleep 0.1; done
    "$API_LOAD" --http 127.0.0.1:27080 --key "$KEY" --connections 8 --seconds 60 \
        --max $((RATE * SECS / 5)) --csv "$work/sessions.csv" >/dev/null 2>&1
    sipp -sf "$ROOT/benches/sipp/uas_cps.xml" -i 127.0.0.1 -p 27090 -buff_size 4194304 -nostdin \
        >/dev/null 2>&1 &
    uas=$!
    t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
    th0=$(threads $pid)
    (cd "$work" && timeout $((SECS + 60)) sipp -sf "$ROOT/benches/sipp/uac_cps.xml" \
        -inf "$work/sessions.csv" 127.0.0.1:27060 -i 127.0.0.1 -p 27100 -r "$RATE" -rp 1000 \
        -m $((RATE * SECS)) -l $((RATE * 4)) -buff_size 4194304 -nostdin -recv_timeout 8000 \
        -trace_stat -stf stat.csv >/dev/null 2>&1)
    t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
    th1=$(threads $pid)
    ok=$(sipp_count "$work/stat.csv" "SuccessfulCall(C)")
    failed=$(sipp_count "$work/stat.csv" "FailedCall(C)")
    per_thread=$(awk -v before="$th0" -v after="$th1" -v ok="$ok" -v us="$TICK_US" 'BEGIN {
        n = split(before, b, " "); for (i = 1; i <= n; i++) { split(b[i], kv, "="); was[kv[1]] = kv[2] }
        n = split(after, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, "=");
            printf "%s %d  ", kv[1], (kv[2] - was[kv[1]]) * us / (ok > 0 ? ok : 1) } }')
    echo "$label rate=$RATE ok=$ok failed=$failed cpu_us_per_call=$(((t1 - t0) * TICK_US / (ok > 0 ? ok : 1)))  per thread: $per_thread"
    kill "$uas" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    wait "$uas" 2>/dev/null
    rm -rf "$work"
}

for _ in $(seq "$RUNS"); do
    one_run A "$A"
    one_run B "$B"
done
