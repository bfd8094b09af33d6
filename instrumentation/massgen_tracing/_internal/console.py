"""Terminal views of step records: the `StepTree` state model, a plain line sink and a rich live view.

Both sinks run on the dispatcher's thread; the live view renders only on rich's refresh, never per record.
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import io
import logging
import os
import sys
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_MESSAGE, EXCEPTION_TYPE
from rich.ansi import AnsiDecoder
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text
from rich.tree import Tree

from massgen_tracing._internal import convention as c
from massgen_tracing._internal import guard
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.sinks import Sink

Status = Literal["running", "ok", "error", "interrupted", "abandoned"]
Clock = Callable[[], int]  # nanoseconds since the epoch, like `time.time_ns` and the records' times

CONSOLE_MODES: tuple[str, ...] = ("auto", "live", "plain", "off")
MAX_FINISHED_RUNS = 20
MAX_CHILDREN = 200  # finished children kept in memory per step; older ones are counted, not kept
LIVE_CHILDREN = 6  # finished children shown per step in the live region (running ones always are)
LIVE_RUNS = 8  # running runs shown in the live region
PRINT_CHILDREN = 50  # children per step in a finished run's tree printed above the live region
TAIL_CHARS = 240  # streamed text kept per llm step
DETAIL_CHARS = 80  # a plain line's quoted text or message
LIVE_TAIL_CHARS = 40
LIVE_MESSAGE_CHARS = 60


@dataclass(frozen=True)
class Symbols:
    """Status icons and punctuation, with an ASCII set for streams that cannot encode the others."""

    start: str
    ok: str
    error: str
    event: str
    interrupted: str
    abandoned: str  # the consumer stopped iterating a streamed run before it finished
    arrow: str
    ellipsis: str

    def end_icon(self, status: str) -> str:
        """The icon of a step that ended with `status` (anything but the known failures is ok)."""
        if status == "error":
            return self.error
        if status == "interrupted":
            return self.interrupted
        if status == "abandoned":
            return self.abandoned
        return self.ok


UNICODE = Symbols(start="▶", ok="✓", error="✗", event="⋯", interrupted="⏸", abandoned="⏹", arrow="→",
                  ellipsis="…")
ASCII = Symbols(start=">", ok="+", error="!", event=".", interrupted="=", abandoned="-", arrow="->",
                ellipsis="...")


def symbols_for(encoding: str | None) -> Symbols:
    """The unicode symbols if `encoding` can encode them, else the ASCII ones."""
    sample = "".join(vars(UNICODE).values())
    try:
        sample.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


_NO_COUNTS: Counter[str] = Counter()
# Read for every record on the sink's thread: module globals, not attribute lookups on `c` each time.
_STEP_KIND, _STEP_NAME, _FRAMEWORK, _STEP_INDEX = c.STEP_KIND, c.STEP_NAME, c.FRAMEWORK, c.STEP_INDEX
_STEP_MAX, _RUN_INPUT, _TOOL_ARGUMENTS = c.STEP_MAX, c.RUN_INPUT, c.TOOL_ARGUMENTS
_INTERRUPTED, _ABANDONED, _ROUTE = c.INTERRUPTED, c.ABANDONED, c.ROUTE
_IN_TOKENS, _PROMPT_TOKENS = c.GEN_AI_INPUT_TOKENS, c.LLM_TOKEN_PROMPT
_OUT_TOKENS, _COMPLETION_TOKENS = c.GEN_AI_OUTPUT_TOKENS, c.LLM_TOKEN_COMPLETION


class StepNode:
    """One step as the console sees it. Mutated only under its `StepTree`'s lock.

    Not a dataclass: one is made for every step, and a dataclass's `__init__` assigns all 30 fields
    (1.5 µs a step on the sink's thread); this one assigns the identity, and every other field reads its
    class-level default until the step sets it. Defaults are immutable or shared and never mutated.
    """

    framework: str | None = None
    parent: StepNode | None = None
    top: StepNode | None = None  # the root above this step, set with its parent (None for a root itself)
    depth: int = 0
    index: int | None = None
    max_steps: int | None = None
    task: str | None = None
    arguments: str | None = None
    end_ns: int | None = None
    status: Status = "running"
    error: str | None = None
    exception: str | None = None
    input_tokens: int | None = None  # from the step's own end attributes
    output_tokens: int | None = None
    sum_input_tokens: int | None = None  # over the llm steps below this one
    sum_output_tokens: int | None = None
    text_tail: str = ""
    chunks: int = 0
    progress: tuple[int | None, int | None, str | None] | None = None
    last_event: StepRecord | None = None  # the latest event other than deltas and progress
    route: Sequence[str] = ()  # replaced, never appended to
    dropped_events: int = 0
    last_index: int | None = None  # runs: highest step index seen among their own steps
    elided: int = 0  # finished children dropped from memory (or never shown)
    # Runs and roots: steps below, by kind. Other steps share one empty Counter, never written (a Counter
    # per step cost as much as the rest of the node): `_create` gives a step its own on its first count.
    step_counts: Counter[str] = _NO_COUNTS

    def __init__(self, span_id: str, trace_id: str, kind: str, name: str, start_ns: int) -> None:
        self.span_id = span_id
        self.trace_id = trace_id
        self.kind = kind
        self.name = name
        self.start_ns = start_ns
        self.children: list[StepNode] = []

    def __repr__(self) -> str:
        return f"StepNode({self.kind} {self.name!r}, span {self.span_id}, {self.status})"

    @property
    def root(self) -> StepNode:
        return self.top or self

    @property
    def tokens(self) -> tuple[int | None, int | None]:
        """A model call's own token usage; for any other step the sum over the model calls below it
        (managed agents' included), or its own figures when none below reported any. (A smolagents run
        reports only its own agent's calls: shown as is, a run showed fewer tokens than its steps.)"""
        if self.kind != "llm" and (self.sum_input_tokens is not None or self.sum_output_tokens is not None):
            return self.sum_input_tokens, self.sum_output_tokens
        return self.input_tokens, self.output_tokens

    def elapsed_ns(self, now_ns: int) -> int:
        end = self.end_ns if self.end_ns is not None else now_ns
        return max(0, end - self.start_ns)


# --- small formatting helpers shared by both views -----------------------------------------------------


def format_duration(ns: int) -> str:
    """`52ms`, `1.2s`, `2m03s`, `1h05m`: short, and stable for a given duration."""
    if ns < 999_500_000:  # whole milliseconds, half to even (as `f"{ns / 1e6:.0f}"`, in integers: 3x faster)
        ms, rest = divmod(ns, 1_000_000)
        if rest > 500_000 or (rest == 500_000 and ms & 1):
            ms += 1
        return f"{ms}ms"
    s = ns / 1e9
    if s < 60:
        return f"{s:.1f}s"
    total = int(s)
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"


_ESCAPES: dict[int, str] = {i: f"\\x{i:02x}" for i in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def _error_head(description: str) -> str:
    """A status description's first meaningful line: OpenInference puts whole tracebacks there."""
    head = description.split("Traceback (most recent call last)", 1)[0].strip() or description.strip()
    return head.splitlines()[0] if head else head


def _escape(text: str) -> str:
    # One line per record, and no terminal control sequences from model output or user data.
    return text.translate(_ESCAPES)


def _printable(text: str) -> str:
    """`text` itself when nothing in it needs escaping (nearly always: one C call), else `_escape(text)`.
    For names (graph, node, tool, model), which users choose freely: a newline or an escape sequence in
    one broke a plain line in two or reached the terminal."""
    return text if text.isprintable() else _escape(text)


def _clip(text: str, limit: int, ellipsis: str) -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(ellipsis))] + ellipsis


def _clip_left(text: str, limit: int, ellipsis: str) -> str:
    return text if len(text) <= limit else ellipsis + text[len(text) - max(0, limit - len(ellipsis)):]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _int_of(get: Callable[[str], Any], key: str, fallback: str) -> int | None:
    """The int under `key`, else under `fallback`; absent keys cost a lookup, no conversion (most steps
    carry no token counts at all)."""
    v = get(key)
    if v is not None and (n := _int(v)) is not None:
        return n
    v = get(fallback)
    return _int(v) if v is not None else None


def _str(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def _str_list(v: Any) -> list[str]:
    """Route targets (node names), each printable."""
    if isinstance(v, str):
        return [_printable(v)] if v else []
    if isinstance(v, (list, tuple)):
        return [_printable(str(x)) for x in v]
    return []


def _add(total: int | None, v: int | None) -> int | None:
    if v is None:
        return total
    return v if total is None else total + v


def label(node: StepNode) -> str:
    """`langgraph run my_graph`, `node agent #1`, `action my_agent #3/20`, `llm gpt-4o`."""
    if node.kind == "run":
        return f"{node.framework} run {node.name}" if node.framework else f"run {node.name}"
    text = node.kind if node.name == node.kind else f"{node.kind} {node.name}"
    if node.index is not None:
        text += f" #{node.index}"
        if node.max_steps is not None:
            text += f"/{node.max_steps}"
    return text


def format_tokens(node: StepNode) -> str:
    tin, tout = node.tokens
    parts = []
    if tin is not None:
        parts.append(f"in={tin}")
    if tout is not None:
        parts.append(f"out={tout}")
    return " ".join(parts)


def format_progress(node: StepNode, sym: Symbols = UNICODE) -> str:
    """`step 3/20 message` from a progress event, or for a run from its latest step index and budget."""
    if node.progress is not None:
        cur, total, msg = node.progress
        parts = []
        if cur is not None:
            parts.append(f"step {cur}/{total}" if total is not None else f"step {cur}")
        if msg:
            parts.append(_clip(_escape(msg), LIVE_MESSAGE_CHARS, sym.ellipsis))
        return " ".join(parts)
    if node.kind == "run" and node.last_index is not None:
        if node.max_steps is not None:
            return f"step {node.last_index}/{node.max_steps}"
        return f"step {node.last_index}"
    return ""


def describe_event(record: StepRecord, sym: Symbols, limit: int = DETAIL_CHARS) -> str:
    """One short phrase for a span event: `route → tools`, `retry 2: boom`, `step 3/20 Thinking`."""
    a = record.attributes if isinstance(record.attributes, dict) else {}
    name = record.event or "event"
    if name == c.EVENT_DELTA:
        text = _clip(_escape(_str(a.get(c.DELTA_TEXT)) or ""), limit, sym.ellipsis)
        chunks = record.chunks
        return f'"{text}"' + (f" ({chunks} chunks)" if chunks > 1 else "")
    if name == c.EVENT_PROGRESS:
        cur, total = _int(a.get(c.PROGRESS_CURRENT)), _int(a.get(c.PROGRESS_TOTAL))
        msg = _str(a.get(c.PROGRESS_MESSAGE))
        parts = []
        if cur is not None:
            parts.append(f"step {cur}/{total}" if total is not None else f"step {cur}")
        if msg:
            parts.append(_clip(_escape(msg), limit, sym.ellipsis))
        return " ".join(parts) or "progress"
    if name == c.EVENT_TOOL_DECISION:
        tool = _printable(_str(a.get(c.TOOL_CALL_NAME)) or "?")
        args = _str(a.get(c.TOOL_CALL_ARGUMENTS))
        return _clip(f"calls {tool}" + (f" {_escape(args)}" if args else ""), limit, sym.ellipsis)
    if name == c.EVENT_RETRY:
        attempt = _int(a.get(c.RETRY_ATTEMPT))
        err = _str(a.get(c.RETRY_ERROR))
        text = "retry" + (f" {attempt}" if attempt is not None else "") + (f": {_escape(err)}" if err else "")
        return _clip(text, limit, sym.ellipsis)
    if name == c.EVENT_ROUTE:
        targets = ", ".join(_str_list(a.get(c.ROUTE_TARGETS))) or "(none)"  # a fan-out that sent nothing
        return _clip(f"route {sym.arrow} {targets}", limit, sym.ellipsis)
    if name == c.EVENT_EXCEPTION:
        return _clip("exception " + _exception_text(a), limit, sym.ellipsis)
    words = {c.EVENT_CUSTOM: "custom", c.EVENT_INTERRUPT: "interrupt", c.EVENT_RESUME: "resume",
             c.EVENT_LOG: "log"}
    if name in words:
        data = _str(a.get(c.LOG_TEXT if name == c.EVENT_LOG else c.CUSTOM_DATA))
        return _clip(words[name] + (f" {_escape(data)}" if data else ""), limit, sym.ellipsis)
    return _clip(_escape(name), limit, sym.ellipsis)


def _exception_text(a: dict[str, Any]) -> str:
    etype, emsg = _str(a.get(EXCEPTION_TYPE)), _str(a.get(EXCEPTION_MESSAGE))
    if etype and emsg:
        return _escape(f"{etype}: {emsg}")
    return _escape(etype or emsg or "error")


# --- the state model ----------------------------------------------------------------------------------


class StepTree:
    """Runs → steps nested by parent, fed with records; thread-safe and bounded.

    A root step (a run, or a step whose run we never saw) that ends is retired: it leaves the running
    runs and joins the last `max_finished_runs` finished ones; older finished runs are forgotten.
    """

    def __init__(
        self,
        *,
        max_finished_runs: int = MAX_FINISHED_RUNS,
        max_children: int = MAX_CHILDREN,
        clock: Clock | None = None,
        follow_clock: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._follow_clock = follow_clock  # False: nobody asks `now()` (the plain view), records skip it
        self._clock: Clock = clock or time.time_ns
        self._max_children = max(1, max_children)
        self._nodes: dict[tuple[str, str], StepNode] = {}  # (trace_id, span_id) → step
        self._running: dict[tuple[str, str], StepNode] = {}  # roots by (trace_id, span_id), in start order
        self._finished: deque[StepNode] = deque()
        self._max_finished = max(0, max_finished_runs)
        self._trace_roots: dict[str, list[StepNode]] = {}
        # "Now" follows the records' clock, ticking on with the local clock between records, so that
        # elapsed times stay right for replays and for hosts whose clock differs from ours.
        self._latest_ns: int | None = None
        self._latest_at: int = 0
        self._last_now = 0  # elapsed times never run backwards when a record arrives late

    def after_fork_in_child(self) -> None:
        self._lock = threading.RLock()  # a thread of the parent may have held it at the fork

    # -- feeding

    def feed(self, record: StepRecord) -> StepNode | None:
        """Apply one record; returns the step it concerns (None if the record is unusable)."""
        with self._lock:
            return self.feed_locked(record)

    def feed_locked(self, record: StepRecord) -> StepNode | None:
        """`feed`, for a caller already holding `lock` (a sink applying a batch under one acquisition)."""
        if not isinstance(record.span_id, str) or not record.span_id:
            return None
        if self._follow_clock:
            t = record.time_ns if isinstance(record.time_ns, int) else 0
            if self._latest_ns is None or t > self._latest_ns:
                self._latest_ns = t
            self._latest_at = self._clock()
        trace_id = record.trace_id
        node = self._nodes.get((trace_id if type(trace_id) is str else str(trace_id), record.span_id))
        kind = record.type
        if node is None:
            node = self._create(record)
        elif kind == "start" and isinstance(record.attributes, dict):
            self._identify(node, record.attributes)
        if kind == "event":
            self._apply_event(node, record)
        elif kind == "end":
            self._apply_end(node, record)
        return node

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def _create(self, record: StepRecord) -> StepNode:
        a = record.attributes if isinstance(record.attributes, dict) else {}
        start = record.time_ns
        if record.type == "end" and isinstance(record.start_time_ns, int):
            start = record.start_time_ns
        # Kind and name as placeholders: `_identify` reads both from the attributes when they are there.
        trace_id = record.trace_id
        node = StepNode(record.span_id, trace_id if type(trace_id) is str else str(trace_id), "step",
                        _printable(str(record.span_name or "?")), start if isinstance(start, int) else 0)
        self._identify(node, a)
        parent = self._resolve_parent(record, node)
        key = (node.trace_id, node.span_id)
        self._nodes[key] = node
        if parent is None:
            self._running[key] = node
            self._trace_roots.setdefault(node.trace_id, []).append(node)
        else:
            node.parent = parent
            node.top = parent.top or parent
            node.depth = parent.depth + 1
            parent.children.append(node)
            kind = node.kind
            run: StepNode | None = None  # the nearest run above
            anc: StepNode | None = parent  # loops, not a generator: this runs for every record
            while anc is not None:
                if anc.kind == "run" or anc.parent is None:
                    counts = anc.step_counts
                    if counts is _NO_COUNTS:
                        counts = anc.step_counts = Counter()
                    counts[kind] = counts.get(kind, 0) + 1  # not `+= 1`: Counter's __missing__ is Python
                    if run is None and anc.kind == "run":
                        run = anc
                anc = anc.parent
            if run is not None and node.index is not None and kind in ("node", "planning", "action"):
                run.last_index = node.index if run.last_index is None else max(run.last_index, node.index)
        return node

    def _identify(self, node: StepNode, a: dict[str, Any], *, texts: bool = True) -> None:
        # Start attributes carry the identity; an end or a late start may fill in what we lacked. Absent
        # keys are skipped before any conversion: this runs for every start and end. `texts=False` (an
        # end) skips the task and the arguments: they show only on the start line, printed already.
        get = a.get
        if (v := get(_STEP_KIND)) is not None and node.kind == "step":
            node.kind = _printable(v if type(v) is str and v else _str(v) or node.kind)
        if (v := get(_STEP_NAME)) is not None:
            node.name = _printable(v if type(v) is str and v else _str(v) or node.name)
        if (v := get(_FRAMEWORK)) is not None:
            fw = v if type(v) is str and v else _str(v) or node.framework
            node.framework = _printable(fw) if fw else fw
        if node.index is None and (v := get(_STEP_INDEX)) is not None:
            node.index = _int(v)
        if node.max_steps is None and (v := get(_STEP_MAX)) is not None:
            node.max_steps = _int(v)
        if not texts:
            return
        if (v := get(_RUN_INPUT)) is not None:
            node.task = _str(v) or node.task
        if (v := get(_TOOL_ARGUMENTS)) is not None:
            node.arguments = _str(v) or node.arguments

    def _resolve_parent(self, record: StepRecord, node: StepNode) -> StepNode | None:
        pid = record.parent_step_id if isinstance(record.parent_step_id, str) else record.parent_span_id
        parent = self._nodes.get((node.trace_id, pid)) if isinstance(pid, str) else None
        if parent is not None and pid != node.span_id:
            return parent
        if node.kind == "run":
            return None
        # The parent is a span we never saw (not a step, or forgotten): hang it under its trace's run.
        roots = self._trace_roots.get(node.trace_id, [])
        for root in reversed(roots):
            if root.kind == "run" and root.status == "running":
                return root
        for root in reversed(roots):
            if root.kind == "run":
                return root
        return None

    def _apply_event(self, node: StepNode, record: StepRecord) -> None:
        a = record.attributes if isinstance(record.attributes, dict) else {}
        name = record.event
        if name == c.EVENT_DELTA:
            text = _str(a.get(c.DELTA_TEXT)) or ""
            node.text_tail = c.join_streamed(node.text_tail, text)[-TAIL_CHARS:]
            node.chunks += record.chunks
            return
        if name == c.EVENT_PROGRESS:
            node.progress = (_int(a.get(c.PROGRESS_CURRENT)), _int(a.get(c.PROGRESS_TOTAL)),
                             _str(a.get(c.PROGRESS_MESSAGE)))
            return
        if name == c.EVENT_EXCEPTION:
            node.exception = _exception_text(a)
        if name == c.EVENT_ROUTE:
            node.route = _str_list(a.get(c.ROUTE_TARGETS))
        node.last_event = record

    def _apply_end(self, node: StepNode, record: StepRecord) -> None:
        a = record.attributes if isinstance(record.attributes, dict) else {}
        self._identify(node, a, texts=False)
        if node.status != "running":
            return  # a duplicate end: keep the first
        get = a.get
        node.end_ns = record.time_ns if isinstance(record.time_ns, int) else node.start_ns
        if isinstance(record.start_time_ns, int):
            node.start_ns = record.start_time_ns
        if record.status == "error":
            node.status = "error"
            node.error = _escape(_error_head(record.error)) if isinstance(record.error, str) and record.error else None
            node.error = node.exception or node.error or "error"
        elif get(_INTERRUPTED) is True:
            node.status = "interrupted"
        elif get(_ABANDONED) is True:
            node.status = "abandoned"
        else:
            node.status = "ok"
        if record.dropped_events and isinstance(record.dropped_events, int):
            node.dropped_events = record.dropped_events
        if (route := get(_ROUTE)) is not None and (route := _str_list(route)):
            node.route = route
        # Most steps carry no token counts: two key tests, no calls, and the class defaults stay.
        tin = _int_of(get, _IN_TOKENS, _PROMPT_TOKENS) if _IN_TOKENS in a or _PROMPT_TOKENS in a else None
        tout = _int_of(get, _OUT_TOKENS, _COMPLETION_TOKENS) if _OUT_TOKENS in a or _COMPLETION_TOKENS in a else None
        if tin is not None or tout is not None:
            node.input_tokens, node.output_tokens = tin, tout
            if node.kind == "llm":
                anc = node.parent
                while anc is not None:
                    anc.sum_input_tokens = _add(anc.sum_input_tokens, tin)
                    anc.sum_output_tokens = _add(anc.sum_output_tokens, tout)
                    anc = anc.parent
        parent = node.parent
        if parent is None:
            self._retire(node)
        elif len(parent.children) > self._max_children:
            self._prune(parent)

    def _prune(self, parent: StepNode) -> None:
        excess = len(parent.children) - self._max_children
        if excess <= 0:
            return
        keep: list[StepNode] = []
        for child in parent.children:
            if excess > 0 and child.status != "running":
                excess -= 1
                parent.elided += 1
                self._forget(child)
            else:
                keep.append(child)
        parent.children = keep

    def _retire(self, root: StepNode) -> None:
        if self._running.pop((root.trace_id, root.span_id), None) is None:
            return
        self._finished.append(root)
        while len(self._finished) > self._max_finished:
            old = self._finished.popleft()
            self._forget(old)
            roots = self._trace_roots.get(old.trace_id)
            if roots is not None:
                roots[:] = [r for r in roots if r is not old]
                if not roots:
                    del self._trace_roots[old.trace_id]

    def _forget(self, node: StepNode) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if self._nodes.get((n.trace_id, n.span_id)) is n:
                del self._nodes[(n.trace_id, n.span_id)]
            stack.extend(n.children)

    # -- reading

    def now(self) -> int:
        """The current time in the records' clock (see `__init__`)."""
        with self._lock:
            if self._latest_ns is None:
                return self._clock()
            now = self._latest_ns + max(0, self._clock() - self._latest_at)
            self._last_now = max(self._last_now, now)
            return self._last_now

    def running_runs(self) -> list[StepNode]:
        with self._lock:
            return list(self._running.values())

    def finished_runs(self) -> list[StepNode]:
        with self._lock:
            return list(self._finished)

    def running_roots_count(self) -> int:
        with self._lock:
            return len(self._running)

    def known(self, trace_id: str, span_id: str) -> bool:
        with self._lock:
            return (trace_id, span_id) in self._nodes

    def renderable(self) -> RenderableType:
        """The live region: every running run as a tree, built afresh each time rich renders it."""
        return _LiveTree(self)

    def render_run(self, root: StepNode, *, sym: Symbols = UNICODE) -> RenderableType:
        """A run's compact tree with every step expanded (for printing a finished run once).

        Drawn as rich's `Tree` draws it, from plain segments: a `Tree` lays out each line through rich's
        text wrapping, ~1.5 ms for a ten-step run, and a program running many short runs prints one per
        run (the live view cost ~5 % more than the plain lines before this)."""
        lines: list[tuple[tuple[int, ...], list[tuple[str, str]]]] = []
        with self._lock:
            self._printed_lines(root, (), sym, self.now(), lines)
        return _PrintedRun(lines)

    def _printed_lines(self, node: StepNode, guides: tuple[int, ...], sym: Symbols, now: int,
                       out: list[tuple[tuple[int, ...], list[tuple[str, str]]]]) -> None:
        out.append((guides, self._parts(node, sym, now, live=False)))
        hidden, shown = self._shown_children(node, PRINT_CHILDREN)
        # Above this step's children, each level of its own guides continues or ends as rich's Tree does.
        above = (*guides[:-1], _SPACE if guides[-1] == _END else _CONTINUE) if guides else ()
        last = len(shown) - 1
        if hidden:
            out.append(((*above, _FORK if shown else _END), [(self._hidden_text(hidden, sym), "dim")]))
        for i, child in enumerate(shown):
            self._printed_lines(child, (*above, _END if i == last else _FORK), sym, now, out)

    def _live_group(self, sym: Symbols) -> Group:
        with self._lock:
            now = self.now()
            runs = list(self._running.values())
            trees: list[RenderableType] = [self._tree(r, sym, now) for r in runs[:LIVE_RUNS]]
            if len(runs) > LIVE_RUNS:
                trees.append(Text(f"{sym.ellipsis} {len(runs) - LIVE_RUNS} more running", style="dim"))
        return Group(*trees)

    def _tree(self, root: StepNode, sym: Symbols, now: int) -> Tree:
        """A running run in the live region. Built under the lock from plain strings, so rich renders it
        later without touching the model."""
        tree = Tree(self._line(root, sym, now), guide_style="dim")
        self._add_children(tree, root, sym, now)
        return tree

    def _add_children(self, tree: Tree, node: StepNode, sym: Symbols, now: int) -> None:
        hidden, shown = self._shown_children(node, LIVE_CHILDREN)
        if hidden:
            tree.add(Text(self._hidden_text(hidden, sym), style="dim", no_wrap=True, overflow="ellipsis"))
        for child in shown:
            branch = tree.add(self._line(child, sym, now))
            # The live region expands only what is still running or failed, to stay small.
            if child.status in ("running", "error"):
                self._add_children(branch, child, sym, now)

    @staticmethod
    def _shown_children(node: StepNode, limit: int) -> tuple[int, list[StepNode]]:
        """(how many children are left out, the children shown): the last `limit`, and any running."""
        shown = node.children
        if len(shown) > limit:
            tail = shown[-limit:]
            shown = [ch for ch in shown[:-limit] if ch.status == "running"] + tail
        return node.elided + len(node.children) - len(shown), shown

    @staticmethod
    def _hidden_text(hidden: int, sym: Symbols) -> str:
        return f"{sym.ellipsis} {hidden} earlier {'step' if hidden == 1 else 'steps'}"

    def _line(self, node: StepNode, sym: Symbols, now: int) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for part, style in self._parts(node, sym, now, live=True):
            text.append(part, style=style)
        return text

    def _parts(self, node: StepNode, sym: Symbols, now: int, live: bool) -> list[tuple[str, str]]:
        """A step's line as (text, rich style) pieces."""
        icon, style = {
            "running": (sym.start, "cyan"),
            "ok": (sym.ok, "green"),
            "error": (sym.error, "bold red"),
            "interrupted": (sym.interrupted, "yellow"),
            "abandoned": (sym.abandoned, "yellow"),
        }[node.status]
        parts = [(icon, style), (" ", ""), (label(node), "bold" if node.parent is None else "")]
        end = now
        if node.status == "running" and not live:
            root = node.root
            end = root.end_ns if root.end_ns is not None else now
        parts.append((f"  {format_duration(node.elapsed_ns(end))}", "dim"))
        progress = format_progress(node, sym)
        if progress:
            parts.append((f"  {progress}", "cyan"))
        tokens = format_tokens(node)
        if tokens:
            parts.append((f"  {tokens}", "magenta"))
        if node.status in ("interrupted", "abandoned"):
            parts.append((f"  {node.status}", "yellow"))
        elif node.route:
            parts.append((f"  {sym.arrow} {', '.join(node.route)}", "dim"))
        elif node.last_event is not None and not (node.status == "error" and node.exception):
            parts.append((f"  {describe_event(node.last_event, sym, LIVE_MESSAGE_CHARS)}", "dim italic"))
        if live and node.status == "running" and node.kind == "llm" and node.text_tail:
            tail = _clip_left(_escape(node.text_tail), LIVE_TAIL_CHARS, sym.ellipsis)
            parts.append((f'  "{tail}"', "green"))
        if node.status == "error" and node.error:
            parts.append((f"  {_clip(node.error, LIVE_MESSAGE_CHARS, sym.ellipsis)}", "red"))
        # Names and routes come from the program: control characters show escaped, as on a plain line (a
        # newline would break the tree, an escape sequence would reach the terminal).
        return [(text if text.isprintable() else _escape(text), style) for text, style in parts]


# rich's Tree guides, by level: under a step that ended the list, under one that did not, a step, the last step.
_SPACE, _CONTINUE, _FORK, _END = range(4)
_GUIDES = ("    ", "│   ", "├── ", "└── ")
_ASCII_GUIDES = ("    ", "|   ", "+-- ", "`-- ")


class _PrintedRun:
    """A finished run's lines, drawn as rich's `Tree(guide_style="dim")` of no-wrap, ellipsis-cut `Text`
    lines draws them (see `StepTree.render_run`)."""

    def __init__(self, lines: list[tuple[tuple[int, ...], list[tuple[str, str]]]]) -> None:
        self._lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        guides = _ASCII_GUIDES if options.ascii_only else _GUIDES
        width = options.max_width
        get_style = console.get_style
        dim = get_style("dim")
        new_line = Segment.line()
        for levels, parts in self._lines:
            guide = "".join([guides[level] for level in levels])
            room = width - cell_len(guide)
            if room <= 0:  # no room for its text: rich's Tree draws no line at all
                continue
            if guide:
                yield Segment(guide, dim)
            last = len(parts) - 1
            for i, (text, style) in enumerate(parts):
                n = cell_len(text)
                if n > room or (n == room and i < last):
                    # Past the width: cut, ending in an ellipsis in the style it cuts (as Text does).
                    yield Segment(set_cell_size(text, room - 1) + "…", get_style(style) if style else None)
                    break
                room -= n
                yield Segment(text, get_style(style) if style else None)
            yield new_line


class _LiveTree:
    """Renders the running runs of a StepTree at render time (rich calls this on each refresh)."""

    def __init__(self, tree: StepTree) -> None:
        self._tree = tree

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._tree._live_group(symbols_for(console.encoding))


# --- the plain sink -----------------------------------------------------------------------------------


class PlainConsoleSink:
    """One line per record, written and flushed at once: for pipes, files, CI logs and dumb terminals.

    `12:00:01.240   ▶ node agent #1` — time, indentation by depth, icon, kind, name, details.
    """

    def __init__(self, stream: IO[str], *, clock: Clock | None = None, show_time: bool = True) -> None:
        self._stream = stream
        self._clock: Clock = clock or time.time_ns
        self._show_time = show_time
        self._tree = StepTree(clock=self._clock, follow_clock=False)
        self._lock = threading.Lock()
        self._broken = False
        self._tagging = False  # runs have overlapped: every line names its run
        # Nested runs (managed agents, subgraphs) open now, and those that ran alongside another run
        # outside their own ancestry (parallel managed agents): those are named on their lines.
        self._nested_open: set[StepNode] = set()
        self._tagged_nested: set[StepNode] = set()
        encoding = getattr(stream, "encoding", None)
        self._encoding = encoding if isinstance(encoding, str) else "utf-8"
        self._sym = symbols_for(self._encoding)
        # Non-UTF streams get unencodable text (model output, names) as backslash escapes, not an error.
        self._transcode = not self._encoding.lower().replace("-", "").replace("_", "").startswith("utf")

    def handle(self, record: StepRecord) -> None:
        self.handle_batch((record,))

    def handle_batch(self, records: Sequence[StepRecord]) -> None:
        """Lines for all of `records`, written with one write and one flush: each write lets the
        program's thread take the GIL back, so a burst costs one hand-over rather than one per line."""
        lines: list[str] = []
        tree = self._tree
        with self._lock:
            if self._broken:
                return
            with tree.lock:  # once per batch, not per record
                for record in records:
                    try:  # per record: one bad record costs its own line only
                        node = tree.feed_locked(record)
                        if node is not None:
                            lines.append(self.format(record, node))
                    except Exception as exc:  # `guard.internal` inlined: its object and calls, once per record
                        if guard.strict():
                            raise
                        guard.report_internal_error("console.plain", exc)
            if lines:
                self._write("\n".join(lines))

    def format(self, record: StepRecord, node: StepNode) -> str:
        """The line for `record` about `node` (already fed to this sink's tree)."""
        # Runs for every record on the sink's thread, holding the GIL the program wants: helpers inlined.
        global _clock_cache, _head_cache
        sym = self._sym
        if self._show_time:
            t = record.time_ns
            if type(t) is not int or t <= 0:
                t = self._clock()
            ms = t // 1_000_000
            cached_ms, head = _head_cache  # one tuple: safe to read and replace from several sink threads
            if cached_ms != ms:  # a burst of records shares its millisecond
                secs, rem = divmod(ms, 1000)
                cached_secs, clock = _clock_cache
                if cached_secs != secs:
                    clock = time.strftime("%H:%M:%S", time.localtime(secs))
                    _clock_cache = (secs, clock)
                head = f"{clock}.{rem:03d} "
                _head_cache = (ms, head)
        else:
            head = ""
        nested_run = node.parent is not None and node.kind == "run"  # rare: a few per run at most
        if nested_run and record.type == "start":
            self._nested_run_starts(node)
        if not self._tagging:
            running = len(self._tree._running)  # lock held
            if running > 1 or (running == 1 and (node.top or node).status != "running"):
                # Several runs at once interleave their lines; a short run tag keeps them apart for grep.
                # From then on every line has one: a run's lines tagged only while another was running
                # read as belonging to whichever run was tagged last.
                self._tagging = True
        if self._tagging:
            tagged = node.top or node
            if self._tagged_nested:  # the nearest run that has a tag of its own: a root, or a nested one
                anc: StepNode | None = node
                while anc is not None and anc.parent is not None and anc not in self._tagged_nested:
                    anc = anc.parent
                if anc is not None:
                    tagged = anc
            head += f"[{tagged.span_id[:6]}] "
        if nested_run and record.type == "end":  # after its own line, which keeps the run's tag
            self._nested_open.discard(node)
            self._tagged_nested.discard(node)
        if node.depth:
            head += "  " * node.depth
        kind = record.type
        if kind == "start":
            line = f"{head}{sym.start} {label(node)}"
            if node.kind == "run" and node.task:
                return f'{line} "{_clip(_escape(node.task), DETAIL_CHARS, sym.ellipsis)}"'
            if node.arguments:  # tool arguments are JSON already: no quotes around them
                return f"{line} {_clip(_escape(node.arguments), DETAIL_CHARS, sym.ellipsis)}"
            return line
        if kind == "event":
            return f"{head}{sym.event} {label(node)} {describe_event(record, sym)}"
        return head + self._end_text(node, sym)

    def _nested_run_starts(self, node: StepNode) -> None:
        """Nested runs alive side by side (parallel managed agents, `Send` to subgraphs) share their root's
        tag and indentation: each gets a tag of its own once another run outside its ancestry is open."""
        ancestors = set()
        anc = node.parent
        while anc is not None:
            ancestors.add(anc)
            anc = anc.parent
        others = [r for r in self._nested_open if r not in ancestors and r.status == "running"]
        self._nested_open.add(node)
        if others:
            self._tagging = True
            self._tagged_nested.add(node)
            self._tagged_nested.update(others)

    @staticmethod
    def _end_text(node: StepNode, sym: Symbols) -> str:
        status = node.status
        text = (f"{sym.ok if status == 'ok' else sym.end_icon(status)} {label(node)} "
                f"{format_duration(max(0, (node.end_ns or node.start_ns) - node.start_ns))}")
        if node.kind == "run" or node.parent is None:
            steps = sum(node.step_counts.values())
            if steps:
                text += f" {steps} step" + ("" if steps == 1 else "s")
        if (node.input_tokens is not None or node.output_tokens is not None
                or node.sum_input_tokens is not None or node.sum_output_tokens is not None):
            tokens = format_tokens(node)
            if tokens:
                text += f" {tokens}"
        if node.route:
            text += f" {sym.arrow} " + ", ".join(node.route)
        if status in ("interrupted", "abandoned"):
            text += f" {status}"
        if node.dropped_events:
            text += f" ({node.dropped_events} events dropped)"
        if status == "error":
            text += " " + _clip(node.error or "error", DETAIL_CHARS, sym.ellipsis)
        return text

    def _write(self, line: str) -> None:
        if self._transcode:
            line = line.encode(self._encoding, "backslashreplace").decode(self._encoding, "replace")
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            # A closed or broken stream (e.g. the pager quit): stop writing rather than fail every record.
            self._broken = True

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's sink thread may have been writing at the fork
        self._tree.after_fork_in_child()


_clock_cache: tuple[int, str] = (-1, "")  # (epoch second, its local HH:MM:SS), shared by the plain sinks
_head_cache: tuple[int, str] = (-1, "")  # (epoch millisecond, its line head `HH:MM:SS.mmm `), the same


# --- the live sink ------------------------------------------------------------------------------------


def _same_terminal(a: Any, b: Any) -> bool:
    """True only if both streams are the very same terminal device; any doubt says False."""
    try:
        fa, fb = a.fileno(), b.fileno()
        return bool(os.isatty(fa) and os.isatty(fb) and os.path.samestat(os.fstat(fa), os.fstat(fb)))
    except Exception:  # noqa: BLE001  # not a real file, closed, or anything odd: do not redirect
        return False


class _HeldLines:
    """The program's complete lines from its stdout and stderr on our terminal, in the order written,
    printed above the live region (one buffer for both streams keeps their lines in order).

    Complete lines are printed at once unless the last ones went out less than `_GAP_S` ago; then they
    wait for the next refresh (at most 1/8 s), so a program printing thousands of lines redraws the
    region a few times a second rather than once per line (it ran 100x slower).
    """

    _GAP_S = 0.05

    def __init__(self, console: Console, print_lock: Any) -> None:
        self._console = console
        # The live region's lock (see `_Live.print_lock`), always taken before `lock`: rich's refresh
        # thread holds it when it calls `drain`, so the other way round could deadlock.
        self._print_lock = print_lock
        self.lock = threading.RLock()  # the buffers only; nothing is printed under it alone
        self.lines: list[str] = []
        self.times: list[int] = []  # when each line was written (time.time_ns, the spans' clock)
        self._last = 0.0
        self._decoder = AnsiDecoder()  # the program's own colours stay colours
        self._printing = threading.local()
        # While the view is paused (another live display runs, or the program waits at input()): text
        # goes straight to the terminal, as without us.
        self.passthrough = False

    # A line waits this long before it is printed on its own, so that the tree of a run that ended before
    # it was written (the sink learns of the end a few milliseconds later) is printed first: a program's
    # `print(graph.invoke(...))` came out above the tree of the run that produced it.
    _HOLD_NS = 200_000_000

    def due(self) -> bool:
        """Under `lock`: complete lines wait, the oldest has waited `_HOLD_NS`, and the last print is long
        enough ago."""
        return (bool(self.lines) and time.time_ns() - self.times[0] >= self._HOLD_NS
                and time.monotonic() - self._last >= self._GAP_S)

    def add(self, line: str, at_ns: int) -> None:
        """Under `lock`: one complete line of the program's, written at `at_ns`."""
        self.lines.append(line)
        self.times.append(at_ns)

    def printing(self) -> bool:
        """True on a thread printing them right now (a write from inside rich: an error report)."""
        return bool(getattr(self._printing, "on", False))

    def emit(self, partial: _StreamProxy | None = None, *, upto_ns: int | None = None, every: bool = False) -> None:
        """Print the waiting lines: those written up to `upto_ns`, or all of them (`every`, or a partial line
        to show: a prompt), or those that have waited `_HOLD_NS`."""
        # One print at a time across threads: rich places each print above the region by moving the
        # cursor up by the height it last drew, so two prints at once both moved up over the same lines
        # and the second erased what the first had just printed (a program's last lines, lost).
        with self._print_lock, self.lock:
            if partial is not None and partial.take_partial():
                every = True
            if not self.lines:
                return
            if not every:
                if upto_ns is None:
                    upto_ns = time.time_ns() - self._HOLD_NS
                cut = bisect.bisect_right(self.times, upto_ns)
                if not cut:
                    return
            else:
                cut = len(self.lines)
            lines = self.lines[:cut]
            del self.lines[:cut], self.times[:cut]
            self._last = time.monotonic()
            self._printing.on = True
            try:
                text = Text("\n").join(self._decoder.decode_line(line) for line in lines)
                with self._console:
                    self._console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)
            except Exception as exc:  # noqa: BLE001  # the program's own print() must never fail by us
                with contextlib.suppress(Exception):  # its lines, as they were, rather than lost
                    self._console.file.write("\n".join(lines) + "\n")
                    self._console.file.flush()
                guard.report_internal_error("console.live.program_output", exc)
            finally:
                self._printing.on = False


class _StreamProxy(io.TextIOBase):
    """The program's stdout or stderr while the live region is on the same terminal: its text, kept
    exactly, is printed above the region instead of through it (text written straight to the terminal
    lands in the region and its next redraw erases it: log lines, warnings, tracebacks).

    Rich's own proxy is not used: it reads a flushed partial line as markup and emoji codes (a program
    printing `[/]` raised MarkupError, `:thumbs_up:` became an emoji), and its `write()` returned 0.
    """

    def __init__(self, held: _HeldLines, file: IO[str]) -> None:
        super().__init__()
        self._held = held
        self._file = file
        self._partial: list[str] = []
        self._broke = False  # a flushed partial line went out as a line of its own
        self._redrawn = False  # the partial line is redrawn in place (it had a carriage return): it waits
        self._cr = False  # the last text written ended with a carriage return

    @property
    def proxied(self) -> IO[str]:
        return self._file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    @property
    def encoding(self) -> Any:  # type: ignore[override]  # the file's, whatever it is
        return getattr(self._file, "encoding", None)

    @property
    def errors(self) -> Any:  # type: ignore[override]
        return getattr(self._file, "errors", None)

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return self._file.isatty()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        held = self._held
        if held.printing() or held.passthrough:  # from inside our own print (rich reporting an error), or paused
            return self._file.write(text)
        with held.lock:
            rest = text
            if self._broke and rest:
                self._broke = False
                if rest[0] == "\n":  # that line's own end: already ended when it was shown
                    rest = rest[1:]
            now = time.time_ns()
            while rest:
                line, newline, rest = rest.partition("\n")
                # A carriage return starts the line over, as on a terminal (a progress bar redrawn in place:
                # tqdm): only what follows the last one is kept, and the line waits for its end. Shown at
                # each flush, every redraw became a line of its own. A "\r\n" line end keeps its line.
                if self._cr and line:  # the last piece ended with "\r", and more text follows: over again
                    self._partial.clear()
                    self._redrawn = True
                self._cr = False
                if "\r" in line:
                    stripped = line.rstrip("\r")
                    self._cr = not newline and len(stripped) < len(line)
                    if self._cr:  # the cursor is back at the line's start: a redraw follows (a prompt never ends so)
                        self._redrawn = True
                    _, cr, line = stripped.rpartition("\r")
                    if cr:
                        self._partial.clear()
                        self._redrawn = True
                if not newline:
                    self._partial.append(line)
                    break
                held.add("".join(self._partial) + line, now)
                self._partial.clear()
                self._redrawn = False
            due = held.due()
        if due:
            held.emit()
        return len(text)

    def take_partial(self, *, redrawn: bool = False) -> bool:
        """Under the buffer's lock: this stream's partial line joins the complete ones, as a line. True if
        there was one. A line redrawn in place (a progress bar) waits for its end, unless `redrawn`."""
        if not self._partial or (self._redrawn and not redrawn):
            return False
        self._redrawn = False
        self._held.add("".join(self._partial), time.time_ns())
        self._partial.clear()
        self._broke = True
        return True

    def flush(self) -> None:
        # A partial line the program flushes (a prompt) is shown at once, with every line before it, as a line
        # of its own; complete lines keep their wait (logging flushes after every record).
        if not self._held.printing():
            self._held.emit(partial=self)

    def flush_all(self) -> None:
        """Everything, now (the view is closing), a progress bar's last state too."""
        if not self._held.printing():
            with self._held.lock:
                self.take_partial(redrawn=True)
            self._held.emit(every=True)


def _repoint_log_handlers(old: Any, new: Any) -> list[logging.StreamHandler[Any]]:
    """Logging handlers writing to `old` write to `new` instead (they keep the stream they were made
    with: `logging.basicConfig()` before the first run took the real stderr). Returns those changed."""
    changed: list[logging.StreamHandler[Any]] = []
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for lg in loggers:
        for handler in getattr(lg, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old and handler not in changed:
                handler.setStream(new)
                changed.append(handler)
    return changed


class _Live(Live):
    """Rich's Live, printing the program's waiting lines before each refresh, and drawing nothing while
    nothing runs: an empty region still cleared its line eight times a second, erasing whatever the
    program wrote straight to the terminal between runs (a prompt before `input()`, a log line)."""

    held: _HeldLines | None = None
    idle: Callable[[], bool] | None = None  # True when no run is running
    _drawn_idle = False  # the region was last drawn with nothing running

    @property
    def print_lock(self) -> Any:
        """Held by whoever prints above the region, and by rich around each refresh: rich's own lock
        (its refresh thread takes it before calling `refresh`), or one of ours if rich has none."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            lock = self._lock = threading.RLock()
        return lock

    def refresh(self) -> None:
        held = self.held
        if held is not None:
            with guard.internal("console.live.stdout"):
                held.emit()
        idle = self.idle is not None and self.idle()
        if idle and self._drawn_idle:
            return
        self._drawn_idle = idle
        super().refresh()


class LiveConsoleSink:
    """A rich `Live` tree of the running runs on stderr; each finished run is printed once above it."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        refresh_per_second: float = 8,
        clock: Clock | None = None,
    ) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.tree = StepTree(clock=clock)
        self._refresh_per_second = refresh_per_second
        self._live: _Live | None = None
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._proxies: list[tuple[str, _StreamProxy]] = []  # ("stdout" | "stderr", its proxy)
        self._handlers: list[logging.StreamHandler[Any]] = []  # logging handlers pointed at a proxy
        self._paused = 0  # pauses in force: another live display running, the program waiting at input()
        self._deferred: list[StepNode] = []  # runs that finished while paused: printed on resuming
        with guard.internal("console.live.watch"):
            self._paused = _register(self)  # from now on: a live display may start before our first record

    def handle(self, record: StepRecord) -> None:
        if self._closed:
            return
        with guard.internal("console.live"):
            node = self.tree.feed(record)
            if not self._started:
                self._start()
            if node is not None and record.type == "end" and node.parent is None:
                with self._lock:
                    if self._paused:  # printed now, it would land in the other display's region
                        self._deferred.append(node)
                        return
                self._print_finished(node)

    def _start(self) -> None:
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            ours = self.console.file
            self.console.file = ours  # pinned: `Console(stderr=True)` would follow sys.stderr into our proxy
            live = _Live(
                self.tree.renderable(),
                console=self.console,
                refresh_per_second=self._refresh_per_second,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            live.idle = self._idle
            live.held = _HeldLines(self.console, live.print_lock)
            if not self._paused:  # (under our lock, as pause() and resume() change it)
                try:
                    live.start()
                except Exception as exc:  # noqa: BLE001  # e.g. another live display (old rich): print runs only
                    guard.report_internal_error("console.live.start", exc)
                    return
                self._install_proxies(live.held)
            self._live = live

    def _install_proxies(self, held: _HeldLines) -> None:
        """Our proxies as sys.stdout / sys.stderr, where those are the very terminal we draw on (anywhere
        else the program's output would land in our stream), unless they are ours already. Also when the
        view resumes: another live display puts back the streams it found when it started, which may
        have been the terminal's own (rich's `Live`, as smolagents streams model output)."""
        ours = self.console.file
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _StreamProxy) or not _same_terminal(stream, ours) or hasattr(
                    stream, "rich_proxied_file"):  # rich's own proxy: another live display is running
                continue
            proxy = _StreamProxy(held, stream)
            self._proxies = [(n, p) for n, p in self._proxies if n != name] + [(name, proxy)]
            setattr(sys, name, proxy)
            if name == "stderr":
                with guard.internal("console.live.logging"):
                    self._handlers = _repoint_log_handlers(stream, proxy)

    def pause(self) -> None:
        """Stop drawing until `resume()`: another live display is running (rich's `Live`: smolagents
        streaming model output), or the program waits at `input()`. Two displays redrawing the same
        terminal garbled both (each frame of the other stayed as a line), and a prompt was erased by our
        next redraw. The region is erased; the program's output goes straight to the terminal."""
        with self._lock:
            self._paused += 1
            live = self._live
            if self._paused > 1 or live is None or self._closed:
                return
        held = live.held
        if held is not None:
            with guard.internal("console.live.stdout"):
                for _, proxy in self._proxies:  # the program's lines so far, above the region
                    proxy.flush_all()
                held.passthrough = True
        with guard.internal("console.live.pause"):
            live.transient = True  # stop() erases the region rather than leave a copy of it behind
            live.stop()

    def resume(self) -> None:
        with self._lock:
            self._paused = max(0, self._paused - 1)
            live = self._live
            if self._paused or live is None or self._closed:
                return
            deferred, self._deferred = self._deferred, []
        with guard.internal("console.live.resume"):
            live.transient = False
            live._drawn_idle = False  # draw afresh
            # Rich would move the cursor up over the region it drew before the pause (erased since) and
            # clear what is there now: the other display's last lines, or the answer typed at input().
            live._live_render._shape = None
            live.start()
            if live.held is not None:
                live.held.passthrough = False
                self._install_proxies(live.held)
        for root in deferred:
            self._print_finished(root)

    def _idle(self) -> bool:
        return self.tree.running_roots_count() == 0

    def _print_finished(self, root: StepNode) -> None:
        renderable = self.tree.render_run(root, sym=symbols_for(self.console.encoding))
        # With a Live active, console.print lands above the live region and the region redraws without
        # the run, which the tree has already retired. One print at a time (see `_HeldLines.emit`).
        live = self._live
        with live.print_lock if isinstance(live, _Live) else contextlib.nullcontext():
            if live is not None and live.held is not None and root.end_ns is not None:
                live.held.emit(upto_ns=root.end_ns)  # what the program wrote before the run ended, first
            self.console.print(renderable)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent may have held these at the fork
        self.tree.after_fork_in_child()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live, self._live = self._live, None
            deferred, self._deferred = self._deferred, []
        _unregister(self)
        if live is not None and live.held is not None:
            live.held.passthrough = False
        for root in deferred:  # finished while paused: printed now, with nothing else drawing
            with guard.internal("console.live.print"):
                self._print_finished(root)
        proxies, self._proxies = self._proxies, []
        handlers, self._handlers = self._handlers, []
        for name, proxy in proxies:
            with guard.internal("console.live.stdout"):
                if getattr(sys, name) is proxy:  # unless the program has since put its own there
                    setattr(sys, name, proxy.proxied)
                for handler in handlers:
                    if handler.stream is proxy:
                        handler.setStream(proxy.proxied)
                proxy.flush_all()  # the program's last lines, above the region's last drawing
        if live is not None:
            # Stopping draws the region a last time (transient=False), leaving running runs on screen.
            with guard.internal("console.live.stop"):
                live.stop()
                if not self.console.is_terminal and self.tree.running_runs():
                    # Rich ends the last drawing without a newline off a terminal; later output needs one.
                    self.console.line()


# --- other live displays and input(): the live views pause ---------------------------------------------

_views: weakref.WeakSet[LiveConsoleSink] = weakref.WeakSet()
_views_lock = threading.Lock()
_pauses = 0  # another live display running now, or input() waiting: the views stay paused
_watching = False


def _register(view: LiveConsoleSink) -> int:
    """Watch for other live displays and input() on `view`'s behalf; returns the pauses in force."""
    global _watching
    with _views_lock:
        _views.add(view)
        if not _watching:
            _watching = True
            with guard.internal("console.live.watch"):
                _watch()
        return _pauses


def _unregister(view: LiveConsoleSink) -> None:
    with _views_lock:
        _views.discard(view)


def _pause_views() -> None:
    global _pauses
    with _views_lock:
        _pauses += 1
        views = list(_views)
    for view in views:
        with guard.internal("console.live.pause"):
            view.pause()


def _resume_views() -> None:
    global _pauses
    with _views_lock:
        _pauses = max(0, _pauses - 1)
        views = list(_views)
    for view in views:
        with guard.internal("console.live.resume"):
            view.resume()


def _watch() -> None:
    """Wrap rich's `Live.start`/`stop` (a live display that is not ours pauses our views while it runs)
    and `input()` (paused while the program waits for its user). Installed once, with the first view."""
    start, stop = Live.start, Live.stop

    def live_start(self: Live, refresh: bool = False) -> None:
        if isinstance(self, _Live) or getattr(self, "_massgen_paused", False):
            return start(self, refresh)
        self._massgen_paused = True  # type: ignore[attr-defined]
        _pause_views()
        try:
            return start(self, refresh)
        except BaseException:
            self._massgen_paused = False  # type: ignore[attr-defined]
            _resume_views()
            raise

    def live_stop(self: Live) -> None:
        try:
            return stop(self)
        finally:
            if getattr(self, "_massgen_paused", False):
                self._massgen_paused = False  # type: ignore[attr-defined]
                _resume_views()

    Live.start = live_start  # type: ignore[method-assign]
    Live.stop = live_stop  # type: ignore[method-assign]

    original_input = builtins.input

    def input(*args: Any) -> str:  # stands in for the builtin
        _pause_views()
        try:
            return original_input(*args)
        finally:
            _resume_views()

    input.__doc__ = original_input.__doc__
    builtins.input = input


# --- choosing a sink ----------------------------------------------------------------------------------


def make_console_sink(mode: str, stream: IO[str] | None = None) -> Sink | None:
    """`auto` (live on a terminal, else plain), `live`, `plain` or `off` (None)."""
    value = mode.strip().lower() if isinstance(mode, str) else mode
    if value not in CONSOLE_MODES:
        raise ValueError(f"console mode {mode!r} is not one of: {', '.join(CONSOLE_MODES)}")
    if value == "off":
        return None
    out: IO[str] = stream if stream is not None else sys.stderr
    if value == "auto":
        value = "live" if _is_tty(out) and os.environ.get("TERM") != "dumb" else "plain"
    if value == "live":
        return LiveConsoleSink(Console(file=out) if stream is not None else Console(stderr=True))
    return PlainConsoleSink(out)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False

