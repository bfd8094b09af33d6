#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh machine with Python 3.10+, then runs it.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k processor`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# uv resolves and installs in seconds where pip takes minutes (and pip gives up on massgen's tree).
.venv/bin/python -m pip install -q --disable-pip-version-check "uv>=0.4"
.venv/bin/python -m uv pip install -q --python .venv/bin/python -e ".[test]"
exec .venv/bin/python -m pytest "$@"
