#!/usr/bin/env bash
# Install Caretaker into ./.venv and start it. Without arguments it runs on its embedded default:
# no config, watches this host, serves http://127.0.0.1:9464/metrics, keeps state in ./caretaker-data/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
exec .venv/bin/caretaker run "$@"
