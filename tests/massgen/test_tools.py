"""The MassGen framework tools in-process: live step lines, the answer, the event loop kept free, the
agent id on every span, nesting under the caller's span, concurrent calls, failures, MassGen's schema."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import massgen.tool  # noqa: F401  # fails loudly if .venv-massgen lacks MassGen
import pytest
from massgen.tool._manager import ToolManager
from mg_support import EXAMPLES, timeless
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from massgen_tracing._internal import convention as c
from massgen_tracing._internal import setup
from massgen_tracing.massgen import _render, langgraph_tool, smolagents_tool
from massgen_tracing.massgen.testing import MassGenResponder
from massgen_tracing.testing.openai_server import ScriptedOpenAIServer

GRAPH = f"{EXAMPLES / 'graph_factory.py'}:make_graph"
AGENT = f"{EXAMPLES / 'agent_factory.py'}:make_agent"
FRAMEWORK_DELAY = 0.6  # each framework model reply waits this long: a blocked loop would show it
MAX_LOOP_GAP = 0.3  # half of it: room for a busy machine, far below a blocked loop
NOTE = "Every framework step is an OpenTelemetry span; MassGen shows them live."
FACT = "OpenTelemetry traces connect MassGen's coordination to every framework step."

GRAPH_LINES = [
    "▶ langgraph run research_graph",
    "· ▶ node agent #1",
    "· · ▶ llm gpt-4o-mini",
    '· · · ⋯ llm gpt-4o-mini: calls search_notes {"query": "Tell me about tracing"}',
    "· · ✓ llm gpt-4o-mini <t> · tokens in=4 out=6",
    "· · ⋯ node agent #1: route → tools",
    "· ✓ node agent #1 <t>",
    "· ▶ node tools #2",
    '· · ▶ tool search_notes {"query": "Tell me about tracing"}',
    f"· · ✓ tool search_notes <t> → {NOTE}",
    "· ✓ node tools #2 <t>",
    "· ▶ node agent #3",
    "· · ▶ llm gpt-4o-mini",
    f'· · · ✎ llm gpt-4o-mini: "The notes say: {NOTE}" (14 chunks)',
    "· · ✓ llm gpt-4o-mini <t> · tokens in=15 out=14",
    "· · ⋯ node agent #3: route → __end__",
    "· ✓ node agent #3 <t>",
    "✓ langgraph run research_graph <t>",
]


@dataclass
class Call:
    lines: list[tuple[float, str]]  # (time.time() on arrival, text) of the is_log results
    result: str  # the one result that is not a log
    loop_gaps: list[float]  # how long the event loop went without running our heartbeat

    @property
    def texts(self) -> list[str]:
        return [timeless(text) for _, text in self.lines]


@pytest.fixture(scope="module")
def exported() -> Iterator[InMemorySpanExporter]:
    """One pipeline for the module (configure() is process-wide), exporting to memory."""
    assert setup.current() is None
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    setup.configure(sinks=[], tracer_provider=provider, instrument=False)
    yield exporter
    setup.shutdown()


@pytest.fixture
def spans(exported: InMemorySpanExporter) -> InMemorySpanExporter:
    exported.clear()
    return exported


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedOpenAIServer, MassGenResponder]]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    # One line per model call's streamed text, however slow this machine streams.
    monkeypatch.setattr(_render, "DELTA_INTERVAL_S", 60.0)
    responder = MassGenResponder(framework_delay=FRAMEWORK_DELAY)
    with ScriptedOpenAIServer(responder) as server:
        yield server, responder


async def drive(tool: Any, **kwargs: Any) -> Call:
    """Run one tool call the way MassGen consumes it, with a heartbeat on the same event loop."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = loop.time()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    lines: list[tuple[float, str]] = []
    results: list[str] = []
    gen: AsyncIterator[Any] = tool(**kwargs)
    async for item in gen:
        text = item.output_blocks[0].data
        if item.is_log:
            lines.append((time.time(), text))
        else:
            results.append(text)
    done.set()
    await beat
    assert len(results) == 1, results
    return Call(lines, results[0], gaps)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def tree(finished: tuple[ReadableSpan, ...]) -> list[tuple[str, str | None, str | None]]:
    """(span name, step kind, parent span name) in start order."""
    ids = by_name(finished)
    return [(s.name, (s.attributes or {}).get(c.STEP_KIND),
             ids[s.parent.span_id].name if s.parent is not None and s.parent.span_id in ids else None)
            for s in sorted(finished, key=lambda s: s.start_time or 0)]


def runs_of(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def test_langgraph_tool_streams_each_step_live_then_returns_the_graphs_answer(model: Any, spans: Any) -> None:
    server, responder = model
    call = asyncio.run(drive(langgraph_tool, task="Tell me about tracing", factory=GRAPH,
                             factory_kwargs={"base_url": server.base_url}, agent_id="agent_a"))
    assert call.texts == GRAPH_LINES
    assert call.result == f"The notes say: {NOTE}"
    # Live: every line up to the second model call's start was out while that call still waited for its
    # (delayed) reply, i.e. while the graph was running. Measured against the reply's delay, not the
    # request's arrival: lines reach the loop a few ms after the step, and the tools node takes about as long.
    second_model_call = responder.calls("langgraph")[1].received
    second_start = GRAPH_LINES.index("· · ▶ llm gpt-4o-mini", 3)
    early = [round(t - second_model_call, 3) for t, _ in call.lines[: second_start + 1]]
    assert [t < FRAMEWORK_DELAY for t in early] == [True] * len(early), early


def test_smolagents_tool_runs_on_a_worker_thread_and_never_blocks_the_event_loop(model: Any, spans: Any) -> None:
    server, responder = model
    call = asyncio.run(drive(smolagents_tool, task="Check a fact about tracing", factory=AGENT,
                             factory_kwargs={"base_url": server.base_url}, agent_id="agent_b"))
    assert call.texts == [
        "▶ smolagents run fact_checker",
        "· ⋯ smolagents run fact_checker: step 1/4",
        "· ▶ action fact_checker #1/4",
        "· · ▶ llm gpt-4o-mini",
        "· · ✓ llm gpt-4o-mini <t> · tokens in=530 out=7",
        '· · ⋯ action fact_checker #1/4: calls lookup_fact {"topic": "Check a fact about tracing"}',
        '· · ▶ tool lookup_fact {"topic": "Check a fact about tracing"}',
        f"· · ✓ tool lookup_fact <t> → {FACT}",
        "· ✓ action fact_checker #1/4 <t>",
        "· ⋯ smolagents run fact_checker: step 2/4",
        "· ▶ action fact_checker #2/4",
        "· · ▶ llm gpt-4o-mini",
        "· · ✓ llm gpt-4o-mini <t> · tokens in=556 out=12",
        # Event lines quote at most 100 characters.
        '· · ⋯ action fact_checker #2/4: calls final_answer {"answer": "Checked: OpenTelemetry traces connect '
        "MassGen's coordination to ever…",
        f'· · ▶ final_answer {{"answer": "Checked: {FACT}"}}',
        f"· · ✓ final_answer <t> → Checked: {FACT}",
        "· ✓ action fact_checker #2/4 <t>",
        "✓ smolagents run fact_checker <t>",
    ]
    assert call.result == f"Checked: {FACT}"
    # Two model replies of 0.6 s each: run on the loop, they would stall the heartbeat that long.
    assert len(responder.calls("smolagents")) == 2
    assert max(call.loop_gaps) < MAX_LOOP_GAP


def test_sync_langgraph_mode_streams_the_same_steps_without_blocking_the_event_loop(model: Any, spans: Any) -> None:
    server, _ = model
    call = asyncio.run(drive(langgraph_tool, task="Tell me about tracing", factory=GRAPH, sync=True,
                             factory_kwargs={"base_url": server.base_url}, agent_id="agent_a"))
    assert call.texts == GRAPH_LINES
    assert max(call.loop_gaps) < MAX_LOOP_GAP


def test_every_span_of_a_call_carries_the_agent_id_under_a_tool_call_span(model: Any, spans: Any) -> None:
    server, _ = model
    asyncio.run(drive(langgraph_tool, task="Tell me about tracing", factory=GRAPH,
                      factory_kwargs={"base_url": server.base_url}, agent_id="agent_a"))
    finished = spans.get_finished_spans()
    # No span was current (MassGen's tracing is off): the call's own span stands in for MassGen's.
    assert tree(finished) == [
        ("execute_tool make_graph", None, None),
        ("invoke_workflow research_graph", "run", "execute_tool make_graph"),
        ("agent", "node", "invoke_workflow research_graph"),
        ("chat gpt-4o-mini", "llm", "agent"),
        ("tools", "node", "invoke_workflow research_graph"),
        ("execute_tool search_notes", "tool", "tools"),
        ("agent", "node", "invoke_workflow research_graph"),
        ("chat gpt-4o-mini", "llm", "agent"),
    ]
    assert {(s.attributes or {}).get(c.AGENT_ID) for s in finished} == {"agent_a"}
    assert len({s.context.trace_id for s in finished}) == 1
    root = next(s for s in finished if s.parent is None)
    assert dict(root.attributes or {}) == {c.AGENT_ID: "agent_a", c.GEN_AI_OPERATION: "execute_tool",
                                           c.GEN_AI_TOOL_NAME: "make_graph", c.OPENINFERENCE_SPAN_KIND: "TOOL"}


def test_the_run_nests_under_the_callers_current_span_without_a_stand_in(model: Any, spans: Any) -> None:
    server, _ = model
    tracer = setup.current().provider.get_tracer("massgen")  # type: ignore[union-attr]

    async def as_massgen_does() -> Call:
        # MassGen iterates a tool's results inside its `custom_tool.<name>` span.
        with tracer.start_as_current_span("custom_tool.custom_tool__research"):
            return await drive(langgraph_tool, task="Tell me about tracing", factory=GRAPH,
                               factory_kwargs={"base_url": server.base_url}, agent_id="agent_a")

    asyncio.run(as_massgen_does())
    finished = spans.get_finished_spans()
    assert tree(finished)[:2] == [("custom_tool.custom_tool__research", None, None),
                                  ("invoke_workflow research_graph", "run", "custom_tool.custom_tool__research")]
    # No stand-in `execute_tool make_graph`: the only tool span is the graph's own tool step.
    assert [s.name for s in finished if s.name.startswith("execute_tool")] == ["execute_tool search_notes"]
    assert not trace.get_current_span().get_span_context().is_valid


def test_two_agents_calling_at_once_each_see_only_their_own_steps(model: Any, spans: Any) -> None:
    server, _ = model

    async def both() -> tuple[Call, Call]:
        kwargs = {"task": "Tell me about tracing", "factory": GRAPH, "factory_kwargs": {"base_url": server.base_url}}
        a, b = await asyncio.gather(drive(langgraph_tool, agent_id="agent_a", **kwargs),
                                    drive(langgraph_tool, agent_id="agent_b", **kwargs))
        return a, b

    a, b = asyncio.run(both())
    assert a.texts == GRAPH_LINES
    assert b.texts == GRAPH_LINES
    finished = spans.get_finished_spans()
    runs = {(s.attributes or {}).get(c.AGENT_ID): s.context.trace_id for s in finished
            if s.name == "invoke_workflow research_graph"}
    for agent, trace_id in runs.items():
        assert {(s.attributes or {}).get(c.AGENT_ID) for s in finished if s.context.trace_id == trace_id} == {agent}
    assert sorted(runs) == ["agent_a", "agent_b"]


def test_a_failing_graph_ends_with_a_failed_step_line_and_an_error_result(model: Any, spans: Any) -> None:
    call = asyncio.run(drive(langgraph_tool, task="anything", factory="mg_factories:make_failing_graph",
                             agent_id="agent_a"))
    assert call.texts == [
        "▶ langgraph run failing_graph",
        "· ▶ node lookup #1",
        "· · ⋯ node lookup #1: exception ValueError: no notes today",
        "· ✗ node lookup #1 failed <t>",
        "· ⋯ langgraph run failing_graph: exception ValueError: no notes today",
        "✗ langgraph run failing_graph failed <t>",
    ]
    assert call.result == "Error: LangGraph make_failing_graph failed: ValueError: no notes today"


def test_an_error_result_quoting_a_key_is_masked_like_the_step_lines(model: Any, spans: Any) -> None:
    call = asyncio.run(drive(langgraph_tool, task="anything", factory="mg_factories:make_graph_leaking_a_key",
                             agent_id="agent_a"))
    assert call.result == ("Error: LangGraph make_graph_leaking_a_key failed: "
                           "PermissionError: denied for [REDACTED:openai_key]")
    assert "sk-proj-" not in " ".join(call.texts)


def test_a_factory_that_cannot_be_found_is_the_tool_result_not_a_crash(model: Any, spans: Any) -> None:
    call = asyncio.run(drive(smolagents_tool, task="anything", factory="no_such_module:make", agent_id="agent_a"))
    assert call.texts == []
    assert call.result == (f"Error: smolagents make failed: ModuleNotFoundError: factory 'no_such_module:make': "
                           f"no module 'no_such_module' importable from {os.getcwd()} (preset_args.factory takes "
                           "'package.module:function' or 'path/to/file.py:function')")


@pytest.mark.parametrize(("tool", "presets", "error"), [
    (langgraph_tool, {},
     "ValueError: langgraph_tool needs preset_args.factory: 'package.module:function' or 'path/to/file.py:function' "
     "naming a function that returns a compiled LangGraph graph (or a compiled LangGraph graph itself)"),
    (langgraph_tool, {"factory": "mg_factories:make_ehco_graph"},
     "AttributeError: factory 'mg_factories:make_ehco_graph': 'mg_factories' has no 'make_ehco_graph'; "
     "did you mean 'make_echo_graph'?"),
    (langgraph_tool, {"factory": "mg_factories:make_settings"},
     "TypeError: factory 'mg_factories:make_settings' returned a dict, not a compiled LangGraph graph"),
    (smolagents_tool, {"factory": "mg_factories:make_echo_graph"},
     "TypeError: factory 'mg_factories:make_echo_graph' returned a CompiledStateGraph, not a smolagents agent: "
     "use langgraph_tool"),
    (smolagents_tool, {"factory": "mg_factories:ECHO_GRAPH"},
     "TypeError: factory 'mg_factories:ECHO_GRAPH' is a compiled LangGraph graph, not a smolagents agent: "
     "use langgraph_tool"),
    (langgraph_tool, {"factory": "mg_factories:make_echo_graph", "factory_kwargs": "model=x"},
     "TypeError: preset_args.factory_kwargs 'model=x' must be a mapping of keyword arguments for the factory, "
     "e.g. {model: gpt-4o-mini}"),
    (langgraph_tool, {"factory": "mg_factories:make_echo_graph", "sync": "maybe"},
     "ValueError: preset_args.sync 'maybe' must be true or false (also yes/no, on/off, 1/0)"),
    (langgraph_tool, {"factory": "mg_factories:make_echo_graph", "factory_kwargs": {"modle": "gpt-4o-mini"}},
     "TypeError: preset_args.factory_kwargs {'modle': 'gpt-4o-mini'} do not fit make_echo_graph(): "
     "got an unexpected keyword argument 'modle'"),
    (langgraph_tool, {"factory": "mg_factories:make_echo_graph", "input_key": "question", "output_key": "reply"},
     "ValueError: preset_args.output_key 'reply' is not in the graph's final state (it has: question, answer)"),
], ids=["no factory", "misspelt", "returns a dict", "graph factory to smolagents", "graph object to smolagents",
        "kwargs not a mapping", "sync not a flag", "kwargs misspelt", "output key missing"])
def test_a_wrong_preset_is_an_error_result_naming_it_its_value_and_what_is_allowed(
        model: Any, spans: Any, caplog: pytest.LogCaptureFixture, tool: Any, presets: dict[str, Any],
        error: str) -> None:
    call = asyncio.run(drive(tool, task="ping", agent_id="agent_a", **presets))
    what = "LangGraph" if tool is langgraph_tool else "smolagents"
    label = presets.get("factory", ":tool").rpartition(":")[2]
    assert call.result == f"Error: {what} {label} failed: {error}"
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]


@pytest.mark.parametrize("value", [True, "true", "Yes", 1])
def test_sync_accepts_what_yaml_writes_for_yes(model: Any, spans: Any, value: Any) -> None:
    main = threading.get_ident()
    seen: list[int] = []
    from massgen_tracing.massgen import _tools

    real = _tools.graph_answer

    def answer(state: Any, output_key: str | None) -> str:
        seen.append(threading.get_ident())
        return real(state, output_key)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_tools, "graph_answer", answer)
        call = asyncio.run(drive(langgraph_tool, task="ping", factory="mg_factories:make_echo_graph",
                                 input_key="question", output_key="answer", sync=value, agent_id="agent_a"))
    assert call.result == "echo: ping"
    assert seen and seen[0] != main  # on a worker thread: sync mode


def test_input_and_output_keys_map_the_task_and_answer_for_non_message_graphs(model: Any, spans: Any) -> None:
    call = asyncio.run(drive(langgraph_tool, task="ping", factory="mg_factories:make_echo_graph",
                             input_key="question", output_key="answer", agent_id="agent_a"))
    assert call.result == "echo: ping"
    assert call.texts == ["▶ langgraph run echo_graph", "· ▶ node answer #1", "· ✓ node answer #1 <t>",
                          "✓ langgraph run echo_graph <t>"]


def test_closing_the_call_early_interrupts_the_smolagents_run(model: Any, spans: Any) -> None:
    server, responder = model

    async def first_line_only() -> str:
        gen = smolagents_tool(task="Check a fact about tracing", factory=AGENT,
                              factory_kwargs={"base_url": server.base_url}, agent_id="agent_b")
        first = await gen.__anext__()
        await gen.aclose()  # what MassGen does when it restarts an agent mid-tool
        return str(first.output_blocks[0].data)

    assert asyncio.run(first_line_only()) == "▶ smolagents run fact_checker"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not runs_of(spans, "invoke_agent fact_checker"):
        time.sleep(0.05)
    [run] = runs_of(spans, "invoke_agent fact_checker")
    # The step in flight finishes its model call; the next step never starts.
    assert len(responder.calls("smolagents")) == 1
    assert run.status.status_code is trace.StatusCode.ERROR


def test_our_rendering_failing_costs_the_lines_not_the_answer(model: Any, spans: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = model
    monkeypatch.delenv("MASSGEN_TRACING_STRICT")  # as in production: our errors are logged, not raised

    def broken(self: Any, record: Any, now: float) -> list[Any]:
        raise RuntimeError("renderer is broken")

    monkeypatch.setattr(_render.StepRenderer, "feed", broken)
    call = asyncio.run(drive(langgraph_tool, task="Tell me about tracing", factory=GRAPH,
                             factory_kwargs={"base_url": server.base_url}, agent_id="agent_a"))
    assert call.texts == []
    assert call.result == f"The notes say: {NOTE}"
    assert [s.name for s in spans.get_finished_spans() if s.name == "invoke_workflow research_graph"] == [
        "invoke_workflow research_graph"]


def test_massgen_offers_the_model_only_the_task_and_injects_the_agent_id(model: Any, spans: Any) -> None:
    server, _ = model
    manager = ToolManager()
    manager.add_tool_function(func=langgraph_tool, preset_args={"factory": GRAPH,
                                                                "factory_kwargs": {"base_url": server.base_url}})
    [schema] = manager.fetch_tool_schemas()
    assert schema["function"]["name"] == "custom_tool__langgraph_tool"
    assert schema["function"]["parameters"] == {
        "type": "object",
        "properties": {"task": {"type": "string", "description": "The task or question for the workflow, "
                                                                "stated completely."}},
        "required": ["task"],
    }

    async def through_massgen() -> list[Any]:
        request = {"name": "custom_tool__langgraph_tool", "input": {"task": "Tell me about tracing"}}
        return [r async for r in manager.execute_tool(request, execution_context={"agent_id": "agent_m",
                                                                                   "agent_cwd": os.getcwd()})]

    results = asyncio.run(through_massgen())
    assert [timeless(r.output_blocks[0].data) for r in results if r.is_log] == GRAPH_LINES
    assert [r.output_blocks[0].data for r in results if not r.is_log] == [f"The notes say: {NOTE}"]
    assert {(s.attributes or {}).get(c.AGENT_ID) for s in spans.get_finished_spans()} == {"agent_m"}


def test_no_thread_outlives_its_call(model: Any, spans: Any) -> None:
    server, _ = model
    asyncio.run(drive(smolagents_tool, task="Check a fact about tracing", factory=AGENT,
                      factory_kwargs={"base_url": server.base_url}, agent_id="agent_b"))
    ours = ("massgen-tracing-tool", "massgen-tracing-CallbackSink")
    deadline = time.monotonic() + 5  # the sink's thread exits right after handing over its last record
    while time.monotonic() < deadline and any(t.name in ours for t in threading.enumerate()):
        time.sleep(0.02)
    assert [t.name for t in threading.enumerate() if t.name in ours] == []
