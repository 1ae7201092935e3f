#!/usr/bin/env bash
# Installs, with apt-get, what a fresh Debian machine lacks to build Maskline
# (`build`: pkg-config, libopus-dev) or to build and test it (`test`: also
# cmake, SIPp from sip-tester and the baresip softphone from baresip-core,
# without the GUI/video extras of the `baresip` metapackage, python3 with
# pip and the `standardwebhooks` and `schemathesis` packages from PyPI, and the PostgreSQL
# server for the suite's PostgreSQL pass, Kamailio for its front-door test).
# Does nothing when all
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
    # tests/pg/start.sh runs /usr/lib/postgresql/*/bin/initdb; psql comes along.
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        missing+=(postgresql)
    fi
    command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || missing+=(kamailio)
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

# The schema test (tests/e2e/schema.rs) runs schemathesis 4 from PyPI, a
# property-based API tester, against the served /openapi.json; installed
# the same way. Another major has another CLI and config, hence the
# version check.
if [ "$want" = test ] && ! python3 -c '
import sys, schemathesis
v = tuple(int(x) for x in schemathesis.__version__.split(".")[:2])
sys.exit(0 if (4, 32) <= v < (5, 0) else 1)' >/dev/null 2>&1; then
    user=()
    [ "$(id -u)" -ne 0 ] && user=(--user)
    echo "install-deps: pip installing schemathesis" >&2
    python3 -m pip install -q --disable-pip-version-check "${user[@]}" 'schemathesis>=4.32,<5' 2>/dev/null ||
        python3 -m pip install -q --disable-pip-version-check --break-system-packages "${user[@]}" 'schemathesis>=4.32,<5'
fi
