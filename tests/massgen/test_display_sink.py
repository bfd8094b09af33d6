"""`DisplaySink` driving a real MassGen display (`SimpleDisplay`) from the live step processor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import massgen.tool  # noqa: F401  # fails loudly if .venv-massgen lacks MassGen
import pytest
from massgen.frontend.displays.simple_display import SimpleDisplay
from opentelemetry.sdk.trace import TracerProvider

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.processor import LiveStepProcessor
from massgen_tracing.massgen import DisplaySink

T0 = 1_800_000_000_000_000_000  # span times are given explicitly so durations in lines are exact
MS = 1_000_000


class Pipeline:
    def __init__(self) -> None:
        self.processor = LiveStepProcessor()
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("test")

    def step(self, name: str, kind: str, step_name: str, *, agent: str | None, at_ms: int, parent: Any = None,
             framework: str = "langgraph", index: int | None = None, **extra: Any) -> Any:
        from opentelemetry import trace

        attrs = c.step_attributes(framework, kind, step_name, index=index, extra=extra or None)
        if agent is not None:
            attrs[c.AGENT_ID] = agent
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(name, context=ctx, attributes=attrs, start_time=T0 + at_ms * MS)

    def show_on(self, sink: DisplaySink) -> None:
        self.processor.add_sink(sink)

    def finish(self, sink: DisplaySink) -> None:
        self.processor.remove_sink(sink, timeout=5.0)  # flushes, then closes the sink


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    p = Pipeline()
    yield p
    p.processor.shutdown()


def two_agent_run(p: Pipeline) -> None:
    """agent_a runs a graph (node → streaming model call → tool decision → tool); agent_b's run fails."""
    run_a = p.step("g", "run", "planner", agent="agent_a", at_ms=0)
    run_b = p.step("b", "run", "checker", agent="agent_b", at_ms=1, framework="smolagents", **{c.STEP_MAX: 3})
    node = p.step("plan", "node", "plan", agent="agent_a", at_ms=2, parent=run_a, index=1)
    llm = p.step("ChatOpenAI", "llm", "gpt-x", agent="agent_a", at_ms=3, parent=node)
    for piece in ("Let me ", "look that ", "up."):
        llm.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: piece})
    llm.add_event(c.EVENT_TOOL_DECISION, {c.TOOL_CALL_NAME: "search", c.TOOL_CALL_ARGUMENTS: '{"q": "otel"}'})
    llm.set_attributes({c.GEN_AI_INPUT_TOKENS: 12, c.GEN_AI_OUTPUT_TOKENS: 5})
    llm.end(end_time=T0 + 250 * MS)
    tool = p.step("search", "tool", "search", agent="agent_a", at_ms=251, parent=node,
                  **{c.TOOL_ARGUMENTS: '{"q": "otel"}'})
    tool.set_attribute(c.TOOL_RESULT, "OpenTelemetry\nspans")
    tool.end(end_time=T0 + 253 * MS)
    node.end(end_time=T0 + 260 * MS)
    run_b.add_event(c.EVENT_PROGRESS, {c.PROGRESS_CURRENT: 1, c.PROGRESS_TOTAL: 3})
    run_b.set_status(c_error("ValueError: no facts"))
    run_b.end(end_time=T0 + 1_500 * MS)
    run_a.end(end_time=T0 + 2_000 * MS)


def c_error(description: str) -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, description)


def test_each_step_appears_in_its_agents_panel_in_order(pipeline: Pipeline) -> None:
    display = SimpleDisplay(["agent_a", "agent_b"])
    sink = DisplaySink(display, delta_interval=60)
    pipeline.show_on(sink)
    two_agent_run(pipeline)
    pipeline.finish(sink)
    assert display.agent_outputs == {
        "agent_a": [
            "▶ langgraph run planner",
            "· ▶ node plan #1",
            "· · ▶ llm gpt-x",
            '· · · ✎ llm gpt-x: "Let me look that up." (3 chunks)',
            '· · · ⋯ llm gpt-x: calls search {"q": "otel"}',
            "· · ✓ llm gpt-x 247ms · tokens in=12 out=5",
            '· · ▶ tool search {"q": "otel"}',
            "· · ✓ tool search 2ms → OpenTelemetry spans",
            "· ✓ node plan #1 258ms",
            "✓ langgraph run planner 2.0s",
        ],
        "agent_b": [
            "▶ smolagents run checker",
            "· ⋯ smolagents run checker: step 1/3",
            "✗ smolagents run checker failed 1.5s: ValueError: no facts",
        ],
    }


def test_lines_use_the_content_types_the_display_knows(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    # SimpleDisplay marks `status` with 📊, `tool` with 🔧 and prints `thinking` as is.
    display = SimpleDisplay(["agent_a", "agent_b"])
    sink = DisplaySink(display, delta_interval=60)
    pipeline.show_on(sink)
    two_agent_run(pipeline)
    pipeline.finish(sink)
    assert capsys.readouterr().out.splitlines() == [
        "[agent_a] 📊 ▶ langgraph run planner",
        "[agent_b] 📊 ▶ smolagents run checker",
        "[agent_a] 📊 · ▶ node plan #1",
        "[agent_a] 📊 · · ▶ llm gpt-x",
        '[agent_a] · · · ✎ llm gpt-x: "Let me look that up." (3 chunks)',
        '[agent_a] 🔧 · · · ⋯ llm gpt-x: calls search {"q": "otel"}',
        "[agent_a] 📊 · · ✓ llm gpt-x 247ms · tokens in=12 out=5",
        '[agent_a] 🔧 · · ▶ tool search {"q": "otel"}',
        "[agent_a] 🔧 · · ✓ tool search 2ms → OpenTelemetry spans",
        "[agent_a] 📊 · ✓ node plan #1 258ms",
        "[agent_b] 📊 · ⋯ smolagents run checker: step 1/3",
        "[agent_b] 📊 ✗ smolagents run checker failed 1.5s: ValueError: no facts",
        "[agent_a] 📊 ✓ langgraph run planner 2.0s",
    ]


def test_token_deltas_of_a_model_call_show_as_one_line_before_its_end(pipeline: Pipeline) -> None:
    display = SimpleDisplay(["agent_a"])
    sink = DisplaySink(display, delta_interval=60)
    pipeline.show_on(sink)
    llm = pipeline.step("m", "llm", "gpt-x", agent="agent_a", at_ms=0)
    for _ in range(50):
        llm.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: "a"})
    llm.end(end_time=T0 + 5 * MS)
    pipeline.finish(sink)
    assert display.agent_outputs["agent_a"] == [
        "▶ llm gpt-x",
        '· ✎ llm gpt-x: "' + "a" * 50 + '" (50 chunks)',
        "✓ llm gpt-x 5ms",
    ]


def test_steps_without_an_agent_go_to_the_default_agent_or_nowhere(pipeline: Pipeline) -> None:
    display = SimpleDisplay(["solo"])
    shown, unshown = DisplaySink(display, agent_id="solo"), DisplaySink(SimpleDisplay(["solo"]))
    pipeline.show_on(shown)
    pipeline.show_on(unshown)
    pipeline.step("g", "run", "graph", agent=None, at_ms=0).end(end_time=T0 + 3 * MS)
    pipeline.finish(shown)
    pipeline.finish(unshown)
    assert display.agent_outputs == {"solo": ["▶ langgraph run graph", "✓ langgraph run graph 3ms"]}
    assert unshown._display.agent_outputs == {"solo": []}


def test_a_failing_display_never_reaches_the_traced_program(pipeline: Pipeline) -> None:
    class BrokenDisplay(SimpleDisplay):
        def update_agent_content(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("display is broken")

    sink = DisplaySink(BrokenDisplay(["agent_a"]))
    pipeline.show_on(sink)
    run = pipeline.step("g", "run", "graph", agent="agent_a", at_ms=0)  # would raise here if it leaked
    run.end(end_time=T0 + MS)
    assert pipeline.processor.force_flush(5000)
    assert pipeline.processor.stats() == {"DisplaySink": {"delivered": 0, "dropped": 0, "failed": 2, "pending": 0}}
    pipeline.finish(sink)
