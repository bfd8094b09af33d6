"""The live step processor: records at start/event/end, ordering, coalescing, bounds, guards."""

from __future__ import annotations

import logging
import os
import re
import threading
import time

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from massgen_tracing._internal import convention as c
from massgen_tracing._internal import guard
from massgen_tracing._internal.processor import LiveStepProcessor
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.redact import Redactor
from massgen_tracing._internal.sinks import CallbackSink


class ListSink:
    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None):
        self.records: list[StepRecord] = []
        self.delay = delay
        self.gate = gate
        self.closed = 0

    def handle(self, record: StepRecord) -> None:
        if self.gate is not None:
            self.gate.wait(5)
        if self.delay:
            time.sleep(self.delay)
        self.records.append(record)

    def close(self) -> None:
        self.closed += 1


class BrokenRedactor(Redactor):
    """Our own redaction failing: what the guards around it must survive."""

    def redact(self, text):
        raise RuntimeError("regex engine broke")


def make(sinks, max_attributes=None, **kw):
    proc = LiveStepProcessor(sinks, **kw)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False, span_limits=SpanLimits(max_span_attributes=max_attributes))
    provider.add_span_processor(proc)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), proc, exporter


def step(kind: str, name: str, **extra):
    return c.step_attributes("langgraph", kind, name, extra=extra or None)


def summary(records):
    # event records carry the event's attributes only; the step is known by span id and span name
    return [(r.type, r.span_name, r.event) if r.type == "event" else (r.type, r.step_name) for r in records]


def test_step_spans_become_start_event_end_records_in_order_and_other_spans_are_ignored():
    sink = ListSink()
    tracer, proc, _ = make([sink])
    with tracer.start_as_current_span("graph", attributes=step("run", "g")):
        with tracer.start_as_current_span("not a step"):
            with tracer.start_as_current_span("agent", attributes=step("node", "agent", **{c.STEP_INDEX: 1})) as s:
                s.add_event(c.EVENT_PROGRESS, {c.PROGRESS_MESSAGE: "half way"})
    assert proc.force_flush(2000)
    assert summary(sink.records) == [
        ("start", "g"),
        ("start", "agent"),
        ("event", "agent", c.EVENT_PROGRESS),
        ("end", "agent"),
        ("end", "g"),
    ]
    run_start, node_start, ev, node_end, run_end = sink.records
    assert node_start.attributes[c.STEP_KIND] == "node" and node_start.index == 1
    assert ev.attributes == {c.PROGRESS_MESSAGE: "half way"}
    # the node's parent is the non-step span; the record keeps the real parent id and trace id
    assert node_start.trace_id == run_start.trace_id
    assert node_start.parent_span_id not in (None, run_start.span_id)
    assert node_end.status == "unset" and node_end.start_time_ns == node_start.time_ns
    assert run_end.duration_ns is not None and run_end.duration_ns >= node_end.duration_ns


def test_start_record_is_delivered_while_the_step_is_still_running():
    sink = ListSink()
    tracer, proc, _ = make([sink])
    seen_during: list[list[str]] = []
    with tracer.start_as_current_span("node", attributes=step("node", "slow")):
        deadline = time.monotonic() + 2
        while not sink.records and time.monotonic() < deadline:
            time.sleep(0.001)
        seen_during.append([r.type for r in sink.records])
    proc.force_flush(2000)
    assert seen_during == [["start"]]


def test_error_status_and_exception_event_reach_the_end_record():
    sink = ListSink()
    tracer, proc, _ = make([sink])
    with pytest.raises(ValueError), tracer.start_as_current_span("calc", attributes=step("tool", "calc")):
        raise ValueError("boom")
    proc.force_flush(2000)
    assert summary(sink.records) == [("start", "calc"), ("event", "calc", "exception"), ("end", "calc")]
    assert sink.records[1].attributes["exception.message"] == "boom"
    assert sink.records[2].status == "error" and sink.records[2].error == "ValueError: boom"


def test_token_deltas_waiting_for_a_slow_sink_are_coalesced_into_one_record_in_order():
    gate = threading.Event()
    sink = ListSink(gate=gate)
    tracer, proc, _ = make([sink])
    with tracer.start_as_current_span("m", attributes=step("llm", "m")) as s:
        for tok in ["Hel", "lo", " wor", "ld"]:
            s.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: tok})
        s.add_event(c.EVENT_TOOL_DECISION, {c.TOOL_CALL_NAME: "search"})
        s.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: "!"})
    gate.set()
    proc.force_flush(2000)
    # "start" may have been taken by the worker before the gate closed it; either way order holds.
    assert summary(sink.records) == [
        ("start", "m"),
        ("event", "m", c.EVENT_DELTA),
        ("event", "m", c.EVENT_TOOL_DECISION),
        ("event", "m", c.EVENT_DELTA),
        ("end", "m"),
    ]
    assert (sink.records[1].attributes[c.DELTA_TEXT], sink.records[1].count) == ("Hello world", 4)
    assert (sink.records[3].attributes[c.DELTA_TEXT], sink.records[3].count) == ("!", 1)


def test_a_full_queue_drops_only_events_counts_them_and_never_drops_starts_or_ends():
    gate = threading.Event()
    sink = ListSink(gate=gate)
    tracer, proc, _ = make([sink], queue_size=3)
    with tracer.start_as_current_span("run", attributes=step("run", "r")):
        for i in range(5):
            with tracer.start_as_current_span(f"n{i}", attributes=step("node", f"n{i}")) as s:
                for j in range(4):
                    s.add_event(c.EVENT_PROGRESS, {c.PROGRESS_CURRENT: j})
    gate.set()
    assert proc.force_flush(5000)
    starts = [r.step_name for r in sink.records if r.type == "start"]
    ends = [r.step_name for r in sink.records if r.type == "end"]
    events = [r for r in sink.records if r.type == "event"]
    assert starts == ["r", "n0", "n1", "n2", "n3", "n4"]
    assert ends == ["n0", "n1", "n2", "n3", "n4", "r"]
    stats = proc.stats()["ListSink"]
    assert len(events) + stats["dropped"] == 20
    assert len(events) == 3  # the bound
    assert sum(r.dropped_events for r in sink.records if r.type == "end") == stats["dropped"]


def test_a_slow_sink_does_not_delay_a_fast_sink_or_the_program():
    slow = ListSink(delay=0.05)
    fast = ListSink()
    tracer, proc, _ = make([slow, fast])
    t0 = time.perf_counter()
    for i in range(20):
        with tracer.start_as_current_span(f"n{i}", attributes=step("node", f"n{i}")):
            pass
    program_time = time.perf_counter() - t0
    # 40 records at 50 ms each would take 2 s on the program thread if it waited for the slow sink.
    deadline = time.monotonic() + 2
    while len(fast.records) < 40 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(fast.records) == 40
    assert len(slow.records) < 40, "the fast sink finished while the slow one still had work"
    assert program_time < 1.0, f"program thread spent {program_time:.3f}s; it must not wait for sinks"
    proc.shutdown()


def test_a_raising_sink_is_reported_once_and_the_program_and_other_sinks_continue(caplog):
    good = ListSink()

    def bad(record: StepRecord) -> None:
        raise RuntimeError("sink exploded")

    tracer, proc, exporter = make([CallbackSink(bad), good])
    with tracer.start_as_current_span("n", attributes=step("node", "n")):
        result = 21 * 2
    proc.force_flush(2000)
    assert result == 42
    assert summary(good.records) == [("start", "n"), ("end", "n")]
    assert proc.stats()["CallbackSink"]["failed"] == 2
    assert len(exporter.get_finished_spans()) == 1
    assert sum("sink exploded" in r.getMessage() or "sink CallbackSink" in r.getMessage()
               for r in caplog.records) == 1


def test_our_own_failure_inside_on_start_never_reaches_the_program(monkeypatch):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    sink = ListSink()
    tracer, proc, exporter = make([sink])
    monkeypatch.setattr(proc, "_clean", lambda attrs: 1 / 0)
    with tracer.start_as_current_span("n", attributes=step("node", "n")):
        value = "host result"
    assert value == "host result"
    assert [s.name for s in exporter.get_finished_spans()] == ["n"]


def test_concurrent_runs_in_threads_keep_each_steps_records_in_order():
    sink = ListSink()
    tracer, proc, _ = make([sink])

    def run(k: int) -> None:
        with tracer.start_as_current_span(f"run{k}", attributes=step("run", f"run{k}")):
            for i in range(10):
                with tracer.start_as_current_span("n", attributes=step("node", f"{k}-{i}")) as s:
                    s.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: "x"})

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proc.force_flush(5000)
    by_span: dict[str, list[str]] = {}
    for r in sink.records:
        by_span.setdefault(r.span_id, []).append(r.type)
    assert len(by_span) == 8 * 11
    for types in by_span.values():
        assert types[0] == "start" and types[-1] == "end"
        assert set(types[1:-1]) <= {"event"}
    texts = sum(r.count for r in sink.records if r.event == c.EVENT_DELTA)
    assert texts == 80


def test_secrets_are_masked_for_sinks_and_exporters_alike():
    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=Redactor())
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0kLmN"
    with tracer.start_as_current_span("llm", attributes={**step("llm", "m"), c.INPUT_VALUE: f"key={key}"}) as s:
        s.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: f"token {key} here"})
        s.set_attribute(c.OUTPUT_VALUE, "Authorization: Bearer abcdef1234567890XYZ")
    proc.force_flush(2000)
    exported = exporter.get_finished_spans()[0]
    texts = [str(v) for r in sink.records for v in r.attributes.values()]
    texts += [str(v) for v in exported.attributes.values()]
    texts += [str(v) for e in exported.events for v in e.attributes.values()]
    assert not any(key in t for t in texts)
    assert exported.attributes[c.OUTPUT_VALUE] == "Authorization: Bearer [REDACTED:bearer_token]"
    assert exported.attributes[c.INPUT_VALUE] == "key=[REDACTED:openai_key]"
    assert exported.events[0].attributes[c.DELTA_TEXT] == "token [REDACTED:openai_key] here"
    assert sink.records[1].attributes[c.DELTA_TEXT] == "token [REDACTED:openai_key] here"


def test_long_values_are_cut_in_records_but_not_in_exported_spans():
    sink = ListSink()
    tracer, proc, exporter = make([sink], max_value_length=100)
    with tracer.start_as_current_span("n", attributes={**step("node", "n"), c.INPUT_VALUE: "x" * 250}):
        pass
    proc.force_flush(2000)
    assert sink.records[0].attributes[c.INPUT_VALUE] == "x" * 100 + "…[150 more chars]"
    assert exporter.get_finished_spans()[0].attributes[c.INPUT_VALUE] == "x" * 250


class _Text(str):  # a str subclass, as smolagents' AgentText
    pass


@pytest.mark.parametrize("redactor", [Redactor(), None], ids=["redacting", "no redactor"])
def test_end_records_cut_every_string_the_span_ends_over_the_limit(redactor: Redactor | None):
    sink = ListSink()
    tracer, proc, exporter = make([sink], max_value_length=20, redactor=redactor)
    # One span per case: a single string over the limit would have the whole record checked.
    cases = {
        "str subclass": _Text("y" * 45),  # set after start
        "grows when masked": "password=hunter2x",  # 17 characters, 37 masked
        "a list": ["z" * 45],  # lists are masked, never cut
        "at the limit": "s" * 20,
    }
    for name, value in cases.items():
        with tracer.start_as_current_span(name, attributes=step("node", name)) as span:
            span.set_attribute(c.OUTPUT_VALUE, value)
    proc.force_flush(2000)
    ends = {r.span_name: r.attributes[c.OUTPUT_VALUE] for r in sink.records if r.type == "end"}
    assert ends == {
        "str subclass": "y" * 20 + "…[25 more chars]",
        "grows when masked": "password=[REDACTED:s…[17 more chars]" if redactor else "password=hunter2x",
        "a list": ("z" * 45,),
        "at the limit": "s" * 20,
    }
    exported = {s.name: s.attributes[c.OUTPUT_VALUE] for s in exporter.get_finished_spans()}
    assert exported["str subclass"] == "y" * 45  # exporters get whole values


def test_a_limit_shorter_than_any_secret_still_cuts_short_values():
    sink = ListSink()
    tracer, proc, _ = make([sink], max_value_length=4)
    with tracer.start_as_current_span("n", attributes={**step("node", "n"), c.INPUT_VALUE: "abcdefgh"}):
        pass
    proc.force_flush(2000)
    assert [r.attributes[c.INPUT_VALUE] for r in sink.records] == ["abcd…[4 more chars]"] * 2


def test_shutdown_is_bounded_when_a_sink_hangs_and_closes_healthy_sinks():
    hang = threading.Event()
    stuck = ListSink(gate=hang)
    ok = ListSink()
    tracer, proc, _ = make([stuck, ok], shutdown_timeout=0.3)
    with tracer.start_as_current_span("n", attributes=step("node", "n")):
        pass
    t0 = time.monotonic()
    proc.shutdown()
    elapsed = time.monotonic() - t0
    hang.set()
    assert elapsed < 1.5
    assert ok.closed == 1 and summary(ok.records) == [("start", "n"), ("end", "n")]


@pytest.mark.parametrize("broken", ["_clean", "_emit"])
def test_our_failure_in_event_end_or_redaction_hooks_never_reaches_the_program(monkeypatch, broken):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=Redactor())
    with tracer.start_as_current_span("n", attributes=step("node", "n")) as s:
        monkeypatch.setattr(proc, broken, lambda *a, **k: 1 / 0)
        s.add_event(c.EVENT_PROGRESS, {c.PROGRESS_MESSAGE: "still going with sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"})
        s.set_attribute(c.OUTPUT_VALUE, "done")
        value = "host result"
    assert value == "host result"
    # the span and its event still reach the exporter whole, whatever hook failed
    (span,) = exporter.get_finished_spans()
    assert [e.name for e in span.events] == [c.EVENT_PROGRESS]
    assert span.attributes[c.OUTPUT_VALUE] == "done"


def test_a_failing_redaction_at_span_end_leaves_the_span_exportable(monkeypatch):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")

    tracer, _proc, exporter = make([ListSink()], redactor=BrokenRedactor())
    secret = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"
    with tracer.start_as_current_span("n", attributes=step("node", "n")) as s:
        s.add_event(c.EVENT_PROGRESS, {c.PROGRESS_MESSAGE: f"using {secret}", c.PROGRESS_CURRENT: 2})
        s.set_attribute(c.OUTPUT_VALUE, f"key {secret}")
    (span,) = exporter.get_finished_spans()
    # the span is still exported, and with redaction broken every string is hidden rather than leaked
    assert span.attributes[c.OUTPUT_VALUE] == "[REDACTED:redaction failed]"
    assert dict(span.events[0].attributes) == {c.PROGRESS_MESSAGE: "[REDACTED:redaction failed]",
                                               c.PROGRESS_CURRENT: 2}


def test_a_failing_redaction_at_span_start_still_masks_the_record_events_and_span(monkeypatch):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")

    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=BrokenRedactor())
    secret = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"
    attrs = {**step("node", "n"), c.INPUT_VALUE: f"the key is {secret}"}
    with tracer.start_as_current_span("n", attributes=attrs) as s:
        s.add_event(c.EVENT_PROGRESS, {c.PROGRESS_MESSAGE: f"using {secret}"})
    proc.force_flush()
    (span,) = exporter.get_finished_spans()
    assert span.attributes[c.INPUT_VALUE] == "[REDACTED:redaction failed]"
    assert dict(span.events[0].attributes) == {c.PROGRESS_MESSAGE: "[REDACTED:redaction failed]"}
    assert [r.type for r in sink.records] == ["start", "event", "end"]
    assert all(secret not in repr(r.attributes) for r in sink.records)
    assert sink.records[0].attributes[c.INPUT_VALUE] == "[REDACTED:redaction failed]"


def test_an_attribute_changed_after_start_is_masked_again_at_the_end():
    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=Redactor())
    first = "question: " + "x" * 80 + " key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"
    attrs = {**step("node", "n"), c.INPUT_VALUE: first, c.OUTPUT_VALUE: first}
    with tracer.start_as_current_span("n", attributes=attrs) as s:
        s.set_attribute(c.OUTPUT_VALUE, "answer: " + "y" * 80 + " token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789")
    proc.force_flush()
    (span,) = exporter.get_finished_spans()
    assert span.attributes[c.INPUT_VALUE] == "question: " + "x" * 80 + " key [REDACTED:openai_key]"
    assert span.attributes[c.OUTPUT_VALUE] == "answer: " + "y" * 80 + " token [REDACTED:github_token]"
    assert sink.records[-1].attributes[c.OUTPUT_VALUE] == span.attributes[c.OUTPUT_VALUE]


def test_a_step_whose_identity_its_attribute_limit_pushed_out_gets_it_back_for_sinks_and_exporters():
    # OpenInference writes ~3 attributes per input message at a model call's end; past the span's limit
    # the SDK drops the oldest first: the identity set at start.
    sink = ListSink()
    tracer, proc, exporter = make([sink], max_attributes=12, redactor=Redactor())
    identity = c.step_attributes("smolagents", "llm", "gpt-4o", extra={c.GEN_AI_PROVIDER: "openai"})
    messages = {f"llm.input_messages.{i}.message.content": f"message {i}" for i in range(10)}
    with tracer.start_as_current_span("chat gpt-4o", attributes=identity) as span:
        span.set_attributes(messages)
        assert c.STEP_KIND not in span.attributes  # what the SDK did: the identity went first
    assert proc.force_flush(2000)
    start, end = sink.records
    assert (start.type, end.type) == ("start", "end")
    exported = exporter.get_finished_spans()[0]
    # 7 identity + 10 messages into 12: the SDK dropped the first 5 identity attributes; putting them back
    # takes the place of the 5 oldest messages, and they come back as the newest.
    pushed_out = list(identity)[:5]
    kept = [k for k in identity if k not in pushed_out]
    for attrs in (end.attributes, exported.attributes):
        assert list(attrs) == kept + [f"llm.input_messages.{i}.message.content" for i in range(5, 10)] + pushed_out
        assert {k: attrs[k] for k in identity} == identity
    assert exported.dropped_attributes == 10  # the SDK's drops and ours, counted alike


def test_our_failure_putting_a_steps_identity_back_never_reaches_the_program(monkeypatch, caplog):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")

    def broken(self, span, store):
        raise RuntimeError("our bug")

    monkeypatch.setattr(LiveStepProcessor, "_restore_identity", broken)
    sink = ListSink()
    tracer, proc, exporter = make([sink], max_attributes=4, redactor=Redactor())
    with tracer.start_as_current_span("n", attributes=step("node", "n")) as span:
        span.set_attributes({f"k{i}": i for i in range(6)})
    assert proc.force_flush(2000)
    # the span is exported as the SDK left it, the step's start record went out; no end record (its
    # identity is gone), and the failure is logged once
    assert dict(exporter.get_finished_spans()[0].attributes) == {"k2": 2, "k3": 3, "k4": 4, "k5": 5}
    assert summary(sink.records) == [("start", "n")]
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.name == "massgen_tracing"] == [
        "massgen-tracing: internal error in processor.restore identity"]


def test_records_name_the_nearest_enclosing_step_across_spans_that_are_not_steps():
    sink = ListSink()
    tracer, proc, _exporter = make([sink])
    with tracer.start_as_current_span("agent", attributes=step("node", "agent")) as node, \
            tracer.start_as_current_span("RunnableSequence") as plain, \
            tracer.start_as_current_span("chat", attributes=step("llm", "m")) as llm:
        llm.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: "hi"})
    proc.force_flush()
    hexid = lambda s: format(s.get_span_context().span_id, "016x")  # noqa: E731
    by = {(r.type, r.span_name): r for r in sink.records}
    assert [(r.type, r.span_name) for r in sink.records] == [
        ("start", "agent"), ("start", "chat"), ("event", "chat"), ("end", "chat"), ("end", "agent")]
    for t in ("start", "event", "end"):
        assert by[(t, "chat")].parent_span_id == hexid(plain)
        assert by[(t, "chat")].parent_step_id == hexid(node)
    assert by[("start", "agent")].parent_step_id is None and by[("end", "agent")].parent_step_id is None
    assert proc._enclosing == {} and proc._open_steps == {}  # nothing kept once the spans ended


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists only on POSIX")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() of a multi-threaded process
def test_a_forked_child_gets_its_own_sink_thread_and_flushes_promptly(tmp_path):
    from massgen_tracing._internal.sinks import JsonlSink, read_jsonl

    path = tmp_path / "steps.jsonl"
    tracer, proc, _exporter = make([JsonlSink(path)])
    with tracer.start_as_current_span("before-fork", attributes=step("node", "p")):
        pass
    assert proc.force_flush(5000)
    pid = os.fork()
    if pid == 0:  # the child: its sink thread must exist, or this flush waits out its whole deadline
        code = 1
        try:
            with tracer.start_as_current_span("in-child", attributes=step("node", "c")):
                pass
            t0 = time.monotonic()
            flushed = proc.force_flush(5000)
            proc.shutdown()
            code = 0 if flushed and time.monotonic() - t0 < 2.5 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    proc.shutdown()
    with open(path, encoding="utf-8") as fh:
        seen = [(r.type, r.span_name) for r in read_jsonl(fh)]
    # the parent's records once (not again from the child), then the child's
    assert seen == [("start", "before-fork"), ("end", "before-fork"), ("start", "in-child"), ("end", "in-child")]


def _fork_one_step(tracer, proc, check=lambda: True) -> int:
    """Fork; the child makes one step span, flushes and exits 0 if delivered (and `check()`), else not."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with tracer.start_as_current_span("in-child", attributes=step("node", "c")):
                pass
            code = 0 if proc.force_flush(3000) and check() else 3
            proc.shutdown()
        finally:
            os._exit(code)
    return pid


class _Display:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def update_agent_content(self, agent_id: str, text: str, content_type: str) -> None:
        self.lines.append(text)


@pytest.mark.parametrize("sink_kind", ["jsonl", "plain", "live", "display"])
def test_a_child_forked_while_a_sink_was_mid_write_still_delivers(tmp_path, sink_kind):
    # The fork copies a lock the parent's sink thread holds (it was writing): the child's sink must
    # renew it, or its thread blocks forever and the child's records are lost at its exit.
    from rich.console import Console

    from massgen_tracing._internal.console import LiveConsoleSink, PlainConsoleSink
    from massgen_tracing._internal.sinks import JsonlSink, read_jsonl
    from massgen_tracing.massgen._display import DisplaySink

    path = tmp_path / "steps.out"
    stream = open(path, "w", encoding="utf-8")  # noqa: SIM115  # closed below
    check = lambda: True  # noqa: E731
    if sink_kind == "jsonl":
        sink = JsonlSink(path)
        held = [sink._lock]
    elif sink_kind == "plain":
        sink = PlainConsoleSink(stream, show_time=False)
        held = [sink._lock, sink._tree._lock]
    elif sink_kind == "live":
        sink = LiveConsoleSink(Console(file=stream, force_terminal=False, width=80))
        held = [sink._lock, sink.tree._lock]
    else:
        display = _Display()
        sink = DisplaySink(display, agent_id="a")
        held = [sink._lock]
        check = lambda: len(display.lines) == 2  # noqa: E731  # the step's start and end, in the child
    tracer, proc, _exporter = make([sink])
    for lock in held:  # as if the sink thread were inside a write when the program forks
        lock.acquire()
    pid = _fork_one_step(tracer, proc, check)
    for lock in held:
        lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    proc.shutdown()
    stream.close()
    if sink_kind == "jsonl":
        with open(path, encoding="utf-8") as fh:
            assert [(r.type, r.span_name) for r in read_jsonl(fh)] == [("start", "in-child"), ("end", "in-child")]
    elif sink_kind == "plain":
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [re.sub(r" \d+ms$", "", line) for line in lines] == ["▶ node c", "✓ node c"]
    elif sink_kind == "live":  # off a terminal the live sink prints each finished root step once
        assert [re.sub(r" \d+ms", "", line).rstrip() for line in path.read_text(encoding="utf-8").splitlines()] == [
            "✓ node c"]


def test_a_sink_failing_to_renew_its_locks_in_a_forked_child_still_gets_the_childs_records(monkeypatch):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")

    class Broken(ListSink):
        def after_fork_in_child(self) -> None:
            raise RuntimeError("bug in massgen-tracing")

    sink = Broken()
    tracer, proc, _exporter = make([sink])
    pid = _fork_one_step(tracer, proc, lambda: summary(sink.records) == [("start", "c"), ("end", "c")])
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    proc.shutdown()


class _Clock:
    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0  # the whole process's CPU time
        self.own = 1.0  # the sink thread's own

    def advance(self, wall: float, cpu: float, own: float = 0.0) -> None:
        self.wall += wall
        self.cpu += cpu + own
        self.own += own


def test_a_sink_thread_looks_less_often_while_the_program_keeps_the_cpu_busy(monkeypatch):
    from massgen_tracing._internal import processor as p

    worker = p._SinkWorker(ListSink(), 10, lambda span_id: None)
    clock = _Clock()
    monkeypatch.setattr(p.time, "monotonic", lambda: clock.wall)
    monkeypatch.setattr(p.time, "process_time", lambda: clock.cpu)
    monkeypatch.setattr(p.time, "thread_time", lambda: clock.own)
    paces = []
    # (wall, the program's CPU, the sink thread's own CPU) since the last look
    for wall, cpu, own in [(0, 0, 0), (0.002, 0.0019, 0), (0.010, 0.006, 0), (0.010, 0.009, 0),
                           (0.050, 0.04, 0), (0.002, 0.0002, 0),
                           (0.002, 0.0002, 0.0018), (0.002, 0.0015, 0)]:
        clock.advance(wall, cpu, own)
        worker._pace()
        paces.append(worker._poll_s)
    # First look after a quiet spell: quick. Then by the program's CPU share since the last look: busy
    # looks in a row step up to the longest wait; one quiet look goes back to the shortest. The sink's own
    # work is not the program being busy.
    assert paces == [p._POLL_S, p._POLL_MID_S, p._POLL_MID_S, p._POLL_BUSY_S, p._POLL_BUSY_S, p._POLL_S,
                     p._POLL_S, p._POLL_MID_S]
    monkeypatch.undo()
    worker.close(time.monotonic() + 2)


def test_flush_does_not_wait_for_a_sink_thread_to_finish_its_poll(monkeypatch):
    from massgen_tracing._internal import processor as p

    monkeypatch.setattr(p, "_POLL_S", 60.0)  # a poll no test would wait out
    monkeypatch.setattr(p, "_POLL_BUSY_S", 60.0)
    sink = ListSink()
    tracer, proc, _ = make([sink])
    with tracer.start_as_current_span("first", attributes=step("node", "a")):
        pass
    assert proc.force_flush(5000)
    with tracer.start_as_current_span("second", attributes=step("node", "b")):
        pass  # queued while the worker waits out its 60 s poll: no wake-up for it
    assert proc.force_flush(5000)  # the flush wakes it
    assert summary(sink.records) == [("start", "a"), ("end", "a"), ("start", "b"), ("end", "b")]
    proc.shutdown()


def test_records_put_while_the_sink_thread_falls_asleep_always_wake_it(monkeypatch):
    # Producers append without a lock; only a worker going to sleep makes them take it. A wake-up lost
    # in that hand-over would leave a record undelivered until the next one: none may be, and no
    # flush() (which wakes the worker itself) helps here.
    from massgen_tracing._internal import processor as p

    monkeypatch.setattr(p, "_POLL_S", 0.0001)  # idle again almost at once: the race window, often
    monkeypatch.setattr(p, "_POLL_BUSY_S", 0.0001)
    sink = ListSink()
    worker = p._SinkWorker(sink, 10_000, lambda span_id: None)
    rounds, per_thread = 300, 2
    late: list[int] = []

    def produce(i: int, t: int) -> None:
        for j in range(per_thread):
            worker.put(StepRecord("start", 0, "t", f"{i}-{t}-{j}", None, "s"))

    for i in range(rounds):
        time.sleep((i % 7) * 0.0001)  # land at different points of the worker's way to sleep
        threads = [threading.Thread(target=produce, args=(i, t)) for t in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        deadline = time.monotonic() + 2
        while len(sink.records) < (i + 1) * 2 * per_thread and time.monotonic() < deadline:
            time.sleep(0.0005)
        if len(sink.records) < (i + 1) * 2 * per_thread:
            late.append(i)
            break
    assert late == []
    assert sorted(r.span_id for r in sink.records) == sorted(
        f"{i}-{t}-{j}" for i in range(rounds) for t in range(2) for j in range(per_thread))
    worker.close(time.monotonic() + 2)


def test_an_error_description_quoting_a_secret_is_masked_for_sinks_and_exporters():
    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=Redactor())
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0kLmN"
    with pytest.raises(PermissionError), tracer.start_as_current_span("n", attributes=step("node", "n")):
        raise PermissionError(f"denied for {key}")
    proc.force_flush(2000)
    (span,) = exporter.get_finished_spans()
    assert span.status.description == "PermissionError: denied for [REDACTED:openai_key]"
    assert span.events[0].attributes["exception.message"] == "denied for [REDACTED:openai_key]"
    end = sink.records[-1]
    assert (end.type, end.status, end.error) == ("end", "error", "PermissionError: denied for [REDACTED:openai_key]")
    assert key not in repr(sink.records) and key not in repr(span.to_json())


def test_a_long_error_description_is_cut_in_the_record_but_not_in_the_exported_span():
    sink = ListSink()
    tracer, proc, exporter = make([sink], max_value_length=40)
    with pytest.raises(ValueError), tracer.start_as_current_span("n", attributes=step("node", "n")):
        raise ValueError("x" * 100)
    proc.force_flush(2000)
    assert sink.records[-1].error == "ValueError: " + "x" * 28 + "…[72 more chars]"
    assert exporter.get_finished_spans()[0].status.description == "ValueError: " + "x" * 100


def test_a_failing_redaction_of_the_error_description_hides_it_and_the_program_goes_on(monkeypatch):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")

    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=BrokenRedactor())
    key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"
    with pytest.raises(PermissionError), tracer.start_as_current_span("n", attributes=step("node", "n")):
        raise PermissionError(f"denied for {key}")
    proc.force_flush(2000)
    (span,) = exporter.get_finished_spans()
    assert span.status.description == "[REDACTED:redaction failed]"
    assert sink.records[-1].error == "[REDACTED:redaction failed]"


def _run_in_child_then_die(path: str) -> None:
    # A pool worker killed by Pool.terminate() right after its task: no exit hook runs.
    import signal

    from massgen_tracing._internal.sinks import JsonlSink

    tracer, _proc, _ = make([JsonlSink(path)])
    with tracer.start_as_current_span("run", attributes=step("run", "g")):
        with tracer.start_as_current_span("node", attributes=step("node", "n")):
            pass
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_child_killed_right_after_its_run_has_written_the_runs_records(tmp_path, method):
    import multiprocessing

    from massgen_tracing._internal.sinks import read_jsonl

    path = str(tmp_path / "child.jsonl")
    child = multiprocessing.get_context(method).Process(target=_run_in_child_then_die, args=(path,))
    child.start()
    child.join(30)
    assert child.exitcode == -9
    with open(path, encoding="utf-8") as fh:
        seen = [(r.type, r.span_name) for r in read_jsonl(fh)]
    assert seen == [("start", "run"), ("start", "node"), ("end", "node"), ("end", "run")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_child_forked_inside_a_step_never_ends_the_parents_open_spans(tmp_path):
    # A process pool started inside a node: the child's exit hook ended the steps open at the fork a
    # second time, as abandoned (one more end line and one more exported span per step, per child).
    sink = ListSink()
    tracer, proc, exporter = make([sink])
    with tracer.start_as_current_span("run", attributes=step("run", "g")):
        with tracer.start_as_current_span("node", attributes=step("node", "n")):
            pid = os.fork()
            if pid == 0:  # the child: what its exit hook does
                os._exit(proc.end_open_spans())
            _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # nothing ended in the child
    assert proc.force_flush(2000)
    assert summary(sink.records) == [("start", "g"), ("start", "n"), ("end", "n"), ("end", "g")]
    assert [s.name for s in exporter.get_finished_spans()] == ["node", "run"]


@pytest.mark.parametrize("with_sinks", [True, False])
def test_the_hook_after_a_run_in_a_child_is_called_once_per_run_and_a_failing_one_is_contained(
        monkeypatch, caplog, with_sinks):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())
    sink = ListSink()
    proc = LiveStepProcessor([sink] if with_sinks else [])
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # the exporters first, as configure() does
    provider.add_span_processor(proc)
    tracer = provider.get_tracer("test")
    calls: list[int] = []

    def broken() -> None:
        calls.append(len(exporter.get_finished_spans()))
        raise RuntimeError("bug in massgen-tracing")

    proc.after_child_run = broken
    proc._forked = True  # as in a forked child
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            with tracer.start_as_current_span("outer"):  # not a step: the run below is still a run
                with tracer.start_as_current_span("run", attributes=step("run", "g")):
                    with tracer.start_as_current_span("node", attributes=step("node", "n")):
                        with tracer.start_as_current_span("llm", attributes=step("llm", "m")):
                            pass
    # Once per run, after its last span reached the processors added before ours (the exporter here).
    assert calls == [3, 7]
    assert [s.name for s in exporter.get_finished_spans()] == ["llm", "node", "run", "outer"] * 2
    assert "internal error in processor.on_end" in caplog.text
    if with_sinks:
        assert proc.force_flush(2000)
        assert summary(sink.records) == [("start", "g"), ("start", "n"), ("start", "m"), ("end", "m"),
                                         ("end", "n"), ("end", "g")] * 2


@pytest.mark.parametrize("text, masked", [
    ("Here: sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0 done", "Here: [REDACTED:openai_key] done"),
    ("curl -H 'Authorization: Bearer opaqueTOKEN1234567890abcdef' x",
     "curl -H 'Authorization: Bearer [REDACTED:bearer_token]' x"),
    ("set password = hunter2hunter2 now", "set password = [REDACTED:secret_assignment] now"),
    ("ends with the key sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3", "ends with the key [REDACTED:openai_key]"),
])
def test_a_secret_split_across_streamed_pieces_is_masked_whole_for_sinks_and_exporters(text, masked):
    # A tokenizer cuts anywhere, a key too: "sk-pro", "j-A1b2", ... each piece alone matches nothing,
    # and shown one by one they would spell the key out. Text is held back until it can be masked whole.
    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=Redactor())
    pieces = [text[i:i + 4] for i in range(0, len(text), 4)]
    with tracer.start_as_current_span("llm", attributes=step("llm", "model")) as span:
        for piece in pieces:
            span.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: piece, c.DELTA_COUNT: 1})
        span.add_event("massgen.llm.tool_decision", {"massgen.tool.name": "x"})  # not a delta: after the text
    assert proc.force_flush(5000)
    (exported,) = exporter.get_finished_spans()
    deltas = [e.attributes for e in exported.events if e.name == c.EVENT_DELTA]
    assert "".join(d[c.DELTA_TEXT] for d in deltas) == masked
    assert sum(d[c.DELTA_COUNT] for d in deltas) == len(pieces)  # every chunk counted once
    assert [e.name for e in exported.events][-1] == "massgen.llm.tool_decision"
    events = [r for r in sink.records if r.type == "event" and r.event == c.EVENT_DELTA]
    assert "".join(r.attributes[c.DELTA_TEXT] for r in events) == masked
    assert [r.type for r in sink.records][-2:] == ["event", "end"]
    proc.shutdown()


def test_streamed_text_still_held_when_its_step_ends_is_shown_masked_before_the_end():
    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=Redactor())
    text = "the key: sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2"
    with tracer.start_as_current_span("llm", attributes=step("llm", "model")) as span:
        for i in range(0, len(text), 5):
            span.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: text[i:i + 5], c.DELTA_COUNT: 1})
    assert proc.force_flush(5000)
    (exported,) = exporter.get_finished_spans()
    assert "".join(e.attributes[c.DELTA_TEXT] for e in exported.events) == "the key: [REDACTED:openai_key]"
    assert [r.type for r in sink.records] == ["start", "event", "end"]  # held words: one event, at the end
    assert sink.records[1].attributes[c.DELTA_TEXT] == "the key: [REDACTED:openai_key]"
    proc.shutdown()


def test_streamed_text_cut_anywhere_is_masked_exactly_as_the_whole_text_would_be():
    import random

    rng = random.Random(7)
    words = ["the", "key", "is", "and", "token:", "=", "x", "Authorization:", "here", "\n", "password", "api_key"]
    secrets = ["sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4", "Bearer opaqueTOKEN1234567890abcdef",
               "ghp_" + "a1B2" * 9, "AKIAABCDEFGHIJKLMNOP", "password = hunter2hunter2", "api_key: 'zzzzzzzzzz'",
               "hf_" + "x" * 32, "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4f"]
    redactor = Redactor()
    for case in range(300):
        parts = [rng.choice(secrets) if rng.random() < 0.2 else rng.choice(words) for _ in range(rng.randint(1, 25))]
        text = " ".join(parts)
        pieces, i = [], 0
        while i < len(text):
            n = rng.randint(1, 7)
            pieces.append(text[i:i + n])
            i += n
        tracer, proc, exporter = make([], redactor=redactor)
        with tracer.start_as_current_span("llm", attributes=step("llm", "m")) as span:
            for piece in pieces:
                span.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: piece, c.DELTA_COUNT: 1})
        (exported,) = exporter.get_finished_spans()
        shown = "".join(e.attributes[c.DELTA_TEXT] for e in exported.events)
        assert (case, shown) == (case, redactor.redact(text))
        proc.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists on POSIX only")
def test_a_child_of_os_fork_that_leaves_with_os_exit_has_written_its_finished_runs(tmp_path):
    # os._exit() is how a forked child usually leaves, and it runs no exit hook: 4 runs in 26 were lost.
    from massgen_tracing._internal.sinks import JsonlSink, read_jsonl

    path = str(tmp_path / "forks.jsonl")
    tracer, proc, _ = make([JsonlSink(path)])
    children = []
    for i in range(5):
        pid = os.fork()
        if pid == 0:  # the child: one run, then straight out
            try:
                with tracer.start_as_current_span(f"run{i}", attributes=step("run", f"g{i}")):
                    with tracer.start_as_current_span("node", attributes=step("node", "n")):
                        pass
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    proc.shutdown()
    with open(path, encoding="utf-8") as fh:
        seen = sorted((r.type, r.span_name) for r in read_jsonl(fh))
    assert seen == sorted([(t, n) for i in range(5) for t, n in
                           [("start", f"run{i}"), ("start", "node"), ("end", "node"), ("end", f"run{i}")]])


def test_a_failing_redaction_of_streamed_text_hides_it_and_the_program_goes_on(monkeypatch):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    sink = ListSink()
    tracer, proc, exporter = make([sink], redactor=BrokenRedactor())
    pieces = ["the key ", "sk-proj-", "A1b2C3d4E5f6G7h8I9 ", "done now ok"]
    with tracer.start_as_current_span("llm", attributes=step("llm", "m")) as span:
        for piece in pieces:
            span.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: piece, c.DELTA_COUNT: 1})
    assert proc.force_flush(2000)
    (exported,) = exporter.get_finished_spans()
    # Shown when due (all of it at once, as nothing can be masked), the rest at the end: never in clear.
    assert [(e.attributes[c.DELTA_TEXT], e.attributes[c.DELTA_COUNT]) for e in exported.events] == [
        ("[REDACTED:redaction failed]", 3), ("[REDACTED:redaction failed]", 1)]
    # (the sink may get the two merged into one record)
    assert "".join(r.attributes[c.DELTA_TEXT] for r in sink.records if r.type == "event") == (
        "[REDACTED:redaction failed]" * 2)
    proc.shutdown()


def test_a_stream_with_content_capture_off_shows_one_hidden_marker_not_one_per_chunk():
    # OpenInference's marker per chunk, run together: `"__REDACTED____REDACTED__…" (12 chunks)`.
    from openinference.instrumentation import REDACTED_VALUE

    assert c.HIDDEN_TEXT == REDACTED_VALUE
    sink = ListSink()
    tracer, proc, _ = make([sink], redactor=Redactor())
    with tracer.start_as_current_span("chat", attributes=step("llm", "m")) as span:
        for _ in range(5):
            span.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: REDACTED_VALUE, c.DELTA_COUNT: 1})
    assert proc.force_flush(2000)
    deltas = [r for r in sink.records if r.event == c.EVENT_DELTA]
    assert [(r.attributes[c.DELTA_TEXT], r.chunks) for r in deltas] == [(REDACTED_VALUE, 5)]


def test_hidden_markers_waiting_for_a_slow_sink_merge_into_one():
    gate = threading.Event()
    sink = ListSink(gate=gate)
    tracer, proc, _ = make([sink])  # no redaction: the queue itself merges the waiting deltas
    with tracer.start_as_current_span("first", attributes=step("node", "n")):
        pass
    with tracer.start_as_current_span("chat", attributes=step("llm", "m")) as span:
        for _ in range(4):
            span.add_event(c.EVENT_DELTA, {c.DELTA_TEXT: c.HIDDEN_TEXT, c.DELTA_COUNT: 1})
    gate.set()
    assert proc.force_flush(5000)
    deltas = [r for r in sink.records if r.event == c.EVENT_DELTA]
    assert [r.attributes[c.DELTA_TEXT] for r in deltas] == [c.HIDDEN_TEXT]
    assert sum(r.chunks for r in deltas) == 4
