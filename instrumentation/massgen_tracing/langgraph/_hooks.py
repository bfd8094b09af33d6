"""The wrapt hooks on LangGraph / LangChain internals that callbacks alone cannot provide.
Each hook calls the original first and runs our part under the guard; `uninstall()` restores every original.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextvars import Context, Token
from types import TracebackType
from typing import Any

import langgraph.runtime as lg_runtime
import wrapt
from langchain_core.runnables.config import var_child_runnable_config
from langgraph._internal._config import ensure_config
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api

from massgen_tracing._internal.guard import internal
from massgen_tracing.langgraph import _attributes as a
from massgen_tracing.langgraph._tracer import GRAPH_HINT, ROUTING, GraphHint, LangGraphTracer

_NO_OP_WRITER = getattr(lg_runtime, "_no_op_stream_writer", None)  # private; absent: nothing to skip


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _parent_run_id(config: Any) -> Any:
    """The run a config's callbacks belong to: LangChain hands children `run_manager.get_child()`."""
    callbacks = config.get("callbacks") if isinstance(config, dict) else None
    return getattr(callbacks, "parent_run_id", None)


def _attach(span: Any) -> Any:
    return context_api.attach(trace_api.set_span_in_context(span))


class _SpanInContext:
    """Wraps `set_config_context(config)`: inside the copied context the runnable's code runs in, the
    runnable's span is also the current OpenTelemetry span, so spans made with the plain OpenTelemetry
    API nest under it. Attached and detached inside that context only: nothing leaks to the caller."""

    __slots__ = ("_cm", "_config", "_ctx", "_token", "_tracer")

    def __init__(self, cm: Any, config: Any, tracer: LangGraphTracer):
        self._cm = cm
        self._config = config
        self._tracer = tracer
        self._ctx: Context | None = None
        self._token: Any = None  # OpenTelemetry's context token

    def __enter__(self) -> Any:
        ctx = self._cm.__enter__()
        with internal("langgraph.attach_context"):
            span = self._tracer.span_of(_parent_run_id(self._config))
            if span is not None and isinstance(ctx, Context):
                self._ctx = ctx
                self._token = ctx.run(_attach, span)
        return ctx

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> Any:
        if self._ctx is not None:
            with internal("langgraph.detach_context"):
                self._ctx.run(context_api.detach, self._token)
        return self._cm.__exit__(et, ev, tb)


class _TracedWriter:
    """The graph's stream writer, also recording each chunk as a `massgen.custom` event."""

    __slots__ = ("__wrapped__", "_tracer")

    def __init__(self, inner: Callable[[Any], None], tracer: LangGraphTracer):
        self.__wrapped__ = inner
        self._tracer = tracer

    def __call__(self, chunk: Any) -> None:
        self.__wrapped__(chunk)
        with internal("langgraph.custom_event"):
            self._tracer.add_custom(_parent_run_id(var_child_runnable_config.get()), chunk)


class Hooks:
    """Installs and removes our wrappers; every patched attribute is recorded with its original."""

    def __init__(self, tracer: LangGraphTracer):
        self._tracer = tracer
        self._patched: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, wrapper)
        self._active = False

    # --- install / uninstall ------------------------------------------------------------------------

    def install(self) -> None:
        from langchain_core.runnables import config as lc_config
        from langgraph._internal import _runnable as lg_runnable
        from langgraph.graph._branch import BranchSpec
        from langgraph.pregel.main import Pregel
        from langgraph.runtime import Runtime

        self._active = True
        for owner, name, hook in ((Pregel, "stream", self._graph_hint), (Pregel, "astream", self._graph_hint),
                                  (BranchSpec, "_route", self._routing),
                                  (BranchSpec, "_aroute", self._arouting), (BranchSpec, "_finish", self._route),
                                  (Runtime, "merge", self._stream_writer)):
            original = owner.__dict__[name]
            self._patch(owner, name, original, wrapt.FunctionWrapper(original, hook))
        # Both context managers are imported by name into several modules: patch every binding.
        for original in (lc_config.set_config_context, lg_runnable.set_config_context):
            wrapper = wrapt.FunctionWrapper(original, self._span_in_context)
            for module in _modules_binding(original):
                self._patch(module, "set_config_context", original, wrapper)

    def uninstall(self) -> None:
        self._active = False
        # Modules imported after install bound our wrapper from langchain_core: restore those too.
        wrappers = {id(w): orig for _, _, orig, w in self._patched}
        for module in list(sys.modules.values()):
            bound = getattr(module, "__dict__", {}).get("set_config_context")
            if bound is not None and id(bound) in wrappers:
                setattr(module, "set_config_context", wrappers[id(bound)])  # noqa: B010  # any module
        for owner, name, original, _ in reversed(self._patched):
            setattr(owner, name, original)
        self._patched.clear()

    def _patch(self, owner: Any, name: str, original: Any, wrapper: Any) -> None:
        setattr(owner, name, wrapper)
        self._patched.append((owner, name, original, wrapper))

    # --- the hooks ----------------------------------------------------------------------------------

    def _graph_hint(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        # Every graph run is one Pregel.stream/astream call (invoke, ainvoke, astream_events and
        # astream_log use them); its first chain start of that name is the run's: in this context, or
        # under the run this call is made from. The generator is returned as is.
        if self._active:
            with internal("langgraph.graph_hint"):
                # The config the run will resolve: name and recursion limit as Pregel computes them
                # (the limit only when the user set one: LangGraph's default is no step budget).
                config = ensure_config(instance.config, _arg(args, kwargs, 1, "config"))
                hint = GraphHint(name=str(config.get("run_name", instance.get_name())),
                                 recursion_limit=a.explicit_recursion_limit(config.get("recursion_limit")))
                GRAPH_HINT.set(hint)
                # The generator may be iterated in another context: LangGraph consumes a subgraph's
                # stream in a task whose context was copied before this call whenever a stream handler
                # is attached (`astream_events`, `astream_log`), so the hint set above is not seen there.
                parent = _parent_run_id(config)
                if parent is not None:
                    self._tracer.expect_run(parent, hint)
        return wrapped(*args, **kwargs)

    def _routing(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        # BranchSpec._route(input, config) calls the user's routing function with the deciding node's
        # child config: mark that node so the tracer knows the routing function's run when it starts.
        token = self._routing_token(args, kwargs)
        try:
            return wrapped(*args, **kwargs)
        finally:
            if token is not None:
                ROUTING.reset(token)

    async def _arouting(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
        token = self._routing_token(args, kwargs)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            if token is not None:
                ROUTING.reset(token)

    def _routing_token(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Token[Any] | None:
        token = None
        if self._active:
            with internal("langgraph.routing"):
                token = ROUTING.set(_parent_run_id(_arg(args, kwargs, 1, "config")))
        return token

    def _route(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
        # BranchSpec._finish(writer, input, result, config) turns the routing function's answer into
        # destinations; it raises for invalid ones, and then nothing was decided.
        out = wrapped(*args, **kwargs)
        if self._active:
            with internal("langgraph.route"):
                config = _arg(args, kwargs, 3, "config")
                step = self._tracer.step_of(_parent_run_id(config))
                if step is not None:
                    self._tracer.add_route(step, a.destinations(_arg(args, kwargs, 2, "result"), instance.ends))
        return out

    def _stream_writer(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
        # Pregel.stream/astream build each run's Runtime with `parent.merge(runtime)`: its stream
        # writer is what get_stream_writer() and `writer=` parameters hand to nodes.
        runtime = wrapped(*args, **kwargs)
        if self._active:
            with internal("langgraph.stream_writer"):
                writer = runtime.stream_writer
                # Not LangGraph's shared no-op: `merge` tells "no writer" by identity with it.
                if not isinstance(writer, _TracedWriter) and writer is not _NO_OP_WRITER:
                    runtime = runtime.override(stream_writer=_TracedWriter(writer, self._tracer))
        return runtime

    def _span_in_context(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
        cm = wrapped(*args, **kwargs)
        if not self._active:
            return cm
        return _SpanInContext(cm, _arg(args, kwargs, 0, "config"), self._tracer)


def _modules_binding(obj: Any) -> Iterable[Any]:
    """Loaded LangChain / LangGraph modules that hold `obj` under the name `set_config_context`."""
    for name, module in list(sys.modules.items()):
        if name.startswith(("langchain", "langgraph")) and getattr(module, "__dict__", {}).get(
                "set_config_context") is obj:
            yield module
