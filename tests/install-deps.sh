#!/usr/bin/env bash
# Installs, with apt-get, what a fresh Debian machine lacks to build Maskline
# (`build`: pkg-config, libopus-dev) or to build and test it (`test`: also
# cmake, SIPp from sip-tester and the baresip softphone from baresip-core,
# without the GUI/video extras of the `baresip` metapackage). Does nothing
# when all is present; uses sudo only when not root. Used by ./run, ./test
# and .ci/run.
#
#   tests/install-deps.sh build|test
set -uo pipefail

want="${1:-test}"
missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists opus; then
    missing+=(libopus-dev)
fi
if [ "$want" = test ]; then
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
    command -v baresip >/dev/null 2>&1 || missing+=(baresip-core)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -ne 0 ] && sudo=(sudo)
echo "install-deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -q &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
