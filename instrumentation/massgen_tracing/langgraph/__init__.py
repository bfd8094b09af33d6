"""`LangGraphInstrumentor`: every LangGraph step (run, node, model call, tool call) as an OpenTelemetry
span under the massgen step convention, with its identity at span start and its happenings as events.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from massgen_tracing._internal.instrumentor import Instrumentor

__all__ = ["LangGraphInstrumentor"]

logger = logging.getLogger("massgen_tracing")

_INSTRUMENTS = ("langgraph >= 1.0", "langchain-core >= 1.0")


@contextmanager
def _tracer_class(cls: type) -> Iterator[None]:
    """Make `LangChainInstrumentor.instrument()` build our tracer subclass.

    It imports `OpenInferenceTracer` from its `_tracer` module when it runs, so swapping the module
    attribute for the duration of that call is enough; the original is put back right after.
    """
    from openinference.instrumentation.langchain import _tracer as oi_tracer

    original = oi_tracer.OpenInferenceTracer
    oi_tracer.OpenInferenceTracer = cls  # type: ignore[misc,assignment]  # deliberate, undone below
    try:
        yield
    finally:
        oi_tracer.OpenInferenceTracer = original  # type: ignore[misc]  # a class, assigned back


class LangGraphInstrumentor(Instrumentor):
    """Instrument LangGraph (and the LangChain runnables it runs) under the massgen step convention.

    `instrument(tracer_provider=None, config=None, separate_trace_from_runtime_context=False)`:
    `config` is an OpenInference `TraceConfig` (default: read from `OPENINFERENCE_*` variables, so
    `OPENINFERENCE_HIDE_INPUTS`/`OUTPUTS` apply to our attributes and events too).

    How: OpenInference's `LangChainInstrumentor` is instrumented with the same provider and config but
    builds our subclass of its callback tracer (`_tracer.LangGraphTracer`), which starts each step span
    with its convention attributes and adds the in-step events; OpenInference's end-time attributes are
    kept. Wrapt hooks (`_hooks.Hooks`) add what callbacks cannot see: which chain start is a graph
    run and its recursion limit (`Pregel.stream`/`astream`), which run is a routing function and where it sent
    the graph (`BranchSpec._route`/`_aroute`/`_finish`), custom stream data (the run's stream writer,
    via `Runtime.merge`), and the current OpenTelemetry span while a runnable's code runs
    (`set_config_context`), so spans made with the plain OpenTelemetry API nest under their node.

    Choices:

    * A graph run is one `invoke`/`stream`/`ainvoke`/`astream`/`astream_events`/`astream_log` call;
      `batch`/`abatch` run one graph run per input, each its own root span (and trace).
    * A stream the consumer stops reading (GeneratorExit) is abandoned, not failed: status UNSET and
      `massgen.abandoned`, also on the steps LangGraph cancels as it closes (their CancelledError counts
      as a failure only if the step they ran in was not abandoned).
    * A subgraph is a nested run: kind `run` under the node (or task) that ran it, its nodes under it.
      Functional-API `@task` calls are nodes under their caller.
    * Routing functions get no span of their own: the decision is on the deciding node (the `__start__`
      node for a conditional entry) as the `massgen.route` attribute and event; whatever the routing
      function itself calls nests under that node.
    * `RetryPolicy`: each attempt is its own node span (`massgen.attempt`); a failed attempt ends with
      ERROR and its exception, the next one starts with a `massgen.retry` event naming that failure.
    * `interrupt()`, `Command` and `ParentCommand` are control flow: status OK, no `exception` event;
      every node and run an interrupt passes through gets `massgen.interrupted` and one
      `massgen.interrupt` event; a resumed run gets a `massgen.resume` event.
    * A model call's prompt messages and invocation parameters are written at the end (by
      OpenInference), not at start, so starting a step stays cheap.
    """

    _lc: Any = None  # the LangChainInstrumentor we instrumented
    _hooks: Any = None  # our wrapt hooks (`_hooks.Hooks`)

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument_now(self, **kwargs: Any) -> None:
        from openinference.instrumentation import TraceConfig
        from openinference.instrumentation.langchain import LangChainInstrumentor

        from massgen_tracing.langgraph._hooks import Hooks
        from massgen_tracing.langgraph._tracer import LangGraphTracer

        if kwargs.get("tracer_provider") is None:
            # Loaded by `opentelemetry-instrument` (no provider given): join the global provider with
            # the live pipeline, as the smolagents instrumentor does, so the live view shows the steps
            # even when smolagents is not installed.
            from massgen_tracing._internal.setup import attach_live_pipeline

            attach_live_pipeline()

        config = kwargs.get("config") or TraceConfig()
        lc = LangChainInstrumentor()
        if lc.is_instrumented_by_opentelemetry:
            # Someone instrumented plain OpenInference first: two tracers would double every span.
            logger.info("massgen-tracing: replacing the existing LangChainInstrumentor instrumentation")
            lc.uninstrument()
        with _tracer_class(LangGraphTracer):
            lc.instrument(
                tracer_provider=kwargs.get("tracer_provider"),
                config=config,
                separate_trace_from_runtime_context=bool(kwargs.get("separate_trace_from_runtime_context")),
                skip_dep_check=True,
            )
        tracer = getattr(lc, "_tracer", None)
        if not isinstance(tracer, LangGraphTracer):  # OpenInference changed how it builds its tracer
            lc.uninstrument()
            raise RuntimeError("massgen-tracing: could not install its LangChain tracer; "
                               "check the openinference-instrumentation-langchain version (<0.2)")
        self._lc = lc
        self._hooks = Hooks(tracer)
        try:
            self._hooks.install()
        except Exception:
            self._hooks.uninstall()
            lc.uninstrument()
            raise

    def _uninstrument(self, **kwargs: Any) -> None:
        hooks = getattr(self, "_hooks", None)
        if hooks is not None:
            hooks.uninstall()
            self._hooks = None
        lc = getattr(self, "_lc", None)
        if lc is not None and lc.is_instrumented_by_opentelemetry:
            lc.uninstrument()
        self._lc = None
