#!/usr/bin/env bash
# Side-by-side benchmarks of Maskline against the systems operators would
# otherwise run, on this machine, in one run, and BENCHMARKS.md from them.
#
#   benches/compare.sh            full run (about 12 minutes), writes BENCHMARKS.md
#   benches/compare.sh --quick    a few seconds per part, no thresholds, writes
#                                 target/bench-quick/BENCHMARKS.md (for CI: it
#                                 checks that the harness still runs)
#   benches/compare.sh --out F    write the report to F instead
#   benches/compare.sh --report-from S   rewrite the report from the figures
#                                 a run saved in S (target/<report name>.state),
#                                 e.g. after editing benches/NOTES.md; measures
#                                 nothing
#
# Environment: CARGO_TARGET_DIR as for cargo; COMPARE_PROFILE=debug|release
# overrides the build profile; COMPARE_NO_BUILD=1 uses the binaries as built.
#
# Parts (each starts what it needs and stops it; every pid it starts is
# killed by pid at exit):
#   relay       relay-load through Maskline's engine and through rtpengine
#               (Debian rtpengine-daemon, userspace, table = -1, 2 threads,
#               ports 30000-50000, delete-delay = 0, driven over ng)
#   memory      RSS per call with many calls set up (same two)
#   recording   Maskline with every call recorded: gaps and recorder drops
#   api         api-load: POST /v1/sessions on SQLite against the maskline
#               binary (rate limit off, large pool)
#   signalling  SIPp calls/s through the maskline binary (B2BUA) and through
#               Kamailio 5.6 (tm + dialog + record_route, 4 workers, -m 1024)
#
# Installs what it lacks with apt-get (rtpengine-daemon, kamailio,
# sip-tester; libopus-dev and pkg-config through tests/install-deps.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
. "$ROOT/benches/maskline.sh"

QUICK=0
OUT=""
FROM=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --out) OUT="$2"; shift ;;
        --report-from) FROM="$2"; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    PROFILE=${COMPARE_PROFILE:-debug}
    RELAY_CALLS="20"; MEDIA_SECS=1; BASE_SECS=0.5
    MEM_CALLS=50; REC_CALLS=10
    API_SECS=1; POOL=3000; SESSIONS=100
    CPS_RATES="50"; CPS_SECS=2
    : "${OUT:=target/bench-quick/BENCHMARKS.md}"
else
    PROFILE=${COMPARE_PROFILE:-release}
    RELAY_CALLS="250 500 1000 1750 2000"; MEDIA_SECS=10; BASE_SECS=3
    # 4 sockets per call: the container's hard open-file limit decides.
    MEM_CALLS=4900; REC_CALLS=1000
    API_SECS=10; POOL=120000; SESSIONS=4000
    CPS_RATES="1000 2000 3000 4000 5000"; CPS_SECS=10
    : "${OUT:=BENCHMARKS.md}"
fi
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac

if [ -n "$FROM" ]; then
    declare -A R S
    # shellcheck disable=SC1090
    . "$FROM" || exit 1
    field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
    . "$ROOT/benches/report.sh"
    write_report >"$OUT"
    echo "compare.sh: wrote $OUT from $FROM" >&2
    exit 0
fi

# Ports: SIP 26060 (maskline), 26070 (kamailio), 26090 (SIPp callee), 26100
# (SIPp caller), HTTP 26080, ng 26223. RTP 30000-49999 for Maskline and
# 30000-50000 for rtpengine (never at the same time); generator media from
# 61000, above the kernel's ephemeral range (32768-60999 by default).
SIP=26060; KAM=26070; HTTP=26080; UAS=26090; UAC=26100; NG=26223
ML_RTP_MIN=30000; ML_RTP_MAX=49999; GEN_BASE=61000
KEY="bench-key-$$-0123456789abcdef"

log() { echo "compare.sh: $*" >&2; }

# ---------------------------------------------------------------- install
install_missing() {
    bash tests/install-deps.sh build || return 1
    local missing=()
    command -v rtpengine >/dev/null 2>&1 || missing+=(rtpengine-daemon)
    command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
    command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        "${sudo[@]}" apt-get update -q >/dev/null &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends "${missing[@]}" >/dev/null || return 1
    fi
}
install_missing || { log "could not install the peers"; exit 1; }

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
if [ -n "${COMPARE_NO_BUILD:-}" ]; then
    :
elif [ "$PROFILE" = release ]; then
    cargo build --release -q -p maskline -p maskline-benches || exit 1
else
    cargo build -q -p maskline -p maskline-benches || exit 1
fi
BIN="$TARGET_DIR/$PROFILE"

WORK=$(mktemp -d /tmp/maskline-compare.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 2
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null
CLK_TCK=$(getconf CLK_TCK)

# utime + stime (ticks) of the given pids.
ticks() {
    local sum=0 p t
    for p in "$@"; do
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
# A field of a `summary k=v …` line.
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_port() { # udp|tcp port
    local i
    for i in $(seq 1 100); do
        if ss -Hln"${1:0:1}" "sport = :$2" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- rtpengine
RTPE_PID=""
start_rtpengine() {
    cat >"$WORK/rtpengine.conf" <<EOF
[rtpengine]
table = -1
interface = 127.0.0.1
listen-ng = 127.0.0.1:$NG
port-min = 30000
port-max = 50000
num-threads = 2
delete-delay = 0
timeout = 600
log-level = 3
log-stderr = true
foreground = true
EOF
    rtpengine --config-file="$WORK/rtpengine.conf" >"$WORK/rtpengine.log" 2>&1 &
    RTPE_PID=$!
    PIDS+=("$RTPE_PID")
    wait_port u "$NG" || { log "rtpengine did not start"; cat "$WORK/rtpengine.log" >&2; return 1; }
}
stop_rtpengine() {
    [ -n "$RTPE_PID" ] && kill "$RTPE_PID" 2>/dev/null && wait "$RTPE_PID" 2>/dev/null
    RTPE_PID=""
}

relay_load() { # label args… → summary line in $WORK/relay-<label>.txt
    local label=$1; shift
    "$BIN/relay-load" --rtp-min "$ML_RTP_MIN" --rtp-max "$ML_RTP_MAX" --media-base "$GEN_BASE" "$@" \
        >"$WORK/relay-$label.txt" 2>&1
    grep '^summary ' "$WORK/relay-$label.txt" | tail -1
}

declare -A R
run_relay() {
    local n line
    for n in $RELAY_CALLS; do
        log "relay: maskline, $n calls"
        R[m$n]=$(relay_load "m$n" --calls "$n" --seconds "$MEDIA_SECS" --baseline-seconds "$BASE_SECS")
        log "  ${R[m$n]}"
        start_rtpengine || return 1
        log "relay: rtpengine, $n calls"
        R[r$n]=$(relay_load "r$n" --calls "$n" --seconds "$MEDIA_SECS" --baseline-seconds "$BASE_SECS" \
            --rtpengine "127.0.0.1:$NG" --rtpengine-pid "$RTPE_PID")
        log "  ${R[r$n]}"
        stop_rtpengine
    done
    log "memory: maskline, $MEM_CALLS calls"
    R[mmem]=$(relay_load mmem --calls "$MEM_CALLS" --seconds 2 --pps 5 --baseline-seconds 0 --concurrency 200)
    log "  ${R[mmem]}"
    start_rtpengine || return 1
    log "memory: rtpengine, $MEM_CALLS calls"
    R[rmem]=$(relay_load rmem --calls "$MEM_CALLS" --seconds 2 --pps 5 --baseline-seconds 0 --concurrency 200 \
        --rtpengine "127.0.0.1:$NG" --rtpengine-pid "$RTPE_PID")
    log "  ${R[rmem]}"
    stop_rtpengine
    log "recording: maskline, $REC_CALLS recorded calls"
    R[rec]=$(relay_load rec --calls "$REC_CALLS" --seconds "$MEDIA_SECS" --baseline-seconds 0 --record)
    log "  ${R[rec]}"
}

# ---------------------------------------------------------------- maskline binary
ML_PID=""
start_maskline() {
    local dir="$WORK/maskline"
    mkdir -p "$dir"
    maskline_toml "$dir/maskline.toml" "$SIP" "$HTTP" "$UAS" "$ML_RTP_MIN" "$ML_RTP_MAX" "$KEY" "$POOL"
    "$BIN/maskline" serve --config "$dir/maskline.toml" >"$WORK/maskline.log" 2>&1 &
    ML_PID=$!
    PIDS+=("$ML_PID")
    local i
    for i in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "maskline did not start"; tail -5 "$WORK/maskline.log" >&2
    return 1
}

API=""
run_api() {
    log "api: POST /v1/sessions for ${API_SECS}s"
    API=$("$BIN/api-load" --http "127.0.0.1:$HTTP" --key "$KEY" --connections 32 \
        --seconds "$API_SECS" --max "$((POOL / 2))" --csv "$WORK/sessions.csv" 2>&1 | tail -1)
    log "  $API"
    # SIPp needs enough sessions that none is called again while its last
    # call is still up (486): top up to SESSIONS, untimed.
    local have
    have=$(($(wc -l <"$WORK/sessions.csv") - 1))
    if [ "$have" -lt "$SESSIONS" ]; then
        log "api: creating $((SESSIONS - have)) more sessions for SIPp"
        "$BIN/api-load" --http "127.0.0.1:$HTTP" --key "$KEY" --connections 8 --seconds 120 \
            --max "$((SESSIONS - have))" --first-index 9000000 --csv "$WORK/more.csv" >/dev/null 2>&1
        tail -n +2 "$WORK/more.csv" >>"$WORK/sessions.csv"
    fi
}

# ---------------------------------------------------------------- SIPp steps
UAS_PID=""
start_uas() {
    sipp -sf "$ROOT/benches/sipp/uas_cps.xml" -i 127.0.0.1 -p "$UAS" -buff_size 4194304 \
        -nostdin -trace_err -error_file "$WORK/uas_errors.log" >/dev/null 2>&1 &
    UAS_PID=$!
    PIDS+=("$UAS_PID")
    wait_port u "$UAS"
}

# One step: calls at RATE/s for CPS_SECS through DEST, CPU of PIDS...
# → "offered=… ok=… failed=… cps=… failed_pct=… p95_ms=… cpu_us_per_call=…"
sipp_step() {
    local label=$1 dest=$2 rate=$3; shift 3
    local dir="$WORK/sipp-$label-$rate" calls=$((rate * CPS_SECS))
    mkdir -p "$dir"
    local t0 t1 c0 c1
    c0=$(ticks "$@")
    t0=$(date +%s.%N)
    (cd "$dir" && timeout $((CPS_SECS + 60)) sipp -sf "$ROOT/benches/sipp/uac_cps.xml" \
        -inf "$WORK/sessions.csv" "$dest" -i 127.0.0.1 -p "$UAC" \
        -r "$rate" -rp 1000 -m "$calls" -l $((rate * 4)) -buff_size 4194304 -nostdin \
        -recv_timeout 8000 -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1 \
        >sipp.out 2>&1)
    t1=$(date +%s.%N)
    c1=$(ticks "$@")
    local ok failed
    ok=$(sipp_count "$dir/stat.csv" "SuccessfulCall(C)")
    failed=$(sipp_count "$dir/stat.csv" "FailedCall(C)")
    local p95
    p95=$(cat "$dir"/*_rtt.csv 2>/dev/null | awk -F';' 'NR>1 && $2 ~ /^[0-9.]+$/ {print $2}' | sort -n |
        awk '{v[NR]=$1} END{if(NR==0){print "-"} else {i=int(NR*0.95); if(i<1)i=1; print v[i]}}')
    awk -v ok="${ok:-0}" -v f="${failed:-0}" -v n="$calls" -v t0="$t0" -v t1="$t1" \
        -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v p95="$p95" -v rate="$rate" 'BEGIN{
        el = t1 - t0; tot = ok + f; if (tot == 0) tot = 1
        # Completed calls per second of the sending window (n / rate s):
        # what the proxy sustained at this offered rate.
        printf "offered=%d ok=%d failed=%d cps=%.0f failed_pct=%.2f p95_ms=%s cpu_us_per_call=%s elapsed_s=%.1f\n",
            rate, ok, f, ok * rate / n, 100 * (n - ok) / n, p95,
            (ok > 0 ? sprintf("%.0f", c * 1e6 / hz / ok) : "-"), el }'
}

declare -A S
run_signalling() {
    start_uas || { log "SIPp callee did not start"; return 1; }
    local r
    for r in $CPS_RATES; do
        log "signalling: maskline at $r calls/s"
        S[m$r]=$(sipp_step maskline "127.0.0.1:$SIP" "$r" "$ML_PID")
        log "  ${S[m$r]}"
    done
    sed "s/@LISTEN@/udp:127.0.0.1:$KAM/; s/@UAS@/sip:127.0.0.1:$UAS/" \
        "$ROOT/benches/kamailio/kamailio.cfg" >"$WORK/kamailio.cfg"
    kamailio -f "$WORK/kamailio.cfg" -DD -E -m 1024 -M 16 -w "$WORK" >"$WORK/kamailio.log" 2>&1 &
    local kpid=$!
    PIDS+=("$kpid")
    wait_port u "$KAM" || { log "kamailio did not start"; tail -5 "$WORK/kamailio.log" >&2; return 1; }
    sleep 0.5
    local kpids
    kpids="$kpid $(pgrep -P "$kpid" | tr '\n' ' ')"
    for r in $CPS_RATES; do
        log "signalling: kamailio at $r calls/s"
        # shellcheck disable=SC2086
        S[k$r]=$(sipp_step kamailio "127.0.0.1:$KAM" "$r" $kpids)
        log "  ${S[k$r]}"
    done
    kill "$kpid" 2>/dev/null
}

# ---------------------------------------------------------------- run
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
run_relay
start_maskline && {
    run_api
    run_signalling
}
T_END=$(date +%s)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
. "$ROOT/benches/report.sh"
mkdir -p "$(dirname "$OUT")"
write_report >"$OUT"
# Everything the report used, to rewrite it with --report-from.
declare -p R S API START T_START T_END LOAD0 LOAD1 QUICK PROFILE RELAY_CALLS MEDIA_SECS \
    BASE_SECS MEM_CALLS REC_CALLS API_SECS POOL SESSIONS CPS_RATES CPS_SECS NG SIP HTTP UAS \
    2>/dev/null | sed 's/^declare -A /declare -gA /; s/^declare -- /declare -g /' >"$TARGET_DIR/$(basename "$OUT").state"
log "wrote $OUT ($((T_END - T_START)) s of measurements)"

# The harness itself must have worked (no thresholds on the figures): every
# part produced its line, every relay run set all its calls up, and calls
# went through both proxies.
missing=()
for n in $RELAY_CALLS mem; do
    for who in m r; do
        line=${R[$who$n]:-}
        if [ -z "$line" ] || [ "$(field "$line" set_up)" != "$(field "$line" calls)" ]; then
            missing+=("relay $who$n")
        fi
    done
done
[ -z "${R[rec]:-}" ] && missing+=("recording")
[ -z "$(field "$API" created)" ] || [ "$(field "$API" created)" = 0 ] && missing+=("api")
for r in $CPS_RATES; do
    for who in m k; do
        ok=$(field "${S[$who$r]:-}" ok)
        [ "${ok:-0}" -gt 0 ] || missing+=("signalling $who$r")
    done
done
if [ ${#missing[@]} -gt 0 ]; then
    rm -rf "$TARGET_DIR/bench-logs"
    cp -r "$WORK" "$TARGET_DIR/bench-logs" 2>/dev/null
    log "incomplete: ${missing[*]} (logs kept in $TARGET_DIR/bench-logs)"
    exit 1
fi
