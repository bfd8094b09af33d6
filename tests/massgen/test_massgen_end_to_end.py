"""The real MassGen 0.1.97 CLI with the example configs, offline: framework steps appear live in MassGen's
display under the right agent, and MassGen's spans and the framework's form one trace.

The four CLI runs start together (MassGen takes ~20 s just to import) and each test waits for its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import massgen.tool  # noqa: F401  # fails loudly if .venv-massgen lacks MassGen
import pytest
from mg_cli import MassGenRun, comparable

from massgen_tracing.testing.otlp_receiver import ReceivedSpan

QUESTION = "What does tracing give a MassGen team?"
SECRET = "sk-proj-TaskKeyAAbbCCddEEff0011223344556677889900xyz"
SECRET_QUESTION = f"Rotate the key {SECRET} in the config"
NOTES = ("Every framework step is an OpenTelemetry span; MassGen shows them live. "
         "MassGen runs several agents on one task; they answer, vote and present.")
FACTS = ("OpenTelemetry traces connect MassGen's coordination to every framework step. "
         "MassGen agents vote for the best answer before one of them presents it.")

GRAPH_LINES = [
    "▶ langgraph run research_graph",
    "· ▶ node agent #1",
    "· · ▶ llm gpt-4o-mini",
    f'· · · ⋯ llm gpt-4o-mini: calls search_notes {{"query": "{QUESTION}"}}',
    "· · ✓ llm gpt-4o-mini <t> · tokens in=7 out=9",
    "· · ⋯ node agent #1: route → tools",
    "· ✓ node agent #1 <t>",
    "· ▶ node tools #2",
    f'· · ▶ tool search_notes {{"query": "{QUESTION}"}}',
    # Quoted text is cut at 100 characters.
    "· · ✓ tool search_notes <t> → Every framework step is an OpenTelemetry span; MassGen shows them live. "
    "MassGen runs several agents…",
    "· ✓ node tools #2 <t>",
    "· ▶ node agent #3",
    "· · ▶ llm gpt-4o-mini",
    "· · · ✎ llm gpt-4o-mini: …",
    "· · ✓ llm gpt-4o-mini <t> · tokens in=30 out=26",
    "· · ⋯ node agent #3: route → __end__",
    "· ✓ node agent #3 <t>",
    "✓ langgraph run research_graph <t>",
]
AGENT_LINES = [
    "▶ smolagents run fact_checker",
    "· ⋯ smolagents run fact_checker: step 1/4",
    "· ▶ action fact_checker #1/4",
    "· · ▶ llm gpt-4o-mini",
    "· · ✓ llm gpt-4o-mini <t> · tokens in=532 out=9",
    f'· · ⋯ action fact_checker #1/4: calls lookup_fact {{"topic": "{QUESTION}"}}',
    f'· · ▶ tool lookup_fact {{"topic": "{QUESTION}"}}',
    "· · ✓ tool lookup_fact <t> → OpenTelemetry traces connect MassGen's coordination to every framework step. "
    "MassGen agents vote fo…",
    "· ✓ action fact_checker #1/4 <t>",
    "· ⋯ smolagents run fact_checker: step 2/4",
    "· ▶ action fact_checker #2/4",
    "· · ▶ llm gpt-4o-mini",
    "· · ✓ llm gpt-4o-mini <t> · tokens in=573 out=25",
    '· · ⋯ action fact_checker #2/4: calls final_answer {"answer": "Checked: OpenTelemetry traces connect '
    "MassGen's coordination to ever…",
    '· · ▶ final_answer {"answer": "Checked: OpenTelemetry traces connect MassGen\'s coordination to every '
    "framework step. M…",
    "· · ✓ final_answer <t> → Checked: OpenTelemetry traces connect MassGen's coordination to every framework "
    "step. MassGen agent…",
    "· ✓ action fact_checker #2/4 <t>",
    "✓ smolagents run fact_checker <t>",
]
# The framework steps as spans: (name, step kind, parent span name).
GRAPH_SPANS = [
    ("invoke_workflow research_graph", "run", "custom_tool.custom_tool__research_graph"),
    ("agent", "node", "invoke_workflow research_graph"),
    ("chat gpt-4o-mini", "llm", "agent"),
    ("tools", "node", "invoke_workflow research_graph"),
    ("execute_tool search_notes", "tool", "tools"),
    ("agent", "node", "invoke_workflow research_graph"),
    ("chat gpt-4o-mini", "llm", "agent"),
]
AGENT_SPANS = [
    ("invoke_agent fact_checker", "run", "custom_tool.custom_tool__fact_checker"),
    ("Step 1", "action", "invoke_agent fact_checker"),
    ("chat gpt-4o-mini", "llm", "Step 1"),
    ("execute_tool lookup_fact", "tool", "Step 1"),
    ("Step 2", "action", "invoke_agent fact_checker"),
    ("chat gpt-4o-mini", "llm", "Step 2"),
    ("final_answer", "final_answer", "Step 2"),
]

# Everything under MassGen's tool span when its Logfire tracing is on: MassGen's inner span of the call,
# the steps, and Logfire's two spans of each OpenAI client call.
_OPENAI = ["Chat Completion with {request_data[model]!r}",
           "streaming response from {request_data[model]!r} took {duration:.2f}s"]
GRAPH_ALL_SPANS = ["tool.custom.custom_tool__research_graph", *[name for name, _, _ in GRAPH_SPANS],
                   *_OPENAI, *_OPENAI]
AGENT_ALL_SPANS = ["tool.custom.custom_tool__fact_checker", *[name for name, _, _ in AGENT_SPANS], *_OPENAI, *_OPENAI]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MassGenRun]]:
    scenarios = [
        # MassGen's own tracing on (the ignored MASSGEN_LOGFIRE_ENABLED, honoured by our tools) and ours.
        MassGenRun("one_trace", "team.yaml", QUESTION, {"MASSGEN_TRACING": "1", "MASSGEN_TRACING_CONSOLE": "off",
                                                        "MASSGEN_LOGFIRE_ENABLED": "true"}),
        # MassGen's tracing off: MASSGEN_TRACING=1 alone.
        MassGenRun("ours_only", "team.yaml", QUESTION, {"MASSGEN_TRACING": "1", "MASSGEN_TRACING_CONSOLE": "off"}),
        # No tracing switched on at all: the tools still stream their steps (and export nothing).
        MassGenRun("plain", "smolagents_tool.yaml", QUESTION, {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}),
        # Our sink raises on every record.
        MassGenRun("broken_sink", "langgraph_tool.yaml", QUESTION, {}, guard=True),
        # A key in the task, MassGen's tracing and ours on: MassGen's own spans carry the task.
        MassGenRun("secret_task", "langgraph_tool.yaml", SECRET_QUESTION, {
            "MASSGEN_TRACING": "1", "MASSGEN_TRACING_CONSOLE": "off", "MASSGEN_LOGFIRE_ENABLED": "true"}),
    ]
    started = {run.name: run.start(tmp_path_factory.mktemp(run.name)) for run in scenarios}
    yield started
    for run in started.values():
        run.finish()


def finished(runs: dict[str, MassGenRun], name: str) -> MassGenRun:
    run = runs[name].finish()
    assert run.returncode == 0, run.describe()
    return run


def assert_shown_live(run: MassGenRun, agent: str, framework: str, tool: str, expected: list[str]) -> None:
    lines = run.step_lines(agent)
    assert comparable(lines) == expected, run.describe()
    # Live: everything up to the last model call's start was on screen while that call was still
    # waiting for its (delayed) reply, i.e. while the framework, and so the tool, was still running.
    last_model_call = run.responder.calls(framework)[-1].received
    last_start = max(i for i, line in enumerate(lines) if line.text.lstrip("· ").startswith("▶ llm"))
    early = [round(line.at - last_model_call, 3) for line in lines[: last_start + 1]]
    assert [t < run.framework_delay for t in early] == [True] * len(early), early
    # And every step line came before MassGen showed the tool's result.
    result = run.tool_result_line(agent, tool)
    assert [line.at <= result.at for line in lines] == [True] * len(lines)


def steps_under(spans: list[ReceivedSpan], root: ReceivedSpan) -> list[tuple[str, str | None, str]]:
    by_id = {s.span_id: s for s in spans}
    under: list[ReceivedSpan] = []
    for s in sorted(spans, key=lambda s: s.start_time_ns):
        node = s
        while node.parent_span_id in by_id and node.span_id != root.span_id:
            node = by_id[node.parent_span_id]
        if node.span_id == root.span_id and s is not root and s.attributes.get("massgen.step.kind"):
            under.append(s)
    return [(s.name, s.attributes["massgen.step.kind"], by_id[s.parent_span_id or ""].name) for s in under]


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    [span] = [s for s in spans if s.name == name]
    return span


def test_each_framework_step_appears_live_under_its_agent_in_a_two_agent_team(runs: dict[str, MassGenRun]) -> None:
    run = finished(runs, "one_trace")
    assert_shown_live(run, "researcher", "langgraph", "research_graph", GRAPH_LINES)
    assert_shown_live(run, "checker", "smolagents", "fact_checker", AGENT_LINES)
    assert run.tool_result_line("researcher", "research_graph").text == \
        f"Results for Calling custom_tool__research_graph: The notes say: {NOTES}"
    assert run.tool_result_line("checker", "fact_checker").text == \
        f"Results for Calling custom_tool__fact_checker: Checked: {FACTS}"


def test_massgen_spans_and_framework_spans_form_one_trace(runs: dict[str, MassGenRun]) -> None:
    run = finished(runs, "one_trace")
    spans = list(run.spans)  # exported before the process exited
    sessions = [s for s in spans if s.name == "coordination.session"]
    # MassGen 0.1.97 opens a first session span and drops it at once (GeneratorExit): a one-span trace.
    [aborted] = [s for s in sessions if s.status_code == 2]
    [session] = [s for s in sessions if s.status_code != 2]
    assert aborted.events[0][1]["exception.type"] == "GeneratorExit"
    assert {s.trace_id for s in spans} == {session.trace_id, aborted.trace_id}
    assert [s.name for s in spans if s.trace_id == aborted.trace_id] == ["coordination.session"]
    by_id = {s.span_id: s for s in spans}

    for agent, tool, run_name, expected, everything in [
            ("researcher", "research_graph", "invoke_workflow research_graph", GRAPH_SPANS, GRAPH_ALL_SPANS),
            ("checker", "fact_checker", "invoke_agent fact_checker", AGENT_SPANS, AGENT_ALL_SPANS)]:
        tool_span = one(spans, f"custom_tool.custom_tool__{tool}")
        assert tool_span.attributes["massgen.agent_id"] == agent
        # MassGen's own nesting above its tool span varies (its round span or the session itself);
        # what matters is that it leads up to the coordination session.
        assert _below(tool_span, session, by_id)
        assert one(spans, run_name).parent_span_id == tool_span.span_id
        assert steps_under(spans, tool_span) == expected
        below = [s for s in spans if _below(s, tool_span, by_id)]
        assert sorted(s.name for s in below) == sorted(everything)
        # Every span the framework run produced (its steps and Logfire's OpenAI client spans)
        # says whose it is; MassGen's own inner `tool.custom.*` span is not part of the run.
        assert {s.attributes.get("massgen.agent.id") for s in below if s.name != f"tool.custom.custom_tool__{tool}"} \
            == {agent}


def _below(span: ReceivedSpan, ancestor: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> bool:
    node = span
    while node.parent_span_id in by_id:
        node = by_id[node.parent_span_id]
        if node.span_id == ancestor.span_id:
            return True
    return False


def test_with_massgen_tracing_off_our_tracing_alone_gives_each_tool_call_its_trace(
        runs: dict[str, MassGenRun]) -> None:
    run = finished(runs, "ours_only")
    assert_shown_live(run, "researcher", "langgraph", "research_graph", GRAPH_LINES)
    assert_shown_live(run, "checker", "smolagents", "fact_checker", AGENT_LINES)
    spans = list(run.spans)  # exported before the process exited
    roots = sorted((s for s in spans if s.parent_span_id is None), key=lambda s: s.name)
    assert [(r.name, r.attributes["massgen.agent.id"]) for r in roots] == [
        ("execute_tool make_agent", "checker"), ("execute_tool make_graph", "researcher")]
    for root, expected in zip(roots, (AGENT_SPANS, GRAPH_SPANS), strict=True):
        in_trace = [s for s in spans if s.trace_id == root.trace_id]
        stand_in = [(name, kind, root.name if parent.startswith("custom_tool.") else parent)
                    for name, kind, parent in expected]
        assert steps_under(spans, root) == stand_in
        assert {s.attributes.get("massgen.agent.id") for s in in_trace} == {root.attributes["massgen.agent.id"]}
        assert {s.resource["service.name"] for s in in_trace} == {"massgen"}
    assert len({s.trace_id for s in spans}) == 2


def test_without_any_tracing_switched_on_the_tool_still_streams_its_steps(runs: dict[str, MassGenRun]) -> None:
    run = finished(runs, "plain")
    assert comparable(run.step_lines("checker")) == AGENT_LINES, run.describe()
    assert run.receiver.spans == []


def test_a_raising_sink_never_breaks_the_massgen_run(runs: dict[str, MassGenRun]) -> None:
    run = finished(runs, "broken_sink")
    assert run.step_lines("researcher") == []
    assert run.tool_result_line("researcher", "research_graph").text == \
        f"Results for Calling custom_tool__research_graph: The notes say: {NOTES}"
    assert [line.text for line in run.lines if line.text.startswith("🎯 FINAL ANSWER:")] == \
        [f"🎯 FINAL ANSWER: Final answer. Answer: The notes say: {NOTES}"]
    # Reported once, not per record.
    assert run.stderr.count("massgen-tracing: internal error in sink CallbackSink") == 1, run.describe()


def test_a_key_in_the_task_is_masked_in_every_exported_span_massgens_own_included(
        runs: dict[str, MassGenRun]) -> None:
    # MassGen's spans that started before the first tool call (the coordination's task, the first model
    # call's messages) once went out unmasked: the pipeline joined MassGen's provider at that call.
    # It joins when MassGen loads the tools now.
    run = finished(runs, "secret_task")
    spans = list(run.spans)
    leaks = sorted({s.name for s in spans if SECRET in repr((s.attributes, s.events))})
    assert leaks == []
    [started] = [s for s in spans if s.name == "Coordination event: coordination_started"]
    assert "Rotate the key [REDACTED:openai_key] in the config" in repr(started.attributes)
