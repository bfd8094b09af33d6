"""OpenInference's context attributes (`using_session`, `using_metadata`, ...), read in one pass.

`openinference.instrumentation.get_attributes_from_context()` looks each of its seven keys up with
`get_value`, which finds the current context again every time (three calls deep): 21 calls a lookup, and
every step span looks twice (at start, and in OpenInference's end-of-run update). `context_attributes`
finds the context once and gives the same pairs in the same order. Checked at import against
OpenInference's own function: an OpenInference that reads them differently keeps its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from openinference.instrumentation import get_attributes_from_context
from opentelemetry import context as context_api

try:
    from openinference.instrumentation.context_attributes import CONTEXT_ATTRIBUTES
except ImportError:  # pragma: no cover  # moved in a future openinference-instrumentation
    CONTEXT_ATTRIBUTES = ()  # type: ignore[assignment]

_get_current = context_api.get_current


def _context_attributes() -> list[tuple[str, Any]]:
    ctx = _get_current()
    return [(key, value) for key in CONTEXT_ATTRIBUTES if (value := ctx.get(key)) is not None]


def _ours_fit() -> bool:
    """OpenInference's function is the loop over CONTEXT_ATTRIBUTES with `get_value` that ours replaces."""
    code = getattr(get_attributes_from_context, "__code__", None)
    return bool(CONTEXT_ATTRIBUTES) and code is not None and set(code.co_names) <= {
        "CONTEXT_ATTRIBUTES", "get_value", "cast", "AttributeValue"}


context_attributes: Callable[[], Iterable[tuple[str, Any]]] = (
    _context_attributes if _ours_fit() else get_attributes_from_context)
