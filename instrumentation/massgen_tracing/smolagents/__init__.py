"""`SmolagentsInstrumentor`: every smolagents step (run, planning, action, model call, tool call,
final answer) as an OpenTelemetry span of the shared step convention, with OpenInference's attributes.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import Tracer as SDKTracer

from massgen_tracing import __version__
from massgen_tracing._internal.guard import internal
from massgen_tracing._internal.ids import ids_for
from massgen_tracing._internal.instrumentor import Instrumentor

__all__ = ["SmolagentsInstrumentor"]

logger = logging.getLogger("massgen_tracing")
_INSTRUMENTS = ("smolagents >= 1.20",)

Hook = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _bind(hook: Hook) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A patch factory: the replacement hands the original and the call to `hook`."""

    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def replacement(self: Any, *args: Any, **kwargs: Any) -> Any:
            return hook(original, self, args, kwargs)

        return replacement

    return factory


def _context_executor(base: type[ThreadPoolExecutor]) -> type[ThreadPoolExecutor]:
    class ContextThreadPoolExecutor(base):  # type: ignore[valid-type,misc]  # base is a variable
        """Runs CodeAgent code (smolagents' timeout thread) in the caller's context, so tools and
        managed agents called from that code nest under the step."""

        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)  # type: ignore[no-any-return]

    return ContextThreadPoolExecutor


class SmolagentsInstrumentor(Instrumentor):
    """Instrument smolagents: `SmolagentsInstrumentor().instrument(tracer_provider=provider)`.

    It replaces OpenInference's smolagents instrumentor rather than stacking on it (one span per
    step, not two; if that one is active it is uninstrumented first), keeps its attributes so Phoenix
    renders the spans natively, accepts its `config=TraceConfig(...)`, and covers what it lacks:

    * model classes defined after `instrument()` (a user's own `Model` subclass) get model-call
      spans: methods are patched on every subclass defining its own, now and later (`__init_subclass__`);
    * planning steps, the answer forced when `max_steps` runs out and managed-agent calls are spans;
    * step identity is in the start attributes; tool decisions, streamed deltas, CodeAgent print
      output and "step N of M" progress (`massgen.step.progress`, on the run span) are span events
      at the moment they happen;
    * a step's context is attached only while smolagents' own code runs: with `run(stream=True)` the
      consumer's code between steps runs in its own context, and stopping early leaves nothing attached;
    * a failed step (tool or code error) is an ERROR span while the run goes on.
    """

    _patcher: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument_now(self, **kwargs: Any) -> None:
        from openinference.instrumentation import TraceConfig
        from openinference.instrumentation.smolagents import SmolagentsInstrumentor as OpenInference
        from smolagents.agents import MultiStepAgent
        from smolagents.models import Model
        from smolagents.tools import Tool

        from massgen_tracing.smolagents._attributes import Content
        from massgen_tracing.smolagents._hooks import Hooks
        from massgen_tracing.smolagents._patching import Patcher
        from smolagents import local_python_executor

        upstream = OpenInference()
        if _instrumenting(upstream):
            # OpenInference's own instrument() imported smolagents, which fired MASSGEN_TRACING's hook
            # (`opentelemetry-instrument` loading its entry point, or a program calling it): it wraps
            # its methods over ours once we return. Take it off the moment it is done.
            _uninstrument_when_done(upstream)
        elif upstream.is_instrumented_by_opentelemetry and getattr(self, "_blocked_upstream", None) is not upstream:
            logger.info("massgen-tracing: uninstrumenting OpenInference's smolagents instrumentor, "
                        "which massgen_tracing.smolagents replaces (same attributes, one span per step)")
            with internal("smolagents.uninstrument_openinference"):
                upstream.uninstrument()
        # `opentelemetry-instrument` also loads OpenInference's entry point, maybe after ours, and
        # programs call its instrument() for Phoenix: on the (singleton) upstream instrumentor that
        # does nothing now, silently, rather than add a second span per step. Undone in _uninstrument.
        setattr(upstream, "_instrument", _skip)  # noqa: B010  # an instance attribute over its method
        self._blocked_upstream: Any = upstream
        if kwargs.get("tracer_provider") is None:
            from massgen_tracing._internal.setup import attach_live_pipeline

            attach_live_pipeline()

        provider = kwargs.get("tracer_provider") or trace_api.get_tracer_provider()
        config = kwargs.get("config") or TraceConfig()
        tracer = trace_api.get_tracer(__name__, __version__, provider)
        if isinstance(tracer, SDKTracer):
            # Ids the program's random.seed() cannot repeat, as OpenInference's. The tracer is ours alone:
            # the provider keys it by our name.
            tracer.id_generator = ids_for(tracer.id_generator)
        hooks = Hooks(tracer, Content(config))

        patcher = Patcher()
        patcher.patch_tree(MultiStepAgent, {
            "run": _bind(hooks.run),
            "__call__": _bind(hooks.managed_call),
            "_generate_planning_step": _bind(hooks.planning),
            "_step_stream": _bind(hooks.action),
            "_handle_max_steps_reached": _bind(hooks.max_steps),
            "_validate_final_answer": _bind(hooks.final_answer_check),
        })
        patcher.patch_tree(Model, {"generate": _bind(hooks.generate),
                                   "generate_stream": _bind(hooks.generate_stream)})
        patcher.patch_tree(Tool, {"__call__": _bind(hooks.tool)})
        patcher.patch_class(local_python_executor.PrintContainer, {"__iadd__": _bind(hooks.printed)})
        patcher.set_attribute(local_python_executor, "ThreadPoolExecutor",
                              _context_executor(local_python_executor.ThreadPoolExecutor))
        self._patcher = patcher

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._patcher is not None:
            self._patcher.restore()
            self._patcher = None
        blocked = getattr(self, "_blocked_upstream", None)
        if blocked is not None:
            blocked.__dict__.pop("_instrument", None)
            blocked._is_instrumented_by_opentelemetry = False  # it may have "instrumented" by `_skip`
            self._blocked_upstream = None


def _skip(**kwargs: Any) -> None:
    """OpenInference's smolagents `_instrument` while ours is active."""


def _instrumenting(upstream: Any) -> bool:
    """True while `upstream.instrument()` is running further up this thread's stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in ("instrument", "_instrument") and frame.f_locals.get("self") is upstream:
            return True
        frame = frame.f_back  # type: ignore[assignment]  # None ends the loop
    return False


_FLAG = "_is_instrumented_by_opentelemetry"


def _uninstrument_when_done(upstream: Any) -> None:
    """Uninstrument `upstream` as soon as its running `instrument()` marks it instrumented (its last
    step): a one-shot property on its class sees that assignment. Its `_uninstrument` puts back what it
    found when it started wrapping, which is our instrumentation."""
    cls = type(upstream)

    def get(self: Any) -> bool:
        return bool(self.__dict__.get(_FLAG, False))

    def set_(self: Any, value: bool) -> None:
        self.__dict__[_FLAG] = value
        if value and self is upstream:
            with internal("smolagents.uninstrument_openinference"):
                if isinstance(cls.__dict__.get(_FLAG), property):
                    delattr(cls, _FLAG)
                upstream.uninstrument()

    setattr(cls, _FLAG, property(get, set_))
