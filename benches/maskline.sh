# Shell helpers shared by compare.sh and ab-signalling.sh (sourced, not run).

# maskline_toml FILE SIP_PORT HTTP_PORT TRUNK_PORT RTP_MIN RTP_MAX API_KEY NUMBERS
# Writes a benchmark config for the maskline binary: everything on
# loopback, SQLite and recordings next to FILE, one SIPp trunk, one tenant
# with API_KEY, NUMBERS masked numbers, no rate limit, no call cap.
maskline_toml() {
    local file=$1 sip=$2 http=$3 trunk=$4 rtp_min=$5 rtp_max=$6 key=$7 numbers=$8
    local dir
    dir=$(dirname "$file")
    {
        cat <<TOML
[sip]
listen = "127.0.0.1:$sip"
public_address = "127.0.0.1"

[rtp]
port_min = $rtp_min
port_max = $rtp_max

[http]
listen = "127.0.0.1:$http"
rate_limit_per_sec = 0

[store]
url = "sqlite://$dir/maskline.db"

[recording]
dir = "$dir/recordings"

[[trunks]]
name = "sipp"
address = "127.0.0.1:$trunk"
inbound_cidrs = ["127.0.0.1/32"]

[[tenants]]
name = "bench"
api_keys = ["$key"]
max_concurrent_calls = 100000
TOML
        printf 'numbers = ['
        seq -f '"+1555%07g",' 1 "$numbers" | tr -d '\n'
        printf ']\n'
    } >"$file"
}

# sipp_count STAT_CSV COLUMN: a cumulative counter from SIPp's -trace_stat
# file (e.g. "SuccessfulCall(C)", "FailedCall(C)"); 0 when absent.
sipp_count() {
    [ -f "$1" ] || { echo 0; return; }
    awk -F';' -v col="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==col) c=i} END{print $c+0}' "$1" 2>/dev/null
}
