"""`_runs`: LangChain's runs built as `LiteRun`s give OpenInference exactly the spans `RunTree`s give.

The callbacks of real graphs are recorded once, untraced, then replayed into two OpenInference
tracers: one with LangChain's own run builders, one with ours. Every span must come out the same.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from lg_graphs import REACT_TREE, qa_graph, react_graph, react_model
from lg_tracing import start_tracing
from openinference.instrumentation import OITracer, TraceConfig
from openinference.instrumentation.langchain._tracer import OpenInferenceTracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from massgen_tracing._internal import guard
from massgen_tracing.langgraph import _runs
from massgen_tracing.testing.openai_server import ScriptedOpenAIServer, Text, ToolCall, ToolCalls

CALLBACKS = frozenset(name for name in dir(BaseCallbackHandler) if name.startswith("on_"))


class Recorder(BaseCallbackHandler):
    """Keeps every callback LangChain makes, with its arguments, to replay them later."""

    run_inline = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name in CALLBACKS:
            calls = object.__getattribute__(self, "calls")
            return lambda *args, **kwargs: calls.append((name, args, kwargs))
        return object.__getattribute__(self, name)


class LiteTracer(OpenInferenceTracer):
    """OpenInference's tracer with our run builders (bare: no self-check, no fallback to hide a difference)."""


for _name, _original in _runs.ORIGINALS.items():
    setattr(LiteTracer, _name, _runs._rebuilt(_original))


def _replay(tracer_type: type[OpenInferenceTracer], calls: list[Any], config: TraceConfig) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracer_type(OITracer(provider.get_tracer("replay"), config=config), False)
    for name, args, kwargs in calls:
        getattr(tracer, name)(*args, **kwargs)
    spans = exporter.get_finished_spans()
    index = {s.context.span_id: i for i, s in enumerate(spans)}
    # Everything but times and ids (fresh per replay): names, tree, attributes in order, status, events.
    return [(s.name, index.get(s.parent.span_id) if s.parent else None, list(s.attributes.items()),
             s.status.status_code, s.status.description, [(e.name, dict(e.attributes)) for e in s.events])
            for s in spans]


def _react_streaming(config: dict[str, Any]) -> None:
    react_graph(react_model(streaming=True, temperature=0.5)).invoke(
        {"messages": [("user", "What is 1 + 2?")]}, config)


def _chat_openai(config: dict[str, Any]) -> None:
    from langchain_openai import ChatOpenAI

    script = [ToolCalls([ToolCall("add", {"a": 1, "b": 2})]), Text("The sum is 3.")]
    with ScriptedOpenAIServer(script) as server:
        model = ChatOpenAI(base_url=server.base_url, api_key="test", model="scripted", max_retries=0,
                           temperature=0.2, stream_usage=True)
        react_graph(model).invoke({"messages": [("user", "What is 1 + 2?")]}, config)


def _prompt_retriever_failures(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no such thing"):
        qa_graph().invoke({"question": "What is 1 + 2?"}, config)


@pytest.mark.parametrize("hidden", [False, True], ids=["captured", "hidden"])
@pytest.mark.parametrize("program", [_react_streaming, _chat_openai, _prompt_retriever_failures])
def test_lite_runs_give_openinference_the_same_spans(program: Callable[[dict[str, Any]], None],
                                                     hidden: bool) -> None:
    recorder = Recorder()
    program({"callbacks": [recorder]})
    kinds = {name for name, _, _ in recorder.calls}
    assert {"on_chain_start", "on_chain_end"} <= kinds
    config = TraceConfig(hide_inputs=hidden, hide_outputs=hidden)
    theirs = _replay(OpenInferenceTracer, recorder.calls, config)
    ours = _replay(LiteTracer, recorder.calls, config)
    assert ours == theirs
    assert len(theirs) == sum(name.endswith("_start") for name, _, _ in recorder.calls)


def test_the_replays_cover_every_kind_of_run() -> None:
    recorder = Recorder()
    for program in (_react_streaming, _chat_openai, _prompt_retriever_failures):
        program({"callbacks": [recorder]})
    kinds = {name for name, _, _ in recorder.calls}
    assert {"on_chain_start", "on_chain_end", "on_chain_error", "on_chat_model_start", "on_llm_new_token",
            "on_llm_end", "on_tool_start", "on_tool_end", "on_tool_error", "on_retriever_start",
            "on_retriever_end"} <= kinds


def test_the_tracer_uses_the_lite_builders() -> None:
    from massgen_tracing.langgraph import _tracer

    assert all(build is not _runs.ORIGINALS[name] for name, build in _tracer._BUILD.items())
    assert _tracer.LangGraphTracer._create_chain_run is _tracer._BUILD["_create_chain_run"]
    run = _tracer._BUILD["_create_chain_run"](_runs._Probe(), None, {"q": 1}, uuid.uuid4(), name="n")
    assert isinstance(run, _runs.LiteRun)


@pytest.mark.parametrize("defect", ["wrong name", "lost keyword defaults", "raises"])
def test_a_lite_run_that_differs_keeps_langchains_builders(defect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if defect == "wrong name":
        init = _runs.LiteRun.__init__

        def misnamed(self: Any, **kwargs: Any) -> None:
            init(self, **kwargs)
            self.name = f"{self.name}!"

        monkeypatch.setattr(_runs.LiteRun, "__init__", misnamed)
    elif defect == "lost keyword defaults":
        rebuilt = _runs._rebuilt

        def without_kwdefaults(function: Any) -> Any:
            fn = rebuilt(function)
            if fn is not None:
                fn.__kwdefaults__ = None
            return fn

        monkeypatch.setattr(_runs, "_rebuilt", without_kwdefaults)
    else:
        def fails(self: Any, **kwargs: Any) -> None:
            raise RuntimeError("bug in massgen-tracing")

        monkeypatch.setattr(_runs.LiteRun, "__init__", fails)
    assert _runs.builders() == _runs.ORIGINALS


def test_a_lite_builder_failing_mid_run_falls_back_to_langchains(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())
    traced, stop = start_tracing(monkeypatch)

    def fails(self: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(_runs.LiteRun, "__init__", fails)  # every run of the graph
    try:
        with caplog.at_level(logging.WARNING, logger="massgen_tracing"):
            out = react_graph(react_model()).invoke({"messages": [("user", "What is 1 + 2?")]})
    finally:
        stop()
    assert out["messages"][-1].content == "The sum is 3."
    assert traced.render() == REACT_TREE  # every run built by LangChain's builders instead
    assert [r.getMessage() for r in caplog.records] == [
        "massgen-tracing: internal error in langgraph.lite_run (tracing continues): "
        "RuntimeError('bug in massgen-tracing')"]
