"""Suite-wide settings: our internal errors re-raise under test so bugs cannot hide behind the guard."""

import os

os.environ["MASSGEN_TRACING_STRICT"] = "1"
# Never let a developer's shell activate tracing inside the test process itself.
os.environ.pop("MASSGEN_TRACING", None)


import importlib.util

# tests/massgen runs in .venv-massgen (MassGen pins older openai/rich/protobuf than .venv); tests/run.sh
# runs it there as a second pytest pass. Elsewhere the folder is left out, and the header says so.
_HAS_MASSGEN = importlib.util.find_spec("massgen") is not None and importlib.util.find_spec("massgen.tool") is not None
collect_ignore_glob = [] if _HAS_MASSGEN else ["massgen/*"]


def pytest_report_header(config):
    if not _HAS_MASSGEN:
        return "tests/massgen: not collected here (no MassGen in this venv); tests/run.sh runs them in .venv-massgen"
    return None
