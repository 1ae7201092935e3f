#!/usr/bin/env bash
# A CI-sized fuzz run: every target for a few seconds, after one build.
#
#   fuzz/ci.sh [SECONDS_PER_TARGET]          (default 8)
#
# Installs cargo-fuzz when it is missing (crates.io, `--locked`). Prints the
# table of fuzz/run.sh and fails when a target crashes. Sized for a 2-core
# machine: the build dominates the time; the runs take 7 × SECONDS.
set -euo pipefail
seconds=${1:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz ..." >&2
    cargo install cargo-fuzz --locked
fi
start=$(date +%s)
status=0
# Unoptimised build: CI builds from scratch, and a few seconds of fuzzing
# per target need coverage, not speed.
FUZZ_DEV=${FUZZ_DEV:-1} "$root/fuzz/run.sh" all "$seconds" || status=$?
echo "fuzz/ci.sh: $(($(date +%s) - start))s in all"
exit "$status"
