"""Tracing never changes what a graph does: same results and streams, clean uninstrument, guarded hooks."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib.metadata import entry_points
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables import config as lc_config
from langgraph._internal import _runnable as lg_runnable
from langgraph.config import get_stream_writer
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph._branch import BranchSpec
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.pregel.main import Pregel
from langgraph.runtime import Runtime
from lg_graphs import REACT_TREE, add, react_graph, react_model
from lg_tracing import NEEDS_PY311_ASYNC_CONTEXT, Traced, start_tracing
from openinference.instrumentation.config import REDACTED_VALUE
from openinference.instrumentation.langchain import _tracer as oi_tracer

from massgen_tracing._internal import convention as c
from massgen_tracing._internal import guard
from massgen_tracing.langgraph import LangGraphInstrumentor, _attributes, _hooks
from massgen_tracing.testing.langchain_models import ScriptedChatModel, tool_call

QUESTION = {"messages": [("user", "What is 1 + 2?")]}
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")


def writer_react_graph() -> CompiledStateGraph:
    """The ReAct loop whose agent also writes custom stream data."""
    bound = react_model().bind_tools([add])

    def agent(state: MessagesState) -> dict[str, Any]:
        get_stream_writer()({"turn": len(state["messages"])})
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([add]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name="react")


def run_stream(mode: Any, is_async: bool) -> str:
    """What the user's own stream() / astream() yields, with run-specific ids masked."""
    graph = writer_react_graph()
    if is_async:
        async def collect() -> list[Any]:
            return [chunk async for chunk in graph.astream(QUESTION, stream_mode=mode)]
        chunks = asyncio.run(collect())
    else:
        chunks = list(graph.stream(QUESTION, stream_mode=mode))
    return _IDS.sub("<id>", repr(chunks))


@pytest.mark.parametrize("is_async", [False, pytest.param(True, marks=NEEDS_PY311_ASYNC_CONTEXT)],
                         ids=["stream", "astream"])
@pytest.mark.parametrize("mode", ["values", "updates", "messages", "custom", ["updates", "messages", "custom"]],
                         ids=["values", "updates", "messages", "custom", "combined"])
def test_stream_output_is_identical_with_and_without_tracing(
        monkeypatch: pytest.MonkeyPatch, mode: Any, is_async: bool) -> None:
    plain = run_stream(mode, is_async)
    traced, stop = start_tracing(monkeypatch)
    try:
        with_tracing = run_stream(mode, is_async)
    finally:
        stop()
    assert with_tracing == plain
    assert traced.render() == REACT_TREE


def _originals() -> dict[str, Any]:
    return {
        "Pregel.stream": Pregel.__dict__["stream"],
        "Pregel.astream": Pregel.__dict__["astream"],
        "BranchSpec._finish": BranchSpec.__dict__["_finish"],
        "BranchSpec._route": BranchSpec.__dict__["_route"],
        "BranchSpec._aroute": BranchSpec.__dict__["_aroute"],
        "Runtime.merge": Runtime.__dict__["merge"],
        "lc set_config_context": lc_config.set_config_context,
        "lg set_config_context": lg_runnable.set_config_context,
        "base set_config_context": __import__("langchain_core.runnables.base", fromlist=["x"]).set_config_context,
        "tools set_config_context": __import__("langchain_core.tools.base", fromlist=["x"]).set_config_context,
        "BaseCallbackManager.__init__": BaseCallbackManager.__dict__["__init__"],
        "OpenInferenceTracer": oi_tracer.OpenInferenceTracer,
    }


def test_uninstrument_restores_every_original_and_records_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _originals()
    traced, stop = start_tracing(monkeypatch)
    assert all(_originals()[k] is not v for k, v in before.items() if k != "OpenInferenceTracer")
    react_graph(react_model()).invoke(QUESTION)
    recorded = len(traced.spans)
    stop()

    assert _originals() == before
    react_graph(react_model()).invoke(QUESTION)
    assert len(traced.spans) == recorded == 7
    assert LangGraphInstrumentor().is_instrumented_by_opentelemetry is False


def test_instrumenting_takes_over_a_plain_openinference_instrumentation(monkeypatch: pytest.MonkeyPatch) -> None:
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument()
    traced, stop = start_tracing(monkeypatch)
    try:
        react_graph(react_model()).invoke(QUESTION)
    finally:
        stop()
    assert traced.render() == REACT_TREE  # one tracer: no doubled spans
    assert LangChainInstrumentor().is_instrumented_by_opentelemetry is False


def test_a_failing_hook_of_ours_never_breaks_the_users_graph(
        traced: Traced, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(_attributes, "node_attributes", broken)  # the tracer's start of every node
    monkeypatch.setattr(_attributes, "destinations", broken)  # the BranchSpec._finish hook
    monkeypatch.setattr(_hooks, "_parent_run_id", broken)  # every hook: context, routing, custom data, runs
    with caplog.at_level(logging.WARNING, logger="massgen_tracing"):
        out = writer_react_graph().invoke(QUESTION)
        streamed = list(writer_react_graph().stream(QUESTION, stream_mode="custom"))

    assert out["messages"][-1].content == "The sum is 3."
    assert streamed == [{"turn": 1}, {"turn": 3}]
    # The nodes lost their step identity and routing functions their hint (so they show as plain
    # spans again); nothing else changed: tracing carried on around the failures.
    unnamed_react = """\
run react
  · agent
    llm scripted-model
    · tools_condition
  · tools
    tool add
  · agent
    llm scripted-model
    · tools_condition"""
    assert traced.render() == f"{unnamed_react}\n{unnamed_react}"
    sites = sorted({m.split(" in ")[1].split(" ")[0] for m in caplog.messages if "internal error" in m})
    assert sites == ["langgraph.attach_context", "langgraph.custom_event", "langgraph.graph_hint",
                     "langgraph.route", "langgraph.routing", "langgraph.start_attributes"]


def test_hidden_inputs_and_outputs_are_not_captured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENINFERENCE_HIDE_INPUTS", "true")
    monkeypatch.setenv("OPENINFERENCE_HIDE_OUTPUTS", "true")
    traced, stop = start_tracing(monkeypatch)
    try:
        react_graph(react_model(streaming=True)).invoke(QUESTION)
    finally:
        stop()

    assert traced.start(traced.one("run"))[c.RUN_INPUT] == REDACTED_VALUE
    assert traced.start(traced.one("tool"))[c.TOOL_ARGUMENTS] == REDACTED_VALUE
    assert traced.one("tool").attributes[c.TOOL_RESULT] == REDACTED_VALUE
    first_llm, second_llm = traced.steps("llm")
    assert not any(k.startswith("llm.input_messages") for k in traced.start(first_llm))
    assert first_llm.attributes["input.value"] == second_llm.attributes["output.value"] == REDACTED_VALUE
    assert {e.attributes[c.TOOL_CALL_ARGUMENTS] for e in traced.events(first_llm, c.EVENT_TOOL_DECISION)} == {
        REDACTED_VALUE}
    assert {e.attributes[c.DELTA_TEXT] for e in traced.events(second_llm, c.EVENT_DELTA)} == {REDACTED_VALUE}
    # What is not content stays: names, kinds, token counts.
    assert second_llm.attributes[c.GEN_AI_OUTPUT_TOKENS] == 4


def test_instrumentor_declares_its_versions_and_entry_point() -> None:
    assert LangGraphInstrumentor().instrumentation_dependencies() == ("langgraph >= 1.0", "langchain-core >= 1.0")
    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "massgen_langgraph"]
    assert ep.load() is LangGraphInstrumentor


def test_scripted_model_replies_in_order_and_reports_usage() -> None:
    model = ScriptedChatModel(replies=[[tool_call("add", {"a": 1, "b": 2})], "The sum is 3."])
    first = model.bind_tools([add]).invoke("What is 1 + 2?")
    second = model.invoke("And then?")
    third = model.invoke("More?")

    assert first.tool_calls == [{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_add", "type": "tool_call"}]
    assert (second.content, third.content) == ("The sum is 3.", "Done.")
    assert first.usage_metadata == {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}
    assert second.response_metadata["token_usage"] == {"prompt_tokens": 2, "completion_tokens": 4,
                                                       "total_tokens": 6}
    streamed = list(ScriptedChatModel(replies=["a b c"], words_per_chunk=2).stream("x"))
    assert [m.content for m in streamed] == ["a b", " c", ""]
    assert streamed[-1].usage_metadata == {"input_tokens": 1, "output_tokens": 3, "total_tokens": 4}
    assert len(model.calls) == 3


def test_a_pydantic_or_dataclass_state_reads_as_its_fields_in_the_runs_task(traced: Traced) -> None:
    import dataclasses

    from pydantic import BaseModel

    class Counter(BaseModel):
        count: int
        note: str = "start"

    @dataclasses.dataclass
    class Box:
        count: int

    for schema, state in ((Counter, Counter(count=0)), (Box, Box(count=0))):
        builder = StateGraph(schema)
        builder.add_node("bump", lambda s: {"count": s.count + 1})
        builder.add_edge(START, "bump")
        builder.compile(name=f"bump_{schema.__name__}").invoke(state)

    tasks = [traced.start(s)[c.RUN_INPUT] for s in traced.steps("run")]
    assert tasks == ['{"count": 0, "note": "start"}', '{"count": 0}']


def test_tracing_a_prompt_model_parser_chain_adds_no_langchain_deprecation_warning(traced: Traced) -> None:
    import warnings

    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    chain = ChatPromptTemplate.from_messages([("user", "tell me about {topic}")]) | ScriptedChatModel(
        replies=["Owls are birds."]) | StrOutputParser()
    builder = StateGraph(MessagesState)
    builder.add_node("write", lambda s: {"messages": [("ai", chain.invoke({"topic": "owls"}))]})
    builder.add_edge(START, "write")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        builder.compile(name="writer").invoke({"messages": [("user", "owls?")]})
    # Untraced, this graph warns about nothing; traced it must not either (the accessor `message.text`
    # is callable, and OpenInference's masking used to call it: the deprecated `.text()` form).
    assert [str(w.message) for w in caught] == []
