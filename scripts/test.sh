#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (PostgreSQL 15, Prometheus, Alertmanager,
# docker-compose for `docker-compose config`, a .venv with the test extras), then run the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    postgresql prometheus prometheus-alertmanager docker-compose >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
# pytest exits 5 when it collects no test: that is a failure here, as any non-zero code is.
exec .venv/bin/pytest "$@"
