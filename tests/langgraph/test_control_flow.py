"""Interrupts and resumes, failures, the recursion limit, Command routing and custom stream data."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Literal, TypedDict

import pytest
from langgraph.checkpoint.memory import MemorySaver
from langgraph.config import get_stream_writer
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Send, StreamWriter, interrupt
from lg_tracing import Traced, start_tracing
from opentelemetry.trace import StatusCode

from massgen_tracing._internal import convention as c
from massgen_tracing.langgraph._tracer import LangGraphTracer


class Draft(TypedDict):
    draft: str
    approved: str


def approval_graph() -> CompiledStateGraph:
    def write(state: Draft) -> dict[str, Any]:
        return {"draft": "hello"}

    def review(state: Draft) -> dict[str, Any]:
        answer = interrupt({"question": "approve?", "draft": state["draft"]})
        return {"approved": answer}

    builder = StateGraph(Draft)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", END)
    return builder.compile(name="approval", checkpointer=MemorySaver())


def test_interrupt_shows_the_node_and_run_waiting_not_failed(traced: Traced) -> None:
    out = approval_graph().invoke({"draft": "", "approved": ""}, {"configurable": {"thread_id": "th-1"}})

    assert out["__interrupt__"][0].value == {"question": "approve?", "draft": "hello"}
    assert traced.render() == "run approval\n  node write\n  node review"
    run, review = traced.one("run"), traced.one("node", "review")
    payload = '[{"question": "approve?", "draft": "hello"}]'
    for span in (run, review):
        assert span.status.status_code == StatusCode.OK
        assert span.attributes[c.INTERRUPTED] is True
        assert [(e.name, e.attributes, e.span_open) for e in traced.events(span)] == [
            (c.EVENT_INTERRUPT, {c.CUSTOM_DATA: payload}, True)]
    assert c.INTERRUPTED not in traced.one("node", "write").attributes
    assert {s.attributes[c.SESSION_ID] for s in traced.spans} == {"th-1"}


def test_resumed_run_records_the_resume_in_the_same_session(traced: Traced) -> None:
    graph = approval_graph()
    config = {"configurable": {"thread_id": "th-2"}}
    graph.invoke({"draft": "", "approved": ""}, config)
    out = graph.invoke(Command(resume="yes"), config)

    assert out == {"draft": "hello", "approved": "yes"}
    assert traced.render() == "run approval\n  node write\n  node review\nrun approval\n  node review"
    first, resumed = traced.steps("run")
    assert traced.start(first)[c.RUN_INPUT] == '{"draft": "", "approved": ""}'
    assert c.RUN_INPUT not in traced.start(resumed)  # a resume has no new task
    assert [(e.name, e.attributes, e.span_open) for e in traced.events(resumed)] == [
        (c.EVENT_RESUME, {c.CUSTOM_DATA: "yes"}, True)]
    assert c.INTERRUPTED not in resumed.attributes
    assert resumed.status.status_code == StatusCode.OK
    assert {traced.start(r)[c.SESSION_ID] for r in (first, resumed)} == {"th-2"}
    assert first.context.trace_id != resumed.context.trace_id  # one trace per run, joined by session.id


def test_interrupt_and_resume_show_without_langgraph_lifecycle_callbacks(
        traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    # langgraph < 1.1 has no on_interrupt/on_resume: the run learns it from its nodes and its input.
    monkeypatch.setattr(LangGraphTracer, "on_interrupt", lambda self, event: None)
    monkeypatch.setattr(LangGraphTracer, "on_resume", lambda self, event: None)
    graph = approval_graph()
    config = {"configurable": {"thread_id": "th-old"}}
    graph.invoke({"draft": "", "approved": ""}, config)
    graph.invoke(Command(resume="no"), config)

    paused, resumed = traced.steps("run")
    assert paused.attributes[c.INTERRUPTED] is True
    assert [e.attributes for e in traced.events(paused, c.EVENT_INTERRUPT)] == [
        {c.CUSTOM_DATA: '[{"question": "approve?", "draft": "hello"}]'}]
    assert [e.attributes for e in traced.events(resumed, c.EVENT_RESUME)] == [{c.CUSTOM_DATA: "no"}]


@pytest.mark.skipif(importlib.util.find_spec("langgraph.callbacks") is None,
                    reason="breakpoints reach tracers through LangGraph's lifecycle callbacks (langgraph >= 1.1)")
def test_resume_after_a_breakpoint_is_a_resume_without_data(traced: Traced) -> None:
    builder = StateGraph(Draft)
    builder.add_node("write", lambda s: {"draft": "v1"})
    builder.add_node("publish", lambda s: {"approved": "yes"})
    builder.add_edge(START, "write")
    builder.add_edge("write", "publish")
    graph = builder.compile(name="gated", checkpointer=MemorySaver(), interrupt_before=["publish"])
    config = {"configurable": {"thread_id": "th-4"}}
    graph.invoke({"draft": "", "approved": ""}, config)
    assert graph.invoke(None, config) == {"draft": "v1", "approved": "yes"}

    assert traced.render() == "run gated\n  node write\nrun gated\n  node publish"
    paused, resumed = traced.steps("run")
    assert paused.attributes[c.INTERRUPTED] is True
    assert [e.attributes for e in traced.events(paused, c.EVENT_INTERRUPT)] == [{c.CUSTOM_DATA: "[]"}]
    assert [e.attributes for e in traced.events(resumed, c.EVENT_RESUME)] == [{}]


def test_interrupt_inside_a_subgraph_marks_every_enclosing_step(traced: Traced) -> None:
    inner = StateGraph(Draft)
    inner.add_node("ask", lambda s: {"approved": interrupt("ok?")})
    inner.add_edge(START, "ask")
    outer = StateGraph(Draft)
    outer.add_node("delegate", inner.compile(name="inner"))
    outer.add_edge(START, "delegate")
    out = outer.compile(name="outer", checkpointer=MemorySaver()).invoke(
        {"draft": "", "approved": ""}, {"configurable": {"thread_id": "th-3"}})

    assert out["__interrupt__"][0].value == "ok?"
    assert traced.render() == "run outer\n  node delegate\n    run inner\n      node ask"
    for span in traced.spans:
        assert span.status.status_code == StatusCode.OK
        assert span.attributes[c.INTERRUPTED] is True
        assert [e.attributes for e in traced.events(span)] == [{c.CUSTOM_DATA: '["ok?"]'}]
        assert traced.events(span, "exception") == []


class Count(TypedDict):
    n: int


def test_failing_node_marks_node_and_run_as_errors_with_the_exception(traced: Traced) -> None:
    def boom(state: Count) -> dict[str, Any]:
        raise ValueError("bad input")

    builder = StateGraph(Count)
    builder.add_node("boom", boom)
    builder.add_edge(START, "boom")
    with pytest.raises(ValueError, match="bad input"):
        builder.compile(name="broken").invoke({"n": 0})

    assert traced.render() == "run broken\n  node boom"
    traced.assert_one_trace()
    for span in (traced.one("run"), traced.one("node")):
        assert span.status.status_code == StatusCode.ERROR
        assert [(e.attributes["exception.type"], e.attributes["exception.message"], e.span_open)
                for e in traced.events(span, "exception")] == [("ValueError", "bad input", True)]


@pytest.mark.parametrize("code", [None, 0, 3, "bye"])
def test_sys_exit_in_a_node_fails_its_steps_only_with_a_failing_status(traced: Traced, code: Any) -> None:
    def leave(state: Count) -> dict[str, Any]:
        sys.exit(code)

    builder = StateGraph(Count)
    builder.add_node("leave", leave)
    builder.add_edge(START, "leave")
    with pytest.raises(SystemExit) as exited:
        builder.compile(name="leaving").invoke({"n": 0})

    assert exited.value.code == code
    assert traced.render() == "run leaving\n  node leave"
    traced.assert_one_trace()
    failed = code not in (None, 0)  # as Python's own exit status: 0 for None and 0, 1 or 3 otherwise
    for span in (traced.one("run"), traced.one("node")):
        assert span.status.status_code == (StatusCode.ERROR if failed else StatusCode.OK)
        assert [e.attributes["exception.type"] for e in traced.events(span, "exception")] == (
            ["SystemExit"] if failed else [])


def test_recursion_limit_is_an_error_on_the_run(traced: Traced) -> None:
    builder = StateGraph(Count)
    builder.add_node("loop", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "loop")
    builder.add_edge("loop", "loop")
    with pytest.raises(GraphRecursionError):
        builder.compile(name="forever").invoke({"n": 0}, {"recursion_limit": 3})

    run = traced.one("run")
    assert traced.start(run)[c.STEP_MAX] == 3
    assert [traced.start(n)[c.STEP_INDEX] for n in traced.steps("node")] == [1, 2, 3]
    assert {n.status.status_code for n in traced.steps("node")} == {StatusCode.OK}
    assert run.status.status_code == StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in traced.events(run, "exception")] == [
        "langgraph.errors.GraphRecursionError"]


def test_step_max_is_the_recursion_limit_only_when_the_user_set_one(traced: Traced) -> None:
    inner = StateGraph(Count)
    inner.add_node("bump", lambda s: {"n": s["n"] + 1})
    inner.add_edge(START, "bump")
    outer = StateGraph(Count)
    outer.add_node("delegate", inner.compile(name="inner"))
    outer.add_edge(START, "delegate")
    graph = outer.compile(name="outer")

    graph.invoke({"n": 0})  # LangGraph's default limit (10007) is a safety net, not a step budget
    graph.invoke({"n": 0}, {"recursion_limit": 7})  # the subgraph runs under the same limit
    graph.with_config(recursion_limit=5).invoke({"n": 0})  # bound with with_config
    graph.with_config(recursion_limit=5).invoke({"n": 0}, {"recursion_limit": 6})  # the call's wins

    assert [(r.name, traced.start(r).get(c.STEP_MAX)) for r in traced.steps("run")] == [
        ("invoke_workflow outer", None), ("invoke_workflow inner", None),
        ("invoke_workflow outer", 7), ("invoke_workflow inner", 7),
        ("invoke_workflow outer", 5), ("invoke_workflow inner", 5),
        ("invoke_workflow outer", 6), ("invoke_workflow inner", 6),
    ]


def test_command_goto_is_a_route_on_the_node_that_returned_it(traced: Traced) -> None:
    def triage(state: Count) -> Command[Literal["urgent", "later"]]:
        return Command(goto="urgent", update={"n": 1})

    builder = StateGraph(Count)
    builder.add_node("triage", triage)
    builder.add_node("urgent", lambda s: {"n": 2})
    builder.add_node("later", lambda s: {"n": 3})
    builder.add_edge(START, "triage")
    assert builder.compile(name="router").invoke({"n": 0}) == {"n": 2}

    assert traced.render() == "run router\n  node triage\n  node urgent"
    triage_span = traced.one("node", "triage")
    assert triage_span.attributes[c.ROUTE] == ("urgent",)
    assert [(e.name, e.attributes) for e in traced.events(triage_span)] == [
        (c.EVENT_ROUTE, {c.ROUTE_TARGETS: ("urgent",)})]
    assert triage_span.status.status_code == StatusCode.OK
    # Decided as the node returned: the event is inside the node's span, not after its end.
    (route,) = triage_span.events
    assert triage_span.start_time <= route.timestamp <= triage_span.end_time


def test_conditional_route_with_a_path_map_records_the_node_names(traced: Traced) -> None:
    builder = StateGraph(Count)
    builder.add_node("check", lambda s: {"n": s["n"] + 1})
    builder.add_node("retry", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "check")
    builder.add_conditional_edges("check", lambda s: "again" if s["n"] < 2 else "stop",
                                  {"again": "retry", "stop": END})
    builder.add_edge("retry", "check")
    builder.compile(name="mapped").invoke({"n": 0})

    assert [s.attributes[c.ROUTE] for s in traced.steps("node", "check")] == [("retry",), ("__end__",)]


def test_stream_writer_data_become_custom_events_on_the_writing_node(traced: Traced) -> None:
    def fetch(state: Count) -> dict[str, Any]:
        writer = get_stream_writer()
        writer({"progress": 50})
        writer("half way")
        return {"n": 1}

    def report(state: Count, writer: StreamWriter) -> dict[str, Any]:
        writer({"progress": 100})
        return {"n": 2}

    builder = StateGraph(Count)
    builder.add_node("fetch", fetch)
    builder.add_node("report", report)
    builder.add_edge(START, "fetch")
    builder.add_edge("fetch", "report")
    streamed = list(builder.compile(name="writer").stream({"n": 0}, stream_mode="custom"))

    assert streamed == [{"progress": 50}, "half way", {"progress": 100}]
    fetch_span, report_span = traced.one("node", "fetch"), traced.one("node", "report")
    assert [(e.name, e.attributes, e.span_open) for e in traced.events(fetch_span)] == [
        (c.EVENT_CUSTOM, {c.CUSTOM_DATA: '{"progress": 50}'}, True),
        (c.EVENT_CUSTOM, {c.CUSTOM_DATA: "half way"}, True),
    ]
    assert [e.attributes for e in traced.events(report_span)] == [{c.CUSTOM_DATA: '{"progress": 100}'}]


def test_custom_events_are_recorded_even_when_nobody_streams_them(traced: Traced) -> None:
    builder = StateGraph(Count)
    builder.add_node("work", lambda s: (get_stream_writer()({"step": 1}), {"n": 1})[1])
    builder.add_edge(START, "work")
    assert builder.compile(name="quiet").invoke({"n": 0}) == {"n": 1}

    assert [e.attributes for e in traced.events(traced.one("node"), c.EVENT_CUSTOM)] == [
        {c.CUSTOM_DATA: '{"step": 1}'}]


def test_a_routing_function_has_no_span_and_its_own_calls_nest_under_the_deciding_node(traced: Traced) -> None:
    from opentelemetry import trace

    from massgen_tracing.testing.langchain_models import ScriptedChatModel

    judge = ScriptedChatModel(replies=["finish"])

    def supervisor(state: Count) -> str:
        with trace.get_tracer("user.code").start_as_current_span("deliberate"):
            return "done" if judge.invoke("next?").content == "finish" else "work"

    builder = StateGraph(Count)
    builder.add_node("plan", lambda s: {"n": 1})
    builder.add_node("work", lambda s: {"n": 2})
    builder.add_node("done", lambda s: {"n": 3})
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", supervisor, ["work", "done"])
    assert builder.compile(name="supervised").invoke({"n": 0}) == {"n": 3}

    assert traced.render() == """\
run supervised
  node plan
    · deliberate
    llm scripted-model
  node done"""
    traced.assert_one_trace()
    # The model call is a LangChain child of the (span-less) routing function, so it goes to the node.
    assert traced.parent_of(traced.one("llm")) == traced.one("node", "plan")
    assert traced.one("node", "plan").attributes[c.ROUTE] == ("done",)


def test_a_conditional_entry_point_is_a_route_on_the_start_node(traced: Traced) -> None:
    builder = StateGraph(Count)
    builder.add_node("small", lambda s: {"n": 1})
    builder.add_node("big", lambda s: {"n": 2})
    builder.add_conditional_edges(START, lambda s: "big" if s["n"] > 5 else "small", ["small", "big"])
    assert builder.compile(name="entry").invoke({"n": 9}) == {"n": 2}

    assert traced.render() == "run entry\n  node __start__\n  node big"
    start = traced.one("node", "__start__")
    assert traced.start(start)[c.STEP_INDEX] == 0
    assert start.attributes[c.ROUTE] == ("big",)
    assert [e.attributes for e in traced.events(start, c.EVENT_ROUTE)] == [{c.ROUTE_TARGETS: ("big",)}]



def test_a_graph_compiled_before_tracing_started_still_hides_routing_functions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Compiled first, as a module does at import time before the program calls configure(): its
    # branches hold LangGraph's own `_route`, from before the routing hook was installed.
    builder = StateGraph(Count)
    builder.add_node("plan", lambda s: {"n": 1})
    builder.add_node("work", lambda s: {"n": 2})
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", lambda s: [Send("work", s)] if s["n"] else END, ["work", END])
    graph = builder.compile(name="early")
    traced, stop = start_tracing(monkeypatch)
    try:
        assert graph.invoke({"n": 0}) == {"n": 2}
    finally:
        stop()
    assert traced.render() == """\
run early
  node plan
  node work"""
    traced.assert_one_trace()
    assert traced.one("node", "plan").attributes[c.ROUTE] == ("work",)


class Grid(TypedDict, total=False):
    grid: dict[Any, str]
    n: int


def test_values_json_cannot_encode_still_make_a_run_custom_events_and_interrupts(traced: Traced) -> None:
    # Tuple keys: the run's task, a stream writer's data and an interrupt's payload once failed to
    # encode, which dropped the run's whole identity (its nodes became roots) and both events, each
    # with a traceback on stderr. Now they are shown as Python shows them.
    def mark(state: Grid) -> dict[str, Any]:
        get_stream_writer()({(0, 0): "cell"})
        return {"n": len(state["grid"])}

    def ask(state: Grid) -> dict[str, Any]:
        return {"n": interrupt({("row", 1): "confirm?"})}

    builder = StateGraph(Grid)
    builder.add_node("mark", mark)
    builder.add_node("ask", ask)
    builder.add_edge(START, "mark")
    builder.add_edge("mark", "ask")
    graph = builder.compile(name="grid", checkpointer=MemorySaver())
    graph.invoke({"grid": {(0, 0): "x", (0, 1): "o"}}, {"configurable": {"thread_id": "g"}})

    assert traced.render() == "run grid\n  node mark\n  node ask"
    assert traced.start(traced.one("run"))[c.RUN_INPUT] == "{'grid': {(0, 0): 'x', (0, 1): 'o'}}"
    assert [e.attributes for e in traced.events(traced.one("node", "mark"))] == [
        {c.CUSTOM_DATA: "{(0, 0): 'cell'}"}]
    assert [(e.name, e.attributes) for e in traced.events(traced.one("node", "ask"))] == [
        (c.EVENT_INTERRUPT, {c.CUSTOM_DATA: "[{('row', 1): 'confirm?'}]"})]


@pytest.mark.parametrize(("value", "shown"), [
    ({(1, 2): "a"}, "{(1, 2): 'a'}"),
    (10 ** 5000, "<int that cannot be shown>"),  # over Python's 4300-digit limit for str() and repr()
    ([1, {"x": 2}], '[1, {"x": 2}]'),
], ids=["tuple keys", "huge int", "plain json"])
def test_json_text_never_raises_and_shows_what_json_cannot_encode(value: Any, shown: str) -> None:
    assert c.json_text(value) == shown


def test_json_text_shows_a_cycle_and_a_value_whose_str_raises() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    assert c.json_text(cycle) == "[1, [...]]"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert c.json_text({"v": Broken()}) == "<dict that cannot be shown>"


def test_a_thread_id_that_is_not_a_string_is_the_session_id_as_text_without_sdk_warnings(
        traced: Traced, caplog: pytest.LogCaptureFixture) -> None:
    # `thread_id=uuid.uuid4()` is common; OpenInference wrote it as is at the end: the SDK warned on
    # stderr for every run ("Invalid type <class 'uuid.UUID'> for attribute value"), and an int id was
    # a string at start but an int at end.
    import uuid

    graph = approval_graph()
    thread = uuid.UUID("8e41cdb7-8034-4828-98d0-9e8a91003bd4")
    with caplog.at_level("WARNING"):
        graph.invoke({"draft": "", "approved": ""}, {"configurable": {"thread_id": thread}})
        graph.invoke({"draft": "", "approved": ""}, {"configurable": {"thread_id": 42}})
    assert [r.getMessage() for r in caplog.records] == []
    assert sorted(s.attributes[c.SESSION_ID] for s in traced.spans) == ["42"] * 3 + [str(thread)] * 3
    assert sorted(traced.start(s)[c.SESSION_ID] for s in traced.spans) == ["42"] * 3 + [str(thread)] * 3
