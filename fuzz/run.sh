#!/usr/bin/env bash
# Run cargo-fuzz targets for a bounded time each and print a table of
# executions and crashes.
#
#   fuzz/run.sh [TARGET|all] [SECONDS]       (default: all, 60 s each)
#
# Targets: sip_message sdp rtp route framing config api_json.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). On a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz passes.
# Before a run each corpus (fuzz/corpus/TARGET, git-ignored) is seeded from
# the checked-in seeds (fuzz/seeds/TARGET) and, for the SIP-facing targets,
# the RFC 4475 torture messages (engine/tests/rfc4475), for `config` from
# the sip-config fixtures. Crashes land in fuzz/artifacts/TARGET, each
# target's libFuzzer output in fuzz/logs/TARGET.log.
#
# Environment:
#   FUZZ_SANITIZER   cargo-fuzz --sanitizer (default: none; `address` also
#                    works but builds slower: the targets are safe Rust)
#   FUZZ_DEV=1       build unoptimised (--dev): a cold build several times
#                    faster, fewer executions per second (fuzz/ci.sh)
#   FUZZ_TARGET_DIR  where the fuzz build goes (default: fuzz/target); point
#                    CI at a directory that outlives the checkout to skip
#                    the cold build (~8 CPU-minutes) on later runs
#
# Exit status: 0 when no target crashed, 1 when one did, 2 on usage or
# build errors.
set -euo pipefail

ALL="sip_message sdp rtp route framing config api_json"
which=${1:-all}
seconds=${2:-60}
case "$seconds" in
    '' | *[!0-9]*)
        echo "usage: fuzz/run.sh [TARGET|all] [SECONDS]   (targets: $ALL)" >&2
        exit 2
        ;;
esac
if [ "$which" = all ]; then
    targets=$ALL
else
    case " $ALL " in
        *" $which "*) targets=$which ;;
        *)
            echo "unknown target \`$which\`; targets: $ALL" >&2
            exit 2
            ;;
    esac
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sanitizer=${FUZZ_SANITIZER:-none}

# Corpora: seeds are copied in (never overwriting what the fuzzer found).
seed() {
    local t=$1 src
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    local sources=("fuzz/seeds/$t")
    case "$t" in
        sip_message | route | framing) sources+=("engine/tests/rfc4475") ;;
        config) sources+=("sip-config/tests/fixtures") ;;
    esac
    for src in "${sources[@]}"; do
        [ -d "$src" ] || continue
        find "$src" -maxdepth 1 -type f ! -name '*.md' ! -name '.*' -exec cp -n {} "fuzz/corpus/$t/" \;
    done
}

build_args=(--sanitizer "$sanitizer" --debug-assertions)
profile=release
if [ "${FUZZ_DEV:-0}" = 1 ]; then
    # Unoptimised: builds several times faster, runs slower (CI's short runs).
    build_args=(--sanitizer "$sanitizer" --dev)
    profile=debug
fi
target_dir=${FUZZ_TARGET_DIR:-fuzz/target}
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
    build_args+=(--target-dir "$FUZZ_TARGET_DIR")
fi
echo "building fuzz targets (sanitizer: $sanitizer) ..." >&2
build_start=$(date +%s)
# One build for all targets of this run.
if [ "$which" = all ]; then
    RUSTC_BOOTSTRAP=1 cargo fuzz build "${build_args[@]}" >&2 || exit 2
else
    RUSTC_BOOTSTRAP=1 cargo fuzz build "${build_args[@]}" "$which" >&2 || exit 2
fi
build_secs=$(($(date +%s) - build_start))
triple=$(rustc -vV | sed -n 's/^host: //p')
bindir="$target_dir/$triple/$profile"
mkdir -p fuzz/logs

rows=()
crashed=0
for t in $targets; do
    seed "$t"
    before=$(find "fuzz/artifacts/$t" -type f | sort)
    args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10
        -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$t/")
    if [ -f "fuzz/dict/$t.dict" ]; then
        args+=(-dict="fuzz/dict/$t.dict")
    fi
    echo "fuzzing $t for ${seconds}s ..." >&2
    status=0
    "$bindir/$t" "${args[@]}" "fuzz/corpus/$t" >"fuzz/logs/$t.log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/logs/$t.log" | tail -n 1)
    if [ -z "$execs" ]; then
        # No final stats (killed or crashed early): the last status line.
        execs=$(grep -o '^#[0-9]*' "fuzz/logs/$t.log" | tail -n 1 | tr -d '#')
    fi
    after=$(find "fuzz/artifacts/$t" -type f | sort)
    new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | grep -c . || true)
    if [ "$status" -ne 0 ] && [ "$new" -eq 0 ]; then
        new="?"  # failed without saving an input: see the log
    fi
    if [ "$new" != 0 ]; then
        crashed=1
    fi
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    rows+=("$t ${seconds} ${execs:-0} $corpus $new")
done

printf '\n%-12s %8s %12s %9s %8s %8s\n' target seconds executions exec/s corpus crashes
total=0
for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    set -- $row
    rate=$(($3 / ($2 > 0 ? $2 : 1)))
    printf '%-12s %8s %12s %9s %8s %8s\n' "$1" "$2" "$3" "$rate" "$4" "$5"
    total=$((total + $3))
done
printf '%-12s %8s %12s\n' total "" "$total"
echo "(build: ${build_secs}s; logs in fuzz/logs/, crashes in fuzz/artifacts/)"
if [ "$crashed" -ne 0 ]; then
    echo "CRASHES FOUND: reproduce with" \
        "RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer TARGET fuzz/artifacts/TARGET/<file>" >&2
    exit 1
fi
