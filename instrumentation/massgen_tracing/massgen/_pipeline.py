"""Getting the span pipeline ready inside a MassGen process, in the right order.

MassGen's own tracing (Logfire) must be configured before ours so `configure()` attaches to its tracer
provider instead of installing a second one; the tools module calls `honour_massgen_logfire_env()` when
MassGen loads it (agent creation, before coordination starts) and `ensure_pipeline()` on each call.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from massgen_tracing._internal import setup
from massgen_tracing._internal.guard import internal
from massgen_tracing._internal.settings import resolve
from massgen_tracing.massgen import _scope

logger = logging.getLogger("massgen_tracing")
# Two agents' first tool calls arrive together, each on its own thread: importing and instrumenting two
# frameworks at once races in the import system (half-initialised modules) and in the instrumentors'
# instrument-once checks. One at a time; after the first call this is an uncontended lock.
_lock = threading.Lock()
_FRAMEWORK_MODULE = {"langgraph": "langgraph.graph", "smolagents": "smolagents"}


def honour_massgen_logfire_env() -> bool:
    """Workaround: MassGen documents `MASSGEN_LOGFIRE_ENABLED=true` but its CLI never reads it (only
    `--logfire`, which also insists on a Logfire token). Switch MassGen's tracing on as its CLI would,
    without a token requirement, when that variable asks for it. Returns whether MassGen's tracing is on.
    """
    with internal("massgen.logfire_env"):
        try:
            from massgen import structured_logging as sl
        except ImportError:  # not inside MassGen
            return False
        if sl.is_observability_enabled():
            return True
        # `enabled=None` makes MassGen read MASSGEN_LOGFIRE_ENABLED itself. 'if-token-present' sends to
        # Logfire's cloud only with a LOGFIRE_TOKEN; spans always go where OTEL_EXPORTER_OTLP_* point.
        if not sl.configure_observability(enabled=None, send_to_logfire="if-token-present"):
            return False
        # The rest of what `massgen --logfire` does after configuring (massgen/cli/env.py).
        from massgen.logger_config import integrate_logfire_with_loguru

        integrate_logfire_with_loguru()
        tracer = sl.get_tracer()
        tracer.instrument_google_genai()
        tracer.instrument_openai()
        tracer.instrument_anthropic()
        return True
    return False


def _configured() -> Any | None:
    """The pipeline's state, configured if need be (call under `_lock`)."""
    state = setup.current()
    if state is None:
        # With MASSGEN_TRACING=1 the user asked for the console view and JSONL record too; otherwise
        # the tool only needs the live pipeline for MassGen's display (exporters follow OTEL_*).
        enabled = resolve(report=lambda _msg: None)["enabled"]
        state = setup.configure(instrument=False) if enabled else setup.configure(sinks=[], instrument=False)
    return state


def attach_to_massgen() -> None:
    """Join MassGen's tracer provider now, when MassGen loads the tools (agent creation), not at the first
    tool call: from here on our redaction masks MassGen's own spans too, among them the coordination's
    task and the first model call's messages, which start before any tool is called."""
    with internal("massgen.attach"), _lock:
        _configured()


def ensure_pipeline(framework: str) -> Any | None:
    """The LiveStepProcessor to stream from, with `framework` instrumented; None when tracing is disabled
    (`OTEL_SDK_DISABLED`). Imports the framework: call it off the event loop."""
    with _lock:
        # Imported here, under the lock, so MASSGEN_TRACING's import hook also runs one at a time.
        importlib.import_module(_FRAMEWORK_MODULE[framework])
        state = _configured()
        if state is None:
            return None
        setup.instrument_frameworks([framework], state.provider)
        _scope.install(state.processor)
        return state.processor


def tracer(name: str = "massgen_tracing.massgen") -> Any:
    """A tracer from the provider the pipeline uses (MassGen's Logfire provider when attached to it)."""
    from opentelemetry import trace

    state = setup.current()
    provider = state.provider if state is not None else trace.get_tracer_provider()
    return provider.get_tracer(name)
