"""OpenInference's end-of-run span update (`_update_span`), run by its own code with two cheaper parts.

`_update_span` is ~40 % of OpenInference's per-span cost. We keep its body and every extractor it calls
(so the attributes stay exactly OpenInference's, whatever its version adds), and replace only:

* `_flatten`: OpenInference's is a recursive generator wrapped by a second generator at every level;
  ours builds the same (key, value) pairs, in the same order, with plain recursion. A failure stops
  the level it happens in and is logged, as there.
* the span it writes to: `OpenInferenceSpan.set_attributes` masks and sets one attribute at a time,
  each a proxy call and an SDK lock; `_BulkSpan` masks each the same way (`TraceConfig.mask`) and hands
  them to the SDK span in one call.

`tests/langgraph/test_oi_end.py` checks, on every run of several real graphs, that the result equals
OpenInference's, with content captured and with its masking switches on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

from openinference.instrumentation.langchain import _tracer as oi
from openinference.semconv.trace import SpanAttributes

from massgen_tracing._internal.rebind import with_globals

try:  # attributes an OpenInferenceSpan keeps aside and writes at end()
    from openinference.instrumentation._spans import _IMPORTANT_ATTRIBUTES  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover  # moved in a future openinference-instrumentation
    _IMPORTANT_ATTRIBUTES = [SpanAttributes.OPENINFERENCE_SPAN_KIND]

logger = logging.getLogger(oi.__name__)  # where OpenInference's own `_flatten` logs its failures
_IMPORTANT = frozenset(_IMPORTANT_ATTRIBUTES)


def _flatten_into(out: list[tuple[str, Any]], prefix: str | None, items: Iterable[tuple[Any, Any]]) -> None:
    try:
        for key, value in items:
            if value is None:
                continue
            name = key if prefix is None else f"{prefix}.{key}"
            if isinstance(value, Mapping):
                _flatten_into(out, name, value.items())
            elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
                for index, sub_mapping in enumerate(value):
                    _flatten_into(out, f"{name}.{index}", sub_mapping.items())
            else:
                out.append((name, value.value if isinstance(value, Enum) else value))
    except Exception:
        logger.exception("Failed to get attribute.")


def _flatten(key_values: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    _flatten_into(out, None, key_values)
    return out


class _BulkSpan:
    """What `_update_span` writes to: forwards to an `OpenInferenceSpan`, setting attributes in one call."""

    __slots__ = ("_span", "_status")

    def __init__(self, span: Any, status: bool = True):
        self._span = span
        self._status = status

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        if self._status:
            self._span.set_status(*args, **kwargs)

    def set_attribute(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        span = self._span
        config = getattr(span, "_self_config", None)
        sdk_span = getattr(span, "__wrapped__", None)
        if config is None or sdk_span is None or not span.is_recording():
            span.set_attributes(attributes)  # not the usual OpenInferenceSpan: its own, per-attribute path
            return
        mask = config.mask
        masked = {}
        for key, value in attributes.items():
            if type(value) is not str and isinstance(value, str):
                # langchain-core's `message.text` is a callable str subclass, and `mask` calls callables:
                # the deprecated `.text()` form, whose warning then names this file. Same text, no call.
                value = str.__str__(value)
            elif key == SpanAttributes.SESSION_ID and type(value) is not str:
                # The checkpointer's thread id as it was given (`uuid.uuid4()`, 42): a string, as the
                # step's start wrote it. The SDK would warn about a UUID on stderr for every run.
                value = str(value)
            if key in _IMPORTANT:  # bookkept by the wrapper (re-applied at end), as its set_attribute does
                span.set_attribute(key, value)
            elif (kept := mask(key, value)) is not None:
                masked[key] = kept
        if masked:
            sdk_span.set_attributes(masked)


def _rebuilt(function: Any) -> Callable[[Any, Any], None] | None:
    inner = getattr(function, "__wrapped__", function)  # under OpenInference's `audit_timing` decorator
    return with_globals(inner, {"_flatten": _flatten})


_FAST = _rebuilt(oi._update_span)


def update_span(span: Any, run: Any, *, status: bool = True) -> None:
    """`openinference...langchain._tracer._update_span(span, run)`, same attributes, fewer steps.

    `status=False` leaves the status alone: OpenInference sets ERROR for any `run.error`, but a step the
    consumer abandoned stays UNSET, and the SDK ignores a later attempt to set UNSET.
    """
    if _FAST is None:  # an OpenInference whose `_update_span` we do not recognise: use it as it is
        target: Any = span if status else _BulkSpan(span, status=False)  # a span to `_update_span`
        oi._update_span(target, run)
    else:
        _FAST(_BulkSpan(span, status), run)
