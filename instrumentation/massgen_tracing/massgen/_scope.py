"""Which MassGen tool call a span belongs to: every span started inside a tool call's framework run gets
`massgen.agent.id` at start and joins that call's member set, which filters the call's live records.

A call's scope travels in the OpenTelemetry context (so through threads and tasks that copy context);
a span started from a context without it still joins when its parent span is a member.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.guard import internal

_SCOPE_KEY = otel_context.create_key("massgen_tracing.massgen.call")
_lock = threading.Lock()
_by_span: dict[int, CallScope] = {}  # span id -> scope, for spans whose start context lacks the key


class CallScope:
    """One framework tool call: the agent it runs for and the spans started for it (hex span ids)."""

    def __init__(self, agent_id: str | None):
        self.agent_id = agent_id
        self.members: set[str] = set()
        self._ids: list[int] = []

    def context(self, parent: otel_context.Context | None = None) -> otel_context.Context:
        """`parent` (default: the current context) with this scope in it."""
        return otel_context.set_value(_SCOPE_KEY, self, parent)

    def _join(self, span_id: int) -> None:
        # Written on the program's thread in on_start, read by the sink thread later: the record of a
        # span can only be dispatched after its on_start returned, so membership is always known first.
        self.members.add(format(span_id, "016x"))
        with _lock:
            self._ids.append(span_id)
            _by_span[span_id] = self

    def close(self) -> None:
        """Forget this call's spans (the fallback map would otherwise grow with every call)."""
        with _lock:
            for span_id in self._ids:
                if _by_span.get(span_id) is self:
                    del _by_span[span_id]
            self._ids.clear()


def scope_of(parent_context: otel_context.Context | None) -> CallScope | None:
    ctx = parent_context if parent_context is not None else otel_context.get_current()
    scope = otel_context.get_value(_SCOPE_KEY, ctx)
    if isinstance(scope, CallScope):
        return scope
    if not _by_span:
        return None
    parent = trace.get_current_span(ctx).get_span_context()
    return _by_span.get(parent.span_id) if parent.is_valid else None


def tag_span(span: Any, parent_context: otel_context.Context | None) -> None:
    """Runs at every span start (before the live processor copies the attributes)."""
    with internal("massgen.scope"):
        scope = scope_of(parent_context)
        if scope is None:
            return
        scope._join(span.get_span_context().span_id)
        if scope.agent_id:
            span.set_attribute(c.AGENT_ID, scope.agent_id)


def install(processor: Any) -> None:
    """Make `processor` (the LiveStepProcessor) tag spans before it builds their start records."""
    if getattr(processor, "_massgen_scope_installed", False):
        return
    processor.add_start_hook(tag_span)
    processor._massgen_scope_installed = True
