#!/usr/bin/env bash
# Installs, with apt-get, what a fresh Debian machine lacks to build Maskline
# (`build`: pkg-config, libopus-dev) or to build and test it (`test`: also
# cmake, SIPp from sip-tester and the baresip softphone from baresip-core,
# without the GUI/video extras of the `baresip` metapackage, python3 with
# pip and the `standardwebhooks` package from PyPI). Does nothing when all
# is present; uses sudo only when not root. Used by ./run, ./test and
# .ci/run.
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
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
fi

sudo=()
[ "$(id -u)" -ne 0 ] && sudo=(sudo)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -q &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" ||
        exit 1
fi

# The webhook end-to-end tests verify every signature with an independent
# Standard Webhooks implementation: the `standardwebhooks` package from PyPI
# (tests/webhooks/receiver.py). Debian's own Python refuses plain `pip
# install` (PEP 668), hence the second form.
if [ "$want" = test ] && ! python3 -c 'import standardwebhooks' >/dev/null 2>&1; then
    user=()
    [ "$(id -u)" -ne 0 ] && user=(--user)
    echo "install-deps: pip installing standardwebhooks" >&2
    python3 -m pip install -q --disable-pip-version-check "${user[@]}" standardwebhooks 2>/dev/null ||
        python3 -m pip install -q --disable-pip-version-check --break-system-packages "${user[@]}" standardwebhooks
fi
