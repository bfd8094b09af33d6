"""Suite-wide settings: our internal errors re-raise under test so bugs cannot hide behind the guard."""

import os

os.environ["MASSGEN_TRACING_STRICT"] = "1"
# Never let a developer's shell activate tracing inside the test process itself.
os.environ.pop("MASSGEN_TRACING", None)
