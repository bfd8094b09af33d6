"""The OpenInference LangChain tracer, extended so every LangGraph step span carries the step convention
when it starts and records what happens inside it (tokens, tool decisions, routes, retries, interrupts).
"""

from __future__ import annotations

import asyncio
import logging
import operator
import sys
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from langchain_core.outputs import LLMResult
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from langgraph.errors import GraphBubbleUp, GraphInterrupt, ParentCommand
from openinference.instrumentation import REDACTED_VALUE, TraceConfig

# Private pieces of the OpenInference LangChain tracer (pinned <0.2): we replace its span start/end
# (to pass attributes at start) and reuse its end-time attribute extraction unchanged.
from openinference.instrumentation.langchain._tracer import (
    OpenInferenceTracer,
    _as_utc_nano,
    _record_exception,
)
from openinference.semconv.trace import SpanAttributes
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import Tracer as SDKTracer
from opentelemetry.trace import Span

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.guard import internal, strict
from massgen_tracing._internal.ids import IDS, ids_for
from massgen_tracing._internal.oi_context import context_attributes
from massgen_tracing.langgraph import _attributes as a
from massgen_tracing.langgraph._oi_end import masker, set_important, update_span
from massgen_tracing.langgraph._runs import builders

# LangChain's run builders, making `LiteRun`s instead of pydantic `RunTree`s if they pass their self-check.
_BUILD = builders()

if TYPE_CHECKING:
    from langgraph.callbacks import GraphInterruptEvent, GraphResumeEvent

try:  # LangGraph's graph lifecycle callbacks (interrupt / resume), since langgraph 1.1
    from langgraph.callbacks import GraphCallbackHandler
except ImportError:  # pragma: no cover  # older: interrupts still show, from the nodes that raised them
    GraphCallbackHandler = object  # type: ignore[assignment,misc]  # a neutral base

_OISpan: Any = None
try:  # for the one-pass span start (see `_start_span`); without them we use OITracer.start_span
    from openinference.instrumentation._capture import _capture_span_context
    from openinference.instrumentation._spans import OpenInferenceSpan as _OISpan
except ImportError:  # pragma: no cover  # a future openinference-instrumentation moved them
    pass

logger = logging.getLogger(__name__)

_OI_KIND = {"run": "AGENT", "node": "CHAIN"}


# What the SDK's `Tracer.start_span` reads of its `self` besides `id_generator` and `_is_enabled()`.
_START_SPAN_READS = ("sampler", "resource", "span_processor", "instrumentation_info", "_span_limits",
                     "_instrumentation_scope", "_tracer_metrics")


class _TracerView:
    """The SDK tracer inside an `OITracer`, as the SDK's `Tracer.start_span` reads its `self`.

    `OITracer.start_span` passes the `OITracer` itself (a wrapt proxy) as `self`, for its id generator;
    each of the nine attributes `start_span` reads then costs a proxy lookup (~7 µs per span). This
    view reads them straight from the SDK tracer, each time (a provider may update its tracers'
    configuration), and chooses the id generator where `OITracer.id_generator` would choose
    OpenInference's: ours, as unaffected by the program's `random.seed()` but without a system call per id
    (see `massgen_tracing._internal.ids`).
    """

    __slots__ = ("_oi", "_tracer")

    def __init__(self, oi: Any) -> None:
        self._oi = oi
        self._tracer = oi.__wrapped__

    @property
    def id_generator(self) -> Any:
        return ids_for(self._tracer.id_generator)

    def _is_enabled(self) -> bool:
        enabled: bool = self._tracer._is_enabled()
        return enabled

    def __getattr__(self, name: str) -> Any:  # whatever else a newer SDK's start_span reads
        return getattr(self._tracer, name)


for _name in _START_SPAN_READS:  # each a plain attribute read of the SDK tracer
    setattr(_TracerView, _name, property(operator.attrgetter(f"_tracer.{_name}")))


def _span_starter(oi: Any) -> tuple[Any, Callable[..., Any] | None]:
    """(self, start_span) for starting spans as `OITracer.start_span` does; (oi, None) if it cannot.

    OITracer calls the wrapped tracer's class's `start_span` with the OITracer itself as `self`. When
    that is the SDK's own `Tracer.start_span` (not a subclass's: Logfire's proxy tracer, say, has its
    own) and a `_TracerView` reads everything it needs and picks the same id generator (or ours where
    OpenInference would pick its own), the view stands in for the proxy; otherwise it is exactly OpenInference's call.
    """
    wrapped = getattr(oi, "__wrapped__", None)
    start = getattr(type(wrapped), "start_span", None)
    try:
        if isinstance(wrapped, SDKTracer) and start is SDKTracer.start_span:
            view = _TracerView(oi)
            for name in ("id_generator", *_START_SPAN_READS):  # a tracer built without the SDK's
                getattr(view, name)  # __init__ lacks some
            view._is_enabled()
            chosen = oi.id_generator  # OpenInference's own, or the provider's when that is not the SDK's
            if view.id_generator is chosen or (chosen is oi._self_id_generator and view.id_generator is IDS):
                return view, start
    except Exception:  # noqa: BLE001  # a tracer unlike the SDK's we know: OpenInference's way
        pass
    return oi, start


@dataclass(eq=False)
class GraphHint:
    """Set by the `Pregel.stream`/`astream` hook for the graph run's `on_chain_start`, read by it.

    A holder (not a plain value) so marking it used is seen even from a copied context. The hook sets it
    where `stream()`/`astream()` is called; the run starts where the generator is first iterated, which
    LangGraph itself sometimes does in another context (a subgraph under `astream_events`/`astream_log`
    is consumed in a task made from a context copied before the call), so the hook also hands it to the
    tracer under the run it is called from (`LangGraphTracer.expect_run`).
    """

    name: str
    recursion_limit: int | None
    used: bool = False


#: The graph run about to start in this context (see `GraphHint`).
GRAPH_HINT: ContextVar[GraphHint | None] = ContextVar("massgen_langgraph_hint", default=None)
#: Set by the `BranchSpec._route` hook while a conditional edge runs: the run id of the deciding node.
#: The routing function's own run (a child of that node) gets no span; the decision goes on the node.
ROUTING: ContextVar[UUID | None] = ContextVar("massgen_langgraph_routing", default=None)


@dataclass(eq=False, slots=True)
class _Step:
    """What we keep per LangChain run while its span is open (steps and plain runnables alike)."""

    parent: _Step | None
    run: _Step | None  # the nearest enclosing graph run
    kind: str | None = None  # None: an intermediate runnable, not a step
    span: Span | None = None
    ns: str | None = None  # node: its task's checkpoint namespace, stable across retries
    attempts: dict[str, int] | None = None  # run: attempts per task
    failures: dict[str, str] | None = None  # run: last failure per task
    input_tokens: int = 0  # run: sums over its model calls
    output_tokens: int = 0
    usage: tuple[int | None, int | None] | None = None  # llm
    tool_calls: list[str] | None = None  # llm
    tool_result: str | None = None  # tool
    routes: list[str] | None = None  # node
    resume: Any = None  # run: the Command(resume=...) value it started with
    resumed: bool = False  # run: its `massgen.resume` event is out
    pending_interrupts: list[Any] | None = None  # run: values its nodes interrupted with
    interrupted: bool = False
    control_flow: bool = False  # ended by GraphInterrupt / ParentCommand / sys.exit(0): not a failure
    abandoned: bool = False  # ended by GeneratorExit: the consumer stopped iterating the stream
    cancelled: list[Any] | None = None  # ended by CancelledError: OpenInference's exception event, held back
    parked: list[tuple[_Step, Span, Run]] | None = None  # cancelled children waiting for this step's end
    ended: bool = False

    def nearest_step(self) -> _Step | None:
        s: _Step | None = self
        while s is not None and s.kind is None:
            s = s.parent
        return s


def _after_the_node_body(tags: list[str] | None) -> bool:
    """True for a run a node starts after its own body: a conditional edge's routing function.

    LangGraph runs a node as a sequence: its body is `seq:step:1` (runs made inside the body inherit
    that config) and its writers and branches follow as `seq:step:2`, `3`, ...; only a branch's
    routing function makes a run there. This finds routing functions of graphs compiled before
    instrumentation started, whose branches hold LangGraph's `_route` from before the hook.
    """
    return any(tag.startswith("seq:step:") and tag != "seq:step:1" for tag in tags or ())


class _HeldEvents:
    """Takes what OpenInference's `_record_exception` writes, to add it to the span later (or not)."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[Any] = []

    def record_exception(self, exception: BaseException, attributes: Any = None, **_: Any) -> None:
        self.events.append((None, exception, attributes))

    def add_event(self, name: str, attributes: Any = None, **_: Any) -> None:
        self.events.append((name, None, attributes))


def _write_held(span: Span, events: list[Any] | tuple[()], end_time: int | None) -> str:
    """Add the events a `_HeldEvents` took to `span`, stamped `end_time`; returns a status description
    for them (`CancelledError: ...`, from the last exception among them)."""
    description = "CancelledError"
    for name, exception, attributes in events:
        if exception is not None:
            span.record_exception(exception, attributes, timestamp=end_time)
            description = f"{type(exception).__name__}: {exception}".rstrip(": ")
        else:
            span.add_event(name, attributes, timestamp=end_time)
            if name == "exception" and attributes and attributes.get("exception.type"):  # OpenInference's
                etype = str(attributes["exception.type"]).rsplit(".", 1)[-1]
                message = attributes.get("exception.message")
                description = f"{etype}: {message}" if message else etype
    return description


class LangGraphTracer(OpenInferenceTracer, GraphCallbackHandler):
    """Installed by `LangGraphInstrumentor` in place of OpenInference's tracer (same constructor).

    Differences from its base, all additive: steps start with their convention attributes; the
    callbacks run inline (no thread-pool hop per callback in async graphs, so spans start in order and
    see the caller's context); streamed tokens, tool decisions, routes, retries, custom data and
    interrupts become span events; GraphInterrupt / ParentCommand are control flow, not errors.
    """

    # LangChain runs non-inline sync handlers of async graphs in the default executor, one hop per
    # callback: slower, and a child's start can race its parent's. Our callbacks never block.
    run_inline = True

    # A stream the program still holds at exit (`stream = graph.stream(...)` at module level, then
    # `break`) is closed while the interpreter tears its modules down, after tracing's exit hook has
    # ended its spans as abandoned: LangChain then still calls `on_chain_error`, and on Python 3.13 the
    # datetime work that does there crashed the interpreter (SIGSEGV, exit status -11; untraced: 0).
    # LangChain asks these before every callback: none while the interpreter is finalizing.
    @property
    def ignore_chain(self) -> bool:
        return sys.is_finalizing()

    ignore_llm = ignore_retry = ignore_agent = ignore_retriever = ignore_chat_model = ignore_chain
    ignore_custom_event = ignore_chain

    def __init__(self, tracer: Any, separate_trace_from_runtime_context: bool, *args: Any, **kwargs: Any):
        super().__init__(tracer, separate_trace_from_runtime_context, *args, **kwargs)
        # OpenInference wraps both maps in a lock-guarded proxy; each of our accesses is one dict
        # operation, atomic in CPython, and the proxy costs ~1 µs per access.
        self.run_map = {}
        self._spans_by_run = {}
        self._starter, self._start = _span_starter(tracer)  # see `_start_span`
        config = getattr(tracer, "_self_config", None)  # the OITracer's TraceConfig (content capture)
        self._config: TraceConfig = config if isinstance(config, TraceConfig) else TraceConfig()
        self._hide_deltas = bool(self._config.hide_outputs or self._config.hide_output_text)
        self._steps: dict[UUID, _Step] = {}
        self._tool_inputs: dict[UUID, Any] = {}  # see `_create_tool_run`
        self._expected: dict[UUID, list[GraphHint]] = {}  # see `expect_run`
        self._sum_lock = threading.Lock()

    @property
    def raise_error(self) -> bool:  # type: ignore[override]  # a plain class attribute in LangChain
        # LangChain logs and swallows handler exceptions; under the test suite ours must surface.
        return strict()

    # --- lookups used by the hooks ------------------------------------------------------------------

    def span_of(self, run_id: UUID | None) -> Span | None:
        """The span of a run, or of its nearest ancestor with one (routing functions have none)."""
        if run_id is None:
            return None
        span = self._spans_by_run.get(run_id)
        if span is None:
            step = self._steps.get(run_id)
            while step is not None and step.span is None:
                step = step.parent
            span = step.span if step is not None else None
        return span

    def step_of(self, run_id: UUID | None) -> _Step | None:
        step = self._steps.get(run_id) if run_id is not None else None
        return step.nearest_step() if step is not None else None

    def expect_run(self, parent_run_id: UUID, hint: GraphHint) -> None:
        """A graph run is about to start under this run, wherever its generator will be iterated.

        Kept until a chain of that name starts under it, or until it ends (a stream never iterated).
        """
        if parent_run_id in self._steps:
            hints = self._expected.setdefault(parent_run_id, [])
            if hints:  # drop those a run consumed through the context (a node invoking subgraphs in a loop)
                hints[:] = [h for h in hints if not h.used]
            hints.append(hint)

    def _expected_hint(self, run: Run) -> GraphHint | None:
        hints = self._expected.get(run.parent_run_id) if run.parent_run_id is not None else None
        for hint in hints or ():
            if not hint.used and hint.name == run.name:
                hints.remove(hint)  # type: ignore[union-attr]  # `hints` is the list iterated
                return hint
        return None

    # --- span start / end (replacing OpenInferenceTracer's) -----------------------------------------

    def _start_trace(self, run: Run) -> None:  # type: ignore[override]  # OpenInference's is wrapt-wrapped
        self.run_map[str(run.id)] = run
        tool_inputs = self._tool_inputs.pop(run.id, None) if self._tool_inputs else None
        if context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return
        parent_id = run.parent_run_id
        parent = self._steps.get(parent_id) if parent_id else None
        step = _Step(parent, None if parent is None else parent if parent.kind == "run" else parent.run)
        parent_span = self._spans_by_run.get(parent_id) if parent_id else None  # OpenInference's choice
        attributes: dict[str, Any] | None = None
        name = run.name  # a LangChain run that is not a step keeps its run name
        with internal("langgraph.start_attributes"):
            if parent_id is not None and run.run_type == "chain" and (
                    ROUTING.get() == parent_id or (parent is not None and parent.kind == "node"
                                                   and _after_the_node_body(run.tags))):
                # A conditional edge's routing function: its decision is recorded on the deciding
                # node (`add_route`); a span of its own would only repeat the graph state as input.
                self._steps[run.id] = step
                return
            if parent_span is None:
                parent_span = self.span_of(parent_id)  # under a routing function: its node's span
            attributes = self._classify(run, step, tool_inputs)
            if attributes is not None:  # a step: named by the convention's rule, as in every framework
                name = c.span_name(attributes)
        parent_context: context_api.Context | None
        if parent_span is not None:
            parent_context = trace_api.set_span_in_context(parent_span)
        else:
            # No LangChain parent: the current OpenTelemetry context (a user span, or a runnable's
            # span the hooks attached) is the parent, as in OpenInference.
            parent_context = context_api.Context() if self._separate_trace_from_runtime_context else None
        # The handler may run after the fact: the span starts when the run did.
        span = self._start_span(name, parent_context, _as_utc_nano(run.start_time), attributes)
        step.span = span
        self._spans_by_run[run.id] = span
        self._steps[run.id] = step
        if step.kind == "run" and step.resume is not None:
            with internal("langgraph.resume_event"):
                self._resumed(step)
        if step.kind == "node" and step.run is not None and step.run.attempts and step.ns is not None:
            attempt = step.run.attempts.get(step.ns, 1)
            if attempt > 1:  # a RetryPolicy retry: say so, with what failed last time
                with internal("langgraph.retry_event"):
                    failures = step.run.failures or {}
                    span.add_event(c.EVENT_RETRY, {c.RETRY_ATTEMPT: attempt,
                                                   c.RETRY_ERROR: failures.get(step.ns, "")})

    def _start_span(self, name: str, context: Any, start_time: int, attributes: dict[str, Any] | None) -> Span:
        """`OITracer.start_span` in one pass.

        Its generic path masks the attributes twice and sets them again after creation, which doubled
        the cost of starting a step span; here they are masked once (same `TraceConfig.mask`) and given
        to the SDK at creation, so processors see them in `on_start`. Spans without attributes, and any
        failure of this path, go through `OITracer.start_span` unchanged.
        """
        oi = self._tracer
        if (attributes and _OISpan is not None and self._start is not None
                and not context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY)):
            with internal("langgraph.start_span"):
                config = self._config
                merged = dict(context_attributes())
                merged.update(attributes)
                masked = {}
                mask = masker(config)
                for key, value in merged.items():
                    if key.startswith("massgen."):  # ours: content in them was masked when built
                        masked[key] = value
                    elif (kept := mask(key, value)) is not None:
                        masked[key] = kept
                # As OITracer does: the wrapped tracer's start_span, with the OITracer (or its view) as `self`.
                otel_span = self._start(self._starter, name, context, attributes=masked, start_time=start_time)
                span: Span = _OISpan(otel_span, config=config)
                kind = masked.get(SpanAttributes.OPENINFERENCE_SPAN_KIND)
                if kind is not None:  # bookkept by the wrapper, which re-applies it at end()
                    set_important(span, SpanAttributes.OPENINFERENCE_SPAN_KIND, kind)
                _capture_span_context(span.get_span_context())
                return span
        return oi.start_span(name=name, context=context, start_time=start_time, attributes=attributes)

    def _classify(self, run: Run, step: _Step, tool_inputs: Any = None) -> dict[str, Any] | None:
        """Decide which step this run is and return its start attributes (cheap: no state copies)."""
        md = a.metadata_of(run)
        if run.run_type == "chain":
            hint = GRAPH_HINT.get()
            if hint is not None and not hint.used and hint.name == run.name:
                GRAPH_HINT.set(None)
            elif self._expected:
                hint = self._expected_hint(run)
            if hint is not None and not hint.used and hint.name == run.name:
                hint.used = True
                attrs = a.run_attributes(run, md, hint.recursion_limit, self._config)
                step.kind, step.resume, step.attempts = "run", a.resume_value(run.inputs), {}
                return attrs
            enclosing = step.parent.nearest_step() if step.parent is not None else None
            if a.is_node(run, md, enclosing.ns if enclosing is not None else None):
                ns = str(md.get("langgraph_checkpoint_ns") or run.id)
                attempt = 1
                if step.run is not None and step.run.attempts is not None:
                    attempt = step.run.attempts.get(ns, 0) + 1
                    step.run.attempts[ns] = attempt
                attrs = a.node_attributes(run, md, attempt)
                step.kind, step.ns = "node", ns
                return attrs
        elif run.run_type in ("llm", "chat_model"):
            attrs = a.llm_attributes(run, md)
            step.kind = "llm"
            return attrs
        elif run.run_type == "tool":
            attrs = a.tool_attributes(run, md, self._config, tool_inputs)
            step.kind = "tool"
            return attrs
        return None  # not a step: OpenInference writes its attributes (session.id too) at the end

    def _end_trace(self, run: Run) -> None:  # type: ignore[override]  # OpenInference's is wrapt-wrapped
        self.run_map.pop(str(run.id), None)
        if context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return
        span = self._spans_by_run.pop(run.id, None)
        step = self._steps.pop(run.id, None)
        if self._expected:
            self._expected.pop(run.id, None)  # graph runs it expected that never started
        if step is not None:
            step.ended = True
        if span is None:  # suppressed (a routing function) or never started
            return
        if step is not None and step.cancelled is not None:
            with internal("langgraph.park"):
                # Cancelled: by the consumer abandoning the stream, or by a failure or a timeout. Only
                # the step it runs in knows (it ends after its cancelled children): decide then.
                holder = step.parent
                while holder is not None and holder.span is None:  # routing functions have no span
                    holder = holder.parent
                if holder is not None and not holder.ended:
                    holder.parked = (holder.parked or []) + [(step, span, run)]
                    return
        self._end_span(step, span, run, False)

    def _end_span(self, step: _Step | None, span: Span, run: Run, abandoned: bool) -> None:
        """End a step's span (and those of its cancelled children): abandoned, or as its run record says."""
        if step is not None:
            abandoned = abandoned or step.abandoned
            if step.parked:
                parked, step.parked = step.parked, None
                for child in parked:  # cancelled by what ended this step: abandoned only if it was
                    self._end_span(*child, abandoned)
        end_time = _as_utc_nano(run.end_time) if run.end_time else None
        if step is not None and step.cancelled is not None:
            with internal("langgraph.end_cancelled_children"):
                self._end_cancelled_below(step, abandoned, end_time)
        if span.is_recording():
            if step is not None and step.cancelled and not abandoned:
                with internal("langgraph.cancelled_event"):  # a cancellation that is a failure after all
                    _write_held(span, step.cancelled, end_time)
            try:
                update_span(span, run, status=not abandoned)  # OpenInference's end-time attributes (see `_oi_end`)
            except Exception:  # as OpenInference does: attributes are best effort
                logger.exception("Failed to update span with run data.")
            if step is not None and step.kind is not None:
                with internal("langgraph.end_attributes"):
                    self._finish(step, span, run)
                    if abandoned:
                        span.set_attribute(c.ABANDONED, True)
            span.end(end_time=end_time)
        # else: already ended as abandoned when tracing stopped (the program exited) while it ran

    def _end_cancelled_below(self, step: _Step, abandoned: bool, end_time: int | None) -> None:
        """End the steps still open below a step that ended by cancellation, as it ends.

        A model call cancelled mid-request gets no callback at all (LangChain's `agenerate` awaits a
        `gather` that raises before its `on_llm_error`): under `asyncio.wait_for(graph.ainvoke(...))` or a
        cancelled task its span stayed open after its node and run had ended, until the process exited,
        and was then ended "abandoned" with the wrong duration. The cancellation reached it through its
        node, so it ends the node's way: abandoned with it, or failed with its `CancelledError`.
        """
        below = []
        for run_id, other in self._steps.items():
            anc = other.parent
            while anc is not None and anc is not step:
                anc = anc.parent
            if anc is step and not other.ended and other.span is not None:
                below.append((run_id, other))
        for run_id, other in reversed(below):  # the innermost first
            self._steps.pop(run_id, None)
            self._spans_by_run.pop(run_id, None)
            other.ended = True
            span = other.span
            assert span is not None
            if not span.is_recording():
                continue
            if abandoned or other.abandoned:
                span.set_attribute(c.ABANDONED, True)
            else:
                description = _write_held(span, step.cancelled or (), end_time)
                span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, description))
            span.end(end_time=end_time)

    def _finish(self, step: _Step, span: Span, run: Run) -> None:
        kind = step.kind
        assert kind is not None
        # OpenInference calls any run whose name contains "agent" an AGENT: keep the convention's kind.
        if kind in _OI_KIND:
            set_important(span, SpanAttributes.OPENINFERENCE_SPAN_KIND, _OI_KIND[kind])
        if kind == "llm":
            if step.usage is not None:
                inp, out = step.usage
                usage = {c.GEN_AI_INPUT_TOKENS: inp, c.GEN_AI_OUTPUT_TOKENS: out}
                existing = getattr(span, "attributes", None) or {}
                if c.LLM_TOKEN_PROMPT not in existing:  # OpenInference found none: write ours
                    usage |= {c.LLM_TOKEN_PROMPT: inp, c.LLM_TOKEN_COMPLETION: out,
                              c.LLM_TOKEN_TOTAL: (inp or 0) + (out or 0)}
                span.set_attributes({k: v for k, v in usage.items() if v is not None})
            if step.tool_calls:
                span.set_attribute(c.TOOL_CALLS, step.tool_calls)
        elif kind == "tool":
            if step.tool_result is not None:
                span.set_attribute(c.TOOL_RESULT, a.masked(step.tool_result, self._config.hide_outputs) or "")
        elif kind == "node":
            out = (run.outputs or {}).get("output") if isinstance(run.outputs, Mapping) else None
            targets = a.command_targets(out)
            if targets:  # decided as the node returned: stamped with its end, not with this later moment
                self.add_route(step, targets, at_ns=_as_utc_nano(run.end_time) if run.end_time else None)
        elif kind == "run":
            if step.input_tokens or step.output_tokens:
                span.set_attributes({c.GEN_AI_INPUT_TOKENS: step.input_tokens,
                                     c.GEN_AI_OUTPUT_TOKENS: step.output_tokens})
            if step.pending_interrupts is not None:
                # A top-level run pauses, it does not fail; LangGraph >= 1.1 said so already through
                # on_interrupt (then this is a no-op), older versions only through the nodes.
                self._interrupted(step, step.pending_interrupts)
        if step.interrupted:
            span.set_attribute(c.INTERRUPTED, True)
        if step.control_flow:
            span.set_status(trace_api.StatusCode.OK)

    # --- what happens inside a step -----------------------------------------------------------------

    def add_route(self, step: _Step, targets: list[str], at_ns: int | None = None) -> None:
        """A conditional edge or a `Command(goto=...)` of this step chose where the graph goes next."""
        if step.span is None:
            return
        step.routes = (step.routes or []) + targets
        step.span.add_event(c.EVENT_ROUTE, {c.ROUTE_TARGETS: targets}, timestamp=at_ns)
        step.span.set_attribute(c.ROUTE, step.routes)

    def add_custom(self, run_id: UUID | None, data: Any) -> None:
        """Data a node wrote with `get_stream_writer()`, on the innermost step that is running."""
        step = self.step_of(run_id)
        if step is not None and step.span is not None:
            value = a.masked(a.to_json(data), self._config.hide_outputs)
            step.span.add_event(c.EVENT_CUSTOM, {c.CUSTOM_DATA: value or ""})

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, run_id: UUID,
                         parent_run_id: UUID | None = None, **kwargs: Any) -> Run:
        # Not calling super(): LangChain would also keep every chunk in `run.events`, which nothing
        # here reads. One event per non-empty chunk; the live processor coalesces them.
        with internal("langgraph.delta"):
            span = self._spans_by_run.get(run_id)
            text = a.text_of(token)
            if span is not None and text:
                span.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: REDACTED_VALUE if self._hide_deltas else text,
                                               c.DELTA_COUNT: 1})
        return self.run_map.get(str(run_id))  # type: ignore[return-value]  # callers ignore it

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> Run:
        with internal("langgraph.llm_result"):
            step = self._steps.get(run_id)
            if step is not None and step.kind == "llm":
                self._llm_result(step, response)
        return super().on_llm_end(response, run_id=run_id, **kwargs)

    def _llm_result(self, step: _Step, response: LLMResult) -> None:
        gens = response.generations[0] if response.generations else []
        message = getattr(gens[0], "message", None) if gens else None
        usage = getattr(message, "usage_metadata", None)
        if usage:
            inp, out = usage.get("input_tokens"), usage.get("output_tokens")
        else:
            tu = (response.llm_output or {}).get("token_usage") or {}
            inp, out = tu.get("prompt_tokens"), tu.get("completion_tokens")
        if inp is not None or out is not None:
            step.usage = (inp, out)
            with self._sum_lock:
                r = step.run
                while r is not None:  # a subgraph's model calls count for every enclosing run
                    r.input_tokens += inp or 0
                    r.output_tokens += out or 0
                    r = r.run
        calls = getattr(message, "tool_calls", None) or []
        if calls and step.span is not None:
            hide = self._config.hide_outputs
            for call in calls:
                step.span.add_event(c.EVENT_TOOL_DECISION, {
                    c.TOOL_CALL_NAME: str(call.get("name")),
                    c.TOOL_CALL_ARGUMENTS: a.masked(a.to_json(call.get("args") or {}), hide) or "",
                })
            step.tool_calls = [str(call.get("name")) for call in calls]

    # --- run records: LangChain's builders, making lighter runs (see `_runs`) ----------------------

    _create_chain_run = _BUILD["_create_chain_run"]
    _create_llm_run = _BUILD["_create_llm_run"]
    _create_retrieval_run = _BUILD["_create_retrieval_run"]
    on_chat_model_start = _BUILD["on_chat_model_start"]  # LangChainTracer's, as OpenInference's tracer calls

    def _create_tool_run(self, *args: Any, **kwargs: Any) -> Run:
        # LangChain hands the parsed tool arguments as `inputs`; before langchain-core 1.1 the Run
        # keeps only their str(). Remember the dict for the start attributes (`_classify`).
        run: Run = _BUILD["_create_tool_run"](self, *args, **kwargs)
        inputs = kwargs.get("inputs")
        if isinstance(inputs, Mapping):
            self._tool_inputs[run.id] = inputs
        return run

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> Run:
        with internal("langgraph.tool_result"):
            step = self._steps.get(run_id)
            if step is not None and step.kind == "tool":
                step.tool_result = a.tool_result(output)
        return super().on_tool_end(output, run_id=run_id, **kwargs)

    def on_chain_error(self, error: BaseException, *args: Any, run_id: UUID, **kwargs: Any) -> Run:
        if isinstance(error, GraphBubbleUp) or c.clean_exit(error):
            with internal("langgraph.control_flow"):
                self._control_flow(run_id, error)
            # Skip OpenInference's `exception` event: an interrupt or a Command is not a failure.
            return BaseTracer.on_chain_error(self, error, *args, run_id=run_id, **kwargs)
        if self._stopped(run_id, error):
            return BaseTracer.on_chain_error(self, error, *args, run_id=run_id, **kwargs)
        with internal("langgraph.node_failure"):
            step = self._steps.get(run_id)
            if step is not None and step.kind == "node" and step.run is not None and step.ns is not None:
                if step.run.failures is None:
                    step.run.failures = {}
                step.run.failures[step.ns] = f"{type(error).__name__}: {error}"
        return super().on_chain_error(error, *args, run_id=run_id, **kwargs)

    def on_tool_error(self, error: BaseException, *args: Any, run_id: UUID, **kwargs: Any) -> Run:
        if isinstance(error, GraphBubbleUp) or c.clean_exit(error):  # interrupt() inside a tool, sys.exit()
            with internal("langgraph.control_flow"):
                self._control_flow(run_id, error)
            return BaseTracer.on_tool_error(self, error, *args, run_id=run_id, **kwargs)
        if self._stopped(run_id, error):
            return BaseTracer.on_tool_error(self, error, *args, run_id=run_id, **kwargs)
        return super().on_tool_error(error, *args, run_id=run_id, **kwargs)

    def on_llm_error(self, error: BaseException, *args: Any, run_id: UUID, **kwargs: Any) -> Run:
        if self._stopped(run_id, error):  # a streamed model call the consumer stopped reading
            return BaseTracer.on_llm_error(self, error, *args, run_id=run_id, **kwargs)
        return super().on_llm_error(error, *args, run_id=run_id, **kwargs)

    def on_retriever_error(self, error: BaseException, *args: Any, run_id: UUID, **kwargs: Any) -> Run:
        if self._stopped(run_id, error):
            return BaseTracer.on_retriever_error(self, error, *args, run_id=run_id, **kwargs)
        return super().on_retriever_error(error, *args, run_id=run_id, **kwargs)

    def _stopped(self, run_id: UUID, error: BaseException) -> bool:
        """True for an end that is not (or not yet) a failure; then OpenInference's `exception` event is
        skipped (the caller uses BaseTracer's callback) and `_end_trace` decides how the span ends.

        GeneratorExit: the consumer stopped iterating a stream (`break`, `close()`, `aclose()`, garbage
        collection): the step is abandoned. CancelledError: LangGraph cancels the running nodes of an
        async run the consumer abandoned, before the run itself sees GeneratorExit; a task cancelled
        for any other reason fails. The event is kept, and written if the step fails after all.
        """
        if not isinstance(error, (GeneratorExit, asyncio.CancelledError)):
            return False
        stopped = False
        with internal("langgraph.stopped"):
            step = self._steps.get(run_id)
            span = self._spans_by_run.get(run_id)
            if isinstance(error, GeneratorExit):
                if step is not None:
                    step.abandoned = True
                stopped = True
            elif step is not None and span is not None:
                held = _HeldEvents()
                # OpenInference's event, with the traceback of now; it only adds events to its span.
                _record_exception(cast(Span, held), error)
                step.cancelled = held.events
                stopped = True
        return stopped

    def _control_flow(self, run_id: UUID, error: BaseException) -> None:
        step = self._steps.get(run_id)
        if step is None:
            return
        step.control_flow = True
        if isinstance(error, GraphInterrupt) and step.kind is not None:
            interrupts = error.args[0] if error.args else ()
            values = [getattr(i, "value", i) for i in interrupts]
            self._interrupted(step, values)
            if step.kind == "node" and step.run is not None:  # for the run's end, see `_finish`
                step.run.pending_interrupts = (step.run.pending_interrupts or []) + values
        elif isinstance(error, ParentCommand) and step.kind == "node" and error.args:
            targets = a.command_targets(error.args[0])
            if targets:
                self.add_route(step, targets)

    def _interrupted(self, step: _Step, values: list[Any]) -> None:
        # One event per span it passes through: the node that called interrupt(), every enclosing
        # subgraph run and node, and the top-level run (from LangGraph's lifecycle callback).
        if step.interrupted or step.span is None:
            return
        step.interrupted = True
        step.span.add_event(c.EVENT_INTERRUPT,
                            {c.CUSTOM_DATA: a.masked(a.to_json(values), self._config.hide_outputs) or ""})
        step.span.set_attribute(c.INTERRUPTED, True)

    # --- LangGraph's graph lifecycle callbacks (GraphCallbackHandler) -------------------------------

    def on_interrupt(self, event: GraphInterruptEvent) -> None:
        with internal("langgraph.on_interrupt"):
            step = self._steps.get(event.run_id) if event.run_id is not None else None
            if step is not None and step.kind == "run":
                self._interrupted(step, [getattr(i, "value", i) for i in event.interrupts])

    def on_resume(self, event: GraphResumeEvent) -> None:
        # Also a resume without Command(resume=...), e.g. `invoke(None)` after a breakpoint.
        with internal("langgraph.on_resume"):
            step = self._steps.get(event.run_id) if event.run_id is not None else None
            if step is not None and step.kind == "run":
                self._resumed(step)

    def _resumed(self, step: _Step) -> None:
        if step.resumed or step.span is None:
            return
        step.resumed = True
        attrs: dict[str, Any] = {}
        if step.resume is not None:
            attrs[c.CUSTOM_DATA] = a.masked(a.to_json(step.resume), self._config.hide_inputs)
        step.span.add_event(c.EVENT_RESUME, attrs)
