"""Fan-out, parallel branches, subgraphs, retries and user spans: every span under the right parent."""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy, Send
from lg_tracing import NEEDS_PY311_ASYNC_CONTEXT, Traced
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from massgen_tracing._internal import convention as c
from massgen_tracing.testing.langchain_models import ScriptedChatModel


class FanState(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


class Topic(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


def fanout_graph(model: ScriptedChatModel, failures: dict[str, int]) -> CompiledStateGraph:
    """plan -Send-> work x N (each runs the `researcher` subgraph, which nests `checker`) -> flaky."""
    checker = StateGraph(Topic)

    async def verify(state: Topic) -> dict[str, Any]:
        return {"notes": [f"checked {state['topic']}"]}

    checker.add_node("verify", verify)
    checker.add_edge(START, "verify")

    researcher = StateGraph(Topic)

    async def research(state: Topic) -> dict[str, Any]:
        reply = await model.ainvoke(state["topic"])
        return {"notes": [str(reply.content)]}

    researcher.add_node("research", research)
    researcher.add_node("check", checker.compile(name="checker"))  # a subgraph as a node
    researcher.add_edge(START, "research")
    researcher.add_edge("research", "check")
    research_graph = researcher.compile(name="researcher")

    async def plan(state: FanState) -> dict[str, Any]:
        return {}

    def fan_out(state: FanState) -> list[Send]:
        return [Send("work", {"topic": t, "notes": []}) for t in state["topics"]]

    async def work(state: Topic) -> dict[str, Any]:
        out = await research_graph.ainvoke(state)  # a subgraph invoked from inside a node
        return {"notes": out["notes"]}

    async def flaky(state: FanState) -> dict[str, Any]:
        failures["flaky"] = failures.get("flaky", 0) + 1
        if failures["flaky"] == 1:
            raise ConnectionError("flaky once")  # retried by the default policy
        return {"notes": ["flaky done"]}

    builder = StateGraph(FanState)
    builder.add_node("plan", plan)
    builder.add_node("work", work)
    builder.add_node("flaky", flaky, retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["work"])
    builder.add_edge("work", "flaky")
    builder.add_edge("flaky", END)
    return builder.compile(name="fanout")


WORK_TREE = """\
  node work
    run researcher
      node check
        run checker
          node verify
      node research
        llm scripted-model"""

FANOUT_TREE = f"""\
run fanout
  node flaky
  node flaky
  node plan
{WORK_TREE}
{WORK_TREE}
{WORK_TREE}"""

# By span name: every run, the subgraphs too, is `invoke_workflow <graph>`; nodes are their names.
WORK_NAMES = """\
  work
    invoke_workflow researcher
      check
        invoke_workflow checker
          verify
      research
        chat scripted-model"""

FANOUT_NAMES = f"""\
invoke_workflow fanout
  flaky
  flaky
  plan
{WORK_NAMES}
{WORK_NAMES}
{WORK_NAMES}"""


@NEEDS_PY311_ASYNC_CONTEXT
def test_async_fanout_with_send_subgraphs_and_retry_nests_every_step(traced: Traced) -> None:
    model = ScriptedChatModel(responder=lambda messages: f"notes on {messages[-1].content}")
    failures: dict[str, int] = {}
    out = asyncio.run(fanout_graph(model, failures).ainvoke({"topics": ["a", "b", "c"], "notes": []}))

    assert set(out["notes"]) == {"notes on a", "notes on b", "notes on c", "checked a", "checked b",
                                 "checked c", "flaky done"}
    assert traced.render(sort_siblings=True) == FANOUT_TREE
    assert traced.render(sort_siblings=True, names=True) == FANOUT_NAMES
    traced.assert_one_trace()

    works = traced.steps("node", "work")
    assert sorted(traced.start(w)[c.NODE_PATH] for w in works) == [
        f"('__pregel_push', {i}, False)" for i in range(3)]
    assert {(traced.start(w)[c.STEP_INDEX], traced.start(w)[c.NODE_TRIGGERS]) for w in works} == {
        (2, ("__pregel_push",))}
    plan = traced.one("node", "plan")
    assert [e.attributes for e in traced.events(plan, c.EVENT_ROUTE)] == [
        {c.ROUTE_TARGETS: ("work", "work", "work")}]
    # Each subgraph run and its nodes sit under the node that ran it, whatever the interleaving.
    for run in traced.steps("run", "researcher"):
        assert traced.start(traced.parent_of(run))[c.STEP_NAME] == "work"
        research = [s for s in traced.steps("node", "research") if traced.parent_of(s) == run]
        assert len(research) == 1


def test_retried_node_shows_every_attempt_with_the_failure_that_caused_the_retry(traced: Traced) -> None:
    model = ScriptedChatModel(responder=lambda messages: "ok")
    asyncio.run(fanout_graph(model, {}).ainvoke({"topics": ["a"], "notes": []}))

    first, second = traced.steps("node", "flaky")
    assert [traced.start(s)[c.ATTEMPT] for s in (first, second)] == [1, 2]
    assert first.status.status_code == StatusCode.ERROR
    assert (first.status.description or "").startswith("ConnectionError('flaky once')")
    assert [e.attributes["exception.message"] for e in traced.events(first, "exception")] == ["flaky once"]
    assert second.status.status_code == StatusCode.OK
    assert [(e.attributes, e.span_open) for e in traced.events(second, c.EVENT_RETRY)] == [
        ({c.RETRY_ATTEMPT: 2, c.RETRY_ERROR: "ConnectionError: flaky once"}, True)]
    assert traced.one("run", "fanout").status.status_code == StatusCode.OK


class Branches(TypedDict):
    seen: Annotated[list[str], operator.add]


def parallel_graph(is_async: bool, threads: set[int]) -> CompiledStateGraph:
    def make(name: str) -> Any:
        if is_async:
            async def anode(state: Branches) -> dict[str, Any]:
                with trace.get_tracer("user.code").start_as_current_span(f"{name}-work"):
                    await asyncio.sleep(0.02)
                return {"seen": [name]}
            return anode

        def node(state: Branches) -> dict[str, Any]:
            threads.add(threading.get_ident())
            with trace.get_tracer("user.code").start_as_current_span(f"{name}-work"):
                time.sleep(0.02)
            return {"seen": [name]}
        return node

    builder = StateGraph(Branches)
    for name in ("a", "b", "join"):
        builder.add_node(name, make(name))
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    builder.add_edge(["a", "b"], "join")
    builder.add_edge("join", END)
    return builder.compile(name="parallel")


PARALLEL_TREE = """\
run parallel
  node a
    · a-work
  node b
    · b-work
  node join
    · join-work"""


@pytest.mark.parametrize("is_async", [False, pytest.param(True, marks=NEEDS_PY311_ASYNC_CONTEXT)],
                         ids=["threads", "asyncio"])
def test_parallel_branches_and_their_user_spans_nest_under_their_own_node(traced: Traced, is_async: bool) -> None:
    threads: set[int] = set()
    graph = parallel_graph(is_async, threads)
    out = asyncio.run(graph.ainvoke({"seen": []})) if is_async else graph.invoke({"seen": []})

    assert sorted(out["seen"]) == ["a", "b", "join"]
    assert traced.render(sort_siblings=True) == PARALLEL_TREE
    traced.assert_one_trace()
    if not is_async:
        assert len(threads) >= 2  # the branches really ran on different threads
    a, b = traced.steps("node", "a")[0], traced.steps("node", "b")[0]
    assert traced.start(a)[c.STEP_INDEX] == traced.start(b)[c.STEP_INDEX] == 1
    assert a.start_time < b.end_time and b.start_time < a.end_time  # they overlapped


@pytest.mark.parametrize("is_async", [False, pytest.param(True, marks=NEEDS_PY311_ASYNC_CONTEXT)],
                         ids=["sync", "async"])
def test_user_spans_nest_under_the_node_and_never_leak_into_the_caller(traced: Traced, is_async: bool) -> None:
    model = ScriptedChatModel(replies=["fetched"])
    inner_parents: list[str] = []

    def check_current() -> None:
        inner_parents.append(trace.get_current_span().name)  # type: ignore[attr-defined]

    class S(TypedDict):
        text: str

    if is_async:
        async def fetch(state: S) -> dict[str, Any]:
            tracer = trace.get_tracer("user.code")
            with tracer.start_as_current_span("download"):
                with tracer.start_as_current_span("parse"):
                    check_current()
                reply = await model.ainvoke("go")
            return {"text": str(reply.content)}
    else:
        def fetch(state: S) -> dict[str, Any]:  # type: ignore[misc]
            tracer = trace.get_tracer("user.code")
            with tracer.start_as_current_span("download"):
                with tracer.start_as_current_span("parse"):
                    check_current()
                reply = model.invoke("go")
            return {"text": str(reply.content)}

    builder = StateGraph(S)
    builder.add_node("fetch", fetch)
    builder.add_edge(START, "fetch")
    graph = builder.compile(name="fetcher")

    before = trace.get_current_span()
    with trace.get_tracer("user.code").start_as_current_span("caller"):
        out = asyncio.run(graph.ainvoke({"text": ""})) if is_async else graph.invoke({"text": ""})
        assert trace.get_current_span().name == "caller"  # type: ignore[attr-defined]
    assert trace.get_current_span() is before

    assert out == {"text": "fetched"}
    assert traced.render() == """\
· caller
  run fetcher
    node fetch
      · download
        · parse
      llm scripted-model"""
    traced.assert_one_trace()  # the graph joined the caller's trace
    assert inner_parents == ["parse"]


def test_spans_made_inside_a_tool_nest_under_the_tool(traced: Traced) -> None:
    from langchain_core.tools import tool
    from langgraph.graph import MessagesState
    from langgraph.prebuilt import ToolNode, tools_condition

    from massgen_tracing.testing.langchain_models import tool_call

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        with trace.get_tracer("user.code").start_as_current_span("http-get"):
            return "found"

    model = ScriptedChatModel(replies=[[tool_call("lookup", {"query": "x"})], "done"])
    bound = model.bind_tools([lookup])
    builder = StateGraph(MessagesState)
    builder.add_node("agent", lambda s: {"messages": [bound.invoke(s["messages"])]})
    builder.add_node("tools", ToolNode([lookup]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    builder.compile(name="g").invoke({"messages": [("user", "q")]})

    http = next(s for s in traced.spans if s.name == "http-get")
    assert traced.parent_of(http) == traced.one("tool", "lookup")
    traced.assert_one_trace()


def test_functional_api_tasks_are_nodes_under_the_entrypoint(traced: Traced) -> None:
    from langgraph.checkpoint.memory import MemorySaver
    from langgraph.func import entrypoint, task

    @task
    def double(x: int) -> int:
        return x * 2

    @entrypoint(checkpointer=MemorySaver())
    def workflow(xs: list[int]) -> int:
        return sum(f.result() for f in [double(x) for x in xs])

    assert workflow.invoke([1, 2, 3], {"configurable": {"thread_id": "f-1"}}) == 12
    assert traced.render() == "run LangGraph\n  node workflow\n    node double\n    node double\n    node double"
    traced.assert_one_trace()
    assert sorted(traced.start(s)[c.NODE_TRIGGERS] for s in traced.steps("node", "double")) == [
        ("__pregel_push",)] * 3
