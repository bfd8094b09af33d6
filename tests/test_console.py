"""The terminal views: StepTree state, the plain line format, the live tree and the sink factory."""

from __future__ import annotations

import builtins
import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Text
from rich.tree import Tree

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.console import (
    PRINT_CHILDREN,
    UNICODE,
    LiveConsoleSink,
    PlainConsoleSink,
    StepTree,
    make_console_sink,
)
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.sinks import read_jsonl

DATA = Path(__file__).parent / "data"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


_BUILTIN_INPUT = builtins.input


def start(span: str, parent: str | None, at_ms: float, framework: str, kind: str, name: str, *,
          trace: str = "t1", index: int | None = None, extra: dict[str, Any] | None = None) -> StepRecord:
    return StepRecord("start", T0 + int(at_ms * MS), trace, span, parent, f"{kind}.{name}",
                      c.step_attributes(framework, kind, name, index=index, extra=extra))


def event(span: str, at_ms: float, name: str, attrs: dict[str, Any], *, count: int = 1,
          trace: str = "t1", parent: str | None = None) -> StepRecord:
    return StepRecord("event", T0 + int(at_ms * MS), trace, span, parent, "", attrs, event=name, count=count)


def end(first: StepRecord, at_ms: float, *, status: str = "ok", error: str | None = None,
        attrs: dict[str, Any] | None = None) -> StepRecord:
    return StepRecord("end", T0 + int(at_ms * MS), first.trace_id, first.span_id, first.parent_span_id,
                      first.span_name, {**first.attributes, **(attrs or {})}, start_time_ns=first.time_ns,
                      status=status, error=error)  # type: ignore[arg-type]


def langgraph_run() -> list[StepRecord]:
    """run → node agent (llm streaming, deciding on a tool) → node tools (tool, then an error)."""
    run = start("r1", None, 0, "langgraph", "run", "my_graph",
                extra={c.STEP_MAX: 25, c.RUN_INPUT: "what is\nx?"})
    agent = start("n1", "r1", 1, "langgraph", "node", "agent", index=1)
    llm = start("l1", "n1", 2, "langgraph", "llm", "gpt-4o")
    tools = start("n2", "r1", 61, "langgraph", "node", "tools", index=2)
    tool = start("s1", "n2", 62, "langgraph", "tool", "search", extra={c.TOOL_ARGUMENTS: '{"q": "x"}'})
    boom = {"exception.type": "ValueError", "exception.message": "boom"}
    return [
        run, agent, llm,
        event("l1", 10, c.EVENT_DELTA, {c.DELTA_TEXT: "Hel"}),
        event("l1", 20, c.EVENT_DELTA, {c.DELTA_TEXT: "lo\nworld"}, count=3),
        event("l1", 50, c.EVENT_TOOL_DECISION,
              {c.TOOL_CALL_NAME: "search", c.TOOL_CALL_ARGUMENTS: '{"q": "x"}'}),
        end(llm, 54, attrs={c.GEN_AI_INPUT_TOKENS: 12, c.GEN_AI_OUTPUT_TOKENS: 8}),
        event("n1", 59, c.EVENT_ROUTE, {c.ROUTE_TARGETS: ["tools"]}),
        end(agent, 60, attrs={c.ROUTE: ["tools"]}),
        tools, tool,
        end(tool, 70, attrs={c.TOOL_RESULT: "42"}),
        event("n2", 72, c.EVENT_RETRY, {c.RETRY_ATTEMPT: 1, c.RETRY_ERROR: "ValueError: boom"}),
        event("n2", 74, c.EVENT_EXCEPTION, boom),
        end(tools, 75, status="error", error="ValueError: boom"),
        end(run, 80, status="error", error="ValueError: boom"),
    ]


def smolagents_run() -> list[StepRecord]:
    """run → planning → action 1/3 with progress (tool, final_answer)."""
    run = start("a1", None, 0, "smolagents", "run", "my_agent", trace="t2",
                extra={c.STEP_MAX: 3, c.RUN_INPUT: "2+2?"})
    plan = start("p1", "a1", 1, "smolagents", "planning", "my_agent", trace="t2", index=1)
    action = start("s9", "a1", 1500, "smolagents", "action", "my_agent", trace="t2", index=1,
                   extra={c.STEP_MAX: 3})
    tool = start("c1", "s9", 1600, "smolagents", "tool", "calc", trace="t2",
                 extra={c.TOOL_ARGUMENTS: '{"expr": "2+2"}'})
    final = start("f1", "s9", 1700, "smolagents", "final_answer", "final_answer", trace="t2",
                  extra={c.TOOL_ARGUMENTS: '{"answer": 4}'})
    return [
        run, plan,
        end(plan, 1400, attrs={c.PLAN: "add"}),
        event("a1", 1500, c.EVENT_PROGRESS, {c.PROGRESS_CURRENT: 1, c.PROGRESS_TOTAL: 3}, trace="t2"),
        action,
        event("s9", 1550, c.EVENT_PROGRESS,
              {c.PROGRESS_CURRENT: 1, c.PROGRESS_TOTAL: 3, c.PROGRESS_MESSAGE: "calling calc"}, trace="t2"),
        tool,
        end(tool, 1650),
        final,
        end(final, 1710),
        end(action, 1720),
        end(run, 1730, attrs={c.GEN_AI_INPUT_TOKENS: 100, c.GEN_AI_OUTPUT_TOKENS: 20}),
    ]


def plain(records: list[StepRecord], **kwargs: Any) -> str:
    buf = io.StringIO()
    sink = PlainConsoleSink(buf, show_time=False, **kwargs)
    for r in records:
        sink.handle(r)
    sink.close()
    return buf.getvalue()


def render(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=False)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return str(out)


def feed(tree: StepTree, clock: FakeClock, records: list[StepRecord]) -> None:
    for r in records:
        clock.now = r.time_ns
        tree.feed(r)


LANGGRAPH_PLAIN = """\
▶ langgraph run my_graph "what is\\nx?"
  ▶ node agent #1
    ▶ llm gpt-4o
    ⋯ llm gpt-4o "Hel"
    ⋯ llm gpt-4o "lo\\nworld" (3 chunks)
    ⋯ llm gpt-4o calls search {"q": "x"}
    ✓ llm gpt-4o 52ms in=12 out=8
  ⋯ node agent #1 route → tools
  ✓ node agent #1 59ms in=12 out=8 → tools
  ▶ node tools #2
    ▶ tool search {"q": "x"}
    ✓ tool search 8ms
  ⋯ node tools #2 retry 1: ValueError: boom
  ⋯ node tools #2 exception ValueError: boom
  ✗ node tools #2 14ms ValueError: boom
✗ langgraph run my_graph 80ms 4 steps in=12 out=8 ValueError: boom
"""

SMOLAGENTS_PLAIN = """\
▶ smolagents run my_agent "2+2?"
  ▶ planning my_agent #1
  ✓ planning my_agent #1 1.4s
⋯ smolagents run my_agent step 1/3
  ▶ action my_agent #1/3
  ⋯ action my_agent #1/3 step 1/3 calling calc
    ▶ tool calc {"expr": "2+2"}
    ✓ tool calc 50ms
    ▶ final_answer {"answer": 4}
    ✓ final_answer 10ms
  ✓ action my_agent #1/3 220ms
✓ smolagents run my_agent 1.7s 4 steps in=100 out=20
"""


# --- the plain sink -------------------------------------------------------------------------------------


def test_plain_output_of_a_langgraph_run_is_one_indented_line_per_record() -> None:
    assert plain(langgraph_run()) == LANGGRAPH_PLAIN


def test_plain_output_of_a_smolagents_run_shows_step_numbers_and_progress() -> None:
    assert plain(smolagents_run()) == SMOLAGENTS_PLAIN


def test_plain_lines_start_with_the_records_own_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        buf = io.StringIO()
        sink = PlainConsoleSink(buf, clock=FakeClock(0))
        for r in langgraph_run()[:2]:
            sink.handle(r)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert buf.getvalue() == ('22:13:20.000 ▶ langgraph run my_graph "what is\\nx?"\n'
                              "22:13:20.001   ▶ node agent #1\n")


def test_plain_line_heads_follow_each_records_millisecond_and_fall_back_to_the_sink_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    records = [start(f"s{i}", None, 0, "langgraph", "node", f"n{i}") for i in range(6)]
    # Within one millisecond, the next one, the next second, a record without a time, back again.
    offsets = [0, 400_000, 1_000_000, 999_000_000, None, 400_000]
    for record, offset in zip(records, offsets, strict=True):
        record.time_ns = 0 if offset is None else 1_700_000_000_123_000_000 + offset
    try:
        buf = io.StringIO()
        sink = PlainConsoleSink(buf, clock=FakeClock(1_700_000_005_007_900_000))
        sink.handle_batch(records)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert [line.split(" ")[0] for line in buf.getvalue().splitlines()] == [
        "22:13:20.123", "22:13:20.123", "22:13:20.124", "22:13:21.122", "22:13:25.007", "22:13:20.123"]


def test_plain_sink_writes_ascii_symbols_and_escapes_to_a_stream_that_cannot_encode_them() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    sink = PlainConsoleSink(stream, show_time=False)
    run = start("r1", None, 0, "langgraph", "run", "graph")
    llm = start("l1", "r1", 1, "langgraph", "llm", "gpt-4o")
    for r in [run, llm, event("l1", 2, c.EVENT_DELTA, {c.DELTA_TEXT: "héllo ✓"}),
              end(llm, 3, status="error", error="boom"), end(run, 4)]:
        sink.handle(r)
    assert raw.getvalue().decode("ascii") == (
        "> langgraph run graph\n"
        "  > llm gpt-4o\n"
        '  . llm gpt-4o "h\\xe9llo \\u2713"\n'
        "  ! llm gpt-4o 2ms boom\n"
        "+ langgraph run graph 4ms 1 step\n"
    )


def test_plain_sink_escapes_control_characters_and_truncates_long_text() -> None:
    run = start("r1", None, 0, "langgraph", "run", "graph")
    llm = start("l1", "r1", 1, "langgraph", "llm", "m")
    text = "\x1b[31mred\x1b[0m\t" + "x" * 100
    out = plain([run, llm, event("l1", 2, c.EVENT_DELTA, {c.DELTA_TEXT: text}, count=7)])
    assert out.splitlines()[-1] == '  ⋯ llm m "\\x1b[31mred\\x1b[0m\\t' + "x" * 59 + '…" (7 chunks)'


def test_a_record_the_plain_sink_fails_on_costs_its_own_line_only(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Our own failure on one record of a batch: the batch's other lines are written, the failure is
    # logged once, nothing is raised into the sink thread (and so nothing into the program).
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    records = langgraph_run()
    bad = records[2]
    real_format = PlainConsoleSink.format

    def failing_format(self: PlainConsoleSink, record: StepRecord, node: Any) -> str:
        if record is bad:
            raise RuntimeError("our bug")
        return real_format(self, record, node)

    monkeypatch.setattr(PlainConsoleSink, "format", failing_format)
    buf = io.StringIO()
    sink = PlainConsoleSink(buf, show_time=False)
    with caplog.at_level("WARNING", logger="massgen_tracing"):
        sink.handle_batch(records)
        sink.handle_batch(records[:1])  # the sink goes on working after the failure
    expected = LANGGRAPH_PLAIN.splitlines(keepends=True)
    del expected[2]
    assert buf.getvalue() == "".join(expected) + "▶ langgraph run my_graph \"what is\\nx?\"\n"
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "massgen-tracing: internal error in console.plain"]


def test_plain_lines_of_concurrent_runs_carry_a_short_run_tag() -> None:
    a = start("aaaa1111aaaa1111", None, 0, "langgraph", "run", "first", trace="ta")
    b = start("bbbb2222bbbb2222", None, 1, "langgraph", "run", "second", trace="tb")
    na = start("n1", "aaaa1111aaaa1111", 2, "langgraph", "node", "agent", trace="ta", index=1)
    out = plain([a, b, na, end(na, 3), end(a, 4), end(b, 5)])
    assert out == (
        "▶ langgraph run first\n"
        "[bbbb22] ▶ langgraph run second\n"
        "[aaaa11]   ▶ node agent #1\n"
        "[aaaa11]   ✓ node agent #1 1ms\n"
        "[aaaa11] ✓ langgraph run first 4ms 1 step\n"
        "[bbbb22] ✓ langgraph run second 4ms\n"  # once runs overlapped, every line names its run
    )


def test_nested_runs_alive_side_by_side_get_tags_of_their_own() -> None:
    # Parallel managed agents under one manager: same root, same indentation, same names. Each nested run
    # is tagged once another nested run outside its own ancestry is open; the root keeps its tag.
    root = start("root0000root0000", None, 0, "smolagents", "run", "boss")
    t1 = start("t1", "root0000root0000", 1, "smolagents", "tool", "city_agent")
    a = start("aaaa1111aaaa1111", "t1", 2, "smolagents", "run", "city_agent")
    t2 = start("t2", "root0000root0000", 3, "smolagents", "tool", "city_agent")
    b = start("bbbb2222bbbb2222", "t2", 4, "smolagents", "run", "city_agent")
    la = start("la", "aaaa1111aaaa1111", 5, "smolagents", "llm", "m")
    lb = start("lb", "bbbb2222bbbb2222", 6, "smolagents", "llm", "m")
    seq = start("cccc3333cccc3333", "t2", 13, "smolagents", "run", "city_agent")  # after both: no tag of its own
    out = plain([root, t1, a, t2, b, la, lb, end(la, 7), end(a, 8), end(t1, 9), end(lb, 10), end(b, 11),
                 seq, end(seq, 14), end(t2, 15), end(root, 16)])
    assert out.splitlines() == [
        "▶ smolagents run boss",
        "  ▶ tool city_agent",
        "    ▶ smolagents run city_agent",
        "  ▶ tool city_agent",  # lines before the overlap have no tag (as for root runs)
        "[bbbb22]     ▶ smolagents run city_agent",
        "[aaaa11]       ▶ llm m",
        "[bbbb22]       ▶ llm m",
        "[aaaa11]       ✓ llm m 2ms",
        "[aaaa11]     ✓ smolagents run city_agent 6ms 1 step",
        "[root00]   ✓ tool city_agent 8ms",
        "[bbbb22]       ✓ llm m 4ms",
        "[bbbb22]     ✓ smolagents run city_agent 7ms 1 step",
        "[root00]     ▶ smolagents run city_agent",
        "[root00]     ✓ smolagents run city_agent 1ms",
        "[root00]   ✓ tool city_agent 12ms",
        "[root00] ✓ smolagents run boss 16ms 7 steps",
    ]


def test_a_route_to_nowhere_says_so() -> None:
    run = start("r1", None, 0, "langgraph", "run", "graph")
    node = start("n1", "r1", 1, "langgraph", "node", "fan", index=1)
    out = plain([run, node, event("n1", 2, c.EVENT_ROUTE, {c.ROUTE_TARGETS: []})])
    assert out.splitlines()[-1] == "  ⋯ node fan #1 route → (none)"  # a fan-out that sent nothing


def test_interrupted_steps_end_with_the_pause_symbol() -> None:
    run = start("r1", None, 0, "langgraph", "run", "graph")
    ask = start("n1", "r1", 1, "langgraph", "node", "ask", index=2)
    out = plain([run, ask, event("n1", 2, c.EVENT_INTERRUPT, {c.CUSTOM_DATA: '{"question": "ok?"}'}),
                 end(ask, 6, attrs={c.INTERRUPTED: True}), end(run, 7, attrs={c.INTERRUPTED: True})])
    assert out == (
        "▶ langgraph run graph\n"
        "  ▶ node ask #2\n"
        '  ⋯ node ask #2 interrupt {"question": "ok?"}\n'
        "  ⏸ node ask #2 5ms interrupted\n"
        "⏸ langgraph run graph 7ms 1 step interrupted\n"
    )


def test_abandoned_steps_end_with_the_stop_symbol_not_a_tick() -> None:
    run = start("r1", None, 0, "smolagents", "run", "looper")
    act = start("a1", "r1", 1, "smolagents", "action", "looper", index=1)
    llm = start("l1", "a1", 2, "smolagents", "llm", "gpt-4o")
    records = [run, act, llm, end(llm, 4, status="unset", attrs={c.ABANDONED: True}),
               end(act, 5, status="unset", attrs={c.ABANDONED: True}),
               end(run, 6, status="unset", attrs={c.ABANDONED: True})]
    assert plain(records) == (
        "▶ smolagents run looper\n"
        "  ▶ action looper #1\n"
        "    ▶ llm gpt-4o\n"
        "    ⏹ llm gpt-4o 2ms abandoned\n"
        "  ⏹ action looper #1 4ms abandoned\n"
        "⏹ smolagents run looper 6ms 2 steps abandoned\n"
    )
    tree, clock = StepTree(), FakeClock(T0 + 10 * MS)
    feed(tree, clock, records)
    assert render(tree.render_run(tree.finished_runs()[0])) == (
        "⏹ smolagents run looper  6ms  step 1  abandoned\n"
        "└── ⏹ action looper #1  4ms  abandoned\n"
        "    └── ⏹ llm gpt-4o  2ms  abandoned\n"
    )


def test_every_step_above_model_calls_shows_their_sum_though_a_run_reports_only_its_own_agents() -> None:
    # A smolagents run's own usage covers its own agent's model calls, not a managed agent's: shown as
    # is, the run showed fewer tokens than the action steps inside it.
    tok = lambda i, o: {c.GEN_AI_INPUT_TOKENS: i, c.GEN_AI_OUTPUT_TOKENS: o}  # noqa: E731
    run = start("r1", None, 0, "smolagents", "run", "boss")
    act = start("a1", "r1", 1, "smolagents", "action", "boss", index=1)
    llm = start("l1", "a1", 2, "smolagents", "llm", "m")
    tool = start("t1", "a1", 4, "smolagents", "tool", "helper")
    sub = start("r2", "t1", 5, "smolagents", "run", "helper")
    sub_llm = start("l2", "r2", 6, "smolagents", "llm", "m")
    records = [run, act, llm, end(llm, 3, attrs=tok(100, 5)), tool, sub, sub_llm,
               end(sub_llm, 7, attrs=tok(40, 2)), end(sub, 8, attrs=tok(40, 2)), end(tool, 9),
               end(act, 10), end(run, 11, attrs=tok(100, 5))]
    assert [line.strip().split(" ", 1)[1] for line in plain(records).splitlines() if "✓" in line] == [
        "llm m 1ms in=100 out=5",
        "llm m 1ms in=40 out=2",
        "smolagents run helper 3ms 1 step in=40 out=2",
        "tool helper 5ms in=40 out=2",
        "action boss #1 9ms in=140 out=7",
        "smolagents run boss 11ms 5 steps in=140 out=7",
    ]


def test_odd_records_never_raise_and_still_print_a_line() -> None:
    run = start("r1", None, 0, "langgraph", "run", "graph")
    records = [
        StepRecord("event", T0, "t9", "zz", None, "", {}),  # an event of a step we never saw start
        StepRecord("start", T0, "t9", "c1", "missing-parent", "mystery", {}),  # no attributes at all
        StepRecord("end", T0 + MS, "t9", "e1", None, "", {c.STEP_KIND: "tool", c.STEP_NAME: "late"}),
        StepRecord("event", T0, "t9", "c1", None, "", {c.PROGRESS_CURRENT: "3"}, event=c.EVENT_PROGRESS),
        StepRecord("end", T0 + 2 * MS, "t9", "c1", None, "mystery", {c.GEN_AI_INPUT_TOKENS: "12"},
                   start_time_ns=T0),
        StepRecord("start", T0, "t9", "", None, "no span id", {}),
        run,
        # parents that are not steps: a tool hangs under its trace's run, a run becomes a root
        StepRecord("start", T0 + MS, "t1", "x1", "ghost", "orphan", {c.STEP_KIND: "tool", c.STEP_NAME: "t"}),
        StepRecord("start", T0 + MS, "t1", "x2", "ghost", "nested",
                   {c.STEP_KIND: "run", c.STEP_NAME: "inner"}),
        StepRecord("end", T0 + 3 * MS, "t1", "x1", "ghost", "orphan", {}, start_time_ns=None,
                   status="error", error=None),
        StepRecord("end", T0 + 3 * MS, "t1", "x1", "ghost", "orphan", {}, status="ok"),  # a duplicate end
    ]
    assert plain(records) == (
        "⋯ step ? event\n"
        "[c1] ▶ step mystery\n"  # tagged: the step of the first event never ends, so it still runs
        "[e1] ✓ tool late 0ms\n"
        "[c1] ⋯ step mystery progress\n"
        "[c1] ✓ step mystery 2ms\n"
        "[r1] ▶ langgraph run graph\n"
        "[r1]   ▶ tool t\n"
        "[x2] ▶ run inner\n"
        "[r1]   ✗ tool t 2ms error\n"
        "[r1]   ✗ tool t 2ms error\n"
    )


# --- the state model and the live tree ------------------------------------------------------------------


def test_live_tree_shows_running_steps_with_ticking_elapsed_time_and_streamed_text() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock)
    feed(tree, clock, langgraph_run()[:5])
    clock.now += 3 * MS  # no record for 3 ms: running steps keep counting
    assert render(tree.renderable()) == (
        "▶ langgraph run my_graph  23ms  step 1/25\n"
        "└── ▶ node agent #1  22ms\n"
        '    └── ▶ llm gpt-4o  21ms  "Hello\\nworld"\n'
    )
    feed(tree, clock, langgraph_run()[5:12])
    assert render(tree.renderable()) == (
        "▶ langgraph run my_graph  70ms  step 2/25  in=12 out=8\n"
        "├── ✓ node agent #1  59ms  in=12 out=8  → tools\n"
        "└── ▶ node tools #2  9ms\n"
        "    └── ✓ tool search  8ms\n"
    )


def test_live_tree_shows_progress_messages_and_errors_of_running_runs() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock)
    feed(tree, clock, smolagents_run()[:7])
    feed(tree, clock, langgraph_run()[:-1])
    assert render(tree.renderable()) == (
        "▶ smolagents run my_agent  1.6s  step 1/3\n"
        "├── ✓ planning my_agent #1  1.4s\n"
        "└── ▶ action my_agent #1/3  100ms  step 1/3 calling calc\n"
        "    └── ▶ tool calc  0ms\n"
        "▶ langgraph run my_graph  1.6s  step 2/25  in=12 out=8\n"
        "├── ✓ node agent #1  59ms  in=12 out=8  → tools\n"
        "└── ✗ node tools #2  14ms  ValueError: boom\n"
        "    └── ✓ tool search  8ms\n"
    )


def test_a_finished_run_leaves_the_live_region_and_its_tree_is_printed() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock)
    feed(tree, clock, langgraph_run())
    assert tree.running_runs() == []
    assert render(tree.renderable()) == ""
    [run] = tree.finished_runs()
    assert render(tree.render_run(run)) == (
        "✗ langgraph run my_graph  80ms  step 2/25  in=12 out=8  ValueError: boom\n"
        "├── ✓ node agent #1  59ms  in=12 out=8  → tools\n"
        '│   └── ✓ llm gpt-4o  52ms  in=12 out=8  calls search {"q": "x"}\n'
        "└── ✗ node tools #2  14ms  ValueError: boom\n"
        "    └── ✓ tool search  8ms\n"
    )


class _AsciiFile(io.StringIO):
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "ascii"


def _cells(ansi: str) -> list[tuple[str, str]]:
    """Each character of rendered output with the style it is drawn in."""
    text = Text.from_ansi(ansi)
    styles = [""] * len(text.plain)
    for span in text.spans:
        for i in range(span.start, span.end):
            styles[i] = str(Style.combine([Style.parse(styles[i] or "none"), Style.parse(str(span.style))]))
    return list(zip(text.plain, styles, strict=True))


def _rich_tree(tree: StepTree, root: Any) -> Tree:
    """A finished run drawn with rich's own Tree, from the same lines: what the printed run matches."""
    now = tree.now()

    def line(node: Any) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for part, style in tree._parts(node, UNICODE, now, live=False):
            text.append(part, style=style)
        return text

    def add(branch: Tree, node: Any) -> None:
        hidden, shown = tree._shown_children(node, PRINT_CHILDREN)
        if hidden:
            branch.add(Text(tree._hidden_text(hidden, UNICODE), style="dim", no_wrap=True, overflow="ellipsis"))
        for child in shown:
            add(branch.add(line(child)), child)

    out = Tree(line(root), guide_style="dim")
    add(out, root)
    return out


def test_a_printed_run_is_drawn_exactly_as_riches_tree_draws_it_at_any_width() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock, max_children=PRINT_CHILDREN + 5)
    lg = langgraph_run()
    records = lg[:1]
    for i in range(PRINT_CHILDREN + 3):  # more than a printed step shows: an "earlier steps" line
        node = start(f"m{i}", "r1", 0.1, "langgraph", "node", "map", index=4 + i)
        records += [node, end(node, 0.5, status="error" if i % 7 == 0 else "ok", error="bad")]
    records += lg[1:-1]  # a step with a child under a step that has later siblings, and one under the last
    wide = start("w1", "r1", 76, "langgraph", "node", "翻訳者 📚 " + "x" * 70, index=3)
    deep = start("d1", "w1", 77, "langgraph", "llm", "model-" + "y" * 30)
    deeper = start("d2", "d1", 78, "langgraph", "tool", "lookup", extra={c.TOOL_ARGUMENTS: '{"k": 1}'})
    records += [wide, deep, deeper, end(deeper, 79), end(deep, 80), end(wide, 81), end(lg[0], 200)]
    feed(tree, clock, records)
    [run] = tree.finished_runs()
    for width in (12, 30, 41, 42, 43, 60, 100, 160):
        for ascii_only in (False, True):
            outputs = []
            for renderable in (tree.render_run(run), _rich_tree(tree, run)):
                file = _AsciiFile() if ascii_only else io.StringIO()
                console = Console(file=file, width=width, force_terminal=True, color_system="truecolor")
                console.print(renderable)
                outputs.append(_cells(file.getvalue()))
            ours, riches = outputs
            assert "".join(ch for ch, _ in ours) == "".join(ch for ch, _ in riches), (width, ascii_only)
            assert ours == riches, (width, ascii_only)
    lines = render(tree.render_run(run)).splitlines()  # the run, "earlier steps", 50 children, 4 below them
    assert (len(lines), lines[1]) == (1 + 1 + PRINT_CHILDREN + 4, "├── … 6 earlier steps")
    assert lines[-7:] == [
        "├── ✓ node agent #1  59ms  in=12 out=8  → tools",
        '│   └── ✓ llm gpt-4o  52ms  in=12 out=8  calls search {"q": "x"}',
        "├── ✗ node tools #2  14ms  ValueError: boom",
        "│   └── ✓ tool search  8ms",
        "└── ✓ node 翻訳者 📚 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx #3  5ms",
        "    └── ✓ llm model-yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy  3ms",
        '        └── ✓ tool lookup  1ms'
    ]


def test_control_characters_in_names_show_escaped_on_one_line_live_and_printed() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock)
    run = start("r1", None, 0, "langgraph", "run", "my\ngraph\x1b[2J")
    node = start("n1", "r1", 1, "langgraph", "node", "a\tb\x07", index=1)
    feed(tree, clock, [run, node])
    assert render(tree.renderable()) == (
        "▶ langgraph run my\\ngraph\\x1b[2J  1ms  step 1\n"
        "└── ▶ node a\\tb\\x07 #1  0ms\n"
    )
    feed(tree, clock, [end(node, 4), end(run, 5)])
    assert render(tree.render_run(tree.finished_runs()[0])) == (
        "✓ langgraph run my\\ngraph\\x1b[2J  5ms  step 1\n"
        "└── ✓ node a\\tb\\x07 #1  3ms\n"
    )


def test_control_characters_in_names_and_routes_show_escaped_on_one_plain_line() -> None:
    # Names are the user's (graph, node, tool, model): a newline in one split a plain line in two, and
    # an escape sequence reached the terminal.
    run = start("r1", None, 0, "langgraph", "run", "my\ngraph\x1b[2J")
    node = start("n1", "r1", 1, "langgraph", "node", "a\rb\x07", index=1)
    route = event("n1", 2, c.EVENT_ROUTE, {c.ROUTE_TARGETS: ["x\ny", "z"]})
    decision = event("n1", 2, c.EVENT_TOOL_DECISION, {c.TOOL_CALL_NAME: "t\x1bo", c.TOOL_CALL_ARGUMENTS: "{}"})
    out = plain([run, node, route, decision, end(node, 4, attrs={c.ROUTE: ["x\ny", "z"]}), end(run, 5)])
    assert out.splitlines() == [
        "▶ langgraph run my\\ngraph\\x1b[2J",
        "  ▶ node a\\rb\\x07 #1",
        "  ⋯ node a\\rb\\x07 #1 route → x\\ny, z",
        "  ⋯ node a\\rb\\x07 #1 calls t\\x1bo {}",
        "  ✓ node a\\rb\\x07 #1 3ms → x\\ny, z",
        "✓ langgraph run my\\ngraph\\x1b[2J 5ms 1 step",
    ]


def test_step_tree_keeps_only_the_last_n_finished_runs() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock, max_finished_runs=3)
    for i in range(5):
        run = start(f"r{i}", None, i, "langgraph", "run", f"g{i}", trace=f"t{i}")
        node = start(f"n{i}", f"r{i}", i, "langgraph", "node", "agent", trace=f"t{i}", index=1)
        feed(tree, clock, [run, node, end(node, i + 0.5), end(run, i + 0.5)])
    assert [r.name for r in tree.finished_runs()] == ["g2", "g3", "g4"]
    assert not tree.known("t0", "n0") and not tree.known("t1", "r1")
    assert tree.known("t2", "n2")


def test_finished_children_beyond_the_limit_are_counted_not_kept() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock, max_children=3)
    records = [start("r1", None, 0, "langgraph", "run", "loop", extra={c.STEP_MAX: 100})]
    for i in range(1, 6):
        node = start(f"n{i}", "r1", i, "langgraph", "node", "agent", index=i)
        records += [node, end(node, i + 0.5)]
    feed(tree, clock, records)
    assert not tree.known("t1", "n1")
    clock.now += 500_000
    assert render(tree.renderable()) == (
        "▶ langgraph run loop  6ms  step 5/100\n"
        "├── … 2 earlier steps\n"
        "├── ✓ node agent #3  0ms\n"
        "├── ✓ node agent #4  0ms\n"
        "└── ✓ node agent #5  0ms\n"
    )


def test_live_region_shows_only_the_latest_finished_children_but_every_running_one() -> None:
    clock = FakeClock()
    tree = StepTree(clock=clock)
    records = [start("r1", None, 0, "langgraph", "run", "fan"),
               start("slow", "r1", 1, "langgraph", "node", "slow", index=1)]
    for i in range(2, 10):
        node = start(f"n{i}", "r1", i, "langgraph", "node", "fast", index=i)
        records += [node, end(node, i + 0.25)]
    feed(tree, clock, records)
    assert render(tree.renderable()) == (
        "▶ langgraph run fan  9ms  step 9\n"
        "├── … 2 earlier steps\n"
        "├── ▶ node slow #1  8ms\n"
        "├── ✓ node fast #4  0ms\n"
        "├── ✓ node fast #5  0ms\n"
        "├── ✓ node fast #6  0ms\n"
        "├── ✓ node fast #7  0ms\n"
        "├── ✓ node fast #8  0ms\n"
        "└── ✓ node fast #9  0ms\n"
    )


def test_step_tree_is_safe_to_feed_and_render_from_several_threads() -> None:
    tree = StepTree()
    stop = threading.Event()

    def renderer() -> None:
        while not stop.is_set():
            render(tree.renderable())

    t = threading.Thread(target=renderer)
    t.start()
    try:
        for i in range(200):
            run = start(f"r{i}", None, i, "langgraph", "run", "g", trace=f"t{i}")
            node = start(f"n{i}", f"r{i}", i, "langgraph", "node", "a", trace=f"t{i}", index=1)
            for r in [run, node, end(node, i + 0.5), end(run, i + 0.5)]:
                tree.feed(r)
    finally:
        stop.set()
        t.join()
    assert len(tree.finished_runs()) == 20 and tree.running_runs() == []


# --- the live sink --------------------------------------------------------------------------------------


def test_live_sink_prints_each_finished_run_once_and_the_running_ones_at_close() -> None:
    clock = FakeClock()
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=False)
    sink = LiveConsoleSink(console, clock=clock)
    for r in langgraph_run() + smolagents_run()[:5]:
        clock.now = r.time_ns
        sink.handle(r)
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert printed.count("langgraph run my_graph") == 1
    assert "smolagents" not in printed
    assert [r.name for r in sink.tree.running_runs()] == ["my_agent"]
    sink.close()
    assert console.file.getvalue() == (  # type: ignore[attr-defined]
        "✗ langgraph run my_graph  80ms  step 2/25  in=12 out=8  ValueError: boom\n"
        "├── ✓ node agent #1  59ms  in=12 out=8  → tools\n"
        '│   └── ✓ llm gpt-4o  52ms  in=12 out=8  calls search {"q": "x"}\n'
        "└── ✗ node tools #2  14ms  ValueError: boom\n"
        "    └── ✓ tool search  8ms\n"
        "▶ smolagents run my_agent  1.5s  step 1/3\n"
        "├── ✓ planning my_agent #1  1.4s\n"
        "└── ▶ action my_agent #1/3  0ms\n"
    )


def test_live_sink_close_returns_promptly_twice_and_from_another_thread() -> None:
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=True)
    sink = LiveConsoleSink(console, refresh_per_second=50)
    for r in smolagents_run()[:5]:
        sink.handle(r)
    time.sleep(0.05)  # let the refresh thread draw a few frames
    t0 = time.monotonic()
    closer = threading.Thread(target=sink.close)
    closer.start()
    closer.join(1.0)
    assert not closer.is_alive()
    sink.close()
    assert time.monotonic() - t0 < 1.0
    sink.handle(smolagents_run()[5])  # records after close are ignored
    assert console.file.getvalue().endswith("\x1b[?25h")  # type: ignore[attr-defined]  # cursor shown again


def test_live_sink_leaves_stdout_and_stderr_alone_when_not_the_same_terminal() -> None:
    import sys

    out, err = sys.stdout, sys.stderr
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=True)
    sink = LiveConsoleSink(console, refresh_per_second=50)
    sink.handle(smolagents_run()[0])
    try:
        assert sys.stdout is out and sys.stderr is err
    finally:
        sink.close()


def test_same_terminal_is_true_only_for_one_terminal_device() -> None:
    import os
    import pty

    from massgen_tracing._internal.console import _same_terminal

    m1, s1 = pty.openpty()
    m2, s2 = pty.openpty()
    try:
        with open(s1, "w", closefd=False) as a, open(s1, "w", closefd=False) as b, \
                open(s2, "w", closefd=False) as other:
            assert _same_terminal(a, b)
            assert not _same_terminal(a, other)
            assert not _same_terminal(a, io.StringIO())
    finally:
        for fd in (m1, s1, m2, s2):
            os.close(fd)


# --- choosing a sink ------------------------------------------------------------------------------------


def test_make_console_sink_picks_live_only_for_a_real_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import pty

    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(make_console_sink("auto", io.StringIO()), PlainConsoleSink)
    assert isinstance(make_console_sink("plain", io.StringIO()), PlainConsoleSink)
    assert isinstance(make_console_sink(" Live ", io.StringIO()), LiveConsoleSink)
    assert make_console_sink("off", io.StringIO()) is None
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            assert isinstance(make_console_sink("auto", tty), LiveConsoleSink)
            monkeypatch.setenv("TERM", "dumb")
            assert isinstance(make_console_sink("auto", tty), PlainConsoleSink)
    finally:
        os.close(master)
        os.close(slave)


def test_make_console_sink_names_the_bad_value_and_the_allowed_ones() -> None:
    with pytest.raises(ValueError) as info:
        make_console_sink("fancy")
    assert str(info.value) == "console mode 'fancy' is not one of: auto, live, plain, off"


# --- the recorded fixtures ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, build",
                         [("langgraph_run", langgraph_run), ("smolagents_run", smolagents_run)])
def test_recorded_fixtures_match_the_hand_built_runs(name: str, build: Any) -> None:
    with open(DATA / f"{name}.jsonl", encoding="utf-8") as f:
        assert [r.to_dict() for r in read_jsonl(f)] == [r.to_dict() for r in build()]


def test_an_error_shows_the_exception_not_the_traceback_openinference_puts_in_the_status():
    from massgen_tracing._internal.console import _error_head

    assert _error_head("KeyError('B-200')Traceback (most recent call last):\n  File x\nKeyError: 'B-200'") == (
        "KeyError('B-200')")
    assert _error_head("ValueError: boom") == "ValueError: boom"


# --- the program's stdout under the live view -------------------------------------------------------------


@pytest.fixture
def terminal() -> Iterator[tuple[int, Any]]:
    """A pseudo-terminal: (master fd to read what was shown, the slave opened as a text file)."""
    import os
    import pty

    master, slave = pty.openpty()
    tty = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115  # closed below
    try:
        yield master, tty
    finally:
        tty.close()
        os.close(master)


class _PtyReader:
    """Reads what a terminal shows on a thread of its own until stopped, so that the pty never fills up
    and blocks its writers however slow the machine is (a read that stopped at the first quiet 0.2 s left
    rich's refresh thread blocked in a write, and the test hung closing the terminal)."""

    def __init__(self, master: int) -> None:
        self._master = master
        self._chunks: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import os
        import select

        while True:
            if select.select([self._master], [], [], 0.05)[0]:
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self._chunks.append(chunk)
            elif self._stop.is_set():
                return

    def stop(self) -> str:
        """Everything shown, once the terminal has been quiet for a moment."""
        self._stop.set()
        self._thread.join(30)
        return b"".join(self._chunks).decode("utf-8", "replace")


def _screen(raw: str) -> str:
    """`raw` as read on screen: a carriage return starts its line over (the region is redrawn that
    way), and the other control sequences (cursor moves, line clears) leave no text."""
    import re

    lines = raw.replace("\r\n", "\n").split("\n")
    return "\n".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", ln.rsplit("\r", 1)[-1]) for ln in lines)


def _live_on(tty: Any, monkeypatch: pytest.MonkeyPatch, refresh_per_second: float) -> LiveConsoleSink:
    """A live sink drawing on `tty`, the program's stdout being that same terminal; started by a record."""
    import sys

    monkeypatch.setattr(sys, "stdout", tty)
    sink = LiveConsoleSink(Console(file=tty, width=100, force_terminal=True, color_system=None),
                           refresh_per_second=refresh_per_second)
    sink.handle(smolagents_run()[0])
    return sink


def test_the_programs_stdout_on_the_same_terminal_is_shown_exactly_above_the_live_region(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    assert sys.stdout is not tty  # taken over: the region redraws below the program's lines
    # Text rich would read as markup or emoji codes; a flushed partial line; write()'s return value.
    sys.stdout.write("[red]partial[/red] :thumbs_up:")
    sys.stdout.flush()
    print()
    print("n =", sys.stdout.write("abc\n"))
    print("progress [/] 50%", end="", flush=True)
    print()
    print("\x1b[31mred\x1b[0m end")
    sink.close()
    assert sys.stdout is tty
    shown = _screen(reader.stop())
    lines = [ln for ln in shown.split("\n") if ln and "smolagents run" not in ln]
    assert lines[:5] == ["[red]partial[/red] :thumbs_up:", "abc", "n = 4", "progress [/] 50%",
                         "red end"]


def test_a_program_printing_thousands_of_lines_redraws_the_live_region_a_few_times_not_per_line(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=8)
    for i in range(3000):
        print(f"line {i}")
    sink.close()
    raw = reader.stop()
    assert [ln for ln in _screen(raw).split("\n") if ln.startswith("line ")] == [
        f"line {i}" for i in range(3000)]
    # One drawing per printed line made such programs 100x slower; now lines wait for a refresh
    # (8 a second) when the last ones went out less than 50 ms ago.
    assert raw.count("smolagents run my_agent") < 200


def _terminal_screen(raw: str) -> list[str]:
    """The lines left on a terminal after `raw`, following the cursor moves and line clears rich uses
    to redraw its region (up, erase line, carriage return): what a user would read afterwards."""
    import re

    lines: list[list[str]] = [[]]
    row = col = 0
    for m in re.finditer(r"\x1b\[([0-9;?]*)([A-Za-z])|\r\n|\r|\n|.", raw, re.S):
        token = m.group(0)
        if m.group(2):
            arg, cmd = m.group(1), m.group(2)
            if cmd == "A":
                row = max(0, row - (int(arg) if arg.isdigit() else 1))
            elif cmd == "K" and arg == "2":
                lines[row] = []
            elif cmd == "K" and arg in ("", "0"):
                del lines[row][col:]
            continue
        if token in ("\n", "\r\n"):
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        elif token == "\r":
            col = 0
        else:
            lines[row][col:col + 1] = [token]
            col += 1
    return ["".join(line).rstrip() for line in lines]


def test_program_lines_printed_while_a_finished_run_is_printed_stay_on_screen(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich puts a print above the region by moving up the height it last drew: two prints at once (the
    # program's line, the sink thread's finished run) both moved up over the same lines, and the second
    # erased the first. Computing that move is made slow here, so such prints overlap on every run.
    import dataclasses

    from rich.live_render import LiveRender

    master, tty = terminal
    sink = _live_on(tty, monkeypatch, refresh_per_second=20)
    real = LiveRender.position_cursor

    def slow_position_cursor(self: LiveRender) -> Any:
        control = real(self)
        time.sleep(0.01)
        return control

    monkeypatch.setattr(LiveRender, "position_cursor", slow_position_cursor)
    reader = _PtyReader(master)
    runs = [[dataclasses.replace(r, trace_id=f"t{i}") for r in smolagents_run()] for i in range(10)]

    def sink_thread() -> None:
        for records in runs:
            for record in records:
                sink.handle(record)
            time.sleep(0.02)

    def program() -> None:
        for i in range(60):
            print(f"program line {i}", flush=True)
            time.sleep(0.003)

    threads = [threading.Thread(target=f, daemon=True) for f in (sink_thread, program)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    # (Printing under our lock while rich's refresh thread held its own and wanted ours hung here.)
    assert not any(t.is_alive() for t in threads), "the program or the sink thread is stuck"
    sink.close()
    screen = _terminal_screen(reader.stop())
    assert [ln for ln in screen if ln.startswith("program line")] == [f"program line {i}" for i in range(60)]
    assert sum(ln.startswith("✓ smolagents run my_agent") for ln in screen) == 10


def test_another_live_display_pauses_the_view_and_leaves_only_its_last_frame(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # smolagents streams model output through a rich Live of its own (stream_outputs=True): drawn into
    # our proxy, each of its frames stayed as a line above our region, and with the two regions redrawing
    # the same terminal the program's later lines were lost.
    import sys

    from rich.live import Live

    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    time.sleep(0.1)  # our region is drawn
    print("before")
    theirs = Console(force_terminal=True, width=100, color_system=None)  # writes to sys.stdout, as smolagents'
    with Live("frame 0", console=theirs, refresh_per_second=50) as live:
        assert sink._paused == 1 and sink._live is not None and not sink._live.is_started
        for i in range(1, 6):
            time.sleep(0.05)
            live.update(f"frame {i}")
    assert sink._paused == 0 and sink._live.is_started
    print("after")
    time.sleep(0.3)
    sink.close()
    screen = [ln for ln in _terminal_screen(reader.stop()) if ln]
    assert [ln for ln in screen if "smolagents run" not in ln and not ln.startswith(("├", "└", "│"))] == [
        "before", "frame 5", "after"]
    assert sys.stdout is tty


def test_input_pauses_the_view_so_its_prompt_stays_on_screen(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # input() on a terminal writes its prompt straight to it, and our next redraw erased it (and the
    # answer typed): the user could not see the question.
    import builtins
    import sys

    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    time.sleep(0.1)
    paused: list[int] = []

    class Keyboard(io.StringIO):
        """The user typing an answer after a while; the terminal echoes it."""

        def readline(self, *args: Any) -> str:
            paused.append(sink._paused)
            time.sleep(0.2)  # several of our refreshes would have gone by
            tty.write("blue\n")
            tty.flush()
            return "blue\n"

    monkeypatch.setattr(sys, "stdin", Keyboard())
    assert builtins.input is not _BUILTIN_INPUT  # wrapped once a live view exists
    answer = input("Favourite colour? ")
    time.sleep(0.2)
    sink.close()
    assert answer == "blue" and paused == [1] and sink._paused == 0
    screen = [ln for ln in _terminal_screen(reader.stop()) if ln]
    assert "Favourite colour? blue" in screen  # the prompt and the answer, not erased by a redraw


def test_a_progress_bar_redrawn_with_carriage_returns_ends_as_one_line(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # tqdm redraws its bar in place with "\r" and flushes: each flush became a line of its own above the
    # region (10 lines for one bar). A redrawn line now waits for its end, and only its last state shows.
    import sys

    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    print("start")
    for pct in (0, 25, 50, 75):
        sys.stdout.write(f"\rcrunching: {pct:3d}%")
        sys.stdout.flush()
        time.sleep(0.05)  # redraws in between
    sys.stdout.write("\rcrunching: 100%\n")
    for pct in (10, 90):  # the other style: the carriage return after the text
        sys.stdout.write(f"download {pct}%\r")
        sys.stdout.flush()
        time.sleep(0.05)
    sys.stdout.write("\n")
    print("windows line\r")  # a "\r\n" line end keeps its line
    sys.stdout.write("\rlast: 7%")  # still going at the end: its last state is shown
    sys.stdout.flush()
    sink.close()
    screen = [ln for ln in _terminal_screen(reader.stop()) if ln and "smolagents run" not in ln
              and not ln.startswith(("├", "└", "│"))]
    assert screen == ["start", "crunching: 100%", "download 90%", "windows line", "last: 7%"]


def test_a_failing_pause_never_breaks_the_programs_own_live_display_or_input(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import sys

    from rich.live import Live

    from massgen_tracing._internal import guard

    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())
    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)

    def broken(self: LiveConsoleSink) -> None:
        raise RuntimeError("our bug")

    monkeypatch.setattr(LiveConsoleSink, "pause", broken)
    monkeypatch.setattr(LiveConsoleSink, "resume", broken)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    with caplog.at_level("WARNING", logger="massgen_tracing"):
        with Live("theirs", console=Console(force_terminal=True, width=100, color_system=None)) as live:
            live.update("theirs, updated")
        answer = input("Sure? ")
    sink.close()
    reader.stop()
    assert answer == "yes"
    assert "internal error in console.live.pause" in caplog.text


def test_a_finished_runs_tree_comes_before_what_the_program_wrote_after_the_run_ended(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # The sink learns of a run's end a little after the program has gone on: `print(graph.invoke(...))`
    # came out above the tree of the run that produced it.
    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    now = time.time_ns()
    run = StepRecord("start", now, "tq", "q1", None, "qa", c.step_attributes("langgraph", "run", "qa"))
    sink.handle(run)
    print("asking")
    time.sleep(0.08)  # the line is printed meanwhile (a redraw)
    ended = time.time_ns()
    print("answer: 42")  # written after the run ended, before the sink hears of it
    sink.handle(StepRecord("end", ended, "tq", "q1", None, "qa", run.attributes, start_time_ns=now, status="ok"))
    time.sleep(0.3)
    sink.close()
    screen = [ln for ln in _terminal_screen(reader.stop()) if ln and "smolagents run" not in ln
              and not ln.startswith(("├", "└", "│"))]
    assert [re.sub(r"\d+ms", "Nms", ln) for ln in screen] == ["asking", "✓ langgraph run qa  Nms", "answer: 42"]


def test_the_programs_stderr_lines_and_log_lines_stay_on_screen_under_the_live_region(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Written straight to the terminal they landed in the live region, and its next redraw erased them.
    import logging
    import sys

    master, tty = terminal
    monkeypatch.setattr(sys, "stderr", tty)
    log = logging.getLogger("the_program")
    handler = logging.StreamHandler(sys.stderr)  # as basicConfig() makes it, before any run
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    log.addHandler(handler)
    monkeypatch.setattr(log, "propagate", False)
    monkeypatch.setattr(log, "level", logging.INFO)
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    try:
        assert sys.stderr is not tty and handler.stream is sys.stderr
        for i in range(5):
            log.info("fetching %d", i)
            print(f"err {i}", file=sys.stderr)
            print(f"out {i}")
            time.sleep(0.03)  # a few redraws in between
        sys.stderr.write("Traceback (most recent call last):\n  File x\nValueError: boom\n")
    finally:
        sink.close()
        log.removeHandler(handler)
    assert sys.stderr is tty and handler.stream is tty
    screen = _terminal_screen(reader.stop())
    expected = [line for i in range(5) for line in (f"LOG fetching {i}", f"err {i}", f"out {i}")]
    expected += ["Traceback (most recent call last):", "  File x", "ValueError: boom"]
    assert [ln for ln in screen if ln and "smolagents run" not in ln] == expected


def test_when_printing_the_programs_lines_fails_they_go_out_as_they_are_and_print_still_works(
        terminal: tuple[int, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from massgen_tracing._internal import guard

    monkeypatch.setattr(guard, "_reported", set())
    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    real_print = sink.console.print

    def broken_print(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("markup") is False:  # the program's lines, not our trees
            raise RuntimeError("bug in massgen-tracing")
        real_print(*args, **kwargs)

    monkeypatch.setattr(sink.console, "print", broken_print)
    try:
        with caplog.at_level(logging.WARNING, logger="massgen_tracing"):
            print("first line")
            print("second line", flush=True)
    finally:
        sink.close()
    shown = _screen(reader.stop())
    assert "first line" in shown.split("\n") and "second line" in shown.split("\n")
    assert [r.getMessage() for r in caplog.records] == [
        "massgen-tracing: internal error in console.live.program_output (tracing continues): "
        "RuntimeError('bug in massgen-tracing')"]


def test_nothing_is_redrawn_while_no_run_is_running(terminal: tuple[int, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty region still cleared its line eight times a second: a prompt written straight to the
    # terminal between runs (as input() does on a terminal) vanished while the program waited.
    import os

    master, tty = terminal
    reader = _PtyReader(master)
    sink = _live_on(tty, monkeypatch, refresh_per_second=50)
    try:
        for record in smolagents_run()[1:]:
            sink.handle(record)
        time.sleep(0.1)
        tty.flush()
        os.write(tty.fileno(), b"Your name: ")
        time.sleep(0.3)  # fifteen refreshes
        shown = reader.stop()
    finally:
        sink.close()
    assert shown.endswith("Your name: ")
    assert _terminal_screen(shown)[-1] == "Your name:"


def test_a_hidden_stream_shows_one_marker_with_its_chunk_count() -> None:
    run = start("r1", None, 0, "langgraph", "run", "graph")
    llm = start("l1", "r1", 1, "langgraph", "llm", "m")
    deltas = [event("l1", 2 + i, c.EVENT_DELTA, {c.DELTA_TEXT: c.HIDDEN_TEXT, c.DELTA_COUNT: 1}) for i in range(3)]
    tree = StepTree(clock=FakeClock())
    for record in [run, llm, *deltas]:
        tree.feed(record)
    node = tree.running_runs()[0].children[0]
    assert (node.text_tail, node.chunks) == (c.HIDDEN_TEXT, 3)
