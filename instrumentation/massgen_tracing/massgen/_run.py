"""One framework tool call: run the user's graph or agent off MassGen's event loop and stream its steps,
taken live from the span processor, as MassGen tool output; the framework's answer is the tool result.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.guard import internal
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.sinks import CallbackSink
from massgen_tracing.massgen import _pipeline
from massgen_tracing.massgen._render import Line, StepRenderer
from massgen_tracing.massgen._scope import CallScope

# After the run returns, how long to wait for the records of steps still ending (async callbacks),
# then for the sink to hand over what it holds. Bounded so a leaked span never holds up the agent.
SETTLE_S = 1.0
DRAIN_S = 1.0

T = TypeVar("T")
_WORK_DONE = object()
_SINK_CLOSED = object()


@dataclass
class Outcome:
    """What a run produced: the answer text, or the error that ended it."""

    answer: str | None = None
    error: BaseException | None = None


# A run starts in the given OpenTelemetry context and returns the answer text.
Starter = Callable[[otel_context.Context], Awaitable[str]]


class _CallStream:
    """The per-call sink: forwards this call's records (and the end of the stream) to the event loop."""

    def __init__(self, scope: CallScope, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]):
        self._scope = scope
        self._loop = loop
        self._queue = queue

    def handle(self, record: StepRecord) -> None:  # on the sink's thread
        if record.span_id in self._scope.members:
            self._put(record)

    def closed(self) -> None:  # on the sink's thread, after its last record
        self._put(_SINK_CLOSED)

    def _put(self, item: Any) -> None:
        # RuntimeError: the loop is gone (MassGen shut down mid-run) and nobody is listening.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)


def in_thread(fn: Callable[[], T], run_ctx: otel_context.Context) -> Awaitable[T]:
    """Run a blocking framework call on its own daemon thread, inside `run_ctx`, as an awaitable.

    Its own thread, not the loop's default executor: a long agent run must not hold a slot MassGen or
    LangChain use for short blocking calls, and a daemon thread never delays the process exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    # The thread sees the caller's context variables (and MassGen's), plus our OpenTelemetry context.
    ctx = contextvars.copy_context()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]  # None only alongside an error

    def work() -> None:
        token = otel_context.attach(run_ctx)
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001  # the user's error travels to the tool's result
            error = exc
        finally:
            otel_context.detach(token)
        with contextlib.suppress(RuntimeError):  # the loop closed while we ran
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=ctx.run, args=(work,), name="massgen-tracing-tool", daemon=True).start()
    return future


async def stream_call(
    framework: str,
    label: str,
    agent_id: str | None,
    start: Starter,
    on_cancel: Callable[[], None] | None = None,
) -> AsyncGenerator[Line | Outcome, None]:
    """Yield display lines while the run goes, then one `Outcome`.

    Tracing problems never stop the run: without a processor the run still happens, just without lines.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    scope = CallScope(agent_id)
    processor: Any = None
    sink: CallbackSink | None = None
    stand_in: Any = None
    with internal("massgen.pipeline"):
        # Importing and instrumenting the framework can take a second: never on MassGen's loop.
        processor = await asyncio.to_thread(_pipeline.ensure_pipeline, framework)
    with internal("massgen.attach"):
        if processor is not None:
            stream = _CallStream(scope, loop, queue)
            sink = CallbackSink(stream.handle, on_close=stream.closed)
            processor.add_sink(sink)
    parent = otel_context.get_current()
    with internal("massgen.stand_in"):
        if processor is not None and not trace.get_current_span(parent).get_span_context().is_valid:
            # MassGen's tracing is off: stand in for its `custom_tool.*` span, so the framework run is
            # still seen as one agent's tool call (and the trace has that agent at its root).
            attributes = {c.GEN_AI_OPERATION: "execute_tool", c.GEN_AI_TOOL_NAME: label,
                          c.OPENINFERENCE_SPAN_KIND: "TOOL"}
            if agent_id:
                attributes[c.AGENT_ID] = agent_id
            stand_in = _pipeline.tracer().start_span(f"execute_tool {label}", context=parent, attributes=attributes)
    run_ctx = scope.context(trace.set_span_in_context(stand_in, parent) if stand_in is not None else parent)

    work = asyncio.ensure_future(start(run_ctx))
    work.add_done_callback(lambda _f: queue.put_nowait(_WORK_DONE))
    renderer = StepRenderer(default_agent=agent_id)
    open_spans: set[str] = set()
    sink_closed = False
    try:
        # Phase 1: the run is going. Phase 2: it returned; collect the steps still ending, then drain.
        phase_deadline: float | None = None
        removed = False
        while True:
            now = time.monotonic()
            if phase_deadline is not None and (now >= phase_deadline or (not open_spans and not removed)):
                if removed or sink is None:
                    break
                # Everything we saw has ended (or the wait is over): let the sink hand over the rest.
                with internal("massgen.detach"):
                    processor.remove_sink(sink, timeout=0)
                removed, phase_deadline = True, now + DRAIN_S
            timeout = _until(renderer.next_due(), phase_deadline, now)
            try:
                item = await asyncio.wait_for(queue.get(), timeout) if timeout is not None else await queue.get()
            except asyncio.TimeoutError:
                item = None
            lines: list[Line] = []
            with internal("massgen.render"):
                if isinstance(item, StepRecord):
                    if item.type == "start":
                        open_spans.add(item.span_id)
                    elif item.type == "end":
                        open_spans.discard(item.span_id)
                    lines = renderer.feed(item, time.monotonic())
                else:
                    lines = renderer.due(time.monotonic())
            for line in lines:
                yield line
            if item is _WORK_DONE:
                phase_deadline = time.monotonic() + SETTLE_S
                if sink is None:
                    break
            elif item is _SINK_CLOSED:
                sink_closed = True
                break
        tail: list[Line] = []
        with internal("massgen.render"):
            tail = renderer.flush()
        for line in tail:
            yield line
        outcome = Outcome()
        try:
            outcome.answer = work.result()
        except Exception as exc:  # noqa: BLE001  # the framework's failure is the tool's result
            outcome.error = exc
        _end_stand_in(stand_in, outcome.error)
        stand_in = None
        yield outcome
    finally:
        if not work.done():  # MassGen stopped listening (agent restarted, run cancelled)
            work.cancel()
            if on_cancel is not None:
                with internal("massgen.cancel"):
                    on_cancel()
        if sink is not None and not sink_closed:
            with internal("massgen.detach"):
                processor.remove_sink(sink, timeout=0)
        if stand_in is not None:
            _end_stand_in(stand_in, None)
        scope.close()


def _until(due: float | None, deadline: float | None, now: float) -> float | None:
    times = [t for t in (due, deadline) if t is not None]
    return max(0.0, min(times) - now) if times else None


def _end_stand_in(span: Any, error: BaseException | None) -> None:
    if span is None:
        return
    with internal("massgen.stand_in_end"):
        if not span.is_recording():  # already ended as abandoned: tracing stopped while it ran
            return
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
