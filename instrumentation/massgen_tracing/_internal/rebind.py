"""Run another library's function as its own code, with some of the globals it looks up replaced.

Used where we keep a library's logic exactly but swap one piece it calls (`langgraph/_oi_end.py`,
`langgraph/_runs.py`): the copy cannot drift from the original's body, whatever its version adds.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any


def with_globals(function: Any, replacements: dict[str, Any]) -> Callable[..., Any] | None:
    """A copy of `function` whose global names in `replacements` resolve to the given objects, or None
    if it is not a plain Python function or does not look up every one of those names."""
    code = getattr(function, "__code__", None)
    if code is None or not set(replacements) <= set(code.co_names):
        return None
    copy = types.FunctionType(code, {**function.__globals__, **replacements}, function.__name__,
                              function.__defaults__, function.__closure__)
    copy.__kwdefaults__ = dict(function.__kwdefaults__ or {})  # FunctionType does not carry them over
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    return copy
