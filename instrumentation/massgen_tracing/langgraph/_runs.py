"""LangChain's run records, built without pydantic: the same fields with the same values, for less.

LangChain's `BaseTracer` keeps a `Run` for every callback run: langsmith's `RunTree`, a pydantic model
whose construction validates every field and resolves LangSmith's project, address and replicas from
the environment (measured: a third of OpenInference's whole per-run cost in a `Send` fan-out). Neither
OpenInference's span update nor our tracer reads anything but the run's plain fields. `LiteRun` holds
those, with the values `RunTree` would give them (its defaults, its name rule, top-level copies of the
containers), and the builders are LangChain's own (`_create_chain_run`, ... and `LangChainTracer.
on_chat_model_start`, which OpenInference uses), run with `Run` bound to `LiteRun`: whatever a LangChain
version passes to `Run(...)`, the lite run gets too.

A self-check builds one run of every kind both ways when this module is imported and compares them
field by field; on any difference (a future LangChain or langsmith) the tracer keeps LangChain's own
builders. A failure of a lite builder at run time falls back to LangChain's for that run, and is logged.
`tests/langgraph/test_runs.py` replays the callbacks of real graphs into OpenInference's tracer with
both kinds of run and compares every span.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.core import _TracerCore
from langchain_core.tracers.langchain import LangChainTracer

from massgen_tracing._internal.guard import report_internal_error, strict
from massgen_tracing._internal.rebind import with_globals

logger = logging.getLogger(__name__)

#: What is read of a run (by OpenInference's `_update_span`, LangChain's `_complete_*`/`_errored_*`,
#: our tracer) and so what the self-check compares.
FIELDS = ("id", "name", "run_type", "start_time", "end_time", "extra", "error", "serialized", "events",
          "inputs", "outputs", "parent_run_id", "tags", "trace_id")


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)  # pydantic copies a dict field's top level: so do we
    try:
        from langsmith.run_trees import _coerce_to_dict  # RunTree's rule for non-dict inputs/outputs
    except ImportError:  # pragma: no cover  # moved in a future langsmith: the self-check then fails
        return {"output": value}
    result: dict[str, Any] = _coerce_to_dict(value)  # type: ignore[no-untyped-call]  # langsmith's
    return result


class LiteRun:
    """A LangChain run as the tracers here read it (see the module docstring); not a pydantic model."""

    def __init__(self, *, id: UUID, start_time: datetime | None = None, name: str | None = None,
                 run_type: str = "chain", serialized: dict[str, Any] | None = None, inputs: Any = None,
                 outputs: Any = None, extra: dict[str, Any] | None = None, events: list[Any] | None = None,
                 tags: list[str] | None = None, parent_run_id: UUID | None = None, **other: Any) -> None:
        if name is None and serialized is not None:  # RunTree.infer_defaults
            if "name" in serialized:
                name = serialized["name"]
            elif "id" in serialized:
                name = serialized["id"][-1]
        self.id = id
        self.name = "Unnamed" if name is None else name
        self.run_type = run_type
        self.start_time = start_time if start_time is not None else datetime.now(timezone.utc)
        self.end_time: datetime | None = None
        self.extra = {} if extra is None else dict(extra)
        self.error: str | None = None
        self.serialized = None if serialized is None else dict(serialized)
        self.events = [] if events is None else list(events)
        self.inputs = {} if inputs is None else _as_dict(inputs)
        self.outputs = {} if outputs is None else _as_dict(outputs)
        self.parent_run_id = parent_run_id
        self.tags = [] if tags is None else list(tags)
        self.trace_id = id  # as RunTree, before a tracer's `_start_trace` places it in a trace
        self.child_runs: list[Any] = []
        for key, value in other.items():  # anything a newer LangChain passes: kept, as RunTree keeps its fields
            setattr(self, key, value)

    @property
    def metadata(self) -> dict[str, Any]:  # RunBase.metadata
        if self.extra is None:
            self.extra = {}
        result: dict[str, Any] = self.extra.setdefault("metadata", {})
        return result

    def __repr__(self) -> str:
        return f"LiteRun(id={self.id}, name={self.name!r}, run_type={self.run_type!r})"


def _rebuilt(function: Callable[..., Any]) -> Callable[..., Any] | None:
    """`function` with its global `Run` bound to `LiteRun`, or None if it makes no `Run`."""
    return with_globals(function, {"Run": LiteRun})


#: The builders replaced: name on the tracer -> LangChain's function. `on_chat_model_start` is
#: LangChainTracer's, the one OpenInference's tracer calls.
ORIGINALS: dict[str, Callable[..., Any]] = {
    "_create_chain_run": _TracerCore._create_chain_run,
    "_create_llm_run": _TracerCore._create_llm_run,
    "_create_tool_run": _TracerCore._create_tool_run,
    "_create_retrieval_run": _TracerCore._create_retrieval_run,
    "on_chat_model_start": LangChainTracer.on_chat_model_start,
}


class _Probe(BaseTracer):
    """A tracer that only keeps the runs it starts: the self-check's bench."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[Any] = []

    def _persist_run(self, run: Any) -> None:
        pass

    def _start_trace(self, run: Any) -> None:
        self.started.append(run)


def _calls() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    from uuid import uuid4

    from langchain_core.messages import AIMessage, HumanMessage

    parent = uuid4()
    md = {"langgraph_step": 1, "langgraph_node": "agent", "ls_provider": "x"}
    named = {"lc": 1, "type": "not_implemented", "id": ["pkg", "Thing"], "name": "thing"}
    unnamed = {"lc": 1, "type": "constructor", "id": ["pkg", "Model"], "kwargs": {}}
    return [
        ("_create_chain_run", (named, {"q": 1}, uuid4()), {"parent_run_id": parent, "tags": ["t"], "metadata": md}),
        ("_create_chain_run", (None, "text", uuid4()), {"name": "fn", "run_type": "prompt"}),
        ("_create_chain_run", (unnamed, {}, uuid4()), {}),
        ("_create_llm_run", (unnamed, ["a prompt"], uuid4()),
         {"parent_run_id": parent, "metadata": md, "invocation_params": {"temperature": 0.5}}),
        ("_create_tool_run", (named, "{'a': 1}", uuid4()),
         {"parent_run_id": parent, "inputs": {"a": 1}, "metadata": md, "color": "green"}),
        ("_create_tool_run", (None, "plain", uuid4()), {"name": "search"}),
        ("_create_retrieval_run", (named, "query", uuid4()), {"metadata": md}),
        ("on_chat_model_start", (unnamed, [[HumanMessage("hi"), AIMessage("hello")]]),
         {"run_id": uuid4(), "parent_run_id": parent, "tags": None, "metadata": md,
          "invocation_params": {"model": "m"}, "options": {"stop": None}}),
    ]


def _view(run: Any, field: str) -> Any:
    value = getattr(run, field)
    if field == "events":  # their times are the moment of building: compare everything else
        return [{k: v for k, v in e.items() if k != "time"} for e in value]
    if field == "start_time":
        return type(value), value.tzinfo
    return type(value), value


def _self_check(builders: dict[str, Callable[..., Any]]) -> str | None:
    """None if every lite builder gives the run LangChain's gives; else what differed."""
    for name, args, kwargs in _calls():
        ref, lite = _Probe(), _Probe()
        theirs = ORIGINALS[name](ref, *args, **kwargs)
        ours = builders[name](lite, *args, **kwargs)
        if name == "on_chat_model_start":  # builds and starts: the runs are what was started
            theirs, ours = ref.started[0], lite.started[0]
        for field in FIELDS:
            if _view(ours, field) != _view(theirs, field):
                return f"{name}: {field} {getattr(ours, field)!r} != {getattr(theirs, field)!r}"
    return None


def _guarded(lite: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    def build(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return lite(self, *args, **kwargs)
        except Exception as exc:
            if strict():
                raise
            report_internal_error("langgraph.lite_run", exc)
            return original(self, *args, **kwargs)

    build.__name__ = build.__qualname__ = original.__name__
    build.__doc__ = original.__doc__
    return build


def builders() -> dict[str, Callable[..., Any]]:
    """The run builders for our tracer: lite ones if they pass the self-check, else LangChain's own."""
    try:
        lite = {name: _rebuilt(fn) for name, fn in ORIGINALS.items()}
        missing = [name for name, fn in lite.items() if fn is None]
        if missing:
            logger.debug("massgen-tracing: LangChain's %s build no Run; keeping LangChain's run builders", missing)
            return dict(ORIGINALS)
        ready = {name: fn for name, fn in lite.items() if fn is not None}
        problem = _self_check(ready)
    except Exception as exc:  # noqa: BLE001  # any surprise: LangChain's builders, which always work
        problem = f"self-check failed: {type(exc).__name__}: {exc}"
    if problem is not None:
        logger.debug("massgen-tracing: lite LangChain runs differ (%s); keeping LangChain's run builders", problem)
        return dict(ORIGINALS)
    return {name: _guarded(ready[name], ORIGINALS[name]) for name in ORIGINALS}
