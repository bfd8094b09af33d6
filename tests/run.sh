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
# Phoenix, the end-to-end test's backend (tests/phoenix), gets its own venv so its ~700 MB of pins never
# move ours. Pinned: the test relies on this version's offline switches and REST API.
PHOENIX_VERSION=20.26.1
[ -x .venv-phoenix/bin/python ] || "$PY" -m venv .venv-phoenix
if ! .venv-phoenix/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('arize-phoenix') != '$PHOENIX_VERSION')" 2>/dev/null; then
  .venv-phoenix/bin/python -m pip install -q --disable-pip-version-check "uv>=0.4"
  .venv-phoenix/bin/python -m uv pip install -q --python .venv-phoenix/bin/python "arize-phoenix==$PHOENIX_VERSION"
fi
# MassGen (tests/massgen) pins openai 2.2 / rich 14.1 / protobuf 5, older than .venv's: its own venv,
# installed with uv (pip's resolver gives up on MassGen's tree after ~19 minutes).
MASSGEN_VERSION=0.1.97
[ -x .venv-massgen/bin/python ] || "$PY" -m venv .venv-massgen
.venv-massgen/bin/python -m pip install -q --disable-pip-version-check "uv>=0.4"
.venv-massgen/bin/python -m uv pip install -q --python .venv-massgen/bin/python \
  "massgen[observability]==$MASSGEN_VERSION" -e ".[test]"

status=0
.venv/bin/python -m pytest "$@" || status=$?
rc=0
.venv-massgen/bin/python -m pytest tests/massgen "$@" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || status=$rc   # 5: the arguments selected none of these tests
exit $status
