"""MassGen tests need MassGen importable: they run in `.venv-massgen`, which tests/run.sh creates and
runs `pytest tests/massgen` in. MassGen pins older openai, rich and protobuf than the main `.venv`, so it
does not live there; tests/conftest.py leaves this folder out of a run in a venv without MassGen and says
so in the report header.
"""

import os

# litellm (a MassGen dependency) fetches its model price list from GitHub at import unless told not to;
# this machine has no network beyond package registries and nothing may try to reach it.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
