"""Helpers for the smolagents instrumentor tests: a capture processor that records what a live
processor sees (start attributes, events as they are added), span-tree rendering, small tools."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from massgen_tracing._internal import convention as c
from smolagents import tool

SLOW_TOOL_SECONDS = 0.2


@dataclass
class Seen:
    """One span as a live processor sees it: attributes at start, events in order, ended or not."""

    name: str
    start: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ended: bool = False


class CaptureProcessor(SpanProcessor):
    """Snapshots `dict(span.attributes)` in `on_start` and each event as it is added.

    Events are hooked the way `LiveStepProcessor` does it: `_add_event` on the span instance.
    """

    def __init__(self) -> None:
        self.seen: dict[int, Seen] = {}
        self.order: list[tuple[str, str, str | None]] = []  # (start|event|end, span name, event name)
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        seen = Seen(span.name, dict(span.attributes or {}))
        with self._lock:
            self.seen[span.context.span_id] = seen
            self.order.append(("start", span.name, None))
        original = span._add_event

        def _add_event(event: Event) -> None:
            original(event)
            with self._lock:
                seen.events.append((event.name, dict(event.attributes or {})))
                self.order.append(("event", span.name, event.name))

        span._add_event = _add_event  # type: ignore[method-assign]

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.seen[span.context.span_id].ended = True
            self.order.append(("end", span.name, None))


class Traced:
    """What one test's instrumented provider recorded."""

    def __init__(self, exporter: InMemorySpanExporter, capture: CaptureProcessor) -> None:
        self.exporter = exporter
        self.capture = capture

    def spans(self) -> list[ReadableSpan]:
        return sorted(self.exporter.get_finished_spans(), key=lambda s: (s.start_time or 0))

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in self.spans()]}"
        return found[0]

    def start_attributes(self, span: ReadableSpan) -> dict[str, Any]:
        return self.capture.seen[span.context.span_id].start

    def events(self, span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
        return self.capture.seen[span.context.span_id].events

    def tree(self) -> str:
        """The whole trace as indented lines `name [kind] STATUS`, children in start order."""
        spans = self.spans()
        ids = {s.context.span_id for s in spans}
        children: dict[int | None, list[ReadableSpan]] = {}
        for s in spans:
            parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
            children.setdefault(parent, []).append(s)
        lines: list[str] = []

        def walk(parent: int | None, depth: int) -> None:
            for s in children.get(parent, []):
                kind = (s.attributes or {}).get(c.STEP_KIND)
                lines.append(f"{'  ' * depth}{s.name} [{kind}] {s.status.status_code.name}")
                walk(s.context.span_id, depth + 1)

        walk(None, 0)
        return "\n".join(lines)

    def unended(self) -> list[str]:
        return [s.name for s in self.capture.seen.values() if not s.ended]

    def trace_ids(self) -> set[int]:
        return {s.context.trace_id for s in self.spans()}


def make_provider() -> tuple[TracerProvider, Traced]:
    exporter = InMemorySpanExporter()
    capture = CaptureProcessor()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(capture)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, Traced(exporter, capture)


@tool
def slow_add(a: int, b: int) -> int:
    """Adds two numbers, slowly.

    Args:
        a: The first number.
        b: The second number.
    """
    import time

    time.sleep(SLOW_TOOL_SECONDS)
    return a + b


@tool
def divide(a: float, b: float) -> float:
    """Divides a by b.

    Args:
        a: The dividend.
        b: The divisor.
    """
    return a / b


@tool
def lookup(key: str) -> str:
    """Looks a key up.

    Args:
        key: What to look up.
    """
    return {"paris": "sunny", "oslo": "snow"}.get(key, "unknown")
