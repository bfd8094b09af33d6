"""LangGraph and smolagents inside MassGen: drop-in custom tools whose steps appear live in MassGen's
display and nest under MassGen's tool-call span, and a sink that drives a MassGen display directly.

In a MassGen config::

    custom_tools:
      - name: planner
        path: massgen_tracing.massgen
        function: langgraph_tool          # or smolagents_tool
        preset_args:
          factory: "mypkg.graphs:make_graph"   # or "path/to/file.py:make_graph"

See docs/massgen.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["DisplaySink", "langgraph_tool", "smolagents_tool"]

if TYPE_CHECKING:
    from massgen_tracing.massgen._display import DisplaySink
    from massgen_tracing.massgen._tools import langgraph_tool, smolagents_tool

# Lazy: `DisplaySink` works without MassGen installed, the tools need it (and importing them is when
# MassGen's own tracing gets switched on, see `_pipeline`).
_LAZY = {
    "DisplaySink": "massgen_tracing.massgen._display",
    "langgraph_tool": "massgen_tracing.massgen._tools",
    "smolagents_tool": "massgen_tracing.massgen._tools",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'massgen_tracing.massgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
