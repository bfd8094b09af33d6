"""massgen-tracing: live, structured OpenTelemetry tracing of LangGraph and smolagents steps.

The public surface is these few names; everything else is private (`_internal`).
"""

from __future__ import annotations

# Not `from typing import ...`: with MASSGEN_TRACING=1 this package is imported at every interpreter
# start (the .pth line), and typing pulls in re, enum, collections and more: 16 ms of a 17 ms start.
TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = [
    "CallbackSink",
    "JsonlSink",
    "LiveStepProcessor",
    "Redactor",
    "Sink",
    "StepRecord",
    "configure",
    "shutdown",
]

if TYPE_CHECKING:
    from typing import Any

    from massgen_tracing._internal.processor import LiveStepProcessor
    from massgen_tracing._internal.records import StepRecord
    from massgen_tracing._internal.redact import Redactor
    from massgen_tracing._internal.setup import configure, shutdown
    from massgen_tracing._internal.sinks import CallbackSink, JsonlSink, Sink

# Imported on first use so `import massgen_tracing` stays cheap inside the host program.
_LAZY = {
    "configure": "massgen_tracing._internal.setup",
    "shutdown": "massgen_tracing._internal.setup",
    "LiveStepProcessor": "massgen_tracing._internal.processor",
    "StepRecord": "massgen_tracing._internal.records",
    "Redactor": "massgen_tracing._internal.redact",
    "Sink": "massgen_tracing._internal.sinks",
    "CallbackSink": "massgen_tracing._internal.sinks",
    "JsonlSink": "massgen_tracing._internal.sinks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'massgen_tracing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
