"""The live step processor: span start, each span event as it is added, and span end become step
records handed to sinks on background threads, without ever blocking or raising into the program.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Status, StatusCode

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.guard import internal, report_internal_error, strict, weak_hook
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.redact import _MIN_LEN, Redactor, stable_end
from massgen_tracing._internal.sinks import Sink

logger = logging.getLogger("massgen_tracing")
# While records keep coming, a sink thread looks for new ones this often instead of being woken for
# each: bounds added latency to 2 ms (target: p99 <= 5 ms) and wake-ups to 500/s per busy sink.
_POLL_S = 0.002
# ... unless the program keeps the CPU busy (at least _BUSY CPU seconds per second, all threads, since
# the last look): then every record the sink handles is GIL time taken from it, and a record waits for
# the GIL anyway; look every _POLL_BUSY_S instead, in fewer, bigger batches. A sink thread starts each
# batch cold (its code and the records are in the other core's caches): a ReAct run's lines cost it
# ~32 us a record in 10 ms batches (4-6 records), ~17 us in 50 ms ones (15-40), and no less at 100 ms.
# Nobody sees 50 ms on a terminal (the live view redraws every 125 ms). The step there goes through
# _POLL_MID_S: a program that is busy only now and then (a paced one near the line) keeps its records
# within ~10 ms; _POLL_BUSY_S comes after _BUSY_STREAK busy looks in a row.
_POLL_MID_S = 0.010
_POLL_BUSY_S = 0.050
_BUSY = 0.5
_BUSY_STREAK = 3


_CHILD_FLUSH_MS = 1000


def _in_multiprocessing_child() -> bool:
    """True in a process started by `multiprocessing` (fork or spawn); asked once per finished run."""
    mp = sys.modules.get("multiprocessing.process")
    return mp is not None and mp.parent_process() is not None


_REDACTION_FAILED = "[REDACTED:redaction failed]"
# A step's identity (the convention's start attributes): what a span over its attribute limit must keep.
_IDENTITY = frozenset(a.name for a in c.ATTRIBUTES if a.when == "start")


def _mask_all(attrs: Any) -> dict[str, Any]:
    """When redaction itself fails, hide every string rather than risk exporting a secret."""
    return {k: _REDACTION_FAILED if isinstance(v, (str, tuple, list)) else v for k, v in attrs.items()}


class _HeldText:
    """Streamed text of one step not shown yet (see `redact.stable_end`), and what it stands for."""

    __slots__ = ("chunks", "text", "timestamp")

    def __init__(self, text: str, chunks: int, timestamp: int | None) -> None:
        self.text, self.chunks, self.timestamp = text, chunks, timestamp


def _hex_span(span_id: int) -> str:
    return format(span_id, "016x")


def _attrs_of(span: ReadableSpan) -> dict[str, Any] | None:
    """The span's attributes as a plain dict, without copying when the SDK lets us.

    `span.attributes` is a mapping proxy over `BoundedAttributes`, whose Python-level `__iter__` and
    `__getitem__` made copying it the costliest line of record building; its `_dict` is a plain dict.
    Read only, never kept: callers copy what they hold on to.
    """
    store = getattr(span._attributes, "_dict", None)
    if isinstance(store, dict):
        return store
    attrs = span.attributes
    return dict(attrs) if attrs is not None else None


class _SinkWorker:
    """One sink, one queue, one daemon thread: a slow sink delays only itself.

    Event records are bounded (`queue_size`) and dropped, counted, when the sink falls behind;
    start and end records always queue. Token deltas of a step merge into the one still waiting.
    """

    def __init__(self, sink: Sink, queue_size: int, on_drop: Callable[[str], None]):
        self.sink = sink
        self.name = type(sink).__name__
        self._queue_size = queue_size
        self._on_drop = on_drop
        self._q: collections.deque[StepRecord] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._events_queued = 0
        self._open_delta: dict[str, StepRecord] = {}  # span_id -> delta record not yet handed out
        self._busy = False
        self._inflight = 0  # records of the batch being delivered, not yet handed to the sink
        batch_fn = getattr(sink, "handle_batch", None)
        self._batch: Callable[[list[StepRecord]], object] | None = batch_fn if callable(batch_fn) else None
        self._flushers = 0  # flush() calls waiting for the queue to empty
        self._polling = False  # True while the worker looks for records every `_poll_s` by itself
        # True while the worker sleeps until a record comes (set and cleared under `_cond`): the only
        # time a producer needs the lock. Otherwise a record is one append to a deque, atomic on its
        # own, and the program's thread never waits for the worker (which holds `_cond` while it takes
        # a batch, and then wants the GIL the waiting program holds: a convoy on every busy look).
        self._sleeping = False
        self._poll_s = _POLL_S
        self._looked: tuple[float, float] | None = None  # (monotonic, program CPU time) at the last look
        self._busy_looks = 0  # looks in a row that found the program keeping the CPU busy
        self._closing = False
        self._closed = threading.Event()
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self._start_thread()
        if hasattr(os, "register_at_fork"):
            # A forked child has no copy of our thread: give it its own (OTel's batch processor does
            # the same), or its records would pile up unseen and its exit wait for a dead thread.
            os.register_at_fork(after_in_child=weak_hook(self._after_fork_in_child, "processor.after_fork"))

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"massgen-tracing-{self.name}", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # Locks may have been held by threads that do not exist here; records queued before the fork
        # are the parent's to deliver, not ours (they would print twice).
        self._cond = threading.Condition(threading.Lock())
        reset = getattr(self.sink, "after_fork_in_child", None)
        if callable(reset):  # the sink's own locks: the parent's sink thread may have held one mid-write
            with internal(f"sink {self.name} after fork"):
                reset()
        self._q.clear()
        self._open_delta.clear()
        self._events_queued = self._inflight = self._flushers = 0
        self._busy = self._polling = self._sleeping = False
        self._poll_s, self._looked, self._busy_looks = _POLL_S, None, 0
        if self._closing:
            return
        self._closed = threading.Event()
        self._start_thread()

    def put(self, rec: StepRecord) -> None:
        if self._closing:
            return
        if rec.type == "event":
            if rec.event == c.EVENT_DELTA:
                self._put_delta(rec)
                return
            # Counted without the lock (the worker resets it when it takes a batch): the bound is
            # approximate by a record or two under races, which is all a memory bound needs.
            if self._events_queued >= self._queue_size:
                self._drop(rec)
                return
            self._events_queued += 1
        if self._open_delta:
            self._open_delta.pop(rec.span_id, None)  # later deltas must not merge across this record
        self._q.append(rec)
        if self._sleeping:
            # The worker checked the queue and went to sleep under the lock: taking it here means it
            # is asleep by now (or has just seen our record), so this wake-up cannot be lost. While it
            # polls it finds records within _POLL_S, without a hand-over of the GIL per record.
            with self._cond:
                self._cond.notify_all()  # all: a flush() may be waiting on the same condition

    def _put_delta(self, rec: StepRecord) -> None:
        # Under the lock: merging mutates a record in the queue, which must not be one the worker has
        # already taken (it clears `_open_delta` under the same lock when it takes a batch).
        with self._cond:
            if self._closing:
                return
            pending = self._open_delta.get(rec.span_id)
            if pending is not None:
                pa, ra = pending.attributes, rec.attributes
                pa[c.DELTA_TEXT] = c.join_streamed(str(pa.get(c.DELTA_TEXT, "")), str(ra.get(c.DELTA_TEXT, "")))
                pn, rn = pa.get(c.DELTA_COUNT), ra.get(c.DELTA_COUNT)
                if isinstance(pn, int) and isinstance(rn, int):
                    pa[c.DELTA_COUNT] = pn + rn  # chunks of the model's stream, as the merged records say
                pending.count += rec.count
                return
            if self._events_queued >= self._queue_size:
                self._drop(rec)
                return
            self._events_queued += 1
            # Own copy: coalescing mutates it, and other sinks hold the same record.
            rec = dataclasses.replace(rec, attributes=dict(rec.attributes))
            self._open_delta[rec.span_id] = rec
            self._q.append(rec)
            if self._sleeping:
                self._cond.notify_all()

    def _drop(self, rec: StepRecord) -> None:
        self.dropped += 1
        self._on_drop(rec.span_id)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._polling and not self._q and not self._closing:
                    # Records came recently: look again in a moment rather than have every new
                    # burst wake us (each wake-up takes the GIL from the program mid-step).
                    self._cond.wait(self._poll_s)
                if not self._q and not self._closing:
                    self._polling = False  # quiet for a whole poll: sleep until the next record
                    self._looked = None
                    self._sleeping = True
                    while not self._q and not self._closing:
                        self._cond.wait()
                    self._sleeping = False
                if not self._q:
                    break
                self._polling = True
                # Take everything waiting in one go: one lock round-trip and one wake-up per burst of
                # records, not per record (a step's start, events and end often arrive together).
                # One popleft at a time: producers append without the lock, even now.
                q = self._q
                batch = [q.popleft() for _ in range(len(q))]
                self._events_queued = 0
                self._open_delta.clear()  # every delta still open is in this batch now
                self._inflight = len(batch)
                self._busy = True
            try:
                if self._batch is not None and len(batch) > 1:
                    try:
                        self._batch(batch)
                        self.delivered += len(batch)
                    except Exception as exc:  # noqa: BLE001  # a failing sink must never reach the program
                        self.failed += len(batch)
                        report_internal_error(f"sink {self.name}", exc)
                else:
                    for rec in batch:
                        try:
                            self.sink.handle(rec)
                            self.delivered += 1
                        except Exception as exc:  # noqa: BLE001  # see above
                            self.failed += 1
                            report_internal_error(f"sink {self.name}", exc)
                        self._inflight -= 1
            finally:
                with self._cond:
                    self._busy = False
                    self._inflight = 0
                    if self._flushers:
                        self._cond.notify_all()
            self._pace()
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001  # see above
            report_internal_error(f"sink {self.name} close", exc)
        finally:
            self._closed.set()

    def _pace(self) -> None:
        """Choose how long to wait before the next look: `_POLL_S`, or while the program keeps the CPU
        busy `_POLL_MID_S`, then `_POLL_BUSY_S` once it has for `_BUSY_STREAK` looks in a row. The first
        look after a quiet spell always uses `_POLL_S`."""
        # The program's CPU time: the process's, less this thread's own (formatting lines is not the
        # program being busy; counted, it tipped a paced program over the line).
        now = (time.monotonic(), time.process_time() - time.thread_time())
        last, self._looked = self._looked, now
        if last is None:
            self._poll_s, self._busy_looks = _POLL_S, 0
            return
        wall = now[0] - last[0]
        busy = wall > 0 and (now[1] - last[1]) >= _BUSY * wall
        self._busy_looks = self._busy_looks + 1 if busy else 0
        if not busy:
            self._poll_s = _POLL_S
        else:
            self._poll_s = _POLL_BUSY_S if self._busy_looks >= _BUSY_STREAK else _POLL_MID_S

    def flush(self, deadline: float) -> bool:
        with self._cond:
            self._flushers += 1
            self._cond.notify_all()  # a worker waiting out its poll takes what is queued now
            try:
                while self._q or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._flushers -= 1
        return True

    def begin_close(self) -> None:
        """Stop taking records; the thread delivers what is queued, then closes the sink."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def close(self, deadline: float) -> bool:
        self.begin_close()
        return self._closed.wait(max(0.0, deadline - time.monotonic()))

    def pending(self) -> int:
        with self._cond:
            return len(self._q) + self._inflight


class LiveStepProcessor(SpanProcessor):
    """Turns step spans (those carrying `massgen.step.kind` at start) into live step records.

    Runs on the program's thread only long enough to copy a few attributes and enqueue; sinks run on
    their own threads. Also masks secrets in every span's attributes and events before exporters see it.
    """

    def __init__(
        self,
        sinks: Iterable[Sink] = (),
        *,
        queue_size: int = 10000,
        max_value_length: int = 16384,
        redactor: Redactor | None = None,
        shutdown_timeout: float = 0.5,
    ):
        self._queue_size = queue_size
        self._max_len = max_value_length
        # Shorter strings need neither masking (no secret is shorter) nor cutting: skipped at once.
        self._short = min(_MIN_LEN, max_value_length + 1)
        self._redactor = redactor
        self._shutdown_timeout = shutdown_timeout
        self._workers: list[_SinkWorker] = []
        self._lock = threading.Lock()
        self._dropped_by_span: dict[str, int] = {}
        self._shut = False
        self._forked = False
        # Called (guarded) after a run ends in a child process and its records are written: `configure()`
        # sends the spans its exporters hold from there (a pool worker is killed without an exit hook).
        self.after_child_run: Callable[[], None] | None = None
        self._start_hooks: list[Callable[[Span, Context | None], None]] = []
        # Open spans inside a step -> that step's span id (a step maps to itself), and open steps
        # -> their start record (its hex ids and parent step serve the end record too). Entries go at
        # span end; plain dict operations, atomic under the GIL, so spans on any thread can start and
        # end without a lock.
        self._enclosing: dict[int, int] = {}
        self._open_steps: dict[int, StepRecord] = {}
        self._last_trace: tuple[int, str] = (0, "")  # the last trace id seen at a step's start, and its hex
        self._held: dict[int, _HeldText] = {}  # span id -> streamed text held back, masked when shown
        self._live: dict[int, Span] = {}  # every span started and not ended yet, in start order
        # Span id -> whether an attribute string is over `max_value_length`, learnt while `_on_ending`
        # masked them (with sinks only): `on_end` then skips its own pass over them.
        self._over_at_end: dict[int, bool] = {}
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=weak_hook(self._reset_lock, "processor.after_fork"))
        for sink in sinks:
            self.add_sink(sink)

    def _reset_lock(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._forked = True  # a forked child: it may well leave with os._exit(), which runs no exit hook
        # The spans open at the fork are the parent's (a pool started inside a node): the parent ends
        # them. Ended again by the child's exit hook, each came out twice, once "abandoned".
        self._live.clear()
        self._held.clear()

    def add_start_hook(self, hook: Callable[[Span, Context | None], None]) -> None:
        """Run `hook(span, parent_context)` at every span start, before the start record is built, so
        attributes it sets are seen by sinks and exporters alike (e.g. the MassGen agent id)."""
        self._start_hooks = [*self._start_hooks, hook]

    # --- sinks ------------------------------------------------------------------------------------
    def add_sink(self, sink: Sink) -> None:
        with self._lock:
            self._workers = [*self._workers, _SinkWorker(sink, self._queue_size, self._count_drop)]

    def remove_sink(self, sink: Sink, timeout: float = 1.0) -> None:
        with self._lock:
            keep = [w for w in self._workers if w.sink is not sink]
            gone = [w for w in self._workers if w.sink is sink]
            self._workers = keep
        deadline = time.monotonic() + timeout
        for w in gone:
            w.flush(deadline)
            w.close(deadline)

    @property
    def sinks(self) -> Sequence[Sink]:
        return [w.sink for w in self._workers]

    def _count_drop(self, span_id: str) -> None:
        with self._lock:
            self._dropped_by_span[span_id] = self._dropped_by_span.get(span_id, 0) + 1

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink: records delivered, event records dropped, sink failures, records waiting."""
        return {w.name: {"delivered": w.delivered, "dropped": w.dropped, "failed": w.failed,
                         "pending": w.pending()} for w in self._workers}

    # --- record building --------------------------------------------------------------------------
    def _clean(self, attrs: Any) -> dict[str, Any]:
        """Copy of a span's start attributes for a record (they change later): masked, length-limited.

        The span's end masks the same strings again for exporters: the redactor's content cache
        answers those without a second scan.
        """
        out = dict(attrs) if attrs else {}
        red = self._redactor
        limit, short = self._max_len, self._short
        changed: list[tuple[str, Any]] = []
        for k, v in out.items():
            if type(v) is str or isinstance(v, str):  # subclasses too: smolagents' AgentText
                if len(v) < short:  # most identity strings
                    continue
                nv = red.redact(v) if red is not None else v
                if len(nv) > limit:
                    nv = self._cut(nv)
                if nv is not v:
                    changed.append((k, nv))
            elif red is not None and isinstance(v, (tuple, list)) and v and isinstance(v[0], str):
                nv = red.value(v)
                if nv is not v:
                    changed.append((k, nv))
        for k, v in changed:
            out[k] = v
        return out

    def _limited(self, attrs: Any) -> dict[str, Any]:
        """Attributes for an end or event record, already masked: `attrs` itself when it is a plain dict
        and no string in it is over `max_value_length`, else a copy with those strings cut.

        Shared, not copied: an ended span's attributes and an added event's are frozen (the SDK refuses
        changes after `end()`, and an event is never changed), and sinks only read records.
        """
        shared: dict[str, Any] = attrs if type(attrs) is dict else dict(attrs) if attrs else {}
        limit = self._max_len
        for v in shared.values():  # a plain loop, no list: nearly every end record has no long string
            if isinstance(v, str) and len(v) > limit:
                break
        else:
            return shared
        long = [k for k, v in shared.items() if isinstance(v, str) and len(v) > limit]
        out = dict(shared)
        for k in long:
            out[k] = self._cut(out[k])
        return out

    def _cut(self, text: str) -> str:
        """`text` cut at `max_value_length`, marked with how much was left out."""
        limit = self._max_len
        if len(text) <= limit:
            return text
        return text[:limit] + f"…[{len(text) - limit} more chars]"

    def _emit(self, rec: StepRecord) -> None:
        for w in self._workers:  # list replaced, never mutated: safe without the lock
            w.put(rec)

    # --- SpanProcessor ----------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for hook in self._start_hooks:
            with internal("processor.start_hook"):
                hook(span, parent_context)
        with internal("processor.on_start"):
            ctx = span.get_span_context()
            span_id = ctx.span_id  # a property: read once (this runs for every span the program starts)
            self._live[span_id] = span
            attrs = _attrs_of(span)
            if attrs is None or (not self._workers and self.after_child_run is None):
                if self._redactor is not None:
                    self._hook_events(span, span_id, None)
                return
            parent = span.parent
            parent_id = parent.span_id if parent is not None else None
            # The nearest step enclosing this span: what a step record calls its parent step.
            enclosing = self._enclosing.get(parent_id) if parent_id is not None else None
            if c.STEP_KIND not in attrs:
                if enclosing is not None:  # children of this span are inside that step too
                    self._enclosing[span_id] = enclosing
                if self._redactor is not None:
                    self._hook_events(span, span_id, None)
                return
            self._enclosing[span_id] = span_id
            if not self._workers:  # no sinks: only which steps enclose which, for `after_child_run`
                if self._redactor is not None:
                    self._hook_events(span, span_id, None)
                return
            try:
                cleaned = self._clean(attrs)
            except Exception as exc:  # never raise into the host, never leak either; events still get hooked
                if strict():
                    raise
                report_internal_error("processor.redact", exc)
                cleaned = _mask_all(attrs)
            # Ids as hex text, formatted once per trace and per step: a step's parent is usually a step.
            trace_id = ctx.trace_id
            last = self._last_trace
            if last[0] == trace_id:
                trace_hex = last[1]
            else:
                trace_hex = format(trace_id, "032x")
                self._last_trace = (trace_id, trace_hex)
            parent_step = None
            if enclosing is not None:
                open_parent = self._open_steps.get(enclosing)
                parent_step = open_parent.span_id if open_parent is not None else _hex_span(enclosing)
            if parent_id is None:
                parent_hex = None
            elif parent_id == enclosing and parent_step is not None:
                parent_hex = parent_step
            else:
                parent_hex = _hex_span(parent_id)
            rec = StepRecord("start", span.start_time or time.time_ns(), trace_hex, _hex_span(span_id),
                             parent_hex, span.name, cleaned, parent_step_id=parent_step)
            self._open_steps[span_id] = rec
            self._hook_events(span, span_id, rec)
            self._emit(rec)

    def _hook_events(self, span: Span, span_id: int, start: StepRecord | None) -> None:
        """Every span event passes through here at the moment it is added (SDK has no event hook).

        Overrides `_add_event` on this span instance only: `add_event` and `record_exception` both
        funnel into it, so nothing is missed and no class is patched.
        """
        original = span._add_event
        processor = self

        def deliver(event: Event) -> None:
            original(event)
            if start is None:
                return
            with internal("processor.event_record"):
                processor._emit(processor._event_record(start, event))

        def _add_event(event: Event) -> None:
            red = processor._redactor
            if red is not None:
                if event.name == c.EVENT_DELTA and processor._hold(span_id, event, red, deliver):
                    return
                if processor._held:
                    processor._release(span_id, red, deliver)  # the text before this event comes first
            redacted = event
            if red is not None and event.attributes:
                try:
                    attrs = processor._clean_event_attrs(event.attributes)
                except Exception as exc:  # never raise into the host, never leak either
                    if strict():
                        raise
                    report_internal_error("processor.event redaction", exc)
                    attrs = _mask_all(event.attributes)
                redacted = Event(event.name, attrs, event.timestamp)
            deliver(redacted)
        # Per-instance hook, see docstring; setattr keeps the type checker out of the SDK's method types.
        setattr(span, "_add_event", _add_event)  # noqa: B010

    def _event_record(self, start: StepRecord, event: Event) -> StepRecord:
        return StepRecord(
            type="event",
            time_ns=event.timestamp or time.time_ns(),
            trace_id=start.trace_id,
            span_id=start.span_id,
            parent_span_id=start.parent_span_id,
            span_name=start.span_name,
            attributes=self._limited(event.attributes),  # masked already
            event=event.name,
            parent_step_id=start.parent_step_id,
        )

    def _hold(self, span_id: int, event: Event, red: Redactor, deliver: Callable[[Event], None]) -> bool:
        """A streamed piece of text: show what can be shown, masked as a whole, and hold back the rest
        (see `redact.stable_end`). False: not a text delta after all, handle it as any event."""
        attrs = event.attributes or {}
        piece = attrs.get(c.DELTA_TEXT)
        if not isinstance(piece, str):
            return False
        n = attrs.get(c.DELTA_COUNT)
        chunks = n if isinstance(n, int) and not isinstance(n, bool) else 1
        held = self._held.pop(span_id, None)
        text = c.join_streamed(held.text, piece) if held is not None else piece
        chunks += held.chunks if held is not None else 0
        cut, shown = -1, ""
        with internal("processor.delta redaction"):
            stable = self._stable_cut(text, red)
            shown = red.redact(text[:stable]) if stable else ""
            cut = stable
        if cut < 0:  # our own failure: hide all of it rather than risk a secret
            cut, shown = len(text), _REDACTION_FAILED
        if cut < len(text):
            self._held[span_id] = _HeldText(text[cut:], 0 if cut else chunks, event.timestamp)
        if cut:
            deliver(Event(c.EVENT_DELTA, {c.DELTA_TEXT: shown, c.DELTA_COUNT: chunks}, event.timestamp))
        return True

    @staticmethod
    def _stable_cut(text: str, red: Redactor) -> int:
        """Where streamed `text` can be cut now (`redact.stable_end`), moved back so as not to fall
        inside a secret already complete: both halves would miss it."""
        cut = stable_end(text)
        if not cut:
            return 0
        found = red.spans(text)
        moved = True
        while moved and cut:
            moved = False
            for begin, end in found:
                if begin < cut < end:
                    cut, moved = begin, True
        return cut

    def _release(self, span_id: int, red: Redactor, deliver: Callable[[Event], None]) -> None:
        """Show the streamed text held back for this span, masked as a whole."""
        held = self._held.pop(span_id, None)
        if held is None:
            return
        text = _REDACTION_FAILED  # unless redaction works: never the text unmasked
        with internal("processor.delta redaction"):
            text = red.redact(held.text)
        deliver(Event(c.EVENT_DELTA, {c.DELTA_TEXT: text, c.DELTA_COUNT: held.chunks}, held.timestamp))

    def _clean_event_attrs(self, attrs: Any) -> dict[str, Any]:
        red = self._redactor
        assert red is not None
        return red.mapping(dict(attrs))

    def _on_ending(self, span: Span) -> None:
        # The span is still ours to edit here (exporters see it only in on_end): mask secrets in the
        # attributes set after start. Events were masked as they were added.
        red = self._redactor
        if red is None:
            return
        if self._held:
            with internal("processor.release delta"):
                self._release_at_end(span, red)
        with internal("processor.redact status"):
            self._mask_status(span, red)
        store = getattr(span._attributes, "_dict", None)
        if store is None:
            return
        if getattr(span._attributes, "dropped", 0):
            with internal("processor.restore identity"):
                self._restore_identity(span, store)
        over = True
        try:
            over = red.mapping_over(store, self._max_len)
        except Exception as exc:  # never raise into the host, never leak either
            if strict():
                raise
            report_internal_error("processor.redact", exc)
            store.update(_mask_all(store))
        if self._workers:
            self._over_at_end[span.get_span_context().span_id] = over

    def _restore_identity(self, span: Span, store: dict[str, Any]) -> None:
        """Put back the step identity the span's attribute limit pushed out.

        A span keeps at most `max_span_attributes` (OTel's default: 128), dropping the oldest first, and
        OpenInference writes ~3 attributes per message of a model call's input: in a long agent run the
        identity set at start went first, and the step had no end record, no `massgen.*` and no
        `openinference.span.kind` in any backend. It goes back in from the start record, in place of the
        oldest other attributes, as the newest entries (and counted as the SDK counts what it drops).
        """
        start = self._open_steps.get(span.get_span_context().span_id)
        if start is None:
            return
        missing = {k: v for k, v in start.attributes.items() if k in _IDENTITY and k not in store}
        if not missing:
            return
        bounded: Any = span._attributes  # the SDK's BoundedAttributes (the caller found its `_dict`)
        limit = getattr(bounded, "maxlen", None)
        if isinstance(limit, int) and limit >= 0:
            excess = len(store) + len(missing) - limit
            if excess > 0:
                old = [k for k in store if k not in _IDENTITY][:excess]
                for k in old:
                    del store[k]
                bounded.dropped += len(old)
        store.update(missing)

    def _release_at_end(self, span: Span, red: Redactor) -> None:
        # The span has ended, so the SDK refuses new events through its own method: the last of its
        # streamed text goes into its event list directly, as its last event, and to the sinks before
        # the step's end record.
        span_id = span.get_span_context().span_id
        if span_id not in self._held:
            return
        start = self._open_steps.get(span_id)
        events: Any = span._events  # the SDK's BoundedList: appends within the span's event limit

        def deliver(event: Event) -> None:
            events.append(event)
            if start is not None:
                self._emit(self._event_record(start, event))

        self._release(span_id, red, deliver)

    @staticmethod
    def _mask_status(span: Span, red: Redactor) -> None:
        # An error's description is the exception's text (OpenInference adds the whole traceback), and
        # exceptions quote secrets as readily as inputs do: "denied for sk-…". Exporters and the end
        # record both read it from the span, so masking it here covers them all.
        status = span._status
        desc = status.description
        if not desc:
            return
        masked = _REDACTION_FAILED  # unless redaction works: never the description unmasked
        with internal("processor.redact status"):
            masked = red.redact(desc)
        if masked is not desc:
            span._status = Status(status.status_code, masked)

    def on_end(self, span: ReadableSpan) -> None:
        with internal("processor.on_end"):
            ctx = span.get_span_context()
            if ctx is None:
                return
            self._live.pop(ctx.span_id, None)
            self._enclosing.pop(ctx.span_id, None)
            start = self._open_steps.pop(ctx.span_id, None)
            over = self._over_at_end.pop(ctx.span_id, True) if self._over_at_end else True
            attrs = _attrs_of(span)
            if attrs is None or c.STEP_KIND not in attrs:
                return
            if not self._workers:
                if self.after_child_run is not None and (self._forked or _in_multiprocessing_child()):
                    parent = span.parent
                    if parent is None or parent.span_id not in self._enclosing:  # a run: see below
                        self.after_child_run()
                return
            if start is not None:  # the ids formatted once, at start
                trace_id, span_id, parent_span_id = start.trace_id, start.span_id, start.parent_span_id
                parent_step = start.parent_step_id
            else:  # a step that started before any sink was added
                parent = span.parent
                trace_id, span_id = format(ctx.trace_id, "032x"), _hex_span(ctx.span_id)
                parent_span_id = _hex_span(parent.span_id) if parent is not None else None
                parent_step = None
            dropped = 0
            if self._dropped_by_span:
                with self._lock:
                    dropped = self._dropped_by_span.pop(span_id, 0)
            status = span.status
            code = status.status_code
            # Identity tests, not a dict lookup: an enum member's hash is a Python-level call.
            state: Literal["ok", "error", "unset"] = "unset"
            error = None
            if code is StatusCode.ERROR:
                state, error = "error", status.description
            elif code is StatusCode.OK:
                state = "ok"
            rec = StepRecord(
                "end", span.end_time or time.time_ns(), trace_id, span_id, parent_span_id, span.name,
                self._limited(attrs) if over else attrs,  # _on_ending masked the span itself
                start_time_ns=span.start_time,
                status=state,
                error=self._cut(error) if error else error,
                dropped_events=dropped,
                parent_step_id=parent_step,
            )
            self._emit(rec)
            if parent_step is None and (self._forked or _in_multiprocessing_child()):
                # `with Pool() as pool:` ends in Pool.terminate(): SIGTERM to every worker, and a child of
                # os.fork() usually leaves with os._exit(): neither runs an exit hook at all. Write a
                # finished run's records before the child's task returns.
                self.force_flush(_CHILD_FLUSH_MS)
                if self.after_child_run is not None:
                    self.after_child_run()  # inside `internal("processor.on_end")`: guarded

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        ok = True
        for w in self._workers:
            ok = w.flush(deadline) and ok
        return ok

    def end_open_spans(self) -> int:
        """End every span still open, newest first; steps among them as abandoned (status unset,
        `massgen.abandoned`). Tracing is stopping (the program is exiting) while they run: a stream the
        program stopped reading but still holds, a daemon thread mid-run. Unended, they would reach
        neither the sinks nor the exporters. Returns how many were ended."""
        ended = 0
        for span in reversed(list(self._live.values())):
            with internal("processor.end_open_spans"):
                if span.end_time is not None:
                    continue
                attrs = _attrs_of(span)
                if attrs is not None and c.STEP_KIND in attrs:
                    span.set_attribute(c.ABANDONED, True)
                span.end()
                ended += 1
        return ended

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        with internal("processor.end_open_spans"):
            self.end_open_spans()  # first: their end records and spans still have somewhere to go
        with internal("processor.shutdown"):
            deadline = time.monotonic() + self._shutdown_timeout
            # All sinks drain in parallel, so one hung sink cannot eat the others' share of the budget.
            for w in self._workers:
                w.begin_close()
            for w in self._workers:
                if not w.close(deadline) and (left := w.pending()):
                    # Its thread may still deliver them before the process is gone: "waiting", not "lost".
                    logger.warning("massgen-tracing: sink %s did not finish within %.1fs at shutdown; "
                                   "%d records were still waiting for it and may be lost", w.name,
                                   self._shutdown_timeout, left)
            dropped = {w.name: w.dropped for w in self._workers if w.dropped}
            if dropped:
                logger.warning("massgen-tracing: event records dropped because a sink fell behind: %s "
                               "(step starts and ends are never dropped)",
                               ", ".join(f"{n}={d}" for n, d in dropped.items()))
