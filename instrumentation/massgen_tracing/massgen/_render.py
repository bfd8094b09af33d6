"""Step records → compact one-line messages for MassGen's displays, in arrival order.

Shared by the framework tools (lines streamed as tool output) and `DisplaySink` (lines sent straight to
a display). Token deltas are coalesced per step so a streaming model call costs a line or two, not one
per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.console import UNICODE, describe_event, format_duration
from massgen_tracing._internal.records import StepRecord

# MassGen's content types: the simple display prints `tool` with 🔧 and `status` with 📊; the textual
# display files them into different cards. Streamed model text is the agent "thinking".
ContentType = Literal["thinking", "tool", "status"]

DELTA_INTERVAL_S = 0.5  # at most one delta line per model call per interval
DETAIL_CHARS = 100  # longest quoted text (arguments, results, streamed text) in a line
_TOOL_KINDS = ("tool", "final_answer")
# MassGen's displays strip each line, so indentation is drawn with a visible mark.
_INDENT = "· "


@dataclass(frozen=True)
class Line:
    """One message for a display: its text, MassGen content type and the agent its step runs for."""

    text: str
    content_type: ContentType
    agent_id: str | None
    record: StepRecord


@dataclass
class _Step:
    depth: int
    label: str
    kind: str | None
    agent_id: str | None
    raised: bool = False  # an exception event was shown: the failure line need not repeat it


@dataclass
class _Pending:
    """Deltas of one model call not yet shown."""

    since: float
    text: str
    chunks: int
    record: StepRecord = field(repr=False)


def _flat(text: str, limit: int = DETAIL_CHARS) -> str:
    # One display line per message: no newlines, no runs of whitespace, bounded length.
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _label(rec: StepRecord) -> str:
    """`langgraph run my_graph`, `node agent #1`, `action my_agent #2/5`, `llm gpt-4o`, `tool search`."""
    kind = rec.kind or "step"
    name = rec.step_name
    if kind == "run":
        return f"{rec.framework} run {name}" if rec.framework else f"run {name}"
    text = kind if name == kind else f"{kind} {name}"
    if rec.index is not None:
        text += f" #{rec.index}"
        budget = _int(rec.attributes.get(c.STEP_MAX))
        if budget is not None:
            text += f"/{budget}"
    return text


def _content_type(kind: str | None) -> ContentType:
    return "tool" if kind in _TOOL_KINDS else "status"


class StepRenderer:
    """Feed records in order, get display lines back; call `due()` now and then and `flush()` at the end.

    Not thread-safe: one renderer per consumer. `now` is `time.monotonic()` seconds.
    """

    def __init__(self, *, delta_interval: float | None = None, default_agent: str | None = None):
        self._interval = DELTA_INTERVAL_S if delta_interval is None else delta_interval
        self._default_agent = default_agent
        self._steps: dict[str, _Step] = {}
        self._pending: dict[str, _Pending] = {}  # span_id -> deltas, in arrival order

    # --- feeding ---------------------------------------------------------------------------------------
    def feed(self, rec: StepRecord, now: float) -> list[Line]:
        if rec.type == "event" and rec.event == c.EVENT_DELTA:
            return self._delta(rec, now)
        # Anything else is shown after the text streamed before it, so the display keeps the real order.
        lines = self.flush()
        if rec.type == "start":
            lines.append(self._start(rec))
        elif rec.type == "event":
            lines.append(self._event(rec))
        else:
            lines.append(self._end(rec))
        return lines

    def next_due(self) -> float | None:
        """When the oldest pending delta text should be shown (monotonic seconds), or None."""
        return min((p.since + self._interval for p in self._pending.values()), default=None)

    def due(self, now: float) -> list[Line]:
        """Lines for delta text that has waited a full interval."""
        ready = [sid for sid, p in self._pending.items() if now - p.since >= self._interval]
        return [self._delta_line(sid, self._pending.pop(sid)) for sid in ready]

    def flush(self) -> list[Line]:
        """Lines for all pending delta text."""
        pending, self._pending = self._pending, {}
        return [self._delta_line(sid, p) for sid, p in pending.items()]

    # --- one record ------------------------------------------------------------------------------------
    def _step(self, rec: StepRecord) -> _Step:
        step = self._steps.get(rec.span_id)
        if step is None:  # a step that started before we were watching
            step = _Step(0, _label(rec), rec.kind, self._agent_of(rec))
        return step

    def _agent_of(self, rec: StepRecord) -> str | None:
        agent = rec.attributes.get(c.AGENT_ID)
        return agent if isinstance(agent, str) and agent else self._default_agent

    def _line(self, step: _Step, depth: int, text: str, content_type: ContentType, rec: StepRecord) -> Line:
        return Line(_INDENT * depth + text, content_type, step.agent_id, rec)

    def _start(self, rec: StepRecord) -> Line:
        parent = self._steps.get(rec.parent_step_id or rec.parent_span_id or "")
        step = _Step(parent.depth + 1 if parent is not None else 0, _label(rec), rec.kind, self._agent_of(rec))
        self._steps[rec.span_id] = step
        text = f"▶ {step.label}"
        if rec.kind in _TOOL_KINDS:
            args = rec.attributes.get(c.TOOL_ARGUMENTS)
            if isinstance(args, str) and args:
                text += f" {_flat(args)}"
        return self._line(step, step.depth, text, _content_type(rec.kind), rec)

    def _event(self, rec: StepRecord) -> Line:
        step = self._step(rec)
        if rec.event == c.EVENT_EXCEPTION:
            step.raised = True
        text = f"{UNICODE.event} {step.label}: {describe_event(rec, UNICODE, DETAIL_CHARS)}"
        content_type: ContentType = "tool" if rec.event == c.EVENT_TOOL_DECISION else _content_type(step.kind)
        return self._line(step, step.depth + 1, text, content_type, rec)

    def _end(self, rec: StepRecord) -> Line:
        step = self._steps.pop(rec.span_id, None) or self._step(rec)
        duration = rec.duration_ns
        took = f" {format_duration(duration)}" if duration is not None else ""
        if rec.status == "error":
            text = f"✗ {step.label} failed{took}"
            if rec.error and not step.raised:
                # Some instrumentations append the traceback to the status: its first line says it.
                text += f": {_flat(rec.error.split('Traceback (most recent call last)')[0])}"
        elif rec.attributes.get(c.INTERRUPTED) is True:
            text = f"⏸ {step.label} interrupted{took}"
        elif rec.attributes.get(c.ABANDONED) is True:
            text = f"⏹ {step.label} abandoned{took}"
        else:
            text = f"✓ {step.label}{took}" + self._outcome(rec)
        return self._line(step, step.depth, text, _content_type(step.kind), rec)

    @staticmethod
    def _outcome(rec: StepRecord) -> str:
        a = rec.attributes
        if rec.kind == "llm":
            tin, tout = _int(a.get(c.GEN_AI_INPUT_TOKENS)), _int(a.get(c.GEN_AI_OUTPUT_TOKENS))
            if tin is not None or tout is not None:
                return f" · tokens in={tin if tin is not None else '?'} out={tout if tout is not None else '?'}"
            return ""
        if rec.kind in _TOOL_KINDS:
            result = a.get(c.TOOL_RESULT)
            if result is None:
                result = a.get(c.OUTPUT_VALUE)
            return f" → {_flat(str(result))}" if result is not None else ""
        return ""

    # --- token deltas ----------------------------------------------------------------------------------
    def _delta(self, rec: StepRecord, now: float) -> list[Line]:
        text = rec.attributes.get(c.DELTA_TEXT)
        chunks = rec.chunks
        pending = self._pending.get(rec.span_id)
        if pending is None:
            self._pending[rec.span_id] = _Pending(now, str(text or ""), chunks, rec)
            return []
        pending.text += str(text or "")
        pending.chunks += chunks
        if now - pending.since >= self._interval:
            return [self._delta_line(rec.span_id, self._pending.pop(rec.span_id))]
        return []

    def _delta_line(self, span_id: str, pending: _Pending) -> Line:
        step = self._steps.get(span_id) or self._step(pending.record)
        # Show the newest text: it is what the model is saying now.
        flat = " ".join(pending.text.split())
        shown = flat if len(flat) <= DETAIL_CHARS else "…" + flat[-(DETAIL_CHARS - 1):]
        tokens = f" ({pending.chunks} chunks)" if pending.chunks > 1 else ""
        return self._line(step, step.depth + 1, f"✎ {step.label}: \"{shown}\"{tokens}", "thinking", pending.record)
