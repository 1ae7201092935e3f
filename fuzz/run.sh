#!/usr/bin/env sh
# Run one cargo-fuzz target for a bounded time.
#
#   fuzz/run.sh TARGET [SECONDS]      TARGET: sip_message | sdp | rtp
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz passes. New inputs go
# to fuzz/corpus/TARGET (git-ignored); the checked-in seeds in
# fuzz/seeds/TARGET are read too. Crashes land in fuzz/artifacts/TARGET.
set -eu
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]  (targets: sip_message sdp rtp)}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
mkdir -p "fuzz/corpus/$target"
set -- -max_total_time="$seconds" -print_final_stats=1
if [ -f "fuzz/dict/$target.dict" ]; then
    set -- "$@" -dict="fuzz/dict/$target.dict"
fi
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- "$@"
