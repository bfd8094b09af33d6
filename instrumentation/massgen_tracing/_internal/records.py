"""Step records: what the live processor hands to sinks, and the JSONL record's line schema.

One record per span start, per span event (token deltas coalesced) and per span end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from massgen_tracing._internal import convention as c

SCHEMA_VERSION = 1
RecordType = Literal["start", "event", "end"]


@dataclass(slots=True)
class StepRecord:
    """A step started, something happened inside it, or it ended.

    `attributes` holds the span's attributes at start (type=start) or at end (type=end), or the
    event's attributes (type=event). Values are already redacted and length-limited.
    """

    type: RecordType
    time_ns: int
    trace_id: str
    span_id: str
    parent_span_id: str | None
    span_name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    event: str | None = None  # event name, type=event only
    count: int = 1  # how many coalesced events this record stands for (token deltas)
    start_time_ns: int | None = None  # type=end: when the step started
    status: Literal["ok", "error", "unset"] | None = None  # type=end only
    error: str | None = None  # type=end with status=error: the status description
    dropped_events: int = 0  # type=end: event records of this step dropped for a slow sink
    # The nearest enclosing *step* (None: no step encloses this one). `parent_span_id` is the span's
    # OpenTelemetry parent, which is often not a step: LangChain runnables, user spans.
    parent_step_id: str | None = None

    # Convenience views of the convention attributes.
    @property
    def framework(self) -> str | None:
        v = self.attributes.get(c.FRAMEWORK)
        return v if isinstance(v, str) else None

    @property
    def kind(self) -> str | None:
        v = self.attributes.get(c.STEP_KIND)
        return v if isinstance(v, str) else None

    @property
    def step_name(self) -> str:
        v = self.attributes.get(c.STEP_NAME)
        return v if isinstance(v, str) else self.span_name

    @property
    def index(self) -> int | None:
        v = self.attributes.get(c.STEP_INDEX)
        return v if isinstance(v, int) else None

    @property
    def chunks(self) -> int:
        """A text delta's share of the model's stream: its `massgen.delta.count` (summed when records
        merged; 0 for text held back for masking and shown later), else one chunk per merged record."""
        n = self.attributes.get(c.DELTA_COUNT)
        return n if isinstance(n, int) and not isinstance(n, bool) else self.count

    @property
    def duration_ns(self) -> int | None:
        if self.type != "end" or self.start_time_ns is None:
            return None
        return self.time_ns - self.start_time_ns

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "type": self.type,
            "time_ns": self.time_ns,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "parent_step_id": self.parent_step_id,
            "span_name": self.span_name,
            "attributes": self.attributes,
        }
        if self.type == "event":
            d["event"] = self.event
            d["count"] = self.count
        if self.type == "end":
            d["start_time_ns"] = self.start_time_ns
            d["status"] = self.status
            d["error"] = self.error
            d["dropped_events"] = self.dropped_events
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepRecord:
        if d.get("v") != SCHEMA_VERSION:
            raise ValueError(f"record schema version {d.get('v')!r} is not supported (expected {SCHEMA_VERSION})")
        attrs = d.get("attributes") or {}
        return cls(
            type=d["type"],
            time_ns=int(d["time_ns"]),
            trace_id=d["trace_id"],
            span_id=d["span_id"],
            parent_span_id=d.get("parent_span_id"),
            span_name=d.get("span_name", ""),
            attributes=dict(attrs),
            event=d.get("event"),
            count=int(d.get("count", 1)),
            start_time_ns=d.get("start_time_ns"),
            status=d.get("status"),
            error=d.get("error"),
            dropped_events=int(d.get("dropped_events", 0)),
            parent_step_id=d.get("parent_step_id"),  # absent in records written before it existed
        )
